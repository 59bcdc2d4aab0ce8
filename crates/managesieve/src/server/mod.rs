//! The ManageSieve listener of the server: what `src/services.rs` hands the runtime for
//! `[managesieve] listen`.
//!
//! Any executor accepts a connection and runs its whole session, as LMTP does: the session
//! is small and its script operations are owner jobs on the user's partition
//! ([`scripts`]), so no hand-over is needed after login. Admission is IMAP's: the
//! executor's share of `[limits] max_connections`, `max_preauth_per_ip` until login (not for
//! `[imap] secure_networks`, which may also log in without TLS), and
//! `max_sessions_per_user_ip` after it ([`login`]). STARTTLS uses the `[tls]` certificate.
//! A client silent for `[managesieve] idle_timeout_secs` (before login: at most IMAP's
//! unauthenticated timeout) is sent BYE.
//!
//! Behind a load balancer it is IMAP's too: a peer in `[proxy] trusted_networks` must open
//! with a PROXY v1/v2 header, whose source address is then the client that the limits,
//! throttling and logs see; any other peer that sends one is sent BYE. Each command is
//! counted and timed in `ringmail_managesieve_commands_total` and
//! `ringmail_managesieve_command_duration_seconds`.

mod login;
mod scripts;

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures_lite::future;
use ringmail_config::Config;
use ringmail_metrics::{Listener, SessionMeter};
use ringmail_runtime::admission::PreauthSlot;
use ringmail_runtime::conn::{from_trusted_proxy, untrusted_proxy_header, Conn};
use ringmail_runtime::runtime::Executor;
use ringmail_sieve::Limits;
use tracing::{debug, info, Instrument};

pub use login::Login;
pub use scripts::PartitionScripts;

use crate::options::{MailPolicy, Options};
use crate::response::{write_response, Code, Status};
use crate::session::{Exit, Security, Session};
use crate::transport::Transport;

/// The sieve limits `[sieve]` configures, within what the store keeps.
pub fn limits(config: &Config) -> Limits {
    let sieve = &config.sieve;
    Limits {
        max_script_size: sieve.max_script_size.min(ringmail_store::MAX_SCRIPT_SIZE),
        max_redirects: sieve.max_redirects,
        max_actions: sieve.max_actions,
        max_steps: sieve.max_steps,
        ..Limits::default()
    }
}

/// Which mail-sending actions scripts may use: all of them with `[sieve] submission`;
/// without it, reject only (it is answered in the LMTP reply).
pub fn mail_policy(config: &Config) -> MailPolicy {
    MailPolicy {
        relay: !config.sieve.submission.is_empty(),
        reject_by_reply: true,
    }
}

/// The session options `config` gives.
pub fn options(config: &Config, starttls: bool) -> Options {
    Options {
        starttls,
        limits: limits(config),
        max_scripts: config.sieve.max_scripts.min(ringmail_store::MAX_SCRIPTS),
        mail: mail_policy(config),
        ..Options::default()
    }
}

/// Starts a session for a freshly accepted connection (the `TcpService` entry point).
pub fn start(exec: Rc<Executor>, conn: Conn) {
    let Some(slot) = exec.admit(true) else {
        exec.metrics.borrow_mut().rejected("connections");
        spawn(
            &exec,
            refuse(
                conn,
                "The server is at its connection limit ([limits] max_connections), try again later.",
            ),
        );
        return;
    };
    let config = exec.config();
    let trusted_proxy = from_trusted_proxy(&config, conn.peer);
    // A trusted proxy's own address is not the client's: the per-address limit applies to
    // the address its PROXY header names, once that is read.
    let preauth = if trusted_proxy {
        None
    } else {
        match take_preauth(&exec, conn.peer.ip()) {
            Ok(preauth) => preauth,
            Err(why) => {
                spawn(&exec, async move { refuse(conn, &why).await });
                return;
            }
        }
    };
    let id = exec.new_session_id();
    let span =
        tracing::info_span!("managesieve", id, client = %conn.peer, user = tracing::field::Empty);
    let task = {
        let exec = exec.clone();
        async move {
            let _slot = slot;
            let meter = Rc::new(RefCell::new(SessionMeter::new(
                exec.metrics.clone(),
                Listener::ManageSieve,
            )));
            let (mut conn, mut preauth, mut pending) = (conn, preauth, Vec::new());
            if trusted_proxy {
                match conn.read_proxy_header(config.idle_unauth()).await {
                    Ok(rest) => pending = rest,
                    Err(why) => {
                        info!("closing: {why}");
                        meter.borrow_mut().end("bad proxy header");
                        conn.close().await;
                        return;
                    }
                }
                tracing::Span::current().record("client", tracing::field::display(conn.peer));
                match take_preauth(&exec, conn.peer.ip()) {
                    Ok(client) => preauth = client,
                    Err(why) => {
                        meter.borrow_mut().end("connection limit");
                        refuse(conn, &why).await;
                        return;
                    }
                }
            }
            let client = conn.peer.ip().to_canonical();
            let secure_network = config.imap.is_secure_network(client);
            let tls = exec.tls();
            let options = Arc::new(options(&config, tls.is_some()));
            let login = Login::new(exec.clone(), client, meter.clone(), preauth);
            let scripts = PartitionScripts::new(exec.clone(), options.max_scripts);
            let mut wire = Wire {
                conn,
                exec: exec.clone(),
                meter: meter.clone(),
                logged_in: login.logged_in.clone(),
                idle: Duration::from_secs(config.managesieve.idle_timeout_secs),
                idle_unauth: config
                    .idle_unauth()
                    .min(Duration::from_secs(config.managesieve.idle_timeout_secs)),
                ended: Cell::new(None),
                pending,
                first_input: !trusted_proxy,
            };
            let mut session = Session::new(
                options,
                Security {
                    tls: false,
                    secure_network,
                },
            );
            let end = loop {
                match session.run(&mut wire, &login, &scripts).await {
                    Ok(Exit::StartTls) => {
                        let Some(tls) = tls.clone() else {
                            break "no tls config";
                        };
                        let handshake =
                            future::or(async { wire.conn.start_tls(tls).await.map(Some) }, async {
                                glommio::timer::sleep(wire.idle_unauth).await;
                                Ok(None)
                            });
                        match handshake.await {
                            Ok(Some(())) => session.tls_started(),
                            Ok(None) => break "tls handshake timed out",
                            Err(e) => {
                                debug!("TLS handshake failed: {e}");
                                break "tls handshake failed";
                            }
                        }
                    }
                    Ok(Exit::Logout) => break "logout",
                    Ok(Exit::Closed) => break "closed",
                    Ok(Exit::Bye) => break "bye",
                    Err(e) => {
                        let Some(why) = wire.ended.get() else {
                            debug!("connection failed: {e}");
                            break "connection error";
                        };
                        let (code, text) = match why {
                            Ended::Idle => (None, "Disconnected for inactivity."),
                            Ended::Shutdown => (Some(Code::TryLater), "Server shutting down."),
                            Ended::ProxyRefused => {
                                info!("refused a PROXY header from an untrusted address");
                                (None, "PROXY protocol header refused: not a trusted proxy.")
                            }
                        };
                        let mut bye = Vec::new();
                        write_response(&mut bye, Status::Bye, code.as_ref(), text);
                        let _ = wire.conn.write_all(&bye).await;
                        break why.label();
                    }
                }
            };
            info!(
                user = session.user().unwrap_or(""),
                end, "managesieve session ended"
            );
            meter.borrow_mut().end(end);
            wire.conn.close().await;
            login.end().await;
        }
    };
    spawn(&exec, task.instrument(span));
}

/// The connection's slot in `[limits] max_preauth_per_ip` for `client` (see
/// `Executor::take_preauth`), or why it is refused.
fn take_preauth(exec: &Executor, client: std::net::IpAddr) -> Result<Option<PreauthSlot>, String> {
    exec.take_preauth(client).map_err(|limit| {
        format!(
            "Too many connections from your address that have not logged in yet ([limits] max_preauth_per_ip = {limit})."
        )
    })
}

/// Tells a connection over a limit why, and closes it.
async fn refuse(mut conn: Conn, why: &str) {
    let mut bye = Vec::new();
    write_response(&mut bye, Status::Bye, Some(&Code::TryLater), why);
    let _ = conn.write_all(&bye).await;
    conn.close().await;
}

fn spawn(exec: &Executor, task: impl std::future::Future<Output = ()> + 'static) {
    if !exec.spawn_task(task) {
        debug!("not starting a ManageSieve session: shutting down");
    }
}

/// Why reading stopped, other than the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    Idle,
    Shutdown,
    /// A peer outside `[proxy] trusted_networks` opened with a PROXY header.
    ProxyRefused,
}

impl Ended {
    fn label(self) -> &'static str {
        match self {
            Ended::Idle => "idle timeout",
            Ended::Shutdown => "shutdown",
            Ended::ProxyRefused => "untrusted proxy header",
        }
    }
}

/// The connection as the session's [`Transport`]: reads race the idle timeout and the
/// server's shutdown; bytes are counted in the session's metrics.
struct Wire {
    conn: Conn,
    exec: Rc<Executor>,
    meter: Rc<RefCell<SessionMeter>>,
    logged_in: Rc<Cell<bool>>,
    idle: Duration,
    idle_unauth: Duration,
    ended: Cell<Option<Ended>>,
    /// Bytes the client sent right after the PROXY header, read before the session's.
    pending: Vec<u8>,
    /// Nothing has been read yet from a peer that is no trusted proxy: its first bytes
    /// must not be a PROXY header.
    first_input: bool,
}

impl Transport for Wire {
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.pending.is_empty() {
            let n = buf.len().min(self.pending.len());
            buf[..n].copy_from_slice(&self.pending[..n]);
            self.pending.drain(..n);
            self.meter.borrow_mut().read(n);
            return Ok(n);
        }
        let idle = if self.logged_in.get() {
            self.idle
        } else {
            self.idle_unauth
        };
        let exec = self.exec.clone();
        let stopped = async {
            future::or(
                async {
                    glommio::timer::sleep(idle).await;
                    Ended::Idle
                },
                async {
                    exec.shutting_down().await;
                    Ended::Shutdown
                },
            )
            .await
        };
        let read = future::or(async { Ok(self.conn.read(buf).await) }, async {
            Err(stopped.await)
        })
        .await;
        match read {
            Ok(n) => {
                let n = n?;
                if std::mem::take(&mut self.first_input) && untrusted_proxy_header(&buf[..n]) {
                    self.ended.set(Some(Ended::ProxyRefused));
                    return Err(io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        Ended::ProxyRefused.label(),
                    ));
                }
                self.meter.borrow_mut().read(n);
                Ok(n)
            }
            Err(why) => {
                self.ended.set(Some(why));
                Err(io::Error::new(io::ErrorKind::TimedOut, why.label()))
            }
        }
    }

    async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.conn.write_all(data).await?;
        self.meter.borrow_mut().wrote(data.len());
        Ok(())
    }

    fn command_started(&mut self, name: &'static str) {
        self.meter.borrow_mut().command_started(name);
    }

    fn command_ended(&mut self, status: &'static str) {
        self.meter.borrow_mut().tagged(status);
    }
}
