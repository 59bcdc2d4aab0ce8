//! The writes to partition keys. Each is a compare-and-set on the key's mod revision as the
//! writer saw it, so of two writers that saw the same entry exactly one wins; the loser learns
//! it lost and reads the map again. An owner change always raises the epoch by one, so the
//! epoch is a fencing token: a node holding epoch e knows that any write stamped with a lower
//! epoch came from an owner that has been replaced.

use std::collections::BTreeSet;

use etcd_client::{Compare, CompareOp, PutOptions, Txn, TxnOp};

use crate::etcd::Etcd;
use crate::keys::Keys;
use crate::map::{Assignment, PartitionState, Stored};
use crate::Error;

/// Partitions written in one transaction. etcd refuses transactions of more than 128
/// operations (`--max-txn-ops`); a batch needs one compare per partition, one per target node,
/// one per dead owner and one for the balancer's fence, so 32 stays below it (at most 97)
/// while still assigning a 4096-partition cluster in 128 transactions.
pub(crate) const BATCH: usize = 32;

/// One partition's new entry, with what must still hold for it to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Change {
    pub(crate) partition: u32,
    /// The mod revision the writer saw (0: the key did not exist).
    pub(crate) expect: i64,
    pub(crate) new: Stored,
    /// A node whose registration (lease) must exist, so nothing is handed to a node that died
    /// after the writer looked.
    pub(crate) target: Option<String>,
    /// A node whose registration must not exist: the dead owner a partition is taken from. If
    /// it came back (re-registered) meanwhile, it keeps its partitions.
    pub(crate) gone: Option<String>,
}

impl Change {
    /// Makes `to` the owner at the next epoch, taking the partition from a dead owner (or
    /// none).
    pub(crate) fn assign(partition: u32, current: &Assignment, to: &str) -> Change {
        Change {
            gone: current.owner.clone(),
            ..Change::hand_over(partition, current, to)
        }
    }

    /// Makes `to` the owner at the next epoch; the live owner has handed the partition over.
    pub(crate) fn hand_over(partition: u32, current: &Assignment, to: &str) -> Change {
        Change {
            partition,
            expect: current.revision,
            new: Stored {
                owner: to.to_string(),
                epoch: current.epoch + 1,
                state: PartitionState::Active,
            },
            target: Some(to.to_string()),
            gone: None,
        }
    }

    /// Asks the owner to hand the partition to `to`; owner and epoch stay.
    pub(crate) fn intent(partition: u32, current: &Assignment, to: &str) -> Option<Change> {
        Some(Change {
            partition,
            expect: current.revision,
            new: Stored {
                owner: current.owner.clone()?,
                epoch: current.epoch,
                state: PartitionState::Moving { to: to.to_string() },
            },
            target: Some(to.to_string()),
            gone: None,
        })
    }

    /// Withdraws a pending move (its target died or is being drained).
    pub(crate) fn cancel(partition: u32, current: &Assignment) -> Option<Change> {
        Some(Change {
            partition,
            expect: current.revision,
            new: Stored {
                owner: current.owner.clone()?,
                epoch: current.epoch,
                state: PartitionState::Active,
            },
            target: None,
            gone: None,
        })
    }
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
        if let Some(target) = &change.target {
            targets.insert(target.as_str());
        }
        if let Some(owner) = &change.gone {
            gone.insert(owner.as_str());
        }
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
    Ok(Assignment {
        owner: Some(stored.owner),
        epoch: stored.epoch,
        state: stored.state,
        revision: found.mod_revision(),
    })
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
