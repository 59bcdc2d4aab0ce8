//! The byte pump of a proxied session, on the node that accepted the client: client to owner
//! and owner to client at once, one copy per chunk (kernel to a buffer, buffer to kernel).
//!
//! Both sides are `futures` `AsyncRead + AsyncWrite`: glommio's `TcpStream` is, and the
//! runtime's client connection implements them (over TLS, `poll_write` may buffer records,
//! so the pump flushes after every chunk). One task polls both directions, so a side is
//! never borrowed twice.
//!
//! An idle session holds no buffer: a direction waits for data with a one-byte read, and
//! takes a chunk buffer only while bytes flow (a proxying node holds many sessions sitting
//! in IDLE). splice(2) between two plain sockets would save the copy, but glommio 0.9 offers
//! no splice on sockets and a blocking splice would stall the executor; the client side is
//! usually TLS anyway, which must pass through user space.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_lite::future::poll_fn;
use futures_lite::{AsyncRead, AsyncWrite};
use glommio::timer::Timer;

use crate::metrics::Metrics;

/// Chunks a direction copies in one poll before it lets other tasks run.
const CHUNKS_PER_POLL: usize = 16;
/// A direction that wakes up starts with a buffer this large and takes a full chunk only
/// when a read fills it: most of a session's traffic is commands and short responses, and
/// zeroing 64 KiB for each of them showed up in profiles of the proxying node.
const FIRST_BUFFER: usize = 4096;

/// How a pump runs.
#[derive(Debug, Clone)]
pub struct PumpOptions {
    /// The pump ends when no byte moved either way for this long (while both directions are
    /// open).
    pub idle: Duration,
    /// Once one side has closed, the other has this long without a byte moving to finish
    /// (a client that never closes after the owner's BYE is not kept for `idle`).
    pub linger: Duration,
    /// The most one read takes; a direction holds a buffer of this size only while bytes flow.
    pub chunk: usize,
}

impl PumpOptions {
    /// `idle` as given, `linger` 10 s (or `idle` if shorter), 64 KiB chunks.
    pub fn new(idle: Duration) -> PumpOptions {
        PumpOptions {
            idle,
            linger: idle.min(Duration::from_secs(10)),
            chunk: 64 * 1024,
        }
    }
}

/// Which side of the pump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The client's connection.
    Client,
    /// The owner node's stream.
    Peer,
}

/// Why the pump ended.
#[derive(Debug)]
pub enum PumpEnd {
    /// Both directions ended cleanly: `first` closed first, its end was passed on, then the
    /// other side closed too.
    Closed {
        /// The side that closed first.
        first: Side,
    },
    /// Nothing moved for the idle limit (or the linger after one side closed).
    Idle,
    /// Reading from or writing to `side` failed. The caller drops both.
    Failed {
        /// The side whose socket failed.
        side: Side,
        /// The error.
        error: io::Error,
    },
}

/// What the pump did.
#[derive(Debug)]
pub struct PumpReport {
    /// Bytes copied from the client to the owner.
    pub to_peer: u64,
    /// Bytes copied from the owner to the client.
    pub to_client: u64,
    /// Why it ended.
    pub end: PumpEnd,
}

/// Runs the pump; `to_peer` and `to_client` count the bytes as they move (node metrics).
pub(crate) async fn pump<C, P>(
    client: &mut C,
    peer: &mut P,
    options: &PumpOptions,
    to_peer: &AtomicU64,
    to_client: &AtomicU64,
) -> PumpReport
where
    C: AsyncRead + AsyncWrite + Unpin,
    P: AsyncRead + AsyncWrite + Unpin,
{
    let chunk = options.chunk.max(1);
    let mut up = Direction::new(Side::Client, Side::Peer, to_peer);
    let mut down = Direction::new(Side::Peer, Side::Client, to_client);
    let mut first_closed = None;
    let mut last_moved = Instant::now();
    let mut timer = Timer::new(options.idle);
    let end = poll_fn(|cx| {
        let moved = up.moved + down.moved;
        if let Poll::Ready(Err(failure)) = up.poll(cx, &mut *client, &mut *peer, chunk) {
            return Poll::Ready(failure);
        }
        if let Poll::Ready(Err(failure)) = down.poll(cx, &mut *peer, &mut *client, chunk) {
            return Poll::Ready(failure);
        }
        if up.done && down.done {
            let first = first_closed.unwrap_or(up.from);
            return Poll::Ready(PumpEnd::Closed { first });
        }
        if up.moved + down.moved != moved {
            last_moved = Instant::now();
        }
        if first_closed.is_none() {
            first_closed = [&up, &down].iter().find(|d| d.done).map(|d| d.from);
            if first_closed.is_some() {
                // From now on the other side has the (shorter) linger to finish.
                last_moved = Instant::now();
                timer.reset(options.linger);
            }
        }
        let limit = if up.done || down.done {
            options.linger
        } else {
            options.idle
        };
        // One timer for the whole pump: when it fires early (bytes moved since it was set)
        // it is set again for what is left, so moving bytes never touches it.
        while Pin::new(&mut timer).poll(cx).is_ready() {
            let quiet = last_moved.elapsed();
            if quiet >= limit {
                return Poll::Ready(PumpEnd::Idle);
            }
            timer.reset(limit - quiet);
        }
        Poll::Pending
    })
    .await;
    PumpReport {
        to_peer: up.moved,
        to_client: down.moved,
        end,
    }
}

/// One direction: read a chunk from `from`, write all of it to `to`, repeat; at the end of
/// `from`, close `to` for writing.
struct Direction<'a> {
    from: Side,
    to: Side,
    /// Present only while bytes flow.
    buf: Option<Box<[u8]>>,
    /// `buf[pos..end]` is read and not yet written.
    pos: usize,
    end: usize,
    unflushed: bool,
    eof: bool,
    done: bool,
    moved: u64,
    counter: &'a AtomicU64,
}

impl<'a> Direction<'a> {
    fn new(from: Side, to: Side, counter: &'a AtomicU64) -> Self {
        Direction {
            from,
            to,
            buf: None,
            pos: 0,
            end: 0,
            unflushed: false,
            eof: false,
            done: false,
            moved: 0,
            counter,
        }
    }

    /// Moves bytes until one side would block; `Ready(Ok)` once done.
    fn poll<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        reader: &mut R,
        writer: &mut W,
        chunk: usize,
    ) -> Poll<Result<(), PumpEnd>>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let read_failed = |error| PumpEnd::Failed {
            side: self.from,
            error,
        };
        let to = self.to;
        let write_failed = |error| PumpEnd::Failed { side: to, error };
        let mut budget = CHUNKS_PER_POLL;
        loop {
            if self.done {
                return Poll::Ready(Ok(()));
            }
            while self.pos < self.end {
                let Some(buf) = self.buf.as_deref() else {
                    break;
                };
                match Pin::new(&mut *writer).poll_write(cx, &buf[self.pos..self.end]) {
                    Poll::Ready(Ok(0)) => {
                        return Poll::Ready(Err(write_failed(io::ErrorKind::WriteZero.into())))
                    }
                    Poll::Ready(Ok(n)) => {
                        self.pos += n;
                        self.moved += n as u64;
                        self.unflushed = true;
                        Metrics::add(self.counter, n as u64);
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(write_failed(e))),
                    Poll::Pending => return Poll::Pending,
                }
            }
            if self.unflushed {
                match Pin::new(&mut *writer).poll_flush(cx) {
                    Poll::Ready(Ok(())) => self.unflushed = false,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(write_failed(e))),
                    Poll::Pending => return Poll::Pending,
                }
            }
            if self.eof {
                return match Pin::new(&mut *writer).poll_close(cx) {
                    Poll::Ready(Ok(())) => {
                        self.done = true;
                        Poll::Ready(Ok(()))
                    }
                    // The other side has gone completely; nothing is left to tell it.
                    Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::NotConnected => {
                        self.done = true;
                        Poll::Ready(Ok(()))
                    }
                    Poll::Ready(Err(e)) => Poll::Ready(Err(write_failed(e))),
                    Poll::Pending => Poll::Pending,
                };
            }
            if budget == 0 {
                // Let the other direction and other sessions run; come back at once.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            budget -= 1;
            match self.buf.as_deref_mut() {
                None => {
                    // Wait without a buffer: a one-byte read stands in until data arrives.
                    let mut first = [0u8; 1];
                    match Pin::new(&mut *reader).poll_read(cx, &mut first) {
                        Poll::Ready(Ok(0)) => self.eof = true,
                        Poll::Ready(Ok(_)) => {
                            let mut buf = vec![0u8; FIRST_BUFFER.min(chunk)].into_boxed_slice();
                            buf[0] = first[0];
                            self.pos = 0;
                            self.end = 1;
                            // Whatever else has arrived comes along.
                            match Pin::new(&mut *reader).poll_read(cx, &mut buf[1..]) {
                                Poll::Ready(Ok(0)) => self.eof = true,
                                Poll::Ready(Ok(n)) => self.end += n,
                                Poll::Ready(Err(e)) => return Poll::Ready(Err(read_failed(e))),
                                Poll::Pending => {}
                            }
                            self.buf = Some(buf);
                        }
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(read_failed(e))),
                        Poll::Pending => return Poll::Pending,
                    }
                }
                Some(buf) => match Pin::new(&mut *reader).poll_read(cx, buf) {
                    Poll::Ready(Ok(0)) => self.eof = true,
                    Poll::Ready(Ok(n)) => {
                        self.pos = 0;
                        self.end = n;
                        // A full small buffer: bulk is flowing (a FETCH of a message), so
                        // the next reads take whole chunks.
                        if n == buf.len() && buf.len() < chunk {
                            let mut bigger = vec![0u8; chunk].into_boxed_slice();
                            bigger[..n].copy_from_slice(&buf[..n]);
                            self.buf = Some(bigger);
                        }
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(read_failed(e))),
                    Poll::Pending => {
                        // Caught up: give the buffer back while waiting.
                        self.buf = None;
                        return Poll::Pending;
                    }
                },
            }
        }
    }
}
