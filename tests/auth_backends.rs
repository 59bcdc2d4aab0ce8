//! The auth backends end to end, through the real binary: users in a real slapd (bind over
//! ldaps, compare over StartTLS), a disabled user, a directory that stops answering or is
//! gone, master users (LOGIN `user*master` and PLAIN with an authorization identity), LMTP
//! delivery to a user who exists only in the directory, and OAuth 2.0 bearer tokens signed
//! by the test keys (XOAUTH2 from Python's imaplib, OAUTHBEARER from a raw client with the
//! RFC 7628 error exchange). Clients are python3's imaplib and smtplib where they can be.

mod common;
#[path = "../crates/auth/tests/support/keys.rs"]
mod keys;
#[path = "../crates/auth/tests/support/slapd.rs"]
mod slapd;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use common::{capabilities, Server};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use slapd::Slapd;

/// passwd-file users beside the directory: paula is also the master user.
const USERS: &str = "paula:{PLAIN}paula-pw\n";

/// Runs imaplib steps against `port` ("tls" or "plain") and returns one result per step:
/// `OK <messages in INBOX>` or `NO <the server's text>`, with the seconds it took.
const IMAPLIB_STEPS: &str = r#"
import imaplib, json, ssl, sys, time
port, mode, steps = int(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
def connect():
    if mode == 'tls':
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return imaplib.IMAP4_SSL('127.0.0.1', port, ssl_context=ctx, timeout=30)
    return imaplib.IMAP4('127.0.0.1', port, timeout=30)
for step in steps:
    M = connect()
    start = time.monotonic()
    try:
        if step[0] == 'login':
            M.login(step[1], step[2])
        elif step[0] == 'plain':
            M.authenticate('PLAIN', lambda _: ('%s\0%s\0%s' % (step[1], step[2], step[3])).encode())
        elif step[0] == 'xoauth2':
            M.authenticate('XOAUTH2', lambda _: ('user=%s\x01auth=Bearer %s\x01\x01' % (step[1], step[2])).encode())
        secs = time.monotonic() - start
        typ, data = M.select('INBOX')
        assert typ == 'OK', data
        result = 'OK %s' % data[0].decode()
        M.logout()
    except imaplib.IMAP4.error as e:
        secs = time.monotonic() - start
        text = e.args[0]
        result = 'NO %s' % (text.decode() if isinstance(text, bytes) else text)
    print(json.dumps([result, secs]))
"#;

/// Delivers one message over LMTP to each recipient in turn; prints `[code, text]` per
/// recipient (250 when accepted).
const LMTP_DELIVER: &str = r#"
import json, smtplib, sys
port, rcpts = int(sys.argv[1]), json.loads(sys.argv[2])
for rcpt in rcpts:
    s = smtplib.LMTP('127.0.0.1', port, timeout=30)
    msg = 'From: sender@example.net\r\nTo: %s\r\nSubject: directory delivery\r\n\r\nhello\r\n' % rcpt
    try:
        refused = s.sendmail('sender@example.net', [rcpt], msg)
        print(json.dumps(list(refused.get(rcpt, (250, b'ok')))[:1] + ['accepted']))
    except smtplib.SMTPRecipientsRefused as e:
        code, text = e.recipients[rcpt]
        print(json.dumps([code, text.decode()]))
    s.quit()
"#;

fn python_available() -> bool {
    let ok = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(std::env::var_os("CI").is_none(), "python3 missing under CI");
        eprintln!("skipped: python3 not installed");
    }
    ok
}

fn python(script: &str, args: &[String], server: &Server) -> Vec<Value> {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "python3 failed: {}\n{}\nserver log tail:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        tail(&server.log_text(), 40)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON value per line"))
        .collect()
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// imaplib steps over implicit TLS: (result, seconds) each.
fn imaplib(server: &Server, steps: Value) -> Vec<(String, f64)> {
    let args = [
        server.imaps.port().to_string(),
        "tls".to_string(),
        steps.to_string(),
    ];
    python(IMAPLIB_STEPS, &args, server)
        .into_iter()
        .map(|v| (v[0].as_str().unwrap().to_string(), v[1].as_f64().unwrap()))
        .collect()
}

fn lmtp(server: &Server, rcpts: &[&str]) -> Vec<(u64, String)> {
    let args = [server.lmtp.port().to_string(), json!(rcpts).to_string()];
    python(LMTP_DELIVER, &args, server)
        .into_iter()
        .map(|v| (v[0].as_u64().unwrap(), v[1].as_str().unwrap().to_string()))
        .collect()
}

/// A file holding `text` in `dir`, by absolute path (the server's data dir is made later).
fn file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// `[auth]` and `[ldap]` for the test directory.
fn ldap_config(uri: &str, extra_ldap: &str, secrets: &Path, slapd: &Slapd) -> String {
    ldap_config_with(uri, extra_ldap, "", secrets, slapd)
}

/// [`ldap_config`] with more of the attribute map (`attributes` goes inside its braces).
fn ldap_config_with(
    uri: &str,
    extra_ldap: &str,
    attributes: &str,
    secrets: &Path,
    slapd: &Slapd,
) -> String {
    let password = file(
        secrets,
        "ldap.secret",
        &format!("{}\n", slapd::SEARCH_PASSWORD),
    );
    format!(
        "\n[auth]\nbackends = [\"passwd-file\", \"ldap\"]\nmasters = [\"paula\"]\ncache_ttl_secs = 0\n\
         [ldap]\nuri = \"{uri}\"\nca_file = \"{ca}\"\nbase = \"{base}\"\n\
         bind_dn = \"{dn}\"\nbind_password_file = \"{password}\"\n{extra_ldap}\n\
         attributes = {{ enabled = \"mailEnabled\"{attributes} }}\n",
        ca = slapd.ca_file.display(),
        base = slapd::BASE,
        dn = slapd::SEARCH_DN,
        password = password.display(),
    )
}

#[test]
fn ldap_bind_over_ldaps_with_master_users_and_lmtp() {
    if !slapd::available() || !python_available() {
        return;
    }
    let slapd = Slapd::start().expect("slapd");
    let secrets = tempfile::tempdir().unwrap();
    let config = ldap_config(
        &slapd.ldaps_uri(),
        "verify = \"bind\"",
        secrets.path(),
        &slapd,
    );
    let server = Server::start(2, "", &config, USERS);

    // Mail for a user who exists only in the directory is accepted; an unknown one is not.
    let delivered = lmtp(&server, &["alice@example.org", "nobody@example.org"]);
    assert_eq!(delivered[0].0, 250, "{delivered:?}");
    assert_eq!(delivered[1].0, 550, "{delivered:?}");
    assert!(delivered[1].1.contains("5.1.1"), "{delivered:?}");

    let results = imaplib(
        &server,
        json!([
            ["login", "alice", "alice-pw"],
            ["login", "alice", "wrong"],
            ["login", "dave", "dave-pw"],
            ["login", "nobody", "x"],
            ["login", "paula", "paula-pw"],
            ["login", "alice*paula", "paula-pw"],
            ["plain", "alice", "paula", "paula-pw"],
            ["login", "alice*bob", "bob-pw"],
            ["login", "alice*paula", "wrong"],
        ]),
    );
    let texts: Vec<&str> = results.iter().map(|(r, _)| r.as_str()).collect();
    // alice logs in by a bind as her entry, and finds the message LMTP delivered.
    assert_eq!(texts[0], "OK 1", "{texts:?}");
    assert!(texts[1].contains("[AUTHENTICATIONFAILED]"), "{texts:?}");
    // dave's password is right but mailEnabled is FALSE.
    assert!(texts[2].contains("[CONTACTADMIN]"), "{texts:?}");
    assert!(texts[3].contains("[AUTHENTICATIONFAILED]"), "{texts:?}");
    assert_eq!(texts[4], "OK 0", "{texts:?}");
    // The master user reaches alice's mailbox both ways.
    assert_eq!(texts[5], "OK 1", "{texts:?}");
    assert_eq!(texts[6], "OK 1", "{texts:?}");
    // bob is no master; a master's wrong password is a wrong password.
    assert!(texts[7].contains("[AUTHORIZATIONFAILED]"), "{texts:?}");
    assert!(texts[8].contains("[AUTHENTICATIONFAILED]"), "{texts:?}");

    let log = server.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("master user login") && l.contains("master=paula")),
        "no master login in the log:\n{}",
        tail(&log, 30)
    );
    // Without [oauth], no token mechanisms are offered or taken.
    let mut client = server.connect();
    let caps = capabilities(&client.command("c", "CAPABILITY"));
    assert!(caps.contains(&"AUTH=PLAIN".to_string()), "{caps:?}");
    assert!(!caps.iter().any(|c| c.contains("OAUTH")), "{caps:?}");
    let lines = client.command("x", "AUTHENTICATE XOAUTH2");
    assert!(
        lines.last().unwrap().starts_with("x NO [CANNOT]"),
        "{lines:?}"
    );
}

/// quinn's `mailQuota: 2K` in the directory is the limit the store enforces, while the
/// configured `[quota]` is unlimited: LMTP refuses a message announced larger at RCPT, IMAP
/// GETQUOTAROOT shows it, APPEND past it fails.
#[test]
fn ldap_quota_is_the_store_limit() {
    if !slapd::available() {
        return;
    }
    let slapd = Slapd::start().expect("slapd");
    let secrets = tempfile::tempdir().unwrap();
    let config = ldap_config_with(
        &slapd.ldaps_uri(),
        "verify = \"bind\"",
        ", quota = \"mailQuota\"",
        secrets.path(),
        &slapd,
    );
    let server = Server::start(2, "", &config, USERS);

    // LMTP, before quinn ever logged in: the directory's limit is applied at RCPT.
    let mut lmtp = server.lmtp();
    let mut rcpt = |size: usize| {
        lmtp.send(&format!("MAIL FROM:<s@example.net> SIZE={size}\r\n"));
        let mail = lmtp.line();
        assert!(mail.starts_with("250"), "{mail}");
        lmtp.send("RCPT TO:<quinn>\r\n");
        let reply = lmtp.line();
        lmtp.send("RSET\r\n");
        assert!(lmtp.line().starts_with("250"));
        reply
    };
    let big = rcpt(4096);
    assert!(big.starts_with("552 5.2.2"), "{big}");
    assert!(rcpt(1000).starts_with("250"));
    // Another directory user without a quota attribute keeps the configured (no) limit.
    let mut lmtp = server.lmtp();
    lmtp.send("MAIL FROM:<s@example.net> SIZE=4096\r\nRCPT TO:<bob>\r\n");
    assert!(lmtp.line().starts_with("250"));
    let bob = lmtp.line();
    assert!(bob.starts_with("250"), "{bob}");

    let mut c = server.connect();
    let login = c.command("l", "LOGIN quinn quinn-pw");
    assert!(login.last().unwrap().starts_with("l OK"), "{login:?}");
    let quota = c.command("q", "GETQUOTAROOT INBOX");
    assert!(
        quota.iter().any(|l| l == "* QUOTA \"\" (STORAGE 0 2)"),
        "{quota:?}"
    );
    let message = format!(
        "From: s@example.net\r\nSubject: big\r\n\r\n{}\r\n",
        "x".repeat(3000)
    );
    c.send(&format!(
        "a APPEND INBOX {{{}+}}\r\n{message}\r\n",
        message.len()
    ));
    let append = c.until_tagged("a");
    assert!(
        append.last().unwrap().starts_with("a NO [OVERQUOTA]"),
        "{append:?}"
    );
}

/// LMTP remembers the directory's answers for recipients: with slapd stopped, a second
/// delivery to the same directory user is accepted and a known-unknown name still refused,
/// while a name never asked about gets the temporary failure of a directory that is down.
#[test]
fn lmtp_recipient_lookups_are_cached() {
    if !slapd::available() || !python_available() {
        return;
    }
    let mut slapd = Slapd::start().expect("slapd");
    let secrets = tempfile::tempdir().unwrap();
    let config = ldap_config(
        &slapd.ldaps_uri(),
        "verify = \"bind\"\ntimeout_ms = 1000",
        secrets.path(),
        &slapd,
    )
    // The other tests turn the auth cache off; the recipient cache lives as long.
    .replace("cache_ttl_secs = 0", "cache_ttl_secs = 300");
    let server = Server::start(2, "", &config, USERS);

    let first = lmtp(&server, &["alice@example.org", "nobody@example.org"]);
    assert_eq!(first[0].0, 250, "{first:?}");
    assert_eq!(first[1].0, 550, "{first:?}");
    slapd.stop();
    let again = lmtp(
        &server,
        &["alice@example.org", "nobody@example.org", "bob@example.org"],
    );
    assert_eq!(again[0].0, 250, "{again:?}");
    assert_eq!(again[1].0, 550, "{again:?}");
    assert_eq!(again[2].0, 451, "{again:?}");
}

#[test]
fn ldap_compare_over_starttls() {
    if !slapd::available() || !python_available() {
        return;
    }
    let slapd = Slapd::start().expect("slapd");
    let secrets = tempfile::tempdir().unwrap();
    let config = ldap_config(
        &slapd.uri(),
        "starttls = true\nverify = \"compare\"",
        secrets.path(),
        &slapd,
    );
    let server = Server::start(2, "", &config, USERS);
    let results = imaplib(
        &server,
        json!([
            ["login", "bob", "bob-pw"],
            ["login", "carol", "carol-pw"],
            ["login", "alice", "alice-pw"],
            ["login", "carol", "bob-pw"],
            ["plain", "", "bob", "bob-pw"],
        ]),
    );
    let texts: Vec<&str> = results.iter().map(|(r, _)| r.as_str()).collect();
    // {CRYPT}, {ARGON2} and {SSHA} userPassword values, checked by the server.
    assert_eq!(texts[0], "OK 0", "{texts:?}");
    assert_eq!(texts[1], "OK 0", "{texts:?}");
    assert_eq!(texts[2], "OK 0", "{texts:?}");
    assert!(texts[3].contains("[AUTHENTICATIONFAILED]"), "{texts:?}");
    assert_eq!(texts[4], "OK 0", "{texts:?}");
}

fn login_raw(server: &Server, user: &str, password: &str) -> (Vec<String>, Duration) {
    let mut client = server.connect();
    let start = Instant::now();
    let lines = client.command("l", &format!("LOGIN {user} {password}"));
    (lines, start.elapsed())
}

/// slapd and a server with one executor (every login on the same core) that gives the
/// directory 1500 ms per login and 2 pooled connections (so 2 lookup threads).
fn one_core_with_directory() -> (Slapd, Server, tempfile::TempDir) {
    let slapd = Slapd::start().expect("slapd");
    let secrets = tempfile::tempdir().unwrap();
    let config = ldap_config(
        &slapd.uri(),
        "verify = \"bind\"\ntimeout_ms = 1500\npool_size = 2",
        secrets.path(),
        &slapd,
    );
    let server = Server::start(1, "", &config, USERS);
    (slapd, server, secrets)
}

#[test]
fn directory_down_answers_unavailable_while_others_go_on() {
    if !slapd::available() || !python_available() {
        return;
    }
    let (mut slapd, server, _secrets) = one_core_with_directory();

    // Sessions logged in before the directory stops.
    let mut alice = server.connect();
    let ok = alice.command("a1", "LOGIN alice alice-pw");
    assert!(ok.last().unwrap().starts_with("a1 OK"), "{ok:?}");
    let mut paula = server.connect();
    let ok = paula.command("p1", "LOGIN paula paula-pw");
    assert!(ok.last().unwrap().starts_with("p1 OK"), "{ok:?}");

    slapd.pause();
    // A directory login waits out timeout_ms on the blocking pool...
    let waiting = {
        let imap = server.imap;
        std::thread::spawn(move || {
            let mut c = common::Client::from_stream(std::net::TcpStream::connect(imap).unwrap());
            c.line();
            let start = Instant::now();
            let lines = c.command("b", "LOGIN bob bob-pw");
            (lines, start.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    // ...while passwd-file users log in at once and logged-in sessions go on.
    let (lines, took) = login_raw(&server, "paula", "paula-pw");
    assert!(lines.last().unwrap().starts_with("l OK"), "{lines:?}");
    assert!(took < Duration::from_millis(1000), "paula waited {took:?}");
    for (client, tag) in [(&mut alice, "a2"), (&mut paula, "p2")] {
        let start = Instant::now();
        let lines = client.command(tag, "SELECT INBOX");
        assert!(
            lines.last().unwrap().starts_with(&format!("{tag} OK")),
            "{lines:?}"
        );
        assert!(start.elapsed() < Duration::from_millis(1000));
    }
    let (lines, took) = waiting.join().unwrap();
    assert!(
        lines.last().unwrap().starts_with("b NO [UNAVAILABLE]"),
        "{lines:?}"
    );
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_secs(5),
        "the stalled directory took {took:?}"
    );
    // LMTP must not bounce a user it cannot look up: a temporary failure.
    let refused = lmtp(&server, &["bob@example.org"]);
    assert_eq!(refused[0].0, 451, "{refused:?}");
    assert!(refused[0].1.contains("4.4.3"), "{refused:?}");

    // A directory that is gone answers as quickly as the connection is refused.
    slapd.stop();
    let (lines, took) = login_raw(&server, "carol", "carol-pw");
    assert!(
        lines.last().unwrap().starts_with("l NO [UNAVAILABLE]"),
        "{lines:?}"
    );
    assert!(took < Duration::from_secs(3), "{took:?}");
    // Not counted as a failure: the same connection may go on trying.
    let lines = alice.command("a3", "NOOP");
    assert!(lines.last().unwrap().starts_with("a3 OK"), "{lines:?}");

    // Back again: the first login reconnects.
    slapd.restart();
    let (lines, _) = login_raw(&server, "bob", "bob-pw");
    assert!(lines.last().unwrap().starts_with("l OK"), "{lines:?}");
}

/// Many directory logins waiting on a stalled directory do not hold up passwd-file logins of
/// the same core: they wait on the lookup threads (one per pooled connection, here 2, with a
/// queue of 16 each), not on the executor's blocking pool. Past the queue a directory login
/// is answered `NO [UNAVAILABLE]` at once, and none waits much past twice `timeout_ms`.
#[test]
fn waiting_directory_logins_leave_passwd_file_logins_alone() {
    if !slapd::available() || !python_available() {
        return;
    }
    let (mut slapd, server, _secrets) = one_core_with_directory();
    slapd.pause();

    // 2 lookup threads + 32 queued + 6 more than the queue takes.
    const WAITING: usize = 40;
    let waiting: Vec<_> = (0..WAITING)
        .map(|_| {
            let imap = server.imap;
            std::thread::spawn(move || {
                let stream = std::net::TcpStream::connect(imap).unwrap();
                let mut c = common::Client::from_stream(stream);
                c.line();
                let start = Instant::now();
                let lines = c.command("b", "LOGIN bob bob-pw");
                (lines.last().cloned().unwrap_or_default(), start.elapsed())
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..3 {
        let (lines, took) = login_raw(&server, "paula", "paula-pw");
        assert!(lines.last().unwrap().starts_with("l OK"), "{lines:?}");
        assert!(took < Duration::from_millis(500), "paula waited {took:?}");
    }
    let answers: Vec<(String, Duration)> = waiting.into_iter().map(|t| t.join().unwrap()).collect();
    for (line, took) in &answers {
        assert!(line.starts_with("b NO [UNAVAILABLE]"), "{line}");
        assert!(
            *took < Duration::from_secs(5),
            "a directory login took {took:?}"
        );
    }
    let refused_at_once = answers
        .iter()
        .filter(|(_, took)| *took < Duration::from_millis(500))
        .count();
    assert!(
        refused_at_once >= WAITING - 2 - 32,
        "only {refused_at_once} refused at once: {answers:?}"
    );
    slapd.restart();
    let (lines, _) = login_raw(&server, "bob", "bob-pw");
    assert!(lines.last().unwrap().starts_with("l OK"), "{lines:?}");
}

// ---- OAuth 2.0 ----

const ISSUER: &str = "https://id.example.org";
const AUDIENCE: &str = "imap.example.org";

fn key(file: &str, alg: Algorithm, kid: &str) -> (EncodingKey, Header, Jwk) {
    let (key, jwk) = keys::load(file, alg, kid);
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    (key, header, jwk)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn token(signer: &(EncodingKey, Header, Jwk), email: &str, audience: &str, exp: i64) -> String {
    let claims = json!({
        "iss": ISSUER, "aud": audience, "email": email, "iat": now() - 60, "exp": exp,
    });
    jsonwebtoken::encode(&signer.1, &claims, &signer.0).unwrap()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn oauthbearer(user: &str, token: &str) -> String {
    b64(
        format!("n,a={user},\x01host=127.0.0.1\x01port=143\x01auth=Bearer {token}\x01\x01")
            .as_bytes(),
    )
}

#[test]
fn oauth_bearer_tokens_by_xoauth2_and_oauthbearer() {
    if !python_available() {
        return;
    }
    let rsa = key("rsa1.pem", Algorithm::RS256, "r1");
    let ec = key("ec1.pem", Algorithm::ES256, "e1");
    let keys = tempfile::tempdir().unwrap();
    let jwks = file(
        keys.path(),
        "jwks.json",
        &serde_json::to_string(&JwkSet {
            keys: vec![rsa.2.clone(), ec.2.clone()],
        })
        .unwrap(),
    );
    let config = format!(
        "\n[auth]\nbackends = [\"passwd-file\", \"oauth\"]\n\
         [oauth]\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\njwks_file = \"{}\"\n\
         strip_domain = true\nscope = \"openid email\"\n",
        jwks.display()
    );
    let server = Server::start(2, "", &config, USERS);
    let hour = now() + 3600;

    // Advertised, because a backend takes tokens.
    let mut client = server.connect();
    let caps = capabilities(&client.command("c", "CAPABILITY"));
    for mechanism in ["AUTH=PLAIN", "AUTH=OAUTHBEARER", "AUTH=XOAUTH2"] {
        assert!(caps.contains(&mechanism.to_string()), "{caps:?}");
    }

    // Python's imaplib, the way mail scripts use Gmail: XOAUTH2 after an empty challenge.
    let valid = token(&rsa, "olga@example.org", AUDIENCE, hour);
    let expired = token(&rsa, "olga@example.org", AUDIENCE, now() - 3600);
    let results = imaplib(
        &server,
        json!([
            ["xoauth2", "olga@example.org", valid],
            ["xoauth2", "olga@example.org", expired],
            ["xoauth2", "someone@example.org", valid],
            ["login", "paula", "paula-pw"],
        ]),
    );
    let texts: Vec<&str> = results.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(texts[0], "OK 0", "{texts:?}");
    assert!(texts[1].contains("[AUTHENTICATIONFAILED]"), "{texts:?}");
    assert!(texts[2].contains("[AUTHENTICATIONFAILED]"), "{texts:?}");
    assert_eq!(texts[3], "OK 0", "{texts:?}");

    // OAUTHBEARER with SASL-IR, ES256: logged in as the token's user.
    let mut client = server.connect();
    let es = token(&ec, "olga@example.org", AUDIENCE, hour);
    let lines = client.command(
        "o1",
        &format!(
            "AUTHENTICATE OAUTHBEARER {}",
            oauthbearer("olga@example.org", &es)
        ),
    );
    assert!(lines.last().unwrap().starts_with("o1 OK"), "{lines:?}");
    let lines = client.command("o2", "SELECT INBOX");
    assert!(lines.last().unwrap().starts_with("o2 OK"), "{lines:?}");

    // Expired, wrong audience, a signature that does not match: the RFC 7628 error
    // challenge, the client's ^A, then NO.
    let good = token(&rsa, "olga@example.org", AUDIENCE, hour);
    // One character in the middle of the signature (each carries six signature bits).
    let at = good.len() - 20;
    let flipped = if &good[at..at + 1] == "A" { "B" } else { "A" };
    let tampered = format!("{}{flipped}{}", &good[..at], &good[at + 1..]);
    for (tag, bad) in [
        ("e1", token(&ec, "olga@example.org", AUDIENCE, now() - 3600)),
        (
            "e2",
            token(&rsa, "olga@example.org", "other.example.org", hour),
        ),
        ("e3", tampered),
    ] {
        let mut client = server.connect();
        client.send(&format!(
            "{tag} AUTHENTICATE OAUTHBEARER {}\r\n",
            oauthbearer("olga@example.org", &bad)
        ));
        let challenge = client.line();
        let body = challenge
            .strip_prefix("+ ")
            .unwrap_or_else(|| panic!("expected the error challenge, got {challenge:?}"));
        let error: Value = serde_json::from_slice(
            &base64::engine::general_purpose::STANDARD
                .decode(body)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(error["status"], "invalid_token", "{error}");
        assert_eq!(error["scope"], "openid email", "{error}");
        client.send(&format!("{}\r\n", b64(b"\x01")));
        let lines = client.until_tagged(tag);
        assert!(
            lines
                .last()
                .unwrap()
                .starts_with(&format!("{tag} NO [AUTHENTICATIONFAILED]")),
            "{lines:?}"
        );
    }

    // A mechanism not offered on a server without [oauth] is refused (checked in the LDAP
    // test); a malformed message is BAD, not a failed login.
    let mut client = server.connect();
    let lines = client.command(
        "m",
        &format!("AUTHENTICATE OAUTHBEARER {}", b64(b"nonsense")),
    );
    assert!(lines.last().unwrap().starts_with("m BAD"), "{lines:?}");
}
