//! Live partition moves (docs/cluster.md, "Moving a partition"): the old owner copies the
//! partition to the target over the node-to-node link in rounds, freezes its writes for the
//! last bytes, has the target install and open the copy, and bumps the epoch in etcd
//! (`complete_move`); then it hands the partition over (writes that waited fail, never
//! acknowledged) or, when anything failed, thaws and keeps serving.
//!
//! Each executor carries out the moves of its own partitions (the partition's writer lives
//! there), at most [`MOVES_PER_EXECUTOR`] at a time. The target's side is [`serve`], an RPC
//! handler on the same link as LMTP forwarding.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use futures_lite::future;
use ringmail_cluster::ClusterView;
use ringmail_peer::{Request, Response};
use ringmail_runtime::nodes::LocalResponse;
use ringmail_runtime::partition::executor_of;
use ringmail_runtime::partitions::Partitions;
use ringmail_runtime::runtime::{Executor, LocalTask};
use ringmail_store::{Chunk, CopyFile, Incoming, Partition, Snapshot, MAX_CHUNK};
use tracing::{info, warn};

/// RPC kind: start receiving partition `p` (removes what an unfinished attempt left).
pub const KIND_MOVE_START: u16 = 0x0201;
/// RPC kind: one chunk of one file of the partition.
pub const KIND_MOVE_CHUNK: u16 = 0x0202;
/// RPC kind: the copy is complete (the payload lists its files, one name a line): install
/// it and open it to check it.
pub const KIND_MOVE_INSTALL: u16 = 0x0203;

const OK: u16 = 0;
const REFUSED: u16 = 1;

/// Moves one executor carries out at once: each holds a link connection busy with chunks
/// and reads its partition's files, so a drain of many partitions runs a few at a time
/// per core instead of all at once.
pub const MOVES_PER_EXECUTOR: usize = 2;
/// Copy rounds go on while the last round sent more than this; then the writes freeze and
/// the rest goes in the final round (about 1 ms of a 1 GB/s link).
const FREEZE_BELOW: u64 = 1 << 20;
/// Rounds before freezing anyway (a partition written faster than the link copies).
const MAX_ROUNDS: usize = 20;
/// A failed move is tried again after this, doubled after each further failure up to
/// [`RETRY_MAX`]: every attempt copies the whole partition again, so a move that keeps
/// failing (a target out of disk, a link that drops) must not keep the link busy.
const RETRY_AFTER: Duration = Duration::from_secs(10);
const RETRY_MAX: Duration = Duration::from_secs(600);
/// The first wait after an attempt that copied nothing (the target refused or could not be
/// reached at the start): trying again costs nothing, and the common case is a node that
/// registered a moment before its node link listens (a node coming back, which the
/// balancer gives partitions at once), so it is tried again soon, doubled as above.
const START_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Why a move failed, and whether it had copied anything.
struct Failed {
    why: String,
    copied: bool,
}

impl From<String> for Failed {
    fn from(why: String) -> Failed {
        Failed { why, copied: true }
    }
}
/// How long a move whose epoch bump failed keeps the writes frozen while the map shows
/// whether the bump happened after all.
const SETTLE: Duration = Duration::from_secs(5);
/// How long the target waits for its map to show an intent the owner already acts on.
const INTENT_WAIT: Duration = Duration::from_secs(2);
/// At most this long the switch waits for the local map to show the new owner.
const ROUTED_WITHIN: Duration = Duration::from_secs(1);
/// How often pending moves are looked at besides on map changes.
const POLL: Duration = Duration::from_secs(2);

/// Counters for /metrics.
#[derive(Default)]
pub struct Counters {
    pub completed: AtomicU64,
    pub failed: AtomicU64,
    pub bytes: AtomicU64,
    /// Sum and last value of the freeze durations, in microseconds.
    pub freeze_us_sum: AtomicU64,
    pub freeze_us_last: AtomicU64,
}

static VIEW: OnceLock<ClusterView> = OnceLock::new();
/// This node's move counters.
pub static COUNTERS: OnceLock<Counters> = OnceLock::new();

/// Makes moves run on this node (the executors' task and the RPC handler need the view;
/// an `ExecutorTask` is a plain fn, so it is kept here).
pub fn init(view: ClusterView) {
    let _ = VIEW.set(view);
    let _ = COUNTERS.set(Counters::default());
}

/// The cluster view, on a cluster node (set by [`init`]).
pub(crate) fn view() -> Option<ClusterView> {
    VIEW.get().cloned()
}

fn counters() -> &'static Counters {
    COUNTERS.get_or_init(Counters::default)
}

/// The executor task: carries out the moves of this executor's partitions.
pub fn task(exec: &Rc<Executor>) -> Result<Option<LocalTask>, String> {
    let Some(view) = view() else {
        return Ok(None);
    };
    Ok(Some(Box::pin(run(exec.clone(), view))))
}

async fn run(exec: Rc<Executor>, view: ClusterView) {
    let running: Rc<RefCell<HashSet<u32>>> = Rc::default();
    // Per partition whose move failed: when to try again, and how many times it failed.
    let mut backoff: HashMap<u32, (Instant, u32)> = HashMap::new();
    // Failed moves, and whether each had copied anything.
    let failures: Rc<RefCell<Vec<(u32, bool)>>> = Rc::default();
    let mut changes = view.subscribe();
    loop {
        for (p, copied) in failures.borrow_mut().drain(..) {
            let failed = backoff.get(&p).map_or(0, |(_, n)| *n) + 1;
            backoff.insert(p, (Instant::now() + retry_delay(failed, copied), failed));
        }
        let pending = view.pending_moves();
        // A move withdrawn or completed starts afresh if it is asked for again.
        backoff.retain(|p, _| pending.iter().any(|(q, _, _)| q == p));
        for (p, from, to) in pending {
            let ours = from == view.node() && executor_of(p, exec.count) == exec.id;
            let waiting = backoff.get(&p).is_some_and(|(at, _)| Instant::now() < *at);
            if !ours || waiting || running.borrow().contains(&p) {
                continue;
            }
            if running.borrow().len() >= MOVES_PER_EXECUTOR {
                break;
            }
            running.borrow_mut().insert(p);
            let (exec, view, running, failures) = (
                exec.clone(),
                view.clone(),
                running.clone(),
                failures.clone(),
            );
            glommio::spawn_local(async move {
                if let Err(e) = move_out(&exec, &view, p, &to).await {
                    counters().failed.fetch_add(1, Ordering::Relaxed);
                    warn!(partition = p, to = %to, copied = e.copied, "partition move failed, still served here; retried later: {}", e.why);
                    failures.borrow_mut().push((p, e.copied));
                }
                running.borrow_mut().remove(&p);
            })
            .detach();
        }
        let next = future::or(
            async {
                changes.changed().await;
            },
            glommio::timer::sleep(POLL),
        );
        if exec.until_shutdown(next).await.is_none() {
            return;
        }
    }
}

/// How long to wait before the next attempt of a move that failed `failed` times, the last
/// time after copying something or not.
fn retry_delay(failed: u32, copied: bool) -> Duration {
    let first = if copied {
        RETRY_AFTER
    } else {
        START_RETRY_AFTER
    };
    first
        .saturating_mul(1 << failed.saturating_sub(1).min(16))
        .min(RETRY_MAX)
}

/// Carries out the move of `p` to `to`.
async fn move_out(exec: &Executor, view: &ClusterView, p: u32, to: &str) -> Result<(), Failed> {
    let map = view.map();
    let addr = map
        .nodes
        .get(to)
        .filter(|_| map.alive(to))
        .map(|n| n.internal.clone())
        .ok_or_else(|| Failed {
            why: format!("target node {to} is not alive"),
            copied: false,
        })?;
    let target = Target { exec, to, addr, p };
    let partition = exec.store.get(p).await.map_err(|e| e.to_string())?;
    let started = Instant::now();
    target
        .call(KIND_MOVE_START, p.to_be_bytes().to_vec())
        .await
        .map_err(|why| Failed { why, copied: false })?;
    let mut sent: HashMap<String, u64> = HashMap::new();
    let mut total = 0;
    for _ in 0..MAX_ROUNDS {
        let snap = partition.snapshot().map_err(|e| e.to_string())?;
        let n = target.send_round(&snap, &mut sent).await?;
        total += n;
        if n < FREEZE_BELOW {
            break;
        }
    }
    // The target opens its copy inside the freeze, and opening replays (and checks) every
    // record after the newest checkpoint: a checkpoint now, copied with one more round,
    // leaves it only the records written since, instead of up to a whole segment.
    partition.checkpoint().await.map_err(|e| e.to_string())?;
    let snap = partition.snapshot().map_err(|e| e.to_string())?;
    total += target.send_round(&snap, &mut sent).await?;
    let frozen = Instant::now();
    let outcome = finish(&target, view, &partition, &mut sent).await;
    let freeze = frozen.elapsed();
    let c = counters();
    c.freeze_us_sum
        .fetch_add(freeze.as_micros() as u64, Ordering::Relaxed);
    c.freeze_us_last
        .store(freeze.as_micros() as u64, Ordering::Relaxed);
    match outcome {
        Ok((epoch, last)) => {
            total += last;
            c.completed.fetch_add(1, Ordering::Relaxed);
            c.bytes.fetch_add(total, Ordering::Relaxed);
            exec.store.forget(p);
            info!(
                partition = p,
                to = %to,
                epoch,
                bytes = total,
                freeze_ms = freeze.as_secs_f64() * 1e3,
                total_ms = started.elapsed().as_secs_f64() * 1e3,
                "partition moved"
            );
            Ok(())
        }
        Err(e) => {
            partition.thaw();
            warn!(
                partition = p,
                freeze_ms = freeze.as_secs_f64() * 1e3,
                "partition move abandoned, writes thawed"
            );
            Err(e.into())
        }
    }
}

/// The frozen part: the last bytes, the target's install, the epoch bump, the hand-over.
/// Returns the new epoch and the bytes of the last round.
async fn finish(
    target: &Target<'_>,
    view: &ClusterView,
    partition: &Partition,
    sent: &mut HashMap<String, u64>,
) -> Result<(u64, u64), String> {
    // Where the freeze's time goes, for the log: each stage's end.
    let mut stages = Stages::new();
    let snap = partition.freeze().await.map_err(|e| e.to_string())?;
    stages.mark();
    let last = target.send_round(&snap, sent).await?;
    stages.mark();
    // The final list, so the target drops what it got in earlier rounds and is gone here.
    let mut install = target.p.to_be_bytes().to_vec();
    for f in &snap.files {
        install.extend_from_slice(f.name.as_bytes());
        install.push(b'\n');
    }
    target.call(KIND_MOVE_INSTALL, install).await?;
    stages.mark();
    let epoch = match view.complete_move(target.p, view.node(), target.to).await {
        Ok(epoch) => epoch,
        Err(e) => settled(view, target.p, target.to)
            .await
            .ok_or_else(|| format!("etcd did not complete the move: {e}"))?,
    };
    stages.mark();
    routed(view, target.p, target.to).await;
    stages.mark();
    let note = format!("moved to node {} at epoch {epoch}", target.to);
    // The target owns the partition now whatever happens here: a failure to write the
    // marker leaves writes failing (hand_over set that first), and the map routes away.
    if let Err(e) = partition.hand_over(&note).await {
        warn!(
            partition = target.p,
            "could not mark the old copy as moved: {e}"
        );
    }
    stages.mark();
    let ms = stages.ms();
    info!(
        partition = target.p,
        settle_ms = ms[0],
        last_round_ms = ms[1],
        install_ms = ms[2],
        epoch_ms = ms[3],
        routed_ms = ms[4],
        marker_ms = ms[5],
        "partition move switch"
    );
    Ok((epoch, last))
}

/// The stages of a switch, timed.
struct Stages {
    last: Instant,
    ms: Vec<f64>,
}

impl Stages {
    fn new() -> Stages {
        Stages {
            last: Instant::now(),
            ms: Vec::with_capacity(6),
        }
    }

    /// Ends a stage.
    fn mark(&mut self) {
        let now = Instant::now();
        self.ms.push((now - self.last).as_secs_f64() * 1e3);
        self.last = now;
    }

    fn ms(&self) -> &[f64] {
        &self.ms
    }
}

/// Waits (writes still frozen) until this node's copy of the map routes `p` to `to`, at most
/// [`ROUTED_WITHIN`]: a login here in between would otherwise still be placed on this node
/// and then find the partition gone, where a moment later it is proxied to the new owner.
/// The watch brings the change within milliseconds on a healthy cluster.
async fn routed(view: &ClusterView, p: u32, to: &str) {
    // Subscribed before the first look, so a change in between is not missed.
    let mut changes = view.subscribe();
    let is_routed = || view.owner(p).is_some_and(|o| o.node == to);
    let wait = async {
        while !is_routed() {
            changes.changed().await;
        }
    };
    future::or(wait, glommio::timer::sleep(ROUTED_WITHIN)).await;
}

/// After `complete_move` failed: it may still have been applied (an etcd timeout says
/// nothing about the transaction), so the writes stay frozen until the map shows the
/// outcome or [`SETTLE`] passes. `Some(epoch)` when `to` owns `p` after all.
async fn settled(view: &ClusterView, p: u32, to: &str) -> Option<u64> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let map = view.map();
        let a = map.assignment(p);
        if a.owned_by(to) {
            return Some(a.epoch);
        }
        if a.moving_to() != Some(to) || Instant::now() >= deadline {
            return None;
        }
        glommio::timer::sleep(Duration::from_millis(20)).await;
    }
}

struct Target<'a> {
    exec: &'a Executor,
    to: &'a str,
    addr: String,
    p: u32,
}

impl Target<'_> {
    async fn call(&self, kind: u16, payload: Vec<u8>) -> Result<Vec<u8>, String> {
        let nodes = self.exec.nodes.as_ref().ok_or("not a cluster node")?;
        let answer = nodes
            .pool
            .call(self.to, &self.addr, kind, &payload)
            .await
            .map_err(|e| format!("node {} did not answer: {e}", self.to))?;
        match answer.status {
            OK => Ok(answer.payload),
            _ => Err(format!(
                "node {} refused: {}",
                self.to,
                String::from_utf8_lossy(&answer.payload)
            )),
        }
    }

    /// Sends what `snap` has beyond `sent`; returns the number of bytes sent. Up to four
    /// files go at once (four workers taking files from one queue) (the target takes each file's chunks in order, so
    /// one file's chunks stay one after another): each chunk waits for the target's synced
    /// write, and several files in flight keep the link and both disks busy meanwhile.
    async fn send_round(
        &self,
        snap: &Snapshot,
        sent: &mut HashMap<String, u64>,
    ) -> Result<u64, String> {
        let queue: RefCell<VecDeque<(&CopyFile, u64)>> = RefCell::new(
            snap.files
                .iter()
                .map(|f| (f, sent.get(&f.name).copied().unwrap_or(0)))
                .filter(|(f, from)| *from < f.len)
                .collect(),
        );
        let done: RefCell<Vec<(&CopyFile, u64)>> = RefCell::default();
        let worker = || async {
            loop {
                let next = queue.borrow_mut().pop_front();
                let Some((f, from)) = next else {
                    return Ok::<(), String>(());
                };
                match self.send_file(f, from).await {
                    Ok(true) => done.borrow_mut().push((f, from)),
                    Ok(false) => {}
                    Err(e) => {
                        // The round has failed: the other workers stop after the file they
                        // are sending instead of copying the rest of it for nothing.
                        queue.borrow_mut().clear();
                        return Err(e);
                    }
                }
            }
        };
        let ((a, b), (c, d)) = future::zip(
            future::zip(worker(), worker()),
            future::zip(worker(), worker()),
        )
        .await;
        a.and(b).and(c).and(d)?;
        let mut total = 0;
        for (f, from) in done.into_inner() {
            total += f.len - from;
            sent.insert(f.name.clone(), f.len);
        }
        Ok(total)
    }

    /// Sends file `f` from `from` to its snapshot length, one chunk at a time, each read on a
    /// blocking thread: a sealed segment is up to `segment_size_mb` (256 MiB by default),
    /// which must neither sit in memory whole nor be read on the core that serves the
    /// partition's sessions. False when the file was gone (compaction's replaced segment,
    /// removed since the snapshot: the next round sees the files as they are, and the
    /// install drops this one).
    async fn send_file(&self, f: &CopyFile, from: u64) -> Result<bool, String> {
        let path = Partitions::dir(&self.exec.data_dir, self.p).join(&f.name);
        let mut offset = from;
        while offset < f.len {
            let end = f.len.min(offset + MAX_CHUNK as u64);
            let read = path.clone();
            let bytes = glommio::executor()
                .spawn_blocking(move || read_range(&read, offset, end))
                .await;
            let piece = match bytes {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(format!("reading {}: {e}", f.name)),
            };
            let chunk = Chunk::new(&f.name, offset, &piece);
            self.call(KIND_MOVE_CHUNK, encode_chunk(self.p, &chunk))
                .await?;
            offset = end;
        }
        Ok(true)
    }
}

/// Bytes `from..to` of a file (a partition file being copied; also replication's rounds).
pub(crate) fn read_range(path: &std::path::Path, from: u64, to: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    f.seek(SeekFrom::Start(from))?;
    let mut out = Vec::with_capacity((to - from) as usize);
    f.take(to - from).read_to_end(&mut out)?;
    if (out.len() as u64) < to - from {
        return Err(std::io::Error::other("file shorter than its snapshot"));
    }
    Ok(out)
}

/// `p u32 | offset u64 | crc u32 | name_len u16 | name | data`, big-endian.
fn encode_chunk(p: u32, c: &Chunk<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(22 + c.name.len() + c.data.len());
    out.extend_from_slice(&p.to_be_bytes());
    out.extend_from_slice(&c.offset.to_be_bytes());
    out.extend_from_slice(&c.crc.to_be_bytes());
    out.extend_from_slice(&(c.name.len() as u16).to_be_bytes());
    out.extend_from_slice(c.name.as_bytes());
    out.extend_from_slice(c.data);
    out
}

fn decode_chunk(b: &[u8]) -> Option<(u32, Chunk<'_>)> {
    let p = u32::from_be_bytes(b.get(0..4)?.try_into().ok()?);
    let offset = u64::from_be_bytes(b.get(4..12)?.try_into().ok()?);
    let crc = u32::from_be_bytes(b.get(12..16)?.try_into().ok()?);
    let len = u16::from_be_bytes(b.get(16..18)?.try_into().ok()?) as usize;
    let name = std::str::from_utf8(b.get(18..18 + len)?).ok()?;
    let data = b.get(18 + len..)?;
    Some((
        p,
        Chunk {
            name,
            offset,
            data,
            crc,
        },
    ))
}

fn decode_partition(b: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(0..4)?.try_into().ok()?))
}

/// Whether the map says `p` is moving to this node. The owner acts on the intent as soon as
/// its own copy of the map shows it, which can be a few milliseconds before ours does: the
/// first request of a move waits up to [`INTENT_WAIT`] for our copy to catch up.
async fn moving_here(view: &ClusterView, p: u32, kind: u16) -> bool {
    let deadline = Instant::now() + INTENT_WAIT;
    loop {
        let map = view.map();
        if p >= map.partitions {
            return false;
        }
        if map.assignment(p).moving_to() == Some(view.node()) {
            return true;
        }
        if kind != KIND_MOVE_START || Instant::now() >= deadline {
            return false;
        }
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
}

/// True for the move kinds, which [`serve`] answers.
pub fn is_move_kind(kind: u16) -> bool {
    (KIND_MOVE_START..=KIND_MOVE_INSTALL).contains(&kind)
}

/// On the target: answers a move's requests. Only a partition the map says is moving here
/// is received, and nothing of it is served before `complete_move` makes this node its
/// owner.
pub fn serve(exec: Rc<Executor>, request: Request) -> LocalResponse {
    Box::pin(async move {
        let kind = request.kind;
        let answer = receive(&exec, request).await;
        match answer {
            Ok(payload) => Response {
                status: OK,
                payload,
            },
            Err(why) => {
                warn!(kind, "partition move refused: {why}");
                Response {
                    status: REFUSED,
                    payload: why.into_bytes(),
                }
            }
        }
    })
}

/// Takes the request by value: a chunk's payload (up to 1 MiB) moves to the blocking
/// thread that writes it, uncopied.
async fn receive(exec: &Executor, request: Request) -> Result<Vec<u8>, String> {
    let view = VIEW.get().ok_or("not a cluster node")?;
    let p = decode_partition(&request.payload).ok_or("malformed request")?;
    if !moving_here(view, p, request.kind).await {
        return Err(format!("partition {p} is not moving to this node"));
    }
    let dir = Partitions::dir(&exec.data_dir, p);
    match request.kind {
        KIND_MOVE_START => {
            let owned = view.map().assignment(p).owned_by(view.node());
            if dir.is_dir()
                && !ringmail_store::is_moved(&dir)
                && exec.store.opened(p).is_none()
                && !owned
            {
                // An old owner's directory (this node owned the partition before a
                // failover) is in the way: out of it, kept as the sweep would keep it.
                crate::replication::make_way_for_move(view, p, &dir).await?;
            }
            Incoming::start(&dir).map_err(|e| e.to_string())?;
            Ok(Vec::new())
        }
        // The file work (a synced write per chunk; the install's syncs, rename and removal
        // of an earlier moved-away copy) runs on the blocking pool: this core serves other
        // partitions' sessions meanwhile.
        KIND_MOVE_CHUNK => {
            let payload = request.payload;
            let len = glommio::executor()
                .spawn_blocking(move || {
                    let (_, chunk) = decode_chunk(&payload).ok_or("malformed chunk")?;
                    Incoming::resume(&dir)
                        .write(&chunk)
                        .map_err(|e| e.to_string())
                })
                .await?;
            Ok(len.to_be_bytes().to_vec())
        }
        KIND_MOVE_INSTALL => {
            let names = std::str::from_utf8(&request.payload[4..])
                .map_err(|_| "malformed file list")?
                .to_string();
            let installed = glommio::executor()
                .spawn_blocking(move || {
                    let files: Vec<&str> = names.lines().collect();
                    Incoming::resume(&dir)
                        .install(&files)
                        .map_err(|e| e.to_string())
                })
                .await?;
            // Recovery checks every record's checksum and rebuilds the index: a copy that
            // does not open is refused, and the old owner keeps the partition.
            let opened = Partition::open(&installed, exec.store.options().clone())
                .await
                .map_err(|e| format!("the copy does not open: {e}"))?;
            opened.close().await.map_err(|e| e.to_string())?;
            Ok(Vec::new())
        }
        _ => Err("unknown request".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_a_cap() {
        let delays: Vec<u64> = (1..=9).map(|n| retry_delay(n, true).as_secs()).collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 320, 600, 600, 600]);
        assert_eq!(retry_delay(u32::MAX, true), RETRY_MAX);
        // An attempt that copied nothing is tried again sooner, doubled to the same cap.
        let delays: Vec<u64> = (1..=11).map(|n| retry_delay(n, false).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 600]);
    }

    #[test]
    fn a_chunk_survives_its_encoding_and_short_payloads_are_refused() {
        let c = Chunk::new("seg-00000002.log", 4096, b"data");
        let wire = encode_chunk(7, &c);
        let (p, back) = decode_chunk(&wire).unwrap();
        assert_eq!(
            (p, back.name, back.offset, back.data, back.crc),
            (7, c.name, 4096, &b"data"[..], c.crc)
        );
        for cut in 0..18 + c.name.len() {
            assert!(decode_chunk(&wire[..cut]).is_none(), "cut at {cut}");
        }
    }
}
