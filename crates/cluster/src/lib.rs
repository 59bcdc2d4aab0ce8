//! ringmail's cluster control plane: everything that talks to etcd, and the local copy of the
//! partition map the data plane routes by. See docs/cluster.md.
//!
//! - [`ControlPlane::start`] joins a node to the cluster and runs one control thread (with
//!   its own tokio runtime) for all etcd traffic: the lease, the map watch, the balancer.
//! - [`ClusterView`] is what the executors hold: lock-free reads of the map, ownership and
//!   fencing checks, change notifications, and claims and completed moves as futures.
//! - [`Admin`] is the blocking API behind `ringmail cluster status|locate|move|drain`.

mod balancer;
mod cli;
mod config;
mod control;
mod error;
mod etcd;
mod keys;
mod map;
mod membership;
mod metrics;
mod ownership;
mod view;
mod watch;

pub use balancer::{spread, SETTLE};
pub use cli::{
    Admin, Drained, Location, LogPosition, Moved, NodeStatus, PartitionStatus, ReplicaProgress,
    ReplicaStatus, StaleCopyStatus, Status,
};
pub use config::{ClusterConfig, MAX_REPLICAS, MIN_SECRET_LEN};
pub use control::{ControlPlane, Registration};
pub use error::Error;
pub use etcd::ETCD_TIMEOUT;
pub use map::{Assignment, NodeInfo, PartitionMap, PartitionState, MAX_PARTITIONS};
pub use metrics::MetricsSnapshot;
pub use ownership::CopyKind;
pub use ringmail_store::partition_of;
pub use view::{Changes, ClusterView, Owner, PartitionChange, ReplicaInfo, Subscription};
