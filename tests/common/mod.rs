//! Starts the real `ringmail` binary on free loopback ports with a temporary data dir, and
//! talks IMAP to it over plain TCP or TLS.

#![allow(dead_code)]

pub mod cluster;
pub mod load;
pub mod mail;
pub mod sieve_connect;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A running server and its data dir.
pub struct Server {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub imap: SocketAddr,
    pub imaps: SocketAddr,
    /// The LMTP listener.
    pub lmtp: SocketAddr,
    /// The ManageSieve listener, when the test asked for one ([`Server::start_with_managesieve`]).
    pub managesieve: Option<SocketAddr>,
    pub log: PathBuf,
}

/// A port nobody listens on right now, and that this test process has not been given
/// before: the kernel may hand a port it just released to the next bind, so two ports
/// asked for one after the other (a server's IMAP and metrics listeners) could otherwise
/// be the same.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..1000 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
    panic!("no free port that was not given out before");
}

/// Config text for a test server; `extra` is appended (whole extra sections). LMTP listens on
/// `lmtp` (never the default port, which parallel test servers would share), with
/// `lmtp_extra` added to its section.
pub fn config_text(
    imap: SocketAddr,
    imaps: SocketAddr,
    lmtp: SocketAddr,
    executors: usize,
    imap_extra: &str,
    lmtp_extra: &str,
    extra: &str,
) -> String {
    format!(
        "[server]\nexecutors = {executors}\nlog_level = \"debug\"\nshutdown_grace_secs = 2\n\
         [imap]\nlisten = [\"{imap}\"]\nlisten_tls = [\"{imaps}\"]\n\
         login_failure_delay_ms = 50\nlogin_failure_delay_max_ms = 400\n{imap_extra}\n\
         [lmtp]\nlisten = [\"{lmtp}\"]\n{lmtp_extra}\n\
         [limits]\n{literal}{idle}{extra}{metrics}{managesieve}",
        metrics = if extra.contains("[metrics]") {
            ""
        } else {
            "\n[metrics]\nlisten = []\n"
        },
        // Parallel test servers would all take the default port 4190.
        managesieve = if extra.contains("[managesieve]") {
            ""
        } else {
            "\n[managesieve]\nlisten = []\n"
        },
        literal = if extra.contains("max_literal") {
            ""
        } else {
            "max_literal = 1048576\n"
        },
        idle = if extra.contains("idle_timeout_unauth_secs") {
            ""
        } else {
            "idle_timeout_unauth_secs = 20\n"
        }
    )
}

impl Server {
    /// Starts a server whose data dir has `users` (passwd-file lines) and the config built by
    /// `config_text` with the given extras.
    pub fn start(executors: usize, imap_extra: &str, extra: &str, users: &str) -> Server {
        Server::start_with_lmtp(executors, imap_extra, "", extra, users)
    }

    /// [`Server::start`] with extra keys for the `[lmtp]` section.
    pub fn start_with_lmtp(
        executors: usize,
        imap_extra: &str,
        lmtp_extra: &str,
        extra: &str,
        users: &str,
    ) -> Server {
        Server::start_all(executors, imap_extra, lmtp_extra, extra, users, None)
    }

    /// [`Server::start`] with ManageSieve listening on a free port (`managesieve`), with
    /// `managesieve_extra` added to its section.
    pub fn start_with_managesieve(
        executors: usize,
        imap_extra: &str,
        managesieve_extra: &str,
        extra: &str,
        users: &str,
    ) -> Server {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let extra = format!("{extra}\n[managesieve]\nlisten = [\"{addr}\"]\n{managesieve_extra}\n");
        Server::start_all(executors, imap_extra, "", &extra, users, Some(addr))
    }

    fn start_all(
        executors: usize,
        imap_extra: &str,
        lmtp_extra: &str,
        extra: &str,
        users: &str,
        managesieve: Option<SocketAddr>,
    ) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let imap: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let imaps: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let lmtp: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        std::fs::write(
            dir.path().join("ringmail.toml"),
            config_text(imap, imaps, lmtp, executors, imap_extra, lmtp_extra, extra),
        )
        .unwrap();
        std::fs::write(dir.path().join("users"), users).unwrap();
        let log = dir.path().join("server.log");
        let child = spawn(dir.path(), &log);
        let server = Server {
            child,
            dir,
            imap,
            imaps,
            lmtp,
            managesieve,
            log,
        };
        server.wait_ready();
        server
    }

    /// Stops the server (SIGTERM) if it runs and starts it again on the same data dir.
    pub fn restart(&mut self) {
        if self.child.try_wait().unwrap().is_none() {
            self.terminate();
        }
        self.child = spawn(self.dir.path(), &self.log);
        self.wait_ready();
        self.wait_greeting();
    }

    /// An LMTP connection, greeting read and LHLO done.
    pub fn lmtp(&self) -> Client {
        lmtp_connect(self.lmtp)
    }

    /// Waits until all listeners accept connections.
    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if TcpStream::connect(self.imap).is_ok()
                && TcpStream::connect(self.imaps).is_ok()
                && TcpStream::connect(self.lmtp).is_ok()
                && self
                    .managesieve
                    .is_none_or(|addr| TcpStream::connect(addr).is_ok())
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("server did not start; log:\n{}", self.log_text());
    }

    /// Waits until the plain listener answers with a greeting (after a restart, a listener of
    /// the killed predecessor may still accept connections for a moment, then reset them).
    pub fn wait_greeting(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(stream) = TcpStream::connect(self.imap) {
                stream
                    .set_read_timeout(Some(Duration::from_millis(500)))
                    .unwrap();
                let mut line = String::new();
                if BufReader::new(stream).read_line(&mut line).is_ok() && line.starts_with("* OK") {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("server did not greet; log:\n{}", self.log_text());
    }

    /// The server's self-signed certificate (PEM), for clients to trust.
    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("tls/cert.pem")
    }

    /// The server's stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A plain connection, greeting already read.
    pub fn connect(&self) -> Client {
        let mut client = Client::from_stream(TcpStream::connect(self.imap).expect("connect"));
        let greeting = client.line();
        assert!(greeting.starts_with("* OK"), "greeting: {greeting}");
        client
    }

    /// An implicit-TLS connection, greeting already read.
    pub fn connect_tls(&self) -> TlsClient {
        let tcp = TcpStream::connect(self.imaps).expect("connect");
        let mut client = TlsClient::new(tcp, &self.dir.path().join("tls/cert.pem"));
        let greeting = client.line();
        assert!(greeting.starts_with("* OK"), "greeting: {greeting}");
        client
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        // SAFETY: kill() with a pid we spawned and a valid signal number.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "server did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An LMTP connection to `addr`, greeting read and LHLO done.
pub fn lmtp_connect(addr: SocketAddr) -> Client {
    let mut c = Client::from_stream(TcpStream::connect(addr).expect("connect LMTP"));
    let greeting = c.line();
    assert!(greeting.starts_with("220 "), "LMTP greeting: {greeting}");
    c.send("LHLO test.example\r\n");
    let mut caps = Vec::new();
    loop {
        let line = c.line();
        assert!(line.starts_with("250"), "LHLO reply: {line}");
        let last = line.starts_with("250 ");
        caps.push(line);
        if last {
            return c;
        }
    }
}

/// Every file below `root` (path relative to it → bytes): to compare two trees, or one tree
/// before and after something that must not change it.
pub fn tree(root: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                let name = path.strip_prefix(root).unwrap().display().to_string();
                out.insert(name, std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

/// Starts `ringmail serve --data DIR` with stderr to `log`.
pub fn spawn(data: &Path, log: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_ringmail"))
        .arg("serve")
        .arg("--data")
        .arg(data)
        .stdin(Stdio::null())
        .stdout(Stdio::from(
            std::fs::File::create(data.join("server.out")).unwrap(),
        ))
        .stderr(Stdio::from(std::fs::File::create(log).unwrap()))
        .spawn()
        .expect("start ringmail")
}

/// A line-oriented IMAP client over any stream.
pub struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    pub fn from_stream(stream: TcpStream) -> Client {
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Client {
            reader: BufReader::new(stream),
        }
    }

    pub fn stream(&mut self) -> &mut TcpStream {
        self.reader.get_mut()
    }

    pub fn send(&mut self, data: &str) {
        self.reader.get_mut().write_all(data.as_bytes()).unwrap();
    }

    pub fn send_bytes(&mut self, data: &[u8]) {
        self.reader.get_mut().write_all(data).unwrap();
    }

    /// One response line without CRLF; empty at EOF.
    pub fn line(&mut self) -> String {
        self.line_or_eof().unwrap_or_default()
    }

    /// One response line without CRLF; None at EOF.
    pub fn line_or_eof(&mut self) -> Option<String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => None,
            Ok(_) => Some(line.trim_end_matches(['\r', '\n']).to_string()),
            Err(e) => panic!("reading a response line: {e}"),
        }
    }

    /// Reads lines up to and including the tagged response for `tag`.
    pub fn until_tagged(&mut self, tag: &str) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let Some(line) = self.line_or_eof() else {
                panic!("connection closed before {tag}; got {lines:?}");
            };
            let done = line.starts_with(&format!("{tag} "));
            lines.push(line);
            if done {
                return lines;
            }
        }
    }

    /// The raw bytes up to and including the tagged response for `tag`, for answers that
    /// need not be UTF-8 (8-bit literals).
    pub fn until_tagged_bytes(&mut self, tag: &str) -> Vec<u8> {
        let prefix = format!("{tag} ");
        let mut out = Vec::new();
        loop {
            let start = out.len();
            match self.reader.read_until(b'\n', &mut out) {
                Ok(0) => panic!("connection closed before {tag}"),
                Ok(_) if out[start..].starts_with(prefix.as_bytes()) => return out,
                Ok(_) => {}
                Err(e) => panic!("reading a response: {e}"),
            }
        }
    }

    /// Sends `tag command` and returns every line up to the tagged one.
    pub fn command(&mut self, tag: &str, command: &str) -> Vec<String> {
        self.send(&format!("{tag} {command}\r\n"));
        self.until_tagged(tag)
    }

    /// True when the server sends nothing for `quiet` (the read times out with no byte).
    pub fn silent_for(&mut self, quiet: Duration) -> bool {
        let stream = self.reader.get_ref();
        stream.set_read_timeout(Some(quiet)).unwrap();
        let silent = matches!(
            self.reader.fill_buf(),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
        );
        let stream = self.reader.get_ref();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        silent
    }

    /// True when the server closed the connection (EOF) within the read timeout.
    pub fn is_closed(&mut self) -> bool {
        let mut rest = Vec::new();
        self.reader.read_to_end(&mut rest).is_ok()
    }

    /// Turns the connection into TLS after a STARTTLS OK.
    pub fn into_tls(self, cert: &Path) -> TlsClient {
        TlsClient::new(self.reader.into_inner(), cert)
    }
}

/// An IMAP client over rustls.
pub struct TlsClient {
    stream: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    buf: Vec<u8>,
}

impl TlsClient {
    pub fn new(tcp: TcpStream, cert: &Path) -> TlsClient {
        tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        let pem = std::fs::read(cert).expect("server certificate");
        for c in rustls_pemfile::certs(&mut pem.as_slice()) {
            roots.add(c.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let conn = rustls::ClientConnection::new(Arc::new(config), "localhost".try_into().unwrap())
            .unwrap();
        TlsClient {
            stream: rustls::StreamOwned::new(conn, tcp),
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, data: &str) {
        self.send_bytes(data.as_bytes());
    }

    pub fn send_bytes(&mut self, data: &[u8]) {
        self.stream.write_all(data).unwrap();
        self.stream.flush().unwrap();
    }

    /// Sends each piece as a TLS record of its own, all of them in one socket write, so the
    /// server meets them together in whatever way its reads cut them.
    pub fn send_records(&mut self, pieces: &[&[u8]]) {
        let mut wire = Vec::new();
        for piece in pieces {
            self.stream.conn.writer().write_all(piece).unwrap();
            while self.stream.conn.wants_write() {
                self.stream.conn.write_tls(&mut wire).unwrap();
            }
        }
        self.stream.sock.write_all(&wire).unwrap();
    }

    /// Reads exactly `n` bytes (a literal's contents).
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            let mut chunk = vec![0u8; 64 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => panic!("connection closed after {} of {n} bytes", self.buf.len()),
                Ok(got) => self.buf.extend_from_slice(&chunk[..got]),
                Err(e) => panic!("TLS read: {e}"),
            }
        }
        self.buf.drain(..n).collect()
    }

    pub fn line(&mut self) -> String {
        loop {
            if let Some(pos) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..pos + 2).collect();
                return String::from_utf8_lossy(&line[..pos]).into_owned();
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return String::new(),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return String::new(),
                Err(e) => panic!("TLS read: {e}"),
            }
        }
    }

    pub fn until_tagged(&mut self, tag: &str) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let line = self.line();
            assert!(
                !line.is_empty(),
                "connection closed before {tag}; got {lines:?}"
            );
            let done = line.starts_with(&format!("{tag} "));
            lines.push(line);
            if done {
                return lines;
            }
        }
    }

    pub fn command(&mut self, tag: &str, command: &str) -> Vec<String> {
        self.send(&format!("{tag} {command}\r\n"));
        self.until_tagged(tag)
    }
}

/// The capability list in a response line (`* CAPABILITY ...` or `[CAPABILITY ...]`).
pub fn capabilities(lines: &[String]) -> Vec<String> {
    for line in lines {
        let rest = if let Some(rest) = line.strip_prefix("* CAPABILITY ") {
            rest
        } else if let Some(start) = line.find("[CAPABILITY ") {
            let rest = &line[start + "[CAPABILITY ".len()..];
            &rest[..rest.find(']').unwrap_or(rest.len())]
        } else {
            continue;
        };
        return rest.split(' ').map(str::to_string).collect();
    }
    panic!("no capability list in {lines:?}")
}

/// A PROXY v2 header for a TCP/IPv4 client, as HAProxy's `send-proxy-v2` writes it.
pub fn proxy_v2(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.push(0x21); // version 2, PROXY
    h.push(0x11); // TCP over IPv4
    h.extend_from_slice(&12u16.to_be_bytes());
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    h.extend_from_slice(&sport.to_be_bytes());
    h.extend_from_slice(&dport.to_be_bytes());
    h
}

/// Status line and body of an HTTP `GET path` (the metrics endpoint).
pub fn http_get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).expect("metrics endpoint");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.lines().next().unwrap_or("").to_string();
    (status, body.to_string())
}

/// Sum of every sample of `name` in a metrics page whose labels contain all of `labels`
/// (`key="value"`).
pub fn metric_sum(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            (metric == name && labels.iter().all(|want| rest.contains(want)))
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .sum()
}
