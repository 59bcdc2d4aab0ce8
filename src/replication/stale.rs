//! Stale replica copies: a `p-NNNN.replica/` on this node that the map no longer lists it
//! for (its replica was moved away, dropped while the node was dead, or dropped as surplus)
//! is removed, so that copies do not pile up on disk forever. It is removed only when that
//! is safe:
//! - the local map has not listed this node as owner, replica or move target of `p` for
//!   `[cluster] stale_copy_grace_secs` (a replica placed here again within that time is
//!   seeded with only what changed, not the whole partition);
//! - then, read from etcd (not the local copy, which may lag): `p` has a live owner other
//!   than this node and at least one replica, all alive and in sync (ringmail_cluster's
//!   `ClusterView::stale_copy`). Otherwise, for instance while the owner is dead and no
//!   in-sync replica is left, the copy may be the only up-to-date one and stays.
//!
//! The removal holds the copy as a replication request does, so it never runs while the
//! owner seeds or streams to it, and it checks the local map once more under that hold.
//! Each executor sweeps the copies of its own partitions.

use super::replica::remove_stale_copy;
use super::*;

/// `[cluster] stale_copy_grace_secs`, set at start for every executor.
static GRACE_SECS: AtomicU64 = AtomicU64::new(600);

/// Sets how long a copy the map no longer lists is kept (before the executors start).
pub fn set_stale_copy_grace(grace: Duration) {
    GRACE_SECS.store(grace.as_secs(), Ordering::Relaxed);
}

fn grace() -> Duration {
    Duration::from_secs(GRACE_SECS.load(Ordering::Relaxed))
}

/// How often the data dir is looked at: a few times per grace period, between 1 s and 1 min
/// (listing the data dir is cheap, and each copy costs one etcd read only once its grace
/// period is over).
fn sweep_every() -> Duration {
    (grace() / 4).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// The partition whose replica copy `name` is (`p-NNNN.replica`).
pub(super) fn copy_partition(name: &str) -> Option<u32> {
    let digits = name.strip_prefix("p-")?.strip_suffix(".replica")?;
    if digits.len() < 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Whether the map names `node` for `p` in any way that needs its copy.
fn listed(map: &ringmail_cluster::PartitionMap, node: &str, p: u32) -> bool {
    let a = map.assignment(p);
    a.owned_by(node) || a.replicated_on(node) || a.moving_to() == Some(node)
}

/// The executor task that removes this executor's stale copies.
pub fn stale_task(exec: &Rc<Executor>) -> Result<Option<LocalTask>, String> {
    let Some(view) = crate::moves::view() else {
        return Ok(None);
    };
    let exec = exec.clone();
    Ok(Some(Box::pin(async move {
        // When each unlisted copy was first seen unlisted (by this process: after a restart
        // the grace period starts again).
        let mut unlisted: HashMap<u32, Instant> = HashMap::new();
        loop {
            sweep(&exec, &view, &mut unlisted).await;
            if exec
                .until_shutdown(glommio::timer::sleep(sweep_every()))
                .await
                .is_none()
            {
                return;
            }
        }
    })))
}

/// One look at this executor's replica copies.
async fn sweep(exec: &Rc<Executor>, view: &ClusterView, unlisted: &mut HashMap<u32, Instant>) {
    let root = exec.data_dir.clone();
    let names = match std::fs::read_dir(&root) {
        Ok(entries) => entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect::<Vec<String>>(),
        Err(e) => {
            warn!("listing {} for stale replica copies: {e}", root.display());
            return;
        }
    };
    let me = view.node().to_string();
    let map = view.map();
    let mine: std::collections::BTreeSet<u32> = names
        .iter()
        .filter_map(|n| copy_partition(n))
        .filter(|p| *p < map.partitions && executor_of(*p, exec.count) == exec.id)
        .collect();
    unlisted.retain(|p, _| mine.contains(p));
    for p in mine {
        if listed(&map, &me, p) {
            unlisted.remove(&p);
            continue;
        }
        let since = *unlisted.entry(p).or_insert_with(Instant::now);
        if since.elapsed() < grace() || view.fenced() {
            continue;
        }
        match view.stale_copy(p).await {
            Ok(None) => {}
            // Looked at again at the next sweep.
            Ok(Some(_)) | Err(_) => continue,
        }
        let target = Partitions::dir(&root, p);
        let view = view.clone();
        let me = me.clone();
        match remove_stale_copy(&target, move || !listed(&view.map(), &me, p)).await {
            Ok(true) => {
                unlisted.remove(&p);
                COUNTERS
                    .stale_copies_removed
                    .fetch_add(1, Ordering::Relaxed);
                info!(
                    partition = p,
                    unlisted_secs = since.elapsed().as_secs(),
                    "removed a stale replica copy: the map no longer lists this node for the \
                     partition, and its owner and every replica are alive and in sync"
                );
            }
            Ok(false) => {}
            Err(e) => warn!(partition = p, "could not remove a stale replica copy: {e}"),
        }
    }
}
