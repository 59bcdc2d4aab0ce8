//! Unit tests of the parser: one or more per grammar rule, then framing and limits.

use std::borrow::Cow;

use super::*;

/// What the reader produced, owned, for comparing across feeds.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Command(String),
    Continue,
    Reject(Rejection),
}

/// Drains the reader, rendering commands with Debug so they outlive the borrow.
fn drain(r: &mut CommandReader, out: &mut Vec<Event>) {
    loop {
        match r.next() {
            Next::Command(c) => out.push(Event::Command(format!("{c:?}"))),
            Next::Continue => out.push(Event::Continue),
            Next::Reject(rej) => out.push(Event::Reject(rej)),
            Next::NeedMore => return,
        }
    }
}

/// Feeds `input` whole and returns the events.
fn events(input: &[u8], limits: Limits) -> Vec<Event> {
    let mut r = CommandReader::new(limits);
    r.feed(input);
    let mut out = Vec::new();
    drain(&mut r, &mut out);
    out
}

/// Feeds `input` in pieces split at `cuts` and returns the events.
fn events_split(input: &[u8], cuts: &[usize], limits: Limits) -> Vec<Event> {
    let mut r = CommandReader::new(limits);
    let mut out = Vec::new();
    let mut from = 0;
    for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
        r.feed(&input[from..cut]);
        drain(&mut r, &mut out);
        from = cut;
    }
    out
}

/// Parses one command (literals allowed) and runs `check` on its body.
fn with_cmd(input: &str, check: impl FnOnce(&CommandBody<'_>)) {
    let mut r = CommandReader::new(Limits::default());
    r.feed(input.as_bytes());
    loop {
        match r.next() {
            Next::Command(c) => {
                check(&c.body);
                return;
            }
            Next::Continue => continue,
            other => panic!("{input:?}: expected a command, got {other:?}"),
        }
    }
}

/// Asserts `input` is rejected with BAD and returns the rejection.
fn bad(input: &str) -> Rejection {
    let ev = events(input.as_bytes(), Limits::default());
    match ev.as_slice() {
        [.., Event::Reject(r)] => r.clone(),
        other => panic!("{input:?}: expected a rejection, got {other:?}"),
    }
}

fn b(s: &str) -> Cow<'_, [u8]> {
    Cow::Borrowed(s.as_bytes())
}

fn mbox(s: &str) -> Mailbox<'_> {
    Mailbox(b(s))
}

fn set_ranges(s: &SequenceSet<'_>) -> Vec<(u32, u32)> {
    s.ranges().map(|r| r.resolve(100)).collect()
}

// ---- simple commands -------------------------------------------------------------------

#[test]
fn argumentless_commands_any_case() {
    let cases: [(&str, CommandBody<'_>); 10] = [
        ("a CAPABILITY\r\n", CommandBody::Capability),
        ("a noop\r\n", CommandBody::Noop),
        ("a LogOut\r\n", CommandBody::Logout),
        ("a STARTTLS\r\n", CommandBody::StartTls),
        ("a NAMESPACE\r\n", CommandBody::Namespace),
        ("a IDLE\r\n", CommandBody::Idle),
        ("a CHECK\r\n", CommandBody::Check),
        ("a CLOSE\r\n", CommandBody::Close),
        ("a UNSELECT\r\n", CommandBody::Unselect),
        ("a EXPUNGE\r\n", CommandBody::Expunge),
    ];
    for (input, want) in cases {
        with_cmd(input, |c| assert_eq!(c, &want, "{input}"));
    }
    let r = bad("a NOOP extra\r\n");
    assert_eq!(r.tag.as_deref(), Some("a"));
}

#[test]
fn tag_is_returned() {
    let mut r = CommandReader::new(Limits::default());
    r.feed(b"A0001.x NOOP\r\n");
    match r.next() {
        Next::Command(c) => assert_eq!(c.tag, "A0001.x"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn missing_tag_or_unknown_command() {
    assert_eq!(bad("NOOP\r\n").tag, None);
    assert_eq!(bad("+x NOOP\r\n").tag, None);
    let r = bad("t1 FROBNICATE\r\n");
    assert_eq!(r.tag.as_deref(), Some("t1"));
    assert_eq!(r.kind, RejectKind::Bad);
    assert_eq!(r.text, "unknown command");
    assert_eq!(bad("t2 UID EXAMINE x\r\n").text, "unknown UID command");
}

#[test]
fn login_with_atoms_quoted_and_literals() {
    with_cmd("a LOGIN alice \"pa ss\\\"w\"\r\n", |c| {
        assert_eq!(
            c,
            &CommandBody::Login {
                user: b("alice"),
                password: Cow::Owned(b"pa ss\"w".to_vec()),
            }
        )
    });
    with_cmd("a LOGIN {5}\r\nalice {3+}\r\n\"x\r\n", |c| {
        assert_eq!(
            c,
            &CommandBody::Login {
                user: b("alice"),
                password: b("\"x\r"),
            }
        )
    });
    // A master-user login as Python's imaplib sends it: the user name unquoted.
    with_cmd("a LOGIN alice*support \"pw\"\r\n", |c| {
        assert_eq!(
            c,
            &CommandBody::Login {
                user: b("alice*support"),
                password: b("pw"),
            }
        )
    });
    bad("a LOGIN alice\r\n");
    bad("a LOGIN alice \"unterminated\r\n");
    bad("a LOGIN alice \"bad\\escape\"\r\n");
}

#[test]
fn authenticate_with_and_without_initial_response() {
    with_cmd("a AUTHENTICATE PLAIN\r\n", |c| {
        assert_eq!(
            c,
            &CommandBody::Authenticate {
                mechanism: "PLAIN",
                initial: None
            }
        )
    });
    with_cmd("a AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==\r\n", |c| {
        assert_eq!(
            c,
            &CommandBody::Authenticate {
                mechanism: "PLAIN",
                initial: Some(b"\0alice\0secret".to_vec())
            }
        )
    });
    with_cmd("a AUTHENTICATE EXTERNAL =\r\n", |c| {
        assert_eq!(
            c,
            &CommandBody::Authenticate {
                mechanism: "EXTERNAL",
                initial: Some(vec![])
            }
        )
    });
    assert_eq!(
        bad("a AUTHENTICATE PLAIN !!!\r\n").text,
        "expected a base64 initial response"
    );
    assert_eq!(
        bad("a AUTHENTICATE PLAIN abc\r\n").text,
        "invalid base64 in initial response"
    );
}

#[test]
fn enable_and_id() {
    with_cmd("a ENABLE CONDSTORE UTF8=ACCEPT\r\n", |c| {
        assert_eq!(c, &CommandBody::Enable(vec!["CONDSTORE", "UTF8=ACCEPT"]))
    });
    bad("a ENABLE\r\n");
    with_cmd("a ID NIL\r\n", |c| assert_eq!(c, &CommandBody::Id(None)));
    with_cmd("a ID (\"name\" \"Thunderbird\" \"version\" NIL)\r\n", |c| {
        assert_eq!(
            c,
            &CommandBody::Id(Some(vec![
                (b("name"), Some(b("Thunderbird"))),
                (b("version"), None)
            ]))
        )
    });
    bad("a ID (\"name\")\r\n");
}

/// `template` with each `«text»` written as a quoted string, as a synchronizing literal and as
/// a non-synchronizing (LITERAL+) one.
fn string_forms(template: &str) -> [String; 3] {
    let write = |form: usize| {
        let mut out = String::new();
        let mut rest = template;
        while let Some(open) = rest.find('«') {
            out.push_str(&rest[..open]);
            let after = &rest[open + '«'.len_utf8()..];
            let close = after.find('»').expect("closed placeholder");
            let text = &after[..close];
            match form {
                0 => out.push_str(&format!("\"{text}\"")),
                1 => out.push_str(&format!("{{{}}}\r\n{text}", text.len())),
                _ => out.push_str(&format!("{{{}+}}\r\n{text}", text.len())),
            }
            rest = &after[close + '»'.len_utf8()..];
        }
        out.push_str(rest);
        out
    };
    [write(0), write(1), write(2)]
}

/// The parsed command body (Debug), fed byte by byte with LITERAL+ or LITERAL- semantics;
/// panics when the reader rejects it.
fn parsed_bytewise(input: &[u8], literal_minus: bool) -> String {
    let mut r = CommandReader::new(Limits::default());
    r.set_literal_minus(literal_minus);
    for (i, byte) in input.iter().enumerate() {
        r.feed(std::slice::from_ref(byte));
        loop {
            match r.next() {
                Next::Command(c) => {
                    assert_eq!(i + 1, input.len(), "command ended early in {input:?}");
                    return format!("{:?}", c.body);
                }
                Next::Continue => continue,
                Next::NeedMore => break,
                Next::Reject(rej) => panic!("{:?}: {rej:?}", String::from_utf8_lossy(input)),
            }
        }
    }
    panic!("{:?}: incomplete", String::from_utf8_lossy(input))
}

#[test]
fn every_string_argument_takes_every_string_form() {
    let templates = [
        "a LOGIN «user» «secret»\r\n",
        "a ID («name» «Outlook» «version» «16.0» «os» NIL)\r\n",
        "a SELECT «Drafts»\r\n",
        "a EXAMINE «a b» (CONDSTORE)\r\n",
        "a CREATE «New» (USE (\\Archive))\r\n",
        "a DELETE «Old»\r\n",
        "a RENAME «Old» «New»\r\n",
        "a SUBSCRIBE «x»\r\n",
        "a UNSUBSCRIBE «x»\r\n",
        "a LIST «» «*»\r\n",
        "a LIST (SUBSCRIBED) «» («a*» «b%») RETURN (CHILDREN)\r\n",
        "a LSUB «» «*»\r\n",
        "a STATUS «Sent» (MESSAGES UIDNEXT)\r\n",
        "a APPEND «Sent» (\\Seen) {3+}\r\nabc\r\n",
        "a UID COPY 1:3 «Archive»\r\n",
        "a MOVE 1 «Archive»\r\n",
        "a SEARCH CHARSET «UTF-8» FROM «alice» HEADER «X-Spam» «yes» SUBJECT «hi there»\r\n",
        "a UID SORT (DATE) «UTF-8» TEXT «x»\r\n",
        "a THREAD REFERENCES «UTF-8» BODY «y»\r\n",
        "a FETCH 1 (BODY.PEEK[HEADER.FIELDS («From» «To»)])\r\n",
        "a GETQUOTA «»\r\n",
        "a GETQUOTAROOT «INBOX»\r\n",
        "a SETQUOTA «» (STORAGE 10)\r\n",
    ];
    for template in templates {
        let [quoted, sync, non_sync] = string_forms(template);
        let want = parsed_bytewise(quoted.as_bytes(), false);
        assert_eq!(parsed_bytewise(sync.as_bytes(), false), want, "{sync:?}");
        assert_eq!(
            parsed_bytewise(non_sync.as_bytes(), false),
            want,
            "{non_sync:?}"
        );
        // LITERAL- (RFC 7888): small non-synchronizing literals are just as good.
        assert_eq!(
            parsed_bytewise(non_sync.as_bytes(), true),
            want,
            "{non_sync:?}"
        );
    }
}

#[test]
fn outlooks_id_and_login_with_literals() {
    // The bytes the new Outlook sends once IMAP4rev2 is offered.
    let id = parsed_bytewise(
        b"a ID (\"name\" {7+}\r\nOutlook \"version\" {4+}\r\n16.0)\r\n",
        false,
    );
    let want = CommandBody::Id(Some(vec![
        (b("name"), Some(b("Outlook"))),
        (b("version"), Some(b("16.0"))),
    ]));
    assert_eq!(id, format!("{want:?}"));
    let login = parsed_bytewise(b"b LOGIN {4+}\r\nuser {6+}\r\nsecret\r\n", false);
    let want = CommandBody::Login {
        user: b("user"),
        password: b("secret"),
    };
    assert_eq!(login, format!("{want:?}"));
    // Keys as literals, values as literals with bytes that would end a quoted string or an
    // atom, and NIL in any case.
    with_cmd("a ID ({4}\r\nname {5+}\r\na\"b)c \"os\" nil)\r\n", |c| {
        assert_eq!(
            c,
            &CommandBody::Id(Some(vec![(b("name"), Some(b("a\"b)c"))), (b("os"), None)]))
        )
    });
    // An ID string is not an atom (RFC 2971: string / nstring), and literal8 is only APPEND's.
    bad("a ID (name \"x\")\r\n");
    bad("a ID (\"name\" ~{1}\r\nx)\r\n");
}

// ---- mailboxes -------------------------------------------------------------------------

#[test]
fn inbox_is_case_normalised_other_names_are_not() {
    with_cmd("a SELECT inBox\r\n", |c| match c {
        CommandBody::Select { mailbox, params } => {
            assert!(mailbox.is_inbox());
            assert_eq!(mailbox.as_bytes(), b"INBOX");
            assert_eq!(params, &SelectParams::default());
        }
        other => panic!("{other:?}"),
    });
    with_cmd("a DELETE \"inbox.Sent\"\r\n", |c| {
        assert_eq!(c, &CommandBody::Delete(mbox("inbox.Sent")))
    });
    with_cmd("a EXAMINE \"Entw&APw-rfe\"\r\n", |c| match c {
        CommandBody::Examine { mailbox, .. } => {
            assert_eq!(decode_mutf7(mailbox.as_bytes()).as_deref(), Ok("Entwürfe"))
        }
        other => panic!("{other:?}"),
    });
}

#[test]
fn select_condstore_and_qresync() {
    with_cmd("a SELECT INBOX (CONDSTORE)\r\n", |c| match c {
        CommandBody::Select { params, .. } => assert!(params.condstore),
        other => panic!("{other:?}"),
    });
    with_cmd(
        "a SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))\r\n",
        |c| match c {
            CommandBody::Select { params, .. } => {
                let q = params.qresync.as_ref().expect("qresync");
                assert_eq!(q.uidvalidity, 67890007);
                assert_eq!(q.modseq, 20050715194045000);
                assert_eq!(
                    set_ranges(q.known_uids.as_ref().expect("known")),
                    vec![(41, 41), (43, 211), (214, 541)]
                );
                assert!(q.seq_match.is_none());
            }
            other => panic!("{other:?}"),
        },
    );
    with_cmd(
        "a EXAMINE INBOX (QRESYNC (1 2 1:100 (1,5,9 10,50,90)))\r\n",
        |c| match c {
            CommandBody::Examine { params, .. } => {
                let q = params.qresync.as_ref().expect("qresync");
                let (seqs, uids) = q.seq_match.as_ref().expect("seq match");
                assert_eq!(set_ranges(seqs), vec![(1, 1), (5, 5), (9, 9)]);
                assert_eq!(set_ranges(uids), vec![(10, 10), (50, 50), (90, 90)]);
            }
            other => panic!("{other:?}"),
        },
    );
    with_cmd("a SELECT INBOX (QRESYNC (1 2 (3 4)))\r\n", |c| match c {
        CommandBody::Select { params, .. } => {
            let q = params.qresync.as_ref().expect("qresync");
            assert!(q.known_uids.is_none());
            assert!(q.seq_match.is_some());
        }
        other => panic!("{other:?}"),
    });
    bad("a SELECT INBOX (FOO)\r\n");
    bad("a SELECT INBOX (QRESYNC (0 2))\r\n");
}

#[test]
fn create_with_special_use_and_rename_subscribe() {
    with_cmd("a CREATE Drafts (USE (\\Drafts \\Sent))\r\n", |c| {
        assert_eq!(
            c,
            &CommandBody::Create {
                mailbox: mbox("Drafts"),
                special_use: vec!["\\Drafts", "\\Sent"]
            }
        )
    });
    with_cmd("a CREATE \"a b\"\r\n", |c| {
        assert_eq!(
            c,
            &CommandBody::Create {
                mailbox: mbox("a b"),
                special_use: vec![]
            }
        )
    });
    bad("a CREATE x (USE (Drafts))\r\n");
    with_cmd("a RENAME old {3}\r\nnew\r\n", |c| {
        assert_eq!(
            c,
            &CommandBody::Rename {
                from: mbox("old"),
                to: mbox("new")
            }
        )
    });
    with_cmd("a SUBSCRIBE x\r\n", |c| {
        assert_eq!(c, &CommandBody::Subscribe(mbox("x")))
    });
    with_cmd("a UNSUBSCRIBE x\r\n", |c| {
        assert_eq!(c, &CommandBody::Unsubscribe(mbox("x")))
    });
}

#[test]
fn list_basic_and_extended() {
    with_cmd("a LIST \"\" *\r\n", |c| {
        assert_eq!(
            c,
            &CommandBody::List {
                selection: vec![],
                reference: mbox(""),
                patterns: vec![b("*")],
                returns: vec![],
            }
        )
    });
    with_cmd("a LIST \"\" %/Sub%\r\n", |c| match c {
        CommandBody::List { patterns, .. } => assert_eq!(patterns, &vec![b("%/Sub%")]),
        other => panic!("{other:?}"),
    });
    with_cmd(
        "a LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (INBOX \"Sent*\") RETURN (CHILDREN SPECIAL-USE STATUS (MESSAGES UNSEEN SIZE))\r\n",
        |c| {
            assert_eq!(
                c,
                &CommandBody::List {
                    selection: vec![ListSelect::Subscribed, ListSelect::RecursiveMatch],
                    reference: mbox(""),
                    patterns: vec![b("INBOX"), b("Sent*")],
                    returns: vec![
                        ListReturn::Children,
                        ListReturn::SpecialUse,
                        ListReturn::Status(vec![StatusItem::Messages, StatusItem::Unseen, StatusItem::Size])
                    ],
                }
            )
        },
    );
    with_cmd("a LIST (SPECIAL-USE) \"\" *\r\n", |c| match c {
        CommandBody::List { selection, .. } => assert_eq!(selection, &vec![ListSelect::SpecialUse]),
        other => panic!("{other:?}"),
    });
    with_cmd("a LIST () \"\" * RETURN ()\r\n", |c| match c {
        CommandBody::List {
            selection, returns, ..
        } => {
            assert!(selection.is_empty() && returns.is_empty())
        }
        other => panic!("{other:?}"),
    });
    bad("a LIST (RECURSIVEMATCH) \"\" *\r\n");
    bad("a LIST (RECURSIVEMATCH REMOTE) \"\" *\r\n");
    bad("a LIST (REMOTE RECURSIVEMATCH REMOTE) \"\" *\r\n");
    with_cmd(
        "a LIST (RECURSIVEMATCH REMOTE SUBSCRIBED) \"\" *\r\n",
        |c| match c {
            CommandBody::List { selection, .. } => assert_eq!(selection.len(), 3),
            other => panic!("{other:?}"),
        },
    );
    bad("a LIST (BOGUS) \"\" *\r\n");
    with_cmd("a LSUB \"\" \"*\"\r\n", |c| {
        assert_eq!(
            c,
            &CommandBody::Lsub {
                reference: mbox(""),
                pattern: b("*")
            }
        )
    });
}

#[test]
fn status_items_all() {
    with_cmd(
        "a STATUS INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE HIGHESTMODSEQ APPENDLIMIT MAILBOXID)\r\n",
        |c| match c {
            CommandBody::Status { mailbox, items } => {
                assert!(mailbox.is_inbox());
                assert_eq!(items.len(), 10);
                assert_eq!(items[6], StatusItem::Size);
                assert_eq!(items[9], StatusItem::MailboxId);
            }
            other => panic!("{other:?}"),
        },
    );
    bad("a STATUS INBOX ()\r\n");
    bad("a STATUS INBOX (FOO)\r\n");
}

// ---- APPEND ----------------------------------------------------------------------------

#[test]
fn append_forms() {
    with_cmd("a APPEND Sent {5}\r\nhello\r\n", |c| match c {
        CommandBody::Append { mailbox, messages } => {
            assert_eq!(mailbox, &mbox("Sent"));
            assert_eq!(messages.len(), 1);
            assert_eq!(messages[0].data, b"hello");
            assert!(messages[0].flags.is_empty() && messages[0].date.is_none());
        }
        other => panic!("{other:?}"),
    });
    with_cmd(
        "a APPEND Drafts (\\Seen \\Draft $MDNSent) \" 7-Feb-1994 21:52:25 -0800\" {3+}\r\nabc\r\n",
        |c| match c {
            CommandBody::Append { messages, .. } => {
                let m = &messages[0];
                assert_eq!(
                    m.flags,
                    vec![Flag::Seen, Flag::Draft, Flag::Keyword("$MDNSent")]
                );
                let d = m.date.expect("date");
                assert_eq!((d.date.year, d.date.month, d.date.day), (1994, 2, 7));
                assert_eq!(
                    (d.hour, d.minute, d.second, d.zone_minutes),
                    (21, 52, 25, -480)
                );
            }
            other => panic!("{other:?}"),
        },
    );
    // MULTIAPPEND, literal8 with a NUL, UTF8 (literal).
    with_cmd(
        "a APPEND x (\\Seen) {2}\r\nm1 () ~{3}\r\na\0b UTF8 (~{2+}\r\nzz)\r\n",
        |c| match c {
            CommandBody::Append { messages, .. } => {
                assert_eq!(messages.len(), 3);
                assert_eq!(messages[0].data, b"m1");
                assert!(!messages[0].binary);
                assert_eq!(messages[1].data, b"a\0b");
                assert!(messages[1].binary);
                assert!(messages[2].utf8 && messages[2].binary);
                assert_eq!(messages[2].data, b"zz");
            }
            other => panic!("{other:?}"),
        },
    );
    // NUL only in literal8; quoted data is not message data.
    bad("a APPEND x {3}\r\na\0b\r\n");
    bad("a APPEND x \"hello\"\r\n");
    bad("a APPEND x\r\n");
    bad("a APPEND x \"31-Foo-2020 00:00:00 +0000\" {1}\r\nx\r\n");
}

// ---- sequence sets ---------------------------------------------------------------------

#[test]
fn sequence_sets_with_star_reversed_and_saved() {
    with_cmd("a FETCH 1:3,7,9:*,*:20,5:2 FLAGS\r\n", |c| match c {
        CommandBody::Fetch { set, .. } => {
            assert_eq!(
                set_ranges(set),
                vec![(1, 3), (7, 7), (9, 100), (20, 100), (2, 5)]
            );
            let first = set.ranges().nth(2).expect("third");
            assert_eq!(first.end, SeqNum::Star);
        }
        other => panic!("{other:?}"),
    });
    with_cmd("a UID COPY $ Trash\r\n", |c| match c {
        CommandBody::Copy { uid, set, mailbox } => {
            assert!(*uid && set.is_saved());
            assert_eq!(set.ranges().count(), 0);
            assert_eq!(mailbox, &mbox("Trash"));
        }
        other => panic!("{other:?}"),
    });
    bad("a FETCH 0 FLAGS\r\n");
    bad("a FETCH 1: FLAGS\r\n");
    bad("a FETCH 1,,2 FLAGS\r\n");
    bad("a FETCH 99999999999 FLAGS\r\n");
}

// ---- FETCH -----------------------------------------------------------------------------

#[test]
fn fetch_macros_expand() {
    with_cmd("a FETCH 1 ALL\r\n", |c| match c {
        CommandBody::Fetch { attrs, .. } => assert_eq!(
            attrs,
            &vec![
                FetchAttr::Flags,
                FetchAttr::InternalDate,
                FetchAttr::Rfc822Size,
                FetchAttr::Envelope
            ]
        ),
        other => panic!("{other:?}"),
    });
    with_cmd("a FETCH 1 fast\r\n", |c| match c {
        CommandBody::Fetch { attrs, .. } => assert_eq!(attrs.len(), 3),
        other => panic!("{other:?}"),
    });
    with_cmd("a FETCH 1 FULL\r\n", |c| match c {
        CommandBody::Fetch { attrs, .. } => assert_eq!(attrs.last(), Some(&FetchAttr::Body)),
        other => panic!("{other:?}"),
    });
    bad("a FETCH 1 (ALL)\r\n");
}

#[test]
fn fetch_simple_attributes() {
    with_cmd(
        "a UID FETCH 1:* (FLAGS UID INTERNALDATE RFC822 RFC822.SIZE RFC822.HEADER RFC822.TEXT ENVELOPE BODY BODYSTRUCTURE MODSEQ EMAILID THREADID PREVIEW SAVEDATE)\r\n",
        |c| match c {
            CommandBody::Fetch { uid, attrs, .. } => {
                assert!(*uid);
                assert_eq!(
                    attrs,
                    &vec![
                        FetchAttr::Flags,
                        FetchAttr::Uid,
                        FetchAttr::InternalDate,
                        FetchAttr::Rfc822,
                        FetchAttr::Rfc822Size,
                        FetchAttr::Rfc822Header,
                        FetchAttr::Rfc822Text,
                        FetchAttr::Envelope,
                        FetchAttr::Body,
                        FetchAttr::BodyStructure,
                        FetchAttr::ModSeq,
                        FetchAttr::EmailId,
                        FetchAttr::ThreadId,
                        FetchAttr::Preview { lazy: false },
                        FetchAttr::SaveDate,
                    ]
                );
            }
            other => panic!("{other:?}"),
        },
    );
    with_cmd("a FETCH 1 (PREVIEW (LAZY) FLAGS)\r\n", |c| match c {
        CommandBody::Fetch { attrs, .. } => {
            assert_eq!(
                attrs,
                &vec![FetchAttr::Preview { lazy: true }, FetchAttr::Flags]
            )
        }
        other => panic!("{other:?}"),
    });
    bad("a FETCH 1 (FLAGS BOGUS)\r\n");
    bad("a FETCH 1 ()\r\n");
}

#[test]
fn fetch_body_sections() {
    let section = |input: &str| -> (bool, Vec<u32>, Option<String>, Option<Partial>) {
        let mut got = None;
        with_cmd(input, |c| match c {
            CommandBody::Fetch { attrs, .. } => match &attrs[0] {
                FetchAttr::BodySection {
                    peek,
                    section,
                    partial,
                } => {
                    got = Some((
                        *peek,
                        section.part.clone(),
                        section.text.as_ref().map(|t| format!("{t:?}")),
                        *partial,
                    ))
                }
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        });
        got.expect("section")
    };
    assert_eq!(section("a FETCH 1 BODY[]\r\n"), (false, vec![], None, None));
    assert_eq!(
        section("a FETCH 1 BODY.PEEK[]<0.2048>\r\n"),
        (
            true,
            vec![],
            None,
            Some(Partial {
                offset: 0,
                length: 2048
            })
        )
    );
    assert_eq!(
        section("a FETCH 1 BODY[HEADER]\r\n").2.as_deref(),
        Some("Header")
    );
    assert_eq!(
        section("a FETCH 1 body[text]\r\n").2.as_deref(),
        Some("Text")
    );
    let s = section("a FETCH 1 BODY[1.2.3.MIME]\r\n");
    assert_eq!((s.1, s.2.as_deref()), (vec![1, 2, 3], Some("Mime")));
    let s = section("a FETCH 1 BODY[2]\r\n");
    assert_eq!((s.1, s.2), (vec![2], None));
    let s = section("a FETCH 1 BODY.PEEK[1.HEADER.FIELDS (From \"To\" {2}\r\nCc)]<10.5>\r\n");
    assert_eq!(s.1, vec![1]);
    assert!(
        s.2.as_deref()
            .is_some_and(|t| t.starts_with("HeaderFields")),
        "{s:?}"
    );
    with_cmd(
        "a FETCH 1 BODY[HEADER.FIELDS.NOT (Received)]\r\n",
        |c| match c {
            CommandBody::Fetch { attrs, .. } => assert_eq!(
                attrs[0],
                FetchAttr::BodySection {
                    peek: false,
                    section: Section {
                        part: vec![],
                        text: Some(SectionText::HeaderFieldsNot(vec![b("Received")]))
                    },
                    partial: None
                }
            ),
            other => panic!("{other:?}"),
        },
    );
    bad("a FETCH 1 BODY[MIME]\r\n");
    bad("a FETCH 1 BODY[0]\r\n");
    bad("a FETCH 1 BODY[1.]\r\n");
    bad("a FETCH 1 BODY[HEADER.FIELDS ()]\r\n");
    bad("a FETCH 1 BODY[]<0.0>\r\n");
    bad("a FETCH 1 BODY[\r\n");
}

#[test]
fn fetch_binary() {
    with_cmd(
        "a FETCH 1 (BINARY[1.2]<0.100> BINARY.PEEK[] BINARY.SIZE[3])\r\n",
        |c| match c {
            CommandBody::Fetch { attrs, .. } => assert_eq!(
                attrs,
                &vec![
                    FetchAttr::Binary {
                        peek: false,
                        part: vec![1, 2],
                        partial: Some(Partial {
                            offset: 0,
                            length: 100
                        })
                    },
                    FetchAttr::Binary {
                        peek: true,
                        part: vec![],
                        partial: None
                    },
                    FetchAttr::BinarySize { part: vec![3] },
                ]
            ),
            other => panic!("{other:?}"),
        },
    );
    bad("a FETCH 1 BINARY[HEADER]\r\n");
}

#[test]
fn fetch_modifiers_condstore_qresync() {
    with_cmd(
        "a FETCH 1:* (FLAGS) (CHANGEDSINCE 12345)\r\n",
        |c| match c {
            CommandBody::Fetch { modifiers, .. } => {
                assert_eq!(
                    modifiers,
                    &FetchModifiers {
                        changed_since: Some(12345),
                        vanished: false
                    }
                )
            }
            other => panic!("{other:?}"),
        },
    );
    with_cmd(
        "a UID FETCH 300:500 (FLAGS) (CHANGEDSINCE 12345 VANISHED)\r\n",
        |c| match c {
            CommandBody::Fetch { modifiers, .. } => assert!(modifiers.vanished),
            other => panic!("{other:?}"),
        },
    );
    // VANISHED only in UID FETCH and only with CHANGEDSINCE.
    bad("a FETCH 1 (FLAGS) (CHANGEDSINCE 1 VANISHED)\r\n");
    bad("a UID FETCH 1 (FLAGS) (VANISHED)\r\n");
}

// ---- STORE / COPY / MOVE / EXPUNGE ---------------------------------------------------

#[test]
fn store_forms() {
    with_cmd("a STORE 2:4 +FLAGS.SILENT (\\Deleted $Junk)\r\n", |c| {
        assert_eq!(
            c,
            &CommandBody::Store {
                uid: false,
                set: SequenceSet::from_validated(b"2:4"),
                unchanged_since: None,
                mode: StoreMode::Add,
                silent: true,
                flags: vec![Flag::Deleted, Flag::Keyword("$Junk")],
            }
        )
    });
    with_cmd(
        "a UID STORE 7 (UNCHANGEDSINCE 320162338) -FLAGS \\Seen \\Flagged\r\n",
        |c| {
            assert_eq!(
                c,
                &CommandBody::Store {
                    uid: true,
                    set: SequenceSet::from_validated(b"7"),
                    unchanged_since: Some(320162338),
                    mode: StoreMode::Remove,
                    silent: false,
                    flags: vec![Flag::Seen, Flag::Flagged],
                }
            )
        },
    );
    with_cmd("a STORE 1 FLAGS ()\r\n", |c| match c {
        CommandBody::Store { mode, flags, .. } => {
            assert_eq!(*mode, StoreMode::Replace);
            assert!(flags.is_empty());
        }
        other => panic!("{other:?}"),
    });
    with_cmd("a STORE 1 FLAGS (\\Recent)\r\n", |c| match c {
        CommandBody::Store { flags, .. } => assert_eq!(flags, &vec![Flag::Extension("Recent")]),
        other => panic!("{other:?}"),
    });
    bad("a STORE 1 XFLAGS (\\Seen)\r\n");
    bad("a STORE 1 +FLAGS\r\n");
}

#[test]
fn copy_move_expunge() {
    with_cmd("a MOVE 1:2 \"Deleted Items\"\r\n", |c| {
        assert_eq!(
            c,
            &CommandBody::Move {
                uid: false,
                set: SequenceSet::from_validated(b"1:2"),
                mailbox: mbox("Deleted Items")
            }
        )
    });
    with_cmd("a UID MOVE 5 inbox\r\n", |c| match c {
        CommandBody::Move { uid, mailbox, .. } => assert!(*uid && mailbox.is_inbox()),
        other => panic!("{other:?}"),
    });
    with_cmd("a UID EXPUNGE 3000:3002\r\n", |c| {
        assert_eq!(
            c,
            &CommandBody::UidExpunge(SequenceSet::from_validated(b"3000:3002"))
        )
    });
    bad("a UID EXPUNGE\r\n");
}

// ---- SEARCH / SORT / THREAD ------------------------------------------------------------

fn search_keys_of(input: &str) -> String {
    let mut out = String::new();
    with_cmd(input, |c| match c {
        CommandBody::Search { criteria, .. } => out = format!("{criteria:?}"),
        other => panic!("{other:?}"),
    });
    out
}

#[test]
fn search_every_simple_key() {
    let keys = [
        "ALL",
        "ANSWERED",
        "DELETED",
        "DRAFT",
        "FLAGGED",
        "NEW",
        "OLD",
        "RECENT",
        "SEEN",
        "UNANSWERED",
        "UNDELETED",
        "UNDRAFT",
        "UNFLAGGED",
        "UNSEEN",
        "SAVEDATESUPPORTED",
        "BCC x",
        "BODY x",
        "CC x",
        "FROM x",
        "SUBJECT x",
        "TEXT x",
        "TO x",
        "HEADER X-Spam yes",
        "KEYWORD $Junk",
        "UNKEYWORD $Junk",
        "BEFORE 1-Jan-2020",
        "ON 01-Feb-2020",
        "SINCE \"3-Mar-2021\"",
        "SENTBEFORE 1-Apr-2020",
        "SENTON 1-May-2020",
        "SENTSINCE 1-Jun-2020",
        "SAVEDBEFORE 1-Jul-2020",
        "SAVEDON 1-Aug-2020",
        "SAVEDSINCE 1-Sep-2020",
        "LARGER 1000",
        "SMALLER 5000000000",
        "OLDER 3600",
        "YOUNGER 60",
        "UID 1:*",
        "EMAILID M6d99ac3275bb4e",
        "THREADID T64b478a75b7ea9",
        "MODSEQ 620162338",
        "MODSEQ \"/flags/\\\\draft\" all 620162338",
        "1:5",
        "$",
    ];
    for key in keys {
        let input = format!("a SEARCH {key}\r\n");
        let parsed = search_keys_of(&input);
        assert!(!parsed.is_empty(), "{key}");
    }
    assert_eq!(
        search_keys_of("a SEARCH BEFORE 1-Jan-2020 LARGER 10\r\n"),
        format!(
            "{:?}",
            vec![
                SearchKey::Before(Date {
                    year: 2020,
                    month: 1,
                    day: 1
                }),
                SearchKey::Larger(10)
            ]
        )
    );
    with_cmd(
        "a SEARCH MODSEQ \"/flags/\\\\draft\" all 620162338\r\n",
        |c| match c {
            CommandBody::Search { criteria, .. } => assert_eq!(
                criteria[0],
                SearchKey::ModSeq {
                    entry: Some((Cow::Owned(b"/flags/\\draft".to_vec()), EntryType::All)),
                    modseq: 620162338
                }
            ),
            other => panic!("{other:?}"),
        },
    );
    for wrong in [
        "a SEARCH BEFORE 32-Jan-2020\r\n",
        "a SEARCH BEFORE 1-Jxn-2020\r\n",
        "a SEARCH LARGER x\r\n",
        "a SEARCH YOUNGER 0\r\n",
        "a SEARCH BOGUS\r\n",
        "a SEARCH\r\n",
        "a SEARCH ALL \r\n",
        "a SEARCH EMAILID bad!id\r\n",
    ] {
        bad(wrong);
    }
}

#[test]
fn search_or_not_groups_charset_return() {
    with_cmd(
        "a UID SEARCH RETURN (MIN MAX COUNT SAVE) CHARSET UTF-8 OR (FROM alice NOT SEEN) TO {3}\r\nbob 1:*\r\n",
        |c| match c {
            CommandBody::Search { uid, ret, charset, criteria } => {
                assert!(*uid);
                assert_eq!(
                    ret,
                    &Some(vec![SearchReturn::Min, SearchReturn::Max, SearchReturn::Count, SearchReturn::Save])
                );
                assert_eq!(charset, &Some(b("UTF-8")));
                assert_eq!(
                    criteria,
                    &vec![
                        SearchKey::Or(
                            Box::new(SearchKey::And(vec![
                                SearchKey::From(b("alice")),
                                SearchKey::Not(Box::new(SearchKey::Seen))
                            ])),
                            Box::new(SearchKey::To(b("bob")))
                        ),
                        SearchKey::SequenceSet(SequenceSet::from_validated(b"1:*")),
                    ]
                );
            }
            other => panic!("{other:?}"),
        },
    );
    with_cmd("a SEARCH RETURN () ALL\r\n", |c| match c {
        CommandBody::Search { ret, .. } => assert_eq!(ret, &Some(vec![])),
        other => panic!("{other:?}"),
    });
    bad("a SEARCH RETURN (BOGUS) ALL\r\n");
    bad("a SEARCH (ALL\r\n");
    bad("a SEARCH OR SEEN\r\n");
}

#[test]
fn sort_and_thread() {
    with_cmd(
        "a UID SORT RETURN (COUNT) (REVERSE ARRIVAL DISPLAYFROM REVERSE DISPLAYTO cc) UTF-8 SINCE 1-Feb-1994\r\n",
        |c| match c {
            CommandBody::Sort { uid, ret, criteria, charset, keys } => {
                assert!(*uid);
                assert_eq!(ret, &Some(vec![SearchReturn::Count]));
                assert_eq!(
                    criteria,
                    &vec![
                        SortCriterion { reverse: true, key: SortKey::Arrival },
                        SortCriterion { reverse: false, key: SortKey::DisplayFrom },
                        SortCriterion { reverse: true, key: SortKey::DisplayTo },
                        SortCriterion { reverse: false, key: SortKey::Cc },
                    ]
                );
                assert_eq!(charset, &b("UTF-8"));
                assert_eq!(keys.len(), 1);
            }
            other => panic!("{other:?}"),
        },
    );
    with_cmd(
        "a SORT (DATE FROM SIZE SUBJECT TO) US-ASCII ALL\r\n",
        |c| match c {
            CommandBody::Sort { criteria, ret, .. } => {
                assert_eq!(criteria.len(), 5);
                assert!(ret.is_none());
            }
            other => panic!("{other:?}"),
        },
    );
    bad("a SORT () UTF-8 ALL\r\n");
    bad("a SORT (REVERSE) UTF-8 ALL\r\n");
    bad("a SORT (DATE) ALL\r\n");
    with_cmd(
        "a THREAD REFERENCES UTF-8 SINCE 5-MAR-2000\r\n",
        |c| match c {
            CommandBody::Thread { uid, algorithm, .. } => {
                assert!(!*uid);
                assert_eq!(*algorithm, ThreadAlgorithm::References);
            }
            other => panic!("{other:?}"),
        },
    );
    with_cmd("a UID THREAD ORDEREDSUBJECT UTF-8 ALL\r\n", |c| match c {
        CommandBody::Thread { uid, algorithm, .. } => {
            assert!(*uid);
            assert_eq!(*algorithm, ThreadAlgorithm::OrderedSubject);
        }
        other => panic!("{other:?}"),
    });
    bad("a THREAD FANCY UTF-8 ALL\r\n");
}

#[test]
fn quota_commands() {
    with_cmd("a GETQUOTA \"\"\r\n", |c| {
        assert_eq!(c, &CommandBody::GetQuota(b("")))
    });
    with_cmd("a GETQUOTAROOT INBOX\r\n", |c| {
        assert_eq!(c, &CommandBody::GetQuotaRoot(mbox("INBOX")))
    });
    with_cmd("a SETQUOTA \"\" (STORAGE 512 MESSAGE 1000)\r\n", |c| {
        assert_eq!(
            c,
            &CommandBody::SetQuota {
                root: b(""),
                limits: vec![("STORAGE", 512), ("MESSAGE", 1000)]
            }
        )
    });
    with_cmd("a SETQUOTA \"\" ()\r\n", |c| {
        assert_eq!(
            c,
            &CommandBody::SetQuota {
                root: b(""),
                limits: vec![]
            }
        )
    });
    bad("a SETQUOTA \"\" (STORAGE)\r\n");
}

// ---- framing ---------------------------------------------------------------------------

#[test]
fn pipelined_commands_in_one_feed() {
    let ev = events(
        b"a NOOP\r\nb CAPABILITY\r\nc BOGUS\r\nd LOGOUT\r\n",
        Limits::default(),
    );
    assert_eq!(ev.len(), 4);
    assert!(matches!(&ev[2], Event::Reject(r) if r.tag.as_deref() == Some("c")));
    assert!(matches!(&ev[3], Event::Command(c) if c.contains("Logout")));
}

#[test]
fn bare_lf_is_tolerated() {
    let ev = events(b"a NOOP\nb NOOP\n", Limits::default());
    assert_eq!(
        ev.iter().filter(|e| matches!(e, Event::Command(_))).count(),
        2
    );
}

#[test]
fn sync_literal_sends_one_continue_per_literal() {
    let mut r = CommandReader::new(Limits::default());
    r.feed(b"a LOGIN {5}\r\n");
    assert!(matches!(r.next(), Next::Continue));
    assert!(matches!(r.next(), Next::NeedMore));
    r.feed(b"al");
    assert!(matches!(r.next(), Next::NeedMore));
    r.feed(b"ice {6}\r\n");
    assert!(matches!(r.next(), Next::Continue));
    assert!(matches!(r.next(), Next::NeedMore));
    r.feed(b"secret\r\nb NOOP\r\n");
    match r.next() {
        Next::Command(c) => assert_eq!(
            c.body,
            CommandBody::Login {
                user: b("alice"),
                password: b("secret")
            }
        ),
        other => panic!("{other:?}"),
    }
    assert!(matches!(r.next(), Next::Command(Command { tag: "b", .. })));
    assert!(matches!(r.next(), Next::NeedMore));
    assert!(r.is_empty());
    assert_eq!(
        r.buffered_capacity(),
        0,
        "drained reader must free its buffer"
    );
}

#[test]
fn non_sync_literal_sends_no_continue() {
    let ev = events(
        b"a LOGIN {5+}\r\nalice {6+}\r\nsecret\r\n",
        Limits::default(),
    );
    assert_eq!(ev.len(), 1);
    assert!(matches!(&ev[0], Event::Command(c) if c.contains("Login")));
}

/// Every kind of literal, split at every byte boundary, gives the same events as one feed.
#[test]
fn literals_split_at_every_boundary() {
    let inputs: [&[u8]; 4] = [
        b"a LOGIN {5}\r\nalice {3+}\r\npw!\r\nb NOOP\r\n",
        b"a APPEND x (\\Seen) ~{3}\r\na\0b (\\Draft) {2+}\r\nhi\r\n",
        b"a APPEND x UTF8 (~{4+}\r\n\xc3\xa9\r\n)\r\n",
        b"a UID FETCH 1:* (BODY.PEEK[HEADER.FIELDS (From {2}\r\nTo)])\r\nb IDLE\r\n",
    ];
    for input in inputs {
        let whole = events(input, Limits::default());
        assert!(
            whole.iter().any(|e| matches!(e, Event::Command(_))),
            "{whole:?}"
        );
        assert!(
            !whole.iter().any(|e| matches!(e, Event::Reject(_))),
            "{whole:?}"
        );
        for cut in 0..=input.len() {
            assert_eq!(
                events_split(input, &[cut], Limits::default()),
                whole,
                "cut {cut}"
            );
        }
        let every: Vec<usize> = (1..input.len()).collect();
        assert_eq!(
            events_split(input, &every, Limits::default()),
            whole,
            "bytewise"
        );
    }
}

fn small_limits() -> Limits {
    Limits {
        max_line: 64,
        max_literal: 16,
        max_depth: 4,
        max_literals: 3,
    }
}

#[test]
fn oversized_line_is_rejected_and_stream_resyncs() {
    let mut input = b"t1 SEARCH ".to_vec();
    input.extend(std::iter::repeat_n(b'A', 200));
    input.extend_from_slice(b" {4+}\r\nxxxx more\r\nt2 NOOP\r\n");
    for cut in [0, 5, 30, 70, 150, input.len() - 12] {
        let ev = events_split(&input, &[cut], small_limits());
        assert_eq!(ev.len(), 2, "cut {cut}: {ev:?}");
        match &ev[0] {
            Event::Reject(r) => {
                assert_eq!(r.tag.as_deref(), Some("t1"));
                assert_eq!(r.code, Some(Code::Limit));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(&ev[1], Event::Command(c) if c.contains("Noop") && c.contains("t2")));
    }
}

#[test]
fn oversized_sync_literal_gets_no_continue() {
    let ev = events(
        b"a1 APPEND x {17}\r\nb1 LOGIN {17}\r\nc1 NOOP\r\n",
        small_limits(),
    );
    assert_eq!(ev.len(), 3, "{ev:?}");
    match &ev[0] {
        Event::Reject(r) => {
            assert_eq!(
                (r.tag.as_deref(), r.kind, r.code.as_ref()),
                (Some("a1"), RejectKind::No, Some(&Code::TooBig))
            )
        }
        other => panic!("{other:?}"),
    }
    match &ev[1] {
        Event::Reject(r) => {
            assert_eq!(
                (r.tag.as_deref(), r.kind, r.code.as_ref()),
                (Some("b1"), RejectKind::Bad, Some(&Code::Limit))
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(!ev.contains(&Event::Continue));
    assert!(matches!(&ev[2], Event::Command(c) if c.contains("c1")));
}

#[test]
fn oversized_non_sync_literal_is_discarded_unbuffered() {
    let mut r = CommandReader::new(small_limits());
    r.feed(b"a1 APPEND x {1000+}\r\n");
    match r.next() {
        Next::Reject(rej) => assert_eq!(rej.code, Some(Code::TooBig)),
        other => panic!("{other:?}"),
    }
    for _ in 0..10 {
        r.feed(&[b'z'; 100]);
        assert!(r.is_empty());
        assert_eq!(
            r.buffered_capacity(),
            0,
            "discarded payload must not be stored"
        );
        assert!(matches!(r.next(), Next::NeedMore));
    }
    // The rest of the command line, with another non-sync literal, then the next command.
    r.feed(b" (\\Seen) {3+}\r\nabc\r\nb1 NOOP\r\n");
    assert!(matches!(r.next(), Next::Command(Command { tag: "b1", .. })));
    assert!(matches!(r.next(), Next::NeedMore));
}

#[test]
fn literal_total_and_count_limits() {
    // Two literals of 10: each fits, together over max_literal (16).
    let ev = events(
        b"a LOGIN {10+}\r\n0123456789 {10+}\r\n0123456789\r\nb NOOP\r\n",
        small_limits(),
    );
    assert!(
        matches!(&ev[0], Event::Reject(r) if r.code == Some(Code::Limit)),
        "{ev:?}"
    );
    assert!(
        matches!(&ev[1], Event::Command(c) if c.contains("Noop")),
        "{ev:?}"
    );
    let ev = events(
        b"a FETCH 1 BODY[HEADER.FIELDS ({1+}\r\na {1+}\r\nb {1+}\r\nc {1+}\r\nd)]\r\nb NOOP\r\n",
        small_limits(),
    );
    assert!(
        matches!(&ev[0], Event::Reject(r) if r.text.contains("too many literals")),
        "{ev:?}"
    );
    assert!(
        matches!(&ev[1], Event::Command(c) if c.contains("Noop")),
        "{ev:?}"
    );
}

#[test]
fn literal_minus_refuses_big_non_sync_literals() {
    let run = |input: &[u8]| {
        let mut r = CommandReader::new(Limits::default());
        r.set_literal_minus(true);
        r.feed(input);
        let mut out = Vec::new();
        drain(&mut r, &mut out);
        out
    };
    let mut input = b"a APPEND x {5000+}\r\n".to_vec();
    input.extend(std::iter::repeat_n(b'm', 5000));
    input.extend_from_slice(b"\r\nb NOOP\r\n");
    let ev = run(&input);
    assert!(
        matches!(&ev[0], Event::Reject(r) if r.code == Some(Code::TooBig) && r.kind == RejectKind::Bad),
        "{ev:?}"
    );
    assert!(matches!(&ev[1], Event::Command(c) if c.contains("Noop")));
    // Synchronizing literals of that size, and small non-synchronizing ones, are fine.
    let mut input = b"a APPEND x {5000}\r\n".to_vec();
    input.extend(std::iter::repeat_n(b'm', 5000));
    input.extend_from_slice(b"\r\nb LOGIN {4096+}\r\n");
    input.extend(std::iter::repeat_n(b'u', 4096));
    input.extend_from_slice(b" x\r\n");
    let ev = run(&input);
    assert!(
        matches!(&ev[1], Event::Command(c) if c.contains("Append")),
        "{ev:?}"
    );
    assert!(
        matches!(&ev[2], Event::Command(c) if c.contains("Login")),
        "{ev:?}"
    );
}

#[test]
fn literal8_outside_append_is_refused_before_its_bytes() {
    let ev = events(
        b"a LOGIN ~{3}\r\nb LOGIN ~{3+}\r\nxyz y\r\nc NOOP\r\n",
        Limits::default(),
    );
    assert_eq!(ev.len(), 3, "{ev:?}");
    assert!(!ev.contains(&Event::Continue));
    assert!(matches!(&ev[0], Event::Reject(r) if r.tag.as_deref() == Some("a")));
    assert!(matches!(&ev[1], Event::Reject(r) if r.tag.as_deref() == Some("b")));
    assert!(matches!(&ev[2], Event::Command(c) if c.contains("Noop")));
}

#[test]
fn huge_announced_literal_is_refused_without_allocating() {
    let ev = events(
        b"a APPEND x {18446744073709551615}\r\nb NOOP\r\n",
        Limits::default(),
    );
    assert!(matches!(&ev[0], Event::Reject(r) if r.code == Some(Code::TooBig)));
    assert!(matches!(&ev[1], Event::Command(_)));
    let ev = events(
        b"a APPEND x {99999999999999999999999}\r\nb NOOP\r\n",
        Limits::default(),
    );
    assert!(matches!(&ev[0], Event::Reject(_)));
}

#[test]
fn depth_limit_on_groups_and_not_chains() {
    let ev = events(b"a SEARCH ((((((ALL))))))\r\nb NOOP\r\n", small_limits());
    assert!(
        matches!(&ev[0], Event::Reject(r) if r.code == Some(Code::Limit)),
        "{ev:?}"
    );
    assert!(matches!(&ev[1], Event::Command(_)), "{ev:?}");
    let ev = events(b"a SEARCH ((((ALL))))\r\n", small_limits());
    assert!(matches!(&ev[0], Event::Command(_)), "{ev:?}");
    let deep_not = format!("a SEARCH {}ALL\r\n", "NOT ".repeat(5000));
    assert_eq!(bad(&deep_not).code, Some(Code::Limit));
    let deep_or = format!("a SEARCH {}ALL{}\r\n", "OR ALL ".repeat(5000), "");
    assert_eq!(bad(&deep_or).code, Some(Code::Limit));
    // Within the limit it parses.
    with_cmd("a SEARCH (((ALL)))\r\n", |c| {
        assert!(matches!(c, CommandBody::Search { .. }))
    });
}

#[test]
fn malformed_command_then_next_command_parses() {
    let ev = events(b"a FETCH 1 (FLAGS\r\nb NOOP\r\n", Limits::default());
    assert!(matches!(&ev[0], Event::Reject(r) if r.tag.as_deref() == Some("a")));
    assert!(matches!(&ev[1], Event::Command(c) if c.contains("Noop")));
}

#[test]
fn next_line_for_idle_done_and_sasl() {
    let mut r = CommandReader::new(small_limits());
    r.feed(b"a IDLE\r\nDO");
    assert!(matches!(
        r.next(),
        Next::Command(Command {
            body: CommandBody::Idle,
            ..
        })
    ));
    assert!(r.next_line().is_none());
    r.feed(b"NE\r\nb NOOP\r\n");
    assert_eq!(r.next_line(), Some(Ok(&b"DONE"[..])));
    assert!(matches!(r.next(), Next::Command(Command { tag: "b", .. })));
    // Too long raw line: error once, then the reader skips to the line end.
    r.feed(&[b'x'; 100]);
    assert_eq!(r.next_line(), Some(Err(LineTooLong)));
    r.feed(&[b'x'; 100]);
    assert!(r.next_line().is_none());
    r.feed(b"xx\r\nAGFsaWNl\r\n");
    assert_eq!(r.next_line(), Some(Ok(&b"AGFsaWNl"[..])));
}

#[test]
fn take_and_discard_unread() {
    let mut r = CommandReader::new(Limits::default());
    r.feed(b"a STARTTLS\r\nb LOGIN x y\r\n");
    assert!(matches!(
        r.next(),
        Next::Command(Command {
            body: CommandBody::StartTls,
            ..
        })
    ));
    let mut r2 = CommandReader::new(Limits::default());
    r2.feed(b"a NOOP\r\nb SELECT INBOX\r\nc FE");
    assert!(matches!(r2.next(), Next::Command(_)));
    assert_eq!(r2.take_unread(), b"b SELECT INBOX\r\nc FE".to_vec());
    assert!(r2.is_empty());
    r.discard_unread();
    assert!(r.is_empty());
    assert!(matches!(r.next(), Next::NeedMore));
}
