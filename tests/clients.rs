//! Real IMAP clients against the real server: Python's imaplib, curl and mbsync (isync).
//!
//! `.ci/run` installs curl, isync and Python; on a developer machine without one of them the
//! test says so and returns, but under CI (`CI` set) a missing client is a failure.

mod common;

use std::path::Path;
use std::process::Command;

use common::Server;

const USERS: &str = "demo:{PLAIN}secret\n";

/// Whether `program` can be run; fails the test under CI when it cannot.
fn have(program: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{program} is not installed; .ci/run must install it"
        );
        eprintln!("skipping: {program} is not installed");
    }
    found
}

#[test]
fn python_imaplib_session() {
    if !have("python3") {
        return;
    }
    let server = Server::start(2, "", "", USERS);
    let script = r#"
import imaplib, sys
port = int(sys.argv[1])
M = imaplib.IMAP4('127.0.0.1', port)
assert M.login('demo', 'secret')[0] == 'OK'
assert M.create('Projects')[0] == 'OK'
msg = b"From: a@example.com\r\nSubject: imaplib\r\n\r\nhello from python\r\n"
typ, data = M.append('Projects', '(\\Flagged)', None, msg)
assert typ == 'OK' and b'APPENDUID' in data[0], data
typ, data = M.select('Projects')
assert typ == 'OK' and data == [b'1'], data
typ, data = M.fetch('1', '(FLAGS BODY.PEEK[])')
assert typ == 'OK' and data[0][1] == msg, data
assert b'\\Flagged' in data[0][0], data
typ, data = M.uid('STORE', '1', '+FLAGS', '(\\Seen)')
assert typ == 'OK', data
typ, data = M.status('Projects', '(MESSAGES UNSEEN)')
assert data == [b'Projects (MESSAGES 1 UNSEEN 0)'], data
typ, data = M.list()
assert any(b'Projects' in l for l in data), data
assert M.close()[0] == 'OK'
assert M.logout()[0] == 'BYE'
print("imaplib ok")
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(server.imap.port().to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "imaplib failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn curl_appends_lists_and_fetches() {
    if !have("curl") {
        return;
    }
    let server = Server::start(2, "", "", USERS);
    let base = format!("imap://127.0.0.1:{}", server.imap.port());
    let file = server.dir.path().join("mail.eml");
    std::fs::write(
        &file,
        "From: c@example.com\r\nSubject: via curl\r\n\r\ncurl body\r\n",
    )
    .unwrap();
    let curl = |args: &[&str]| {
        let out = Command::new("curl")
            .args(["-sS", "--user", "demo:secret"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "curl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    curl(&["-T", file.to_str().unwrap(), &format!("{base}/INBOX")]);
    let list = curl(&[&format!("{base}/")]);
    assert!(list.contains("INBOX") && list.contains("Sent"), "{list}");
    let body = curl(&[&format!("{base}/INBOX;UID=1")]);
    assert_eq!(
        body,
        "From: c@example.com\r\nSubject: via curl\r\n\r\ncurl body\r\n"
    );
    let search_free = curl(&[&format!("{base}/INBOX;UID=1;SECTION=TEXT")]);
    assert_eq!(search_free, "curl body\r\n");
}

#[test]
fn mbsync_syncs_both_ways() {
    if !have("mbsync") {
        return;
    }
    let server = Server::start(2, "", "", USERS);
    let mut c = server.connect();
    c.command("l", "LOGIN demo secret");
    for i in 0..3 {
        let msg = format!("From: m@example.com\r\nSubject: sync {i}\r\n\r\nbody {i}\r\n");
        c.send(&format!("a APPEND INBOX {{{}+}}\r\n{msg}\r\n", msg.len()));
        let ok = c.until_tagged("a");
        assert!(ok.last().unwrap().starts_with("a OK"), "{ok:?}");
    }
    let local = server.dir.path().join("local");
    std::fs::create_dir_all(&local).unwrap();
    let rc = server.dir.path().join("mbsyncrc");
    std::fs::write(
        &rc,
        format!(
            "IMAPAccount t\nHost 127.0.0.1\nPort {}\nUser demo\nPass secret\nSSLType None\nAuthMechs LOGIN\n\n\
             IMAPStore remote\nAccount t\n\n\
             MaildirStore local\nPath {}/\nInbox {}/INBOX\nSubFolders Verbatim\n\n\
             Channel c\nFar :remote:\nNear :local:\nPatterns *\nCreate Both\nExpunge Both\nSyncState *\n",
            server.imap.port(),
            local.display(),
            local.display()
        ),
    )
    .unwrap();
    let sync = || {
        let out = Command::new("mbsync")
            .arg("-c")
            .arg(&rc)
            .arg("-a")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mbsync failed:\n{}\n{}\nserver log:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            server.log_text()
        );
    };
    sync();
    let new = count_files(&local.join("INBOX/new")) + count_files(&local.join("INBOX/cur"));
    assert_eq!(new, 3, "three messages pulled into the Maildir");
    assert!(
        local.join("Sent").is_dir(),
        "server folders created locally"
    );

    // A message added locally goes up; a message deleted locally is expunged on the server.
    let cur = local.join("INBOX/cur");
    std::fs::create_dir_all(&cur).unwrap();
    std::fs::write(
        cur.join("1700000000.local:2,S"),
        "From: l@example.com\r\nSubject: local\r\n\r\nup\r\n",
    )
    .unwrap();
    sync();
    let status = c.command("s", "STATUS INBOX (MESSAGES)");
    assert_eq!(status[0], "* STATUS INBOX (MESSAGES 4)", "{status:?}");
    let sel = c.command("x", "SELECT INBOX");
    assert!(sel.contains(&"* 4 EXISTS".to_string()));
    let seen = c.command("f", "FETCH 4 (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])");
    assert!(seen[0].contains("\\Seen"), "{seen:?}");
    assert_eq!(seen[1], "Subject: local");
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.count())
}
