//! [`Authenticator`] for ManageSieve sessions: the same users, backends, failure delays and
//! limits as IMAP LOGIN.
//!
//! The check (argon2, a directory) blocks, so it runs on the executor's blocking thread as
//! IMAP's does. A failure waits out the delay the login throttle gives the client's
//! address, and `[imap] max_login_failures` failures end the session. A login counts
//! against `[limits] max_sessions_per_user_ip` on the executor that owns the user, where
//! IMAP counts its sessions, so the two protocols share the limit; and it releases the
//! connection's `max_preauth_per_ip` slot.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::Instant;

use ringmail_auth::{Credential, LoginError};
use ringmail_metrics::{SessionMeter, SessionState};
use ringmail_runtime::admission::{PreauthSlot, UserSessionSlot};
use ringmail_runtime::route::{self, OwnerJob};
use ringmail_runtime::runtime::Executor;
use tracing::info;

use crate::auth::{AfterFailure, Authenticator, Verdict};

/// The label of ManageSieve logins in `ringmail_logins_total`.
const METRICS_LABEL: &str = "MANAGESIEVE";

/// The password check of one connection.
pub struct Login {
    exec: Rc<Executor>,
    client: IpAddr,
    meter: Rc<RefCell<SessionMeter>>,
    failures: Cell<u32>,
    /// Counts the connection against `max_preauth_per_ip` until a login succeeds.
    preauth: RefCell<Option<PreauthSlot>>,
    /// The session's count in `max_sessions_per_user_ip`, held on the owner.
    user_session: RefCell<Option<OwnerSlot>>,
    /// Set once a login succeeded (the idle timeout of a logged-in session applies).
    pub logged_in: Rc<Cell<bool>>,
}

impl Login {
    pub fn new(
        exec: Rc<Executor>,
        client: IpAddr,
        meter: Rc<RefCell<SessionMeter>>,
        preauth: Option<PreauthSlot>,
    ) -> Login {
        Login {
            exec,
            client,
            meter,
            failures: Cell::new(0),
            preauth: RefCell::new(preauth),
            user_session: RefCell::new(None),
            logged_in: Rc::new(Cell::new(false)),
        }
    }
}

impl Login {
    /// The session ended: its count in `max_sessions_per_user_ip` goes back to the owner.
    pub async fn end(&self) {
        let slot = self.user_session.borrow_mut().take();
        if let Some(slot) = slot {
            slot.release().await;
        }
    }
}

impl Authenticator for Login {
    async fn verify(&self, user: &str, password: &[u8], authzid: Option<&str>) -> Verdict {
        let attempt = (
            user.to_string(),
            authzid.map(str::to_string),
            password.to_vec(),
        );
        let outcome = ringmail_runtime::login::check(
            &self.exec.auth,
            attempt,
            |(user, authzid, password)| Credential::Password {
                user,
                authzid: authzid.as_deref(),
                password,
            },
        )
        .await;
        let login = match outcome {
            Ok(login) => login,
            Err(e) => {
                self.exec
                    .metrics
                    .borrow_mut()
                    .login(METRICS_LABEL, e.label(), false);
                info!(user, client = %self.client, mechanism = METRICS_LABEL, result = "failed", reason = e.label(), "login");
                return match e {
                    LoginError::Unavailable(_) => Verdict::Unavailable,
                    _ => Verdict::BadCredentials,
                };
            }
        };
        let limit = self.exec.config().limits.max_sessions_per_user_ip;
        let Some(slot) = OwnerSlot::take(&self.exec, &login.user, self.client, limit).await else {
            self.meter.borrow().rejected("sessions_per_user_ip");
            info!(user = %login.user, client = %self.client, limit, "login refused: too many sessions");
            return Verdict::Refused(format!(
                "Maximum number of sessions from user+IP exceeded ([limits] max_sessions_per_user_ip = {limit})"
            ));
        };
        self.exec
            .metrics
            .borrow_mut()
            .login(METRICS_LABEL, "ok", login.cache_hit);
        info!(user = %login.user, master = ?login.master, client = %self.client, mechanism = METRICS_LABEL, result = "ok", "login");
        // A second login (after UNAUTHENTICATE) gives the first slot back.
        let earlier = self.user_session.borrow_mut().replace(slot);
        if let Some(earlier) = earlier {
            earlier.release().await;
        }
        self.preauth.borrow_mut().take();
        self.logged_in.set(true);
        self.meter
            .borrow_mut()
            .set_state(SessionState::Authenticated);
        tracing::Span::current().record("user", login.user.as_str());
        Verdict::Ok(login.user)
    }

    async fn failed(&self) -> AfterFailure {
        let failures = self.failures.get() + 1;
        self.failures.set(failures);
        let delay = self
            .exec
            .throttle
            .borrow_mut()
            .record_failure(self.client, Instant::now());
        glommio::timer::sleep(delay).await;
        if failures >= self.exec.config().imap.max_login_failures {
            self.meter.borrow_mut().end("too many login failures");
            AfterFailure::Disconnect
        } else {
            AfterFailure::Continue
        }
    }
}

thread_local! {
    /// Session slots this executor holds for ManageSieve sessions running elsewhere, by
    /// token (the slot itself cannot leave its executor).
    static HELD: RefCell<HashMap<u64, UserSessionSlot>> = RefCell::new(HashMap::new());
    static NEXT_TOKEN: Cell<u64> = const { Cell::new(0) };
}

/// A session counted in the owner's `user_sessions`, released when dropped.
struct OwnerSlot {
    exec: Rc<Executor>,
    owner: usize,
    token: u64,
}

impl OwnerSlot {
    async fn take(exec: &Rc<Executor>, user: &str, ip: IpAddr, limit: usize) -> Option<OwnerSlot> {
        let owner = exec.owner_of(user);
        let job = TakeSlot {
            user: user.to_string(),
            ip,
            limit,
        };
        // An owner that is stopping counts nothing; the session is ending anyway.
        let token = route::ask(exec, owner, job).await.ok()??;
        Some(OwnerSlot {
            exec: exec.clone(),
            owner,
            token,
        })
    }
}

impl OwnerSlot {
    /// Gives the slot back on the owner.
    async fn release(mut self) {
        let token = std::mem::take(&mut self.token);
        let _ = route::tell(&self.exec, self.owner, ReleaseSlot { token }).await;
    }
}

impl Drop for OwnerSlot {
    /// A slot not released by the session's end (a panic in the session, a second login):
    /// the release travels in a task of its own, as Drop cannot wait. At shutdown the
    /// counts no longer matter and no task may start.
    fn drop(&mut self) {
        if self.token == 0 || self.exec.is_shutting_down() {
            return;
        }
        let (exec, owner, token) = (self.exec.clone(), self.owner, self.token);
        let sent = self.exec.spawn_task(async move {
            let _ = route::tell(&exec, owner, ReleaseSlot { token }).await;
        });
        if !sent {
            tracing::debug!("session slot not released: shutting down");
        }
    }
}

struct TakeSlot {
    user: String,
    ip: IpAddr,
    limit: usize,
}

impl OwnerJob for TakeSlot {
    type Answer = Option<u64>;

    async fn run(self, exec: Rc<Executor>) -> Option<u64> {
        let slot = exec
            .user_sessions
            .try_take(&self.user, self.ip, self.limit)?;
        let token = NEXT_TOKEN.with(|n| {
            n.set(n.get() + 1);
            n.get()
        });
        HELD.with(|h| h.borrow_mut().insert(token, slot));
        Some(token)
    }
}

struct ReleaseSlot {
    token: u64,
}

impl OwnerJob for ReleaseSlot {
    type Answer = ();

    async fn run(self, _exec: Rc<Executor>) {
        let slot = HELD.with(|h| h.borrow_mut().remove(&self.token));
        drop(slot);
    }
}
