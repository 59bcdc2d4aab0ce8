//! The OAuth 2.0 backend: bearer tokens (RFC 6750) as OAUTHBEARER (RFC 7628) and XOAUTH2
//! send them. A token is a JWT signed by the issuer (RS256, ES256 and the other RSA, PSS,
//! ECDSA and EdDSA algorithms; never HMAC, never `none`), checked against the issuer's key
//! set for signature, issuer, audience, expiry and not-before; the user is a claim of it.
//! A token that is not a JWT is asked about at the introspection endpoint (RFC 7662) when
//! one is configured.
//!
//! Blocking: a verification may fetch the key set or ask the introspection endpoint.

pub mod http;
pub mod jwks;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use crate::backend::{Backend, Lookup, UserInfo, Verdict, VerifyContext};
use crate::config::OauthConfig;
use crate::passwd_file::canonical_name;
use crate::AuthError;
use http::Http;
use jwks::{Keys, Retry};

/// Algorithms accepted. HMAC is not among them: its key is a shared secret, and accepting it
/// with a public key as the secret is the classic JWT forgery.
const ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

struct Introspection {
    url: String,
    /// `Basic ...` for the client credentials, if configured.
    authorization: Option<String>,
}

/// Checks bearer tokens.
pub struct OauthBackend {
    issuer: String,
    audience: String,
    user_claim: String,
    strip_domain: bool,
    leeway_secs: u64,
    keys: Option<Keys>,
    introspection: Option<Introspection>,
    http: Http,
    scope: Option<String>,
}

fn read_secret(path: &Path) -> Result<String, AuthError> {
    let text = std::fs::read_to_string(path).map_err(|source| AuthError::Io {
        path: path.to_owned(),
        source,
    })?;
    Ok(text.trim_end_matches(['\r', '\n']).to_owned())
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl OauthBackend {
    /// Builds the backend from `[oauth]`; `resolve` turns configured paths into real ones.
    /// Reads a JWKS file now (an error stops the start); fetches a JWKS URL now (a failure
    /// is logged and retried at the next token).
    pub fn new(
        config: &OauthConfig,
        resolve: impl Fn(&Path) -> PathBuf,
    ) -> Result<OauthBackend, AuthError> {
        let http = Http::new(Duration::from_millis(config.timeout_ms.max(1)));
        let keys = match (&config.jwks_file, &config.jwks_url) {
            (Some(file), _) => Some(
                Keys::from_file(&resolve(file))
                    .map_err(|e| AuthError::Backend(format!("[oauth] jwks_file: {e}")))?,
            ),
            (None, Some(url)) => Some(Keys::from_url(
                url,
                Http::new(Duration::from_millis(config.timeout_ms.max(1))),
                Duration::from_secs(config.jwks_refresh_secs.max(1)),
                Duration::from_secs(config.jwks_min_refresh_secs),
            )),
            (None, None) => None,
        };
        let introspection = match &config.introspection_url {
            Some(url) => {
                let authorization = match (
                    &config.introspection_client_id,
                    &config.introspection_secret_file,
                ) {
                    (Some(id), Some(file)) => {
                        let secret = read_secret(&resolve(file))?;
                        let pair =
                            format!("{}:{}", http::form_encode(id), http::form_encode(&secret));
                        Some(format!(
                            "Basic {}",
                            base64::engine::general_purpose::STANDARD.encode(pair)
                        ))
                    }
                    _ => None,
                };
                Some(Introspection {
                    url: url.clone(),
                    authorization,
                })
            }
            None => None,
        };
        Ok(OauthBackend {
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            user_claim: config.user_claim.clone(),
            strip_domain: config.strip_domain,
            leeway_secs: config.leeway_secs,
            keys,
            introspection,
            http,
            scope: config.scope.clone(),
        })
    }

    /// The `scope` for the RFC 7628 error challenge.
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// The user a token's claims name, and the claim's raw value.
    fn user_of(&self, claims: &Map<String, Value>) -> Result<(UserInfo, String), String> {
        let raw = claims
            .get(&self.user_claim)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("token has no string claim {:?}", self.user_claim))?;
        let name = if self.strip_domain {
            raw.rsplit_once('@').map_or(raw, |(local, _)| local)
        } else {
            raw
        };
        let name = canonical_name(name)
            .map_err(|e| format!("claim {:?} is not a user name: {e}", self.user_claim))?;
        Ok((UserInfo::named(name), raw.to_lowercase()))
    }

    /// A verified token's user and the claim's raw value, or why the token is refused.
    fn check_jwt(&self, token: &str, keys: &Keys) -> Result<(UserInfo, String), Verdict> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| Verdict::InvalidToken(format!("malformed JWT: {e}")))?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(Verdict::InvalidToken(format!(
                "algorithm {:?} not accepted",
                header.alg
            )));
        }
        let kid = header.kid.as_deref();
        let (mut set, mut generation) = keys.current();
        let key = loop {
            if let Some(key) = set.find(kid, header.alg) {
                break key.key.clone();
            }
            match keys.refresh_for_unknown_key(generation) {
                Retry::Again => (set, generation) = keys.current(),
                Retry::No => {
                    return Err(Verdict::InvalidToken(format!(
                        "no key {} for {:?} in {}",
                        kid.unwrap_or("(no kid)"),
                        header.alg,
                        keys.describe()
                    )))
                }
                Retry::Unavailable(e) => return Err(Verdict::Unavailable(e)),
            }
        };
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = self.leeway_secs;
        match jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation) {
            Ok(data) => self.user_of(&data.claims).map_err(Verdict::InvalidToken),
            Err(e) => Err(Verdict::InvalidToken(match e.kind() {
                ErrorKind::ExpiredSignature => "token expired".into(),
                ErrorKind::ImmatureSignature => "token not yet valid (nbf)".into(),
                ErrorKind::InvalidIssuer => "wrong issuer".into(),
                ErrorKind::InvalidAudience => "wrong audience".into(),
                ErrorKind::InvalidSignature => "bad signature".into(),
                ErrorKind::MissingRequiredClaim(c) => format!("token has no {c} claim"),
                _ => format!("invalid token: {e}"),
            })),
        }
    }

    /// RFC 7662: asks the issuer whether an opaque token is active, and for whom.
    fn introspect(
        &self,
        token: &str,
        endpoint: &Introspection,
    ) -> Result<(UserInfo, String), Verdict> {
        let body = self
            .http
            .post_form(
                &endpoint.url,
                endpoint.authorization.as_deref(),
                &[("token", token), ("token_type_hint", "access_token")],
            )
            .map_err(|e| Verdict::Unavailable(format!("introspection: {e}")))?;
        let answer: Map<String, Value> = serde_json::from_slice(&body)
            .map_err(|e| Verdict::Unavailable(format!("introspection answer: {e}")))?;
        let refuse = |why: &str| Err(Verdict::InvalidToken(why.into()));
        if answer.get("active").and_then(Value::as_bool) != Some(true) {
            return refuse("token not active");
        }
        if let Some(exp) = answer.get("exp").and_then(Value::as_u64) {
            if exp.saturating_add(self.leeway_secs) <= now_secs() {
                return refuse("token expired");
            }
        }
        if let Some(iss) = answer.get("iss") {
            if iss.as_str() != Some(self.issuer.as_str()) {
                return refuse("wrong issuer");
            }
        }
        if let Some(aud) = answer.get("aud") {
            let ours = match aud {
                Value::String(a) => a == &self.audience,
                Value::Array(list) => list.iter().any(|a| a.as_str() == Some(&self.audience)),
                _ => false,
            };
            if !ours {
                return refuse("wrong audience");
            }
        }
        // RFC 7662 section 2.2 names the user "username"; a deployment's claim comes first.
        let claims = if answer.contains_key(&self.user_claim) {
            answer
        } else {
            let mut renamed = answer;
            if let Some(u) = renamed.get("username").cloned() {
                renamed.insert(self.user_claim.clone(), u);
            }
            renamed
        };
        self.user_of(&claims).map_err(Verdict::InvalidToken)
    }
}

fn looks_like_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'=')
        })
}

impl Backend for OauthBackend {
    fn name(&self) -> &'static str {
        "oauth"
    }

    /// A JWT given as the password of LOGIN or PLAIN (for clients that cannot do
    /// OAUTHBEARER), for the user it names. Anything else is not this backend's: opaque
    /// passwords are never sent to the introspection endpoint, which would hand users'
    /// passwords to a third party.
    fn verify_password(&self, user: &str, password: &[u8], _cx: &VerifyContext<'_>) -> Verdict {
        let Ok(token) = std::str::from_utf8(password) else {
            return Verdict::UnknownUser;
        };
        if !looks_like_jwt(token) || self.keys.is_none() {
            return Verdict::UnknownUser;
        }
        match self.verify_token(token, Some(user)) {
            Verdict::InvalidToken(_) => Verdict::BadCredentials,
            other => other,
        }
    }

    fn verify_token(&self, token: &str, claimed_user: Option<&str>) -> Verdict {
        let checked = match (&self.keys, &self.introspection) {
            (Some(keys), _) if looks_like_jwt(token) => self.check_jwt(token, keys),
            (_, Some(endpoint)) => self.introspect(token, endpoint),
            (Some(_), None) => Err(Verdict::InvalidToken("not a JWT".into())),
            (None, None) => Err(Verdict::UnknownUser),
        };
        let (info, raw) = match checked {
            Ok(found) => found,
            Err(verdict) => return verdict,
        };
        // The name the client gave must be the token's user: the canonical name, or the
        // claim's full value (with strip_domain the client usually says the whole address).
        if let Some(claimed) = claimed_user {
            let same = canonical_name(claimed).is_ok_and(|c| c == info.name)
                || claimed.to_lowercase() == raw;
            if !same {
                return Verdict::InvalidToken(format!(
                    "token is for {:?}, not {claimed:?}",
                    info.name
                ));
            }
        }
        Verdict::Ok {
            info,
            cache_hit: false,
        }
    }

    fn lookup(&self, _user: &str) -> Lookup {
        // An issuer cannot be asked whether a user exists.
        Lookup::Unknown
    }

    fn takes_tokens(&self) -> bool {
        true
    }

    /// With a key set URL or an introspection endpoint a check may wait on the issuer; a
    /// key set from a file is checked from memory.
    fn lookup_threads(&self) -> usize {
        let remote = self.introspection.is_some() || self.keys.as_ref().is_some_and(Keys::fetched);
        if remote {
            OAUTH_LOOKUP_THREADS
        } else {
            0
        }
    }

    fn lookup_timeout(&self) -> Duration {
        self.http.timeout()
    }
}

/// Lookup threads for an issuer: fetches are rare (the key set is cached and refreshed
/// once per `jwks_refresh_secs`), but every token check waits behind one.
const OAUTH_LOOKUP_THREADS: usize = 4;
