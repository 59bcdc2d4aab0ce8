//! Stale copies: copies of a partition on this node that the map no longer lists it for,
//! swept so that they do not pile up on disk forever, and removed only when that is safe
//! (docs/cluster.md, "Stale copies"):
//! - a replica copy `p-NNNN.replica/` (its replica was moved away, dropped while the node
//!   was dead, or dropped as surplus);
//! - an old owner's `p-NNNN/` after a failover (old_owner.rs): made a replica copy at once
//!   when that is safe, so it is then swept (or seeded) as one;
//! - a `p-NNNN/` marked MOVED: left by a completed move ("moved to node N at epoch E"), or
//!   by a takeover while this node served it;
//! - an old owner's copy set aside (`p-NNNN.old-owner-E`, old_owner.rs) where it may hold
//!   acknowledged mail the new owner lacks: never removed, only shown.
//!
//! A copy goes only when:
//! - the local map has not listed this node for `p` (owner, move target, and for a replica
//!   copy replica) for `[cluster] stale_copy_grace_secs` (a replica placed here again within
//!   that time is seeded with only what changed, not the whole partition);
//! - then, read from etcd (not the local copy, which may lag), `p` is complete elsewhere as
//!   ringmail_cluster's `copy_needed` judges it for the copy's kind: a live owner other than
//!   this node and every replica alive and in sync (`replicas = 0`: a live owner for a
//!   replica copy; the move's epoch or later for what a move left). Otherwise, for instance
//!   while the owner is dead and no in-sync replica is left, the copy may be the only
//!   up-to-date one and stays.
//!
//! The removal holds the copy as a replication request does, so it never runs while the
//! owner seeds or streams to it, and it checks the local map once more under that hold.
//! Each executor sweeps the copies of its own partitions, and keeps what it found for
//! `cluster status`.

use ringmail_cluster::CopyKind;
use ringmail_store::{is_moved, MOVED_MARKER};

use super::old_owner;
use super::replica::{remove_stale_copy, remove_stale_dir};
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
/// period is over). Every second while the node is fenced: right after a restart it is,
/// until its map has caught up, and an old owner's directories are looked at then.
fn sweep_every(fenced: bool) -> Duration {
    if fenced {
        return Duration::from_secs(1);
    }
    (grace() / 4).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// The partition whose replica copy `name` is (`p-NNNN.replica`).
pub fn copy_partition(name: &str) -> Option<u32> {
    partition_number(name.strip_suffix(".replica")?)
}

/// `p-NNNN` (at least four digits): the partition number.
pub fn partition_number(name: &str) -> Option<u32> {
    let digits = name.strip_prefix("p-")?;
    if digits.len() < 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The epoch of a completed move's MOVED note (`moved to node N at epoch E`); `None` for
/// any other note (a takeover while this node served the partition).
fn moved_epoch(note: &str) -> Option<u64> {
    let rest = note.trim().strip_prefix("moved to node ")?;
    rest.rsplit_once(" at epoch ")?.1.parse().ok()
}

/// What a directory of the data dir is, for the sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    /// `p-NNNN.replica`.
    Replica,
    /// `p-NNNN` without MOVED: the live partition, or an old owner's directory.
    Partition,
    /// `p-NNNN` with MOVED: what a move (`Some(epoch)`) or a takeover (`None`) left.
    Moved(Option<u64>),
    /// `p-NNNN.old-owner-E`: set aside for the operator.
    Aside,
}

impl Found {
    fn kind(self) -> &'static str {
        match self {
            Found::Replica => "replica",
            Found::Partition => "old-owner",
            Found::Moved(Some(_)) => "moved",
            Found::Moved(None) | Found::Aside => "old-owner",
        }
    }

    /// How etcd's entry is judged for it.
    fn copy_kind(self) -> CopyKind {
        match self {
            Found::Replica => CopyKind::Replica,
            Found::Partition | Found::Moved(None) | Found::Aside => CopyKind::OldOwner,
            Found::Moved(Some(epoch)) => CopyKind::Moved { epoch },
        }
    }
}

/// Whether the map names `node` for `p` in a way that needs a copy like `found`: owner or
/// move target for any, replica too for a replica copy (a directory a move or a takeover
/// left is not the replica copy, which lives beside it).
fn listed(map: &ringmail_cluster::PartitionMap, node: &str, p: u32, found: Found) -> bool {
    let a = map.assignment(p);
    a.owned_by(node)
        || a.moving_to() == Some(node)
        || (found == Found::Replica && a.replicated_on(node))
}

/// A stale copy as the last sweep of its executor found it, for `cluster status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Seen {
    pub(super) p: u32,
    pub(super) dir: String,
    pub(super) kind: &'static str,
    pub(super) state: String,
}

/// Per executor, what its last sweep found.
static SEEN: Mutex<Vec<(usize, Vec<Seen>)>> = Mutex::new(Vec::new());

fn publish(executor: usize, seen: Vec<Seen>) {
    let mut all = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    all.retain(|(e, _)| *e != executor);
    all.push((executor, seen));
}

/// The stale copies this node holds, by partition.
pub(super) fn seen() -> Vec<Seen> {
    let all = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    let mut seen: Vec<Seen> = all.iter().flat_map(|(_, s)| s.iter().cloned()).collect();
    seen.sort_by(|a, b| (a.p, &a.dir).cmp(&(b.p, &b.dir)));
    seen
}

/// The executor task that removes this executor's stale copies.
pub fn stale_task(exec: &Rc<Executor>) -> Result<Option<LocalTask>, String> {
    let Some(view) = crate::moves::view() else {
        return Ok(None);
    };
    let exec = exec.clone();
    Ok(Some(Box::pin(async move {
        // When each unlisted copy (by directory name) was first seen unlisted (by this
        // process: after a restart the grace period starts again).
        let mut unlisted: HashMap<String, Instant> = HashMap::new();
        loop {
            sweep(&exec, &view, &mut unlisted).await;
            let every = sweep_every(view.fenced());
            if exec
                .until_shutdown(glommio::timer::sleep(every))
                .await
                .is_none()
            {
                return;
            }
        }
    })))
}

/// One look at this executor's copies.
async fn sweep(exec: &Rc<Executor>, view: &ClusterView, unlisted: &mut HashMap<String, Instant>) {
    let root = exec.data_dir.clone();
    let names = match std::fs::read_dir(&root) {
        Ok(entries) => entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect::<Vec<String>>(),
        Err(e) => {
            warn!("listing {} for stale copies: {e}", root.display());
            return;
        }
    };
    let me = view.node().to_string();
    let map = view.map();
    // By the name alone: a `p-NNNN/` is told from what a move left (MOVED) below.
    let mut mine: Vec<(u32, String, Found)> = names
        .into_iter()
        .filter_map(|n| {
            let (p, found) = if let Some(p) = copy_partition(&n) {
                (p, Found::Replica)
            } else if let Some(p) = old_owner::aside_partition(&n) {
                (p, Found::Aside)
            } else {
                (partition_number(&n)?, Found::Partition)
            };
            Some((p, n, found))
        })
        .filter(|(p, ..)| *p < map.partitions && executor_of(*p, exec.count) == exec.id)
        .collect();
    mine.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    unlisted.retain(|name, _| mine.iter().any(|(_, n, _)| n == name));
    let mut seen = Vec::new();
    for (p, mut name, mut found) in mine {
        let target = Partitions::dir(&root, p);
        if found == Found::Partition && is_moved(&target) {
            let note = std::fs::read_to_string(target.join(MOVED_MARKER)).unwrap_or_default();
            found = Found::Moved(moved_epoch(&note));
        }
        if found != Found::Aside && listed(&map, &me, p, found) {
            unlisted.remove(&name);
            continue;
        }
        let mut note = |state: String| {
            seen.push(Seen {
                p,
                dir: name.clone(),
                kind: found.kind(),
                state,
            })
        };
        if found == Found::Aside {
            note(
                "kept for the operator: an old owner's copy that may hold acknowledged mail \
                 its new owner lacks (never served; `ringmail cluster recover DIR --remove` \
                 on this node sends its mail to the owner, then removes it)"
                    .into(),
            );
            continue;
        }
        if view.fenced() {
            note("looked at once this node's map has caught up (fenced)".into());
            continue;
        }
        if matches!(found, Found::Partition | Found::Moved(None)) {
            // Not served here (the map names another owner, or none yet): an old owner's
            // directory, unless the partition is open (the fencing task hands it over).
            if exec.store.opened(p).is_some() || map.assignment(p).owner.is_none() {
                continue;
            }
            let marked = found != Found::Partition;
            match old_owner::old_owners_dir(view, &me, p, &target, marked, false).await {
                Ok(Some(aside)) => {
                    seen.push(Seen {
                        p,
                        dir: aside,
                        kind: Found::Aside.kind(),
                        state: "set aside for the operator just now".into(),
                    });
                    continue;
                }
                Ok(None) if found == Found::Partition => {
                    name = format!("{name}.replica");
                    found = Found::Replica;
                    if map.assignment(p).replicated_on(&me) {
                        continue;
                    }
                }
                // What a takeover left, swept below once the partition is complete elsewhere.
                Ok(None) => {}
                Err(why) => {
                    note(why);
                    continue;
                }
            }
        }
        let since = *unlisted.entry(name.clone()).or_insert_with(Instant::now);
        let mut note = |state: String| {
            seen.push(Seen {
                p,
                dir: name.clone(),
                kind: found.kind(),
                state,
            })
        };
        let left = grace().saturating_sub(since.elapsed());
        if !left.is_zero() {
            note(format!(
                "unlisted for {} s; looked at again in etcd after {} s more",
                since.elapsed().as_secs(),
                left.as_secs()
            ));
            continue;
        }
        match view.stale_copy(p, found.copy_kind()).await {
            Ok(None) => {}
            Ok(Some(why)) => {
                note(format!("kept: {why}"));
                continue;
            }
            Err(e) => {
                note(format!("kept: {e}"));
                continue;
            }
        }
        let still = {
            let (view, me) = (view.clone(), me.clone());
            move || !listed(&view.map(), &me, p, found)
        };
        let removed = match found {
            Found::Replica => remove_stale_copy(&target, still).await,
            _ => remove_stale_dir(&target, target.clone(), still).await,
        };
        match removed {
            Ok(true) => {
                unlisted.remove(&name);
                removed_one(p, found, since);
            }
            Ok(false) => note("in use; looked at again at the next sweep".into()),
            Err(e) => {
                warn!(partition = p, dir = %name, "could not remove a stale copy: {e}");
                note(format!("could not be removed: {e}"));
            }
        }
    }
    publish(exec.id, seen);
}

/// Counts and logs a removal (a replica copy, or a `p-NNNN/` a move or a takeover left: the
/// sweep turns any other `p-NNNN/` into a replica copy or sets it aside first).
fn removed_one(p: u32, found: Found, since: Instant) {
    let unlisted_secs = since.elapsed().as_secs();
    let counter = match found {
        Found::Replica => &COUNTERS.stale_copies_removed,
        _ => &COUNTERS.moved_copies_removed,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    match found {
        Found::Replica => info!(
            partition = p,
            unlisted_secs,
            "removed a stale replica copy: the map no longer lists this node for the \
             partition, and its owner and every replica are alive and in sync"
        ),
        Found::Moved(Some(epoch)) => info!(
            partition = p,
            unlisted_secs,
            epoch,
            "removed the copy a completed move left: its owner at the move's epoch or later \
             is alive"
        ),
        _ => info!(
            partition = p,
            unlisted_secs,
            "removed an old owner's copy left by a takeover: its owner and every replica are \
             alive and in sync"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_names_and_move_notes() {
        assert_eq!(copy_partition("p-0003.replica"), Some(3));
        assert_eq!(copy_partition("p-0003"), None);
        assert_eq!(partition_number("p-0003"), Some(3));
        assert_eq!(partition_number("p-12345"), Some(12345));
        for name in [
            "p-003",
            "p-0003.incoming",
            "p-00x3",
            "q-0003",
            "p-0003.replica",
        ] {
            assert_eq!(partition_number(name), None, "{name}");
        }
        assert_eq!(moved_epoch("moved to node b1 at epoch 7\n"), Some(7));
        assert_eq!(
            moved_epoch("taken over by node b1 while this node served it\n"),
            None
        );
        assert_eq!(moved_epoch("moved to node b1 at epoch x"), None);
    }
}
