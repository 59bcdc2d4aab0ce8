//! End-to-end checks for what Dovecot's imaptest found: keywords announced in FLAGS before a
//! FETCH shows them, mailbox names that cannot exist, LIST-EXTENDED's RECURSIVEMATCH and
//! CHILDINFO, LSUB's implied parents, MOVE into the mailbox itself, and the HIGHESTMODSEQ of
//! a CONDSTORE-enabling FETCH.

mod common;

use common::{Client, Server};

const USERS: &str = "demo:{PLAIN}secret\n";

const MSG: &str = "From: ann@example.com\r\nSubject: kw\r\n\r\nbody\r\n";

fn login(server: &Server) -> Client {
    let mut c = server.connect();
    let ok = c.command("l", "LOGIN demo secret");
    assert!(ok.last().unwrap().starts_with("l OK"), "{ok:?}");
    c
}

fn ok(c: &mut Client, tag: &str, command: &str) -> Vec<String> {
    let lines = c.command(tag, command);
    assert!(
        lines.last().unwrap().starts_with(&format!("{tag} OK")),
        "{command}: {lines:?}"
    );
    lines
}

fn append(c: &mut Client, tag: &str, mailbox: &str, flags: &str) -> Vec<String> {
    let flags = if flags.is_empty() {
        String::new()
    } else {
        format!("{flags} ")
    };
    ok(
        c,
        tag,
        &format!("APPEND {mailbox} {flags}{{{}+}}\r\n{MSG}", MSG.len()),
    )
}

/// The position of the first line starting with `prefix`; fails the test when there is none.
fn position(lines: &[String], prefix: &str) -> usize {
    lines
        .iter()
        .position(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in {lines:?}"))
}

/// Asserts that `lines` announce `keyword` in FLAGS, and PERMANENTFLAGS with the same
/// keywords (none when `read_only`), before the first line starting with `fetch`, which
/// shows it.
fn announced_before(lines: &[String], keyword: &str, fetch: &str, read_only: bool) {
    let flags = position(lines, "* FLAGS (");
    let list = lines[flags]
        .strip_prefix("* FLAGS (")
        .and_then(|l| l.strip_suffix(')'))
        .unwrap();
    assert!(list.starts_with(SYSTEM), "{lines:?}");
    assert!(
        list.split(' ').any(|k| k == keyword),
        "FLAGS lacks {keyword}: {lines:?}"
    );
    let permanent = if read_only {
        "* OK [PERMANENTFLAGS ()] Read-only mailbox".to_string()
    } else {
        format!("* OK [PERMANENTFLAGS ({list} \\*)] Flags permitted")
    };
    assert_eq!(lines[flags + 1], permanent, "{lines:?}");
    let shown = position(lines, fetch);
    assert!(flags < shown, "FLAGS after the FETCH: {lines:?}");
    assert!(lines[shown].contains(keyword), "{lines:?}");
}

const SYSTEM: &str = "\\Answered \\Flagged \\Deleted \\Seen \\Draft";

#[test]
fn new_keywords_are_announced_before_any_fetch_shows_them() {
    let server = Server::start(2, "", "", USERS);
    let mut a = login(&server);
    let mut b = login(&server);
    append(&mut a, "a", "INBOX", "");
    let sel = ok(&mut a, "s", "SELECT INBOX");
    assert!(sel.contains(&format!("* FLAGS ({SYSTEM})")), "{sel:?}");
    ok(&mut b, "s", "SELECT INBOX");

    // This session's STORE: FLAGS and PERMANENTFLAGS first, then the FETCH.
    let st = ok(&mut a, "st", "STORE 1 +FLAGS (Work)");
    announced_before(&st, "Work", "* 1 FETCH (FLAGS (", false);
    assert_eq!(
        st[..2],
        [
            format!("* FLAGS ({SYSTEM} Work)"),
            format!("* OK [PERMANENTFLAGS ({SYSTEM} Work \\*)] Flags permitted"),
        ]
    );
    // Another session learns of it at its next command, before the FETCH.
    let noop = ok(&mut b, "n", "NOOP");
    announced_before(&noop, "Work", "* 1 FETCH (", false);
    // Known keywords are not announced again.
    let again = ok(&mut a, "st2", "STORE 1 -FLAGS (Work)");
    assert!(!again.iter().any(|l| l.starts_with("* FLAGS")), "{again:?}");

    // .SILENT hides the FETCH, not the announcement; the FLAGS response keeps the keywords
    // announced before.
    let silent = ok(&mut b, "st", "STORE 1 +FLAGS.SILENT (Later)");
    assert!(
        silent.contains(&format!("* FLAGS ({SYSTEM} Work Later)")),
        "{silent:?}"
    );
    // A FETCH in the other session before it synchronised: announced inside the FETCH.
    let fetch = ok(&mut a, "f", "FETCH 1 FLAGS");
    announced_before(&fetch, "Later", "* 1 FETCH (FLAGS (", false);

    // A new message's keywords: announced with (before) its EXISTS.
    let appended = append(&mut b, "ap", "INBOX", "(Fresh)");
    let flags = position(&appended, "* FLAGS (");
    assert!(
        appended[flags].ends_with(" Fresh)") && flags < position(&appended, "* 2 EXISTS"),
        "{appended:?}"
    );

    // NIL is an atom and a keyword like any other, as Dovecot takes it.
    let nil = ok(&mut a, "nil", "STORE 1 +FLAGS NIL");
    announced_before(&nil, "NIL", "* 1 FETCH (FLAGS (", false);

    // A read-only selection gets the new FLAGS with an empty PERMANENTFLAGS.
    let ex = ok(&mut b, "ex", "EXAMINE INBOX");
    assert!(ex.contains(&"* OK [PERMANENTFLAGS ()] Read-only mailbox".to_string()));
    ok(&mut a, "st3", "STORE 2 +FLAGS (Seen2)");
    let noop = ok(&mut b, "n2", "NOOP");
    announced_before(&noop, "Seen2", "* 2 FETCH (", true);

    // An idle session is told too, before the FETCH it is pushed.
    ok(&mut b, "s2", "SELECT INBOX");
    b.send("i IDLE\r\n");
    assert_eq!(b.line(), "+ idling");
    ok(&mut a, "st4", "STORE 1 +FLAGS (Pushed)");
    let mut pushed = Vec::new();
    while !pushed
        .last()
        .is_some_and(|l: &String| l.starts_with("* 1 FETCH"))
    {
        let line = b.line();
        assert!(!line.is_empty(), "closed while idle: {pushed:?}");
        pushed.push(line);
    }
    announced_before(&pushed, "Pushed", "* 1 FETCH (", false);
    b.send("DONE\r\n");
    assert_eq!(b.until_tagged("i").last().unwrap(), "i OK IDLE terminated");
}

/// Names that cannot be mailbox names here: not modified UTF-7, not canonical, empty, too
/// long, with a control character, or odd hierarchy.
fn odd_names() -> Vec<Vec<u8>> {
    let mut names: Vec<Vec<u8>> = [
        "!#$&'+,-.0123456789:;<=>?@^_`|[}",
        "&Jjo",
        "&",
        "&AGE-",
        "&2D0-",
        "\"\"",
        "\"/\"",
        "\"a//b\"",
        "\"/a\"",
        "\"a/\"",
        "\"a\\\"b\"",
        "%",
        "*",
        "\"%*\"",
        "INBOX/",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    for raw in [
        b"\xff\xfe".to_vec(),
        b"a\0b".to_vec(),
        b"a\r\nb".to_vec(),
        vec![b'x'; 2000],
    ] {
        let mut literal = format!("{{{}+}}\r\n", raw.len()).into_bytes();
        literal.extend_from_slice(&raw);
        names.push(literal);
    }
    names
}

/// Sends `tag command` (raw bytes) and returns the tagged status word.
fn status_of(c: &mut Client, tag: &str, command: &[u8]) -> String {
    let mut line = format!("{tag} ").into_bytes();
    line.extend_from_slice(command);
    line.extend_from_slice(b"\r\n");
    c.send_bytes(&line);
    let lines = c.until_tagged(tag);
    let last = lines.last().unwrap();
    last[tag.len() + 1..]
        .split(' ')
        .next()
        .unwrap_or("")
        .to_string()
}

#[test]
fn no_mailbox_name_or_pattern_ends_the_session() {
    let server = Server::start(2, "", "", USERS);
    let mut c = login(&server);
    // imaptest's atoms test: a name that is not modified UTF-7 cannot exist, so NO.
    let atoms = "!#$&'+,-.0123456789:;<=>?@^_`|[}";
    assert_eq!(
        status_of(&mut c, "s", format!("SELECT {atoms}").as_bytes()),
        "NO"
    );
    let list = ok(&mut c, "l", &format!("LIST \"\" {atoms}%*"));
    assert_eq!(list.len(), 1, "{list:?}");
    // The same for every command that takes a name that does not decode.
    for name in ["&Jjo", "&AGE-", "&2D0-"] {
        for command in [
            format!("SELECT {name}"),
            format!("EXAMINE {name}"),
            format!("STATUS {name} (MESSAGES)"),
            format!("CREATE {name}"),
            format!("DELETE {name}"),
            format!("RENAME {name} Other"),
            format!("RENAME INBOX {name}"),
            format!("SUBSCRIBE {name}"),
            format!("UNSUBSCRIBE {name}"),
            format!("APPEND {name} {{1+}}\r\nx"),
        ] {
            assert_eq!(
                status_of(&mut c, "t", command.as_bytes()),
                "NO",
                "{command}"
            );
        }
        ok(&mut c, "lr", &format!("LIST {name} *"));
        ok(&mut c, "lp", &format!("LIST \"\" {name}*"));
    }

    // Whatever the answer to an odd name or pattern, the session goes on.
    ok(&mut c, "c", "CREATE Src");
    let names = odd_names();
    for name in &names {
        for (prefix, suffix) in [
            ("SELECT ", ""),
            ("EXAMINE ", ""),
            ("STATUS ", " (MESSAGES UIDNEXT)"),
            ("LIST \"\" ", ""),
            ("LIST ", " *"),
            ("LIST (SUBSCRIBED RECURSIVEMATCH) \"\" ", ""),
            ("LSUB \"\" ", ""),
            ("CREATE ", ""),
            ("SUBSCRIBE ", ""),
            ("UNSUBSCRIBE ", ""),
            ("RENAME Src ", ""),
            ("DELETE ", ""),
        ] {
            let mut command = prefix.as_bytes().to_vec();
            command.extend_from_slice(name);
            command.extend_from_slice(suffix.as_bytes());
            let status = status_of(&mut c, "x", &command);
            assert!(
                ["OK", "NO", "BAD"].contains(&status.as_str()),
                "{}: {status}",
                String::from_utf8_lossy(&command)
            );
            let noop = c.command("n", "NOOP");
            assert_eq!(
                noop.last().unwrap(),
                "n OK NOOP completed",
                "after {}",
                String::from_utf8_lossy(&command)
            );
        }
        // A RENAME that worked took Src away; the next name needs it again.
        let _ = c.command("c", "CREATE Src");
    }
}

/// The untagged LIST lines of a reply.
fn listed(lines: &[String]) -> Vec<&str> {
    lines
        .iter()
        .filter(|l| l.starts_with("* LIST ") || l.starts_with("* LSUB "))
        .map(String::as_str)
        .collect()
}

#[test]
fn recursivematch_and_childinfo() {
    let server = Server::start(2, "", "", USERS);
    let mut c = login(&server);
    // RFC 5258 section 3: RECURSIVEMATCH needs a selection option other than REMOTE.
    for bad in [
        "LIST (RECURSIVEMATCH) \"\" \"\"",
        "LIST (RECURSIVEMATCH REMOTE) \"\" \"\"",
        "LIST (REMOTE RECURSIVEMATCH) \"\" %",
    ] {
        assert_eq!(status_of(&mut c, "b", bad.as_bytes()), "BAD", "{bad}");
    }
    ok(&mut c, "r", "LIST (REMOTE) \"\" %");
    ok(
        &mut c,
        "r2",
        "LIST (REMOTE SUBSCRIBED RECURSIVEMATCH) \"\" %",
    );

    for name in [
        "m/test1",
        "m/test2/test1",
        "m/test7/test7",
        "m/test8/test8",
        "m/test8/test9",
    ] {
        ok(&mut c, "c", &format!("CREATE {name}"));
        ok(&mut c, "s", &format!("SUBSCRIBE {name}"));
    }
    let sel = "LIST (SUBSCRIBED RECURSIVEMATCH) \"\"";
    // A parent whose subscribed child is listed too gets no CHILDINFO line of its own.
    let both = ok(&mut c, "l1", &format!("{sel} (m/test2 m/test2/test1)"));
    assert_eq!(
        listed(&both),
        ["* LIST (\\HasNoChildren \\Subscribed) \"/\" m/test2/test1"]
    );
    // One whose subscribed child is not listed is, with CHILDINFO.
    let parent = ok(&mut c, "l2", &format!("{sel} m/test2"));
    assert_eq!(
        listed(&parent),
        ["* LIST (\\HasChildren) \"/\" m/test2 (\"CHILDINFO\" (\"SUBSCRIBED\"))"]
    );
    // test8 has a subscribed child the pattern misses (test9); test7 has none.
    let eight = ok(&mut c, "l3", &format!("{sel} m*test8"));
    assert_eq!(
        listed(&eight),
        [
            "* LIST (\\HasChildren) \"/\" m/test8 (\"CHILDINFO\" (\"SUBSCRIBED\"))",
            "* LIST (\\HasNoChildren \\Subscribed) \"/\" m/test8/test8",
        ]
    );
    let seven = ok(&mut c, "l4", &format!("{sel} m*test7"));
    assert_eq!(
        listed(&seven),
        ["* LIST (\\HasNoChildren \\Subscribed) \"/\" m/test7/test7"]
    );
    // A subscribed parent says so as well when its subscribed children are not listed.
    ok(&mut c, "s8", "SUBSCRIBE m/test8");
    let level = ok(&mut c, "l5", &format!("{sel} m/%"));
    assert!(
        listed(&level).contains(
            &"* LIST (\\HasChildren \\Subscribed) \"/\" m/test8 (\"CHILDINFO\" (\"SUBSCRIBED\"))"
        ),
        "{level:?}"
    );
    // Without RECURSIVEMATCH there is never CHILDINFO.
    let plain = ok(&mut c, "l6", "LIST (SUBSCRIBED) \"\" m/%");
    assert_eq!(
        listed(&plain),
        [
            "* LIST (\\HasNoChildren \\Subscribed) \"/\" m/test1",
            "* LIST (\\HasChildren \\Subscribed) \"/\" m/test8",
        ]
    );
}

#[test]
fn lsub_percent_lists_parents_of_subscribed_children_as_noselect() {
    let server = Server::start(2, "", "", USERS);
    let mut c = login(&server);
    for name in ["p/sub", "p/deep/er/sub", "p/plain/x"] {
        ok(&mut c, "c", &format!("CREATE {name}"));
    }
    ok(&mut c, "s1", "SUBSCRIBE p/sub");
    ok(&mut c, "s2", "SUBSCRIBE p/deep/er/sub");
    // RFC 3501 section 6.3.9: `p/deep` exists but is listed only for its subscribed
    // descendant, so \Noselect; `p/plain` has no subscribed descendant.
    let level = ok(&mut c, "l", "LSUB \"\" p/%");
    assert_eq!(
        listed(&level),
        ["* LSUB (\\Noselect) \"/\" p/deep", "* LSUB () \"/\" p/sub",]
    );
    let top = ok(&mut c, "l2", "LSUB \"\" %");
    assert!(
        listed(&top).contains(&"* LSUB (\\Noselect) \"/\" p"),
        "{top:?}"
    );
    // `*` reaches the subscribed names themselves: no parent is implied.
    let all = ok(&mut c, "l3", "LSUB \"\" p*");
    assert_eq!(
        listed(&all),
        ["* LSUB () \"/\" p/deep/er/sub", "* LSUB () \"/\" p/sub",]
    );
    // Nor without a wildcard.
    let exact = ok(&mut c, "l4", "LSUB \"\" p/deep");
    assert!(listed(&exact).is_empty(), "{exact:?}");
    ok(&mut c, "u", "UNSUBSCRIBE p/deep/er/sub");
    let gone = ok(&mut c, "l5", "LSUB \"\" p/%");
    assert_eq!(listed(&gone), ["* LSUB () \"/\" p/sub"]);
}

#[test]
fn move_into_the_selected_mailbox_itself() {
    let server = Server::start(2, "", "", USERS);
    let mut c = login(&server);
    append(&mut c, "a1", "INBOX", "(\\Flagged Kept)");
    append(&mut c, "a2", "INBOX", "");
    let sel = ok(&mut c, "s", "SELECT INBOX");
    let validity = sel
        .iter()
        .find_map(|l| l.strip_prefix("* OK [UIDVALIDITY "))
        .and_then(|rest| rest.split(']').next())
        .unwrap()
        .to_string();
    let mv = ok(&mut c, "m", "MOVE 1 INBOX");
    assert_eq!(
        mv[..3],
        [
            format!("* OK [COPYUID {validity} 1 3] Moved"),
            "* 1 EXPUNGE".to_string(),
            "* 2 EXISTS".to_string(),
        ],
        "{mv:?}"
    );
    let umv = ok(&mut c, "u", "UID MOVE 2 INBOX");
    assert!(
        umv[0] == format!("* OK [COPYUID {validity} 2 4] Moved") && umv[1] == "* 1 EXPUNGE",
        "{umv:?}"
    );
    // The messages live on under their new UIDs, flags and keywords kept.
    let f = ok(&mut c, "f", "UID FETCH 1:* (FLAGS)");
    assert!(
        f[0].starts_with("* 1 FETCH (UID 3 FLAGS (\\Flagged"),
        "{f:?}"
    );
    assert!(f[0].contains("Kept"), "{f:?}");
    assert!(f[1].starts_with("* 2 FETCH (UID 4 FLAGS ("), "{f:?}");
    let st = ok(&mut c, "st", "STATUS INBOX (MESSAGES UIDNEXT)");
    assert_eq!(st[0], "* STATUS INBOX (MESSAGES 2 UIDNEXT 5)");
}

#[test]
fn condstore_enabling_fetch_reports_highestmodseq_once() {
    let server = Server::start(2, "", "", USERS);
    let mut c = login(&server);
    append(&mut c, "a", "INBOX", "");
    let sel = ok(&mut c, "s", "SELECT INBOX");
    let highest = sel
        .iter()
        .find(|l| l.starts_with("* OK [HIGHESTMODSEQ "))
        .unwrap()
        .clone();
    // RFC 7162 section 3.1: the first CONDSTORE enabling command while the mailbox is
    // selected reports its HIGHESTMODSEQ, before the FETCH.
    let first = ok(&mut c, "f", "FETCH 1 MODSEQ");
    assert_eq!(first[0], highest, "{first:?}");
    assert!(first[1].starts_with("* 1 FETCH (MODSEQ ("), "{first:?}");
    let second = ok(&mut c, "f2", "FETCH 1 MODSEQ");
    assert!(
        !second.iter().any(|l| l.contains("HIGHESTMODSEQ")),
        "{second:?}"
    );
    // Once on, CONDSTORE stays on for the session: the next selection reports it itself.
    ok(&mut c, "s2", "SELECT INBOX");
    let third = ok(&mut c, "f3", "FETCH 1 (FLAGS MODSEQ)");
    assert!(
        !third.iter().any(|l| l.contains("HIGHESTMODSEQ")),
        "{third:?}"
    );

    // STORE UNCHANGEDSINCE is such a command too.
    let mut d = login(&server);
    let sel = ok(&mut d, "s", "SELECT INBOX");
    let highest = sel
        .iter()
        .find(|l| l.starts_with("* OK [HIGHESTMODSEQ "))
        .unwrap()
        .clone();
    let st = ok(
        &mut d,
        "st",
        "STORE 1 (UNCHANGEDSINCE 1000) +FLAGS (\\Seen)",
    );
    assert_eq!(st[0], highest, "{st:?}");
    assert!(st[1].contains("MODSEQ ("), "{st:?}");
}
