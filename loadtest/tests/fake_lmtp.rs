//! The `lmtp` profile against a tiny in-test LMTP server (a thread per connection) that
//! decodes DATA the way a real one does, refuses one user at RCPT and fails another's
//! delivery after DATA, so the generator's counting of deliveries and refusals is checked
//! without a mail server.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use clap::Parser;
use ringmail_load::{run, Options};

/// What the fake server saw.
#[derive(Default)]
struct Seen {
    /// Copies it answered 250 for.
    delivered: AtomicU64,
    /// Messages whose decoded DATA was not a well-formed message (no header/body split, or
    /// a stray lone dot line): would mean broken dot-stuffing.
    malformed: AtomicU64,
    /// MAIL FROM commands that carried a SIZE= matching the decoded message.
    size_matched: AtomicU64,
    /// MAIL FROM commands with a SIZE= that did not match.
    size_mismatched: AtomicU64,
}

/// user3 does not exist; user2's mailbox fails at DATA.
fn fake_lmtp() -> (SocketAddr, Arc<Seen>) {
    common::spawn_fake(serve)
}

fn serve(stream: TcpStream, seen: &Seen) {
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let say = |out: &mut TcpStream, text: &str| out.write_all(text.as_bytes()).is_ok();
    if !say(&mut out, "220 fake LMTP\r\n") {
        return;
    }
    let mut recipients: Vec<String> = Vec::new();
    let mut size: Option<usize> = None;
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_string();
        let upper = text.to_ascii_uppercase();
        let reply = if upper.starts_with("LHLO ") {
            "250-fake\r\n250-PIPELINING\r\n250 SIZE 100000000\r\n".to_string()
        } else if upper.starts_with("MAIL FROM:") {
            recipients.clear();
            size = upper.split_once(" SIZE=").and_then(|(_, s)| s.parse().ok());
            "250 2.1.0 ok\r\n".to_string()
        } else if let Some(rcpt) = upper.strip_prefix("RCPT TO:") {
            if rcpt.starts_with("<USER3@") {
                format!("550 5.1.1 {rcpt} User unknown\r\n")
            } else {
                recipients.push(rcpt.to_string());
                "250 2.1.5 ok\r\n".to_string()
            }
        } else if upper == "RSET" {
            "250 2.0.0 ok\r\n".to_string()
        } else if upper == "DATA" {
            if !say(&mut out, "354 go ahead\r\n") {
                return;
            }
            let Some(message) = read_data(&mut reader) else {
                return;
            };
            let well_formed = message.windows(4).any(|w| w == b"\r\n\r\n")
                && !message.split(|&b| b == b'\n').any(|l| l == b".\r");
            if !well_formed {
                seen.malformed.fetch_add(1, Ordering::Relaxed);
            }
            match size {
                Some(n) if n == message.len() => seen.size_matched.fetch_add(1, Ordering::Relaxed),
                _ => seen.size_mismatched.fetch_add(1, Ordering::Relaxed),
            };
            let mut replies = String::new();
            for r in recipients.drain(..) {
                if r.starts_with("<USER2@") {
                    replies.push_str(&format!("452 4.3.1 {r} Insufficient system storage\r\n"));
                } else {
                    seen.delivered.fetch_add(1, Ordering::Relaxed);
                    replies.push_str(&format!("250 2.0.0 {r} Saved\r\n"));
                }
            }
            replies
        } else if upper == "QUIT" {
            let _ = say(&mut out, "221 bye\r\n");
            return;
        } else {
            "500 5.5.1 unknown\r\n".to_string()
        };
        if !say(&mut out, &reply) {
            return;
        }
    }
}

/// Reads DATA up to the terminator and undoes the dot-stuffing.
fn read_data(reader: &mut BufReader<TcpStream>) -> Option<Vec<u8>> {
    let mut message = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).ok()? == 0 {
            return None;
        }
        if line == b".\r\n" {
            return Some(message);
        }
        let unstuffed = line.strip_prefix(b".").unwrap_or(&line);
        message.extend_from_slice(unstuffed);
    }
}

fn options(addr: SocketAddr, extra: &[&str]) -> Options {
    let port = addr.port().to_string();
    let mut args = vec![
        "ringmail-load",
        "lmtp",
        "--port",
        &port,
        "--quiet",
        "--threads",
        "1",
        "--max-message-size",
        "20000",
    ];
    args.extend_from_slice(extra);
    Options::try_parse_from(args).expect("options parse")
}

#[test]
fn deliveries_are_counted_and_stuffed_data_decodes() {
    let (addr, seen) = fake_lmtp();
    // Only user1, who exists and has room: every delivery succeeds.
    let opts = options(
        addr,
        &[
            "--clients",
            "2",
            "--users",
            "1",
            "--iterations",
            "40",
            "--duration",
            "20",
        ],
    );
    let summary = run(opts, |_| {}).expect("run");
    assert_eq!(summary.error_count, 0, "{}", summary.to_text());
    assert_eq!(
        common::count(&summary, "delivery"),
        80,
        "{}",
        summary.to_text()
    );
    assert_eq!(common::count(&summary, "mail_from"), 80);
    assert_eq!(common::count(&summary, "rcpt_to"), 80);
    assert_eq!(common::count(&summary, "data"), 80);
    assert_eq!(common::count(&summary, "lhlo"), 2);
    assert_eq!(seen.delivered.load(Ordering::Relaxed), 80);
    assert_eq!(seen.malformed.load(Ordering::Relaxed), 0);
    // SIZE= was announced (the server offered SIZE) and equals the decoded message.
    assert_eq!(seen.size_matched.load(Ordering::Relaxed), 80);
    assert_eq!(seen.size_mismatched.load(Ordering::Relaxed), 0);
}

#[test]
fn refused_recipients_and_failed_deliveries_are_errors_with_examples() {
    let (addr, seen) = fake_lmtp();
    // Every message goes to user1..user4: user3 is refused at RCPT, user2 fails after DATA.
    let opts = options(
        addr,
        &[
            "--clients",
            "1",
            "--users",
            "4",
            "--recipients",
            "4",
            "--iterations",
            "5",
            "--duration",
            "20",
        ],
    );
    let summary = run(opts, |_| {}).expect("run");
    let refused = summary.errors.get("refused").expect("refusals counted");
    // Two refusals per message, each counted.
    assert_eq!(refused.count, 10, "{}", summary.to_text());
    assert_eq!(summary.error_count, 10);
    assert!(
        refused.examples.iter().any(|e| e.contains("550 5.1.1")),
        "{:?}",
        refused.examples
    );
    assert!(
        refused.examples.iter().any(|e| e.contains("452 4.3.1")),
        "{:?}",
        refused.examples
    );
    // user1 and user4 still got their copies.
    assert_eq!(common::count(&summary, "delivery"), 10);
    assert_eq!(seen.delivered.load(Ordering::Relaxed), 10);
    assert_eq!(common::count(&summary, "rcpt_to"), 20);
}
