//! LOGIN and the credential check shared with AUTHENTICATE.
//!
//! Password hashing (argon2) costs milliseconds of CPU, so it runs on the executor's blocking
//! thread and the core keeps serving other sessions. A failure is answered only after a delay
//! that grows per client address, and too many failures close the connection.

use tracing::info;

use crate::session::{Action, Session};
use ringmail_auth::AuthResult;
use ringmail_proto::response::{Code, Reply, StatusResponse};

/// `LOGIN user password`
pub async fn run(session: &mut Session, tag: &str, user: &[u8], password: &[u8]) -> Action {
    if !session.plaintext_auth_allowed() {
        let reply = Reply::no("Plaintext login needs TLS: use STARTTLS or port 993");
        session.reply(tag, &reply.with_code(Code::PrivacyRequired));
        session
            .exec
            .metrics
            .borrow_mut()
            .login("LOGIN", "plaintext_refused", false);
        return Action::Continue;
    }
    verify(session, tag, user, password, "LOGIN").await
}

/// `AUTHENTICATE mech [initial]`: checks the mechanism, then the session loop runs the SASL
/// exchange (it needs the command reader for the client's responses).
pub fn authenticate_start(
    session: &mut Session,
    tag: &str,
    mechanism: &str,
    initial: Option<Vec<u8>>,
) -> Action {
    let mechanism = mechanism.to_ascii_uppercase();
    if mechanism != "PLAIN" && mechanism != "LOGIN" {
        let reply = Reply::no("Unsupported mechanism: use PLAIN or LOGIN");
        session.reply(tag, &reply.with_code(Code::Cannot));
        return Action::Continue;
    }
    if !session.plaintext_auth_allowed() {
        let reply = Reply::no("Plaintext authentication needs TLS: use STARTTLS or port 993");
        session.reply(tag, &reply.with_code(Code::PrivacyRequired));
        let label = if mechanism == "PLAIN" {
            "PLAIN"
        } else {
            "LOGIN"
        };
        session
            .exec
            .metrics
            .borrow_mut()
            .login(label, "plaintext_refused", false);
        return Action::Continue;
    }
    Action::Authenticate {
        tag: tag.to_string(),
        mechanism,
        initial,
    }
}

/// The tagged OK of a login, with the capabilities of the logged-in state (written by the
/// executor that owns the user, once it has admitted the session).
pub fn logged_in_reply(session: &mut Session, tag: &str) {
    let caps = crate::commands::capability::list(session);
    session.reply(
        tag,
        &Reply::ok("Logged in").with_code(Code::Capability(caps)),
    );
}

/// Checks credentials. On success the session loop takes over ([`Action::LoggedIn`]) and the
/// tagged OK is written once the session is admitted; a failure is answered here.
pub async fn verify(
    session: &mut Session,
    tag: &str,
    user: &[u8],
    password: &[u8],
    mechanism: &'static str,
) -> Action {
    let outcome = match std::str::from_utf8(user) {
        Ok(name) => {
            let auth = session.exec.auth.clone();
            let name = name.to_string();
            let password = password.to_vec();
            glommio::executor()
                .spawn_blocking(move || auth.verify(&name, &password))
                .await
        }
        Err(_) => AuthResult::UnknownUser,
    };
    let shown_user = String::from_utf8_lossy(user);
    match outcome {
        AuthResult::Ok { user, cache_hit } => {
            session
                .exec
                .metrics
                .borrow_mut()
                .login(mechanism, "ok", cache_hit);
            info!(user = %user, client = %session.conn.peer, mechanism, result = "ok", "login");
            Action::LoggedIn {
                user,
                tag: tag.to_string(),
            }
        }
        failed => {
            session.login_failures += 1;
            let delay = session.failure_delay();
            let (reason, label) = match failed {
                AuthResult::UnknownUser => ("unknown user", "unknown_user"),
                _ => ("wrong password", "wrong_password"),
            };
            session
                .exec
                .metrics
                .borrow_mut()
                .login(mechanism, label, false);
            info!(
                user = %shown_user,
                client = %session.conn.peer,
                mechanism,
                result = "failed",
                reason,
                delay_ms = delay.as_millis() as u64,
                "login"
            );
            glommio::timer::sleep(delay).await;
            let max = session.exec.config().imap.max_login_failures;
            let reply = Reply::no("Authentication failed").with_code(Code::AuthenticationFailed);
            session.reply(tag, &reply);
            if session.login_failures >= max {
                session.meter.end("too many login failures");
                session.send(&StatusResponse::bye("Too many authentication failures"));
                return Action::Close;
            }
            Action::Continue
        }
    }
}
