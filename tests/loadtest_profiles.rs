//! One short end-to-end run of each ringmail-load profile (the IMAP ones on the IMAP
//! listener, lmtp on the LMTP listener) against the real server: every profile must complete
//! work and see no protocol error, refusal, wrong data or timeout. The load generator's own
//! checks (FETCH counts, BODY[] sizes, STORE echoes, EXPUNGE, SEARCH ranges,
//! resync contents, IDLE notifications) are what this test relies on.

mod common;

use clap::Parser;
use common::Server;
use ringmail_load::{Options, Summary};

/// Users of the runs: `user1..=user8` with password `pass`, the load generator's defaults.
const USERS: u32 = 8;

fn users_file() -> String {
    (1..=USERS)
        .map(|i| format!("user{i}:{{PLAIN}}pass\n"))
        .collect()
}

/// Runs `profile` against `server` with small, bounded settings plus `extra` arguments.
fn run(server: &Server, profile: &str, extra: &[&str]) -> Summary {
    let port = if profile == "lmtp" {
        server.lmtp.port()
    } else {
        server.imap.port()
    };
    run_on(server, profile, port, extra)
}

/// [`run`] against `port`; `extra` may name its own `--max-message-size`.
fn run_on(server: &Server, profile: &str, port: u16, extra: &[&str]) -> Summary {
    let port = port.to_string();
    let users = USERS.to_string();
    let pid = server.child.id().to_string();
    let mut args = vec![
        "ringmail-load",
        profile,
        "--port",
        &port,
        "--users",
        &users,
        "--threads",
        "1",
        "--timeout",
        "10",
        "--pid",
        &pid,
        "--quiet",
    ];
    if !extra.contains(&"--max-message-size") {
        args.extend_from_slice(&["--max-message-size", "16384"]);
    }
    args.extend_from_slice(extra);
    let opts = Options::try_parse_from(&args).expect("load generator arguments parse");
    let summary = ringmail_load::run(opts, |_| {}).expect("the run starts");
    assert_clean(profile, summary)
}

/// `summary` when the run saw no error and completed commands; panics otherwise.
fn assert_clean(profile: &str, summary: Summary) -> Summary {
    assert_eq!(
        summary.error_count,
        0,
        "{profile}: errors against ringmail:\n{}",
        summary.to_text()
    );
    assert!(
        summary.total_commands > 0,
        "{profile}: no command completed:\n{}",
        summary.to_text()
    );
    summary
}

/// Count of completed `command`s in the summary (0 when it never ran).
fn count(summary: &Summary, command: &str) -> u64 {
    summary
        .commands
        .iter()
        .find(|c| c.command.eq_ignore_ascii_case(command))
        .map_or(0, |c| c.count)
}

#[test]
fn every_profile_runs_against_ringmail_without_errors() {
    let server = Server::start(2, "", "", &users_file());
    // Each user gets its own session in every profile (users >= clients), so the
    // generator's count checks are strict.
    let s = run(&server, "logins", &["--clients", "4", "--duration", "1"]);
    assert!(count(&s, "login") > 0, "{}", s.to_text());

    let s = run(
        &server,
        "append",
        &["--clients", "2", "--duration", "1", "--messages", "20"],
    );
    assert!(count(&s, "append") > 0, "{}", s.to_text());

    let s = run(
        &server,
        "mix",
        &["--clients", "4", "--duration", "2", "--messages", "10"],
    );
    assert!(count(&s, "fetch") > 0, "{}", s.to_text());

    let s = run(
        &server,
        "search",
        &[
            "--clients",
            "2",
            "--duration",
            "1",
            "--messages",
            "30",
            "--iterations",
            "3",
        ],
    );
    assert!(
        s.commands.iter().any(|c| c.command.starts_with("search")),
        "{}",
        s.to_text()
    );

    let s = run(
        &server,
        "sync",
        &[
            "--clients",
            "2",
            "--duration",
            "2",
            "--messages",
            "30",
            "--iterations",
            "2",
        ],
    );
    assert!(s.total_commands > 0, "{}", s.to_text());

    let s = run(
        &server,
        "idle",
        &[
            "--clients",
            "4",
            "--senders",
            "2",
            "--deliver-rate",
            "20",
            "--warmup",
            "1",
            "--duration",
            "2",
        ],
    );
    assert!(count(&s, "idle_notify") > 0, "{}", s.to_text());

    // LMTP on the server's LMTP listener: every recipient (two per message, spread over
    // the users) must get its final 250, every reply is checked.
    let s = run(
        &server,
        "lmtp",
        &["--clients", "4", "--recipients", "2", "--duration", "1"],
    );
    assert!(count(&s, "delivery") > 0, "{}", s.to_text());
    assert_eq!(
        count(&s, "delivery"),
        2 * count(&s, "data"),
        "{}",
        s.to_text()
    );
}

/// The IMAP profiles over implicit TLS and STARTTLS, the mix APPENDing real mail from an mbox
/// (plain notes, and multipart messages with attachments up to 1 MB, whose FETCHes are far
/// larger than what rustls buffers at once).
#[test]
fn profiles_over_tls_with_real_mail_run_without_errors() {
    let server = Server::start(2, "", common::mail::LARGE_LITERALS, &users_file());
    let mbox = server.dir.path().join("real.mbox");
    let mut data = Vec::new();
    let sizes = [2_000, 12_000, 100 * 1024, 300 * 1024, 1024 * 1024];
    for (i, size) in sizes.into_iter().cycle().take(15).enumerate() {
        data.extend_from_slice(b"From sender@example.com Mon Dec  7 10:00:00 2026\n");
        let message = common::mail::sample(size, i as u64).message;
        // mbox files use the local line end; the generator makes it CRLF again.
        let text = String::from_utf8(message).unwrap().replace("\r\n", "\n");
        data.extend_from_slice(text.as_bytes());
        data.push(b'\n');
    }
    std::fs::write(&mbox, data).unwrap();
    let mbox = mbox.to_str().unwrap();

    let s = run_on(
        &server,
        "mix",
        server.imaps.port(),
        &[
            "--tls",
            "--clients",
            "4",
            "--duration",
            "3",
            "--messages",
            "10",
            "--mbox",
            mbox,
            "--max-message-size",
            "2000000",
        ],
    );
    assert!(count(&s, "fetch") > 0, "{}", s.to_text());
    assert!(count(&s, "append") > 0, "{}", s.to_text());

    let s = run_on(
        &server,
        "logins",
        server.imap.port(),
        &["--starttls", "--clients", "4", "--duration", "1"],
    );
    assert!(count(&s, "login") > 0, "{}", s.to_text());

    let s = run_on(
        &server,
        "idle",
        server.imaps.port(),
        &[
            "--tls",
            "--clients",
            "4",
            "--senders",
            "2",
            "--deliver-rate",
            "20",
            "--warmup",
            "1",
            "--duration",
            "2",
        ],
    );
    assert!(count(&s, "idle_notify") > 0, "{}", s.to_text());

    let s = run_on(
        &server,
        "sync",
        server.imaps.port(),
        &[
            "--tls",
            "--clients",
            "2",
            "--duration",
            "2",
            "--messages",
            "30",
            "--iterations",
            "2",
        ],
    );
    assert!(s.total_commands > 0, "{}", s.to_text());
}

/// `--auth oauthbearer` and `--auth xoauth2`: every login of the `logins` profile is an
/// AUTHENTICATE with a token the load generator signed before the run (ES256 and RS256, with
/// the committed test keys), checked by the server's "oauth" backend against the JWK Set the
/// generator derives from the same key. A token for another audience is refused: the
/// generator answers the RFC 7628 error challenge and counts the NO, and no login succeeds.
#[test]
fn logins_with_oauth_tokens_signed_by_the_load_generator() {
    let keys = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/auth/tests/keys");
    let (ec, rsa) = (keys.join("ec1.pem"), keys.join("rsa1.pem"));
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    // Both public keys in one set, as an issuer publishes them during a rotation.
    let mut set = serde_json::json!({"keys": []});
    for (key, kid) in [(&ec, "ec"), (&rsa, "rsa")] {
        let one: serde_json::Value = serde_json::from_str(
            &ringmail_load::oauth::Signer::from_file(key, kid)
                .unwrap()
                .jwks_json(),
        )
        .unwrap();
        set["keys"]
            .as_array_mut()
            .unwrap()
            .extend(one["keys"].as_array().unwrap().iter().cloned());
    }
    std::fs::write(&jwks, set.to_string()).unwrap();
    let config = format!(
        "\n[auth]\nbackends = [\"passwd-file\", \"oauth\"]\n\
         [oauth]\nissuer = \"https://id.example.org\"\naudience = \"imap.example.org\"\n\
         jwks_file = \"{}\"\n",
        jwks.display()
    );
    let server = Server::start(2, "", &config, &users_file());
    let oauth = |mechanism: &'static str, key: &std::path::Path, kid: &'static str, audience| {
        let key = key.to_str().unwrap().to_owned();
        [
            "--auth".to_owned(),
            mechanism.to_owned(),
            "--oauth-key".to_owned(),
            key,
            "--oauth-kid".to_owned(),
            kid.to_owned(),
            "--oauth-issuer".to_owned(),
            "https://id.example.org".to_owned(),
            "--oauth-audience".to_owned(),
            audience,
            "--clients".to_owned(),
            "4".to_owned(),
            "--duration".to_owned(),
            "1".to_owned(),
        ]
    };
    for (mechanism, key, kid) in [("oauthbearer", &ec, "ec"), ("xoauth2", &rsa, "rsa")] {
        let args = oauth(mechanism, key, kid, "imap.example.org".to_owned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let s = run(&server, "logins", &args);
        assert!(count(&s, "login") > 0, "{mechanism}: {}", s.to_text());
        assert_eq!(count(&s, "login"), count(&s, "logout"), "{}", s.to_text());
    }

    let args = oauth("oauthbearer", &ec, "ec", "someone-else".to_owned());
    let port = server.imap.port().to_string();
    let mut all = vec!["ringmail-load", "logins", "--port", &port, "--quiet"];
    all.extend(args.iter().map(String::as_str));
    let opts = Options::try_parse_from(&all).unwrap();
    let s = ringmail_load::run(opts, |_| {}).expect("the run starts");
    assert_eq!(count(&s, "login"), 0, "{}", s.to_text());
    assert!(s.error_count > 0, "{}", s.to_text());
    let text = s.to_text();
    assert!(text.contains("AUTHENTICATIONFAILED"), "{text}");
}
