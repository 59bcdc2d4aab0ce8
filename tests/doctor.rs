//! `ringmail doctor` on a good setup (exit 0, the certificate's names and expiry shown) and on
//! broken ones (exit 1, each problem named with a fix).

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A data dir the way an operator would set one up by hand: config on free ports, a CA-less
/// certificate for mail.example.test, a users file. Returns the ports: IMAP, IMAPS, LMTP,
/// metrics, ManageSieve.
fn setup(dir: &Path, imap_port: u16) -> [u16; 5] {
    let ports = [
        imap_port,
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    ];
    std::fs::write(
        dir.join("ringmail.toml"),
        format!(
            "[server]\nexecutors = 2\n\
             [imap]\nlisten = [\"127.0.0.1:{}\"]\nlisten_tls = [\"127.0.0.1:{}\"]\n\
             [lmtp]\nlisten = [\"127.0.0.1:{}\"]\n\
             [metrics]\nlisten = [\"127.0.0.1:{}\"]\n\
             [managesieve]\nlisten = [\"127.0.0.1:{}\"]\n",
            ports[0], ports[1], ports[2], ports[3], ports[4]
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
    ports
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

/// `ringmail serve` on `dir`, once every port in `ports` accepts connections.
fn serve(dir: &Path, ports: &[u16]) -> Child {
    let log = std::fs::File::create(dir.join("server.log")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringmail"))
        .arg("serve")
        .arg("--data")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start ringmail");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ports
        .iter()
        .all(|p| TcpStream::connect(("127.0.0.1", *p)).is_ok())
    {
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            panic!(
                "server did not start:\n{}",
                std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// The `port` lines of a report.
fn port_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.split_whitespace().nth(1) == Some("port"))
        .collect()
}

#[test]
fn every_port_of_a_running_server_is_served_by_it() {
    let dir = tempfile::tempdir().unwrap();
    let ports = setup(dir.path(), free_port());
    let mut server = serve(dir.path(), &ports);
    // Connections held open: their sockets share the ports with the listeners.
    let held: Vec<TcpStream> = ports
        .iter()
        .map(|p| TcpStream::connect(("127.0.0.1", *p)).unwrap())
        .collect();

    let (out, text) = doctor(dir.path());
    let _ = server.kill();
    let _ = server.wait();
    assert!(out.status.success(), "doctor failed:\n{text}");
    let lines = port_lines(&text);
    assert_eq!(
        lines.len(),
        5,
        "IMAP, IMAPS, LMTP, ManageSieve and metrics:\n{text}"
    );
    let served = format!("is served by the running ringmail (pid {})", server.id());
    for line in lines {
        assert!(
            line.starts_with("ok") && line.contains(&served),
            "{line}\n{text}"
        );
    }
    drop(held);
}

#[test]
fn a_killed_servers_closing_connections_do_not_make_its_port_taken() {
    let dir = tempfile::tempdir().unwrap();
    let ports = setup(dir.path(), free_port());
    let mut server = serve(dir.path(), &ports);
    // A client that stays connected while the server dies: the server's side of the
    // connection keeps the port bound (FIN_WAIT2) with no listener left.
    let mut held = TcpStream::connect(("127.0.0.1", ports[0])).unwrap();
    held.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut greeting = [0u8; 4];
    std::io::Read::read_exact(&mut held, &mut greeting).unwrap();
    server.kill().unwrap();
    server.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", ports[0])).is_ok() {
        assert!(Instant::now() < deadline, "the killed server still listens");
        std::thread::sleep(Duration::from_millis(50));
    }
    // A plain bind (SO_REUSEADDR) now fails with "Address already in use" although nothing
    // listens: what an earlier doctor reported as a FAIL naming no process.

    let (out, text) = doctor(dir.path());
    assert!(out.status.success(), "doctor failed:\n{text}");
    let (imap, _) = finding(&text, "ok", "([imap] listen)");
    assert!(imap.contains("is free"), "{imap}");
    // And a new server does start on it.
    let mut again = serve(dir.path(), &ports);
    let (_, text) = doctor(dir.path());
    let _ = again.kill();
    let _ = again.wait();
    let served = format!("served by the running ringmail (pid {})", again.id());
    assert!(
        port_lines(&text).iter().all(|l| l.contains(&served)),
        "{text}"
    );
    drop(held);
}
