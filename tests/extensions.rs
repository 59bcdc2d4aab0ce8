//! One end-to-end check per advertised extension not covered elsewhere (tests/mail.rs covers
//! APPEND/FETCH/STORE/EXPUNGE/IDLE/QRESYNC/QUOTA, tests/search.rs SEARCH/SORT/THREAD), with
//! exact expected responses where the server's answer is fully determined.

mod common;

use common::{Client, Server};

const USERS: &str = "demo:{PLAIN}secret\n";

fn login(server: &Server) -> Client {
    let mut c = server.connect();
    let ok = c.command("l", "LOGIN demo secret");
    assert!(ok.last().unwrap().starts_with("l OK"), "{ok:?}");
    c
}

const MSG: &str = "From: Ann <ann@example.com>\r\nSubject: ext\r\nDate: Tue, 3 Jan 2006 10:00:00 +0000\r\n\r\nHello extensions, this is the preview text.\r\n";

fn literal_plus(c: &mut Client, tag: &str, prefix: &str, msg: &str) -> Vec<String> {
    c.command(tag, &format!("{prefix} {{{}+}}\r\n{msg}", msg.len()))
}

#[test]
fn id_namespace_enable_unselect() {
    let server = Server::start(2, "", "", USERS);
    let mut c = login(&server);
    let id = c.command("i", "ID (\"name\" \"test\")");
    assert!(
        id[0].starts_with("* ID (\"name\" \"ringmail\" \"version\" "),
        "{id:?}"
    );
    assert_eq!(
        c.command("n", "NAMESPACE")[0],
        "* NAMESPACE ((\"\" \"/\")) NIL NIL"
    );
    let en = c.command("e", "ENABLE CONDSTORE X-UNKNOWN");
    assert_eq!(en[0], "* ENABLED CONDSTORE");
    c.command("s", "SELECT INBOX");
    assert_eq!(c.command("u", "UNSELECT")[0], "u OK UNSELECT completed");
    let bad = c.command("f", "FETCH 1 FLAGS");
    assert_eq!(bad[0], "f BAD No mailbox selected");
}

#[test]
fn list_extended_status_children_special_use() {
    let server = Server::start(2, "", "", USERS);
    let mut c = login(&server);
    let created = c.command("c", "CREATE Lists/Archive2 (USE (\\Archive))");
    assert!(created.last().unwrap().starts_with("c OK"), "{created:?}");
    literal_plus(&mut c, "a", "APPEND INBOX", MSG);
    // LIST-STATUS (RFC 5819) and STATUS=SIZE (RFC 8438).
    let list = c.command("l", "LIST \"\" INBOX RETURN (STATUS (MESSAGES SIZE))");
    assert_eq!(list[0], "* LIST (\\HasNoChildren) \"/\" INBOX");
    assert_eq!(
        list[1],
        format!("* STATUS INBOX (MESSAGES 1 SIZE {})", MSG.len())
    );
    // CHILDREN and the special-use attribute given at CREATE (CREATE-SPECIAL-USE).
    let list = c.command("l2", "LIST \"\" Lists*");
    assert_eq!(list[0], "* LIST (\\HasChildren) \"/\" Lists");
    assert_eq!(
        list[1],
        "* LIST (\\HasNoChildren \\Archive) \"/\" Lists/Archive2"
    );
    // LIST-EXTENDED selection and return options.
    let special = c.command("l3", "LIST (SPECIAL-USE) \"\" *");
    assert!(
        special.iter().any(|l| l.ends_with("\"/\" Sent")),
        "{special:?}"
    );
    assert!(
        !special.iter().any(|l| l.ends_with("\"/\" INBOX")),
        "{special:?}"
    );
    c.command("un", "UNSUBSCRIBE Trash");
    let subscribed = c.command("l4", "LIST (SUBSCRIBED) \"\" *");
    assert!(
        subscribed
            .iter()
            .any(|l| l == "* LIST (\\HasNoChildren \\Sent \\Subscribed) \"/\" Sent"),
        "{subscribed:?}"
    );
    assert!(
        !subscribed.iter().any(|l| l.ends_with(" Trash")),
        "{subscribed:?}"
    );
    let bad = c.command("x", "CREATE Odd (USE (\\Bogus))");
    assert!(bad.last().unwrap().starts_with("x NO [USEATTR]"), "{bad:?}");
}

#[test]
fn multiappend_binary_preview_savedate_objectid_uidplus() {
    let server = Server::start(2, "", "", USERS);
    let mut c = login(&server);
    // MULTIAPPEND: two messages, one command, consecutive UIDs.
    let two = c.command(
        "m",
        &format!(
            "APPEND INBOX (\\Seen) {{{}+}}\r\n{MSG} {{{}+}}\r\n{MSG}",
            MSG.len(),
            MSG.len()
        ),
    );
    let last = two.last().unwrap();
    assert!(
        last.starts_with("m OK [APPENDUID ") && last.contains(" 1:2] "),
        "{two:?}"
    );
    // BINARY APPEND (literal8) with a NUL byte, then BINARY fetch returns it as literal8.
    let raw = "Subject: bin\r\nContent-Transfer-Encoding: binary\r\n\r\na\0b\r\n";
    let bin = c.command("b", &format!("APPEND INBOX ~{{{}+}}\r\n{raw}", raw.len()));
    assert!(bin.last().unwrap().starts_with("b OK"), "{bin:?}");
    c.command("s", "SELECT INBOX");
    let size = c.command("z", "FETCH 3 BINARY.SIZE[1]");
    assert_eq!(size[0], "* 3 FETCH (BINARY.SIZE[1] 5)");
    let p = c.command("p", "FETCH 1 (PREVIEW)");
    assert_eq!(
        p[0],
        "* 1 FETCH (PREVIEW \"Hello extensions, this is the preview text.\")"
    );
    let sd = c.command("d", "FETCH 1 (SAVEDATE)");
    assert!(sd[0].starts_with("* 1 FETCH (SAVEDATE \""), "{sd:?}");
    // OBJECTID: copies share an EMAILID; mailboxes have a MAILBOXID in STATUS.
    let e1 = c.command("o", "FETCH 1 (EMAILID THREADID)");
    assert!(
        e1[0].contains("EMAILID (M") && e1[0].contains("THREADID NIL"),
        "{e1:?}"
    );
    let emailid = e1[0]
        .split("EMAILID (")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap()
        .to_string();
    c.command("cp", "COPY 1 Archive");
    let st = c.command("st", "STATUS Archive (MAILBOXID)");
    assert!(
        st[0].starts_with("* STATUS Archive (MAILBOXID (M"),
        "{st:?}"
    );
    c.command("s2", "SELECT Archive");
    let e2 = c.command("o2", "FETCH 1 EMAILID");
    assert_eq!(e2[0], format!("* 1 FETCH (EMAILID ({emailid}))"));
    // UIDPLUS: UID EXPUNGE removes only the named \Deleted messages.
    c.command("s3", "SELECT INBOX");
    c.command("del", "STORE 1:2 +FLAGS.SILENT (\\Deleted)");
    let x = c.command("ux", "UID EXPUNGE 2");
    assert_eq!(x[0], "* 2 EXPUNGE");
    assert_eq!(x.len(), 2, "{x:?}");
    let left = c.command("f", "UID FETCH 1:* (FLAGS)");
    assert_eq!(left[0], "* 1 FETCH (UID 1 FLAGS (\\Deleted \\Seen))");
    assert_eq!(left[1], "* 2 FETCH (UID 3 FLAGS ())");
}

#[test]
fn utf8_accept_names_and_large_attachment() {
    // A 50 MB attachment: APPEND, structure and a partial fetch of the attachment.
    let server = Server::start(2, "", "max_literal = 67108864\n", USERS);
    let mut c = login(&server);
    let en = c.command("e", "ENABLE UTF8=ACCEPT");
    assert_eq!(en[0], "* ENABLED UTF8=ACCEPT");
    assert!(c
        .command("c", "CREATE \"Größe\"")
        .last()
        .unwrap()
        .starts_with("c OK"));
    let list = c.command("l", "LIST \"\" Gr*");
    assert_eq!(list[0], "* LIST (\\HasNoChildren) \"/\" \"Größe\"");

    let line = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0\r\n";
    let lines = 50 * 1024 * 1024 / line.len();
    let mut msg = String::from(
        "From: big@example.com\r\nSubject: big\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nsee attachment\r\n--B\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n",
    );
    msg.reserve(lines * line.len() + 16);
    for _ in 0..lines {
        msg.push_str(line);
    }
    msg.push_str("--B--\r\n");
    let ok = literal_plus(&mut c, "a", "APPEND \"Größe\"", &msg);
    assert!(ok.last().unwrap().starts_with("a OK"), "{:?}", ok.last());
    c.command("s", "SELECT \"Größe\"");
    let bs = c.command("b", "FETCH 1 BODYSTRUCTURE");
    // The CRLF before the closing boundary belongs to the boundary (RFC 2046).
    let body_len = lines * line.len() - 2;
    assert!(
        bs[0].contains(&format!("\"base64\" {body_len} NIL")),
        "{}",
        &bs[0][..bs[0].len().min(400)]
    );
    let part = c.command("p", "FETCH 1 BODY.PEEK[2]<0.76>");
    assert!(part[0].ends_with("BODY[2]<0> {76}"), "{part:?}");
    assert_eq!(part[1], format!("{})", line.trim_end()));
}

/// The lines of a command's answer before the tagged one, joined back with CRLF: a FETCH
/// response with its literals as sent.
fn raw_answer(c: &mut Client, tag: &str, command: &str) -> String {
    let lines = c.command(tag, command);
    let (done, untagged) = lines.split_last().unwrap();
    assert!(done.starts_with(&format!("{tag} OK")), "{lines:?}");
    untagged.join("\r\n")
}

#[test]
fn binary_decodes_quoted_printable_and_base64() {
    let server = Server::start(1, "", "", USERS);
    let mut c = login(&server);
    // Quoted-printable as RFC 2045 section 6.7 has it: soft line breaks (some padded with
    // transport whitespace), escapes, and whitespace that transport added to line ends.
    let msg = "From: a@example.com\r\nSubject: qp\r\nMIME-Version: 1.0\r\n\
        Content-Type: multipart/mixed; boundary=\"p\"\r\n\r\n\
        --p\r\nContent-Type: text/plain; charset=us-ascii\r\n\
        Content-Transfer-Encoding: quoted-printable\r\n\r\n\
        Line one   \r\nsoft=\r\nbreak\r\ntab=09end\t\r\npadded= \t\r\nsoft\r\nkeep=20\r\na=3Db\r\n\
        --p\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n\
        AAFiaW4AYXJ5\r\n--p--\r\n";
    literal_plus(&mut c, "a", "APPEND INBOX", msg);
    c.command("s", "SELECT INBOX");
    let decoded = "Line one\r\nsoftbreak\r\ntab\tend\r\npaddedsoft\r\nkeep \r\na=b";
    assert_eq!(
        raw_answer(&mut c, "z", "FETCH 1 (BINARY.SIZE[1])"),
        format!("* 1 FETCH (BINARY.SIZE[1] {})", decoded.len())
    );
    assert_eq!(
        raw_answer(&mut c, "b", "FETCH 1 (BINARY.PEEK[1])"),
        format!("* 1 FETCH (BINARY[1] {{{}}}\r\n{decoded})", decoded.len())
    );
    // A partial counts decoded octets.
    assert_eq!(
        raw_answer(&mut c, "p", "FETCH 1 (BINARY.PEEK[1]<5.12>)"),
        format!("* 1 FETCH (BINARY[1]<5> {{12}}\r\n{})", &decoded[5..17])
    );
    assert_eq!(
        raw_answer(&mut c, "q", "FETCH 1 (BINARY.PEEK[1]<40.100>)"),
        format!(
            "* 1 FETCH (BINARY[1]<40> {{{}}}\r\n{})",
            decoded.len() - 40,
            &decoded[40..]
        )
    );
    // Base64 decodes to NULs: those go out as literal8.
    assert_eq!(
        raw_answer(&mut c, "n", "FETCH 1 (BINARY.SIZE[2] BINARY.PEEK[2])"),
        "* 1 FETCH (BINARY.SIZE[2] 9 BINARY[2] ~{9}\r\n\0\x01bin\0ary)"
    );
}

#[test]
fn literal8_binary_parts_are_stored_as_base64() {
    let server = Server::start(1, "", "", USERS);
    let mut c = login(&server);
    let msg = "From: a@example.com\r\nSubject: bin\r\nMIME-Version: 1.0\r\n\
        Content-Type: multipart/mixed; boundary=b\r\n\r\n\
        --b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n\
        \0\x01bin\0ary\r\n--b\r\nContent-Type: text/plain\r\n\r\n\r\n--b--\r\n";
    let ok = c.command("a", &format!("APPEND INBOX ~{{{}+}}\r\n{msg}", msg.len()));
    assert!(ok.last().unwrap().starts_with("a OK"), "{ok:?}");
    c.command("s", "SELECT INBOX");
    // RFC 3516 section 4.4: BODY[] could not carry the NULs, so the part is base64 now...
    let mime =
        "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n";
    assert_eq!(
        raw_answer(&mut c, "m", "FETCH 1 (BODY.PEEK[1.MIME] BODY.PEEK[1])"),
        format!(
            "* 1 FETCH (BODY[1.MIME] {{{}}}\r\n{mime} BODY[1] {{12}}\r\nAAFiaW4AYXJ5)",
            mime.len()
        )
    );
    // ... and BINARY gives back exactly what was appended.
    assert_eq!(
        raw_answer(&mut c, "b", "FETCH 1 (BINARY.SIZE[1] BINARY.PEEK[1])"),
        "* 1 FETCH (BINARY.SIZE[1] 9 BINARY[1] ~{9}\r\n\0\x01bin\0ary)"
    );
    // Empty sections are zero-length literals, as every body section is.
    assert_eq!(
        raw_answer(
            &mut c,
            "e",
            "FETCH 1 (BODY.PEEK[2] BINARY.PEEK[2] BODY.PEEK[1]<100.5> BINARY.PEEK[1]<100.5> BODY.PEEK[]<100000.10>)"
        ),
        "* 1 FETCH (BODY[2] {0}\r\n BINARY[2] {0}\r\n BODY[1]<100> {0}\r\n BINARY[1]<100> {0}\r\n BODY[]<100000> {0}\r\n)"
    );
    // A plain literal cannot hold NUL, so its "binary" part is 8-bit text and stays as sent.
    let plain = msg.replace('\0', "N");
    let ok = c.command(
        "p",
        &format!("APPEND INBOX {{{}+}}\r\n{plain}", plain.len()),
    );
    assert!(ok.last().unwrap().starts_with("p OK"), "{ok:?}");
    c.command("n", "NOOP");
    assert_eq!(
        raw_answer(&mut c, "f", "FETCH 2 (BODY.PEEK[1])"),
        "* 2 FETCH (BODY[1] {9}\r\nN\x01binNary)"
    );
}
