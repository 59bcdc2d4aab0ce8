//! What a node does when the map or its lease says it may no longer write a partition
//! (docs/cluster.md, "Fencing"):
//!
//! - **Fenced** (its etcd lease may have run out, so etcd may already have given its
//!   partitions to others): every open partition's writes are frozen, so nothing more is
//!   acknowledged that the next owner may not have. Reads go on; writes wait. When the lease
//!   is renewed in time the partitions are thawed and the writes that waited go through.
//! - **Lost** (the map names another owner, e.g. an operator moved a partition away from a
//!   node etcd had declared dead while it was in fact running): the partition is handed over
//!   as a completed move would be: writes that waited fail unacknowledged, every session on it
//!   ends with `* BYE [UNAVAILABLE]`, and the directory gets the MOVED marker so it is never
//!   opened again (its data stays on disk for the operator).
//!
//! Each executor looks after the partitions it has open; a move this executor is carrying
//! out (src/moves.rs) hands its partition over itself.

use std::collections::HashSet;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_lite::future;
use ringmail_cluster::ClusterView;
use ringmail_runtime::runtime::{Executor, LocalTask};
use tracing::{info, warn};

/// How often the lease is looked at when nothing else wakes the task (a fence comes from
/// time passing, not only from a map change).
const POLL: Duration = Duration::from_millis(500);

/// The executor task.
pub fn task(exec: &Rc<Executor>) -> Result<Option<LocalTask>, String> {
    let Some(view) = crate::moves::view() else {
        return Ok(None);
    };
    Ok(Some(Box::pin(run(exec.clone(), view))))
}

async fn run(exec: Rc<Executor>, view: ClusterView) {
    // Partitions this task froze for a fence (a move's freeze is the move's own).
    let mut frozen: HashSet<u32> = HashSet::new();
    let mut changes = view.subscribe();
    let mut lost: Vec<u32> = Vec::new();
    loop {
        lost.extend(changes.poll().map(|c| c.lost).unwrap_or_default());
        for p in lost.drain(..) {
            hand_over_lost(&exec, &view, p, &mut frozen).await;
        }
        if view.fenced() {
            fence(&exec, &mut frozen).await;
        } else if !frozen.is_empty() {
            unfence(&exec, &view, &mut frozen);
        }
        // Wake at the change, at the moment the lease runs out, or after POLL.
        let wait = view
            .lease_valid_until()
            .map(|until| until.saturating_duration_since(Instant::now()))
            .filter(|d| !d.is_zero())
            .map_or(POLL, |d| d.min(POLL));
        let next = future::or(async { changes.changed().await.lost }, async {
            glommio::timer::sleep(wait).await;
            Vec::new()
        });
        let woke = exec.until_shutdown(next).await;
        match woke {
            Some(more) => lost.extend(more),
            None => return,
        }
    }
}

/// Freezes the writes of every open partition of this executor not frozen yet.
async fn fence(exec: &Executor, frozen: &mut HashSet<u32>) {
    for (p, partition) in exec.store.open_partitions() {
        if partition.is_frozen() || partition.is_moved() {
            continue;
        }
        match partition.freeze().await {
            Ok(_) => {
                frozen.insert(p);
                warn!(
                    partition = p,
                    "writes frozen: this node's cluster lease may have run out"
                );
            }
            Err(e) => warn!(partition = p, "could not freeze writes while fenced: {e}"),
        }
    }
}

/// Thaws what [`fence`] froze and this node still owns.
fn unfence(exec: &Executor, view: &ClusterView, frozen: &mut HashSet<u32>) {
    for (p, partition) in exec.store.open_partitions() {
        if frozen.contains(&p) && view.is_owner(p).is_some() {
            partition.thaw();
            frozen.remove(&p);
            info!(
                partition = p,
                "writes thawed: the cluster lease was renewed"
            );
        }
    }
    // Partitions closed or lost meanwhile need no thaw.
    frozen.retain(|p| exec.store.opened(*p).is_some());
}

/// `p` belongs to another node now: unless a move of this executor hands it over itself,
/// end its sessions and writes here.
async fn hand_over_lost(exec: &Executor, view: &ClusterView, p: u32, frozen: &mut HashSet<u32>) {
    let Some(partition) = exec.store.opened(p) else {
        return;
    };
    // Frozen by a move of ours: the move completes the hand-over.
    if partition.is_moved() || (partition.is_frozen() && !frozen.contains(&p)) {
        return;
    }
    let owner = view.map().assignment(p).owner.clone().unwrap_or_default();
    let note = format!("taken over by node {owner} while this node served it");
    warn!(partition = p, owner = %owner, "partition lost to another node: its sessions end and its writes stop here");
    if let Err(e) = partition.hand_over(&note).await {
        warn!(partition = p, "could not mark the lost copy as moved: {e}");
    }
    frozen.remove(&p);
    exec.store.forget(p);
}
