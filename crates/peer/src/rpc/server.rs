//! The listener's side of RPC: reads requests, runs each in a task of its own, and writes
//! each answer as soon as it is ready, whatever the order the requests came in.

use std::cell::Cell;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::sync::Arc;

use futures_lite::io::BufReader;
use futures_lite::FutureExt;
use glommio::net::TcpStream;
use glommio::sync::Semaphore;

use super::{
    read_frame, write_frame, FrameError, Request, Response, STATUS_ANSWER_TOO_LARGE,
    STATUS_HANDLER_PANICKED,
};
use crate::metrics::Metrics;
use crate::split::Half;
use crate::wire::RPC_HEADER_LEN;
use crate::{sock, Error, Link};

/// Buffer for reading requests: several small requests per read.
const READ_BUFFER: usize = 16 * 1024;

/// An authenticated RPC connection on the listener's side.
pub struct RpcServer {
    link: Arc<Link>,
    peer: String,
    stream: TcpStream,
}

impl RpcServer {
    pub(crate) fn new(link: Arc<Link>, peer: String, stream: TcpStream) -> RpcServer {
        RpcServer { link, peer, stream }
    }

    /// The node that dialed.
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// Serves requests until the dialer closes the connection or breaks the protocol. Each
    /// request runs `handler` in a task of its own on this executor (the handler sends work
    /// for a partition to the executor that owns it); at most `max_in_flight` run at once,
    /// and no further request is read meanwhile. Returns once every request it started has
    /// finished. A frame over `max_frame` ends the connection, refused from its header.
    pub async fn serve<H, F>(self, handler: H) -> Result<(), Error>
    where
        H: Fn(Request) -> F + 'static,
        F: Future<Output = Response> + 'static,
    {
        let RpcServer { link, peer, stream } = self;
        let (read_half, write_half) = Half::pair(stream);
        let socket = read_half.clone();
        let mut reader = BufReader::with_capacity(READ_BUFFER, read_half);
        let writer = Rc::new(Writer {
            half: Cell::new(Some(write_half)),
            lock: Semaphore::new(1),
            broken: Cell::new(false),
        });
        let in_flight = link.config.max_in_flight as u64;
        let slots = Rc::new(Semaphore::new(in_flight));
        let handler = Rc::new(handler);
        let limit = link.config.max_frame;

        let ended = loop {
            let Ok(slot) = slots.acquire_static_permit(1).await else {
                break Ok(());
            };
            if writer.broken() {
                break Ok(());
            }
            let (id, kind, payload) = match read_frame(&mut reader, limit).await {
                Ok(Some(frame)) => frame,
                Ok(None) => break Ok(()),
                Err(FrameError::TooLarge(claimed)) => {
                    Metrics::add(&link.metrics.oversized_frames, 1);
                    break Err(Error::TooLarge { claimed, limit });
                }
                Err(FrameError::Malformed) => {
                    break Err(Error::Protocol {
                        node: peer.clone(),
                        what: FrameError::Malformed.to_string(),
                    })
                }
                Err(FrameError::Io(e)) => break Err(Error::Io(e)),
            };
            Metrics::add(
                &link.metrics.rpc_bytes_received,
                (RPC_HEADER_LEN + payload.len()) as u64,
            );
            let handler = handler.clone();
            let writer = writer.clone();
            let link = link.clone();
            glommio::spawn_local(async move {
                let request = Request { kind, payload };
                let answer = AssertUnwindSafe(handler(request)).catch_unwind().await;
                let answer = match answer {
                    Ok(answer) if answer.payload.len() <= link.config.max_frame => answer,
                    Ok(_) => Response {
                        status: STATUS_ANSWER_TOO_LARGE,
                        payload: Vec::new(),
                    },
                    Err(_) => {
                        tracing::error!("BUG: an RPC handler panicked (kind {kind})");
                        Response {
                            status: STATUS_HANDLER_PANICKED,
                            payload: Vec::new(),
                        }
                    }
                };
                writer.send(&link, id, answer).await;
                Metrics::add(&link.metrics.rpc_requests_served, 1);
                drop(slot);
            })
            .detach();
        };
        if ended.is_err() {
            // Answers still to come cannot be told apart from the bad frame's bytes.
            sock::shutdown(&socket);
        }
        let _ = slots.acquire(in_flight).await;
        ended
    }
}

/// The connection's writing side: one answer at a time.
struct Writer {
    /// Taken while a frame is written; gone for good after a failed write.
    half: Cell<Option<Half<TcpStream>>>,
    lock: Semaphore,
    /// A write failed: the peer is gone or the connection is shut down.
    broken: Cell<bool>,
}

impl Writer {
    fn broken(&self) -> bool {
        self.broken.get()
    }

    async fn send(&self, link: &Link, id: u64, answer: Response) {
        let Ok(_lock) = self.lock.acquire_permit(1).await else {
            return;
        };
        let Some(mut half) = self.half.take() else {
            return;
        };
        match write_frame(&mut half, id, answer.status, &answer.payload).await {
            Ok(()) => {
                Metrics::add(
                    &link.metrics.rpc_bytes_sent,
                    (RPC_HEADER_LEN + answer.payload.len()) as u64,
                );
                self.half.set(Some(half));
            }
            Err(e) => {
                tracing::debug!("an RPC answer could not be written: {e}");
                self.broken.set(true);
                sock::shutdown(&half);
            }
        }
    }
}
