//! The SASL mechanisms IMAP clients use: PLAIN (RFC 4616), the obsolete but still common
//! LOGIN, and for OAuth 2.0 bearer tokens OAUTHBEARER (RFC 7628) and Google's XOAUTH2.
//! Pure functions over the client's base64 lines; the IMAP session sends the challenges and
//! reads the responses.
//!
//! The OAuth exchange: the client sends its message (usually as the SASL-IR initial
//! response). If the token is refused, the server sends the error challenge of RFC 7628
//! section 3.2.2 ([`oauth_error_challenge`]), the client answers it with `\x01` (OAUTHBEARER)
//! or an empty line (XOAUTH2), and only then does the server answer the tagged NO.

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

/// Longest base64 OAUTHBEARER or XOAUTH2 response accepted: JWTs from some issuers (with
/// group claims) run to several kilobytes.
pub const MAX_TOKEN_RESPONSE_LEN: usize = 16 * 1024;

/// The mechanisms offered, in the order of the `AUTH=` capabilities: OAUTHBEARER and XOAUTH2
/// only when a backend takes bearer tokens.
pub fn mechanisms(takes_tokens: bool) -> &'static [&'static str] {
    if takes_tokens {
        &["PLAIN", "LOGIN", "OAUTHBEARER", "XOAUTH2"]
    } else {
        &["PLAIN", "LOGIN"]
    }
}

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
    /// PLAIN with an authorization identity other than the user, where none is accepted
    /// ([`parse_plain`]; [`parse_plain_authz`] leaves the decision to the authenticator).
    #[error("authorization identity differs from authentication identity")]
    AuthzidMismatch,
}

/// Decodes one client response line: `*` cancels, `=` is the empty response (RFC 4959's
/// notation for an empty initial response), anything else is base64.
pub fn decode_response(line: &[u8]) -> Result<Vec<u8>, SaslError> {
    decode_response_up_to(line, MAX_RESPONSE_LEN)
}

/// [`decode_response`] for responses up to `max_len` base64 characters (OAuth tokens:
/// [`MAX_TOKEN_RESPONSE_LEN`]).
pub fn decode_response_up_to(line: &[u8], max_len: usize) -> Result<Vec<u8>, SaslError> {
    match line {
        b"*" => Err(SaslError::Cancelled),
        b"=" => Ok(Vec::new()),
        _ if line.len() > max_len => Err(SaslError::BadBase64),
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

/// A PLAIN message with its authorization identity (for master users).
#[derive(Clone, PartialEq, Eq)]
pub struct PlainCredentials {
    /// The user to act as, when the client named one other than itself (non-empty).
    pub authzid: Option<String>,
    /// The authentication identity: whose password this is.
    pub username: String,
    /// The password bytes.
    pub password: Vec<u8>,
}

impl std::fmt::Debug for PlainCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlainCredentials")
            .field("authzid", &self.authzid)
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// Decodes an AUTHENTICATE PLAIN response keeping the authorization identity: whether the
/// user may act as it is for [`crate::Authenticator::login`] to say (master users).
pub fn decode_plain_authz(line: &[u8]) -> Result<PlainCredentials, SaslError> {
    parse_plain_authz(&decode_response(line)?)
}

/// [`decode_plain_authz`] of an already decoded message (a SASL-IR initial response).
pub fn parse_plain_authz(message: &[u8]) -> Result<PlainCredentials, SaslError> {
    let mut fields = message.split(|&b| b == 0);
    let (Some(authzid), Some(authcid), Some(password), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(SaslError::Malformed("PLAIN"));
    };
    let username = username(authcid, "PLAIN")?;
    let authzid = match authzid {
        b"" => None,
        z if z == username.as_bytes() => None,
        z => Some(self::username(z, "PLAIN")?),
    };
    Ok(PlainCredentials {
        authzid,
        username,
        password: password.to_vec(),
    })
}

/// A bearer token sent by OAUTHBEARER or XOAUTH2.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerCredentials {
    /// The user the client says the token is for: OAUTHBEARER's `a=` authorization
    /// identity, XOAUTH2's `user=`.
    pub user: Option<String>,
    /// The token (RFC 6750's b64token).
    pub token: String,
}

impl std::fmt::Debug for BearerCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerCredentials")
            .field("user", &self.user)
            .field("token", &"<hidden>")
            .finish()
    }
}

/// What an OAUTHBEARER client sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OauthBearerMessage {
    /// The client's credentials.
    Token(BearerCredentials),
    /// The lone `\x01` a client sends after the error challenge (RFC 7628 section 3.2.3):
    /// answer NO.
    ErrorAck,
}

/// The value of `auth=`: `Bearer <b64token>` (RFC 6750 section 2.1; the scheme name is
/// case-insensitive).
fn bearer_token(value: &[u8], mechanism: &'static str) -> Result<String, SaslError> {
    let malformed = SaslError::Malformed(mechanism);
    let value = std::str::from_utf8(value).map_err(|_| malformed)?;
    let (scheme, token) = value.split_once(' ').ok_or(malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(malformed);
    }
    let token = token.trim_start_matches(' ');
    let body = token.trim_end_matches('=');
    let b64token = !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        });
    if !b64token {
        return Err(malformed);
    }
    Ok(token.to_owned())
}

/// Undoes the saslname escaping of RFC 5801 (`=2C` is ',', `=3D` is '=').
fn saslname(bytes: &[u8]) -> Result<String, SaslError> {
    let malformed = SaslError::Malformed("OAUTHBEARER");
    let text = std::str::from_utf8(bytes).map_err(|_| malformed)?;
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=2C") | Some("=2c") => out.push(','),
            Some("=3D") | Some("=3d") => out.push('='),
            _ => return Err(malformed),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    if out.is_empty() {
        return Err(malformed);
    }
    Ok(out)
}

/// One `key=value` of an OAUTHBEARER or XOAUTH2 message.
type KvPair<'m> = (&'m [u8], &'m [u8]);

/// Splits `key=value\x01...` pairs; `Err` unless every pair is well-formed.
fn kv_pairs<'m>(body: &'m [u8], mechanism: &'static str) -> Result<Vec<KvPair<'m>>, SaslError> {
    body.split(|&b| b == 0x01)
        .map(|pair| {
            let eq = pair
                .iter()
                .position(|&b| b == b'=')
                .ok_or(SaslError::Malformed(mechanism))?;
            let (key, value) = (&pair[..eq], &pair[eq + 1..]);
            if key.is_empty() || !key.iter().all(u8::is_ascii_alphabetic) {
                return Err(SaslError::Malformed(mechanism));
            }
            Ok((key, value))
        })
        .collect()
}

/// Parses a decoded OAUTHBEARER client response (RFC 7628 section 3.1):
/// `n,a=user@example.com,\x01host=...\x01port=...\x01auth=Bearer <token>\x01\x01`.
/// Channel binding (`p=`) is refused: OAUTHBEARER does not define it.
pub fn parse_oauthbearer(message: &[u8]) -> Result<OauthBearerMessage, SaslError> {
    const M: &str = "OAUTHBEARER";
    if message == b"\x01" {
        return Ok(OauthBearerMessage::ErrorAck);
    }
    let malformed = SaslError::Malformed(M);
    let comma = message.iter().position(|&b| b == b',').ok_or(malformed)?;
    match &message[..comma] {
        b"n" | b"y" => {}
        _ => return Err(malformed),
    }
    let rest = &message[comma + 1..];
    let comma = rest.iter().position(|&b| b == b',').ok_or(malformed)?;
    let user = match &rest[..comma] {
        b"" => None,
        a => Some(saslname(a.strip_prefix(b"a=").ok_or(malformed)?)?),
    };
    let body = rest[comma + 1..]
        .strip_prefix(b"\x01")
        .and_then(|b| b.strip_suffix(b"\x01\x01"))
        .ok_or(malformed)?;
    let mut token = None;
    for (key, value) in kv_pairs(body, M)? {
        if key == b"auth" {
            if token.is_some() {
                return Err(malformed);
            }
            token = Some(bearer_token(value, M)?);
        }
    }
    Ok(OauthBearerMessage::Token(BearerCredentials {
        user,
        token: token.ok_or(malformed)?,
    }))
}

/// Parses a decoded XOAUTH2 client response (Google's format):
/// `user=someone@example.com\x01auth=Bearer <token>\x01\x01`.
pub fn parse_xoauth2(message: &[u8]) -> Result<BearerCredentials, SaslError> {
    const M: &str = "XOAUTH2";
    let malformed = SaslError::Malformed(M);
    let body = message.strip_suffix(b"\x01\x01").ok_or(malformed)?;
    let (mut user, mut token) = (None, None);
    for (key, value) in kv_pairs(body, M)? {
        match key {
            b"user" if user.is_none() => user = Some(username(value, M)?),
            b"auth" if token.is_none() => token = Some(bearer_token(value, M)?),
            _ => return Err(malformed),
        }
    }
    Ok(BearerCredentials {
        user: Some(user.ok_or(malformed)?),
        token: token.ok_or(malformed)?,
    })
}

/// The error challenge of RFC 7628 section 3.2.2, base64-encoded for `+ ...`:
/// `{"status":"invalid_token","schemes":"bearer","scope":"..."}` (scope only if given).
pub fn oauth_error_challenge(status: &str, scope: Option<&str>) -> String {
    let quote = |s: &str| serde_json::Value::from(s).to_string();
    let mut json = format!("{{\"status\":{},\"schemes\":\"bearer\"", quote(status));
    if let Some(scope) = scope {
        json.push_str(&format!(",\"scope\":{}", quote(scope)));
    }
    json.push('}');
    base64::engine::general_purpose::STANDARD.encode(json)
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
    fn plain_keeps_the_authzid_for_master_users() {
        // RFC 4616's second example: Ursel authenticates and asks to act as Kurt.
        let c = decode_plain_authz(b"S3VydAB1c2VyAHBhc3N3b3Jk").unwrap();
        assert_eq!(c.authzid.as_deref(), Some("Kurt"));
        assert_eq!(c.username, "user");
        assert_eq!(c.password, b"password");
        // An authzid equal to the user, or none, is no request to act as anyone.
        assert_eq!(
            decode_plain_authz(&b64(b"tim\0tim\0pw")).unwrap().authzid,
            None
        );
        assert_eq!(
            decode_plain_authz(&b64(b"\0tim\0pw")).unwrap().authzid,
            None
        );
        assert_eq!(
            decode_plain_authz(&b64(b"\xff\0tim\0pw")),
            Err(SaslError::Malformed("PLAIN"))
        );
        assert_eq!(
            decode_plain_authz(&b64(b"a\0b\0c\0d")),
            Err(SaslError::Malformed("PLAIN"))
        );
        assert!(!format!("{c:?}").contains("password\""));
    }

    fn bearer(msg: &[u8]) -> BearerCredentials {
        match parse_oauthbearer(msg).unwrap() {
            OauthBearerMessage::Token(c) => c,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn oauthbearer_rfc7628_example() {
        // RFC 7628 section 4.1, the client's initial response (decoded).
        let msg = b"n,a=user@example.com,\x01host=server.example.com\x01port=143\x01\
                    auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01";
        let c = bearer(msg);
        assert_eq!(c.user.as_deref(), Some("user@example.com"));
        assert_eq!(c.token, "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==");
        // Through base64, as the IMAP line carries it.
        let decoded = decode_response_up_to(&b64(msg), MAX_TOKEN_RESPONSE_LEN).unwrap();
        assert_eq!(bearer(&decoded), c);
        assert!(!format!("{c:?}").contains("vF9d"));
    }

    #[test]
    fn oauthbearer_variants() {
        let c = bearer(b"n,,\x01auth=bearer abc.def-ghi_~+/\x01\x01");
        assert_eq!(c.user, None);
        assert_eq!(c.token, "abc.def-ghi_~+/");
        // saslname escapes.
        let c = bearer(b"y,a=we=2Cird=3Dname,\x01auth=Bearer t\x01\x01");
        assert_eq!(c.user.as_deref(), Some("we,ird=name"));
        assert_eq!(
            parse_oauthbearer(b"\x01").unwrap(),
            OauthBearerMessage::ErrorAck
        );
    }

    #[test]
    fn oauthbearer_malformed() {
        let bad: [&[u8]; 10] = [
            b"",
            b"p=tls-unique,,\x01auth=Bearer t\x01\x01",
            b"n,,auth=Bearer t\x01\x01",
            b"n,,\x01auth=Bearer t\x01",
            b"n,,\x01host=x\x01\x01",
            b"n,,\x01auth=Basic dXNlcjpwdw==\x01\x01",
            b"n,,\x01auth=Bearer \x01\x01",
            b"n,,\x01auth=Bearer a b\x01\x01",
            b"n,u=x,\x01auth=Bearer t\x01\x01",
            b"n,a=x=41,\x01auth=Bearer t\x01\x01",
        ];
        for msg in bad {
            assert_eq!(
                parse_oauthbearer(msg),
                Err(SaslError::Malformed("OAUTHBEARER")),
                "{msg:?}"
            );
        }
        // Two auth= pairs are one too many.
        assert!(parse_oauthbearer(b"n,,\x01auth=Bearer a\x01auth=Bearer b\x01\x01").is_err());
    }

    #[test]
    fn xoauth2_google_format() {
        let c = parse_xoauth2(b"user=someuser@example.com\x01auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg\x01\x01").unwrap();
        assert_eq!(c.user.as_deref(), Some("someuser@example.com"));
        assert_eq!(c.token, "ya29.vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg");
        for bad in [
            &b"auth=Bearer t\x01\x01"[..],
            b"user=a\x01\x01",
            b"user=a\x01auth=Bearer t",
            b"user=a\x01auth=Bearer t\x01other=x\x01\x01",
            b"user=\x01auth=Bearer t\x01\x01",
        ] {
            assert_eq!(
                parse_xoauth2(bad),
                Err(SaslError::Malformed("XOAUTH2")),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn oauth_error_challenge_is_rfc7628_json() {
        let challenge = oauth_error_challenge("invalid_token", Some("openid email"));
        let json = base64::engine::general_purpose::STANDARD
            .decode(challenge)
            .unwrap();
        let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(value["status"], "invalid_token");
        assert_eq!(value["schemes"], "bearer");
        assert_eq!(value["scope"], "openid email");
        let bare = oauth_error_challenge("invalid_token", None);
        let json = base64::engine::general_purpose::STANDARD
            .decode(bare)
            .unwrap();
        assert_eq!(
            std::str::from_utf8(&json).unwrap(),
            r#"{"status":"invalid_token","schemes":"bearer"}"#
        );
    }

    #[test]
    fn token_responses_may_be_long() {
        let long = b64(&[b'a'; 6000]);
        assert!(long.len() > MAX_RESPONSE_LEN);
        assert_eq!(decode_response(&long), Err(SaslError::BadBase64));
        assert_eq!(
            decode_response_up_to(&long, MAX_TOKEN_RESPONSE_LEN)
                .unwrap()
                .len(),
            6000
        );
    }

    #[test]
    fn mechanisms_offered() {
        assert_eq!(mechanisms(false), ["PLAIN", "LOGIN"]);
        assert_eq!(
            mechanisms(true),
            ["PLAIN", "LOGIN", "OAUTHBEARER", "XOAUTH2"]
        );
    }

    #[test]
    fn password_is_not_in_debug_output() {
        let c = decode_plain(&b64(b"\0tim\0hunter2")).unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
