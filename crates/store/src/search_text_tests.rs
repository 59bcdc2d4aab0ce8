//! The searchable text stored after a message's metadata (`NewMessage::text`) is found again
//! through COPY, EXPUNGE of other messages, replay, checkpoints and compaction, and a message
//! stored without one (as an older ringmail stored every message) reports none instead of
//! taking the next record for its text; read in place (`store::mapped`) as by reads.

use std::collections::BTreeMap;
use std::path::Path;

use super::test_support::{run, tmp_partition, user_with_copy_mailbox};
use super::{NewMessage, Options, Partition};

fn body(i: usize) -> Vec<u8> {
    format!(
        "Subject: m{i}\r\n\r\n{}\r\n",
        "body text ".repeat(20 + i % 7)
    )
    .into_bytes()
}

/// Message `i` has a text unless `i % 3 == 0`; `i % 4 == 0` has no metadata either.
fn text(i: usize) -> Vec<u8> {
    if i.is_multiple_of(3) {
        Vec::new()
    } else {
        format!("text of {i} ").repeat(1 + i % 5).into_bytes()
    }
}

fn meta(i: usize) -> Vec<u8> {
    if i.is_multiple_of(4) {
        Vec::new()
    } else {
        format!("meta-{i}").into_bytes()
    }
}

async fn append(p: &Partition, mailbox: &str, i: usize) {
    let (b, m, t) = (body(i), meta(i), text(i));
    let msg = NewMessage {
        meta: &m,
        text: &t,
        ..NewMessage::plain(&b)
    };
    p.append("u", mailbox, &[msg]).await.unwrap();
}

/// Per mailbox, per message in UID order: (body, metadata, text or `None`).
type Contents = BTreeMap<String, Vec<(Vec<u8>, Vec<u8>, Option<Vec<u8>>)>>;

async fn contents(p: &Partition) -> Contents {
    let mut out = Contents::new();
    for name in ["INBOX", "Copy"] {
        let uids: Vec<u32> = p
            .with_mailbox("u", name, |v| v.messages().iter().map(|m| m.uid).collect())
            .unwrap();
        let mut list = Vec::new();
        for uid in uids {
            let b = p.read_message("u", name, uid, None).await.unwrap().to_vec();
            let m = p.read_meta("u", name, uid).await.unwrap().to_vec();
            let mut t = b"kept".to_vec();
            let found = p
                .read_search_text_into("u", name, uid, &mut t)
                .await
                .unwrap();
            if !found {
                assert_eq!(t, b"kept", "a miss leaves the buffer as it was");
            }
            let text = found.then(|| t[4..].to_vec());
            in_place_agrees(p, name, uid, &b, text.as_deref());
            list.push((b, m, text));
        }
        out.insert(name.to_string(), list);
    }
    out
}

/// The record read in place (`Partition::record_reader`) is the message and text the reads
/// return. Everything here was just written or read, so it is in the page cache: in place.
fn in_place_agrees(p: &Partition, mailbox: &str, uid: u32, message: &[u8], text: Option<&[u8]>) {
    let entry = p
        .with_mailbox("u", mailbox, |v| v.message(uid))
        .unwrap()
        .unwrap();
    let mut reader = p.record_reader();
    let record = reader
        .read(&entry)
        .unwrap_or_else(|| panic!("{mailbox} {uid} not read in place"));
    assert_eq!(record.message, message, "{mailbox} {uid}: message in place");
    assert_eq!(record.text, text, "{mailbox} {uid}: text in place");
}

/// What the mailboxes must hold: `ids` of INBOX and of Copy, in UID order.
fn expected(inbox: &[usize], copy: &[usize]) -> Contents {
    let of = |ids: &[usize]| {
        ids.iter()
            .map(|&i| (body(i), meta(i), Some(text(i)).filter(|t| !t.is_empty())))
            .collect()
    };
    Contents::from([
        ("INBOX".to_string(), of(inbox)),
        ("Copy".to_string(), of(copy)),
    ])
}

async fn open(dir: &Path) -> Partition {
    let opts = Options {
        segment_size: 8 << 10,
        checkpoint_every: u64::MAX,
        compact_bytes_per_tick: 4096,
        ..Options::default()
    };
    Partition::open(dir, opts).await.unwrap()
}

#[test]
fn texts_follow_messages_through_copy_replay_checkpoints_and_compaction() {
    let (_tmp, dir) = tmp_partition();
    // INBOX keeps 40..60 after the expunge, then gets 60..80; Copy holds copies of 5..=9.
    let inbox: Vec<usize> = (40..80).collect();
    let copy: Vec<usize> = (5..10).collect();
    let want = expected(&inbox, &copy);
    let d = dir.clone();
    let w = want.clone();
    run(move || async move {
        let p = open(&d).await;
        user_with_copy_mailbox(&p).await;
        for i in 0..60 {
            append(&p, "INBOX", i).await;
        }
        p.copy("u", "INBOX", &[(6, 10)], "Copy").await.unwrap();
        p.expunge("u", "INBOX", &[(1, 40)]).await.unwrap();
        p.checkpoint().await.unwrap();
        // Roll the log past the checkpointed segments so that they can be compacted.
        for i in 60..80 {
            append(&p, "INBOX", i).await;
        }
        p.checkpoint().await.unwrap();
        let before = contents(&p).await;
        assert_eq!(before, w, "before compaction");
        assert!(p.compact().await.unwrap() > 0, "nothing compacted");
        assert_eq!(contents(&p).await, w, "after compaction");
        // Dropped without closing: the next open loads the compaction's checkpoint and
        // replays what follows it.
        std::mem::forget(p);
    });
    let d = dir.clone();
    let w = want.clone();
    run(move || async move {
        let p = open(&d).await;
        assert_eq!(contents(&p).await, w, "after replay");
        p.close().await.unwrap();
    });
    run(move || async move {
        let p = open(&dir).await;
        assert_eq!(contents(&p).await, want, "after a clean close");
        p.close().await.unwrap();
    });
}

#[test]
fn a_whole_log_replay_finds_the_texts() {
    let (_tmp, dir) = tmp_partition();
    let d = dir.clone();
    run(move || async move {
        let p = open(&d).await;
        user_with_copy_mailbox(&p).await;
        for i in 0..12 {
            append(&p, "INBOX", i).await;
        }
        std::mem::forget(p); // no checkpoint at all
    });
    run(move || async move {
        let p = open(&dir).await;
        let inbox: Vec<usize> = (0..12).collect();
        assert_eq!(contents(&p).await, expected(&inbox, &[]));
        p.close().await.unwrap();
    });
}

/// Texts are live bytes: a sealed segment whose messages are all alive is not compacted
/// however large their texts are next to their bodies.
#[test]
fn texts_count_as_live_bytes() {
    let (_tmp, dir) = tmp_partition();
    run(move || async move {
        let p = open(&dir).await;
        p.ensure_user("u").await.unwrap();
        let big = vec![b'x'; 3000];
        for i in 0..20 {
            let b = body(i);
            let msg = NewMessage {
                text: &big,
                ..NewMessage::plain(&b)
            };
            p.append("u", "INBOX", &[msg]).await.unwrap();
        }
        p.checkpoint().await.unwrap();
        for i in 20..30 {
            append(&p, "INBOX", i).await;
        }
        p.checkpoint().await.unwrap();
        assert_eq!(
            p.compact().await.unwrap(),
            0,
            "live segments were compacted"
        );
        p.close().await.unwrap();
    });
}
