//! One IMAP session: the RFC 9051 state machine over a connection.
//!
//! The session owns its connection and output buffer; the command reader lives beside it as a
//! local of [`Session::serve`] because a parsed command borrows the reader's buffer while the
//! command runs. A command that must touch the reader or the connection itself (STARTTLS,
//! AUTHENTICATE, a hand-over after login, LOGOUT) returns an [`Action`] that `serve` carries
//! out once the command's borrow has ended.

use std::net::IpAddr;
use std::rc::Rc;
use std::time::Duration;

use futures_lite::future;
use tracing::{debug, info, Instrument};

use crate::buffers;
use crate::commands;
use crate::selected::Selected;
use ringmail_metrics::trace::ProtocolTrace;
use ringmail_metrics::{Listener, MeterCarry, SessionMeter, SessionState};
use ringmail_proto::parser::{Command, CommandReader, Limits, Next, RejectKind, Rejection};
use ringmail_proto::response::{Code, Reply, Response, ResponseWriter, StatusResponse};
use ringmail_runtime::admission::{PreauthSlot, UserSessionSlot};
use ringmail_runtime::conn::{Conn, ConnParts};
use ringmail_runtime::route::{self, OwnerJob};
use ringmail_runtime::runtime::{ConnSlot, Executor};
use ringmail_store::{Partition, StoreError};

/// Consecutive BAD commands after which the connection is closed (a client this confused, or
/// something that is not an IMAP client, will not recover).
const MAX_BAD_COMMANDS: u32 = 20;

/// Extensions a client turned on with ENABLE; they travel with the session on a hand-over.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Enabled {
    /// `ENABLE IMAP4rev2`
    pub imap4rev2: bool,
    /// `ENABLE UTF8=ACCEPT`
    pub utf8_accept: bool,
    /// `ENABLE CONDSTORE` (RFC 7162), or implied by a CONDSTORE-using command.
    pub condstore: bool,
    /// `ENABLE QRESYNC` (RFC 7162): expunges are announced as VANISHED.
    pub qresync: bool,
}

impl Enabled {
    /// The session's UTF-8 mode (RFC 6855, RFC 9051): mailbox names and quoted strings may
    /// be UTF-8. Decided here only; every response the session writes follows it.
    pub fn utf8(self) -> bool {
        self.utf8_accept || self.imap4rev2
    }
}

/// Where in RFC 9051's state diagram the session is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Before LOGIN / AUTHENTICATE.
    NotAuthenticated,
    /// Logged in as this (canonical) user.
    Authenticated {
        /// The user name as the users file spells it.
        user: String,
    },
}

/// What the session carries to another executor besides the connection and unread bytes.
#[derive(Debug, Clone)]
pub struct SessionCarry {
    /// Session id (for logs).
    pub id: u64,
    /// The logged-in user.
    pub user: String,
    /// The storage quota the user's directory entry names, applied when the owner opens
    /// the user's mail.
    pub storage_quota: Option<u64>,
    /// ENABLEd extensions.
    pub enabled: Enabled,
    /// The session's metrics totals so far.
    pub meter: MeterCarry,
    /// The tag of the LOGIN or AUTHENTICATE whose tagged reply the owner executor writes,
    /// once it has counted the session against `max_sessions_per_user_ip`.
    pub login_tag: String,
}

/// Something `serve` must do after a command because it needs the reader or the connection.
pub enum Action {
    /// Nothing more; read the next command.
    Continue,
    /// Close the connection (after LOGOUT's responses, or a fatal error).
    Close,
    /// STARTTLS was answered OK: drop pipelined plaintext and start the handshake.
    StartTls,
    /// AUTHENTICATE needs client responses.
    Authenticate {
        /// The command's tag.
        tag: String,
        /// Mechanism, upper-cased.
        mechanism: String,
        /// SASL-IR initial response.
        initial: Option<Vec<u8>>,
    },
    /// IDLE was accepted: wait for changes and DONE.
    Idle {
        /// The command's tag.
        tag: String,
    },
    /// Credentials verified; the session now belongs to this user. The tagged reply is not
    /// written yet: the executor that owns the user decides between OK and `NO [LIMIT]`.
    LoggedIn {
        /// Canonical user name.
        user: String,
        /// The storage quota the backend named (an LDAP attribute), if any.
        storage_quota: Option<u64>,
        /// The LOGIN's or AUTHENTICATE's tag.
        tag: String,
    },
}

/// Where a session goes after its credentials were accepted.
enum AfterLogin {
    /// It runs on here (this executor owns the user and counted the session).
    Stay,
    /// To the owner executor, which writes the tagged reply for this tag.
    HandOver(String),
    /// Refused by `max_sessions_per_user_ip`: the NO is written; close the connection.
    Refused,
    /// To the node serving the user (a cluster), which writes the tagged reply for this tag.
    Proxy(String, ringmail_runtime::nodes::Remote),
}

/// The per-connection state that commands read and change.
pub struct Session {
    /// The executor this session runs on.
    pub exec: Rc<Executor>,
    /// The client connection.
    pub conn: Conn,
    /// Responses waiting to be written.
    pub out: Vec<u8>,
    /// Session id, unique in the process.
    pub id: u64,
    /// RFC 9051 state.
    pub state: State,
    /// ENABLEd extensions.
    pub enabled: Enabled,
    /// Failed logins on this connection.
    pub login_failures: u32,
    bad_commands: u32,
    seen_input: bool,
    /// The user's store partition, opened on first use after login.
    mail: Option<Rc<Partition>>,
    /// Opening the partition found it moved to another node (a login that reached this node
    /// in the moment of a move's switch): the session ends after the command's reply, and
    /// the client's reconnect is routed to the new owner.
    moved_away: bool,
    /// The storage quota the login's backend named; it becomes the store's limit when the
    /// partition is opened.
    pub(crate) storage_quota: Option<u64>,
    /// The selected mailbox, if any.
    pub selected: Option<Selected>,
    /// UIDs saved by `SEARCH RETURN (SAVE)` for `$` (RFC 5182).
    pub saved_search: Vec<u32>,
    /// Modseqs this session's own STOREs produced since the last sync: their FETCH responses
    /// were already sent (or suppressed by .SILENT), so sync does not repeat them.
    pub own_modseqs: Vec<u64>,
    /// This session's share of the executor's metrics; logs the disconnect line when dropped.
    pub meter: SessionMeter,
    /// The protocol trace, when the user's is switched on (see `metrics::trace`).
    trace: Option<ProtocolTrace>,
    /// The executor's reload count when the trace switch was last checked.
    trace_checked: Option<u64>,
    _slot: ConnSlot,
    /// Counts this connection against `max_preauth_per_ip` until login (None for secure
    /// networks, and after login).
    preauth: Option<PreauthSlot>,
    /// Counts this session against `max_sessions_per_user_ip` once logged in.
    user_session: Option<UserSessionSlot>,
}

/// Starts a session for a freshly accepted connection.
pub fn accept(exec: Rc<Executor>, conn: Conn, implicit_tls: bool) {
    let trusted_proxy = ringmail_runtime::conn::from_trusted_proxy(&exec.config(), conn.peer);
    let Some(slot) = exec.admit(true) else {
        exec.metrics.borrow_mut().rejected("connections");
        let bye = StatusResponse::bye(
            "The server is at its connection limit ([limits] max_connections), try again later",
        )
        .with_code(Code::Unavailable);
        spawn_session(&exec, refuse_over_limit(conn, implicit_tls, bye.to_bytes()));
        return;
    };
    // A trusted proxy's own address is not the client's: the per-address limit applies to
    // the address its PROXY header names, once that is read.
    let preauth = if trusted_proxy {
        None
    } else {
        match take_preauth(&exec, conn.peer.ip()) {
            Ok(preauth) => preauth,
            Err(bye) => {
                spawn_session(&exec, refuse_over_limit(conn, implicit_tls, bye));
                return;
            }
        }
    };
    let id = exec.new_session_id();
    let span =
        tracing::info_span!("session", id, client = %conn.peer, user = tracing::field::Empty);
    let listener = if implicit_tls {
        Listener::Imaps
    } else {
        Listener::Imap
    };
    let opening = Opening {
        exec: exec.clone(),
        conn,
        slot,
        preauth,
        trusted_proxy,
        implicit_tls,
        id,
        listener,
    };
    let task = async move {
        // The steps a session takes once (PROXY header, TLS handshake) run boxed and are
        // freed when done: inline, their futures would stay part of the session's task for
        // its whole life, idle or not. The same holds for every rarely taken await in
        // `serve` (see there). Memory per IDLE session: docs/tuning.md.
        if let Some((session, reader)) = Box::pin(opening.open()).await {
            Box::new(session).serve(reader).await;
        }
    };
    spawn_session(&exec, task.instrument(span));
}

/// A logged-in session on its way to the executor that owns its user: the socket (dup()ed),
/// the TLS session, every byte read but not yet parsed, and the session's own state.
pub struct Handover {
    /// Socket and TLS state.
    conn: ConnParts,
    /// Bytes the client pipelined after its login command.
    unread: Vec<u8>,
    /// Session state.
    carry: SessionCarry,
}

impl OwnerJob for Handover {
    type Answer = ();

    /// Continues the session on its owner; the job lasts as long as the session.
    fn run(self, exec: Rc<Executor>) -> impl std::future::Future<Output = ()> + 'static {
        adopt(exec, self)
    }
}

/// A freshly accepted connection on its way to the greeting.
struct Opening {
    exec: Rc<Executor>,
    conn: Conn,
    slot: ConnSlot,
    preauth: Option<PreauthSlot>,
    trusted_proxy: bool,
    implicit_tls: bool,
    id: u64,
    listener: Listener,
}

impl Opening {
    /// Reads a trusted proxy's header, completes implicit TLS and greets the client: the
    /// session, ready for its first command, or None when the connection was closed.
    async fn open(self) -> Option<(Session, CommandReader)> {
        let Opening {
            exec,
            mut conn,
            slot,
            mut preauth,
            trusted_proxy,
            implicit_tls,
            id,
            listener,
        } = self;
        let mut meter = SessionMeter::new(exec.metrics.clone(), listener);
        let mut reader = CommandReader::new(reader_limits(&exec));
        if trusted_proxy {
            match conn.read_proxy_header(exec.config().idle_unauth()).await {
                Ok(rest) => reader.feed(&rest),
                Err(why) => {
                    info!("closing: {why}");
                    meter.end("bad proxy header");
                    conn.close().await;
                    return None;
                }
            }
            tracing::Span::current().record("client", conn.peer.to_string());
            // Now the real client is known: count it, and apply its limit.
            match take_preauth(&exec, conn.peer.ip()) {
                Ok(client) => preauth = client,
                Err(bye) => {
                    meter.end("connection limit");
                    refuse_over_limit(conn, implicit_tls, bye).await;
                    return None;
                }
            }
        }
        if implicit_tls {
            // What came with the PROXY header is the TLS handshake, not IMAP.
            conn.set_early_ciphertext(reader.take_unread());
            let config = exec.tls()?;
            let handshake = glommio::timer::timeout(exec.config().idle_unauth(), async {
                conn.start_tls(config).await.map_err(Into::into)
            });
            if let Err(e) = handshake.await {
                debug!("TLS handshake failed: {e}");
                meter.end("tls handshake failed");
                conn.close().await;
                return None;
            }
        }
        let mut session = Session::new(exec, conn, id, State::NotAuthenticated, slot, meter);
        session.preauth = preauth;
        commands::capability::greeting(&mut session);
        Some((session, reader))
    }
}

/// Continues a session handed over by another executor after login.
fn adopt(exec: Rc<Executor>, handover: Handover) -> impl std::future::Future<Output = ()> {
    let Handover {
        conn,
        unread,
        carry,
    } = handover;
    let slot = exec.admit(false);
    let span =
        tracing::info_span!("session", id = carry.id, client = %conn.peer, user = %carry.user);
    async move {
        let Some(slot) = slot else { return };
        let mut reader = CommandReader::new(reader_limits(&exec));
        reader.feed(&unread);
        drop(unread);
        let meter = SessionMeter::adopted(exec.metrics.clone(), carry.meter);
        let state = State::Authenticated { user: carry.user };
        let mut session = Session::new(exec, Conn::from_parts(conn), carry.id, state, slot, meter);
        session.enabled = carry.enabled;
        session.storage_quota = carry.storage_quota;
        session.seen_input = true;
        debug!("session adopted");
        if !session.start_user_session(&carry.login_tag) {
            let _ = session.flush().await;
            session.conn.close().await;
            return;
        }
        Box::new(session).serve(reader).await;
    }
    .instrument(span)
}

/// Continues, on the executor owning the user, a session another node proxied here
/// (see `node_proxy`): logged in, with `pipelined` read first and `tag`'s reply still due.
pub(crate) fn adopt_from_node(
    exec: Rc<Executor>,
    conn: Conn,
    user: String,
    tag: String,
    enabled: Enabled,
    storage_quota: Option<u64>,
    pipelined: Vec<u8>,
) {
    let carry = SessionCarry {
        id: exec.new_session_id(),
        user,
        storage_quota,
        enabled,
        meter: SessionMeter::new(exec.metrics.clone(), Listener::Imap).hand_over(),
        login_tag: tag,
    };
    let owner = exec.owner_of(&carry.user);
    let conn = match conn.into_parts() {
        Ok(parts) => parts,
        Err(e) => {
            info!("proxied session lost: {e}");
            return;
        }
    };
    let handover = Handover {
        conn,
        unread: pipelined,
        carry,
    };
    glommio::spawn_local(async move {
        if route::tell(&exec, owner, handover).await.is_err() {
            info!("proxied session refused: the owner executor is stopping");
        }
    })
    .detach();
}

/// Counts a new connection from `ip` against `max_preauth_per_ip`: Ok(None) when the address
/// is in `[imap] secure_networks` (not limited), Err with the BYE line when over the limit.
fn take_preauth(exec: &Executor, ip: IpAddr) -> Result<Option<PreauthSlot>, Vec<u8>> {
    exec.take_preauth(ip).map_err(|limit| {
        StatusResponse::bye(format!(
            "Too many connections from your address that have not logged in yet \
             ([limits] max_preauth_per_ip = {limit})"
        ))
        .with_code(Code::Unavailable)
        .to_bytes()
    })
}

/// Says goodbye to a connection over a limit with `bye` (in plaintext only: a TLS client
/// would not read it before the handshake).
async fn refuse_over_limit(mut conn: Conn, implicit_tls: bool, bye: Vec<u8>) {
    debug!(client = %conn.peer, "connection limit reached");
    if !implicit_tls {
        let _ = conn.write_all(&bye).await;
    }
    conn.close().await;
}

/// Runs a session task in the executor's gate; see `Executor::spawn_task`.
fn spawn_session(exec: &Executor, task: impl std::future::Future<Output = ()> + 'static) {
    if !exec.spawn_task(task) {
        debug!("not starting a session: shutting down");
    }
}

fn reader_limits(exec: &Executor) -> Limits {
    let config = exec.config();
    Limits {
        max_line: config.limits.max_line,
        max_literal: config.limits.max_literal,
        max_depth: config.limits.max_depth,
        max_literals: config.limits.max_literals,
    }
}

// Client addresses are the runtime's: LMTP and the admin socket count them the same way.
pub use ringmail_runtime::conn::canonical_ip;

/// How a read from the client ended.
pub enum ReadOutcome {
    /// Bytes were fed to the reader.
    Data,
    /// The first bytes of an untrusted connection were a PROXY header.
    ProxyRefused,
    /// The client closed the connection (or it failed).
    Closed,
    /// The client was silent past the idle limit.
    IdleTimeout,
    /// The server is shutting down.
    Shutdown,
    /// The session's partition was handed to another node by a live move.
    Moved,
}

/// The goodbye of a session whose partition moved to another node: the client reconnects
/// and the balancer's node proxies it to the new owner.
pub fn moved_bye() -> StatusResponse {
    StatusResponse::bye("This mailbox moved to another server, please reconnect")
        .with_code(Code::Unavailable)
}

impl Session {
    fn new(
        exec: Rc<Executor>,
        conn: Conn,
        id: u64,
        state: State,
        slot: ConnSlot,
        meter: SessionMeter,
    ) -> Session {
        Session {
            exec,
            conn,
            out: Vec::new(),
            id,
            state,
            enabled: Enabled::default(),
            login_failures: 0,
            bad_commands: 0,
            seen_input: false,
            mail: None,
            moved_away: false,
            storage_quota: None,
            selected: None,
            saved_search: Vec::new(),
            own_modseqs: Vec::new(),
            meter,
            trace: None,
            trace_checked: None,
            _slot: slot,
            preauth: None,
            user_session: None,
        }
    }

    /// The user, once logged in.
    pub fn user(&self) -> Option<&str> {
        match &self.state {
            State::Authenticated { user } => Some(user),
            State::NotAuthenticated => None,
        }
    }

    /// The user's partition if this session has opened it.
    pub fn opened_mail(&self) -> Option<Rc<Partition>> {
        self.mail.clone()
    }

    /// The logged-in user's store partition. The first call in a session opens it and, for a
    /// user the store has never seen, creates INBOX and the special-use mailboxes.
    pub async fn mail(&mut self) -> Result<(Rc<Partition>, String), StoreError> {
        let user = self
            .user()
            .ok_or(StoreError::NotPermitted("not logged in"))?
            .to_string();
        if let Some(mail) = &self.mail {
            return Ok((mail.clone(), user));
        }
        let config = self.exec.config();
        let p = ringmail_runtime::partition::partition_of(&user, config.storage.partitions);
        let mail = self
            .exec
            .store
            .user(p, &user, &config, self.storage_quota)
            .await
            .inspect_err(|e| self.moved_away = matches!(e, StoreError::Moved))?;
        self.mail = Some(mail.clone());
        Ok((mail, user))
    }

    /// Whether LOGIN and plaintext SASL are allowed now: over TLS, or from a network the
    /// config calls secure (loopback by default).
    pub fn plaintext_auth_allowed(&self) -> bool {
        self.conn.is_tls()
            || self
                .exec
                .config()
                .imap
                .is_secure_network(canonical_ip(self.conn.peer.ip()))
    }

    /// A writer appending to the session's output in the session's UTF-8 mode: how
    /// responses without a type of their own (FETCH items, continuations) are written.
    pub fn writer(&mut self) -> ResponseWriter<'_> {
        ResponseWriter::new(&mut self.out, self.enabled.utf8())
    }

    /// Appends the tagged reply that completes command `tag`.
    pub fn reply(&mut self, tag: &str, reply: &Reply) {
        self.meter.tagged(reply.status.as_str());
        reply.serialize(tag, &mut self.writer());
    }

    /// Appends an untagged response.
    pub fn send(&mut self, response: &impl Response) {
        response.serialize(&mut self.writer());
    }

    /// Writes pending responses now (long FETCHes, IDLE updates).
    pub async fn flush_out(&mut self) -> std::io::Result<()> {
        self.flush().await
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        self.meter.wrote(self.out.len());
        if let Some(trace) = &mut self.trace {
            trace.server(&self.out);
        }
        let result = self.conn.write_all(&self.out).await;
        // The capacity is kept while a command runs (a long FETCH flushes many times) and
        // released before waiting for the client (`read_more`).
        self.out.clear();
        result
    }

    /// Reads from the client into `reader`, bounded by the idle limit and cut short by
    /// shutdown.
    pub async fn read_more(&mut self, reader: &mut CommandReader) -> ReadOutcome {
        let idle = match self.state {
            State::NotAuthenticated => self.exec.config().idle_unauth(),
            State::Authenticated { .. } => self.exec.config().idle_auth(),
        };
        self.read_more_within(reader, idle).await
    }

    /// [`Session::read_more`] allowing the client `idle` of silence (IDLE counts the silence
    /// from the IDLE command on, across its wake-ups).
    pub async fn read_more_within(
        &mut self,
        reader: &mut CommandReader,
        idle: Duration,
    ) -> ReadOutcome {
        // Waiting for the client may take minutes: hold no output buffer meanwhile.
        if self.out.is_empty() && self.out.capacity() > 0 {
            buffers::give_back_response(std::mem::take(&mut self.out));
        }
        let exec = self.exec.clone();
        let first_input = !std::mem::replace(&mut self.seen_input, true);
        if self.moved_away {
            self.meter.end("partition moved");
            return ReadOutcome::Moved;
        }
        let moved = self.mail.as_ref().map(|mail| mail.handed_over());
        let conn = &mut self.conn;
        let (meter, trace, trace_checked) =
            (&mut self.meter, &mut self.trace, &mut self.trace_checked);
        let user = match &self.state {
            State::Authenticated { user } => Some(user.as_str()),
            State::NotAuthenticated => None,
        };
        let id = self.id;
        let read = async {
            match conn.readable().await {
                Ok(true) => {}
                Ok(false) | Err(_) => return ReadOutcome::Closed,
            }
            let mut buf = buffers::take_read();
            let outcome = match conn.read(&mut buf).await {
                Ok(0) | Err(_) => ReadOutcome::Closed,
                Ok(n)
                    if first_input && ringmail_runtime::conn::untrusted_proxy_header(&buf[..n]) =>
                {
                    ReadOutcome::ProxyRefused
                }
                Ok(n) => {
                    meter.read(n);
                    // Checked after the read, so a SIGHUP during a long wait traces the
                    // command that ends the wait.
                    refresh_trace(trace, trace_checked, &exec, user, id);
                    if let Some(trace) = trace {
                        trace.client(&buf[..n]);
                    }
                    reader.feed(&buf[..n]);
                    ReadOutcome::Data
                }
            };
            buffers::give_back_read(buf);
            outcome
        };
        let timed = async {
            future::or(read, async {
                glommio::timer::sleep(idle).await;
                ReadOutcome::IdleTimeout
            })
            .await
        };
        let ended = future::or(timed, async {
            exec.shutting_down().await;
            ReadOutcome::Shutdown
        });
        // First, so a session whose partition has moved ends before serving stale data.
        let outcome = future::or(
            async {
                match moved {
                    Some(moved) => moved.await,
                    None => future::pending().await,
                }
                ReadOutcome::Moved
            },
            ended,
        )
        .await;
        // Whichever command loop asked (commands, IDLE, AUTHENTICATE), this is why it ends.
        match outcome {
            ReadOutcome::Data => {}
            ReadOutcome::ProxyRefused => self.meter.end("untrusted proxy header"),
            ReadOutcome::Closed => self.meter.end("client closed"),
            ReadOutcome::IdleTimeout => self.meter.end("idle timeout"),
            ReadOutcome::Shutdown => self.meter.end("shutdown"),
            ReadOutcome::Moved => self.meter.end("partition moved"),
        }
        outcome
    }

    /// Flushes pending output and reads one raw line (an AUTHENTICATE response, IDLE's DONE).
    /// None when the connection ended; `Some(Err(()))` when the line was too long.
    pub async fn read_line(&mut self, reader: &mut CommandReader) -> Option<Result<Vec<u8>, ()>> {
        if self.flush().await.is_err() {
            return None;
        }
        loop {
            match reader.next_line() {
                Some(Ok(line)) => return Some(Ok(line.to_vec())),
                Some(Err(_)) => return Some(Err(())),
                None => {}
            }
            match self.read_more(reader).await {
                ReadOutcome::Data => {}
                ReadOutcome::Shutdown => {
                    self.send(&StatusResponse::bye("Server shutting down"));
                    return None;
                }
                ReadOutcome::IdleTimeout => {
                    self.send(&StatusResponse::bye("Autologout; idle for too long"));
                    return None;
                }
                ReadOutcome::Moved => {
                    self.send(&moved_bye());
                    return None;
                }
                ReadOutcome::ProxyRefused | ReadOutcome::Closed => return None,
            }
        }
    }

    /// The command loop: runs until LOGOUT, disconnect, idle timeout, shutdown or hand-over.
    ///
    /// The session is boxed: an async fn keeps its arguments twice in its state (once as
    /// passed, once as the binding the body uses), and the session is the largest of them.
    pub async fn serve(mut self: Box<Self>, mut reader: CommandReader) {
        loop {
            self.meter.set_state(match (&self.state, &self.selected) {
                (State::NotAuthenticated, _) => SessionState::NotAuthenticated,
                (State::Authenticated { .. }, None) => SessionState::Authenticated,
                (State::Authenticated { .. }, Some(_)) => SessionState::Selected,
            });
            self.check_trace();
            let action = match reader.next() {
                Next::Command(command) => {
                    self.bad_commands = 0;
                    self.execute(command).await
                }
                Next::Continue => {
                    self.writer().continuation("Ready for literal data");
                    if self.flush().await.is_err() {
                        return;
                    }
                    continue;
                }
                Next::Reject(rejection) => {
                    self.reject(&rejection);
                    self.bad_commands += 1;
                    if self.bad_commands >= MAX_BAD_COMMANDS {
                        self.meter.end("too many bad commands");
                        self.send(&StatusResponse::bye("Too many invalid commands"));
                        let _ = self.flush().await;
                        self.conn.close().await;
                        return;
                    }
                    Action::Continue
                }
                Next::NeedMore => {
                    if self.flush().await.is_err() {
                        return;
                    }
                    // Boxed, like the other awaits below: a task's state is as large as its
                    // largest await, whichever it is waiting in.
                    match Box::pin(self.read_more(&mut reader)).await {
                        ReadOutcome::Data => {}
                        ReadOutcome::ProxyRefused => {
                            self.send(&StatusResponse::bye(
                                "PROXY protocol header refused: not a trusted proxy",
                            ));
                            let _ = self.flush().await;
                            info!("refused a PROXY header from an untrusted address");
                            self.conn.close().await;
                            return;
                        }
                        ReadOutcome::Closed => {
                            debug!("client closed the connection");
                            return;
                        }
                        ReadOutcome::IdleTimeout => {
                            self.send(&StatusResponse::bye("Autologout; idle for too long"));
                            let _ = self.flush().await;
                            self.conn.close().await;
                            return;
                        }
                        ReadOutcome::Shutdown => {
                            self.send(&StatusResponse::bye("Server shutting down"));
                            let _ = self.flush().await;
                            self.conn.close().await;
                            return;
                        }
                        ReadOutcome::Moved => {
                            info!("partition moved to another node: session ended");
                            self.send(&moved_bye());
                            let _ = self.flush().await;
                            self.conn.close().await;
                            return;
                        }
                    }
                    continue;
                }
            };
            // The SASL exchange ends like LOGIN: logged in, answered, or closing.
            let action = match action {
                Action::Authenticate {
                    tag,
                    mechanism,
                    initial,
                } => {
                    Box::pin(commands::authenticate::exchange(
                        &mut self,
                        &mut reader,
                        &tag,
                        &mechanism,
                        initial,
                    ))
                    .await
                }
                other => other,
            };
            match action {
                // `exchange` never asks for another exchange.
                Action::Continue | Action::Authenticate { .. } => {}
                Action::Close => {
                    let _ = self.flush().await;
                    self.conn.close().await;
                    return;
                }
                Action::StartTls => {
                    // Anything pipelined after STARTTLS was sent in plaintext and could have
                    // been injected by a man in the middle: it must not run under TLS.
                    reader.discard_unread();
                    if self.flush().await.is_err() {
                        return;
                    }
                    let Some(config) = self.exec.tls() else {
                        return;
                    };
                    let idle = self.exec.config().idle_unauth();
                    let handshake = Box::pin(glommio::timer::timeout(idle, async {
                        self.conn.start_tls(config).await.map_err(Into::into)
                    }))
                    .await;
                    if let Err(e) = handshake {
                        debug!("STARTTLS handshake failed: {e}");
                        return;
                    }
                }
                Action::Idle { tag } => {
                    self.meter.idle(true);
                    let idled = Box::pin(commands::idle::run(&mut self, &mut reader, &tag)).await;
                    self.meter.idle(false);
                    if let Action::Close = idled {
                        let _ = self.flush().await;
                        self.conn.close().await;
                        return;
                    }
                }
                Action::LoggedIn {
                    user,
                    storage_quota,
                    tag,
                } => match self.logged_in(user, storage_quota, tag) {
                    AfterLogin::Stay => {}
                    AfterLogin::HandOver(tag) => {
                        return Box::pin(self.hand_over(reader, tag)).await;
                    }
                    AfterLogin::Refused => {
                        let _ = self.flush().await;
                        self.conn.close().await;
                        return;
                    }
                    AfterLogin::Proxy(tag, to) => {
                        let proxy = crate::node_proxy::proxy(&mut self, &mut reader, &tag, &to);
                        if Box::pin(proxy).await {
                            return;
                        }
                    }
                },
            }
        }
    }

    /// After the credentials were accepted: the session stops counting as not logged in, and
    /// either moves to the user's owner executor or, on the owner, is counted there.
    fn logged_in(&mut self, user: String, storage_quota: Option<u64>, tag: String) -> AfterLogin {
        tracing::Span::current().record("user", user.as_str());
        self.storage_quota = storage_quota;
        match self.exec.place(&user) {
            ringmail_runtime::nodes::Place::Here => {}
            ringmail_runtime::nodes::Place::Remote(to) => {
                self.state = State::Authenticated { user };
                self.preauth = None;
                return AfterLogin::Proxy(tag, to);
            }
            ringmail_runtime::nodes::Place::Unserved => {
                info!(user = %user, "login refused: no node serves the user's partition now");
                let reply = Reply::no("The mailbox is not available right now, try again later");
                self.reply(&tag, &reply.with_code(Code::Unavailable));
                return AfterLogin::Stay;
            }
        }
        let owner = self.exec.owner_of(&user);
        self.state = State::Authenticated { user };
        self.preauth = None;
        if owner != self.exec.id {
            AfterLogin::HandOver(tag)
        } else if self.start_user_session(&tag) {
            AfterLogin::Stay
        } else {
            AfterLogin::Refused
        }
    }

    /// On the executor that owns the user: counts the session against
    /// `max_sessions_per_user_ip` and writes the login's tagged reply, OK or (like Dovecot's
    /// `mail_max_userip_connections`) `NO [LIMIT]`, after which the connection is closed.
    /// False when refused.
    fn start_user_session(&mut self, tag: &str) -> bool {
        let Some(user) = self.user().map(str::to_string) else {
            return false;
        };
        let limit = self.exec.config().limits.max_sessions_per_user_ip;
        let ip = canonical_ip(self.conn.peer.ip());
        match self.exec.user_sessions.try_take(&user, ip, limit) {
            Some(slot) => {
                self.user_session = Some(slot);
                commands::login::logged_in_reply(self, tag);
                true
            }
            None => {
                self.meter.rejected("sessions_per_user_ip");
                self.meter.end("session limit");
                info!(user = %user, client = %ip, limit, "login refused: too many sessions");
                let reply = Reply::no(format!(
                    "Maximum number of sessions from user+IP exceeded \
                     ([limits] max_sessions_per_user_ip = {limit})"
                ))
                .with_code(Code::Limit);
                self.reply(tag, &reply);
                false
            }
        }
    }

    /// Moves the connection (TLS state and unread bytes included) to the user's owner executor,
    /// so a client that pipelined commands right after LOGIN loses nothing. The owner writes
    /// the tagged reply for `login_tag`.
    async fn hand_over(mut self: Box<Self>, mut reader: CommandReader, login_tag: String) {
        if self.flush().await.is_err() {
            return;
        }
        let State::Authenticated { user } =
            std::mem::replace(&mut self.state, State::NotAuthenticated)
        else {
            return;
        };
        let owner = self.exec.owner_of(&user);
        let carry = SessionCarry {
            id: self.id,
            user,
            storage_quota: self.storage_quota,
            enabled: self.enabled,
            meter: self.meter.hand_over(),
            login_tag,
        };
        let unread = reader.take_unread();
        drop(reader);
        let exec = self.exec.clone();
        let parts: ConnParts = match self.conn.into_parts() {
            Ok(parts) => parts,
            Err(e) => {
                info!("hand-over failed: {e}");
                return;
            }
        };
        debug!(to = owner, "handing the session over");
        let handover = Handover {
            conn: parts,
            unread,
            carry,
        };
        if route::tell(&exec, owner, handover).await.is_err() {
            info!("hand-over refused: the owner executor is stopping");
        }
    }

    fn reject(&mut self, rejection: &Rejection) {
        self.meter.rejected(rejection_limit(rejection));
        // Counted as a command's completion even without a tag, as every refusal is.
        self.meter.tagged(match rejection.kind {
            RejectKind::Bad => "BAD",
            RejectKind::No => "NO",
        });
        self.writer().rejection(rejection);
    }

    async fn execute(&mut self, command: Command<'_>) -> Action {
        let tag = command.tag;
        let name = commands::name(&command.body);
        debug!(tag, command = name, "command");
        self.meter.command_started(name);
        if self.out.capacity() == 0 {
            self.out = buffers::take_response();
        }
        // Boxed: the largest command futures (FETCH, APPEND) would otherwise be part of every
        // session's state, idle or not.
        let action = Box::pin(commands::dispatch(self, command)).await;
        if self.out.len() > 64 * 1024 && self.flush().await.is_err() {
            self.meter.end("write failed");
            return Action::Close;
        }
        action
    }

    /// After login, and again after each SIGHUP: opens or closes the protocol trace as the
    /// `rawlog/USER` switch says.
    fn check_trace(&mut self) {
        let user = match &self.state {
            State::Authenticated { user } => Some(user.as_str()),
            State::NotAuthenticated => None,
        };
        refresh_trace(
            &mut self.trace,
            &mut self.trace_checked,
            &self.exec,
            user,
            self.id,
        );
    }

    /// Whether a long command (a search) should give up: the server is shutting down, or
    /// the client has gone away and nobody would read the answer.
    pub fn should_abandon(&self) -> bool {
        self.exec.is_shutting_down() || self.conn.peer_closed()
    }

    /// How long a failed login waits before its NO, growing per client address.
    pub fn failure_delay(&self) -> Duration {
        self.exec
            .throttle
            .borrow_mut()
            .record_failure(self.conn.peer.ip(), std::time::Instant::now())
    }
}

/// The metrics label of the limit (or malformation) that made the parser refuse an input.
fn rejection_limit(rejection: &Rejection) -> &'static str {
    use ringmail_proto::parser::Limit;
    match rejection.limit {
        Some(Limit::LineLength) => "line_length",
        Some(Limit::LiteralSize) => "literal_size",
        Some(Limit::LiteralCount) => "literal_count",
        Some(Limit::Other) => "other_limit",
        None => "syntax",
    }
}

/// Opens or closes a logged-in session's protocol trace when the config was reloaded since
/// the last check (or it was never checked).
fn refresh_trace(
    trace: &mut Option<ProtocolTrace>,
    checked: &mut Option<u64>,
    exec: &Executor,
    user: Option<&str>,
    session: u64,
) {
    let reloads = exec.reloads();
    let Some(user) = user else { return };
    if *checked != Some(reloads) {
        *trace = ProtocolTrace::open(&exec.data_dir, user, session);
        *checked = Some(reloads);
    }
}
