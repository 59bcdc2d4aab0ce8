//! The dialer's side of RPC: a small pool of connections per peer node on each executor, and
//! the connection that matches answers to the requests waiting for them.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::{Rc, Weak};
use std::sync::Arc;

use futures_channel::oneshot;
use futures_lite::io::BufReader;
use glommio::net::TcpStream;
use glommio::sync::Semaphore;
use glommio::Task;

use super::{read_frame, write_frame, FrameError, Response};
use crate::handshake::Opening;
use crate::link::within;
use crate::metrics::Metrics;
use crate::split::Half;
use crate::wire::{RPC_HEADER_LEN, USE_RPC};
use crate::{sock, Error, Link};

/// Buffer of the reader task: several small answers per read.
const READ_BUFFER: usize = 16 * 1024;

/// A call tries again on another connection only when its request cannot have reached the
/// peer (the connection was found dead before or while writing it); this many times.
const RETRIES: usize = 2;

/// RPC connections from this executor to the other nodes. One per executor (it is not
/// `Send`); connections are dialed on first use, reused, and replaced when they fail.
pub struct RpcPool {
    link: Arc<Link>,
    peers: RefCell<HashMap<String, PeerConns>>,
}

/// The connections to one node.
struct PeerConns {
    /// The address they were dialed at; a new address in the map replaces them.
    addr: String,
    conns: Vec<Rc<ClientConn>>,
    /// One dial at a time per node, so a burst of calls does not open a burst of connections.
    dialing: Rc<Semaphore>,
}

impl PeerConns {
    fn new(addr: &str) -> Self {
        PeerConns {
            addr: addr.to_owned(),
            conns: Vec::new(),
            dialing: Rc::new(Semaphore::new(1)),
        }
    }
}

impl RpcPool {
    /// An empty pool.
    pub fn new(link: Arc<Link>) -> RpcPool {
        RpcPool {
            link,
            peers: RefCell::default(),
        }
    }

    /// Sends a request to `node` at `addr` (its internal address from the map) and waits for
    /// the answer, within `rpc_timeout`. A payload over `max_frame` is refused before anything
    /// is sent. [`Error::Lost`] and [`Error::Timeout`] mean the request may have run.
    pub async fn call(
        &self,
        node: &str,
        addr: &str,
        kind: u16,
        payload: &[u8],
    ) -> Result<Response, Error> {
        let limit = self.link.config.max_frame;
        if payload.len() > limit {
            return Err(Error::TooLarge {
                claimed: payload.len() as u64,
                limit,
            });
        }
        let metrics = &self.link.metrics;
        Metrics::add(&metrics.rpc_requests_sent, 1);
        let after = self.link.config.rpc_timeout;
        let timed_out = || Error::Timeout {
            node: node.to_owned(),
            after,
        };
        let result = within(after, timed_out, self.call_once(node, addr, kind, payload)).await;
        if result.is_err() {
            Metrics::add(&metrics.rpc_requests_failed, 1);
        }
        result
    }

    /// How many connections to `node` are open now (for tests and the status page).
    pub fn connections(&self, node: &str) -> usize {
        self.peers
            .borrow()
            .get(node)
            .map_or(0, |p| p.conns.iter().filter(|c| c.alive()).count())
    }

    /// Closes every connection (at shutdown); calls waiting on them fail.
    pub fn close(&self) {
        for (_, peer) in self.peers.borrow_mut().drain() {
            for conn in peer.conns {
                conn.fail("the pool was closed".into());
            }
        }
    }

    async fn call_once(
        &self,
        node: &str,
        addr: &str,
        kind: u16,
        payload: &[u8],
    ) -> Result<Response, Error> {
        let mut retries = 0;
        loop {
            let conn = self.connection(node, addr).await?;
            match conn.call(kind, payload).await {
                Ok(response) => return Ok(response),
                Err(Failure::NotSent(_)) if retries < RETRIES => retries += 1,
                Err(Failure::NotSent(reason) | Failure::Lost(reason)) => {
                    return Err(Error::Lost {
                        node: node.to_owned(),
                        reason,
                    })
                }
            }
        }
    }

    /// A connection to `node` with a free slot, or the least busy one when all are full and
    /// the pool is at its size; dials a new one when there is room.
    async fn connection(&self, node: &str, addr: &str) -> Result<Rc<ClientConn>, Error> {
        let pool_size = self.link.config.pool_size;
        loop {
            let (best, room, dialing) = {
                let mut peers = self.peers.borrow_mut();
                let peer = peers
                    .entry(node.to_owned())
                    .or_insert_with(|| PeerConns::new(addr));
                if peer.addr != addr {
                    // The node moved (restarted elsewhere): connections to the old address
                    // finish what they carry and are dropped.
                    *peer = PeerConns::new(addr);
                }
                peer.conns.retain(|c| c.alive());
                let best = peer.conns.iter().max_by_key(|c| c.free()).cloned();
                (best, peer.conns.len() < pool_size, peer.dialing.clone())
            };
            match best {
                Some(conn) if !conn.still_open() => continue,
                Some(conn) if conn.free() > 0 || !room => return Ok(conn),
                _ => {}
            }
            let _dialing = dialing
                .acquire_static_permit(1)
                .await
                .map_err(|_| Error::Lost {
                    node: node.to_owned(),
                    reason: "the pool was closed".into(),
                })?;
            // Another call may have dialed while this one waited.
            let still_needed = self.peers.borrow().get(node).is_some_and(|p| {
                p.addr == addr
                    && p.conns.len() < pool_size
                    && !p.conns.iter().any(|c| c.alive() && c.free() > 0)
            });
            if !still_needed {
                continue;
            }
            let conn = ClientConn::dial(&self.link, node, addr).await?;
            if let Some(peer) = self.peers.borrow_mut().get_mut(node) {
                if peer.addr == addr {
                    peer.conns.push(conn.clone());
                }
            }
            return Ok(conn);
        }
    }
}

/// Why a call on one connection failed.
enum Failure {
    /// The request cannot have reached the peer: safe to send again.
    NotSent(String),
    /// It was sent and the answer will not come.
    Lost(String),
}

/// One RPC connection: a writer shared by the calls (one frame at a time) and a reader task
/// that hands each answer to the call waiting for its id.
struct ClientConn {
    link: Arc<Link>,
    /// A handle on the socket for checks and for shutting it down.
    socket: Half<TcpStream>,
    /// Taken by the call writing a frame and put back when the frame is out; a call that is
    /// dropped in the middle of a frame takes it away for good, which kills the connection
    /// (the peer would misread what follows).
    writer: Cell<Option<Half<TcpStream>>>,
    write_lock: Semaphore,
    /// Calls waiting for their answer, by request id.
    pending: RefCell<HashMap<u64, oneshot::Sender<Result<Response, String>>>>,
    next_id: Cell<u64>,
    /// `max_in_flight` permits; closed when the connection dies.
    slots: Rc<Semaphore>,
    /// Why the connection died; `None` while it lives.
    dead: RefCell<Option<String>>,
    /// Dropping the connection cancels its reader task.
    reader: Cell<Option<Task<()>>>,
}

impl ClientConn {
    async fn dial(link: &Arc<Link>, node: &str, addr: &str) -> Result<Rc<ClientConn>, Error> {
        let stream = link
            .dial(node, addr, &Opening::encode(USE_RPC, &[]))
            .await?;
        Metrics::add(&link.metrics.rpc_connections_opened, 1);
        let (read_half, write_half) = Half::pair(stream);
        let conn = Rc::new(ClientConn {
            link: link.clone(),
            socket: read_half.clone(),
            writer: Cell::new(Some(write_half)),
            write_lock: Semaphore::new(1),
            pending: RefCell::default(),
            next_id: Cell::new(1),
            slots: Rc::new(Semaphore::new(link.config.max_in_flight as u64)),
            dead: RefCell::new(None),
            reader: Cell::new(None),
        });
        let reader = BufReader::with_capacity(READ_BUFFER, read_half);
        let task = glommio::spawn_local(read_answers(Rc::downgrade(&conn), link.clone(), reader));
        conn.reader.set(Some(task));
        Ok(conn)
    }

    fn alive(&self) -> bool {
        self.dead.borrow().is_none()
    }

    fn free(&self) -> u64 {
        if self.alive() {
            self.slots.available()
        } else {
            0
        }
    }

    /// Whether the connection can take a request. An idle one is checked for a FIN or RST
    /// its reader task may not have seen yet (the peer restarted while nothing was asked),
    /// which costs one non-blocking syscall; a busy one would have failed its calls.
    fn still_open(&self) -> bool {
        if !self.alive() {
            return false;
        }
        let idle = self.slots.available() == self.link.config.max_in_flight as u64;
        if idle && sock::peer_closed(&self.socket) {
            self.fail("the peer closed the connection".into());
            return false;
        }
        true
    }

    /// Marks the connection dead: waiting calls get `reason`, waiters for a slot are
    /// refused, and the socket is shut down so the reader task ends.
    fn fail(&self, reason: String) {
        if !self.alive() {
            return;
        }
        *self.dead.borrow_mut() = Some(reason.clone());
        self.slots.close();
        self.write_lock.close();
        let pending = std::mem::take(&mut *self.pending.borrow_mut());
        for (_, waiter) in pending {
            let _ = waiter.send(Err(reason.clone()));
        }
        sock::shutdown(&self.socket);
    }

    async fn call(&self, kind: u16, payload: &[u8]) -> Result<Response, Failure> {
        let not_sent = || Failure::NotSent(self.reason());
        let _slot = self
            .slots
            .acquire_static_permit(1)
            .await
            .map_err(|_| not_sent())?;
        if !self.alive() {
            return Err(not_sent());
        }
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let (tx, rx) = oneshot::channel();
        self.pending.borrow_mut().insert(id, tx);
        let _forget = Forget { conn: self, id };

        {
            let _lock = self
                .write_lock
                .acquire_permit(1)
                .await
                .map_err(|_| not_sent())?;
            let Some(mut writer) = self.writer.take() else {
                return Err(not_sent());
            };
            let mut interrupted = Interrupted {
                conn: self,
                armed: true,
            };
            let written = write_frame(&mut writer, id, kind, payload).await;
            interrupted.armed = false;
            if let Err(e) = written {
                // A frame that did not fully reach the kernel was never read by the peer.
                self.fail(format!("write failed: {e}"));
                return Err(Failure::NotSent(self.reason()));
            }
            self.writer.set(Some(writer));
        }
        Metrics::add(
            &self.link.metrics.rpc_bytes_sent,
            (RPC_HEADER_LEN + payload.len()) as u64,
        );
        match rx.await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(reason)) => Err(Failure::Lost(reason)),
            Err(_) => Err(Failure::Lost(self.reason())),
        }
    }

    fn reason(&self) -> String {
        self.dead
            .borrow()
            .clone()
            .unwrap_or_else(|| "the connection was closed".into())
    }
}

/// Removes a call's entry when the call ends in any way (answered, failed, or dropped by a
/// timeout), so a late answer finds nobody and is discarded.
struct Forget<'a> {
    conn: &'a ClientConn,
    id: u64,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.conn.pending.borrow_mut().remove(&self.id);
    }
}

/// Kills the connection when a call is dropped (its timeout ran out) in the middle of
/// writing a frame; disarmed once the frame is out.
struct Interrupted<'a> {
    conn: &'a ClientConn,
    armed: bool,
}

impl Drop for Interrupted<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.conn
                .fail("a request was interrupted while being written".into());
        }
    }
}

/// The reader task: answers go to the calls waiting for them until the connection ends.
async fn read_answers(
    conn: Weak<ClientConn>,
    link: Arc<Link>,
    mut reader: BufReader<Half<TcpStream>>,
) {
    let reason = loop {
        match read_frame(&mut reader, link.config.max_frame).await {
            Ok(Some((id, status, payload))) => {
                Metrics::add(
                    &link.metrics.rpc_bytes_received,
                    (RPC_HEADER_LEN + payload.len()) as u64,
                );
                let Some(conn) = conn.upgrade() else { return };
                let waiter = conn.pending.borrow_mut().remove(&id);
                if let Some(waiter) = waiter {
                    let _ = waiter.send(Ok(Response { status, payload }));
                }
            }
            Ok(None) => break "the peer closed the connection".to_string(),
            Err(e) => {
                if let FrameError::TooLarge(_) = e {
                    Metrics::add(&link.metrics.oversized_frames, 1);
                }
                break format!("{e}");
            }
        }
    };
    if let Some(conn) = conn.upgrade() {
        conn.fail(reason);
    }
}
