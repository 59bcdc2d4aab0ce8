//! LOGIN and the credential check shared with AUTHENTICATE.
//!
//! The backends (passwd-file, LDAP, OAuth) may hash (argon2 costs milliseconds of CPU) or wait
//! on the network, so the check runs on the executor's blocking pool and the core keeps
//! serving other sessions. A failure is answered only after a delay that grows per client
//! address, and too many failures close the connection, whichever backend answered.

use tracing::{info, warn};

use crate::session::{Action, Session};
use ringmail_auth::{Credential, Login, LoginError};
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
    let offered = session.exec.auth.sasl_mechanisms();
    let Some(&label) = offered.iter().find(|m| **m == mechanism) else {
        let reply = Reply::no(format!(
            "Unsupported mechanism: use {}",
            offered.join(" or ")
        ));
        session.reply(tag, &reply.with_code(Code::Cannot));
        return Action::Continue;
    };
    if !session.plaintext_auth_allowed() {
        let reply = Reply::no("Plaintext authentication needs TLS: use STARTTLS or port 993");
        session.reply(tag, &reply.with_code(Code::PrivacyRequired));
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

/// A credential as the session holds it while the backends check it off the executor.
pub enum Attempt {
    /// LOGIN, AUTHENTICATE PLAIN or LOGIN. `user` may be `target*master`; `authzid` is
    /// PLAIN's authorization identity (a master logging in as that user).
    Password {
        /// The authentication identity as sent.
        user: String,
        /// PLAIN's authorization identity, when it names someone else.
        authzid: Option<String>,
        /// The password bytes.
        password: Vec<u8>,
    },
    /// OAUTHBEARER or XOAUTH2.
    Bearer {
        /// The token.
        token: String,
        /// The user the client says the token is for.
        user: Option<String>,
    },
}

impl Attempt {
    /// The credential as the backends take it.
    fn credential(&self) -> Credential<'_> {
        match self {
            Attempt::Password {
                user,
                authzid,
                password,
            } => Credential::Password {
                user,
                authzid: authzid.as_deref(),
                password,
            },
            Attempt::Bearer { token, user } => Credential::Bearer {
                token,
                user: user.as_deref(),
            },
        }
    }

    /// The name to log for a failed attempt (never the password or token).
    pub fn shown_user(&self) -> &str {
        match self {
            Attempt::Password { user, .. } => user,
            Attempt::Bearer { user, .. } => user.as_deref().unwrap_or("(token)"),
        }
    }
}

/// Checks a credential through the configured backends (passwd-file, LDAP, OAuth) off the
/// executor: a hash on its blocking pool, a directory search or a key-set fetch on the
/// lookup threads (`ringmail_runtime::login`). Every backend bounds its own waits.
pub async fn check(session: &Session, attempt: Attempt) -> Result<Login, LoginError> {
    ringmail_runtime::login::check(&session.exec.auth, attempt, Attempt::credential).await
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
    let Ok(user) = std::str::from_utf8(user) else {
        let shown = String::from_utf8_lossy(user).into_owned();
        return finish(
            session,
            tag,
            Err(LoginError::UnknownUser),
            mechanism,
            &shown,
        )
        .await;
    };
    let attempt = Attempt::Password {
        user: user.to_string(),
        authzid: None,
        password: password.to_vec(),
    };
    let outcome = check(session, attempt).await;
    finish(session, tag, outcome, mechanism, user).await
}

/// Answers a checked login: logged in, or the tagged NO with the RFC 5530 code the failure
/// calls for. Failures the client is to blame for (not a directory that is down) count for
/// the per-address delay and the per-connection limit, whichever backend answered.
pub async fn finish(
    session: &mut Session,
    tag: &str,
    outcome: Result<Login, LoginError>,
    mechanism: &'static str,
    shown_user: &str,
) -> Action {
    let error = match outcome {
        Ok(login) => {
            session
                .exec
                .metrics
                .borrow_mut()
                .login(mechanism, "ok", login.cache_hit);
            let client = session.conn.peer;
            match &login.master {
                Some(master) => info!(
                    user = %login.user, master = %master, backend = login.backend,
                    client = %client, mechanism, result = "ok", "master user login"
                ),
                None => info!(
                    user = %login.user, backend = login.backend, client = %client, mechanism,
                    result = "ok", "login"
                ),
            }
            return Action::LoggedIn {
                user: login.user,
                storage_quota: login.quota_bytes,
                tag: tag.to_string(),
            };
        }
        Err(error) => error,
    };
    session
        .exec
        .metrics
        .borrow_mut()
        .login(mechanism, error.label(), false);
    let detail = match &error {
        LoginError::InvalidToken(why) | LoginError::Unavailable(why) => why.as_str(),
        _ => "",
    };
    if !error.counts_as_failure() {
        // Nobody's guess: no delay, not counted; the client may retry at once.
        warn!(
            user = %shown_user, client = %session.conn.peer, mechanism, result = "failed",
            reason = error.label(), detail, "login"
        );
        let reply = Reply::no("The user directory cannot answer now; try again later");
        session.reply(tag, &reply.with_code(Code::Unavailable));
        return Action::Continue;
    }
    session.login_failures += 1;
    let delay = session.failure_delay();
    info!(
        user = %shown_user,
        client = %session.conn.peer,
        mechanism,
        result = "failed",
        reason = error.label(),
        detail,
        delay_ms = delay.as_millis() as u64,
        "login"
    );
    glommio::timer::sleep(delay).await;
    let max = session.exec.config().imap.max_login_failures;
    let reply = match error {
        LoginError::Disabled => Reply::no("Account disabled").with_code(Code::ContactAdmin),
        LoginError::NotAuthorized => {
            Reply::no("Not allowed to log in as that user").with_code(Code::AuthorizationFailed)
        }
        _ => Reply::no("Authentication failed").with_code(Code::AuthenticationFailed),
    };
    session.reply(tag, &reply);
    if session.login_failures >= max {
        session.meter.end("too many login failures");
        session.send(&StatusResponse::bye("Too many authentication failures"));
        return Action::Close;
    }
    Action::Continue
}
