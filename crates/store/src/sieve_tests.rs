//! The Sieve part of a partition: scripts, the active script, the version counter and
//! remembered keys through the `Partition` API, across crashes, checkpoints and compaction;
//! the records go only into format-3 segments and the state into version-2 checkpoints.

use std::path::Path;

use super::checkpoint;
use super::index::{Index, Loc};
use super::record::{kind, FrameWriter, MAX_SCRIPT_NAME, MAX_SCRIPT_SIZE};
use super::search_fields::SearchFields;
use super::segment::{list_segments, segment_path};
use super::test_support::{append_n, run, segments, tmp_partition};
use super::{
    check, ActiveScript, Options, Partition, ScriptInfo, SieveLogEntry, StoreError, MAX_LOG_ENTRIES,
};

const SIEVE_KINDS: [u8; 6] = [
    kind::PUT_SCRIPT,
    kind::DELETE_SCRIPT,
    kind::RENAME_SCRIPT,
    kind::ACTIVATE_SCRIPT,
    kind::SIEVE_REMEMBER,
    kind::SIEVE_LOG,
];

fn info(name: &str, active: bool, size: usize) -> ScriptInfo {
    ScriptInfo {
        name: name.into(),
        active,
        size,
    }
}

/// Everything the Sieve API shows of `user`, for before/after comparisons.
fn sieve_dump(p: &Partition, user: &str, keys: &[&[u8]], now: i64) -> String {
    let scripts = p.scripts(user).unwrap();
    let sources: Vec<Option<String>> = scripts
        .iter()
        .map(|s| p.script(user, &s.name).unwrap())
        .collect();
    let live: Vec<bool> = keys.iter().map(|k| p.remembered(user, k, now)).collect();
    format!(
        "{scripts:?} {sources:?} {:?} {} {live:?} {:?}",
        p.active_script(user).unwrap(),
        p.script_version(user),
        p.sieve_log(user)
    )
}

fn version_of_checkpoint(dir: &Path) -> u32 {
    let newest = checkpoint::list(dir).unwrap()[0];
    let b = std::fs::read(checkpoint::path(dir, newest)).unwrap();
    u32::from_le_bytes([b[8], b[9], b[10], b[11]])
}

#[test]
fn scripts_api_follows_managesieve_rules() {
    let (_tmp, dir) = tmp_partition();
    let d = dir.clone();
    let before = run(move || async move {
        let p = Partition::open(&d, Options::default()).await.unwrap();
        // A new user: nothing, and no error.
        assert_eq!(p.scripts("u").unwrap(), vec![]);
        assert_eq!(p.script("u", "a").unwrap(), None);
        assert_eq!(p.active_script("u").unwrap(), None);
        assert_eq!(p.script_version("u"), 0);

        p.put_script("u", "b", "discard;").await.unwrap();
        p.put_script("u", "a", "keep;").await.unwrap();
        assert_eq!(
            p.scripts("u").unwrap(),
            vec![info("a", false, 5), info("b", false, 8)]
        );
        assert_eq!(p.script("u", "a").unwrap().as_deref(), Some("keep;"));
        assert_eq!(p.script_version("u"), 2);
        // Sieve state needs no mailbox and makes none.
        assert!(p.list_mailboxes("u").is_empty());

        let e = p.activate_script("u", Some("nope")).await.unwrap_err();
        assert!(matches!(e, StoreError::NoSuchScript), "{e:?}");
        p.activate_script("u", Some("a")).await.unwrap();
        assert_eq!(
            p.active_script("u").unwrap(),
            Some(ActiveScript {
                name: "a".into(),
                source: "keep;".into(),
                version: 3
            })
        );
        // Replacing the active script keeps it active, with a new version.
        p.put_script("u", "a", "stop;").await.unwrap();
        let active = p.active_script("u").unwrap().unwrap();
        assert_eq!((active.source.as_str(), active.version), ("stop;", 4));

        let e = p.delete_script("u", "a").await.unwrap_err();
        assert!(matches!(e, StoreError::ScriptActive), "{e:?}");
        let e = p.delete_script("u", "nope").await.unwrap_err();
        assert!(matches!(e, StoreError::NoSuchScript), "{e:?}");
        let e = p.delete_script("nobody", "a").await.unwrap_err();
        assert!(matches!(e, StoreError::NoSuchScript), "{e:?}");
        for (from, to) in [("a", "b"), ("a", "a")] {
            let e = p.rename_script("u", from, to).await.unwrap_err();
            assert!(
                matches!(e, StoreError::AlreadyExists),
                "{from}->{to}: {e:?}"
            );
        }
        let e = p.rename_script("u", "x", "y").await.unwrap_err();
        assert!(matches!(e, StoreError::NoSuchScript), "{e:?}");
        assert_eq!(p.script_version("u"), 4, "failures change nothing");

        // The active flag follows a rename.
        p.rename_script("u", "a", "c").await.unwrap();
        assert_eq!(
            p.scripts("u").unwrap(),
            vec![info("b", false, 8), info("c", true, 5)]
        );
        assert_eq!(p.active_script("u").unwrap().unwrap().name, "c");

        // What the format cannot hold is refused before anything is written.
        let long = "n".repeat(MAX_SCRIPT_NAME + 1);
        for name in ["", long.as_str()] {
            let e = p.put_script("u", name, "keep;").await.unwrap_err();
            assert!(matches!(e, StoreError::InvalidName), "{e:?}");
            let e = p.rename_script("u", "b", name).await.unwrap_err();
            assert!(matches!(e, StoreError::InvalidName), "{e:?}");
        }
        let max_name = "n".repeat(MAX_SCRIPT_NAME);
        p.put_script("u", &max_name, "keep;").await.unwrap();
        p.delete_script("u", &max_name).await.unwrap();
        let big = "#".repeat(MAX_SCRIPT_SIZE + 1);
        let e = p.put_script("u", "big", &big).await.unwrap_err();
        assert!(matches!(e, StoreError::TooLarge), "{e:?}");
        assert_eq!(p.script_version("u"), 7);

        // Users are apart.
        p.put_script("v", "c", "keep;").await.unwrap();
        assert_eq!(p.scripts("v").unwrap(), vec![info("c", false, 5)]);
        assert_eq!(p.script_version("v"), 1);
        let dump = sieve_dump(&p, "u", &[], 0) + &sieve_dump(&p, "v", &[], 0);
        p.crash().await; // crash: only the log has it
        dump
    });
    let d = dir.clone();
    let before = run(move || async move {
        let p = Partition::open(&d, Options::default()).await.unwrap();
        let after = sieve_dump(&p, "u", &[], 0) + &sieve_dump(&p, "v", &[], 0);
        assert_eq!(after, before, "after replay");
        // Deactivate, then the formerly active script can go.
        p.activate_script("u", None).await.unwrap();
        assert_eq!(p.active_script("u").unwrap(), None);
        p.delete_script("u", "c").await.unwrap();
        assert_eq!(p.scripts("u").unwrap(), vec![info("b", false, 8)]);
        assert_eq!(p.script_version("u"), 9);
        let dump = sieve_dump(&p, "u", &[], 0);
        p.close().await.unwrap();
        dump
    });
    assert_eq!(version_of_checkpoint(&dir), checkpoint::VERSION_SIEVE);
    let d = dir.clone();
    run(move || async move {
        let p = Partition::open(&d, Options::default()).await.unwrap();
        assert_eq!(sieve_dump(&p, "u", &[], 0), before, "from the checkpoint");
        p.close().await.unwrap();
    });
    assert!(check(&dir, false).unwrap().is_clean());
}

#[test]
fn racing_script_mutations_are_decided_by_log_order() {
    let (_tmp, dir) = tmp_partition();
    let d = dir.clone();
    run(move || async move {
        let p = Partition::open(&d, Options::default()).await.unwrap();
        p.put_script("u", "a", "keep;").await.unwrap();
        // Both pass their checks against the durable state; the log decides.
        let (first, second) =
            futures_lite::future::zip(p.activate_script("u", Some("a")), p.delete_script("u", "a"))
                .await;
        first.unwrap();
        assert!(
            matches!(second, Err(StoreError::ScriptActive)),
            "{second:?}"
        );
        let (first, second) = futures_lite::future::zip(
            p.rename_script("u", "a", "b"),
            p.rename_script("u", "a", "c"),
        )
        .await;
        first.unwrap();
        assert!(
            matches!(second, Err(StoreError::NoSuchScript)),
            "{second:?}"
        );
        assert_eq!(p.scripts("u").unwrap(), vec![info("b", true, 5)]);
        assert_eq!(p.script_version("u"), 3);
        p.crash().await;
    });
    let d = dir.clone();
    run(move || async move {
        let p = Partition::open(&d, Options::default()).await.unwrap();
        assert_eq!(p.scripts("u").unwrap(), vec![info("b", true, 5)]);
        assert_eq!(p.script_version("u"), 3);
        p.close().await.unwrap();
    });
}

#[test]
fn remembered_keys_expire_and_survive_restarts() {
    let (_tmp, dir) = tmp_partition();
    let d = dir.clone();
    run(move || async move {
        let p = Partition::open(&d, Options::default()).await.unwrap();
        p.remember(
            "u",
            1000,
            &[(b"v:1:bob@example.org", 1000 + 7 * 86400), (b"d:id", 1060)],
        )
        .await
        .unwrap();
        assert!(p.remembered("u", b"v:1:bob@example.org", 1000));
        assert!(p.remembered("u", b"d:id", 1059));
        assert!(!p.remembered("u", b"d:id", 1060), "expired at its expiry");
        assert!(!p.remembered("u", b"d:other", 1000));
        assert!(!p.remembered("w", b"d:id", 1000), "users are apart");
        // A later expiry replaces the earlier one; one in the past forgets the key.
        p.remember("u", 1010, &[(b"d:id", 2000), (b"v:1:bob@example.org", 5)])
            .await
            .unwrap();
        assert!(p.remembered("u", b"d:id", 1999));
        assert!(!p.remembered("u", b"v:1:bob@example.org", 1010));
        // Limits, and nothing written for nothing.
        p.remember("u", 1010, &[]).await.unwrap();
        let long = vec![1u8; super::MAX_REMEMBER_KEY + 1];
        for key in [&b""[..], &long[..]] {
            let e = p.remember("u", 1010, &[(key, 2000)]).await.unwrap_err();
            assert!(matches!(e, StoreError::NotPermitted(_)), "{e:?}");
        }
        let many = vec![(&b"k"[..], 2000); super::MAX_REMEMBER_ENTRIES + 1];
        let e = p.remember("u", 1010, &many).await.unwrap_err();
        assert!(matches!(e, StoreError::NotPermitted(_)), "{e:?}");
        p.crash().await;
    });
    let d = dir.clone();
    run(move || async move {
        let p = Partition::open(&d, Options::default()).await.unwrap();
        assert!(p.remembered("u", b"d:id", 1999), "after replay");
        assert!(!p.remembered("u", b"v:1:bob@example.org", 1010));
        // Remembered keys alone make a version-2 checkpoint; an expired key is pruned at
        // the checkpoint once the partition's clock (the latest `now` written) passes it.
        p.remember("w", 2500, &[(b"x", 3000)]).await.unwrap();
        p.close().await.unwrap();
    });
    assert_eq!(version_of_checkpoint(&dir), checkpoint::VERSION_SIEVE);
    let newest = checkpoint::list(&dir).unwrap()[0];
    let (index, _) =
        checkpoint::decode(&std::fs::read(checkpoint::path(&dir, newest)).unwrap()).unwrap();
    assert!(
        index.sieve.user("u").is_none(),
        "u's keys expired by 2500 and u had no scripts"
    );
    assert_eq!(index.sieve.user("w").unwrap().remembered.len(), 1);
    let d = dir.clone();
    run(move || async move {
        let p = Partition::open(&d, Options::default()).await.unwrap();
        assert!(p.remembered("w", b"x", 2999));
        assert!(!p.remembered("u", b"d:id", 2500));
        p.close().await.unwrap();
    });
}

/// Scripts and live keys are in the checkpoint, so compaction may drop the records that
/// made them: put scripts, compact them away, crash, restart, and all is there.
#[test]
fn scripts_and_keys_survive_compaction_and_crash() {
    let (_tmp, dir) = tmp_partition();
    let opts = Options {
        segment_size: 4 << 10,
        checkpoint_every: u64::MAX,
        compact_dead_share: 0.3,
        ..Options::default()
    };
    let keys: [&[u8]; 3] = [b"v:a", b"v:b", b"d:c"];
    let d = dir.clone();
    let o = opts.clone();
    let before = run(move || async move {
        let p = Partition::open(&d, o).await.unwrap();
        p.ensure_user("u").await.unwrap();
        p.put_script("u", "vacation", "vacation \"away\";")
            .await
            .unwrap();
        p.put_script("u", "lists", "keep;").await.unwrap();
        p.put_script("u", "gone", "discard;").await.unwrap();
        p.activate_script("u", Some("vacation")).await.unwrap();
        p.rename_script("u", "lists", "mailing lists")
            .await
            .unwrap();
        p.delete_script("u", "gone").await.unwrap();
        p.log_sieve_error("u", log_entry(1, "vacation", "too many steps"))
            .await
            .unwrap();
        p.remember(
            "u",
            100,
            &[(keys[0], 10_000), (keys[1], 150), (keys[2], 20_000)],
        )
        .await
        .unwrap();
        // Dead mail after the Sieve records, so that their segments are worth compacting.
        append_n(&p, "INBOX", 20).await;
        p.expunge("u", "INBOX", &[(1, 20)]).await.unwrap();
        p.checkpoint().await.unwrap();
        append_n(&p, "INBOX", 12).await;
        assert!(p.compact().await.unwrap() > 0, "nothing compacted");
        for _ in 0..3 {
            p.checkpoint().await.unwrap();
        }
        let dump = sieve_dump(&p, "u", &keys, 200);
        p.crash().await; // crash
        dump
    });
    let left: usize = segments(&dir)
        .iter()
        .map(|(_, kinds)| kinds.iter().filter(|k| SIEVE_KINDS.contains(k)).count())
        .sum();
    assert_eq!(left, 0, "compaction left Sieve records in the log");
    let d = dir.clone();
    run(move || async move {
        let p = Partition::open(&d, opts).await.unwrap();
        let after = sieve_dump(&p, "u", &keys, 200);
        assert_eq!(after, before);
        assert_eq!(
            p.scripts("u").unwrap(),
            vec![info("mailing lists", false, 5), info("vacation", true, 16)]
        );
        assert_eq!(p.script_version("u"), 6);
        assert_eq!(p.sieve_log("u").len(), 1);
        assert!(p.remembered("u", keys[0], 200) && p.remembered("u", keys[2], 200));
        assert!(!p.remembered("u", keys[1], 200));
        // The version keeps counting from where it was.
        p.put_script("u", "x", "keep;").await.unwrap();
        assert_eq!(p.script_version("u"), 7);
        p.close().await.unwrap();
    });
    assert!(check(&dir, false).unwrap().is_clean());
}

#[test]
fn sieve_records_only_go_into_format_3_segments() {
    let (_tmp, dir) = tmp_partition();
    let d = dir.clone();
    run(move || async move {
        let p = Partition::open(&d, Options::default()).await.unwrap();
        p.ensure_user("u").await.unwrap();
        append_n(&p, "INBOX", 2).await;
        p.raise_uidnext("u", "INBOX", 50).await.unwrap();
        append_n(&p, "INBOX", 2).await;
        p.flush().await;
        // Without Sieve records nothing needs format 3.
        let versions: Vec<u32> = segments(&d).iter().map(|(h, _)| h.version).collect();
        assert_eq!(versions, vec![1, 2]);
        p.put_script("u", "a", "keep;").await.unwrap();
        append_n(&p, "INBOX", 1).await;
        p.remember("u", 1, &[(b"k", 2)]).await.unwrap();
        p.close().await.unwrap();
    });
    let segs = segments(&dir);
    let versions: Vec<u32> = segs.iter().map(|(h, _)| h.version).collect();
    assert_eq!(versions, vec![1, 2, 3], "{segs:?}");
    for (h, kinds) in &segs {
        let sieve = kinds.iter().any(|k| SIEVE_KINDS.contains(k));
        assert_eq!(sieve, h.version == 3, "segment {} {kinds:?}", h.id);
    }
    assert!(
        segs[2].1.contains(&kind::APPEND),
        "later records stay in format 3"
    );
    let d = dir.clone();
    run(move || async move {
        let p = Partition::open(&d, Options::default()).await.unwrap();
        assert_eq!(p.status("u", "INBOX").unwrap().uidnext, 53);
        assert_eq!(p.scripts("u").unwrap(), vec![info("a", false, 5)]);
        assert!(p.remembered("u", b"k", 1));
        p.close().await.unwrap();
    });
}

#[test]
fn a_partition_without_sieve_state_keeps_version_1_checkpoints() {
    // (Mail makes a version-3 checkpoint: its header-search values need it.)
    let (_tmp, dir) = tmp_partition();
    let d = dir.clone();
    run(move || async move {
        let p = Partition::open(&d, Options::default()).await.unwrap();
        p.ensure_user("u").await.unwrap();
        p.close().await.unwrap();
    });
    assert_eq!(version_of_checkpoint(&dir), 1);
    assert!(segments(&dir).iter().all(|(h, _)| h.version == 1));
    // An expired key alone is pruned at the checkpoint: back to version 1.
    let d = dir.clone();
    run(move || async move {
        let p = Partition::open(&d, Options::default()).await.unwrap();
        p.remember("u", 10, &[(b"k", 11)]).await.unwrap();
        p.remember("v", 20, &[(b"k", 30)]).await.unwrap();
        p.checkpoint().await.unwrap();
        assert_eq!(version_of_checkpoint(&d), checkpoint::VERSION_SIEVE);
        p.remember("v", 40, &[(b"k", 0)]).await.unwrap();
        p.close().await.unwrap();
    });
    assert_eq!(version_of_checkpoint(&dir), 1);
}

/// What an older ringmail wrote: the version-1 image of a mail-only index.
fn v1_image(index: &Index, pos: Loc) -> Vec<u8> {
    let body = rkyv::to_bytes::<rkyv::rancor::Error>(index).unwrap();
    let mut out = b"RMAILCKP".to_vec();
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&pos.segment.to_le_bytes());
    out.extend_from_slice(&pos.offset.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    let hcrc = crc32c::crc32c(&out);
    out.extend_from_slice(&hcrc.to_le_bytes());
    out.extend_from_slice(&body);
    out
}

#[test]
fn version_1_checkpoints_load_and_forged_version_2_bodies_are_refused() {
    let (_tmp, dir) = tmp_partition();
    let d = dir.clone();
    run(move || async move {
        let p = Partition::open(&d, Options::default()).await.unwrap();
        p.ensure_user("u").await.unwrap();
        append_n(&p, "INBOX", 3).await;
        p.put_script("u", "a", "keep;").await.unwrap();
        p.close().await.unwrap();
    });
    let newest = checkpoint::list(&dir).unwrap()[0];
    let image = std::fs::read(checkpoint::path(&dir, newest)).unwrap();
    let (mut index, pos) = checkpoint::decode(&image).unwrap();
    assert_eq!(index.sieve.user("u").unwrap().scripts.len(), 1);

    // The mail-only part in the layout of an older ringmail loads, without Sieve state and
    // without header-search values (recovery rebuilds those).
    index.sieve = Default::default();
    for mb in index.users.get_mut("u").unwrap().mailboxes.values_mut() {
        mb.fields = SearchFields::default();
    }
    let old = v1_image(&index, pos);
    assert_eq!(
        checkpoint::encode(&index, pos).unwrap(),
        old,
        "v1 layout changed"
    );
    let (loaded, at) = checkpoint::decode(&old).unwrap();
    assert_eq!(at, pos);
    assert!(loaded.sieve.is_empty());
    assert_eq!(loaded.users["u"].mailboxes.len(), 1);
    assert!(loaded.users["u"]
        .mailboxes
        .values()
        .all(|mb| !mb.fields.is_complete()));

    // Version 2 with a mail length past the body, checksums made to match.
    let mut forged = image.clone();
    let body_len = forged.len() - checkpoint::HEADER;
    for bad in [u64::MAX, body_len as u64] {
        forged[checkpoint::HEADER..checkpoint::HEADER + 8].copy_from_slice(&bad.to_le_bytes());
        let crc = crc32c::crc32c(&forged[checkpoint::HEADER..]);
        forged[32..36].copy_from_slice(&crc.to_le_bytes());
        let hcrc = crc32c::crc32c(&forged[..36]);
        forged[36..40].copy_from_slice(&hcrc.to_le_bytes());
        assert!(checkpoint::decode(&forged).is_err(), "mail length {bad}");
    }
    // A truncated version-2 body fails its checks too.
    assert!(checkpoint::decode(&image[..image.len() - 1]).is_err());
}

/// Appends a checksummed frame of `kind` (built by `fill`) to the active segment.
fn append_frame(dir: &Path, k: u8, fill: impl FnOnce(&mut FrameWriter<'_>)) -> u64 {
    use std::io::Write;
    let last = *list_segments(dir).unwrap().last().unwrap();
    let path = segment_path(dir, last);
    let at = std::fs::metadata(&path).unwrap().len();
    let mut buf = Vec::new();
    let mut w = FrameWriter::new(&mut buf, k);
    fill(&mut w);
    w.finish();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    f.write_all(&buf).unwrap();
    at
}

#[test]
fn check_refuses_malformed_sieve_records_and_inconsistent_state() {
    let (_tmp, dir) = tmp_partition();
    let d = dir.clone();
    run(move || async move {
        let p = Partition::open(&d, Options::default()).await.unwrap();
        p.put_script("u", "a", "keep;").await.unwrap();
        p.activate_script("u", Some("a")).await.unwrap();
        p.remember("u", 5, &[(b"k", 9)]).await.unwrap();
        p.close().await.unwrap();
    });
    assert!(check(&dir, false).unwrap().is_clean());

    // A checksummed record whose script length goes past the limit.
    let at = append_frame(&dir, kind::PUT_SCRIPT, |w| {
        w.str("u")
            .str("b")
            .u32(MAX_SCRIPT_SIZE as u32 + 1)
            .bytes(b"keep;");
    });
    let report = check(&dir, false).unwrap();
    let damage = report.partitions[0]
        .segments
        .iter()
        .find_map(|s| s.damage.clone())
        .expect("no damage reported");
    assert_eq!(damage.offset, at);
    assert!(damage.reason.contains("script length"), "{}", damage.reason);
    // Repair cuts it off; the scripts before it are intact.
    assert!(check(&dir, true).unwrap().partitions[0].repairs.len() == 1);
    assert!(check(&dir, false).unwrap().is_clean());

    // A checkpoint whose Sieve state breaks the rules (rkyv checks only its shape).
    let newest = checkpoint::list(&dir).unwrap()[0];
    let image = std::fs::read(checkpoint::path(&dir, newest)).unwrap();
    let (mut index, pos) = checkpoint::decode(&image).unwrap();
    let u = index.sieve.users.get_mut("u").unwrap();
    u.scripts.clear();
    std::fs::write(
        checkpoint::path(&dir, newest + 1),
        checkpoint::encode(&index, pos).unwrap(),
    )
    .unwrap();
    let report = check(&dir, false).unwrap();
    let problems = &report.partitions[0].index_problems;
    assert!(
        problems
            .iter()
            .any(|p| p.contains("active script \"a\" does not exist")),
        "{problems:?}"
    );
    assert!(!report.is_clean());
    let d = dir.clone();
    run(move || async move {
        // A partition still opens; delivery finds no active script rather than a wrong one.
        let p = Partition::open(&d, Options::default()).await.unwrap();
        assert_eq!(p.active_script("u").unwrap(), None);
        p.close().await.unwrap();
    });
}

fn log_entry(line: u32, script: &str, message: &str) -> SieveLogEntry {
    SieveLogEntry {
        time: 1_700_000_000 + i64::from(line),
        script: script.into(),
        line,
        message: message.into(),
    }
}

/// The Sieve error log: bounded, cleared by an activation or by replacing the active
/// script (not by other script changes), in format-4 segments and version-3 checkpoints,
/// and the same after replay and after a checkpoint.
#[test]
fn the_sieve_log_is_bounded_cleared_by_activation_and_durable() {
    let (_tmp, dir) = tmp_partition();
    let d = dir.clone();
    let before = run(move || async move {
        let p = Partition::open(&d, Options::default()).await.unwrap();
        assert!(p.sieve_log("u").is_empty());
        p.put_script("u", "a", "keep;").await.unwrap();
        p.put_script("u", "b", "keep;").await.unwrap();
        p.activate_script("u", Some("a")).await.unwrap();
        p.log_sieve_error("u", log_entry(1, "a", "first"))
            .await
            .unwrap();
        // Another script's changes and deactivating keep the log.
        p.put_script("u", "b", "discard;").await.unwrap();
        p.rename_script("u", "b", "c").await.unwrap();
        assert_eq!(p.sieve_log("u"), vec![log_entry(1, "a", "first")]);
        // Replacing the active script clears it; so does activating one.
        p.put_script("u", "a", "keep;").await.unwrap();
        assert!(p.sieve_log("u").is_empty());
        p.log_sieve_error("u", log_entry(2, "a", "second"))
            .await
            .unwrap();
        p.activate_script("u", Some("c")).await.unwrap();
        assert!(p.sieve_log("u").is_empty());
        // The bound: the last MAX_LOG_ENTRIES stay, and a long reason is cut.
        for line in 0..MAX_LOG_ENTRIES as u32 + 3 {
            p.log_sieve_error("u", log_entry(line, "c", "loop"))
                .await
                .unwrap();
        }
        let long = "é".repeat(1000);
        p.log_sieve_error("u", log_entry(99, "c", &long))
            .await
            .unwrap();
        let log = p.sieve_log("u");
        assert_eq!(log.len(), MAX_LOG_ENTRIES);
        assert_eq!(log[0].line, 4);
        assert_eq!(log.last().unwrap().message.len(), 1024);
        let e = p
            .log_sieve_error("u", log_entry(1, "", "x"))
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::InvalidName), "{e:?}");
        assert!(p.sieve_log("w").is_empty(), "users are apart");
        let dump = sieve_dump(&p, "u", &[], 0);
        p.crash().await; // crash: the log comes back by replay
        dump
    });
    let segs = segments(&dir);
    for (h, kinds) in &segs {
        if kinds.contains(&kind::SIEVE_LOG) {
            assert_eq!(h.version, 4, "segment {} {kinds:?}", h.id);
        }
    }
    let d = dir.clone();
    let replayed = run(move || async move {
        let p = Partition::open(&d, Options::default()).await.unwrap();
        let dump = sieve_dump(&p, "u", &[], 0);
        p.close().await.unwrap();
        dump
    });
    assert_eq!(replayed, before);
    assert_eq!(version_of_checkpoint(&dir), checkpoint::VERSION_LOGS);
    let d = dir.clone();
    run(move || async move {
        let p = Partition::open(&d, Options::default()).await.unwrap();
        assert_eq!(sieve_dump(&p, "u", &[], 0), before, "from the checkpoint");
        // An activation empties the log: the checkpoint goes back to version 2.
        p.activate_script("u", Some("a")).await.unwrap();
        p.close().await.unwrap();
    });
    assert_eq!(version_of_checkpoint(&dir), checkpoint::VERSION_SIEVE);
    assert!(check(&dir, false).unwrap().is_clean());
}
