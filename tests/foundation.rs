//! End-to-end tests of the server foundation: greeting, capabilities, STARTTLS, login,
//! SASL, implicit TLS, PROXY protocol, limits, hand-over between executors and shutdown.
//! Each test starts the real binary on free loopback ports with its own data dir.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use common::{capabilities, proxy_v2, Client, Server};

const DEMO: &str = "demo:{PLAIN}secret\n";

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

#[test]
fn greeting_lists_capabilities() {
    let server = Server::start(2, "", "", DEMO);
    let mut client = Client::from_stream(TcpStream::connect(server.imap).unwrap());
    let greeting = client.line();
    assert!(greeting.starts_with("* OK [CAPABILITY "), "{greeting}");
    let caps = capabilities(&[greeting]);
    for cap in [
        "IMAP4rev1",
        "IMAP4rev2",
        "STARTTLS",
        "AUTH=PLAIN",
        "SASL-IR",
        "LITERAL+",
    ] {
        assert!(caps.iter().any(|c| c == cap), "{cap} missing from {caps:?}");
    }
}

#[test]
fn capability_changes_with_starttls_and_login() {
    // No secure networks: plaintext login must wait for TLS.
    let server = Server::start(2, "secure_networks = []", "", DEMO);
    let mut client = server.connect();
    let caps = capabilities(&client.command("a", "CAPABILITY"));
    assert!(caps.contains(&"LOGINDISABLED".to_string()), "{caps:?}");
    assert!(caps.contains(&"STARTTLS".to_string()));
    assert!(!caps.contains(&"AUTH=PLAIN".to_string()));

    let refused = client.command("b", "LOGIN demo secret");
    assert!(
        refused
            .last()
            .unwrap()
            .starts_with("b NO [PRIVACYREQUIRED]"),
        "{refused:?}"
    );

    let ok = client.command("c", "STARTTLS");
    assert!(ok.last().unwrap().starts_with("c OK"), "{ok:?}");
    let mut tls = client.into_tls(&server.dir.path().join("tls/cert.pem"));
    let caps = capabilities(&tls.command("d", "CAPABILITY"));
    assert!(!caps.contains(&"STARTTLS".to_string()), "{caps:?}");
    assert!(!caps.contains(&"LOGINDISABLED".to_string()));
    assert!(caps.contains(&"AUTH=PLAIN".to_string()));

    let login = tls.command("e", "LOGIN demo secret");
    let last = login.last().unwrap();
    assert!(last.starts_with("e OK [CAPABILITY "), "{login:?}");
    let caps = capabilities(&login);
    assert!(caps.contains(&"NAMESPACE".to_string()), "{caps:?}");
    assert!(!caps.iter().any(|c| c.starts_with("AUTH=")));
    let again = tls.command("f", "LOGIN demo secret");
    assert!(again.last().unwrap().starts_with("f BAD"), "{again:?}");
}

#[test]
fn login_right_wrong_and_closed_after_failures() {
    let server = Server::start(2, "max_login_failures = 3", "", DEMO);
    let mut client = server.connect();
    let start = Instant::now();
    let wrong = client.command("a", "LOGIN demo nope");
    assert_eq!(
        wrong.last().unwrap(),
        "a NO [AUTHENTICATIONFAILED] Authentication failed"
    );
    let unknown = client.command("b", "LOGIN nobody secret");
    assert_eq!(
        unknown.last().unwrap(),
        "b NO [AUTHENTICATIONFAILED] Authentication failed"
    );
    // The delay grows: 50 ms, then 100 ms at least.
    assert!(start.elapsed() >= Duration::from_millis(150));
    let third = client.command("c", "LOGIN demo wrong");
    assert!(
        third
            .last()
            .unwrap()
            .starts_with("c NO [AUTHENTICATIONFAILED]"),
        "{third:?}"
    );
    let bye = client.line();
    assert!(bye.starts_with("* BYE"), "{bye}");
    assert!(client.is_closed());

    let mut client = server.connect();
    let ok = client.command("d", "LOGIN DEMO secret");
    assert!(
        ok.last().unwrap().starts_with("d OK"),
        "user names are case-insensitive: {ok:?}"
    );
}

#[test]
fn literal_and_quoted_credentials() {
    let server = Server::start(2, "", "", "demo:{PLAIN}se\"cr et\n");
    let mut client = server.connect();
    let ok = client.command("a", "LOGIN \"demo\" \"se\\\"cr et\"");
    assert!(ok.last().unwrap().starts_with("a OK"), "{ok:?}");

    let mut client = server.connect();
    client.send("b LOGIN {4}\r\n");
    assert!(
        client.line().starts_with("+ "),
        "synchronizing literal needs a continuation"
    );
    client.send("demo {8}\r\n");
    assert!(client.line().starts_with("+ "));
    client.send("se\"cr et\r\n");
    let ok = client.until_tagged("b");
    assert!(ok.last().unwrap().starts_with("b OK"), "{ok:?}");

    let mut client = server.connect();
    let ok = client.command("c", "LOGIN {4+}\r\ndemo {8+}\r\nse\"cr et");
    assert!(ok.last().unwrap().starts_with("c OK"), "LITERAL+ {ok:?}");
}

#[test]
fn authenticate_plain_with_and_without_initial_response() {
    let server = Server::start(2, "", "", DEMO);
    let mut client = server.connect();
    let ok = client.command(
        "a",
        &format!("AUTHENTICATE PLAIN {}", b64(b"\0demo\0secret")),
    );
    assert!(ok.last().unwrap().starts_with("a OK"), "SASL-IR {ok:?}");

    let mut client = server.connect();
    client.send("b AUTHENTICATE PLAIN\r\n");
    assert_eq!(client.line(), "+ ");
    client.send(&format!("{}\r\n", b64(b"demo\0demo\0secret")));
    let ok = client.until_tagged("b");
    assert!(ok.last().unwrap().starts_with("b OK"), "{ok:?}");

    let mut client = server.connect();
    client.send("c AUTHENTICATE PLAIN\r\n");
    assert_eq!(client.line(), "+ ");
    client.send(&format!("{}\r\n", b64(b"\0demo\0bad")));
    let no = client.until_tagged("c");
    assert!(
        no.last()
            .unwrap()
            .starts_with("c NO [AUTHENTICATIONFAILED]"),
        "{no:?}"
    );
    client.send("d AUTHENTICATE PLAIN\r\n");
    assert_eq!(client.line(), "+ ");
    client.send("*\r\n");
    let cancelled = client.until_tagged("d");
    assert!(
        cancelled.last().unwrap().starts_with("d BAD"),
        "{cancelled:?}"
    );

    let mut client = server.connect();
    client.send("e AUTHENTICATE LOGIN\r\n");
    assert_eq!(client.line(), format!("+ {}", b64(b"Username:")));
    client.send(&format!("{}\r\n", b64(b"demo")));
    assert_eq!(client.line(), format!("+ {}", b64(b"Password:")));
    client.send(&format!("{}\r\n", b64(b"secret")));
    let ok = client.until_tagged("e");
    assert!(ok.last().unwrap().starts_with("e OK"), "{ok:?}");
}

#[test]
fn implicit_tls_serves_imap() {
    let server = Server::start(2, "", "", DEMO);
    let mut tls = server.connect_tls();
    let caps = capabilities(&tls.command("a", "CAPABILITY"));
    assert!(!caps.contains(&"STARTTLS".to_string()), "{caps:?}");
    let ok = tls.command("b", "LOGIN demo secret");
    assert!(ok.last().unwrap().starts_with("b OK"), "{ok:?}");
    // After login the session may have moved to another executor, TLS state and all.
    let ns = tls.command("c", "NAMESPACE");
    assert_eq!(ns[0], "* NAMESPACE ((\"\" \"/\")) NIL NIL");
    let bye = tls.command("d", "LOGOUT");
    assert!(bye[0].starts_with("* BYE"), "{bye:?}");
}

#[test]
fn starttls_drops_pipelined_plaintext() {
    let server = Server::start(2, "", "", DEMO);
    let mut client = server.connect();
    // An attacker in the middle appends a command after STARTTLS; it must never run.
    client.send("a STARTTLS\r\nb LOGIN demo secret\r\n");
    let ok = client.until_tagged("a");
    assert!(ok.last().unwrap().starts_with("a OK"), "{ok:?}");
    let mut tls = client.into_tls(&server.dir.path().join("tls/cert.pem"));
    let lines = tls.command("c", "NOOP");
    assert!(
        lines.iter().all(|l| !l.starts_with("b ")),
        "the injected command ran: {lines:?}"
    );
    // Still not logged in: NAMESPACE needs authentication.
    let ns = tls.command("d", "NAMESPACE");
    assert!(ns.last().unwrap().starts_with("d BAD"), "{ns:?}");
}

#[test]
fn proxy_v2_from_trusted_network_names_the_client() {
    // Loopback is the trusted load balancer; only 127.0.0.0/8 counts as a secure network, so
    // a client the header places elsewhere must see LOGINDISABLED.
    let server = Server::start(
        2,
        "secure_networks = [\"127.0.0.0/8\"]",
        "[proxy]\ntrusted_networks = [\"127.0.0.0/8\"]\n",
        DEMO,
    );
    let mut stream = TcpStream::connect(server.imap).unwrap();
    stream
        .write_all(&proxy_v2([203, 0, 113, 7], [127, 0, 0, 1], 40000, 143))
        .unwrap();
    let mut client = Client::from_stream(stream);
    let greeting = client.line();
    let caps = capabilities(&[greeting]);
    assert!(caps.contains(&"LOGINDISABLED".to_string()), "{caps:?}");

    // The header says the client is on loopback: then LOGIN is allowed.
    let mut stream = TcpStream::connect(server.imap).unwrap();
    let mut header = b"PROXY TCP4 127.0.0.9 127.0.0.1 40001 143\r\n".to_vec();
    header.extend_from_slice(b"a LOGIN demo secret\r\n");
    stream.write_all(&header).unwrap();
    let mut client = Client::from_stream(stream);
    let greeting = client.line();
    assert!(capabilities(&[greeting]).contains(&"AUTH=PLAIN".to_string()));
    let ok = client.until_tagged("a");
    assert!(ok.last().unwrap().starts_with("a OK"), "{ok:?}");

    // A trusted peer that sends no header is cut off.
    let mut client = Client::from_stream(TcpStream::connect(server.imap).unwrap());
    client.send("a NOOP\r\n");
    assert!(client.is_closed());
}

#[test]
fn proxy_header_refused_from_untrusted_address() {
    let server = Server::start(
        2,
        "",
        "[proxy]\ntrusted_networks = [\"10.0.0.0/8\"]\n",
        DEMO,
    );
    let mut client = server.connect();
    client.send_bytes(&proxy_v2([203, 0, 113, 7], [127, 0, 0, 1], 40000, 143));
    let bye = client.line();
    assert!(bye.starts_with("* BYE PROXY"), "{bye}");
    assert!(client.is_closed());

    let mut client = server.connect();
    client.send("PROXY TCP4 203.0.113.7 127.0.0.1 40000 143\r\n");
    let bye = client.line();
    assert!(bye.starts_with("* BYE PROXY"), "{bye}");
}

#[test]
fn oversized_line_and_literal_keep_the_session() {
    let server = Server::start(2, "", "", DEMO);
    let mut client = server.connect();
    let long = format!("a LOGIN {} x\r\n", "u".repeat(70 * 1024));
    client.send(&long);
    let bad = client.until_tagged("a");
    assert!(bad.last().unwrap().starts_with("a BAD"), "{bad:?}");
    assert!(bad.last().unwrap().contains("LIMIT") || bad.last().unwrap().contains("long"));
    let ok = client.command("b", "NOOP");
    assert_eq!(ok.last().unwrap(), "b OK NOOP completed");

    // max_literal is 1 MiB in the test config: no continuation, a refusal, and the stream
    // stays in sync.
    client.send("c LOGIN {2000000}\r\n");
    let refused = client.line();
    assert!(
        refused.starts_with("c BAD") || refused.starts_with("c NO"),
        "{refused}"
    );
    assert!(
        refused.contains("[LIMIT]") || refused.contains("[TOOBIG]"),
        "{refused}"
    );
    let ok = client.command("d", "NOOP");
    assert_eq!(ok.last().unwrap(), "d OK NOOP completed");

    // A non-synchronizing literal that is too big: its bytes are skipped, then back in sync.
    let mut data = b"e LOGIN {1100000+}\r\n".to_vec();
    data.extend(std::iter::repeat_n(b'x', 1_100_000));
    data.extend_from_slice(b" y\r\nf NOOP\r\n");
    client.send_bytes(&data);
    let lines = client.until_tagged("f");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("e BAD") || l.starts_with("e NO")),
        "{lines:?}"
    );
    assert_eq!(lines.last().unwrap(), "f OK NOOP completed");
}

#[test]
fn random_garbage_gets_bad_and_server_survives() {
    let server = Server::start(2, "", "", DEMO);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..20 {
        let mut client = server.connect();
        let mut junk = Vec::new();
        for _ in 0..2000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            junk.push((seed >> 24) as u8);
        }
        junk.extend_from_slice(b"\r\n");
        let _ = client.stream().write_all(&junk);
        // Whatever it answered, the connection ends or stays usable; the server stays up.
        drop(client);
    }
    let mut client = server.connect();
    client.send("x\x01\x02 garbage\r\n");
    let bad = client.line();
    assert!(bad.contains("BAD"), "{bad}");
    let ok = client.command("a", "LOGIN demo secret");
    assert!(ok.last().unwrap().starts_with("a OK"), "{ok:?}");
}

#[test]
fn thousand_logins_land_on_their_owner_executor_in_order() {
    const USERS: usize = 200;
    const EXECUTORS: usize = 4;
    let users: String = (0..USERS)
        .map(|i| format!("user{i}:{{PLAIN}}pw{i}\n"))
        .collect();
    let server = Server::start(EXECUTORS, "", "", &users);
    let addr = server.imap;
    let threads: Vec<_> = (0..8)
        .map(|t| {
            std::thread::spawn(move || {
                for n in 0..125 {
                    let i = (t * 125 + n) % USERS;
                    let mut client = Client::from_stream(TcpStream::connect(addr).unwrap());
                    assert!(client.line().starts_with("* OK"));
                    // Everything pipelined in one write straight after LOGIN.
                    client.send(&format!(
                        "a LOGIN user{i} pw{i}\r\nb ID NIL\r\nc NAMESPACE\r\nd LOGOUT\r\n"
                    ));
                    let a = client.until_tagged("a");
                    assert!(a.last().unwrap().starts_with("a OK"), "{a:?}");
                    let b = client.until_tagged("b");
                    let expected = ringmail::server::partition::executor_of(
                        ringmail::server::partition::partition_of(&format!("user{i}"), 256),
                        EXECUTORS,
                    );
                    assert!(
                        b[0].contains(&format!("\"x-executor\" \"{expected}\"")),
                        "user{i} should be served by executor {expected}: {b:?}"
                    );
                    let c = client.until_tagged("c");
                    assert!(c[0].starts_with("* NAMESPACE"), "{c:?}");
                    let d = client.until_tagged("d");
                    assert!(d[0].starts_with("* BYE"), "{d:?}");
                    assert!(d.last().unwrap().starts_with("d OK"));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn sigterm_says_bye_and_exits_zero() {
    let mut server = Server::start(2, "", "", DEMO);
    let mut idle = server.connect();
    let ok = idle.command("a", "LOGIN demo secret");
    assert!(ok.last().unwrap().starts_with("a OK"));
    let mut fresh = server.connect();
    let status = server.terminate();
    assert!(
        status.success(),
        "exit status {status:?}\n{}",
        server.log_text()
    );
    assert!(idle.line().starts_with("* BYE"));
    assert!(fresh.line().starts_with("* BYE"));
}

#[test]
fn first_start_creates_data_dir_config_certificate_and_demo_user() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Ports must be free: use a config so the default ports are not required.
    let imap = common::free_port();
    let imaps = common::free_port();
    std::fs::create_dir(&data).unwrap();
    std::fs::write(
        data.join("ringmail.toml"),
        format!(
            "[imap]\nlisten = [\"127.0.0.1:{imap}\"]\nlisten_tls = [\"127.0.0.1:{imaps}\"]\n\
             [lmtp]\nlisten = []\n[metrics]\nlisten = []\n[managesieve]\nlisten = []\n"
        ),
    )
    .unwrap();
    let log = dir.path().join("log");
    let mut child = common::spawn(&data, &log);
    let deadline = Instant::now() + Duration::from_secs(30);
    let password = loop {
        let out = std::fs::read_to_string(data.join("server.out")).unwrap_or_default();
        if let Some(line) = out.lines().find(|l| l.contains("created user `demo`")) {
            break line.split('`').nth(3).unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "no demo password printed");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(data.join("tls/cert.pem").exists() && data.join("tls/key.pem").exists());
    let users = std::fs::read_to_string(data.join("users")).unwrap();
    assert!(users.starts_with("demo:{ARGON2ID}$argon2id$"), "{users}");
    assert!(!users.contains(&password), "the password is stored hashed");
    let mut client = loop {
        if let Ok(s) = TcpStream::connect(("127.0.0.1", imap)) {
            break Client::from_stream(s);
        }
        assert!(
            Instant::now() < deadline,
            "server not listening: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(client.line().starts_with("* OK"));
    let ok = client.command("a", &format!("LOGIN demo {password}"));
    assert!(ok.last().unwrap().starts_with("a OK"), "{ok:?}");
    let _ = child.kill();
    let _ = child.wait();

    // A fresh default data dir gets a commented config.
    let fresh = dir.path().join("fresh");
    let out = Command::new(env!("CARGO_BIN_EXE_ringmail"))
        .args(["user", "list", "--data"])
        .arg(&fresh)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let config = std::fs::read_to_string(fresh.join("ringmail.toml")).unwrap();
    assert!(config.contains("# ") && config.contains("listen = [\"127.0.0.1:1143\"]"));
}

#[test]
fn user_commands_manage_the_passwd_file() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], stdin: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ringmail"))
            .args(args)
            .arg("--data")
            .arg(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // A command that needs no password may exit before reading stdin.
        let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
        child.wait_with_output().unwrap()
    };
    assert!(run(&["user", "add", "alice"], "pw1\n").status.success());
    let dup = run(&["user", "add", "alice"], "pw1\n");
    assert!(!dup.status.success());
    assert!(String::from_utf8_lossy(&dup.stderr).contains("exists"));
    assert!(run(&["user", "add", "bob"], "pw2\n").status.success());
    let list = run(&["user", "list"], "");
    assert_eq!(String::from_utf8_lossy(&list.stdout), "alice\nbob\n");
    assert!(run(&["user", "passwd", "alice"], "pw3\n").status.success());
    assert!(run(&["user", "del", "bob"], "").status.success());
    let list = run(&["user", "list"], "");
    assert_eq!(String::from_utf8_lossy(&list.stdout), "alice\n");
    let missing = run(&["user", "passwd", "carol"], "x\n");
    assert!(!missing.status.success());

    // The new password works against a running server; the old one does not.
    let users = std::fs::read_to_string(dir.path().join("users")).unwrap();
    let server = Server::start(2, "", "", &users);
    let mut client = server.connect();
    let no = client.command("a", "LOGIN alice pw1");
    assert!(no.last().unwrap().starts_with("a NO"), "{no:?}");
    let ok = client.command("b", "LOGIN alice pw3");
    assert!(ok.last().unwrap().starts_with("b OK"), "{ok:?}");
}

/// Writes `config` into a fresh data dir and returns stderr of a `serve` that must fail.
fn serve_fails(config: &str, limit_memlock: bool) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ringmail.toml"), config).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringmail"));
    cmd.args(["serve", "--data"]).arg(dir.path());
    if limit_memlock {
        use std::os::unix::process::CommandExt;
        // SAFETY: setrlimit is async-signal-safe and touches only the child's own limits.
        unsafe {
            cmd.pre_exec(|| {
                let limit = libc::rlimit {
                    rlim_cur: 64 * 1024,
                    rlim_max: 64 * 1024,
                };
                if libc::setrlimit(libc::RLIMIT_MEMLOCK, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "serve must fail with {config}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Config text listening on two free ports (LMTP and metrics off), plus `extra`.
fn listening(extra: &str) -> String {
    format!(
        "[imap]\nlisten = [\"127.0.0.1:{}\"]\nlisten_tls = [\"127.0.0.1:{}\"]\n\
         [lmtp]\nlisten = []\n[metrics]\nlisten = []\n[managesieve]\nlisten = []\n{extra}",
        common::free_port(),
        common::free_port()
    )
}

#[test]
fn startup_errors_are_one_clear_line() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let config = format!(
        "[imap]\nlisten = [\"127.0.0.1:{port}\"]\nlisten_tls = [\"127.0.0.1:{}\"]\n\
         [lmtp]\nlisten = []\n",
        common::free_port()
    );
    let err = serve_fails(&config, false);
    assert!(
        err.contains(&format!("127.0.0.1:{port}")) && err.contains("in use"),
        "{err}"
    );
    assert!(err.contains("[imap] listen"), "names the key: {err}");

    let err = serve_fails("[imap]\nlisten_tsl = []\n", false);
    assert!(err.contains("listen_tsl"), "{err}");

    // The per-address key of earlier versions is refused with its replacements named, not
    // ignored.
    let err = serve_fails(
        &listening("[limits]\nmax_connections_per_ip = 200\n"),
        false,
    );
    assert!(
        err.contains("max_connections_per_ip")
            && err.contains("max_preauth_per_ip")
            && err.contains("max_sessions_per_user_ip"),
        "{err}"
    );

    let err = serve_fails(
        &listening("[tls]\ncert = \"/nonexistent/cert.pem\"\n"),
        false,
    );
    assert!(err.contains("/nonexistent/cert.pem"), "{err}");

    // memlock too low: the hard limit is lowered for the child only.
    let err = serve_fails(&listening(""), true);
    assert!(
        err.contains("memlock") && err.contains("ulimit -l"),
        "{err}"
    );
}

#[test]
fn silent_client_is_logged_out() {
    let server = Server::start(2, "", "idle_timeout_unauth_secs = 1\n", DEMO);
    let mut c = server.connect();
    let bye = c.line();
    assert!(bye.starts_with("* BYE Autologout"), "{bye}");
    assert!(c.is_closed());
}

#[test]
fn tls_sessions_move_to_their_owner_with_pipelined_commands() {
    const EXECUTORS: usize = 4;
    let users: String = (0..8).map(|i| format!("u{i}:{{PLAIN}}p{i}\n")).collect();
    let server = Server::start(EXECUTORS, "", "", &users);
    let mut moved = 0;
    for i in 0..8 {
        let mut tls = server.connect_tls();
        // Where the session starts: the executor that accepted the connection.
        let before = tls.command("a", "ID NIL");
        tls.send(&format!("b LOGIN u{i} p{i}\r\nc ID NIL\r\nd NAMESPACE\r\n"));
        let b = tls.until_tagged("b");
        assert!(b.last().unwrap().starts_with("b OK"), "{b:?}");
        let c = tls.until_tagged("c");
        let owner = ringmail::server::partition::executor_of(
            ringmail::server::partition::partition_of(&format!("u{i}"), 256),
            EXECUTORS,
        );
        assert!(
            c[0].contains(&format!("\"x-executor\" \"{owner}\"")),
            "{c:?}"
        );
        if !before[0].contains(&format!("\"x-executor\" \"{owner}\"")) {
            moved += 1;
        }
        let d = tls.until_tagged("d");
        assert!(d[0].starts_with("* NAMESPACE"), "{d:?}");
    }
    // With 4 executors most of 8 sessions start elsewhere than their owner; at least one must
    // have crossed cores for this test to mean anything.
    assert!(moved > 0, "no session moved between executors");
}

/// The CPUs a thread of process `pid` whose name starts with `name` may run on, as
/// /proc shows them (`Cpus_allowed_list`), one entry per such thread.
fn threads_cpus(pid: u32, name: &str) -> Vec<String> {
    let mut found = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let task = task.unwrap().path();
        let comm = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
        if !comm.starts_with(name) {
            continue;
        }
        let status = std::fs::read_to_string(task.join("status")).unwrap_or_default();
        if let Some(cpus) = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        {
            found.push(cpus.trim().to_string());
        }
    }
    found
}

#[test]
fn executors_are_pinned_within_the_cpus_the_server_was_started_on() {
    // The server is started on the last CPU this machine gives the test only, as
    // `taskset -c N ringmail serve` would: its executor must run there (and so must the
    // io_uring workers that inherit its CPU), not on CPU 0.
    let cpus = ringmail_runtime::cpus::allowed();
    let last = *cpus
        .last()
        .expect("the kernel reports the CPUs of this thread");
    let server = std::thread::spawn(move || {
        ringmail_runtime::cpus::restrict_current_thread(last).unwrap();
        // A child inherits the affinity of the thread that starts it.
        Server::start(1, "", "", DEMO)
    })
    .join()
    .unwrap();
    let mut c = server.connect();
    assert!(c
        .command("a", "LOGIN demo secret")
        .last()
        .unwrap()
        .starts_with("a OK"));
    let executor = threads_cpus(server.child.id(), "ringmail-0");
    assert!(
        !executor.is_empty(),
        "no executor thread found\n{}",
        server.log_text()
    );
    for allowed in &executor {
        assert_eq!(allowed, &last.to_string(), "executor threads: {executor:?}");
    }
}
