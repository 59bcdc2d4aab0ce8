//! The SASL exchange of AUTHENTICATE (RFC 9051 section 6.2.2) for PLAIN (RFC 4616) and LOGIN,
//! with SASL-IR (RFC 4959) initial responses.

use base64::Engine;

use crate::auth::sasl;
use crate::imap::commands::login;
use crate::imap::parser::CommandReader;
use crate::imap::session::{Action, Session};

/// Runs the exchange after `AUTHENTICATE` was accepted by `login::authenticate_start`.
pub async fn exchange(
    session: &mut Session,
    reader: &mut CommandReader,
    tag: &str,
    mechanism: &str,
    initial: Option<Vec<u8>>,
) -> Action {
    match mechanism {
        "PLAIN" => {
            let message = match initial {
                Some(message) => message,
                None => match response(session, reader, tag, b"").await {
                    Ok(message) => message,
                    Err(action) => return action,
                },
            };
            match sasl::decode_plain(&message) {
                Ok(creds) => {
                    login::verify(session, tag, creds.authcid.as_bytes(), &creds.password, "PLAIN")
                        .await
                }
                Err(e) => {
                    session.tagged(tag, "BAD", &format!("Malformed PLAIN response: {e}"));
                    Action::Continue
                }
            }
        }
        _ => {
            let user = match initial {
                Some(user) => user,
                None => match response(session, reader, tag, sasl::LOGIN_USER_PROMPT).await {
                    Ok(user) => user,
                    Err(action) => return action,
                },
            };
            let password = match response(session, reader, tag, sasl::LOGIN_PASSWORD_PROMPT).await {
                Ok(password) => password,
                Err(action) => return action,
            };
            login::verify(session, tag, &user, &password, "LOGIN").await
        }
    }
}

/// Sends a `+ challenge` and reads the client's base64 line. `*` cancels (RFC 9051).
async fn response(
    session: &mut Session,
    reader: &mut CommandReader,
    tag: &str,
    challenge: &[u8],
) -> Result<Vec<u8>, Action> {
    session.out.extend_from_slice(b"+ ");
    session
        .out
        .extend_from_slice(base64::engine::general_purpose::STANDARD.encode(challenge).as_bytes());
    session.out.extend_from_slice(b"\r\n");
    let line = match session.read_line(reader).await {
        Some(Ok(line)) => line,
        Some(Err(())) => {
            session.tagged(tag, "BAD", "[LIMIT] Authentication response too long");
            return Err(Action::Continue);
        }
        None => return Err(Action::Close),
    };
    if line == b"*" {
        session.tagged(tag, "BAD", "Authentication cancelled");
        return Err(Action::Continue);
    }
    base64::engine::general_purpose::STANDARD
        .decode(&line)
        .map_err(|_| {
            session.tagged(tag, "BAD", "Authentication response is not base64");
            Action::Continue
        })
}
