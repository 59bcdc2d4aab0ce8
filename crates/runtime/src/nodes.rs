//! The other nodes of a cluster, as an executor sees them: where a partition is served (from
//! the local copy of the cluster map: never waiting on etcd), the node-to-node link, and the
//! handlers for what other nodes send here.
//!
//! The runtime knows neither etcd nor any protocol: the binary gives it a [`Placement`]
//! (backed by `ringmail_cluster::ClusterView`) and the protocols' handlers for proxied
//! sessions and RPC requests ([`PeerService`]). Without a cluster there is none of this and
//! every partition is served here.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use futures_lite::future;
use ringmail_peer::{Accepted, IncomingSession, Link, PeerListener, Request, Response, RpcPool};
use tracing::{debug, warn};

use crate::runtime::Executor;

/// Where a partition is served now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// By this node (on the executor `partition mod executors`).
    Here,
    /// By another node, reached at its internal address.
    Remote(Remote),
    /// By nobody at the moment (its owner died, or the map is not settled yet): answer with
    /// a temporary failure; the client tries again.
    Unserved,
}

/// Another node that serves a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    /// Its node id.
    pub node: String,
    /// The address its node-to-node listener is reached at.
    pub addr: String,
}

/// This node's copy of the partition map. Implementations must answer from memory.
pub trait Placement: Send + Sync {
    /// Where `partition` is served now.
    fn place(&self, partition: u32) -> Place;
}

/// A future an RPC handler returns (runs on one executor).
pub type LocalResponse = Pin<Box<dyn Future<Output = Response>>>;

/// A cluster node's part of [`crate::runtime::Services`]: the map, the link and what to do
/// with what other nodes send.
#[derive(Clone)]
pub struct PeerService {
    /// Where partitions are served.
    pub placement: Arc<dyn Placement>,
    /// This node's end of the node-to-node link.
    pub link: Arc<Link>,
    /// The node-to-node listener (`[cluster] listen`), bound by every executor.
    pub listen: SocketAddr,
    /// Serves a session another node proxies here (its user's partition is ours).
    pub session: fn(Rc<Executor>, IncomingSession),
    /// Answers one RPC request from another node.
    pub rpc: fn(Rc<Executor>, Request) -> LocalResponse,
}

/// One executor's view of the cluster.
pub struct Nodes {
    /// Where partitions are served.
    pub placement: Arc<dyn Placement>,
    /// This node's end of the link.
    pub link: Arc<Link>,
    /// This executor's connections for RPC to other nodes.
    pub pool: RpcPool,
}

impl Nodes {
    pub(crate) fn new(service: &PeerService) -> Nodes {
        Nodes {
            placement: service.placement.clone(),
            link: service.link.clone(),
            pool: RpcPool::new(service.link.clone()),
        }
    }
}

/// Accepts node-to-node connections on this executor until shutdown: sessions go to the
/// session handler, RPC connections are served with the RPC handler.
pub(crate) async fn accept_loop(exec: Rc<Executor>, listener: PeerListener, service: PeerService) {
    loop {
        let accepted = future::or(async { Some(listener.accept().await) }, async {
            exec.shutting_down().await;
            None
        })
        .await;
        let incoming = match accepted {
            None => return,
            Some(Ok(incoming)) => incoming,
            Some(Err(e)) => {
                warn!("node link accept failed: {e}");
                glommio::timer::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let exec = exec.clone();
        let session = service.session;
        let rpc = service.rpc;
        glommio::spawn_local(async move {
            match incoming.handshake().await {
                Ok(Accepted::Session(incoming)) => session(exec, incoming),
                Ok(Accepted::Rpc(server)) => {
                    let peer = server.peer().to_string();
                    let handler_exec = exec.clone();
                    let serve = server.serve(move |request| rpc(handler_exec.clone(), request));
                    // At shutdown the connection is dropped: requests still running end with
                    // `Lost` at the caller, which answers a temporary failure.
                    let served = future::or(serve, async {
                        exec.shutting_down().await;
                        Ok(())
                    })
                    .await;
                    if let Err(e) = served {
                        debug!(peer = %peer, "node link RPC connection ended: {e}");
                    }
                }
                Err(e) => debug!("node link refused: {e}"),
            }
        })
        .detach();
    }
}
