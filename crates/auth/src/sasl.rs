//! The SASL mechanisms IMAP clients use to send a password: PLAIN (RFC 4616) and the
//! obsolete but still common LOGIN. Pure functions over the client's base64 lines; the IMAP
//! session sends the challenges and reads the responses.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;

/// Base64 as RFC 4648 says, but indifferent to missing padding, which some clients omit.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Longest base64 response accepted: RFC 4616 limits each PLAIN field to 255 bytes, so
/// anything longer is not a credential and is refused before decoding.
pub const MAX_RESPONSE_LEN: usize = 2048;

/// The LOGIN mechanism's first challenge, base64 of "Username:".
pub const LOGIN_USERNAME_CHALLENGE: &str = "VXNlcm5hbWU6";
/// The LOGIN mechanism's second challenge, base64 of "Password:".
pub const LOGIN_PASSWORD_CHALLENGE: &str = "UGFzc3dvcmQ6";

/// Why a SASL exchange failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    /// The client sent `*` (RFC 9051: the exchange is cancelled, answer BAD).
    #[error("authentication cancelled")]
    Cancelled,
    /// Not base64, or longer than [`MAX_RESPONSE_LEN`].
    #[error("invalid base64")]
    BadBase64,
    /// Base64 that does not decode to a valid message for the mechanism.
    #[error("malformed {0} message")]
    Malformed(&'static str),
    /// PLAIN with an authorization identity other than the user: ringmail has no master
    /// users, so nobody may act as somebody else.
    #[error("authorization identity differs from authentication identity")]
    AuthzidMismatch,
}

/// Decodes one client response line: `*` cancels, `=` is the empty response (RFC 4959's
/// notation for an empty initial response), anything else is base64.
pub fn decode_response(line: &[u8]) -> Result<Vec<u8>, SaslError> {
    match line {
        b"*" => Err(SaslError::Cancelled),
        b"=" => Ok(Vec::new()),
        _ if line.len() > MAX_RESPONSE_LEN => Err(SaslError::BadBase64),
        _ => BASE64.decode(line).map_err(|_| SaslError::BadBase64),
    }
}

/// A user name and password sent by a client.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name as the client sent it (not yet lowercased).
    pub username: String,
    /// The password bytes; IMAP does not promise UTF-8.
    pub password: Vec<u8>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .finish()
    }
}

fn username(bytes: &[u8], mechanism: &'static str) -> Result<String, SaslError> {
    match std::str::from_utf8(bytes) {
        Ok(name) if !name.is_empty() => Ok(name.to_owned()),
        _ => Err(SaslError::Malformed(mechanism)),
    }
}

/// Decodes an AUTHENTICATE PLAIN response, `base64(authzid NUL authcid NUL passwd)`.
///
/// The authzid must be empty or equal to the authcid.
pub fn decode_plain(line: &[u8]) -> Result<Credentials, SaslError> {
    parse_plain(&decode_response(line)?)
}

/// Splits an already base64-decoded PLAIN message (`authzid NUL authcid NUL password`), as a
/// SASL-IR initial response arrives from the command parser.
pub fn parse_plain(message: &[u8]) -> Result<Credentials, SaslError> {
    let mut fields = message.split(|&b| b == 0);
    let (Some(authzid), Some(authcid), Some(password), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(SaslError::Malformed("PLAIN"));
    };
    let authcid = username(authcid, "PLAIN")?;
    if !authzid.is_empty() && authzid != authcid.as_bytes() {
        return Err(SaslError::AuthzidMismatch);
    }
    Ok(Credentials {
        username: authcid,
        password: password.to_vec(),
    })
}

/// What the server does next in an exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginStep {
    /// Send `+ <challenge>` and feed the client's next line to [`LoginExchange::respond`].
    Challenge(&'static str),
    /// The client has sent both; verify them.
    Done(Credentials),
}

/// The state of an AUTHENTICATE LOGIN exchange: username, then password, each in base64.
#[derive(Debug, Clone, Default)]
pub struct LoginExchange {
    username: Option<String>,
}

impl LoginExchange {
    /// Starts the exchange. `initial_response` is the SASL-IR argument if the client sent one
    /// (for LOGIN it carries the user name).
    pub fn start(initial_response: Option<&[u8]>) -> Result<(LoginExchange, LoginStep), SaslError> {
        let mut exchange = LoginExchange::default();
        let step = match initial_response {
            None => LoginStep::Challenge(LOGIN_USERNAME_CHALLENGE),
            Some(line) => exchange.respond(line)?,
        };
        Ok((exchange, step))
    }

    /// Feeds the client's response to the last challenge.
    pub fn respond(&mut self, line: &[u8]) -> Result<LoginStep, SaslError> {
        let data = decode_response(line)?;
        match self.username.take() {
            None => {
                self.username = Some(username(&data, "LOGIN")?);
                Ok(LoginStep::Challenge(LOGIN_PASSWORD_CHALLENGE))
            }
            Some(username) => Ok(LoginStep::Done(Credentials {
                username,
                password: data,
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &[u8]) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .encode(s)
            .into_bytes()
    }

    #[test]
    fn plain_without_authzid() {
        // RFC 4616 section 4's example: "\0tim\0tanstaaftanstaaf".
        let c = decode_plain(b"AHRpbQB0YW5zdGFhZnRhbnN0YWFm").unwrap();
        assert_eq!(c.username, "tim");
        assert_eq!(c.password, b"tanstaaftanstaaf");
    }

    #[test]
    fn plain_with_same_authzid() {
        let c = decode_plain(&b64(b"tim\0tim\0pw")).unwrap();
        assert_eq!(c.username, "tim");
        assert_eq!(c.password, b"pw");
    }

    #[test]
    fn plain_rejects_other_authzid() {
        // RFC 4616's second example: Ursel acting as Kurt.
        assert_eq!(
            decode_plain(b"S3VydAB1c2VyAHBhc3N3b3Jk"),
            Err(SaslError::AuthzidMismatch)
        );
    }

    #[test]
    fn plain_malformed() {
        for bad in [&b"\0tim"[..], b"tim", b"\0\0pw", b"a\0b\0c\0d", b""] {
            assert_eq!(
                decode_plain(&b64(bad)),
                Err(SaslError::Malformed("PLAIN")),
                "{bad:?}"
            );
        }
        assert_eq!(
            decode_plain(&b64(b"\0\xff\0pw")),
            Err(SaslError::Malformed("PLAIN"))
        );
        assert_eq!(decode_plain(b"not base64!"), Err(SaslError::BadBase64));
        assert_eq!(decode_plain(b"*"), Err(SaslError::Cancelled));
        assert_eq!(decode_plain(b"="), Err(SaslError::Malformed("PLAIN")));
        assert_eq!(
            decode_plain(&vec![b'A'; MAX_RESPONSE_LEN + 4]),
            Err(SaslError::BadBase64)
        );
    }

    #[test]
    fn unpadded_base64_accepted() {
        // "\0tim\0pw" is 8 bytes: its base64 ends in "=" which some clients leave off.
        let padded = b64(b"\0tim\0pw");
        assert!(padded.ends_with(b"="));
        let unpadded: Vec<u8> = padded.iter().copied().filter(|&b| b != b'=').collect();
        assert_eq!(decode_plain(&unpadded).unwrap().username, "tim");
    }

    #[test]
    fn login_two_steps() {
        let (mut ex, step) = LoginExchange::start(None).unwrap();
        assert_eq!(step, LoginStep::Challenge("VXNlcm5hbWU6"));
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode("VXNlcm5hbWU6")
                .unwrap(),
            b"Username:"
        );
        assert_eq!(
            ex.respond(&b64(b"alice")).unwrap(),
            LoginStep::Challenge("UGFzc3dvcmQ6")
        );
        match ex.respond(&b64(b"s3cret")).unwrap() {
            LoginStep::Done(c) => {
                assert_eq!(c.username, "alice");
                assert_eq!(c.password, b"s3cret");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn login_with_initial_response_and_cancel() {
        let (mut ex, step) = LoginExchange::start(Some(&b64(b"bob"))).unwrap();
        assert_eq!(step, LoginStep::Challenge(LOGIN_PASSWORD_CHALLENGE));
        assert_eq!(ex.respond(b"*"), Err(SaslError::Cancelled));
        assert!(LoginExchange::start(Some(b"=")).is_err(), "empty user name");
    }

    #[test]
    fn password_is_not_in_debug_output() {
        let c = decode_plain(&b64(b"\0tim\0hunter2")).unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
