//! What the executors hold: the local copy of the map, read without locks or waiting, this
//! node's fencing state, and change notifications.
//!
//! The copy is an `ArcSwap<PartitionMap>`: the control thread builds each new version aside
//! and swaps it in; a reader's `load` is a few atomic operations and never blocks or waits
//! for the writer. Compared with a channel of updates that every executor applies to a copy
//! of its own, there is one copy instead of one per core, a reader can never fall behind or
//! see a half-applied batch, and nothing queues up while an executor is busy.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, oneshot};

use crate::control::Command;
use crate::map::{Assignment, PartitionMap};
use crate::metrics::{Metrics, MetricsSnapshot};
use crate::ownership::CopyKind;
use crate::Error;

/// State shared between the control thread and the executors.
pub(crate) struct Shared {
    pub(crate) node: String,
    pub(crate) map: ArcSwap<PartitionMap>,
    /// `valid_until` is kept as nanoseconds after `base` so it fits an atomic.
    base: Instant,
    valid_until: AtomicU64,
    /// The revision at which this node (re-)registered: until the local copy has caught up
    /// with it, the copy may still show partitions that were taken while the node was dead.
    registered_at: AtomicI64,
    pub(crate) lease_id: AtomicI64,
    pub(crate) is_balancer: AtomicBool,
    pub(crate) notifier: Notifier,
    pub(crate) metrics: Metrics,
    pub(crate) commands: mpsc::UnboundedSender<Command>,
}

impl Shared {
    pub(crate) fn new(
        node: String,
        map: PartitionMap,
        commands: mpsc::UnboundedSender<Command>,
    ) -> Shared {
        Shared {
            node,
            map: ArcSwap::from_pointee(map),
            base: Instant::now(),
            valid_until: AtomicU64::new(0),
            registered_at: AtomicI64::new(0),
            lease_id: AtomicI64::new(0),
            is_balancer: AtomicBool::new(false),
            notifier: Notifier::default(),
            metrics: Metrics::default(),
            commands,
        }
    }

    /// Replaces the local copy (control thread only, so versions never race).
    pub(crate) fn publish(&self, mut map: PartitionMap) {
        map.version = self.map.load().version + 1;
        self.metrics
            .map_version
            .store(map.version, Ordering::Relaxed);
        self.map.store(Arc::new(map));
        self.notifier.notify();
    }

    /// Records a registration (with its lease and its revision).
    pub(crate) fn registered(&self, lease: i64, revision: i64, until: Instant) {
        self.lease_id.store(lease, Ordering::Relaxed);
        self.registered_at.store(revision, Ordering::Release);
        self.set_valid_until(until);
    }

    pub(crate) fn set_valid_until(&self, until: Instant) {
        let nanos = until.saturating_duration_since(self.base).as_nanos();
        self.valid_until
            .store(u64::try_from(nanos).unwrap_or(u64::MAX), Ordering::Release);
    }

    pub(crate) fn valid_until(&self) -> Option<Instant> {
        match self.valid_until.load(Ordering::Acquire) {
            0 => None,
            nanos => Some(self.base + Duration::from_nanos(nanos)),
        }
    }

    /// No confirmed lease now, or a local copy older than this node's registration.
    pub(crate) fn fenced(&self) -> bool {
        self.valid_until()
            .is_none_or(|until| Instant::now() >= until)
            || self.map.load().revision < self.registered_at.load(Ordering::Acquire)
    }
}

/// Wakes whoever waits for "something changed": a sequence number raised on every change and
/// the wakers of the tasks waiting. Wakers come from any runtime (tokio on the control thread,
/// glommio on the executors: glommio accepts wakes from other threads).
#[derive(Default)]
pub(crate) struct Notifier {
    seq: AtomicU64,
    wakers: Mutex<Vec<Waker>>,
}

impl Notifier {
    pub(crate) fn seq(&self) -> u64 {
        self.seq.load(Ordering::Acquire)
    }

    pub(crate) fn notify(&self) {
        self.seq.fetch_add(1, Ordering::AcqRel);
        let wakers = std::mem::take(&mut *self.wakers.lock().unwrap_or_else(|e| e.into_inner()));
        for waker in wakers {
            waker.wake();
        }
    }

    /// Resolves with the new sequence number once it differs from `seen`.
    pub(crate) fn wait(&self, seen: u64) -> impl Future<Output = u64> + '_ {
        std::future::poll_fn(move |cx| {
            let now = self.seq();
            if now != seen {
                return Poll::Ready(now);
            }
            {
                let mut wakers = self.wakers.lock().unwrap_or_else(|e| e.into_inner());
                if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
                    wakers.push(cx.waker().clone());
                }
            }
            // A notify between the first check and the push would otherwise be missed.
            let now = self.seq();
            if now != seen {
                Poll::Ready(now)
            } else {
                Poll::Pending
            }
        })
    }
}

/// Where a partition is served, for routing a session to its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub node: String,
    /// The address the owner accepts node-to-node connections on.
    pub internal: String,
    pub epoch: u64,
}

/// One replica of a partition, for the owner to ship to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaInfo {
    pub node: String,
    /// The node-to-node address; empty while the node is not alive.
    pub internal: String,
    /// Whether it holds every write the owner acknowledged (see [`ClusterView::set_in_sync`]).
    pub in_sync: bool,
}

/// A cheap, cloneable handle on this node's view of the cluster, for the executors. Nothing
/// here blocks: reads come from the local copy, and writes (claims, completing moves) are
/// sent to the control thread and awaited as futures that any runtime can poll.
#[derive(Clone)]
pub struct ClusterView {
    pub(crate) shared: Arc<Shared>,
}

impl ClusterView {
    /// This node's id.
    pub fn node(&self) -> &str {
        &self.shared.node
    }

    /// The current local copy of the map.
    pub fn map(&self) -> Arc<PartitionMap> {
        self.shared.map.load_full()
    }

    /// The version of the local copy; it rises with every change the watch delivers.
    pub fn version(&self) -> u64 {
        self.shared.map.load().version
    }

    /// The partition holding `user`'s mail.
    pub fn partition_of(&self, user: &str) -> u32 {
        self.shared.map.load().partition_of(user)
    }

    /// `Some(epoch)` when this node owns `p` and may act as its owner now: the map says so and
    /// the lease is still valid. Writes to the partition should carry the epoch, so a later
    /// owner can refuse those of an earlier one.
    pub fn is_owner(&self, p: u32) -> Option<u64> {
        if self.shared.fenced() {
            return None;
        }
        let map = self.shared.map.load();
        let a = map.assignment(p);
        a.owned_by(&self.shared.node).then_some(a.epoch)
    }

    /// The live owner of `p` and how to reach it; `None` while it has none (then the session
    /// should be refused with a temporary failure, the client will retry).
    pub fn owner(&self, p: u32) -> Option<Owner> {
        let map = self.shared.map.load();
        let a = map.assignment(p);
        let node = map.live_owner(p)?;
        Some(Owner {
            node: node.id.clone(),
            internal: node.internal.clone(),
            epoch: a.epoch,
        })
    }

    /// The replicas of `p` in the local copy, in the order the map lists them.
    pub fn replicas(&self, p: u32) -> Vec<ReplicaInfo> {
        let map = self.shared.map.load();
        let a = map.assignment(p);
        a.replicas
            .iter()
            .map(|node| ReplicaInfo {
                node: node.clone(),
                internal: map.internal(node),
                in_sync: a.in_sync_on(node),
            })
            .collect()
    }

    /// `Some((owner, epoch))` when this node holds a replica of `p`: the replica side accepts
    /// batches for `p` only from that owner and at that epoch or later. The owner's
    /// `internal` is empty while it is not alive.
    pub fn replica_of(&self, p: u32) -> Option<(Owner, u64)> {
        let map = self.shared.map.load();
        let a = map.assignment(p);
        if !a.replicated_on(&self.shared.node) {
            return None;
        }
        let node = a.owner.clone()?;
        let owner = Owner {
            internal: map.internal(&node),
            node,
            epoch: a.epoch,
        };
        Some((owner, a.epoch))
    }

    /// The owner's write that adds `node` to `p`'s in-sync replicas (after seeding it) or
    /// removes it (before acknowledging a write it lacks). It compares, in one etcd
    /// transaction, that this node owns `p` at `epoch` and the entry is as read; it fails
    /// when this node is fenced, is not the owner at `epoch` ([`Error::NotOwner`]), or (adding)
    /// `node` is not a replica ([`Error::NotReplica`]). Resolves once etcd has committed it.
    pub fn set_in_sync(
        &self,
        p: u32,
        node: &str,
        in_sync: bool,
        epoch: u64,
    ) -> impl Future<Output = Result<(), Error>> + Send + 'static {
        let node = node.to_string();
        self.ask(move |reply| Command::SetInSync {
            partition: p,
            node,
            in_sync,
            epoch,
            reply,
        })
    }

    /// Why this node must keep its copy of `p` of `kind`, which its local copy of the map no
    /// longer lists it for, decided on `p`'s entry and the registrations read from etcd now
    /// (the local copy may lag): `None` when the copy may be removed, because `p` has a live
    /// owner other than this node and (see [`CopyKind`]) at least one replica, all of them
    /// alive and in sync. Fails while this node is fenced or etcd cannot be reached (keep
    /// the copy then).
    pub fn stale_copy(
        &self,
        p: u32,
        kind: CopyKind,
    ) -> impl Future<Output = Result<Option<&'static str>, Error>> + Send + 'static {
        self.ask(move |reply| Command::StaleCopy {
            partition: p,
            kind,
            reply,
        })
    }

    /// Until when this node's lease is known to be valid: the last confirmed renewal was sent
    /// at T, so etcd cannot expire the lease before T + TTL; a small margin is kept for the
    /// time a write takes. `None` before the first renewal.
    pub fn lease_valid_until(&self) -> Option<Instant> {
        self.shared.valid_until()
    }

    /// True when the lease may have expired, so the node must stop acting as owner of any
    /// partition (they may already be someone else's); also after the node re-registered
    /// with a new lease, until its copy of the map shows what happened while it was dead.
    pub fn fenced(&self) -> bool {
        self.shared.fenced()
    }

    /// Pending moves this node takes part in, as (partition, from, to): the data plane reads
    /// these once at start, then follows [`ClusterView::subscribe`] for new ones.
    pub fn pending_moves(&self) -> Vec<(u32, String, String)> {
        let map = self.shared.map.load();
        let me = self.shared.node.as_str();
        map.assignments
            .iter()
            .enumerate()
            .filter_map(|(p, a)| {
                let (from, to) = (a.owner.as_deref()?, a.moving_to()?);
                (from == me || to == me).then(|| (p as u32, from.to_string(), to.to_string()))
            })
            .collect()
    }

    /// Change notifications for this node's partitions, from the copy current now on (what
    /// was already in it, such as moves pending at start, is in [`ClusterView::map`] and
    /// [`ClusterView::pending_moves`]).
    pub fn subscribe(&self) -> Subscription {
        Subscription {
            shared: self.shared.clone(),
            seen: self.shared.notifier.seq(),
            last: self.shared.map.load_full(),
            fenced: self.shared.fenced(),
        }
    }

    /// Claims `p` for this node at the next epoch, if it has no live owner in the local copy.
    /// The claim compares on the entry's mod revision as the local copy has it, so of two
    /// concurrent claimers exactly one wins ([`Error::Conflict`] for the other).
    pub fn claim(&self, p: u32) -> impl Future<Output = Result<u64, Error>> + Send + 'static {
        self.ask(move |reply| Command::Claim {
            partition: p,
            reply,
        })
    }

    /// Finishes a move the data plane has carried out: `to` becomes the owner at the next
    /// epoch, if the map still says `from` is handing `p` to `to` and `to` is alive. Returns
    /// the new epoch.
    pub fn complete_move(
        &self,
        p: u32,
        from: &str,
        to: &str,
    ) -> impl Future<Output = Result<u64, Error>> + Send + 'static {
        let (from, to) = (from.to_string(), to.to_string());
        self.ask(move |reply| Command::CompleteMove {
            partition: p,
            from,
            to,
            reply,
        })
    }

    /// The control plane's counters.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.shared.metrics.snapshot(
            self.shared.is_balancer.load(Ordering::Relaxed),
            self.shared.fenced(),
        )
    }

    fn ask<T: Send + 'static>(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<T, Error>>) -> Command,
    ) -> impl Future<Output = Result<T, Error>> + Send + 'static {
        let (reply, answer) = oneshot::channel();
        let sent = self.shared.commands.send(command(reply)).is_ok();
        async move {
            if !sent {
                return Err(Error::Stopped);
            }
            answer.await.unwrap_or(Err(Error::Stopped))
        }
    }
}

/// Follows the changes that concern this node. Each `poll` or `changed` compares the newest
/// copy with the one seen last, so nothing queues up and nothing is missed, however rarely it
/// is polled (changes in between are merged).
pub struct Subscription {
    shared: Arc<Shared>,
    seen: u64,
    last: Arc<PartitionMap>,
    fenced: bool,
}

/// What changed for this node since the subscription last looked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changes {
    /// The version of the copy compared against.
    pub version: u64,
    /// Whether the node is fenced now (see [`ClusterView::fenced`]).
    pub fenced: bool,
    /// Partitions this node owned and no longer owns: end their sessions.
    pub lost: Vec<u32>,
    /// Partitions this node now owns, with their epoch (also when it owned them before at an
    /// older epoch).
    pub gained: Vec<(u32, u64)>,
    /// Entries whose move state changed where this node is the owner or the target: a move
    /// to start, or one that was withdrawn.
    pub moves: Vec<PartitionChange>,
    /// Partitions whose replicas or in-sync replicas changed where this node is the owner or
    /// a replica (before or after): replicas to seed or to stop shipping to, a replica copy
    /// to start or to drop. A promotion of this node's replica is in `gained`.
    pub replicas: Vec<u32>,
}

/// One partition's entry before and after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionChange {
    pub partition: u32,
    pub before: Assignment,
    pub after: Assignment,
}

impl Subscription {
    /// The changes since the last call, without waiting; `None` when nothing concerning this
    /// node changed.
    pub fn poll(&mut self) -> Option<Changes> {
        let seq = self.shared.notifier.seq();
        if seq == self.seen {
            return None;
        }
        self.seen = seq;
        self.diff()
    }

    /// Waits for the next change concerning this node.
    pub async fn changed(&mut self) -> Changes {
        loop {
            self.seen = self.shared.notifier.wait(self.seen).await;
            if let Some(changes) = self.diff() {
                return changes;
            }
        }
    }

    fn diff(&mut self) -> Option<Changes> {
        let now = self.shared.map.load_full();
        let fenced = self.shared.fenced();
        let me = self.shared.node.as_str();
        let mut changes = Changes {
            version: now.version,
            fenced,
            lost: Vec::new(),
            gained: Vec::new(),
            moves: Vec::new(),
            replicas: Vec::new(),
        };
        for (p, after) in now.assignments.iter().enumerate() {
            let before = self.last.assignment(p as u32);
            if before == after {
                continue;
            }
            let p = p as u32;
            if before.owned_by(me) && !after.owned_by(me) {
                changes.lost.push(p);
            }
            if after.owned_by(me) && (!before.owned_by(me) || before.epoch != after.epoch) {
                changes.gained.push((p, after.epoch));
            }
            let involved = |a: &Assignment| a.owned_by(me) || a.moving_to() == Some(me);
            if before.state != after.state && (involved(before) || involved(after)) {
                changes.moves.push(PartitionChange {
                    partition: p,
                    before: before.clone(),
                    after: after.clone(),
                });
            }
            let holds = |a: &Assignment| a.owned_by(me) || a.replicated_on(me);
            if (before.replicas != after.replicas || before.in_sync != after.in_sync)
                && (holds(before) || holds(after))
            {
                changes.replicas.push(p);
            }
        }
        let fence_changed = fenced != self.fenced;
        self.last = now;
        self.fenced = fenced;
        let nothing = changes.lost.is_empty()
            && changes.gained.is_empty()
            && changes.moves.is_empty()
            && changes.replicas.is_empty();
        (!nothing || fence_changed).then_some(changes)
    }
}
