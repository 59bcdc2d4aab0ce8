//! End-to-end tests of the mail commands against the real server: several sessions on one
//! mailbox, IDLE, FETCH of MIME sections, and durability across a crash.

mod common;

use std::time::{Duration, Instant};

use common::{Client, Server};

const USERS: &str = "demo:{PLAIN}secret\nother:{PLAIN}pw\n";

fn login(server: &Server) -> Client {
    let mut c = server.connect();
    let ok = c.command("l", "LOGIN demo secret");
    assert!(ok.last().unwrap().starts_with("l OK"), "{ok:?}");
    c
}

/// APPENDs `message` with a synchronizing literal and returns the tagged line.
fn append(c: &mut Client, mailbox: &str, flags: &str, message: &str) -> String {
    c.send(&format!(
        "ap APPEND {mailbox} ({flags}) {{{}}}\r\n",
        message.len()
    ));
    let cont = c.line();
    assert!(cont.starts_with("+ "), "{cont}");
    c.send(message);
    c.send("\r\n");
    c.until_tagged("ap").pop().unwrap()
}

const SIMPLE: &str = "From: Alice <alice@example.com>\r\nTo: bob@example.com\r\nSubject: hello\r\nDate: Mon, 2 Jan 2006 15:04:05 -0700\r\nMessage-ID: <1@example.com>\r\n\r\nHello Bob\r\n";

const MULTIPART: &str = "From: a@example.com\r\nSubject: parts\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"XX\"\r\n\r\npreamble\r\n--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nfirst part\r\n--XX\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAAECAwQ=\r\n--XX--\r\n";

#[test]
fn append_select_fetch_store_expunge() {
    let server = Server::start(2, "", "", USERS);
    let mut c = login(&server);
    let caps = common::capabilities(&c.command("c", "CAPABILITY"));
    for cap in [
        "IDLE",
        "UIDPLUS",
        "MOVE",
        "LIST-STATUS",
        "SPECIAL-USE",
        "BINARY",
    ] {
        assert!(caps.iter().any(|c| c == cap), "{cap} missing: {caps:?}");
    }
    let list = c.command("a", "LIST \"\" *");
    assert!(
        list.iter()
            .any(|l| l == "* LIST (\\HasNoChildren \\Sent) \"/\" Sent"),
        "{list:?}"
    );
    assert!(
        list.iter()
            .any(|l| l == "* LIST (\\HasNoChildren) \"/\" INBOX"),
        "{list:?}"
    );

    let ok = append(&mut c, "INBOX", "\\Flagged", SIMPLE);
    assert!(ok.starts_with("ap OK [APPENDUID "), "{ok}");
    let ok = append(&mut c, "INBOX", "", MULTIPART);
    assert!(ok.contains(" 2] APPEND completed"), "{ok}");

    let sel = c.command("s", "SELECT INBOX");
    assert!(sel.contains(&"* 2 EXISTS".to_string()), "{sel:?}");
    assert!(
        sel.last().unwrap().starts_with("s OK [READ-WRITE]"),
        "{sel:?}"
    );

    let f = c.command("f", "FETCH 1:2 (UID FLAGS RFC822.SIZE)");
    assert_eq!(
        f[0],
        format!(
            "* 1 FETCH (UID 1 FLAGS (\\Flagged \\Recent) RFC822.SIZE {})",
            SIMPLE.len()
        )
    );
    assert_eq!(
        f[1],
        format!(
            "* 2 FETCH (UID 2 FLAGS (\\Recent) RFC822.SIZE {})",
            MULTIPART.len()
        )
    );

    let env = c.command("e", "FETCH 1 ENVELOPE");
    assert!(env[0].contains("\"hello\""), "{env:?}");
    assert!(
        env[0].contains("((\"Alice\" NIL \"alice\" \"example.com\"))"),
        "{env:?}"
    );

    // Full message, byte for byte, and \Seen set by the non-PEEK fetch.
    let body = c.command("b", "FETCH 1 BODY[]");
    assert!(
        body[0].contains("FLAGS (\\Flagged \\Seen \\Recent)"),
        "{body:?}"
    );
    assert!(
        body[0].ends_with(&format!("BODY[] {{{}}}", SIMPLE.len())),
        "{body:?}"
    );
    let text = body[1..body.len() - 2].join("\r\n") + "\r\n";
    assert_eq!(text, SIMPLE);
    assert_eq!(body[body.len() - 2], ")");

    // MIME sections: part 1 text, part 2 headers, BINARY decodes base64.
    let p1 = c.command("p", "FETCH 2 (BODY.PEEK[1])");
    assert!(p1[0].ends_with("BODY[1] {10}"), "{p1:?}");
    assert_eq!(p1[1], "first part)");
    let mime = c.command("m", "FETCH 2 (BODY.PEEK[2.MIME])");
    assert!(
        mime[1].starts_with("Content-Type: application/octet-stream"),
        "{mime:?}"
    );
    let bin = c.command("n", "FETCH 2 (BINARY.SIZE[2])");
    assert!(bin[0].contains("BINARY.SIZE[2] 5"), "{bin:?}");
    let bs = c.command("t", "FETCH 2 BODYSTRUCTURE");
    assert!(bs[0].contains("\"mixed\""), "{bs:?}");
    let partial = c.command("q", "FETCH 1 BODY.PEEK[]<0.4>");
    assert!(partial[0].ends_with("BODY[]<0> {4}"), "{partial:?}");
    assert_eq!(partial[1], "From)");

    let st = c.command("st", "STORE 2 +FLAGS (\\Deleted $Junk)");
    // $Junk is new to the mailbox: FLAGS lists it before the FETCH shows it.
    assert_eq!(
        st[0],
        "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Junk)"
    );
    assert_eq!(st[2], "* 2 FETCH (FLAGS (\\Deleted \\Recent $Junk))");
    let silent = c.command("si", "STORE 1 +FLAGS.SILENT (\\Answered)");
    assert_eq!(silent.len(), 1, "{silent:?}");
    let x = c.command("x", "EXPUNGE");
    assert_eq!(x[0], "* 2 EXPUNGE");
    assert!(x.last().unwrap().starts_with("x OK"));
    let f = c.command("g", "FETCH 1:* FLAGS");
    assert_eq!(f.len(), 2, "{f:?}");
    assert_eq!(
        f[0],
        "* 1 FETCH (FLAGS (\\Answered \\Flagged \\Seen \\Recent))"
    );
    let bad = c.command("h", "FETCH 5 FLAGS");
    assert!(bad.last().unwrap().starts_with("h BAD"), "{bad:?}");
}

#[test]
fn two_sessions_see_each_others_changes() {
    let server = Server::start(2, "", "", USERS);
    let mut a = login(&server);
    let mut b = login(&server);
    append(&mut a, "INBOX", "", SIMPLE);
    append(&mut a, "INBOX", "", SIMPLE);
    a.command("s", "SELECT INBOX");
    b.command("s", "SELECT INBOX");

    append(&mut a, "INBOX", "", SIMPLE);
    let noop = b.command("n", "NOOP");
    assert!(noop.contains(&"* 3 EXISTS".to_string()), "{noop:?}");

    a.command("st", "STORE 2 +FLAGS (\\Flagged)");
    let noop = b.command("n", "NOOP");
    assert!(
        noop.iter()
            .any(|l| l.starts_with("* 2 FETCH (UID 2 FLAGS (\\Flagged))")),
        "{noop:?}"
    );

    // An expunge by A is not announced to B during FETCH by sequence number; message 1 keeps
    // its number until B's next NOOP.
    a.command("d", "STORE 1 +FLAGS (\\Deleted)");
    a.command("x", "EXPUNGE");
    let f = b.command("f", "FETCH 3 UID");
    assert!(f.iter().all(|l| !l.contains("EXPUNGE")), "{f:?}");
    assert!(f[0].starts_with("* 3 FETCH (UID 3"), "{f:?}");
    let noop = b.command("n", "NOOP");
    assert!(noop.contains(&"* 1 EXPUNGE".to_string()), "{noop:?}");
    let f = b.command("f2", "FETCH 2 UID");
    assert!(f[0].starts_with("* 2 FETCH (UID 3"), "{f:?}");

    // MOVE announces its own expunge; COPYUID comes first.
    let mv = a.command("mv", "MOVE 1 Trash");
    assert!(mv[0].starts_with("* OK [COPYUID "), "{mv:?}");
    assert_eq!(mv[1], "* 1 EXPUNGE");
}

/// A message of about `size` bytes: lines of `x`, so no body line looks like a response.
fn big_message(n: u32, size: usize) -> String {
    let mut m = format!("From: a@example.com\r\nSubject: big {n}\r\n\r\n");
    let line = format!("{}\r\n", "x".repeat(76));
    while m.len() + line.len() <= size {
        m.push_str(&line);
    }
    m
}

#[test]
fn a_fetch_racing_an_expunge_sends_the_messages_left() {
    const COUNT: u32 = 40;
    const KEPT: u32 = 30;
    const SIZE: usize = 500 * 1024;
    let server = Server::start(2, "", "", USERS);
    let mut a = login(&server);
    let mut b = login(&server);
    let sizes: Vec<usize> = (1..=COUNT)
        .map(|n| {
            let m = big_message(n, SIZE);
            c_append_plus(&mut a, &m);
            m.len()
        })
        .collect();
    a.command("s", "SELECT INBOX");
    b.command("s", "SELECT INBOX");

    // A asks for 20 MB and reads only the first line: the server sends what the socket
    // takes (a few MB) and then waits inside the FETCH, long before message 31.
    a.send("f FETCH 1:* (UID BODY.PEEK[])\r\n");
    let mut first = Some(a.line());
    // Meanwhile B expunges messages 31 to 40.
    let st = b.command(
        "d",
        &format!("UID STORE {}:* +FLAGS.SILENT (\\Deleted)", KEPT + 1),
    );
    assert!(st.last().unwrap().starts_with("d OK"), "{st:?}");
    let x = b.command("x", "EXPUNGE");
    assert!(x.last().unwrap().starts_with("x OK"), "{x:?}");

    // A gets every message that is left, each whole, and an OK that says some were not.
    for n in 1..=KEPT {
        let head = first.take().unwrap_or_else(|| a.line());
        let size = sizes[n as usize - 1];
        assert_eq!(head, format!("* {n} FETCH (UID {n} BODY[] {{{size}}}"));
        let mut got = 0;
        while got < size {
            got += a.line().len() + 2;
        }
        assert_eq!(got, size, "message {n}");
        assert_eq!(a.line(), ")", "message {n}");
    }
    let done = a.until_tagged("f");
    assert_eq!(
        done,
        vec!["f OK [EXPUNGEISSUED] Some messages were already expunged.".to_string()]
    );
    // The session goes on: the expunges are announced at the next command that allows them.
    let noop = a.command("n", "NOOP");
    let expunges = noop.iter().filter(|l| l.ends_with(" EXPUNGE")).count();
    assert_eq!(expunges, (COUNT - KEPT) as usize, "{noop:?}");
    let f = a.command("g", "FETCH 1:* (UID RFC822.SIZE)");
    assert_eq!(f.len(), KEPT as usize + 1, "{f:?}");
    assert_eq!(f.last().unwrap(), "g OK FETCH completed");
}

/// APPENDs `message` to INBOX with a non-synchronizing literal (LITERAL+).
fn c_append_plus(c: &mut Client, message: &str) {
    c.send(&format!("ap APPEND INBOX {{{}+}}\r\n", message.len()));
    c.send(message);
    c.send("\r\n");
    let ok = c.until_tagged("ap");
    assert!(ok.last().unwrap().starts_with("ap OK"), "{ok:?}");
}

#[test]
fn commands_on_messages_another_session_expunged() {
    let server = Server::start(2, "", "", USERS);
    let mut a = login(&server);
    let mut b = login(&server);
    for _ in 0..3 {
        append(&mut a, "INBOX", "", SIMPLE);
    }
    a.command("s", "SELECT INBOX");
    b.command("s", "SELECT INBOX");
    // B expunges message 2; A is not told until a command that allows it.
    b.command("d", "STORE 2 +FLAGS.SILENT (\\Deleted)");
    b.command("x", "EXPUNGE");

    // FETCH, STORE, SEARCH and SORT answer for the messages left; the answers that may lack
    // one say so (RFC 5530 EXPUNGEISSUED), as Dovecot answers.
    let f = a.command("f", "FETCH 1:3 (UID FLAGS)");
    assert_eq!(
        f,
        vec![
            "* 1 FETCH (UID 1 FLAGS (\\Recent))",
            "* 3 FETCH (UID 3 FLAGS (\\Recent))",
            "f OK [EXPUNGEISSUED] Some messages were already expunged.",
        ]
    );
    let st = a.command("st", "STORE 1:3 +FLAGS (\\Flagged)");
    assert_eq!(
        st,
        vec![
            "* 1 FETCH (FLAGS (\\Flagged \\Recent))",
            "* 3 FETCH (FLAGS (\\Flagged \\Recent))",
            "st OK STORE completed",
        ]
    );
    let se = a.command("se", "SEARCH BODY Bob");
    assert_eq!(
        se,
        vec!["* SEARCH 1 3", "se OK [EXPUNGEISSUED] SEARCH completed"]
    );
    let so = a.command("so", "SORT (SUBJECT) UTF-8 ALL");
    assert_eq!(
        so,
        vec!["* SORT 1 3", "so OK [EXPUNGEISSUED] SORT completed"]
    );
    let th = a.command("th", "THREAD ORDEREDSUBJECT UTF-8 ALL");
    assert_eq!(th, vec!["* THREAD (1 3)", "th OK THREAD completed"]);
    // COPY and MOVE copy nothing when one of their messages is gone. MOVE announces
    // expunges (RFC 6851), and with them the one it met.
    let gone = "NO [EXPUNGEISSUED] Some of the requested messages no longer exist.";
    let c = a.command("c", "COPY 1:3 Trash");
    assert_eq!(c, vec![format!("c {gone}")]);
    let m = a.command("m", "MOVE 1:3 Trash");
    assert_eq!(m, vec!["* 2 EXPUNGE".to_string(), format!("m {gone}")]);
    // UID COPY likewise, for the message B expunges now.
    b.command("d2", "UID STORE 3 +FLAGS.SILENT (\\Deleted)");
    b.command("x2", "EXPUNGE");
    let u = a.command("u", "UID COPY 1:3 Trash");
    assert_eq!(u, vec!["* 2 EXPUNGE".to_string(), format!("u {gone}")]);
    let trash = a.command("t", "STATUS Trash (MESSAGES)");
    assert_eq!(trash[0], "* STATUS Trash (MESSAGES 0)");
    // Once told, the session's answers are plain again.
    let se = a.command("se2", "SEARCH BODY Bob");
    assert_eq!(se, vec!["* SEARCH 1", "se2 OK SEARCH completed"]);
    let c = a.command("c2", "COPY 1 Trash");
    assert!(c.last().unwrap().starts_with("c2 OK [COPYUID "), "{c:?}");
}

#[test]
fn idle_sees_an_append_at_once() {
    let server = Server::start(2, "", "", USERS);
    let mut a = login(&server);
    let mut b = login(&server);
    b.command("s", "SELECT INBOX");
    b.send("i IDLE\r\n");
    assert_eq!(b.line(), "+ idling");
    let start = Instant::now();
    append(&mut a, "INBOX", "", SIMPLE);
    assert_eq!(b.line(), "* 1 EXISTS");
    // Not a timing test: only that it came without any command from B.
    assert!(start.elapsed() < Duration::from_secs(10));
    b.send("DONE\r\n");
    let done = b.until_tagged("i");
    assert_eq!(done.last().unwrap(), "i OK IDLE terminated");
}

#[test]
fn mailbox_management() {
    let server = Server::start(2, "", "", USERS);
    let mut c = login(&server);
    assert!(c
        .command("c1", "CREATE Work/Projects/2026")
        .last()
        .unwrap()
        .starts_with("c1 OK"));
    let dup = c.command("c2", "CREATE Work");
    assert!(
        dup.last().unwrap().starts_with("c2 NO [ALREADYEXISTS]"),
        "{dup:?}"
    );
    let list = c.command("l", "LIST \"\" Work/%");
    assert_eq!(
        list[0], "* LIST (\\HasChildren) \"/\" Work/Projects",
        "{list:?}"
    );
    assert!(c
        .command("r", "RENAME Work Job")
        .last()
        .unwrap()
        .starts_with("r OK"));
    let list = c.command("l2", "LIST \"\" *");
    assert!(
        list.iter().any(|l| l.ends_with("\"/\" Job/Projects/2026")),
        "{list:?}"
    );
    assert!(!list.iter().any(|l| l.contains("Work")), "{list:?}");
    let st = c.command("s", "STATUS Job (MESSAGES UIDNEXT UIDVALIDITY SIZE)");
    assert!(
        st[0].starts_with("* STATUS Job (MESSAGES 0 UIDNEXT 1 UIDVALIDITY "),
        "{st:?}"
    );
    let no = c.command("s2", "STATUS Nope (MESSAGES)");
    assert!(
        no.last().unwrap().starts_with("s2 NO [NONEXISTENT]"),
        "{no:?}"
    );
    let ap = c.command("a", "APPEND Nope {3+}\r\nx\r\n");
    assert!(ap.last().unwrap().starts_with("a NO [TRYCREATE]"), "{ap:?}");
    assert!(c
        .command("d", "DELETE Job/Projects/2026")
        .last()
        .unwrap()
        .starts_with("d OK"));
    let inbox = c.command("d2", "DELETE INBOX");
    assert!(inbox.last().unwrap().starts_with("d2 NO"), "{inbox:?}");
    let lsub = c.command("ls", "LSUB \"\" *");
    assert!(
        lsub.iter().any(|l| l == "* LSUB () \"/\" INBOX"),
        "{lsub:?}"
    );
    // Modified UTF-7 names for IMAP4rev1 clients.
    assert!(c
        .command("u", "CREATE &AMk-t&AOk-")
        .last()
        .unwrap()
        .starts_with("u OK"));
    let list = c.command("l3", "LIST \"\" &AMk-*");
    assert_eq!(
        list[0], "* LIST (\\HasNoChildren) \"/\" &AMk-t&AOk-",
        "{list:?}"
    );
}

#[test]
fn acknowledged_mail_survives_a_crash() {
    let mut server = Server::start(2, "", "", USERS);
    let mut c = login(&server);
    for i in 0..20 {
        let msg = format!("Subject: n{i}\r\n\r\nbody {i}\r\n");
        let ok = append(
            &mut c,
            "INBOX",
            if i % 2 == 0 { "\\Seen" } else { "" },
            &msg,
        );
        assert!(ok.starts_with("ap OK"), "{ok}");
    }
    // SIGKILL: no shutdown, no checkpoint; everything acknowledged must be in the log.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    server.child = common::spawn(server.dir.path(), &server.log);
    server.wait_greeting();
    let mut c = login(&server);
    let sel = c.command("s", "SELECT INBOX");
    assert!(sel.contains(&"* 20 EXISTS".to_string()), "{sel:?}");
    // Mail stored before the restart is not \Recent after it (see crates/imap/src/recent.rs).
    let f = c.command("f", "FETCH 7 (FLAGS BODY.PEEK[])");
    assert!(
        f[0].starts_with("* 7 FETCH (FLAGS (\\Seen) BODY[] {"),
        "{f:?}"
    );
    assert_eq!(f[1], "Subject: n6");
    assert_eq!(f[3], "body 6");
    let f = c.command("g", "FETCH 8 FLAGS");
    assert_eq!(f[0], "* 8 FETCH (FLAGS ())");
}

#[test]
fn qresync_resynchronises_a_cached_mailbox() {
    let server = Server::start(2, "", "", USERS);
    let mut a = login(&server);
    for _ in 0..4 {
        append(&mut a, "INBOX", "", SIMPLE);
    }
    let mut b = login(&server);
    let en = b.command("e", "ENABLE QRESYNC");
    assert_eq!(en[0], "* ENABLED QRESYNC");
    let sel = b.command("s", "SELECT INBOX");
    let uidvalidity: u32 = field(&sel, "UIDVALIDITY");
    let modseq: u64 = field(&sel, "HIGHESTMODSEQ");
    b.command("u", "UNSELECT");

    // While B is away, A flags message 2 and expunges message 3.
    a.command("s", "SELECT INBOX");
    a.command("f", "STORE 2 +FLAGS (\\Flagged)");
    a.command("d", "STORE 3 +FLAGS (\\Deleted)");
    a.command("x", "EXPUNGE");

    let sel = b.command(
        "q",
        &format!("SELECT INBOX (QRESYNC ({uidvalidity} {modseq} 1:4))"),
    );
    assert!(
        sel.contains(&"* VANISHED (EARLIER) 3".to_string()),
        "{sel:?}"
    );
    assert!(
        sel.iter()
            .any(|l| l.starts_with("* 2 FETCH (UID 2 FLAGS (\\Flagged) MODSEQ (")),
        "{sel:?}"
    );
    let since = b.command(
        "c",
        &format!("UID FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq} VANISHED)"),
    );
    assert_eq!(since[0], "* VANISHED (EARLIER) 3", "{since:?}");
    assert!(
        since
            .iter()
            .any(|l| l.contains("UID 2 FLAGS (\\Flagged)") || l.contains("FLAGS (\\Flagged)")),
        "{since:?}"
    );
    // Expunges while selected are announced as VANISHED, not EXPUNGE.
    a.command("d2", "STORE 1 +FLAGS (\\Deleted)");
    a.command("x2", "EXPUNGE");
    let noop = b.command("n", "NOOP");
    assert!(noop.contains(&"* VANISHED 1".to_string()), "{noop:?}");
}

/// The number in `* OK [NAME n]` among SELECT's responses.
fn field<T: std::str::FromStr>(lines: &[String], name: &str) -> T {
    let prefix = format!("* OK [{name} ");
    lines
        .iter()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|rest| rest.split(']').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {lines:?}"))
}

#[test]
fn quota_is_reported_and_enforced() {
    let server = Server::start(2, "", "[quota]\nstorage_mb = 1\nmessages = 3\n", USERS);
    let mut c = login(&server);
    for _ in 0..3 {
        assert!(append(&mut c, "INBOX", "", SIMPLE).starts_with("ap OK"));
    }
    let over = append(&mut c, "INBOX", "", SIMPLE);
    assert!(over.starts_with("ap NO [OVERQUOTA]"), "{over}");
    let root = c.command("q", "GETQUOTAROOT INBOX");
    assert_eq!(root[0], "* QUOTAROOT INBOX \"\"");
    let used_kb = (3 * SIMPLE.len()).div_ceil(1024);
    assert_eq!(
        root[1],
        format!("* QUOTA \"\" (STORAGE {used_kb} 1024 MESSAGE 3 3)")
    );
    let set = c.command("s", "SETQUOTA \"\" (STORAGE 10)");
    assert!(set.last().unwrap().starts_with("s NO"), "{set:?}");
}
