//! The `logins` profile against a tiny in-test IMAP server (a thread per connection that
//! answers CAPABILITY, LOGIN and LOGOUT), so CI needs neither Dovecot nor ringmail.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use clap::Parser;
use ringmail_load::{run, Options, Summary};

/// What the fake server saw.
#[derive(Default)]
struct Seen {
    logins_ok: AtomicU64,
    logins_refused: AtomicU64,
    logouts: AtomicU64,
}

/// Starts the fake server; LOGIN succeeds unless the password is "wrong".
fn fake_server() -> (SocketAddr, Arc<Seen>) {
    common::spawn_fake(serve)
}

fn serve(stream: TcpStream, seen: &Seen) {
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    if out
        .write_all(b"* OK [CAPABILITY IMAP4rev1 LITERAL+] fake ready\r\n")
        .is_err()
    {
        return;
    }
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut words = line.trim_end().splitn(3, ' ');
        let tag = words.next().unwrap_or("*").to_string();
        let command = words.next().unwrap_or("").to_ascii_uppercase();
        let args = words.next().unwrap_or("");
        let reply = match command.as_str() {
            "LOGIN" if args.ends_with("\"wrong\"") => {
                seen.logins_refused.fetch_add(1, Ordering::Relaxed);
                format!("{tag} NO [AUTHENTICATIONFAILED] Authentication failed.\r\n")
            }
            "LOGIN" => {
                seen.logins_ok.fetch_add(1, Ordering::Relaxed);
                format!("{tag} OK [CAPABILITY IMAP4rev1 IDLE] Logged in\r\n")
            }
            "LOGOUT" => {
                seen.logouts.fetch_add(1, Ordering::Relaxed);
                let _ = out.write_all(
                    format!("* BYE Logging out\r\n{tag} OK Logout completed.\r\n").as_bytes(),
                );
                return;
            }
            _ => format!("{tag} BAD unknown command\r\n"),
        };
        if out.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

fn options(addr: SocketAddr, extra: &[&str]) -> Options {
    let port = addr.port().to_string();
    let mut args = vec![
        "ringmail-load",
        "logins",
        "--host",
        "127.0.0.1",
        "--port",
        &port,
        "--quiet",
    ];
    args.extend_from_slice(extra);
    Options::try_parse_from(args).expect("options parse")
}

#[test]
fn bounded_iterations_give_exact_counts() {
    let (addr, seen) = fake_server();
    let opts = options(
        addr,
        &[
            "--clients",
            "4",
            "--iterations",
            "25",
            "--threads",
            "2",
            "--duration",
            "20",
        ],
    );
    let summary = run(opts, |_| {}).expect("run");
    assert_eq!(summary.error_count, 0, "{:?}", summary.errors);
    assert_eq!(common::count(&summary, "login"), 100);
    assert_eq!(common::count(&summary, "logout"), 100);
    assert_eq!(common::count(&summary, "connect"), 100);
    assert_eq!(summary.total_commands, 200);
    assert_eq!(seen.logins_ok.load(Ordering::Relaxed), 100);
    assert_eq!(seen.logouts.load(Ordering::Relaxed), 100);
    // Iterations ended the run long before the duration.
    assert!(summary.seconds < 15.0, "{}", summary.seconds);
    let login = summary
        .commands
        .iter()
        .find(|c| c.command == "login")
        .expect("login row");
    assert!(login.p50_ms <= login.p99_ms && login.p99_ms <= login.max_ms);
}

#[test]
fn duration_bounded_run_counts_what_the_server_saw() {
    let (addr, seen) = fake_server();
    let opts = options(
        addr,
        &["--clients", "3", "--duration", "0.5", "--threads", "1"],
    );
    let mut lines = Vec::new();
    let summary = run(opts, |l| lines.push(l.to_string())).expect("run");
    assert_eq!(summary.error_count, 0, "{:?}", summary.errors);
    let logins = common::count(&summary, "login");
    assert!(logins > 0);
    // When the clock runs out a command may be in flight: the server can have seen at most one
    // more LOGIN and LOGOUT per client than the generator counted, never fewer.
    let clients = 3;
    let server_logins = seen.logins_ok.load(Ordering::Relaxed);
    assert!(
        (logins..=logins + clients).contains(&server_logins),
        "generator {logins}, server {server_logins}"
    );
    let logouts = common::count(&summary, "logout");
    let server_logouts = seen.logouts.load(Ordering::Relaxed);
    assert!(
        (logouts..=logouts + clients).contains(&server_logouts),
        "generator {logouts}, server {server_logouts}"
    );
    assert!(lines.is_empty(), "--quiet prints no per-second lines");
    // The JSON summary round-trips.
    let json = serde_json::to_string(&summary).expect("json");
    let back: Summary = serde_json::from_str(&json).expect("parse json");
    assert_eq!(back, summary);
}

#[test]
fn refused_logins_are_errors_with_examples() {
    let (addr, seen) = fake_server();
    let opts = options(
        addr,
        &["--clients", "2", "--duration", "0.3", "--password", "wrong"],
    );
    let summary = run(opts, |_| {}).expect("run");
    assert_eq!(common::count(&summary, "login"), 0);
    let no = summary.errors.get("NO").expect("NO errors counted");
    assert!(no.count > 0);
    assert!(no.count <= seen.logins_refused.load(Ordering::Relaxed));
    assert!(
        no.examples
            .iter()
            .all(|e| e.contains("AUTHENTICATIONFAILED")),
        "{:?}",
        no.examples
    );
}

#[test]
fn per_second_lines_are_printed() {
    let (addr, _seen) = fake_server();
    let port = addr.port().to_string();
    let opts = Options::try_parse_from([
        "ringmail-load",
        "logins",
        "--port",
        &port,
        "--clients",
        "2",
        "--duration",
        "1.2",
    ])
    .expect("options parse");
    let mut lines = Vec::new();
    run(opts, |l| lines.push(l.to_string())).expect("run");
    assert_eq!(
        lines.first().map(String::as_str),
        Some(" Conn Logi Logo   conn  errors")
    );
    assert!(lines.len() >= 2, "{lines:?}");
    assert!(lines[1].ends_with("/2  0"), "{lines:?}");
}
