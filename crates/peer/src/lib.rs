//! ringmail's node-to-node link: how an executor reaches the node that owns a partition,
//! without etcd and without blocking. See docs/cluster.md, "The node-to-node link".
//!
//! Every connection starts with a challenge-response handshake over the cluster's shared
//! secret (both ends prove it; the cluster name and both node ids are checked), then its
//! first frame says what it is for:
//!
//! - a **session**: an IMAP session that logged in on this node and belongs to another. The
//!   proxying node calls [`Link::open_session`] and then [`Link::pump`] between the client and
//!   the returned stream; the owner gets an [`IncomingSession`] (header and stream) from
//!   [`Incoming::handshake`] and serves the session on it.
//! - **RPC**: request/response frames for jobs run on the owner (LMTP deliveries), pipelined
//!   and answered in any order. Dialers call [`RpcPool::call`] (a pool per executor); the
//!   owner runs [`RpcServer::serve`] with a handler.
//!
//! Everything runs on glommio executors; [`Link`] (settings, counters) is shared by all of
//! them, pools and connections belong to one executor each.

mod config;
mod error;
mod handshake;
mod link;
mod metrics;
mod pump;
mod rpc;
mod session;
mod sock;
mod split;
mod wire;

#[cfg(test)]
mod tests;

pub use config::{LinkConfig, DEFAULT_MAX_FRAME, FRAME_OVERHEAD, MAX_FRAME_LIMIT};
pub use error::{Error, HandshakeError};
pub use link::{Accepted, Incoming, IncomingSession, Link, PeerListener};
pub use metrics::MetricsSnapshot;
pub use pump::{PumpEnd, PumpOptions, PumpReport, Side};
pub use rpc::{
    Request, Response, RpcPool, RpcServer, STATUS_ANSWER_TOO_LARGE, STATUS_HANDLER_PANICKED,
    STATUS_RESERVED,
};
pub use session::SessionHeader;
