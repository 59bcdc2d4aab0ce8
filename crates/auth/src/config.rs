//! The configuration of authentication: `[auth]`, `[ldap]` and `[oauth]`.
//!
//! These structs are meant to be embedded as they are in the server's configuration file
//! (`auth: AuthConfig`, `ldap: Option<LdapConfig>`, `oauth: Option<OauthConfig>`); unknown
//! keys are refused so that a typo is an error, not a silent default. [`validate`] checks
//! what serde cannot (the sections agree with `backends`, URLs, filters) and says what is
//! wrong in words an operator can act on.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::passwd_file::canonical_name;

/// One kind of backend in `[auth] backends`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum BackendKind {
    /// The Dovecot-format users file (`[auth] users_file`).
    #[serde(rename = "passwd-file")]
    PasswdFile,
    /// A directory server (`[ldap]`).
    #[serde(rename = "ldap")]
    Ldap,
    /// OAuth 2.0 bearer tokens (`[oauth]`), for OAUTHBEARER and XOAUTH2.
    #[serde(rename = "oauth")]
    Oauth,
}

impl BackendKind {
    /// The name used in the configuration and in logs.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::PasswdFile => "passwd-file",
            BackendKind::Ldap => "ldap",
            BackendKind::Oauth => "oauth",
        }
    }
}

/// `[auth]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Dovecot-format passwd-file (used when `backends` lists "passwd-file").
    pub users_file: PathBuf,
    /// Seconds a verified credential stays in the auth cache (0 disables the cache).
    pub cache_ttl_secs: u64,
    /// Most entries in the auth cache.
    pub cache_size: usize,
    /// The backends asked, in this order; the first one that knows the user decides.
    pub backends: Vec<BackendKind>,
    /// Users who may log in as any other user (`LOGIN target*master password`, or SASL PLAIN
    /// with the target as authorization identity). Each is verified by the backends like
    /// any user.
    pub masters: Vec<String>,
    /// What separates the target user from the master user in a login name.
    pub master_separator: String,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            users_file: "users".into(),
            cache_ttl_secs: 300,
            cache_size: 100_000,
            backends: vec![BackendKind::PasswdFile],
            masters: Vec::new(),
            master_separator: "*".into(),
        }
    }
}

/// How the LDAP backend checks a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LdapVerify {
    /// Bind as the user's DN with the password (the directory checks it; works with any
    /// hash the directory knows, and with password policies).
    Bind,
    /// Read the user's `userPassword` (the search account needs read access to it) and check
    /// the hash here: `{SSHA}`, `{SSHA256}`, `{SSHA512}`, `{SHA}`, `{CRYPT}`, `{ARGON2}`.
    Compare,
}

/// `[ldap.attributes]`: which attributes of the user's entry say what. Each is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LdapAttributes {
    /// The canonical user name (the mailbox is stored under it), e.g. "uid" or "mail".
    /// Unset: the login name, lowercased.
    pub name: Option<String>,
    /// The storage quota: bytes, or a number with a K, M, G or T suffix (powers of 1024).
    pub quota: Option<String>,
    /// An LDAP Boolean ("TRUE"/"FALSE"); a user whose value is FALSE cannot log in. A user
    /// without the attribute is enabled.
    pub enabled: Option<String>,
}

/// `[ldap]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LdapConfig {
    /// `ldap://host[:port]` or `ldaps://host[:port]`.
    pub uri: String,
    /// Upgrade an `ldap://` connection with StartTLS (RFC 4513 section 3) before anything
    /// else is sent.
    pub starttls: bool,
    /// PEM file of the CA certificates that sign the directory's certificate. Unset: the
    /// system's trusted roots.
    pub ca_file: Option<PathBuf>,
    /// The search base, e.g. "ou=people,dc=example,dc=org".
    pub base: String,
    /// The search filter; `%u` is the login name (lowercased), `%n` its part before '@',
    /// `%d` its part after '@', `%%` a percent sign. Values are escaped (RFC 4515).
    pub user_filter: String,
    /// The DN the searches bind as. Unset: searches are anonymous.
    pub bind_dn: Option<String>,
    /// A file holding the password of `bind_dn` (one line; a trailing newline is ignored).
    pub bind_password_file: Option<PathBuf>,
    /// "bind" or "compare".
    pub verify: LdapVerify,
    /// The longest a login waits for the directory, all steps together (a free pool
    /// connection, connecting, StartTLS, search, bind), in milliseconds.
    pub timeout_ms: u64,
    /// Connections kept open to the directory; logins beyond this many at once wait for one.
    pub pool_size: usize,
    /// Attributes that give the canonical name, quota and enabled flag.
    pub attributes: LdapAttributes,
}

impl Default for LdapConfig {
    fn default() -> Self {
        LdapConfig {
            uri: "ldap://127.0.0.1".into(),
            starttls: false,
            ca_file: None,
            base: String::new(),
            user_filter: "(&(objectClass=inetOrgPerson)(uid=%u))".into(),
            bind_dn: None,
            bind_password_file: None,
            verify: LdapVerify::Bind,
            timeout_ms: 5_000,
            pool_size: 8,
            attributes: LdapAttributes::default(),
        }
    }
}

/// `[oauth]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OauthConfig {
    /// The token issuer; a token's `iss` claim must equal it.
    pub issuer: String,
    /// This server's audience; a token's `aud` claim must contain it.
    pub audience: String,
    /// A JWKS file (RFC 7517) with the issuer's public keys, read at start.
    pub jwks_file: Option<PathBuf>,
    /// The issuer's JWKS URL, fetched at start, every `jwks_refresh_secs`, and when a token
    /// names a key id not in the set (at most once per `jwks_min_refresh_secs`).
    pub jwks_url: Option<String>,
    /// Seconds between refreshes of `jwks_url`.
    pub jwks_refresh_secs: u64,
    /// Least seconds between two fetches of `jwks_url` caused by unknown key ids.
    pub jwks_min_refresh_secs: u64,
    /// The claim that names the user.
    pub user_claim: String,
    /// Use only the part of the claim before the last '@' as the user name.
    pub strip_domain: bool,
    /// Seconds of clock skew allowed on `exp` and `nbf`.
    pub leeway_secs: u64,
    /// RFC 7662 token introspection endpoint, asked for tokens that are not JWTs.
    pub introspection_url: Option<String>,
    /// The client id this server authenticates to the introspection endpoint with.
    pub introspection_client_id: Option<String>,
    /// A file holding the client secret for the introspection endpoint.
    pub introspection_secret_file: Option<PathBuf>,
    /// The `scope` sent in the RFC 7628 error challenge (unset: none is sent).
    pub scope: Option<String>,
    /// Longest wait for the JWKS URL or the introspection endpoint, in milliseconds.
    pub timeout_ms: u64,
}

impl Default for OauthConfig {
    fn default() -> Self {
        OauthConfig {
            issuer: String::new(),
            audience: String::new(),
            jwks_file: None,
            jwks_url: None,
            jwks_refresh_secs: 3600,
            jwks_min_refresh_secs: 10,
            user_claim: "email".into(),
            strip_domain: false,
            leeway_secs: 30,
            introspection_url: None,
            introspection_client_id: None,
            introspection_secret_file: None,
            scope: None,
            timeout_ms: 5_000,
        }
    }
}

/// A configuration error, with the key it concerns in the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn fail<T>(message: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(message.into()))
}

/// Checks that `[auth]`, `[ldap]` and `[oauth]` agree and make sense.
pub fn validate(
    auth: &AuthConfig,
    ldap: Option<&LdapConfig>,
    oauth: Option<&OauthConfig>,
) -> Result<(), ConfigError> {
    if auth.backends.is_empty() {
        return fail(
            "[auth] backends is empty: list at least one of \"passwd-file\", \"ldap\", \"oauth\"",
        );
    }
    for (i, kind) in auth.backends.iter().enumerate() {
        if auth.backends[..i].contains(kind) {
            return fail(format!("[auth] backends lists \"{}\" twice", kind.name()));
        }
    }
    let listed = |kind| auth.backends.contains(&kind);
    match (listed(BackendKind::Ldap), ldap) {
        (true, None) => {
            return fail("[auth] backends lists \"ldap\" but there is no [ldap] section")
        }
        (false, Some(_)) => {
            return fail("there is an [ldap] section but [auth] backends does not list \"ldap\"")
        }
        (true, Some(ldap)) => validate_ldap(ldap)?,
        (false, None) => {}
    }
    match (listed(BackendKind::Oauth), oauth) {
        (true, None) => {
            return fail("[auth] backends lists \"oauth\" but there is no [oauth] section")
        }
        (false, Some(_)) => {
            return fail("there is an [oauth] section but [auth] backends does not list \"oauth\"")
        }
        (true, Some(oauth)) => validate_oauth(oauth)?,
        (false, None) => {}
    }
    for master in &auth.masters {
        if let Err(e) = canonical_name(master) {
            return fail(format!("[auth] masters: {e}"));
        }
    }
    if !auth.masters.is_empty() {
        let sep = &auth.master_separator;
        if sep.is_empty()
            || sep
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == ':')
        {
            return fail(format!(
                "[auth] master_separator {sep:?} must be a non-empty string without spaces or ':'"
            ));
        }
        if let Some(m) = auth.masters.iter().find(|m| m.contains(sep.as_str())) {
            return fail(format!(
                "[auth] masters: {m:?} contains the master_separator {sep:?}"
            ));
        }
    }
    Ok(())
}

fn validate_ldap(ldap: &LdapConfig) -> Result<(), ConfigError> {
    let uri = ldap.uri.to_ascii_lowercase();
    let ldaps = uri.starts_with("ldaps://");
    if !ldaps && !uri.starts_with("ldap://") {
        return fail(format!(
            "[ldap] uri {:?} must start with ldap:// or ldaps://",
            ldap.uri
        ));
    }
    if ldaps && ldap.starttls {
        return fail(
            "[ldap] starttls = true needs an ldap:// uri (ldaps:// is TLS from the start)",
        );
    }
    if ldap.base.trim().is_empty() {
        return fail(
            "[ldap] base is empty: give the search base, e.g. \"ou=people,dc=example,dc=org\"",
        );
    }
    crate::ldap::filter::check_template(&ldap.user_filter)
        .map_err(|e| ConfigError(format!("[ldap] user_filter: {e}")))?;
    match (&ldap.bind_dn, &ldap.bind_password_file) {
        (Some(_), None) => return fail("[ldap] bind_dn needs bind_password_file"),
        (None, Some(_)) => return fail("[ldap] bind_password_file needs bind_dn"),
        _ => {}
    }
    if ldap.verify == LdapVerify::Compare && ldap.bind_dn.is_none() {
        return fail(
            "[ldap] verify = \"compare\" reads userPassword, which needs bind_dn (an account \
             allowed to read it)",
        );
    }
    if ldap.timeout_ms == 0 {
        return fail("[ldap] timeout_ms must be at least 1");
    }
    if ldap.pool_size == 0 {
        return fail("[ldap] pool_size must be at least 1");
    }
    let attrs = &ldap.attributes;
    for (key, value) in [
        ("name", &attrs.name),
        ("quota", &attrs.quota),
        ("enabled", &attrs.enabled),
    ] {
        if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
            return fail(format!("[ldap.attributes] {key} is empty"));
        }
    }
    Ok(())
}

fn validate_oauth(oauth: &OauthConfig) -> Result<(), ConfigError> {
    if oauth.issuer.trim().is_empty() {
        return fail("[oauth] issuer is empty: give the issuer tokens carry in their iss claim");
    }
    if oauth.audience.trim().is_empty() {
        return fail(
            "[oauth] audience is empty: give the audience tokens carry in their aud claim",
        );
    }
    match (&oauth.jwks_file, &oauth.jwks_url, &oauth.introspection_url) {
        (Some(_), Some(_), _) => return fail("[oauth] give jwks_file or jwks_url, not both"),
        (None, None, None) => {
            return fail(
                "[oauth] needs jwks_file or jwks_url (or introspection_url for opaque tokens)",
            )
        }
        _ => {}
    }
    if let Some(url) = &oauth.jwks_url {
        check_url("[oauth] jwks_url", url)?;
    }
    if let Some(url) = &oauth.introspection_url {
        check_url("[oauth] introspection_url", url)?;
    }
    if oauth.introspection_client_id.is_some() != oauth.introspection_secret_file.is_some() {
        return fail("[oauth] introspection_client_id and introspection_secret_file go together");
    }
    if oauth.user_claim.trim().is_empty() {
        return fail("[oauth] user_claim is empty");
    }
    if oauth.timeout_ms == 0 {
        return fail("[oauth] timeout_ms must be at least 1");
    }
    if oauth.jwks_refresh_secs == 0 {
        return fail("[oauth] jwks_refresh_secs must be at least 1");
    }
    Ok(())
}

/// An https:// URL, or http:// to a loopback address (a local token service or a test).
fn check_url(key: &str, url: &str) -> Result<(), ConfigError> {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("https://") && lower.len() > "https://".len() {
        return Ok(());
    }
    if let Some(rest) = lower.strip_prefix("http://") {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host = match authority.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => authority,
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if loopback {
            return Ok(());
        }
        return fail(format!(
            "{key} {url:?} must be https:// (http:// only to a loopback address)"
        ));
    }
    fail(format!("{key} {url:?} is not an https:// URL"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        #[serde(default)]
        auth: AuthConfig,
        ldap: Option<LdapConfig>,
        oauth: Option<OauthConfig>,
    }

    fn parse(text: &str) -> File {
        toml::from_str(text).unwrap()
    }

    fn check(text: &str) -> Result<(), ConfigError> {
        let f = parse(text);
        validate(&f.auth, f.ldap.as_ref(), f.oauth.as_ref())
    }

    fn err(text: &str) -> String {
        check(text).unwrap_err().0
    }

    #[test]
    fn defaults_are_passwd_file_only() {
        let f = parse("");
        assert_eq!(f.auth.backends, [BackendKind::PasswdFile]);
        assert_eq!(f.auth.users_file, PathBuf::from("users"));
        assert_eq!(f.auth.cache_ttl_secs, 300);
        assert!(f.auth.masters.is_empty());
        assert!(check("").is_ok());
    }

    #[test]
    fn full_example_parses_and_validates() {
        let text = r#"
            [auth]
            backends = ["passwd-file", "ldap", "oauth"]
            masters = ["support"]

            [ldap]
            uri = "ldap://ldap.example.org"
            starttls = true
            base = "ou=people,dc=example,dc=org"
            user_filter = "(&(objectClass=inetOrgPerson)(uid=%u))"
            bind_dn = "cn=imap,dc=example,dc=org"
            bind_password_file = "ldap.secret"
            verify = "compare"
            timeout_ms = 2000
            pool_size = 4
            [ldap.attributes]
            name = "uid"
            quota = "mailQuota"
            enabled = "mailEnabled"

            [oauth]
            issuer = "https://id.example.org"
            audience = "imap"
            jwks_url = "https://id.example.org/jwks.json"
            user_claim = "preferred_username"
            strip_domain = true
        "#;
        let f = parse(text);
        let ldap = f.ldap.as_ref().unwrap();
        assert_eq!(ldap.verify, LdapVerify::Compare);
        assert_eq!(ldap.attributes.quota.as_deref(), Some("mailQuota"));
        let oauth = f.oauth.as_ref().unwrap();
        assert_eq!(oauth.user_claim, "preferred_username");
        assert_eq!(oauth.leeway_secs, 30);
        validate(&f.auth, f.ldap.as_ref(), f.oauth.as_ref()).unwrap();
    }

    #[test]
    fn unknown_keys_and_backends_are_refused() {
        assert!(toml::from_str::<File>("[ldap]\nurl = \"ldap://x\"").is_err());
        assert!(toml::from_str::<File>("[auth]\nbackends = [\"sql\"]").is_err());
        assert!(toml::from_str::<File>("[ldap]\nverify = \"guess\"").is_err());
        assert!(toml::from_str::<File>("[oauth]\njwks = \"x\"").is_err());
    }

    #[test]
    fn sections_must_match_backends() {
        assert!(err("[auth]\nbackends = [\"ldap\"]").contains("no [ldap] section"));
        assert!(err("[ldap]\nbase = \"dc=x\"").contains("does not list \"ldap\""));
        assert!(err("[auth]\nbackends = [\"oauth\"]").contains("no [oauth] section"));
        assert!(err("[auth]\nbackends = []").contains("empty"));
        assert!(err("[auth]\nbackends = [\"ldap\", \"ldap\"]").contains("twice"));
    }

    const LDAP: &str = "[auth]\nbackends = [\"ldap\"]\n[ldap]\nbase = \"dc=x\"\n";

    #[test]
    fn ldap_mistakes_are_named() {
        assert!(check(LDAP).is_ok());
        let with = |extra: &str| err(&format!("{LDAP}{extra}"));
        assert!(with("uri = \"http://x\"").contains("ldap:// or ldaps://"));
        assert!(with("uri = \"ldaps://x\"\nstarttls = true").contains("starttls"));
        assert!(with("user_filter = \"(uid=alice)\"").contains("%u"));
        assert!(with("user_filter = \"uid=%u\"").contains("parenthes"));
        assert!(with("bind_dn = \"cn=a\"").contains("bind_password_file"));
        assert!(with("verify = \"compare\"").contains("bind_dn"));
        assert!(with("timeout_ms = 0").contains("timeout_ms"));
        assert!(with("pool_size = 0").contains("pool_size"));
        assert!(with("[ldap.attributes]\nquota = \"\"").contains("quota"));
        assert!(err("[auth]\nbackends = [\"ldap\"]\n[ldap]\nbase = \"\"").contains("base"));
    }

    const OAUTH: &str =
        "[auth]\nbackends = [\"oauth\"]\n[oauth]\nissuer = \"https://id\"\naudience = \"imap\"\n";

    #[test]
    fn oauth_mistakes_are_named() {
        let with = |extra: &str| check(&format!("{OAUTH}{extra}"));
        let err_with = |extra: &str| with(extra).unwrap_err().0;
        assert!(with("jwks_file = \"k.json\"").is_ok());
        assert!(with("jwks_url = \"http://127.0.0.1:8080/jwks\"").is_ok());
        assert!(with("jwks_url = \"http://[::1]/jwks\"").is_ok());
        assert!(with("introspection_url = \"https://id/introspect\"").is_ok());
        assert!(err_with("jwks_url = \"http://id.example.org/jwks\"").contains("https://"));
        assert!(err_with("jwks_url = \"ftp://x\"").contains("https://"));
        assert!(err_with("").contains("jwks_file or jwks_url"));
        assert!(err_with("jwks_file = \"a\"\njwks_url = \"https://b\"").contains("not both"));
        assert!(
            err_with("jwks_file = \"a\"\nintrospection_client_id = \"imap\"").contains("together")
        );
        assert!(err_with("jwks_file = \"a\"\nuser_claim = \"\"").contains("user_claim"));
        assert!(err(
            "[auth]\nbackends = [\"oauth\"]\n[oauth]\naudience = \"a\"\njwks_file = \"k\""
        )
        .contains("issuer"));
    }

    #[test]
    fn masters_are_checked() {
        assert!(check("[auth]\nmasters = [\"support\"]").is_ok());
        assert!(err("[auth]\nmasters = [\"a b\"]").contains("masters"));
        assert!(err("[auth]\nmasters = [\"a*b\"]").contains("separator"));
        assert!(err("[auth]\nmasters = [\"a\"]\nmaster_separator = \"\"").contains("separator"));
    }
}
