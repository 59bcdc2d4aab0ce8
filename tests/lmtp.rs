//! End-to-end LMTP delivery against the real server: pipelined transactions to users on
//! several executors, unknown users, quota, the size limit, +detail folders, an MTA that
//! hangs up in the middle of DATA, and IDLE sessions that see the new mail at once.

mod common;

use common::{Client, Server};

const USERS: &str = "alice:{PLAIN}pw\nbob:{PLAIN}pw\ncarol:{PLAIN}pw\ndave:{PLAIN}pw\n\
                     erin@example.com:{PLAIN}pw\nfull:{PLAIN}pw\n";

fn login(server: &Server, user: &str) -> Client {
    let mut c = server.connect();
    let ok = c.command("l", &format!("LOGIN {user} pw"));
    assert!(ok.last().unwrap().starts_with("l OK"), "{ok:?}");
    c
}

/// The full text of message `n` in `mailbox`, from an IMAP FETCH BODY.PEEK[].
fn fetch_body(c: &mut Client, mailbox: &str, n: u32) -> String {
    let sel = c.command("s", &format!("EXAMINE {mailbox}"));
    assert!(sel.last().unwrap().starts_with("s OK"), "{sel:?}");
    let lines = c.command("f", &format!("FETCH {n} BODY.PEEK[]"));
    assert!(lines.last().unwrap().starts_with("f OK"), "{lines:?}");
    // Literal lines between the `{size}` line and the closing `)`.
    lines[1..lines.len() - 2].join("\r\n") + "\r\n"
}

fn exists(c: &mut Client, mailbox: &str) -> u32 {
    let st = c.command("st", &format!("STATUS {mailbox} (MESSAGES)"));
    let line = st
        .iter()
        .find(|l| l.starts_with("* STATUS"))
        .expect("STATUS");
    let n = line
        .rsplit("MESSAGES ")
        .next()
        .unwrap()
        .trim_end_matches(')');
    n.parse().unwrap()
}

/// Reads `n` reply lines.
fn replies(c: &mut Client, n: usize) -> Vec<String> {
    (0..n).map(|_| c.line()).collect()
}

const MESSAGE: &str = "From: sender@example.org\r\nTo: many@example.com\r\nSubject: pipelined\r\n\r\nfirst line\r\n..a line that began with a dot\r\nlast line\r\n";

#[test]
fn pipelined_delivery_to_users_on_several_executors() {
    let server = Server::start(4, "", "", USERS);

    // An IDLE session on bob's INBOX, opened before the mail arrives.
    let mut idler = login(&server, "bob");
    let sel = idler.command("s", "SELECT INBOX");
    assert!(sel.contains(&"* 0 EXISTS".to_string()), "{sel:?}");
    idler.send("i IDLE\r\n");
    assert!(idler.line().starts_with("+ "));

    // The whole transaction in one write (PIPELINING), one recipient unknown.
    let mut lmtp = server.lmtp();
    lmtp.send(
        "MAIL FROM:<sender@example.org> SIZE=200\r\n\
         RCPT TO:<alice@example.com>\r\n\
         RCPT TO:<bob>\r\n\
         RCPT TO:<nobody@example.com>\r\n\
         RCPT TO:<carol@example.com>\r\n\
         RCPT TO:<dave@example.com>\r\n\
         RCPT TO:<erin@example.com>\r\n\
         DATA\r\n",
    );
    let r = replies(&mut lmtp, 8);
    assert!(r[0].starts_with("250 2.1.0"), "{r:?}");
    assert!(
        r[1].starts_with("250 2.1.5") && r[2].starts_with("250 2.1.5"),
        "{r:?}"
    );
    assert!(r[3].starts_with("550 5.1.1 <nobody@example.com>"), "{r:?}");
    assert!(r[4..7].iter().all(|l| l.starts_with("250 2.1.5")), "{r:?}");
    assert!(r[7].starts_with("354 "), "{r:?}");
    lmtp.send(MESSAGE);
    lmtp.send(".\r\n");
    // One reply per accepted recipient, in RCPT order.
    let done = replies(&mut lmtp, 5);
    let expect = [
        "alice@example.com",
        "bob",
        "carol@example.com",
        "dave@example.com",
        "erin@example.com",
    ];
    for (line, rcpt) in done.iter().zip(expect) {
        assert!(line.starts_with(&format!("250 2.0.0 <{rcpt}>")), "{done:?}");
    }
    lmtp.send("QUIT\r\n");
    assert!(lmtp.line().starts_with("221 "));

    // The idling session hears about it without asking.
    assert_eq!(idler.line(), "* 1 EXISTS");
    idler.send("DONE\r\n");
    assert!(idler.until_tagged("i").last().unwrap().starts_with("i OK"));

    let unstuffed = MESSAGE.replace("\r\n..a line", "\r\n.a line");
    for (user, rcpt) in [
        ("alice", "alice@example.com"),
        ("bob", "bob"),
        ("carol", "carol@example.com"),
        ("dave", "dave@example.com"),
        ("erin@example.com", "erin@example.com"),
    ] {
        let mut c = login(&server, user);
        let body = fetch_body(&mut c, "INBOX", 1);
        let expected =
            format!("Return-Path: <sender@example.org>\r\nDelivered-To: {rcpt}\r\n{unstuffed}");
        assert_eq!(body, expected, "message of {user}");
    }
}

#[test]
fn detail_folder_size_limit_quota_and_broken_clients() {
    let mut server = Server::start_with_lmtp(
        2,
        "",
        "save_to_detail_mailbox = true\nmax_message_size = 65536\n",
        "",
        USERS,
    );
    let mut alice = login(&server, "alice");
    assert!(alice
        .command("c", "CREATE lists")
        .last()
        .unwrap()
        .starts_with("c OK"));

    // +detail: into the folder when it exists, into INBOX when it does not.
    let mut lmtp = server.lmtp();
    lmtp.send("MAIL FROM:<>\r\nRCPT TO:<alice+lists@example.com>\r\nRCPT TO:<alice+nosuch@example.com>\r\nDATA\r\n");
    let r = replies(&mut lmtp, 4);
    assert!(r[3].starts_with("354"), "{r:?}");
    lmtp.send("Subject: detail\r\n\r\nhi\r\n.\r\n");
    let r = replies(&mut lmtp, 2);
    assert!(
        r[0].starts_with("250 2.0.0") && r[0].ends_with("lists"),
        "{r:?}"
    );
    assert!(
        r[1].starts_with("250 2.0.0") && r[1].ends_with("INBOX"),
        "{r:?}"
    );
    assert_eq!(exists(&mut alice, "lists"), 1);
    assert_eq!(exists(&mut alice, "INBOX"), 1);

    // Announced too big: refused at MAIL FROM.
    lmtp.send("MAIL FROM:<a@b> SIZE=100000\r\n");
    assert!(lmtp.line().starts_with("552 5.3.4"));
    // Not announced, sent anyway, far past the limit: every recipient gets 552 and the
    // session stays usable.
    lmtp.send("MAIL FROM:<a@b>\r\nRCPT TO:<alice>\r\nRCPT TO:<bob>\r\nDATA\r\n");
    let r = replies(&mut lmtp, 4);
    assert!(r[3].starts_with("354"), "{r:?}");
    let line = format!("{}\r\n", "x".repeat(998));
    let chunk = line.repeat(1000);
    for _ in 0..5 {
        lmtp.send(&chunk);
    }
    lmtp.send(".\r\nNOOP\r\n");
    let r = replies(&mut lmtp, 3);
    assert!(
        r[0].starts_with("552 5.3.4") && r[1].starts_with("552 5.3.4"),
        "{r:?}"
    );
    assert!(r[2].starts_with("250"), "{r:?}");
    assert_eq!(
        exists(&mut alice, "INBOX"),
        1,
        "nothing of the big message stored"
    );

    // Commands out of order and unknown ones get SMTP codes, not a hang-up.
    lmtp.send("RCPT TO:<alice>\r\nDATA\r\nEHLO x\r\nFROB\r\nRSET\r\n");
    let r = replies(&mut lmtp, 5);
    assert!(
        r[0].starts_with("503 5.5.1") && r[1].starts_with("503 5.5.1"),
        "{r:?}"
    );
    assert!(
        r[2].starts_with("500") && r[3].starts_with("500 5.5.1"),
        "{r:?}"
    );
    assert!(r[4].starts_with("250"), "{r:?}");

    // A client that hangs up in the middle of DATA delivers nothing.
    lmtp.send("MAIL FROM:<a@b>\r\nRCPT TO:<alice>\r\nDATA\r\n");
    let r = replies(&mut lmtp, 3);
    assert!(r[2].starts_with("354"), "{r:?}");
    lmtp.send("Subject: cut\r\n\r\nhalf a mess");
    drop(lmtp);
    let mut lmtp = server.lmtp();
    lmtp.send("NOOP\r\n");
    assert!(lmtp.line().starts_with("250"));
    assert_eq!(
        exists(&mut alice, "INBOX"),
        1,
        "the cut message was not stored"
    );
    drop((alice, lmtp));
    // The server notices the hang-up on its own schedule: give the log line a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !server
        .log_text()
        .contains("client stopped in the middle of DATA")
    {
        assert!(std::time::Instant::now() < deadline, "abort not reported");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        server.log_text().contains("over the size limit"),
        "size refusal not reported"
    );

    // Over quota: refused at RCPT while the other recipient still gets the mail.
    let dir = server.dir.path().to_owned();
    server.terminate();
    let config = ringmail::config::Config::load(&dir.join("ringmail.toml")).unwrap();
    ringmail::tools::offline::run(&config, &dir, "test", |store| async move {
        let mail = store.user("full").await.map_err(|e| e.to_string())?;
        let quota = ringmail::store::Quota {
            max_bytes: 10,
            max_messages: 100,
        };
        mail.set_quota("full", quota)
            .await
            .map_err(|e| e.to_string())
    })
    .unwrap();
    server.restart();
    let mut lmtp = server.lmtp();
    // With SIZE announced, the recipient is refused at RCPT; the other one still gets it.
    lmtp.send(
        "MAIL FROM:<a@b> SIZE=100\r\nRCPT TO:<full@example.com>\r\nRCPT TO:<bob>\r\nDATA\r\n",
    );
    let r = replies(&mut lmtp, 4);
    assert!(r[1].starts_with("552 5.2.2 <full@example.com>"), "{r:?}");
    assert!(r[2].starts_with("250") && r[3].starts_with("354"), "{r:?}");
    lmtp.send("Subject: q\r\n\r\nq\r\n.\r\n");
    assert!(lmtp.line().starts_with("250 2.0.0 <bob>"));
    // Without SIZE, the refusal comes after DATA, for that recipient alone.
    lmtp.send("MAIL FROM:<a@b>\r\nRCPT TO:<full@example.com>\r\nRCPT TO:<bob>\r\nDATA\r\n");
    let r = replies(&mut lmtp, 4);
    assert!(r[1].starts_with("250") && r[3].starts_with("354"), "{r:?}");
    lmtp.send("Subject: q\r\n\r\nq\r\n.\r\n");
    let r = replies(&mut lmtp, 2);
    assert!(r[0].starts_with("552 5.2.2 <full@example.com>"), "{r:?}");
    assert!(r[1].starts_with("250 2.0.0 <bob>"), "{r:?}");
    let mut full = login(&server, "full");
    assert_eq!(exists(&mut full, "INBOX"), 0);
    let mut bob = login(&server, "bob");
    assert_eq!(exists(&mut bob, "INBOX"), 2);
}

/// Whether Python can be run; under CI it must be there.
fn have_python() -> bool {
    let has_python = std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        has_python || std::env::var_os("CI").is_none(),
        "python3 missing under CI"
    );
    has_python
}

/// Opens `c`, an smtplib.LMTP connection to the port in `sys.argv[1]`, upgraded with STARTTLS
/// when `sys.argv[2]` is `starttls` (trusting the CA file in `sys.argv[3]`).
const SMTPLIB_CONNECT: &str = r#"
import smtplib, ssl, sys
port, mode, cafile = int(sys.argv[1]), sys.argv[2], sys.argv[3]
c = smtplib.LMTP('127.0.0.1', port)
if mode == 'starttls':
    c.ehlo_or_helo_if_needed()
    assert c.has_extn('starttls'), c.esmtp_features
    code, _ = c.starttls(context=ssl.create_default_context(cafile=cafile))
    assert code == 220, code
"#;

#[test]
fn python_smtplib_lmtp_client() {
    smtplib_lmtp_client("plain");
}

#[test]
fn python_smtplib_lmtp_client_over_starttls() {
    smtplib_lmtp_client("starttls");
}

/// A real LMTP client: Python's smtplib.LMTP, with a mix of valid, unknown and over-quota
/// recipients in one transaction and a dot-stuffed line.
fn smtplib_lmtp_client(mode: &str) {
    if !have_python() {
        return;
    }
    let users = "ann:{PLAIN}pw\nbob:{PLAIN}pw\nfull:{PLAIN}pw\n";
    let server = Server::start_with_lmtp(2, "", "", "[quota]\nmessages = 1\n", users);
    // `full` gets its one allowed message first.
    let script = r#"
c.sendmail('s@example.com', ['full@example.com'], 'Subject: fill\r\n\r\nx\r\n')
msg = 'Subject: py\r\n\r\n.leading dot\r\nbody\r\n'
try:
    refused = c.sendmail('s@example.com', ['ann@example.com', 'nobody@example.com', 'bob@example.com', 'full@example.com'], msg)
except smtplib.SMTPRecipientsRefused as e:
    print("all refused", e.recipients); sys.exit(1)
print(sorted((k, v[0]) for k, v in refused.items()))
c.quit()
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(format!("{SMTPLIB_CONNECT}{script}"))
        .arg(server.lmtp.port().to_string())
        .arg(mode)
        .arg(server.cert())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // smtplib reports refused recipients with their codes: unknown at RCPT (550), over quota
    // after DATA (552).
    assert!(stdout.contains("('nobody@example.com', 550)"), "{stdout}");
    assert!(stdout.contains("('full@example.com', 552)"), "{stdout}");
    let mut ann = login(&server, "ann");
    assert_eq!(exists(&mut ann, "INBOX"), 1);
    let body = fetch_body(&mut ann, "INBOX", 1);
    assert!(body.contains("\r\n.leading dot\r\nbody\r\n"), "{body}");
    let mut bob = login(&server, "bob");
    assert_eq!(exists(&mut bob, "INBOX"), 1);
}

/// Mail of real sizes (100 KB, 1 MB, 50 MB) delivered by smtplib over STARTTLS and read back by
/// imaplib over IMAPS arrives byte for byte, after the two trace headers delivery adds.
#[test]
fn large_mail_delivered_over_starttls_reads_back_over_imaps() {
    if !have_python() {
        return;
    }
    let server =
        Server::start_with_lmtp(2, "", "", common::mail::LARGE_LITERALS, "ann:{PLAIN}pw\n");
    let paths: Vec<std::path::PathBuf> = common::mail::REAL_SIZES
        .iter()
        .enumerate()
        .map(|(i, &size)| {
            let path = server.dir.path().join(format!("lmtp-{size}.eml"));
            std::fs::write(&path, common::mail::sample(size, 10 + i as u64).message).unwrap();
            path
        })
        .collect();
    let script = r#"
import imaplib
imaps_port, paths = int(sys.argv[4]), sys.argv[5:]
for path in paths:
    refused = c.sendmail('s@example.com', ['ann@example.com'], open(path, 'rb').read())
    assert refused == {}, refused
c.quit()
M = imaplib.IMAP4_SSL('127.0.0.1', imaps_port, ssl_context=ssl.create_default_context(cafile=cafile))
assert M.login('ann', 'pw')[0] == 'OK'
typ, data = M.select('INBOX')
assert data == [str(len(paths)).encode()], data
for seq, path in enumerate(paths, 1):
    sent = open(path, 'rb').read()
    typ, data = M.fetch(str(seq), '(BODY.PEEK[])')
    stored = data[0][1]
    head = b'Return-Path: <s@example.com>\r\nDelivered-To: ann@example.com\r\n'
    assert stored == head + sent, (path, len(stored), len(sent))
M.logout()
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(format!("{SMTPLIB_CONNECT}{script}"))
        .arg(server.lmtp.port().to_string())
        .arg("starttls")
        .arg(server.cert())
        .arg(server.imaps.port().to_string())
        .args(&paths)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        server.log_text()
    );
}

/// STARTTLS on LMTP (RFC 3207): offered in the LHLO reply, plaintext pipelined behind it is
/// dropped, the client must LHLO again under TLS, and it is not offered twice.
#[test]
fn starttls_restarts_the_session_under_tls() {
    let server = Server::start(1, "", "", USERS);
    let mut c = server.lmtp();
    c.send("LHLO again.example\r\n");
    let mut caps = Vec::new();
    loop {
        let line = c.line();
        let last = line.starts_with("250 ");
        caps.push(line);
        if last {
            break;
        }
    }
    assert!(caps.iter().any(|l| l == "250-STARTTLS"), "{caps:?}");
    // The RSET was sent in plaintext after STARTTLS: it must not be answered.
    c.send("STARTTLS\r\nRSET\r\n");
    assert!(c.line().starts_with("220 "), "STARTTLS accepted");
    let mut tls = c.into_tls(&server.cert());
    tls.send("MAIL FROM:<s@example.com>\r\n");
    assert!(
        tls.line().starts_with("503 "),
        "LHLO is needed again under TLS"
    );
    tls.send("LHLO again.example\r\n");
    let mut caps = Vec::new();
    loop {
        let line = tls.line();
        assert!(line.starts_with("250"), "{line}");
        let last = line.starts_with("250 ");
        caps.push(line);
        if last {
            break;
        }
    }
    assert!(!caps.iter().any(|l| l.contains("STARTTLS")), "{caps:?}");
    tls.send("STARTTLS\r\n");
    assert!(tls.line().starts_with("503 "), "no second STARTTLS");
    tls.send("MAIL FROM:<s@example.com>\r\nRCPT TO:<alice>\r\nDATA\r\n");
    assert!(tls.line().starts_with("250 "));
    assert!(tls.line().starts_with("250 "));
    assert!(tls.line().starts_with("354 "));
    tls.send("Subject: over tls\r\n\r\nhi\r\n.\r\n");
    assert!(tls.line().starts_with("250 2.0.0 <alice>"));
    let mut alice = login(&server, "alice");
    assert_eq!(exists(&mut alice, "INBOX"), 1);
}

/// The bytes of the literal that follows `label` (`BODY[] ` or `BINARY[1] ~`) in a response.
fn literal_after<'a>(response: &'a [u8], label: &str) -> &'a [u8] {
    let at = response
        .windows(label.len() + 1)
        .position(|w| w == format!("{label}{{").as_bytes())
        .unwrap_or_else(|| panic!("no {label} in {}", String::from_utf8_lossy(response)));
    let rest = &response[at + label.len() + 1..];
    let close = rest.iter().position(|&b| b == b'}').unwrap();
    let len: usize = std::str::from_utf8(&rest[..close])
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(&rest[close + 1..close + 3], b"\r\n");
    &rest[close + 3..close + 3 + len]
}

#[test]
fn a_delivered_nul_goes_out_as_0x80_except_in_binary() {
    let server = Server::start(1, "", "", USERS);
    // LMTP takes any octet; this MTA passes on a NUL in a header and one in the body.
    let mut lmtp = server.lmtp();
    lmtp.send("MAIL FROM:<s@example.org>\r\nRCPT TO:<alice>\r\nDATA\r\n");
    let r = replies(&mut lmtp, 3);
    assert!(r[2].starts_with("354 "), "{r:?}");
    lmtp.send("Subject: nul\r\nX-Odd: a\0b\r\n\r\nbefore\0after\r\n.\r\n");
    assert!(lmtp.line().starts_with("250 "));

    let mut c = login(&server, "alice");
    c.command("s", "SELECT INBOX");
    c.send("f FETCH 1 (BODY.PEEK[] BODY.PEEK[HEADER] BODY.PEEK[TEXT] BINARY.PEEK[1])\r\n");
    let response = c.until_tagged_bytes("f");
    let body = literal_after(&response, "BODY[] ");
    let header = literal_after(&response, "BODY[HEADER] ");
    let text = literal_after(&response, "BODY[TEXT] ");
    // RFC 3516: BINARY sends the exact bytes, as a literal8 since they hold NUL.
    let binary = literal_after(&response, "BINARY[1] ~");
    assert_eq!(binary, b"before\0after\r\n");
    // A literal must not hold NUL (RFC 3501 section 9): each NUL is 0x80, the length kept.
    assert_eq!(text, b"before\x80after\r\n");
    assert!(header.ends_with(b"X-Odd: a\x80b\r\n\r\n"), "{header:?}");
    assert_eq!(body, [header, text].concat());
    assert!(response.ends_with(b"f OK FETCH completed\r\n"));
    // RFC822 is BODY[] by another name.
    c.send("r FETCH 1 RFC822\r\n");
    let response = c.until_tagged_bytes("r");
    assert_eq!(literal_after(&response, "RFC822 "), body);
}
