//! The owner's shipper and the replica's request handler in one process, over a transport
//! that calls the handler directly (the wire encoding included) and a map held in memory in
//! place of etcd: seeding, in-sync, streaming, catch-up of checkpoints, a replica that fails
//! (dropped from in-sync before the write is acknowledged, re-seeded when it is back), an
//! owner that cannot drop it (the write fails), and the replica's checks of owner and epoch.

use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use ringmail_store::{NewMessage, Options, Partition, ReplicaLog};

use super::*;

/// The map's entry for partition 0.
struct MapEntry {
    owner: String,
    epoch: u64,
    replicas: Vec<String>,
    in_sync: Vec<String>,
    /// etcd unreachable or this owner fenced: set_in_sync fails.
    refuse_writes: bool,
}

/// One node's view of the shared entry.
struct View {
    node: String,
    map: Rc<RefCell<MapEntry>>,
}

impl ReplicaDirectory for View {
    fn node(&self) -> String {
        self.node.clone()
    }
    fn is_owner(&self, _p: u32) -> Option<u64> {
        let m = self.map.borrow();
        (m.owner == self.node).then_some(m.epoch)
    }
    fn replicas(&self, _p: u32) -> Vec<ReplicaInfo> {
        let m = self.map.borrow();
        m.replicas
            .iter()
            .map(|n| ReplicaInfo {
                node: n.clone(),
                internal: format!("{n}:1"),
                in_sync: m.in_sync.contains(n),
            })
            .collect()
    }
    fn replica_of(&self, _p: u32) -> Option<(String, u64)> {
        let m = self.map.borrow();
        m.replicas
            .contains(&self.node)
            .then(|| (m.owner.clone(), m.epoch))
    }
    fn set_in_sync(&self, _p: u32, node: &str, in_sync: bool, epoch: u64) -> InSyncFuture {
        let map = self.map.clone();
        let (me, node) = (self.node.clone(), node.to_string());
        Box::pin(async move {
            glommio::timer::sleep(Duration::from_millis(1)).await;
            let mut m = map.borrow_mut();
            if m.refuse_writes || m.owner != me || m.epoch != epoch {
                return Err("fenced".to_string());
            }
            m.in_sync.retain(|n| *n != node);
            if in_sync {
                m.in_sync.push(node);
            }
            Ok(())
        })
    }
}

/// Calls the replica's handler directly, unless the replica is "down".
struct Direct {
    replica: Rc<View>,
    root: PathBuf,
    down: Cell<bool>,
    /// Added to every batch's time on the replica (a slower disk or link than the owner's).
    slow: Cell<Duration>,
    /// The link's `max_frame`: a larger payload is refused, as the link refuses it.
    max_payload: Cell<usize>,
}

impl Transport for Direct {
    fn max_payload(&self) -> usize {
        self.max_payload.get()
    }

    fn call(&self, _node: &str, _addr: &str, kind: u16, payload: Vec<u8>) -> CallFuture {
        if self.down.get() {
            return Box::pin(async { Err("connection refused".to_string()) });
        }
        if payload.len() > self.max_payload.get() {
            return Box::pin(async { Err("payload over max_frame".to_string()) });
        }
        let (replica, root) = (self.replica.clone(), self.root.clone());
        let slow = if kind == KIND_BATCH {
            self.slow.get()
        } else {
            Duration::ZERO
        };
        Box::pin(async move {
            glommio::timer::sleep(slow).await;
            serve(&*replica, |p| Partitions::dir(&root, p), kind, payload).await
        })
    }
}

fn run<F, T>(f: impl FnOnce() -> F + Send + 'static) -> T
where
    F: Future<Output = T> + 'static,
    T: Send + 'static,
{
    glommio::LocalExecutorBuilder::default()
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

async fn until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
}

async fn append(p: &Partition, text: &str) -> Result<u32, StoreError> {
    let body = format!("Subject: {text}\r\n\r\n{text} {}", "z".repeat(200));
    let r = p
        .append("u", "INBOX", &[NewMessage::plain(body.as_bytes())])
        .await?;
    Ok(r.uids[0])
}

/// INBOX's UIDs with their bodies.
async fn inbox(p: &Partition) -> Vec<(u32, Vec<u8>)> {
    let uids: Vec<u32> = p
        .with_mailbox("u", "INBOX", |m| {
            m.messages().iter().map(|e| e.uid).collect()
        })
        .unwrap();
    let mut out = Vec::new();
    for uid in uids {
        let body = p.read_message("u", "INBOX", uid, None).await.unwrap();
        out.push((uid, body.to_vec()));
    }
    out
}

struct Setup {
    _tmp: tempfile::TempDir,
    map: Rc<RefCell<MapEntry>>,
    owner: Rc<Partition>,
    transport: Rc<Direct>,
    replica_root: PathBuf,
}

async fn setup(sync: bool) -> (Setup, Rc<Shipper<View, Direct>>) {
    let tmp = tempfile::tempdir().unwrap();
    let (a_root, b_root) = (tmp.path().join("a"), tmp.path().join("b"));
    let map = Rc::new(RefCell::new(MapEntry {
        owner: "a".into(),
        epoch: 3,
        replicas: vec!["b".into()],
        in_sync: Vec::new(),
        refuse_writes: false,
    }));
    let opts = Options {
        segment_size: 8192,
        ..Options::default()
    };
    let owner = Rc::new(
        Partition::open(Partitions::dir(&a_root, 0), opts)
            .await
            .unwrap(),
    );
    owner.ensure_user("u").await.unwrap();
    for i in 0..5 {
        append(&owner, &format!("before {i}")).await.unwrap();
    }
    let replica = Rc::new(View {
        node: "b".into(),
        map: map.clone(),
    });
    let transport = Rc::new(Direct {
        replica,
        root: b_root.clone(),
        down: Cell::new(false),
        slow: Cell::new(Duration::ZERO),
        max_payload: Cell::new(ringmail_peer::DEFAULT_MAX_FRAME),
    });
    let directory = Rc::new(View {
        node: "a".into(),
        map: map.clone(),
    });
    let shipper = Shipper::attach(0, &owner, directory, transport.clone(), sync);
    let s = Setup {
        _tmp: tmp,
        map,
        owner,
        transport,
        replica_root: b_root,
    };
    (s, shipper)
}

impl Setup {
    fn in_sync(&self) -> bool {
        self.map.borrow().in_sync.contains(&"b".to_string())
    }

    fn replica_end(&self) -> Option<LogEnd> {
        ReplicaLog::open(&Partitions::dir(&self.replica_root, 0))
            .unwrap()
            .position()
    }
}

#[test]
fn a_seeded_replica_gets_every_acknowledged_batch_and_opens_as_the_partition() {
    run(|| async {
        let (s, _shipper) = setup(true).await;
        until("the replica is in sync", || s.in_sync()).await;
        s.transport.slow.set(Duration::from_millis(20));
        let mut writers = Vec::new();
        for i in 0..30 {
            let owner = s.owner.clone();
            writers.push(glommio::spawn_local(async move {
                append(&owner, &format!("m{i}")).await.unwrap()
            }));
        }
        for w in writers {
            w.await;
        }
        // Every acknowledged batch is durable on the replica, which stayed in sync.
        assert_eq!(s.replica_end(), Some(s.owner.log_end()));
        assert!(s.in_sync(), "the replica was dropped");
        assert!(s.owner.log_end().segment > 1, "no rollover");
        // A checkpoint goes over in the background.
        s.owner.checkpoint().await.unwrap();
        let ckpt = s.replica_root.join("p-0000.replica");
        until("the checkpoint is copied", || {
            std::fs::read_dir(&ckpt)
                .unwrap()
                .any(|e| e.unwrap().file_name().to_string_lossy().ends_with(".ckpt"))
        })
        .await;
        let expected = inbox(&s.owner).await;
        assert_eq!(expected.len(), 35);

        // The map makes b the owner: its copy is promoted before it is opened (refused
        // while a request of the old owner's is still being written, then retried).
        {
            let mut m = s.map.borrow_mut();
            m.owner = "b".into();
            m.epoch += 1;
            m.replicas.clear();
            m.in_sync.clear();
        }
        let target = Partitions::dir(&s.replica_root, 0);
        until("the copy is promoted", || {
            promote_if_replica(0, &target).is_ok()
        })
        .await;
        let promoted = Partition::open(&target, Options::default()).await.unwrap();
        assert_eq!(inbox(&promoted).await, expected);
        assert!(COUNTERS.promotions.load(Ordering::Relaxed) >= 1);
    });
}

#[test]
fn a_failed_replica_is_dropped_from_in_sync_before_the_write_is_acknowledged() {
    run(|| async {
        let (s, _shipper) = setup(true).await;
        until("the replica is in sync", || s.in_sync()).await;
        append(&s.owner, "while in sync").await.unwrap();
        s.transport.down.set(true);
        let started = Instant::now();
        append(&s.owner, "replica down").await.unwrap();
        assert!(
            !s.in_sync(),
            "acknowledged while the map still lists the replica as in sync"
        );
        assert!(started.elapsed() < BATCH_TIMEOUT + Duration::from_secs(1));
        append(&s.owner, "without the replica").await.unwrap();
        // Back: re-seeded with what it missed, then in sync again.
        s.transport.down.set(false);
        until("the replica is back in sync", || s.in_sync()).await;
        append(&s.owner, "after").await.unwrap();
        assert_eq!(s.replica_end(), Some(s.owner.log_end()));
    });
}

#[test]
fn a_write_fails_when_a_failed_replica_cannot_be_dropped() {
    run(|| async {
        let (s, _shipper) = setup(true).await;
        until("the replica is in sync", || s.in_sync()).await;
        let before = inbox(&s.owner).await;
        s.transport.down.set(true);
        s.map.borrow_mut().refuse_writes = true;
        let r = append(&s.owner, "never acknowledged").await;
        assert!(r.is_err(), "{r:?}");
        assert!(s.in_sync());
        assert_eq!(inbox(&s.owner).await, before);
    });
}

#[test]
fn asynchronous_shipping_acknowledges_without_waiting() {
    run(|| async {
        let (s, _shipper) = setup(false).await;
        until("the replica is in sync", || s.in_sync()).await;
        s.transport.down.set(true);
        append(&s.owner, "replica down").await.unwrap();
        s.transport.down.set(false);
        until("the replica caught up", || {
            s.in_sync() && s.replica_end() == Some(s.owner.log_end())
        })
        .await;
    });
}

#[test]
fn a_batch_larger_than_a_link_frame_reaches_the_replica_in_pieces() {
    run(|| async {
        let (s, _shipper) = setup(true).await;
        until("the replica is in sync", || s.in_sync()).await;
        // A small frame, as if several large messages were committed together: a 1 MB
        // message goes as five pieces, each continuing the one before.
        s.transport
            .max_payload
            .set(shipper::REQUEST_ROOM + 200 * 1024);
        let body = format!("Subject: large\r\n\r\n{}", "L".repeat(1 << 20));
        s.owner
            .append("u", "INBOX", &[NewMessage::plain(body.as_bytes())])
            .await
            .unwrap();
        // Acknowledged with the replica still in sync: it was not dropped for a refused frame.
        assert!(s.in_sync());
        assert_eq!(s.replica_end(), Some(s.owner.log_end()));
    });
}

#[test]
fn batches_waiting_for_a_slow_replica_show_as_lag() {
    run(|| async {
        let (s, _shipper) = setup(false).await;
        until("the replica is in sync", || s.in_sync()).await;
        s.transport.slow.set(Duration::from_millis(400));
        for i in 0..3 {
            append(&s.owner, &format!("lagging {i}")).await.unwrap();
        }
        // Acknowledged at once (sync = false); the replica takes each batch in 400 ms, so
        // the later ones wait. The gauges are the process's: other tests can only add.
        glommio::timer::sleep(Duration::from_millis(150)).await;
        assert!(COUNTERS.lag_records.load(Ordering::Relaxed) >= 1);
        assert!(lag_seconds() >= 0.1, "{}", lag_seconds());
        s.transport.slow.set(Duration::ZERO);
        until("the replica caught up", || {
            s.replica_end() == Some(s.owner.log_end())
        })
        .await;
    });
}

#[test]
fn the_replica_takes_requests_only_from_the_owner_at_the_maps_epoch() {
    run(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let map = Rc::new(RefCell::new(MapEntry {
            owner: "a".into(),
            epoch: 3,
            replicas: vec!["b".into()],
            in_sync: Vec::new(),
            refuse_writes: false,
        }));
        let b = View {
            node: "b".into(),
            map: map.clone(),
        };
        let root = tmp.path().to_path_buf();
        let ask = |owner: &str, epoch: u64| {
            let payload = request(0, epoch, owner, 0);
            serve(&b, |p| Partitions::dir(&root, p), KIND_ATTACH, payload)
        };
        assert!(ask("a", 3).await.is_ok());
        assert!(ask("a", 4).await.is_ok());
        assert!(ask("a", 2).await.is_err(), "an older epoch was taken");
        assert!(
            ask("c", 3).await.is_err(),
            "a node that is not the owner was heard"
        );
        map.borrow_mut().replicas.clear();
        assert!(
            ask("a", 3).await.is_err(),
            "taken by a node that is no replica"
        );
        let malformed = serve(&b, |p| Partitions::dir(&root, p), KIND_BATCH, vec![0, 1]).await;
        assert!(malformed.is_err());
    });
}

#[test]
fn files_and_log_ends_survive_their_encoding() {
    let files = vec![
        ReplicaFile {
            name: "seg-00000001.log".into(),
            len: 1 << 33,
            crc: 7,
        },
        ReplicaFile {
            name: "index-00000002.ckpt".into(),
            len: 40,
            crc: u32::MAX,
        },
    ];
    let wire = encode_files(&files);
    assert_eq!(decode_files(&wire), Some(files));
    assert_eq!(decode_files(&wire[..wire.len() - 1]), None);
    for end in [
        None,
        Some(LogEnd {
            segment: 9,
            offset: 32,
        }),
    ] {
        assert_eq!(decode_end(&encode_end(end)), Some(end));
    }
    let c = Chunk::new("seg-00000003.log", 5, b"data");
    let mut wire = Vec::new();
    encode_chunk(&mut wire, &c);
    let back = decode_chunk(&wire).unwrap();
    assert_eq!(
        (back.name, back.offset, back.data, back.crc),
        (c.name, 5, &b"data"[..], c.crc)
    );
}

#[test]
fn retries_of_a_failing_replica_back_off_to_a_cap() {
    let delays: Vec<u64> = (1..=7).map(|n| retry_delay(n).as_secs()).collect();
    assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30]);
    assert_eq!(retry_delay(u32::MAX), RETRY_MAX);
}

#[test]
fn a_replica_whose_queue_overflowed_is_seeded_again_and_catches_up() {
    run(|| async {
        let (s, shipper) = setup(false).await;
        until("the replica is in sync", || s.in_sync()).await;
        s.transport.down.set(true);
        // More than the queue holds, written while the replica is unreachable.
        let body = vec![b'q'; 1 << 20];
        for _ in 0..(QUEUE_LIMIT >> 20) + 8 {
            let m = [NewMessage::plain(&body)];
            s.owner.append("u", "INBOX", &m).await.unwrap();
        }
        let peer = shipper.peers.borrow().get("b").cloned().unwrap();
        assert!(peer.overflowed.get() && peer.queued.get() <= QUEUE_LIMIT);
        s.transport.down.set(false);
        until("the replica caught up", || {
            s.in_sync() && s.replica_end() == Some(s.owner.log_end())
        })
        .await;
    });
}

#[test]
fn a_stale_copy_is_removed_only_when_free_and_still_unlisted() {
    assert_eq!(stale::copy_partition("p-0007.replica"), Some(7));
    assert_eq!(stale::copy_partition("p-65535.replica"), Some(65535));
    for other in ["p-0007", "p-7.replica", "p-00x7.replica", "q-0007.replica"] {
        assert_eq!(stale::copy_partition(other), None, "{other}");
    }
    let dir = tempfile::tempdir().unwrap();
    let target = Partitions::dir(dir.path(), 7);
    let copy = ReplicaLog::dir_for(&target);
    let removed = run({
        let target = target.clone();
        move || async move {
            std::fs::create_dir_all(target.with_file_name("p-0007.replica")).unwrap();
            std::fs::write(target.with_file_name("p-0007.replica/seg"), b"x").unwrap();
            // Listed again meanwhile: kept.
            let kept = replica::remove_stale_copy(&target, || false).await.unwrap();
            // While a replication request holds the copy: kept, and tried again later.
            let busy = replica::Busy::take(&target).unwrap();
            let while_busy = replica::remove_stale_copy(&target, || true).await.unwrap();
            drop(busy);
            let removed = replica::remove_stale_copy(&target, || true).await.unwrap();
            (kept, while_busy, removed)
        }
    });
    assert_eq!(removed, (false, false, true));
    assert!(!copy.exists());
    // A copy already gone is no error.
    let again = run(move || async move { replica::remove_stale_copy(&target, || true).await });
    assert!(again.unwrap());
}

#[test]
fn an_old_owners_directory_becomes_a_replica_copy_only_when_safe() {
    // With replicas = 0 or sync = false the new owner may lack what the old copy
    // acknowledged: the directory stays for the operator.
    assert!(old_owner::must_stay(0, true).is_some());
    assert!(old_owner::must_stay(1, false).is_some());
    assert_eq!(old_owner::must_stay(1, true), None);
    let dir = tempfile::tempdir().unwrap();
    let target = Partitions::dir(dir.path(), 3);
    let (end_before, adopted, refused, busy, expected) = run({
        let target = target.clone();
        move || async move {
            // The old owner's partition, written and closed (as a kill leaves it, less the
            // torn tail recovery would cut).
            let p = Partition::open(&target, Options::default()).await.unwrap();
            p.ensure_user("u").await.unwrap();
            append(&p, "acknowledged before the failover")
                .await
                .unwrap();
            append(&p, "another").await.unwrap();
            let expected = inbox(&p).await;
            let end_before = p.log_end();
            p.close().await.unwrap();
            // The map gave the partition back meanwhile: nothing happens.
            let refused = old_owner::adopt_dir(&target, || false).await.unwrap();
            // A replication request holds the copy: tried again later.
            let hold = replica::Busy::take(&target).unwrap();
            let busy = old_owner::adopt_dir(&target, || true).await.unwrap();
            drop(hold);
            let adopted = old_owner::adopt_dir(&target, || true).await.unwrap();
            (end_before, adopted, refused, busy, expected)
        }
    });
    assert_eq!((refused, busy), (None, None));
    // Renamed, not copied or cut: the copy ends where the partition did, and the
    // directory that could be opened as the partition is gone.
    let end = adopted.expect("adopted").expect("a log end");
    assert_eq!(
        (end.segment, end.offset),
        (end_before.segment, end_before.offset)
    );
    assert!(!target.exists());
    assert!(ReplicaLog::dir_for(&target).is_dir());
    // Promoted later (the map makes this node the owner again), it is the same partition.
    let again = run({
        let target = target.clone();
        move || async move {
            promote_if_replica(3, &target).unwrap();
            let p = Partition::open(&target, Options::default()).await.unwrap();
            inbox(&p).await
        }
    });
    assert_eq!(again, expected);
    // A replica copy beside an old owner's directory: neither is touched.
    std::fs::create_dir_all(ReplicaLog::dir_for(&target)).unwrap();
    let both = run({
        let target = target.clone();
        move || async move { old_owner::adopt_dir(&target, || true).await }
    });
    assert!(both.is_err(), "{both:?}");
    assert!(target.is_dir());
}

#[test]
fn an_old_owners_directory_that_may_hold_acknowledged_mail_is_set_aside() {
    assert_eq!(old_owner::aside_partition("p-0003.old-owner-7"), Some(3));
    for other in [
        "p-0003",
        "p-0003.replica",
        "p-0003.old-owner-",
        "p-0003.old-owner-x",
    ] {
        assert_eq!(old_owner::aside_partition(other), None, "{other}");
    }
    let dir = tempfile::tempdir().unwrap();
    let target = Partitions::dir(dir.path(), 3);
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("seg"), b"acknowledged?").unwrap();
    let (kept, aside, again) = run({
        let target = target.clone();
        move || async move {
            let kept = old_owner::set_aside(&target, 7, || false).await.unwrap();
            let aside = old_owner::set_aside(&target, 7, || true).await.unwrap();
            // Another failover of the same epoch cannot happen; a second copy is refused.
            std::fs::create_dir_all(&target).unwrap();
            let again = old_owner::set_aside(&target, 7, || true).await;
            (kept, aside, again.is_err())
        }
    });
    assert_eq!(kept, None);
    let aside = aside.expect("set aside");
    assert_eq!(aside, dir.path().join("p-0003.old-owner-7"));
    // Moved as it was, byte for byte, and out of the way of a partition directory.
    assert_eq!(std::fs::read(aside.join("seg")).unwrap(), b"acknowledged?");
    assert!(again);
}
