//! The Sieve state of a partition, per user: scripts with their source, the active script,
//! the script version and the remembered keys (vacation replies sent, duplicate ids seen).
//!
//! It is built only by applying the Sieve records (kinds 13–17, see `record`) and carried
//! across compaction by checkpoints (a second archive, see `checkpoint`). The `Partition`
//! API over it is in `scripts`. Applying a record either changes the state and succeeds or
//! changes nothing and fails the same way on replay as it did live.

use std::collections::{BTreeMap, HashMap};

use rkyv::{Archive, Deserialize, Serialize};

use super::error::StoreError;
use super::index::Applied;
use super::record::{MAX_REMEMBER_KEY, MAX_SCRIPT_NAME, MAX_SCRIPT_SIZE};

/// Most remembered keys per user; beyond it the entries that expire soonest are dropped.
pub const MAX_REMEMBERED: usize = 10_000;
/// Most scripts per user the store takes (a backstop; ManageSieve enforces the configured
/// `[sieve] max_scripts`).
pub const MAX_SCRIPTS: usize = 1024;
/// Most bytes of script source per user the store takes (a backstop, like `MAX_SCRIPTS`).
pub const MAX_SCRIPT_BYTES: usize = 64 << 20;

/// All users' Sieve state.
#[derive(Debug, Default, Archive, Serialize, Deserialize)]
pub(crate) struct Sieve {
    pub users: HashMap<String, SieveUser>,
    /// The highest `now` of the SIEVE_REMEMBER records applied: the partition's Sieve
    /// clock. Pruning at checkpoints goes by it, never by the wall clock, so that what a
    /// checkpoint drops was already expired for any caller whose clock is at least this.
    pub clock: i64,
}

/// One user's Sieve state.
#[derive(Debug, Default, Archive, Serialize, Deserialize)]
pub(crate) struct SieveUser {
    /// Script name → source.
    pub scripts: BTreeMap<String, String>,
    /// The active script's name (normally a key of `scripts`; a damaged checkpoint may
    /// break that, which `problems` reports and `Partition::active_script` tolerates).
    pub active: Option<String>,
    /// Bumped by every script record that applies; never decreases.
    pub version: u64,
    /// Remembered key → expiry (seconds since the epoch, live while `now < expiry`).
    pub remembered: BTreeMap<Vec<u8>, i64>,
}

impl SieveUser {
    /// Bytes of source over all scripts.
    pub fn script_bytes(&self) -> usize {
        self.scripts.values().map(String::len).sum()
    }

    fn is_empty(&self) -> bool {
        self.scripts.is_empty()
            && self.active.is_none()
            && self.version == 0
            && self.remembered.is_empty()
    }
}

impl Sieve {
    /// Whether there is no state at all (a checkpoint of version 1 suffices).
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    pub fn user(&self, name: &str) -> Option<&SieveUser> {
        self.users.get(name)
    }

    fn user_mut(&mut self, name: &str) -> &mut SieveUser {
        self.users.entry(name.to_string()).or_default()
    }

    pub fn put_script(
        &mut self,
        user: &str,
        name: &str,
        source: &str,
    ) -> Result<Applied, StoreError> {
        let u = self.user_mut(user);
        u.scripts.insert(name.to_string(), source.to_string());
        u.version += 1;
        Ok(Applied::Done)
    }

    pub fn delete_script(&mut self, user: &str, name: &str) -> Result<Applied, StoreError> {
        let u = self.users.get_mut(user).ok_or(StoreError::NoSuchScript)?;
        if !u.scripts.contains_key(name) {
            return Err(StoreError::NoSuchScript);
        }
        if u.active.as_deref() == Some(name) {
            return Err(StoreError::ScriptActive);
        }
        u.scripts.remove(name);
        u.version += 1;
        Ok(Applied::Done)
    }

    pub fn rename_script(
        &mut self,
        user: &str,
        from: &str,
        to: &str,
    ) -> Result<Applied, StoreError> {
        let u = self.users.get_mut(user).ok_or(StoreError::NoSuchScript)?;
        if !u.scripts.contains_key(from) {
            return Err(StoreError::NoSuchScript);
        }
        if u.scripts.contains_key(to) {
            return Err(StoreError::AlreadyExists);
        }
        let source = u.scripts.remove(from).unwrap_or_default();
        u.scripts.insert(to.to_string(), source);
        if u.active.as_deref() == Some(from) {
            u.active = Some(to.to_string());
        }
        u.version += 1;
        Ok(Applied::Done)
    }

    pub fn activate_script(
        &mut self,
        user: &str,
        name: Option<&str>,
    ) -> Result<Applied, StoreError> {
        if let Some(n) = name {
            if !self.user(user).is_some_and(|u| u.scripts.contains_key(n)) {
                return Err(StoreError::NoSuchScript);
            }
        }
        let u = self.user_mut(user);
        u.active = name.map(str::to_string);
        u.version += 1;
        Ok(Applied::Done)
    }

    /// Applies a SIEVE_REMEMBER record (see docs/storage-format.md for the rules).
    pub fn remember(
        &mut self,
        user: &str,
        now: i64,
        entries: &[(&[u8], i64)],
    ) -> Result<Applied, StoreError> {
        self.clock = self.clock.max(now);
        let u = self.user_mut(user);
        for &(key, expires) in entries {
            if expires <= now {
                u.remembered.remove(key);
            } else {
                u.remembered.insert(key.to_vec(), expires);
            }
        }
        if u.remembered.len() > MAX_REMEMBERED {
            u.remembered.retain(|_, &mut e| e > now);
        }
        if u.remembered.len() > MAX_REMEMBERED {
            // Rare (a user at the cap): sort once and drop the soonest to expire.
            let mut by_expiry: Vec<(i64, Vec<u8>)> =
                u.remembered.iter().map(|(k, &e)| (e, k.clone())).collect();
            by_expiry.sort_unstable();
            let excess = u.remembered.len() - MAX_REMEMBERED;
            for (_, key) in by_expiry.into_iter().take(excess) {
                u.remembered.remove(&key);
            }
        }
        if u.is_empty() {
            self.users.remove(user);
        }
        Ok(Applied::Done)
    }

    /// Whether `key` is remembered for `user` with an expiry after `now`.
    pub fn remembered(&self, user: &str, key: &[u8], now: i64) -> bool {
        self.user(user)
            .and_then(|u| u.remembered.get(key))
            .is_some_and(|&e| e > now)
    }

    /// Drops the keys expired by the Sieve clock and the users left with nothing (before a
    /// checkpoint: they are dead weight in every one to come).
    pub fn prune(&mut self) {
        let clock = self.clock;
        self.users.retain(|_, u| {
            u.remembered.retain(|_, &mut e| e > clock);
            !u.is_empty()
        });
    }

    /// Where the state breaks its rules (a damaged or forged checkpoint: rkyv checks only
    /// its shape), one line each, for `check`.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut users: Vec<_> = self.users.iter().collect();
        users.sort_by(|a, b| a.0.cmp(b.0));
        for (name, u) in users {
            if let Some(active) = &u.active {
                if !u.scripts.contains_key(active) {
                    out.push(format!(
                        "user {name:?}: active script {active:?} does not exist"
                    ));
                }
            }
            for (script, source) in &u.scripts {
                if script.is_empty() || script.len() > MAX_SCRIPT_NAME {
                    out.push(format!(
                        "user {name:?}: script name of {} bytes",
                        script.len()
                    ));
                }
                if source.len() > MAX_SCRIPT_SIZE {
                    out.push(format!(
                        "user {name:?}: script {script:?} of {} bytes is over the limit",
                        source.len()
                    ));
                }
            }
            if u.remembered.len() > MAX_REMEMBERED {
                out.push(format!(
                    "user {name:?}: {} remembered keys, more than {MAX_REMEMBERED}",
                    u.remembered.len()
                ));
            }
            if let Some(k) = u
                .remembered
                .keys()
                .find(|k| k.is_empty() || k.len() > MAX_REMEMBER_KEY)
            {
                out.push(format!(
                    "user {name:?}: remembered key of {} bytes",
                    k.len()
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: usize) -> Vec<u8> {
        format!("k{i:05}").into_bytes()
    }

    #[test]
    fn remembered_keys_are_capped_by_expiry_and_pruned_by_the_clock() {
        let mut s = Sieve::default();
        s.remember("u", 100, &[(b"a", 200)]).unwrap();
        // keys[i] expires at 1000 + i; with "a" the user is at the cap.
        let keys: Vec<Vec<u8>> = (0..MAX_REMEMBERED - 1).map(key).collect();
        for chunk in keys.chunks(1000).enumerate() {
            let (c, chunk) = chunk;
            let entries: Vec<(&[u8], i64)> = chunk
                .iter()
                .enumerate()
                .map(|(i, k)| (&k[..], 1000 + (c * 1000 + i) as i64))
                .collect();
            s.remember("u", 100, &entries).unwrap();
        }
        assert_eq!(s.user("u").unwrap().remembered.len(), MAX_REMEMBERED);
        assert!(s.remembered("u", b"a", 150));
        // One over: "a" (expiry 200) expires soonest and goes.
        s.remember("u", 150, &[(b"new0", 5000)]).unwrap();
        assert_eq!(s.user("u").unwrap().remembered.len(), MAX_REMEMBERED);
        assert!(!s.remembered("u", b"a", 150));
        assert!(s.remembered("u", &keys[0], 150));
        // Two more: keys[0] (1000) and keys[1] (1001) go.
        s.remember("u", 150, &[(b"new1", 5000), (b"new2", 5000)])
            .unwrap();
        assert_eq!(s.user("u").unwrap().remembered.len(), MAX_REMEMBERED);
        assert!(!s.remembered("u", &keys[0], 150));
        assert!(!s.remembered("u", &keys[1], 150));
        assert!(s.remembered("u", &keys[2], 150));
        // At 1500 the keys expiring by then (keys[2..=500]) make room when the user is full.
        s.remember("u", 1500, &[(b"new3", 9000)]).unwrap();
        assert!(!s.remembered("u", &keys[500], 0));
        assert!(s.remembered("u", &keys[501], 1500));
        assert_eq!(
            s.user("u").unwrap().remembered.len(),
            MAX_REMEMBERED + 1 - 499
        );
        // The checkpoint prune drops what expired by the clock (keys[501..=700]), and users
        // left with nothing.
        s.remember("w", 1500, &[(b"x", 1600)]).unwrap();
        s.clock = 1700;
        s.prune();
        assert!(s.user("w").is_none());
        assert!(!s.remembered("u", &keys[700], 0));
        assert!(s.remembered("u", &keys[701], 0));
        assert_eq!(
            s.user("u").unwrap().remembered.len(),
            MAX_REMEMBERED + 1 - 499 - 200
        );
        assert!(s.problems().is_empty(), "{:?}", s.problems());
    }

    #[test]
    fn a_user_with_a_script_history_is_kept_so_the_version_never_goes_back() {
        let mut s = Sieve::default();
        s.put_script("u", "a", "keep;").unwrap();
        s.delete_script("u", "a").unwrap();
        s.prune();
        assert_eq!(s.user("u").map(|u| u.version), Some(2));
        assert!(s.delete_script("u", "a").is_err());
        assert_eq!(
            s.user("u").unwrap().version,
            2,
            "a failed record changes nothing"
        );
    }
}
