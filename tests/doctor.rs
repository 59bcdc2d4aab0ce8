//! `ringmail doctor` on a good setup (exit 0, the certificate's names and expiry shown) and on
//! broken ones (exit 1, each problem named with a fix).

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A data dir the way an operator would set one up by hand: config on free ports, a CA-less
/// certificate for mail.example.test, a users file.
fn setup(dir: &Path, imap_port: u16) {
    std::fs::write(
        dir.join("ringmail.toml"),
        format!(
            "[imap]\nlisten = [\"127.0.0.1:{imap_port}\"]\nlisten_tls = [\"127.0.0.1:{}\"]\n\
             [metrics]\nlisten = [\"127.0.0.1:{}\"]\n",
            free_port(),
            free_port()
        ),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("tls")).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["mail.example.test".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(dir.join("tls/cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("tls/key.pem"), key.serialize_pem()).unwrap();
    std::fs::write(dir.join("users"), "demo:{PLAIN}secret\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.join("users"), std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn doctor(dir: &Path) -> (Output, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ringmail"))
        .arg("doctor")
        .arg("--data")
        .arg(dir)
        .output()
        .expect("run ringmail doctor");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out, text)
}

/// The first line with `status` that contains `needle`, and the line after it (its fix).
fn finding<'a>(text: &'a str, status: &str, needle: &str) -> (&'a str, &'a str) {
    let lines: Vec<&str> = text.lines().collect();
    let i = lines
        .iter()
        .position(|l| l.starts_with(status) && l.contains(needle))
        .unwrap_or_else(|| panic!("no {status} line with {needle:?}:\n{text}"));
    (lines[i], lines.get(i + 1).copied().unwrap_or(""))
}

#[test]
fn good_setup_passes_and_shows_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path(), free_port());
    let (out, text) = doctor(dir.path());
    assert!(out.status.success(), "doctor failed:\n{text}");
    assert!(!text.contains("FAIL"), "{text}");
    let (tls, _) = finding(&text, "warn", "mail.example.test");
    assert!(tls.contains("expires in"), "{tls}");
    assert!(tls.contains("self-signed"), "{tls}");
    for area in ["config", "port", "users", "data dir", "memlock", "io_uring"] {
        // The disk's fill level belongs to the machine running the test, not to the setup:
        // a "nearly full" warning about it still counts as a good data dir.
        let ok = text
            .lines()
            .any(|l| l.starts_with("ok") && l.contains(area))
            || (area == "data dir"
                && text
                    .lines()
                    .any(|l| l.starts_with("warn  data dir") && l.contains("GiB free")));
        assert!(ok, "{area} not ok:\n{text}");
    }
}

#[test]
fn broken_setup_names_each_problem_and_its_fix() {
    let dir = tempfile::tempdir().unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    setup(dir.path(), taken.local_addr().unwrap().port());
    std::fs::remove_file(dir.path().join("tls/cert.pem")).unwrap();
    std::fs::write(
        dir.path().join("users"),
        "demo:{PLAIN}secret\nbroken line\n",
    )
    .unwrap();

    let (out, text) = doctor(dir.path());
    assert_eq!(out.status.code(), Some(1), "{text}");
    let (port, fix) = finding(&text, "FAIL", "[imap] listen)");
    assert!(
        port.contains(&format!("pid {}", std::process::id())),
        "the port's owner is named: {port}"
    );
    assert!(fix.contains("fix:"), "{fix}");
    let (tls, fix) = finding(&text, "FAIL", "cert.pem");
    assert!(tls.contains("cannot read"), "{tls}");
    assert_eq!(
        text.matches("cert.pem").count(),
        1,
        "one line per problem: {text}"
    );
    assert!(fix.contains("[tls] cert"), "{fix}");
    let (users, fix) = finding(&text, "FAIL", "users:2:");
    assert!(users.contains("expected name:password"), "{users}");
    assert!(fix.contains("ringmail user add"), "{fix}");
    drop(taken);
}

#[test]
fn unknown_config_key_is_named_and_dependent_checks_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path(), free_port());
    let config = dir.path().join("ringmail.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("listen_tls", "listen_tsl")).unwrap();

    let (out, text) = doctor(dir.path());
    assert_eq!(out.status.code(), Some(1), "{text}");
    let (line, fix) = finding(&text, "FAIL", "listen_tsl");
    assert!(line.contains("config"), "{line}");
    assert!(fix.contains("docs/config.md"), "{fix}");
    assert!(text.lines().any(|l| l.starts_with("skip")), "{text}");
}
