//! Real IMAP clients against the real server: Python's imaplib, curl and mbsync (isync), each
//! over plain IMAP, implicit TLS (IMAPS) and STARTTLS, with mail of the sizes people send
//! (100 KB, 1 MB and 50 MB), compared byte for byte.
//!
//! `.ci/run` installs curl, isync and Python; on a developer machine without one of them the
//! test says so and returns, but under CI (`CI` set) a missing client is a failure.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::mail::{sample, LARGE_LITERALS, REAL_SIZES};
use common::Server;

const USERS: &str = "demo:{PLAIN}secret\n";

/// How a client reaches the server: the three ways real clients connect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    /// IMAP on the plain port (allowed from loopback, a secure network by default).
    Plain,
    /// IMAPS: TLS from the first byte.
    Tls,
    /// IMAP on the plain port, upgraded with STARTTLS before login.
    StartTls,
}

impl Transport {
    fn port(self, server: &Server) -> u16 {
        match self {
            Transport::Tls => server.imaps.port(),
            Transport::Plain | Transport::StartTls => server.imap.port(),
        }
    }

    /// The word the client scripts below take.
    fn arg(self) -> &'static str {
        match self {
            Transport::Plain => "plain",
            Transport::Tls => "tls",
            Transport::StartTls => "starttls",
        }
    }
}

/// One `#[test]` per transport for a test function taking a [`Transport`].
macro_rules! over_each_transport {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn plain() {
                super::$name(super::Transport::Plain)
            }
            #[test]
            fn tls() {
                super::$name(super::Transport::Tls)
            }
            #[test]
            fn starttls() {
                super::$name(super::Transport::StartTls)
            }
        }
    )*};
}

over_each_transport!(
    imaplib_session,
    imaplib_large_messages,
    curl_appends_lists_and_fetches,
    mbsync_syncs_both_ways,
);

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

/// Fails with the client's output and the server's log unless the client succeeded.
fn expect_success(what: &str, out: &Output, server: &Server) {
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}\nserver log (tail):\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        tail(&server.log_text(), 40)
    );
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Connects imaplib the way `sys.argv[1:4]` (port, transport, CA file) say; shared by the
/// imaplib scripts.
const IMAPLIB_CONNECT: &str = r#"
import imaplib, ssl, sys
port, mode, cafile = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=cafile)
if mode == 'tls':
    M = imaplib.IMAP4_SSL('127.0.0.1', port, ssl_context=ctx)
else:
    M = imaplib.IMAP4('127.0.0.1', port)
    if mode == 'starttls':
        assert M.starttls(ssl_context=ctx)[0] == 'OK'
"#;

fn imaplib(server: &Server, transport: Transport, script: &str, extra: &[&Path]) {
    let out = Command::new("python3")
        .arg("-c")
        .arg(format!("{IMAPLIB_CONNECT}{script}"))
        .arg(transport.port(server).to_string())
        .arg(transport.arg())
        .arg(server.cert())
        .args(extra)
        .output()
        .unwrap();
    expect_success("imaplib", &out, server);
}

fn imaplib_session(transport: Transport) {
    if !have("python3") {
        return;
    }
    let server = Server::start(2, "", "", USERS);
    let script = r#"
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
"#;
    imaplib(&server, transport, script, &[]);
}

/// Writes each of the real sizes' sample message to `NAME.eml` and its attachment to
/// `NAME.att` in the server's dir; returns the message paths, smallest first.
fn write_samples(server: &Server) -> Vec<PathBuf> {
    REAL_SIZES
        .iter()
        .enumerate()
        .map(|(i, &size)| {
            let s = sample(size, i as u64 + 1);
            let path = server.dir.path().join(format!("sample-{size}.eml"));
            std::fs::write(&path, &s.message).unwrap();
            std::fs::write(path.with_extension("att"), &s.attachment).unwrap();
            path
        })
        .collect()
}

/// APPENDs 100 KB, 1 MB and 50 MB messages and reads each back as clients do: whole, in the
/// 64 KiB partial pieces Thunderbird asks for, and the attachment decoded with BINARY.
fn imaplib_large_messages(transport: Transport) {
    if !have("python3") {
        return;
    }
    let server = Server::start(2, "", LARGE_LITERALS, USERS);
    let samples = write_samples(&server);
    let script = r#"
def literal(data):
    # A literal comes back as (prefix, bytes); an empty section may come back quoted.
    return data[0][1] if isinstance(data[0], tuple) else b''

assert M.login('demo', 'secret')[0] == 'OK'
paths = sys.argv[4:]
for path in paths:
    typ, data = M.append('INBOX', None, None, open(path, 'rb').read())
    assert typ == 'OK', (path, data)
typ, data = M.select('INBOX')
assert typ == 'OK' and data == [str(len(paths)).encode()], data
for seq, path in enumerate(paths, 1):
    msg = open(path, 'rb').read()
    att = open(path[:-4] + '.att', 'rb').read()
    typ, data = M.fetch(str(seq), '(RFC822.SIZE BODY.PEEK[])')
    assert typ == 'OK', data
    assert b'RFC822.SIZE %d' % len(msg) in data[0][0], data[0][0]
    assert literal(data) == msg, (path, len(literal(data)), len(msg))
    got, off = b'', 0
    while True:
        typ, data = M.fetch(str(seq), '(BODY.PEEK[]<%d.65536>)' % off)
        assert typ == 'OK', data
        chunk = literal(data)
        got += chunk
        off += len(chunk)
        if len(chunk) < 65536:
            break
    assert got == msg, (path, 'partial pieces', len(got), len(msg))
    typ, data = M.fetch(str(seq), '(BINARY.SIZE[2])')
    assert typ == 'OK' and b'BINARY.SIZE[2] %d' % len(att) in data[0], data
    typ, data = M.fetch(str(seq), '(BINARY.PEEK[2])')
    assert typ == 'OK' and literal(data) == att, (path, 'binary', len(literal(data)), len(att))
    typ, data = M.fetch(str(seq), '(BINARY.PEEK[2]<1000.4096>)')
    assert typ == 'OK' and literal(data) == att[1000:5096], (path, 'binary partial')
assert M.logout()[0] == 'BYE'
"#;
    let paths: Vec<&Path> = samples.iter().map(PathBuf::as_path).collect();
    imaplib(&server, transport, script, &paths);
}

fn curl_appends_lists_and_fetches(transport: Transport) {
    if !have("curl") {
        return;
    }
    let server = Server::start(2, "", LARGE_LITERALS, USERS);
    let scheme = match transport {
        Transport::Tls => "imaps",
        Transport::Plain | Transport::StartTls => "imap",
    };
    let base = format!("{scheme}://127.0.0.1:{}", transport.port(&server));
    let cert = server.cert();
    let curl = |args: &[&str]| -> Vec<u8> {
        let mut command = Command::new("curl");
        command.args(["-sS", "--user", "demo:secret"]);
        if transport != Transport::Plain {
            command.arg("--cacert").arg(&cert);
        }
        if transport == Transport::StartTls {
            command.arg("--ssl-reqd");
        }
        let out = command.args(args).output().unwrap();
        expect_success(&format!("curl {args:?}"), &out, &server);
        out.stdout
    };
    let small = server.dir.path().join("mail.eml");
    let small_text = "From: c@example.com\r\nSubject: via curl\r\n\r\ncurl body\r\n";
    std::fs::write(&small, small_text).unwrap();
    curl(&["-T", small.to_str().unwrap(), &format!("{base}/INBOX")]);
    let list = String::from_utf8(curl(&[&format!("{base}/")])).unwrap();
    assert!(list.contains("INBOX") && list.contains("Sent"), "{list}");
    let body = curl(&[&format!("{base}/INBOX;UID=1")]);
    assert_eq!(body, small_text.as_bytes());
    let text = curl(&[&format!("{base}/INBOX;UID=1;SECTION=TEXT")]);
    assert_eq!(text, b"curl body\r\n");

    for (i, path) in write_samples(&server).iter().enumerate() {
        curl(&["-T", path.to_str().unwrap(), &format!("{base}/INBOX")]);
        let uid = i + 2;
        let body = curl(&[&format!("{base}/INBOX;UID={uid}")]);
        let sent = std::fs::read(path).unwrap();
        assert!(
            body == sent,
            "{} came back as {} bytes, not {}",
            path.display(),
            body.len(),
            sent.len()
        );
    }
}

fn mbsync_syncs_both_ways(transport: Transport) {
    if !have("mbsync") {
        return;
    }
    let server = Server::start(2, "", LARGE_LITERALS, USERS);
    let mut c = server.connect();
    c.command("l", "LOGIN demo secret");
    for i in 0..3 {
        let msg = format!("From: m@example.com\r\nSubject: sync {i}\r\n\r\nbody {i}\r\n");
        c.send(&format!("a APPEND INBOX {{{}+}}\r\n{msg}\r\n", msg.len()));
        let ok = c.until_tagged("a");
        assert!(ok.last().unwrap().starts_with("a OK"), "{ok:?}");
    }
    let samples = write_samples(&server);
    for path in &samples {
        let msg = std::fs::read(path).unwrap();
        c.send(&format!("a APPEND Archive {{{}+}}\r\n", msg.len()));
        c.send_bytes(&msg);
        c.send("\r\n");
        let ok = c.until_tagged("a");
        assert!(ok.last().unwrap().starts_with("a OK"), "{ok:?}");
    }
    let local = server.dir.path().join("local");
    std::fs::create_dir_all(&local).unwrap();
    let rc = server.dir.path().join("mbsyncrc");
    let ssl = match transport {
        Transport::Plain => "SSLType None\n".to_string(),
        Transport::Tls => format!(
            "SSLType IMAPS\nCertificateFile {}\n",
            server.cert().display()
        ),
        Transport::StartTls => {
            format!(
                "SSLType STARTTLS\nCertificateFile {}\n",
                server.cert().display()
            )
        }
    };
    std::fs::write(
        &rc,
        format!(
            "IMAPAccount t\nHost 127.0.0.1\nPort {}\nUser demo\nPass secret\n{ssl}AuthMechs LOGIN\n\n\
             IMAPStore remote\nAccount t\n\n\
             MaildirStore local\nPath {}/\nInbox {}/INBOX\nSubFolders Verbatim\n\n\
             Channel c\nFar :remote:\nNear :local:\nPatterns *\nCreate Both\nExpunge Both\nSyncState *\n",
            transport.port(&server),
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
        expect_success("mbsync", &out, &server);
    };
    sync();
    assert_eq!(
        files(&local.join("INBOX")).len(),
        3,
        "three messages pulled into the Maildir"
    );
    assert!(
        local.join("Sent").is_dir(),
        "server folders created locally"
    );
    // mbsync adds its own tracking header (X-TUID) to the messages it stores.
    let mut pulled: Vec<Vec<u8>> = files(&local.join("Archive"))
        .iter()
        .map(|f| String::from_utf8(std::fs::read(f).unwrap()).unwrap())
        .map(|text| {
            let lines = text.split_inclusive('\n');
            lines
                .filter(|l| !l.starts_with("X-TUID: "))
                .collect::<String>()
        })
        .map(String::into_bytes)
        .collect();
    pulled.sort_by_key(Vec::len);
    // mbsync stores Maildir files with the local line end (LF).
    let sent: Vec<Vec<u8>> = samples
        .iter()
        .map(|p| String::from_utf8(std::fs::read(p).unwrap()).unwrap())
        .map(|text| text.replace("\r\n", "\n").into_bytes())
        .collect();
    assert_eq!(pulled.len(), sent.len(), "every large message pulled");
    for (got, want) in pulled.iter().zip(&sent) {
        assert!(
            got == want,
            "a {}-byte message arrived as {} bytes",
            want.len(),
            got.len()
        );
    }

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

/// The message files of a Maildir folder (`new` and `cur`).
fn files(folder: &Path) -> Vec<PathBuf> {
    ["new", "cur"]
        .iter()
        .filter_map(|sub| std::fs::read_dir(folder.join(sub)).ok())
        .flatten()
        .map(|entry| entry.unwrap().path())
        .collect()
}
