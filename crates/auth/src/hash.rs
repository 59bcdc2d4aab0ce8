//! Password hashes in Dovecot's `{SCHEME}hash` notation.
//!
//! New passwords are hashed with Argon2id. Hashes made by Dovecot (`doveadm pw`) in
//! SHA512-CRYPT, BLF-CRYPT (bcrypt) and PLAIN are verified too, so a Dovecot passwd-file can be
//! used as it is; `{CRYPT}` with a `$6$` or `$2y$` hash is accepted as Dovecot does.

use std::fmt;

use argon2::password_hash::{
    PasswordHash as PhcString, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AuthError;

/// A password hashing scheme ringmail can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `{ARGON2ID}$argon2id$v=19$m=..,t=..,p=..$salt$hash`: what ringmail writes.
    Argon2id,
    /// `{ARGON2I}$argon2i$...`: Dovecot's other Argon2 scheme, verified for migration.
    Argon2i,
    /// `{SHA512-CRYPT}$6$[rounds=N$]salt$hash` (glibc crypt).
    Sha512Crypt,
    /// `{BLF-CRYPT}$2y$cost$salthash` (bcrypt; `$2a$` and `$2b$` too).
    BlfCrypt,
    /// `{PLAIN}password`: the password itself. Only for migration; never written.
    Plain,
}

impl Scheme {
    /// The scheme's name as written between braces in a passwd-file.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Argon2id => "ARGON2ID",
            Scheme::Argon2i => "ARGON2I",
            Scheme::Sha512Crypt => "SHA512-CRYPT",
            Scheme::BlfCrypt => "BLF-CRYPT",
            Scheme::Plain => "PLAIN",
        }
    }

    /// The crypt(3)-style scheme a `{CRYPT}` (or prefix-less) hash uses, told by its prefix.
    fn of_crypt_hash(hash: &str) -> Option<Scheme> {
        if hash.starts_with("$6$") {
            Some(Scheme::Sha512Crypt)
        } else if ["$2y$", "$2b$", "$2a$"].iter().any(|p| hash.starts_with(p)) {
            Some(Scheme::BlfCrypt)
        } else if hash.starts_with("$argon2id$") {
            Some(Scheme::Argon2id)
        } else if hash.starts_with("$argon2i$") {
            Some(Scheme::Argon2i)
        } else {
            None
        }
    }
}

/// Argon2id cost parameters for new hashes.
///
/// The default follows the OWASP password storage recommendation (19 MiB, 2 passes, 1 lane):
/// about 20-40 ms per login on a current server core, which the auth cache amortises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Cost {
    /// Memory in KiB (`m=`).
    pub memory_kib: u32,
    /// Number of passes (`t=`).
    pub iterations: u32,
    /// Degree of parallelism (`p=`).
    pub parallelism: u32,
}

impl Default for Argon2Cost {
    fn default() -> Self {
        Argon2Cost {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl Argon2Cost {
    /// The cheapest parameters argon2 allows; for tests only, where speed matters and
    /// strength does not.
    pub const MINIMAL: Argon2Cost = Argon2Cost {
        memory_kib: 8,
        iterations: 1,
        parallelism: 1,
    };
}

/// A stored password hash, checked for a known scheme and well-formedness when it was read.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredHash {
    scheme: Scheme,
    /// The text as written in the file, `{SCHEME}` prefix included, so a rewrite keeps it.
    text: String,
    /// Where the scheme-specific part of `text` starts (after the `{...}` prefix, if any).
    body_start: usize,
}

// Hashes are secrets too (PLAIN especially): never print them in logs.
impl fmt::Debug for StoredHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoredHash({{{}}}...)", self.scheme.name())
    }
}

impl StoredHash {
    /// Parses a passwd-file password field such as `{SHA512-CRYPT}$6$...`.
    ///
    /// Scheme names are case-insensitive; a field without `{...}` is taken as `{CRYPT}`, which
    /// is Dovecot's default for passwd-files.
    pub fn parse(field: &str) -> Result<StoredHash, AuthError> {
        let (label, body_start) = match field.strip_prefix('{') {
            Some(rest) => match rest.find('}') {
                Some(end) => (Some(&rest[..end]), end + 2),
                None => return Err(AuthError::BadHash("unterminated {SCHEME} prefix".into())),
            },
            None => (None, 0),
        };
        let body = field.get(body_start..).unwrap_or_default();
        let scheme = match label.map(str::to_ascii_uppercase).as_deref() {
            None | Some("CRYPT") => Scheme::of_crypt_hash(body).ok_or_else(|| {
                AuthError::BadHash(
                    "unsupported crypt hash (only $6$ SHA512-CRYPT, $2y$ bcrypt and argon2)".into(),
                )
            })?,
            Some("ARGON2ID") => Scheme::Argon2id,
            Some("ARGON2I") => Scheme::Argon2i,
            Some("SHA512-CRYPT") => Scheme::Sha512Crypt,
            Some("BLF-CRYPT") => Scheme::BlfCrypt,
            Some("PLAIN") => Scheme::Plain,
            Some(_) => {
                return Err(AuthError::BadHash(format!(
                    "unsupported password scheme {{{}}} (supported: ARGON2ID, ARGON2I, \
                     SHA512-CRYPT, BLF-CRYPT, PLAIN, CRYPT)",
                    label.unwrap_or_default()
                )))
            }
        };
        check_format(scheme, body)?;
        Ok(StoredHash {
            scheme,
            text: field.to_owned(),
            body_start,
        })
    }

    /// The scheme this hash uses.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The field as it is written in the passwd-file.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    fn body(&self) -> &str {
        self.text.get(self.body_start..).unwrap_or_default()
    }

    /// Whether `password` matches. Slow on purpose for Argon2, SHA512-CRYPT and bcrypt:
    /// call it off the executors.
    pub fn verify(&self, password: &[u8]) -> bool {
        let body = self.body();
        match self.scheme {
            Scheme::Argon2id | Scheme::Argon2i => match PhcString::new(body) {
                Ok(phc) => Argon2::default().verify_password(password, &phc).is_ok(),
                Err(_) => false,
            },
            Scheme::Sha512Crypt => sha512_crypt_verify(body, password),
            Scheme::BlfCrypt => bcrypt::verify(password, body).unwrap_or(false),
            Scheme::Plain => {
                // Compare digests, not the passwords, so that the time taken does not even
                // reveal the stored password's length.
                let stored = Sha256::digest(body.as_bytes());
                let given = Sha256::digest(password);
                stored.ct_eq(&given).into()
            }
        }
    }
}

/// Checks the scheme-specific part once when the file is read, so that a typo in the users
/// file is an error at load time rather than a user who can never log in.
fn check_format(scheme: Scheme, body: &str) -> Result<(), AuthError> {
    let bad = |what: &str| {
        Err(AuthError::BadHash(format!(
            "malformed {} hash: {what}",
            scheme.name()
        )))
    };
    match scheme {
        Scheme::Argon2id | Scheme::Argon2i => {
            let phc = match PhcString::new(body) {
                Ok(phc) => phc,
                Err(e) => return bad(&e.to_string()),
            };
            let want = if scheme == Scheme::Argon2id {
                Algorithm::Argon2id
            } else {
                Algorithm::Argon2i
            };
            if phc.algorithm.as_str() != want.ident().as_str() {
                return bad("algorithm does not match the scheme");
            }
            if let Err(e) = Params::try_from(&phc) {
                return bad(&e.to_string());
            }
            if phc.hash.is_none() {
                return bad("no hash output");
            }
            Ok(())
        }
        Scheme::Sha512Crypt => match split_sha512_crypt(body) {
            Some(_) => Ok(()),
            None => bad("expected $6$[rounds=N$]salt$hash"),
        },
        Scheme::BlfCrypt => {
            // $2y$NN$ + 22 characters of salt + 31 of hash.
            let parts: Vec<&str> = body.split('$').collect();
            match parts.as_slice() {
                ["", "2y" | "2b" | "2a", cost, rest]
                    if cost.len() == 2
                        && cost.parse::<u32>().is_ok_and(|c| (4..=31).contains(&c))
                        && rest.len() == 53 =>
                {
                    Ok(())
                }
                _ => bad("expected $2y$NN$ followed by 53 characters"),
            }
        }
        Scheme::Plain => Ok(()),
    }
}

/// The parts of `$6$[rounds=N$]salt$hash`: (rounds, salt, hash).
fn split_sha512_crypt(body: &str) -> Option<(usize, &str, &str)> {
    let rest = body.strip_prefix("$6$")?;
    let (rounds, rest) = match rest.strip_prefix("rounds=") {
        Some(r) => {
            let (n, rest) = r.split_once('$')?;
            if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            // glibc clamps the round count into its allowed range rather than failing.
            let n = n.parse::<usize>().unwrap_or(usize::MAX);
            (n.clamp(1_000, 999_999_999), rest)
        }
        None => (5_000, rest),
    };
    let (salt, hash) = rest.split_once('$')?;
    if hash.len() != 86 || hash.contains('$') {
        return None;
    }
    Some((rounds, salt, hash))
}

fn sha512_crypt_verify(body: &str, password: &[u8]) -> bool {
    let Some((rounds, salt, hash)) = split_sha512_crypt(body) else {
        return false;
    };
    let Ok(params) = sha_crypt::Sha512Params::new(rounds) else {
        return false;
    };
    // The crate's `sha512_check` wants the password as &str; IMAP passwords are bytes.
    match sha_crypt::sha512_crypt_b64(password, salt.as_bytes(), &params) {
        Ok(computed) => computed.as_bytes().ct_eq(hash.as_bytes()).into(),
        Err(_) => false,
    }
}

/// Hashes a new password as `{ARGON2ID}$argon2id$v=19$...` with a fresh random salt.
pub fn hash_new(password: &[u8], cost: Argon2Cost) -> Result<StoredHash, AuthError> {
    let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None)
        .map_err(|e| AuthError::Hashing(e.to_string()))?;
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| AuthError::Hashing(e.to_string()))?;
    let phc = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password, &salt)
        .map_err(|e| AuthError::Hashing(e.to_string()))?;
    StoredHash::parse(&format!("{{ARGON2ID}}{phc}"))
}

/// Parses `stored` and verifies `password` against it; false for a malformed hash.
pub fn verify(stored: &str, password: &[u8]) -> bool {
    StoredHash::parse(stored).is_ok_and(|h| h.verify(password))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Known-answer vectors, each made by an independent implementation:
    // - SHA512-CRYPT: glibc/libxcrypt crypt(3) through Python 3.11's `crypt` module,
    //   `crypt.crypt('secret', '$6$saltsalt$')` etc., and `openssl passwd -6 -salt NaCl0123 hunter2`.
    // - bcrypt: libxcrypt through Python's `crypt`, `crypt.crypt('secret', '$2b$05$abcdefghijklmnopqrstuu')`.
    // - Argon2id: the reference implementation's CLI (Debian package argon2 0~20171227),
    //   `echo -n secret | argon2 somesaltsomesalt -id -m 8 -t 1 -p 1 -e`.
    const SHA512_SECRET: &str = "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1";
    const SHA512_ROUNDS_1000: &str = "$6$rounds=1000$0123456789abcdef$mcCDk6dNL5N0ijt8G9cMeU.2SLHUPRvQks/S0b3xWPKwxC/ouwbeCpt1WQloVhjazWF95X44lzjAj904IpNm1/";
    const SHA512_UTF8: &str = "$6$rounds=5000$exampleSalt$oihBhrAlu.bPa22XF4G5g2fC1UKQX2wARM3z5EyvxTtPtu1uGoKq9vhjZBJ4ujCjIgv1XDkw2Y1X83/Ak0F8V1";
    const SHA512_OPENSSL: &str = "$6$NaCl0123$KE3QbyJ8tlMnkojlp92z6SIEzzrxYG5a52JD5gykYRzc/pi8/syChi6AbkFR6LoZcv6414GANDpo6MURlQdJU/";
    const BCRYPT_2B: &str = "$2b$05$abcdefghijklmnopqrstuuOQiyCxlgf/oeuTqixKmWdcYUh4Hjl0a";
    const BCRYPT_2Y: &str = "$2y$05$abcdefghijklmnopqrstuuOQiyCxlgf/oeuTqixKmWdcYUh4Hjl0a";
    const ARGON2ID_REF: &str =
        "$argon2id$v=19$m=256,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$Q67LRPzAOkEEwwPAZGT3+yOsTKhUts1GfFsCe0UKJLM";

    #[test]
    fn sha512_crypt_vectors_from_glibc_and_openssl() {
        for (hash, pw) in [
            (SHA512_SECRET, "secret"),
            (SHA512_ROUNDS_1000, "secret"),
            (SHA512_UTF8, "pässwörd"),
            (SHA512_OPENSSL, "hunter2"),
        ] {
            let field = format!("{{SHA512-CRYPT}}{hash}");
            assert!(verify(&field, pw.as_bytes()), "{hash}");
            assert!(!verify(&field, b"wrong"), "{hash}");
            // Dovecot's {CRYPT} and a bare crypt string mean the same.
            assert!(verify(&format!("{{CRYPT}}{hash}"), pw.as_bytes()));
            assert!(verify(hash, pw.as_bytes()));
        }
        assert!(!verify(
            &format!("{{SHA512-CRYPT}}{SHA512_SECRET}"),
            b"secreT"
        ));
        assert!(!verify(
            &format!("{{SHA512-CRYPT}}{SHA512_SECRET}"),
            b"secret\0"
        ));
    }

    #[test]
    fn bcrypt_vectors_from_libxcrypt() {
        for hash in [BCRYPT_2B, BCRYPT_2Y] {
            assert!(verify(&format!("{{BLF-CRYPT}}{hash}"), b"secret"));
            assert!(verify(&format!("{{CRYPT}}{hash}"), b"secret"));
            assert!(!verify(&format!("{{BLF-CRYPT}}{hash}"), b"Secret"));
        }
    }

    #[test]
    fn argon2id_vector_from_reference_cli() {
        let field = format!("{{ARGON2ID}}{ARGON2ID_REF}");
        assert!(verify(&field, b"secret"));
        assert!(!verify(&field, b"secret "));
        // The scheme label is case-insensitive, as in Dovecot.
        assert!(verify(&format!("{{argon2id}}{ARGON2ID_REF}"), b"secret"));
    }

    #[test]
    fn plain_compares_whole_password() {
        let h = StoredHash::parse("{PLAIN}hunter2").unwrap();
        assert_eq!(h.scheme(), Scheme::Plain);
        assert!(h.verify(b"hunter2"));
        assert!(!h.verify(b"hunter"));
        assert!(!h.verify(b"hunter22"));
        assert!(!h.verify(b""));
        // A PLAIN password may contain '$' and '{' without confusing the parser.
        assert!(verify("{PLAIN}{a}$6$x", b"{a}$6$x"));
    }

    #[test]
    fn new_hash_is_argon2id_and_verifies() {
        let h = hash_new(b"correct horse", Argon2Cost::MINIMAL).unwrap();
        assert_eq!(h.scheme(), Scheme::Argon2id);
        assert!(
            h.as_str()
                .starts_with("{ARGON2ID}$argon2id$v=19$m=8,t=1,p=1$"),
            "{}",
            h.as_str()
        );
        assert!(h.verify(b"correct horse"));
        assert!(!h.verify(b"correct horsf"));
        // Fresh salt each time.
        let h2 = hash_new(b"correct horse", Argon2Cost::MINIMAL).unwrap();
        assert_ne!(h.as_str(), h2.as_str());
        // It survives a round trip through its text form.
        assert!(verify(h.as_str(), b"correct horse"));
    }

    #[test]
    fn default_cost_is_owasp() {
        let c = Argon2Cost::default();
        assert_eq!((c.memory_kib, c.iterations, c.parallelism), (19456, 2, 1));
    }

    #[test]
    fn non_utf8_password_is_compared_as_bytes() {
        let h = hash_new(&[0xff, 0xfe, b'a'], Argon2Cost::MINIMAL).unwrap();
        assert!(h.verify(&[0xff, 0xfe, b'a']));
        assert!(!h.verify(&[0xff, 0xfe]));
    }

    #[test]
    fn malformed_hashes_are_refused_at_parse() {
        for bad in [
            "{SHA512-CRYPT}$6$salt",
            "{SHA512-CRYPT}$6$salt$short",
            "{SHA512-CRYPT}$5$salt$whatever",
            "{SHA512-CRYPT}$6$rounds=x$salt$hash",
            "{BLF-CRYPT}$2y$05$tooshort",
            "{BLF-CRYPT}$2y$99$abcdefghijklmnopqrstuuOQiyCxlgf/oeuTqixKmWdcYUh4Hjl0a",
            "{ARGON2ID}$argon2i$v=19$m=256,t=1,p=1$c29tZXNhbHQ$aGFzaA",
            "{ARGON2ID}not-a-phc-string",
            "{MD5-CRYPT}$1$abc$def",
            "{CRYPT}abJnggxhB/yWI",
            "plaintext-without-scheme",
            "{PLAIN",
        ] {
            assert!(StoredHash::parse(bad).is_err(), "{bad}");
            assert!(!verify(bad, b"anything"), "{bad}");
        }
    }

    #[test]
    fn debug_does_not_print_the_hash() {
        let h = StoredHash::parse("{PLAIN}topsecret").unwrap();
        assert!(!format!("{h:?}").contains("topsecret"));
    }
}
