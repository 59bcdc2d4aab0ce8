//! `ringmail check [--repair]` on a real data dir: clean after a normal run, damage reported
//! with a non-zero exit, repaired, and the server serves everything before the damage.

mod common;

use std::io::Write;
use std::process::Command;

use common::Server;

fn check(dir: &std::path::Path, repair: bool) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringmail"));
    cmd.arg("check").arg("--data").arg(dir);
    if repair {
        cmd.arg("--repair");
    }
    cmd.output().unwrap()
}

#[test]
fn check_reports_and_repairs_a_damaged_log() {
    let mut server = Server::start(2, "", "", "demo:{PLAIN}secret\n");
    let mut c = server.connect();
    c.command("l", "LOGIN demo secret");
    for i in 0..5 {
        let msg = format!("Subject: {i}\r\n\r\nbody\r\n");
        c.send(&format!("a APPEND INBOX {{{}+}}\r\n{msg}\r\n", msg.len()));
        assert!(c.until_tagged("a").last().unwrap().starts_with("a OK"));
    }
    drop(c);
    assert!(server.terminate().success());
    let dir = server.dir.path().to_owned();

    let out = check(&dir, false);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("clean"), "{text}");

    // Garbage at the end of the newest segment of the user's partition.
    let segment = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("p-"))
        .flat_map(|p| std::fs::read_dir(p.path()).unwrap().flatten())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .expect("a segment");
    std::fs::OpenOptions::new()
        .append(true)
        .open(&segment)
        .unwrap()
        .write_all(&[0x5a; 100])
        .unwrap();
    let out = check(&dir, false);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "damage must fail the check: {text}");
    assert!(
        text.contains("DAMAGED") && text.contains("bad record"),
        "{text}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("--repair"));

    let out = check(&dir, true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(check(&dir, false).status.success());

    server.restart();
    let mut c = server.connect();
    c.command("l", "LOGIN demo secret");
    let sel = c.command("s", "SELECT INBOX");
    assert!(sel.contains(&"* 5 EXISTS".to_string()), "{sel:?}");
}
