//! The TLS transport under the loads real clients put on it: large literals whose TLS records
//! cross the server's reads, commands pipelined behind LOGIN while the session moves to
//! another core, many large responses pipelined, and IDLE waking up with large mail waiting.

mod common;

use common::mail::{sample, LARGE_LITERALS};
use common::{Server, TlsClient};

const USERS: &str = "demo:{PLAIN}secret\n";

/// Reads a FETCH response that carries one literal and the tagged reply after it; returns
/// the literal's bytes.
fn fetch_literal(c: &mut TlsClient, tag: &str) -> Vec<u8> {
    let head = c.line();
    let size = head
        .strip_suffix('}')
        .and_then(|h| h.rsplit_once('{'))
        .and_then(|(_, n)| n.parse::<usize>().ok())
        .unwrap_or_else(|| panic!("no literal in {head:?}"));
    let data = c.bytes(size);
    assert_eq!(c.line(), ")", "after the literal of {head}");
    let done = c.until_tagged(tag);
    assert!(
        done.last().unwrap().starts_with(&format!("{tag} OK")),
        "{done:?}"
    );
    data
}

fn assert_ok(lines: &[String], tag: &str) {
    let last = lines.last().unwrap();
    assert!(last.starts_with(&format!("{tag} OK")), "{lines:?}");
}

/// rustls takes at most 16 KiB of decrypted plaintext before its reader is emptied, yet one
/// read from the socket can complete a full record and then hold another whole record and
/// more. The literals here are sent as full records alternating with small ones, so where
/// the server's reads cut them drifts over every position and that case comes up.
#[test]
fn records_that_cross_reads_are_all_taken() {
    let server = Server::start(2, "", LARGE_LITERALS, USERS);
    let mut c = server.connect_tls();
    assert_ok(&c.command("l", "LOGIN demo secret"), "l");
    let mut sent = Vec::new();
    for (i, small) in [100usize, 478, 1000].into_iter().enumerate() {
        let literal_len = 60 * (16384 + small);
        let mut message = format!("Subject: records {i}\r\n\r\n").into_bytes();
        message.resize(literal_len, b'x' + i as u8);
        let mut plain = format!("a{i} APPEND INBOX {{{literal_len}+}}\r\n").into_bytes();
        plain.extend_from_slice(&message);
        plain.extend_from_slice(b"\r\n");
        let mut pieces = Vec::new();
        let mut rest = plain.as_slice();
        for size in [16384, small].into_iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (piece, tail) = rest.split_at(size.min(rest.len()));
            pieces.push(piece);
            rest = tail;
        }
        c.send_records(&pieces);
        assert_ok(&c.until_tagged(&format!("a{i}")), &format!("a{i}"));
        sent.push(message);
    }
    assert_ok(&c.command("s", "SELECT INBOX"), "s");
    for (i, message) in sent.iter().enumerate() {
        c.send(&format!("f FETCH {} BODY.PEEK[]\r\n", i + 1));
        assert!(fetch_literal(&mut c, "f") == *message, "message {i}");
    }
}

/// A client that pipelines an APPEND with a 1 MB literal and a FETCH right behind its LOGIN,
/// in one flight, loses nothing when the session moves to the core that owns its user: the
/// TLS state, the plaintext rustls already decrypted and the bytes still in the socket all
/// go along.
#[test]
fn commands_pipelined_behind_login_survive_the_move_to_another_core() {
    let users: String = (0..8).map(|i| format!("u{i}:{{PLAIN}}pw\n")).collect();
    let server = Server::start(4, "", LARGE_LITERALS, &users);
    for i in 0..8 {
        let message = sample(1024 * 1024, i).message;
        let mut c = server.connect_tls();
        let mut flight = format!(
            "l LOGIN u{i} pw\r\na APPEND INBOX {{{}+}}\r\n",
            message.len()
        )
        .into_bytes();
        flight.extend_from_slice(&message);
        flight.extend_from_slice(b"\r\ns SELECT INBOX\r\nf FETCH 1 BODY.PEEK[]\r\n");
        c.send_bytes(&flight);
        assert_ok(&c.until_tagged("l"), "l");
        assert_ok(&c.until_tagged("a"), "a");
        assert_ok(&c.until_tagged("s"), "s");
        assert!(fetch_literal(&mut c, "f") == message, "user u{i}");
    }
    // With 4 cores and 8 users, some sessions were accepted away from their owner: the
    // path under test ran.
    assert!(
        server.log_text().contains("handing the session over"),
        "no session moved between cores"
    );
}

/// Twenty FETCHes of a 1 MB message sent without waiting: every response arrives whole and
/// in order, though the client reads nothing until all are sent.
#[test]
fn pipelined_large_responses_arrive_whole() {
    let server = Server::start(2, "", LARGE_LITERALS, USERS);
    let message = sample(1024 * 1024, 7).message;
    let mut c = server.connect_tls();
    assert_ok(&c.command("l", "LOGIN demo secret"), "l");
    c.send(&format!("a APPEND INBOX {{{}+}}\r\n", message.len()));
    c.send_bytes(&message);
    c.send("\r\n");
    assert_ok(&c.until_tagged("a"), "a");
    assert_ok(&c.command("s", "SELECT INBOX"), "s");
    let flight: String = (0..20)
        .map(|i| format!("f{i} FETCH 1 BODY.PEEK[]\r\n"))
        .collect();
    c.send(&flight);
    for i in 0..20 {
        assert!(
            fetch_literal(&mut c, &format!("f{i}")) == message,
            "response {i}"
        );
    }
}

/// An IMAPS session in IDLE hears of a 1 MB message appended over STARTTLS by another
/// session, and then downloads it whole.
#[test]
fn idle_over_tls_wakes_for_large_mail() {
    let server = Server::start(2, "", LARGE_LITERALS, USERS);
    let message = sample(1024 * 1024, 9).message;
    let mut idler = server.connect_tls();
    assert_ok(&idler.command("l", "LOGIN demo secret"), "l");
    assert_ok(&idler.command("s", "SELECT INBOX"), "s");
    idler.send("i IDLE\r\n");
    assert!(idler.line().starts_with("+ "), "IDLE continuation");

    let mut plain = server.connect();
    assert_ok(&plain.command("t", "STARTTLS"), "t");
    let mut writer = plain.into_tls(&server.cert());
    assert_ok(&writer.command("l", "LOGIN demo secret"), "l");
    writer.send(&format!("a APPEND INBOX {{{}+}}\r\n", message.len()));
    writer.send_bytes(&message);
    writer.send("\r\n");
    assert_ok(&writer.until_tagged("a"), "a");

    // The read timeout of the test client bounds this wait.
    let mut line = idler.line();
    while line.starts_with("* OK") {
        line = idler.line();
    }
    assert_eq!(line, "* 1 EXISTS");
    idler.send("DONE\r\n");
    idler.until_tagged("i");
    idler.send("f FETCH 1 BODY.PEEK[]\r\n");
    assert!(fetch_literal(&mut idler, "f") == message);
}
