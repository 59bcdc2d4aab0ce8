//! The metrics thread: keeps the latest snapshot of each executor and answers HTTP.
//!
//! Executors never block on it: they `try_send` a snapshot once a second on a bounded channel
//! that a collector thread drains at once. The HTTP side is a deliberately small HTTP/1.1
//! server on `std::net`: GET only, one connection at a time, requests capped at 8 KiB and two
//! seconds, `Connection: close`. A scraper or a health checker needs nothing more, and a
//! client that misbehaves can only delay the next scrape by those two seconds.
//!
//! Routes: `/metrics` (Prometheus text), `/healthz` (200 while the process runs), `/readyz`
//! (200 once every executor has opened its partitions and bound its listeners, 503 before
//! that and during shutdown).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::Sender;
use tracing::{error, info, warn};

use crate::registry::Snapshot;
use crate::render::{render, ProcessInfo};

/// Largest request head read (request line and headers).
const MAX_REQUEST: usize = 8 * 1024;
/// Time a client gets to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Time a client gets to read the answer.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Renders metrics kept outside the executors (the cluster's control plane and node-to-node
/// link) as Prometheus text, appended to every `/metrics` answer.
pub type Section = Box<dyn Fn() -> String + Send + Sync>;

/// The process's extra sections (see [`add_section`]).
static SECTIONS: Mutex<Vec<Section>> = Mutex::new(Vec::new());

/// Adds a section to `/metrics`; each is called at every scrape, on the HTTP thread, so it
/// must only read counters.
pub fn add_section(section: Section) {
    SECTIONS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(section);
}

/// The latest snapshot of every executor, shared by the collector and the HTTP threads.
struct Latest {
    slots: Vec<Option<Snapshot>>,
    process: ProcessInfo,
}

impl Latest {
    fn ready(&self) -> (usize, usize) {
        let ready = self
            .slots
            .iter()
            .flatten()
            .filter(|s| s.ready && !s.stopping)
            .count();
        (ready, self.slots.len())
    }
}

/// Starts the collector and one HTTP thread per address in `listen`. Returns the sender the
/// executors report to, or None when metrics are off (no address) or no address could be
/// bound. A bind failure is logged and does not stop the server: mail matters more than
/// its graphs, and `ringmail doctor` names the port's owner.
pub fn start(listen: &[SocketAddr], executors: usize) -> Option<Sender<Snapshot>> {
    if listen.is_empty() {
        return None;
    }
    let start_time = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let latest = Arc::new(Mutex::new(Latest {
        slots: vec![None; executors],
        process: ProcessInfo {
            executors,
            start_time,
        },
    }));
    let mut bound = 0;
    for addr in listen {
        let listener = match TcpListener::bind(addr) {
            Ok(l) => l,
            Err(e) => {
                error!(
                    "metrics listener {addr} not started: {e} (another process has the port? \
                     `ringmail doctor` names it; change [metrics] listen)"
                );
                continue;
            }
        };
        let latest = latest.clone();
        let spawned = std::thread::Builder::new()
            .name("ringmail-metrics".into())
            .spawn(move || serve_http(listener, &latest));
        match spawned {
            Ok(_) => {
                info!("metrics on http://{addr}/metrics");
                bound += 1;
            }
            Err(e) => error!("cannot start the metrics thread: {e}"),
        }
    }
    if bound == 0 {
        return None;
    }
    // Room for a few seconds of every executor's snapshots; the collector drains it at once.
    let (tx, rx) = crossbeam_channel::bounded::<Snapshot>(executors * 4 + 4);
    let collector = std::thread::Builder::new()
        .name("ringmail-metrics-collect".into())
        .spawn(move || {
            for snapshot in rx {
                let mut latest = lock(&latest);
                if let Some(slot) = latest.slots.get_mut(snapshot.executor) {
                    *slot = Some(snapshot);
                }
            }
        });
    match collector {
        Ok(_) => Some(tx),
        Err(e) => {
            error!("cannot start the metrics collector: {e}");
            None
        }
    }
}

fn lock(latest: &Mutex<Latest>) -> std::sync::MutexGuard<'_, Latest> {
    // A panic while holding the lock cannot leave a snapshot half-written (slots are replaced
    // whole), so a poisoned lock is still good to use.
    latest.lock().unwrap_or_else(|e| e.into_inner())
}

fn serve_http(listener: TcpListener, latest: &Mutex<Latest>) {
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => {
                if let Err(e) = answer(stream, latest) {
                    tracing::debug!("metrics request failed: {e}");
                }
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                warn!("metrics accept failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn answer(mut stream: TcpStream, latest: &Mutex<Latest>) -> std::io::Result<()> {
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let Some(head) = read_head(&mut stream)? else {
        return respond(
            &mut stream,
            "400 Bad Request",
            "text/plain",
            "bad request\n",
            false,
        );
    };
    let mut parts = head.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let head_only = method == "HEAD";
    if method != "GET" && !head_only {
        return respond(
            &mut stream,
            "405 Method Not Allowed",
            "text/plain",
            "GET only\n",
            false,
        );
    }
    let path = target.split('?').next().unwrap_or("");
    match path {
        "/metrics" => {
            let mut body = {
                let latest = lock(latest);
                let snapshots: Vec<&Snapshot> = latest.slots.iter().flatten().collect();
                render(&snapshots, &latest.process)
            };
            for section in SECTIONS.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                body.push_str(&section());
            }
            respond(
                &mut stream,
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                &body,
                head_only,
            )
        }
        "/healthz" => respond(&mut stream, "200 OK", "text/plain", "ok\n", head_only),
        "/readyz" => {
            let (ready, total) = lock(latest).ready();
            if ready == total {
                respond(&mut stream, "200 OK", "text/plain", "ready\n", head_only)
            } else {
                let body = format!("not ready: {ready} of {total} executors ready\n");
                respond(
                    &mut stream,
                    "503 Service Unavailable",
                    "text/plain",
                    &body,
                    head_only,
                )
            }
        }
        _ => respond(
            &mut stream,
            "404 Not Found",
            "text/plain",
            "try /metrics, /healthz or /readyz\n",
            head_only,
        ),
    }
}

/// Reads the request head; returns its first line, or None when it is too long, too slow or
/// not HTTP.
fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<String>> {
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = memchr::memmem::find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]);
            let line = head.lines().next().unwrap_or("").to_string();
            let is_http = line.ends_with(" HTTP/1.1") || line.ends_with(" HTTP/1.0");
            return Ok(is_http.then_some(line));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || buf.len() >= MAX_REQUEST {
            return Ok(None);
        }
        stream.set_read_timeout(Some(left))?;
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &str,
    head_only: bool,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    if !head_only {
        stream.write_all(body.as_bytes())?;
    }
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::ExecutorMetrics;

    fn get(addr: SocketAddr, request: &str) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn ready_only_when_every_executor_reported_ready() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let tx = start(&[port], 2).expect("bound");
        let send = |executor, ready| {
            tx.send(Snapshot {
                executor,
                ready,
                stopping: false,
                metrics: ExecutorMetrics::new(),
            })
            .unwrap()
        };
        let readyz = "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n";
        assert!(get(port, readyz).starts_with("HTTP/1.1 503"));
        send(0, true);
        send(1, false);
        std::thread::sleep(Duration::from_millis(100));
        assert!(get(port, readyz).starts_with("HTTP/1.1 503"));
        send(1, true);
        std::thread::sleep(Duration::from_millis(100));
        assert!(get(port, readyz).starts_with("HTTP/1.1 200"));
        assert!(get(port, "GET /healthz HTTP/1.0\r\n\r\n").starts_with("HTTP/1.1 200"));
        assert!(get(port, "GET /nope HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
        assert!(get(port, "POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
        // A request head past the cap is refused, and the server still answers afterwards.
        let huge = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(20_000));
        let mut s = TcpStream::connect(port).unwrap();
        let _ = s.write_all(huge.as_bytes());
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        assert!(out.is_empty() || out.starts_with("HTTP/1.1 400"), "{out}");
        let metrics = get(port, "GET /metrics HTTP/1.1\r\n\r\n");
        assert!(metrics.contains("ringmail_executors_ready 2"), "{metrics}");
    }
}
