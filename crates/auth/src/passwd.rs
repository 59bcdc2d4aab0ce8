//! The passwd-file backend: the users file held in memory, re-read on reload.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use crate::backend::{Backend, Lookup, UserInfo, Verdict, VerifyContext};
use crate::hash::StoredHash;
use crate::passwd_file::{canonical_name, UsersFile};
use crate::AuthError;

/// Users from a Dovecot-format passwd-file.
pub struct PasswdFileBackend {
    path: PathBuf,
    /// Canonical name -> stored hash. Replaced whole by `reload`; a verify in flight keeps
    /// the snapshot it started with.
    users: RwLock<Arc<HashMap<String, StoredHash>>>,
}

fn snapshot(file: &UsersFile) -> Arc<HashMap<String, StoredHash>> {
    Arc::new(
        file.entries()
            .map(|(name, hash)| (name.to_owned(), hash.clone()))
            .collect(),
    )
}

impl PasswdFileBackend {
    /// Loads the users file at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<PasswdFileBackend, AuthError> {
        let path = path.as_ref().to_owned();
        let file = UsersFile::load(&path)?;
        Ok(PasswdFileBackend {
            path,
            users: RwLock::new(snapshot(&file)),
        })
    }

    /// Re-reads the file and returns the number of users. On error the users already
    /// loaded stay in force.
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

    /// The canonical name of `name` if it is a user. In memory: cheap, never blocks.
    pub fn canonical_user(&self, name: &str) -> Option<String> {
        let name = name.to_lowercase();
        self.users().contains_key(&name).then_some(name)
    }

    /// Number of users loaded.
    pub fn user_count(&self) -> usize {
        self.users().len()
    }
}

impl Backend for PasswdFileBackend {
    fn name(&self) -> &'static str {
        "passwd-file"
    }

    fn verify_password_cached(
        &self,
        user: &str,
        password: &[u8],
        cx: &VerifyContext<'_>,
    ) -> Option<Verdict> {
        let users = self.users();
        let Some((name, stored)) = canonical_name(user)
            .ok()
            .and_then(|name| users.get(&name).map(|hash| (name, hash)))
        else {
            return Some(Verdict::UnknownUser);
        };
        let cache = cx.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache
            .check(&name, stored.as_str(), password, cx.now)
            .then(|| Verdict::Ok {
                info: UserInfo::named(name),
                cache_hit: true,
            })
    }

    fn verify_password(&self, user: &str, password: &[u8], cx: &VerifyContext<'_>) -> Verdict {
        let users = self.users();
        let stored = canonical_name(user)
            .ok()
            .and_then(|name| users.get(&name).map(|hash| (name, hash)));
        // Unknown users are not hashed here: the authenticator spends the dummy hash once,
        // after every backend has said no, so a later backend's users do not pay for it.
        let Some((name, stored)) = stored else {
            return Verdict::UnknownUser;
        };
        let cache = || cx.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache().check(&name, stored.as_str(), password, cx.now) {
            return Verdict::Ok {
                info: UserInfo::named(name),
                cache_hit: true,
            };
        }
        if !stored.verify(password) {
            return Verdict::BadCredentials;
        }
        cache().insert(&name, stored.as_str(), password, cx.now);
        Verdict::Ok {
            info: UserInfo::named(name),
            cache_hit: false,
        }
    }

    fn lookup(&self, user: &str) -> Lookup {
        match canonical_name(user) {
            Ok(name) if self.users().contains_key(&name) => Lookup::Found(UserInfo::named(name)),
            _ => Lookup::Unknown,
        }
    }
}
