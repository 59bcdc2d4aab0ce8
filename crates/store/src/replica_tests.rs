//! Replicas in one process: an owner partition whose sink feeds a [`ReplicaLog`], then the
//! replica promoted and opened as the partition, compared with the owner message by
//! message; a torn last batch; an old owner's diverged tail replaced by re-seeding.

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::incoming::{Chunk, MAX_CHUNK};
use super::replica::{seed_plan, Batch, FileChange, ReplicaLog, ShipBatch, Shipped};
use super::test_support::run;
use super::{flag, FlagMode, NewMessage, Options, Partition, StoreError};

/// Feeds every batch straight into a replica; file changes wait for [`LocalSink::catch_up`].
struct LocalSink {
    replica: Rc<RefCell<ReplicaLog>>,
    changes: RefCell<Vec<FileChange>>,
    owner_dir: PathBuf,
    batches: Cell<usize>,
    /// Compacted segments copied.
    compacted: Cell<usize>,
}

impl ShipBatch for LocalSink {
    fn ship(&self, batch: Batch) -> Shipped {
        self.batches.set(self.batches.get() + 1);
        let replica = self.replica.clone();
        // One batch at a time per partition and catch-up only between writes in these
        // tests: the borrow is never contended.
        #[allow(clippy::await_holding_refcell_ref)]
        Box::pin(async move { replica.borrow_mut().apply(&batch).await.map(|_| ()) })
    }

    fn files_changed(&self, change: FileChange) {
        self.changes.borrow_mut().push(change);
    }
}

impl LocalSink {
    /// Copies the files the owner reported, in order, as the real sink's catch-up does.
    fn catch_up(&self) {
        let mut r = self.replica.borrow_mut();
        for change in self.changes.borrow_mut().drain(..) {
            for f in &change.added {
                // A checkpoint may be gone again already (two newer ones replaced it).
                if let Ok(bytes) = std::fs::read(self.owner_dir.join(&f.name)) {
                    send(&mut r, &f.name, &bytes[..f.len as usize], 0);
                    if f.name.starts_with("seg-") {
                        self.compacted.set(self.compacted.get() + 1);
                    }
                }
            }
            r.remove(&change.removed).unwrap();
        }
    }
}

fn send(r: &mut ReplicaLog, name: &str, bytes: &[u8], from: usize) {
    let mut at = from;
    loop {
        let end = (at + MAX_CHUNK).min(bytes.len());
        r.write_chunk(&Chunk::new(name, at as u64, &bytes[at..end]))
            .unwrap();
        at = end;
        if at >= bytes.len() {
            return;
        }
    }
}

/// One seeding round, as the owner's side runs it: what the replica lacks, then the
/// owner's final list.
fn seed(owner: &Partition, r: &mut ReplicaLog) {
    let snap = owner.snapshot().unwrap();
    let plan = seed_plan(owner.dir(), &snap, &r.files().unwrap()).unwrap();
    for f in &plan {
        let bytes = std::fs::read(owner.dir().join(&f.name)).unwrap();
        send(r, &f.name, &bytes[..f.len as usize], f.from as usize);
    }
    let names: Vec<&str> = snap.files.iter().map(|f| f.name.as_str()).collect();
    r.keep_only(&names).unwrap();
    assert_eq!(r.position(), Some(owner.log_end()));
}

fn attach(owner: &Partition, replica: &Rc<RefCell<ReplicaLog>>) -> Rc<LocalSink> {
    seed(owner, &mut replica.borrow_mut());
    let sink = Rc::new(LocalSink {
        replica: replica.clone(),
        changes: RefCell::default(),
        owner_dir: owner.dir().to_path_buf(),
        batches: Cell::new(0),
        compacted: Cell::new(0),
    });
    owner.set_replication(Some(sink.clone()));
    sink
}

/// Everything a client could see: per user and mailbox, its identity and counters and
/// every message with its flags, keywords and bytes.
async fn state(p: &Partition) -> Vec<String> {
    let mut out = Vec::new();
    for user in ["u", "w"] {
        let mut boxes = p.list_mailboxes(user);
        boxes.sort_by(|a, b| a.name.cmp(&b.name));
        for b in boxes {
            let (head, msgs) = p
                .with_mailbox(user, b.id, |m| {
                    let head = format!(
                        "{user} {} id={} uv={} next={} hms={} sub={}",
                        m.name(),
                        m.id(),
                        m.uidvalidity(),
                        m.uidnext(),
                        m.highest_modseq(),
                        b.subscribed
                    );
                    let msgs: Vec<(u32, String)> = m
                        .messages()
                        .iter()
                        .map(|e| {
                            (
                                e.uid,
                                format!(
                                    "uid={} flags={} kw={:?} ms={} size={}",
                                    e.uid,
                                    e.flags,
                                    m.keywords(e),
                                    e.modseq,
                                    e.size
                                ),
                            )
                        })
                        .collect();
                    (head, msgs)
                })
                .unwrap();
            out.push(head);
            for (uid, line) in msgs {
                let body = p.read_message(user, b.id, uid, None).await.unwrap();
                out.push(format!("{line} body={}", String::from_utf8_lossy(&body)));
            }
        }
    }
    out
}

async fn append(p: &Partition, user: &str, mailbox: &str, text: &str) -> Result<u32, StoreError> {
    let body = format!("Subject: {text}\r\n\r\n{text} {}", "y".repeat(300));
    let r = p
        .append(user, mailbox, &[NewMessage::plain(body.as_bytes())])
        .await?;
    Ok(r.uids[0])
}

fn small() -> Options {
    Options {
        segment_size: 4096,
        checkpoint_every: 25,
        compact_dead_share: 0.3,
        ..Options::default()
    }
}

/// The owner's files and the replica's, byte for byte.
fn assert_same_files(owner: &Partition, replica: &Path) {
    for f in owner.snapshot().unwrap().files {
        let a = std::fs::read(owner.dir().join(&f.name)).unwrap();
        let b = std::fs::read(replica.join(&f.name)).unwrap();
        assert!(a[..f.len as usize] == b[..], "{} differs", f.name);
    }
}

#[test]
fn a_promoted_replica_holds_every_acknowledged_change() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, target) = (tmp.path().join("a/p-0000"), tmp.path().join("b/p-0000"));
    run(move || async move {
        let owner = Partition::open(&dir, small()).await.unwrap();
        owner.ensure_user("u").await.unwrap();
        for i in 0..5 {
            append(&owner, "u", "INBOX", &format!("before {i}"))
                .await
                .unwrap();
        }
        let replica = Rc::new(RefCell::new(ReplicaLog::open(&target).unwrap()));
        let sink = attach(&owner, &replica);

        owner.ensure_user("w").await.unwrap();
        owner.create_mailbox("u", "Archive", 0).await.unwrap();
        // Several writers in one tick share a batch; small segments roll over often.
        let mut writers = Vec::new();
        for i in 0..40 {
            let owner = &owner;
            writers.push(async move {
                let user = if i % 3 == 0 { "w" } else { "u" };
                append(owner, user, "INBOX", &format!("m{i}"))
                    .await
                    .unwrap()
            });
        }
        for w in writers {
            w.await;
        }
        owner
            .store_flags(
                "u",
                "INBOX",
                &[(1, 10)],
                FlagMode::Add,
                flag::SEEN,
                &["$label"],
                None,
            )
            .await
            .unwrap();
        owner
            .store_flags(
                "u",
                "INBOX",
                &[(2, 8)],
                FlagMode::Add,
                flag::DELETED,
                &[],
                None,
            )
            .await
            .unwrap();
        owner.expunge_deleted("u", "INBOX").await.unwrap();
        owner
            .copy("u", "INBOX", &[(9, 12)], "Archive")
            .await
            .unwrap();
        owner
            .move_messages("u", "INBOX", &[(13, 14)], "Archive")
            .await
            .unwrap();
        owner.rename_mailbox("u", "Archive", "Old").await.unwrap();
        // A checkpoint and a compaction of the segments the expunge emptied, reported to
        // the sink as file changes.
        owner.compact().await.unwrap();
        for i in 0..10 {
            append(&owner, "u", "Old", &format!("after {i}"))
                .await
                .unwrap();
        }
        owner.flush().await;
        sink.catch_up();
        assert!(sink.batches.get() > 10, "{} batches", sink.batches.get());
        assert!(sink.compacted.get() > 0, "nothing was compacted");
        assert!(
            owner.log_end().segment > 3,
            "no rollover: {:?}",
            owner.log_end()
        );
        assert_eq!(replica.borrow().position(), Some(owner.log_end()));
        assert_same_files(&owner, replica.borrow().dir());

        let expected = state(&owner).await;
        owner.set_replication(None);
        drop(sink);
        let replica = Rc::try_unwrap(replica).ok().unwrap().into_inner();
        let promoted = Partition::open(replica.promote().unwrap(), small())
            .await
            .unwrap();
        assert_eq!(state(&promoted).await, expected);
        assert!(expected.len() > 50, "{expected:?}");
        // It serves at once, continuing the owner's UIDs.
        let next = append(&promoted, "u", "INBOX", "new owner").await.unwrap();
        assert_eq!(next, owner.status("u", "INBOX").unwrap().uidnext);
    });
}

#[test]
fn a_torn_last_batch_on_the_replica_is_dropped_at_promotion() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, target) = (tmp.path().join("a/p-0000"), tmp.path().join("b/p-0000"));
    run(move || async move {
        let owner = Partition::open(&dir, Options::default()).await.unwrap();
        owner.ensure_user("u").await.unwrap();
        let replica = Rc::new(RefCell::new(ReplicaLog::open(&target).unwrap()));
        let sink = attach(&owner, &replica);
        for i in 0..5 {
            append(&owner, "u", "INBOX", &format!("m{i}"))
                .await
                .unwrap();
        }
        let expected = state(&owner).await;
        owner.set_replication(None);
        drop(sink);
        // The next batch reached the replica only in part when it stopped.
        let end = owner.log_end();
        append(&owner, "u", "INBOX", "torn").await.unwrap();
        let seg = owner.dir().join(format!("seg-{:08}.log", end.segment));
        let whole = std::fs::read(&seg).unwrap();
        let rseg = replica
            .borrow()
            .dir()
            .join(format!("seg-{:08}.log", end.segment));
        let mut torn = std::fs::read(&rseg).unwrap();
        let half = (whole.len() - torn.len()) / 2;
        torn.extend_from_slice(&whole[end.offset as usize..end.offset as usize + half]);
        std::fs::write(&rseg, &torn).unwrap();

        let replica = Rc::try_unwrap(replica).ok().unwrap().into_inner();
        let promoted = Partition::open(replica.promote().unwrap(), Options::default())
            .await
            .unwrap();
        assert_eq!(state(&promoted).await, expected);
        assert_eq!(promoted.log_end(), end, "the torn batch was not cut off");
    });
}

#[test]
fn batches_that_do_not_continue_the_copy_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, target) = (tmp.path().join("a/p-0000"), tmp.path().join("b/p-0000"));
    run(move || async move {
        let owner = Partition::open(&dir, Options::default()).await.unwrap();
        owner.ensure_user("u").await.unwrap();
        let mut r = ReplicaLog::open(&target).unwrap();
        let end = owner.log_end();
        let batch = |prev, at| Batch {
            prev,
            at,
            format: 1,
            bytes: Rc::new(b"records".to_vec()),
        };
        let not_seeded = r.apply(&batch(end, end)).await;
        assert!(matches!(not_seeded, Err(StoreError::NotPermitted(_))));
        seed(&owner, &mut r);
        let mut gap = end;
        gap.offset += 1;
        let mut next_seg = end;
        next_seg.segment += 1;
        for (prev, at) in [(gap, gap), (end, gap), (end, next_seg)] {
            let refused = r.apply(&batch(prev, at)).await;
            assert!(
                matches!(refused, Err(StoreError::NotPermitted(_))),
                "{refused:?}"
            );
        }
        assert_eq!(r.position(), Some(end), "a refused batch changed the copy");
        let mut wire = Vec::new();
        batch(end, end).encode(&mut wire);
        let mut bad = wire.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(Batch::decode(&bad).is_err(), "a damaged batch was taken");
        let got = Batch::decode(&wire).unwrap();
        assert_eq!(r.apply(&got).await.unwrap().offset, end.offset + 7);
    });
}

#[test]
fn an_old_owners_diverged_tail_is_replaced_by_seeding() {
    let tmp = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (tmp.path().join("a/p-0000"), tmp.path().join("b/p-0000"));
    run(move || async move {
        let a = Partition::open(&a_dir, small()).await.unwrap();
        a.ensure_user("u").await.unwrap();
        let b_copy = Rc::new(RefCell::new(ReplicaLog::open(&b_dir).unwrap()));
        let sink = attach(&a, &b_copy);
        for i in 0..8 {
            append(&a, "u", "INBOX", &format!("acked {i}"))
                .await
                .unwrap();
        }
        // Written on A, never shipped, never acknowledged: A lost its lease here.
        a.set_replication(None);
        drop(sink);
        for i in 0..12 {
            let _ = append(&a, "u", "INBOX", &format!("lost {i}")).await;
        }
        a.close().await.unwrap();

        // B is promoted and writes records of the same sizes where A's lost ones are.
        let b_copy = Rc::try_unwrap(b_copy).ok().unwrap().into_inner();
        let b = Partition::open(b_copy.promote().unwrap(), small())
            .await
            .unwrap();
        for i in 0..3 {
            append(&b, "u", "INBOX", &format!("newer {i}"))
                .await
                .unwrap();
        }
        b.checkpoint().await.unwrap();

        // A comes back as B's replica.
        let mut a_copy = ReplicaLog::rejoin(&a_dir).unwrap();
        assert!(!a_dir.exists());
        seed(&b, &mut a_copy);
        assert_same_files(&b, a_copy.dir());
        let expected = state(&b).await;
        assert!(expected.iter().all(|l| !l.contains("lost")));
        let a = Partition::open(a_copy.promote().unwrap(), small())
            .await
            .unwrap();
        assert_eq!(state(&a).await, expected);
    });
}

/// A sink that fails every batch: a replica that could not be dropped from the in-sync set.
struct FailingSink;

impl ShipBatch for FailingSink {
    fn ship(&self, _batch: Batch) -> Shipped {
        Box::pin(async { Err(StoreError::NotPermitted("replica unreachable and fenced")) })
    }
    fn files_changed(&self, _change: FileChange) {}
}

#[test]
fn a_batch_the_sink_fails_is_not_acknowledged_and_not_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p-0000");
    run(move || async move {
        let owner = Partition::open(&dir, Options::default()).await.unwrap();
        owner.ensure_user("u").await.unwrap();
        append(&owner, "u", "INBOX", "kept").await.unwrap();
        let end = owner.log_end();
        owner.set_replication(Some(Rc::new(FailingSink)));
        let failed = append(&owner, "u", "INBOX", "refused").await;
        assert!(failed.is_err(), "{failed:?}");
        assert_eq!(owner.status("u", "INBOX").unwrap().messages, 1);
        assert_eq!(owner.log_end(), end);
        owner.set_replication(None);
        owner.close().await.unwrap();
        let reopened = Partition::open(&dir, Options::default()).await.unwrap();
        assert_eq!(reopened.status("u", "INBOX").unwrap().messages, 1);
        // UID 2 was never given to a client: the log does not hold it.
        assert_eq!(append(&reopened, "u", "INBOX", "later").await.unwrap(), 2);
    });
}

/// Counts the records of every batch shipped to it.
#[derive(Default)]
struct CountingSink {
    records: Cell<usize>,
    batches: Cell<usize>,
}

impl ShipBatch for CountingSink {
    fn ship(&self, batch: Batch) -> Shipped {
        self.records.set(self.records.get() + batch.records());
        self.batches.set(self.batches.get() + 1);
        Box::pin(async { Ok(()) })
    }
    fn files_changed(&self, _change: FileChange) {}
}

#[test]
fn a_batch_counts_the_records_the_log_counts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p-0000");
    run(move || async move {
        let owner = Partition::open(&dir, Options::default()).await.unwrap();
        let sink = Rc::new(CountingSink::default());
        owner.set_replication(Some(sink.clone()));
        let before = owner.stats();
        owner.ensure_user("u").await.unwrap();
        for i in 0..5 {
            append(&owner, "u", "INBOX", &format!("message {i}"))
                .await
                .unwrap();
        }
        let bodies: Vec<Vec<u8>> = (0..3)
            .map(|i| format!("batched {i}").into_bytes())
            .collect();
        let batch: Vec<NewMessage<'_>> = bodies.iter().map(|b| NewMessage::plain(b)).collect();
        owner.append("u", "INBOX", &batch).await.unwrap();
        let after = owner.stats();
        assert!(sink.records.get() >= 9, "{}", sink.records.get());
        assert_eq!(sink.records.get() as u64, after.appends - before.appends);
        assert_eq!(sink.batches.get() as u64, after.batches - before.batches);
        owner.set_replication(None);
        owner.close().await.unwrap();
    });
}
