//! One client connection: a glommio TCP stream with an optional rustls server session on top.
//!
//! We drive `rustls::ServerConnection` by hand instead of using futures-rustls because a session
//! must be able to move to another executor after login: futures-rustls' `TlsStream` can be taken
//! apart but not rebuilt, while a bare `ServerConnection` is `Send` and can travel on the mesh
//! next to a dup()ed socket and be wrapped again on the other side (see `Handover` in
//! crates/imap/src/session.rs).

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::sync::Arc;

use futures_lite::{future, AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use rustls::{ServerConfig, ServerConnection};

/// Ciphertext is read from the socket in chunks of this size; rustls buffers at most one TLS
/// record (16 KiB + overhead) of plaintext per read anyway.
const CIPHERTEXT_CHUNK: usize = 16 * 1024 + 512;

/// rustls refuses ciphertext once it holds more than this much decrypted plaintext (its fixed
/// receive limit), so feeding stops here and the rest waits in `Conn::backlog`.
const PLAINTEXT_LIMIT: usize = 16 * 1024;

/// A client connection, plain or TLS.
pub struct Conn {
    pub(crate) tcp: TcpStream,
    pub(crate) tls: Option<Box<ServerConnection>>,
    /// The client's address: the socket peer, or the one a trusted PROXY header named.
    pub peer: SocketAddr,
    /// The local address the client connected to.
    pub local: SocketAddr,
    /// A plaintext byte `readable` took from the socket, not yet returned by `read`.
    pub(crate) first_byte: Option<u8>,
    /// Ciphertext read from the socket that rustls could not take yet because its plaintext
    /// buffer was full (a client sending a large literal fills it); fed before the socket is
    /// read again. Empty, and holding no memory, most of the time.
    pub(crate) backlog: Vec<u8>,
}

/// The parts of a connection that travel to another executor.
pub struct ConnParts {
    /// A dup() of the socket; the original glommio stream has been dropped.
    pub fd: OwnedFd,
    /// The TLS session state, when TLS is on.
    pub tls: Option<Box<ServerConnection>>,
    /// Ciphertext read but not yet taken by the TLS session.
    pub backlog: Vec<u8>,
    /// Client address as seen by the session.
    pub peer: SocketAddr,
    /// Local address.
    pub local: SocketAddr,
}

impl Conn {
    /// Wraps a freshly accepted stream.
    pub fn new(tcp: TcpStream, peer: SocketAddr, local: SocketAddr) -> Conn {
        Conn {
            tcp,
            tls: None,
            peer,
            local,
            first_byte: None,
            backlog: Vec::new(),
        }
    }

    /// Whether TLS is active.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Runs a TLS handshake as the server (implicit TLS, or after STARTTLS's OK).
    pub async fn start_tls(&mut self, config: Arc<ServerConfig>) -> io::Result<()> {
        let session = ServerConnection::new(config).map_err(io::Error::other)?;
        self.tls = Some(Box::new(session));
        let mut chunk = Vec::new();
        loop {
            let (handshaking, wants_write) = match &self.tls {
                Some(tls) => (tls.is_handshaking(), tls.wants_write()),
                None => return Err(io::Error::other("TLS state lost")),
            };
            if wants_write {
                self.flush_tls().await?;
            }
            if !handshaking {
                return Ok(());
            }
            if !self.backlog.is_empty() {
                // The handshake's first bytes, read along with a PROXY header.
                let early = std::mem::take(&mut self.backlog);
                self.take_ciphertext(&early).await?;
                continue;
            }
            if !self.read_ciphertext(&mut chunk).await? {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "client closed during the TLS handshake",
                ));
            }
        }
    }

    /// Bytes read past a PROXY header on an implicit-TLS listener: the start of the client's
    /// TLS handshake, which `start_tls` takes before it reads the socket again.
    pub fn set_early_ciphertext(&mut self, bytes: Vec<u8>) {
        self.backlog = bytes;
    }

    /// Waits until the client has sent something (or closed: false), holding no read buffer
    /// meanwhile: an idle connection must cost almost no memory. glommio waits for readiness
    /// with a poll request that needs no buffer, so a one-byte read stands in until data
    /// arrives; that byte is kept and handed out by the next `read`.
    pub async fn readable(&mut self) -> io::Result<bool> {
        if self.first_byte.is_some() || !self.backlog.is_empty() {
            return Ok(true);
        }
        if let Some(tls) = self.tls.as_mut() {
            let state = tls.process_new_packets().map_err(io::Error::other)?;
            if state.plaintext_bytes_to_read() > 0 || state.peer_has_closed() {
                return Ok(true);
            }
        }
        let mut byte = [0u8; 1];
        if self.tcp.read(&mut byte).await? == 0 {
            return Ok(false);
        }
        if self.tls.is_none() {
            self.first_byte = Some(byte[0]);
        } else {
            // Ciphertext: rustls takes records in any pieces.
            self.take_ciphertext(&byte).await?;
        }
        Ok(true)
    }

    /// Whether the client has closed its side: a non-blocking MSG_PEEK that sees end of
    /// stream. Long commands (SEARCH over a huge mailbox) check it to stop early.
    pub fn peer_closed(&self) -> bool {
        let mut byte = [0u8; 1];
        // SAFETY: recv() into a one-byte buffer we own, on a descriptor this Conn owns, with
        // MSG_PEEK (nothing is consumed) and MSG_DONTWAIT (never blocks the executor).
        let n = unsafe {
            libc::recv(
                self.tcp.as_raw_fd(),
                byte.as_mut_ptr().cast(),
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        n == 0
    }

    /// Reads plaintext into `buf`; 0 means the client closed the connection.
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.tls.is_none() {
            let Some(first) = self.first_byte.take() else {
                return self.tcp.read(buf).await;
            };
            let Some((head, rest)) = buf.split_first_mut() else {
                self.first_byte = Some(first);
                return Ok(0);
            };
            *head = first;
            // Whatever else has arrived comes along, without waiting for more.
            let more = future::poll_once(self.tcp.read(rest)).await;
            return match more {
                Some(Ok(n)) => Ok(1 + n),
                Some(Err(_)) | None => Ok(1),
            };
        }
        let mut chunk = Vec::new();
        loop {
            if let Some(tls) = self.tls.as_mut() {
                match tls.reader().read(buf) {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
            if !self.backlog.is_empty() {
                let backlog = std::mem::take(&mut self.backlog);
                self.take_ciphertext(&backlog).await?;
                continue;
            }
            if !self.read_ciphertext(&mut chunk).await? {
                return Ok(0);
            }
        }
    }

    /// Writes all of `data` and flushes it to the socket.
    ///
    /// Over TLS the plaintext goes through rustls in pieces: rustls accepts only as much as
    /// its bounded send buffer holds (64 KiB by default), so each piece is encrypted and
    /// drained to the socket before the next is offered. A response of any size goes out
    /// while the memory held per connection stays at one buffer's worth.
    pub async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        if self.tls.is_none() {
            self.tcp.write_all(data).await?;
            return self.tcp.flush().await;
        }
        let mut rest = data;
        // One buffer of ciphertext for all the pieces of this write.
        let mut wire = Vec::new();
        loop {
            let Some(tls) = self.tls.as_mut() else {
                return Err(io::Error::other("TLS state lost"));
            };
            let accepted = tls.writer().write(rest)?;
            if accepted == 0 && !rest.is_empty() && !tls.wants_write() {
                // Its send buffer is empty and rustls still takes nothing: the session was
                // closed for writing.
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "TLS session accepts no more data",
                ));
            }
            rest = &rest[accepted..];
            // Drain what rustls holds; then it takes the next piece.
            self.drain_tls(&mut wire).await?;
            if rest.is_empty() {
                return Ok(());
            }
        }
    }

    /// Sends a TLS close_notify (when TLS is on) and shuts the socket down for writing.
    pub async fn close(&mut self) {
        if let Some(tls) = self.tls.as_mut() {
            tls.send_close_notify();
            let _ = self.flush_tls().await;
        }
        let _ = self.tcp.close().await;
    }

    /// Reads the PROXY v1/v2 header a trusted load balancer must send first (each read
    /// bounded by `timeout`); the connection's peer and local addresses become the ones it
    /// names, so that limits and logs see the client. Returns the bytes read after the
    /// header: the client's, for the protocol's reader.
    pub async fn read_proxy_header(
        &mut self,
        timeout: std::time::Duration,
    ) -> Result<Vec<u8>, String> {
        use crate::proxy::{parse, ProxyParse};
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        loop {
            match parse(&buf) {
                ProxyParse::Done { header, consumed } => {
                    if let Some(source) = header.source {
                        self.peer = source;
                    }
                    if let Some(dest) = header.destination {
                        self.local = dest;
                    }
                    buf.drain(..consumed);
                    return Ok(buf);
                }
                ProxyParse::NotProxy => return Err("a trusted proxy sent no PROXY header".into()),
                ProxyParse::Invalid(why) => return Err(format!("bad PROXY header: {why}")),
                ProxyParse::Incomplete => {}
            }
            let read = glommio::timer::timeout(timeout, async {
                self.read(&mut chunk).await.map_err(Into::into)
            })
            .await;
            match read {
                Ok(0) => return Err("closed before the PROXY header".into()),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(format!("reading the PROXY header: {e}")),
            }
        }
    }

    /// Takes the connection apart for a hand-over: the socket is dup()ed and the glommio stream
    /// dropped (glommio's `TcpStream` cannot give its fd away), so the receiving executor owns
    /// the only descriptor.
    pub fn into_parts(self) -> io::Result<ConnParts> {
        if self.first_byte.is_some() {
            // `readable` is always followed by `read` before a hand-over; never drop a byte.
            return Err(io::Error::other(
                "a byte read from the client was not consumed",
            ));
        }
        // SAFETY: dup() on a descriptor we own and that stays open for the call; the result is
        // checked and owned by exactly one OwnedFd.
        let fd = unsafe { libc::dup(self.tcp.as_raw_fd()) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor returned by dup() above, owned by no one else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(ConnParts {
            fd,
            tls: self.tls,
            backlog: self.backlog,
            peer: self.peer,
            local: self.local,
        })
    }

    /// Rebuilds a connection on the receiving executor.
    pub fn from_parts(parts: ConnParts) -> Conn {
        // SAFETY: `into_raw_fd` hands us sole ownership of a connected TCP socket descriptor,
        // which the new TcpStream takes over and closes on drop.
        let tcp = unsafe { TcpStream::from_raw_fd(parts.fd.into_raw_fd()) };
        Conn {
            tcp,
            tls: parts.tls,
            peer: parts.peer,
            local: parts.local,
            first_byte: None,
            backlog: parts.backlog,
        }
    }

    /// Reads one chunk of ciphertext into rustls and processes it. Returns false on EOF.
    async fn read_ciphertext(&mut self, chunk: &mut Vec<u8>) -> io::Result<bool> {
        chunk.resize(CIPHERTEXT_CHUNK, 0);
        let n = self.tcp.read(chunk).await?;
        if n == 0 {
            return Ok(false);
        }
        let taken = self.take_ciphertext(&chunk[..n]).await;
        chunk.clear();
        chunk.shrink_to_fit();
        taken.map(|()| true)
    }

    /// Gives ciphertext to rustls and decrypts it, stopping once rustls holds a full
    /// plaintext buffer; what it could not take yet goes to the backlog.
    async fn take_ciphertext(&mut self, data: &[u8]) -> io::Result<()> {
        let Some(tls) = self.tls.as_mut() else {
            return Err(io::Error::other("TLS state lost"));
        };
        let mut rest = data;
        let processed = loop {
            if rest.is_empty() {
                break Ok(());
            }
            if tls.read_tls(&mut rest)? == 0 {
                // close_notify was received: nothing after it counts.
                rest = &[];
                continue;
            }
            match tls.process_new_packets() {
                Ok(state) if state.plaintext_bytes_to_read() >= PLAINTEXT_LIMIT => break Ok(()),
                Ok(_) => {}
                Err(e) => break Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            }
        };
        self.backlog.extend_from_slice(rest);
        // Handshake messages, key updates or alerts (before giving up on an error) may be
        // waiting.
        let flushed = self.flush_tls().await;
        processed.and(flushed)
    }

    /// Writes every pending TLS record to the socket.
    async fn flush_tls(&mut self) -> io::Result<()> {
        self.drain_tls(&mut Vec::new()).await
    }

    /// Writes every pending TLS record to the socket through `wire`, which is left empty
    /// (with its capacity, for the caller's next piece).
    async fn drain_tls(&mut self, wire: &mut Vec<u8>) -> io::Result<()> {
        wire.clear();
        if let Some(tls) = self.tls.as_mut() {
            while tls.wants_write() {
                tls.write_tls(wire)?;
            }
        }
        if !wire.is_empty() {
            self.tcp.write_all(wire).await?;
            self.tcp.flush().await?;
            wire.clear();
        }
        Ok(())
    }
}

/// Whether `peer` is a load balancer of `[proxy] trusted_networks`, which must open with a
/// PROXY header.
pub fn from_trusted_proxy(config: &ringmail_config::Config, peer: SocketAddr) -> bool {
    let ip = canonical_ip(peer.ip());
    config
        .proxy
        .trusted_networks
        .iter()
        .any(|net| net.contains(&ip))
}

/// Whether the first bytes of a connection that is not from a trusted proxy are a PROXY
/// header (or start like one): it is refused, since believing it would let any client pick
/// the address that limits and logs see.
pub fn untrusted_proxy_header(first: &[u8]) -> bool {
    !matches!(
        crate::proxy::parse(first),
        crate::proxy::ProxyParse::NotProxy
    )
}

/// A client address as limits and allow-lists count it: an IPv4-mapped IPv6 address (what a
/// dual-stack socket reports) is the IPv4 address it carries.
pub fn canonical_ip(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
        v4 => v4,
    }
}
