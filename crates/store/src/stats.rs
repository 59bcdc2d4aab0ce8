//! Per-partition store statistics: log appends, group-commit batch sizes and fsync latency,
//! plus the size of the in-memory index.
//!
//! The counters live in a `Cell` inside the partition (one executor owns it, so no atomics)
//! and are bumped once per group-commit batch, not per record, which keeps them off the
//! per-command cost. Histograms use fixed buckets so that [`StoreStats`] stays `Copy` and a
//! snapshot of every partition once a second costs a few hundred bytes each.

use std::cell::Cell;
use std::time::Duration;

use super::index::{Expunged, Index, MessageEntry};

/// Upper bounds (microseconds) of the fsync latency buckets: 50 µs to 1 s.
pub const FSYNC_BUCKETS_US: [u64; 14] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000,
];

/// Upper bounds of the group-commit batch size buckets, in records.
pub const BATCH_BUCKETS: [u64; 11] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];

/// A histogram with fixed upper bounds (`BOUNDS`, plus an implicit +Inf).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buckets<const N: usize> {
    /// Observations at or below each bound (not cumulative); the last slot is above all.
    pub counts: [u64; N],
    /// Observations above the last bound.
    pub over: u64,
    /// Sum of the observed values (in the unit of the bounds).
    pub sum: u64,
}

impl<const N: usize> Default for Buckets<N> {
    fn default() -> Self {
        Buckets {
            counts: [0; N],
            over: 0,
            sum: 0,
        }
    }
}

impl<const N: usize> Buckets<N> {
    /// Records `value` against `bounds`.
    pub fn record(&mut self, bounds: &[u64; N], value: u64) {
        match bounds.iter().position(|&le| value <= le) {
            Some(i) => self.counts[i] += 1,
            None => self.over += 1,
        }
        self.sum = self.sum.saturating_add(value);
    }

    /// Observations in all.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum::<u64>() + self.over
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &Buckets<N>) {
        for (ours, theirs) in self.counts.iter_mut().zip(other.counts) {
            *ours += theirs;
        }
        self.over += other.over;
        self.sum = self.sum.saturating_add(other.sum);
    }
}

/// A partition's statistics at one moment (or a sum over partitions).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Records appended to the log and made durable (every mutation, not only APPEND).
    pub appends: u64,
    /// Group-commit batches written.
    pub batches: u64,
    /// fdatasync calls that made a batch durable (none with `Durability::Relaxed`).
    pub fsyncs: u64,
    /// Latency of those fdatasync calls, in microseconds.
    pub fsync_us: Buckets<14>,
    /// Records per batch.
    pub batch_records: Buckets<11>,
    /// Messages in the partition's mailboxes now.
    pub messages: u64,
    /// Estimated heap bytes of the in-memory index now.
    pub index_bytes: u64,
}

impl StoreStats {
    /// Adds `other` into `self` (gauges add too: the sum over partitions).
    pub fn merge(&mut self, other: &StoreStats) {
        self.appends += other.appends;
        self.batches += other.batches;
        self.fsyncs += other.fsyncs;
        self.fsync_us.merge(&other.fsync_us);
        self.batch_records.merge(&other.batch_records);
        self.messages += other.messages;
        self.index_bytes += other.index_bytes;
    }
}

/// The live counters of one partition.
#[derive(Debug, Default)]
pub(crate) struct Recorder(Cell<StoreStats>);

impl Recorder {
    fn update(&self, f: impl FnOnce(&mut StoreStats)) {
        let mut s = self.0.get();
        f(&mut s);
        self.0.set(s);
    }

    /// A batch of `records` records was written and made durable.
    pub fn batch_written(&self, records: usize) {
        self.update(|s| {
            s.appends += records as u64;
            s.batches += 1;
            s.batch_records.record(&BATCH_BUCKETS, records as u64);
        });
    }

    /// An fdatasync of the log took `elapsed`.
    pub fn synced(&self, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.update(|s| {
            s.fsyncs += 1;
            s.fsync_us.record(&FSYNC_BUCKETS_US, us);
        });
    }

    /// The counters, with the index gauges measured from `index` now.
    pub fn snapshot(&self, index: &Index) -> StoreStats {
        let (messages, index_bytes) = footprint(index);
        StoreStats {
            messages,
            index_bytes,
            ..self.0.get()
        }
    }
}

/// Messages in `index` and an estimate of its heap bytes. Walks users and mailboxes, not
/// messages (a mailbox's message array is counted by its capacity), so it stays cheap enough
/// to run once a second.
fn footprint(index: &Index) -> (u64, u64) {
    use std::mem::size_of;
    let mut messages = 0u64;
    let mut bytes = 0usize;
    for (name, user) in &index.users {
        bytes += name.capacity() + size_of::<super::index::User>();
        bytes += user.names.keys().map(|k| k.capacity() + 16).sum::<usize>();
        bytes += user
            .subscriptions
            .iter()
            .map(|k| k.capacity())
            .sum::<usize>();
        for mailbox in user.mailboxes.values() {
            messages += mailbox.messages.len() as u64;
            bytes += size_of::<super::index::Mailbox>()
                + mailbox.name.capacity()
                + mailbox.messages.capacity() * size_of::<MessageEntry>()
                + mailbox.expunged.capacity() * size_of::<Expunged>();
        }
    }
    // Sieve: script sources counted exactly (few per user); remembered keys estimated per
    // entry (key bytes plus tree overhead), not walked.
    for (name, u) in &index.sieve.users {
        bytes += name.capacity() + size_of::<super::sieve::SieveUser>();
        bytes += u
            .scripts
            .iter()
            .map(|(n, s)| n.capacity() + s.capacity() + 48)
            .sum::<usize>();
        bytes += u.remembered.len() * REMEMBERED_ENTRY_BYTES;
    }
    (messages, bytes as u64)
}

/// Estimated heap bytes of one remembered key: a short key (a vacation handle and a sender
/// address) and its share of the tree.
const REMEMBERED_ENTRY_BYTES: usize = 128;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_place_values_at_their_upper_bound_and_above_all() {
        let mut b = Buckets::<11>::default();
        b.record(&BATCH_BUCKETS, 1);
        b.record(&BATCH_BUCKETS, 3);
        b.record(&BATCH_BUCKETS, 4);
        b.record(&BATCH_BUCKETS, 5000);
        assert_eq!(b.counts[0], 1);
        assert_eq!(b.counts[2], 2);
        assert_eq!(b.over, 1);
        assert_eq!(b.count(), 4);
        assert_eq!(b.sum, 5008);
    }

    #[test]
    fn recorder_counts_batches_and_syncs() {
        let r = Recorder::default();
        r.batch_written(3);
        r.batch_written(1);
        r.synced(Duration::from_micros(700));
        let s = r.snapshot(&Index::default());
        assert_eq!(s.appends, 4);
        assert_eq!(s.batches, 2);
        assert_eq!(s.fsyncs, 1);
        assert_eq!(s.fsync_us.counts[4], 1, "700 µs lands in the 1 ms bucket");
        assert_eq!(s.messages, 0);
        let mut total = s;
        total.merge(&s);
        assert_eq!(total.appends, 8);
        assert_eq!(total.batch_records.count(), 4);
    }
}
