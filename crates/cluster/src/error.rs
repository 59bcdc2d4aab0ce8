//! Errors, each saying what went wrong and, where there is one, what to do.

/// Everything the control plane and the CLI functions can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Config(String),
    /// etcd did not answer in time, or answered with an error; names the endpoints tried.
    #[error("etcd at {endpoints}: {cause}")]
    Etcd { endpoints: String, cause: String },
    #[error(
        "cluster {cluster} was created with {existing} partitions but this node has {ours}; P \
         is fixed when the cluster is created, so every node's data dir must have the same \
         partitions"
    )]
    PartitionMismatch {
        cluster: String,
        existing: u32,
        ours: u32,
    },
    #[error("partitions = {0} is out of range for a cluster: use 1 to {max}", max = crate::MAX_PARTITIONS)]
    PartitionCount(u32),
    #[error("cluster {0} has no partition map yet: start a node of it first")]
    NoMap(String),
    #[error(
        "node {node} is already registered in cluster {cluster}: another process runs with the \
         same [cluster] node, or one stopped less than {lease_secs} s ago and its lease has not \
         expired yet"
    )]
    AlreadyRegistered {
        cluster: String,
        node: String,
        lease_secs: u64,
    },
    #[error("partition {partition} does not exist: the cluster has {partitions} (0 to {})", partitions - 1)]
    NoSuchPartition { partition: u32, partitions: u32 },
    #[error("node {0} is not alive (no registered lease)")]
    NodeNotAlive(String),
    #[error(
        "node {0} is fenced (its lease is not confirmed valid), so it may not take partitions"
    )]
    Fenced(String),
    #[error("node {0} is being drained; undrain it first")]
    NodeDrained(String),
    #[error("partition {partition} is owned by {owner}, which is alive")]
    Owned { partition: u32, owner: String },
    #[error("partition {partition} is already moving to {to}")]
    AlreadyMoving { partition: u32, to: String },
    #[error("partition {partition} is not moving from {from} to {to}")]
    NotMoving {
        partition: u32,
        from: String,
        to: String,
    },
    #[error(
        "partition {partition} is not owned by {node} at epoch {epoch}: the map says {} at epoch \
         {current}",
        owner.as_deref().unwrap_or("no owner")
    )]
    NotOwner {
        partition: u32,
        node: String,
        epoch: u64,
        owner: Option<String>,
        current: u64,
    },
    #[error("node {node} is not a replica of partition {partition}")]
    NotReplica { partition: u32, node: String },
    #[error(
        "partition {partition} has no live owner but live in-sync replicas ({replicas}), which \
         hold its mail: only one of them may take it over (the balancer promotes one), not {to}"
    )]
    InSyncReplicas {
        partition: u32,
        to: String,
        replicas: String,
    },
    #[error("partition {0} changed meanwhile (another claim or move won); read the map again")]
    Conflict(u32),
    #[error("value at {key} is not what ringmail writes: {detail}")]
    Corrupt { key: String, detail: String },
    #[error("the cluster control plane has stopped")]
    Stopped,
}
