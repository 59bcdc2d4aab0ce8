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
//! - **Stale copies** ([`stale_task`]): a replica copy the map no longer lists this node
//!   for is removed after a grace period, once etcd shows the partition complete elsewhere;
//!   an old owner's partition directory after a failover becomes a replica copy (when that
//!   is safe), and what a completed move left is removed once its new owner is alive.
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

    /// The largest payload [`Transport::call`] carries (the link's `max_frame`).
    fn max_payload(&self) -> usize;
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
    /// Records in those batches.
    pub lag_records: AtomicU64,
    /// Replica copies the map no longer listed this node for, removed (src/replication/stale.rs).
    pub stale_copies_removed: AtomicU64,
    /// Old owners' partition directories (after a failover) made replica copies or set
    /// aside (src/replication/old_owner.rs).
    pub old_owner_copies: AtomicU64,
    /// Partition directories a completed move or a takeover left (MOVED), removed.
    pub moved_copies_removed: AtomicU64,
}

/// This node's replication counters.
pub static COUNTERS: Counters = Counters {
    bytes: AtomicU64::new(0),
    batches: AtomicU64::new(0),
    in_sync_drops: AtomicU64::new(0),
    in_sync_adds: AtomicU64::new(0),
    promotions: AtomicU64::new(0),
    lag_batches: AtomicU64::new(0),
    lag_records: AtomicU64::new(0),
    stale_copies_removed: AtomicU64::new(0),
    old_owner_copies: AtomicU64::new(0),
    moved_copies_removed: AtomicU64::new(0),
};

/// Stale copies this node holds now (as the executors' last sweeps found them), by kind:
/// `replica`, `old-owner`, `moved`.
pub fn stale_copies_held() -> [(&'static str, u64); 3] {
    let mut held = [("replica", 0), ("old-owner", 0), ("moved", 0)];
    for s in stale::seen() {
        if let Some((_, n)) = held.iter_mut().find(|(k, _)| *k == s.kind) {
            *n += 1;
        }
    }
    held
}

/// For every replica with batches waiting (by the owner side's peer id, on any executor):
/// when the oldest of them was queued.
static WAITING_SINCE: Mutex<Vec<(u64, Instant)>> = Mutex::new(Vec::new());

/// Seconds the oldest batch waiting for a replica of this node's partitions has waited
/// (0 when none waits): how far the slowest replica is behind.
pub fn lag_seconds() -> f64 {
    let waiting = WAITING_SINCE.lock().unwrap_or_else(|e| e.into_inner());
    waiting
        .iter()
        .map(|&(_, since)| since.elapsed().as_secs_f64())
        .fold(0.0, f64::max)
}

/// Records when peer `id`'s oldest waiting batch was queued, or that none waits.
fn set_waiting_since(id: u64, since: Option<Instant>) {
    let mut waiting = WAITING_SINCE.lock().unwrap_or_else(|e| e.into_inner());
    waiting.retain(|&(peer, _)| peer != id);
    if let Some(since) = since {
        waiting.push((id, since));
    }
}

mod node;
mod old_owner;
mod replica;
mod shipper;
mod stale;
mod status;
mod wire;

pub use node::{open_hooks, serve_rpc, set_sync, task};
pub use old_owner::{aside_partition, make_way_for_move, set_replicas};
pub use replica::{is_replication_kind, promote_if_replica, serve};
pub use shipper::Shipper;
pub use stale::{copy_partition, partition_number, set_stale_copy_grace, stale_task};
pub use status::{add_progress, KIND_STATUS};
use wire::*;

#[cfg(test)]
mod tests;
