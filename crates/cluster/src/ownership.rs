//! The writes to partition keys. Each is a compare-and-set on the key's mod revision as the
//! writer saw it, so of two writers that saw the same entry exactly one wins; the loser learns
//! it lost and reads the map again. An owner change always raises the epoch by one, so the
//! epoch is a fencing token: a node holding epoch e knows that any write stamped with a lower
//! epoch came from an owner that has been replaced.

use std::collections::BTreeSet;

use etcd_client::{Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse};

use crate::etcd::Etcd;
use crate::keys::Keys;
use crate::map::{Assignment, PartitionMap, PartitionState, Stored};
use crate::Error;

/// Partitions written in one transaction. etcd refuses transactions of more than 128
/// operations (`--max-txn-ops`); a batch needs one compare per partition, one per target node,
/// one per dead owner and one for the balancer's fence, so 32 stays below it (at most 97)
/// while still assigning a 4096-partition cluster in 128 transactions.
pub(crate) const BATCH: usize = 32;

/// etcd's limit on the compares of one transaction (its default `--max-txn-ops`, which
/// counts compares and puts separately). A change that adds replicas compares each new
/// replica's registration too, so batches are also cut by their compares (one is kept for
/// the balancer's fence).
pub(crate) const MAX_COMPARES: usize = 128;

/// One partition's new entry, with what must still hold for it to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Change {
    pub(crate) partition: u32,
    /// The mod revision the writer saw (0: the key did not exist).
    pub(crate) expect: i64,
    pub(crate) new: Stored,
    /// Nodes whose registration (lease) must exist, so nothing is handed to (or placed on) a
    /// node that died after the writer looked.
    pub(crate) targets: Vec<String>,
    /// Nodes whose registration must not exist: the dead owner a partition is taken from, dead
    /// replicas dropped. If one came back (re-registered) meanwhile, it keeps its place.
    pub(crate) gone: Vec<String>,
}

/// `list` without `node`.
fn without(list: &[String], node: &str) -> Vec<String> {
    list.iter().filter(|n| *n != node).cloned().collect()
}

impl Change {
    /// Makes `to` the owner at the next epoch, taking the partition from a dead owner (or
    /// none). When `to` is an in-sync replica this is a failover: it holds every acknowledged
    /// write, and the other in-sync replicas stay in sync with it. Otherwise `to` starts from
    /// whatever it has, which the replicas' copies do not follow: they are dropped from the
    /// entry (their files are left alone) and new ones are placed and seeded from `to`.
    pub(crate) fn assign(partition: u32, current: &Assignment, to: &str) -> Change {
        let mut change = Change::hand_over(partition, current, to);
        if !current.in_sync_on(to) {
            change.new.replicas.clear();
            change.new.in_sync.clear();
            change.new.leaving.clear();
        }
        change.gone = current.owner.iter().cloned().collect();
        change
    }

    /// Makes `to` the owner at the next epoch; the live owner has handed the partition over
    /// (a completed move: `to` has the owner's files, so the replicas stay as they are, less
    /// `to` itself if it was one).
    pub(crate) fn hand_over(partition: u32, current: &Assignment, to: &str) -> Change {
        let mut new = current.stored(to);
        new.epoch += 1;
        new.state = PartitionState::Active;
        new.replicas = without(&current.replicas, to);
        new.in_sync = without(&current.in_sync, to);
        new.leaving = without(&current.leaving, to);
        Change {
            partition,
            expect: current.revision,
            new,
            targets: vec![to.to_string()],
            gone: Vec::new(),
        }
    }

    /// Asks the owner to hand the partition to `to`; owner, epoch and replicas stay.
    pub(crate) fn intent(partition: u32, current: &Assignment, to: &str) -> Option<Change> {
        let mut new = current.stored(current.owner.as_deref()?);
        new.state = PartitionState::Moving { to: to.to_string() };
        Some(Change {
            partition,
            expect: current.revision,
            new,
            targets: vec![to.to_string()],
            gone: Vec::new(),
        })
    }

    /// Withdraws a pending move (its target died or is being drained).
    pub(crate) fn cancel(partition: u32, current: &Assignment) -> Option<Change> {
        let mut new = current.stored(current.owner.as_deref()?);
        new.state = PartitionState::Active;
        Some(Change {
            partition,
            expect: current.revision,
            new,
            targets: Vec::new(),
            gone: Vec::new(),
        })
    }

    /// Sets the replica lists; owner, epoch and state stay, and so do the replicas being
    /// moved away (`leaving`) that remain listed. `added` must be alive and `dropped` (dead
    /// replicas) gone when it is written.
    pub(crate) fn replicas(
        partition: u32,
        current: &Assignment,
        replicas: Vec<String>,
        in_sync: Vec<String>,
        added: Vec<String>,
        dropped: Vec<String>,
    ) -> Option<Change> {
        let mut new = current.stored(current.owner.as_deref()?);
        new.replicas = replicas;
        new.in_sync = in_sync;
        new.leaving.retain(|n| new.replicas.contains(n));
        Some(Change {
            partition,
            expect: current.revision,
            new,
            targets: added,
            gone: dropped,
        })
    }

    /// The compares this change adds to a transaction (at most: a node named by several
    /// changes of one transaction is compared once).
    pub(crate) fn compares(&self) -> usize {
        1 + self.targets.len() + self.gone.len()
    }
}

/// Splits `items` (changes, with `compares` telling each one's compares) into transactions
/// etcd accepts: at most [`BATCH`] keys and fewer than [`MAX_COMPARES`] compares each (one is
/// left for the balancer's fence).
pub(crate) fn batches<T>(items: Vec<T>, compares: impl Fn(&T) -> usize) -> Vec<Vec<T>> {
    let mut out: Vec<Vec<T>> = Vec::new();
    let mut used = 0;
    for item in items {
        let cost = compares(&item);
        match out.last_mut() {
            Some(batch) if batch.len() < BATCH && used + cost < MAX_COMPARES => {
                used += cost;
                batch.push(item);
            }
            _ => {
                used = cost;
                out.push(vec![item]);
            }
        }
    }
    out
}

/// Writes `changes` in one transaction if every compare holds, plus `fence` (the balancer's
/// proof that it is still the elected one). Returns the revision written, or `None` when a
/// compare failed and nothing was written.
pub(crate) async fn commit(
    etcd: &Etcd,
    keys: &Keys,
    changes: &[Change],
    fence: Option<Compare>,
) -> Result<Option<i64>, Error> {
    let mut compares = Vec::with_capacity(changes.len() * 2 + 1);
    let mut puts = Vec::with_capacity(changes.len());
    let mut targets = BTreeSet::new();
    let mut gone = BTreeSet::new();
    for change in changes {
        let key = keys.partition(change.partition);
        compares.push(Compare::mod_revision(
            key.clone(),
            CompareOp::Equal,
            change.expect,
        ));
        puts.push(TxnOp::put(key, change.new.encode(), None::<PutOptions>));
        targets.extend(change.targets.iter().map(String::as_str));
        gone.extend(change.gone.iter().map(String::as_str));
    }
    for target in targets {
        compares.push(Compare::create_revision(
            keys.node(target),
            CompareOp::Greater,
            0,
        ));
    }
    for owner in gone {
        compares.push(Compare::create_revision(
            keys.node(owner),
            CompareOp::Equal,
            0,
        ));
    }
    compares.extend(fence);
    let txn = Txn::new().when(compares).and_then(puts);
    let resp = etcd.txn(txn).await?;
    Ok(resp
        .succeeded()
        .then(|| resp.header().map_or(0, |h| h.revision())))
}

/// Reads partition `p`'s entry straight from etcd (not from a local copy that may lag).
pub(crate) async fn read(etcd: &Etcd, keys: &Keys, p: u32) -> Result<Assignment, Error> {
    let key = keys.partition(p);
    let resp = etcd.get(&key, None).await?;
    let Some(found) = resp.kvs().first() else {
        return Ok(Assignment::UNSET);
    };
    let stored: Stored = serde_json::from_slice(found.value()).map_err(|e| Error::Corrupt {
        key,
        detail: e.to_string(),
    })?;
    Ok(stored.into_assignment(found.mod_revision()))
}

/// Finishes a move the data plane has carried out: `to` becomes the owner at the next epoch,
/// provided the entry still says `from` is handing the partition to `to` and `to` is alive.
/// Returns the new epoch.
pub(crate) async fn complete_move(
    etcd: &Etcd,
    keys: &Keys,
    partitions: u32,
    p: u32,
    from: &str,
    to: &str,
) -> Result<u64, Error> {
    check_partition(p, partitions)?;
    let current = read(etcd, keys, p).await?;
    if !current.owned_by(from) || current.moving_to() != Some(to) {
        return Err(Error::NotMoving {
            partition: p,
            from: from.to_string(),
            to: to.to_string(),
        });
    }
    let change = Change::hand_over(p, &current, to);
    let epoch = change.new.epoch;
    match commit(etcd, keys, &[change], None).await? {
        Some(_) => Ok(epoch),
        None => Err(Error::Conflict(p)),
    }
}

/// Refuses to give `p`, which has no live owner, to `to` when live in-sync replicas hold its
/// mail and `to` is not one of them: `to` would start from whatever copy it has, and the
/// replicas' copies would no longer count.
pub(crate) fn check_takeover(map: &PartitionMap, p: u32, to: &str) -> Result<(), Error> {
    let a = map.assignment(p);
    let holders: Vec<&str> = a
        .in_sync
        .iter()
        .filter(|n| map.alive(n))
        .map(String::as_str)
        .collect();
    if holders.is_empty() || holders.contains(&to) {
        return Ok(());
    }
    Err(Error::InSyncReplicas {
        partition: p,
        to: to.to_string(),
        replicas: holders.join(", "),
    })
}

pub(crate) fn check_partition(p: u32, partitions: u32) -> Result<(), Error> {
    if p < partitions {
        Ok(())
    } else {
        Err(Error::NoSuchPartition {
            partition: p,
            partitions,
        })
    }
}

/// How often [`set_in_sync`] re-reads and tries again when another writer (the balancer
/// placing or dropping a replica) changed the entry between its read and its write.
const IN_SYNC_TRIES: usize = 5;

/// The owner's write of one replica's in-sync flag: `me` must own `p` at `epoch`, and `node`
/// must be one of its replicas to be added. Read straight from etcd (a local copy could lag
/// behind a write of this very node), written comparing the mod revision read, that `me` is
/// still registered and, when adding, that `node` is. Nothing is written when the flag is
/// already so.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn set_in_sync(
    etcd: &Etcd,
    keys: &Keys,
    partitions: u32,
    me: &str,
    p: u32,
    node: &str,
    in_sync: bool,
    epoch: u64,
) -> Result<(), Error> {
    check_partition(p, partitions)?;
    for _ in 0..IN_SYNC_TRIES {
        let current = read(etcd, keys, p).await?;
        if !current.owned_by(me) || current.epoch != epoch {
            return Err(Error::NotOwner {
                partition: p,
                node: me.to_string(),
                epoch,
                owner: current.owner.clone(),
                current: current.epoch,
            });
        }
        if current.in_sync_on(node) == in_sync {
            return Ok(());
        }
        let mut list = without(&current.in_sync, node);
        let mut targets = vec![me.to_string()];
        if in_sync {
            if !current.replicated_on(node) {
                return Err(Error::NotReplica {
                    partition: p,
                    node: node.to_string(),
                });
            }
            list.push(node.to_string());
            targets.push(node.to_string());
        }
        let change = Change::replicas(
            p,
            &current,
            current.replicas.clone(),
            list,
            targets,
            Vec::new(),
        )
        .expect("owned by me");
        if commit(etcd, keys, &[change], None).await?.is_some() {
            return Ok(());
        }
    }
    Err(Error::Conflict(p))
}

/// What a copy of a partition that the map no longer lists a node for is, which decides
/// when it may go (docs/cluster.md, "Stale copies").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyKind {
    /// A replica copy (`p-NNNN.replica`), also one that was an old owner's partition
    /// directory: it holds at most what an owner wrote to it, and (its owner having been
    /// promoted from an in-sync replica) nothing acknowledged that the partition lacks.
    Replica,
    /// A partition directory of an old owner that was not made a replica copy (one marked
    /// MOVED because the node found the partition taken over while it served it): goes only
    /// when the partition has replicas, all alive and in sync, whatever `replicas` says.
    OldOwner,
    /// The directory a completed move left behind (MOVED, "moved to ... at epoch E"): it was
    /// copied exactly before the hand-over at `epoch`.
    Moved { epoch: u64 },
}

/// Why a copy of `p` that `me` keeps although the map lists it neither as owner nor as
/// replica (a stale copy of `kind`) must stay, judged on `a` (p's entry), `alive` (the
/// registered nodes) and `replicas` (`[cluster] replicas`); `None` when it may be removed:
/// `p` has a live owner other than `me`, and
/// - for a replica copy or an old owner's directory: at least one replica, every replica
///   alive and in sync (every acknowledged write is then on the owner and on each replica,
///   and `me`'s copy is not the only up-to-date one however it came to be there); with
///   `replicas = 0` a replica copy needs only the live owner (nothing is replicated, so
///   nothing proves more, and the copy holds nothing the owner was not sent);
/// - for what a move left: an owner at the move's epoch or later (the move made the copy
///   exact before it handed the partition over).
pub(crate) fn copy_needed(
    a: &Assignment,
    me: &str,
    alive: impl Fn(&str) -> bool,
    kind: CopyKind,
    replicas: usize,
) -> Option<&'static str> {
    let Some(owner) = a.owner.as_deref() else {
        return Some("the partition has no owner");
    };
    if owner == me {
        Some("this node owns the partition")
    } else if kind == CopyKind::Replica && a.replicated_on(me) {
        // (A directory a move or a takeover left is not the replica copy, which lives
        // beside it: it may go while this node is a replica.)
        Some("this node holds one of its replicas")
    } else if a.moving_to() == Some(me) {
        Some("the partition is moving to this node")
    } else if !alive(owner) {
        Some("its owner is not alive")
    } else if let CopyKind::Moved { epoch } = kind {
        (a.epoch < epoch).then_some("the map's owner predates the move")
    } else if kind == CopyKind::Replica && replicas == 0 && a.replicas.is_empty() {
        None
    } else if a.replicas.is_empty() {
        Some("it has no replica elsewhere")
    } else if !a.replicas.iter().all(|n| a.in_sync_on(n) && alive(n)) {
        Some("not every replica of it is alive and in sync")
    } else {
        None
    }
}

/// [`copy_needed`] on `p`'s entry and the registrations as etcd has them now (read in one
/// transaction, so at one revision), not as the local copy shows them.
pub(crate) async fn stale_copy(
    etcd: &Etcd,
    keys: &Keys,
    partitions: u32,
    me: &str,
    p: u32,
    kind: CopyKind,
    replicas: usize,
) -> Result<Option<&'static str>, Error> {
    check_partition(p, partitions)?;
    let key = keys.partition(p);
    let txn = Txn::new().and_then([
        TxnOp::get(key.clone(), None),
        TxnOp::get(keys.node(""), Some(GetOptions::new().with_prefix())),
    ]);
    let resp = etcd.txn(txn).await?;
    let mut gets = resp.op_responses().into_iter().filter_map(|r| match r {
        TxnOpResponse::Get(get) => Some(get),
        _ => None,
    });
    let (Some(entry), Some(nodes)) = (gets.next(), gets.next()) else {
        return Err(Error::Corrupt {
            key,
            detail: "etcd answered a read without its results".into(),
        });
    };
    let a = match entry.kvs().first() {
        None => Assignment::UNSET,
        Some(kv) => serde_json::from_slice::<Stored>(kv.value())
            .map_err(|e| Error::Corrupt {
                key,
                detail: e.to_string(),
            })?
            .into_assignment(kv.mod_revision()),
    };
    let alive: BTreeSet<&[u8]> = nodes.kvs().iter().map(|kv| kv.key()).collect();
    Ok(copy_needed(
        &a,
        me,
        |n| alive.contains(keys.node(n).as_bytes()),
        kind,
        replicas,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::NodeInfo;

    #[test]
    fn only_an_in_sync_replica_takes_over_from_a_dead_owner() {
        let mut map = PartitionMap::new("t", 1);
        for n in ["b", "c", "d"] {
            map.nodes.insert(
                n.into(),
                NodeInfo {
                    id: n.into(),
                    client: vec![],
                    internal: format!("{n}:7143"),
                    started: 0,
                    zone: String::new(),
                },
            );
        }
        map.assignments[0] = Assignment {
            owner: Some("a".into()),
            epoch: 4,
            state: PartitionState::Active,
            revision: 9,
            replicas: vec!["b".into(), "c".into()],
            in_sync: vec!["b".into()],
            leaving: vec![],
        };
        let err = check_takeover(&map, 0, "c").unwrap_err().to_string();
        assert!(err.contains("(b)") && err.contains("not c"), "{err}");
        assert!(check_takeover(&map, 0, "d").is_err());
        check_takeover(&map, 0, "b").unwrap();
        let a = map.assignment(0);
        // Promotion keeps the other replicas, less the new owner; the old owner is not added.
        let promoted = Change::assign(0, a, "b");
        assert_eq!(
            (
                promoted.new.epoch,
                promoted.new.replicas.clone(),
                promoted.new.in_sync.clone()
            ),
            (5, vec!["c".to_string()], vec![])
        );
        assert_eq!(
            (promoted.targets.clone(), promoted.gone.clone()),
            (vec!["b".to_string()], vec!["a".to_string()])
        );
        // Once b is dead too, nothing holds the mail that is alive: an operator may give it to
        // another node, whose copy the old replicas do not follow.
        map.nodes.remove("b");
        check_takeover(&map, 0, "d").unwrap();
        let taken = Change::assign(0, map.assignment(0), "d");
        assert!(taken.new.replicas.is_empty() && taken.new.in_sync.is_empty());
    }

    #[test]
    fn a_stale_copy_goes_only_while_the_partition_is_complete_elsewhere() {
        let complete = Assignment {
            owner: Some("a".into()),
            epoch: 4,
            state: PartitionState::Active,
            revision: 9,
            replicas: vec!["b".into(), "c".into()],
            in_sync: vec!["c".into(), "b".into()],
            leaving: vec![],
        };
        let everyone = |_: &str| true;
        assert_eq!(
            copy_needed(&complete, "d", everyone, CopyKind::Replica, 1),
            None
        );
        // Listed here in any way: kept.
        for me in ["a", "b"] {
            assert!(
                copy_needed(&complete, me, everyone, CopyKind::Replica, 1).is_some(),
                "{me}"
            );
        }
        let moving = Assignment {
            state: PartitionState::Moving { to: "d".into() },
            ..complete.clone()
        };
        assert!(copy_needed(&moving, "d", everyone, CopyKind::Replica, 1).is_some());
        // The owner is dead: the copy could be all that holds its acknowledged writes (if it
        // was an in-sync replica dropped by a balancer that then lost the others).
        let owner_dead = |n: &str| n != "a";
        assert_eq!(
            copy_needed(&complete, "d", owner_dead, CopyKind::Replica, 1),
            Some("its owner is not alive")
        );
        // A replica dead or not in sync, or none at all: kept.
        assert!(copy_needed(&complete, "d", |n: &str| n != "c", CopyKind::Replica, 1).is_some());
        let seeding = Assignment {
            in_sync: vec!["b".into()],
            ..complete.clone()
        };
        assert!(copy_needed(&seeding, "d", everyone, CopyKind::Replica, 1).is_some());
        let alone = Assignment {
            replicas: vec![],
            in_sync: vec![],
            ..complete.clone()
        };
        assert!(copy_needed(&alone, "d", everyone, CopyKind::Replica, 1).is_some());
        assert!(copy_needed(&Assignment::UNSET, "d", everyone, CopyKind::Replica, 1).is_some());
    }

    #[test]
    fn old_owner_and_moved_copies_and_replicas_0() {
        let alone = Assignment {
            owner: Some("a".into()),
            epoch: 4,
            state: PartitionState::Active,
            revision: 9,
            replicas: vec![],
            in_sync: vec![],
            leaving: vec![],
        };
        let complete = Assignment {
            replicas: vec!["b".into()],
            in_sync: vec!["b".into()],
            ..alone.clone()
        };
        let everyone = |_: &str| true;
        let owner_dead = |n: &str| n != "a";
        // replicas = 0: a replica copy goes once the owner is alive; with replicas wanted
        // but none placed yet it stays.
        assert_eq!(
            copy_needed(&alone, "d", everyone, CopyKind::Replica, 0),
            None
        );
        assert!(copy_needed(&alone, "d", everyone, CopyKind::Replica, 1).is_some());
        assert!(copy_needed(&alone, "d", owner_dead, CopyKind::Replica, 0).is_some());
        // An old owner's directory needs in-sync replicas even with replicas = 0: without
        // them the new owner may have been given the partition without its mail.
        for r in [0, 1] {
            assert!(copy_needed(&alone, "d", everyone, CopyKind::OldOwner, r).is_some());
            assert_eq!(
                copy_needed(&complete, "d", everyone, CopyKind::OldOwner, r),
                None
            );
        }
        // What a move left goes once the owner at the move's epoch or later is alive.
        for r in [0, 1] {
            let moved = |epoch| CopyKind::Moved { epoch };
            assert_eq!(copy_needed(&alone, "d", everyone, moved(4), r), None);
            assert_eq!(copy_needed(&alone, "d", everyone, moved(3), r), None);
            assert_eq!(
                copy_needed(&alone, "d", everyone, moved(5), r),
                Some("the map's owner predates the move")
            );
            assert_eq!(
                copy_needed(&alone, "d", owner_dead, moved(4), r),
                Some("its owner is not alive")
            );
            // This node being a replica does not keep it (its replica copy is another
            // directory).
            let here = Assignment {
                replicas: vec!["d".into()],
                in_sync: vec!["d".into()],
                ..alone.clone()
            };
            assert_eq!(copy_needed(&here, "d", everyone, moved(4), r), None);
            assert_eq!(
                copy_needed(&here, "d", everyone, CopyKind::OldOwner, r),
                None
            );
            assert!(copy_needed(&here, "d", everyone, CopyKind::Replica, r).is_some());
            // A move back to this node keeps it (the move replaces it).
            let back = Assignment {
                state: PartitionState::Moving { to: "d".into() },
                ..alone.clone()
            };
            assert!(copy_needed(&back, "d", everyone, moved(4), r).is_some());
        }
    }
}
