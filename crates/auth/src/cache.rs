//! Remembers recently verified logins so that a client that logs in again and again (phones
//! polling every few minutes, one connection per folder) does not pay a full Argon2 hash each
//! time.
//!
//! The password itself is never kept: an entry is HMAC-SHA256 under a key drawn at startup
//! over (user, stored hash, password). Because the stored hash is part of the MAC input, a
//! password change in the users file makes the old entry useless without any invalidation
//! step, and a memory dump reveals nothing that can be checked offline without the key.
//! Only successes are cached: a wrong password always pays the full hash.

use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::timed_map::TimedMap;
use crate::backend::UserInfo;

type HmacSha256 = Hmac<Sha256>;

/// Verified credentials, keyed by lowercased user name; at most one entry per user.
pub struct AuthCache {
    key: [u8; 32],
    ttl: Duration,
    entries: TimedMap<String, Entry>,
}

struct Entry {
    mac: [u8; 32],
    /// What the backend said about the user (canonical name, quota), so that a hit needs
    /// no directory lookup; `None` when the key is the canonical name and nothing more is
    /// known.
    info: Option<UserInfo>,
}

impl AuthCache {
    /// A cache whose entries are valid for `ttl` after verification and that holds at most
    /// `max_entries` users. A zero `ttl` or `max_entries` disables caching.
    pub fn new(ttl: Duration, max_entries: usize) -> AuthCache {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        let capacity = if ttl.is_zero() { 0 } else { max_entries };
        AuthCache {
            key,
            ttl,
            entries: TimedMap::new(capacity),
        }
    }

    fn mac(&self, user: &str, stored_hash: &str, password: &[u8]) -> [u8; 32] {
        let mut mac = match HmacSha256::new_from_slice(&self.key) {
            Ok(mac) => mac,
            // HMAC takes keys of any length; this arm cannot be reached with a 32-byte key.
            Err(_) => return [0; 32],
        };
        // Length prefixes keep ("ab", "c") and ("a", "bc") apart whatever bytes they hold.
        for part in [user.as_bytes(), stored_hash.as_bytes()] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.update(password);
        mac.finalize().into_bytes().into()
    }

    /// True when `user` logged in with exactly `password` against exactly `stored_hash`
    /// less than the TTL before `now`.
    pub fn check(&self, user: &str, stored_hash: &str, password: &[u8], now: Instant) -> bool {
        self.check_info(user, stored_hash, password, now).is_some()
    }

    /// Like [`AuthCache::check`], and on a hit returns what was recorded about the user
    /// (the user named `user` when nothing more was).
    ///
    /// `stored_hash` is whatever ties the entry to the credential's source: the passwd-file
    /// hash (so a changed password no longer matches), or a backend's tag where the hash is
    /// not known here (LDAP bind).
    pub fn check_info(
        &self,
        user: &str,
        stored_hash: &str,
        password: &[u8],
        now: Instant,
    ) -> Option<UserInfo> {
        let stamped = self.entries.get(user)?;
        let fresh = now.saturating_duration_since(stamped.written) < self.ttl;
        let matches: bool = stamped
            .value
            .mac
            .ct_eq(&self.mac(user, stored_hash, password))
            .into();
        (fresh && matches).then(|| {
            stamped
                .value
                .info
                .clone()
                .unwrap_or_else(|| UserInfo::named(user))
        })
    }

    /// Records a successful full verification at `now`. Call it only after the stored hash
    /// said yes.
    pub fn insert(&mut self, user: &str, stored_hash: &str, password: &[u8], now: Instant) {
        self.insert_entry(user, stored_hash, password, None, now);
    }

    /// Like [`AuthCache::insert`], remembering `info` for [`AuthCache::check_info`].
    pub fn insert_info(
        &mut self,
        user: &str,
        stored_hash: &str,
        password: &[u8],
        info: UserInfo,
        now: Instant,
    ) {
        self.insert_entry(user, stored_hash, password, Some(info), now);
    }

    fn insert_entry(
        &mut self,
        user: &str,
        stored_hash: &str,
        password: &[u8],
        info: Option<UserInfo>,
        now: Instant,
    ) {
        // Expired entries are dead weight; dropping them first keeps live ones from eviction.
        if let Some(cutoff) = now.checked_sub(self.ttl) {
            self.entries.remove_written_before(cutoff);
        }
        let mac = self.mac(user, stored_hash, password);
        self.entries
            .insert(user.to_owned(), Entry { mac, info }, now);
    }

    /// Forgets `user` (for a password change or deletion known to this process).
    pub fn forget(&mut self, user: &str) {
        self.entries.remove(user);
    }

    /// Forgets everyone.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// How many users are cached (expired entries included until they are pruned).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "{ARGON2ID}$argon2id$v=19$m=8,t=1,p=1$salt$hash";
    const TTL: Duration = Duration::from_secs(60);

    #[test]
    fn hit_needs_same_password_within_ttl() {
        let t0 = Instant::now();
        let mut c = AuthCache::new(TTL, 10);
        assert!(!c.check("alice", HASH, b"pw", t0));
        c.insert("alice", HASH, b"pw", t0);
        assert!(c.check("alice", HASH, b"pw", t0 + Duration::from_secs(59)));
        assert!(!c.check("alice", HASH, b"pw2", t0));
        assert!(!c.check("alice", HASH, b"p", t0));
        assert!(!c.check("bob", HASH, b"pw", t0));
        assert!(!c.check("alice", HASH, b"pw", t0 + TTL));
    }

    #[test]
    fn changed_stored_hash_invalidates() {
        let t0 = Instant::now();
        let mut c = AuthCache::new(TTL, 10);
        c.insert("alice", HASH, b"pw", t0);
        assert!(!c.check("alice", "{PLAIN}pw", b"pw", t0));
    }

    #[test]
    fn user_and_hash_boundaries_are_unambiguous() {
        let c = AuthCache::new(TTL, 10);
        // Same concatenation, different split: the MACs must differ.
        assert_ne!(c.mac("ab", "c", b"pw"), c.mac("a", "bc", b"pw"));
        assert_ne!(c.mac("a", "b", b"cpw"), c.mac("a", "bc", b"pw"));
    }

    #[test]
    fn keys_differ_between_caches() {
        // A cache built by another process (another key) cannot vouch for this one.
        let a = AuthCache::new(TTL, 1);
        let b = AuthCache::new(TTL, 1);
        assert_ne!(a.mac("u", HASH, b"pw"), b.mac("u", HASH, b"pw"));
    }

    #[test]
    fn bounded_and_evicts_oldest() {
        let t0 = Instant::now();
        let mut c = AuthCache::new(TTL, 2);
        c.insert("a", HASH, b"1", t0);
        c.insert("b", HASH, b"2", t0 + Duration::from_secs(1));
        c.insert("c", HASH, b"3", t0 + Duration::from_secs(2));
        assert_eq!(c.len(), 2);
        let t = t0 + Duration::from_secs(3);
        assert!(!c.check("a", HASH, b"1", t));
        assert!(c.check("b", HASH, b"2", t));
        assert!(c.check("c", HASH, b"3", t));
    }

    #[test]
    fn expired_entries_are_pruned_on_insert() {
        let t0 = Instant::now();
        let mut c = AuthCache::new(TTL, 10);
        c.insert("a", HASH, b"1", t0);
        c.insert("b", HASH, b"2", t0 + TTL + Duration::from_secs(1));
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn info_is_returned_on_a_hit_only() {
        let t0 = Instant::now();
        let mut c = AuthCache::new(TTL, 10);
        let info = UserInfo {
            name: "alice@example.org".into(),
            quota_bytes: Some(1 << 30),
        };
        c.insert_info("alice", "ldap", b"pw", info.clone(), t0);
        assert_eq!(c.check_info("alice", "ldap", b"pw", t0), Some(info));
        assert_eq!(c.check_info("alice", "ldap", b"pw2", t0), None);
        assert_eq!(c.check_info("alice", HASH, b"pw", t0), None);
        c.insert("bob", HASH, b"pw", t0);
        assert_eq!(
            c.check_info("bob", HASH, b"pw", t0),
            Some(UserInfo::named("bob"))
        );
    }

    #[test]
    fn zero_ttl_disables() {
        let t0 = Instant::now();
        let mut c = AuthCache::new(Duration::ZERO, 10);
        c.insert("a", HASH, b"1", t0);
        assert!(!c.check("a", HASH, b"1", t0));
        assert!(c.is_empty());
    }

    #[test]
    fn forget_and_clear() {
        let t0 = Instant::now();
        let mut c = AuthCache::new(TTL, 10);
        c.insert("a", HASH, b"1", t0);
        c.insert("b", HASH, b"2", t0);
        c.forget("a");
        assert!(!c.check("a", HASH, b"1", t0));
        assert!(c.check("b", HASH, b"2", t0));
        c.clear();
        assert!(!c.check("b", HASH, b"2", t0));
    }
}
