//! Replicas of partitions (docs/cluster.md, "Replicas"): the owner ships every group-commit
//! batch of a partition to the nodes the map names as its replicas, and a replica node keeps
//! a byte-identical copy (`ringmail_store::ReplicaLog`) that becomes the partition when the
//! balancer promotes it.
//!
//! - **Owner side** ([`Shipper`], one per open partition, installed as the partition's
//!   `ShipBatch` sink when it is opened): per replica an ordered queue drained by one task,
//!   which seeds the replica (copy rounds of what it lacks, as a move does), then sends the
//!   queued batches in order, one in flight (the group commit already batches), and once it
//!   has caught up adds the replica to `in_sync`. With `sync = true` a batch is acknowledged
//!   only when every replica being streamed to has it durable; a replica that fails or does
//!   not answer within [`BATCH_TIMEOUT`] is removed from `in_sync` in etcd first, then the
//!   batch is acknowledged. A replica the map lists as in-sync but that is not being
//!   streamed to (after a restart of the owner) is removed first too.
//! - **Replica side** ([`serve`]): RPC kinds [`KIND_ATTACH`]..=[`KIND_REMOVE`], refused
//!   unless the map says this node holds a replica of the partition, the sender is its
//!   owner and the epoch is not older than the map's.
//!
//! The map's replica fields and the in-sync transaction are the control plane's
//! (crates/cluster); this module reaches them through [`ReplicaDirectory`].

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::rc::Rc;
use std::rc::Weak;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_channel::{mpsc, oneshot};
use futures_lite::{future, StreamExt};
use ringmail_cluster::ClusterView;
use ringmail_peer::{Request, Response};
use ringmail_runtime::nodes::LocalResponse;
use ringmail_runtime::partition::executor_of;
use ringmail_runtime::partitions::{OpenHooks, Partitions};
use ringmail_runtime::runtime::{Executor, LocalTask};
use ringmail_store::{
    seed_plan, Batch, Chunk, FileChange, LogEnd, Partition, ReplicaFile, ReplicaLog, ShipBatch,
    Shipped, StoreError, MAX_CHUNK,
};
use tracing::{info, warn};

/// RPC kind: start (or restart) a replica copy; answers the files it holds.
pub const KIND_ATTACH: u16 = 0x0401;
/// RPC kind: one chunk of a seeding or catch-up round.
pub const KIND_CHUNK: u16 = 0x0402;
/// RPC kind: the seeding round's complete file list; answers the copy's log end.
pub const KIND_KEEP: u16 = 0x0403;
/// RPC kind: one group-commit batch; answers the durable log end.
pub const KIND_BATCH: u16 = 0x0404;
/// RPC kind: files the owner removed (old checkpoints, segments compaction replaced).
pub const KIND_REMOVE: u16 = 0x0405;

const OK: u16 = 0;
const REFUSED: u16 = 1;

/// How long a batch may take to be durable on a replica before the replica is dropped
/// from the in-sync set (and the batch acknowledged without it). Long enough for an fsync
/// on a loaded disk, short against a client's patience.
pub const BATCH_TIMEOUT: Duration = Duration::from_secs(2);
/// Bytes of batches queued for one replica (while it is seeded, or behind with `sync =
/// false`); beyond this further batches are not queued and the replica is seeded again.
const QUEUE_LIMIT: usize = 64 << 20;
/// Wait before seeding a replica again after a failure, doubled after each further failure
/// in a row up to [`RETRY_MAX`] (a replica node that is down is not dialled every second).
const RETRY_AFTER: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);

fn retry_delay(failures: u32) -> Duration {
    RETRY_AFTER
        .saturating_mul(1 << failures.saturating_sub(1).min(16))
        .min(RETRY_MAX)
}

pub use ringmail_cluster::ReplicaInfo;

/// A boxed future for the directory's etcd write.
pub type InSyncFuture = Pin<Box<dyn Future<Output = Result<(), String>>>>;

/// What replication needs of the control plane (the map's `replicas`/`in_sync` fields and
/// the owner's in-sync transaction, crates/cluster `ClusterView`).
pub trait ReplicaDirectory {
    /// This node's id.
    fn node(&self) -> String;
    /// `Some(epoch)` while this node owns `p` and is not fenced.
    fn is_owner(&self, p: u32) -> Option<u64>;
    /// The replicas of `p`.
    fn replicas(&self, p: u32) -> Vec<ReplicaInfo>;
    /// `Some((owner node, epoch))` when this node holds a replica of `p`.
    fn replica_of(&self, p: u32) -> Option<(String, u64)>;
    /// The owner's etcd transaction adding `node` to (or removing it from) `p`'s in-sync
    /// set at `epoch`; fails when this node is fenced or no longer owns `p` at `epoch`.
    fn set_in_sync(&self, p: u32, node: &str, in_sync: bool, epoch: u64) -> InSyncFuture;
}

/// Sends one request to a node and returns its answer's payload (`Err` for a refusal, a
/// lost connection or a timeout of the link).
pub trait Transport {
    fn call(&self, node: &str, addr: &str, kind: u16, payload: Vec<u8>) -> CallFuture;
}

/// The future of [`Transport::call`].
pub type CallFuture = Pin<Box<dyn Future<Output = Result<Vec<u8>, String>>>>;

/// Counters for /metrics.
#[derive(Default)]
pub struct Counters {
    /// Bytes of batches and copy rounds sent to replicas.
    pub bytes: AtomicU64,
    /// Batches a replica acknowledged.
    pub batches: AtomicU64,
    /// Replicas removed from an in-sync set by this node.
    pub in_sync_drops: AtomicU64,
    /// Replicas added to an in-sync set by this node.
    pub in_sync_adds: AtomicU64,
    /// Replica copies promoted to partitions on this node.
    pub promotions: AtomicU64,
    /// Batches queued for replicas and not yet acknowledged (all replicas together).
    pub lag_batches: AtomicU64,
}

/// This node's replication counters.
pub static COUNTERS: Counters = Counters {
    bytes: AtomicU64::new(0),
    batches: AtomicU64::new(0),
    in_sync_drops: AtomicU64::new(0),
    in_sync_adds: AtomicU64::new(0),
    promotions: AtomicU64::new(0),
    lag_batches: AtomicU64::new(0),
};

// ----- wire -----

/// Every request starts with `p u32 | epoch u64 | owner_len u16 | owner`, big-endian.
fn request(p: u32, epoch: u64, owner: &str, body_len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(14 + owner.len() + body_len);
    out.extend_from_slice(&p.to_be_bytes());
    out.extend_from_slice(&epoch.to_be_bytes());
    out.extend_from_slice(&(owner.len() as u16).to_be_bytes());
    out.extend_from_slice(owner.as_bytes());
    out
}

struct Header<'a> {
    p: u32,
    epoch: u64,
    owner: &'a str,
    body: &'a [u8],
}

fn parse_request(b: &[u8]) -> Option<Header<'_>> {
    let p = u32::from_be_bytes(b.get(0..4)?.try_into().ok()?);
    let epoch = u64::from_be_bytes(b.get(4..12)?.try_into().ok()?);
    let len = u16::from_be_bytes(b.get(12..14)?.try_into().ok()?) as usize;
    let owner = std::str::from_utf8(b.get(14..14 + len)?).ok()?;
    Some(Header {
        p,
        epoch,
        owner,
        body: b.get(14 + len..)?,
    })
}

fn encode_end(end: Option<LogEnd>) -> Vec<u8> {
    let (segment, offset) = end.map_or((u32::MAX, 0), |e| (e.segment, e.offset));
    let mut out = segment.to_be_bytes().to_vec();
    out.extend_from_slice(&offset.to_be_bytes());
    out
}

fn decode_end(b: &[u8]) -> Option<Option<LogEnd>> {
    let segment = u32::from_be_bytes(b.get(0..4)?.try_into().ok()?);
    let offset = u64::from_be_bytes(b.get(4..12)?.try_into().ok()?);
    Some((segment != u32::MAX).then_some(LogEnd { segment, offset }))
}

/// `n u32, n × (name_len u16, name, len u64, crc u32)`.
fn encode_files(files: &[ReplicaFile]) -> Vec<u8> {
    let mut out = (files.len() as u32).to_be_bytes().to_vec();
    for f in files {
        out.extend_from_slice(&(f.name.len() as u16).to_be_bytes());
        out.extend_from_slice(f.name.as_bytes());
        out.extend_from_slice(&f.len.to_be_bytes());
        out.extend_from_slice(&f.crc.to_be_bytes());
    }
    out
}

fn decode_files(b: &[u8]) -> Option<Vec<ReplicaFile>> {
    let n = u32::from_be_bytes(b.get(0..4)?.try_into().ok()?) as usize;
    let mut at = 4;
    let mut out = Vec::with_capacity(n.min(4096));
    for _ in 0..n {
        let len = u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?) as usize;
        let name = std::str::from_utf8(b.get(at + 2..at + 2 + len)?).ok()?;
        at += 2 + len;
        let flen = u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?);
        let crc = u32::from_be_bytes(b.get(at + 8..at + 12)?.try_into().ok()?);
        at += 12;
        out.push(ReplicaFile {
            name: name.to_string(),
            len: flen,
            crc,
        });
    }
    Some(out)
}

/// `offset u64 | crc u32 | name_len u16 | name | data`.
fn encode_chunk(out: &mut Vec<u8>, c: &Chunk<'_>) {
    out.extend_from_slice(&c.offset.to_be_bytes());
    out.extend_from_slice(&c.crc.to_be_bytes());
    out.extend_from_slice(&(c.name.len() as u16).to_be_bytes());
    out.extend_from_slice(c.name.as_bytes());
    out.extend_from_slice(c.data);
}

fn decode_chunk(b: &[u8]) -> Option<Chunk<'_>> {
    let offset = u64::from_be_bytes(b.get(0..8)?.try_into().ok()?);
    let crc = u32::from_be_bytes(b.get(8..12)?.try_into().ok()?);
    let len = u16::from_be_bytes(b.get(12..14)?.try_into().ok()?) as usize;
    let name = std::str::from_utf8(b.get(14..14 + len)?).ok()?;
    Some(Chunk {
        name,
        offset,
        data: b.get(14 + len..)?,
        crc,
    })
}

// ----- replica side -----

/// Replica copies, by partition directory: whether a request is working on one (on any
/// executor: requests for one partition come over several connections, so a second one at
/// once is refused; the owner sends one at a time, a second can only be a timed-out one's
/// successor), and how many requests have taken it, so that an executor knows whether the
/// copy it kept open after its last batch is still as it left it.
static COPIES: Mutex<Vec<(PathBuf, CopyState)>> = Mutex::new(Vec::new());

#[derive(Clone, Copy)]
struct CopyState {
    busy: bool,
    taken: u64,
}

/// A request's hold on a replica copy; `taken` counts the requests so far, this one included.
struct Busy {
    target: PathBuf,
    taken: u64,
}

impl Busy {
    fn take(target: &Path) -> Option<Busy> {
        let mut copies = COPIES.lock().unwrap_or_else(|e| e.into_inner());
        let taken = match copies.iter_mut().find(|(t, _)| t == target) {
            Some((_, c)) if c.busy => return None,
            Some((_, c)) => {
                c.busy = true;
                c.taken += 1;
                c.taken
            }
            None => {
                copies.push((
                    target.to_path_buf(),
                    CopyState {
                        busy: true,
                        taken: 1,
                    },
                ));
                1
            }
        };
        Some(Busy {
            target: target.to_path_buf(),
            taken,
        })
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let mut copies = COPIES.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, c)) = copies.iter_mut().find(|(t, _)| *t == self.target) {
            c.busy = false;
        }
    }
}

thread_local! {
    /// The copies this executor applied the last batch of, open, with the request count
    /// then. A batch of a stream reuses it when no other request touched the copy since
    /// (the common case): no directory listing, header read and file open per batch.
    static OPEN_COPIES: RefCell<HashMap<PathBuf, (u64, ReplicaLog)>> = RefCell::default();
}

/// The copy at `target` as the request holding `busy` finds it: the one this executor kept
/// open if nothing touched it since, else opened from its files.
fn open_copy(target: &Path, busy: &Busy) -> Result<ReplicaLog, StoreError> {
    let kept = OPEN_COPIES.with(|c| c.borrow_mut().remove(target));
    match kept {
        Some((taken, r)) if taken + 1 == busy.taken => Ok(r),
        _ => ReplicaLog::open(target),
    }
}

pub fn is_replication_kind(kind: u16) -> bool {
    (KIND_ATTACH..=KIND_REMOVE).contains(&kind)
}

/// Answers one replication request on a replica node: `Ok` payload or a refusal's reason.
/// `target` gives the directory partition `p` lives in once promoted.
pub async fn serve(
    directory: &dyn ReplicaDirectory,
    target: impl Fn(u32) -> PathBuf,
    kind: u16,
    payload: Vec<u8>,
) -> Result<Vec<u8>, String> {
    let h = parse_request(&payload).ok_or("malformed replication request")?;
    let p = h.p;
    match directory.replica_of(p) {
        Some((owner, epoch)) if owner == h.owner && h.epoch >= epoch => {}
        Some((owner, epoch)) => {
            return Err(format!(
                "partition {p}: node {} at epoch {} is not its owner ({owner} at epoch {epoch})",
                h.owner, h.epoch
            ))
        }
        None => return Err(format!("this node holds no replica of partition {p}")),
    }
    let target = target(p);
    let busy = Busy::take(&target).ok_or("another request for this replica is running")?;
    let err = |e: StoreError| e.to_string();
    match kind {
        KIND_ATTACH => {
            // Reading every file for its checksum runs on the blocking pool.
            glommio::executor()
                .spawn_blocking(move || {
                    let files = ReplicaLog::rejoin(&target).and_then(|r| r.files());
                    files.map(|f| encode_files(&f)).map_err(err)
                })
                .await
        }
        KIND_CHUNK => {
            let body = h.body.to_vec();
            glommio::executor()
                .spawn_blocking(move || {
                    let chunk = decode_chunk(&body).ok_or("malformed chunk")?;
                    let len = ReplicaLog::open(&target)
                        .and_then(|mut r| r.write_chunk(&chunk))
                        .map_err(err)?;
                    Ok(len.to_be_bytes().to_vec())
                })
                .await
        }
        KIND_KEEP | KIND_REMOVE => {
            let names: Vec<String> = std::str::from_utf8(h.body)
                .map_err(|_| "malformed file list")?
                .lines()
                .map(str::to_string)
                .collect();
            let mut r = ReplicaLog::open(&target).map_err(err)?;
            if kind == KIND_KEEP {
                let keep: Vec<&str> = names.iter().map(String::as_str).collect();
                r.keep_only(&keep).map_err(err)?;
            } else {
                r.remove(&names).map_err(err)?;
            }
            Ok(encode_end(r.position()))
        }
        KIND_BATCH => {
            let batch = Batch::decode(h.body).map_err(err)?;
            let mut r = open_copy(&target, &busy).map_err(err)?;
            let end = r.apply(&batch).await.map_err(err)?;
            OPEN_COPIES.with(|c| c.borrow_mut().insert(target.clone(), (busy.taken, r)));
            Ok(encode_end(Some(end)))
        }
        _ => Err("unknown replication request".into()),
    }
}

/// Before partition `p` is opened at `target` on the node that now owns it: a replica copy
/// there becomes the partition (the map promoted this node), unless a partition directory
/// is there already (a move installed one; the replica copy is stale then and goes).
pub fn promote_if_replica(p: u32, target: &Path) -> Result<(), StoreError> {
    if !ReplicaLog::dir_for(target).is_dir() {
        return Ok(());
    }
    let _busy = Busy::take(target).ok_or(StoreError::NotPermitted(
        "the replica copy is being written; try again",
    ))?;
    // A copy this executor kept open for the next batch becomes the partition's files.
    OPEN_COPIES.with(|c| c.borrow_mut().remove(target));
    let r = ReplicaLog::open(target)?;
    if target.exists() && !ringmail_store::is_moved(target) {
        info!(
            partition = p,
            "dropping a stale replica copy: the partition is here"
        );
        return r.discard();
    }
    let end = r.position();
    r.promote()?;
    COUNTERS.promotions.fetch_add(1, Ordering::Relaxed);
    info!(partition = p, end = ?end, "replica promoted: serving the partition from its copy");
    Ok(())
}

// ----- owner side -----

/// One replica as the owner's side sees it.
struct Peer {
    queue: mpsc::UnboundedSender<Queued>,
    /// Batches go to it in order and it has taken every batch queued so far.
    streaming: Cell<bool>,
    /// This side asked etcd to add it to the in-sync set (so acknowledgements wait for it
    /// even before the local map shows it).
    claimed: Cell<bool>,
    /// Bytes of batches in `queue`.
    queued: Cell<usize>,
    /// The queue was dropped while seeding: another round is needed.
    overflowed: Cell<bool>,
    /// Set when it is removed from the map's replicas: its task ends.
    gone: Cell<bool>,
}

enum Queued {
    Batch(Batch, Option<oneshot::Sender<bool>>),
    Files(FileChange),
}

/// The owner's side of one partition's replication: the partition's `ShipBatch` sink.
pub struct Shipper<D, T> {
    p: u32,
    directory: Rc<D>,
    transport: Rc<T>,
    /// The partition's directory, read by seeding and catch-up rounds.
    dir: PathBuf,
    /// `sync = true`: acknowledge only what every streamed-to replica has.
    sync: bool,
    peers: RefCell<HashMap<String, Rc<Peer>>>,
    /// For the rounds' snapshots.
    partition: Weak<Partition>,
    /// Itself, for the futures of `ship`.
    me: Weak<Self>,
}

impl<D: ReplicaDirectory + 'static, T: Transport + 'static> Shipper<D, T> {
    /// A shipper for partition `p`, open as `partition`, set as its sink.
    pub fn attach(
        p: u32,
        partition: &Rc<Partition>,
        directory: Rc<D>,
        transport: Rc<T>,
        sync: bool,
    ) -> Rc<Self> {
        let shipper = Rc::new_cyclic(|me| Shipper {
            p,
            directory,
            transport,
            dir: partition.dir().to_path_buf(),
            sync,
            peers: RefCell::default(),
            partition: Rc::downgrade(partition),
            me: me.clone(),
        });
        partition.set_replication(Some(shipper.clone()));
        shipper.follow_map();
        shipper
    }

    /// Starts shipping to replicas the map added, stops for those it removed. Called on
    /// every map change concerning the partition, and with every batch.
    pub fn follow_map(self: &Rc<Self>) {
        let listed = self.directory.replicas(self.p);
        let me = self.directory.node();
        let mut peers = self.peers.borrow_mut();
        peers.retain(|node, peer| {
            let keep = listed.iter().any(|r| &r.node == node);
            if !keep {
                peer.gone.set(true);
                peer.queue.close_channel();
            }
            keep
        });
        for r in listed.iter().filter(|r| r.node != me) {
            if peers.contains_key(&r.node) {
                continue;
            }
            let (tx, rx) = mpsc::unbounded();
            let peer = Rc::new(Peer {
                queue: tx,
                streaming: Cell::new(false),
                claimed: Cell::new(false),
                queued: Cell::new(0),
                overflowed: Cell::new(false),
                gone: Cell::new(false),
            });
            peers.insert(r.node.clone(), peer.clone());
            let this = self.clone();
            let node = r.node.clone();
            glommio::spawn_local(async move { this.run_peer(&node, &peer, rx).await }).detach();
        }
    }

    /// Stops shipping (the partition was closed or opened anew): every replica's task ends.
    pub fn stop(&self) {
        for (_, peer) in self.peers.borrow_mut().drain() {
            peer.gone.set(true);
            peer.queue.close_channel();
        }
    }

    /// A replica's task: seed it, stream to it, re-seed after any failure, until it is no
    /// longer listed.
    async fn run_peer(&self, node: &str, peer: &Peer, mut rx: mpsc::UnboundedReceiver<Queued>) {
        let mut failures = 0u32;
        while !peer.gone.get() && self.serving() {
            match self.seed_and_stream(node, peer, &mut rx).await {
                Ok(()) => return,
                Err(e) => {
                    // A replica that was streamed to starts again at the shortest wait.
                    failures = if peer.streaming.replace(false) {
                        1
                    } else {
                        failures + 1
                    };
                    if !self.sync && peer.claimed.get() {
                        // Asynchronous shipping acknowledged without it; it is behind now.
                        let _ = self.drop_in_sync(node, Some(peer)).await;
                    }
                    warn!(
                        partition = self.p,
                        replica = node,
                        "replica behind, seeding it again: {e}"
                    );
                    // The batches queued meanwhile are in the next round's snapshot.
                    self.drain_failed(peer, &mut rx);
                    glommio::timer::sleep(retry_delay(failures)).await;
                    self.drain_failed(peer, &mut rx);
                }
            }
        }
    }

    /// Fails what waits in the queue (the batches' writers drop the replica from in-sync).
    fn drain_failed(&self, peer: &Peer, rx: &mut mpsc::UnboundedReceiver<Queued>) {
        while let Ok(q) = rx.try_recv() {
            if let Queued::Batch(_, done) = q {
                COUNTERS.lag_batches.fetch_sub(1, Ordering::Relaxed);
                if let Some(done) = done {
                    let _ = done.send(false);
                }
            }
        }
        peer.queued.set(0);
    }

    /// The partition is open here and not handed over.
    fn serving(&self) -> bool {
        self.partition.upgrade().is_some_and(|p| !p.is_moved())
    }

    fn addr(&self, node: &str) -> Result<String, String> {
        self.directory
            .replicas(self.p)
            .into_iter()
            .find(|r| r.node == node && !r.internal.is_empty())
            .map(|r| r.internal)
            .ok_or_else(|| format!("replica node {node} is not alive"))
    }

    async fn call(&self, node: &str, kind: u16, body: &[u8]) -> Result<Vec<u8>, String> {
        let epoch = self
            .directory
            .is_owner(self.p)
            .ok_or("this node no longer owns the partition")?;
        let mut payload = request(self.p, epoch, &self.directory.node(), body.len());
        payload.extend_from_slice(body);
        COUNTERS
            .bytes
            .fetch_add(payload.len() as u64, Ordering::Relaxed);
        let addr = self.addr(node)?;
        self.transport.call(node, &addr, kind, payload).await
    }

    /// One seeding round: what the replica lacks of the partition as it is now. Returns the
    /// replica's log end after it.
    async fn seed_round(&self, node: &str) -> Result<LogEnd, String> {
        let partition = self.partition.upgrade().ok_or("the partition was closed")?;
        let snap = partition.snapshot().map_err(|e| e.to_string())?;
        drop(partition);
        let held = self.call(node, KIND_ATTACH, &[]).await?;
        let held = decode_files(&held).ok_or("malformed file list")?;
        let (dir, files) = (self.dir.clone(), snap.clone());
        let plan = glommio::executor()
            .spawn_blocking(move || seed_plan(&dir, &files, &held).map_err(|e| e.to_string()))
            .await?;
        for f in &plan {
            self.send_file(node, &f.name, f.from, f.len).await?;
        }
        let list: String = snap.files.iter().map(|f| format!("{}\n", f.name)).collect();
        let end = self.call(node, KIND_KEEP, list.as_bytes()).await?;
        match decode_end(&end).ok_or("malformed answer")? {
            Some(end) if end == snap.end => Ok(end),
            other => Err(format!(
                "the replica's copy ends at {other:?}, not at {:?}",
                snap.end
            )),
        }
    }

    /// Sends bytes `from..to` of a partition file, chunk by chunk.
    async fn send_file(&self, node: &str, name: &str, from: u64, to: u64) -> Result<(), String> {
        let path = self.dir.join(name);
        let mut offset = from;
        while offset < to {
            let end = to.min(offset + MAX_CHUNK as u64);
            let read = path.clone();
            let piece = glommio::executor()
                .spawn_blocking(move || crate::moves::read_range(&read, offset, end))
                .await
                .map_err(|e| format!("reading {name}: {e}"))?;
            let mut body = Vec::with_capacity(piece.len() + 64);
            encode_chunk(&mut body, &Chunk::new(name, offset, &piece));
            self.call(node, KIND_CHUNK, &body).await?;
            offset = end;
        }
        Ok(())
    }

    async fn seed_and_stream(
        &self,
        node: &str,
        peer: &Peer,
        rx: &mut mpsc::UnboundedReceiver<Queued>,
    ) -> Result<(), String> {
        let mut pos = loop {
            peer.overflowed.set(false);
            let end = self.seed_round(node).await?;
            if !peer.overflowed.get() {
                break end;
            }
            // Batches were left out: the next round's snapshot holds them and those queued.
            self.drain_failed(peer, rx);
        };
        info!(partition = self.p, replica = node, end = ?pos, "replica seeded");
        // The batches queued since the round's snapshot bring it up to date.
        let mut caught_up = false;
        loop {
            let next = if caught_up {
                rx.next().await
            } else {
                match rx.try_recv() {
                    Ok(q) => Some(q),
                    Err(mpsc::TryRecvError::Closed) => None,
                    Err(mpsc::TryRecvError::Empty) => {
                        caught_up = true;
                        peer.streaming.set(true);
                        self.mark_in_sync(node, peer).await?;
                        continue;
                    }
                }
            };
            let Some(q) = next else {
                return Ok(());
            };
            match q {
                Queued::Batch(batch, done) => {
                    COUNTERS.lag_batches.fetch_sub(1, Ordering::Relaxed);
                    peer.queued
                        .set(peer.queued.get().saturating_sub(batch.bytes.len()));
                    let sent = if batch.end() <= pos {
                        // Already in the round's snapshot.
                        Ok(pos)
                    } else if batch.prev != pos {
                        Err(format!("batch at {:?} does not continue {pos:?}", batch.at))
                    } else {
                        self.send_batch(node, &batch).await
                    };
                    let ok = sent.is_ok();
                    if let Some(done) = done {
                        let _ = done.send(ok);
                    }
                    pos = sent?;
                    if caught_up && !peer.streaming.get() {
                        return Err("a batch took too long; dropped from the in-sync set".into());
                    }
                }
                Queued::Files(change) => self.catch_up(node, &change).await?,
            }
        }
    }

    async fn send_batch(&self, node: &str, batch: &Batch) -> Result<LogEnd, String> {
        let mut body = Vec::new();
        batch.encode(&mut body);
        let answer = self.call(node, KIND_BATCH, &body).await?;
        COUNTERS.batches.fetch_add(1, Ordering::Relaxed);
        match decode_end(&answer) {
            Some(Some(end)) if end == batch.end() => Ok(end),
            other => Err(format!("the replica answered {other:?} for a batch")),
        }
    }

    /// Copies the files a checkpoint or compaction added, then removes what it removed.
    async fn catch_up(&self, node: &str, change: &FileChange) -> Result<(), String> {
        for f in &change.added {
            self.send_file(node, &f.name, 0, f.len).await?;
        }
        if !change.removed.is_empty() {
            let list: String = change.removed.iter().map(|n| format!("{n}\n")).collect();
            self.call(node, KIND_REMOVE, list.as_bytes()).await?;
        }
        Ok(())
    }

    async fn mark_in_sync(&self, node: &str, peer: &Peer) -> Result<(), String> {
        let listed = self.directory.replicas(self.p);
        if listed.iter().any(|r| r.node == node && r.in_sync) {
            peer.claimed.set(true);
            return Ok(());
        }
        let epoch = self.directory.is_owner(self.p).ok_or("not the owner")?;
        // From here on every acknowledgement waits for this replica.
        peer.claimed.set(true);
        self.directory
            .set_in_sync(self.p, node, true, epoch)
            .await?;
        COUNTERS.in_sync_adds.fetch_add(1, Ordering::Relaxed);
        info!(partition = self.p, replica = node, epoch, "replica in sync");
        Ok(())
    }

    /// Removes `node` from the in-sync set before a batch it lacks is acknowledged.
    async fn drop_in_sync(&self, node: &str, peer: Option<&Peer>) -> Result<(), StoreError> {
        let epoch = self
            .directory
            .is_owner(self.p)
            .ok_or(StoreError::NotPermitted("no longer the partition's owner"))?;
        if let Err(e) = self.directory.set_in_sync(self.p, node, false, epoch).await {
            warn!(
                partition = self.p,
                replica = node,
                "could not drop a failed replica from the in-sync set; the write fails: {e}"
            );
            return Err(StoreError::NotPermitted(
                "a replica failed and could not be dropped from the in-sync set",
            ));
        }
        if let Some(peer) = peer {
            peer.claimed.set(false);
        }
        COUNTERS.in_sync_drops.fetch_add(1, Ordering::Relaxed);
        warn!(
            partition = self.p,
            replica = node,
            epoch,
            "replica dropped from the in-sync set"
        );
        Ok(())
    }

    fn queue(&self, peer: &Peer, q: Queued) {
        if let Queued::Batch(b, _) = &q {
            let queued = peer.queued.get() + b.bytes.len();
            if queued > QUEUE_LIMIT {
                // Seeding takes long, or (asynchronous shipping) the replica fell that far
                // behind: the batch is not queued, and the replica is seeded again instead
                // (a waiting writer hears of it as a failure).
                peer.overflowed.set(true);
                peer.streaming.set(false);
                return;
            }
            peer.queued.set(queued);
            COUNTERS.lag_batches.fetch_add(1, Ordering::Relaxed);
        }
        let _ = peer.queue.unbounded_send(q);
    }

    async fn ship_batch(self: Rc<Self>, batch: Batch) -> Result<(), StoreError> {
        self.follow_map();
        let listed = self.directory.replicas(self.p);
        let peers: Vec<(String, Rc<Peer>)> = self
            .peers
            .borrow()
            .iter()
            .map(|(n, p)| (n.clone(), p.clone()))
            .collect();
        let mut waits = Vec::new();
        let mut drop = Vec::new();
        for (node, peer) in peers {
            let in_sync = listed.iter().any(|r| r.node == node && r.in_sync);
            let wait = self.sync && (peer.streaming.get() || peer.claimed.get());
            let (done, answer) = if wait {
                let (tx, rx) = oneshot::channel();
                (Some(tx), Some(rx))
            } else {
                (None, None)
            };
            self.queue(&peer, Queued::Batch(batch.clone(), done));
            match answer {
                Some(rx) => waits.push((node, peer, rx)),
                None if self.sync && in_sync => drop.push((node, peer)),
                None => {}
            }
        }
        // Replicas that take the batch durably in time are done; the others are dropped
        // from the in-sync set before the batch counts as acknowledged. Their tasks work
        // at the same time, so one deadline covers them all.
        let deadline = Instant::now() + BATCH_TIMEOUT;
        for (node, peer, answer) in waits {
            let left = deadline.saturating_duration_since(Instant::now());
            let ok = future::or(async { answer.await.unwrap_or(false) }, async {
                glommio::timer::sleep(left).await;
                false
            })
            .await;
            if !ok {
                // Its task re-seeds it once it sees this.
                peer.streaming.set(false);
                drop.push((node, peer));
            }
        }
        for (node, peer) in drop {
            self.drop_in_sync(&node, Some(&peer)).await?;
        }
        Ok(())
    }
}

impl<D: ReplicaDirectory + 'static, T: Transport + 'static> ShipBatch for Shipper<D, T> {
    fn ship(&self, batch: Batch) -> Shipped {
        match self.me.upgrade() {
            Some(this) => Box::pin(this.ship_batch(batch)),
            None => Box::pin(async { Err(StoreError::NotPermitted("replication stopped")) }),
        }
    }

    fn files_changed(&self, change: FileChange) {
        for peer in self.peers.borrow().values() {
            self.queue(peer, Queued::Files(change.clone()));
        }
    }
}

// ----- wiring on a cluster node -----

impl ReplicaDirectory for ClusterView {
    fn node(&self) -> String {
        ClusterView::node(self).to_string()
    }

    fn is_owner(&self, p: u32) -> Option<u64> {
        ClusterView::is_owner(self, p)
    }

    fn replicas(&self, p: u32) -> Vec<ReplicaInfo> {
        ClusterView::replicas(self, p)
    }

    fn replica_of(&self, p: u32) -> Option<(String, u64)> {
        ClusterView::replica_of(self, p).map(|(owner, epoch)| (owner.node, epoch))
    }

    fn set_in_sync(&self, p: u32, node: &str, in_sync: bool, epoch: u64) -> InSyncFuture {
        let done = ClusterView::set_in_sync(self, p, node, in_sync, epoch);
        Box::pin(async move { done.await.map_err(|e| e.to_string()) })
    }
}

/// RPCs over the executor's link pool.
struct PoolTransport(Weak<Executor>);

impl Transport for PoolTransport {
    fn call(&self, node: &str, addr: &str, kind: u16, payload: Vec<u8>) -> CallFuture {
        let (exec, node, addr) = (self.0.upgrade(), node.to_string(), addr.to_string());
        Box::pin(async move {
            let exec = exec.ok_or("shutting down")?;
            let nodes = exec.nodes.as_ref().ok_or("not a cluster node")?;
            let answer = nodes
                .pool
                .call(&node, &addr, kind, &payload)
                .await
                .map_err(|e| format!("node {node} did not answer: {e}"))?;
            match answer.status {
                OK => Ok(answer.payload),
                _ => Err(format!(
                    "node {node} refused: {}",
                    String::from_utf8_lossy(&answer.payload)
                )),
            }
        })
    }
}

type NodeShipper = Shipper<ClusterView, PoolTransport>;

/// One executor's replication: the open hooks and the shippers of its open partitions.
struct Local {
    exec: Weak<Executor>,
    view: Rc<ClusterView>,
    transport: Rc<PoolTransport>,
    sync: bool,
    shippers: RefCell<HashMap<u32, Rc<NodeShipper>>>,
}

thread_local! {
    static LOCAL: RefCell<Option<Rc<Local>>> = const { RefCell::new(None) };
}

/// Whether acknowledgements wait for the in-sync replicas (`[cluster] sync`), set at start.
static SYNC: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Sets `[cluster] sync` for every executor (before they start).
pub fn set_sync(sync: bool) {
    SYNC.store(sync, Ordering::Relaxed);
}

impl OpenHooks for Local {
    fn before_open(&self, p: u32, dir: &Path) -> Result<(), StoreError> {
        promote_if_replica(p, dir)
    }

    fn opened(&self, p: u32, partition: &Rc<Partition>) {
        let shipper = Shipper::attach(
            p,
            partition,
            self.view.clone(),
            self.transport.clone(),
            self.sync,
        );
        if let Some(old) = self.shippers.borrow_mut().insert(p, shipper) {
            old.stop();
        }
    }
}

/// The executor's open hooks, on a cluster node (`Services::open_hooks`).
pub fn open_hooks(exec: &Rc<Executor>) -> Option<Rc<dyn OpenHooks>> {
    let view = crate::moves::view()?;
    let local = Rc::new(Local {
        exec: Rc::downgrade(exec),
        view: Rc::new(view),
        transport: Rc::new(PoolTransport(Rc::downgrade(exec))),
        sync: SYNC.load(Ordering::Relaxed),
        shippers: RefCell::default(),
    });
    LOCAL.with(|l| *l.borrow_mut() = Some(local.clone()));
    Some(local)
}

/// The executor task: on every map change, each open partition's shipper follows its
/// replicas (one added is seeded, one removed is no longer shipped to).
pub fn task(exec: &Rc<Executor>) -> Result<Option<LocalTask>, String> {
    let Some(local) = LOCAL.with(|l| l.borrow().clone()) else {
        return Ok(None);
    };
    let exec = exec.clone();
    Ok(Some(Box::pin(async move {
        let mut changes = local.view.subscribe();
        loop {
            open_replicated(&exec, &local.view).await;
            local.shippers.borrow_mut().retain(|_, s| {
                let serving = s.serving();
                if !serving {
                    s.stop();
                }
                serving
            });
            let shippers: Vec<Rc<NodeShipper>> =
                local.shippers.borrow().values().cloned().collect();
            for s in shippers {
                s.follow_map();
            }
            let stop = future::or(
                async {
                    changes.changed().await;
                    false
                },
                async {
                    exec.shutting_down().await;
                    true
                },
            )
            .await;
            if stop || local.exec.upgrade().is_none() {
                return;
            }
        }
    })))
}

/// Opens this executor's partitions that this node owns and that have replicas or a
/// replica copy here: a promoted copy serves at once (not only at its first login), and an
/// owner's replicas are seeded (and in sync) even while none of its users is active, also
/// for a partition no user has used yet (opening creates it), so that every partition can
/// fail over.
async fn open_replicated(exec: &Rc<Executor>, view: &ClusterView) {
    for p in 0..view.map().partitions {
        if executor_of(p, exec.count) != exec.id
            || exec.store.opened(p).is_some()
            || view.is_owner(p).is_none()
        {
            continue;
        }
        let dir = Partitions::dir(&exec.data_dir, p);
        if !view.replicas(p).is_empty() || ReplicaLog::dir_for(&dir).is_dir() {
            if let Err(e) = exec.store.get(p).await {
                warn!(partition = p, "could not open a replicated partition: {e}");
            }
        }
    }
}

/// On a replica node: answers the owner's replication requests.
pub fn serve_rpc(exec: Rc<Executor>, request: Request) -> LocalResponse {
    Box::pin(async move {
        let Some(view) = crate::moves::view() else {
            return Response {
                status: REFUSED,
                payload: b"not a cluster node".to_vec(),
            };
        };
        let root = exec.data_dir.clone();
        let kind = request.kind;
        let answer = serve(&view, |p| Partitions::dir(&root, p), kind, request.payload).await;
        match answer {
            Ok(payload) => Response {
                status: OK,
                payload,
            },
            Err(why) => {
                warn!(kind, "replication request refused: {why}");
                Response {
                    status: REFUSED,
                    payload: why.into_bytes(),
                }
            }
        }
    })
}

#[cfg(test)]
mod tests;
