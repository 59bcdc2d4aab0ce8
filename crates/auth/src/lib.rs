//! Users, password hashes, the auth cache and login rate limits.
//!
//! [`Authenticator`] is what the server asks "is this the right password?". It is `Send +
//! Sync` and meant to live behind an `Arc` shared by all executors; [`Authenticator::verify`]
//! is slow (Argon2) and blocking, so the server calls it from a blocking thread pool, never
//! on an executor. Its locks are held only for map lookups, never while hashing.

mod cache;
mod error;
pub mod hash;
pub mod passwd_file;
pub mod ratelimit;
pub mod sasl;
mod timed_map;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

pub use cache::AuthCache;
pub use error::AuthError;
pub use hash::{Argon2Cost, Scheme, StoredHash};
pub use passwd_file::{canonical_name, UsersFile};
pub use ratelimit::{ClientKey, LoginThrottle, ThrottleOptions};

/// Settings for [`Authenticator`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthOptions {
    /// How long a verified login is remembered (0 disables the cache).
    pub cache_ttl: Duration,
    /// Most users remembered at once.
    pub cache_max_entries: usize,
    /// Cost of the dummy hash that unknown users are checked against; should match the
    /// cost of the hashes in the users file so that both take as long.
    pub hash_cost: Argon2Cost,
}

impl Default for AuthOptions {
    fn default() -> Self {
        AuthOptions {
            cache_ttl: Duration::from_secs(300),
            cache_max_entries: 100_000,
            hash_cost: Argon2Cost::default(),
        }
    }
}

/// The answer to a login attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthResult {
    /// The password is right.
    Ok {
        /// The canonical (lowercase) user name: the one to hash for the partition.
        user: String,
        /// Whether the auth cache answered (no full hash was computed).
        cache_hit: bool,
    },
    /// The user exists and the password is wrong.
    BadCredentials,
    /// No such user (or a name no user can have). Answer it exactly like `BadCredentials`:
    /// telling them apart would let a client enumerate accounts.
    UnknownUser,
}

impl AuthResult {
    /// Whether the login succeeded.
    pub fn is_ok(&self) -> bool {
        matches!(self, AuthResult::Ok { .. })
    }
}

/// Checks passwords against the users file, with the auth cache in front.
pub struct Authenticator {
    path: PathBuf,
    /// Canonical name -> stored hash. Replaced whole by `reload`; a verify in flight keeps
    /// the snapshot it started with.
    users: RwLock<Arc<HashMap<String, StoredHash>>>,
    cache: Mutex<AuthCache>,
    /// What unknown users are verified against, so that "no such user" takes as long as
    /// "wrong password" and the response time does not reveal which names exist.
    dummy: StoredHash,
}

fn snapshot(file: &UsersFile) -> Arc<HashMap<String, StoredHash>> {
    Arc::new(
        file.entries()
            .map(|(name, hash)| (name.to_owned(), hash.clone()))
            .collect(),
    )
}

impl Authenticator {
    /// Loads the users file at `users_path`.
    pub fn new(
        users_path: impl AsRef<Path>,
        options: AuthOptions,
    ) -> Result<Authenticator, AuthError> {
        let path = users_path.as_ref().to_owned();
        let file = UsersFile::load(&path)?;
        let dummy = hash::hash_new(b"ringmail dummy password", options.hash_cost)?;
        Ok(Authenticator {
            path,
            users: RwLock::new(snapshot(&file)),
            cache: Mutex::new(AuthCache::new(options.cache_ttl, options.cache_max_entries)),
            dummy,
        })
    }

    /// Re-reads the users file (on SIGHUP) and returns the number of users. On error the
    /// users already loaded stay in force.
    pub fn reload(&self) -> Result<usize, AuthError> {
        let file = UsersFile::load(&self.path)?;
        let users = snapshot(&file);
        let count = users.len();
        *self.users.write().unwrap_or_else(PoisonError::into_inner) = users;
        // Cache entries of changed passwords no longer match (the stored hash is part of the
        // MAC) and deleted users are never looked up, so the cache can stay.
        Ok(count)
    }

    fn users(&self) -> Arc<HashMap<String, StoredHash>> {
        Arc::clone(&self.users.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Whether `name` (any case) is a user.
    pub fn user_exists(&self, name: &str) -> bool {
        self.users().contains_key(&name.to_lowercase())
    }

    /// The canonical name of `name` if it is a user (what LMTP's RCPT TO needs).
    pub fn canonical_user(&self, name: &str) -> Option<String> {
        let name = name.to_lowercase();
        self.users().contains_key(&name).then_some(name)
    }

    /// Number of users loaded.
    pub fn user_count(&self) -> usize {
        self.users().len()
    }

    /// Checks `password` for `user`. Blocking and slow on a cache miss: call it off the
    /// executors.
    pub fn verify(&self, user: &str, password: &[u8]) -> AuthResult {
        self.verify_at(user, password, Instant::now())
    }

    /// [`Authenticator::verify`] with the clock passed in, for tests of cache expiry.
    pub fn verify_at(&self, user: &str, password: &[u8], now: Instant) -> AuthResult {
        let users = self.users();
        let stored = canonical_name(user)
            .ok()
            .and_then(|name| users.get(&name).map(|hash| (name, hash)));
        let Some((name, stored)) = stored else {
            // Spend the same time as for a real user, and ignore the answer.
            let _ = self.dummy.verify(password);
            return AuthResult::UnknownUser;
        };
        let cache = || self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache().check(&name, stored.as_str(), password, now) {
            return AuthResult::Ok {
                user: name,
                cache_hit: true,
            };
        }
        if !stored.verify(password) {
            return AuthResult::BadCredentials;
        }
        cache().insert(&name, stored.as_str(), password, now);
        AuthResult::Ok {
            user: name,
            cache_hit: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn options() -> AuthOptions {
        AuthOptions {
            cache_ttl: Duration::from_secs(60),
            cache_max_entries: 100,
            hash_cost: Argon2Cost::MINIMAL,
        }
    }

    fn setup(users: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        let mut f = UsersFile::load_or_empty(&path).unwrap();
        f.set_hash_cost(Argon2Cost::MINIMAL);
        for (name, pw) in users {
            f.add(name, pw.as_bytes()).unwrap();
        }
        f.save().unwrap();
        (dir, path)
    }

    fn ok(user: &str, cache_hit: bool) -> AuthResult {
        AuthResult::Ok {
            user: user.into(),
            cache_hit,
        }
    }

    #[test]
    fn verifies_and_caches() {
        let (_dir, path) = setup(&[("Alice", "pw-a"), ("bob", "pw-b")]);
        let auth = Authenticator::new(&path, options()).unwrap();
        let t0 = Instant::now();
        assert_eq!(auth.verify_at("ALICE", b"pw-a", t0), ok("alice", false));
        assert_eq!(auth.verify_at("alice", b"pw-a", t0), ok("alice", true));
        assert_eq!(
            auth.verify_at("alice", b"pw-b", t0),
            AuthResult::BadCredentials
        );
        // A wrong password was not cached as anything: the right one still hits.
        assert_eq!(auth.verify_at("alice", b"pw-a", t0), ok("alice", true));
        // After the TTL the full hash is paid again.
        let later = t0 + Duration::from_secs(61);
        assert_eq!(auth.verify_at("alice", b"pw-a", later), ok("alice", false));
        assert_eq!(auth.verify_at("bob", b"pw-b", t0), ok("bob", false));
        assert_eq!(
            auth.verify_at("carol", b"pw-a", t0),
            AuthResult::UnknownUser
        );
        assert_eq!(
            auth.verify_at("bad name", b"x", t0),
            AuthResult::UnknownUser
        );
        assert_eq!(auth.verify_at("", b"x", t0), AuthResult::UnknownUser);
        assert!(auth.user_exists("BOB"));
        assert!(!auth.user_exists("carol"));
        assert_eq!(auth.canonical_user("Bob").as_deref(), Some("bob"));
        assert_eq!(auth.user_count(), 2);
    }

    #[test]
    fn reload_applies_password_change_and_deletion() {
        let (_dir, path) = setup(&[("alice", "old"), ("bob", "pw-b")]);
        let auth = Authenticator::new(&path, options()).unwrap();
        let t0 = Instant::now();
        assert!(auth.verify_at("alice", b"old", t0).is_ok());
        assert_eq!(auth.verify_at("alice", b"old", t0), ok("alice", true));

        let mut f = UsersFile::load(&path).unwrap();
        f.set_hash_cost(Argon2Cost::MINIMAL);
        f.set_password("alice", b"new").unwrap();
        f.remove("bob").unwrap();
        f.add("carol", b"pw-c").unwrap();
        f.save().unwrap();
        // Before the reload the old file is in force.
        assert!(auth.verify_at("bob", b"pw-b", t0).is_ok());
        assert_eq!(auth.reload().unwrap(), 2);
        // The cached old password is no longer accepted.
        assert_eq!(
            auth.verify_at("alice", b"old", t0),
            AuthResult::BadCredentials
        );
        assert_eq!(auth.verify_at("alice", b"new", t0), ok("alice", false));
        assert_eq!(auth.verify_at("bob", b"pw-b", t0), AuthResult::UnknownUser);
        assert!(auth.verify_at("carol", b"pw-c", t0).is_ok());
    }

    #[test]
    fn failed_reload_keeps_old_users() {
        let (_dir, path) = setup(&[("alice", "pw")]);
        let auth = Authenticator::new(&path, options()).unwrap();
        fs::write(&path, "alice:{NOPE}x\n").unwrap();
        let err = auth.reload().unwrap_err();
        assert!(matches!(err, AuthError::Parse { line: 1, .. }), "{err}");
        assert!(auth.verify("alice", b"pw").is_ok());
    }

    #[test]
    fn dovecot_file_works_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        // bcrypt vector from libxcrypt (see hash.rs), as `doveadm pw -s BLF-CRYPT` writes it.
        fs::write(
            &path,
            "dan:{BLF-CRYPT}$2y$05$abcdefghijklmnopqrstuuOQiyCxlgf/oeuTqixKmWdcYUh4Hjl0a::::::\n",
        )
        .unwrap();
        let auth = Authenticator::new(&path, options()).unwrap();
        assert_eq!(auth.verify("Dan", b"secret"), ok("dan", false));
        assert_eq!(auth.verify("dan", b"Secret"), AuthResult::BadCredentials);
    }

    #[test]
    fn missing_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            Authenticator::new(dir.path().join("users"), options()),
            Err(AuthError::Io { .. })
        ));
    }

    #[test]
    fn shared_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Authenticator>();
        let (_dir, path) = setup(&[("alice", "pw")]);
        let auth = Arc::new(Authenticator::new(&path, options()).unwrap());
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let auth = Arc::clone(&auth);
                std::thread::spawn(move || {
                    let pw: &[u8] = if i % 2 == 0 { b"pw" } else { b"nope" };
                    auth.verify("alice", pw).is_ok() == (i % 2 == 0)
                })
            })
            .collect();
        for h in handles {
            assert!(h.join().unwrap());
        }
    }
}
