//! The LDAP backend (RFC 4511, RFC 4513): find the user with a search, then verify the
//! password by binding as the entry's DN, or by checking its `userPassword` here.
//!
//! The client is `ldap3`'s synchronous API; each pooled connection owns a small
//! current-thread runtime that runs only while its caller waits. Every call is blocking and
//! bounded: a login gets `timeout_ms` for everything (a free connection, connecting with
//! StartTLS or TLS, the searches and binds), and then answers [`Verdict::Unavailable`].
//! A connection that fails is closed; one found dead after idling (the directory restarted)
//! is replaced by a fresh one once, within the same deadline.

pub mod filter;
mod pool;
pub mod userpassword;

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use ldap3::{LdapConn, LdapConnSettings, Scope, SearchEntry, SearchOptions};

use crate::backend::{Backend, Lookup, UserInfo, Verdict, VerifyContext};
use crate::config::{LdapConfig, LdapVerify};
use crate::passwd_file::canonical_name;
use crate::AuthError;
pub use pool::PoolError;
use pool::{Pool, Pooled};

/// LDAP result code invalidCredentials (RFC 4511 appendix A).
const INVALID_CREDENTIALS: u32 = 49;
/// LDAP result code sizeLimitExceeded: the filter matched more than one entry.
const SIZE_LIMIT_EXCEEDED: u32 = 4;

/// One pooled connection and whom it is bound as.
struct Conn {
    ldap: LdapConn,
    /// False after a user bind: the next search must bind as the search account again.
    as_searcher: bool,
}

/// Why an operation failed.
enum OpError {
    /// The connection is unusable (I/O error, timeout, closed): close it.
    Broken(String),
    /// The directory answered but not as needed (search account refused, bad entry): the
    /// connection is fine, the login is Unavailable.
    Directory(String),
}

/// What the search found.
struct Found {
    dn: String,
    info: UserInfo,
    enabled: bool,
    passwords: Vec<Vec<u8>>,
}

/// Users in a directory.
pub struct LdapBackend {
    uri: String,
    settings: LdapConnSettings,
    base: String,
    user_filter: String,
    bind: Option<(String, String)>,
    verify: LdapVerify,
    timeout: Duration,
    name_attr: Option<String>,
    quota_attr: Option<String>,
    enabled_attr: Option<String>,
    /// Attributes the search asks for.
    attrs: Vec<String>,
    /// Ties cache entries to this directory (the password's hash is not known here).
    cache_tag: String,
    /// Connections bound as the search account, for searches.
    pool: Pool<Conn>,
    /// Connections for the users' binds (`verify = "bind"`): a user bind changes who the
    /// connection is, so binding users on the search connections would cost a rebind as the
    /// search account before every search (three operations per login instead of two, for
    /// the directory and for us).
    binders: Pool<Conn>,
}

fn read_secret(path: &Path) -> Result<String, AuthError> {
    let text = std::fs::read_to_string(path).map_err(|source| AuthError::Io {
        path: path.to_owned(),
        source,
    })?;
    Ok(text
        .strip_suffix('\n')
        .unwrap_or(&text)
        .trim_end_matches('\r')
        .to_owned())
}

/// The rustls configuration for ldaps:// and StartTLS: the CAs in `ca_file`, or the
/// system's roots.
fn tls_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, AuthError> {
    let mut roots = rustls::RootCertStore::empty();
    let bad = |path: &Path, why: String| AuthError::Backend(format!("{}: {why}", path.display()));
    match ca_file {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|source| AuthError::Io {
                path: path.to_owned(),
                source,
            })?;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert = cert.map_err(|e| bad(path, e.to_string()))?;
                roots.add(cert).map_err(|e| bad(path, e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(bad(path, "no certificate in the file".into()));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                // A system store may hold a certificate rustls cannot use; skip it.
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(AuthError::Backend(
                    "[ldap] no trusted CA certificates found on this system: set ca_file".into(),
                ));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| AuthError::Backend(format!("[ldap] TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Parses a quota such as "1073741824", "1G", "500M" (powers of 1024).
pub fn parse_quota(text: &str) -> Option<u64> {
    let t = text.trim();
    let (digits, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => t.split_at(i),
        None => (t, ""),
    };
    let n: u64 = digits.parse().ok()?;
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return None,
    };
    n.checked_mul(1u64 << shift)
}

/// An LDAP Boolean (RFC 4517 section 3.3.3) and the spellings people put in directories.
/// `None` for anything else: the caller fails closed.
fn parse_enabled(text: &str) -> Option<bool> {
    match text.trim().to_ascii_uppercase().as_str() {
        "TRUE" | "1" | "YES" => Some(true),
        "FALSE" | "0" | "NO" => Some(false),
        _ => None,
    }
}

fn first_value<'e>(entry: &'e SearchEntry, attr: &str) -> Option<&'e str> {
    entry
        .attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(attr))
        .and_then(|(_, v)| v.first())
        .map(String::as_str)
}

fn remaining(deadline: Instant) -> Result<Duration, OpError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(OpError::Broken("timed out".into()))
    } else {
        Ok(left)
    }
}

impl LdapBackend {
    /// Builds the backend from `[ldap]`; `resolve` turns the configured paths into real ones
    /// (relative to the data directory). Reads the bind password and CA files now, so that a
    /// missing file stops the start; connects lazily.
    pub fn new(
        config: &LdapConfig,
        resolve: impl Fn(&Path) -> PathBuf,
    ) -> Result<LdapBackend, AuthError> {
        let bind = match (&config.bind_dn, &config.bind_password_file) {
            (Some(dn), Some(file)) => Some((dn.clone(), read_secret(&resolve(file))?)),
            _ => None,
        };
        let tls = config.uri.to_ascii_lowercase().starts_with("ldaps://") || config.starttls;
        let mut settings = LdapConnSettings::new().set_starttls(config.starttls);
        if tls {
            let ca = config.ca_file.as_deref().map(&resolve);
            settings = settings.set_config(tls_config(ca.as_deref())?);
        }
        let a = &config.attributes;
        let mut attrs: Vec<String> = [&a.name, &a.quota, &a.enabled]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        if config.verify == LdapVerify::Compare {
            attrs.push("userPassword".into());
        }
        if attrs.is_empty() {
            // RFC 4511 section 4.5.1.8: "1.1" asks for no attributes, only the DN.
            attrs.push("1.1".into());
        }
        Ok(LdapBackend {
            uri: config.uri.clone(),
            settings,
            base: config.base.clone(),
            user_filter: config.user_filter.clone(),
            bind,
            verify: config.verify,
            timeout: Duration::from_millis(config.timeout_ms.max(1)),
            name_attr: a.name.clone(),
            quota_attr: a.quota.clone(),
            enabled_attr: a.enabled.clone(),
            attrs,
            cache_tag: format!("ldap\0{}\0{}", config.uri, config.base),
            pool: Pool::new(config.pool_size),
            binders: Pool::new(config.pool_size),
        })
    }

    /// (open, idle) connections to the directory, for tests and metrics.
    pub fn pool_counts(&self) -> (usize, usize) {
        self.pool.counts()
    }

    /// Opens a connection and binds it as the search account, within `deadline`.
    fn connect(&self, deadline: Instant) -> Result<Conn, String> {
        let mut conn = self.connect_unbound(deadline)?;
        self.bind_searcher(&mut conn, deadline)
            .map_err(|e| match e {
                OpError::Broken(e) | OpError::Directory(e) => e,
            })?;
        Ok(conn)
    }

    /// Opens a connection (TLS as configured), anonymous until something binds it.
    fn connect_unbound(&self, deadline: Instant) -> Result<Conn, String> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("timed out".into());
        }
        let settings = self.settings.clone().set_conn_timeout(left);
        let ldap = LdapConn::with_settings(settings, &self.uri)
            .map_err(|e| format!("cannot connect to {}: {e}", self.uri))?;
        Ok(Conn {
            ldap,
            as_searcher: self.bind.is_none(),
        })
    }

    fn bind_searcher(&self, conn: &mut Conn, deadline: Instant) -> Result<(), OpError> {
        if conn.as_searcher {
            return Ok(());
        }
        let (dn, password) = match &self.bind {
            Some((dn, password)) => (dn.as_str(), password.as_str()),
            // Back to anonymous after a user bind (RFC 4513 section 5.1.1).
            None => ("", ""),
        };
        let result = conn
            .ldap
            .with_timeout(remaining(deadline)?)
            .simple_bind(dn, password)
            .map_err(|e| OpError::Broken(format!("bind as {dn:?}: {e}")))?;
        if result.rc != 0 {
            return Err(OpError::Directory(format!(
                "the directory refused the search account {dn:?}: rc={} {}",
                result.rc, result.text
            )));
        }
        conn.as_searcher = true;
        Ok(())
    }

    fn search(
        &self,
        conn: &mut Conn,
        login: &str,
        deadline: Instant,
    ) -> Result<Option<Found>, OpError> {
        self.bind_searcher(conn, deadline)?;
        let filter = filter::expand(&self.user_filter, login);
        let result = conn
            .ldap
            .with_timeout(remaining(deadline)?)
            .with_search_options(SearchOptions::new().sizelimit(2))
            .search(&self.base, Scope::Subtree, &filter, &self.attrs)
            .map_err(|e| OpError::Broken(format!("search {filter}: {e}")))?;
        let ldap3::SearchResult(entries, status) = result;
        if status.rc == SIZE_LIMIT_EXCEEDED || entries.len() > 1 {
            return Err(OpError::Directory(format!(
                "user_filter {filter} matches more than one entry"
            )));
        }
        if status.rc != 0 {
            return Err(OpError::Directory(format!(
                "search {filter} under {:?}: rc={} {}",
                self.base, status.rc, status.text
            )));
        }
        let Some(raw) = entries.into_iter().next() else {
            return Ok(None);
        };
        // ldap3 panics on an entry it cannot decode; a broken server must not take the
        // thread with it.
        let entry =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| SearchEntry::construct(raw)))
                .map_err(|_| OpError::Broken("undecodable search entry".into()))?;
        self.found(entry, login).map(Some)
    }

    fn found(&self, entry: SearchEntry, login: &str) -> Result<Found, OpError> {
        let name = match &self.name_attr {
            Some(attr) => {
                let value = first_value(&entry, attr).ok_or_else(|| {
                    OpError::Directory(format!("{} has no {attr} attribute", entry.dn))
                })?;
                canonical_name(value).map_err(|e| {
                    OpError::Directory(format!("{}: {attr} is not a usable name: {e}", entry.dn))
                })?
            }
            None => login.to_owned(),
        };
        let quota_bytes = match &self.quota_attr {
            Some(attr) => match first_value(&entry, attr) {
                Some(text) => match parse_quota(text) {
                    Some(q) => Some(q),
                    None => {
                        tracing::warn!(dn = %entry.dn, attr, value = text, "unreadable LDAP quota ignored");
                        None
                    }
                },
                None => None,
            },
            None => None,
        };
        let enabled = match &self.enabled_attr {
            Some(attr) => match first_value(&entry, attr) {
                None => true,
                Some(text) => parse_enabled(text).unwrap_or_else(|| {
                    tracing::warn!(dn = %entry.dn, attr, value = text, "unreadable LDAP enabled flag: user treated as disabled");
                    false
                }),
            },
            None => true,
        };
        let passwords = if self.verify == LdapVerify::Compare {
            let text = entry
                .attrs
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case("userPassword"))
                .flat_map(|(_, v)| v.iter().map(|s| s.as_bytes().to_vec()));
            let binary = entry
                .bin_attrs
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case("userPassword"))
                .flat_map(|(_, v)| v.iter().cloned());
            text.chain(binary).collect()
        } else {
            Vec::new()
        };
        Ok(Found {
            dn: entry.dn,
            info: UserInfo { name, quota_bytes },
            enabled,
            passwords,
        })
    }

    /// Runs `op` on a pooled connection; if a connection that had been idle turns out dead,
    /// closes the idle ones and tries once more on a fresh connection.
    fn with_conn<T>(
        &self,
        deadline: Instant,
        op: impl FnMut(&mut Conn) -> Result<T, OpError>,
    ) -> Result<T, String> {
        self.with_conn_in(&self.pool, &|d| self.connect(d), deadline, op)
    }

    /// [`LdapBackend::with_conn`] on a connection of the users' binds.
    fn with_binder<T>(
        &self,
        deadline: Instant,
        op: impl FnMut(&mut Conn) -> Result<T, OpError>,
    ) -> Result<T, String> {
        self.with_conn_in(&self.binders, &|d| self.connect_unbound(d), deadline, op)
    }

    fn with_conn_in<T>(
        &self,
        pool: &Pool<Conn>,
        connect: &dyn Fn(Instant) -> Result<Conn, String>,
        deadline: Instant,
        mut op: impl FnMut(&mut Conn) -> Result<T, OpError>,
    ) -> Result<T, String> {
        let mut pooled: Pooled<'_, Conn> = match pool.get(deadline, connect) {
            Ok(p) => p,
            Err(PoolError::Exhausted) => {
                return Err(format!(
                    "all {} LDAP connections stayed busy for {} ms",
                    pool.counts().0,
                    self.timeout.as_millis()
                ))
            }
            Err(PoolError::Connect(e)) => return Err(e),
        };
        match op(pooled.conn()) {
            Ok(v) => Ok(v),
            Err(OpError::Directory(e)) => Err(e),
            Err(OpError::Broken(e)) if pooled.reused && Instant::now() < deadline => {
                pool.drain_idle();
                if let Err(e2) = pooled.reconnect(deadline, connect) {
                    return Err(match e2 {
                        PoolError::Connect(e2) => e2,
                        PoolError::Exhausted => e,
                    });
                }
                match op(pooled.conn()) {
                    Ok(v) => Ok(v),
                    Err(OpError::Directory(e)) => Err(e),
                    Err(OpError::Broken(e)) => {
                        pooled.discard();
                        Err(e)
                    }
                }
            }
            Err(OpError::Broken(e)) => {
                pooled.discard();
                Err(e)
            }
        }
    }

    /// Checks the password against the entry found: a bind on a connection of the users'
    /// binds, or a comparison here.
    fn check(&self, found: &Found, password: &[u8], deadline: Instant) -> Result<bool, String> {
        match self.verify {
            LdapVerify::Bind => {
                // RFC 4513 section 5.1.2: a bind with a DN and an empty password is an
                // "unauthenticated" bind that many servers accept as anonymous. Never send one.
                let Ok(password) = std::str::from_utf8(password) else {
                    return Ok(false);
                };
                if password.is_empty() {
                    return Ok(false);
                }
                self.with_binder(deadline, |conn| {
                    conn.as_searcher = false;
                    let result = conn
                        .ldap
                        .with_timeout(remaining(deadline)?)
                        .simple_bind(&found.dn, password)
                        .map_err(|e| OpError::Broken(format!("bind as {}: {e}", found.dn)))?;
                    match result.rc {
                        0 => Ok(true),
                        INVALID_CREDENTIALS => Ok(false),
                        rc => Err(OpError::Directory(format!(
                            "bind as {}: rc={rc} {}",
                            found.dn, result.text
                        ))),
                    }
                })
            }
            LdapVerify::Compare => {
                if found.passwords.is_empty() {
                    return Err(format!(
                        "{} has no userPassword the search account may read",
                        found.dn
                    ));
                }
                let mut last_error = None;
                for value in &found.passwords {
                    match userpassword::verify(value, password) {
                        Ok(true) => return Ok(true),
                        Ok(false) => {}
                        Err(e) => last_error = Some(e),
                    }
                }
                match last_error {
                    // Only values this server cannot check: a configuration problem.
                    Some(e) if found.passwords.len() == 1 => Err(format!("{}: {e}", found.dn)),
                    _ => Ok(false),
                }
            }
        }
    }
}

impl Backend for LdapBackend {
    fn name(&self) -> &'static str {
        "ldap"
    }

    /// One thread per pooled connection: more would only wait for a connection.
    fn lookup_threads(&self) -> usize {
        self.pool.capacity()
    }

    fn lookup_timeout(&self) -> Duration {
        self.timeout
    }

    /// An invalid name, or a cache hit: no directory needed.
    fn verify_password_local(
        &self,
        user: &str,
        password: &[u8],
        cx: &VerifyContext<'_>,
    ) -> Option<Verdict> {
        let Ok(login) = canonical_name(user) else {
            return Some(Verdict::UnknownUser);
        };
        let cache = cx.cache.lock().unwrap_or_else(PoisonError::into_inner);
        let info = cache.check_info(&login, &self.cache_tag, password, cx.now)?;
        Some(Verdict::Ok {
            info,
            cache_hit: true,
        })
    }

    fn verify_password(&self, user: &str, password: &[u8], cx: &VerifyContext<'_>) -> Verdict {
        if let Some(answer) = self.verify_password_local(user, password, cx) {
            return answer;
        }
        let Ok(login) = canonical_name(user) else {
            return Verdict::UnknownUser;
        };
        let cache = || cx.cache.lock().unwrap_or_else(PoisonError::into_inner);
        let deadline = Instant::now() + self.timeout;
        let outcome = self
            .with_conn(deadline, |conn| self.search(conn, &login, deadline))
            .and_then(|found| match found {
                None => Ok(None),
                Some(found) => {
                    let right = self.check(&found, password, deadline)?;
                    Ok(Some((found, right)))
                }
            });
        match outcome {
            Err(e) => Verdict::Unavailable(e),
            Ok(None) => Verdict::UnknownUser,
            Ok(Some((_, false))) => Verdict::BadCredentials,
            Ok(Some((found, true))) if !found.enabled => Verdict::Disabled,
            Ok(Some((found, true))) => {
                cache().insert_info(
                    &login,
                    &self.cache_tag,
                    password,
                    found.info.clone(),
                    cx.now,
                );
                Verdict::Ok {
                    info: found.info,
                    cache_hit: false,
                }
            }
        }
    }

    fn lookup(&self, user: &str) -> Lookup {
        let Ok(login) = canonical_name(user) else {
            return Lookup::Unknown;
        };
        let deadline = Instant::now() + self.timeout;
        match self.with_conn(deadline, |conn| self.search(conn, &login, deadline)) {
            Err(e) => Lookup::Unavailable(e),
            Ok(None) => Lookup::Unknown,
            Ok(Some(found)) if !found.enabled => Lookup::Disabled,
            Ok(Some(found)) => Lookup::Found(found.info),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas() {
        assert_eq!(parse_quota("1048576"), Some(1 << 20));
        assert_eq!(parse_quota("1G"), Some(1 << 30));
        assert_eq!(parse_quota("500m"), Some(500 << 20));
        assert_eq!(parse_quota("2 TiB"), Some(2 << 40));
        assert_eq!(parse_quota("0"), Some(0));
        assert_eq!(parse_quota("1X"), None);
        assert_eq!(parse_quota("G"), None);
        assert_eq!(parse_quota("-1"), None);
        assert_eq!(parse_quota("99999999999T"), None);
    }

    #[test]
    fn booleans() {
        assert_eq!(parse_enabled("TRUE"), Some(true));
        assert_eq!(parse_enabled("false"), Some(false));
        assert_eq!(parse_enabled(" 0 "), Some(false));
        assert_eq!(parse_enabled("maybe"), None);
    }

    #[test]
    fn unreachable_directory_is_unavailable_within_the_timeout() {
        // A port nothing listens on: the connection is refused at once.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let config = LdapConfig {
            uri: format!("ldap://127.0.0.1:{port}"),
            base: "dc=example,dc=org".into(),
            timeout_ms: 2_000,
            ..LdapConfig::default()
        };
        let backend = LdapBackend::new(&config, Path::to_path_buf).unwrap();
        let cache = std::sync::Mutex::new(crate::AuthCache::new(Duration::from_secs(60), 10));
        let cx = VerifyContext {
            cache: &cache,
            now: Instant::now(),
        };
        let t0 = Instant::now();
        match backend.verify_password("alice", b"pw", &cx) {
            Verdict::Unavailable(why) => assert!(why.contains("cannot connect"), "{why}"),
            other => panic!("expected Unavailable, got {other:?}"),
        }
        assert!(t0.elapsed() < Duration::from_millis(2_500));
        assert!(matches!(backend.lookup("alice"), Lookup::Unavailable(_)));
        assert_eq!(backend.pool_counts(), (0, 0));
    }
}
