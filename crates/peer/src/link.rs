//! The node's end of the link: its identity, secret, limits and counters, shared by all
//! executors; dialing another node; and the listener that accepts the other nodes.

use std::future::Future;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use futures_lite::future;
use glommio::net::{TcpListener, TcpStream};

use crate::handshake::{self, Opening};
use crate::metrics::Metrics;
use crate::pump::{self, PumpOptions, PumpReport};
use crate::rpc::RpcServer;
use crate::session::SessionHeader;
use crate::wire::USE_SESSION;
use crate::{sock, Error, HandshakeError, LinkConfig, MetricsSnapshot};

/// This node's end of every node-to-node connection: one per node (`Arc`), used from every
/// executor. It holds no connections itself; [`crate::RpcPool`]s (one per executor) and
/// proxied sessions do.
#[derive(Debug)]
pub struct Link {
    pub(crate) config: LinkConfig,
    pub(crate) metrics: Metrics,
}

impl Link {
    /// Checks the settings and makes the link.
    pub fn new(config: LinkConfig) -> Result<Arc<Link>, Error> {
        config.validate()?;
        Ok(Arc::new(Link {
            config,
            metrics: Metrics::default(),
        }))
    }

    /// The settings.
    pub fn config(&self) -> &LinkConfig {
        &self.config
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.config.node
    }

    /// The link's counters.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.metrics.snapshot()
    }

    /// Opens a proxied session to `node` at `addr` (its internal address from the map): dials,
    /// authenticates both ways and sends `header`. The returned stream then carries the
    /// session's raw IMAP bytes both ways; hand it to [`Link::pump`] with the client's
    /// connection. Call from a glommio executor.
    pub async fn open_session(
        &self,
        node: &str,
        addr: &str,
        header: &SessionHeader,
    ) -> Result<TcpStream, Error> {
        let body = header.encode();
        if body.len() > self.config.max_frame {
            return Err(Error::TooLarge {
                claimed: body.len() as u64,
                limit: self.config.max_frame,
            });
        }
        let stream = self
            .dial(node, addr, &Opening::encode(USE_SESSION, &body))
            .await?;
        Metrics::add(&self.metrics.sessions_opened, 1);
        Ok(stream)
    }

    /// Copies bytes between a client connection and the owner's stream (from
    /// [`Link::open_session`]) until both directions have ended, one fails, or nothing moved
    /// for the idle limit. See [`crate::pump`].
    pub async fn pump<C, P>(
        &self,
        client: &mut C,
        peer: &mut P,
        options: &PumpOptions,
    ) -> PumpReport
    where
        C: futures_lite::AsyncRead + futures_lite::AsyncWrite + Unpin,
        P: futures_lite::AsyncRead + futures_lite::AsyncWrite + Unpin,
    {
        pump::pump(
            client,
            peer,
            options,
            &self.metrics.session_bytes_to_owner,
            &self.metrics.session_bytes_from_owner,
        )
        .await
    }

    /// Connects to `node` at `addr` and runs the dialer's handshake, sending `opening` behind
    /// the proof.
    pub(crate) async fn dial(
        &self,
        node: &str,
        addr: &str,
        opening: &[u8],
    ) -> Result<TcpStream, Error> {
        let dial_error = |source: io::Error| {
            Metrics::add(&self.metrics.dial_failures, 1);
            Error::Dial {
                node: node.to_owned(),
                addr: addr.to_owned(),
                source,
            }
        };
        let target = resolve(addr).await.map_err(dial_error)?;
        let mut stream = TcpStream::connect_timeout(target, self.config.connect_timeout)
            .await
            .map_err(|e| dial_error(e.into()))?;
        sock::tune(&stream);
        let handshake = handshake::dial(&mut stream, &self.config, node, opening);
        let timeout = self.config.handshake_timeout;
        match within(timeout, || HandshakeError::Timeout(timeout), handshake).await {
            Ok(()) => Ok(stream),
            Err(reason) => {
                Metrics::add(&self.metrics.handshake_failures_out, 1);
                Err(Error::Handshake {
                    node: node.to_owned(),
                    addr: addr.to_owned(),
                    reason,
                })
            }
        }
    }
}

/// An internal address as the map holds it: an IP literal is used as is; a host name is
/// looked up on glommio's blocking thread pool, so the executor never waits on DNS (use IP
/// literals in `advertise` to skip the lookup).
async fn resolve(addr: &str) -> io::Result<SocketAddr> {
    if let Ok(addr) = addr.parse() {
        return Ok(addr);
    }
    let name = addr.to_owned();
    glommio::executor()
        .spawn_blocking(move || {
            name.to_socket_addrs()?
                .next()
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "the name has no address"))
        })
        .await
}

/// Runs `f` for at most `limit`; `on_timeout` makes the error when it runs out.
pub(crate) async fn within<T, E>(
    limit: Duration,
    on_timeout: impl FnOnce() -> E,
    f: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    future::or(f, async {
        glommio::timer::sleep(limit).await;
        Err(on_timeout())
    })
    .await
}

/// Accepts node-to-node connections on one executor. Every executor binds its own (with
/// SO_REUSEPORT, like the client listeners), so handshakes and RPC connections spread over
/// the cores; see docs/cluster.md for why.
pub struct PeerListener {
    link: Arc<Link>,
    listener: TcpListener,
}

impl PeerListener {
    /// Binds `addr` (`[cluster] listen`) with SO_REUSEPORT.
    pub fn bind(link: Arc<Link>, addr: SocketAddr) -> io::Result<PeerListener> {
        let listener = TcpListener::bind(addr)?;
        Ok(PeerListener { link, listener })
    }

    /// The bound address (with the port the system picked for port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// The next connection, not yet authenticated: run [`Incoming::handshake`] in a task of
    /// its own, so a slow peer holds up nobody else.
    pub async fn accept(&self) -> io::Result<Incoming> {
        let stream = self.listener.accept().await?;
        Ok(Incoming::new(self.link.clone(), stream))
    }
}

/// An accepted connection before its handshake.
pub struct Incoming {
    link: Arc<Link>,
    stream: TcpStream,
}

impl Incoming {
    /// Wraps a connection accepted elsewhere (by a runtime's own accept loop).
    pub fn new(link: Arc<Link>, stream: TcpStream) -> Incoming {
        Incoming { link, stream }
    }

    /// The dialer's socket address.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.stream.peer_addr().ok()
    }

    /// Authenticates the dialer and reads what the connection is for, within
    /// `handshake_timeout`. On failure the connection is closed (dropped) having sent nothing
    /// an unauthenticated peer could use.
    pub async fn handshake(self) -> Result<Accepted, HandshakeError> {
        let Incoming { link, mut stream } = self;
        sock::tune(&stream);
        let timeout = link.config.handshake_timeout;
        let accepted = within(
            timeout,
            || HandshakeError::Timeout(timeout),
            handshake::accept(&mut stream, &link.config),
        )
        .await;
        match accepted {
            Ok((peer, Opening::Session(header))) => {
                Metrics::add(&link.metrics.sessions_accepted, 1);
                Ok(Accepted::Session(IncomingSession {
                    peer,
                    header,
                    stream,
                }))
            }
            Ok((peer, Opening::Rpc)) => {
                Metrics::add(&link.metrics.rpc_connections_accepted, 1);
                Ok(Accepted::Rpc(RpcServer::new(link, peer, stream)))
            }
            Err(e) => {
                Metrics::add(&link.metrics.handshake_failures_in, 1);
                if matches!(e, HandshakeError::TooLarge { .. }) {
                    Metrics::add(&link.metrics.oversized_frames, 1);
                }
                Err(e)
            }
        }
    }
}

/// An authenticated connection and what it is for.
pub enum Accepted {
    /// A proxied IMAP session this node owns.
    Session(IncomingSession),
    /// RPC requests for this node to run: call [`RpcServer::serve`].
    Rpc(RpcServer),
}

/// A proxied session arriving at its owner.
pub struct IncomingSession {
    /// The node that accepted the client and proxies it.
    pub peer: String,
    /// The session's state and the client's pipelined bytes.
    pub header: SessionHeader,
    /// From here on the client's raw IMAP bytes, both ways (plaintext: TLS ended at the
    /// proxying node). Nothing of it has been read yet.
    pub stream: TcpStream,
}
