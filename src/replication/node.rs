//! Replication on a cluster node: the map as the [`ReplicaDirectory`], the node link pool
//! as the [`Transport`], the runtime's open hooks, the executor task that follows the map,
//! and the dispatch of the replica side's RPCs.

use super::*;

impl ReplicaDirectory for ClusterView {
    fn node(&self) -> String {
        ClusterView::node(self).to_string()
    }

    fn is_owner(&self, p: u32) -> Option<u64> {
        ClusterView::is_owner(self, p)
    }

    fn replicas(&self, p: u32) -> Vec<ReplicaInfo> {
        ClusterView::replicas(self, p)
    }

    fn replica_of(&self, p: u32) -> Option<(String, u64)> {
        ClusterView::replica_of(self, p).map(|(owner, epoch)| (owner.node, epoch))
    }

    fn set_in_sync(&self, p: u32, node: &str, in_sync: bool, epoch: u64) -> InSyncFuture {
        let done = ClusterView::set_in_sync(self, p, node, in_sync, epoch);
        Box::pin(async move { done.await.map_err(|e| e.to_string()) })
    }
}

/// RPCs over the executor's link pool.
pub(super) struct PoolTransport(Weak<Executor>);

impl Transport for PoolTransport {
    fn max_payload(&self) -> usize {
        self.0
            .upgrade()
            .and_then(|exec| exec.nodes.as_ref().map(|n| n.link.config().max_frame))
            .unwrap_or(ringmail_peer::DEFAULT_MAX_FRAME)
    }

    fn call(&self, node: &str, addr: &str, kind: u16, payload: Vec<u8>) -> CallFuture {
        let (exec, node, addr) = (self.0.upgrade(), node.to_string(), addr.to_string());
        Box::pin(async move {
            let exec = exec.ok_or("shutting down")?;
            let nodes = exec.nodes.as_ref().ok_or("not a cluster node")?;
            let answer = nodes
                .pool
                .call(&node, &addr, kind, &payload)
                .await
                .map_err(|e| format!("node {node} did not answer: {e}"))?;
            match answer.status {
                OK => Ok(answer.payload),
                _ => Err(format!(
                    "node {node} refused: {}",
                    String::from_utf8_lossy(&answer.payload)
                )),
            }
        })
    }
}

pub(super) type NodeShipper = Shipper<ClusterView, PoolTransport>;

/// One executor's replication: the open hooks and the shippers of its open partitions.
pub(super) struct Local {
    exec: Weak<Executor>,
    view: Rc<ClusterView>,
    transport: Rc<PoolTransport>,
    sync: bool,
    pub(super) shippers: RefCell<HashMap<u32, Rc<NodeShipper>>>,
}

thread_local! {
    static LOCAL: RefCell<Option<Rc<Local>>> = const { RefCell::new(None) };
}

/// This executor's replication, on a cluster node.
pub(super) fn local() -> Option<Rc<Local>> {
    LOCAL.with(|l| l.borrow().clone())
}

/// Whether acknowledgements wait for the in-sync replicas (`[cluster] sync`), set at start.
static SYNC: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Sets `[cluster] sync` for every executor (before they start).
pub fn set_sync(sync: bool) {
    SYNC.store(sync, Ordering::Relaxed);
}

/// `[cluster] sync`.
pub(super) fn sync() -> bool {
    SYNC.load(Ordering::Relaxed)
}

impl OpenHooks for Local {
    fn before_open(&self, p: u32, dir: &Path) -> Result<(), StoreError> {
        promote_if_replica(p, dir)
    }

    fn opened(&self, p: u32, partition: &Rc<Partition>) {
        let shipper = Shipper::attach(
            p,
            partition,
            self.view.clone(),
            self.transport.clone(),
            self.sync,
        );
        if let Some(old) = self.shippers.borrow_mut().insert(p, shipper) {
            old.stop();
        }
    }
}

/// The executor's open hooks, on a cluster node (`Services::open_hooks`).
pub fn open_hooks(exec: &Rc<Executor>) -> Option<Rc<dyn OpenHooks>> {
    let view = crate::moves::view()?;
    let local = Rc::new(Local {
        exec: Rc::downgrade(exec),
        view: Rc::new(view),
        transport: Rc::new(PoolTransport(Rc::downgrade(exec))),
        sync: SYNC.load(Ordering::Relaxed),
        shippers: RefCell::default(),
    });
    LOCAL.with(|l| *l.borrow_mut() = Some(local.clone()));
    Some(local)
}

/// The executor task: on every map change, each open partition's shipper follows its
/// replicas (one added is seeded, one removed is no longer shipped to).
pub fn task(exec: &Rc<Executor>) -> Result<Option<LocalTask>, String> {
    let Some(local) = LOCAL.with(|l| l.borrow().clone()) else {
        return Ok(None);
    };
    let exec = exec.clone();
    Ok(Some(Box::pin(async move {
        let mut changes = local.view.subscribe();
        loop {
            open_replicated(&exec, &local.view).await;
            local.shippers.borrow_mut().retain(|_, s| {
                let serving = s.serving();
                if !serving {
                    s.stop();
                }
                serving
            });
            let shippers: Vec<Rc<NodeShipper>> =
                local.shippers.borrow().values().cloned().collect();
            for s in shippers {
                s.follow_map();
            }
            let stop = exec.until_shutdown(changes.changed()).await.is_none();
            if stop || local.exec.upgrade().is_none() {
                return;
            }
        }
    })))
}

/// Opens this executor's partitions that this node owns and that have replicas or a
/// replica copy here: a promoted copy serves at once (not only at its first login), and an
/// owner's replicas are seeded (and in sync) even while none of its users is active, also
/// for a partition no user has used yet (opening creates it), so that every partition can
/// fail over.
async fn open_replicated(exec: &Rc<Executor>, view: &ClusterView) {
    for p in 0..view.map().partitions {
        if executor_of(p, exec.count) != exec.id
            || exec.store.opened(p).is_some()
            || view.is_owner(p).is_none()
        {
            continue;
        }
        let dir = Partitions::dir(&exec.data_dir, p);
        if !view.replicas(p).is_empty() || ReplicaLog::dir_for(&dir).is_dir() {
            if let Err(e) = exec.store.get(p).await {
                warn!(partition = p, "could not open a replicated partition: {e}");
            }
        }
    }
}

/// On a replica node: answers the owner's replication requests.
pub fn serve_rpc(exec: Rc<Executor>, request: Request) -> LocalResponse {
    Box::pin(async move {
        if request.kind == super::KIND_STATUS {
            return Response {
                status: OK,
                payload: super::status::serve_status(&exec).await,
            };
        }
        let Some(view) = crate::moves::view() else {
            return Response {
                status: REFUSED,
                payload: b"not a cluster node".to_vec(),
            };
        };
        let root = exec.data_dir.clone();
        let kind = request.kind;
        let answer = serve(&view, |p| Partitions::dir(&root, p), kind, request.payload).await;
        match answer {
            Ok(payload) => Response {
                status: OK,
                payload,
            },
            Err(why) => {
                warn!(kind, "replication request refused: {why}");
                Response {
                    status: REFUSED,
                    payload: why.into_bytes(),
                }
            }
        }
    })
}
