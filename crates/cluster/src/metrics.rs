//! Counters the main program exports (it owns the metrics page; this crate only counts).

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub(crate) map_version: AtomicU64,
    pub(crate) map_reloads: AtomicU64,
    pub(crate) watch_events: AtomicU64,
    pub(crate) claims_won: AtomicU64,
    pub(crate) claims_lost: AtomicU64,
    pub(crate) moves_marked: AtomicU64,
    pub(crate) moves_completed: AtomicU64,
    pub(crate) moves_cancelled: AtomicU64,
    pub(crate) balancer_elections: AtomicU64,
    pub(crate) lease_renewals: AtomicU64,
    pub(crate) lease_failures: AtomicU64,
    pub(crate) lease_expiries: AtomicU64,
    pub(crate) failovers: AtomicU64,
    pub(crate) replicas_placed: AtomicU64,
    pub(crate) replicas_dropped: AtomicU64,
    pub(crate) replicas_moved: AtomicU64,
}

/// A reading of this node's control-plane counters (all since the process started).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MetricsSnapshot {
    /// Versions of the local map copy published (a gauge: the current version).
    pub map_version: u64,
    /// Full re-reads of the map after a watch failed or fell behind compaction.
    pub map_reloads: u64,
    /// Watch events applied to the local copy.
    pub watch_events: u64,
    /// Ownership changes this node wrote and won: balancer assignments, claims.
    pub claims_won: u64,
    /// Transactions this node lost to a concurrent writer (nothing was written).
    pub claims_lost: u64,
    /// Move intents this node's balancer wrote.
    pub moves_marked: u64,
    /// Moves completed through this node (`complete_move`).
    pub moves_completed: u64,
    /// Pending moves this node's balancer withdrew.
    pub moves_cancelled: u64,
    /// Times this node won the balancer election.
    pub balancer_elections: u64,
    /// Lease renewals that succeeded, failed (timeout, error), or found the lease expired.
    pub lease_renewals: u64,
    pub lease_failures: u64,
    pub lease_expiries: u64,
    /// Promotions of an in-sync replica this node's balancer wrote (the owner had died).
    pub failovers: u64,
    /// Replicas this node's balancer placed, and dropped (dead, drained, or more than
    /// `replicas`).
    pub replicas_placed: u64,
    pub replicas_dropped: u64,
    /// Replica moves this node's balancer started to even out the replicas per node (each
    /// also counts one placed, and one dropped once the new replica is in sync).
    pub replicas_moved: u64,
    /// Whether this node is the balancer now (a gauge).
    pub balancer: bool,
    /// Whether this node's lease may have expired, so it must not act as owner (a gauge).
    pub fenced: bool,
}

impl Metrics {
    pub(crate) fn snapshot(&self, balancer: bool, fenced: bool) -> MetricsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        MetricsSnapshot {
            map_version: get(&self.map_version),
            map_reloads: get(&self.map_reloads),
            watch_events: get(&self.watch_events),
            claims_won: get(&self.claims_won),
            claims_lost: get(&self.claims_lost),
            moves_marked: get(&self.moves_marked),
            moves_completed: get(&self.moves_completed),
            moves_cancelled: get(&self.moves_cancelled),
            balancer_elections: get(&self.balancer_elections),
            lease_renewals: get(&self.lease_renewals),
            lease_failures: get(&self.lease_failures),
            lease_expiries: get(&self.lease_expiries),
            failovers: get(&self.failovers),
            replicas_placed: get(&self.replicas_placed),
            replicas_dropped: get(&self.replicas_dropped),
            replicas_moved: get(&self.replicas_moved),
            balancer,
            fenced,
        }
    }
}
