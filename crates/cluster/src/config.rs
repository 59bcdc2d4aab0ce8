//! The `[cluster]` section of the main config.
//!
//! Without it ringmail runs alone; with it the node joins the cluster `name` through the etcd
//! endpoints listed here. Unknown keys are refused so a typo (or a setting from a later
//! release) is an error at start instead of a silently ignored line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::Error;

/// The shortest node-to-node secret accepted: 32 bytes is 256 bits when random.
pub const MIN_SECRET_LEN: usize = 32;

/// Settings of one cluster node.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// The cluster's name: all of its keys live under `/ringmail/<name>/`, so one etcd can
    /// hold several clusters (staging and production, say).
    pub name: String,
    /// This node's id, unique in the cluster and stable across restarts (it is the owner
    /// named in the partition map).
    pub node: String,
    /// etcd client URLs (`http://host:2379`); every member should be listed so the node keeps
    /// working while one is down.
    pub etcd: Vec<String>,
    /// Where this node accepts node-to-node connections (proxied sessions, LMTP forwarding,
    /// partition moves).
    pub listen: SocketAddr,
    /// What the other nodes dial to reach `listen`; defaults to `listen`, which must then not
    /// be a wildcard address.
    #[serde(default)]
    pub advertise: Option<String>,
    /// A file holding the secret every node of the cluster shares, for node-to-node
    /// authentication (at least [`MIN_SECRET_LEN`] bytes).
    pub secret_file: PathBuf,
    /// Seconds a node stays a member without renewing its etcd lease. It is renewed every
    /// quarter of that, so two lost renewals are survived; it is also how long a crashed
    /// node's partitions stay unserved before they are reassigned. 4 s outlasts an etcd leader
    /// election (1 s election timeout by default, about 2 s in a bad case) and a long pause of
    /// this process, and brings a crashed owner's users back within 5 s (docs/cluster.md).
    #[serde(default = "default_lease_secs")]
    pub lease_secs: u64,
    /// Copies of each partition kept on other nodes than its owner (0: no replication). The
    /// elected balancer places them by its own setting, so every node should have the same.
    #[serde(default = "default_replicas")]
    pub replicas: u32,
    /// Whether a write is acknowledged only once every in-sync replica has it durable (true),
    /// or after the local fsync, shipped to the replicas afterwards (false: a failover can
    /// lose the last writes acknowledged before the owner died).
    #[serde(default = "default_sync")]
    pub sync: bool,
    /// Where this node runs (a rack, a data centre), published in its registration: the
    /// balancer puts a partition's copies in different zones when it can. Empty: none.
    #[serde(default)]
    pub zone: String,
    /// Replica moves (rebalancing, docs/cluster.md "Replicas and failover") the balancer
    /// runs at once towards one receiving node. Each seeds a whole partition copy there, so
    /// this bounds the load a returning node takes on, and how fast it refills.
    #[serde(default = "default_replica_moves_per_node")]
    pub replica_moves_per_node: u32,
}

/// The most replicas per partition: each is a full copy and a synchronous round trip.
pub const MAX_REPLICAS: u32 = 4;

fn default_lease_secs() -> u64 {
    4
}

fn default_replicas() -> u32 {
    1
}

fn default_sync() -> bool {
    true
}

/// Four seeds at once keep a returning node's disk and link busy (one seed alone waits for
/// each chunk's synced write before the next, so it leaves both idle most of the time: a
/// move copies four files at once for the same reason), while the node still has room to
/// serve the partitions it gets back; see docs/cluster.md for what a refill takes.
pub const DEFAULT_REPLICA_MOVES_PER_NODE: u32 = 4;

/// The most replica moves at once per receiving node: beyond this the seeds only share the
/// same disk.
pub const MAX_REPLICA_MOVES_PER_NODE: u32 = 64;

fn default_replica_moves_per_node() -> u32 {
    DEFAULT_REPLICA_MOVES_PER_NODE
}

impl ClusterConfig {
    /// Refuses settings that would fail later in a less clear way.
    pub fn validate(&self) -> Result<(), Error> {
        check_id("name", &self.name)?;
        check_id("node", &self.node)?;
        if self.etcd.is_empty() {
            return Err(Error::Config(
                "[cluster] etcd must list at least one endpoint, e.g. [\"http://10.0.0.1:2379\"]"
                    .into(),
            ));
        }
        for endpoint in &self.etcd {
            if endpoint.starts_with("https://") {
                return Err(Error::Config(format!(
                    "[cluster] etcd endpoint {endpoint}: TLS to etcd is not supported yet; use \
                     http:// on a private network"
                )));
            }
            if !endpoint.starts_with("http://") || endpoint.len() <= "http://".len() {
                return Err(Error::Config(format!(
                    "[cluster] etcd endpoint {endpoint:?} must look like http://host:2379"
                )));
            }
        }
        if self.advertise.is_none() && self.listen.ip().is_unspecified() {
            return Err(Error::Config(format!(
                "[cluster] listen is {} (any address), which other nodes cannot dial: set \
                 advertise to this node's address, e.g. \"10.0.0.1:{}\"",
                self.listen,
                self.listen.port()
            )));
        }
        if !(2..=60).contains(&self.lease_secs) {
            return Err(Error::Config(format!(
                "[cluster] lease_secs = {} is out of range: use 2 to 60 (4 is the default)",
                self.lease_secs
            )));
        }
        if self.replicas > MAX_REPLICAS {
            return Err(Error::Config(format!(
                "[cluster] replicas = {} is out of range: use 0 (no replication) to \
                 {MAX_REPLICAS} (1 is the default)",
                self.replicas
            )));
        }
        if !(1..=MAX_REPLICA_MOVES_PER_NODE).contains(&self.replica_moves_per_node) {
            return Err(Error::Config(format!(
                "[cluster] replica_moves_per_node = {} is out of range: use 1 to \
                 {MAX_REPLICA_MOVES_PER_NODE} ({DEFAULT_REPLICA_MOVES_PER_NODE} is the default)",
                self.replica_moves_per_node
            )));
        }
        if !self.zone.is_empty() {
            check_id("zone", &self.zone)?;
        }
        Ok(())
    }

    /// The node-to-node address the other nodes dial.
    pub fn advertise(&self) -> String {
        self.advertise
            .clone()
            .unwrap_or_else(|| self.listen.to_string())
    }

    /// The etcd lease's time to live.
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_secs)
    }

    /// Reads the shared node-to-node secret (trailing newlines are not part of it).
    pub fn read_secret(&self) -> Result<Vec<u8>, Error> {
        read_secret(&self.secret_file)
    }
}

fn read_secret(path: &Path) -> Result<Vec<u8>, Error> {
    let mut secret = std::fs::read(path).map_err(|e| {
        Error::Config(format!(
            "[cluster] secret_file {}: {e}; create it with e.g. `head -c 32 /dev/urandom | \
             base64 > {}` and copy it to every node",
            path.display(),
            path.display()
        ))
    })?;
    while secret.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        secret.pop();
    }
    if secret.len() < MIN_SECRET_LEN {
        return Err(Error::Config(format!(
            "[cluster] secret_file {} holds {} bytes; at least {MIN_SECRET_LEN} are needed",
            path.display(),
            secret.len()
        )));
    }
    Ok(secret)
}

/// Names end up inside etcd keys (`/ringmail/<name>/nodes/<node>`), so a slash or a space
/// would make keys that other tools misread.
fn check_id(what: &str, value: &str) -> Result<(), Error> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "[cluster] {what} = {value:?}: use 1 to 64 letters, digits, '-', '_' or '.'"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ClusterConfig, String> {
        toml::from_str::<ClusterConfig>(text).map_err(|e| e.to_string())
    }

    const MINIMAL: &str = r#"
        name = "prod"
        node = "n1"
        etcd = ["http://10.0.0.5:2379"]
        listen = "10.0.0.1:7143"
        secret_file = "/etc/ringmail/cluster.secret"
    "#;

    #[test]
    fn defaults() {
        let config = parse(MINIMAL).unwrap();
        assert_eq!(config.lease_secs, 4);
        assert_eq!(config.advertise(), "10.0.0.1:7143");
        assert_eq!(
            (config.replicas, config.sync, config.zone.as_str()),
            (1, true, "")
        );
        assert_eq!(
            config.replica_moves_per_node,
            DEFAULT_REPLICA_MOVES_PER_NODE
        );
        config.validate().unwrap();
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = parse(&format!("{MINIMAL}\nreplica = 3")).unwrap_err();
        assert!(err.contains("replica"), "{err}");
        let err = parse(&format!("{MINIMAL}\nlease_sec = 3")).unwrap_err();
        assert!(err.contains("lease_sec"), "{err}");
    }

    #[test]
    fn replication_settings() {
        let text = format!("{MINIMAL}\nreplicas = 2\nsync = false\nzone = \"fra-1\"");
        let config = parse(&text).unwrap();
        config.validate().unwrap();
        assert_eq!(
            (config.replicas, config.sync, config.zone.as_str()),
            (2, false, "fra-1")
        );
        let off = parse(&format!("{MINIMAL}\nreplicas = 0")).unwrap();
        off.validate().unwrap();
        let fast = parse(&format!("{MINIMAL}\nreplica_moves_per_node = 16")).unwrap();
        fast.validate().unwrap();
        assert_eq!(fast.replica_moves_per_node, 16);
    }

    #[test]
    fn wildcard_listen_needs_advertise() {
        let text = MINIMAL.replace("10.0.0.1:7143", "0.0.0.0:7143");
        let err = parse(&text).unwrap().validate().unwrap_err().to_string();
        assert!(err.contains("advertise"), "{err}");
        let config = parse(&format!("{text}\nadvertise = \"mail1.internal:7143\"")).unwrap();
        config.validate().unwrap();
        assert_eq!(config.advertise(), "mail1.internal:7143");
    }

    #[test]
    fn bad_values_are_explained() {
        let cases = [
            (MINIMAL.replace("\"n1\"", "\"n/1\""), "node"),
            (MINIMAL.replace("\"prod\"", "\"\""), "name"),
            (
                MINIMAL.replace("[\"http://10.0.0.5:2379\"]", "[]"),
                "at least one",
            ),
            (MINIMAL.replace("http://", "https://"), "TLS"),
            (MINIMAL.replace("http://", ""), "http://host"),
            (format!("{MINIMAL}\nlease_secs = 1"), "lease_secs"),
            (format!("{MINIMAL}\nreplicas = 5"), "replicas = 5"),
            (format!("{MINIMAL}\nzone = \"eu west\""), "zone"),
            (
                format!("{MINIMAL}\nreplica_moves_per_node = 0"),
                "replica_moves_per_node = 0",
            ),
        ];
        for (text, needle) in cases {
            let err = parse(&text).unwrap().validate().unwrap_err().to_string();
            assert!(err.contains(needle), "{needle}: {err}");
        }
    }

    #[test]
    fn secret_file_must_exist_and_be_long_enough() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        let err = read_secret(&path).unwrap_err().to_string();
        assert!(
            err.contains("secret_file") && err.contains("urandom"),
            "{err}"
        );
        std::fs::write(&path, "short\n").unwrap();
        let err = read_secret(&path).unwrap_err().to_string();
        assert!(err.contains("5 bytes"), "{err}");
        std::fs::write(&path, format!("{}\n", "k".repeat(40))).unwrap();
        assert_eq!(read_secret(&path).unwrap(), "k".repeat(40).into_bytes());
    }
}
