//! A client connection as `futures` `AsyncRead + AsyncWrite`, for copying a session's bytes
//! to another node (`ringmail_peer::Link::pump`) when its user's partition lives there.
//!
//! Plaintext goes through the same rustls session the connection already has (TLS ends at
//! the node the client connected to). Over TLS, ciphertext waiting for the socket is kept in
//! `wire` between polls, so a write that the socket could not take yet is offered again, the
//! same bytes, at the next poll; what rustls cannot take yet waits in the connection's
//! backlog, as for [`Conn::read`].

use std::io::{self, Read, Write};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures_lite::{AsyncRead, AsyncWrite};

use crate::conn::Conn;

/// Ciphertext read from the socket per poll (one TLS record and its overhead).
const CIPHERTEXT_CHUNK: usize = 16 * 1024 + 512;

/// rustls' plaintext receive limit: feeding stops here, the rest waits in the backlog.
const PLAINTEXT_LIMIT: usize = 16 * 1024;

/// Above this capacity a drained `wire` buffer is let go, so a quiet session holds none.
const KEEP_WIRE: usize = 32 * 1024;

/// A borrowed [`Conn`] with poll-based reads and writes.
pub struct ConnIo<'a> {
    conn: &'a mut Conn,
    /// TLS records not yet written to the socket; `wire[at..]` is what is left.
    wire: Vec<u8>,
    at: usize,
    close_notify_sent: bool,
}

impl<'a> ConnIo<'a> {
    /// Wraps `conn` for the time of a copy.
    pub fn new(conn: &'a mut Conn) -> ConnIo<'a> {
        ConnIo {
            conn,
            wire: Vec::new(),
            at: 0,
            close_notify_sent: false,
        }
    }

    /// Moves the records rustls has ready into `wire`.
    fn queue_records(&mut self) -> io::Result<()> {
        if let Some(tls) = self.conn.tls.as_mut() {
            while tls.wants_write() {
                tls.write_tls(&mut self.wire)?;
            }
        }
        Ok(())
    }

    /// Writes `wire` to the socket.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.at < self.wire.len() {
            let n = ready!(Pin::new(&mut self.conn.tcp).poll_write(cx, &self.wire[self.at..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.at += n;
        }
        self.at = 0;
        if self.wire.capacity() > KEEP_WIRE {
            self.wire = Vec::new();
        } else {
            self.wire.clear();
        }
        Poll::Ready(Ok(()))
    }
}

/// Gives ciphertext to rustls until it holds a full plaintext buffer; the rest goes to the
/// backlog.
fn feed(conn: &mut Conn, data: &[u8]) -> io::Result<()> {
    let Some(tls) = conn.tls.as_mut() else {
        return Err(io::Error::other("TLS state lost"));
    };
    let mut rest = data;
    while !rest.is_empty() {
        if tls.read_tls(&mut rest)? == 0 {
            // close_notify was received: nothing after it counts.
            rest = &[];
            break;
        }
        let state = tls
            .process_new_packets()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        if state.plaintext_bytes_to_read() >= PLAINTEXT_LIMIT {
            break;
        }
    }
    conn.backlog.extend_from_slice(rest);
    Ok(())
}

impl AsyncRead for ConnIo<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if this.conn.tls.is_none() {
            if let Some(first) = this.conn.first_byte.take() {
                buf[0] = first;
                return Poll::Ready(Ok(1));
            }
            return Pin::new(&mut this.conn.tcp).poll_read(cx, buf);
        }
        loop {
            if let Some(tls) = this.conn.tls.as_mut() {
                match tls.reader().read(buf) {
                    Ok(n) => return Poll::Ready(Ok(n)),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
            if !this.conn.backlog.is_empty() {
                let backlog = std::mem::take(&mut this.conn.backlog);
                feed(this.conn, &backlog)?;
            } else {
                let mut chunk = [0u8; CIPHERTEXT_CHUNK];
                let n = ready!(Pin::new(&mut this.conn.tcp).poll_read(cx, &mut chunk))?;
                if n == 0 {
                    return Poll::Ready(Ok(0));
                }
                feed(this.conn, &chunk[..n])?;
            }
            // Key updates or alerts rustls wants to answer: send them along (a socket that
            // cannot take them now gets them with the next write).
            this.queue_records()?;
            if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
                return Poll::Ready(Err(e));
            }
        }
    }
}

impl AsyncWrite for ConnIo<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.conn.tls.is_none() {
            return Pin::new(&mut this.conn.tcp).poll_write(cx, buf);
        }
        ready!(this.poll_drain(cx))?;
        let Some(tls) = this.conn.tls.as_mut() else {
            return Poll::Ready(Err(io::Error::other("TLS state lost")));
        };
        let n = tls.writer().write(buf)?;
        if n == 0 && !buf.is_empty() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "TLS session accepts no more data",
            )));
        }
        this.queue_records()?;
        // The bytes are taken; records the socket cannot take now go at the next poll.
        if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.queue_records()?;
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.conn.tcp).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.close_notify_sent {
            if let Some(tls) = this.conn.tls.as_mut() {
                tls.send_close_notify();
            }
            this.close_notify_sent = true;
        }
        this.queue_records()?;
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.conn.tcp).poll_close(cx)
    }
}
