//! Users, password hashes, the auth cache and login rate limits, and the backends users come
//! from: the passwd-file, an LDAP directory, OAuth 2.0 bearer tokens.
//!
//! [`Authenticator`] is what the server asks "who is this?". It is `Send + Sync` and meant to
//! live behind an `Arc` shared by all executors. [`Authenticator::login`] (and the older
//! [`Authenticator::verify`]) may block: an Argon2 hash, a directory search, a fetch of the
//! issuer's keys. The server calls them off the executors: what needs only CPU
//! ([`Authenticator::login_local`]) on a blocking thread pool, what waits on the network on
//! the authenticator's own lookup threads ([`Authenticator::on_lookup_thread`], see
//! [`lookups`]); every backend bounds its own waits. Locks are held only for map lookups,
//! never while hashing or waiting on the network.
//!
//! The backends are asked in the configured order; the first that knows the user decides.
//! One that cannot answer (the directory is down) is passed over, and if no later backend
//! knows the user the answer is [`LoginError::Unavailable`], not a wrong password.

mod backend;
mod cache;
pub mod config;
mod error;
pub mod hash;
pub mod ldap;
pub mod lookups;
pub mod oauth;
mod passwd;
pub mod passwd_file;
pub mod ratelimit;
mod recipients;
pub mod sasl;
mod timed_map;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use backend::{Backend, Lookup, UserInfo, Verdict, VerifyContext};
pub use cache::AuthCache;
pub use error::AuthError;
pub use hash::{Argon2Cost, Scheme, StoredHash};
pub use ldap::LdapBackend;
pub use lookups::{LookupPool, Refused};
pub use oauth::OauthBackend;
pub use passwd::PasswdFileBackend;
pub use passwd_file::{canonical_name, UsersFile};
pub use ratelimit::{ClientKey, LoginThrottle, ThrottleOptions};
use recipients::RecipientCache;

use config::{AuthConfig, BackendKind, LdapConfig, OauthConfig};

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

/// The answer to a login attempt, as [`Authenticator::verify`] gives it.
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
    /// The password is right but the account is disabled (an LDAP attribute says so).
    Disabled,
    /// A backend that may know the user cannot answer now (directory down or too slow):
    /// answer `NO [UNAVAILABLE]`, and do not count it against the client.
    Unavailable(String),
}

impl AuthResult {
    /// Whether the login succeeded.
    pub fn is_ok(&self) -> bool {
        matches!(self, AuthResult::Ok { .. })
    }
}

/// What a client presents.
#[derive(Clone, Copy)]
pub enum Credential<'a> {
    /// LOGIN, or AUTHENTICATE PLAIN/LOGIN. `user` may be `target*master` (with the
    /// configured separator) when master users are configured; `authzid` is PLAIN's
    /// authorization identity (the user a master logs in as).
    Password {
        /// The authentication identity as the client sent it.
        user: &'a str,
        /// PLAIN's authorization identity, if the client sent a non-empty one.
        authzid: Option<&'a str>,
        /// The password bytes.
        password: &'a [u8],
    },
    /// OAUTHBEARER or XOAUTH2.
    Bearer {
        /// The token.
        token: &'a str,
        /// The user the client says the token is for (OAUTHBEARER's `a=`, XOAUTH2's
        /// `user=`); it must be the token's user.
        user: Option<&'a str>,
    },
}

// The password must never reach a log line.
impl std::fmt::Debug for Credential<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Password { user, authzid, .. } => f
                .debug_struct("Password")
                .field("user", user)
                .field("authzid", authzid)
                .finish_non_exhaustive(),
            Credential::Bearer { user, .. } => f
                .debug_struct("Bearer")
                .field("user", user)
                .finish_non_exhaustive(),
        }
    }
}

/// A successful login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// The canonical name the session runs as (the mailbox owner).
    pub user: String,
    /// The master user who logged in as `user`, if one did: log it.
    pub master: Option<String>,
    /// The backend that knows `user` ("passwd-file", "ldap", "oauth").
    pub backend: &'static str,
    /// Whether the auth cache answered (no hash computed, no directory asked).
    pub cache_hit: bool,
    /// The user's storage quota in bytes, when the backend names one.
    pub quota_bytes: Option<u64>,
}

/// Why a login failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginError {
    /// Wrong password (or a master user's wrong password).
    BadCredentials,
    /// No backend knows the user.
    UnknownUser,
    /// The credential is right but the account is disabled.
    Disabled,
    /// The credential is right but it may not act as the user asked for: the authorization
    /// identity of a user who is not a master.
    NotAuthorized,
    /// A bearer token that is not valid (the text says why, for the log). SASL OAUTHBEARER
    /// and XOAUTH2 answer it with the error challenge ([`Authenticator::oauth_error_challenge`]).
    InvalidToken(String),
    /// A backend that may know the user cannot answer now (the text says why, for the log).
    Unavailable(String),
}

impl LoginError {
    /// The RFC 5530 response code for the tagged NO.
    pub fn response_code(&self) -> &'static str {
        match self {
            LoginError::BadCredentials | LoginError::UnknownUser | LoginError::InvalidToken(_) => {
                "AUTHENTICATIONFAILED"
            }
            LoginError::Disabled => "CONTACTADMIN",
            LoginError::NotAuthorized => "AUTHORIZATIONFAILED",
            LoginError::Unavailable(_) => "UNAVAILABLE",
        }
    }

    /// Whether the failure is the client's and counts for the login throttle and the
    /// failure delay. A directory that is down is nobody's guess.
    pub fn counts_as_failure(&self) -> bool {
        !matches!(self, LoginError::Unavailable(_))
    }

    /// A short label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            LoginError::BadCredentials => "wrong_password",
            LoginError::UnknownUser => "unknown_user",
            LoginError::Disabled => "disabled",
            LoginError::NotAuthorized => "not_authorized",
            LoginError::InvalidToken(_) => "invalid_token",
            LoginError::Unavailable(_) => "unavailable",
        }
    }
}

/// Builds an [`Authenticator`] from backends in order (what [`Authenticator::from_config`]
/// does from the configuration; tests and benches use it directly).
pub struct AuthenticatorBuilder {
    options: AuthOptions,
    backends: Vec<Arc<dyn Backend>>,
    passwd: Option<Arc<PasswdFileBackend>>,
    oauth_scope: Option<String>,
    masters: HashSet<String>,
    master_separator: String,
}

impl AuthenticatorBuilder {
    /// Adds the passwd-file backend (kept also for reload and the user lookups LMTP needs).
    pub fn passwd_file(mut self, backend: PasswdFileBackend) -> Self {
        let backend = Arc::new(backend);
        self.passwd = Some(Arc::clone(&backend));
        self.backends.push(backend);
        self
    }

    /// Adds the OAuth backend (its scope goes into the error challenge).
    pub fn oauth(mut self, backend: OauthBackend) -> Self {
        self.oauth_scope = backend.scope().map(str::to_owned);
        self.backends.push(Arc::new(backend));
        self
    }

    /// Adds any backend.
    pub fn backend(mut self, backend: Arc<dyn Backend>) -> Self {
        self.backends.push(backend);
        self
    }

    /// The users who may log in as others, and what separates target and master in a
    /// login name.
    pub fn masters<S: AsRef<str>>(mut self, masters: &[S], separator: &str) -> Self {
        self.masters = masters
            .iter()
            .filter_map(|m| canonical_name(m.as_ref()).ok())
            .collect();
        self.master_separator = separator.to_owned();
        self
    }

    /// The authenticator.
    pub fn build(self) -> Result<Authenticator, AuthError> {
        // The dummy hash stands in for a passwd-file user; without that backend there is no
        // hash whose time could tell users apart.
        let dummy = match self.passwd {
            Some(_) => Some(hash::hash_new(
                b"ringmail dummy password",
                self.options.hash_cost,
            )?),
            None => None,
        };
        // Threads for the backends that wait on the network, shared by all executors.
        let threads: usize = self.backends.iter().map(|b| b.lookup_threads()).sum();
        let lookups = if threads > 0 {
            let max_wait = self
                .backends
                .iter()
                .map(|b| b.lookup_timeout())
                .max()
                .unwrap_or_default();
            let pool = LookupPool::new(threads, max_wait)
                .map_err(|e| AuthError::Backend(format!("starting the lookup threads: {e}")))?;
            Some(pool)
        } else {
            None
        };
        Ok(Authenticator {
            lookups,
            backends: self.backends,
            passwd: self.passwd,
            oauth_scope: self.oauth_scope,
            cache: Mutex::new(AuthCache::new(
                self.options.cache_ttl,
                self.options.cache_max_entries,
            )),
            recipients: RecipientCache::new(self.options.cache_ttl, self.options.cache_max_entries),
            dummy,
            masters: self.masters,
            master_separator: self.master_separator,
        })
    }
}

/// Checks credentials against the configured backends, with the auth cache in front.
pub struct Authenticator {
    backends: Vec<Arc<dyn Backend>>,
    /// Threads for logins and lookups that wait on the network (None when no backend
    /// does): see [`Authenticator::login_local`] and [`Authenticator::on_lookup_thread`].
    lookups: Option<LookupPool>,
    passwd: Option<Arc<PasswdFileBackend>>,
    oauth_scope: Option<String>,
    cache: Mutex<AuthCache>,
    /// The directory's recent answers for LMTP recipients.
    recipients: RecipientCache,
    /// What unknown users are verified against, so that "no such user" takes as long as
    /// "wrong password" and the response time does not reveal which names exist.
    dummy: Option<StoredHash>,
    masters: HashSet<String>,
    master_separator: String,
}

impl Authenticator {
    /// Loads the users file at `users_path`: the passwd-file as the only backend.
    pub fn new(
        users_path: impl AsRef<Path>,
        options: AuthOptions,
    ) -> Result<Authenticator, AuthError> {
        Authenticator::builder(options)
            .passwd_file(PasswdFileBackend::load(users_path)?)
            .build()
    }

    /// An empty builder.
    pub fn builder(options: AuthOptions) -> AuthenticatorBuilder {
        AuthenticatorBuilder {
            options,
            backends: Vec::new(),
            passwd: None,
            oauth_scope: None,
            masters: HashSet::new(),
            master_separator: "*".into(),
        }
    }

    /// Builds the backends `[auth] backends` lists, in its order, after checking the
    /// sections with [`config::validate`]. `resolve` turns configured paths into real ones
    /// (relative to the data directory). Reads files now (users file, bind password, JWKS
    /// file, CA file); connects to the directory lazily; fetches a JWKS URL now (a failure
    /// there is logged, not fatal). Blocking: call it before the executors start.
    pub fn from_config(
        auth: &AuthConfig,
        ldap: Option<&LdapConfig>,
        oauth: Option<&OauthConfig>,
        resolve: impl Fn(&Path) -> PathBuf,
    ) -> Result<Authenticator, AuthError> {
        Authenticator::from_config_with(
            auth,
            ldap,
            oauth,
            resolve,
            AuthOptions {
                cache_ttl: Duration::from_secs(auth.cache_ttl_secs),
                cache_max_entries: auth.cache_size,
                ..AuthOptions::default()
            },
        )
    }

    /// [`Authenticator::from_config`] with the options given (tests set a cheap hash cost).
    pub fn from_config_with(
        auth: &AuthConfig,
        ldap: Option<&LdapConfig>,
        oauth: Option<&OauthConfig>,
        resolve: impl Fn(&Path) -> PathBuf,
        options: AuthOptions,
    ) -> Result<Authenticator, AuthError> {
        config::validate(auth, ldap, oauth).map_err(|e| AuthError::Config(e.0))?;
        let mut builder =
            Authenticator::builder(options).masters(&auth.masters, &auth.master_separator);
        for kind in &auth.backends {
            builder = match (kind, ldap, oauth) {
                (BackendKind::PasswdFile, _, _) => {
                    builder.passwd_file(PasswdFileBackend::load(resolve(&auth.users_file))?)
                }
                (BackendKind::Ldap, Some(ldap), _) => {
                    builder.backend(Arc::new(LdapBackend::new(ldap, &resolve)?))
                }
                (BackendKind::Oauth, _, Some(oauth)) => {
                    builder.oauth(OauthBackend::new(oauth, &resolve)?)
                }
                // validate() has refused a listed backend without its section.
                (kind, _, _) => {
                    return Err(AuthError::Config(format!(
                        "no section for backend {}",
                        kind.name()
                    )))
                }
            };
        }
        builder.build()
    }

    /// Re-reads the users file (on SIGHUP) and returns the number of users. On error the
    /// users already loaded stay in force. Without a passwd-file there is nothing to read.
    pub fn reload(&self) -> Result<usize, AuthError> {
        self.recipients.clear();
        match &self.passwd {
            Some(p) => p.reload(),
            None => Ok(0),
        }
    }

    /// Whether `name` (any case) is a user of the passwd-file. In memory, never blocks; see
    /// [`Authenticator::lookup`] for all backends.
    pub fn user_exists(&self, name: &str) -> bool {
        self.canonical_user(name).is_some()
    }

    /// The canonical name of `name` if it is a user of the passwd-file (what LMTP's RCPT TO
    /// needs). In memory, never blocks; see [`Authenticator::lookup`] for all backends.
    pub fn canonical_user(&self, name: &str) -> Option<String> {
        self.passwd.as_ref()?.canonical_user(name)
    }

    /// Whether a backend besides the passwd-file can find users by name (a directory): then
    /// a name [`Authenticator::canonical_user`] does not know may still be a user, and only
    /// [`Authenticator::lookup`] (blocking) can tell.
    pub fn has_directory(&self) -> bool {
        self.backends
            .iter()
            .any(|b| b.name() == BackendKind::Ldap.name())
    }

    /// Number of users in the passwd-file.
    pub fn user_count(&self) -> usize {
        self.passwd.as_ref().map_or(0, |p| p.user_count())
    }

    /// Whether OAUTHBEARER and XOAUTH2 can be offered (a backend takes bearer tokens).
    pub fn takes_tokens(&self) -> bool {
        self.backends.iter().any(|b| b.takes_tokens())
    }

    /// The SASL mechanisms to advertise as `AUTH=` capabilities, in order.
    pub fn sasl_mechanisms(&self) -> &'static [&'static str] {
        sasl::mechanisms(self.takes_tokens())
    }

    /// The RFC 7628 section 3.2.2 error challenge (base64) to send after a token was
    /// refused; the client answers it with `\x01` (or an empty line for XOAUTH2) and the
    /// server then answers NO.
    pub fn oauth_error_challenge(&self) -> String {
        sasl::oauth_error_challenge("invalid_token", self.oauth_scope.as_deref())
    }

    /// Checks `password` for `user`. Blocking and slow on a cache miss: call it off the
    /// executors.
    pub fn verify(&self, user: &str, password: &[u8]) -> AuthResult {
        self.verify_at(user, password, Instant::now())
    }

    /// [`Authenticator::verify`] with the clock passed in, for tests of cache expiry.
    pub fn verify_at(&self, user: &str, password: &[u8], now: Instant) -> AuthResult {
        let credential = Credential::Password {
            user,
            authzid: None,
            password,
        };
        match self.login_at(&credential, now) {
            Ok(login) => AuthResult::Ok {
                user: login.user,
                cache_hit: login.cache_hit,
            },
            Err(LoginError::UnknownUser) => AuthResult::UnknownUser,
            Err(LoginError::Disabled) => AuthResult::Disabled,
            Err(LoginError::Unavailable(why)) => AuthResult::Unavailable(why),
            Err(_) => AuthResult::BadCredentials,
        }
    }

    /// Checks a credential through the backends, and a master user's right to act as the
    /// user named. Blocking (hashes, directory, key set): call it off the executors.
    pub fn login(&self, credential: &Credential<'_>) -> Result<Login, LoginError> {
        self.login_at(credential, Instant::now())
    }

    /// [`Authenticator::login`] with the cache's clock passed in.
    pub fn login_at(&self, credential: &Credential<'_>, now: Instant) -> Result<Login, LoginError> {
        self.login_with(credential, now, false)
            .unwrap_or_else(|| Err(LoginError::Unavailable("no answer".into())))
    }

    /// [`Authenticator::login`] as far as it goes without the network: the passwd-file,
    /// the auth cache, tokens checked against a key set from a file. None when a backend
    /// must ask the network (the directory for a user the cache does not know, an issuer's
    /// URL, the target of a master login when a directory is configured): then run
    /// [`Authenticator::login`] with [`Authenticator::on_lookup_thread`]. Blocking (a
    /// hash): call it from the executor's blocking pool.
    pub fn login_local(&self, credential: &Credential<'_>) -> Option<Result<Login, LoginError>> {
        if self.lookups.is_none() {
            return Some(self.login(credential));
        }
        self.login_with(credential, Instant::now(), true)
    }

    /// Runs `work` on the lookup threads, for what [`Authenticator::login_local`] could not
    /// answer and the directory lookups of LMTP. The future resolves on any executor; Err
    /// (the reason, for `NO [UNAVAILABLE]`) when their queue is full, when the work waited
    /// longer than the backends' timeout for a thread, or when no backend needs them.
    pub async fn on_lookup_thread<T: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&Authenticator) -> T + Send + 'static,
    ) -> Result<T, String> {
        let Some(pool) = &self.lookups else {
            return Err("no backend looks up users over the network".into());
        };
        let auth = Arc::clone(self);
        let answer = pool.run(move || work(&auth)).map_err(Refused::reason)?;
        match answer.await {
            Ok(result) => result.map_err(Refused::reason),
            Err(_) => Err("the lookup thread stopped".into()),
        }
    }

    /// Threads for network lookups (0 without a backend that needs them).
    pub fn lookup_threads(&self) -> usize {
        self.lookups.as_ref().map_or(0, LookupPool::threads)
    }

    /// The login; with `local_only`, None as soon as a backend would need the network.
    fn login_with(
        &self,
        credential: &Credential<'_>,
        now: Instant,
        local_only: bool,
    ) -> Option<Result<Login, LoginError>> {
        Some(match *credential {
            Credential::Password {
                user,
                authzid,
                password,
            } => {
                let (authcid, target) = self.split_master(user, authzid);
                if local_only && target.is_some() {
                    // The target may live in the directory.
                    return None;
                }
                let (verdict, backend) =
                    self.verify_password(authcid, password, now, local_only)?;
                let (info, cache_hit) = match ok_or_error(verdict) {
                    Ok(found) => found,
                    Err(e) => return Some(Err(e)),
                };
                match target {
                    None => Ok(Login {
                        user: info.name,
                        master: None,
                        backend,
                        cache_hit,
                        quota_bytes: info.quota_bytes,
                    }),
                    Some(target) => self.act_as(target, info, cache_hit),
                }
            }
            Credential::Bearer { token, user } => {
                let remote = |b: &Arc<dyn Backend>| b.takes_tokens() && b.lookup_threads() > 0;
                if local_only && self.backends.iter().any(remote) {
                    return None;
                }
                let mut answer = None;
                for b in self.backends.iter().filter(|b| b.takes_tokens()) {
                    match b.verify_token(token, user) {
                        Verdict::UnknownUser => continue,
                        verdict => {
                            answer = Some((verdict, b.name()));
                            break;
                        }
                    }
                }
                let Some((verdict, backend)) = answer else {
                    return Some(Err(LoginError::InvalidToken(
                        "no backend takes bearer tokens".into(),
                    )));
                };
                ok_or_error(verdict).map(|(info, cache_hit)| Login {
                    user: info.name,
                    master: None,
                    backend,
                    cache_hit,
                    quota_bytes: info.quota_bytes,
                })
            }
        })
    }

    /// (who authenticates, whom they act as): PLAIN's authzid when it names someone else,
    /// or `target*master` when master users are configured.
    fn split_master<'a>(
        &self,
        user: &'a str,
        authzid: Option<&'a str>,
    ) -> (&'a str, Option<&'a str>) {
        if let Some(z) = authzid.filter(|z| !z.is_empty()) {
            let other = z.to_lowercase() != user.to_lowercase();
            return (user, other.then_some(z));
        }
        if !self.masters.is_empty() && !self.master_separator.is_empty() {
            if let Some((target, master)) = user.rsplit_once(self.master_separator.as_str()) {
                if !target.is_empty() && !master.is_empty() {
                    return (master, Some(target));
                }
            }
        }
        (user, None)
    }

    /// A verified user asks to act as `target`: only masters may, and the target must exist.
    fn act_as(&self, target: &str, master: UserInfo, cache_hit: bool) -> Result<Login, LoginError> {
        if !self.masters.contains(&master.name) {
            return Err(LoginError::NotAuthorized);
        }
        let (lookup, backend) = self.lookup(target);
        match lookup {
            Lookup::Found(info) => Ok(Login {
                user: info.name,
                master: Some(master.name),
                backend,
                cache_hit,
                quota_bytes: info.quota_bytes,
            }),
            Lookup::Disabled => Err(LoginError::Disabled),
            Lookup::Unknown => Err(LoginError::UnknownUser),
            Lookup::Unavailable(why) => Err(LoginError::Unavailable(why)),
        }
    }

    /// Asks the backends in order; the first that knows the user answers. Those that cannot
    /// answer are passed over; if no later one knows the user, the answer is Unavailable.
    /// With `local_only`, None when a backend would need the network to answer.
    fn verify_password(
        &self,
        user: &str,
        password: &[u8],
        now: Instant,
        local_only: bool,
    ) -> Option<(Verdict, &'static str)> {
        let cx = VerifyContext {
            cache: &self.cache,
            now,
        };
        let mut unavailable = None;
        for b in &self.backends {
            let verdict = if local_only {
                b.verify_password_local(user, password, &cx)?
            } else {
                b.verify_password(user, password, &cx)
            };
            match verdict {
                Verdict::UnknownUser => {}
                Verdict::Unavailable(why) => {
                    unavailable.get_or_insert((why, b.name()));
                }
                verdict => return Some((verdict, b.name())),
            }
        }
        if let Some((why, name)) = unavailable {
            return Some((Verdict::Unavailable(why), name));
        }
        if let Some(dummy) = &self.dummy {
            // Spend the same time as for a passwd-file user, and ignore the answer.
            let _ = dummy.verify(password);
        }
        Some((Verdict::UnknownUser, "none"))
    }

    /// The answer [`Authenticator::lookup_recipient`] gave for `name` recently, if still
    /// fresh: in memory, never blocks, so LMTP asks it on the executor and goes to the
    /// lookup threads only when it has no answer.
    pub fn cached_recipient(&self, name: &str) -> Option<Lookup> {
        self.recipients.get(name, Instant::now())
    }

    /// [`Authenticator::lookup`] for an LMTP recipient, remembered for the auth cache's TTL
    /// when found (a shorter time when not; never when the directory cannot answer).
    /// Blocking on a miss: a directory search.
    pub fn lookup_recipient(&self, name: &str) -> Lookup {
        let now = Instant::now();
        if let Some(answer) = self.recipients.get(name, now) {
            return answer;
        }
        let (answer, _) = self.lookup(name);
        self.recipients.put(name, &answer, now);
        answer
    }

    /// Finds a user in the backends, in order, without a credential (the target of a
    /// master login; LMTP for users outside the passwd-file). Blocking: a directory search.
    pub fn lookup(&self, user: &str) -> (Lookup, &'static str) {
        let mut unavailable = None;
        for b in &self.backends {
            match b.lookup(user) {
                Lookup::Unknown => {}
                Lookup::Unavailable(why) => {
                    unavailable.get_or_insert((why, b.name()));
                }
                found => return (found, b.name()),
            }
        }
        match unavailable {
            Some((why, name)) => (Lookup::Unavailable(why), name),
            None => (Lookup::Unknown, "none"),
        }
    }
}

fn ok_or_error(verdict: Verdict) -> Result<(UserInfo, bool), LoginError> {
    match verdict {
        Verdict::Ok { info, cache_hit } => Ok((info, cache_hit)),
        Verdict::BadCredentials => Err(LoginError::BadCredentials),
        Verdict::UnknownUser => Err(LoginError::UnknownUser),
        Verdict::Disabled => Err(LoginError::Disabled),
        Verdict::InvalidToken(why) => Err(LoginError::InvalidToken(why)),
        Verdict::Unavailable(why) => Err(LoginError::Unavailable(why)),
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
