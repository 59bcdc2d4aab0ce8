//! What Outlook, Apple Mail and iOS Mail need beyond the RFC minimum: string arguments sent
//! as LITERAL+ literals, IDLE kept alive through NAT with `* OK Still here`, and UID commands
//! on messages another connection of the same client appended.

mod common;

use std::time::{Duration, Instant};

use common::{Client, Server};

const USERS: &str = "user:{PLAIN}secret\n";

fn login(server: &Server) -> Client {
    let mut c = server.connect();
    let ok = c.command("l", "LOGIN user secret");
    assert!(ok.last().unwrap().starts_with("l OK"), "{ok:?}");
    c
}

/// APPENDs a small message to INBOX and returns its UID (from APPENDUID).
fn append(c: &mut Client, subject: &str) -> u32 {
    let message = format!("From: a@example.com\r\nSubject: {subject}\r\n\r\nbody\r\n");
    c.send(&format!(
        "ap APPEND INBOX {{{}+}}\r\n{message}\r\n",
        message.len()
    ));
    let tagged = c.until_tagged("ap").pop().unwrap();
    let at = tagged.find("[APPENDUID ").expect("APPENDUID") + "[APPENDUID ".len();
    let uid = tagged[at..].split([' ', ']']).nth(1).unwrap();
    uid.parse().unwrap()
}

/// The index of the first line starting with `prefix`.
fn position(lines: &[String], prefix: &str) -> usize {
    lines
        .iter()
        .position(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} in {lines:?}"))
}

#[test]
fn outlooks_literal_id_and_login_are_understood() {
    let server = Server::start(2, "", "", USERS);
    // Over implicit TLS, as Outlook connects; the exact bytes it sends.
    let mut c = server.connect_tls();
    c.send("a ID (\"name\" {7+}\r\nOutlook \"version\" {4+}\r\n16.0)\r\n");
    let id = c.until_tagged("a");
    assert!(id[0].starts_with("* ID (\"name\" \"ringmail\""), "{id:?}");
    assert_eq!(id.last().unwrap(), "a OK ID completed");
    c.send("b LOGIN {4+}\r\nuser {6+}\r\nsecret\r\n");
    let login = c.until_tagged("b");
    assert!(login.last().unwrap().starts_with("b OK"), "{login:?}");
    // After IMAP4rev2 is on (and on the executor owning the user) the same again.
    let enabled = c.command("c", "ENABLE IMAP4rev2");
    assert!(
        enabled.contains(&"* ENABLED IMAP4rev2".to_string()),
        "{enabled:?}"
    );
    c.send("d ID (\"name\" {12+}\r\nOutlook-iOS/ \"version\" {4}\r\n");
    assert!(
        c.line().starts_with("+ "),
        "continuation for the synchronizing literal"
    );
    c.send("16.0 \"os\" NIL)\r\n");
    let id = c.until_tagged("d");
    assert_eq!(id.last().unwrap(), "d OK ID completed", "{id:?}");
}

#[test]
fn idle_sends_keepalives_at_the_configured_interval() {
    let server = Server::start(2, "idle_keepalive_secs = 1\n", "", USERS);
    let mut c = login(&server);
    c.command("s", "SELECT INBOX");
    c.send("i IDLE\r\n");
    assert_eq!(c.line(), "+ idling");
    let start = Instant::now();
    assert_eq!(c.line(), "* OK Still here");
    assert_eq!(c.line(), "* OK Still here");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(1800) && took < Duration::from_secs(10),
        "two keepalives one second apart took {took:?}"
    );
    c.send("DONE\r\n");
    let done = c.until_tagged("i");
    assert_eq!(done.last().unwrap(), "i OK IDLE terminated", "{done:?}");
}

#[test]
fn a_kept_alive_idle_outlasts_the_autologout() {
    // Keepalives every second, autologout after 3 seconds of silence: as in Dovecot, each
    // keepalive restarts the autologout, so an IDLE client (Outlook keeps one for hours) is
    // not cut.
    let server = Server::start(
        2,
        "idle_keepalive_secs = 1\n",
        "idle_timeout_auth_secs = 3\n",
        USERS,
    );
    let mut c = login(&server);
    c.command("s", "SELECT INBOX");
    c.send("i IDLE\r\n");
    assert_eq!(c.line(), "+ idling");
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        assert_eq!(c.line(), "* OK Still here");
    }
    c.send("DONE\r\n");
    let done = c.until_tagged("i");
    assert_eq!(done.last().unwrap(), "i OK IDLE terminated", "{done:?}");
}

#[test]
fn without_keepalives_idle_ends_after_the_clients_silence_unless_reissued() {
    let server = Server::start(
        2,
        "idle_keepalive_secs = 0\n",
        "idle_timeout_auth_secs = 3\n",
        USERS,
    );
    // A client that re-issues IDLE before the timeout (as RFC 9051 asks, every 29 minutes
    // for the usual 30) is not cut: 2 + 2 seconds of IDLE with a 3-second timeout.
    let mut c = login(&server);
    c.command("s", "SELECT INBOX");
    for round in 0..2 {
        c.send("i IDLE\r\n");
        assert_eq!(c.line(), "+ idling");
        std::thread::sleep(Duration::from_secs(2));
        c.send("DONE\r\n");
        let done = c.until_tagged("i");
        assert_eq!(
            done.last().unwrap(),
            "i OK IDLE terminated",
            "round {round}: {done:?}"
        );
    }
    // One that does not is logged out after 3 seconds of its own silence, and nothing is
    // sent before that.
    c.send("j IDLE\r\n");
    assert_eq!(c.line(), "+ idling");
    let start = Instant::now();
    let bye = c.line();
    let took = start.elapsed();
    assert!(bye.starts_with("* BYE Autologout"), "{bye}");
    assert!(
        took >= Duration::from_millis(2500) && took < Duration::from_secs(10),
        "autologout after {took:?}"
    );
    assert!(c.is_closed());
}

#[test]
fn uid_commands_act_on_messages_another_connection_appended() {
    let server = Server::start(2, "", "", USERS);
    let mut a = login(&server);
    let mut b = login(&server);
    a.command("s", "SELECT INBOX");

    // UID FETCH: the new message is announced first, then fetched.
    let uid = append(&mut b, "one");
    let fetch = a.command("f", &format!("UID FETCH {uid} (FLAGS)"));
    let exists = position(&fetch, "* 1 EXISTS");
    let fetched = position(&fetch, &format!("* 1 FETCH (UID {uid} FLAGS"));
    assert!(exists < fetched, "{fetch:?}");
    assert!(fetch.last().unwrap().starts_with("f OK"), "{fetch:?}");

    // UID STORE
    let uid = append(&mut b, "two");
    let store = a.command("st", &format!("UID STORE {uid} +FLAGS (\\Flagged)"));
    let exists = position(&store, "* 2 EXISTS");
    let stored = position(&store, "* 2 FETCH (");
    assert!(exists < stored, "{store:?}");
    assert!(store[stored].contains("\\Flagged"), "{store:?}");

    // UID COPY
    let uid = append(&mut b, "three");
    let copy = a.command("c", &format!("UID COPY {uid} Archive"));
    assert!(position(&copy, "* 3 EXISTS") < copy.len() - 1, "{copy:?}");
    assert!(
        copy.last().unwrap().starts_with("c OK [COPYUID "),
        "{copy:?}"
    );

    // UID MOVE: EXISTS, then the move's own responses; the message is in Archive.
    let uid = append(&mut b, "four");
    let mv = a.command("m", &format!("UID MOVE {uid} Archive"));
    let exists = position(&mv, "* 4 EXISTS");
    let copyuid = position(&mv, "* OK [COPYUID ");
    let expunge = position(&mv, "* 4 EXPUNGE");
    assert!(exists < copyuid && copyuid < expunge, "{mv:?}");
    assert!(mv.last().unwrap().starts_with("m OK"), "{mv:?}");
    let status = b.command("st", "STATUS Archive (MESSAGES)");
    assert!(
        status.contains(&"* STATUS Archive (MESSAGES 2)".to_string()),
        "{status:?}"
    );

    // UID EXPUNGE
    let uid = append(&mut b, "five");
    a.command("d", &format!("UID STORE {uid} +FLAGS.SILENT (\\Deleted)"));
    let expunged = a.command("x", &format!("UID EXPUNGE {uid}"));
    assert!(
        expunged.contains(&"* 4 EXPUNGE".to_string()),
        "{expunged:?}"
    );
}

#[test]
fn a_uid_command_announces_new_messages_but_not_pending_expunges_first() {
    let server = Server::start(2, "", "", USERS);
    let mut a = login(&server);
    let mut b = login(&server);
    for subject in ["one", "two"] {
        append(&mut b, subject);
    }
    a.command("s", "SELECT INBOX");
    b.command("s", "SELECT INBOX");
    // B expunges message 1: pending for A. Then a message arrives.
    b.command("d", "STORE 1 +FLAGS.SILENT (\\Deleted)");
    b.command("x", "EXPUNGE");
    let uid = append(&mut b, "three");

    // A still numbers the expunged message 1, so the new one is its message 3.
    let fetch = a.command("f", &format!("UID FETCH {uid} (UID)"));
    let exists = position(&fetch, "* 3 EXISTS");
    let fetched = position(&fetch, &format!("* 3 FETCH (UID {uid})"));
    assert!(exists < fetched, "{fetch:?}");
    // The expunge is announced only after the FETCH responses (a UID command may).
    let expunge = position(&fetch, "* 1 EXPUNGE");
    assert!(fetched < expunge, "{fetch:?}");
    assert!(fetch.last().unwrap().starts_with("f OK"), "{fetch:?}");
    // And the numbering is right afterwards.
    let after = a.command("g", "FETCH 2 (UID)");
    assert!(
        after[0].starts_with(&format!("* 2 FETCH (UID {uid})")),
        "{after:?}"
    );
}
