//! The SASL exchange of AUTHENTICATE (RFC 9051 section 6.2.2) for PLAIN (RFC 4616) and LOGIN,
//! with SASL-IR (RFC 4959) initial responses. The mechanisms' message formats live in
//! `auth::sasl`; this file only moves lines between the client and them.

use crate::commands::login;
use crate::session::{Action, Session};
use ringmail_auth::sasl::{self, SaslError};
use ringmail_proto::parser::CommandReader;
use ringmail_proto::response::{Code, Reply};

/// Runs the exchange after `AUTHENTICATE` was accepted by `login::authenticate_start`.
/// `initial` is the SASL-IR response, already base64-decoded by the parser.
pub async fn exchange(
    session: &mut Session,
    reader: &mut CommandReader,
    tag: &str,
    mechanism: &str,
    initial: Option<Vec<u8>>,
) -> Action {
    let credentials = if mechanism == "PLAIN" {
        match initial {
            Some(message) => sasl::parse_plain(&message),
            None => match challenge(session, reader, tag, "").await {
                Ok(line) => sasl::decode_plain(&line),
                Err(action) => return action,
            },
        }
    } else {
        let user = match initial {
            Some(user) => Ok(user),
            None => match challenge(session, reader, tag, sasl::LOGIN_USERNAME_CHALLENGE).await {
                Ok(line) => sasl::decode_response(&line),
                Err(action) => return action,
            },
        };
        match user {
            Ok(user) => {
                match challenge(session, reader, tag, sasl::LOGIN_PASSWORD_CHALLENGE).await {
                    Ok(line) => sasl::decode_response(&line).map(|password| sasl::Credentials {
                        username: String::from_utf8_lossy(&user).into_owned(),
                        password,
                    }),
                    Err(action) => return action,
                }
            }
            Err(e) => Err(e),
        }
    };
    match credentials {
        Ok(creds) => {
            let kind = if mechanism == "PLAIN" {
                "PLAIN"
            } else {
                "LOGIN"
            };
            login::verify(
                session,
                tag,
                creds.username.as_bytes(),
                &creds.password,
                kind,
            )
            .await
        }
        Err(SaslError::Cancelled) => {
            session.reply(tag, &Reply::bad("Authentication cancelled"));
            Action::Continue
        }
        Err(e) => {
            session.reply(
                tag,
                &Reply::bad(format!("Malformed {mechanism} response: {e}")),
            );
            Action::Continue
        }
    }
}

/// Sends `+ challenge` (already base64) and reads the client's response line.
async fn challenge(
    session: &mut Session,
    reader: &mut CommandReader,
    tag: &str,
    challenge: &str,
) -> Result<Vec<u8>, Action> {
    session.writer().continuation(challenge);
    match session.read_line(reader).await {
        Some(Ok(line)) => Ok(line),
        Some(Err(())) => {
            let reply = Reply::bad("Authentication response too long").with_code(Code::Limit);
            session.reply(tag, &reply);
            Err(Action::Continue)
        }
        None => Err(Action::Close),
    }
}
