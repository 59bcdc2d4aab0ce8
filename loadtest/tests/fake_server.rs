//! The `logins` profile against a tiny in-test IMAP server (a thread per connection that
//! answers CAPABILITY, LOGIN, AUTHENTICATE OAUTHBEARER/XOAUTH2 and LOGOUT), so CI needs
//! neither Dovecot nor ringmail.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use base64::Engine;
use jsonwebtoken::{DecodingKey, Validation};

use clap::Parser;
use ringmail_load::{run, Options, Summary};

/// What the fake server saw.
#[derive(Default)]
struct Seen {
    logins_ok: AtomicU64,
    logins_refused: AtomicU64,
    logouts: AtomicU64,
    /// Tokens whose signature, issuer, audience or user did not check out.
    bad_tokens: AtomicU64,
    /// Error challenges the client acknowledged as its mechanism says.
    challenges_acked: AtomicU64,
}

/// The public key the tokens must verify with (from the same PEM the generator signs with).
static TOKEN_KEY: OnceLock<(DecodingKey, jsonwebtoken::Algorithm)> = OnceLock::new();

/// Checks an AUTHENTICATE initial response: the mechanism's form, a token signed by
/// TOKEN_KEY for issuer "iss" and audience "aud", naming the user the client claims.
/// Returns the user.
fn check_token(mechanism: &str, initial: &str) -> Option<String> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(initial)
        .ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let (user, rest) = match mechanism {
        "OAUTHBEARER" => raw.strip_prefix("n,a=")?.split_once(",\x01")?,
        _ => raw.strip_prefix("user=")?.split_once('\x01')?,
    };
    let token = rest
        .strip_prefix("auth=Bearer ")?
        .strip_suffix("\x01\x01")?;
    let (key, alg) = TOKEN_KEY.get()?;
    let mut validation = Validation::new(*alg);
    validation.set_issuer(&["iss"]);
    validation.set_audience(&["aud"]);
    let claims = jsonwebtoken::decode::<serde_json::Value>(token, key, &validation).ok()?;
    (claims.claims["email"] == user).then(|| user.to_string())
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
            "AUTHENTICATE" => {
                let (mechanism, initial) = args.split_once(' ').unwrap_or((args, ""));
                let mechanism = mechanism.to_ascii_uppercase();
                match check_token(&mechanism, initial) {
                    None => {
                        seen.bad_tokens.fetch_add(1, Ordering::Relaxed);
                        format!("{tag} NO [AUTHENTICATIONFAILED] bad token\r\n")
                    }
                    // user2's tokens are refused the RFC 7628 way: a challenge, the client's
                    // acknowledgement, then NO.
                    Some(user) if user == "user2" => {
                        if out
                            .write_all(b"+ eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIn0=\r\n")
                            .is_err()
                        {
                            return;
                        }
                        line.clear();
                        if reader.read_line(&mut line).is_err() {
                            return;
                        }
                        let expected = if mechanism == "OAUTHBEARER" {
                            "AQ=="
                        } else {
                            ""
                        };
                        if line.trim_end() == expected {
                            seen.challenges_acked.fetch_add(1, Ordering::Relaxed);
                        }
                        seen.logins_refused.fetch_add(1, Ordering::Relaxed);
                        format!("{tag} NO [AUTHENTICATIONFAILED] Authentication failed.\r\n")
                    }
                    Some(_) => {
                        seen.logins_ok.fetch_add(1, Ordering::Relaxed);
                        format!("{tag} OK [CAPABILITY IMAP4rev1 IDLE] Logged in\r\n")
                    }
                }
            }
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

/// `--auth oauthbearer` and `--auth xoauth2`: every login is one AUTHENTICATE whose token the
/// fake server verifies with the public half of the generator's key (ES256, the committed
/// test key of crates/auth; RS256 is run against the real server in
/// tests/loadtest_profiles.rs); user2's are refused with an error challenge, which the
/// generator acknowledges (`AQ==`, or an empty line for XOAUTH2) and counts as a NO.
#[test]
fn token_logins_send_verifiable_tokens_and_acknowledge_error_challenges() {
    let key =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/auth/tests/keys/ec1.pem");
    let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_str(
        &ringmail_load::oauth::Signer::from_file(&key, "k")
            .unwrap()
            .jwks_json(),
    )
    .unwrap();
    let decoding = DecodingKey::from_jwk(&jwks.keys[0]).unwrap();
    assert!(TOKEN_KEY
        .set((decoding, jsonwebtoken::Algorithm::ES256))
        .is_ok());
    let key = key.to_str().unwrap();
    for mechanism in ["oauthbearer", "xoauth2"] {
        let (addr, seen) = fake_server();
        let opts = options(
            addr,
            &[
                "--auth",
                mechanism,
                "--oauth-key",
                key,
                "--oauth-issuer",
                "iss",
                "--oauth-audience",
                "aud",
                "--users",
                "2",
                "--clients",
                "2",
                "--iterations",
                "10",
                "--duration",
                "5",
            ],
        );
        let summary = run(opts, |_| {}).expect("run");
        assert_eq!(seen.bad_tokens.load(Ordering::Relaxed), 0, "{mechanism}");
        let ok = seen.logins_ok.load(Ordering::Relaxed);
        let refused = seen.logins_refused.load(Ordering::Relaxed);
        assert!(
            ok > 0 && refused > 0,
            "{mechanism}: {ok} ok, {refused} refused"
        );
        assert_eq!(
            seen.challenges_acked.load(Ordering::Relaxed),
            refused,
            "{mechanism}"
        );
        assert_eq!(common::count(&summary, "login"), ok, "{mechanism}");
        let no = summary.errors.get("NO").expect("NO errors counted");
        assert_eq!(no.count, refused, "{mechanism}");
        assert!(
            no.examples
                .iter()
                .all(|e| e.contains("AUTHENTICATIONFAILED")),
            "{:?}",
            no.examples
        );
    }
}
