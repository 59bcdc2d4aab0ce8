//! What a source of users answers: the interface the passwd-file, LDAP and OAuth backends
//! implement, and the [`crate::Authenticator`] chains in the configured order.
//!
//! Every method may block (a directory search, an HTTP fetch of a key set, an Argon2 hash):
//! they are called off the executors, from a blocking thread pool, and each backend bounds
//! its own waits.

use std::sync::Mutex;
use std::time::Instant;

use crate::cache::AuthCache;

/// What a backend knows about a user it has verified or found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// The canonical name: the one the mailbox is stored under (lowercase).
    pub name: String,
    /// The storage quota in bytes, when the backend names one (an LDAP attribute).
    pub quota_bytes: Option<u64>,
}

impl UserInfo {
    /// A user known by name only.
    pub fn named(name: impl Into<String>) -> UserInfo {
        UserInfo {
            name: name.into(),
            quota_bytes: None,
        }
    }
}

/// A backend's answer to a credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The credential is right.
    Ok {
        /// Who logged in.
        info: UserInfo,
        /// Whether the auth cache answered (no hash computed, no directory asked).
        cache_hit: bool,
    },
    /// The backend knows the user and the password is wrong.
    BadCredentials,
    /// The backend does not know the user (or does not handle this kind of credential):
    /// the next backend is asked.
    UnknownUser,
    /// The credential is right but the account is disabled.
    Disabled,
    /// A bearer token that is not valid: expired, wrong issuer or audience, bad signature,
    /// unknown key. The text says which, for the log.
    InvalidToken(String),
    /// The backend cannot answer now (directory down or too slow, key set unreachable).
    /// The text says why, for the log.
    Unavailable(String),
}

/// A backend's answer to "who is this user?" (no credential: the target of a master login).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The user exists.
    Found(UserInfo),
    /// The user exists and is disabled.
    Disabled,
    /// Not known here.
    Unknown,
    /// The backend cannot answer now.
    Unavailable(String),
}

/// What the authenticator lends a backend for one verification.
pub struct VerifyContext<'a> {
    /// The auth cache shared by all backends. Hold the lock only for a lookup or an insert,
    /// never across a hash or a network call.
    pub cache: &'a Mutex<AuthCache>,
    /// The time the login is checked at (the cache's clock).
    pub now: Instant,
}

/// A source of users. Implementations are `Send + Sync` and shared by all threads.
pub trait Backend: Send + Sync {
    /// The name in `[auth] backends` and in logs.
    fn name(&self) -> &'static str;

    /// Checks a user name and password. Blocking.
    fn verify_password(&self, user: &str, password: &[u8], cx: &VerifyContext<'_>) -> Verdict;

    /// Checks an OAuth 2.0 bearer token. `claimed_user` is the name the client says the
    /// token is for (OAUTHBEARER's authzid, XOAUTH2's `user=`), which must match the token.
    /// Blocking. Backends that do not take tokens answer [`Verdict::UnknownUser`].
    fn verify_token(&self, _token: &str, _claimed_user: Option<&str>) -> Verdict {
        Verdict::UnknownUser
    }

    /// Finds a user without a credential. Blocking.
    fn lookup(&self, user: &str) -> Lookup;

    /// Whether this backend checks bearer tokens (OAUTHBEARER and XOAUTH2 are offered only
    /// then).
    fn takes_tokens(&self) -> bool {
        false
    }

    /// Threads this backend wants for lookups that wait on the network (see
    /// crate::lookups); 0 for a backend that answers from memory and CPU alone.
    fn lookup_threads(&self) -> usize {
        0
    }

    /// The longest one network lookup may take (the backend's timeout): a lookup that
    /// waited longer than this for a thread is not tried.
    fn lookup_timeout(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }

    /// [`Backend::verify_password`] when it can be answered without the network (a local
    /// backend, or the auth cache of a network one); None when the network is needed.
    fn verify_password_local(
        &self,
        user: &str,
        password: &[u8],
        cx: &VerifyContext<'_>,
    ) -> Option<Verdict> {
        (self.lookup_threads() == 0).then(|| self.verify_password(user, password, cx))
    }
}
