//! The functions behind `ringmail cluster status|locate|move|drain`: blocking, each with its
//! own small runtime and bounded by [`ETCD_TIMEOUT`], so a command-line tool gets an answer or
//! an error naming the endpoints within seconds.

use std::fmt;
use std::future::Future;

use serde::Serialize;

use crate::balancer::{self, Action, Params};
use crate::config::ClusterConfig;
use crate::etcd::{Etcd, ETCD_TIMEOUT};
use crate::keys::Keys;
use crate::map::{PartitionMap, PartitionState};
use crate::ownership::{self, batches, commit, Change};
use crate::Error;

/// A connection to the cluster's etcd for one command-line tool.
pub struct Admin {
    runtime: tokio::runtime::Runtime,
    etcd: Etcd,
    keys: Keys,
    cluster: String,
    /// `[cluster] replicas`, for planning a drain as the balancer would.
    replicas: usize,
}

/// The cluster as `ringmail cluster status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    pub cluster: String,
    /// P.
    pub partition_count: u32,
    /// The etcd revision read.
    pub revision: i64,
    pub balancer: Option<String>,
    /// Live nodes, then nodes that own partitions or are drained but are not alive.
    pub nodes: Vec<NodeStatus>,
    pub partitions: Vec<PartitionStatus>,
    /// Copies the map no longer lists their nodes for, as the nodes reported them (the map
    /// holds none of this): an old owner's directory after a failover, a replica copy moved
    /// away, what a move left.
    pub stale_copies: Vec<StaleCopyStatus>,
}

/// A copy of a partition that a node keeps although the map no longer lists it for it
/// (docs/cluster.md, "Stale copies"), as that node reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaleCopyStatus {
    pub node: String,
    pub partition: u32,
    /// The directory, in the node's data dir (`p-0003.replica`, `p-0003`).
    pub dir: String,
    /// `replica`, `old-owner` (a failover gave the partition away while the node was
    /// stopped, or a takeover while it served left it) or `moved` (a completed move left it).
    pub kind: String,
    /// Why it is kept, or when it may go.
    pub state: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeStatus {
    pub id: String,
    pub alive: bool,
    pub drained: bool,
    /// Node-to-node address (absent for a node that is not alive).
    pub internal: Option<String>,
    pub client: Vec<String>,
    /// Unix seconds when the live process registered.
    pub started: Option<u64>,
    /// Partitions owned.
    pub owns: usize,
    /// Partitions it holds a replica of.
    pub replicas: usize,
    /// Its `[cluster] zone` (empty: none, or not alive).
    pub zone: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionStatus {
    pub partition: u32,
    /// `null` while never assigned.
    pub owner: Option<String>,
    pub epoch: u64,
    /// `active` or `moving`.
    pub state: &'static str,
    /// The target of a pending move.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// The nodes holding a copy, in the order the map lists them.
    pub replicas: Vec<ReplicaStatus>,
    /// Where the owner's log ends, as its node reported it (absent when it was not asked or
    /// did not answer, or holds the partition closed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<LogPosition>,
}

/// A point in a partition's log: a segment and a byte offset in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct LogPosition {
    pub segment: u32,
    pub offset: u64,
}

impl fmt::Display for LogPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.segment, self.offset)
    }
}

/// A replica as its partition's owner sees it, from the owner's node (the data plane's side
/// of `status`; the map holds none of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ReplicaProgress {
    /// `streaming` (every batch goes to it as it is written) or `seeding` (copy rounds).
    pub state: &'static str,
    /// Where the replica's copy is known durable (absent until the first round ended).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<LogPosition>,
    /// Batches written on the owner that the replica has not confirmed yet, and their records.
    pub lag_batches: u64,
    pub lag_records: u64,
    /// How long the oldest of them has waited, in milliseconds (0 when none waits).
    pub lag_ms: u64,
}

/// One replica of a partition: what the map says, and what its owner reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplicaStatus {
    pub node: String,
    /// Holds every write the owner acknowledged (it may be promoted if the owner dies).
    pub in_sync: bool,
    pub alive: bool,
    /// Being moved to another node by the balancer: dropped once its replacement is in sync.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub leaving: bool,
    /// Absent when the owner's node was not asked or did not answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<ReplicaProgress>,
}

/// Where a user's mail is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    pub user: String,
    pub partition: u32,
    pub owner: Option<String>,
    pub epoch: u64,
    pub alive: bool,
}

/// What `move_partition` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Moved {
    /// The live owner was asked to hand the partition over (the data plane copies it, then
    /// the owner changes).
    Intent {
        partition: u32,
        from: String,
        to: String,
    },
    /// The partition had no live owner and was given to the node directly.
    Assigned {
        partition: u32,
        to: String,
        epoch: u64,
    },
    /// Nothing to do.
    Already { partition: u32, to: String },
}

/// What `drain` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drained {
    pub node: String,
    /// Partitions of the node now marked to move elsewhere.
    pub moving: usize,
    /// Partitions the node still owns with no move pending (no other node could take them).
    pub stuck: usize,
    /// Partitions it holds a replica of: the balancer places another replica of each and
    /// drops this one once the new one is in sync.
    pub replicas: usize,
}

impl Admin {
    /// Prepares a client for the cluster of `config` (connections open at the first request).
    pub fn connect(config: &ClusterConfig) -> Result<Admin, Error> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Config(format!("cannot start a runtime: {e}")))?;
        let etcd = runtime.block_on(Etcd::connect(&config.etcd))?;
        Ok(Admin {
            runtime,
            etcd,
            keys: Keys::new(&config.name),
            cluster: config.name.clone(),
            replicas: config.replicas as usize,
        })
    }

    /// Nodes and partitions, read at one revision.
    pub fn status(&self) -> Result<Status, Error> {
        let map = self.run(self.load())?;
        Ok(Status::of(&map))
    }

    /// The partition of `user` and its owner.
    pub fn locate(&self, user: &str) -> Result<Location, Error> {
        let map = self.run(self.load())?;
        let partition = map.partition_of(user);
        let a = map.assignment(partition);
        Ok(Location {
            user: user.to_string(),
            partition,
            owner: a.owner.clone(),
            epoch: a.epoch,
            alive: map.live_owner(partition).is_some(),
        })
    }

    /// Moves partition `p` to node `to`: a move intent when the owner is alive (the data
    /// plane carries it out), a direct assignment when it has no live owner.
    pub fn move_partition(&self, p: u32, to: &str) -> Result<Moved, Error> {
        self.run(async {
            let map = self.load().await?;
            ownership::check_partition(p, map.partitions)?;
            if !map.alive(to) {
                return Err(Error::NodeNotAlive(to.to_string()));
            }
            if map.drained.contains(to) {
                return Err(Error::NodeDrained(to.to_string()));
            }
            let current = map.assignment(p);
            let already = Moved::Already {
                partition: p,
                to: to.to_string(),
            };
            if current.owned_by(to) {
                return Ok(already);
            }
            match current.moving_to() {
                Some(target) if target == to => return Ok(already),
                Some(target) => {
                    return Err(Error::AlreadyMoving {
                        partition: p,
                        to: target.to_string(),
                    })
                }
                None => {}
            }
            if map.live_owner(p).is_none() {
                ownership::check_takeover(&map, p, to)?;
            }
            let (change, moved) = match map.live_owner(p) {
                Some(owner) => (
                    Change::intent(p, current, to).expect("has an owner"),
                    Moved::Intent {
                        partition: p,
                        from: owner.id.clone(),
                        to: to.to_string(),
                    },
                ),
                None => {
                    let change = Change::assign(p, current, to);
                    let epoch = change.new.epoch;
                    (
                        change,
                        Moved::Assigned {
                            partition: p,
                            to: to.to_string(),
                            epoch,
                        },
                    )
                }
            };
            match commit(&self.etcd, &self.keys, &[change], None).await? {
                Some(_) => Ok(moved),
                None => Err(Error::Conflict(p)),
            }
        })
    }

    /// Marks `node` as drained (it gets no partitions until [`Admin::undrain`]) and marks all
    /// its partitions to move to the other nodes, evenly.
    pub fn drain(&self, node: &str) -> Result<Drained, Error> {
        self.run(async {
            self.etcd.put(&self.keys.drain(node), b"").await?;
            // The balancer may be writing too; a lost race is retried from a fresh read.
            let params = Params {
                assign_new: true,
                replicas: self.replicas,
                ..Params::default()
            };
            for _ in 0..3 {
                let map = self.load().await?;
                // The moves of the node's partitions; its replicas are replaced by the
                // balancer, each once its replacement is in sync.
                let changes: Vec<Change> = balancer::plan(&map, &params)
                    .into_iter()
                    .filter(|a| {
                        let entry = map.assignment(a.partition());
                        matches!(a, Action::Move { .. } | Action::Cancel { .. })
                            && (entry.owned_by(node) || entry.moving_to() == Some(node))
                    })
                    .filter_map(|a| a.change(&map))
                    .collect();
                let mut lost = false;
                for changes in batches(changes, Change::compares) {
                    if commit(&self.etcd, &self.keys, &changes, None)
                        .await?
                        .is_none()
                    {
                        lost = true;
                        break;
                    }
                }
                if !lost {
                    break;
                }
            }
            let map = self.load().await?;
            let mine = map.assignments.iter().filter(|a| a.owned_by(node));
            let (moving, stuck) = mine.fold((0, 0), |(m, s), a| match a.state {
                PartitionState::Moving { .. } => (m + 1, s),
                PartitionState::Active => (m, s + 1),
            });
            Ok(Drained {
                node: node.to_string(),
                moving,
                stuck,
                replicas: map.replica_count(node),
            })
        })
    }

    /// Lets a drained node receive partitions again.
    pub fn undrain(&self, node: &str) -> Result<(), Error> {
        self.run(async {
            self.etcd.delete(&self.keys.drain(node)).await?;
            Ok(())
        })
    }

    async fn load(&self) -> Result<PartitionMap, Error> {
        self.etcd.load_map(&self.keys, &self.cluster).await
    }

    /// Runs `op` to completion. Each etcd call in it gives up after [`ETCD_TIMEOUT`]; the
    /// whole is bounded too, for operations of several calls.
    fn run<T>(&self, op: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
        self.runtime.block_on(async {
            match tokio::time::timeout(2 * ETCD_TIMEOUT, op).await {
                Ok(result) => result,
                Err(_) => Err(Error::Etcd {
                    endpoints: self.etcd.endpoints.clone(),
                    cause: format!("no answer within {} s", (2 * ETCD_TIMEOUT).as_secs()),
                }),
            }
        })
    }
}

impl Status {
    fn of(map: &PartitionMap) -> Status {
        let mut nodes: Vec<NodeStatus> = map
            .nodes
            .values()
            .map(|n| NodeStatus {
                id: n.id.clone(),
                alive: true,
                drained: map.drained.contains(&n.id),
                internal: Some(n.internal.clone()),
                client: n.client.clone(),
                started: Some(n.started),
                owns: map.owned_count(&n.id),
                replicas: map.replica_count(&n.id),
                zone: n.zone.clone(),
            })
            .collect();
        let mut gone: Vec<&str> = map
            .assignments
            .iter()
            .flat_map(|a| a.owner.iter().chain(&a.replicas))
            .map(String::as_str)
            .chain(map.drained.iter().map(String::as_str))
            .filter(|n| !map.alive(n))
            .collect();
        gone.sort_unstable();
        gone.dedup();
        nodes.extend(gone.into_iter().map(|id| NodeStatus {
            id: id.to_string(),
            alive: false,
            drained: map.drained.contains(id),
            internal: None,
            client: Vec::new(),
            started: None,
            owns: map.owned_count(id),
            replicas: map.replica_count(id),
            zone: String::new(),
        }));
        let partitions = map
            .assignments
            .iter()
            .enumerate()
            .map(|(p, a)| PartitionStatus {
                partition: p as u32,
                owner: a.owner.clone(),
                epoch: a.epoch,
                state: match a.state {
                    PartitionState::Active => "active",
                    PartitionState::Moving { .. } => "moving",
                },
                to: a.moving_to().map(str::to_string),
                replicas: a
                    .replicas
                    .iter()
                    .map(|n| ReplicaStatus {
                        node: n.clone(),
                        in_sync: a.in_sync_on(n),
                        alive: map.alive(n),
                        leaving: a.leaving_on(n),
                        progress: None,
                    })
                    .collect(),
                end: None,
            })
            .collect();
        Status {
            cluster: map.cluster.clone(),
            partition_count: map.partitions,
            revision: map.revision,
            balancer: map.balancer.clone(),
            nodes,
            partitions,
            stale_copies: Vec::new(),
        }
    }

    /// Records what partition `p`'s owner reported: its log end and, per replica, the
    /// replica's progress. Reports for partitions or replicas the map no longer lists are
    /// ignored (the map was read first; the report may be a moment newer).
    pub fn set_progress(
        &mut self,
        p: u32,
        end: LogPosition,
        replicas: &[(String, ReplicaProgress)],
    ) {
        let Some(status) = self.partitions.get_mut(p as usize) else {
            return;
        };
        status.end = Some(end);
        for (node, progress) in replicas {
            if let Some(r) = status.replicas.iter_mut().find(|r| &r.node == node) {
                r.progress = Some(*progress);
            }
        }
    }

    /// The form `status --json` prints.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("plain structs serialize")
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let alive = self.nodes.iter().filter(|n| n.alive).count();
        writeln!(
            f,
            "cluster {}: {} partitions, {alive} nodes alive, balancer {}, revision {}",
            self.cluster,
            self.partition_count,
            self.balancer.as_deref().unwrap_or("none"),
            self.revision
        )?;
        for n in &self.nodes {
            write!(
                f,
                "node {} {} owns {} replicas {}",
                n.id,
                if n.alive { "alive" } else { "dead" },
                n.owns,
                n.replicas
            )?;
            if !n.zone.is_empty() {
                write!(f, " zone {}", n.zone)?;
            }
            if n.drained {
                write!(f, " drained")?;
            }
            if let Some(internal) = &n.internal {
                write!(f, " internal {internal}")?;
            }
            for client in &n.client {
                write!(f, " {client}")?;
            }
            writeln!(f)?;
        }
        for p in &self.partitions {
            write!(
                f,
                "partition {} owner {} epoch {} {}",
                p.partition,
                p.owner.as_deref().unwrap_or("none"),
                p.epoch,
                p.state
            )?;
            if let Some(to) = &p.to {
                write!(f, " to {to}")?;
            }
            if let Some(end) = &p.end {
                write!(f, " end {end}")?;
            }
            for r in &p.replicas {
                let sync = if r.in_sync { "in-sync" } else { "seeding" };
                let dead = if r.alive { "" } else { ",dead" };
                let leaving = if r.leaving { ",leaving" } else { "" };
                write!(f, " replica {}({sync}{dead}{leaving}", r.node)?;
                if let Some(progress) = &r.progress {
                    match &progress.position {
                        Some(at) => write!(f, " at {at}")?,
                        None => write!(f, " {}", progress.state)?,
                    }
                    write!(
                        f,
                        " lag {} records {} ms",
                        progress.lag_records, progress.lag_ms
                    )?;
                }
                write!(f, ")")?;
            }
            writeln!(f)?;
        }
        for c in &self.stale_copies {
            writeln!(
                f,
                "stale copy of partition {} on {}: {} ({}), {}",
                c.partition, c.node, c.dir, c.kind, c.state
            )?;
        }
        Ok(())
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "partition {} owner {} epoch {}",
            self.partition,
            self.owner.as_deref().unwrap_or("none"),
            self.epoch
        )?;
        match &self.owner {
            Some(owner) if !self.alive => write!(f, " ({owner} is not alive)"),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Moved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Moved::Intent {
                partition,
                from,
                to,
            } => write!(
                f,
                "partition {partition} will move from {from} to {to} once {from} has handed it over"
            ),
            Moved::Assigned {
                partition,
                to,
                epoch,
            } => write!(
                f,
                "partition {partition} had no live owner: assigned to {to} at epoch {epoch}"
            ),
            Moved::Already { partition, to } => {
                write!(f, "partition {partition} is already on or moving to {to}")
            }
        }
    }
}

impl fmt::Display for Drained {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "node {} drained: {} partitions marked to move",
            self.node, self.moving
        )?;
        if self.replicas > 0 {
            write!(
                f,
                ", its {} replicas are replaced as new ones are in sync",
                self.replicas
            )?;
        }
        if self.stuck > 0 {
            write!(
                f,
                ", {} stay for now (no other live, undrained node can take them)",
                self.stuck
            )?;
        }
        Ok(())
    }
}
