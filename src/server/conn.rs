//! One client connection: a glommio TCP stream with an optional rustls server session on top.
//!
//! We drive `rustls::ServerConnection` by hand instead of using futures-rustls because a session
//! must be able to move to another executor after login: futures-rustls' `TlsStream` can be taken
//! apart but not rebuilt, while a bare `ServerConnection` is `Send` and can travel on the mesh
//! next to a dup()ed socket and be wrapped again on the other side (see `handover.rs`).

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

/// A client connection, plain or TLS.
pub struct Conn {
    tcp: TcpStream,
    tls: Option<Box<ServerConnection>>,
    /// The client's address: the socket peer, or the one a trusted PROXY header named.
    pub peer: SocketAddr,
    /// The local address the client connected to.
    pub local: SocketAddr,
    /// A plaintext byte `readable` took from the socket, not yet returned by `read`.
    first_byte: Option<u8>,
}

/// The parts of a connection that travel to another executor.
pub struct ConnParts {
    /// A dup() of the socket; the original glommio stream has been dropped.
    pub fd: OwnedFd,
    /// The TLS session state, when TLS is on.
    pub tls: Option<Box<ServerConnection>>,
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
            if !self.read_ciphertext(&mut chunk).await? {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "client closed during the TLS handshake",
                ));
            }
        }
    }

    /// Waits until the client has sent something (or closed: false), holding no read buffer
    /// meanwhile: an idle connection must cost almost no memory. glommio waits for readiness
    /// with a poll request that needs no buffer, so a one-byte read stands in until data
    /// arrives; that byte is kept and handed out by the next `read`.
    pub async fn readable(&mut self) -> io::Result<bool> {
        if self.first_byte.is_some() {
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
        match self.tls.as_mut() {
            None => self.first_byte = Some(byte[0]),
            Some(tls) => {
                // Ciphertext: rustls takes records in any pieces.
                tls.read_tls(&mut &byte[..])?;
                if let Err(e) = tls.process_new_packets() {
                    let _ = self.flush_tls().await;
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                }
            }
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
            if !self.read_ciphertext(&mut chunk).await? {
                return Ok(0);
            }
        }
    }

    /// Writes all of `data` and flushes it to the socket.
    pub async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self.tls.as_mut() {
            None => {
                self.tcp.write_all(data).await?;
                self.tcp.flush().await
            }
            Some(tls) => {
                tls.writer().write_all(data)?;
                self.flush_tls().await
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
        }
    }

    /// Reads one chunk of ciphertext into rustls and processes it. Returns false on EOF.
    async fn read_ciphertext(&mut self, chunk: &mut Vec<u8>) -> io::Result<bool> {
        chunk.resize(CIPHERTEXT_CHUNK, 0);
        let n = self.tcp.read(chunk).await?;
        if n == 0 {
            return Ok(false);
        }
        let Some(tls) = self.tls.as_mut() else {
            return Err(io::Error::other("TLS state lost"));
        };
        let mut data = &chunk[..n];
        while !data.is_empty() {
            tls.read_tls(&mut data)?;
            if let Err(e) = tls.process_new_packets() {
                // Send the alert rustls queued for the peer before giving up.
                let _ = self.flush_tls().await;
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
        }
        // Handshake messages, key updates or alerts may be waiting.
        self.flush_tls().await?;
        chunk.clear();
        chunk.shrink_to_fit();
        Ok(true)
    }

    /// Writes every pending TLS record to the socket.
    async fn flush_tls(&mut self) -> io::Result<()> {
        let mut out = Vec::new();
        if let Some(tls) = self.tls.as_mut() {
            while tls.wants_write() {
                tls.write_tls(&mut out)?;
            }
        }
        if !out.is_empty() {
            self.tcp.write_all(&out).await?;
            self.tcp.flush().await?;
        }
        Ok(())
    }
}
