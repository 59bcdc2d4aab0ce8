//! The issuer's signing keys (a JWK Set, RFC 7517), from a file or a URL.
//!
//! A URL is fetched when the backend starts, again when the set is older than the refresh
//! interval (by the first verification that notices, on its blocking thread; the others go
//! on with the set they have), and when a token names a key id the set does not have (key
//! rotation), at most once per `min_refresh`. A failed fetch keeps the keys already known.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

use super::http::Http;

/// One usable public key.
pub struct Key {
    /// The `kid` it is published under.
    pub kid: Option<String>,
    /// The only algorithm it may be used with, when the JWK says (`alg`).
    pub alg: Option<Algorithm>,
    /// For EC keys, the algorithm its curve implies.
    curve_alg: Option<Algorithm>,
    /// The key itself.
    pub key: DecodingKey,
}

impl Key {
    fn fits(&self, alg: Algorithm) -> bool {
        self.key.family() == alg.family()
            && self.alg.is_none_or(|a| a == alg)
            && self.curve_alg.is_none_or(|a| a == alg)
    }
}

/// The keys of one fetch or file.
#[derive(Default)]
pub struct KeySet {
    keys: Vec<Key>,
}

impl KeySet {
    /// Parses a JWK Set. Keys that cannot verify signatures here (symmetric keys, encryption
    /// keys, unknown types) are skipped, so that one odd key does not hide the others.
    pub fn parse(json: &[u8]) -> Result<KeySet, String> {
        #[derive(serde::Deserialize)]
        struct Raw {
            keys: Vec<serde_json::Value>,
        }
        let raw: Raw = serde_json::from_slice(json).map_err(|e| format!("not a JWK Set: {e}"))?;
        let mut keys = Vec::new();
        for value in raw.keys {
            let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
                continue;
            };
            if let Some(key) = usable(&jwk) {
                keys.push(key);
            }
        }
        Ok(KeySet { keys })
    }

    /// The key to check a token signed with `alg` (and naming `kid`, if it does) against.
    /// Without a `kid`, only a set with exactly one fitting key answers.
    pub fn find(&self, kid: Option<&str>, alg: Algorithm) -> Option<&Key> {
        let mut fitting = self.keys.iter().filter(|k| k.fits(alg));
        match kid {
            Some(kid) => fitting.find(|k| k.kid.as_deref() == Some(kid)),
            None => {
                let first = fitting.next()?;
                fitting.next().is_none().then_some(first)
            }
        }
    }

    /// Number of usable keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there is no usable key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

fn usable(jwk: &Jwk) -> Option<Key> {
    if matches!(
        jwk.common.public_key_use,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
    ) {
        return None;
    }
    let curve_alg = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => None,
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => Some(Algorithm::ES256),
            EllipticCurve::P384 => Some(Algorithm::ES384),
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(_) => Some(Algorithm::EdDSA),
        // Symmetric keys never: a public key set with an HMAC secret would let anyone who
        // reads the set sign tokens.
        _ => return None,
    };
    let alg = match jwk.common.key_algorithm {
        Some(a) => Some(a.to_string().parse::<Algorithm>().ok()?),
        None => None,
    };
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(Key {
        kid: jwk.common.key_id.clone(),
        alg,
        curve_alg,
        key,
    })
}

/// Where the keys come from.
enum Source {
    File(PathBuf),
    Url {
        url: String,
        http: Http,
        refresh: Duration,
        min_refresh: Duration,
    },
}

struct FetchState {
    /// When the last fetch was tried (successful or not).
    attempted: Option<Instant>,
    /// When a token with an unknown key id last caused a fetch (the rate limit counts these,
    /// so that the fetch at start does not delay picking up a rotation).
    forced: Option<Instant>,
    /// Why the last fetch failed, if it did.
    error: Option<String>,
}

/// The issuer's keys, shared by all verifying threads.
pub struct Keys {
    source: Source,
    /// The set in force and its generation (counts the sets loaded, so that a thread can
    /// tell another one replaced the set it saw).
    current: RwLock<(Arc<KeySet>, u64)>,
    /// Held while fetching: concurrent fetches of the same URL would only add load.
    fetch: Mutex<FetchState>,
}

/// What a caller may do after a key was not found.
pub enum Retry {
    /// A newer set is in force: look again.
    Again,
    /// Nothing newer: the key is unknown.
    No,
    /// The set could not be fetched (the text says why): nobody can tell.
    Unavailable(String),
}

impl Keys {
    /// Whether the set comes from a URL (so a token check may wait on a fetch).
    pub fn fetched(&self) -> bool {
        matches!(self.source, Source::Url { .. })
    }

    /// Keys from a JWKS file, read now.
    pub fn from_file(path: &Path) -> Result<Keys, String> {
        let json = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let set = KeySet::parse(&json).map_err(|e| format!("{}: {e}", path.display()))?;
        if set.is_empty() {
            return Err(format!(
                "{}: no key that can verify RS/PS/ES/EdDSA signatures",
                path.display()
            ));
        }
        Ok(Keys {
            source: Source::File(path.to_owned()),
            current: RwLock::new((Arc::new(set), 0)),
            fetch: Mutex::new(FetchState {
                attempted: None,
                forced: None,
                error: None,
            }),
        })
    }

    /// Keys from a JWKS URL, fetched now (a failure is logged and retried later: the server
    /// starts even when the issuer is down).
    pub fn from_url(url: &str, http: Http, refresh: Duration, min_refresh: Duration) -> Keys {
        let keys = Keys {
            source: Source::Url {
                url: url.to_owned(),
                http,
                refresh,
                min_refresh,
            },
            current: RwLock::new((Arc::new(KeySet::default()), 0)),
            fetch: Mutex::new(FetchState {
                attempted: None,
                forced: None,
                error: None,
            }),
        };
        let mut state = keys.lock_fetch();
        keys.fetch_now(&mut state);
        drop(state);
        keys
    }

    fn lock_fetch(&self) -> std::sync::MutexGuard<'_, FetchState> {
        self.fetch.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The set in force, with its generation. Refreshes it first if it is due and no other
    /// thread is at it.
    pub fn current(&self) -> (Arc<KeySet>, u64) {
        if let Source::Url { refresh, .. } = &self.source {
            if let Ok(mut state) = self.fetch.try_lock() {
                let due = state.attempted.is_none_or(|at| at.elapsed() >= *refresh);
                if due {
                    self.fetch_now(&mut state);
                }
            }
        }
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        (Arc::clone(&current.0), current.1)
    }

    fn generation(&self) -> u64 {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .1
    }

    /// A token named a key that set `seen` did not have: fetch again unless that was done
    /// less than `min_refresh` ago.
    pub fn refresh_for_unknown_key(&self, seen: u64) -> Retry {
        let Source::Url { min_refresh, .. } = &self.source else {
            return Retry::No;
        };
        // Waits for a fetch in flight, which may bring the key.
        let mut state = self.lock_fetch();
        if self.generation() != seen {
            return Retry::Again;
        }
        let recent = state.forced.is_some_and(|at| at.elapsed() < *min_refresh);
        if !recent {
            state.forced = Some(Instant::now());
            self.fetch_now(&mut state);
            if self.generation() != seen {
                return Retry::Again;
            }
        }
        match &state.error {
            Some(e) => Retry::Unavailable(e.clone()),
            None => Retry::No,
        }
    }

    fn fetch_now(&self, state: &mut FetchState) {
        let Source::Url { url, http, .. } = &self.source else {
            return;
        };
        state.attempted = Some(Instant::now());
        let result = http
            .get(url)
            .and_then(|body| KeySet::parse(&body).map_err(|e| format!("{url}: {e}")));
        match result {
            Ok(set) => {
                tracing::debug!(url, keys = set.len(), "JWKS fetched");
                let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
                *current = (Arc::new(set), current.1 + 1);
                drop(current);
                state.error = None;
            }
            Err(e) => {
                tracing::warn!(url, error = %e, "JWKS fetch failed; keeping the keys known");
                state.error = Some(e);
            }
        }
    }

    /// Where the keys come from, for messages.
    pub fn describe(&self) -> String {
        match &self.source {
            Source::File(path) => path.display().to_string(),
            Source::Url { url, .. } => url.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7517 appendix A.1's example public keys (an EC P-256 key and an RSA key).
    const RFC7517_A1: &str = r#"{"keys":[
        {"kty":"EC","crv":"P-256","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",
         "y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM","use":"enc","kid":"1"},
        {"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
         "e":"AQAB","alg":"RS256","kid":"2011-04-29"},
        {"kty":"oct","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow","kid":"hmac"},
        {"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
         "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","kid":"ec-sig"},
        {"kty":"weird","kid":"x"}
    ]}"#;

    #[test]
    fn usable_keys_only() {
        let set = KeySet::parse(RFC7517_A1.as_bytes()).unwrap();
        // The encryption key, the HMAC secret and the unknown type are skipped.
        assert_eq!(set.len(), 2);
        assert!(set.find(Some("2011-04-29"), Algorithm::RS256).is_some());
        // The key says RS256 only.
        assert!(set.find(Some("2011-04-29"), Algorithm::RS512).is_none());
        assert!(set.find(Some("ec-sig"), Algorithm::ES256).is_some());
        // A P-256 key is not an ES384 key, nor an RSA key.
        assert!(set.find(Some("ec-sig"), Algorithm::ES384).is_none());
        assert!(set.find(Some("ec-sig"), Algorithm::RS256).is_none());
        assert!(set.find(Some("hmac"), Algorithm::HS256).is_none());
        assert!(set.find(Some("1"), Algorithm::ES256).is_none());
        assert!(set.find(Some("nope"), Algorithm::RS256).is_none());
        // Without a kid, the one key that fits.
        assert!(set.find(None, Algorithm::ES256).is_some());
    }

    #[test]
    fn not_a_set() {
        assert!(KeySet::parse(b"[]").is_err());
        assert!(KeySet::parse(b"{\"keys\":[]}").unwrap().is_empty());
    }
}
