//! The committed test keys (tests/keys) as JWT signing keys and their public JWKs, shared by
//! crates/auth's OAuth tests and the server's end-to-end tests (included there by `#[path]`).
// Not every test binary that includes `support` signs tokens.
#![allow(dead_code)]

use std::path::Path;

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey};

/// The signing key in `tests/keys/FILE` and its public JWK with key id `kid`.
pub fn load(file: &str, alg: Algorithm, kid: &str) -> (EncodingKey, Jwk) {
    // The including package is crates/auth or the workspace root.
    let package = Path::new(env!("CARGO_MANIFEST_DIR"));
    let keys = if package.ends_with("crates/auth") {
        package.join("tests/keys")
    } else {
        package.join("crates/auth/tests/keys")
    };
    let path = keys.join(file);
    let pem = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let key = match alg {
        Algorithm::ES256 => EncodingKey::from_ec_pem(&pem).unwrap(),
        _ => EncodingKey::from_rsa_pem(&pem).unwrap(),
    };
    let mut jwk = Jwk::from_encoding_key(&key, alg).unwrap();
    jwk.common.key_id = Some(kid.to_owned());
    (key, jwk)
}
