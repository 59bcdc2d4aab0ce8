//! The SASL exchange of AUTHENTICATE (RFC 9051 section 6.2.2) for PLAIN (RFC 4616, with an
//! authorization identity for master users), LOGIN, OAUTHBEARER (RFC 7628) and XOAUTH2, with
//! SASL-IR (RFC 4959) initial responses. The mechanisms' message formats live in
//! `auth::sasl`; this file only moves lines between the client and them.

use crate::commands::login::{self, Attempt};
use crate::session::{Action, Session};
use ringmail_auth::sasl::{self, OauthBearerMessage, SaslError};
use ringmail_auth::LoginError;
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
    let (label, max_len): (&'static str, usize) = match mechanism {
        "PLAIN" => ("PLAIN", sasl::MAX_RESPONSE_LEN),
        "LOGIN" => ("LOGIN", sasl::MAX_RESPONSE_LEN),
        "OAUTHBEARER" => ("OAUTHBEARER", sasl::MAX_TOKEN_RESPONSE_LEN),
        "XOAUTH2" => ("XOAUTH2", sasl::MAX_TOKEN_RESPONSE_LEN),
        _ => {
            session.reply(
                tag,
                &Reply::no("Unsupported mechanism").with_code(Code::Cannot),
            );
            return Action::Continue;
        }
    };
    // The parser bounds the initial response only by the line limit: hold it to the same
    // limit as a response sent after the challenge (base64 is 4/3 of the decoded size).
    if initial.as_ref().is_some_and(|i| i.len() > max_len / 4 * 3) {
        let reply = Reply::bad("Authentication response too long");
        session.reply(tag, &reply.with_code(Code::Limit));
        return Action::Continue;
    }
    let attempt = match label {
        "PLAIN" => plain(session, reader, tag, initial).await,
        "LOGIN" => login_mechanism(session, reader, tag, initial).await,
        _ => bearer(session, reader, tag, label, initial).await,
    };
    let attempt = match attempt {
        Ok(attempt) => attempt,
        Err(Ended::Action(action)) => return action,
        Err(Ended::Sasl(SaslError::Cancelled)) => {
            session.reply(tag, &Reply::bad("Authentication cancelled"));
            return Action::Continue;
        }
        Err(Ended::Sasl(e)) => {
            session.reply(tag, &Reply::bad(format!("Malformed {label} response: {e}")));
            return Action::Continue;
        }
    };
    let shown = attempt.shown_user().to_string();
    let is_bearer = matches!(attempt, Attempt::Bearer { .. });
    let outcome = login::check(session, attempt).await;
    if is_bearer && matches!(outcome, Err(LoginError::InvalidToken(_))) {
        // RFC 7628 section 3.2.2: the failure is a challenge carrying the error; the client
        // answers it (OAUTHBEARER with ^A, XOAUTH2 with an empty line) and only then gets
        // the NO. Whatever it answers, the attempt has failed.
        let error = session.exec.auth.oauth_error_challenge();
        session.out.extend_from_slice(b"+ ");
        session.out.extend_from_slice(error.as_bytes());
        session.out.extend_from_slice(b"\r\n");
        if session.read_line(reader).await.is_none() {
            return Action::Close;
        }
    }
    login::finish(session, tag, outcome, label, &shown).await
}

/// Why the exchange ended before the credential could be checked.
enum Ended {
    /// The client's response was cancelled or malformed: answered BAD.
    Sasl(SaslError),
    /// Already answered (or the connection is gone): what the session loop must do.
    Action(Action),
}

/// PLAIN: `authzid NUL authcid NUL password`. An authorization identity naming someone else
/// is a master user logging in as that user.
async fn plain(
    session: &mut Session,
    reader: &mut CommandReader,
    tag: &str,
    initial: Option<Vec<u8>>,
) -> Result<Attempt, Ended> {
    let creds = match initial {
        Some(message) => sasl::parse_plain_authz(&message),
        None => {
            let line = challenge(session, reader, tag, "")
                .await
                .map_err(Ended::Action)?;
            sasl::decode_plain_authz(&line)
        }
    }
    .map_err(Ended::Sasl)?;
    Ok(Attempt::Password {
        user: creds.username,
        authzid: creds.authzid,
        password: creds.password,
    })
}

/// LOGIN: the user name, then the password, each after its challenge (or the name as the
/// initial response).
async fn login_mechanism(
    session: &mut Session,
    reader: &mut CommandReader,
    tag: &str,
    initial: Option<Vec<u8>>,
) -> Result<Attempt, Ended> {
    let user = match initial {
        Some(user) => user,
        None => {
            let line = challenge(session, reader, tag, sasl::LOGIN_USERNAME_CHALLENGE)
                .await
                .map_err(Ended::Action)?;
            sasl::decode_response(&line).map_err(Ended::Sasl)?
        }
    };
    let line = challenge(session, reader, tag, sasl::LOGIN_PASSWORD_CHALLENGE)
        .await
        .map_err(Ended::Action)?;
    let password = sasl::decode_response(&line).map_err(Ended::Sasl)?;
    Ok(Attempt::Password {
        user: String::from_utf8_lossy(&user).into_owned(),
        authzid: None,
        password,
    })
}

/// OAUTHBEARER or XOAUTH2: one message with the token, usually as the initial response.
async fn bearer(
    session: &mut Session,
    reader: &mut CommandReader,
    tag: &str,
    mechanism: &'static str,
    initial: Option<Vec<u8>>,
) -> Result<Attempt, Ended> {
    let message = match initial {
        Some(message) => message,
        None => {
            let line = challenge(session, reader, tag, "")
                .await
                .map_err(Ended::Action)?;
            sasl::decode_response_up_to(&line, sasl::MAX_TOKEN_RESPONSE_LEN).map_err(Ended::Sasl)?
        }
    };
    let creds = if mechanism == "OAUTHBEARER" {
        match sasl::parse_oauthbearer(&message).map_err(Ended::Sasl)? {
            OauthBearerMessage::Token(creds) => creds,
            // ^A is the answer to an error challenge, not a first message.
            OauthBearerMessage::ErrorAck => {
                return Err(Ended::Sasl(SaslError::Malformed("OAUTHBEARER")))
            }
        }
    } else {
        sasl::parse_xoauth2(&message).map_err(Ended::Sasl)?
    };
    Ok(Attempt::Bearer {
        token: creds.token,
        user: creds.user,
    })
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
