//! `userPassword` values as OpenLDAP stores them (RFC 3112's `{SCHEME}` prefix), checked
//! here for `verify = "compare"`.
//!
//! `{SSHA}`, `{SSHA256}`, `{SSHA512}` are base64(digest(password + salt) + salt); `{SHA}`,
//! `{SHA256}`, `{SHA512}` are base64(digest(password)); `{CRYPT}` is crypt(3) (the forms
//! [`crate::hash`] knows: `$6$`, `$2y$`, argon2); `{ARGON2}` is OpenLDAP's argon2 module
//! (`$argon2i$...` or `$argon2id$...`). A value without a prefix is the password itself,
//! as OpenLDAP treats it.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

use crate::hash::StoredHash;

/// Whether `password` matches the stored `value`; `Err` names a scheme this server cannot
/// check (a configuration problem, not the client's).
pub fn verify(value: &[u8], password: &[u8]) -> Result<bool, String> {
    let Some(rest) = value.strip_prefix(b"{") else {
        return Ok(digest_eq::<Sha256>(value, password, b""));
    };
    let Some(end) = rest.iter().position(|&b| b == b'}') else {
        return Ok(digest_eq::<Sha256>(value, password, b""));
    };
    let scheme = String::from_utf8_lossy(&rest[..end]).to_ascii_uppercase();
    let body = &rest[end + 1..];
    let text = || std::str::from_utf8(body).map_err(|_| format!("{{{scheme}}} value is not text"));
    match scheme.as_str() {
        "SSHA" => salted::<Sha1>(body, password, true),
        "SHA" => salted::<Sha1>(body, password, false),
        "SSHA256" => salted::<Sha256>(body, password, true),
        "SHA256" => salted::<Sha256>(body, password, false),
        "SSHA512" => salted::<Sha512>(body, password, true),
        "SHA512" => salted::<Sha512>(body, password, false),
        "CRYPT" | "ARGON2" => {
            let hash = StoredHash::parse(text()?).map_err(|e| format!("{{{scheme}}}: {e}"))?;
            Ok(hash.verify(password))
        }
        "CLEARTEXT" => Ok(digest_eq::<Sha256>(body, password, b"")),
        other => Err(format!("unsupported userPassword scheme {{{other}}}")),
    }
}

/// `base64(digest(password + salt) [+ salt])`.
fn salted<D: Digest>(body: &[u8], password: &[u8], has_salt: bool) -> Result<bool, String> {
    let raw = STANDARD
        .decode(body)
        .map_err(|_| "userPassword digest is not base64".to_owned())?;
    let size = <D as Digest>::output_size();
    if raw.len() < size || (!has_salt && raw.len() != size) || (has_salt && raw.len() == size) {
        return Err("userPassword digest has the wrong length".to_owned());
    }
    let (digest, salt) = raw.split_at(size);
    let mut d = D::new();
    d.update(password);
    d.update(salt);
    Ok(d.finalize().as_slice().ct_eq(digest).into())
}

/// Constant-time equality of `stored` and `password + salt`, through a digest so the time
/// does not reveal the stored length either.
fn digest_eq<D: Digest>(stored: &[u8], password: &[u8], salt: &[u8]) -> bool {
    let mut d = D::new();
    d.update(password);
    d.update(salt);
    let given = d.finalize();
    D::digest(stored).as_slice().ct_eq(given.as_slice()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made by OpenLDAP 2.5's slappasswd (an independent implementation), password "secret":
    // `slappasswd -s secret -h '{SSHA}'`, `-h '{SHA}'`, `-o module-load=pw-sha2 -h '{SSHA256}'`,
    // `-h '{SSHA512}'`, `-o module-load=argon2 -h '{ARGON2}'`, `-h '{CRYPT}' -c '$6$%.16s'`.
    const VECTORS: [&str; 6] = [
        "{SSHA}RC1a/mxEVye7fOUssPFmev2YTRUOjkC0",
        "{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=",
        "{SSHA256}Wfxo0Xv5J2XgIWc1U35AqU3TWKRzCeX2lVdvYWklxEzTBlMGx6eqyQ==",
        "{SSHA512}NI1D/iyYB4nXQfcqcUuLOvb1Wr0sd3z9pjBjj5/UORfbA/W395PyEHX1M85vv89UGkMvgy7r5kPP2QsJLV3RHeDXutS0ramm",
        "{ARGON2}$argon2i$v=19$m=4096,t=3,p=1$jxM2niADPren9KxFpNMKvA$bKPWuZuWIVg+R6jkPrdHnU0jWIg2rjZsxI/ftEBeLuk",
        "{CRYPT}$6$YMNwVEf8psyd3z2J$.qIhvZg94tYaBr3aoYRXUOVHnkQo6hxmVuOlZoHXmfW312WGGePb7TERzufQx5b4aoYnEfJ53z1sNS2ou7YoQ/",
    ];

    #[test]
    fn slappasswd_vectors() {
        for v in VECTORS {
            assert_eq!(verify(v.as_bytes(), b"secret"), Ok(true), "{v}");
            assert_eq!(verify(v.as_bytes(), b"Secret"), Ok(false), "{v}");
            assert_eq!(verify(v.as_bytes(), b""), Ok(false), "{v}");
        }
        // The scheme name is case-insensitive.
        assert_eq!(
            verify(b"{ssha}RC1a/mxEVye7fOUssPFmev2YTRUOjkC0", b"secret"),
            Ok(true)
        );
    }

    #[test]
    fn cleartext_values() {
        assert_eq!(verify(b"imappw", b"imappw"), Ok(true));
        assert_eq!(verify(b"imappw", b"imappw2"), Ok(false));
        assert_eq!(verify(b"{CLEARTEXT}x", b"x"), Ok(true));
    }

    #[test]
    fn unusable_values_are_errors() {
        assert!(verify(b"{MD5}Xr4ilOzQ4PCOq3aQ0qbuaQ==", b"secret")
            .unwrap_err()
            .contains("{MD5}"));
        assert!(verify(b"{SSHA}not base64!", b"x").is_err());
        // A bare SHA-1 digest has no salt: it is not {SSHA}.
        assert!(verify(b"{SSHA}5en6G6MezRroT3XKqkdPOmY/BfQ=", b"secret").is_err());
        assert!(verify(b"{SHA}RC1a/mxEVye7fOUssPFmev2YTRUOjkC0", b"secret").is_err());
        assert!(verify(b"{CRYPT}abJnggxhB/yWI", b"x").is_err());
    }
}
