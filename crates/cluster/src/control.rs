//! The control thread: one OS thread with its own small tokio runtime that does all of this
//! node's talking to etcd (etcd-client is tokio-based; the glommio executors never wait on
//! it). Its tasks: renew the lease, follow the map, run the balancer when elected, and carry
//! out the executors' requests (claims, completed moves).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};

use crate::config::ClusterConfig;
use crate::etcd::{unix_now, Etcd};
use crate::keys::Keys;
use crate::map::NodeInfo;
use crate::ownership::{self, Change};
use crate::view::{ClusterView, Shared};
use crate::{balancer, membership, watch, Error};

/// What this node brings to the cluster besides its `[cluster]` section.
#[derive(Debug, Clone)]
pub struct Registration {
    /// P of this node's data dir; must equal the cluster's.
    pub partitions: u32,
    /// Client-facing addresses, shown by `ringmail cluster status` (e.g. `imap=10.0.0.1:143`).
    pub client: Vec<String>,
    /// Whether this node may be elected balancer (true unless there is a reason, such as a
    /// test that wants to claim partitions by hand).
    pub balancer: bool,
}

impl Registration {
    pub fn new(partitions: u32, client: Vec<String>) -> Registration {
        Registration {
            partitions,
            client,
            balancer: true,
        }
    }
}

/// What the control thread's tasks share.
pub(crate) struct Ctx {
    pub(crate) cluster: String,
    pub(crate) etcd: Etcd,
    pub(crate) keys: Keys,
    pub(crate) info: NodeInfo,
    pub(crate) lease_secs: u64,
    /// Replicas per partition, for the balancer (`[cluster] replicas`).
    pub(crate) replicas: usize,
    /// Replica moves at once per receiving node (`[cluster] replica_moves_per_node`).
    pub(crate) replica_moves_per_node: usize,
    pub(crate) shared: Arc<Shared>,
}

/// Requests from the executors, answered on the control thread.
pub(crate) enum Command {
    Claim {
        partition: u32,
        reply: oneshot::Sender<Result<u64, Error>>,
    },
    CompleteMove {
        partition: u32,
        from: String,
        to: String,
        reply: oneshot::Sender<Result<u64, Error>>,
    },
    SetInSync {
        partition: u32,
        node: String,
        in_sync: bool,
        epoch: u64,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    StaleCopy {
        partition: u32,
        kind: crate::ownership::CopyKind,
        reply: oneshot::Sender<Result<Option<&'static str>, Error>>,
    },
}

/// How the control thread should end.
enum Stop {
    /// Revoke the lease: the node leaves at once and its partitions are reassigned now.
    Leave,
    /// Just stop: the lease expires by itself, as after a crash.
    Abandon,
}

/// This node's membership in the cluster, and the thread that keeps it.
///
/// Dropping it stops the thread without deregistering, like a crash: the lease expires after
/// `lease_secs`. Call [`ControlPlane::shutdown`] to leave at once.
pub struct ControlPlane {
    view: ClusterView,
    stop: Option<oneshot::Sender<Stop>>,
    thread: Option<JoinHandle<()>>,
}

impl ControlPlane {
    /// Joins the cluster: creates the map if this is the cluster's first node (with this
    /// node's P), refuses a different P, registers this node, reads the map, and starts the
    /// control thread. Returns once the local copy is loaded; fails within a few seconds, with
    /// the endpoints named, when etcd cannot be reached.
    pub fn start(config: ClusterConfig, registration: Registration) -> Result<ControlPlane, Error> {
        config.validate()?;
        // The data plane needs the secret; a missing one should stop the node now, not at the
        // first proxied session.
        config.read_secret()?;
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("cluster-control".into())
            .spawn(move || control_thread(config, registration, ready_tx))
            .map_err(|e| Error::Config(format!("cannot start the cluster control thread: {e}")))?;
        match ready_rx.recv() {
            Ok(Ok((view, stop))) => Ok(ControlPlane {
                view,
                stop: Some(stop),
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(Error::Stopped)
            }
        }
    }

    /// The handle the executors use (clone it for each).
    pub fn view(&self) -> ClusterView {
        self.view.clone()
    }

    /// Leaves the cluster: revokes the lease so the node is dead for the others at once
    /// (its partitions are reassigned without waiting for the lease to expire).
    pub fn shutdown(mut self) {
        self.stop_thread(Stop::Leave);
    }

    fn stop_thread(&mut self, how: Stop) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(how);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop_thread(Stop::Abandon);
    }
}

type Ready = Result<(ClusterView, oneshot::Sender<Stop>), Error>;

fn control_thread(
    config: ClusterConfig,
    registration: Registration,
    ready: std::sync::mpsc::Sender<Ready>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = ready.send(Err(Error::Config(format!(
                "cannot start the cluster control runtime: {e}"
            ))));
            return;
        }
    };
    runtime.block_on(async move {
        let (commands_tx, commands_rx) = mpsc::unbounded_channel();
        let ctx = match join(&config, &registration, commands_tx).await {
            Ok(ctx) => Arc::new(ctx),
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let (stop_tx, stop_rx) = oneshot::channel();
        let view = ClusterView {
            shared: ctx.shared.clone(),
        };
        tokio::spawn(membership::keep_alive(ctx.clone()));
        tokio::spawn(membership::watch_fence(ctx.clone()));
        tokio::spawn(watch::run(ctx.clone()));
        if registration.balancer {
            tokio::spawn(balancer::run(ctx.clone()));
        }
        tokio::spawn(serve(ctx.clone(), commands_rx));
        if ready.send(Ok((view, stop_tx))).is_err() {
            return;
        }
        if let Ok(Stop::Leave) = stop_rx.await {
            let lease = ctx.shared.lease_id.load(Ordering::Relaxed);
            match ctx.etcd.revoke(lease).await {
                Ok(_) => tracing::info!(node = %ctx.info.id, "left the cluster"),
                Err(e) => tracing::warn!("leaving the cluster: {e}; the lease will expire"),
            }
        }
        // Returning ends block_on; the runtime is then dropped, and every task with it.
    });
}

/// The start-up steps that must succeed before the node counts as started.
async fn join(
    config: &ClusterConfig,
    registration: &Registration,
    commands: mpsc::UnboundedSender<Command>,
) -> Result<Ctx, Error> {
    let etcd = Etcd::connect(&config.etcd).await?;
    let keys = Keys::new(&config.name);
    etcd.ensure_meta(&keys, &config.name, registration.partitions)
        .await?;
    let info = NodeInfo {
        id: config.node.clone(),
        client: registration.client.clone(),
        internal: config.advertise(),
        started: unix_now(),
        zone: config.zone.clone(),
    };
    let empty = crate::map::PartitionMap::new(&config.name, registration.partitions);
    let ctx = Ctx {
        cluster: config.name.clone(),
        etcd,
        keys,
        info,
        lease_secs: config.lease_secs,
        replicas: config.replicas as usize,
        replica_moves_per_node: config.replica_moves_per_node as usize,
        shared: Arc::new(Shared::new(config.node.clone(), empty, commands)),
    };
    membership::register(&ctx).await?;
    let map = ctx.etcd.load_map(&ctx.keys, &ctx.cluster).await?;
    ctx.shared.publish(map);
    Ok(ctx)
}

/// Answers the executors' requests, each in its own task so a slow one holds up no other.
async fn serve(ctx: Arc<Ctx>, mut commands: mpsc::UnboundedReceiver<Command>) {
    while let Some(command) = commands.recv().await {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            match command {
                Command::Claim { partition, reply } => {
                    let _ = reply.send(claim(&ctx, partition).await);
                }
                Command::CompleteMove {
                    partition,
                    from,
                    to,
                    reply,
                } => {
                    let result = ownership::complete_move(
                        &ctx.etcd,
                        &ctx.keys,
                        ctx.shared.map.load().partitions,
                        partition,
                        &from,
                        &to,
                    )
                    .await;
                    if result.is_ok() {
                        ctx.shared
                            .metrics
                            .moves_completed
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    let _ = reply.send(result);
                }
                Command::SetInSync {
                    partition,
                    node,
                    in_sync,
                    epoch,
                    reply,
                } => {
                    let _ = reply.send(set_in_sync(&ctx, partition, &node, in_sync, epoch).await);
                }
                Command::StaleCopy {
                    partition,
                    kind,
                    reply,
                } => {
                    let result = if ctx.shared.fenced() {
                        // Re-registered and not yet caught up, or the lease may be gone.
                        Err(Error::Fenced(ctx.info.id.clone()))
                    } else {
                        ownership::stale_copy(
                            &ctx.etcd,
                            &ctx.keys,
                            ctx.shared.map.load().partitions,
                            &ctx.info.id,
                            partition,
                            kind,
                            ctx.replicas,
                        )
                        .await
                    };
                    let _ = reply.send(result);
                }
            }
        });
    }
}

/// A claim for this node, from the state the local copy shows.
async fn claim(ctx: &Ctx, p: u32) -> Result<u64, Error> {
    let map = ctx.shared.map.load_full();
    ownership::check_partition(p, map.partitions)?;
    if ctx.shared.fenced() {
        return Err(Error::Fenced(ctx.info.id.clone()));
    }
    let current = map.assignment(p);
    if let Some(owner) = map.live_owner(p) {
        return Err(Error::Owned {
            partition: p,
            owner: owner.id.clone(),
        });
    }
    ownership::check_takeover(&map, p, &ctx.info.id)?;
    let change = Change::assign(p, current, &ctx.info.id);
    let epoch = change.new.epoch;
    let metrics = &ctx.shared.metrics;
    match ownership::commit(&ctx.etcd, &ctx.keys, &[change], None).await? {
        Some(_) => {
            metrics.claims_won.fetch_add(1, Ordering::Relaxed);
            Ok(epoch)
        }
        None => {
            metrics.claims_lost.fetch_add(1, Ordering::Relaxed);
            Err(Error::Conflict(p))
        }
    }
}

/// The owner's change of a replica's in-sync flag; refused while this node is fenced (its
/// lease may be gone, and the partition promoted elsewhere).
async fn set_in_sync(
    ctx: &Ctx,
    p: u32,
    node: &str,
    in_sync: bool,
    epoch: u64,
) -> Result<(), Error> {
    if ctx.shared.fenced() {
        return Err(Error::Fenced(ctx.info.id.clone()));
    }
    let partitions = ctx.shared.map.load().partitions;
    ownership::set_in_sync(
        &ctx.etcd,
        &ctx.keys,
        partitions,
        &ctx.info.id,
        p,
        node,
        in_sync,
        epoch,
    )
    .await
}
