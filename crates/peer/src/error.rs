//! What can go wrong on a node-to-node connection. Messages name the node and what to check.

use std::io;
use std::time::Duration;

/// Why a handshake failed, on either side.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The other end does not speak this protocol (an HTTP probe, a port scanner, a wrong
    /// address in the map).
    #[error("the peer is not a ringmail node (wrong magic bytes)")]
    NotAPeer,
    /// A protocol version this release does not speak.
    #[error("the peer speaks node-link version {0}, this node speaks 1")]
    Version(u16),
    /// A hello or session header that does not parse.
    #[error("malformed handshake: {0}")]
    Malformed(&'static str),
    /// The dialer belongs to another cluster.
    #[error("the dialer belongs to cluster {theirs:?}, this node to {ours:?} ([cluster] name)")]
    ClusterMismatch {
        /// This node's cluster.
        ours: String,
        /// The one the dialer named.
        theirs: String,
    },
    /// The dialer wanted another node: its map is stale or the address is reused.
    #[error("the dialer expected node {expected:?} at this address, but this is {ours:?}")]
    WrongNode {
        /// The node the dialer meant to reach.
        expected: String,
        /// This node.
        ours: String,
    },
    /// The other end failed to prove it knows the secret.
    #[error("the peer does not know the cluster secret (every node needs the same secret_file)")]
    BadProof,
    /// The listener closed the connection without answering: it refused this node. Its log
    /// says why (cluster name, node id, secret).
    #[error(
        "the peer closed the connection during the handshake: it refused this node (check \
         [cluster] name, the node ids and that every node has the same secret_file; the \
         peer's log says which)"
    )]
    Refused,
    /// The handshake (with the session header) did not complete in time.
    #[error("handshake not completed within {0:?}")]
    Timeout(Duration),
    /// A session header longer than `max_frame`.
    #[error("frame of {claimed} bytes is over the limit of {limit} (max_frame)")]
    TooLarge {
        /// What the frame claimed.
        claimed: u64,
        /// The limit.
        limit: usize,
    },
    /// The socket failed.
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
}

/// Errors of the link's API.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The link's settings cannot work.
    #[error("node link settings: {0}")]
    Config(String),
    /// TCP connect failed (the node is down, or the address is wrong).
    #[error("cannot connect to node {node} at {addr}: {source}")]
    Dial {
        /// The node dialed.
        node: String,
        /// Its address.
        addr: String,
        /// Why.
        source: io::Error,
    },
    /// Connected, but the handshake failed.
    #[error("node {node} at {addr}: {reason}")]
    Handshake {
        /// The node dialed.
        node: String,
        /// Its address.
        addr: String,
        /// Why.
        reason: HandshakeError,
    },
    /// A frame over `max_frame`: refused before it was sent, or before anything was
    /// allocated for it when received.
    #[error("frame of {claimed} bytes is over the limit of {limit} (max_frame)")]
    TooLarge {
        /// What the frame claimed.
        claimed: u64,
        /// The limit.
        limit: usize,
    },
    /// The connection ended after the request was sent and before its answer came: the
    /// request may or may not have run on the peer.
    #[error("the connection to node {node} was lost before the answer came: {reason}")]
    Lost {
        /// The node.
        node: String,
        /// Why the connection ended.
        reason: String,
    },
    /// No answer within `rpc_timeout`: the request may or may not have run on the peer.
    #[error("node {node} did not answer within {after:?}")]
    Timeout {
        /// The node.
        node: String,
        /// The limit that ran out.
        after: Duration,
    },
    /// The peer broke the protocol (a malformed frame); the connection is closed.
    #[error("protocol error from node {node}: {what}")]
    Protocol {
        /// The node.
        node: String,
        /// What was wrong.
        what: String,
    },
    /// The socket failed.
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
}
