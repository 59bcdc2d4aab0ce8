//! Counters of the node-to-node link, for the main program's metrics page (it owns the page;
//! this crate only counts). One set per node, shared by the executors: relaxed atomic adds,
//! once per chunk or frame, never per byte.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub(crate) session_bytes_to_owner: AtomicU64,
    pub(crate) session_bytes_from_owner: AtomicU64,
    pub(crate) rpc_bytes_sent: AtomicU64,
    pub(crate) rpc_bytes_received: AtomicU64,
    pub(crate) sessions_opened: AtomicU64,
    pub(crate) sessions_accepted: AtomicU64,
    pub(crate) rpc_connections_opened: AtomicU64,
    pub(crate) rpc_connections_accepted: AtomicU64,
    pub(crate) rpc_requests_sent: AtomicU64,
    pub(crate) rpc_requests_failed: AtomicU64,
    pub(crate) rpc_requests_served: AtomicU64,
    pub(crate) dial_failures: AtomicU64,
    pub(crate) handshake_failures_in: AtomicU64,
    pub(crate) handshake_failures_out: AtomicU64,
    pub(crate) oversized_frames: AtomicU64,
}

/// A reading of this node's link counters (all since the process started).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MetricsSnapshot {
    /// Bytes of proxied IMAP sessions this node pumped from its clients to the owners.
    pub session_bytes_to_owner: u64,
    /// Bytes of proxied IMAP sessions this node pumped from the owners to its clients.
    pub session_bytes_from_owner: u64,
    /// RPC frames (requests as dialer, answers as listener), headers included.
    pub rpc_bytes_sent: u64,
    /// RPC frames received (answers as dialer, requests as listener), headers included.
    pub rpc_bytes_received: u64,
    /// Sessions this node proxied to an owner (`open_session` that succeeded).
    pub sessions_opened: u64,
    /// Proxied sessions this node accepted as owner.
    pub sessions_accepted: u64,
    /// RPC connections dialed (a pool that reconnects counts again).
    pub rpc_connections_opened: u64,
    /// RPC connections accepted.
    pub rpc_connections_accepted: u64,
    /// RPC requests sent, and those of them that got no answer (lost, timed out, refused).
    pub rpc_requests_sent: u64,
    pub rpc_requests_failed: u64,
    /// RPC requests this node answered as listener.
    pub rpc_requests_served: u64,
    /// TCP connects to another node that failed.
    pub dial_failures: u64,
    /// Incoming connections refused during the handshake (garbage, stall, wrong cluster,
    /// wrong node, wrong secret): a rising count is a misconfigured node or a probe.
    pub handshake_failures_in: u64,
    /// Outgoing handshakes that failed (refused by the peer, or the peer could not prove the
    /// secret).
    pub handshake_failures_out: u64,
    /// Frames refused because they claimed more than `max_frame`.
    pub oversized_frames: u64,
}

impl Metrics {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> MetricsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        MetricsSnapshot {
            session_bytes_to_owner: get(&self.session_bytes_to_owner),
            session_bytes_from_owner: get(&self.session_bytes_from_owner),
            rpc_bytes_sent: get(&self.rpc_bytes_sent),
            rpc_bytes_received: get(&self.rpc_bytes_received),
            sessions_opened: get(&self.sessions_opened),
            sessions_accepted: get(&self.sessions_accepted),
            rpc_connections_opened: get(&self.rpc_connections_opened),
            rpc_connections_accepted: get(&self.rpc_connections_accepted),
            rpc_requests_sent: get(&self.rpc_requests_sent),
            rpc_requests_failed: get(&self.rpc_requests_failed),
            rpc_requests_served: get(&self.rpc_requests_served),
            dial_failures: get(&self.dial_failures),
            handshake_failures_in: get(&self.handshake_failures_in),
            handshake_failures_out: get(&self.handshake_failures_out),
            oversized_frames: get(&self.oversized_frames),
        }
    }
}
