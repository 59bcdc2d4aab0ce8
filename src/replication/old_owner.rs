//! An old owner's partition directory: a node that was stopped (a crash, `kill -9`) while
//! its partitions failed over comes back with `p-NNNN/` directories the map now gives to
//! other nodes at a later epoch. The node never serves them (the map routes those users to
//! the new owners), and what it does with them is decided here and in stale.rs.
//!
//! With `sync = true` the new owner was promoted from an in-sync replica, so its log holds
//! every record this copy acknowledged; whatever this copy has beyond was never
//! acknowledged to a client. So the directory becomes this node's replica copy
//! (`p-NNNN.replica/`, as `ReplicaLog::rejoin` does when a new owner first seeds it): a
//! replica placed here is seeded with only what differs (seeding compares crc32c and
//! replaces a tail only this copy has), and a copy the map does not list is removed after
//! the grace period once the partition is complete elsewhere, like any stale replica copy.
//!
//! With `replicas = 0` or `sync = false` that argument does not hold (the new owner can only
//! have been given the partition by an operator's move, or may lack the last acknowledged
//! writes), so unless the map lists this node as a replica (then seeding takes it, as
//! before), the directory is set aside as `p-NNNN.old-owner-E` (E: the epoch the map gives
//! the partition to its new owner at): never opened, never removed by ringmail, out of the
//! way of a move back to this node, logged and shown by `cluster status` for the operator.

use super::replica::Busy;
use super::*;

/// `[cluster] replicas` of this node, set at start.
static REPLICAS: AtomicU64 = AtomicU64::new(1);

/// Sets `[cluster] replicas` for every executor (before they start).
pub fn set_replicas(replicas: u32) {
    REPLICAS.store(u64::from(replicas), Ordering::Relaxed);
}

pub(super) fn replicas() -> usize {
    REPLICAS.load(Ordering::Relaxed) as usize
}

/// Why an old owner's directory of a partition the map does not list this node as a
/// replica of must stay as it is (`None`: it becomes a replica copy).
pub(super) fn must_stay(replicas: usize, sync: bool) -> Option<&'static str> {
    if replicas == 0 {
        Some(
            "kept for the operator: with replicas = 0 the new owner was not promoted from an \
             in-sync copy, so this one may hold acknowledged mail it lacks",
        )
    } else if !sync {
        Some(
            "kept for the operator: with sync = false it may end in acknowledged writes the \
             new owner lacks",
        )
    } else {
        None
    }
}

/// `p-NNNN.old-owner-E` beside `target` (`p-NNNN`).
pub(super) fn aside_dir(target: &Path, epoch: u64) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".old-owner-{epoch}"));
    target.with_file_name(name)
}

/// The partition whose old owner's directory, set aside, `name` is (`p-NNNN.old-owner-E`).
/// Also what `ringmail cluster recover` accepts (src/recover.rs).
pub fn aside_partition(name: &str) -> Option<u32> {
    let (partition, epoch) = name.split_once(".old-owner-")?;
    if epoch.is_empty() || !epoch.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    super::stale::partition_number(partition)
}

/// Sets the old owner's directory `target` aside as [`aside_dir`]`(target, epoch)`, under
/// the same hold and check as [`adopt`]. Returns where it went, or `Ok(None)` as [`adopt_dir`].
pub(super) async fn set_aside(
    target: &Path,
    epoch: u64,
    still_old: impl FnOnce() -> bool,
) -> Result<Option<PathBuf>, StoreError> {
    let Some(_busy) = Busy::take(target) else {
        return Ok(None);
    };
    if !still_old() {
        return Ok(None);
    }
    let aside = aside_dir(target, epoch);
    if aside.exists() {
        return Err(StoreError::NotPermitted(
            "an old owner's copy of that epoch is set aside already; remove one by hand",
        ));
    }
    let (from, to) = (target.to_path_buf(), aside.clone());
    glommio::executor()
        .spawn_blocking(move || -> Result<(), StoreError> {
            std::fs::rename(&from, &to)?;
            if let Some(parent) = to.parent() {
                std::fs::File::open(parent)?.sync_all()?;
            }
            Ok(())
        })
        .await?;
    Ok(Some(aside))
}

/// Renames the old owner's directory `target` to its replica copy, if `still_old` holds once
/// no replication request works on it (the caller checks its map again). Returns the copy's
/// log end, `Ok(None)` when a request holds it (the next sweep tries again) or
/// `still_old` no longer holds.
pub(super) async fn adopt_dir(
    target: &Path,
    still_old: impl FnOnce() -> bool,
) -> Result<Option<Option<LogEnd>>, StoreError> {
    let Some(_busy) = Busy::take(target) else {
        return Ok(None);
    };
    if !still_old() {
        return Ok(None);
    }
    if ReplicaLog::dir_for(target).exists() {
        return Err(StoreError::NotPermitted(
            "a replica copy is there too; remove one of them by hand",
        ));
    }
    let target = target.to_path_buf();
    glommio::executor()
        .spawn_blocking(move || ReplicaLog::rejoin(&target).map(|r| Some(r.position())))
        .await
}

/// An old owner's `p-NNNN/` of `p` (the map names another owner; `marked`: marked MOVED by
/// a takeover) is made this node's replica copy when that is safe or the map lists this
/// node as a replica (`Ok(None)`), and set aside when it may hold acknowledged mail the new
/// owner lacks (`Ok(Some(directory name))`); one marked MOVED is only ever set aside
/// (`Ok(None)`: swept as what a takeover left). `Err` says why it stays as it is for now.
/// `for_move`: the partition is moving to this node and the directory is in the way.
pub(super) async fn old_owners_dir(
    view: &ClusterView,
    me: &str,
    p: u32,
    target: &Path,
    marked: bool,
    for_move: bool,
) -> Result<Option<String>, String> {
    let a = view.map().assignment(p).clone();
    let owner = a.owner.clone().unwrap_or_default();
    let still_old = {
        let (view, me, epoch) = (view.clone(), me.to_string(), a.epoch);
        move || {
            let map = view.map();
            let now = map.assignment(p);
            !view.fenced()
                && now.epoch == epoch
                && now.owner.as_deref().is_some_and(|o| o != me)
                && (for_move || now.moving_to() != Some(&me))
        }
    };
    let why_stay = must_stay(replicas(), node::sync());
    let adopt = !marked && (a.replicated_on(me) || why_stay.is_none());
    // Ok(Some(x)): done, x is what the caller is told; Ok(None): not done this time.
    let done = if adopt {
        adopt_dir(target, still_old).await.map(|r| {
            r.map(|end| {
                info!(
                    partition = p,
                    owner = %owner,
                    epoch = a.epoch,
                    end = ?end,
                    "an old owner's partition directory became a replica copy: the partition \
                     failed over to another node while this one was away; it is never served \
                     from here, and seeding replaces whatever it has that no client was told \
                     about"
                );
                None
            })
        })
    } else {
        let Some(why) = why_stay else {
            return Ok(None);
        };
        set_aside(target, a.epoch, still_old).await.map(|r| {
            r.map(|aside| {
                let aside = aside
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                warn!(
                    partition = p,
                    owner = %owner,
                    epoch = a.epoch,
                    dir = %aside,
                    "an old owner's partition directory was set aside: the partition belongs \
                     to another node now, and this copy is never served; {why}"
                );
                Some(aside)
            })
        })
    };
    match done {
        Ok(Some(told)) => {
            COUNTERS.old_owner_copies.fetch_add(1, Ordering::Relaxed);
            Ok(told)
        }
        // A replication request holds it, or the map changed under the hold.
        Ok(None) => Err("in use or the map changed; looked at again later".into()),
        Err(e) => {
            warn!(
                partition = p,
                "an old owner's partition directory stays: {e}"
            );
            Err(format!("kept: {e}"))
        }
    }
}

/// Before a move to this node starts receiving partition `p`: a partition directory in the
/// way that this node does not own (an old owner's, from before a failover) becomes a
/// replica copy or is set aside, as a sweep would do with it, so the move can install the
/// new owner's copy. (A sweep leaves a directory alone while the partition moves here: it
/// cannot tell an old one from one this move already installed; a move's start can.)
pub async fn make_way_for_move(view: &ClusterView, p: u32, target: &Path) -> Result<(), String> {
    let me = view.node().to_string();
    old_owners_dir(view, &me, p, target, false, true)
        .await
        .map(|_| ())
}
