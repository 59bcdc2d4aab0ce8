//! End-to-end SEARCH, SORT and THREAD against the real server, over a small corpus with
//! encoded headers and base64 / quoted-printable bodies in several charsets. Every expected
//! answer below was worked out by hand from the corpus.

mod common;

use common::{Client, Server};

const USERS: &str = "demo:{PLAIN}secret\n";

/// (internal date, flags, message). UIDs and message numbers are 1..=5 in this order.
const CORPUS: [(&str, &str, &str); 5] = [
    (
        "02-Jan-2006 10:00:00 +0000",
        "\\Seen \\Flagged",
        "From: Alice <xalice@example.com>\r\nTo: bob@example.com\r\nCc: carol@example.org\r\n\
         Subject: Quarterly report\r\nDate: Mon, 02 Jan 2006 23:30:00 -0700\r\n\
         Message-ID: <m1@x>\r\n\r\nPlease find the numbers attached.\r\n",
    ),
    (
        "05-Feb-2010 08:00:00 +0000",
        "\\Answered $Work",
        "From: =?utf-8?b?SsO2cmc=?= <joerg@example.de>\r\nTo: team@example.de\r\n\
         Subject: =?iso-8859-1?q?Caf=E9_cr=E8me?=\r\nDate: Fri, 05 Feb 2010 09:00:00 +0100\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\
         Content-Transfer-Encoding: quoted-printable\r\n\r\nLe caf=E9 est pr=EAt.\r\n",
    ),
    (
        "10-Mar-2012 12:00:00 +0000",
        "\\Draft",
        "From: Zed <zed@example.com>\r\nTo: xalice@example.com\r\nBcc: secret@example.net\r\n\
         Subject: Re: Quarterly report\r\nDate: Sat, 10 Mar 2012 12:00:00 +0000\r\n\
         Message-ID: <m3@x>\r\nIn-Reply-To: <m1@x>\r\nReferences: <m1@x>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n\
         R3LDvMOfZSBhdXMgTcO8bmNoZW4h\r\n",
    ),
    (
        "01-Apr-2015 12:00:00 +0000",
        "",
        "From: bob@example.com\r\nTo: list@example.org\r\nSubject: [list] Fwd: Weekly digest\r\n\
         Date: Thu, 01 Apr 1999 12:00:00 +0000\r\nX-Custom-Header: Zebra-42\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/alternative; boundary=\"bnd\"\r\n\r\n--bnd\r\n\
         Content-Type: text/plain; charset=koi8-r\r\nContent-Transfer-Encoding: base64\r\n\r\n\
         8NLJ18XUIM3J0iwgy8HLIMTFzME/\r\n--bnd\r\nContent-Type: text/html; charset=utf-8\r\n\
         Content-Transfer-Encoding: quoted-printable\r\n\r\n\
         =3Cp=3EHello =3Cb=3EWorld=3C/b=3E &amp; friends=3C/p=3E\r\n--bnd--\r\n",
    ),
    (
        "20-Jun-2001 06:00:00 +0000",
        "\\Deleted",
        "From: Emile <emile@example.fr>\r\nTo: bob@example.com\r\n\
         Subject: =?shift_jis?B?g2WDWINn?=\r\n\r\nordinary text\r\n",
    ),
];

fn login(server: &Server) -> Client {
    let mut c = server.connect();
    let ok = c.command("l", "LOGIN demo secret");
    assert!(ok.last().unwrap().starts_with("l OK"), "{ok:?}");
    c
}

fn append(c: &mut Client, mailbox: &str, date: &str, flags: &str, message: &str) {
    c.send(&format!(
        "ap APPEND {mailbox} ({flags}) \"{date}\" {{{}}}\r\n",
        message.len()
    ));
    let cont = c.line();
    assert!(cont.starts_with("+ "), "{cont}");
    c.send(message);
    c.send("\r\n");
    let done = c.until_tagged("ap");
    assert!(done.last().unwrap().starts_with("ap OK"), "{done:?}");
}

fn setup() -> (Server, Client) {
    let server = Server::start(1, "", "", USERS);
    let mut c = login(&server);
    for (date, flags, message) in CORPUS {
        append(&mut c, "INBOX", date, flags, message);
    }
    let sel = c.command("s", "SELECT INBOX");
    assert!(sel.last().unwrap().starts_with("s OK"), "{sel:?}");
    (server, c)
}

/// Runs a command and returns its one untagged line starting with `prefix`, checking OK.
fn answer(c: &mut Client, command: &str, prefix: &str) -> String {
    let lines = c.command("t", command);
    assert!(
        lines.last().unwrap().starts_with("t OK"),
        "{command}: {lines:?}"
    );
    let found: Vec<&String> = lines.iter().filter(|l| l.starts_with(prefix)).collect();
    assert_eq!(found.len(), 1, "{command}: {lines:?}");
    found[0].clone()
}

/// The numbers of a `* SEARCH` answer.
fn search(c: &mut Client, keys: &str) -> String {
    let line = answer(c, &format!("SEARCH {keys}"), "* SEARCH");
    line.trim_start_matches("* SEARCH").trim().to_string()
}

#[test]
fn every_key_over_the_corpus() {
    let (_server, mut c) = setup();
    let cases: &[(&str, &str)] = &[
        ("ALL", "1 2 3 4 5"),
        // Flags and keywords.
        ("ANSWERED", "2"),
        ("UNANSWERED", "1 3 4 5"),
        ("DELETED", "5"),
        ("UNDELETED", "1 2 3 4"),
        ("DRAFT", "3"),
        ("UNDRAFT", "1 2 4 5"),
        ("FLAGGED", "1"),
        ("UNFLAGGED", "2 3 4 5"),
        ("SEEN", "1"),
        ("UNSEEN", "2 3 4 5"),
        ("KEYWORD $Work", "2"),
        ("KEYWORD $work", "2"),
        ("UNKEYWORD $Work", "1 3 4 5"),
        ("KEYWORD $Nobody", ""),
        // All five arrived before this session's SELECT, which made them its recent ones.
        ("RECENT", "1 2 3 4 5"),
        ("NEW", "2 3 4 5"),
        ("OLD", ""),
        ("NOT OLD", "1 2 3 4 5"),
        ("OR NEW DELETED", "2 3 4 5"),
        // Address and subject headers, decoded.
        ("FROM alice", "1"),
        ("FROM \"jörg\"", "2"),
        ("FROM \"JÖRG\"", "2"),
        ("FROM example.DE", "2"),
        ("TO bob", "1 5"),
        ("CC carol", "1"),
        ("BCC secret", "3"),
        ("SUBJECT \"café crème\"", "2"),
        ("SUBJECT quarterly", "1 3"),
        ("SUBJECT \"テスト\"", "5"),
        ("HEADER X-Custom-Header zebra-42", "4"),
        ("HEADER x-custom-header \"\"", "4"),
        ("HEADER Message-ID \"\"", "1 3"),
        // Bodies: QP latin-1, base64 UTF-8, base64 KOI8-R, QP HTML, plain.
        ("BODY \"numbers ATTACHED\"", "1"),
        ("BODY \"café est PRÊT\"", "2"),
        ("BODY \"grüße aus münchen\"", "3"),
        ("BODY \"ПРИВЕТ мир\"", "4"),
        ("BODY \"world & friends\"", "4"),
        ("BODY \"<b>\"", ""),
        ("BODY E9", ""),
        ("BODY quarterly", ""),
        ("TEXT quarterly", "1 3"),
        ("TEXT secret@example.net", "3"),
        ("TEXT caf", "2"),
        ("TEXT ordinary", "5"),
        // Dates: internal, sent (its own zone; INTERNALDATE when there is no Date), saved.
        ("BEFORE 1-Jan-2011", "1 2 5"),
        ("ON 5-Feb-2010", "2"),
        ("SINCE 1-Jan-2015", "4"),
        ("SENTON 2-Jan-2006", "1"),
        ("SENTBEFORE 3-Jan-2006", "1 4 5"),
        ("SENTSINCE 1-Jan-2012", "3"),
        ("SENTON 20-Jun-2001", "5"),
        ("SAVEDSINCE 1-Jan-2020", "1 2 3 4 5"),
        ("SAVEDBEFORE 1-Jan-2020", ""),
        ("SAVEDATESUPPORTED", "1 2 3 4 5"),
        ("OLDER 3600", "1 2 3 4 5"),
        ("YOUNGER 3600", ""),
        // Sets.
        ("2,4", "2 4"),
        ("*", "5"),
        ("4:*", "4 5"),
        ("UID 2:3", "2 3"),
        ("UID 9:*", "5"),
        ("THREADID T1", ""),
        // Combinations with OR, NOT and parentheses.
        ("OR FLAGGED DRAFT", "1 3"),
        ("NOT SEEN", "2 3 4 5"),
        ("NOT OR SEEN ANSWERED", "3 4 5"),
        ("OR SUBJECT \"café\" BODY \"привет\"", "2 4"),
        ("(OR SEEN DRAFT) UNFLAGGED", "3"),
        ("NOT (FROM alice BODY numbers)", "2 3 4 5"),
        ("OR BODY world HEADER X-Custom-Header zebra", "4"),
        ("NOT BODY \"привет\"", "1 2 3 5"),
        ("OR (SEEN FLAGGED) (TO bob DELETED)", "1 5"),
        ("NOT NOT SUBJECT report", "1 3"),
        ("UNDELETED OR TEXT ordinary TEXT \"münchen\"", "3"),
        ("CHARSET UTF-8 SUBJECT \"café\"", "2"),
        ("CHARSET us-ascii FROM emile", "5"),
    ];
    let mut failures = Vec::new();
    for (keys, want) in cases {
        let got = search(&mut c, keys);
        if got != *want {
            failures.push(format!("SEARCH {keys}: got [{got}], want [{want}]"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Sizes: worked out from the corpus itself.
    let sizes: Vec<usize> = CORPUS.iter().map(|(_, _, m)| m.len()).collect();
    let pivot = sizes[2];
    let larger: Vec<String> = (1..=5)
        .filter(|&i| sizes[i - 1] > pivot)
        .map(|i| i.to_string())
        .collect();
    assert_eq!(search(&mut c, &format!("LARGER {pivot}")), larger.join(" "));
    let smaller: Vec<String> = (1..=5)
        .filter(|&i| sizes[i - 1] < pivot)
        .map(|i| i.to_string())
        .collect();
    assert_eq!(
        search(&mut c, &format!("SMALLER {pivot}")),
        smaller.join(" ")
    );

    // EMAILID finds the message FETCH EMAILID names.
    let f = answer(&mut c, "FETCH 2 EMAILID", "* 2 FETCH");
    let id = f.split("EMAILID (").nth(1).unwrap().trim_end_matches("))");
    assert_eq!(search(&mut c, &format!("EMAILID {id}")), "2");

    let bad = c.command("b", "SEARCH CHARSET ISO-8859-1 FROM x");
    assert!(
        bad.last()
            .unwrap()
            .starts_with("b NO [BADCHARSET (UTF-8 US-ASCII)]"),
        "{bad:?}"
    );
}

#[test]
fn result_options_save_modseq_and_rev2() {
    let (server, mut c) = setup();
    let caps = common::capabilities(&c.command("c", "CAPABILITY"));
    for cap in [
        "ESEARCH",
        "SEARCHRES",
        "SORT",
        "SORT=DISPLAY",
        "ESORT",
        "WITHIN",
    ] {
        assert!(caps.iter().any(|c| c == cap), "{cap} missing: {caps:?}");
    }
    let e = answer(
        &mut c,
        "SEARCH RETURN (MIN MAX ALL COUNT) UNSEEN",
        "* ESEARCH",
    );
    assert_eq!(e, "* ESEARCH (TAG \"t\") MIN 2 MAX 5 ALL 2:5 COUNT 4");
    let e = answer(&mut c, "UID SEARCH RETURN () OR FLAGGED DRAFT", "* ESEARCH");
    assert_eq!(e, "* ESEARCH (TAG \"t\") UID ALL 1,3");
    let e = answer(
        &mut c,
        "SEARCH RETURN (COUNT MIN) KEYWORD $Nobody",
        "* ESEARCH",
    );
    assert_eq!(e, "* ESEARCH (TAG \"t\") COUNT 0");

    // SAVE alone answers nothing; `$` then names the saved messages.
    let lines = c.command("s1", "SEARCH RETURN (SAVE) OR FLAGGED DRAFT");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("s1 OK"), "{lines:?}");
    assert_eq!(search(&mut c, "$"), "1 3");
    assert_eq!(search(&mut c, "$ SEEN"), "1");
    assert_eq!(search(&mut c, "UID $ NOT SEEN"), "3");
    let f = c.command("f", "FETCH $ (UID)");
    assert_eq!(f.len(), 3, "{f:?}");
    // SAVE with MIN keeps only the minimum; a failed SAVE empties `$`.
    let e = answer(&mut c, "SEARCH RETURN (SAVE MIN) UNSEEN", "* ESEARCH");
    assert_eq!(e, "* ESEARCH (TAG \"t\") MIN 2");
    assert_eq!(search(&mut c, "$"), "2");
    let bad = c.command("b", "SEARCH RETURN (SAVE) CHARSET KOI8-R ALL");
    assert!(
        bad.last().unwrap().starts_with("b NO [BADCHARSET"),
        "{bad:?}"
    );
    assert_eq!(search(&mut c, "$"), "");

    // MODSEQ: the answer carries the highest mod-sequence of the matches.
    let st = c.command("st", "STORE 3 +FLAGS (\\Seen)");
    assert!(st.last().unwrap().starts_with("st OK"), "{st:?}");
    let f = answer(&mut c, "FETCH 3 (MODSEQ)", "* 3 FETCH");
    let modseq: u64 = f
        .split("MODSEQ (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .and_then(|s| s.parse().ok())
        .expect("a modseq");
    let got = search(&mut c, &format!("MODSEQ {modseq}"));
    assert_eq!(got, format!("3 (MODSEQ {modseq})"));
    let e = answer(
        &mut c,
        &format!("SEARCH RETURN (COUNT) MODSEQ {modseq}"),
        "* ESEARCH",
    );
    assert_eq!(e, format!("* ESEARCH (TAG \"t\") COUNT 1 MODSEQ {modseq}"));

    // IMAP4rev2: a plain SEARCH answers in ESEARCH form.
    let mut rev2 = login(&server);
    rev2.command("e", "ENABLE IMAP4rev2");
    rev2.command("s", "SELECT INBOX");
    let e = answer(&mut rev2, "SEARCH FLAGGED", "* ESEARCH");
    assert_eq!(e, "* ESEARCH (TAG \"t\") ALL 1");
    let e = answer(&mut rev2, "UID SEARCH KEYWORD $Nobody", "* ESEARCH");
    assert_eq!(e, "* ESEARCH (TAG \"t\") UID");

    // A message expunged by another session but not yet announced never matches, and
    // SEARCH (by message number) does not announce the expunge; its OK says one is missing.
    let ex = rev2.command("x", "EXPUNGE");
    assert!(ex.iter().any(|l| l == "* 5 EXPUNGE"), "{ex:?}");
    let lines = c.command("t", "SEARCH ALL");
    assert_eq!(
        lines,
        vec!["* SEARCH 1 2 3 4", "t OK [EXPUNGEISSUED] SEARCH completed"]
    );
    let lines = c.command("n", "NOOP");
    assert!(lines.iter().any(|l| l == "* 5 EXPUNGE"), "{lines:?}");
}

#[test]
fn sort_by_every_key() {
    let (_server, mut c) = setup();
    let sort = |c: &mut Client, args: &str| {
        let line = answer(c, &format!("SORT {args}"), "* SORT");
        line.trim_start_matches("* SORT").trim().to_string()
    };
    // Base subjects: 1 and 3 "Quarterly report", 2 "Café crème", 4 "Weekly digest",
    // 5 "テスト"; ties go to the lower number, also in REVERSE.
    assert_eq!(sort(&mut c, "(SUBJECT) UTF-8 ALL"), "2 1 3 4 5");
    assert_eq!(sort(&mut c, "(REVERSE SUBJECT) UTF-8 ALL"), "5 4 1 3 2");
    // Sent dates (UTC): 4 in 1999, 5 has none (its 2001 INTERNALDATE), then 1, 2, 3.
    assert_eq!(sort(&mut c, "(DATE) UTF-8 ALL"), "4 5 1 2 3");
    assert_eq!(sort(&mut c, "(ARRIVAL) UTF-8 ALL"), "5 1 2 3 4");
    assert_eq!(sort(&mut c, "(REVERSE ARRIVAL) UTF-8 UNDELETED"), "4 3 2 1");
    // FROM sorts by mailbox, DISPLAYFROM by display name (or address).
    assert_eq!(sort(&mut c, "(FROM) UTF-8 ALL"), "4 5 2 1 3");
    assert_eq!(sort(&mut c, "(DISPLAYFROM) UTF-8 ALL"), "1 4 5 2 3");
    // TO mailboxes: bob (1, 5), team (2), xalice (3), list (4).
    assert_eq!(sort(&mut c, "(TO) UTF-8 ALL"), "1 5 4 2 3");
    assert_eq!(sort(&mut c, "(DISPLAYTO) UTF-8 ALL"), "1 5 4 2 3");
    // CC: only 1 has one; empty sorts first.
    assert_eq!(sort(&mut c, "(CC) UTF-8 ALL"), "2 3 4 5 1");
    assert_eq!(
        sort(&mut c, "(SUBJECT REVERSE DATE) UTF-8 ALL"),
        "2 3 1 4 5"
    );
    let sizes: Vec<usize> = CORPUS.iter().map(|(_, _, m)| m.len()).collect();
    let mut by_size: Vec<usize> = (1..=5).collect();
    by_size.sort_by_key(|&i| (sizes[i - 1], i));
    let want: Vec<String> = by_size.iter().map(usize::to_string).collect();
    assert_eq!(sort(&mut c, "(SIZE) UTF-8 ALL"), want.join(" "));

    let e = answer(
        &mut c,
        "SORT RETURN (MIN MAX ALL COUNT) (DATE) UTF-8 ALL",
        "* ESEARCH",
    );
    // ALL is a sequence-set in sort order: rising runs compact, nothing is reordered.
    assert_eq!(e, "* ESEARCH (TAG \"t\") MIN 4 MAX 3 ALL 4:5,1:3 COUNT 5");
    let e = answer(&mut c, "SORT RETURN (ALL) (ARRIVAL) UTF-8 ALL", "* ESEARCH");
    assert_eq!(e, "* ESEARCH (TAG \"t\") ALL 5,1:4");
    let e = answer(&mut c, "UID SORT RETURN () (SIZE) UTF-8 1:5", "* ESEARCH");
    let runs = compact_in_order(&want.join(" "));
    assert_eq!(e, format!("* ESEARCH (TAG \"t\") UID ALL {runs}"));
    let e = answer(
        &mut c,
        "SORT RETURN (ALL) (REVERSE ARRIVAL) UTF-8 ALL",
        "* ESEARCH",
    );
    assert_eq!(e, "* ESEARCH (TAG \"t\") ALL 4,3,2,1,5");
    let e = answer(
        &mut c,
        "UID SORT RETURN (COUNT) (DATE) UTF-8 SEEN",
        "* ESEARCH",
    );
    assert_eq!(e, "* ESEARCH (TAG \"t\") UID COUNT 1");
    let bad = c.command("b", "SORT (DATE) BIG5 ALL");
    assert!(
        bad.last().unwrap().starts_with("b NO [BADCHARSET"),
        "{bad:?}"
    );
}

/// Space-separated numbers as ESORT writes them: rising runs as ranges, order kept.
fn compact_in_order(numbers: &str) -> String {
    let mut runs: Vec<(u32, u32)> = Vec::new();
    for n in numbers.split(' ').map(|n| n.parse::<u32>().unwrap()) {
        match runs.last_mut() {
            Some((_, hi)) if *hi + 1 == n => *hi = n,
            _ => runs.push((n, n)),
        }
    }
    let runs: Vec<String> = runs
        .iter()
        .map(|&(lo, hi)| {
            if lo == hi {
                lo.to_string()
            } else {
                format!("{lo}:{hi}")
            }
        })
        .collect();
    runs.join(",")
}

#[test]
fn esearch_all_and_modseq_of_what_is_returned() {
    let (_server, mut c) = setup();
    // SEARCH RETURN: ALL in its compact form, for numbers and UIDs alike.
    let e = answer(&mut c, "SEARCH RETURN (ALL) 1:5", "* ESEARCH");
    assert_eq!(e, "* ESEARCH (TAG \"t\") ALL 1:5");
    let e = answer(&mut c, "UID SEARCH RETURN (ALL) NOT 3", "* ESEARCH");
    assert_eq!(e, "* ESEARCH (TAG \"t\") UID ALL 1:2,4:5");

    // Message 2 changes last, so it has the highest mod-sequence; 1 and 5 keep theirs.
    let st = c.command("st", "STORE 2 +FLAGS (\\Flagged)");
    assert!(st.last().unwrap().starts_with("st OK"), "{st:?}");
    let modseq = |c: &mut Client, msn: u32| -> u64 {
        let f = answer(
            c,
            &format!("FETCH {msn} (MODSEQ)"),
            &format!("* {msn} FETCH"),
        );
        f.split("MODSEQ (")
            .nth(1)
            .and_then(|s| s.split(')').next())
            .and_then(|s| s.parse().ok())
            .expect("a modseq")
    };
    let (m1, m2, m5) = (modseq(&mut c, 1), modseq(&mut c, 2), modseq(&mut c, 5));
    assert!(m2 > m5 && m5 > m1, "{m1} {m2} {m5}");
    // RFC 7162 section 3.1.5: MIN or MAX alone, that message's mod-sequence; both, the
    // higher of the two; ALL or COUNT, the highest of all matches.
    for (ret, want) in [
        ("MIN", format!("MIN 1 MODSEQ {m1}")),
        ("MAX", format!("MAX 5 MODSEQ {m5}")),
        ("MIN MAX", format!("MIN 1 MAX 5 MODSEQ {m5}")),
        ("ALL", format!("ALL 1:5 MODSEQ {m2}")),
        ("MIN COUNT", format!("MIN 1 COUNT 5 MODSEQ {m2}")),
    ] {
        let e = answer(
            &mut c,
            &format!("SEARCH RETURN ({ret}) MODSEQ 1"),
            "* ESEARCH",
        );
        assert_eq!(e, format!("* ESEARCH (TAG \"t\") {want}"), "RETURN ({ret})");
    }
    let e = answer(&mut c, "UID SEARCH RETURN (MAX) MODSEQ 1 1:4", "* ESEARCH");
    assert_eq!(
        e,
        format!(
            "* ESEARCH (TAG \"t\") UID MAX 4 MODSEQ {}",
            modseq(&mut c, 4)
        )
    );
}

/// Address headers in the shapes of RFC 5322 appendix A (A.1.1, A.1.2, A.1.3, A.5).
const ADDRESSED: [&str; 4] = [
    "From: John Doe <jdoe@machine.example>\r\nTo: Mary Smith <mary@example.net>\r\n\
     Subject: Saying Hello\r\n\r\nThis is a message just to say hello.\r\n",
    "From: \"Joe Q. Public\" <john.q.public@example.com>\r\n\
     To: Mary Smith <mary@x.test>, jdoe@example.org, Who? <one@y.test>\r\n\
     Cc: <boss@nil.test>, \"Giant; \\\"Big\\\" Box\" <sysservices@example.net>\r\n\
     Subject: Lists\r\n\r\nHi everyone.\r\n",
    "From: Pete <pete@silly.example>\r\n\
     To: A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;\r\n\
     Cc: Undisclosed recipients:;\r\nSubject: Groups\r\n\r\nTesting.\r\n",
    "From: Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>\r\n\
     To:A Group(Some people)\r\n     :Chris Jones <c@(Chris's host.)public.example>,\r\n\
     \x20        joe@example.org,\r\n  John <jdoe@one.test> (my dear friend); (the end of the group)\r\n\
     Cc:(Empty list)(start)Hidden recipients  :(nobody(that I know))  ;\r\n\
     Subject: Comments\r\n\r\nTesting.\r\n",
];

#[test]
fn address_keys_and_sorts_read_the_addresses() {
    let server = Server::start(1, "", "", USERS);
    let mut c = login(&server);
    for m in ADDRESSED {
        append(&mut c, "INBOX", "01-Jan-2024 12:00:00 +0000", "", m);
    }
    c.command("s", "SELECT INBOX");
    // FROM / TO / CC / BCC see each address without comments or folding, with its display
    // name and its group; HEADER sees the field as written.
    let cases: &[(&str, &str)] = &[
        ("FROM pete@silly.test", "4"),
        ("FROM \"pete <pete@silly\"", "3 4"),
        ("FROM \"his account\"", ""),
        ("HEADER FROM \"his account\"", "4"),
        ("FROM \"joe q. public\"", "2"),
        ("TO \"a group\"", "3 4"),
        ("TO jdoe@one.test", "3 4"),
        ("TO c@public.example", "4"),
        ("TO \"Chris's host\"", ""),
        ("TO \"chris jones <c@public.example>\"", "4"),
        ("TO mary", "1 2"),
        ("CC \"undisclosed recipients\"", "3"),
        ("CC \"hidden recipients:;\"", "4"),
        ("CC \"big\"", "2"),
        ("CC boss@nil.test", "2"),
        ("BCC \"\"", ""),
    ];
    let mut failures = Vec::new();
    for (keys, want) in cases {
        let got = search(&mut c, keys);
        if got != *want {
            failures.push(format!("SEARCH {keys}: got [{got}], want [{want}]"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    let sort = |c: &mut Client, args: &str| {
        let line = answer(c, &format!("SORT {args}"), "* SORT");
        line.trim_start_matches("* SORT").trim().to_string()
    };
    // The first address of CC: none (1), boss (2), the groups "Undisclosed recipients" (3)
    // and "Hidden recipients" (4), by their names, not their (absent) members.
    assert_eq!(sort(&mut c, "(CC) UTF-8 ALL"), "1 2 4 3");
    assert_eq!(sort(&mut c, "(REVERSE CC) UTF-8 ALL"), "3 4 2 1");
    // TO: mary (1, 2) after the groups named "A Group" (3, 4).
    assert_eq!(sort(&mut c, "(TO) UTF-8 ALL"), "3 4 1 2");
    assert_eq!(sort(&mut c, "(DISPLAYTO) UTF-8 ALL"), "3 4 1 2");
    // FROM by mailbox: jdoe, john.q.public, pete, pete; DISPLAYFROM by name.
    assert_eq!(sort(&mut c, "(FROM) UTF-8 ALL"), "1 2 3 4");
    assert_eq!(sort(&mut c, "(DISPLAYFROM) UTF-8 ALL"), "2 1 3 4");
}

#[test]
fn thread_own_references_break_a_guessed_link() {
    let server = Server::start(1, "", "", USERS);
    let mut c = login(&server);
    let msg = |minute: u32, id: &str, refs: &str| {
        format!(
            "From: x@example.com\r\nSubject: topic {minute}\r\n\
             Date: Mon, 1 Jan 2024 10:{minute:02}:00 +0000\r\nMessage-ID: <{id}>\r\n{refs}\r\nbody\r\n"
        )
    };
    for (mailbox, last_refs) in [
        // "c" answers "b", which already answers "c": the link that would close the loop is
        // not made, and the one "b" guessed for "c" (under "a") is broken first.
        ("Looped", "References: <b@t>\r\n"),
        // "c" answers nothing: the parent "b" guessed for it goes (RFC 5256 step 1.B, NIL).
        ("Orphan", ""),
    ] {
        let ok = c.command("c", &format!("CREATE {mailbox}"));
        assert!(ok.last().unwrap().starts_with("c OK"), "{ok:?}");
        for m in [
            msg(1, "a@t", ""),
            msg(2, "b@t", "References: <a@t> <c@t>\r\n"),
            msg(3, "c@t", last_refs),
        ] {
            append(&mut c, mailbox, "01-Jan-2024 12:00:00 +0000", "", &m);
        }
        c.command("s", &format!("SELECT {mailbox}"));
        let t = answer(&mut c, "THREAD REFERENCES UTF-8 ALL", "* THREAD");
        assert_eq!(t, "* THREAD (1)(3 2)", "{mailbox}");
        // Without "a" the guessed parent is a dummy that disappears with its last child.
        let t = answer(&mut c, "THREAD REFERENCES UTF-8 2:3", "* THREAD");
        assert_eq!(t, "* THREAD (3 2)", "{mailbox}");
    }
}

#[test]
fn text_finds_a_forwarded_messages_header() {
    let server = Server::start(1, "", "", USERS);
    let mut c = login(&server);
    // A forward as RFC 2046 section 5.2.1 has it: the original is a message/rfc822 part.
    let forward = "From: ann@example.com\r\nTo: bob@example.com\r\nSubject: Fwd: read this\r\n\
        MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"fw\"\r\n\r\n\
        --fw\r\nContent-Type: text/plain\r\n\r\nSee below.\r\n\
        --fw\r\nContent-Type: message/rfc822\r\n\r\n\
        From: carl@example.org\r\nSubject: =?utf-8?q?Budget_f=C3=BCr_2025?=\r\n\r\nThe numbers.\r\n\
        --fw--\r\n";
    append(&mut c, "INBOX", "01-Jan-2024 12:00:00 +0000", "", forward);
    append(
        &mut c,
        "INBOX",
        "01-Jan-2024 12:00:00 +0000",
        "",
        ADDRESSED[0],
    );
    c.command("s", "SELECT INBOX");
    for (keys, want) in [
        ("TEXT \"budget für\"", "1"),
        ("TEXT carl@example.org", "1"),
        ("TEXT \"the numbers\"", "1"),
        ("TEXT \"read this\"", "1"),
        // SUBJECT and FROM are the outer message's; BODY is text, not headers.
        ("SUBJECT budget", ""),
        ("FROM carl", ""),
        ("BODY budget", ""),
        ("BODY \"the numbers\"", "1"),
    ] {
        assert_eq!(search(&mut c, keys), want, "SEARCH {keys}");
    }
}

#[test]
fn thread_reply_chains_with_broken_references() {
    let server = Server::start(1, "", "", USERS);
    let mut c = login(&server);
    let c_ok = c.command("c", "CREATE Threads");
    assert!(c_ok.last().unwrap().starts_with("c OK"), "{c_ok:?}");
    let msg = |minute: u32, subject: &str, extra: &str| {
        format!(
            "From: x@example.com\r\nSubject: {subject}\r\n\
             Date: Mon, 1 Jan 2024 10:{minute:02}:00 +0000\r\n{extra}\r\nbody\r\n"
        )
    };
    let corpus = [
        msg(1, "Plan", "Message-ID: <a@t>\r\n"),
        msg(2, "Re: Plan", "Message-ID: <b@t>\r\nReferences: <a@t>\r\n"),
        // Truncated: only In-Reply-To.
        msg(3, "Re: Plan", "Message-ID: <c@t>\r\nIn-Reply-To: <b@t>\r\n"),
        // Both answer a message that is not in the mailbox.
        msg(
            4,
            "Re: Budget",
            "Message-ID: <d@t>\r\nReferences: <gone@t>\r\n",
        ),
        msg(
            5,
            "Re: Budget",
            "Message-ID: <e@t>\r\nReferences: <gone@t>\r\n",
        ),
        // References itself.
        msg(
            6,
            "Re: Plan",
            "Message-ID: <f@t>\r\nReferences: <a@t> <f@t>\r\n",
        ),
        // No Message-ID or References at all: joined by subject.
        msg(7, "Lunch", ""),
        msg(8, "Re: lunch", ""),
    ];
    for m in &corpus {
        append(&mut c, "Threads", "01-Jan-2024 12:00:00 +0000", "", m);
    }
    c.command("s", "SELECT Threads");
    let caps = common::capabilities(&c.command("c", "CAPABILITY"));
    for cap in ["THREAD=REFERENCES", "THREAD=ORDEREDSUBJECT"] {
        assert!(caps.iter().any(|c| c == cap), "{cap} missing: {caps:?}");
    }
    let t = answer(&mut c, "THREAD REFERENCES UTF-8 ALL", "* THREAD");
    assert_eq!(t, "* THREAD (1 (2 3)(6))((4)(5))(7 8)");
    let t = answer(&mut c, "THREAD ORDEREDSUBJECT UTF-8 ALL", "* THREAD");
    assert_eq!(t, "* THREAD (1 (2)(3)(6))(4 5)(7 8)");
    let t = answer(&mut c, "UID THREAD REFERENCES UTF-8 NOT 2", "* THREAD");
    assert_eq!(t, "* THREAD (1 (3)(6))((4)(5))(7 8)");
    let t = answer(
        &mut c,
        "THREAD REFERENCES UTF-8 SUBJECT nothing",
        "* THREAD",
    );
    assert_eq!(t, "* THREAD");
}

/// BODY and TEXT over implicit TLS on messages of real sizes: a 2.5 MB quoted-printable text
/// part whose words only exist once decoded (so its searchable text is a decoded copy),
/// after a 1 MB attachment, and a 5 MB plain UTF-8 message (its text a reference into the
/// message), each word found only where it is and whatever its case.
#[test]
fn body_and_text_over_tls_find_words_in_large_messages() {
    let server = Server::start(1, "", "max_literal = 67108864\n", USERS);
    let mut c = server.connect_tls();
    c.send("l LOGIN demo secret\r\n");
    assert!(c.until_tagged("l").last().unwrap().starts_with("l OK"));

    // Soft line breaks split every "zebra=\r\nfinch": only the decoded text has the word.
    let mut qp = String::new();
    while qp.len() < 2_500_000 {
        qp.push_str("lorem ipsum dolor =3D sit amet zebra=\r\nfinch consectetur\r\n");
    }
    qp.push_str("last line: marmoset=\r\nwhiskers\r\n");
    let attachment = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=\r\n".repeat(30_000);
    let decoded_only = format!(
        "From: a@example.com\r\nSubject: quoted\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\n\
         Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n\
         {attachment}--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: quoted-printable\r\n\r\n{qp}--b1--\r\n"
    );
    let mut plain = String::from("From: b@example.com\r\nSubject: plain\r\n\r\n");
    while plain.len() < 5_000_000 {
        plain.push_str("the quick brown fox jumps over the lazy dog, grüße\r\n");
    }
    plain.push_str("and at the very end a Quokka\r\n");
    let small = "From: c@example.com\r\nSubject: small\r\n\r\nnothing to see\r\n";
    for m in [&decoded_only, &plain, small] {
        c.send(&format!("ap APPEND INBOX {{{}}}\r\n", m.len()));
        assert!(c.line().starts_with("+ "));
        c.send_bytes(m.as_bytes());
        c.send("\r\n");
        let done = c.until_tagged("ap");
        assert!(done.last().unwrap().starts_with("ap OK"), "{done:?}");
    }
    c.send("s SELECT INBOX\r\n");
    assert!(c.until_tagged("s").last().unwrap().starts_with("s OK"));

    let mut search = |keys: &str| {
        c.send(&format!("t SEARCH {keys}\r\n"));
        let lines = c.until_tagged("t");
        assert!(
            lines.last().unwrap().starts_with("t OK"),
            "{keys}: {lines:?}"
        );
        let found = lines.iter().find(|l| l.starts_with("* SEARCH")).unwrap();
        found.trim_start_matches("* SEARCH").trim().to_string()
    };
    assert_eq!(search("BODY zebrafinch"), "1");
    assert_eq!(search("BODY MARMOSETWHISKERS"), "1");
    assert_eq!(search("TEXT quokka"), "2");
    assert_eq!(search("BODY \"very end a quokka\""), "2");
    assert_eq!(search("TEXT subject"), "1 2 3");
    assert_eq!(search("BODY \"zebra=\""), "");
    assert_eq!(search("OR BODY nothing BODY zebrafinch"), "1 3");
    assert_eq!(search("BODY wombat"), "");
}

/// SEARCH answers far larger than one TLS record's worth of plaintext (rustls buffers 64 KiB)
/// reach a TLS client whole: 24,000 messages, so `UID SEARCH ALL` is one run of consecutive
/// numbers (about 140 KB) and LARGER matches two messages in three (about 95 KB of numbers
/// that are not consecutive), each compared number by number with what was appended.
#[test]
fn large_search_answers_over_tls() {
    const MESSAGES: usize = 24_000;
    // MULTIAPPEND with LITERAL+, within the default 1,024 literals per command.
    const BATCH: usize = 1_000;
    let server = Server::start(1, "", "", USERS);
    let mut c = server.connect_tls();
    c.send("l LOGIN demo secret\r\n");
    assert!(c.until_tagged("l").last().unwrap().starts_with("l OK"));
    let message = |i: usize| {
        let body = if i.is_multiple_of(3) {
            "x"
        } else {
            &"y".repeat(200)
        };
        format!("From: a@example.com\r\nSubject: m{i}\r\n\r\n{body}\r\n")
    };
    for first in (1..=MESSAGES).step_by(BATCH) {
        let mut command = String::from("ap APPEND INBOX");
        for i in first..first + BATCH {
            let m = message(i);
            command.push_str(&format!(" {{{}+}}\r\n{m}", m.len()));
        }
        command.push_str("\r\n");
        c.send(&command);
        let done = c.until_tagged("ap");
        assert!(done.last().unwrap().starts_with("ap OK"), "{done:?}");
    }
    c.send("s SELECT INBOX\r\n");
    assert!(c.until_tagged("s").last().unwrap().starts_with("s OK"));

    let mut search = |command: &str| -> Vec<usize> {
        c.send(&format!("t {command}\r\n"));
        let lines = c.until_tagged("t");
        assert!(lines.last().unwrap().starts_with("t OK"), "{command}");
        let found = lines.iter().find(|l| l.starts_with("* SEARCH")).unwrap();
        found["* SEARCH".len()..]
            .split_whitespace()
            .map(|n| n.parse().unwrap())
            .collect()
    };
    let all: Vec<usize> = (1..=MESSAGES).collect();
    assert_eq!(search("UID SEARCH ALL"), all);
    let larger: Vec<usize> = (1..=MESSAGES).filter(|i| !i.is_multiple_of(3)).collect();
    assert_eq!(search("SEARCH LARGER 150"), larger);
    assert_eq!(search("UID SEARCH LARGER 150"), larger);
}
