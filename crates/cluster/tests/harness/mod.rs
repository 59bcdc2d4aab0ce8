//! Real etcd clusters for the tests: N members of Debian's etcd-server on free loopback
//! ports, each with its own data dir in a temporary directory, stopped by pid when dropped.
//! Every wait here is bounded.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ringmail_cluster::{ClusterConfig, ClusterView, ControlPlane, Registration};

/// The tests start whole etcd clusters and measure lease timing; running them one at a time
/// keeps a 2-core machine from turning timing into noise.
static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

const HEALTH_WAIT: Duration = Duration::from_secs(20);

/// The etcd binary: `$ETCD_BIN`, else Debian's.
fn etcd_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("ETCD_BIN") {
        return Some(PathBuf::from(path));
    }
    let debian = Path::new("/usr/bin/etcd");
    debian.exists().then(|| debian.to_path_buf())
}

pub struct Member {
    pub name: String,
    pub client_url: String,
    child: Option<Child>,
    log: PathBuf,
}

pub struct Etcd {
    pub members: Vec<Member>,
    pub dir: tempfile::TempDir,
}

impl Etcd {
    /// Starts a cluster of `n` members. `None` (after saying why) when etcd is not installed
    /// on a developer machine; under CI (where `CI` is set) a missing etcd fails the test.
    pub fn start(n: usize) -> Option<Etcd> {
        let Some(bin) = etcd_binary() else {
            if std::env::var_os("CI").is_some() {
                panic!("etcd is not installed (apt-get install etcd-server) but CI requires these tests");
            }
            // Straight to stderr: libtest would capture eprintln! of a passing test.
            let _ = writeln!(
                std::io::stderr(),
                "skipping: /usr/bin/etcd is missing (apt-get install etcd-server)"
            );
            return None;
        };
        let mut last = String::new();
        // A port picked as free can be taken by someone else before etcd binds it; try again
        // with new ports.
        for _ in 0..3 {
            match start_cluster(&bin, n) {
                Ok(etcd) => return Some(etcd),
                Err(e) => {
                    eprintln!("etcd did not start: {e}");
                    last = e;
                }
            }
        }
        panic!("etcd did not start after 3 tries: {last}");
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client_url.clone()).collect()
    }

    /// Kills member `i` (SIGKILL to its pid) and reaps it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Each live member's id and its idea of the leader's id, through etcd's JSON gateway.
    fn statuses(&self) -> Vec<Option<(String, String)>> {
        self.statuses_except(usize::MAX)
    }

    /// [`Etcd::statuses`] without asking member `skip` (a frozen member answers nothing, and
    /// waiting for it costs the read timeout).
    fn statuses_except(&self, skip: usize) -> Vec<Option<(String, String)>> {
        self.members
            .iter()
            .enumerate()
            .map(|(i, m)| {
                if i == skip {
                    return None;
                }
                m.child.as_ref()?;
                let body = http(&m.client_url, "POST", "/v3/maintenance/status", "{}").ok()?;
                let status: serde_json::Value = serde_json::from_str(&body).ok()?;
                let id = status["header"]["member_id"].as_str()?.to_string();
                let leader = status["leader"].as_str()?.to_string();
                Some((id, leader))
            })
            .collect()
    }

    /// The index of the current leader.
    pub fn leader(&self) -> Option<usize> {
        let statuses = self.statuses();
        let leader = statuses.iter().flatten().map(|(_, l)| l.clone()).next()?;
        statuses
            .iter()
            .position(|s| s.as_ref().is_some_and(|(id, _)| *id == leader))
    }

    /// Waits (bounded) until the members other than `frozen` have elected one of themselves,
    /// and returns its index.
    pub fn new_leader_without(&self, frozen: usize) -> usize {
        let deadline = Instant::now() + HEALTH_WAIT;
        loop {
            let statuses = self.statuses_except(frozen);
            let ids: Vec<Option<&String>> = statuses
                .iter()
                .map(|s| s.as_ref().map(|(id, _)| id))
                .collect();
            let elected = statuses.iter().flatten().find_map(|(_, leader)| {
                ids.iter().position(|id| id.is_some_and(|id| id == leader))
            });
            if let Some(i) = elected {
                return i;
            }
            assert!(
                Instant::now() < deadline,
                "no new etcd leader without member {frozen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Hands leadership to member `i` (bounded wait).
    pub fn make_leader(&self, i: usize) {
        let deadline = Instant::now() + HEALTH_WAIT;
        while self.leader() != Some(i) {
            assert!(
                Instant::now() < deadline,
                "member {i} did not become leader"
            );
            let statuses = self.statuses();
            if let (Some(current), Some(Some((target, _)))) = (self.leader(), statuses.get(i)) {
                let body = format!("{{\"targetID\":\"{target}\"}}");
                let url = &self.members[current].client_url;
                let _ = http(url, "POST", "/v3/maintenance/transfer-leadership", &body);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Freezes (SIGSTOP) or thaws (SIGCONT) every member: etcd stops answering without
    /// closing connections, as when the network to it fails.
    pub fn freeze(&self, frozen: bool) {
        assert!(self.signal(if frozen { "-STOP" } else { "-CONT" }));
    }

    /// Freezes or thaws member `i` alone.
    pub fn freeze_member(&self, i: usize, frozen: bool) {
        let pid = self.members[i].child.as_ref().expect("running").id();
        let status = Command::new("kill")
            .arg(if frozen { "-STOP" } else { "-CONT" })
            .arg(pid.to_string())
            .status()
            .expect("kill(1)");
        assert!(status.success());
    }

    /// Sends `signal` to every running member by pid; whether all were sent.
    fn signal(&self, signal: &str) -> bool {
        let mut sent = true;
        for child in self.members.iter().filter_map(|m| m.child.as_ref()) {
            sent &= Command::new("kill")
                .arg(signal)
                .arg(child.id().to_string())
                .status()
                .is_ok_and(|s| s.success());
        }
        sent
    }

    /// A member's log, for failure messages.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.members[i].log).unwrap_or_default()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        // Thaw first, so a frozen member is not left stopped if killing it fails.
        self.signal("-CONT");
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

fn free_ports(n: usize) -> Vec<u16> {
    // Hold every listener until all are picked so the same port is not handed out twice.
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("bound").port())
        .collect()
}

fn start_cluster(bin: &Path, n: usize) -> Result<Etcd, String> {
    // Data on tmpfs where there is one: etcd fsyncs every write, which on a shared disk makes
    // timing in the tests depend on the neighbours.
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::Builder::new()
            .prefix("ringmail-etcd")
            .tempdir_in(shm)
    } else {
        tempfile::Builder::new().prefix("ringmail-etcd").tempdir()
    }
    .map_err(|e| e.to_string())?;
    let ports = free_ports(2 * n);
    let names: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
    let peer = |i: usize| format!("http://127.0.0.1:{}", ports[2 * i + 1]);
    let initial: Vec<String> = (0..n)
        .map(|i| format!("{}={}", names[i], peer(i)))
        .collect();
    let token = format!(
        "ringmail-test-{}-{}",
        std::process::id(),
        dir.path().file_name().unwrap().to_string_lossy()
    );
    let mut etcd = Etcd {
        members: Vec::new(),
        dir,
    };
    for i in 0..n {
        let client_url = format!("http://127.0.0.1:{}", ports[2 * i]);
        let log = etcd.dir.path().join(format!("{}.log", names[i]));
        let out = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let mut command = Command::new(bin);
        // ETCD_* variables of the environment would override the flags.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("ETCD_") {
                command.env_remove(key);
            }
        }
        let child = command
            .arg("--name")
            .arg(&names[i])
            .arg("--data-dir")
            .arg(etcd.dir.path().join(&names[i]))
            .arg("--listen-client-urls")
            .arg(&client_url)
            .arg("--advertise-client-urls")
            .arg(&client_url)
            .arg("--listen-peer-urls")
            .arg(peer(i))
            .arg("--initial-advertise-peer-urls")
            .arg(peer(i))
            .arg("--initial-cluster")
            .arg(initial.join(","))
            .arg("--initial-cluster-state")
            .arg("new")
            .arg("--initial-cluster-token")
            .arg(&token)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("{}: {e}", bin.display()))?;
        etcd.members.push(Member {
            name: names[i].clone(),
            client_url,
            child: Some(child),
            log,
        });
    }
    let deadline = Instant::now() + HEALTH_WAIT;
    for i in 0..n {
        loop {
            if let Some(Ok(Some(status))) = etcd.members[i].child.as_mut().map(|c| c.try_wait()) {
                return Err(format!("member {i} exited ({status}):\n{}", etcd.log(i)));
            }
            let url = &etcd.members[i].client_url;
            if http(url, "GET", "/health", "")
                .is_ok_and(|body| body.contains("\"health\":\"true\""))
            {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "member {i} not healthy within {HEALTH_WAIT:?}:\n{}",
                    etcd.log(i)
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(etcd)
}

/// A plain HTTP/1.1 request to an etcd member; returns the body.
fn http(url: &str, method: &str, path: &str, body: &str) -> Result<String, String> {
    let addr = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| e.to_string())?;
    let (head, body) = response.split_once("\r\n\r\n").ok_or("no HTTP header")?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(head.lines().next().unwrap_or_default().to_string());
    }
    Ok(body.to_string())
}

/// Polls `done` every 20 ms until it holds or `limit` passes (then panics with `what`).
/// Returns how long it took.
pub fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if done() {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "timed out after {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A node's `[cluster]` section for a test cluster, with its secret file in `dir`.
pub fn config(cluster: &str, node: &str, endpoints: Vec<String>, dir: &Path) -> ClusterConfig {
    let secret = dir.join("cluster.secret");
    if !secret.exists() {
        std::fs::write(&secret, "0123456789abcdef0123456789abcdef\n").expect("write secret");
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    ClusterConfig {
        name: cluster.to_string(),
        node: node.to_string(),
        etcd: endpoints,
        listen: format!("127.0.0.1:{port}").parse().expect("address"),
        advertise: None,
        secret_file: secret,
        lease_secs: 5,
        replicas: 1,
        sync: true,
        zone: String::new(),
        replica_moves_per_node: 4,
    }
}

/// Starts node `node` of `cluster` with P = `partitions`.
pub fn node(etcd: &Etcd, cluster: &str, node: &str, partitions: u32) -> ControlPlane {
    let config = config(cluster, node, etcd.endpoints(), etcd.dir.path());
    let registration = Registration::new(partitions, vec![format!("imap={node}.test:143")]);
    ControlPlane::start(config, registration).unwrap_or_else(|e| panic!("node {node}: {e}"))
}

/// Whether every partition has a live owner in `view`'s copy and the partitions are spread
/// over `nodes` with at most one of difference.
pub fn balanced(view: &ClusterView, nodes: &[&str]) -> bool {
    let map = view.map();
    let owned = map
        .assignments
        .iter()
        .all(|a| a.owner.as_deref().is_some_and(|o| nodes.contains(&o)) && a.moving_to().is_none());
    let (_, gap) = ringmail_cluster::spread(&map, nodes.iter().copied());
    owned && gap <= 1 && nodes.iter().all(|n| map.alive(n))
}

/// Whether all views hold the same assignments and members.
pub fn converged(views: &[ClusterView]) -> bool {
    let maps: Vec<_> = views.iter().map(ClusterView::map).collect();
    maps.windows(2).all(|w| {
        w[0].assignments == w[1].assignments
            && w[0].nodes == w[1].nodes
            && w[0].drained == w[1].drained
    })
}
