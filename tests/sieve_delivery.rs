//! Sieve at delivery, end to end: scripts are put into the users' partitions (the store API
//! ManageSieve uses), Python's smtplib.LMTP delivers, imaplib reads back what was stored,
//! and an SMTP sink started here records the mail the scripts send.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Server;

/// Virtual partitions of the test servers (set so that the test knows where a user lives).
const PARTITIONS: u32 = 8;

/// One message the sink took.
#[derive(Debug, Clone)]
struct Received {
    from: String,
    to: Vec<String>,
    data: String,
}

/// A minimal SMTP server on a loopback port that records every message; recipients whose
/// address starts with "refuse" are refused with a 550.
struct Sink {
    port: u16,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Sink {
    fn start() -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let store = got.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let store = store.clone();
                std::thread::spawn(move || {
                    let _ = sink_session(conn, &store);
                });
            }
        });
        Sink { port, got }
    }

    fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Waits (bounded) until the sink holds at least `n` messages.
    fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.received();
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn sink_session(conn: TcpStream, store: &Mutex<Vec<Received>>) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut out = conn.try_clone()?;
    let mut input = BufReader::new(conn);
    out.write_all(b"220 sink ESMTP\r\n")?;
    let (mut from, mut to) = (String::new(), Vec::new());
    let mut line = String::new();
    loop {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let upper = line.to_ascii_uppercase();
        let arg = |prefix: &str| {
            line[prefix.len()..]
                .trim()
                .trim_start_matches('<')
                .split('>')
                .next()
                .unwrap_or("")
                .to_string()
        };
        if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            out.write_all(b"250-sink\r\n250 8BITMIME\r\n")?;
        } else if upper.starts_with("MAIL FROM:") {
            from = arg("MAIL FROM:");
            to.clear();
            out.write_all(b"250 ok\r\n")?;
        } else if upper.starts_with("RCPT TO:") {
            let rcpt = arg("RCPT TO:");
            if rcpt.starts_with("refuse") {
                out.write_all(b"550 5.1.1 no such user\r\n")?;
            } else {
                to.push(rcpt);
                out.write_all(b"250 ok\r\n")?;
            }
        } else if upper.starts_with("DATA") {
            out.write_all(b"354 go\r\n")?;
            let mut data = String::new();
            loop {
                line.clear();
                if input.read_line(&mut line)? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" {
                    break;
                }
                data.push_str(line.strip_prefix('.').unwrap_or(&line));
            }
            store.lock().unwrap().push(Received {
                from: from.clone(),
                to: to.clone(),
                data,
            });
            out.write_all(b"250 queued\r\n")?;
        } else if upper.starts_with("QUIT") {
            out.write_all(b"221 bye\r\n")?;
            return Ok(());
        } else {
            out.write_all(b"250 ok\r\n")?;
        }
    }
}

/// Whether Python can be run; under CI it must be there.
fn have_python() -> bool {
    let ok = std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok || std::env::var_os("CI").is_none(),
        "python3 missing under CI"
    );
    ok
}

const USERS: &str = "alice:{PLAIN}pw\nbob:{PLAIN}pw\ncarol:{PLAIN}pw\ndave:{PLAIN}pw\n\
                     erin:{PLAIN}pw\nfrank:{PLAIN}pw\ngina:{PLAIN}pw\n";

/// A server with `[sieve] submission` at `relay` and the scripts (user, source) put as
/// "main" and activated in the users' partitions while it was stopped; a `user:name` puts an
/// inactive script of that name (for `include`).
fn server_with_scripts(relay: u16, scripts: &[(&str, &str)]) -> Server {
    server_with_scripts_and_lmtp(relay, "", scripts)
}

/// [`server_with_scripts`] with extra keys for the `[lmtp]` section.
fn server_with_scripts_and_lmtp(relay: u16, lmtp_extra: &str, scripts: &[(&str, &str)]) -> Server {
    let extra = format!(
        "\n[storage]\npartitions = {PARTITIONS}\n\
         [sieve]\nsubmission = \"127.0.0.1:{relay}\"\nmax_steps = 20000\nsubmission_timeout_secs = 5\n"
    );
    let mut server = Server::start_with_lmtp(2, "", lmtp_extra, &extra, USERS);
    server.terminate();
    let data = server.dir.path().to_path_buf();
    let scripts: Vec<(String, String)> = scripts
        .iter()
        .map(|(u, s)| (u.to_string(), s.to_string()))
        .collect();
    glommio::LocalExecutorBuilder::default()
        .spawn(move || async move {
            use ringmail::store::{Options, Partition};
            for (user, source) in scripts {
                let (user, name) = user.split_once(':').unwrap_or((&user, "main"));
                let p = ringmail::server::partition::partition_of(user, PARTITIONS);
                let dir = ringmail::server::partitions::Partitions::dir(&data, p);
                let part = Partition::open(&dir, Options::default()).await.unwrap();
                part.put_script(user, name, &source).await.unwrap();
                if name == "main" {
                    part.activate_script(user, Some("main")).await.unwrap();
                }
                part.close().await.unwrap();
            }
        })
        .unwrap()
        .join()
        .unwrap();
    server.restart();
    server
}

/// Delivers one message with smtplib.LMTP; returns (recipient, code) for each recipient,
/// in RCPT order.
fn deliver(server: &Server, sender: &str, rcpts: &[&str], message: &str) -> Vec<(String, u16)> {
    deliver_with_text(server, sender, rcpts, message)
        .into_iter()
        .map(|(r, code, _)| (r, code))
        .collect()
}

/// [`deliver`] with the text of each recipient's last reply.
fn deliver_with_text(
    server: &Server,
    sender: &str,
    rcpts: &[&str],
    message: &str,
) -> Vec<(String, u16, String)> {
    // smtplib.LMTP's sendmail reads one reply after DATA; LMTP gives one per recipient
    // (RFC 2033 4.2), so the transaction is driven with smtplib's own lower-level calls.
    let script = r#"
import smtplib, sys
port, sender, rcpts, msg = int(sys.argv[1]), sys.argv[2], sys.argv[3].split(','), sys.argv[4]
c = smtplib.LMTP('127.0.0.1', port)
c.ehlo_or_helo_if_needed()
code, _ = c.mail(sender)
assert code == 250, code
accepted = []
result = {}
for r in rcpts:
    code, text = c.rcpt(r)
    result[r] = (code, text)
    if code == 250:
        accepted.append(r)
if accepted:
    code, _ = c.docmd('DATA')
    assert code == 354, code
    c.send(smtplib.quotedata(msg).encode() + b'\r\n.\r\n')
    for r in accepted:
        result[r] = c.getreply()
for r in rcpts:
    print(r, result[r][0], result[r][1].decode())
c.quit()
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(server.lmtp.port().to_string())
        .arg(sender)
        .arg(rcpts.join(","))
        .arg(message)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .map(|l| {
            let mut parts = l.splitn(3, ' ');
            let r = parts.next().unwrap().to_string();
            let code = parts.next().unwrap().parse().unwrap();
            (r, code, parts.next().unwrap_or("").to_string())
        })
        .collect()
}

/// What imaplib sees: one line per message, "mailbox|flags|subject|x-filtered|x-junk".
fn mailbox_contents(server: &Server, user: &str) -> Vec<String> {
    let script = r#"
import imaplib, re, sys
M = imaplib.IMAP4('127.0.0.1', int(sys.argv[1]))
M.login(sys.argv[2], 'pw')
typ, boxes = M.list()
for b in boxes:
    if b'\\Noselect' in b or b'\\NonExistent' in b:
        continue
    name = b.decode().rsplit(' ', 1)[1].strip('"')
    typ, n = M.select('"' + name + '"', readonly=True)
    if int(n[0]) == 0:
        continue
    typ, data = M.fetch('1:*', '(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT X-FILTERED X-JUNK)])')
    for item in data:
        if not isinstance(item, tuple):
            continue
        flags = ' '.join(sorted(f.decode() for f in imaplib.ParseFlags(item[0]) if f != b'\\Recent'))
        h = item[1].decode()
        get = lambda k: (re.search('^' + k + r': (.*?)\r$', h, re.M | re.I) or [None, ''])[1]
        print('|'.join([name, flags, get('Subject'), get('X-Filtered'), get('X-Junk')]))
M.logout()
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(server.imap.port().to_string())
        .arg(user)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines: Vec<String> = stdout.lines().map(str::to_string).collect();
    lines.sort();
    lines
}

fn message(to: &str, subject: &str, extra: &str) -> String {
    format!(
        "From: Sender <sender@example.org>\r\nTo: {to}\r\nSubject: {subject}\r\n\
         Message-ID: <{}@example.org>\r\n{extra}\r\nHello.\r\n",
        subject.replace(' ', "-")
    )
}

const ALICE: &str = r#"require ["fileinto", "imap4flags", "mailbox", "editheader", "reject",
    "envelope", "subaddress", "copy", "special-use"];
if header :contains "subject" "[dev]" { fileinto :create "Lists/dev"; stop; }
if header :contains "subject" "boss" {
    addflag "\\Flagged";
    fileinto :create :flags ["$Important", "\\Seen"] "Work";
    keep;
    stop;
}
if header :contains "subject" "spam" { discard; stop; }
if header :contains "subject" "reject me" { reject "I do not want this"; stop; }
if envelope :detail "to" "shop" { fileinto :create "Shopping"; stop; }
if header :contains "subject" "junk" { fileinto :specialuse "\\Junk" "NoSuchJunk"; stop; }
if header :contains "subject" "edit" {
    addheader "X-Filtered" "yes";
    deleteheader "X-Junk";
}
"#;

/// `envelope :user` / `:detail` and `address :detail` split at `[lmtp] recipient_delimiter`,
/// as LMTP does to find the user: with "-", `bob-shop@` is bob's "shop" detail and a "+"
/// is part of the user.
#[test]
fn subaddress_follows_the_recipient_delimiter() {
    if !have_python() {
        return;
    }
    let sink = Sink::start();
    const BOB: &str = r#"require ["fileinto", "mailbox", "envelope", "subaddress"];
if envelope :detail "to" "shop" { fileinto :create "Shopping"; stop; }
if address :detail "to" "news" { fileinto :create "News"; stop; }
if envelope :detail "to" "" { fileinto :create "EmptyDetail"; stop; }
if envelope :user "to" "bob" { fileinto :create "ForBob"; stop; }
"#;
    let server =
        server_with_scripts_and_lmtp(sink.port, "recipient_delimiter = \"-\"\n", &[("bob", BOB)]);
    let cases = [
        ("bob-shop@example.com", "via dash"),
        ("bob@example.com", "plain"),
        ("bob@example.com", "header detail"),
    ];
    for (rcpt, subject) in cases {
        let to = if subject == "header detail" {
            "bob-news@example.com"
        } else {
            rcpt
        };
        let got = deliver(
            &server,
            "sender@example.org",
            &[rcpt],
            &message(to, subject, ""),
        );
        assert_eq!(got, vec![(rcpt.to_string(), 250)], "{subject}");
    }
    // With "-" as the delimiter, "+" is no separator: bob+shop is another user, refused.
    let got = deliver(
        &server,
        "sender@example.org",
        &["bob+shop@example.com"],
        &message("bob+shop@example.com", "via plus", ""),
    );
    assert_eq!(got[0].1, 550, "{got:?}");
    assert_eq!(
        mailbox_contents(&server, "bob"),
        vec![
            "ForBob||plain||".to_string(),
            "News||header detail||".to_string(),
            "Shopping||via dash||".to_string(),
        ]
    );
}

/// A 50 MB message with a `body :contains` and a header test: stored byte for byte (after
/// the trace lines delivery adds), filed by the text the body test sees in its first
/// `[sieve] max_body_test_size` bytes, and text past them is not seen (no "Deep").
#[test]
fn a_50_mb_message_is_filed_by_a_bounded_body_test_and_stored_whole() {
    if !have_python() {
        return;
    }
    let sink = Sink::start();
    const SCRIPT: &str = r#"require ["body", "fileinto", "mailbox", "imap4flags"];
if body :contains "deepneedle" { fileinto :create "Deep"; stop; }
if allof (header :contains "subject" "report", body :contains "quarterly needle") {
    addflag "\\Flagged";
    fileinto :create "Reports";
    stop;
}
"#;
    let server = server_with_scripts(sink.port, &[("carol", SCRIPT)]);
    // Multipart: a short text part, 50 MB of base64, a text part whose word lies past the
    // limit. CRLF line ends and no line starting with ".", so LMTP carries it unchanged.
    let mut msg = String::from(
        "From: Reports <reports@example.org>\r\nTo: carol@example.com\r\n\
         Subject: The big report\r\nMessage-ID: <big@example.org>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: text/plain\r\n\r\nThe quarterly needle is attached.\r\n\
         --b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n",
    );
    let line = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0\r\n";
    while msg.len() < 50 << 20 {
        msg.push_str(line);
    }
    msg.push_str("--b\r\nContent-Type: text/plain\r\n\r\nThe deepneedle is here.\r\n--b--\r\n");
    let work = tempfile::tempdir().unwrap();
    let sent = work.path().join("sent.eml");
    let stored = work.path().join("stored.eml");
    std::fs::write(&sent, &msg).unwrap();
    let script = r#"
import imaplib, smtplib, sys
lmtp, imap, sent, stored = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
msg = open(sent, 'rb').read()
c = smtplib.LMTP('127.0.0.1', lmtp, timeout=120)
c.ehlo_or_helo_if_needed()
assert c.mail('reports@example.org')[0] == 250
assert c.rcpt('carol@example.com')[0] == 250
assert c.docmd('DATA')[0] == 354
c.send(msg + b'.\r\n')
code, text = c.getreply()
print('reply', code, text.decode())
c.quit()
M = imaplib.IMAP4('127.0.0.1', imap, timeout=120)
M.login('carol', 'pw')
for box in ('INBOX', 'Deep', 'Reports'):
    typ, n = M.select(box, readonly=True)
    print('box', box, n[0].decode() if typ == 'OK' else 0)
M.select('Reports', readonly=True)
typ, data = M.fetch('1', '(FLAGS BODY.PEEK[])')
print('flags', data[0][0].decode().split('FLAGS (')[1].split(')')[0])
open(stored, 'wb').write(data[0][1])
M.logout()
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(server.lmtp.port().to_string())
        .arg(server.imap.port().to_string())
        .arg(&sent)
        .arg(&stored)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("reply 250") && text.contains("Saved in Reports"),
        "{text}"
    );
    assert!(text.contains("box INBOX 0"), "{text}");
    assert!(text.contains("box Deep 0"), "{text}");
    assert!(text.contains("box Reports 1"), "{text}");
    assert!(text.contains("\\Flagged"), "{text}");
    let stored = std::fs::read(&stored).unwrap();
    assert!(
        stored.ends_with(msg.as_bytes()),
        "the stored message differs"
    );
    let prefix_len = stored.len() - msg.len();
    let prefix = std::str::from_utf8(&stored[..prefix_len]).unwrap();
    assert!(
        prefix
            .split_terminator("\r\n")
            .all(|l| l.starts_with("Return-Path: ") || l.starts_with("Delivered-To: ")),
        "{prefix}"
    );
}

/// keep, fileinto with :create and flags, several copies, discard, editheader, a subaddress in
/// the envelope, special-use, reject for one recipient while the others get 250, and a script
/// error that keeps the message.
#[test]
fn scripts_file_flag_discard_reject_and_keep_on_error() {
    if !have_python() {
        return;
    }
    let sink = Sink::start();
    // fileinto and reject together: a run-time error (RFC 5429 2.1).
    let carol = r#"require ["fileinto", "reject"]; fileinto "Nowhere"; reject "no";"#;
    // duplicate (RFC 7352): the second message with a Message-ID already seen is filed apart.
    let dave = r#"require ["duplicate", "fileinto", "mailbox"];
        if duplicate { fileinto :create "Dups"; }"#;
    let server = server_with_scripts(
        sink.port,
        &[
            ("alice", ALICE),
            ("carol", carol),
            ("dave", dave),
            (
                "frank:rules",
                r#"require ["fileinto", "mailbox"]; fileinto :create "Included";"#,
            ),
            ("frank", r#"require "include"; include :personal "rules";"#),
        ],
    );
    let a = "alice@example.com";

    let r = deliver(
        &server,
        "sender@example.org",
        &[a],
        &message(a, "[dev] build", ""),
    );
    assert_eq!(r, vec![(a.to_string(), 250)]);
    deliver(
        &server,
        "sender@example.org",
        &[a],
        &message(a, "boss wants", ""),
    );
    deliver(
        &server,
        "sender@example.org",
        &[a],
        &message(a, "cheap spam", ""),
    );
    deliver(
        &server,
        "sender@example.org",
        &["alice+shop@example.com"],
        &message(a, "your order", ""),
    );
    deliver(
        &server,
        "sender@example.org",
        &[a],
        &message(a, "junk offer", ""),
    );
    deliver(
        &server,
        "sender@example.org",
        &[a],
        &message(a, "edit me", "X-Junk: 9\r\n"),
    );
    deliver(
        &server,
        "sender@example.org",
        &[a],
        &message(a, "plain", ""),
    );

    // reject: 550 for alice only; bob (no script) and carol (error → keep) get 250.
    let r = deliver_with_text(
        &server,
        "sender@example.org",
        &[a, "bob@example.com", "carol@example.com"],
        &message(a, "reject me", ""),
    );
    let codes: Vec<u16> = r.iter().map(|(_, code, _)| *code).collect();
    assert_eq!(codes, vec![550, 250, 250], "{r:?}");
    assert_eq!(r[0].2, "5.7.1 <alice@example.com> I do not want this");

    let d = "dave@example.com";
    for _ in 0..2 {
        deliver(
            &server,
            "sender@example.org",
            &[d],
            &message(d, "same id", ""),
        );
    }
    deliver(
        &server,
        "sender@example.org",
        &[d],
        &message(d, "other id", ""),
    );
    assert_eq!(
        mailbox_contents(&server, "dave"),
        vec!["Dups||same id||", "INBOX||other id||", "INBOX||same id||"]
    );

    // include (RFC 6609) of the user's other script, twice (the second from the cache).
    let f = "frank@example.com";
    deliver(
        &server,
        "sender@example.org",
        &[f],
        &message(f, "inc 1", ""),
    );
    deliver(
        &server,
        "sender@example.org",
        &[f],
        &message(f, "inc 2", ""),
    );
    assert_eq!(
        mailbox_contents(&server, "frank"),
        vec!["Included||inc 1||", "Included||inc 2||"]
    );

    let alice = mailbox_contents(&server, "alice");
    assert_eq!(
        alice,
        vec![
            "INBOX|\\Flagged|boss wants||",
            "INBOX||edit me|yes|",
            "INBOX||plain||",
            "Junk||junk offer||",
            "Lists/dev||[dev] build||",
            "Shopping||your order||",
            "Work|$Important \\Seen|boss wants||",
        ],
        "spam discarded, reject stored nothing"
    );
    assert_eq!(
        mailbox_contents(&server, "bob"),
        vec!["INBOX||reject me||".to_string()]
    );
    assert_eq!(
        mailbox_contents(&server, "carol"),
        vec!["INBOX||reject me||".to_string()],
        "a script error keeps the message in INBOX"
    );
    let log = server.log_text();
    assert!(
        log.contains("Sieve: script error") && log.contains("carol"),
        "the error is logged with the user"
    );
    assert!(sink.received().is_empty(), "{:?}", sink.received());
}

/// Vacation replies reach the relay once per sender within :days, none to a list or to <>;
/// redirect goes out with the original envelope sender and the loop header, and a redirect
/// the relay refuses keeps the message.
#[test]
fn vacation_and_redirect_go_to_the_relay() {
    if !have_python() {
        return;
    }
    let sink = Sink::start();
    let erin = r#"require "vacation"; vacation :days 1 :subject "Away" "I am away.";"#;
    let frank = r#"redirect "elsewhere@example.net";"#;
    let gina = r#"redirect "refuse@example.net";"#;
    let server = server_with_scripts(
        sink.port,
        &[("erin", erin), ("frank", frank), ("gina", gina)],
    );
    let e = "erin@example.com";
    deliver(&server, "x@example.org", &[e], &message(e, "one", ""));
    deliver(&server, "x@example.org", &[e], &message(e, "two", ""));
    deliver(&server, "y@example.org", &[e], &message(e, "three", ""));
    deliver(
        &server,
        "list@example.org",
        &[e],
        &message(e, "list", "List-Id: <dev.example.org>\r\n"),
    );
    deliver(&server, "", &[e], &message(e, "bounce", ""));
    // Two messages from one sender at the same moment still get one reply.
    std::thread::scope(|scope| {
        for i in 0..4 {
            let server = &server;
            scope.spawn(move || {
                deliver(
                    server,
                    "z@example.org",
                    &[e],
                    &message(e, &format!("z{i}"), ""),
                );
            });
        }
    });
    let r = deliver(
        &server,
        "author@example.org",
        &["frank@example.com"],
        &message("frank@example.com", "fwd", ""),
    );
    assert_eq!(r[0].1, 250);
    let r = deliver(
        &server,
        "author@example.org",
        &["gina@example.com"],
        &message("gina@example.com", "refused fwd", ""),
    );
    assert_eq!(r[0].1, 250);

    let got = sink.wait_for(4);
    // Give a wrong extra reply the time to arrive before counting.
    std::thread::sleep(Duration::from_millis(500));
    let got_now = sink.received();
    assert_eq!(got.len(), got_now.len(), "{got_now:?}");
    let replies: Vec<&Received> = got_now
        .iter()
        .filter(|m| m.data.contains("Auto-Submitted: auto-replied"))
        .collect();
    let mut to: Vec<String> = replies.iter().flat_map(|m| m.to.clone()).collect();
    to.sort();
    assert_eq!(
        to,
        vec!["x@example.org", "y@example.org", "z@example.org"],
        "{got_now:?}"
    );
    assert!(replies.iter().all(|m| m.from.is_empty()), "from <>");
    assert!(replies[0].data.contains("Subject: Away"));
    assert!(replies[0].data.contains("I am away."));

    let redirected: Vec<&Received> = got_now
        .iter()
        .filter(|m| m.to == ["elsewhere@example.net"])
        .collect();
    assert_eq!(redirected.len(), 1, "{got_now:?}");
    assert_eq!(redirected[0].from, "author@example.org");
    assert!(redirected[0]
        .data
        .contains("X-Sieve-Redirected-From: frank@example.com"));
    assert!(redirected[0].data.contains("Subject: fwd"));
    assert_eq!(got_now.len(), 4, "{got_now:?}");

    assert_eq!(mailbox_contents(&server, "frank"), Vec::<String>::new());
    assert_eq!(
        mailbox_contents(&server, "gina"),
        vec!["INBOX||refused fwd||".to_string()],
        "a redirect the relay refused is kept"
    );
    assert_eq!(mailbox_contents(&server, "erin").len(), 9);
}

/// A script that runs into the step limit (thousands of regex tests against a subject made
/// for backtracking engines) is stopped, the message kept, and another user's delivery at
/// the same time is not held up.
#[test]
fn hostile_script_is_stopped_without_delaying_others() {
    if !have_python() {
        return;
    }
    let sink = Sink::start();
    let mut dave = String::from("require [\"regex\", \"imap4flags\"];\n");
    for _ in 0..10_000 {
        dave.push_str("if header :regex \"subject\" \"^(a|aa)+(b|c)$\" { addflag \"x\"; }\n");
    }
    let server = server_with_scripts(sink.port, &[("dave", &dave)]);
    // What an ordinary delivery takes on this machine right now, so that the bound below
    // holds on a starved CI machine as well as on a quiet one.
    let mut baseline = Duration::ZERO;
    for i in 0..3 {
        let started = Instant::now();
        let r = deliver(
            &server,
            "s@example.org",
            &["bob@example.com"],
            &message("bob@example.com", &format!("before {i}"), ""),
        );
        assert_eq!(r[0].1, 250);
        baseline = baseline.max(started.elapsed());
    }
    let bound = Duration::from_secs(3).max(baseline * 10);
    let subject = format!("{}!", "a".repeat(60));
    let hostile = {
        let lmtp = server.lmtp;
        let msg = message("dave@example.com", &subject, "");
        std::thread::spawn(move || {
            let started = Instant::now();
            for _ in 0..5 {
                raw_lmtp(lmtp, "dave@example.com", &msg);
            }
            started.elapsed()
        })
    };
    let mut worst = Duration::ZERO;
    for i in 0..5 {
        let started = Instant::now();
        let r = deliver(
            &server,
            "s@example.org",
            &["bob@example.com"],
            &message("bob@example.com", &format!("ordinary {i}"), ""),
        );
        assert_eq!(r[0].1, 250);
        worst = worst.max(started.elapsed());
    }
    hostile.join().unwrap();
    assert!(
        worst < bound,
        "a delivery to another user took {worst:?} (before the hostile one: {baseline:?})"
    );
    let dave = mailbox_contents(&server, "dave");
    assert_eq!(dave.len(), 5, "{dave:?}");
    assert!(dave.iter().all(|l| l.starts_with("INBOX||")), "{dave:?}");
    let log = server.log_text();
    assert!(
        log.contains("Sieve: script error") && log.contains("past the limit of 20000 steps"),
        "the step limit stopped the script"
    );
}

/// One LMTP transaction over a raw socket (the hostile sender, in a thread of its own).
fn raw_lmtp(addr: std::net::SocketAddr, rcpt: &str, msg: &str) {
    let conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut out = conn.try_clone().unwrap();
    let mut input = BufReader::new(conn);
    let mut line = String::new();
    let mut expect = |input: &mut BufReader<TcpStream>, code: &str| loop {
        line.clear();
        input.read_line(&mut line).unwrap();
        assert!(line.starts_with(code), "{line}");
        if line.as_bytes().get(3) == Some(&b' ') {
            break;
        }
    };
    expect(&mut input, "220");
    out.write_all(b"LHLO t\r\n").unwrap();
    expect(&mut input, "250");
    out.write_all(format!("MAIL FROM:<s@example.org>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n").as_bytes())
        .unwrap();
    expect(&mut input, "250");
    expect(&mut input, "250");
    expect(&mut input, "354");
    out.write_all(msg.as_bytes()).unwrap();
    out.write_all(b".\r\nQUIT\r\n").unwrap();
    expect(&mut input, "250");
}
