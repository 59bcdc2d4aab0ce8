//! A ringmail cluster for end-to-end tests: N nodes of the real binary on loopback, each with
//! its own data dir and the same users file and secret, joined through a real etcd (the
//! caller starts it with crates/cluster/tests/harness), and Debian's HAProxy in front with
//! `send-proxy-v2`. Everything is stopped by pid when dropped; every wait is bounded.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{config_text, free_port, spawn, Client, Server, TlsClient};

/// The nodes' shared secret (at least 32 bytes).
const SECRET: &str = "cluster-test-secret-0123456789abcdef\n";

/// Per partition: (partition, owner, [(replica, in sync)]), from `cluster status --json`.
pub type Placement = Vec<(u32, Option<String>, Vec<(String, bool)>)>;

/// One node: a [`Server`] plus its node id and node-to-node address.
pub struct Node {
    pub id: String,
    pub server: Server,
    pub internal: SocketAddr,
}

impl Node {
    /// The lines of this node's log that mention any of `words`, for failure messages: what
    /// the node said about its lease, fencing and failovers when a chaos test went wrong.
    pub fn log_lines(&self, words: &[&str]) -> String {
        let log = std::fs::read_to_string(&self.server.log).unwrap_or_default();
        log.lines()
            .filter(|l| words.iter().any(|w| l.contains(w)))
            .map(|l| format!("{}: {l}\n", self.id))
            .collect()
    }

    /// The owner of each partition and the alive flag of each node, from
    /// `ringmail cluster status --json` run against `node`'s config.
    pub fn status(&self) -> (BTreeMap<u32, (String, u64)>, BTreeMap<String, bool>) {
        let (ok, out, err) = self.cluster_command(&["status", "--json"]);
        assert!(ok, "cluster status failed: {err}");
        let json: serde_json::Value = serde_json::from_str(&out).expect("status --json is JSON");
        let partitions = json["partitions"]
            .as_array()
            .expect("partitions")
            .iter()
            .filter_map(|p| {
                Some((
                    p["partition"].as_u64()? as u32,
                    (p["owner"].as_str()?.to_string(), p["epoch"].as_u64()?),
                ))
            })
            .collect();
        let nodes = json["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .map(|n| {
                (
                    n["id"].as_str().unwrap().to_string(),
                    n["alive"].as_bool().unwrap(),
                )
            })
            .collect();
        (partitions, nodes)
    }

    /// Each partition's owner and replicas, from `cluster status --json` run against this
    /// node's config.
    pub fn placement(&self) -> Placement {
        let (ok, out, err) = self.cluster_command(&["status", "--json"]);
        assert!(ok, "cluster status: {err}");
        let json: serde_json::Value = serde_json::from_str(&out).unwrap();
        json["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let replicas = p["replicas"]
                    .as_array()
                    .map(|r| {
                        r.iter()
                            .map(|r| {
                                (
                                    r["node"].as_str().unwrap().to_string(),
                                    r["in_sync"].as_bool().unwrap(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                (
                    p["partition"].as_u64().unwrap() as u32,
                    p["owner"].as_str().map(str::to_string),
                    replicas,
                )
            })
            .collect()
    }

    /// `ringmail check` on the node's data dir (the node must be stopped): (clean, output).
    pub fn check(&self) -> (bool, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_ringmail"))
            .arg("check")
            .arg("--data")
            .arg(self.server.dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("run ringmail check");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    /// Starts node `id` of cluster `name` on a fresh data dir.
    pub fn start(name: &str, id: &str, etcd: &[String], partitions: u32, users: &str) -> Node {
        Node::start_with(name, id, etcd, partitions, users, "")
    }

    /// [`Node::start`] with `config` appended to the node's ringmail.toml (whole sections,
    /// such as `[auth]` and `[ldap]`).
    pub fn start_with(
        name: &str,
        id: &str,
        etcd: &[String],
        partitions: u32,
        users: &str,
        config: &str,
    ) -> Node {
        let dir = tempfile::tempdir().expect("temp dir");
        let addr = |port: u16| -> SocketAddr { format!("127.0.0.1:{port}").parse().unwrap() };
        let (imap, imaps, lmtp) = (addr(free_port()), addr(free_port()), addr(free_port()));
        let internal = addr(free_port());
        let endpoints: Vec<String> = etcd.iter().map(|e| format!("\"{e}\"")).collect();
        // The balancer is 127.0.0.1: it must send a PROXY header, and so must direct test
        // connections (see `Node::connect`).
        // Real mail sizes (the server's default literal limit, not the tests' 1 MiB): these
        // lines land in `[limits]`.
        let extra = format!(
            "max_literal = 67108864\n\
             [proxy]\ntrusted_networks = [\"127.0.0.1/32\"]\n\
             [storage]\npartitions = {partitions}\n\
             [cluster]\nname = \"{name}\"\nnode = \"{id}\"\netcd = [{}]\n\
             listen = \"{internal}\"\nsecret_file = \"cluster.secret\"\n{config}\n",
            endpoints.join(", ")
        );
        std::fs::write(
            dir.path().join("ringmail.toml"),
            config_text(imap, imaps, lmtp, 2, "", "", &extra),
        )
        .unwrap();
        std::fs::write(dir.path().join("users"), users).unwrap();
        std::fs::write(dir.path().join("cluster.secret"), SECRET).unwrap();
        let log = dir.path().join("server.log");
        let child = spawn(dir.path(), &log);
        let server = Server {
            child,
            dir,
            imap,
            imaps,
            lmtp,
            managesieve: None,
            log,
        };
        Node {
            id: id.to_string(),
            server,
            internal,
        }
    }

    /// A plain IMAP connection straight to this node, as though from `client` (the PROXY v1
    /// header a balancer would send), greeting read.
    pub fn connect(&self, client: &str) -> Client {
        connect_as(self.server.imap, client)
    }

    /// An implicit-TLS connection straight to this node (PROXY header first), greeting read.
    pub fn connect_tls(&self, client: &str) -> TlsClient {
        let mut stream = TcpStream::connect(self.server.imaps).expect("connect");
        write!(
            stream,
            "PROXY TCP4 {client} 127.0.0.1 40000 {}\r\n",
            self.server.imaps.port()
        )
        .unwrap();
        let mut c = TlsClient::new(stream, &self.server.cert());
        let greeting = c.line();
        assert!(
            greeting.starts_with("* OK"),
            "{}: greeting {greeting}",
            self.id
        );
        c
    }

    /// `ringmail cluster ARGS` with this node's config; (exit ok, stdout, stderr).
    pub fn cluster_command(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_ringmail"))
            .arg("cluster")
            .args(args)
            .arg("--data")
            .arg(self.server.dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("run ringmail cluster");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Waits (bounded) until the node's listeners accept connections.
    pub fn wait_ready(&self) {
        self.server.wait_ready();
    }

    /// Starts the node again on its data dir (after [`Node::kill`], or stopping it first)
    /// and waits (bounded) until it greets a client.
    pub fn restart(&mut self) {
        if self.server.child.try_wait().unwrap().is_none() {
            self.server.terminate();
        }
        self.server.child = spawn(self.server.dir.path(), &self.server.log);
        self.wait_ready();
        // A listener of the killed process may still accept a connection for a moment.
        let deadline = Instant::now() + Duration::from_secs(30);
        while super::load::quietly(|| self.connect("127.0.0.9")).is_none() {
            assert!(Instant::now() < deadline, "{} did not greet", self.id);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends `signal` (`-STOP`, `-CONT`) to the node's process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(signal)
            .arg(self.server.child.id().to_string())
            .status()
            .expect("kill(1)");
        assert!(status.success(), "kill {signal} {}", self.id);
    }

    /// Kills the node outright (SIGKILL), as a crash.
    pub fn kill(&mut self) {
        let _ = self.server.child.kill();
        let _ = self.server.child.wait();
    }
}

/// A plain IMAP connection to the listener `imap` of a node, as though from `client` (the
/// PROXY v1 header a balancer would send), greeting read.
pub fn connect_as(imap: SocketAddr, client: &str) -> Client {
    let mut stream = TcpStream::connect(imap).expect("connect");
    write!(
        stream,
        "PROXY TCP4 {client} 127.0.0.1 40000 {}\r\n",
        imap.port()
    )
    .unwrap();
    let mut c = Client::from_stream(stream);
    let greeting = c.line();
    assert!(greeting.starts_with("* OK"), "{imap}: greeting {greeting}");
    c
}

/// Starts a node per id of cluster `name` (the same `users` on each), waits until each one
/// serves, and puts HAProxy in front of their IMAP listeners; None (the test skips) where
/// HAProxy is not installed.
pub fn start_behind_haproxy(
    name: &str,
    ids: &[&str],
    etcd: &[String],
    partitions: u32,
    users: &str,
) -> Option<(Vec<Node>, Haproxy)> {
    start_behind_haproxy_with(name, ids, etcd, partitions, users, |_| String::new())
}

/// [`start_behind_haproxy`] with `config(i)` appended to node i's config (see
/// [`Node::start_with`]).
pub fn start_behind_haproxy_with(
    name: &str,
    ids: &[&str],
    etcd: &[String],
    partitions: u32,
    users: &str,
    config: impl Fn(usize) -> String,
) -> Option<(Vec<Node>, Haproxy)> {
    let nodes: Vec<Node> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| Node::start_with(name, id, etcd, partitions, users, &config(i)))
        .collect();
    for node in &nodes {
        node.wait_ready();
    }
    let haproxy = Haproxy::start(&nodes.iter().map(|n| n.server.imap).collect::<Vec<_>>())?;
    Some((nodes, haproxy))
}

/// Debian's HAProxy in TCP mode, round robin over the nodes' plain IMAP listeners, sending
/// PROXY v2 headers.
pub struct Haproxy {
    child: Child,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
}

impl Haproxy {
    /// Starts HAProxy in front of `backends`; None (after saying why) when it is not
    /// installed on a developer machine. Under CI a missing HAProxy fails the test.
    pub fn start(backends: &[SocketAddr]) -> Option<Haproxy> {
        let bin = Path::new("/usr/sbin/haproxy");
        if !bin.exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "haproxy is not installed (apt-get install haproxy) but CI requires this test"
            );
            let _ = writeln!(std::io::stderr(), "skipping: /usr/sbin/haproxy is missing");
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let servers: Vec<String> = backends
            .iter()
            .enumerate()
            .map(|(i, b)| format!("  server n{i} {b} send-proxy-v2\n"))
            .collect();
        // A connection refused by a dead node is sent to the next one (redispatch).
        let config = format!(
            "global\n  maxconn 2000\n\
             defaults\n  mode tcp\n  timeout connect 1s\n  timeout client 60s\n  \
             timeout server 60s\n  retries 2\n  option redispatch 1\n\
             frontend imap\n  bind {addr}\n  default_backend nodes\n\
             backend nodes\n  balance roundrobin\n{}",
            servers.concat()
        );
        let path: PathBuf = dir.path().join("haproxy.cfg");
        std::fs::write(&path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("haproxy.log")).unwrap();
        let child = Command::new(bin)
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start haproxy");
        let proxy = Haproxy { child, addr, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(proxy.addr).is_err() {
            assert!(Instant::now() < deadline, "haproxy did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(proxy)
    }

    /// A connection through the balancer, greeting read.
    pub fn connect(&self) -> Client {
        let mut c = Client::from_stream(TcpStream::connect(self.addr).expect("connect"));
        let greeting = c.line();
        assert!(
            greeting.starts_with("* OK"),
            "greeting through haproxy: {greeting}"
        );
        c
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
