//! Checking passwords, which the server does (users file, auth cache, throttling), and
//! the two SASL mechanisms offered: PLAIN (RFC 4616) and LOGIN. The base64 decoding and
//! the LOGIN exchange are ringmail-auth's, shared with IMAP.

use ringmail_auth::sasl::{self, SaslError};

/// The answer to a login attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The password is right; the canonical user name (what the scripts are stored under
    /// and OWNER shows).
    Ok(String),
    /// Wrong user or password (answered alike, so names cannot be probed).
    BadCredentials,
    /// The check could not be made now (answered NO (TRYLATER)).
    Unavailable,
    /// The credentials are right but the login is refused by a limit (too many sessions);
    /// the text, for the user, goes with the NO. Not a failed attempt.
    Refused(String),
}

/// What to do after a failed login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Answer NO and let the client try again.
    Continue,
    /// Answer NO and hang up (BYE): too many failures.
    Disconnect,
}

/// The server's password check and login throttle.
#[allow(async_fn_in_trait)]
pub trait Authenticator {
    /// Checks `user`'s password. `authzid` is the identity a PLAIN client asked to act as,
    /// when it gave one other than `user` (ringmail has no master users: refuse it).
    async fn verify(&self, user: &str, password: &[u8], authzid: Option<&str>) -> Verdict;

    /// Called after each failed attempt, before the NO goes out: the place to wait out the
    /// client's failure delay (it grows with the failures from the client's address).
    async fn failed(&self) -> AfterFailure;
}

/// Credentials sent by a client.
pub(crate) struct Login {
    pub user: String,
    pub password: Vec<u8>,
    pub authzid: Option<String>,
}

/// Splits a decoded PLAIN message, `authzid NUL authcid NUL password`. An authzid equal to
/// the user is as good as none.
pub(crate) fn plain(message: &[u8]) -> Result<Login, SaslError> {
    let mut fields = message.split(|&b| b == 0);
    let (Some(authzid), Some(authcid), Some(password), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(SaslError::Malformed("PLAIN"));
    };
    let user = match std::str::from_utf8(authcid) {
        Ok(u) if !u.is_empty() => u.to_string(),
        _ => return Err(SaslError::Malformed("PLAIN")),
    };
    let authzid = std::str::from_utf8(authzid).map_err(|_| SaslError::Malformed("PLAIN"))?;
    Ok(Login {
        authzid: (!authzid.is_empty() && authzid != user).then(|| authzid.to_string()),
        user,
        password: password.to_vec(),
    })
}

/// Decodes one client response (a string: base64, or `*` to cancel).
pub(crate) fn decode(response: &[u8]) -> Result<Vec<u8>, SaslError> {
    sasl::decode_response(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_fields() {
        let l = plain(b"\0tim\0tanstaaftanstaaf").unwrap();
        assert_eq!(
            (l.user.as_str(), l.password.as_slice()),
            ("tim", &b"tanstaaftanstaaf"[..])
        );
        assert_eq!(l.authzid, None);
        assert_eq!(plain(b"tim\0tim\0pw").unwrap().authzid, None);
        assert_eq!(
            plain(b"Kurt\0Ursel\0pw").unwrap().authzid.as_deref(),
            Some("Kurt")
        );
        for bad in [&b"\0tim"[..], b"\0\0pw", b"a\0b\0c\0d", b"\0\xff\0pw"] {
            assert!(plain(bad).is_err(), "{bad:?}");
        }
        assert_eq!(decode(b"*").err(), Some(SaslError::Cancelled));
    }
}
