//! Who may connect and who may log in: the per-address limits of `[limits]`.
//!
//! Two counts, each kept where it can be exact without a lock between cores:
//!
//! - Connections from one address that have not logged in yet (`max_preauth_per_ip`, against
//!   floods). SO_REUSEPORT spreads one address's connections over every executor by a hash of
//!   the 4-tuple, so a per-executor share of the limit would refuse an address whose
//!   connections happen to land on one core long before it reached the limit. Instead all
//!   executors share one small table of atomic counters ([`PreauthCounts`]), indexed by two
//!   keyed hashes of the address (a count-min sketch): one atomic add per connection, no lock,
//!   and exact for an address unless other addresses fill both of its counters (the estimate
//!   is the smaller of the two, so a collision can only over-count, never let a flood through).
//! - Sessions of one user from one address after login (`max_sessions_per_user_ip`, Dovecot's
//!   `mail_max_userip_connections`). Every session of a user runs on the executor that owns
//!   the user (sessions move there at login), so this count lives on that executor alone
//!   ([`UserSessions`]).
//!
//! Both hand out a slot that gives its count back when dropped, so a session releases what it
//! holds however it ends (LOGOUT, a dropped connection, a timeout, shutdown, a panic).

use std::cell::RefCell;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// Counters per row of the sketch: 2 x 16 Ki x 4 bytes = 128 KiB for the process.
const SLOTS: usize = 1 << 14;

/// Connections not logged in yet, per client address, counted for all executors together.
pub struct PreauthCounts {
    rows: [Box<[AtomicU32]>; 2],
    /// Random keys, so nobody can pick addresses that collide with a victim's counters.
    hashers: [RandomState; 2],
}

impl Default for PreauthCounts {
    fn default() -> Self {
        let row = || (0..SLOTS).map(|_| AtomicU32::new(0)).collect();
        PreauthCounts {
            rows: [row(), row()],
            hashers: [RandomState::new(), RandomState::new()],
        }
    }
}

impl PreauthCounts {
    /// Counts one more connection from `ip`; None (and nothing counted) when `ip` already has
    /// `limit`.
    pub fn try_take(self: &Arc<Self>, ip: IpAddr, limit: usize) -> Option<PreauthSlot> {
        let index = [0, 1].map(|row| (self.hashers[row].hash_one(ip) as usize) % SLOTS);
        // Add first, then look: two executors racing for the last place cannot both get it.
        let counts = [0, 1].map(|row| self.rows[row][index[row]].fetch_add(1, Ordering::Relaxed));
        let slot = PreauthSlot {
            counts: self.clone(),
            index,
        };
        let before = counts[0].min(counts[1]) as usize;
        (before < limit).then_some(slot)
    }

    /// The estimated count for `ip` (for tests).
    pub fn count(&self, ip: IpAddr) -> u32 {
        (0..2)
            .map(|row| {
                let i = (self.hashers[row].hash_one(ip) as usize) % SLOTS;
                self.rows[row][i].load(Ordering::Relaxed)
            })
            .min()
            .unwrap_or(0)
    }
}

/// One connection counted in [`PreauthCounts`]; uncounted when dropped (at login or close).
pub struct PreauthSlot {
    counts: Arc<PreauthCounts>,
    index: [usize; 2],
}

impl Drop for PreauthSlot {
    fn drop(&mut self) {
        for (row, &i) in self.index.iter().enumerate() {
            self.counts.rows[row][i].fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Session counts by (user, client address).
type UserIpCounts = Rc<RefCell<HashMap<(Box<str>, IpAddr), usize>>>;

/// Sessions per (user, client address) on the executor that owns those users.
#[derive(Default, Clone)]
pub struct UserSessions {
    counts: UserIpCounts,
}

impl UserSessions {
    /// Counts one more session of `user` from `ip`; None when there are `limit` already.
    pub fn try_take(&self, user: &str, ip: IpAddr, limit: usize) -> Option<UserSessionSlot> {
        let key = (Box::<str>::from(user), ip);
        let mut counts = self.counts.borrow_mut();
        let count = counts.entry(key.clone()).or_insert(0);
        if *count >= limit {
            if *count == 0 {
                counts.remove(&key);
            }
            return None;
        }
        *count += 1;
        Some(UserSessionSlot {
            counts: self.counts.clone(),
            key,
        })
    }

    /// Sessions of `user` from `ip` now.
    pub fn count(&self, user: &str, ip: IpAddr) -> usize {
        let key = (Box::<str>::from(user), ip);
        self.counts.borrow().get(&key).copied().unwrap_or(0)
    }
}

/// One session counted in [`UserSessions`]; uncounted when the session ends.
pub struct UserSessionSlot {
    counts: UserIpCounts,
    key: (Box<str>, IpAddr),
}

impl Drop for UserSessionSlot {
    fn drop(&mut self) {
        // try_borrow_mut: a drop during a panic unwind must not panic again.
        if let Ok(mut counts) = self.counts.try_borrow_mut() {
            if let Some(count) = counts.get_mut(&self.key) {
                *count -= 1;
                if *count == 0 {
                    counts.remove(&self.key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn preauth_limit_is_exact_per_address_and_released_on_drop() {
        let counts = Arc::new(PreauthCounts::default());
        let a = ip("192.0.2.1");
        let held: Vec<PreauthSlot> = (0..100).map(|_| counts.try_take(a, 100).unwrap()).collect();
        assert!(counts.try_take(a, 100).is_none(), "the 101st is refused");
        assert_eq!(counts.count(a), 100, "a refusal counts nothing");
        // Another address is not affected.
        let b = counts.try_take(ip("2001:db8::7"), 100);
        assert!(b.is_some());
        drop(held);
        assert_eq!(counts.count(a), 0);
        assert!(counts.try_take(a, 1).is_some());
    }

    #[test]
    fn preauth_counts_are_shared_between_threads() {
        let counts = Arc::new(PreauthCounts::default());
        let a = ip("198.51.100.9");
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let counts = counts.clone();
                std::thread::spawn(move || {
                    (0..50)
                        .filter_map(|_| counts.try_take(a, 120))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let slots: Vec<PreauthSlot> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        assert_eq!(slots.len(), 120, "200 tries over 4 threads, 120 admitted");
        drop(slots);
        assert_eq!(counts.count(a), 0);
    }

    #[test]
    fn user_sessions_per_user_and_address() {
        let sessions = UserSessions::default();
        let a = ip("192.0.2.1");
        let held: Vec<_> = (0..20)
            .map(|_| sessions.try_take("alice", a, 20).unwrap())
            .collect();
        assert!(sessions.try_take("alice", a, 20).is_none());
        // Same user from elsewhere, and another user from the same address, are separate.
        let _other_ip = sessions.try_take("alice", ip("192.0.2.2"), 20).unwrap();
        let _other_user = sessions.try_take("bob", a, 20).unwrap();
        drop(held);
        assert_eq!(sessions.count("alice", a), 0);
        assert!(sessions.try_take("alice", a, 20).is_some());
    }
}
