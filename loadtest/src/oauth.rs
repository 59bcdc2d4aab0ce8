//! OAuth 2.0 bearer tokens for `--auth oauthbearer` and `--auth xoauth2`: one JWT per bench
//! user, signed before the run starts, so that the timed loop measures the server's check of
//! a token and not the load generator's signing (an RS256 signature costs about a
//! millisecond of CPU).
//!
//! The key is a PEM private key (RSA for RS256, EC P-256 for ES256, as `openssl genpkey`
//! writes them); the server needs its public half as a JWK Set, which `--oauth-jwks-out`
//! writes.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};

use crate::options::{AuthMechanism, Options};

/// Why tokens could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The key file could not be read.
    #[error("--oauth-key {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The key is neither an EC P-256 nor an RSA private key in PEM.
    #[error("--oauth-key {0}: not a PEM private key for ES256 (EC P-256) or RS256 (RSA)")]
    Key(PathBuf),
    /// Signing or writing the JWK Set failed.
    #[error("{0}")]
    Other(String),
}

/// The signing key and what the tokens claim.
pub struct Signer {
    key: EncodingKey,
    header: Header,
    jwk: Jwk,
}

impl Signer {
    /// Reads the PEM key in `path`; ES256 for an EC key, RS256 for an RSA key.
    pub fn from_file(path: &Path, kid: &str) -> Result<Signer, TokenError> {
        let pem = std::fs::read(path).map_err(|e| TokenError::Read {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        let (key, alg) = match EncodingKey::from_ec_pem(&pem) {
            Ok(key) => (key, Algorithm::ES256),
            Err(_) => EncodingKey::from_rsa_pem(&pem)
                .map(|key| (key, Algorithm::RS256))
                .map_err(|_| TokenError::Key(path.to_owned()))?,
        };
        let mut jwk = Jwk::from_encoding_key(&key, alg)
            .map_err(|e| TokenError::Other(format!("public key of {}: {e}", path.display())))?;
        jwk.common.key_id = Some(kid.to_owned());
        let mut header = Header::new(alg);
        header.kid = Some(kid.to_owned());
        Ok(Signer { key, header, jwk })
    }

    /// The public key as a JWK Set, for the server's `[oauth] jwks_file`.
    pub fn jwks_json(&self) -> String {
        let set = JwkSet {
            keys: vec![self.jwk.clone()],
        };
        serde_json::to_string_pretty(&set).expect("a JWK Set serializes")
    }

    /// A token for `user`: `claim` names the user, valid from a minute ago for `lifetime`
    /// seconds.
    pub fn token(
        &self,
        user: &str,
        claim: &str,
        issuer: &str,
        audience: &str,
        lifetime: u64,
    ) -> Result<String, TokenError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut claims = serde_json::Map::new();
        claims.insert("iss".into(), issuer.into());
        claims.insert("aud".into(), audience.into());
        claims.insert("sub".into(), user.into());
        claims.insert(claim.into(), user.into());
        claims.insert("iat".into(), now.saturating_sub(60).into());
        claims.insert("exp".into(), now.saturating_add(lifetime).into());
        jsonwebtoken::encode(&self.header, &claims, &self.key)
            .map_err(|e| TokenError::Other(format!("signing a token: {e}")))
    }
}

/// What each session sends to log in with a token: the SASL initial response of every user,
/// in user order.
#[derive(Debug, Clone)]
pub struct Tokens {
    /// `OAUTHBEARER` or `XOAUTH2`.
    pub mechanism: &'static str,
    /// Base64 initial responses, one per user index.
    pub initial: Vec<String>,
}

/// Writes the public JWK Set of `--oauth-key` to `out` (`--oauth-jwks-out`), so that a bench
/// script can configure the server before the run.
pub fn write_jwks(opts: &Options, out: &Path) -> Result<(), TokenError> {
    let Some(key) = &opts.oauth_key else {
        return Err(TokenError::Other(
            "--oauth-jwks-out needs --oauth-key".into(),
        ));
    };
    let signer = Signer::from_file(key, &opts.oauth_kid)?;
    std::fs::write(out, signer.jwks_json())
        .map_err(|e| TokenError::Other(format!("--oauth-jwks-out {}: {e}", out.display())))
}

/// Signs a token for each of the run's users; `None` for `--auth login`.
pub fn prepare(opts: &Options) -> Result<Option<Tokens>, TokenError> {
    let mechanism = match opts.auth {
        AuthMechanism::Login => return Ok(None),
        AuthMechanism::Oauthbearer => "OAUTHBEARER",
        AuthMechanism::Xoauth2 => "XOAUTH2",
    };
    // Validation made sure the key, issuer and audience are given.
    let key = opts.oauth_key.as_deref().unwrap_or(Path::new(""));
    let signer = Signer::from_file(key, &opts.oauth_kid)?;
    // Valid past the run's end, with the same margin as the sessions' last commands.
    let lifetime = (opts.warmup + opts.duration + opts.timeout) as u64 + 3600;
    let issuer = opts.oauth_issuer.as_deref().unwrap_or_default();
    let audience = opts.oauth_audience.as_deref().unwrap_or_default();
    let initial = (0..opts.users)
        .map(|index| {
            let user = opts.user_name(index);
            let token = signer.token(&user, &opts.oauth_claim, issuer, audience, lifetime)?;
            Ok(initial_response(opts.auth, &user, &token))
        })
        .collect::<Result<Vec<_>, TokenError>>()?;
    Ok(Some(Tokens { mechanism, initial }))
}

/// The SASL initial response, base64: RFC 7628's GS2 header and key/value pairs for
/// OAUTHBEARER, Google's `user=` form for XOAUTH2.
fn initial_response(mechanism: AuthMechanism, user: &str, token: &str) -> String {
    let raw = match mechanism {
        AuthMechanism::Xoauth2 => format!("user={user}\x01auth=Bearer {token}\x01\x01"),
        _ => format!("n,a={user},\x01auth=Bearer {token}\x01\x01"),
    };
    base64::engine::general_purpose::STANDARD.encode(raw)
}

/// What the client answers to the RFC 7628 error challenge before the server's NO: a lone
/// `^A` for OAUTHBEARER, an empty response for XOAUTH2.
pub fn error_ack(mechanism: &str) -> &'static [u8] {
    if mechanism == "OAUTHBEARER" {
        b"AQ=="
    } else {
        b""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_responses_have_the_mechanisms_forms() {
        let decode = |s: String| {
            String::from_utf8(base64::engine::general_purpose::STANDARD.decode(s).unwrap()).unwrap()
        };
        assert_eq!(
            decode(initial_response(AuthMechanism::Oauthbearer, "u1", "T")),
            "n,a=u1,\x01auth=Bearer T\x01\x01"
        );
        assert_eq!(
            decode(initial_response(AuthMechanism::Xoauth2, "u1", "T")),
            "user=u1\x01auth=Bearer T\x01\x01"
        );
    }
}
