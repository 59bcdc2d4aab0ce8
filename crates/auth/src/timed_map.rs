//! A map with a fixed capacity that forgets its oldest entries first.
//!
//! The auth cache and the login throttle both keep per-key state that must not grow without
//! bound however many user names or client addresses an attacker tries; both forget by age.

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::time::Instant;

/// Entries stamped with the time they were last written; at capacity, inserting evicts the
/// entry written longest ago.
pub(crate) struct TimedMap<K, V> {
    entries: HashMap<K, Stamped<V>>,
    /// (written at, sequence number) -> key: the age order, oldest first. The sequence number
    /// keeps keys written at the same instant apart.
    by_age: BTreeMap<(Instant, u64), K>,
    next_seq: u64,
    capacity: usize,
}

pub(crate) struct Stamped<V> {
    pub(crate) value: V,
    pub(crate) written: Instant,
    seq: u64,
}

impl<K: Hash + Eq + Clone, V> TimedMap<K, V> {
    /// A map that holds at most `capacity` entries (0: holds nothing).
    pub(crate) fn new(capacity: usize) -> Self {
        TimedMap {
            entries: HashMap::new(),
            by_age: BTreeMap::new(),
            next_seq: 0,
            capacity,
        }
    }

    pub(crate) fn get<Q: Hash + Eq + ?Sized>(&self, key: &Q) -> Option<&Stamped<V>>
    where
        K: Borrow<Q>,
    {
        self.entries.get(key)
    }

    /// Stores `value` under `key`, stamped `now`, evicting the oldest entry when full.
    pub(crate) fn insert(&mut self, key: K, value: V, now: Instant) {
        if self.capacity == 0 {
            return;
        }
        self.remove(&key);
        while self.entries.len() >= self.capacity {
            let Some((_, oldest)) = self.by_age.pop_first() else {
                break;
            };
            self.entries.remove(&oldest);
        }
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        self.by_age.insert((now, seq), key.clone());
        self.entries.insert(
            key,
            Stamped {
                value,
                written: now,
                seq,
            },
        );
    }

    pub(crate) fn remove<Q: Hash + Eq + ?Sized>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        let old = self.entries.remove(key)?;
        self.by_age.remove(&(old.written, old.seq));
        Some(old.value)
    }

    /// Drops every entry written before `cutoff`.
    pub(crate) fn remove_written_before(&mut self, cutoff: Instant) {
        while let Some(entry) = self.by_age.first_entry() {
            if entry.key().0 >= cutoff {
                break;
            }
            let key = entry.remove();
            self.entries.remove(&key);
        }
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.by_age.clear();
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn evicts_oldest_written_first() {
        let t0 = Instant::now();
        let mut m = TimedMap::new(2);
        m.insert("a", 1, t0);
        m.insert("b", 2, t0 + Duration::from_secs(1));
        // Rewriting "a" makes it the youngest, so "b" goes when "c" arrives.
        m.insert("a", 3, t0 + Duration::from_secs(2));
        m.insert("c", 4, t0 + Duration::from_secs(3));
        assert_eq!(m.len(), 2);
        assert!(m.get(&"b").is_none());
        assert_eq!(m.get(&"a").map(|s| s.value), Some(3));
        assert_eq!(m.get(&"c").map(|s| s.value), Some(4));
    }

    #[test]
    fn same_instant_keys_do_not_collide() {
        let t0 = Instant::now();
        let mut m = TimedMap::new(10);
        for k in 0..5 {
            m.insert(k, k, t0);
        }
        assert_eq!(m.len(), 5);
        m.remove_written_before(t0 + Duration::from_nanos(1));
        assert_eq!(m.len(), 0);
    }

    #[test]
    fn remove_written_before_keeps_younger() {
        let t0 = Instant::now();
        let mut m = TimedMap::new(10);
        m.insert(1, (), t0);
        m.insert(2, (), t0 + Duration::from_secs(5));
        m.remove_written_before(t0 + Duration::from_secs(5));
        assert!(m.get(&1).is_none());
        assert!(m.get(&2).is_some());
        assert_eq!(m.remove(&2), Some(()));
        assert_eq!(m.len(), 0);
    }

    #[test]
    fn zero_capacity_holds_nothing() {
        let mut m = TimedMap::new(0);
        m.insert(1, 1, Instant::now());
        assert_eq!(m.len(), 0);
    }
}
