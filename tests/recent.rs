//! End-to-end tests of `\Recent` (RFC 3501 section 2.3.2): a message is recent for the one
//! session that first selects its mailbox read-write after it arrived; EXAMINE and STATUS
//! look without claiming; IMAP4rev2 sessions see no `\Recent` at all.

mod common;

use common::{Client, Server};

const USERS: &str = "demo:{PLAIN}secret\n";

fn login(server: &Server) -> Client {
    let mut c = server.connect();
    let ok = c.command("l", "LOGIN demo secret");
    assert!(ok.last().unwrap().starts_with("l OK"), "{ok:?}");
    c
}

fn append(c: &mut Client, mailbox: &str, subject: &str) {
    let message = format!("From: a@example.com\r\nSubject: {subject}\r\n\r\nbody\r\n");
    c.send(&format!("ap APPEND {mailbox} () {{{}}}\r\n", message.len()));
    let cont = c.line();
    assert!(cont.starts_with("+ "), "{cont}");
    c.send(&message);
    c.send("\r\n");
    let done = c.until_tagged("ap");
    assert!(done.last().unwrap().starts_with("ap OK"), "{done:?}");
}

/// Runs a command, checks it succeeded and returns its lines.
fn ok(c: &mut Client, command: &str) -> Vec<String> {
    let lines = c.command("t", command);
    assert!(
        lines.last().unwrap().starts_with("t OK"),
        "{command}: {lines:?}"
    );
    lines
}

/// The `* n RECENT` counts in `lines`.
fn recent_counts(lines: &[String]) -> Vec<u32> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("* ")?.strip_suffix(" RECENT")?.parse().ok())
        .collect()
}

/// The numbers of a `* SEARCH` answer.
fn search(c: &mut Client, keys: &str) -> String {
    let lines = ok(c, &format!("SEARCH {keys}"));
    let line = lines
        .iter()
        .find(|l| l.starts_with("* SEARCH"))
        .unwrap_or_else(|| panic!("{keys}: {lines:?}"));
    line.trim_start_matches("* SEARCH").trim().to_string()
}

/// The message numbers whose FETCH FLAGS carry `\Recent`.
fn recent_msns(c: &mut Client) -> Vec<u32> {
    ok(c, "FETCH 1:* FLAGS")
        .iter()
        .filter(|l| l.contains("FETCH (FLAGS (") && l.contains("\\Recent"))
        .filter_map(|l| l.split(' ').nth(1)?.parse().ok())
        .collect()
}

fn status_recent(c: &mut Client, mailbox: &str) -> String {
    let lines = ok(c, &format!("STATUS {mailbox} (MESSAGES RECENT)"));
    lines
        .iter()
        .find(|l| l.starts_with("* STATUS"))
        .cloned()
        .unwrap_or_default()
}

#[test]
fn first_read_write_select_claims_recent_messages() {
    // Two executors: whichever core accepts them, both sessions end up on the owner's.
    let server = Server::start(2, "", "", USERS);
    let mut a = login(&server);
    let mut b = login(&server);
    append(&mut a, "INBOX", "one");
    append(&mut a, "INBOX", "two");

    // STATUS and EXAMINE look without claiming.
    assert_eq!(
        status_recent(&mut b, "INBOX"),
        "* STATUS INBOX (MESSAGES 2 RECENT 2)"
    );
    assert_eq!(recent_counts(&ok(&mut b, "EXAMINE INBOX")), vec![2]);
    assert_eq!(recent_msns(&mut b), vec![1, 2]);
    ok(&mut b, "UNSELECT");
    assert_eq!(
        status_recent(&mut b, "INBOX"),
        "* STATUS INBOX (MESSAGES 2 RECENT 2)"
    );

    // The first SELECT gets them.
    assert_eq!(recent_counts(&ok(&mut a, "SELECT INBOX")), vec![2]);
    assert_eq!(recent_msns(&mut a), vec![1, 2]);
    assert_eq!(search(&mut a, "RECENT"), "1 2");
    ok(&mut a, "STORE 1 +FLAGS.SILENT (\\Seen)");
    assert_eq!(search(&mut a, "NEW"), "2");
    assert_eq!(search(&mut a, "OLD"), "");
    // The flag is the server's: a client cannot set or clear it.
    ok(&mut a, "STORE 2 -FLAGS.SILENT (\\Recent)");
    assert_eq!(search(&mut a, "RECENT"), "1 2");

    // They are recent for A alone.
    assert_eq!(
        status_recent(&mut b, "INBOX"),
        "* STATUS INBOX (MESSAGES 2 RECENT 0)"
    );
    assert_eq!(recent_counts(&ok(&mut b, "SELECT INBOX")), vec![0]);
    assert!(recent_msns(&mut b).is_empty());
    assert_eq!(search(&mut b, "OLD"), "1 2");
    assert_eq!(search(&mut b, "RECENT"), "");
    ok(&mut b, "UNSELECT");

    // Mail that arrives while A has the mailbox selected is recent for A.
    append(&mut b, "INBOX", "three");
    let noop = ok(&mut a, "NOOP");
    assert!(noop.iter().any(|l| l == "* 3 EXISTS"), "{noop:?}");
    assert_eq!(recent_counts(&noop), vec![3]);
    assert_eq!(recent_msns(&mut a), vec![1, 2, 3]);

    // With both selected, the first session to notice new mail gets it.
    assert_eq!(recent_counts(&ok(&mut b, "SELECT INBOX")), vec![0]);
    let mut c = login(&server);
    append(&mut c, "INBOX", "four");
    let noop = ok(&mut b, "NOOP");
    assert!(noop.iter().any(|l| l == "* 4 EXISTS"), "{noop:?}");
    assert_eq!(recent_counts(&noop), vec![1]);
    assert_eq!(search(&mut b, "RECENT"), "4");
    let noop = ok(&mut a, "NOOP");
    assert!(noop.iter().any(|l| l == "* 4 EXISTS"), "{noop:?}");
    assert_eq!(recent_counts(&noop), vec![3]);
    assert_eq!(search(&mut a, "RECENT"), "1 2 3");
    ok(&mut b, "UNSELECT");

    // Expunged recent messages are no longer counted.
    ok(&mut a, "STORE 1:2 +FLAGS.SILENT (\\Deleted)");
    let expunged = ok(&mut a, "EXPUNGE");
    assert_eq!(
        expunged.iter().filter(|l| l.ends_with(" EXPUNGE")).count(),
        2,
        "{expunged:?}"
    );
    assert_eq!(search(&mut a, "RECENT"), "1");
    // IDLE pushes RECENT with EXISTS.
    a.send("i IDLE\r\n");
    assert!(a.line().starts_with("+ "));
    append(&mut c, "INBOX", "five");
    assert_eq!(a.line(), "* 3 EXISTS");
    assert_eq!(a.line(), "* 2 RECENT");
    a.send("DONE\r\n");
    let done = a.until_tagged("i");
    assert!(done.last().unwrap().starts_with("i OK"), "{done:?}");
    assert_eq!(search(&mut a, "RECENT"), "1 3");
    assert_eq!(recent_msns(&mut a), vec![1, 3]);
    assert_eq!(
        status_recent(&mut c, "INBOX"),
        "* STATUS INBOX (MESSAGES 3 RECENT 0)"
    );
}

#[test]
fn imap4rev2_sessions_neither_see_nor_claim_recent() {
    let server = Server::start(1, "", "", USERS);
    let mut v2 = login(&server);
    ok(&mut v2, "ENABLE IMAP4rev2");
    append(&mut v2, "INBOX", "one");
    let select = ok(&mut v2, "SELECT INBOX");
    assert!(recent_counts(&select).is_empty(), "{select:?}");
    assert!(recent_msns(&mut v2).is_empty());

    // A new message while selected: EXISTS only.
    let mut v1 = login(&server);
    append(&mut v1, "INBOX", "two");
    let noop = ok(&mut v2, "NOOP");
    assert!(noop.iter().any(|l| l == "* 2 EXISTS"), "{noop:?}");
    assert!(recent_counts(&noop).is_empty(), "{noop:?}");

    // Nothing was claimed: an IMAP4rev1 client still finds both recent.
    assert_eq!(recent_counts(&ok(&mut v1, "SELECT INBOX")), vec![2]);
    assert_eq!(search(&mut v1, "RECENT"), "1 2");
}

/// A restart does not make every message recent again (every mutt user would see all mail
/// as new): what was stored before it is not recent, what arrives after it is.
#[test]
fn a_restart_keeps_old_mail_old() {
    let mut server = Server::start(1, "", "", USERS);
    let mut c = login(&server);
    append(&mut c, "INBOX", "before");
    drop(c);
    server.restart();
    let mut c = login(&server);
    let status = status_recent(&mut c, "INBOX");
    assert!(status.contains("RECENT 0"), "{status}");
    append(&mut c, "INBOX", "after");
    let status = status_recent(&mut c, "INBOX");
    assert!(status.contains("MESSAGES 2 RECENT 1"), "{status}");
    let sel = ok(&mut c, "SELECT INBOX");
    assert_eq!(recent_counts(&sel), [1], "{sel:?}");
    assert_eq!(recent_msns(&mut c), [2]);
}
