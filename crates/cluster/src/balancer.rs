//! The balancer: one node, elected through etcd, that keeps every partition owned by a live
//! node and the partitions spread evenly.
//!
//! Election: the `balancer` key is created in a transaction that succeeds only while the key
//! does not exist, bound to the winner's lease, so it disappears when the winner dies. The
//! revision of that write is the winner's token; each of its later transactions also compares
//! the key's create revision with the token, so a balancer that lost its lease (and with it
//! the key) cannot write even if it has not noticed yet.
//!
//! Each round plans from the local copy of the map ([`plan`], a pure function) and writes the
//! plan in batches of compare-and-set transactions; a batch whose compare fails is dropped and
//! the next round plans again from a newer copy.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Compare, CompareOp, PutOptions, Txn, TxnOp};

use crate::control::Ctx;
use crate::map::PartitionMap;
use crate::ownership::{commit, Change, BATCH};
use crate::Error;

/// How often a round runs when nothing changes (it also runs after every map change).
const TICK: Duration = Duration::from_secs(1);

/// How long a newly elected balancer waits before it assigns partitions that never had an
/// owner, so that nodes started together each get their share directly instead of the first
/// one taking everything and handing most of it on.
pub const SETTLE: Duration = Duration::from_secs(2);

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// The partition has no live owner: `to` becomes the owner at the next epoch.
    Assign { partition: u32, to: String },
    /// The live owner should hand the partition to `to` (a move intent).
    Move { partition: u32, to: String },
    /// Withdraw a pending move whose target can no longer take it.
    Cancel { partition: u32 },
}

impl Action {
    pub(crate) fn partition(&self) -> u32 {
        match self {
            Action::Assign { partition, .. }
            | Action::Move { partition, .. }
            | Action::Cancel { partition } => *partition,
        }
    }

    /// The write that carries this action out against `map`'s entry.
    pub(crate) fn change(&self, map: &PartitionMap) -> Option<Change> {
        let current = map.assignment(self.partition());
        match self {
            Action::Assign { partition, to } => Some(Change::assign(*partition, current, to)),
            Action::Move { partition, to } => Change::intent(*partition, current, to),
            Action::Cancel { partition } => Change::cancel(*partition, current),
        }
    }
}

/// What should change so that every partition has a live owner and every live, undrained
/// node ends up with P/N or P/N + 1 partitions, counting pending moves at their destination.
/// Never-owned partitions are left alone unless `assign_new`.
pub(crate) fn plan(map: &PartitionMap, assign_new: bool) -> Vec<Action> {
    // Nodes that may receive partitions, with the partitions they hold or are receiving.
    let mut load: BTreeMap<&str, usize> = map
        .nodes
        .keys()
        .filter(|n| !map.drained.contains(*n))
        .map(|n| (n.as_str(), 0))
        .collect();
    if load.is_empty() {
        return Vec::new();
    }
    let mut actions = Vec::new();
    // Partitions that need a new home: (partition, whether a live owner hands it over).
    let mut homeless = Vec::new();
    // Per node, the partitions it could give away (active, owned, untouched).
    let mut movable: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for (p, a) in map.assignments.iter().enumerate() {
        let p = p as u32;
        let live_owner = a.owner.as_deref().filter(|o| map.alive(o));
        let target = a.moving_to().filter(|t| load.contains_key(t));
        match (live_owner, target) {
            // The owner's node is gone, but the partition's mail is on that node's disk, and
            // until replicas exist (issue 15) no other node has it: giving the partition away
            // would show its users empty mailboxes. It stays unserved (IMAP NO [UNAVAILABLE],
            // LMTP 451, so the MTA retries) until the node comes back or an operator moves it.
            (None, _) if a.owner.is_some() => {}
            (None, _) if a.owner.is_none() && !assign_new => {}
            (None, Some(to)) => {
                // The owner died mid-move: give it straight to where it was going.
                actions.push(Action::Assign {
                    partition: p,
                    to: to.to_string(),
                });
                *load.get_mut(to).expect("target is eligible") += 1;
            }
            (None, None) => homeless.push((p, false)),
            (Some(_), Some(to)) => *load.get_mut(to).expect("target is eligible") += 1,
            (Some(owner), None) => {
                let owner_eligible = load.contains_key(owner);
                if a.moving_to().is_some() && owner_eligible {
                    actions.push(Action::Cancel { partition: p });
                    *load.get_mut(owner).expect("eligible") += 1;
                } else if owner_eligible {
                    *load.get_mut(owner).expect("eligible") += 1;
                    movable.entry(owner).or_default().push(p);
                } else {
                    homeless.push((p, true));
                }
            }
        }
    }
    for (p, handed_over) in homeless {
        let to = least_loaded(&load).to_string();
        *load.get_mut(to.as_str()).expect("eligible") += 1;
        actions.push(if handed_over {
            Action::Move { partition: p, to }
        } else {
            Action::Assign { partition: p, to }
        });
    }
    // Even out: move one partition at a time from the fullest node that has one to give to
    // the emptiest node. Each step lowers the sum of squared loads, so this ends.
    loop {
        let min = least_loaded(&load);
        let min_load = load[min];
        let donor = load
            .iter()
            .filter(|(n, _)| movable.get(*n).is_some_and(|m| !m.is_empty()))
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
            .map(|(n, l)| (*n, *l));
        let Some((donor, donor_load)) = donor else {
            break;
        };
        if donor_load <= min_load + 1 {
            break;
        }
        let p = movable
            .get_mut(donor)
            .and_then(|m| m.pop())
            .expect("donor has a movable partition");
        let min = min.to_string();
        *load.get_mut(donor).expect("eligible") -= 1;
        *load.get_mut(min.as_str()).expect("eligible") += 1;
        actions.push(Action::Move {
            partition: p,
            to: min,
        });
    }
    actions
}

/// The eligible node with the fewest partitions (the lowest id among equals, so plans are
/// deterministic).
fn least_loaded<'a>(load: &BTreeMap<&'a str, usize>) -> &'a str {
    load.iter()
        .min_by(|a, b| a.1.cmp(b.1).then(a.0.cmp(b.0)))
        .map(|(n, _)| *n)
        .expect("at least one eligible node")
}

/// Writes `actions` (planned against `map`) in batches; `fence` is checked by each batch.
/// Returns the revision of the last batch written, if any. A batch that loses a race ends
/// the round: the rest is planned again from a newer map.
pub(crate) async fn apply(
    ctx: &Ctx,
    map: &PartitionMap,
    actions: &[Action],
    fence: Option<Compare>,
) -> Result<Option<i64>, Error> {
    let mut last = None;
    for batch in actions.chunks(BATCH) {
        let changes: Vec<Change> = batch.iter().filter_map(|a| a.change(map)).collect();
        match commit(&ctx.etcd, &ctx.keys, &changes, fence.clone()).await? {
            Some(revision) => {
                last = Some(revision);
                count(ctx, batch);
            }
            None => {
                ctx.shared
                    .metrics
                    .claims_lost
                    .fetch_add(1, Ordering::Relaxed);
                break;
            }
        }
    }
    Ok(last)
}

fn count(ctx: &Ctx, batch: &[Action]) {
    let metrics = &ctx.shared.metrics;
    for action in batch {
        let counter = match action {
            Action::Assign { .. } => &metrics.claims_won,
            Action::Move { .. } => &metrics.moves_marked,
            Action::Cancel { .. } => &metrics.moves_cancelled,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// This node's term as balancer.
struct Term {
    /// The revision of the write that created the `balancer` key.
    token: i64,
    since: Instant,
}

/// The balancer task of the control thread: campaigns while no balancer is elected, and runs
/// rounds while it is the balancer.
pub(crate) async fn run(ctx: Arc<Ctx>) {
    let shared = &ctx.shared;
    let mut seen = shared.notifier.seq();
    let mut term: Option<Term> = None;
    // After a write, rounds wait until the local copy shows it, so they do not plan again
    // from a copy that predates it.
    let mut written: i64 = 0;
    loop {
        tokio::select! {
            s = shared.notifier.wait(seen) => seen = s,
            _ = tokio::time::sleep(TICK) => {}
        }
        let map = shared.map.load_full();
        if shared.fenced() {
            // Without a valid lease this node may already have been replaced.
            if term.take().is_some() {
                shared.is_balancer.store(false, Ordering::Relaxed);
            }
            continue;
        }
        let Some(current) = &term else {
            if map.balancer.is_none() {
                match campaign(&ctx).await {
                    Ok(Some(token)) => {
                        tracing::info!(node = %shared.node, "elected cluster balancer");
                        shared
                            .metrics
                            .balancer_elections
                            .fetch_add(1, Ordering::Relaxed);
                        shared.is_balancer.store(true, Ordering::Relaxed);
                        term = Some(Term {
                            token,
                            since: Instant::now(),
                        });
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!("balancer election: {e}"),
                }
            }
            continue;
        };
        if map.revision >= current.token && map.balancer.as_deref() != Some(shared.node.as_str()) {
            tracing::info!(node = %shared.node, "no longer the cluster balancer");
            shared.is_balancer.store(false, Ordering::Relaxed);
            term = None;
            continue;
        }
        if map.revision < written.max(current.token) {
            continue;
        }
        let actions = plan(&map, current.since.elapsed() >= SETTLE);
        if actions.is_empty() {
            continue;
        }
        let fence = Compare::create_revision(ctx.keys.balancer(), CompareOp::Equal, current.token);
        match apply(&ctx, &map, &actions, Some(fence)).await {
            Ok(Some(revision)) => written = revision,
            Ok(None) => {}
            Err(e) => tracing::warn!("cluster balancer: {e}"),
        }
    }
}

/// Tries to create the `balancer` key bound to this node's lease. Returns the token when
/// this node won.
async fn campaign(ctx: &Ctx) -> Result<Option<i64>, Error> {
    let key = ctx.keys.balancer();
    let lease = ctx.shared.lease_id.load(Ordering::Relaxed);
    let txn = Txn::new()
        .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
        .and_then([TxnOp::put(
            key,
            ctx.shared.node.as_bytes(),
            Some(PutOptions::new().with_lease(lease)),
        )]);
    let resp = ctx.etcd.txn(txn).await?;
    Ok(resp
        .succeeded()
        .then(|| resp.header().map_or(0, |h| h.revision())))
}

/// Partitions per node and how far apart the fullest and the emptiest are, over `nodes`.
pub fn spread<'a>(
    map: &PartitionMap,
    nodes: impl IntoIterator<Item = &'a str>,
) -> (BTreeMap<String, usize>, usize) {
    let counts: BTreeMap<String, usize> = nodes
        .into_iter()
        .map(|n| (n.to_string(), map.owned_count(n)))
        .collect();
    let max = counts.values().copied().max().unwrap_or(0);
    let min = counts.values().copied().min().unwrap_or(0);
    (counts, max - min)
}

/// The set of partitions a plan touches (a batch must not write one key twice).
#[cfg(test)]
fn touched(actions: &[Action]) -> std::collections::BTreeSet<u32> {
    actions.iter().map(Action::partition).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::{Assignment, NodeInfo, PartitionState};

    fn map_with(nodes: &[&str], partitions: u32) -> PartitionMap {
        let mut map = PartitionMap::new("t", partitions);
        for n in nodes {
            map.nodes.insert(
                n.to_string(),
                NodeInfo {
                    id: n.to_string(),
                    client: vec![],
                    internal: format!("{n}:7143"),
                    started: 0,
                },
            );
        }
        map
    }

    /// Carries a plan out on the map the way the data plane eventually would: assignments at
    /// once, moves completed.
    fn settle(map: &mut PartitionMap, actions: &[Action]) {
        for action in actions {
            let a = &mut map.assignments[action.partition() as usize];
            match action {
                Action::Assign { to, .. } | Action::Move { to, .. } => {
                    *a = Assignment {
                        owner: Some(to.clone()),
                        epoch: a.epoch + 1,
                        state: PartitionState::Active,
                        revision: a.revision + 1,
                    }
                }
                Action::Cancel { .. } => a.state = PartitionState::Active,
            }
        }
    }

    fn assert_even(map: &PartitionMap) {
        let live: Vec<&str> = map
            .nodes
            .keys()
            .filter(|n| !map.drained.contains(*n))
            .map(String::as_str)
            .collect();
        let (counts, gap) = spread(map, live);
        assert!(gap <= 1, "{counts:?}");
        let total: usize = counts.values().sum();
        assert_eq!(total, map.partitions as usize, "{counts:?}");
    }

    #[test]
    fn fresh_cluster_is_assigned_evenly_once_settled() {
        let mut map = map_with(&["a", "b", "c"], 100);
        assert!(plan(&map, false).is_empty(), "never-owned partitions wait");
        let actions = plan(&map, true);
        assert_eq!(actions.len(), 100);
        assert_eq!(touched(&actions).len(), 100);
        assert!(actions.iter().all(|a| matches!(a, Action::Assign { .. })));
        settle(&mut map, &actions);
        assert_even(&map);
        assert!(plan(&map, true).is_empty(), "a balanced map needs nothing");
    }

    #[test]
    fn dead_owners_partitions_wait_for_it() {
        let mut map = map_with(&["a", "b", "c"], 90);
        let initial = plan(&map, true);
        settle(&mut map, &initial);
        let before = map.assignments.clone();
        let c_node = map.nodes.remove("c").expect("c was registered");
        // Its mail is on c's disk only: nobody else may serve its partitions, whether or not
        // the balancer may assign new ones, and the living are not reshuffled for it.
        assert!(plan(&map, false).is_empty());
        assert!(plan(&map, true).is_empty());
        assert_eq!(map.owned_count("c"), 30);
        // When c comes back it still owns them.
        map.nodes.insert("c".into(), c_node);
        assert!(plan(&map, true).is_empty());
        assert_eq!(map.assignments, before);
    }

    #[test]
    fn joining_node_gets_a_fair_share_as_moves() {
        let mut map = map_with(&["a", "b", "c"], 64);
        let initial = plan(&map, true);
        settle(&mut map, &initial);
        map = {
            let mut m = map_with(&["a", "b", "c", "d"], 64);
            m.assignments = map.assignments.clone();
            m
        };
        let actions = plan(&map, true);
        assert_eq!(actions.len(), 16);
        assert!(actions
            .iter()
            .all(|a| matches!(a, Action::Move { to, .. } if to == "d")));
        settle(&mut map, &actions);
        assert_even(&map);
    }

    #[test]
    fn drained_node_is_emptied_and_gets_nothing() {
        let mut map = map_with(&["a", "b", "c"], 30);
        let initial = plan(&map, true);
        settle(&mut map, &initial);
        map.drained.insert("b".into());
        let actions = plan(&map, true);
        assert_eq!(actions.len(), 10);
        assert!(actions.iter().all(|a| matches!(a, Action::Move { .. })));
        settle(&mut map, &actions);
        assert_eq!(map.owned_count("b"), 0);
        assert_even(&map);
    }

    #[test]
    fn moves_to_a_dead_target_are_cancelled_or_reassigned() {
        let mut map = map_with(&["a", "b"], 4);
        let initial = plan(&map, true);
        settle(&mut map, &initial);
        // a hands 0 to c, which then dies; b's partition 1 is moving to a, and b dies.
        map.assignments[0].state = PartitionState::Moving { to: "c".into() };
        map.assignments[1].owner = Some("b".into());
        map.assignments[1].state = PartitionState::Moving { to: "a".into() };
        map.assignments[0].owner = Some("a".into());
        map.nodes.remove("b");
        let actions = plan(&map, true);
        assert!(
            actions.contains(&Action::Cancel { partition: 0 }),
            "{actions:?}"
        );
        // b died mid-move: its partition waits for b rather than go to a, which never
        // received the data (moves do not copy yet).
        assert!(actions.iter().all(|a| a.partition() != 1), "{actions:?}");
    }

    #[test]
    fn pending_moves_count_at_their_destination() {
        let mut map = map_with(&["a", "b"], 4);
        for p in 0..4 {
            map.assignments[p] = Assignment {
                owner: Some("a".into()),
                epoch: 1,
                state: PartitionState::Active,
                revision: 1,
            };
        }
        map.assignments[0].state = PartitionState::Moving { to: "b".into() };
        map.assignments[1].state = PartitionState::Moving { to: "b".into() };
        assert!(
            plan(&map, true).is_empty(),
            "two of four already going to b"
        );
    }

    #[test]
    fn no_eligible_node_no_plan() {
        let mut map = map_with(&["a"], 8);
        map.drained.insert("a".into());
        assert!(plan(&map, true).is_empty());
        let map = map_with(&[], 8);
        assert!(plan(&map, true).is_empty());
    }
}
