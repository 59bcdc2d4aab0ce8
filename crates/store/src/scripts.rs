//! The Sieve part of the [`Partition`] API: a user's scripts and active script (ManageSieve,
//! delivery) and remembered keys (vacation, duplicate). The state is in `sieve`; the record
//! layouts are in docs/storage-format.md.
//!
//! Mutations are checked against the durable state first (so that a request bound to fail
//! writes nothing), then submitted through the group commit like every other mutation and
//! resolve once durable. Applying the record decides the outcome: of two sessions racing,
//! the one whose record comes first in the log wins, on replay as live.
//!
//! A user needs no mailbox for any of this: the first Sieve record of a user makes their
//! Sieve state, as SUBSCRIBE and SET_QUOTA do for theirs. Users are still set up through the
//! runtime's first-use path (INBOX and folders) when they log in or receive mail.

use super::error::{Result, StoreError};
use super::partition::Partition;
use super::record::{
    kind, sieve as encode, MAX_LOG_MESSAGE, MAX_REMEMBER_ENTRIES, MAX_REMEMBER_KEY,
    MAX_SCRIPT_NAME, MAX_SCRIPT_SIZE,
};
use super::sieve::{MAX_SCRIPTS, MAX_SCRIPT_BYTES};
use super::sieve_log::SieveLogEntry;
use super::types::{ActiveScript, ScriptInfo};

/// A name the record format can hold: 1 ..= [`MAX_SCRIPT_NAME`] bytes. Which characters
/// are allowed is the protocol's business (RFC 5804 1.6); the store keeps names as given.
fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_SCRIPT_NAME {
        return Err(StoreError::InvalidName);
    }
    Ok(())
}

impl Partition {
    /// The user's scripts, sorted by name (none for an unknown user).
    pub fn scripts(&self, user: &str) -> Result<Vec<ScriptInfo>> {
        let idx = self.inner.index.borrow();
        let Some(u) = idx.sieve.user(user) else {
            return Ok(Vec::new());
        };
        Ok(u.scripts
            .iter()
            .map(|(name, source)| ScriptInfo {
                name: name.clone(),
                active: u.active.as_ref() == Some(name),
                size: source.len(),
            })
            .collect())
    }

    /// A script's source, or `None` when the user has no script of that name.
    pub fn script(&self, user: &str, name: &str) -> Result<Option<String>> {
        let idx = self.inner.index.borrow();
        Ok(idx
            .sieve
            .user(user)
            .and_then(|u| u.scripts.get(name))
            .cloned())
    }

    /// The active script with the version it was read at. Delivery compares
    /// [`script_version`](Self::script_version) with the version of its compiled copy
    /// first and calls this only when they differ (the source is copied out).
    pub fn active_script(&self, user: &str) -> Result<Option<ActiveScript>> {
        let idx = self.inner.index.borrow();
        let Some(u) = idx.sieve.user(user) else {
            return Ok(None);
        };
        Ok(u.active.as_ref().and_then(|name| {
            Some(ActiveScript {
                name: name.clone(),
                source: u.scripts.get(name)?.clone(),
                version: u.version,
            })
        }))
    }

    /// A counter that changes with every script mutation of the user that succeeds (put,
    /// delete, rename, activate), durable and never reused, so that a compiled copy of the
    /// active script tagged with it is known to be current while it is unchanged. 0 for a
    /// user who never had a script. Compare it; its value means nothing else.
    pub fn script_version(&self, user: &str) -> u64 {
        let idx = self.inner.index.borrow();
        idx.sieve.user(user).map_or(0, |u| u.version)
    }

    /// Creates or replaces a script (a replaced active script stays active).
    ///
    /// `InvalidName` for an empty name or one over [`MAX_SCRIPT_NAME`] bytes, `TooLarge` for
    /// a source over [`MAX_SCRIPT_SIZE`] bytes, `NotPermitted` past the store's own per-user
    /// limits ([`MAX_SCRIPTS`], [`MAX_SCRIPT_BYTES`]), which are a backstop: the protocol
    /// layer enforces the configured ones.
    pub async fn put_script(&self, user: &str, name: &str, source: &str) -> Result<()> {
        check_name(name)?;
        if source.len() > MAX_SCRIPT_SIZE {
            return Err(StoreError::TooLarge);
        }
        let slot = {
            let idx = self.inner.index.borrow();
            if let Some(u) = idx.sieve.user(user) {
                let old = u.scripts.get(name).map(String::len);
                if old.is_none() && u.scripts.len() >= MAX_SCRIPTS {
                    return Err(StoreError::NotPermitted("too many scripts"));
                }
                if u.script_bytes() - old.unwrap_or(0) + source.len() > MAX_SCRIPT_BYTES {
                    return Err(StoreError::NotPermitted("scripts too large in all"));
                }
            }
            self.inner.submit(kind::PUT_SCRIPT, |w| {
                encode::put_script(w, user, name, source)
            })
        };
        slot.wait().await.map(drop)
    }

    /// Deletes a script: `NoSuchScript` when there is none of that name, `ScriptActive`
    /// when it is the active one (RFC 5804 2.10).
    pub async fn delete_script(&self, user: &str, name: &str) -> Result<()> {
        let slot = {
            let idx = self.inner.index.borrow();
            let u = idx.sieve.user(user).ok_or(StoreError::NoSuchScript)?;
            if !u.scripts.contains_key(name) {
                return Err(StoreError::NoSuchScript);
            }
            if u.active.as_deref() == Some(name) {
                return Err(StoreError::ScriptActive);
            }
            self.inner.submit(kind::DELETE_SCRIPT, |w| {
                encode::delete_script(w, user, name)
            })
        };
        slot.wait().await.map(drop)
    }

    /// Renames a script; if it is the active one, the new name is. `NoSuchScript` when
    /// `from` does not exist, `AlreadyExists` when `to` does (`to == from` included),
    /// `InvalidName` for a `to` the format cannot hold.
    pub async fn rename_script(&self, user: &str, from: &str, to: &str) -> Result<()> {
        let slot = {
            let idx = self.inner.index.borrow();
            let u = idx.sieve.user(user).ok_or(StoreError::NoSuchScript)?;
            if !u.scripts.contains_key(from) {
                return Err(StoreError::NoSuchScript);
            }
            check_name(to)?;
            if u.scripts.contains_key(to) {
                return Err(StoreError::AlreadyExists);
            }
            self.inner.submit(kind::RENAME_SCRIPT, |w| {
                encode::rename_script(w, user, from, to)
            })
        };
        slot.wait().await.map(drop)
    }

    /// Makes `name` the active script, or deactivates scripts with `None` (ManageSieve
    /// SETACTIVE ""). `NoSuchScript` when there is no script of that name.
    pub async fn activate_script(&self, user: &str, name: Option<&str>) -> Result<()> {
        let slot = {
            let idx = self.inner.index.borrow();
            if let Some(n) = name {
                if !idx
                    .sieve
                    .user(user)
                    .is_some_and(|u| u.scripts.contains_key(n))
                {
                    return Err(StoreError::NoSuchScript);
                }
            }
            self.inner.submit(kind::ACTIVATE_SCRIPT, |w| {
                encode::activate_script(w, user, name)
            })
        };
        slot.wait().await.map(drop)
    }

    /// Whether `key` was remembered for the user with an expiry after `now` (seconds since
    /// the epoch). Keys are opaque to the store; the caller builds them (e.g. `b"v:"` +
    /// vacation handle + sender, `b"d:"` + duplicate id).
    pub fn remembered(&self, user: &str, key: &[u8], now: i64) -> bool {
        self.inner.index.borrow().sieve.remembered(user, key, now)
    }

    /// Remembers each key until its expiry (replacing an earlier expiry; one at or before
    /// `now` forgets the key). `now` is the caller's clock: it goes into the record, so
    /// that dropping expired entries is the same on replay. A user keeps at most
    /// [`MAX_REMEMBERED`](super::MAX_REMEMBERED) keys; beyond that the ones that expire
    /// soonest are dropped. `NotPermitted` for a key of 0 or over [`MAX_REMEMBER_KEY`]
    /// bytes or more than [`MAX_REMEMBER_ENTRIES`] entries.
    pub async fn remember(&self, user: &str, now: i64, entries: &[(&[u8], i64)]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        if entries.len() > MAX_REMEMBER_ENTRIES {
            return Err(StoreError::NotPermitted("too many remembered keys at once"));
        }
        if entries
            .iter()
            .any(|(k, _)| k.is_empty() || k.len() > MAX_REMEMBER_KEY)
        {
            return Err(StoreError::NotPermitted("remembered key length"));
        }
        let slot = self.inner.submit(kind::SIEVE_REMEMBER, |w| {
            encode::remember(w, user, now, entries)
        });
        slot.wait().await.map(drop)
    }

    /// The user's Sieve error log, oldest first (empty for an unknown user).
    pub fn sieve_log(&self, user: &str) -> Vec<SieveLogEntry> {
        self.inner.index.borrow().sieve_log.user(user).to_vec()
    }

    /// Adds an entry to the user's Sieve error log, durably. A reason over
    /// [`MAX_LOG_MESSAGE`] bytes and a script name over [`MAX_SCRIPT_NAME`] are cut (at a
    /// character boundary); the log keeps the last
    /// [`MAX_LOG_ENTRIES`](super::MAX_LOG_ENTRIES) entries within
    /// [`MAX_LOG_BYTES`](super::MAX_LOG_BYTES). `InvalidName` for an empty script name.
    pub async fn log_sieve_error(&self, user: &str, mut entry: SieveLogEntry) -> Result<()> {
        cut(&mut entry.script, MAX_SCRIPT_NAME);
        cut(&mut entry.message, MAX_LOG_MESSAGE);
        check_name(&entry.script)?;
        let slot = self
            .inner
            .submit(kind::SIEVE_LOG, |w| encode::log(w, user, &entry));
        slot.wait().await.map(drop)
    }
}

/// Cuts `s` to at most `max` bytes at a character boundary.
fn cut(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}
