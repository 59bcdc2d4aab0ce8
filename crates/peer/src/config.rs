//! What a node's link needs to know: who it is, the shared secret, and the limits.
//!
//! The lead builds it from the `[cluster]` section (`name`, `node`, `read_secret()`); the
//! limits have defaults that fit the store and a LAN, and tests shorten the timeouts.

use std::fmt;
use std::time::Duration;

use crate::Error;

/// Room for everything an RPC payload carries beside a message of the largest size the store
/// accepts: an LMTP delivery adds the user, the folder, the headers the receiving node
/// prepends (Received, Return-Path, Delivered-To) and its own encoding.
pub const FRAME_OVERHEAD: usize = 1 << 20;

/// The default limit on one frame's payload (RPC request or answer, session header): the
/// store's largest message plus [`FRAME_OVERHEAD`].
pub const DEFAULT_MAX_FRAME: usize = ringmail_store::MAX_MESSAGE_SIZE + FRAME_OVERHEAD;

/// The most a frame can claim: its length travels as a u32, which also counts the 10 bytes
/// of request id and kind or status.
pub const MAX_FRAME_LIMIT: usize = u32::MAX as usize - 10;

/// Settings of this node's end of every node-to-node connection.
#[derive(Clone)]
pub struct LinkConfig {
    /// The cluster's name: both ends must agree (`[cluster] name`).
    pub cluster: String,
    /// This node's id (`[cluster] node`): what a dialer must expect to reach this node.
    pub node: String,
    /// The secret every node shares (`[cluster] secret_file`).
    pub(crate) secret: Vec<u8>,
    /// How long dialing (TCP connect) may take. Nodes share a LAN: 2 s is many round trips.
    pub connect_timeout: Duration,
    /// How long a connection may take from accept until it is authenticated and has said
    /// what it is for (session header read). An unauthenticated peer is closed after it.
    pub handshake_timeout: Duration,
    /// The largest payload of one frame: an RPC request or answer, or a session header
    /// (with the bytes the client pipelined). A claimed length over it is refused before
    /// anything is allocated for it.
    pub max_frame: usize,
    /// RPC connections to each peer node, per executor.
    pub pool_size: usize,
    /// RPC requests in flight on one connection (the dialer waits for a free slot, the
    /// listener stops reading new requests while this many run).
    pub max_in_flight: usize,
    /// How long one RPC call may take, from picking a connection to its answer. A 256 MiB
    /// delivery crosses a 1 Gbit/s link in about 2 s, and its fsync on the owner adds little.
    pub rpc_timeout: Duration,
}

impl LinkConfig {
    /// A configuration with the default limits.
    pub fn new(cluster: impl Into<String>, node: impl Into<String>, secret: Vec<u8>) -> Self {
        LinkConfig {
            cluster: cluster.into(),
            node: node.into(),
            secret,
            connect_timeout: Duration::from_secs(2),
            handshake_timeout: Duration::from_secs(3),
            max_frame: DEFAULT_MAX_FRAME,
            pool_size: 2,
            max_in_flight: 64,
            rpc_timeout: Duration::from_secs(60),
        }
    }

    /// Refuses settings the wire format cannot carry or that make no sense.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        let bad = |what: String| Err(Error::Config(what));
        if self.secret.is_empty() {
            return bad("the node-to-node secret is empty".into());
        }
        for (what, value) in [("cluster name", &self.cluster), ("node id", &self.node)] {
            if value.is_empty() || value.len() > 255 {
                return bad(format!("the {what} {value:?} must be 1 to 255 bytes"));
            }
        }
        if !(1024..=MAX_FRAME_LIMIT).contains(&self.max_frame) {
            return bad(format!(
                "max_frame = {} must be between 1024 and {MAX_FRAME_LIMIT}",
                self.max_frame
            ));
        }
        if self.pool_size == 0 || self.max_in_flight == 0 {
            return bad("pool_size and max_in_flight must be at least 1".into());
        }
        let zero = [
            self.connect_timeout,
            self.handshake_timeout,
            self.rpc_timeout,
        ]
        .contains(&Duration::ZERO);
        if zero {
            return bad("timeouts must not be zero".into());
        }
        Ok(())
    }
}

impl fmt::Debug for LinkConfig {
    /// Everything but the secret, so a config can be logged.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkConfig")
            .field("cluster", &self.cluster)
            .field("node", &self.node)
            .field("secret", &format_args!("<{} bytes>", self.secret.len()))
            .field("connect_timeout", &self.connect_timeout)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("max_frame", &self.max_frame)
            .field("pool_size", &self.pool_size)
            .field("max_in_flight", &self.max_in_flight)
            .field("rpc_timeout", &self.rpc_timeout)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_frame_fits_the_largest_message() {
        let config = LinkConfig::new("prod", "n1", vec![7; 32]);
        assert!(config.max_frame > ringmail_store::MAX_MESSAGE_SIZE);
        assert!(config.max_frame <= MAX_FRAME_LIMIT);
        config.validate().unwrap();
    }

    #[test]
    fn debug_hides_the_secret() {
        let config = LinkConfig::new("prod", "n1", b"very-secret-value-0123456789abcdef".to_vec());
        let text = format!("{config:?}");
        assert!(!text.contains("very-secret"), "{text}");
        assert!(text.contains("<34 bytes>"), "{text}");
    }

    #[test]
    fn impossible_settings_are_refused() {
        let base = LinkConfig::new("prod", "n1", vec![7; 32]);
        let cases: Vec<(LinkConfig, &str)> = vec![
            (
                LinkConfig {
                    secret: vec![],
                    ..base.clone()
                },
                "secret",
            ),
            (
                LinkConfig {
                    node: String::new(),
                    ..base.clone()
                },
                "node id",
            ),
            (
                LinkConfig {
                    cluster: "c".repeat(256),
                    ..base.clone()
                },
                "cluster name",
            ),
            (
                LinkConfig {
                    max_frame: 10,
                    ..base.clone()
                },
                "max_frame",
            ),
            (
                LinkConfig {
                    max_frame: usize::MAX,
                    ..base.clone()
                },
                "max_frame",
            ),
            (
                LinkConfig {
                    pool_size: 0,
                    ..base.clone()
                },
                "pool_size",
            ),
            (
                LinkConfig {
                    rpc_timeout: Duration::ZERO,
                    ..base.clone()
                },
                "timeouts",
            ),
        ];
        for (config, needle) in cases {
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains(needle), "{needle}: {err}");
        }
    }
}
