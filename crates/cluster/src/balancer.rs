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
//!
//! Replicas: every owned partition gets `replicas` copies on other live, undrained nodes
//! (spread over zones, then onto the nodes holding the fewest replicas); dead replicas are
//! dropped and replaced, a drained node's replicas are dropped once replacements are in
//! sync, and replicas are moved from the nodes holding the most to those holding the fewest
//! (a node that comes back gets its share again), the old copy dropped once the new one is
//! in sync. A partition whose owner died is promoted to one of its live in-sync replicas at the
//! next epoch (failover); without one it waits for its owner.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Compare, CompareOp, PutOptions, Txn, TxnOp};

use crate::control::Ctx;
use crate::map::{Assignment, PartitionMap};
use crate::ownership::{batches, commit, Change};
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
    /// The owner `from` died: its in-sync replica `to` becomes the owner at the next epoch.
    Promote {
        partition: u32,
        from: String,
        to: String,
    },
    /// The live owner should hand the partition to `to` (a move intent).
    Move { partition: u32, to: String },
    /// Withdraw a pending move whose target can no longer take it.
    Cancel { partition: u32 },
    /// New replica lists: `added` are placed (the owner seeds them), `dead` are dropped
    /// because their node's registration is gone, `leaving` are being moved away (dropped
    /// once the replicas that replace them are in sync).
    Replicas {
        partition: u32,
        replicas: Vec<String>,
        in_sync: Vec<String>,
        added: Vec<String>,
        dead: Vec<String>,
        leaving: Vec<String>,
    },
}

impl Action {
    pub(crate) fn partition(&self) -> u32 {
        match self {
            Action::Assign { partition, .. }
            | Action::Promote { partition, .. }
            | Action::Move { partition, .. }
            | Action::Cancel { partition }
            | Action::Replicas { partition, .. } => *partition,
        }
    }

    /// The write that carries this action out against `map`'s entry.
    pub(crate) fn change(&self, map: &PartitionMap) -> Option<Change> {
        let current = map.assignment(self.partition());
        match self {
            Action::Assign { partition, to } | Action::Promote { partition, to, .. } => {
                Some(Change::assign(*partition, current, to))
            }
            Action::Move { partition, to } => Change::intent(*partition, current, to),
            Action::Cancel { partition } => Change::cancel(*partition, current),
            Action::Replicas {
                partition,
                replicas,
                in_sync,
                added,
                dead,
                leaving,
            } => Change::replicas(
                *partition,
                current,
                replicas.clone(),
                in_sync.clone(),
                added.clone(),
                dead.clone(),
            )
            .map(|mut change| {
                change.new.leaving = leaving.clone();
                change
            }),
        }
    }
}

/// What a round plans with besides the map.
#[derive(Debug, Clone)]
pub(crate) struct Params {
    /// Whether partitions that never had an owner may be assigned (after [`SETTLE`]).
    pub(crate) assign_new: bool,
    /// Replicas per partition (`[cluster] replicas`).
    pub(crate) replicas: usize,
    /// The zones of nodes seen alive, kept after they die: a dead node's registration (and
    /// its zone) is gone from the map, and a failover prefers a replica in the dead owner's
    /// zone.
    pub(crate) zones: BTreeMap<String, String>,
    /// Replica moves in flight at once per receiving node (`[cluster]
    /// replica_moves_per_node`).
    pub(crate) replica_moves_per_node: usize,
}

impl Default for Params {
    fn default() -> Params {
        Params {
            assign_new: false,
            replicas: 0,
            zones: BTreeMap::new(),
            replica_moves_per_node: crate::config::DEFAULT_REPLICA_MOVES_PER_NODE as usize,
        }
    }
}

/// What should change so that every partition has a live owner (promoting an in-sync
/// replica of a dead owner), every live, undrained node ends up with P/N or P/N + 1
/// partitions (counting pending moves at their destination), and every owned partition has
/// `replicas` replicas. Never-owned partitions are left alone unless `assign_new`. At most
/// one action per partition: what a round leaves undone the next one does.
pub(crate) fn plan(map: &PartitionMap, params: &Params) -> Vec<Action> {
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
    // Partitions owned and replicas held per node (those being moved away not counted), in
    // one pass: a round runs every second, and P may be 65,536.
    let mut owned: BTreeMap<&str, usize> = BTreeMap::new();
    let mut held: BTreeMap<&str, usize> = load.keys().map(|n| (*n, 0)).collect();
    for a in &map.assignments {
        if let Some(owner) = a.owner.as_deref() {
            *owned.entry(owner).or_default() += 1;
        }
        for node in a.replicas.iter().filter(|n| !a.leaving_on(n)) {
            if let Some(c) = held.get_mut(node.as_str()) {
                *c += 1;
            }
        }
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
            // The owner's node is gone. An in-sync replica holds every write it acknowledged:
            // promote one. Without one the partition's mail is only on the dead node's disk,
            // and giving it away would show its users empty mailboxes: it stays unserved (IMAP
            // NO [UNAVAILABLE], LMTP 451, so the MTA retries) until the node comes back or an
            // operator moves it.
            (None, _) if a.owner.is_some() => {
                if let Some(to) = promotion(map, a, params, &owned) {
                    if let Some(l) = load.get_mut(to) {
                        *l += 1;
                    }
                    actions.push(Action::Promote {
                        partition: p,
                        from: a.owner.clone().expect("has an owner"),
                        to: to.to_string(),
                    });
                }
            }
            (None, _) if !params.assign_new => {}
            (None, _) => homeless.push((p, false)),
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
    let touched: BTreeSet<u32> = actions.iter().map(Action::partition).collect();
    for (p, a) in map.assignments.iter().enumerate() {
        let p = p as u32;
        let Some(owner) = a.owner.as_deref().filter(|o| map.alive(o)) else {
            // A dead owner's replicas are left as they are: they may be all that holds the
            // partition's mail, and the in-sync list says which ones can be promoted.
            continue;
        };
        if touched.contains(&p) {
            continue;
        }
        actions.extend(replicas(map, p, a, owner, params.replicas, &mut held));
    }
    // Replicas are moved only in rounds that change no owner: those rounds settle first.
    if actions.iter().all(|a| matches!(a, Action::Replicas { .. })) {
        rebalance(map, params.replica_moves_per_node, &mut actions);
    }
    actions
}

/// The live in-sync replica to promote when `a`'s owner is dead: one in the dead owner's zone
/// if any (closest to its clients), undrained rather than drained, then the one owning the
/// fewest partitions. Any of them holds every acknowledged write.
fn promotion<'a>(
    map: &PartitionMap,
    a: &'a Assignment,
    params: &Params,
    owned: &BTreeMap<&str, usize>,
) -> Option<&'a str> {
    let old_zone = a
        .owner
        .as_deref()
        .and_then(|o| params.zones.get(o))
        .filter(|z| !z.is_empty());
    a.in_sync
        .iter()
        .filter(|n| map.alive(n) && a.replicated_on(n))
        .min_by_key(|n| {
            (
                old_zone.is_some_and(|z| map.zone(n) != z),
                map.drained.contains(*n),
                owned.get(n.as_str()).copied().unwrap_or(0),
                n.as_str(),
            )
        })
        .map(String::as_str)
}

/// The replica lists `p` (owned by the live `owner`) should have, as an action when they
/// differ from what the map has. Dead replicas are dropped (only the balancer, after their
/// lease is gone, may drop a dead node from the in-sync list), missing ones placed, a drained
/// node's replica and a replica being moved away (`leaving`) dropped once the others are
/// enough in sync, extra ones dropped (those not in sync first).
fn replicas(
    map: &PartitionMap,
    p: u32,
    a: &Assignment,
    owner: &str,
    wanted: usize,
    held: &mut BTreeMap<&str, usize>,
) -> Option<Action> {
    let drained = |n: &str| map.drained.contains(n);
    let dead: Vec<String> = a
        .replicas
        .iter()
        .filter(|n| !map.alive(n))
        .cloned()
        .collect();
    let mut keep: Vec<String> = a
        .replicas
        .iter()
        .filter(|n| map.alive(n) && *n != owner)
        .cloned()
        .collect();
    let mut leaving: Vec<String> = a
        .leaving
        .iter()
        .filter(|n| keep.contains(n))
        .cloned()
        .collect();
    // The replicas that count towards `wanted`: neither drained nor being moved away.
    let counted = |keep: &[String], leaving: &[String]| -> Vec<String> {
        keep.iter()
            .filter(|n| !drained(n) && !leaving.contains(n))
            .cloned()
            .collect()
    };
    // A replica move whose new replica is gone (its node died or was drained) is called
    // off: the replica that was leaving counts again, rather than a third node being seeded.
    while counted(&keep, &leaving).len() < wanted {
        let Some(i) = leaving.iter().position(|n| !drained(n)) else {
            break;
        };
        leaving.remove(i);
    }
    let mut added = Vec::new();
    for _ in counted(&keep, &leaving).len()..wanted {
        let Some(node) = place(map, a, owner, &keep, held) else {
            break;
        };
        *held.get_mut(node).expect("eligible") += 1;
        keep.push(node.to_string());
        added.push(node.to_string());
    }
    let in_sync_counted = counted(&keep, &leaving)
        .iter()
        .filter(|n| a.in_sync_on(n))
        .count();
    if in_sync_counted >= wanted {
        // Enough in-sync copies without them: drained and leaving replicas go.
        keep = counted(&keep, &leaving);
        leaving.clear();
    }
    let staying = counted(&keep, &leaving);
    if staying.len() > wanted {
        let surplus = staying.len() - wanted;
        let mut extra = staying;
        extra.sort_by_key(|n| {
            (
                a.in_sync_on(n),
                std::cmp::Reverse(held.get(n.as_str()).copied().unwrap_or(0)),
                std::cmp::Reverse(n.clone()),
            )
        });
        let drop: BTreeSet<String> = extra.into_iter().take(surplus).collect();
        keep.retain(|n| !drop.contains(n));
    }
    let in_sync: Vec<String> = a
        .in_sync
        .iter()
        .filter(|n| keep.contains(n))
        .cloned()
        .collect();
    leaving.retain(|n| keep.contains(n));
    if keep == a.replicas && in_sync == a.in_sync && leaving == a.leaving {
        return None;
    }
    Some(Action::Replicas {
        partition: p,
        replicas: keep,
        in_sync,
        added,
        dead,
        leaving,
    })
}

/// Evens out the replicas held by live, undrained nodes, after the other steps of a round
/// (`actions`, replica changes only) are counted in. While one node holds at least two
/// replicas more than another, one of its replicas of a settled partition (every replica in
/// sync, no move of any kind pending) is moved: the node with the fewest replicas that may
/// hold it (not the owner, no copy yet, not fewer zones covered than before) is added, and
/// the old one marked `leaving`; [`replicas`] drops it once the new one is in sync, so the
/// in-sync copies never decrease. At most `per_node` in flight per receiving node (each
/// seeds a whole partition copy from its owner: a node that comes back takes its share of
/// replicas a few at a time). Each move lowers the sum of squared counts, so it ends, and an even map (or one
/// that zones keep uneven) plans none.
fn rebalance(map: &PartitionMap, per_node: usize, actions: &mut Vec<Action>) {
    let mut held: BTreeMap<&str, usize> = map
        .nodes
        .keys()
        .filter(|n| !map.drained.contains(*n))
        .map(|n| (n.as_str(), 0))
        .collect();
    if held.len() < 2 {
        return;
    }
    let planned: BTreeMap<u32, &Action> = actions.iter().map(|a| (a.partition(), a)).collect();
    let mut receiving: BTreeMap<&str, usize> = held.keys().map(|n| (*n, 0)).collect();
    // Per node, the partitions it could give a replica of.
    let mut candidates: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for (p, a) in map.assignments.iter().enumerate() {
        let p = p as u32;
        let (replicas, in_sync, leaving) = match planned.get(&p) {
            Some(Action::Replicas {
                replicas,
                in_sync,
                leaving,
                ..
            }) => (replicas, in_sync, leaving),
            _ => (&a.replicas, &a.in_sync, &a.leaving),
        };
        for n in replicas.iter().filter(|n| !leaving.contains(n)) {
            if let Some(h) = held.get_mut(n.as_str()) {
                *h += 1;
            }
            if !leaving.is_empty() && !in_sync.contains(n) {
                if let Some(r) = receiving.get_mut(n.as_str()) {
                    *r += 1;
                }
            }
        }
        let settled = a.owner.as_deref().is_some_and(|o| map.alive(o))
            && !planned.contains_key(&p)
            && a.moving_to().is_none()
            && a.leaving.is_empty()
            && !a.replicas.is_empty()
            && a.replicas.iter().all(|n| a.in_sync_on(n));
        if settled {
            for n in &a.replicas {
                if let Some((n, _)) = held.get_key_value(n.as_str()) {
                    candidates.entry(*n).or_default().push(p);
                }
            }
        }
    }
    let mut moved = BTreeSet::new();
    loop {
        let least = held.values().copied().min().unwrap_or(0);
        let mut donors: Vec<(&str, usize)> = held
            .iter()
            .filter(|(n, h)| **h >= least + 2 && candidates.contains_key(*n))
            .map(|(n, h)| (*n, *h))
            .collect();
        donors.sort_by_key(|(n, h)| (std::cmp::Reverse(*h), *n));
        let mut chosen = None;
        for (donor, donor_held) in donors {
            // The nodes that may take the donor's copy, by the partition's other holders
            // (owner first): with R = 1 there are only as many kinds as owners, so the zones
            // are compared once per kind, not once per partition.
            let mut fit: HashMap<Vec<&str>, Vec<&str>> = HashMap::new();
            // (the receiver's count, the receiver, the partition)
            let mut best: Option<(usize, &str, u32)> = None;
            for &p in &candidates[donor] {
                if moved.contains(&p) {
                    continue;
                }
                let a = map.assignment(p);
                let owner = a
                    .owner
                    .as_deref()
                    .expect("settled partitions have an owner");
                let others: Vec<&str> = std::iter::once(owner)
                    .chain(
                        a.replicas
                            .iter()
                            .map(String::as_str)
                            .filter(|n| *n != donor),
                    )
                    .collect();
                let fits = fit.entry(others).or_insert_with_key(|others| {
                    let donor_rank = zone_rank(map, a, owner, donor, donor);
                    held.keys()
                        .copied()
                        .filter(|to| {
                            *to != donor
                                && !others.contains(to)
                                && zone_rank(map, a, owner, to, donor) <= donor_rank
                        })
                        .collect()
                });
                for &to in fits.iter() {
                    let to_held = held[to];
                    let better = best.is_none_or(|(h, n, _)| (to_held, to) < (h, n));
                    if better && to_held + 2 <= donor_held && receiving[to] < per_node {
                        best = Some((to_held, to, p));
                    }
                }
                if best.is_some_and(|(h, _, _)| h == least) {
                    break;
                }
            }
            if let Some((_, to, p)) = best {
                chosen = Some((donor, to, p));
                break;
            }
        }
        let Some((from, to, p)) = chosen else {
            break;
        };
        moved.insert(p);
        *held.get_mut(from).expect("eligible") -= 1;
        *held.get_mut(to).expect("eligible") += 1;
        *receiving.get_mut(to).expect("eligible") += 1;
        let a = map.assignment(p);
        let mut replicas = a.replicas.clone();
        replicas.push(to.to_string());
        actions.push(Action::Replicas {
            partition: p,
            replicas,
            in_sync: a.in_sync.clone(),
            added: vec![to.to_string()],
            dead: Vec::new(),
            leaving: vec![from.to_string()],
        });
    }
}

/// How well a copy of `a` on `node` spreads over zones, `without` the replica it would
/// replace (lower is better, compared as [`place`] prefers): whether it shares the owner's
/// zone, then how many of the other replicas share its zone.
fn zone_rank(
    map: &PartitionMap,
    a: &Assignment,
    owner: &str,
    node: &str,
    without: &str,
) -> (bool, usize) {
    let zone = map.zone(node);
    let shared = |other: &str| !zone.is_empty() && zone == map.zone(other);
    let others = a
        .replicas
        .iter()
        .filter(|h| *h != without && *h != node && shared(h))
        .count();
    (shared(owner), others)
}

/// Where a new replica of `a` goes: a live, undrained node that is not the owner, holds no
/// copy yet and is not the target of a pending move; preferring another zone than the
/// owner's, then than the other replicas', then the node holding the fewest replicas.
fn place<'a>(
    map: &PartitionMap,
    a: &Assignment,
    owner: &str,
    holders: &[String],
    held: &BTreeMap<&'a str, usize>,
) -> Option<&'a str> {
    let owner_zone = map.zone(owner);
    held.iter()
        .filter(|(n, _)| {
            **n != owner && !holders.iter().any(|h| h == *n) && a.moving_to() != Some(**n)
        })
        .min_by_key(|(n, count)| {
            let zone = map.zone(n);
            let shared = |other: &str| !zone.is_empty() && zone == map.zone(other);
            (
                shared(owner) && !owner_zone.is_empty(),
                holders.iter().filter(|h| shared(h)).count(),
                **count,
                **n,
            )
        })
        .map(|(n, _)| *n)
}

/// Partitions whose owner is dead and that have no live in-sync replica to promote, with that
/// owner: they wait for it.
pub(crate) fn stranded(map: &PartitionMap) -> BTreeMap<u32, String> {
    map.assignments
        .iter()
        .enumerate()
        .filter_map(|(p, a)| {
            let owner = a.owner.as_deref().filter(|o| !map.alive(o))?;
            let promotable = a.in_sync.iter().any(|n| map.alive(n));
            (!promotable).then(|| (p as u32, owner.to_string()))
        })
        .collect()
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
    let planned: Vec<(&Action, Change)> = actions
        .iter()
        .filter_map(|a| Some((a, a.change(map)?)))
        .collect();
    for batch in batches(planned, |(_, change)| change.compares()) {
        let changes: Vec<Change> = batch.iter().map(|(_, c)| c.clone()).collect();
        match commit(&ctx.etcd, &ctx.keys, &changes, fence.clone()).await? {
            Some(revision) => {
                last = Some(revision);
                for (action, change) in &batch {
                    done(ctx, map, action, change);
                }
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

/// Counts (and, for a failover, logs) an action that etcd has committed.
fn done(ctx: &Ctx, map: &PartitionMap, action: &Action, change: &Change) {
    let metrics = &ctx.shared.metrics;
    let counter = match action {
        Action::Assign { .. } => &metrics.claims_won,
        Action::Promote {
            partition,
            from,
            to,
        } => {
            tracing::warn!(
                partition,
                from = %from,
                to = %to,
                epoch = change.new.epoch,
                "partition failed over"
            );
            &metrics.failovers
        }
        Action::Move { .. } => &metrics.moves_marked,
        Action::Cancel { .. } => &metrics.moves_cancelled,
        Action::Replicas {
            partition,
            replicas,
            added,
            leaving,
            ..
        } => {
            let before = map.assignment(*partition);
            let dropped = (before.replicas.len() + added.len()).saturating_sub(replicas.len());
            metrics
                .replicas_dropped
                .fetch_add(dropped as u64, Ordering::Relaxed);
            for from in leaving.iter().filter(|n| !before.leaving_on(n)) {
                tracing::info!(
                    partition,
                    from = %from,
                    to = ?added,
                    "moving a replica to even out the replicas per node"
                );
                metrics.replicas_moved.fetch_add(1, Ordering::Relaxed);
            }
            &metrics.replicas_placed
        }
    };
    let n = match action {
        Action::Replicas { added, .. } => added.len() as u64,
        _ => 1,
    };
    counter.fetch_add(n, Ordering::Relaxed);
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
    let mut params = Params {
        replicas: ctx.replicas,
        replica_moves_per_node: ctx.replica_moves_per_node,
        ..Params::default()
    };
    // Partitions already logged as waiting for their dead owner (one line when that starts).
    let mut waiting: BTreeMap<u32, String> = BTreeMap::new();
    loop {
        tokio::select! {
            s = shared.notifier.wait(seen) => seen = s,
            _ = tokio::time::sleep(TICK) => {}
        }
        let map = shared.map.load_full();
        for (id, node) in &map.nodes {
            params.zones.insert(id.clone(), node.zone.clone());
        }
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
        let now_waiting = stranded(&map);
        log_waiting(&map, &waiting, &now_waiting);
        waiting = now_waiting;
        params.assign_new = current.since.elapsed() >= SETTLE;
        let actions = plan(&map, &params);
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

/// One line per dead owner whose partitions start waiting for it because none of them has a
/// live in-sync replica to promote.
fn log_waiting(map: &PartitionMap, before: &BTreeMap<u32, String>, now: &BTreeMap<u32, String>) {
    let mut new: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for (p, owner) in now {
        if before.get(p) != Some(owner) {
            new.entry(owner.as_str()).or_default().push(*p);
        }
    }
    for (owner, partitions) in new {
        let replicas: usize = partitions
            .iter()
            .map(|p| map.assignment(*p).replicas.len())
            .sum();
        tracing::warn!(
            owner,
            count = partitions.len(),
            ?partitions,
            replicas,
            "partitions wait for their dead owner: no live in-sync replica to promote"
        );
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
    use crate::map::{NodeInfo, PartitionState};

    fn map_with(nodes: &[&str], partitions: u32) -> PartitionMap {
        let zoned: Vec<(&str, &str)> = nodes.iter().map(|n| (*n, "")).collect();
        zoned_map(&zoned, partitions)
    }

    fn zoned_map(nodes: &[(&str, &str)], partitions: u32) -> PartitionMap {
        let mut map = PartitionMap::new("t", partitions);
        for (n, zone) in nodes {
            map.nodes.insert(
                n.to_string(),
                NodeInfo {
                    id: n.to_string(),
                    client: vec![],
                    internal: format!("{n}:7143"),
                    started: 0,
                    zone: zone.to_string(),
                },
            );
        }
        map
    }

    fn params(assign_new: bool, replicas: usize) -> Params {
        Params {
            assign_new,
            replicas,
            ..Params::default()
        }
    }

    /// Carries a plan out on the map with the writes the balancer would make, then completes
    /// the moves it marked (as the data plane eventually would).
    fn settle(map: &mut PartitionMap, actions: &[Action]) {
        assert_eq!(touched(actions).len(), actions.len(), "one action per key");
        for action in actions {
            let change = action.change(map).expect("a write");
            let p = action.partition() as usize;
            map.assignments[p] = change.new.into_assignment(map.assignments[p].revision + 1);
            if let Action::Move { partition, to } = action {
                let a = map.assignment(*partition).clone();
                let done = crate::ownership::Change::hand_over(*partition, &a, to);
                map.assignments[p] = done.new.into_assignment(a.revision + 1);
            }
        }
    }

    /// Plans and settles until the plan is empty (bounded); returns the rounds taken.
    fn settle_all(map: &mut PartitionMap, params: &Params) -> usize {
        for round in 0..10 {
            let actions = plan(map, params);
            if actions.is_empty() {
                return round;
            }
            settle(map, &actions);
        }
        panic!("the plan does not settle: {:?}", plan(map, params));
    }

    /// What the owners' data plane does once it has seeded a replica.
    fn seed_all(map: &mut PartitionMap) {
        for a in &mut map.assignments {
            a.in_sync = a.replicas.clone();
        }
    }

    /// Seeds every replica, plans and settles, until the plan is empty (bounded), checking
    /// after every step that no partition that keeps its owner has fewer live in-sync
    /// replicas than before, unless it had more than `replicas` (a replica moved away once
    /// its replacement was in sync). Returns the rounds taken.
    fn settle_seeded(map: &mut PartitionMap, params: &Params) -> usize {
        for round in 0..100 {
            seed_all(map);
            let actions = plan(map, params);
            if actions.is_empty() {
                return round;
            }
            let before = map.clone();
            settle(map, &actions);
            for (p, (old, new)) in before.assignments.iter().zip(&map.assignments).enumerate() {
                let live = |a: &Assignment| a.in_sync.iter().filter(|n| map.alive(n)).count();
                if old.owner == new.owner {
                    let floor = live(old).min(params.replicas);
                    assert!(live(new) >= floor, "partition {p}: {old:?} -> {new:?}");
                }
            }
        }
        panic!("the plan does not settle: {:?}", plan(map, params));
    }

    /// Replicas held per live, undrained node.
    fn replica_counts(map: &PartitionMap) -> BTreeMap<String, usize> {
        map.nodes
            .keys()
            .filter(|n| !map.drained.contains(*n))
            .map(|n| (n.clone(), map.replica_count(n)))
            .collect()
    }

    /// No live, undrained node holds more than one replica more than another.
    fn assert_replicas_even(map: &PartitionMap) {
        let counts = replica_counts(map);
        let max = counts.values().max().copied().unwrap_or(0);
        let min = counts.values().min().copied().unwrap_or(0);
        assert!(max - min <= 1, "{counts:?}");
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

    /// Every owned partition has `r` replicas on live nodes other than its owner.
    fn assert_replicated(map: &PartitionMap, r: usize) {
        for (p, a) in map.assignments.iter().enumerate() {
            let owner = a.owner.as_deref().expect("owned");
            assert_eq!(a.replicas.len(), r, "partition {p}: {a:?}");
            assert!(!a.replicated_on(owner), "partition {p}: {a:?}");
            assert!(a.replicas.iter().all(|n| map.alive(n)), "partition {p}");
            let unique: BTreeSet<&String> = a.replicas.iter().collect();
            assert_eq!(unique.len(), r, "partition {p}: {a:?}");
            assert!(a.in_sync.iter().all(|n| a.replicated_on(n)), "{a:?}");
        }
    }

    #[test]
    fn fresh_cluster_is_assigned_evenly_once_settled() {
        let mut map = map_with(&["a", "b", "c"], 100);
        assert!(
            plan(&map, &params(false, 0)).is_empty(),
            "never-owned partitions wait"
        );
        let actions = plan(&map, &params(true, 0));
        assert_eq!(actions.len(), 100);
        assert!(actions.iter().all(|a| matches!(a, Action::Assign { .. })));
        settle(&mut map, &actions);
        assert_even(&map);
        assert!(
            plan(&map, &params(true, 0)).is_empty(),
            "a balanced map needs nothing"
        );
    }

    #[test]
    fn replicas_are_placed_on_other_nodes_evenly() {
        let mut map = map_with(&["a", "b", "c"], 30);
        let p = params(true, 1);
        let initial = plan(&map, &p);
        settle(&mut map, &initial);
        // The round after the assignment places one replica per partition, and then nothing.
        let actions = plan(&map, &p);
        assert_eq!(actions.len(), 30);
        assert!(actions.iter().all(|a| matches!(
            a,
            Action::Replicas { added, dead, in_sync, .. } if added.len() == 1 && dead.is_empty() && in_sync.is_empty()
        )));
        settle(&mut map, &actions);
        assert_replicated(&map, 1);
        for n in ["a", "b", "c"] {
            assert_eq!(map.replica_count(n), 10, "{n}");
        }
        assert!(plan(&map, &p).is_empty());
        // Two replicas each: 20 copies of others' partitions per node.
        assert_eq!(settle_all(&mut map, &params(true, 2)), 1);
        assert_replicated(&map, 2);
        assert!((0..3).all(|i| map.replica_count(["a", "b", "c"][i]) == 20));
        // More replicas than other nodes: as many as there are.
        settle_all(&mut map, &params(true, 3));
        assert_replicated(&map, 2);
        // Lowered: those not in sync go first.
        map.assignments[0].in_sync = vec![map.assignments[0].replicas[1].clone()];
        let kept = map.assignments[0].in_sync.clone();
        settle_all(&mut map, &params(true, 1));
        assert_replicated(&map, 1);
        assert_eq!(map.assignments[0].replicas, kept);
        assert_eq!(map.assignments[0].in_sync, kept);
        // Off: every replica dropped.
        settle_all(&mut map, &params(true, 0));
        assert_replicated(&map, 0);
    }

    #[test]
    fn replicas_go_to_other_zones_when_they_can() {
        let nodes = [
            ("a", "x"),
            ("b", "x"),
            ("c", "y"),
            ("d", "y"),
            ("e", "z"),
            ("f", "z"),
        ];
        let mut map = zoned_map(&nodes, 60);
        settle_all(&mut map, &params(true, 2));
        assert_replicated(&map, 2);
        for (p, a) in map.assignments.iter().enumerate() {
            let owner = a.owner.as_deref().unwrap();
            let zones: BTreeSet<&str> = a
                .replicas
                .iter()
                .map(|n| map.zone(n))
                .chain([map.zone(owner)])
                .collect();
            assert_eq!(zones.len(), 3, "partition {p}: {a:?}");
        }
        for (n, _) in nodes {
            let held = map.replica_count(n);
            assert!((19..=21).contains(&held), "{n} holds {held}");
        }
        // Two zones, one replica: always the other zone.
        let mut map = zoned_map(&[("a", "x"), ("b", "x"), ("c", "y")], 30);
        settle_all(&mut map, &params(true, 1));
        for a in &map.assignments {
            let owner = a.owner.as_deref().unwrap();
            assert_ne!(map.zone(owner), map.zone(&a.replicas[0]), "{a:?}");
        }
    }

    #[test]
    fn dead_owners_partitions_fail_over_to_in_sync_replicas_only() {
        let mut map = map_with(&["a", "b", "c"], 90);
        let p = params(true, 1);
        settle_all(&mut map, &p);
        seed_all(&mut map);
        // Some of c's partitions have a replica that is still being seeded.
        let of_c: Vec<u32> = (0..90)
            .filter(|q| map.assignment(*q).owned_by("c"))
            .collect();
        let unseeded: Vec<u32> = of_c.iter().copied().take(5).collect();
        for q in &unseeded {
            map.assignments[*q as usize].in_sync.clear();
        }
        let before = map.clone();
        map.nodes.remove("c");
        let actions = plan(&map, &p);
        let promoted: Vec<u32> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Promote {
                    partition,
                    from,
                    to,
                } => {
                    assert_eq!(from, "c");
                    assert_eq!(
                        before.assignment(*partition).in_sync,
                        std::slice::from_ref(to)
                    );
                    Some(*partition)
                }
                _ => None,
            })
            .collect();
        assert_eq!(promoted, of_c[5..], "only those with an in-sync replica");
        // c also held replicas of a's and b's partitions: those are dropped and replaced.
        for action in &actions {
            if let Action::Replicas {
                partition,
                replicas,
                in_sync,
                added,
                dead,
                ..
            } = action
            {
                assert_eq!(dead, &["c"]);
                assert_eq!(replicas, added);
                assert!(in_sync.is_empty());
                assert!(!before.assignment(*partition).owned_by("c"));
            }
        }
        assert_eq!(stranded(&map).keys().copied().collect::<Vec<_>>(), unseeded);
        settle(&mut map, &actions);
        for q in &of_c[5..] {
            let (old, new) = (before.assignment(*q), map.assignment(*q));
            assert!(new.owned_by(&old.in_sync[0]), "{new:?}");
            assert_eq!(new.epoch, old.epoch + 1);
            assert!(new.replicas.is_empty() && new.in_sync.is_empty(), "{new:?}");
        }
        for q in &unseeded {
            assert_eq!(map.assignment(*q).owner.as_deref(), Some("c"));
            assert_eq!(map.assignment(*q).epoch, before.assignment(*q).epoch);
        }
        // The promoted ones get a new replica on the other survivor, not on the dead c; the
        // waiting ones keep theirs as they are.
        settle_all(&mut map, &p);
        for q in &of_c[5..] {
            let a = map.assignment(*q);
            assert_eq!(a.replicas.len(), 1);
            assert!(!a.replicated_on("c") && !a.owned_by(&a.replicas[0]));
        }
        for q in &unseeded {
            assert_eq!(map.assignment(*q).replicas, before.assignment(*q).replicas);
        }
        // When c comes back it owns what waited for it, its share through moves, and its
        // share of replicas through replica moves.
        map.nodes.insert("c".into(), before.nodes["c"].clone());
        settle_seeded(&mut map, &p);
        assert!(stranded(&map).is_empty());
        assert!(unseeded.iter().all(|q| map.assignment(*q).owned_by("c")));
        assert_even(&map);
        assert_replicated(&map, 1);
        assert_replicas_even(&map);
    }

    #[test]
    fn a_restarted_node_gets_its_share_of_replicas_back() {
        let mut map = map_with(&["a", "b", "c"], 60);
        let p = params(true, 1);
        settle_seeded(&mut map, &p);
        assert_replicas_even(&map);
        // c dies: its partitions fail over, its replicas are placed on a and b.
        let c_node = map.nodes.remove("c").expect("c was registered");
        settle_seeded(&mut map, &p);
        assert_eq!(map.replica_count("c"), 0);
        assert_replicated(&map, 1);
        // c registers again: first its share of partitions, as moves (no replica moves in a
        // round that changes owners).
        map.nodes.insert("c".into(), c_node);
        let moves = plan(&map, &p);
        assert!(!moves.is_empty());
        assert!(
            moves.iter().all(|a| matches!(a, Action::Move { .. })),
            "{moves:?}"
        );
        settle(&mut map, &moves);
        // Then replica moves to c, a few at a time: the new copy is added, the old one is
        // marked leaving and stays (in sync) until the new one is in sync.
        let first = plan(&map, &p);
        assert_eq!(first.len(), p.replica_moves_per_node, "{first:?}");
        for action in &first {
            let Action::Replicas {
                partition,
                replicas,
                in_sync,
                added,
                dead,
                leaving,
            } = action
            else {
                panic!("{action:?}");
            };
            let before = map.assignment(*partition);
            assert_eq!(added, &["c"]);
            assert!(dead.is_empty());
            assert_eq!(leaving, &before.replicas);
            assert_eq!(in_sync, &before.in_sync);
            assert_eq!(replicas, &[before.replicas[0].clone(), "c".to_string()]);
        }
        settle(&mut map, &first);
        // Until they are in sync nothing more goes to c, and nothing is dropped.
        assert!(plan(&map, &p).is_empty(), "{:?}", plan(&map, &p));
        // Seeded, step by step (in-sync copies never fewer, see settle_seeded): even, and
        // then nothing more to do.
        let rounds = settle_seeded(&mut map, &p);
        assert!(rounds > 2, "{rounds}");
        assert_even(&map);
        assert_replicated(&map, 1);
        assert_replicas_even(&map);
        assert_eq!(map.replica_count("c"), 20);
        assert!(map.assignments.iter().all(|a| a.leaving.is_empty()));
        seed_all(&mut map);
        assert!(plan(&map, &p).is_empty(), "no churn once even");
        // Two replicas each: the same.
        settle_seeded(&mut map, &params(true, 2));
        let c_node = map.nodes.remove("c").expect("c is registered");
        settle_seeded(&mut map, &params(true, 2));
        map.nodes.insert("c".into(), c_node);
        settle_seeded(&mut map, &params(true, 2));
        assert_replicated(&map, 2);
        assert_replicas_even(&map);
        assert!(plan(&map, &params(true, 2)).is_empty());
    }

    #[test]
    fn replica_moves_per_receiving_node_follow_the_setting() {
        // c comes back to 60 partitions: it should get 20 replicas; each round starts as
        // many moves towards it as the setting allows (and the owner moves come first).
        for per_node in [1, 4, 16] {
            let mut map = map_with(&["a", "b", "c"], 60);
            let p = Params {
                replica_moves_per_node: per_node,
                ..params(true, 1)
            };
            settle_seeded(&mut map, &p);
            let c_node = map.nodes.remove("c").expect("c was registered");
            settle_seeded(&mut map, &p);
            map.nodes.insert("c".into(), c_node);
            let moves = plan(&map, &p);
            settle(&mut map, &moves);
            let first = plan(&map, &p);
            assert_eq!(first.len(), per_node, "{per_node}: {first:?}");
            settle(&mut map, &first);
            assert!(
                plan(&map, &p).is_empty(),
                "{per_node}: more before the seeding"
            );
            settle_seeded(&mut map, &p);
            assert_eq!(map.replica_count("c"), 20, "{per_node}");
            assert_replicas_even(&map);
        }
    }

    #[test]
    fn replica_moves_keep_copies_spread_over_zones() {
        // Two zones of two: a returning node takes replicas from its zone peer only.
        let nodes = [("a", "x"), ("b", "x"), ("c", "y"), ("d", "y")];
        let mut map = zoned_map(&nodes, 40);
        let p = params(true, 1);
        settle_seeded(&mut map, &p);
        let d_node = map.nodes.remove("d").expect("d was registered");
        settle_seeded(&mut map, &p);
        map.nodes.insert("d".into(), d_node);
        settle_seeded(&mut map, &p);
        assert_replicated(&map, 1);
        assert_replicas_even(&map);
        for a in &map.assignments {
            let owner = a.owner.as_deref().unwrap();
            assert_ne!(map.zone(owner), map.zone(&a.replicas[0]), "{a:?}");
        }
        // Zones that keep the counts uneven: x's partitions must have their replica on c,
        // the only node in y. Nothing is moved into x's zone for the sake of counts.
        let mut map = zoned_map(&[("a", "x"), ("b", "x"), ("c", "y")], 30);
        settle_seeded(&mut map, &p);
        assert_eq!(map.replica_count("c"), 20);
        assert!(plan(&map, &p).is_empty());
        for a in &map.assignments {
            let owner = a.owner.as_deref().unwrap();
            assert_ne!(map.zone(owner), map.zone(&a.replicas[0]), "{a:?}");
        }
    }

    #[test]
    fn a_replica_move_is_called_off_when_its_new_replica_is_lost() {
        let mut map = map_with(&["a", "b", "c", "d"], 1);
        map.assignments[0] = Assignment {
            owner: Some("a".into()),
            epoch: 2,
            state: PartitionState::Active,
            revision: 5,
            replicas: vec!["b".into(), "c".into()],
            in_sync: vec!["b".into()],
            leaving: vec!["b".into()],
        };
        let p = params(true, 1);
        // Not in sync yet: nothing changes.
        assert!(plan(&map, &p).is_empty());
        // c dies: b stays, no longer leaving, and no third node is seeded.
        let c_node = map.nodes.remove("c").unwrap();
        let actions = plan(&map, &p);
        assert_eq!(
            actions,
            [Action::Replicas {
                partition: 0,
                replicas: vec!["b".into()],
                in_sync: vec!["b".into()],
                added: vec![],
                dead: vec!["c".into()],
                leaving: vec![],
            }]
        );
        // Drained instead of dead: the same, and c's copy goes once b counts again.
        map.nodes.insert("c".into(), c_node);
        map.drained.insert("c".into());
        let actions = plan(&map, &p);
        let Action::Replicas {
            replicas, leaving, ..
        } = &actions[0]
        else {
            panic!("{actions:?}");
        };
        assert_eq!(
            (replicas.as_slice(), leaving.as_slice()),
            (&["b".to_string()][..], &[][..])
        );
        // In sync: b is dropped, and the entry written has no leaving replica left.
        map.drained.clear();
        map.assignments[0].in_sync = vec!["b".into(), "c".into()];
        let actions = plan(&map, &p);
        let change = actions[0].change(&map).unwrap();
        assert_eq!(change.new.replicas, ["c"]);
        assert_eq!(change.new.in_sync, ["c"]);
        assert!(change.new.leaving.is_empty());
        // A promotion of the leaving replica (the owner died) keeps the new one as a replica.
        let promoted = Change::assign(0, map.assignment(0), "b");
        assert_eq!(promoted.new.replicas, ["c"]);
        assert!(promoted.new.leaving.is_empty());
    }

    #[test]
    fn without_replicas_a_dead_owners_partitions_wait_for_it() {
        let mut map = map_with(&["a", "b", "c"], 90);
        let p = params(true, 0);
        settle_all(&mut map, &p);
        let before = map.assignments.clone();
        let c_node = map.nodes.remove("c").expect("c was registered");
        // Its mail is on c's disk only: nobody else may serve its partitions, whether or not
        // the balancer may assign new ones, and the living are not reshuffled for it.
        assert!(plan(&map, &params(false, 0)).is_empty());
        assert!(plan(&map, &p).is_empty());
        assert_eq!(stranded(&map).len(), 30);
        // When c comes back it still owns them.
        map.nodes.insert("c".into(), c_node);
        assert!(plan(&map, &p).is_empty());
        assert_eq!(map.assignments, before);
    }

    #[test]
    fn failover_prefers_the_dead_owners_zone() {
        let nodes = [("a", "x"), ("b", "y"), ("c", "y"), ("d", "x")];
        let mut map = zoned_map(&nodes, 4);
        for a in &mut map.assignments {
            *a = Assignment {
                owner: Some("a".into()),
                epoch: 3,
                state: PartitionState::Active,
                revision: 1,
                replicas: vec!["b".into(), "d".into(), "c".into()],
                in_sync: vec!["b".into(), "d".into()],
                leaving: vec![],
            };
        }
        map.assignments[1].in_sync = vec!["b".into(), "c".into()];
        map.assignments[2].state = PartitionState::Moving { to: "c".into() };
        let mut p = params(true, 2);
        p.zones = nodes
            .iter()
            .map(|(n, z)| (n.to_string(), z.to_string()))
            .collect();
        map.nodes.remove("a");
        let actions = plan(&map, &p);
        let to: Vec<&str> = actions
            .iter()
            .map(|a| match a {
                Action::Promote { to, .. } => to.as_str(),
                other => panic!("{other:?}"),
            })
            .collect();
        // d shares a's zone; where d is not in sync, b (b and c own as many: the lower id).
        assert_eq!(to, ["d", "b", "d", "d"]);
        settle(&mut map, &actions);
        let a = map.assignment(0);
        assert_eq!((a.epoch, a.state.clone()), (4, PartitionState::Active));
        assert_eq!(a.replicas, ["b", "c"]);
        assert_eq!(a.in_sync, ["b"]);
        // A promotion cancels the dead owner's pending move.
        assert_eq!(map.assignment(2).state, PartitionState::Active);
    }

    #[test]
    fn joining_node_gets_a_fair_share_as_moves() {
        let mut map = map_with(&["a", "b", "c"], 64);
        let initial = plan(&map, &params(true, 0));
        settle(&mut map, &initial);
        map = {
            let mut m = map_with(&["a", "b", "c", "d"], 64);
            m.assignments = map.assignments.clone();
            m
        };
        let actions = plan(&map, &params(true, 0));
        assert_eq!(actions.len(), 16);
        assert!(actions
            .iter()
            .all(|a| matches!(a, Action::Move { to, .. } if to == "d")));
        settle(&mut map, &actions);
        assert_even(&map);
    }

    #[test]
    fn moves_with_replicas_keep_the_owner_out_of_its_replicas() {
        let mut map = map_with(&["a", "b", "c"], 64);
        let p = params(true, 1);
        settle_all(&mut map, &p);
        seed_all(&mut map);
        map.nodes
            .insert("d".into(), map_with(&["d"], 1).nodes["d"].clone());
        settle_seeded(&mut map, &p);
        assert_even(&map);
        assert_replicated(&map, 1);
        assert_replicas_even(&map);
        // Moving a partition to its replica replaces the replica copy.
        let q = 5;
        let a = map.assignment(q).clone();
        let to = a.replicas[0].clone();
        let change = crate::ownership::Change::hand_over(q, &a, &to);
        assert!(change.new.replicas.is_empty() && change.new.in_sync.is_empty());
        assert_eq!(change.new.epoch, a.epoch + 1);
    }

    #[test]
    fn drained_node_is_emptied_and_gets_nothing() {
        let mut map = map_with(&["a", "b", "c"], 30);
        let initial = plan(&map, &params(true, 0));
        settle(&mut map, &initial);
        map.drained.insert("b".into());
        let actions = plan(&map, &params(true, 0));
        assert_eq!(actions.len(), 10);
        assert!(actions.iter().all(|a| matches!(a, Action::Move { .. })));
        settle(&mut map, &actions);
        assert_eq!(map.owned_count("b"), 0);
        assert_even(&map);
    }

    #[test]
    fn a_drained_nodes_replicas_stay_until_their_replacements_are_in_sync() {
        let mut map = map_with(&["a", "b", "c", "d"], 40);
        let p = params(true, 1);
        settle_all(&mut map, &p);
        seed_all(&mut map);
        let held_by_b: Vec<u32> = (0..40)
            .filter(|q| map.assignment(*q).replicated_on("b"))
            .collect();
        assert_eq!(held_by_b.len(), 10);
        map.drained.insert("b".into());
        let actions = plan(&map, &p);
        settle(&mut map, &actions);
        // b's own partitions move away; where b is a replica another is placed beside it.
        assert_eq!(map.owned_count("b"), 0);
        for q in &held_by_b {
            let a = map.assignment(*q);
            assert_eq!(a.replicas.len(), 2, "{a:?}");
            assert_eq!(a.replicas[0], "b");
            assert_eq!(a.in_sync, ["b"]);
        }
        // Nothing more until the new replicas are in sync...
        assert!(plan(&map, &p)
            .iter()
            .all(|a| !held_by_b.contains(&a.partition())));
        // ...then b's copies are dropped.
        seed_all(&mut map);
        settle_seeded(&mut map, &p);
        assert_eq!(map.replica_count("b"), 0);
        assert_eq!(map.owned_count("b"), 0);
        assert_replicated(&map, 1);
        assert_replicas_even(&map);
        // With no other node to take them, a drained node keeps its replicas.
        let mut map = map_with(&["a", "b"], 4);
        settle_all(&mut map, &p);
        seed_all(&mut map);
        map.drained.insert("b".into());
        settle_all(&mut map, &p);
        assert_eq!(map.owned_count("a"), 4, "b's own partitions moved to a");
        assert_eq!(map.replica_count("b"), 2, "a's replicas stay on b");
    }

    #[test]
    fn moves_to_a_dead_target_are_cancelled() {
        let mut map = map_with(&["a", "b"], 4);
        let initial = plan(&map, &params(true, 0));
        settle(&mut map, &initial);
        // a hands 0 to c, which then dies; b's partition 1 is moving to a, and b dies.
        map.assignments[0].state = PartitionState::Moving { to: "c".into() };
        map.assignments[1].owner = Some("b".into());
        map.assignments[1].state = PartitionState::Moving { to: "a".into() };
        map.assignments[0].owner = Some("a".into());
        map.nodes.remove("b");
        let actions = plan(&map, &params(true, 0));
        assert!(
            actions.contains(&Action::Cancel { partition: 0 }),
            "{actions:?}"
        );
        // b died mid-move with no replica: its partition waits for b rather than go to a,
        // which never received all of it.
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
                replicas: vec![],
                in_sync: vec![],
                leaving: vec![],
            };
        }
        map.assignments[0].state = PartitionState::Moving { to: "b".into() };
        map.assignments[1].state = PartitionState::Moving { to: "b".into() };
        assert!(
            plan(&map, &params(true, 0)).is_empty(),
            "two of four already going to b"
        );
        // A replica is not placed on the target of a pending move.
        let actions = plan(&map, &params(true, 1));
        assert_eq!(actions.len(), 2, "{actions:?}");
        assert!(actions.iter().all(|a| a.partition() >= 2));
    }

    #[test]
    fn no_eligible_node_no_plan() {
        let mut map = map_with(&["a"], 8);
        map.drained.insert("a".into());
        assert!(plan(&map, &params(true, 1)).is_empty());
        let map = map_with(&[], 8);
        assert!(plan(&map, &params(true, 1)).is_empty());
    }

    #[test]
    fn batches_stay_within_etcds_limits() {
        let a = Assignment {
            owner: Some("a".into()),
            ..Assignment::UNSET
        };
        let many: Vec<String> = (0..4).map(|i| format!("n{i}")).collect();
        let changes: Vec<Change> = (0..100)
            .map(|p| {
                Change::replicas(p, &a, many.clone(), vec![], many.clone(), many.clone())
                    .expect("owned")
            })
            .collect();
        let split = batches(changes, Change::compares);
        assert_eq!(split.iter().map(Vec::len).sum::<usize>(), 100);
        for batch in &split {
            let compares: usize = batch.iter().map(Change::compares).sum();
            assert!(batch.len() <= crate::ownership::BATCH);
            assert!(compares < crate::ownership::MAX_COMPARES, "{compares}");
        }
        // 9 compares each (the key, 4 added, 4 dead): 14 fit beside the fence.
        assert_eq!(split[0].len(), 14);
        let plain: Vec<Change> = (0..100).map(|p| Change::assign(p, &a, "b")).collect();
        assert_eq!(batches(plain, Change::compares)[0].len(), 32);
    }
}
