//! Real-world style scripts (tests/corpus: Roundcube's and Thunderbird's generated styles,
//! mailing-list sorting, SpamAssassin flags, vacation, ...) on a set of everyday
//! messages (tests/messages), with the actions each must take.

mod common;

use common::{env, summary};
use ringmail_sieve::{Envelope, Input, Limits, MemoryEnvironment, Outcome, Script};

fn read(path: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(path);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn envelope() -> Envelope {
    Envelope {
        from: "bob@example.org".into(),
        to: "alice@example.com".into(),
        orig_to: None,
    }
}

fn run_in(script: &str, message: &str, env: &mut MemoryEnvironment) -> Outcome {
    let src = String::from_utf8(read(&format!("corpus/{script}.sieve"))).unwrap();
    let s = Script::compile(&src, &Limits::default()).unwrap_or_else(|e| panic!("{script}: {e}"));
    let m = read(&format!("messages/{message}.eml"));
    s.evaluate(
        Input {
            message: &m,
            envelope: &envelope(),
        },
        env,
        &Limits::default(),
    )
}

/// Runs `script` on each message and compares with the expected action summaries.
fn check(script: &str, expected: &[(&str, &[&str])]) {
    let mut failures = Vec::new();
    for (message, want) in expected {
        let got = summary(&run_in(script, message, &mut env()));
        if got != *want {
            failures.push(format!("{script} × {message}: got {got:?}, want {want:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

const ALL: &[&str] = &[
    "personal",
    "list",
    "spam",
    "multipart",
    "encoded",
    "boss",
    "newsletter",
    "tagged",
];

#[test]
fn roundcube_generated_rules() {
    let vac = r#"vacation to bob@example.org subject "Out of office""#;
    check(
        "roundcube",
        &[
            ("personal", &[vac, "implicit-keep"]),
            ("list", &["fileinto Lists"]),
            ("spam", &["fileinto Junk"]),
            ("multipart", &[vac, "implicit-keep"]),
            ("encoded", &[vac, "implicit-keep"]),
            (
                "boss",
                &[
                    "fileinto Boss [\\Flagged] :copy",
                    vac,
                    "implicit-keep [\\Flagged]",
                ],
            ),
            // Precedence: bulk: no auto-reply.
            ("newsletter", &["implicit-keep"]),
            ("tagged", &[vac, "implicit-keep"]),
        ],
    );
}

#[test]
fn thunderbird_addon_rules() {
    check(
        "thunderbird",
        &[
            ("personal", &["implicit-keep"]),
            ("list", &["implicit-keep"]),
            ("spam", &["implicit-keep"]),
            ("multipart", &["redirect orders@example.net", "keep"]),
            ("encoded", &["implicit-keep"]),
            ("boss", &["implicit-keep"]),
            ("newsletter", &["fileinto INBOX.Newsletters [\\Seen]"]),
            ("tagged", &["reject Please remove me from your list."]),
        ],
    );
}

#[test]
fn mailing_list_sorting() {
    check(
        "mailing-lists",
        &[
            ("personal", &["implicit-keep"]),
            ("list", &["fileinto Lists/rust-users :create"]),
            ("spam", &["implicit-keep"]),
            ("newsletter", &["fileinto Lists/unsorted :create"]),
            ("boss", &["implicit-keep"]),
        ],
    );
}

#[test]
fn spamassassin_headers() {
    check(
        "spamassassin",
        &[
            ("personal", &["implicit-keep"]),
            ("list", &["implicit-keep"]),
            ("spam", &["fileinto Junk [\\Seen]"]),
            ("tagged", &["fileinto Junk/maybe"]),
            ("newsletter", &["implicit-keep"]),
        ],
    );
}

#[test]
fn vacation_with_exclusions() {
    let v = |s: &str| format!("vacation to bob@example.org subject {s:?}");
    let personal = v("Re: Lunch tomorrow?");
    let multipart = v("Re: Your order #12345 has shipped");
    let encoded = v("Re: Réunion demain");
    let tagged = v("Re: [SPAM] cheap watches");
    check(
        "vacation",
        &[
            ("personal", &[&personal, "implicit-keep"]),
            ("list", &["implicit-keep"]),
            // To: undisclosed-recipients: not addressed to the user.
            ("spam", &["implicit-keep"]),
            ("multipart", &[&multipart, "implicit-keep"]),
            ("encoded", &[&encoded, "implicit-keep"]),
            ("newsletter", &["implicit-keep"]),
            ("tagged", &[&tagged, "implicit-keep"]),
        ],
    );
    // Answered once: not again for the same handle.
    let mut e = env();
    let first = run_in("vacation", "personal", &mut e);
    e.record(&first);
    let again = run_in("vacation", "boss", &mut e);
    assert_eq!(summary(&again), ["implicit-keep"]);
    assert!(again.notes[0].contains("answered"), "{:?}", again.notes);
}

#[test]
fn untag_spam_with_editheader() {
    for m in ALL {
        let o = run_in("untag-spam", m, &mut env());
        if *m == "tagged" {
            assert_eq!(summary(&o), ["fileinto Junk"]);
            let raw = read("messages/tagged.eml");
            let edited = String::from_utf8(o.edited_message(&raw).into_owned()).unwrap();
            assert!(edited.starts_with("X-Was-Tagged: yes\r\nSubject: cheap watches\r\nFrom: deals@watches.example\r\n"), "{edited}");
            assert!(!edited.contains("[SPAM]"));
            assert!(edited.ends_with("\r\n\r\nBest watches, tracking number included.\r\n"));
        } else {
            assert_eq!(summary(&o), ["implicit-keep"], "{m}");
            assert!(o.edited_header.is_none());
        }
    }
}

#[test]
fn family_forward_and_duplicates() {
    let mut e = env();
    for m in ALL {
        let o = run_in("family", m, &mut e);
        let want: &[&str] = if *m == "boss" {
            &["redirect alice@home.example :copy", "fileinto Friends"]
        } else {
            &["fileinto Friends"]
        };
        assert_eq!(summary(&o), want, "{m}");
        e.record(&o);
    }
    // Delivered again: the ones with a Message-ID are duplicates now.
    for m in ALL {
        let o = run_in("family", m, &mut e);
        let has_id = !matches!(*m, "spam" | "encoded");
        let want: &[&str] = if has_id {
            &["discard"]
        } else {
            &["fileinto Friends"]
        };
        assert_eq!(summary(&o), want, "{m}");
    }
}

#[test]
fn receipts_in_body() {
    check(
        "receipts",
        &[
            ("personal", &["implicit-keep"]),
            ("list", &["implicit-keep"]),
            ("spam", &["implicit-keep"]),
            ("multipart", &["fileinto Receipts [$Receipt]"]),
            ("encoded", &["implicit-keep"]),
            ("boss", &["fileinto Receipts [$Receipt]"]),
            ("newsletter", &["fileinto Receipts [$Receipt]"]),
            ("tagged", &["fileinto Receipts [$Receipt]"]),
        ],
    );
}

#[test]
fn every_corpus_script_survives_serialization() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let src = std::fs::read_to_string(e.unwrap().path()).unwrap();
        let s = Script::compile(&src, &Limits::default()).unwrap();
        let back = Script::from_bytes(&s.to_bytes(), &Limits::default()).unwrap();
        assert_eq!(back.source(), s.source());
        assert_eq!(back.capabilities(), s.capabilities());
        n += 1;
    }
    assert!(n >= 8);
}
