//! Debian's `sieve-connect`, the ManageSieve client the tests drive: one runner for the
//! server's tests (tests/managesieve.rs) and the managesieve crate's own
//! (crates/managesieve/tests/sieve_connect.rs, which includes this file by path).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Whether sieve-connect is installed. Without it a test is skipped with a message, except
/// under CI (CI set), where it fails: CI installs it (.ci/run).
pub fn installed() -> bool {
    let found = Command::new("sieve-connect")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        if std::env::var_os("CI").is_some() {
            panic!("sieve-connect (Debian package sieve-connect) is not installed, but CI needs this test");
        }
        eprintln!("SKIPPED: sieve-connect not found (apt-get install sieve-connect)");
    }
    found
}

/// Runs sieve-connect against `host:port` as `user` with PLAIN, the password given on
/// stdin, and `args`; its exit status and stdout + stderr. Killed after 30 s.
pub fn run(host: &str, port: u16, user: &str, password: &str, args: &[&str]) -> (bool, String) {
    let port = port.to_string();
    let mut child = Command::new("sieve-connect")
        .args(["--server", host, "--port", &port, "--user", user])
        .args(["--passwordfd", "0", "--authmech", "PLAIN"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sieve-connect runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("sieve-connect {args:?} did not finish in 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}
