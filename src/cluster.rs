//! Running as one node of a cluster, and `ringmail cluster ...` (docs/cluster.md): the
//! `[cluster]` section made into the control plane's settings, the control plane and the
//! node-to-node link started before the executors, and the operator commands.

use std::path::Path;
use std::sync::Arc;

use ringmail_cluster::{Admin, ClusterConfig, ClusterView, ControlPlane, Registration};
use ringmail_config::Config;
use ringmail_peer::{Link, LinkConfig};
use ringmail_runtime::nodes::{LocalResponse, PeerService, Place, Placement, Remote};
use ringmail_runtime::runtime::Executor;

/// The control plane's settings from `[cluster]`, or None when the node runs alone. Relative
/// paths are under the data dir, like every other path of the config.
pub fn settings(config: &Config, data_dir: &Path) -> Result<Option<ClusterConfig>, String> {
    let section = &config.cluster;
    if !section.enabled() {
        return Ok(None);
    }
    let settings = ClusterConfig {
        name: section.name.clone(),
        node: section.node.clone(),
        etcd: section.etcd.clone(),
        listen: section.listen,
        advertise: (!section.advertise.is_empty()).then(|| section.advertise.clone()),
        secret_file: Config::resolve(data_dir, &section.secret_file),
        lease_secs: section.lease_secs,
        replicas: section.replicas,
        sync: section.sync,
        zone: section.zone.clone(),
        replica_moves_per_node: section.replica_moves_per_node,
    };
    settings.validate().map_err(|e| e.to_string())?;
    Ok(Some(settings))
}

/// Where partitions are served, from the control plane's local copy of the map.
struct MapPlacement(ClusterView);

impl Placement for MapPlacement {
    fn place(&self, partition: u32) -> Place {
        if self.0.is_owner(partition).is_some() {
            return Place::Here;
        }
        match self.0.owner(partition) {
            // Ours but fenced (the lease may have run out): not served until it is renewed.
            Some(owner) if owner.node == self.0.node() => Place::Unserved,
            Some(owner) => Place::Remote(Remote {
                node: owner.node,
                addr: owner.internal,
            }),
            None => Place::Unserved,
        }
    }
}

/// A running cluster node: its control plane, and what the executors need of the cluster.
pub struct Node {
    /// The control plane (leave the cluster with `shutdown`).
    pub control: ControlPlane,
    /// The map, link and handlers for the runtime.
    pub peer: PeerService,
}

/// Joins the cluster of `settings`: registers this node in etcd, loads the map and prepares
/// the node-to-node link. Fails within a few seconds when etcd cannot be reached.
pub fn start(config: &Config, settings: ClusterConfig) -> Result<Node, String> {
    let secret = settings.read_secret().map_err(|e| e.to_string())?;
    let link = Link::new(LinkConfig::new(&settings.name, &settings.node, secret))
        .map_err(|e| e.to_string())?;
    let client = [
        ("imap", &config.imap.listen),
        ("imaps", &config.imap.listen_tls),
        ("lmtp", &config.lmtp.listen),
    ]
    .iter()
    .flat_map(|(kind, addrs)| addrs.iter().map(move |a| format!("{kind}={a}")))
    .collect();
    let listen = settings.listen;
    let registration = Registration::new(config.storage.partitions, client);
    let control = ControlPlane::start(settings, registration).map_err(|e| e.to_string())?;
    crate::moves::init(control.view());
    let (view, counters) = (control.view(), link.clone());
    ringmail_metrics::endpoint::add_section(Box::new(move || metrics(&view, &counters)));
    let peer = PeerService {
        placement: Arc::new(MapPlacement(control.view())),
        link,
        listen,
        session: ringmail_imap::node_proxy::accept,
        rpc,
    };
    Ok(Node { control, peer })
}

/// Answers what other nodes ask of this one: partition moves, admin sessions and LMTP
/// deliveries.
fn rpc(exec: std::rc::Rc<Executor>, request: ringmail_peer::Request) -> LocalResponse {
    if crate::moves::is_move_kind(request.kind) {
        return crate::moves::serve(exec, request);
    }
    if crate::replication::is_replication_kind(request.kind) {
        return crate::replication::serve_rpc(exec, request);
    }
    if request.kind == ringmail_admin::forward::KIND_ADMIN {
        let answer = ringmail_admin::forward::serve(exec, request.payload);
        return Box::pin(async move {
            let (status, payload) = answer.await;
            ringmail_peer::Response { status, payload }
        });
    }
    ringmail_lmtp::forward::serve(exec, request)
}

/// The cluster's lines of `/metrics`: the control plane's and the link's counters.
fn metrics(view: &ClusterView, link: &Link) -> String {
    let c = view.metrics();
    let l = link.metrics();
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for (labels, value) in samples {
            out.push_str(&format!("{name}{labels} {value}\n"));
        }
    };
    metric(
        "ringmail_cluster_map_version",
        "gauge",
        "Version of this node's copy of the partition map.",
        &[("", c.map_version)],
    );
    metric(
        "ringmail_cluster_fenced",
        "gauge",
        "1 while this node may not act as owner (its etcd lease may have run out).",
        &[("", u64::from(c.fenced))],
    );
    metric(
        "ringmail_cluster_moves_total",
        "counter",
        "Partition moves seen by this node, by stage.",
        &[
            ("{stage=\"marked\"}", c.moves_marked),
            ("{stage=\"completed\"}", c.moves_completed),
            ("{stage=\"cancelled\"}", c.moves_cancelled),
        ],
    );
    metric(
        "ringmail_cluster_failovers_total",
        "counter",
        "Partitions whose owner died that this node's balancer promoted to an in-sync replica.",
        &[("", c.failovers)],
    );
    metric(
        "ringmail_cluster_replicas_total",
        "counter",
        "Replicas this node's balancer placed, dropped (dead, drained, surplus, moved away) \
         and moved to even out the replicas per node.",
        &[
            ("{change=\"placed\"}", c.replicas_placed),
            ("{change=\"dropped\"}", c.replicas_dropped),
            ("{change=\"moved\"}", c.replicas_moved),
        ],
    );
    if let Some(m) = crate::moves::COUNTERS.get() {
        let get = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        metric(
            "ringmail_partition_moves_out_total",
            "counter",
            "Partition moves this node carried out, by result.",
            &[
                ("{result=\"completed\"}", get(&m.completed)),
                ("{result=\"failed\"}", get(&m.failed)),
            ],
        );
        metric(
            "ringmail_partition_move_bytes_total",
            "counter",
            "Bytes of partitions this node moved away.",
            &[("", get(&m.bytes))],
        );
        metric(
            "ringmail_partition_move_freeze_microseconds",
            "gauge",
            "Writes frozen for the switch: the sum over all moves and the last move's.",
            &[
                ("{which=\"sum\"}", get(&m.freeze_us_sum)),
                ("{which=\"last\"}", get(&m.freeze_us_last)),
            ],
        );
    }
    {
        let r = &crate::replication::COUNTERS;
        let get = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        metric(
            "ringmail_replication_bytes_total",
            "counter",
            "Bytes of batches and copy rounds this node sent to replicas.",
            &[("", get(&r.bytes))],
        );
        metric(
            "ringmail_replication_batches_total",
            "counter",
            "Group-commit batches replicas acknowledged to this node.",
            &[("", get(&r.batches))],
        );
        metric(
            "ringmail_replication_lag_batches",
            "gauge",
            "Batches queued for replicas and not yet acknowledged.",
            &[("", get(&r.lag_batches))],
        );
        metric(
            "ringmail_replication_lag_records",
            "gauge",
            "Records in the batches queued for replicas and not yet acknowledged.",
            &[("", get(&r.lag_records))],
        );
        metric(
            "ringmail_replication_in_sync_changes_total",
            "counter",
            "Replicas this node added to or dropped from an in-sync set.",
            &[
                ("{change=\"added\"}", get(&r.in_sync_adds)),
                ("{change=\"dropped\"}", get(&r.in_sync_drops)),
            ],
        );
        metric(
            "ringmail_replication_stale_copies_removed_total",
            "counter",
            "Replica copies the map no longer listed this node for, removed after the grace \
             period once the partition's owner and every replica were alive and in sync.",
            &[("", get(&r.stale_copies_removed))],
        );
        let held = crate::replication::stale_copies_held();
        let labels: Vec<(String, u64)> = held
            .iter()
            .map(|(kind, n)| (format!("{{kind=\"{kind}\"}}"), *n))
            .collect();
        let samples: Vec<(&str, u64)> = labels.iter().map(|(l, n)| (l.as_str(), *n)).collect();
        metric(
            "ringmail_replication_stale_copies",
            "gauge",
            "Copies of partitions the map no longer lists this node for, kept now (until their \
             grace period is over and the partition is complete elsewhere, or for the \
             operator): see `ringmail cluster status`.",
            &samples,
        );
        metric(
            "ringmail_replication_old_owner_copies_total",
            "counter",
            "Partition directories this node kept from before a failover (the map gives the \
             partition to another node now) made replica copies or set aside.",
            &[("", get(&r.old_owner_copies))],
        );
        metric(
            "ringmail_replication_moved_copies_removed_total",
            "counter",
            "Partition directories a completed move or a takeover left here (MOVED), removed \
             after the grace period once the partition was complete elsewhere.",
            &[("", get(&r.moved_copies_removed))],
        );
        metric(
            "ringmail_replication_promotions_total",
            "counter",
            "Replica copies this node promoted to serve their partition.",
            &[("", get(&r.promotions))],
        );
    }
    metric(
        "ringmail_node_sessions_total",
        "counter",
        "IMAP sessions proxied to their owner (opened) and served here for another node \
         (accepted).",
        &[
            ("{side=\"opened\"}", l.sessions_opened),
            ("{side=\"accepted\"}", l.sessions_accepted),
        ],
    );
    metric(
        "ringmail_node_bytes_total",
        "counter",
        "Bytes on node-to-node connections.",
        &[
            ("{what=\"session_to_owner\"}", l.session_bytes_to_owner),
            ("{what=\"session_from_owner\"}", l.session_bytes_from_owner),
            ("{what=\"rpc_sent\"}", l.rpc_bytes_sent),
            ("{what=\"rpc_received\"}", l.rpc_bytes_received),
        ],
    );
    metric(
        "ringmail_node_rpc_requests_total",
        "counter",
        "Node-to-node requests (LMTP forwarding): sent, failed, served here.",
        &[
            ("{result=\"sent\"}", l.rpc_requests_sent),
            ("{result=\"failed\"}", l.rpc_requests_failed),
            ("{result=\"served\"}", l.rpc_requests_served),
        ],
    );
    metric(
        "ringmail_node_link_failures_total",
        "counter",
        "Node-to-node dials that failed and handshakes refused, by direction.",
        &[
            ("{what=\"dial\"}", l.dial_failures),
            ("{what=\"handshake_in\"}", l.handshake_failures_in),
            ("{what=\"handshake_out\"}", l.handshake_failures_out),
        ],
    );
    out.push_str(&format!(
        "# HELP ringmail_replication_lag_seconds How long the oldest batch waiting for a \
         replica has waited (0 when none waits).\n\
         # TYPE ringmail_replication_lag_seconds gauge\n\
         ringmail_replication_lag_seconds {:.6}\n",
        crate::replication::lag_seconds()
    ));
    out
}

/// What `ringmail cluster` does.
pub enum Command {
    /// Nodes and partitions.
    Status { json: bool },
    /// A user's partition and its owner.
    Locate { user: String },
    /// Move a partition to a node.
    Move { partition: u32, node: String },
    /// Move all of a node's partitions away.
    Drain { node: String },
    /// Let a drained node receive partitions again.
    Undrain { node: String },
}

/// Runs `command` against the etcd of `[cluster]`.
pub fn command(config: &Config, data_dir: &Path, command: Command) -> Result<String, String> {
    let Some(settings) = settings(config, data_dir)? else {
        return Err(
            "this node is not part of a cluster: [cluster] name is empty in its config".into(),
        );
    };
    let admin = Admin::connect(&settings).map_err(|e| e.to_string())?;
    let out = match command {
        Command::Status { json } => {
            let mut status = admin.status().map_err(|e| e.to_string())?;
            let secret = settings.read_secret().map_err(|e| e.to_string())?;
            let silent = crate::replication::add_progress(&mut status, &settings.name, secret)?;
            for why in silent {
                eprintln!("replication progress not shown for node {why}");
            }
            return Ok(if json {
                status.to_json()
            } else {
                status.to_string()
            });
        }
        Command::Locate { user } => admin.locate(&user).map(|l| l.to_string()),
        Command::Move { partition, node } => admin
            .move_partition(partition, &node)
            .map(|m| m.to_string()),
        Command::Drain { node } => admin.drain(&node).map(|d| d.to_string()),
        Command::Undrain { node } => admin.undrain(&node).map(|()| {
            format!("node {node} undrained: the balancer gives it its share of partitions")
        }),
    };
    out.map_err(|e| e.to_string())
}
