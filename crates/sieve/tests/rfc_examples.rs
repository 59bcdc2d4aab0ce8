//! The examples of the Sieve RFCs, each run on a message made to exercise it, with the
//! actions they must take.

mod common;
use common::*;
use ringmail_sieve::{Action, IncludeLocation, MemoryEnvironment};

fn v(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

// ---- RFC 5228 -------------------------------------------------------------------------

const RFC5228_SECTION9: &str = r#"
#
# Example Sieve Filter
# Declare any optional features or extension used by the script
#
require ["fileinto"];

#
# Handle messages from known mailing lists
# Move messages from IETF filter discussion list to filter mailbox
#
if header :is "Sender" "owner-ietf-mta-filters@imc.org"
        {
        fileinto "filter";  # move to "filter" mailbox
        }
#
# Keep all messages to or from people in my company
#
elsif address :DOMAIN :is ["From", "To"] "example.com"
        {
        keep;               # keep in "In" mailbox
        }

#
# Try and catch unsolicited email.  If a message is not to me,
# or it contains a subject known to be spam, file it away.
#
elsif anyof (NOT address :all :contains
               ["To", "Cc", "Bcc"] "me@example.com",
             header :matches "subject"
               ["*make*money*fast*", "*university*dipl*mas*"])
        {
        fileinto "spam";   # move to "spam" mailbox
        }
else
        {
        # Move all other (non-company) mail to "personal"
        # mailbox.
        fileinto "personal";
        }
"#;

#[test]
fn rfc5228_section9_example_filter() {
    let list = msg(
        "Sender: owner-ietf-mta-filters@imc.org\nFrom: x@imc.org\nTo: me@example.com\nSubject: hi",
        "",
    );
    assert_eq!(actions(RFC5228_SECTION9, &list), v(&["fileinto filter"]));
    let company = msg(
        "From: boss@example.com\nTo: me@example.com\nSubject: hi",
        "",
    );
    assert_eq!(actions(RFC5228_SECTION9, &company), v(&["keep"]));
    let spam = msg("From: a@spam.example\nTo: list@lists.example\nCc: me@example.com\nSubject: Make lots of MONEY very fast", "");
    assert_eq!(actions(RFC5228_SECTION9, &spam), v(&["fileinto spam"]));
    let not_me = msg(
        "From: a@other.example\nTo: you@elsewhere.example\nSubject: hello",
        "",
    );
    assert_eq!(actions(RFC5228_SECTION9, &not_me), v(&["fileinto spam"]));
    let personal = msg("From: friend@other.example\nTo: friends@other.example\nCc: me@example.com\nSubject: dinner", "");
    assert_eq!(
        actions(RFC5228_SECTION9, &personal),
        v(&["fileinto personal"])
    );
}

#[test]
fn rfc5228_if_elsif_else() {
    let s = r#"require "fileinto";
        if header :contains "from" "coyote" { discard; }
        elsif header :contains ["subject"] ["$$$"] { discard; }
        else { fileinto "INBOX"; }"#;
    assert_eq!(
        actions(s, &msg("From: coyote@desert.example.org", "")),
        v(&["discard"])
    );
    assert_eq!(
        actions(s, &msg("From: a@b.c\nSubject: win $$$", "")),
        v(&["discard"])
    );
    assert_eq!(
        actions(s, &msg("From: a@b.c\nSubject: hi", "")),
        v(&["fileinto INBOX"])
    );
}

#[test]
fn rfc5228_redirect_and_implicit_keep() {
    assert_eq!(
        actions(r#"redirect "bart@example.com";"#, &msg("Subject: x", "")),
        v(&["redirect bart@example.com"])
    );
    // No action at all: implicit keep.
    assert_eq!(
        actions("if false { discard; }", &msg("Subject: x", "")),
        v(&["implicit-keep"])
    );
    // stop ends the script before later actions.
    assert_eq!(
        actions("stop; discard;", &msg("Subject: x", "")),
        v(&["implicit-keep"])
    );
    // Duplicate actions are one (§2.10.3); keep is a store into INBOX.
    let s = r#"require ["fileinto", "copy"]; fileinto "INBOX"; keep; redirect "a@b.example"; redirect "A@b.example"; discard; discard;"#;
    assert_eq!(
        actions(s, &msg("Subject: x", "")),
        v(&["fileinto INBOX", "redirect a@b.example", "discard"])
    );
    let s = r#"require ["fileinto", "copy"]; fileinto :copy "INBOX";"#;
    assert_eq!(
        actions(s, &msg("Subject: x", "")),
        v(&["fileinto INBOX :copy"])
    );
}

#[test]
fn rfc5228_address_envelope_exists_size() {
    let m = msg(
        "From: Tim <tim@example.com>\nDate: Fri, 15 Mar 2024 10:00:00 +0000",
        "hello",
    );
    assert_eq!(
        actions(
            r#"if address :is :all "from" "tim@example.com" { discard; }"#,
            &m
        ),
        v(&["discard"])
    );
    assert_eq!(
        actions(r#"if address :localpart "from" "TIM" { discard; }"#, &m),
        v(&["discard"])
    );
    let s = r#"require "envelope"; if envelope :all :is "from" "sender@example.org" { discard; }"#;
    assert_eq!(actions(s, &m), v(&["discard"]));
    assert_eq!(
        actions(r#"if exists ["From","Date"] { discard; }"#, &m),
        v(&["discard"])
    );
    assert_eq!(
        actions(r#"if exists ["From","X-None"] { discard; }"#, &m),
        v(&["implicit-keep"])
    );
    assert_eq!(
        actions("if size :over 500K { discard; }", &m),
        v(&["implicit-keep"])
    );
    assert_eq!(
        actions("if size :under 1K { discard; }", &m),
        v(&["discard"])
    );
}

#[test]
fn rfc5228_match_types_and_comparators() {
    let m = msg("Subject: MAKE MONEY FAST\nX-Num: 0042", "");
    assert_eq!(
        actions(
            r#"if header :is "Subject" "make money fast" { discard; }"#,
            &m
        ),
        v(&["discard"])
    );
    assert_eq!(
        actions(
            r#"if header :is :comparator "i;octet" "Subject" "make money fast" { discard; }"#,
            &m
        ),
        v(&["implicit-keep"])
    );
    assert_eq!(
        actions(
            r#"if header :matches "Subject" "MAKE*FA?T" { discard; }"#,
            &m
        ),
        v(&["discard"])
    );
    assert_eq!(
        actions(
            r#"require "comparator-i;ascii-numeric"; if header :is :comparator "i;ascii-numeric" "X-Num" "42" { discard; }"#,
            &m
        ),
        v(&["discard"])
    );
}

#[test]
fn rfc5228_encoded_character() {
    let s = r#"require ["encoded-character", "fileinto"]; fileinto "$${hex:24 24}${unicode:40}";"#;
    assert_eq!(actions(s, &msg("Subject: x", "")), v(&["fileinto $$$@"]));
}

#[test]
fn rfc5228_mime_encoded_headers_are_decoded() {
    let m = msg("Subject: =?ISO-8859-1?Q?Caf=E9_au_lait?=", "");
    assert_eq!(
        actions(r#"if header :contains "subject" "Café" { discard; }"#, &m),
        v(&["discard"])
    );
}

// ---- RFC 5429 reject -------------------------------------------------------------------

#[test]
fn rfc5429_reject() {
    let s = r#"require ["reject"];
        if header :contains "from" "coyote@desert.example.org" {
            reject text:
I am not taking mail from you, and I don't
want your birdseed, either!
.
;
        }"#;
    let o = run(s, &msg("From: coyote@desert.example.org", ""));
    assert_eq!(
        o.actions,
        vec![Action::Reject {
            reason: "I am not taking mail from you, and I don't\r\nwant your birdseed, either!\r\n"
                .into(),
            extended: false
        }]
    );
    let e = r#"require "ereject"; ereject "no thanks";"#;
    assert_eq!(
        actions(e, &msg("From: a@b.c", "")),
        v(&["ereject no thanks"])
    );
    // reject and fileinto cannot both happen: a run-time error, then keep.
    let c = actions(
        r#"require ["reject","fileinto"]; fileinto "X"; reject "no";"#,
        &msg("From: a@b.c", ""),
    );
    assert_eq!(c[0], "implicit-keep");
    assert!(c[1].contains("conflicts"), "{c:?}");
}

// ---- RFC 3894 copy, RFC 5490 mailbox, RFC 8579 special-use ------------------------------

#[test]
fn rfc3894_copy() {
    let s = r#"require ["copy", "fileinto"]; fileinto :copy "incoming"; redirect :copy "b@example.net";"#;
    assert_eq!(
        actions(s, &msg("Subject: x", "")),
        v(&[
            "fileinto incoming :copy",
            "redirect b@example.net :copy",
            "implicit-keep"
        ])
    );
}

#[test]
fn rfc5490_mailbox() {
    let s = r#"require ["fileinto", "mailbox"];
        if mailboxexists "Partners" { fileinto "Partners"; } else { fileinto :create "INBOX.Partners"; }"#;
    let m = msg("Subject: x", "");
    assert_eq!(actions(s, &m), v(&["fileinto INBOX.Partners :create"]));
    let mut e = env().with_mailbox("Partners", &[]);
    assert_eq!(
        summary(&run_full(s, &m, &mut e, &envelope())),
        v(&["fileinto Partners"])
    );
}

#[test]
fn rfc8579_special_use() {
    let s = r#"require ["fileinto", "special-use"];
        if specialuse_exists "\\Junk" { fileinto :specialuse "\\Junk" "Spam"; }
        else { fileinto "Spam"; }"#;
    let m = msg("Subject: x", "");
    assert_eq!(actions(s, &m), v(&["fileinto Spam"]));
    let mut e = env().with_mailbox("Junk", &["\\Junk"]);
    assert_eq!(
        summary(&run_full(s, &m, &mut e, &envelope())),
        v(&["fileinto Spam :specialuse \\Junk"])
    );
    let s2 =
        r#"require "special-use"; if specialuse_exists "Junk" ["\\Junk", "\\Trash"] { discard; }"#;
    let mut e = env().with_mailbox("Junk", &["\\Junk", "\\Trash"]);
    assert_eq!(
        summary(&run_full(s2, &m, &mut e, &envelope())),
        v(&["discard"])
    );
    assert!(
        compile_err(r#"require "special-use"; if specialuse_exists "Junk" { stop; }"#)
            .contains("special-use flag")
    );
}

// ---- RFC 5229 variables ------------------------------------------------------------------

#[test]
fn rfc5229_modifiers() {
    let s = r#"require ["variables", "fileinto"];
        set "a" "juMBlEd lETteRS";
        set :length "b" "${a}"; fileinto "${b}";
        set :lower "b" "${a}"; fileinto "${b}";
        set :upperfirst "b" "${a}"; fileinto "${b}";
        set :upperfirst :lower "b" "${a}"; fileinto "${b}";
        set :quotewildcard "b" "Rock*"; fileinto "${b}";"#;
    assert_eq!(
        actions(s, &msg("Subject: x", "")),
        v(&[
            "fileinto 15",
            "fileinto jumbled letters",
            "fileinto JuMBlEd lETteRS",
            "fileinto Jumbled letters",
            "fileinto Rock\\*"
        ])
    );
}

#[test]
fn rfc5229_match_variables() {
    let s = r#"require ["fileinto", "variables"];
        if header :matches "List-ID" "*<*@*" {
            fileinto "INBOX.lists.${2}"; stop;
        }
        # Imagine the header
        # Subject: [acme-users] [fwd] version 1.0 is out
        if header :matches "Subject" "[*] *" {
            # ${1} will hold "acme-users",
            # ${2} will hold "[fwd] version 1.0 is out"
            fileinto "INBOX.lists.${1}"; stop;
        }
        # Imagine the header
        # To: coyote@ACME.Example.COM
        if address :matches ["To", "Cc"] ["coyote@**.com",
                "wile@**.com"] {
            # ${0} is the matching address
            # ${1} is always the empty string
            # ${2} is part of the domain name ("ACME.Example")
            fileinto "INBOX.business.${2}"; stop;
        } else {
            # Control wouldn't reach this block if any match was
            # successful, so no match variables are set at this
            # point.
        }
        if anyof (true, address :domain :matches "To" "*.com") {
            # The second test is never evaluated, so there are
            # still no match variables set.
            stop;
        }"#;
    assert_eq!(
        actions(
            s,
            &msg("List-ID: Sieve discussion <sieve.ietf.org@example.org>", "")
        ),
        v(&["fileinto INBOX.lists.sieve.ietf.org"])
    );
    assert_eq!(
        actions(
            s,
            &msg("Subject: [acme-users] [fwd] version 1.0 is out", "")
        ),
        v(&["fileinto INBOX.lists.acme-users"])
    );
    assert_eq!(
        actions(s, &msg("To: coyote@ACME.Example.COM", "")),
        v(&["fileinto INBOX.business.ACME.Example"])
    );
    assert_eq!(actions(s, &msg("To: x@y.org", "")), v(&["implicit-keep"]));
}

#[test]
fn rfc5229_string_test_and_set() {
    let s = r#"require ["variables", "fileinto", "relational", "comparator-i;ascii-numeric"];
        set "honorific" "Mr";
        set "first_name" "Wile";
        set "last_name" "Coyote";
        set "vacation" text:
Dear ${HONORIFIC} ${last_name},
I'm out, please leave a message after the meep.
.
;
        if string :matches "${vacation}" "Dear Mr Coyote,*" { fileinto "ok"; }
        if string :count "eq" :comparator "i;ascii-numeric" ["${unset}", "${first_name}"] "1" { fileinto "count"; }
        if string :is "${fo\o}" "" { fileinto "empty"; }"#;
    assert_eq!(
        actions(s, &msg("Subject: x", "")),
        v(&["fileinto ok", "fileinto count", "fileinto empty"])
    );
}

// ---- RFC 5230 vacation, RFC 6131 vacation-seconds ----------------------------------------

#[test]
fn rfc5230_vacation() {
    let s = r#"require "vacation";
        if header :contains "subject" "cyrus" {
            vacation "I'm out -- send mail to cyrus-bugs";
        } else {
            vacation "I'm out -- call me at +1 304 555 0123";
        }"#;
    let m = msg("From: sender@example.org\nTo: alice@example.com\nSubject: cyrus is broken\nMessage-ID: <1@example.org>", "");
    let o = run(s, &m);
    let Action::Vacation(vac) = &o.actions[0] else {
        panic!("{:?}", o.actions)
    };
    assert_eq!(vac.reason, "I'm out -- send mail to cyrus-bugs");
    assert_eq!(vac.subject, "Auto: cyrus is broken");
    assert_eq!(vac.to, SENDER);
    assert_eq!(vac.from, RCPT);
    assert_eq!(vac.period, 7 * 86400);
    assert_eq!(vac.in_reply_to.as_deref(), Some("<1@example.org>"));
    assert!(matches!(o.actions[1], Action::Keep { implicit: true, .. }));
}

#[test]
fn rfc5230_vacation_days_addresses_and_handle() {
    let s = r#"require "vacation";
        vacation :days 23 :addresses ["tjs@example.edu",
                                      "ts4z@landru.example.edu"]
        "I'm away until October 19.
        If it's an emergency, call 911, I guess." ;"#;
    let to_alias = msg(
        "From: sender@example.org\nTo: ts4z@landru.example.edu\nSubject: hi",
        "",
    );
    let o = run(s, &to_alias);
    let Action::Vacation(vac) = &o.actions[0] else {
        panic!("{:?}", o)
    };
    assert_eq!(vac.period, 23 * 86400);
    // Not addressed to the user at all: no reply (RFC 5230 §4.5).
    let o = run(
        s,
        &msg(
            "From: sender@example.org\nTo: other@example.net\nSubject: hi",
            "",
        ),
    );
    assert_eq!(summary(&o), v(&["implicit-keep"]));
    assert!(o.notes[0].contains("not in To"), "{:?}", o.notes);

    // :handle: both texts share one handle, so the second is not sent again.
    let h = r#"require "vacation";
        if header :contains "subject" "lunch" {
            vacation :handle "ran-away" "I'm out and can't meet for lunch";
        } else {
            vacation :handle "ran-away" "I'm out";
        }"#;
    let mut e = env();
    let m1 = msg("To: alice@example.com\nSubject: lunch?", "");
    let o1 = run_full(h, &m1, &mut e, &envelope());
    assert!(matches!(&o1.actions[0], Action::Vacation(v) if v.handle == "ran-away"));
    e.record(&o1);
    let m2 = msg("To: alice@example.com\nSubject: other", "");
    assert_eq!(
        summary(&run_full(h, &m2, &mut e, &envelope())),
        v(&["implicit-keep"])
    );
}

#[test]
fn rfc5230_no_reply_to_lists_and_robots() {
    let s = r#"require "vacation"; vacation "away";"#;
    for header in [
        "To: alice@example.com\nList-Id: <x.example.org>",
        "To: alice@example.com\nPrecedence: bulk",
        "To: alice@example.com\nAuto-Submitted: auto-replied",
    ] {
        assert_eq!(
            actions(s, &msg(header, "")),
            v(&["implicit-keep"]),
            "{header}"
        );
    }
    let mut robot = envelope();
    robot.from = "MAILER-DAEMON@example.org".into();
    assert_eq!(
        summary(&run_full(
            s,
            &msg("To: alice@example.com", ""),
            &mut env(),
            &robot
        )),
        v(&["implicit-keep"])
    );
    let mut null = envelope();
    null.from = String::new();
    assert_eq!(
        summary(&run_full(
            s,
            &msg("To: alice@example.com", ""),
            &mut env(),
            &null
        )),
        v(&["implicit-keep"])
    );
}

#[test]
fn rfc5230_mime_and_rfc6131_seconds() {
    let s = r#"require ["vacation", "vacation-seconds"];
        vacation :seconds 1800 :mime :subject "Gone" text:
Content-Type: text/plain; charset=utf-8

I'm away.
.
;"#;
    let o = run(s, &msg("To: alice@example.com\nSubject: hi", ""));
    let Action::Vacation(vac) = &o.actions[0] else {
        panic!("{o:?}")
    };
    assert!(vac.mime);
    assert_eq!(vac.subject, "Gone");
    // Below the minimum period of one day: raised to it.
    assert_eq!(vac.period, 86400);
    assert!(compile_err(r#"require "vacation"; vacation :seconds 10 "x";"#).contains(":seconds"));
}

// ---- RFC 5232 imap4flags -----------------------------------------------------------------

#[test]
fn rfc5232_flags() {
    let s = r#"require ["imap4flags", "fileinto", "variables"];
        if header :contains "from" "boss@frobnitzm.example.edu" {
            setflag "flagvar" "\\Flagged";
            fileinto :flags "${flagvar}" "INBOX.From Boss";
        }
        addflag "\\Seen Junk";
        removeflag "Junk";
        if hasflag :contains "\\Seen" { addflag "Checked"; }"#;
    assert_eq!(
        actions(s, &msg("From: boss@frobnitzm.example.edu", "")),
        v(&["fileinto INBOX.From Boss [\\Flagged]"])
    );
    assert_eq!(
        actions(s, &msg("From: x@y.z", "")),
        v(&["implicit-keep [\\Seen Checked]"])
    );
    let c = r#"require ["imap4flags", "relational", "comparator-i;ascii-numeric"];
        addflag ["a", "b", "c"];
        if hasflag :count "ge" :comparator "i;ascii-numeric" "2" { keep :flags "many"; }"#;
    assert_eq!(actions(c, &msg("Subject: x", "")), v(&["keep [many]"]));
}

// ---- RFC 5231 relational -----------------------------------------------------------------

#[test]
fn rfc5231_relational() {
    let s = r#"require ["relational", "comparator-i;ascii-numeric", "fileinto"];
        if header :value "lt" :comparator "i;ascii-numeric" ["x-priority"] ["3"] {
            fileinto "Priority";
        }
        elsif address :count "gt" :comparator "i;ascii-numeric" ["to"] ["5"] {
            fileinto "SPAM";
        }
        elsif address :value "gt" :all :comparator "i;ascii-casemap" ["from"] ["M"] {
            fileinto "From N-Z";
        } else {
            fileinto "From A-M";
        }
        if allof ( address :count "eq" :comparator "i;ascii-numeric" ["to", "cc"] ["1"] ,
                   address :all :comparator "i;ascii-casemap" ["to", "cc"] ["me@foo.example.com"] ) {
            fileinto "Only me";
        }"#;
    // The RFC's own example message.
    let m = msg(
        "Received: ...\nReceived: ...\nSubject: example\nTo: foo@example.com, baz@example.com\nCC: qux@example.com",
        "",
    );
    assert_eq!(actions(s, &m), v(&["fileinto From A-M"]));
    let urgent = msg(
        "X-Priority: 1\nTo: me@foo.example.com\nFrom: zed@example.com",
        "",
    );
    assert_eq!(
        actions(s, &urgent),
        v(&["fileinto Priority", "fileinto Only me"])
    );
    let many = msg("To: a@x, b@x, c@x, d@x, e@x, f@x\nFrom: a@x", "");
    assert_eq!(actions(s, &many), v(&["fileinto SPAM"]));
    let nz = msg("To: a@x\nFrom: zed@example.com", "");
    assert_eq!(actions(s, &nz), v(&["fileinto From N-Z"]));
}

// ---- RFC 5233 subaddress -----------------------------------------------------------------

#[test]
fn rfc5233_subaddress() {
    let s = r#"require ["envelope", "subaddress", "fileinto"];
        # In this example the same user account receives mail for both
        # "ken@example.com" and "postmaster@example.com"

        # File all messages to postmaster into a single mailbox,
        # ignoring the :detail part.
        if envelope :user "to" "postmaster" {
            fileinto "inbox.postmaster";
            stop;
        }

        # File mailing list messages (subscribed as "ken+mta-filters").
        if envelope :detail "to" "mta-filters" {
            fileinto "inbox.ietf-mta-filters";
        }

        # Redirect all mail sent to "ken+foo".
        if envelope :detail "to" "foo" {
            redirect "ken@example.net";
        }"#;
    let m = msg("Subject: x", "");
    let mut e = envelope();
    e.to = "postmaster+x@example.com".into();
    assert_eq!(
        summary(&run_full(s, &m, &mut env(), &e)),
        v(&["fileinto inbox.postmaster"])
    );
    e.to = "ken+mta-filters@example.com".into();
    assert_eq!(
        summary(&run_full(s, &m, &mut env(), &e)),
        v(&["fileinto inbox.ietf-mta-filters"])
    );
    e.to = "ken+foo@example.com".into();
    assert_eq!(
        summary(&run_full(s, &m, &mut env(), &e)),
        v(&["redirect ken@example.net"])
    );
    e.to = "ken@example.com".into();
    assert_eq!(
        summary(&run_full(s, &m, &mut env(), &e)),
        v(&["implicit-keep"])
    );
    // An empty detail ("ken+@") matches "", no separator matches nothing.
    let d = r#"require ["envelope", "subaddress"]; if envelope :detail "to" "" { discard; }"#;
    e.to = "ken+@example.com".into();
    assert_eq!(summary(&run_full(d, &m, &mut env(), &e)), v(&["discard"]));
    e.to = "ken@example.com".into();
    assert_eq!(
        summary(&run_full(d, &m, &mut env(), &e)),
        v(&["implicit-keep"])
    );
}

// ---- RFC 5260 date and index -------------------------------------------------------------

#[test]
fn rfc5260_date() {
    let s = r#"require ["date", "relational", "fileinto"];
        if allof(header :is "from" "boss@example.com",
                 date :value "ge" :originalzone "date" "hour" "09",
                 date :value "lt" :originalzone "date" "hour" "17")
        { fileinto "urgent"; }"#;
    let work = msg(
        "From: boss@example.com\nDate: Fri, 15 Mar 2024 10:00:00 -0800",
        "",
    );
    assert_eq!(actions(s, &work), v(&["fileinto urgent"]));
    let late = msg(
        "From: boss@example.com\nDate: Fri, 15 Mar 2024 19:00:00 -0800",
        "",
    );
    assert_eq!(actions(s, &late), v(&["implicit-keep"]));

    let cur = r#"require ["date", "relational", "vacation"];
        if allof(currentdate :value "ge" "date" "2024-03-10",
                 currentdate :value "le" "date" "2024-03-17")
        { vacation :days 7 "I'm away during the second week in March."; }"#;
    let o = run(cur, &msg("To: alice@example.com", ""));
    assert!(matches!(o.actions[0], Action::Vacation(_)), "{o:?}");

    let vars = r#"require ["date", "variables", "fileinto"];
        if currentdate :matches "year" "*" { set "year" "${1}"; }
        if currentdate :matches "month" "*" { set "month" "${1}"; }
        if currentdate :is "weekday" "5" { fileinto "INBOX.${year}-${month}"; }"#;
    assert_eq!(
        actions(vars, &msg("Subject: x", "")),
        v(&["fileinto INBOX.2024-03"])
    );

    let zone =
        r#"require ["date"]; if date :zone "+0100" :is "date" "time" "19:00:00" { discard; }"#;
    assert_eq!(
        actions(zone, &msg("Date: Fri, 15 Mar 2024 10:00:00 -0800", "")),
        v(&["discard"])
    );
    let bad = msg("Date: not a date", "");
    assert_eq!(actions(zone, &bad), v(&["implicit-keep"]));
}

#[test]
fn rfc5260_index() {
    let s = r#"require ["date", "relational", "index"];
        if date :value "gt" :index 2 :zone "-0500" "received"
                "iso8601" "2007-02-26T09:00:00-05:00"
        { redirect "aftercutoff@example.org"; }"#;
    let m = msg(
        "Received: from a by b; Mon, 26 Feb 2007 10:00:00 -0500\nReceived: from c by d; Mon, 26 Feb 2007 09:30:00 -0500\nReceived: from e by f; Mon, 26 Feb 2007 08:00:00 -0500",
        "",
    );
    assert_eq!(actions(s, &m), v(&["redirect aftercutoff@example.org"]));
    let early = msg(
        "Received: from a by b; Mon, 26 Feb 2007 10:00:00 -0500\nReceived: from c by d; Mon, 26 Feb 2007 08:30:00 -0500",
        "",
    );
    assert_eq!(actions(s, &early), v(&["implicit-keep"]));
    let last =
        r#"require ["index"]; if header :index 1 :last :contains "x-a" "three" { discard; }"#;
    assert_eq!(
        actions(last, &msg("X-A: one\nX-A: two\nX-A: three", "")),
        v(&["discard"])
    );
    assert!(
        compile_err(r#"require "index"; if header :last "x" "y" { stop; }"#)
            .contains(":last needs :index")
    );
}

// ---- RFC 5173 body -----------------------------------------------------------------------

#[test]
fn rfc5173_body() {
    let s = r#"require ["body", "fileinto"];
        if body :text :contains "MAKE MONEY FAST" { discard; }
        elsif body :raw :contains "=E9" { fileinto "raw"; }
        elsif body :content "image" :contains "" { fileinto "images"; }"#;
    let plain = msg(
        "Content-Type: text/plain\nSubject: x",
        "please make money fast now",
    );
    assert_eq!(actions(s, &plain), v(&["discard"]));
    let qp = msg(
        "Content-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable",
        "caf=E9",
    );
    assert_eq!(actions(s, &qp), v(&["fileinto raw"]));
    let decoded = r#"require "body"; if body :text :contains "café" { discard; }"#;
    assert_eq!(actions(decoded, &qp), v(&["discard"]));
    let multi = msg(
        "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b\"",
        "--b\nContent-Type: text/plain\n\nhello\n--b\nContent-Type: image/png\nContent-Transfer-Encoding: base64\n\naGVsbG8=\n--b--",
    );
    assert_eq!(actions(s, &multi), v(&["fileinto images"]));
    let html = msg("Content-Type: text/html", "<p>Make <b>money</b> fast</p>");
    assert_eq!(
        actions(
            r#"require "body"; if body :text :contains "make money fast" { discard; }"#,
            &html
        ),
        v(&["discard"])
    );
}

// ---- RFC 5293 editheader -----------------------------------------------------------------

#[test]
fn rfc5293_editheader() {
    let s = r#"require ["editheader", "variables", "fileinto"];
        if header :matches "Subject" "*" { addheader "X-Original-Subject" "${1}"; }
        deleteheader "X-Spam-Score";
        addheader :last "X-Sieve" "filtered";
        deleteheader :index 1 :last "X-Trace";
        deleteheader :matches "X-Tag" "drop*";
        if header :is "X-Sieve" "filtered" { fileinto "seen-own-header"; }
        if not exists "X-Spam-Score" { fileinto "deleted"; }"#;
    let raw = msg(
        "Subject: hello\nX-Spam-Score: 5\nX-Trace: 1\nX-Trace: 2\nX-Tag: keep me\nX-Tag: drop me",
        "body",
    );
    let o = run(s, &raw);
    assert_eq!(
        summary(&o),
        v(&["fileinto seen-own-header", "fileinto deleted"])
    );
    let edited = String::from_utf8(o.edited_message(&raw).into_owned()).unwrap();
    assert_eq!(
        edited,
        "X-Original-Subject: hello\r\nSubject: hello\r\nX-Trace: 1\r\nX-Tag: keep me\r\nX-Sieve: filtered\r\n\r\nbody\r\n"
    );
    assert!(compile_err(r#"require "editheader"; deleteheader "Received";"#).contains("protected"));
    // Non-ASCII values go in as encoded words.
    let u = run(
        r#"require "editheader"; addheader "X-Note" "café";"#,
        &msg("Subject: x", ""),
    );
    let e = String::from_utf8(u.edited_message(&msg("Subject: x", "")).into_owned()).unwrap();
    assert!(e.starts_with("X-Note: =?UTF-8?B?Y2Fmw6k=?=\r\n"), "{e}");
}

// ---- RFC 6609 include --------------------------------------------------------------------

#[test]
fn rfc6609_include() {
    let main = r#"require ["include"];
        include :personal "always_allow";
        include :global "spam_tests";
        include :personal "spam_tests";
        include :personal "mailing_lists";"#;
    let mut e = env()
        .with_script(
            IncludeLocation::Personal,
            "always_allow",
            r#"
            if address :is "from" "boss@example.com" { keep; }"#,
        )
        .with_script(
            IncludeLocation::Global,
            "spam_tests",
            r#"require ["fileinto"];
            if header :contains "X-Spam" "yes" { fileinto "Spam"; stop; }"#,
        )
        .with_script(
            IncludeLocation::Personal,
            "spam_tests",
            r#"require ["fileinto"];
            if header :contains "subject" "viagra" { fileinto "Spam"; stop; }"#,
        )
        .with_script(
            IncludeLocation::Personal,
            "mailing_lists",
            r#"require ["fileinto"];
            if exists "list-id" { fileinto "Lists"; }"#,
        );
    let boss = msg("From: boss@example.com\nList-Id: <l.example.com>", "");
    assert_eq!(
        summary(&run_full(main, &boss, &mut e, &envelope())),
        v(&["keep", "fileinto Lists"])
    );
    let spam = msg("From: x@example.net\nX-Spam: yes\nList-Id: <l>", "");
    // stop in an included script ends everything.
    assert_eq!(
        summary(&run_full(main, &spam, &mut e, &envelope())),
        v(&["fileinto Spam"])
    );
}

#[test]
fn rfc6609_global_variables_and_return() {
    let main = r#"require ["variables", "include", "relational", "fileinto"];
        global "test";
        global "test_mailbox";

        set "test" "$$";
        include "subject_tests";

        set "test" "Make money";
        include "subject_tests";

        if string :count "eq" "${test_mailbox}" "1" {
            fileinto "${test_mailbox}";
            stop;
        }"#;
    let sub = r#"require ["variables", "include"];
        global ["test", "test_mailbox"];
        if header :contains "Subject" "${test}" {
            set "test_mailbox" "spam-${test}";
        }"#;
    let mut e = env().with_script(IncludeLocation::Personal, "subject_tests", sub);
    let m = msg("Subject: Make money now", "");
    assert_eq!(
        summary(&run_full(main, &m, &mut e, &envelope())),
        v(&["fileinto spam-Make money"])
    );

    let ret = r#"require ["include"]; include "r"; discard;"#;
    let mut e = env().with_script(
        IncludeLocation::Personal,
        "r",
        r#"require ["include", "fileinto"]; fileinto "a"; return; fileinto "b";"#,
    );
    assert_eq!(
        summary(&run_full(ret, &m, &mut e, &envelope())),
        v(&["fileinto a", "discard"])
    );
}

#[test]
fn rfc6609_once_optional_and_missing() {
    let s = r#"require ["include"];
        include :once "lib"; include :once "lib"; include :optional "absent";"#;
    let mut e = env().with_script(
        IncludeLocation::Personal,
        "lib",
        r#"require ["imap4flags"]; addflag "x"; addflag "${x}y";"#,
    );
    let m = msg("Subject: x", "");
    // lib ran once (one "x"); the literal "${x}y" stays since lib lacks variables.
    assert_eq!(
        summary(&run_full(s, &m, &mut e, &envelope())),
        v(&["implicit-keep [x ${x}y]"])
    );
    let missing = run_full(
        r#"require "include"; include "absent";"#,
        &m,
        &mut e,
        &envelope(),
    );
    assert_eq!(missing.actions.len(), 1);
    assert!(missing.errors[0].message.contains("does not exist"));
}

// ---- RFC 7352 duplicate ------------------------------------------------------------------

#[test]
fn rfc7352_duplicate() {
    let s = r#"require ["duplicate", "fileinto", "mailbox"];
        if duplicate { fileinto :create "Trash/Duplicate"; }"#;
    let m = msg("Message-ID: <abc@example.org>\nSubject: x", "");
    let mut e = env();
    let first = run_full(s, &m, &mut e, &envelope());
    assert_eq!(summary(&first), v(&["implicit-keep"]));
    assert_eq!(first.duplicates[0].id, "<abc@example.org>");
    e.record(&first);
    let second = run_full(s, &m, &mut e, &envelope());
    assert_eq!(summary(&second), v(&["fileinto Trash/Duplicate :create"]));
    // Without :last a duplicate is not recorded again.
    assert!(second.duplicates.is_empty());

    let alerts = r#"require ["duplicate", "variables", "imap4flags", "fileinto"];
        if header :matches "subject" "ALERT: *" {
            if duplicate :seconds 60 :uniqueid "${1}" { setflag "\\seen"; }
            fileinto "Alerts";
        }"#;
    let mut e = MemoryEnvironment::new();
    let a1 = run_full(
        alerts,
        &msg("Subject: ALERT: disk full", ""),
        &mut e,
        &envelope(),
    );
    assert_eq!(summary(&a1), v(&["fileinto Alerts"]));
    assert_eq!(a1.duplicates[0].seconds, 60);
    e.record(&a1);
    let a2 = run_full(
        alerts,
        &msg("Subject: ALERT: disk full", ""),
        &mut e,
        &envelope(),
    );
    assert_eq!(summary(&a2), v(&["fileinto Alerts [\\seen]"]));
    // A message without Message-ID is never a duplicate.
    assert_eq!(actions(s, &msg("Subject: x", "")), v(&["implicit-keep"]));
}

// ---- draft-ietf-sieve-regex --------------------------------------------------------------

#[test]
fn regex_match_type() {
    let s = r#"require ["regex", "variables", "fileinto"];
        if header :regex "subject" "^\\[([a-z0-9-]+)\\] (.*)$" { fileinto "lists.${1}"; }
        if address :regex :localpart "from" "^(bob|alice)$" { addflag_ok; }"#;
    assert!(compile_err(s).contains("unknown command"));
    let s = r#"require ["regex", "variables", "fileinto"];
        if header :regex "subject" "^\\[([a-z0-9-]+)\\] (.*)$" { fileinto "lists.${1}"; }
        if header :regex :comparator "i;octet" "subject" "HELLO" { fileinto "octet"; }
        set :quoteregex "q" "a.b";
        if string :regex "axb" "${q}" { fileinto "wrong"; }"#;
    assert_eq!(
        actions(s, &msg("Subject: [Rust-Users] hello", "")),
        v(&["fileinto lists.Rust-Users"])
    );
    assert!(
        compile_err(r#"require "regex"; if header :regex "s" "(" { stop; }"#)
            .contains("invalid regular expression")
    );
}
