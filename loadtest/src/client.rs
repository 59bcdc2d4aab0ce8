//! A small async IMAP client: one connection, tagged commands matched to their completion,
//! untagged responses handed to the caller, literals in both directions.
//!
//! Every wait is bounded by the per-command timeout (or an explicit deadline for IDLE), and
//! every response by the framing limits in [`crate::response`].

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{timeout_at, Instant};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::response::{capability_code, frame, has_code, printable, Response, Status};

/// Why a session failed. The kind names are the error classes of the summary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// TCP connect failed.
    #[error("connect: {0}")]
    Connect(String),
    /// Read or write failed, or the server closed the connection.
    #[error("i/o: {0}")]
    Io(String),
    /// No answer within the timeout.
    #[error("timeout: {0}")]
    Timeout(String),
    /// TLS handshake failed.
    #[error("tls: {0}")]
    Tls(String),
    /// The server broke the protocol (framing, unknown tag, unexpected continuation).
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// A tagged BAD the profile did not expect.
    #[error("BAD: {0}")]
    Bad(String),
    /// A tagged NO the profile did not expect.
    #[error("NO: {0}")]
    No(String),
    /// An untagged BYE outside LOGOUT.
    #[error("BYE: {0}")]
    Bye(String),
    /// The server answered with data that cannot be right (counts, sizes, flags).
    #[error("wrong data: {0}")]
    Data(String),
    /// An LMTP reply outside 2xx (a refused sender or recipient, a failed delivery).
    #[error("refused: {0}")]
    Refused(String),
}

impl SessionError {
    /// The class this error is counted under in the summary.
    pub fn kind(&self) -> &'static str {
        match self {
            SessionError::Connect(_) => "connect",
            SessionError::Io(_) => "io",
            SessionError::Timeout(_) => "timeout",
            SessionError::Tls(_) => "tls",
            SessionError::Protocol(_) => "protocol",
            SessionError::Bad(_) => "BAD",
            SessionError::No(_) => "NO",
            SessionError::Bye(_) => "BYE",
            SessionError::Data(_) => "data",
            SessionError::Refused(_) => "refused",
        }
    }
}

/// How to reach the server.
#[derive(Clone)]
pub struct Endpoint {
    /// Server address.
    pub addr: SocketAddr,
    /// TLS, if any.
    pub tls: TlsMode,
    /// Per-command timeout.
    pub timeout: Duration,
    /// Largest literal accepted from the server.
    pub max_literal: u64,
}

/// Plain, implicit TLS or STARTTLS.
#[derive(Clone)]
pub enum TlsMode {
    /// No TLS.
    Plain,
    /// TLS from the first byte.
    Implicit(Arc<rustls::ClientConfig>),
    /// STARTTLS after the greeting.
    StartTls(Arc<rustls::ClientConfig>),
}

/// Server capabilities the profiles adapt to.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Whether any capability list was seen.
    pub known: bool,
    /// LITERAL+ (or IMAP4rev2's LITERAL-, used for small literals).
    pub literal_plus: bool,
    /// LITERAL- only.
    pub literal_minus: bool,
    /// IDLE
    pub idle: bool,
    /// CONDSTORE
    pub condstore: bool,
    /// QRESYNC
    pub qresync: bool,
}

impl Capabilities {
    fn parse(list: &[u8]) -> Capabilities {
        let mut caps = Capabilities {
            known: true,
            ..Capabilities::default()
        };
        for word in list.split(|&b| b == b' ') {
            match word.to_ascii_uppercase().as_slice() {
                b"LITERAL+" => caps.literal_plus = true,
                b"LITERAL-" => caps.literal_minus = true,
                b"IDLE" => caps.idle = true,
                b"CONDSTORE" => caps.condstore = true,
                b"QRESYNC" => caps.qresync = true,
                _ => {}
            }
        }
        caps
    }
}

/// LITERAL- allows non-synchronizing literals up to this size (RFC 7888).
const LITERAL_MINUS_MAX: usize = 4096;

enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Read buffer growth step.
const READ_CHUNK: usize = 16 * 1024;

/// One IMAP connection.
pub struct Connection {
    stream: Stream,
    /// Bytes read and not yet consumed; `buf[start..]` is unread.
    buf: Vec<u8>,
    start: usize,
    /// Length of the response last returned, consumed at the next read.
    pending: usize,
    next_tag: u32,
    timeout: Duration,
    deadline: Instant,
    max_literal: u64,
    /// Capabilities from the latest list the server sent.
    pub caps: Capabilities,
    out: Vec<u8>,
}

/// How a command ended when the caller accepts NO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// OK, NO or BAD.
    pub status: Status,
    /// The text after the status.
    pub text: String,
}

/// A TCP connection to `endpoint` (from `source` when given) with Nagle off: commands are
/// small and latency is what is measured. Shared by the IMAP and LMTP clients.
pub(crate) async fn connect_tcp(
    endpoint: &Endpoint,
    source: Option<IpAddr>,
    deadline: Instant,
) -> Result<TcpStream, SessionError> {
    let socket = match endpoint.addr {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(|e| SessionError::Connect(e.to_string()))?;
    if let Some(ip) = source {
        socket
            .bind(SocketAddr::new(ip, 0))
            .map_err(|e| SessionError::Connect(format!("bind {ip}: {e}")))?;
    }
    let tcp = timeout_at(deadline, socket.connect(endpoint.addr))
        .await
        .map_err(|_| SessionError::Timeout("connect".into()))?
        .map_err(|e| SessionError::Connect(e.to_string()))?;
    tcp.set_nodelay(true)
        .map_err(|e| SessionError::Connect(e.to_string()))?;
    Ok(tcp)
}

impl Connection {
    /// Connects (from `source` when given), does TLS as configured, and reads the greeting.
    pub async fn connect(
        endpoint: &Endpoint,
        source: Option<IpAddr>,
    ) -> Result<Connection, SessionError> {
        let deadline = Instant::now() + endpoint.timeout;
        let tcp = connect_tcp(endpoint, source, deadline).await?;
        let stream = match &endpoint.tls {
            TlsMode::Implicit(config) => handshake(tcp, config, endpoint.addr, deadline).await?,
            _ => Stream::Plain(tcp),
        };
        let mut conn = Connection {
            stream,
            buf: Vec::with_capacity(READ_CHUNK),
            start: 0,
            pending: 0,
            next_tag: 1,
            timeout: endpoint.timeout,
            deadline,
            max_literal: endpoint.max_literal,
            caps: Capabilities::default(),
            out: Vec::with_capacity(256),
        };
        conn.greeting().await?;
        if let TlsMode::StartTls(config) = &endpoint.tls {
            conn.command("STARTTLS", b"STARTTLS", |_| Ok(())).await?;
            if conn.start + conn.pending < conn.buf.len() {
                // Bytes after the OK would be read as plaintext: the STARTTLS injection bug.
                return Err(SessionError::Protocol("data after STARTTLS OK".into()));
            }
            let Stream::Plain(tcp) = conn.stream else {
                return Err(SessionError::Protocol(
                    "STARTTLS on a TLS connection".into(),
                ));
            };
            conn.stream =
                handshake(tcp, config, endpoint.addr, Instant::now() + conn.timeout).await?;
            conn.buf.clear();
            conn.start = 0;
            conn.pending = 0;
            conn.caps = Capabilities::default();
        }
        Ok(conn)
    }

    async fn greeting(&mut self) -> Result<(), SessionError> {
        let range = self.read_response().await?;
        let raw = &self.buf[range];
        let line = printable(raw, 200);
        match Response::parse(raw).map_err(|e| SessionError::Protocol(e.to_string()))? {
            Response::UntaggedStatus {
                status: Status::Ok,
                text,
            } => {
                if let Some(list) = capability_code(text) {
                    self.caps = Capabilities::parse(list);
                }
                Ok(())
            }
            Response::UntaggedStatus {
                status: Status::Bye,
                ..
            } => Err(SessionError::Bye(line)),
            _ => Err(SessionError::Protocol(format!("greeting: {line}"))),
        }
    }

    /// Where in `buf` the next complete response lies; valid until the next call. Bounded by
    /// the deadline. A range, not a slice, so callers can update other fields meanwhile.
    async fn read_response(&mut self) -> Result<std::ops::Range<usize>, SessionError> {
        self.start += self.pending;
        self.pending = 0;
        // Each turn reads at least one byte or fails, and the deadline bounds the turns.
        loop {
            match frame(&self.buf[self.start..], self.max_literal) {
                Ok(Some(n)) => {
                    self.pending = n;
                    return Ok(self.start..self.start + n);
                }
                Ok(None) => {}
                Err(e) => return Err(SessionError::Protocol(e.to_string())),
            }
            if self.start > 0 {
                // Keep unread bytes at the front so the buffer does not grow without bound.
                self.buf.drain(..self.start);
                self.start = 0;
            }
            self.buf.reserve(READ_CHUNK);
            let read = timeout_at(self.deadline, self.stream.read_buf(&mut self.buf))
                .await
                .map_err(|_| SessionError::Timeout("waiting for a response".into()))?
                .map_err(|e| SessionError::Io(e.to_string()))?;
            if read == 0 {
                return Err(SessionError::Io("server closed the connection".into()));
            }
        }
    }

    async fn write_out(&mut self) -> Result<(), SessionError> {
        let write = async {
            self.stream.write_all(&self.out).await?;
            self.stream.flush().await
        };
        timeout_at(self.deadline, write)
            .await
            .map_err(|_| SessionError::Timeout("writing a command".into()))?
            .map_err(|e| SessionError::Io(e.to_string()))
    }

    fn new_tag(&mut self) -> Vec<u8> {
        let tag = format!("a{}", self.next_tag).into_bytes();
        self.next_tag = self.next_tag.wrapping_add(1);
        tag
    }

    /// Runs `cmd` (without tag) and hands every untagged response to `on_untagged`. A tagged
    /// NO or BAD is an error; so is an untagged BYE unless the command is LOGOUT.
    pub async fn command<F>(
        &mut self,
        name: &str,
        cmd: &[u8],
        on_untagged: F,
    ) -> Result<(), SessionError>
    where
        F: FnMut(Response<'_>) -> Result<(), SessionError>,
    {
        let done = self.command_status(name, cmd, on_untagged).await?;
        completion_result(name, done)
    }

    /// Like [`Connection::command`], but a tagged NO or BAD is returned, not an error.
    pub async fn command_status<F>(
        &mut self,
        name: &str,
        cmd: &[u8],
        on_untagged: F,
    ) -> Result<Completion, SessionError>
    where
        F: FnMut(Response<'_>) -> Result<(), SessionError>,
    {
        let tag = self.begin(&[cmd]);
        self.write_out().await?;
        self.until_tagged(name, &tag, on_untagged).await
    }

    /// Starts a command: its deadline, a new tag, and the line `tag parts...CRLF` in the
    /// output buffer. Returns the tag.
    fn begin(&mut self, parts: &[&[u8]]) -> Vec<u8> {
        self.deadline = Instant::now() + self.timeout;
        let tag = self.new_tag();
        self.out.clear();
        self.out.extend_from_slice(&tag);
        self.out.push(b' ');
        for part in parts {
            self.out.extend_from_slice(part);
        }
        self.out.extend_from_slice(b"\r\n");
        tag
    }

    /// Reads until the completion of `tag`.
    async fn until_tagged<F>(
        &mut self,
        name: &str,
        tag: &[u8],
        mut on_untagged: F,
    ) -> Result<Completion, SessionError>
    where
        F: FnMut(Response<'_>) -> Result<(), SessionError>,
    {
        let logout = name.eq_ignore_ascii_case("LOGOUT");
        // Bounded by the deadline: every turn consumes one response.
        loop {
            let range = self.read_response().await?;
            let raw = &self.buf[range];
            let response =
                Response::parse(raw).map_err(|e| SessionError::Protocol(format!("{name}: {e}")))?;
            match response {
                Response::Tagged {
                    tag: t,
                    status,
                    text,
                } => {
                    if t != tag {
                        return Err(SessionError::Protocol(format!(
                            "{name}: completion for unknown tag: {}",
                            printable(raw, 120)
                        )));
                    }
                    if let Some(list) = capability_code(text) {
                        self.caps = Capabilities::parse(list);
                    }
                    return Ok(Completion {
                        status,
                        text: printable(text, 200),
                    });
                }
                Response::Continue => {
                    return Err(SessionError::Protocol(format!(
                        "{name}: unexpected continuation"
                    )));
                }
                Response::UntaggedStatus {
                    status: Status::Bye,
                    ..
                } if !logout => {
                    return Err(SessionError::Bye(format!(
                        "{name}: {}",
                        printable(raw, 200)
                    )))
                }
                Response::Capability(list) => {
                    self.caps = Capabilities::parse(list);
                    on_untagged(Response::Capability(list))?;
                }
                other => on_untagged(other)?,
            }
        }
    }

    /// APPENDs `message`; returns when the server's OK arrived, with the moment the last byte
    /// of the message was written (the start of delivery for IDLE latency).
    pub async fn append<F>(
        &mut self,
        mailbox: &str,
        flags: &str,
        message: &[u8],
        mut on_untagged: F,
    ) -> Result<Instant, SessionError>
    where
        F: FnMut(Response<'_>) -> Result<(), SessionError>,
    {
        self.deadline = Instant::now() + self.timeout;
        let tag = self.new_tag();
        let non_sync = self.caps.literal_plus
            || (self.caps.literal_minus && message.len() <= LITERAL_MINUS_MAX);
        self.out.clear();
        self.out.extend_from_slice(&tag);
        self.out.extend_from_slice(b" APPEND \"");
        self.out.extend_from_slice(mailbox.as_bytes());
        self.out.extend_from_slice(b"\" (");
        self.out.extend_from_slice(flags.as_bytes());
        self.out.extend_from_slice(
            format!(
                ") {{{}{}}}\r\n",
                message.len(),
                if non_sync { "+" } else { "" }
            )
            .as_bytes(),
        );
        if !non_sync {
            self.write_out().await?;
            self.until_continue("APPEND", &tag, &mut on_untagged)
                .await?;
            self.out.clear();
        }
        self.out.extend_from_slice(message);
        self.out.extend_from_slice(b"\r\n");
        self.write_out().await?;
        let sent = Instant::now();
        let done = self.until_tagged("APPEND", &tag, on_untagged).await?;
        completion_result("APPEND", done)?;
        Ok(sent)
    }

    /// Reads until a continuation request; the command's completion there is an error.
    async fn until_continue<F>(
        &mut self,
        name: &str,
        tag: &[u8],
        on_untagged: &mut F,
    ) -> Result<(), SessionError>
    where
        F: FnMut(Response<'_>) -> Result<(), SessionError>,
    {
        match self.until_continue_or_done(name, tag, on_untagged).await? {
            None => Ok(()),
            Some(done) => {
                completion_result(name, done)?;
                Err(SessionError::Protocol(format!(
                    "{name}: OK instead of a continuation"
                )))
            }
        }
    }

    /// Reads until a continuation request (`None`) or the command's completion.
    async fn until_continue_or_done<F>(
        &mut self,
        name: &str,
        tag: &[u8],
        on_untagged: &mut F,
    ) -> Result<Option<Completion>, SessionError>
    where
        F: FnMut(Response<'_>) -> Result<(), SessionError>,
    {
        // Bounded by the deadline: every turn consumes one response.
        loop {
            let range = self.read_response().await?;
            let raw = &self.buf[range];
            let line = printable(raw, 200);
            match Response::parse(raw)
                .map_err(|e| SessionError::Protocol(format!("{name}: {e}")))?
            {
                Response::Continue => return Ok(None),
                Response::Tagged {
                    tag: t,
                    status,
                    text,
                } if t == tag => {
                    return Ok(Some(Completion {
                        status,
                        text: printable(text, 200),
                    }));
                }
                Response::Tagged { .. } => {
                    return Err(SessionError::Protocol(format!(
                        "{name}: completion for unknown tag: {line}"
                    )));
                }
                Response::UntaggedStatus {
                    status: Status::Bye,
                    ..
                } => return Err(SessionError::Bye(format!("{name}: {line}"))),
                other => on_untagged(other)?,
            }
        }
    }

    /// Sends IDLE and waits for the server's continuation; returns the tag for [`Connection::idle_done`].
    pub async fn idle_start<F>(&mut self, mut on_untagged: F) -> Result<Vec<u8>, SessionError>
    where
        F: FnMut(Response<'_>) -> Result<(), SessionError>,
    {
        let tag = self.begin(&[b"IDLE"]);
        self.write_out().await?;
        self.until_continue("IDLE", &tag, &mut on_untagged).await?;
        Ok(tag)
    }

    /// While idling: the next untagged response, or `None` when `until` passes first.
    pub async fn idle_wait(
        &mut self,
        until: Instant,
    ) -> Result<Option<Response<'_>>, SessionError> {
        self.deadline = until;
        let raw = match self.read_response().await {
            Ok(range) => &self.buf[range],
            Err(SessionError::Timeout(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let line = printable(raw, 200);
        match Response::parse(raw).map_err(|e| SessionError::Protocol(format!("IDLE: {e}")))? {
            Response::UntaggedStatus {
                status: Status::Bye,
                ..
            } => Err(SessionError::Bye(format!("IDLE: {line}"))),
            Response::Tagged { .. } | Response::Continue => {
                Err(SessionError::Protocol(format!("IDLE: unexpected {line}")))
            }
            other => Ok(Some(other)),
        }
    }

    /// Ends IDLE (DONE) and waits for its completion.
    pub async fn idle_done<F>(&mut self, tag: &[u8], on_untagged: F) -> Result<(), SessionError>
    where
        F: FnMut(Response<'_>) -> Result<(), SessionError>,
    {
        self.deadline = Instant::now() + self.timeout;
        self.out.clear();
        self.out.extend_from_slice(b"DONE\r\n");
        self.write_out().await?;
        let done = self.until_tagged("IDLE", tag, on_untagged).await?;
        completion_result("IDLE", done)
    }

    /// Asks for CAPABILITY when no list has been seen since the last TLS change or login.
    pub async fn ensure_capabilities(&mut self) -> Result<(), SessionError> {
        if !self.caps.known {
            self.command("CAPABILITY", b"CAPABILITY", |_| Ok(()))
                .await?;
        }
        Ok(())
    }

    /// LOGIN with quoted user name and password (validated free of quotes and CR/LF).
    pub async fn login(&mut self, user: &str, password: &str) -> Result<(), SessionError> {
        // Capabilities may change at login; a list in the OK replaces the old one.
        self.caps.known = false;
        let cmd = format!("LOGIN \"{user}\" \"{password}\"");
        self.command("LOGIN", cmd.as_bytes(), |_| Ok(())).await
    }

    /// AUTHENTICATE with a SASL initial response (RFC 4959), already base64. A continuation
    /// instead of the completion is a refused token's error challenge (RFC 7628 section
    /// 3.2.3): it is acknowledged, and the server's NO that follows is the error.
    pub async fn authenticate(
        &mut self,
        mechanism: &str,
        initial: &[u8],
    ) -> Result<(), SessionError> {
        // Capabilities may change at login, as with LOGIN.
        self.caps.known = false;
        let tag = self.begin(&[b"AUTHENTICATE ", mechanism.as_bytes(), b" ", initial]);
        self.write_out().await?;
        let name = "AUTHENTICATE";
        let done = match self
            .until_continue_or_done(name, &tag, &mut |_| Ok(()))
            .await?
        {
            Some(done) => done,
            None => {
                self.out.clear();
                self.out
                    .extend_from_slice(crate::oauth::error_ack(mechanism));
                self.out.extend_from_slice(b"\r\n");
                self.write_out().await?;
                let done = self.until_tagged(name, &tag, |_| Ok(())).await?;
                completion_result(name, done)?;
                return Err(SessionError::Protocol(format!(
                    "{name}: OK after an error challenge"
                )));
            }
        };
        completion_result(name, done)
    }

    /// LOGOUT: expects BYE then OK.
    pub async fn logout(&mut self) -> Result<(), SessionError> {
        let mut bye = false;
        self.command("LOGOUT", b"LOGOUT", |r| {
            if let Response::UntaggedStatus {
                status: Status::Bye,
                ..
            } = r
            {
                bye = true;
            }
            Ok(())
        })
        .await?;
        if !bye {
            return Err(SessionError::Protocol("LOGOUT without BYE".into()));
        }
        Ok(())
    }
}

/// A completion as the result of a command that must succeed.
fn completion_result(name: &str, done: Completion) -> Result<(), SessionError> {
    match done.status {
        Status::Ok => Ok(()),
        Status::No => Err(SessionError::No(format!("{name}: {}", done.text))),
        _ => Err(SessionError::Bad(format!("{name}: {}", done.text))),
    }
}

/// Whether an error is a NO [EXPUNGEISSUED]: expected when another session shares the user.
pub fn is_expunge_issued(e: &SessionError) -> bool {
    match e {
        SessionError::No(text) => text
            .split_once(": ")
            .is_some_and(|(_, t)| has_code(t.as_bytes(), b"EXPUNGEISSUED")),
        _ => false,
    }
}

async fn handshake(
    tcp: TcpStream,
    config: &Arc<rustls::ClientConfig>,
    addr: SocketAddr,
    deadline: Instant,
) -> Result<Stream, SessionError> {
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let tls = timeout_at(
        deadline,
        TlsConnector::from(config.clone()).connect(name, tcp),
    )
    .await
    .map_err(|_| SessionError::Timeout("TLS handshake".into()))?
    .map_err(|e| SessionError::Tls(e.to_string()))?;
    Ok(Stream::Tls(Box::new(tls)))
}
