//! `Partition::raise_uidnext` and the RAISE_UIDNEXT record: UIDNEXT only ever goes up, and
//! a raised (or expunged-past) UIDNEXT survives replay, checkpoints, compaction and
//! restarts; the record goes only into segments of format 2, which an older ringmail
//! refuses instead of misreading.

use std::path::{Path, PathBuf};

use super::record::kind;
use super::segment::{
    list_segments, read_header, segment_path, HeaderError, SegmentHeader, SegmentKind,
    FORMAT_VERSION, SEGMENT_HEADER,
};
use super::test_support::{append_n, run, segments, tmp_partition};
use super::{check, NewMessage, Options, Partition, StoreError};

/// The partition at `dir`, with user "u" and its INBOX.
async fn open_with_user(dir: &Path) -> Partition {
    let p = Partition::open(dir, Options::default()).await.unwrap();
    p.ensure_user("u").await.unwrap();
    p
}

fn uidnext(p: &Partition, mailbox: &str) -> u32 {
    p.status("u", mailbox).unwrap().uidnext
}

fn log_bytes(dir: &Path) -> u64 {
    list_segments(dir)
        .unwrap()
        .iter()
        .map(|&id| std::fs::metadata(segment_path(dir, id)).unwrap().len())
        .sum()
}

#[test]
fn raise_moves_uidnext_up_and_append_continues_there() {
    let (_tmp, dir) = tmp_partition();
    run(move || async move {
        let p = open_with_user(&dir).await;
        assert_eq!(append_n(&p, "INBOX", 3).await, vec![1, 2, 3]);
        assert_eq!(p.raise_uidnext("u", "INBOX", 10).await.unwrap(), 10);
        assert_eq!(uidnext(&p, "INBOX"), 10);
        assert_eq!(append_n(&p, "INBOX", 2).await, vec![10, 11]);
        // A migration's explicit UIDs below the raised UIDNEXT are refused.
        let body = b"Subject: x\r\n\r\nx".to_vec();
        let err = p
            .append_with_uids("u", "inbox", &[NewMessage::plain(&body)], &[5])
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::NotPermitted(_)), "{err:?}");
        // COPY into the mailbox gets UIDs from the raised UIDNEXT on.
        p.create_mailbox("u", "Dst", 0).await.unwrap();
        assert_eq!(p.raise_uidnext("u", "Dst", 50).await.unwrap(), 50);
        let c = p.copy("u", "INBOX", &[(1, 2)], "Dst").await.unwrap();
        assert_eq!(c.pairs, vec![(1, 50), (2, 51)]);
        p.close().await.unwrap();
    });
}

#[test]
fn raise_at_or_below_uidnext_is_a_no_op_without_a_record() {
    let (_tmp, dir) = tmp_partition();
    run(move || async move {
        let p = open_with_user(&dir).await;
        append_n(&p, "INBOX", 5).await;
        p.flush().await;
        let before = log_bytes(&dir);
        for v in [0, 1, 5, 6] {
            assert_eq!(p.raise_uidnext("u", "INBOX", v).await.unwrap(), 6);
        }
        p.flush().await;
        assert_eq!(log_bytes(&dir), before, "a no-op raise wrote something");
        assert_eq!(uidnext(&p, "INBOX"), 6);
        assert_eq!(append_n(&p, "INBOX", 1).await, vec![6]);
        p.close().await.unwrap();
    });
}

#[test]
fn raise_on_unknown_mailbox_or_user_fails_like_other_calls() {
    let (_tmp, dir) = tmp_partition();
    run(move || async move {
        let p = open_with_user(&dir).await;
        let e = p.raise_uidnext("u", "Nope", 9).await.unwrap_err();
        assert!(matches!(e, StoreError::NoSuchMailbox), "{e:?}");
        let e = p.raise_uidnext("nobody", "INBOX", 9).await.unwrap_err();
        assert!(matches!(e, StoreError::NoSuchMailbox), "{e:?}");
        // Names are normalised as everywhere else.
        assert_eq!(p.raise_uidnext("u", "inbox", 9).await.unwrap(), 9);
        p.close().await.unwrap();
    });
}

#[test]
fn raised_uidnext_survives_replay_and_checkpoint() {
    let (_tmp, dir) = tmp_partition();
    let opts = Options {
        checkpoint_every: u64::MAX,
        ..Options::default()
    };
    let d = dir.clone();
    let o = opts.clone();
    run(move || async move {
        let p = Partition::open(&d, o).await.unwrap();
        p.ensure_user("u").await.unwrap();
        p.create_mailbox("u", "Other", 0).await.unwrap();
        append_n(&p, "INBOX", 2).await;
        p.raise_uidnext("u", "INBOX", 700).await.unwrap();
        p.crash().await; // crash: only the log has it
    });
    let d = dir.clone();
    let o = opts.clone();
    run(move || async move {
        let p = Partition::open(&d, o).await.unwrap();
        assert_eq!(uidnext(&p, "INBOX"), 700, "after replay");
        p.checkpoint().await.unwrap();
        // After the checkpoint: one more raise only in the log, one mailbox only in the
        // checkpoint.
        p.raise_uidnext("u", "Other", 40).await.unwrap();
        p.crash().await;
    });
    let d = dir.clone();
    run(move || async move {
        let p = Partition::open(&d, opts).await.unwrap();
        assert_eq!(uidnext(&p, "INBOX"), 700, "from the checkpoint");
        assert_eq!(uidnext(&p, "Other"), 40, "replayed after the checkpoint");
        assert_eq!(append_n(&p, "INBOX", 1).await, vec![700]);
        p.close().await.unwrap();
    });
    let d = dir.clone();
    run(move || async move {
        let p = Partition::open(&d, Options::default()).await.unwrap();
        assert_eq!(uidnext(&p, "INBOX"), 701, "after a clean close");
        p.close().await.unwrap();
    });
    assert!(check(&dir, false).unwrap().is_clean());
}

/// Expunging the newest messages leaves UIDNEXT above the highest surviving UID; neither
/// that nor a raise may regress once compaction removed the records that set them.
#[test]
fn uidnext_never_decreases_across_expunge_compaction_and_restart() {
    let (_tmp, dir) = tmp_partition();
    let opts = Options {
        segment_size: 4 << 10,
        checkpoint_every: u64::MAX,
        compact_dead_share: 0.3,
        ..Options::default()
    };
    let d = dir.clone();
    let o = opts.clone();
    run(move || async move {
        let p = Partition::open(&d, o).await.unwrap();
        p.ensure_user("u").await.unwrap();
        p.create_mailbox("u", "Plain", 0).await.unwrap();
        p.create_mailbox("u", "Other", 0).await.unwrap();
        append_n(&p, "INBOX", 5).await;
        append_n(&p, "Plain", 20).await;
        p.raise_uidnext("u", "INBOX", 1000).await.unwrap();
        assert_eq!(append_n(&p, "INBOX", 10).await[0], 1000);
        // The newest messages go: UIDNEXT stays above every surviving UID.
        p.expunge("u", "INBOX", &[(1000, 1009)]).await.unwrap();
        p.expunge("u", "Plain", &[(11, 20)]).await.unwrap();
        assert_eq!(uidnext(&p, "INBOX"), 1010);
        assert_eq!(uidnext(&p, "Plain"), 21);
        p.checkpoint().await.unwrap();
        // Seal the segments the checkpoint covers.
        append_n(&p, "Other", 12).await;
        assert!(p.compact().await.unwrap() > 0, "nothing compacted");
        for _ in 0..3 {
            p.checkpoint().await.unwrap();
        }
        p.crash().await; // crash
    });
    // The raise record itself is gone (its segment was compacted away), so only the
    // checkpoint remembers it.
    let raises: usize = segments(&dir)
        .iter()
        .map(|(_, kinds)| kinds.iter().filter(|&&k| k == kind::RAISE_UIDNEXT).count())
        .sum();
    assert_eq!(
        raises, 0,
        "compaction did not remove the raise record's segment"
    );
    let d = dir.clone();
    run(move || async move {
        let p = Partition::open(&d, opts).await.unwrap();
        assert_eq!(uidnext(&p, "INBOX"), 1010);
        assert_eq!(uidnext(&p, "Plain"), 21);
        assert_eq!(append_n(&p, "INBOX", 1).await, vec![1010]);
        assert_eq!(append_n(&p, "Plain", 1).await, vec![21]);
        p.close().await.unwrap();
    });
    assert!(check(&dir, false).unwrap().is_clean());
}

#[test]
fn raise_records_only_go_into_format_2_segments() {
    let (_tmp, dir) = tmp_partition();
    let d = dir.clone();
    run(move || async move {
        let p = Partition::open(&d, Options::default()).await.unwrap();
        p.ensure_user("u").await.unwrap();
        append_n(&p, "INBOX", 3).await;
        p.flush().await;
        // Without the new record a partition stays readable by an older ringmail.
        let segs = segments(&d);
        assert!(segs.iter().all(|(h, _)| h.version == 1), "{segs:?}");
        p.raise_uidnext("u", "INBOX", 99).await.unwrap();
        append_n(&p, "INBOX", 2).await;
        p.close().await.unwrap();
    });
    let segs = segments(&dir);
    for (h, kinds) in &segs {
        if kinds.contains(&kind::RAISE_UIDNEXT) {
            assert_eq!(h.version, 2, "raise record in segment {}", h.id);
        }
    }
    let last = segs.last().unwrap();
    assert_eq!(last.0.version, 2, "later records stay in the new format");
    assert!(last.1.contains(&kind::RAISE_UIDNEXT));
    assert!(segs.len() >= 2, "the format-1 segment was not sealed");
    // Both formats read back.
    let d = dir.clone();
    run(move || async move {
        let p = Partition::open(&d, Options::default()).await.unwrap();
        let uids = p
            .with_mailbox("u", "INBOX", |v| {
                v.messages().iter().map(|m| m.uid).collect::<Vec<_>>()
            })
            .unwrap();
        assert_eq!(uids, vec![1, 2, 3, 99, 100]);
        p.close().await.unwrap();
    });
}

/// Writes a segment header of a format newer than this ringmail reads.
fn write_newer_segment(dir: &Path, id: u32) -> PathBuf {
    let path = segment_path(dir, id);
    let mut h = SegmentHeader {
        id,
        kind: SegmentKind::Log,
        version: FORMAT_VERSION + 1,
    }
    .encode();
    assert_eq!(h.len() as u64, SEGMENT_HEADER);
    h.extend_from_slice(&[7u8; 100]);
    std::fs::write(&path, &h).unwrap();
    path
}

#[test]
fn newer_format_segment_is_refused_never_removed() {
    let (_tmp, dir) = tmp_partition();
    let d = dir.clone();
    run(move || async move {
        let p = Partition::open(&d, Options::default()).await.unwrap();
        p.ensure_user("u").await.unwrap();
        p.close().await.unwrap();
    });
    let next = list_segments(&dir).unwrap().last().unwrap() + 1;
    let path = write_newer_segment(&dir, next);
    assert!(matches!(
        read_header(&path).unwrap(),
        Err(HeaderError::Newer(v)) if v == FORMAT_VERSION + 1
    ));
    let before = std::fs::read(&path).unwrap();
    // The newest segment with a bad header used to count as half-created and be removed.
    let d = dir.clone();
    let err = run(move || async move {
        Partition::open(&d, Options::default())
            .await
            .err()
            .map(|e| e.to_string())
    })
    .expect("a newer segment was accepted");
    assert!(err.contains("newer ringmail"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), before, "segment changed");
    // check reports it and repair leaves the partition alone.
    let report = check(&dir, true).unwrap();
    assert!(!report.is_clean());
    assert_eq!(std::fs::read(&path).unwrap(), before, "repair touched it");
    assert!(report.partitions[0].repairs.is_empty());
}
