//! ManageSieve against the real server: Debian's `sieve-connect` uploads, lists,
//! activates, downloads and deletes a script over STARTTLS; a second client on a raw
//! connection sees the same scripts; invalid, oversized and one-too-many scripts are
//! refused; the scripts survive a restart (replayed from the store); logins are throttled
//! and limited as IMAP's are.
//!
//! Without sieve-connect the sieve-connect test is skipped with a message, except under CI
//! (CI set), where it fails: CI installs it (.ci/run).

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;
use common::{proxy_v2, Client, Server, TlsClient};

const USERS: &str = "alice:{PLAIN}secret\nbob:{PLAIN}hunter2\n";

/// Loopback is a secure network by default (passwords without TLS); this server has none,
/// so every login here goes through STARTTLS.
const NO_SECURE_NETWORKS: &str = "secure_networks = []\n";

/// A server with ManageSieve; `limits` are keys of `[limits]`.
fn start(limits: &str, managesieve: &str) -> Server {
    Server::start_with_managesieve(
        2,
        NO_SECURE_NETWORKS,
        managesieve,
        &format!("{limits}\n[sieve]\nmax_scripts = 3\nmax_script_size = 2000\n"),
        USERS,
    )
}

/// Runs sieve-connect as `user` with `args` over STARTTLS, trusting the server's
/// certificate; returns its exit status and output.
fn sieve_connect(server: &Server, user: &str, password: &str, args: &[&str]) -> (bool, String) {
    let cert = server.cert();
    let mut all = vec!["--tlscafile", cert.to_str().unwrap()];
    all.extend_from_slice(args);
    let port = server.managesieve.unwrap().port();
    common::sieve_connect::run("localhost", port, user, password, &all)
}

/// A ManageSieve client on a raw connection.
struct Raw {
    tls: TlsClient,
}

/// Lines up to and including the one that ends a response (OK, NO or BYE).
fn response(read_line: &mut impl FnMut() -> String) -> Vec<String> {
    let mut lines = Vec::new();
    loop {
        let line = read_line();
        assert!(!line.is_empty(), "connection closed; got {lines:?}");
        let done = ["OK", "NO", "BYE"]
            .iter()
            .any(|s| line == *s || line.starts_with(&format!("{s} ")));
        lines.push(line);
        if done {
            return lines;
        }
    }
}

impl Raw {
    /// Connects, checks that passwords need TLS, runs STARTTLS; not logged in.
    fn connect(server: &Server) -> Raw {
        let mut plain =
            Client::from_stream(TcpStream::connect(server.managesieve.unwrap()).unwrap());
        let greeting = response(&mut || plain.line());
        assert!(
            greeting.contains(&"\"STARTTLS\"".to_string()),
            "{greeting:?}"
        );
        assert!(
            greeting.contains(&"\"SASL\" \"\"".to_string()),
            "{greeting:?}"
        );
        plain.send("AUTHENTICATE \"PLAIN\" \"AGFsaWNlAHNlY3JldA==\"\r\n");
        let no = plain.line();
        assert!(no.starts_with("NO (ENCRYPT-NEEDED)"), "{no}");
        plain.send("STARTTLS\r\n");
        let ok = plain.line();
        assert!(ok.starts_with("OK"), "{ok}");
        let mut tls = plain.into_tls(&server.cert());
        let caps = response(&mut || tls.line());
        assert!(
            caps.contains(&"\"SASL\" \"PLAIN LOGIN\"".to_string()),
            "{caps:?}"
        );
        Raw { tls }
    }

    fn login(server: &Server, user: &str, password: &str) -> Raw {
        let mut raw = Raw::connect(server);
        let last = raw.authenticate(user, password);
        assert!(last.starts_with("OK"), "login as {user}: {last}");
        raw
    }

    /// AUTHENTICATE PLAIN; the final line.
    fn authenticate(&mut self, user: &str, password: &str) -> String {
        let token =
            base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
        self.last(&format!("AUTHENTICATE \"PLAIN\" \"{token}\""))
    }

    fn command(&mut self, command: &str) -> Vec<String> {
        self.tls.send(&format!("{command}\r\n"));
        response(&mut || self.tls.line())
    }

    /// The final line of a command's response.
    fn last(&mut self, command: &str) -> String {
        self.command(command).pop().unwrap()
    }

    fn put(&mut self, name: &str, script: &str) -> String {
        self.last(&format!(
            "PUTSCRIPT \"{name}\" {{{}+}}\r\n{script}",
            script.len()
        ))
    }

    /// LISTSCRIPTS without its OK, sorted.
    fn list(&mut self) -> Vec<String> {
        let mut lines = self.command("LISTSCRIPTS");
        let ok = lines.pop().unwrap();
        assert!(ok.starts_with("OK"), "{ok}");
        lines.sort();
        lines
    }

    fn get(&mut self, name: &str) -> String {
        self.tls.send(&format!("GETSCRIPT \"{name}\"\r\n"));
        let head = self.tls.line();
        let size: usize = head
            .strip_prefix('{')
            .and_then(|h| h.strip_suffix('}'))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("GETSCRIPT {name}: {head}"));
        let body = String::from_utf8(self.tls.bytes(size)).unwrap();
        assert_eq!(self.tls.line(), "", "CRLF after the literal");
        let ok = self.tls.line();
        assert!(ok.starts_with("OK"), "{ok}");
        body
    }
}

const RULES: &str = "require [\"fileinto\", \"imap4flags\"];\r\nif header :contains \"list-id\" \"ringmail.example.org\" {\r\n  addflag \"\\\\Flagged\";\r\n  fileinto \"Lists\";\r\n}\r\n";

#[test]
fn sieve_connect_manages_scripts_that_survive_a_restart() {
    if !common::sieve_connect::installed() {
        return;
    }
    let mut server = start("", "");
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("rules.sieve");
    std::fs::write(&local, RULES).unwrap();
    let local = local.to_str().unwrap();

    let (ok, out) = sieve_connect(
        &server,
        "alice",
        "secret",
        &["--upload", "--localsieve", local, "--remotesieve", "rules"],
    );
    assert!(ok, "upload: {out}");
    // A second client sees it at once, not active yet.
    let mut raw = Raw::login(&server, "alice", "secret");
    assert_eq!(raw.list(), vec!["\"rules\""]);
    let (ok, out) = sieve_connect(
        &server,
        "alice",
        "secret",
        &["--activate", "--remotesieve", "rules"],
    );
    assert!(ok, "activate: {out}");
    assert_eq!(raw.list(), vec!["\"rules\" ACTIVE"]);
    let (ok, out) = sieve_connect(&server, "alice", "secret", &["--list"]);
    assert!(ok && out.contains("rules"), "list: {out}");

    // Refusals: the line of a syntax error (through sieve-connect and on the wire), the size
    // and count limits, and mail-sending actions without `[sieve] submission`.
    let bad = dir.path().join("bad.sieve");
    std::fs::write(&bad, "keep;\r\nfileinto \"x\";\r\n").unwrap();
    let (ok, out) = sieve_connect(
        &server,
        "alice",
        "secret",
        &[
            "--upload",
            "--localsieve",
            bad.to_str().unwrap(),
            "--remotesieve",
            "bad",
        ],
    );
    assert!(!ok, "an invalid script was accepted: {out}");
    assert!(out.contains("line 2"), "{out}");
    // The missing `;` shows at the `}` after it.
    let no = raw.put("bad", "keep;\r\nif true {\r\n  stop\r\n}\r\n");
    assert!(no.starts_with("NO \"line 4, column 1: "), "{no}");
    let big = format!("# {}\r\nkeep;\r\n", "x".repeat(2000));
    let no = raw.put("big", &big);
    assert!(no.starts_with("NO (QUOTA/MAXSIZE)"), "{no}");
    let no = raw.last("HAVESPACE \"big\" 2001");
    assert!(no.starts_with("NO (QUOTA/MAXSIZE)"), "{no}");
    let no = raw.put(
        "away",
        "require \"vacation\";\r\nvacation \"I am away.\";\r\n",
    );
    assert!(
        no.starts_with("NO ") && no.contains("no SMTP relay") && no.contains("line 2"),
        "{no}"
    );
    assert!(raw.put("two", "discard;\r\n").starts_with("OK"));
    assert!(raw.put("three", "keep;\r\n").starts_with("OK"));
    let no = raw.put("four", "keep;\r\n");
    assert!(no.starts_with("NO (QUOTA/MAXSCRIPTS)"), "{no}");
    assert!(raw
        .last("HAVESPACE \"four\" 10")
        .starts_with("NO (QUOTA/MAXSCRIPTS)"));
    // Replacing one needs no room.
    assert!(raw.put("three", "stop;\r\n").starts_with("OK"));
    let listed = vec!["\"rules\" ACTIVE", "\"three\"", "\"two\""];
    assert_eq!(raw.list(), listed);
    // The active script cannot be deleted.
    assert!(raw
        .last("DELETESCRIPT \"rules\"")
        .starts_with("NO (ACTIVE)"));
    drop(raw);

    let fetched = dir.path().join("fetched.sieve");
    let (ok, out) = sieve_connect(
        &server,
        "alice",
        "secret",
        &[
            "--download",
            "--remotesieve",
            "rules",
            "--localsieve",
            fetched.to_str().unwrap(),
        ],
    );
    assert!(ok, "download: {out}");
    assert_eq!(std::fs::read_to_string(&fetched).unwrap(), RULES);

    // Users are apart.
    assert_eq!(
        Raw::login(&server, "bob", "hunter2").list(),
        Vec::<String>::new()
    );

    // After a restart the scripts come back from the store's log.
    server.restart();
    let mut raw = Raw::login(&server, "alice", "secret");
    assert_eq!(raw.list(), listed);
    assert_eq!(raw.get("rules"), RULES);
    assert_eq!(raw.get("three"), "stop;\r\n");
    assert!(raw.last("RENAMESCRIPT \"two\" \"deux\"").starts_with("OK"));

    let (ok, out) = sieve_connect(&server, "alice", "secret", &["--deactivate"]);
    assert!(ok, "deactivate: {out}");
    let (ok, out) = sieve_connect(
        &server,
        "alice",
        "secret",
        &["--delete", "--remotesieve", "rules"],
    );
    assert!(ok, "delete: {out}");
    assert_eq!(raw.list(), vec!["\"deux\"", "\"three\""]);
    assert!(raw.last("LOGOUT").starts_with("OK"));

    // And once more after a clean stop (from the checkpoint this time).
    server.restart();
    let mut raw = Raw::login(&server, "alice", "secret");
    assert_eq!(raw.list(), vec!["\"deux\"", "\"three\""]);
    assert_eq!(raw.get("deux"), "discard;\r\n");
}

#[test]
fn logins_are_throttled_and_limited_like_imap() {
    let server = start("max_sessions_per_user_ip = 1\n", "idle_timeout_secs = 3\n");
    // Two wrong passwords: NO each time, then BYE ([imap] max_login_failures = 3 by
    // default counts the third).
    let mut raw = Raw::connect(&server);
    for _ in 0..2 {
        let no = raw.authenticate("alice", "wrong");
        assert!(no.starts_with("NO"), "{no}");
    }
    let mut lines = Vec::new();
    let token = base64::engine::general_purpose::STANDARD.encode("\0alice\0wrong");
    raw.tls
        .send(&format!("AUTHENTICATE \"PLAIN\" \"{token}\"\r\n"));
    lines.extend(response(&mut || raw.tls.line()));
    lines.extend(response(&mut || raw.tls.line()));
    assert!(lines[0].starts_with("NO"), "{lines:?}");
    assert!(lines[1].starts_with("BYE"), "{lines:?}");

    // One session per user and address: the second login is refused until the first ends.
    let mut first = Raw::login(&server, "alice", "secret");
    let mut second = Raw::connect(&server);
    let no = second.authenticate("alice", "secret");
    assert!(
        no.starts_with("NO (TRYLATER)") && no.contains("max_sessions_per_user_ip"),
        "{no}"
    );
    // Another user is not affected.
    let mut bob = Raw::login(&server, "bob", "hunter2");
    assert!(first.last("LOGOUT").starts_with("OK"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = second.authenticate("alice", "secret");
        if answer.starts_with("OK") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slot was not released: {answer}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(second.list(), Vec::<String>::new());

    // A silent client is sent away after `[managesieve] idle_timeout_secs`.
    let started = Instant::now();
    let bye = bob.tls.line();
    assert!(bye.starts_with("BYE"), "{bye}");
    assert!(bye.contains("inactivity"), "{bye}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// `ringmail ARGS --data DATA`: exit status and stdout + stderr.
fn ringmail(server: &Server, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ringmail"))
        .args(args)
        .arg("--data")
        .arg(server.dir.path())
        .output()
        .expect("ringmail runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `ringmail import --user alice sieve DIR`.
fn import_sieve(server: &Server, dir: &std::path::Path) -> (bool, String) {
    let dir = dir.to_str().unwrap();
    ringmail(server, &["import", "--user", "alice", "sieve", dir])
}

/// `ringmail export --user alice sieve DIR`.
fn export_sieve(server: &Server, dir: &std::path::Path) -> (bool, String) {
    let dir = dir.to_str().unwrap();
    ringmail(server, &["export", "--user", "alice", "sieve", dir])
}

/// Export writes the layout import reads: importing a Dovecot home and exporting it again,
/// from the running server and from the stopped data dir, gives the same script files,
/// byte for byte, and the same active link; the export imports back unchanged.
#[test]
fn sieve_scripts_round_trip_through_export_and_import() {
    let mut server = start("", "");
    let home = tempfile::tempdir().unwrap();
    let sieve = home.path().join("sieve");
    std::fs::create_dir_all(&sieve).unwrap();
    let scripts = [
        ("rules", RULES),
        ("old", "discard;\n"),
        ("Ferien 2026", "# kept as written\r\nkeep;\r\n"),
    ];
    for (name, source) in scripts {
        std::fs::write(sieve.join(format!("{name}.sieve")), source).unwrap();
    }
    std::os::unix::fs::symlink("sieve/rules.sieve", home.path().join(".dovecot.sieve")).unwrap();
    let (ok, out) = import_sieve(&server, home.path());
    assert!(ok, "{out}");

    // From the running server (through the admin socket) and from the stopped data dir:
    // the same files and link, the scripts byte for byte.
    let online = tempfile::tempdir().unwrap();
    let (ok, out) = export_sieve(&server, online.path());
    assert!(ok, "{out}");
    assert!(
        out.contains("exported 3 sieve scripts from the running server")
            && out.contains("(\"rules\" active)"),
        "{out}"
    );
    server.terminate();
    let out_dir = tempfile::tempdir().unwrap();
    let (ok, out) = export_sieve(&server, out_dir.path());
    assert!(ok, "{out}");
    assert!(
        out.contains("exported 3 sieve scripts from the stopped data dir")
            && out.contains("(\"rules\" active)"),
        "{out}"
    );
    for dir in [online.path(), out_dir.path()] {
        let mut written: Vec<String> = std::fs::read_dir(dir.join("sieve"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        written.sort();
        assert_eq!(written, ["Ferien 2026.sieve", "old.sieve", "rules.sieve"]);
        for (name, source) in scripts {
            let got = std::fs::read(dir.join("sieve").join(format!("{name}.sieve")));
            assert_eq!(got.unwrap(), source.as_bytes(), "{name}");
        }
        assert_eq!(
            std::fs::read_link(dir.join(".dovecot.sieve")).unwrap(),
            std::path::Path::new("sieve/rules.sieve")
        );
    }

    // Back in: the same scripts, the same one active.
    let (ok, out) = import_sieve(&server, out_dir.path());
    assert!(ok, "{out}");
    assert!(
        out.contains("imported 3 sieve scripts") && out.contains("(\"rules\" active)"),
        "{out}"
    );
    server.restart();
    // And the online export back into the running server: it replaces them unchanged.
    let (ok, out) = import_sieve(&server, online.path());
    assert!(
        ok && out.contains("imported 3 sieve scripts into the running server"),
        "{out}"
    );
    let mut raw = Raw::login(&server, "alice", "secret");
    assert_eq!(
        raw.list(),
        vec!["\"Ferien 2026\"", "\"old\"", "\"rules\" ACTIVE"]
    );
    assert_eq!(raw.get("Ferien 2026"), "# kept as written\r\nkeep;\r\n");
    assert!(raw.last("LOGOUT").starts_with("OK"));
}

#[test]
fn a_dovecot_sieve_dir_is_imported_online_and_offline() {
    let mut server = start("", "");
    let home = tempfile::tempdir().unwrap();
    let sieve = home.path().join("sieve");
    std::fs::create_dir_all(sieve.join("tmp")).unwrap();
    std::fs::write(sieve.join("rules.sieve"), RULES).unwrap();
    std::fs::write(sieve.join("old.sieve"), "discard;\n").unwrap();
    std::fs::write(sieve.join("broken.sieve"), "keep;\nif true {\n  stop\n}\n").unwrap();
    std::fs::write(
        sieve.join("away.sieve"),
        "require \"vacation\";\nvacation \"I am away.\";\n",
    )
    .unwrap();
    std::fs::write(sieve.join("rules.svbin"), [0u8, 159, 146, 150]).unwrap();
    std::os::unix::fs::symlink("sieve/rules.sieve", home.path().join(".dovecot.sieve")).unwrap();

    // Online, through the admin socket: the bad scripts are reported, the rest imported.
    let (ok, out) = import_sieve(&server, home.path());
    assert!(!ok, "problems must fail the command: {out}");
    assert!(
        out.contains("imported 2 sieve scripts into the running server")
            && out.contains("(\"rules\" active)"),
        "{out}"
    );
    assert!(
        out.contains("problem: script \"broken\": line 4, column 1"),
        "{out}"
    );
    assert!(
        out.contains("problem: script \"away\": line 2") && out.contains("no SMTP relay"),
        "{out}"
    );
    let mut raw = Raw::login(&server, "alice", "secret");
    assert_eq!(raw.list(), vec!["\"old\"", "\"rules\" ACTIVE"]);
    assert_eq!(raw.get("rules"), RULES);
    assert!(raw.last("LOGOUT").starts_with("OK"));

    // Offline, into the stopped data dir: the fixed script comes in, the link now names
    // another script, and re-imported scripts are replaced, not doubled.
    server.terminate();
    std::fs::write(sieve.join("broken.sieve"), "keep;\nif true {\n  stop;\n}\n").unwrap();
    std::fs::remove_file(sieve.join("away.sieve")).unwrap();
    std::fs::remove_file(home.path().join(".dovecot.sieve")).unwrap();
    std::os::unix::fs::symlink(sieve.join("old.sieve"), home.path().join(".dovecot.sieve"))
        .unwrap();
    let (ok, out) = import_sieve(&server, &sieve);
    assert!(ok, "{out}");
    assert!(
        out.contains("imported 3 sieve scripts into the stopped data dir")
            && out.contains("(\"old\" active)"),
        "{out}"
    );
    server.restart();
    let mut raw = Raw::login(&server, "alice", "secret");
    assert_eq!(
        raw.list(),
        vec!["\"broken\"", "\"old\" ACTIVE", "\"rules\""]
    );
    assert_eq!(raw.get("broken"), "keep;\nif true {\n  stop;\n}\n");
    if common::sieve_connect::installed() {
        let (ok, out) = sieve_connect(&server, "alice", "secret", &["--list"]);
        assert!(ok && out.contains("old") && out.contains("broken"), "{out}");
    }
}

/// `ringmail sieve log --user alice`.
fn sieve_log(server: &Server) -> (bool, String) {
    ringmail(server, &["sieve", "log", "--user", "alice"])
}

/// The entries `ringmail sieve log` printed (its stdout lines with a script and line).
fn log_entries(out: &str) -> Vec<&str> {
    out.lines().filter(|l| l.contains(" script \"")).collect()
}

/// Delivers `message` to `rcpt` over LMTP; the recipient's reply line.
fn lmtp_deliver(server: &Server, rcpt: &str, message: &str) -> String {
    let mut c = server.lmtp();
    c.send(&format!(
        "MAIL FROM:<sender@example.org>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n"
    ));
    for want in ["250", "250", "354"] {
        let line = c.line();
        assert!(line.starts_with(want), "{line}");
    }
    c.send(message);
    c.send(".\r\n");
    c.line()
}

/// INBOX's messages, each as IMAP FETCH BODY[] gives it.
fn inbox(server: &Server, user: &str, password: &str) -> Vec<Vec<u8>> {
    let mut imap = server.connect_tls();
    let ok = imap.command("a", &format!("LOGIN {user} {password}")).pop();
    assert!(ok.unwrap().starts_with("a OK"));
    let exists = imap
        .command("b", "EXAMINE INBOX")
        .iter()
        .find_map(|l| l.strip_suffix(" EXISTS")?.strip_prefix("* ")?.parse().ok())
        .unwrap_or(0usize);
    let mut out = Vec::new();
    for n in 1..=exists {
        imap.send(&format!("f{n} FETCH {n} BODY.PEEK[]\r\n"));
        let head = imap.line();
        let size: usize = head
            .rsplit_once('{')
            .and_then(|(_, s)| s.strip_suffix('}')?.parse().ok())
            .unwrap_or_else(|| panic!("FETCH {n}: {head}"));
        out.push(imap.bytes(size));
        let done = imap.until_tagged(&format!("f{n}")).pop().unwrap();
        assert!(done.starts_with(&format!("f{n} OK")), "{done}");
    }
    out
}

/// A script failing at run time (fileinto a name that is no mailbox, known only once its
/// variable is expanded) keeps the message in INBOX byte for byte, and the error, with the
/// script's name and line, is in the user's Sieve log, read from the running server and
/// from the stopped data dir; the log keeps the last 20; replacing the active script or
/// activating one (ManageSieve PUTSCRIPT and SETACTIVE) clears it.
#[test]
fn a_failing_script_keeps_the_mail_and_logs_for_the_user() {
    let mut server = start("", "");
    let failing = "require [\"fileinto\", \"variables\"];\r\nset \"folder\" \"\";\r\n\
                   if header :contains \"subject\" \"file me\" {\r\n  fileinto \"${folder}\";\r\n}\r\n";
    let mut raw = Raw::login(&server, "alice", "secret");
    assert!(raw.put("main", failing).starts_with("OK"));
    assert!(raw.put("other", "keep;\r\n").starts_with("OK"));
    assert!(raw.last("SETACTIVE \"main\"").starts_with("OK"));
    let (ok, out) = sieve_log(&server);
    assert!(ok && log_entries(&out).is_empty(), "{out}");

    let message = "From: Sender <sender@example.org>\r\nTo: alice@example.com\r\n\
                   Subject: please file me\r\nMessage-ID: <m1@example.org>\r\n\r\nBody 1.\r\n";
    let reply = lmtp_deliver(&server, "alice@example.com", message);
    assert!(reply.starts_with("250"), "{reply}");
    let stored = inbox(&server, "alice", "secret");
    assert_eq!(stored.len(), 1);
    assert!(
        stored[0].ends_with(message.as_bytes()),
        "kept in INBOX as delivered: {}",
        String::from_utf8_lossy(&stored[0])
    );
    let (ok, out) = sieve_log(&server);
    assert!(ok, "{out}");
    let entries = log_entries(&out);
    assert_eq!(entries.len(), 1, "{out}");
    assert!(
        entries[0].contains("script \"main\" line 4: fileinto: \"\" is not a mailbox name"),
        "{out}"
    );
    assert!(out.contains("the running server"), "{out}");

    // The bound: 25 more errors, the last 20 are kept.
    for i in 2..=26 {
        let m = message.replace("Body 1.", &format!("Body {i}."));
        let reply = lmtp_deliver(&server, "alice@example.com", &m);
        assert!(reply.starts_with("250"), "{reply}");
    }
    assert_eq!(inbox(&server, "alice", "secret").len(), 26);
    let (ok, out) = sieve_log(&server);
    assert!(ok && log_entries(&out).len() == 20, "{out}");

    // Offline: the same log from the stopped data dir (replayed or from the checkpoint).
    server.terminate();
    let (ok, offline) = sieve_log(&server);
    assert!(ok && offline.contains("the stopped data dir"), "{offline}");
    assert_eq!(log_entries(&offline), log_entries(&out));
    server.restart();

    // Another script's change keeps the log; replacing the active one clears it.
    let mut raw = Raw::login(&server, "alice", "secret");
    assert!(raw.put("other", "discard;\r\n").starts_with("OK"));
    assert_eq!(log_entries(&sieve_log(&server).1).len(), 20);
    assert!(raw.put("main", failing).starts_with("OK"));
    assert!(log_entries(&sieve_log(&server).1).is_empty());
    // Activating clears it too.
    lmtp_deliver(&server, "alice@example.com", message);
    assert_eq!(log_entries(&sieve_log(&server).1).len(), 1);
    assert!(raw.last("SETACTIVE \"main\"").starts_with("OK"));
    assert!(log_entries(&sieve_log(&server).1).is_empty());

    // A fileinto into a mailbox that does not exist (no :create) keeps the message in INBOX
    // and says so in the user's log, as Pigeonhole does.
    let nowhere = "require \"fileinto\";\r\nfileinto \"Nowhere\";\r\n";
    assert!(raw.put("main", nowhere).starts_with("OK"));
    let before = inbox(&server, "alice", "secret").len();
    let reply = lmtp_deliver(&server, "alice@example.com", message);
    assert!(reply.starts_with("250"), "{reply}");
    assert_eq!(inbox(&server, "alice", "secret").len(), before + 1);
    let (ok, out) = sieve_log(&server);
    let entries = log_entries(&out);
    assert!(ok && entries.len() == 1, "{out}");
    assert!(
        entries[0].contains("script \"main\" line 0: fileinto \"Nowhere\": no such mailbox"),
        "{out}"
    );
    assert!(raw.last("LOGOUT").starts_with("OK"));
}

/// Behind HAProxy: a peer of `[proxy] trusted_networks` opens with a PROXY v2 header and the
/// session is the header's client: the per-address limit counts that address (not the
/// balancer's), the log names it, and the bytes after the header are the client's first
/// command. A trusted peer without a header is cut off.
#[test]
fn a_trusted_proxy_names_the_client() {
    let server = start(
        "max_preauth_per_ip = 1\n[proxy]\ntrusted_networks = [\"127.0.0.0/8\"]\n",
        "",
    );
    let addr = server.managesieve.unwrap();
    let behind = |src: [u8; 4], first: &[u8]| {
        let mut stream = TcpStream::connect(addr).unwrap();
        let mut bytes = proxy_v2(src, [127, 0, 0, 1], 40000, addr.port());
        bytes.extend_from_slice(first);
        stream.write_all(&bytes).unwrap();
        Client::from_stream(stream)
    };
    // The command sent with the header is answered after the greeting.
    let mut first = behind([203, 0, 113, 7], b"NOOP \"x\"\r\n");
    let greeting = response(&mut || first.line());
    assert!(greeting.last().unwrap().starts_with("OK"), "{greeting:?}");
    assert_eq!(first.line(), "OK (TAG \"x\") \"Done\"");
    // A second connection of the same client is over its limit; another client is not.
    let mut second = behind([203, 0, 113, 7], b"");
    let bye = second.line();
    assert!(
        bye.starts_with("BYE") && bye.contains("max_preauth_per_ip"),
        "{bye}"
    );
    let mut other = behind([203, 0, 113, 8], b"");
    let greeting = response(&mut || other.line());
    assert!(greeting.last().unwrap().starts_with("OK"), "{greeting:?}");
    first.send("LOGOUT\r\n");
    assert!(first.line().starts_with("OK"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.log_text().contains("client=203.0.113.7:40000") {
        assert!(Instant::now() < deadline, "{}", server.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    // Without a header the trusted peer is cut off.
    let mut bare = Client::from_stream(TcpStream::connect(addr).unwrap());
    bare.send("CAPABILITY\r\n");
    assert!(bare.is_closed());
}

/// A PROXY header from a peer that is no trusted proxy is refused: it would let any
/// client pick the address that limits and logs see.
#[test]
fn a_proxy_header_from_an_untrusted_peer_is_refused() {
    let server = start("[proxy]\ntrusted_networks = [\"10.0.0.0/8\"]\n", "");
    let addr = server.managesieve.unwrap();
    for header in [
        proxy_v2([203, 0, 113, 7], [127, 0, 0, 1], 40000, addr.port()),
        b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 4190\r\n".to_vec(),
    ] {
        let mut c = Client::from_stream(TcpStream::connect(addr).unwrap());
        let greeting = response(&mut || c.line());
        assert!(greeting.last().unwrap().starts_with("OK"), "{greeting:?}");
        c.send_bytes(&header);
        let bye = c.line();
        assert!(
            bye.starts_with("BYE \"PROXY protocol header refused"),
            "{bye}"
        );
        assert!(c.is_closed());
    }
    // An ordinary client is served.
    let mut c = Client::from_stream(TcpStream::connect(addr).unwrap());
    response(&mut || c.line());
    c.send("NOOP\r\n");
    assert!(c.line().starts_with("OK"));
}
