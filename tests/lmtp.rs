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

#[test]
fn python_smtplib_lmtp_client() {
    // A real LMTP client: Python's smtplib.LMTP, with a mix of valid, unknown and over-quota
    // recipients in one transaction and a dot-stuffed line.
    let has_python = std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_python {
        assert!(std::env::var_os("CI").is_none(), "python3 missing under CI");
        return;
    }
    let users = "ann:{PLAIN}pw\nbob:{PLAIN}pw\nfull:{PLAIN}pw\n";
    let server = Server::start_with_lmtp(2, "", "", "[quota]\nmessages = 1\n", users);
    // `full` gets its one allowed message first.
    let script = r#"
import smtplib, sys
port = int(sys.argv[1])
c = smtplib.LMTP('127.0.0.1', port)
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
        .arg(script)
        .arg(server.lmtp.port().to_string())
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
