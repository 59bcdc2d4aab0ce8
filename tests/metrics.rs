//! End-to-end tests of operations: /metrics after real IMAP traffic, /healthz and /readyz,
//! SIGHUP reloads (a bad config keeps the old one, a good one applies without dropping
//! sessions), the disconnect log line and the per-user protocol trace.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{
    capabilities, config_text, free_port, http_get as get, metric_sum as sum, Client, Server,
};

const USERS: &str = "demo:{PLAIN}secret\nother:{PLAIN}pw\n";

fn metrics_section(port: u16) -> String {
    format!("[metrics]\nlisten = [\"127.0.0.1:{port}\"]\n")
}

/// Scrapes until `ok` holds for the body (executors report once a second).
fn scrape_until(addr: SocketAddr, what: &str, ok: impl Fn(&str) -> bool) -> String {
    // Generous: on a loaded 2-core CI machine a second's report can come late.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, body) = get(addr, "/metrics");
        if ok(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "{what} never showed up:\n{body}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn wait_for_log(server: &Server, needle: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.log_text().matches(needle).count() < count {
        assert!(
            Instant::now() < deadline,
            "log never said {needle:?}:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sighup(server: &Server) {
    // SAFETY: kill() with the pid of a child we spawned and a valid signal number.
    unsafe { libc::kill(server.child.id() as i32, libc::SIGHUP) };
}

fn login(server: &Server, user: &str, password: &str) -> Client {
    let mut c = server.connect();
    let r = c.command("l", &format!("LOGIN {user} {password}"));
    assert!(r.last().unwrap().starts_with("l OK"), "{r:?}");
    c
}

/// Runs the official Prometheus Python client's text parser over `text` and checks the
/// types it read. Skipped (with a note) where the module is not installed, except under CI
/// (`CI` set), where .ci/run installs it and its absence is a failure.
fn parses_as_prometheus_text(text: &str) {
    use std::process::{Command, Stdio};
    const SCRIPT: &str = "
import sys
try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    sys.exit(3)
for family in text_string_to_metric_families(sys.stdin.read()):
    print(family.name, family.type, len(family.samples))
";
    let mut child = match Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            assert!(std::env::var_os("CI").is_none(), "python3: {e}");
            eprintln!("python3 not found: exposition format not checked");
            return;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.code() == Some(3) {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs the prometheus-client Python package (.ci/run installs it)"
        );
        eprintln!("prometheus_client not installed: exposition format not checked");
        return;
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the Prometheus parser refused the page: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    for family in [
        "ringmail_store_fsync_seconds histogram",
        "ringmail_store_batch_records histogram",
        "ringmail_command_duration_seconds histogram",
        "ringmail_store_messages gauge",
    ] {
        assert!(
            stdout.lines().any(|l| l.starts_with(family)),
            "{family} not parsed:\n{stdout}"
        );
    }
    // Counters are named without their `_total` suffix by the parser.
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("ringmail_store_appends counter")),
        "{stdout}"
    );
}

#[test]
fn counters_move_with_imap_traffic_and_readyz_turns_ready() {
    let port = free_port();
    let server = Server::start(2, "", &metrics_section(port), USERS);
    let endpoint: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();

    assert_eq!(get(endpoint, "/healthz").0, "HTTP/1.1 200 OK");
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(endpoint, "/readyz").0 != "HTTP/1.1 200 OK" {
        assert!(Instant::now() < deadline, "/readyz never turned 200");
        std::thread::sleep(Duration::from_millis(100));
    }
    let before = scrape_until(endpoint, "executors", |b| {
        sum(b, "ringmail_executors_ready", &[]) == 2.0
    });
    assert_eq!(sum(&before, "ringmail_commands_total", &[]), 0.0);

    // A failed login, a working session with APPEND / FETCH / a malformed command / a
    // too-long line, and a second session left in IDLE.
    let mut failed = server.connect();
    let r = failed.command("f", "LOGIN demo wrong");
    assert!(r.last().unwrap().starts_with("f NO"), "{r:?}");
    drop(failed);

    let mut c = login(&server, "demo", "secret");
    let r = c.command("s", "SELECT INBOX");
    assert!(r.last().unwrap().starts_with("s OK"), "{r:?}");
    let message = "Subject: hi\r\n\r\nhello\r\n";
    c.send(&format!(
        "a APPEND INBOX {{{}+}}\r\n{message}\r\n",
        message.len()
    ));
    let r = c.until_tagged("a");
    assert!(r.last().unwrap().starts_with("a OK"), "{r:?}");
    let r = c.command("g", "FETCH 1 (FLAGS RFC822.SIZE)");
    assert!(r.last().unwrap().starts_with("g OK"), "{r:?}");
    let r = c.command("x", "FROBNICATE");
    assert!(r.last().unwrap().starts_with("x BAD"), "{r:?}");
    c.send(&format!("y NOOP {}\r\n", "a".repeat(70 * 1024)));
    let r = c.until_tagged("y");
    assert!(r.last().unwrap().starts_with("y BAD"), "{r:?}");

    let mut idler = login(&server, "other", "pw");
    idler.command("s", "SELECT INBOX");
    idler.send("i IDLE\r\n");
    assert!(idler.line().starts_with('+'));

    // Each executor reports once a second, so wait until every expected value is in.
    let expected: &[(&str, &[&str], f64)] = &[
        ("ringmail_idle_sessions", &[], 1.0),
        (
            "ringmail_commands_total",
            &["command=\"LOGIN\"", "result=\"ok\""],
            2.0,
        ),
        (
            "ringmail_commands_total",
            &["command=\"LOGIN\"", "result=\"no\""],
            1.0,
        ),
        (
            "ringmail_commands_total",
            &["command=\"APPEND\"", "result=\"ok\""],
            1.0,
        ),
        (
            "ringmail_logins_total",
            &["mechanism=\"LOGIN\"", "result=\"wrong_password\""],
            1.0,
        ),
        (
            "ringmail_logins_total",
            &["mechanism=\"LOGIN\"", "result=\"ok\""],
            2.0,
        ),
        ("ringmail_append_messages_total", &[], 1.0),
        ("ringmail_append_bytes_total", &[], message.len() as f64),
        (
            "ringmail_command_duration_seconds_count",
            &["command=\"FETCH\""],
            1.0,
        ),
        (
            "ringmail_command_duration_seconds_bucket",
            &["command=\"FETCH\"", "le=\"+Inf\""],
            1.0,
        ),
        ("ringmail_rejected_total", &["limit=\"line_length\""], 1.0),
        ("ringmail_rejected_total", &["limit=\"syntax\""], 1.0),
        ("ringmail_connections_open", &["listener=\"imap\""], 2.0),
        ("ringmail_sessions", &["state=\"selected\""], 2.0),
    ];
    let text = scrape_until(endpoint, "the expected values", |b| {
        expected
            .iter()
            .all(|(name, labels, want)| sum(b, name, labels) == *want)
    });
    let count = |name, labels: &[&str]| sum(&text, name, labels);
    // Three sessions, plus the probes of Server::start that waited for the listener.
    assert!(
        count(
            "ringmail_connections_accepted_total",
            &["listener=\"imap\""]
        ) >= 3.0
    );
    assert!(count("ringmail_bytes_received_total", &[]) > 70.0 * 1024.0);
    assert!(count("ringmail_bytes_sent_total", &[]) > 0.0);
    // Labels never carry user names.
    assert!(!text.contains("demo") && !text.contains("other"));

    // The store and LMTP series: an LMTP delivery to demo makes the second message.
    let mut lmtp = server.lmtp();
    lmtp.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<demo>\r\nDATA\r\n");
    for _ in 0..3 {
        let line = lmtp.line();
        assert!(line.starts_with("250") || line.starts_with("354"), "{line}");
    }
    lmtp.send("Subject: via lmtp\r\n\r\nhi\r\n.\r\n");
    let line = lmtp.line();
    assert!(line.starts_with("250 2.0.0"), "{line}");
    let text = scrape_until(endpoint, "the LMTP delivery and the store", |b| {
        sum(
            b,
            "ringmail_lmtp_deliveries_total",
            &["result=\"delivered\""],
        ) == 1.0
            && sum(b, "ringmail_store_messages", &[]) == 2.0
    });
    let count = |name, labels: &[&str]| sum(&text, name, labels);
    assert!(
        count(
            "ringmail_connections_accepted_total",
            &["listener=\"lmtp\""]
        ) >= 1.0
    );
    assert_eq!(
        count("ringmail_connections_open", &["listener=\"lmtp\""]),
        1.0
    );
    // Two messages plus the users' mailboxes and subscriptions: every mutation is a record.
    let appends = count("ringmail_store_appends_total", &[]);
    assert!(appends >= 2.0, "{appends}");
    let fsyncs = count("ringmail_store_fsyncs_total", &[]);
    assert!(
        fsyncs >= 1.0 && fsyncs <= appends,
        "{fsyncs} fsyncs, {appends} appends"
    );
    // Every sync is in the latency histogram, every record in the batch-size histogram.
    assert_eq!(count("ringmail_store_fsync_seconds_count", &[]), fsyncs);
    assert_eq!(
        count("ringmail_store_fsync_seconds_bucket", &["le=\"+Inf\""]),
        fsyncs
    );
    assert_eq!(count("ringmail_store_batch_records_sum", &[]), appends);
    assert!(count("ringmail_store_index_bytes", &[]) > 0.0);
    parses_as_prometheus_text(&text);
    drop(lmtp);

    // LOGOUT ends the session: a disconnect line, a counter, gauges back down.
    let r = c.command("z", "LOGOUT");
    assert!(r.last().unwrap().starts_with("z OK"), "{r:?}");
    assert!(c.is_closed());
    let text = scrape_until(endpoint, "the logout", |b| {
        sum(b, "ringmail_disconnects_total", &["reason=\"logout\""]) == 1.0
    });
    assert_eq!(sum(&text, "ringmail_sessions", &[]), 1.0);
    wait_for_log(&server, "reason=\"logout\"", 1);
    let log = server.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("disconnect") && l.contains("reason=\"logout\""))
        .expect("disconnect line");
    // LOGIN, SELECT, APPEND, FETCH, LOGOUT: the two inputs the parser refused are no commands.
    for field in [
        "duration_ms=",
        "commands=5",
        "bytes_in=",
        "bytes_out=",
        "demo",
    ] {
        assert!(line.contains(field), "{field} missing in {line}");
    }
}

#[test]
fn sighup_with_a_bad_config_keeps_the_old_one_and_a_good_one_applies() {
    let port = free_port();
    let mut server = Server::start(2, "", &metrics_section(port), USERS);
    let config_path = server.dir.path().join("ringmail.toml");
    let mut session = login(&server, "demo", "secret");
    let plain_caps = |server: &Server| {
        let mut c = Client::from_stream(TcpStream::connect(server.imap).unwrap());
        capabilities(&[c.line()])
    };
    assert!(!plain_caps(&server).contains(&"LOGINDISABLED".to_string()));

    // An unknown key: refused, the old config stays, the session goes on.
    let good = config_text(
        server.imap,
        server.imaps,
        server.lmtp,
        2,
        "",
        "",
        &metrics_section(port),
    );
    let typo = good.replace("idle_timeout_unauth_secs", "idle_timeout_unauth_sec");
    std::fs::write(&config_path, typo).unwrap();
    sighup(&server);
    wait_for_log(&server, "config reload refused", 1);
    assert!(server.log_text().contains("idle_timeout_unauth_sec`"));
    assert!(!plain_caps(&server).contains(&"LOGINDISABLED".to_string()));
    let r = session.command("n1", "NOOP");
    assert!(r.last().unwrap().starts_with("n1 OK"), "{r:?}");

    // A log level that does not parse is refused the same way.
    let bad_level = good.replace("log_level = \"debug\"", "log_level = \"ringmail=loud\"");
    std::fs::write(&config_path, bad_level).unwrap();
    sighup(&server);
    wait_for_log(&server, "config reload refused", 2 * 2);

    // A good change (no network counts as secure any more) applies to new connections while
    // the old session keeps working.
    let changed = config_text(
        server.imap,
        server.imaps,
        server.lmtp,
        2,
        "secure_networks = []",
        "",
        &metrics_section(port),
    );
    std::fs::write(&config_path, changed).unwrap();
    sighup(&server);
    wait_for_log(&server, "configuration reloaded", 2);
    assert!(plain_caps(&server).contains(&"LOGINDISABLED".to_string()));
    let r = session.command("n2", "NOOP");
    assert!(r.last().unwrap().starts_with("n2 OK"), "{r:?}");
    assert!(server.terminate().success());
}

#[test]
fn protocol_trace_for_one_user_switched_on_at_run_time() {
    let server = Server::start(2, "", &metrics_section(free_port()), USERS);
    let rawlog = server.dir.path().join("rawlog");

    // `other` is logged in before the switch exists; `demo` logs in after.
    let mut early = login(&server, "other", "pw");
    // A first command: a session handed to its owner core checks the switch at its first read.
    early.command("n0", "NOOP");
    std::fs::create_dir_all(rawlog.join("demo")).unwrap();
    std::fs::create_dir_all(rawlog.join("other")).unwrap();
    let mut c = login(&server, "demo", "secret");
    let r = c.command("s", "SELECT INBOX");
    assert!(r.last().unwrap().starts_with("s OK"), "{r:?}");
    let r = c.command("z", "LOGOUT");
    assert!(r.last().unwrap().starts_with("z OK"), "{r:?}");
    assert!(c.is_closed());

    let traces = |user: &str| -> String {
        std::fs::read_dir(rawlog.join(user))
            .map(|dir| {
                dir.flatten()
                    .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                    .collect()
            })
            .unwrap_or_default()
    };
    let demo = traces("demo");
    assert!(demo.contains("C: s SELECT INBOX"), "{demo}");
    assert!(demo.contains("S: s OK"), "{demo}");
    assert!(demo.contains("S: * BYE"), "{demo}");
    assert!(
        !demo.contains("secret"),
        "the password must never be traced: {demo}"
    );

    // The running session of `other` is traced only after a SIGHUP.
    early.command("n1", "NOOP");
    assert!(!traces("other").contains("n1 NOOP"));
    sighup(&server);
    wait_for_log(&server, "configuration reloaded", 2);
    early.command("n2", "NOOP");
    let other = traces("other");
    assert!(other.contains("C: n2 NOOP"), "{other}");
    assert!(other.contains("S: n2 OK"), "{other}");
}

/// ManageSieve commands are counted and timed in a family of their own (both protocols
/// have CAPABILITY, NOOP, LOGOUT, ...): IMAP's counters do not move.
#[test]
fn managesieve_commands_are_counted_and_timed_apart_from_imap() {
    let port = free_port();
    let server = Server::start_with_managesieve(2, "", "", &metrics_section(port), USERS);
    let endpoint: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut c = Client::from_stream(TcpStream::connect(server.managesieve.unwrap()).unwrap());
    let read_response = |c: &mut Client| loop {
        let line = c.line();
        assert!(!line.is_empty(), "connection closed");
        if line.starts_with("OK") || line.starts_with("NO") || line.starts_with("BYE") {
            return line;
        }
    };
    assert!(read_response(&mut c).starts_with("OK"), "greeting");
    for command in ["CAPABILITY", "NOOP", "NOOP"] {
        c.send(&format!("{command}\r\n"));
        assert!(read_response(&mut c).starts_with("OK"), "{command}");
    }
    // Not logged in: a script command is refused before it runs, so it is no command.
    c.send("LISTSCRIPTS\r\n");
    assert!(read_response(&mut c).starts_with("NO"));
    c.send("AUTHENTICATE \"PLAIN\" \"AGRlbW8Ad3Jvbmc=\"\r\n");
    assert!(read_response(&mut c).starts_with("NO"), "wrong password");
    c.send("LOGOUT\r\n");
    assert!(read_response(&mut c).starts_with("OK"));

    let family = "ringmail_managesieve_commands_total";
    let body = scrape_until(endpoint, "the LOGOUT", |b| {
        sum(b, family, &["command=\"LOGOUT\""]) == 1.0
    });
    parses_as_prometheus_text(&body);
    assert_eq!(
        sum(&body, family, &["command=\"NOOP\"", "result=\"ok\""]),
        2.0
    );
    assert_eq!(sum(&body, family, &["command=\"CAPABILITY\""]), 1.0);
    assert_eq!(
        sum(
            &body,
            family,
            &["command=\"AUTHENTICATE\"", "result=\"no\""]
        ),
        1.0
    );
    assert_eq!(sum(&body, family, &["command=\"LISTSCRIPTS\""]), 0.0);
    assert_eq!(
        sum(
            &body,
            "ringmail_managesieve_command_duration_seconds_count",
            &["command=\"NOOP\""]
        ),
        2.0
    );
    assert_eq!(sum(&body, "ringmail_commands_total", &[]), 0.0, "IMAP's");
}
