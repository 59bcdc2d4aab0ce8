//! Starting and stopping the server: process limits, one glommio executor per core, listeners,
//! the channel mesh between executors and the signal thread.
//!
//! Each executor binds its own SO_REUSEPORT socket for every listener, so the kernel spreads
//! new connections over the cores and no accept lock exists. After login a session whose user
//! belongs to another executor is handed over on the mesh (see `route.rs`).

use std::cell::{Cell, RefCell};
use std::io::Write;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures_lite::future;
use futures_lite::AsyncReadExt;
use glommio::channels::channel_mesh::{MeshBuilder, Senders};
use glommio::net::{TcpListener, UnixStream};
use glommio::sync::{Gate, Semaphore};
use glommio::{LocalExecutorBuilder, Placement, PoolPlacement};
use tracing::{debug, error, info, warn};

use crate::admission::{PreauthCounts, UserSessions};
use crate::conn::Conn;
use crate::limits;
use crate::partitions::Partitions;
use crate::route::{self, MeshMessage};
use crate::sockets;
use crate::tls;
use ringmail_auth::Authenticator;
use ringmail_config::Config;

/// Queue length of each mesh channel between two executors.
const MESH_QUEUE: usize = 1024;

/// Why the server could not start: each names the problem and the fix.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A process limit is too low.
    #[error("{0}")]
    Limit(String),
    /// A listen address is taken or not ours.
    #[error("cannot listen on {addr}: {source} ({hint} in {section} of the config)")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
        /// What to do.
        hint: &'static str,
        /// The config key naming the address.
        section: &'static str,
    },
    /// The TLS files are not usable.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The users file is not usable.
    #[error("{0}")]
    Auth(String),
    /// An executor thread could not be started.
    #[error("cannot start executor {index}: {message}")]
    Executor {
        /// Which one.
        index: usize,
        /// glommio's message.
        message: String,
    },
}

/// A TCP listener a protocol asks the runtime to run: every executor binds each address
/// (SO_REUSEPORT) and hands each accepted connection to `start`.
#[derive(Clone)]
pub struct TcpService {
    /// Where to listen.
    pub addrs: Vec<SocketAddr>,
    /// The config key naming the addresses, for the error when one cannot be bound.
    pub config_key: &'static str,
    /// The metrics label of its connections.
    pub kind: ringmail_metrics::Listener,
    /// Starts a session for an accepted connection (on the executor that accepted it).
    pub start: fn(Rc<Executor>, Conn),
}

/// A task an executor runs beside its listeners until shutdown (the admin socket); None
/// when it has nothing to run, an error that stops the start otherwise.
pub type ExecutorTask = fn(&Rc<Executor>) -> Result<Option<LocalTask>, String>;

/// A task of one executor.
pub type LocalTask = std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>;

/// What the server serves: the protocols' listeners and tasks. The binary builds it from
/// the config, so the runtime itself knows no protocol.
#[derive(Clone, Default)]
pub struct Services {
    /// TCP listeners, on every executor.
    pub tcp: Vec<TcpService>,
    /// Tasks each executor starts (a task decides itself whether it runs on this one).
    pub tasks: Vec<ExecutorTask>,
    /// Files to remove once the executors have stopped (the admin socket's path).
    pub cleanup: Vec<PathBuf>,
    /// The cluster's map, link and handlers when this node is part of one.
    pub peer: Option<crate::nodes::PeerService>,
    /// What runs around each partition's open on an executor (set before the first one).
    pub open_hooks: Option<OpenHooksFor>,
}

/// Makes an executor's [`crate::partitions::OpenHooks`], if it needs any.
pub type OpenHooksFor = fn(&Rc<Executor>) -> Option<Rc<dyn crate::partitions::OpenHooks>>;

/// What every executor starts from (all `Send`).
#[derive(Clone)]
struct Shared {
    services: Services,
    config: Arc<Config>,
    config_path: PathBuf,
    data_dir: PathBuf,
    auth: Arc<Authenticator>,
    executors: usize,
    /// Where executors report their metrics; None when the endpoint is off.
    metrics: Option<crossbeam_channel::Sender<ringmail_metrics::Snapshot>>,
    /// Connections not logged in yet per address, counted by all executors together.
    preauth: Arc<PreauthCounts>,
}

/// Per-executor state, owned by that executor's thread.
pub struct Executor {
    /// This executor's index, 0..count.
    pub id: usize,
    /// How many executors run.
    pub count: usize,
    /// Data directory.
    pub data_dir: PathBuf,
    config: RefCell<Arc<Config>>,
    config_path: PathBuf,
    tls: RefCell<Option<Arc<rustls::ServerConfig>>>,
    /// Users and passwords (shared by all executors; used only at login, off the hot path).
    pub auth: Arc<Authenticator>,
    mesh: Senders<MeshMessage>,
    /// Closed when the server shuts down; sessions race their reads against it.
    shutdown: Semaphore,
    stopping: Cell<bool>,
    /// Every session task runs inside this gate, so shutdown can wait for them.
    pub sessions: Gate,
    /// Connections from each address that have not logged in yet (all executors together).
    pub preauth: Arc<PreauthCounts>,
    /// Sessions per (user, address) of the users this executor owns.
    pub user_sessions: UserSessions,
    conns: Cell<usize>,
    next_session: Cell<u64>,
    /// The store partitions this executor owns.
    pub store: Partitions,
    /// Failed-login delays per client address.
    pub throttle: RefCell<ringmail_auth::LoginThrottle>,
    /// This executor's counters and histograms (see `ringmail_metrics`).
    pub metrics: ringmail_metrics::Registry,
    /// Bumped by every SIGHUP, so sessions re-check whether their user is traced.
    reloads: Cell<u64>,
    /// The other nodes, when this node is part of a cluster.
    pub nodes: Option<crate::nodes::Nodes>,
}

impl Executor {
    /// The store statistics of this executor's open partitions, summed.
    pub fn store_stats(&self) -> ringmail_store::StoreStats {
        let mut total = ringmail_store::StoreStats::default();
        for (_, partition) in self.store.open_partitions() {
            total.merge(&partition.stats());
        }
        total
    }

    /// The config in force (replaced on SIGHUP).
    pub fn config(&self) -> Arc<Config> {
        self.config.borrow().clone()
    }

    /// The TLS config in force, if the certificate could be loaded.
    pub fn tls(&self) -> Option<Arc<rustls::ServerConfig>> {
        self.tls.borrow().clone()
    }

    /// Resolves when the server starts shutting down.
    pub async fn shutting_down(&self) {
        // acquire() on a semaphore with no permits only returns once it is closed.
        let _ = self.shutdown.acquire(1).await;
    }

    /// Runs `work` (a background task's wait for its next round) unless shutdown begins
    /// first: `None` then, and the task should end.
    pub async fn until_shutdown<T>(&self, work: impl std::future::Future<Output = T>) -> Option<T> {
        futures_lite::future::or(async { Some(work.await) }, async {
            self.shutting_down().await;
            None
        })
        .await
    }

    /// How many times the config was reloaded (SIGHUP) since start.
    pub fn reloads(&self) -> u64 {
        self.reloads.get()
    }

    /// Whether shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.stopping.get()
    }

    /// A process-unique session id (executor id in the low bits).
    pub fn new_session_id(&self) -> u64 {
        let n = self.next_session.get() + 1;
        self.next_session.set(n);
        n * 256 + (self.id as u64 % 256)
    }

    /// The executor that owns `user`'s partition.
    pub fn owner_of(&self, user: &str) -> usize {
        let partitions = self.config().storage.partitions;
        crate::partition::executor_of(crate::partition::partition_of(user, partitions), self.count)
    }

    /// Where `user`'s partition is served: here unless this node is part of a cluster and
    /// its copy of the map says otherwise.
    pub fn place(&self, user: &str) -> crate::nodes::Place {
        let partitions = self.config().storage.partitions;
        self.place_partition(crate::partition::partition_of(user, partitions))
    }

    /// Where partition `p` is served.
    pub fn place_partition(&self, p: u32) -> crate::nodes::Place {
        match &self.nodes {
            None => crate::nodes::Place::Here,
            Some(nodes) => nodes.placement.place(p),
        }
    }

    /// Sends a message to executor `to`; fails only when that executor is stopping. Work
    /// for another executor goes through `route`, which builds the messages.
    pub(crate) async fn send_to(&self, to: usize, message: MeshMessage) -> Result<(), ()> {
        self.mesh.send_to(to, message).await.map_err(drop)
    }

    /// Runs a connection's task inside the gate (so shutdown can wait for it), detached (a
    /// dropped glommio task would be cancelled). A panic in one task must not take the
    /// executor, and every other session on it, down: it is caught, logged as the bug it is,
    /// and only that task is lost. False when the executor is shutting down.
    pub fn spawn_task(&self, task: impl std::future::Future<Output = ()> + 'static) -> bool {
        use futures_lite::FutureExt;
        // Boxed first: the wrappers below (catch_unwind here, the gate's own in glommio) are
        // async blocks that keep what they capture and what they await side by side, so an
        // unboxed session would be stored about four times over in its task (heaptrack: 5.4
        // KiB per IDLE session in this allocation, against a 2.7 KiB session future).
        let task = Box::pin(task);
        let guarded = async move {
            if let Err(panic) = std::panic::AssertUnwindSafe(task).catch_unwind().await {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                error!("BUG: a connection task panicked and was closed: {what}");
            }
        };
        match self.sessions.spawn(guarded) {
            Ok(task) => {
                task.detach();
                true
            }
            Err(_) => false,
        }
    }

    /// Takes a connection slot on this executor; None when `enforce` is set and the
    /// executor's share of `[limits] max_connections` is used up. Sessions adopted after login
    /// and LMTP connections are only counted.
    pub fn admit(self: &Rc<Self>, enforce: bool) -> Option<ConnSlot> {
        let total_share = (self.config().limits.max_connections / self.count).max(1);
        if enforce && self.conns.get() >= total_share {
            return None;
        }
        self.conns.set(self.conns.get() + 1);
        Some(ConnSlot { exec: self.clone() })
    }

    /// Counts a new connection from the client `ip` against `[limits] max_preauth_per_ip`
    /// until it logs in: Ok(None) when the address is in `[imap] secure_networks` (not
    /// limited), Err(the limit) when the address is at it (counted as rejected). Every
    /// protocol with a login (IMAP, ManageSieve) admits its clients through this.
    pub fn take_preauth(
        &self,
        ip: std::net::IpAddr,
    ) -> Result<Option<crate::admission::PreauthSlot>, usize> {
        let config = self.config();
        let ip = crate::conn::canonical_ip(ip);
        if config.imap.is_secure_network(ip) {
            return Ok(None);
        }
        let limit = config.limits.max_preauth_per_ip;
        match self.preauth.try_take(ip, limit) {
            Some(slot) => Ok(Some(slot)),
            None => {
                self.metrics.borrow_mut().rejected("preauth_per_ip");
                debug!(client = %ip, limit, "refused: too many connections not logged in from one address");
                Err(limit)
            }
        }
    }
}

/// A connection counted against the total of the executor it lives on; released on drop.
pub struct ConnSlot {
    exec: Rc<Executor>,
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.exec.conns.set(self.exec.conns.get().saturating_sub(1));
    }
}

/// Threads of each executor's blocking pool: what costs CPU off the executor (a login's
/// hash, a move's file chunk). Lookups that wait on the network run on the authenticator's
/// own lookup threads instead (crate::login), so they never occupy these.
const BLOCKING_THREADS: usize = 1;

/// Runs `services` until SIGTERM or SIGINT. Returns after every executor has stopped.
pub fn serve(
    config: Config,
    config_path: PathBuf,
    data_dir: PathBuf,
    services: Services,
) -> Result<(), ServeError> {
    // Held until serve returns: offline tools (import, restore) refuse to touch the store.
    let _lock = crate::lock::DataDirLock::acquire(&data_dir, "serve").map_err(ServeError::Limit)?;
    limits::raise_memlock().map_err(ServeError::Limit)?;
    limits::raise_nofile();
    limits::return_large_frees();

    for service in &services.tcp {
        for addr in &service.addrs {
            check_bind(*addr, service.config_key)?;
        }
    }
    if let Some(peer) = &services.peer {
        check_bind(peer.listen, "[cluster] listen")?;
    }
    // Load once here so a bad certificate stops the start with a clear line.
    tls::load(
        &Config::resolve(&data_dir, &config.tls.cert),
        &Config::resolve(&data_dir, &config.tls.key),
        &config.tls.min_version,
    )?;
    // The backends in [auth] backends order (reads the users file, the bind password, a
    // JWKS file; fetches a JWKS URL). Changing the backends takes a restart.
    let auth = Authenticator::from_config(
        &config.auth,
        config.ldap_section(),
        config.oauth_section(),
        |p| Config::resolve(&data_dir, p),
    )
    .map_err(|e| {
        let names: Vec<&str> = config.auth.backends.iter().map(|b| b.name()).collect();
        ServeError::Auth(format!(
            "cannot start the auth backends ({}): {e} (check the files [auth], [ldap] and \
             [oauth] name; relative paths are under the data dir)",
            names.join(", ")
        ))
    })?;

    let executors = match config.server.executors {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let metrics = ringmail_metrics::endpoint::start(&config.metrics.listen, executors);
    let shared = Shared {
        services,
        config: Arc::new(config),
        config_path,
        data_dir,
        auth: Arc::new(auth),
        executors,
        metrics,
        preauth: Arc::default(),
    };
    let mesh = MeshBuilder::<MeshMessage, _>::full(executors, MESH_QUEUE);
    let cpus = crate::cpus::allowed();

    let mut signal_ends = Vec::new();
    let mut handles = Vec::new();
    for index in 0..executors {
        let (ours, theirs) = StdUnixStream::pair().map_err(|e| ServeError::Executor {
            index,
            message: e.to_string(),
        })?;
        signal_ends.push(ours);
        let theirs: OwnedFd = theirs.into();
        let shared = shared.clone();
        let mesh = mesh.clone();
        let placement = match crate::cpus::for_executor(index, executors, &cpus) {
            Some(cpu) => Placement::Fixed(cpu),
            None => Placement::Unbound,
        };
        let handle = LocalExecutorBuilder::new(placement)
            .name(&format!("ringmail-{index}"))
            .blocking_thread_pool_placement(PoolPlacement::Unbound(BLOCKING_THREADS))
            .spawn(move || executor_main(index, shared, mesh, theirs))
            .map_err(|e| ServeError::Executor {
                index,
                message: e.to_string(),
            })?;
        handles.push(handle);
    }
    let listening: Vec<String> = shared
        .services
        .tcp
        .iter()
        .map(|s| format!("{}={:?}", s.kind.label(), s.addrs))
        .collect();
    info!(executors, listening = %listening.join(" "), "ringmail serving");
    spawn_signal_thread(signal_ends);

    let mut failed = false;
    for (index, handle) in handles.into_iter().enumerate() {
        match handle.join() {
            Ok(Ok(())) => {}
            Ok(Err(message)) => {
                error!(executor = index, "{message}");
                failed = true;
            }
            Err(e) => {
                error!(executor = index, "executor failed: {e}");
                failed = true;
            }
        }
    }
    if failed {
        return Err(ServeError::Executor {
            index: 0,
            message: "an executor stopped with an error (see above)".into(),
        });
    }
    info!("ringmail stopped");
    Ok(())
}

/// Fails early, with a clear line, when a listen address cannot be used. The executors bind
/// with SO_REUSEPORT, which would let a second server silently share a port with a first one,
/// so a live listener is looked up in the kernel's socket table first; the test bind then uses
/// the same options as the executors, because a plain bind would also trip over the lingering
/// connections of a crashed predecessor and refuse a restart.
fn check_bind(addr: SocketAddr, section: &'static str) -> Result<(), ServeError> {
    // A predecessor killed with SIGKILL keeps its listeners for a moment: the kernel tears its
    // io_uring down (and with it the pending accepts that hold the sockets) after the process
    // is gone. Give that a few seconds before calling the port taken.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while sockets::is_listening(addr) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if sockets::is_listening(addr) {
        return Err(ServeError::Bind {
            addr,
            source: std::io::Error::from(std::io::ErrorKind::AddrInUse),
            hint: "the port is in use: another server is listening on it (`ss -ltnp` shows it); stop it or change the address",
            section,
        });
    }
    let bind = || -> std::io::Result<()> {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            None,
        )?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.bind(&addr.into())?;
        socket.listen(1)
    };
    bind().map_err(|source| {
        let hint = match source.kind() {
            std::io::ErrorKind::AddrInUse => {
                "the port is in use: stop the other server (`ss -ltnp` shows it) or change the address"
            }
            std::io::ErrorKind::PermissionDenied => {
                "ports below 1024 need root or CAP_NET_BIND_SERVICE"
            }
            std::io::ErrorKind::AddrNotAvailable => {
                "no local interface has this address"
            }
            _ => "check the address",
        };
        ServeError::Bind {
            addr,
            source,
            hint,
            section,
        }
    })
}

/// Forwards SIGTERM/SIGINT ('T') and SIGHUP ('H') to every executor as one byte on its socket.
fn spawn_signal_thread(mut ends: Vec<StdUnixStream>) {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = match signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP]) {
        Ok(s) => s,
        Err(e) => {
            error!("cannot install signal handlers: {e}");
            return;
        }
    };
    std::thread::Builder::new()
        .name("ringmail-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                let byte = if signal == SIGHUP { b'H' } else { b'T' };
                for end in &mut ends {
                    let _ = end.write_all(&[byte]);
                }
                if byte == b'T' {
                    info!("shutting down (signal {signal})");
                    break;
                }
            }
        })
        .map(drop)
        .unwrap_or_else(|e| error!("cannot start the signal thread: {e}"));
}

/// How often every executor wakes even when nothing else wakes it. Wake-ups from other
/// threads (the mesh between executors, the blocking pool's completions) reach a sleeping
/// executor through glommio's ring linking, and glommio's tracker has reports of such wakes
/// not arriving (issues 326, 494, 547). Under heavy load we twice saw a server that never
/// bound its listeners nor read its signal socket, every executor asleep in
/// `io_cqring_wait` (not reproduced since: 25 starts beside six busy loops were fine). A
/// woken executor runs whatever foreign wakes are queued for it, so if a wake was queued and
/// only its notification lost, the tick bounds how long it goes unnoticed; five wakes a
/// second cost nothing measurable. It is a mitigation, not a proven fix.
const TICK: Duration = Duration::from_millis(200);
/// The executors find each other within this at start, or the server stops with a message
/// rather than sit without listeners.
const MESH_JOIN_LIMIT: Duration = Duration::from_secs(30);

async fn executor_main(
    index: usize,
    shared: Shared,
    mesh: MeshBuilder<MeshMessage, glommio::channels::channel_mesh::Full>,
    signal_fd: OwnedFd,
) -> Result<(), String> {
    glommio::spawn_local(async {
        loop {
            glommio::timer::sleep(TICK).await;
        }
    })
    .detach();
    let joined = glommio::timer::timeout(MESH_JOIN_LIMIT, async { Ok(mesh.join().await) }).await;
    let (senders, mut receivers) = match joined {
        Ok(Ok(joined)) => joined,
        Ok(Err(_)) => return Err("cannot join the executor mesh".to_string()),
        Err(_) => {
            return Err(format!(
                "executor {index} could not reach the other executors within {} s; stopping",
                MESH_JOIN_LIMIT.as_secs()
            ))
        }
    };
    let config = shared.config.clone();
    let tls_config = tls::load(
        &Config::resolve(&shared.data_dir, &config.tls.cert),
        &Config::resolve(&shared.data_dir, &config.tls.key),
        &config.tls.min_version,
    )
    .map_err(|e| e.to_string())?;
    let exec = Rc::new(Executor {
        id: index,
        count: shared.executors,
        data_dir: shared.data_dir.clone(),
        config: RefCell::new(config.clone()),
        config_path: shared.config_path.clone(),
        tls: RefCell::new(Some(tls_config)),
        auth: shared.auth.clone(),
        mesh: senders,
        shutdown: Semaphore::new(0),
        stopping: Cell::new(false),
        sessions: Gate::new(),
        preauth: shared.preauth.clone(),
        user_sessions: UserSessions::default(),
        conns: Cell::new(0),
        next_session: Cell::new(0),
        store: Partitions::new(&shared.data_dir, config.store_options()),
        throttle: RefCell::new(ringmail_auth::LoginThrottle::new(
            ringmail_auth::ThrottleOptions {
                base_delay: Duration::from_millis(config.imap.login_failure_delay_ms),
                max_delay: Duration::from_millis(config.imap.login_failure_delay_max_ms),
                max_failures_per_connection: config.imap.max_login_failures,
                ..Default::default()
            },
        )),
        metrics: Default::default(),
        reloads: Cell::new(0),
        nodes: shared.services.peer.as_ref().map(crate::nodes::Nodes::new),
    });

    if let Some(hooks) = shared.services.open_hooks.and_then(|make| make(&exec)) {
        exec.store.set_hooks(hooks);
    }
    // Open (and recover) the partitions that already hold mail before accepting anyone; in a
    // cluster only those this node serves (the others are opened when they are first used
    // after the map gives them to this node).
    let partitions = config.storage.partitions;
    let owned = (0..partitions).filter(|&p| {
        crate::partition::executor_of(p, exec.count) == index
            && exec.place_partition(p) == crate::nodes::Place::Here
    });
    let opened = exec.store.open_existing(owned).await?;
    tracing::debug!(
        executor = index,
        partitions = opened,
        "partitions recovered"
    );
    exec.metrics.borrow_mut().partitions_open = opened as u64;

    let mut tasks = Vec::new();
    let bind = |addr: SocketAddr| {
        TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))
    };
    for service in &shared.services.tcp {
        for addr in &service.addrs {
            let listener = bind(*addr)?;
            let start = service.start;
            tasks.push(glommio::spawn_local(accept_loop(
                exec.clone(),
                listener,
                service.kind,
                start,
            )));
        }
    }
    if let Some(peer) = &shared.services.peer {
        let listener = ringmail_peer::PeerListener::bind(peer.link.clone(), peer.listen)
            .map_err(|e| format!("cannot listen on {} ([cluster] listen): {e}", peer.listen))?;
        tasks.push(glommio::spawn_local(crate::nodes::accept_loop(
            exec.clone(),
            listener,
            peer.clone(),
        )));
    }
    for task in &shared.services.tasks {
        if let Some(run) = task(&exec)? {
            tasks.push(glommio::spawn_local(run));
        }
    }
    // Partitions are open and listeners bound: from now on this executor counts as ready.
    if let Some(to) = shared.metrics.clone() {
        let exec2 = exec.clone();
        let exec3 = exec.clone();
        tasks.push(glommio::spawn_local(ringmail_metrics::publish(
            index,
            exec.metrics.clone(),
            move || exec3.store_stats(),
            to,
            async move { exec2.shutting_down().await },
        )));
    }
    // The mesh loops are not among `tasks`: they run until the executor ends, so the answers
    // to requests still in flight during the shutdown grace period (an LMTP delivery on
    // another core) arrive; a request that comes after the gate closed is refused by its
    // handler.
    for (_peer, stream) in receivers.streams() {
        let exec = exec.clone();
        glommio::spawn_local(async move {
            while let Some(message) = stream.recv().await {
                route::receive(&exec, message);
            }
        })
        .detach();
    }

    // SAFETY: the descriptor is one end of a socketpair created for this executor alone and
    // moved here; the UnixStream takes sole ownership.
    let mut signals = unsafe { UnixStream::from_raw_fd(signal_fd.into_raw_fd()) };
    let mut byte = [0u8; 1];
    loop {
        match signals.read(&mut byte).await {
            Ok(1) if byte[0] == b'H' => exec.reload(),
            Ok(_) | Err(_) => break,
        }
    }

    // Shutdown: stop accepting, tell every session (they send `* BYE` and close), then wait
    // for them, bounded by the grace period.
    exec.stopping.set(true);
    exec.shutdown.close();
    for task in tasks {
        task.await;
    }
    let grace = Duration::from_secs(exec.config().server.shutdown_grace_secs);
    if glommio::timer::timeout(grace, async { exec.sessions.close().await })
        .await
        .is_err()
    {
        warn!(
            executor = index,
            "sessions still running after the grace period"
        );
    }
    if let Some(nodes) = &exec.nodes {
        nodes.pool.close();
    }
    exec.store.close_all().await;
    if index == 0 {
        for path in &shared.services.cleanup {
            let _ = std::fs::remove_file(path);
        }
    }
    Ok(())
}

impl Executor {
    /// SIGHUP: re-read the config, TLS certificates and users file; keep the old ones when the
    /// new ones are bad.
    fn reload(&self) {
        match Config::load(&self.config_path) {
            Ok(new) => {
                let old = self.config();
                if new.listen_addresses() != old.listen_addresses() {
                    warn!("listen addresses changed: they take effect at the next restart");
                }
                match tls::load(
                    &Config::resolve(&self.data_dir, &new.tls.cert),
                    &Config::resolve(&self.data_dir, &new.tls.key),
                    &new.tls.min_version,
                ) {
                    Ok(tls) => *self.tls.borrow_mut() = Some(tls),
                    Err(e) => error!("TLS reload refused, the old certificate stays: {e}"),
                }
                if new.metrics.listen != old.metrics.listen {
                    warn!("[metrics] listen changed: it takes effect at the next restart");
                }
                if self.id == 0
                    && (new.auth != old.auth || new.ldap != old.ldap || new.oauth != old.oauth)
                {
                    warn!(
                        "[auth], [ldap] or [oauth] changed: they take effect at the next restart \
                         (SIGHUP re-reads only the users file)"
                    );
                }
                let log_level = new.server.log_level.clone();
                *self.config.borrow_mut() = Arc::new(new);
                self.reloads.set(self.reloads.get() + 1);
                if self.id == 0 {
                    if let Err(e) = self.auth.reload() {
                        error!("users file reload refused, the old users stay: {e}");
                    }
                    if let Err(e) = ringmail_metrics::logging::set_filter(&log_level) {
                        error!("log level not changed: {e}");
                    }
                }
                info!(executor = self.id, "configuration reloaded");
            }
            Err(e) => error!("config reload refused, the old config stays: {e}"),
        }
    }
}

/// Accepts connections on `listener` until shutdown and hands each to `start`. Used by every
/// listener kind (IMAP, IMAPS, LMTP), so limits on accept errors and socket options hold for
/// all of them.
pub async fn accept_loop(
    exec: Rc<Executor>,
    listener: TcpListener,
    kind: ringmail_metrics::Listener,
    start: impl Fn(Rc<Executor>, Conn),
) {
    loop {
        let accepted = future::or(async { Some(listener.accept().await) }, async {
            exec.shutting_down().await;
            None
        })
        .await;
        let stream = match accepted {
            None => return,
            Some(Ok(stream)) => stream,
            Some(Err(e)) => {
                // EMFILE and friends: back off instead of spinning on the error.
                warn!("accept failed: {e}");
                glommio::timer::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (Ok(peer), Ok(local)) = (stream.peer_addr(), stream.local_addr()) else {
            continue;
        };
        // Request/response protocols with small writes: Nagle's algorithm plus delayed ACKs
        // would add ~40 ms to TLS handshakes and to the first reply after STARTTLS.
        if let Err(e) = stream.set_nodelay(true) {
            debug!("TCP_NODELAY: {e}");
        }
        exec.metrics.borrow_mut().connection_accepted(kind);
        start(exec.clone(), Conn::new(stream, peer, local));
    }
}
