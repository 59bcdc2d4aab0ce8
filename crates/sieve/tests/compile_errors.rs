//! What upload (ManageSieve PUTSCRIPT) refuses, and that the reason says where and why;
//! and the serialized form for the store.

use ringmail_sieve::{CompileError, Limits, Script, CAPABILITIES, FORMAT_VERSION};

fn err(src: &str) -> CompileError {
    match Script::compile(src, &Limits::default()) {
        Ok(_) => panic!("compiled:\n{src}"),
        Err(e) => e,
    }
}

#[test]
fn errors_carry_line_column_and_reason() {
    let cases: &[(&str, u32, u32, &str)] = &[
        ("keep;\n  fileinto \"x\";", 2, 3, "fileinto requires the \"fileinto\" extension"),
        ("require \"frobnicate\";", 1, 9, "unknown extension \"frobnicate\""),
        ("keep;\nrequire \"fileinto\";", 2, 1, "require must come before any other command"),
        ("if true { require \"fileinto\"; }", 1, 11, "require must come before"),
        ("frobnicate;", 1, 1, "unknown command 'frobnicate'"),
        ("if frob { keep; }", 1, 4, "unknown test 'frob'"),
        ("keep", 1, 5, "expected ';' or '{'"),
        ("if true keep;", 1, 1, "if needs a block"),
        ("if header :is \"a\" { keep; }", 1, 4, "header takes 2 positional argument(s), not 1"),
        ("if header :bogus \"a\" \"b\" { keep; }", 1, 11, "unknown tag :bogus for header"),
        ("if header :is :contains \"a\" \"b\" {}", 1, 15, "only one match type"),
        ("if header :is :is \"a\" \"b\" {}", 1, 15, "tag :is given twice"),
        ("if header :comparator \"i;nope\" \"a\" \"b\" {}", 1, 23, "unknown comparator \"i;nope\""),
        ("if header :count \"gt\" \"a\" \"1\" {}", 1, 11, ":count requires the \"relational\" extension"),
        ("require \"relational\";\nif header :value \"xx\" \"a\" \"1\" {}", 2, 18, "not a relational operator"),
        ("if address :user \"from\" \"x\" {}", 1, 12, ":user requires the \"subaddress\""),
        ("if address \"subject\" \"x\" {}", 1, 12, "does not accept header \"subject\""),
        ("if header \"bad name\" \"x\" {}", 1, 11, "not a valid header field name"),
        ("if size :over \"1\" {}", 1, 15, "the size must be a number"),
        ("if size 10 {}", 1, 4, "size needs one of :over or :under"),
        ("elsif true {}", 1, 1, "elsif without a preceding if"),
        ("if true;", 1, 1, "if needs a block"),
        ("keep { }", 1, 1, "keep does not take a block"),
        ("if not (true, false) {}", 1, 4, "not takes exactly one test"),
        ("if anyof true {}", 1, 4, "anyof takes a test list"),
        ("redirect \"not an address\";", 1, 10, "not a valid address to redirect to"),
        ("require \"variables\";\nset \"1\" \"x\";", 2, 5, "cannot assign to the match variable"),
        ("require \"variables\";\nset \"a-b\" \"x\";", 2, 5, "invalid variable name"),
        ("require \"variables\";\nset :lower :upper \"a\" \"x\";", 2, 12, "same precedence"),
        ("require \"variables\";\nset \"x.y\" \"x\";", 2, 5, "unknown namespace"),
        ("require [\"variables\"];\nset \"global.x\" \"1\";", 2, 5, "requires the \"include\" extension"),
        ("require \"regex\";\nif header :regex \"s\" \"(\" {}", 2, 22, "invalid regular expression"),
        ("require \"comparator-i;ascii-numeric\";\nif header :contains :comparator \"i;ascii-numeric\" \"a\" \"1\" {}", 2, 11, "supports only :is, :count and :value"),
        ("require \"vacation\";\nvacation :days 1 :seconds 5 \"x\";", 2, 18, ":seconds"),
        ("require [\"vacation\", \"vacation-seconds\"];\nvacation :days 1 :seconds 5 \"x\";", 2, 18, ":days and :seconds exclude each other"),
        ("require \"vacation\";\nvacation :from \"nobody\" \"x\";", 2, 1, ":from \"nobody\" is not a valid address"),
        ("require \"date\";\nif date \"date\" \"fortnight\" \"1\" {}", 2, 16, "is not a date part"),
        ("require \"date\";\nif date :zone \"EST\" \"date\" \"hour\" \"1\" {}", 2, 15, "not a time zone offset"),
        ("require \"date\";\nif currentdate :originalzone \"hour\" \"1\" {}", 2, 16, "unknown tag :originalzone"),
        ("require \"editheader\";\naddheader \"Received\" \"x\";", 2, 11, "protected"),
        ("require \"editheader\";\naddheader \"X:Y\" \"x\";", 2, 11, "not a valid header field name"),
        ("require \"include\";\ninclude :personal :global \"x\";", 2, 1, "exclude each other"),
        ("require \"include\";\ninclude \"a/b\";", 2, 9, "not a valid script name"),
        ("require \"include\";\nglobal \"x\";", 2, 1, "global requires the \"variables\" extension"),
        ("require \"duplicate\";\nif duplicate :header \"a\" :uniqueid \"b\" {}", 2, 4, "exclude each other"),
        ("require \"special-use\";\nif specialuse_exists \"Junk\" {}", 2, 22, "not a special-use flag"),
        ("require \"fileinto\";\nfileinto :copy \"x\";", 2, 10, "unknown tag :copy for fileinto"),
        ("require \"encoded-character\";\nkeep :flags \"${unicode:D800}\";", 2, 6, "unknown tag :flags"),
        ("require [\"encoded-character\", \"imap4flags\"];\nkeep :flags \"${unicode:D800}\";", 2, 13, "not a Unicode scalar value"),
        ("\"unterminated", 1, 1, "unterminated string"),
        ("/* open comment", 1, 1, "unterminated /* comment"),
        ("if true {\n keep;\n", 3, 1, "expected '}'"),
        ("require \"index\";\nif header :last \"a\" \"b\" {}", 2, 11, ":last needs :index"),
    ];
    let mut failures = Vec::new();
    for (src, line, column, reason) in cases {
        let e = err(src);
        if e.pos.line != *line || e.pos.column != *column || !e.message.contains(reason) {
            failures.push(format!(
                "{src:?}\n  got  {}:{} {}\n  want {line}:{column} ...{reason}...",
                e.pos.line, e.pos.column, e.message
            ));
        }
        // The displayed form is what a ManageSieve NO carries.
        assert!(e
            .to_string()
            .starts_with(&format!("line {}, column {}: ", e.pos.line, e.pos.column)));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn invalid_utf8_is_refused_with_its_position() {
    let e = Script::compile_bytes(b"keep;\n# caf\xe9\n", &Limits::default()).unwrap_err();
    assert_eq!((e.pos.line, e.pos.column), (2, 6));
    assert!(e.message.contains("UTF-8"));
}

#[test]
fn limits_are_configurable() {
    let tight = Limits {
        max_nesting: 2,
        max_string_list: 3,
        max_script_size: 100,
        ..Limits::default()
    };
    let nested = "if true { if true { if true { keep; } } }";
    assert!(Script::compile(nested, &Limits::default()).is_ok());
    assert!(Script::compile(nested, &tight)
        .unwrap_err()
        .message
        .contains("limit of 2 levels"));
    let list = r#"if header :is "a" ["1","2","3","4"] {}"#;
    assert!(Script::compile(list, &tight)
        .unwrap_err()
        .message
        .contains("limit of 3 strings"));
    assert!(Script::compile(&"#".repeat(101), &tight)
        .unwrap_err()
        .message
        .contains("limit of 100 bytes"));
}

#[test]
fn capabilities_listed_and_required_ones_reported() {
    for c in [
        "fileinto",
        "reject",
        "ereject",
        "envelope",
        "encoded-character",
        "imap4flags",
        "copy",
        "body",
        "variables",
        "vacation",
        "vacation-seconds",
        "relational",
        "subaddress",
        "date",
        "index",
        "mailbox",
        "include",
        "duplicate",
        "editheader",
        "special-use",
        "regex",
        "comparator-i;ascii-numeric",
    ] {
        assert!(CAPABILITIES.contains(&c), "{c}");
    }
    let s = Script::compile(
        r#"require ["Fileinto", "variables"]; keep;"#,
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(s.capabilities(), ["fileinto", "variables"]);
}

#[test]
fn serialized_form_round_trips_and_is_checked_again() {
    let src = "require \"fileinto\";\nif size :over 10K { fileinto \"big\"; }\n";
    let s = Script::compile(src, &Limits::default()).unwrap();
    let bytes = s.to_bytes();
    assert_eq!(&bytes[..8], b"RMSIEVE\0");
    assert_eq!(
        u32::from_le_bytes(bytes[8..12].try_into().unwrap()),
        FORMAT_VERSION
    );
    let back = Script::from_bytes(&bytes, &Limits::default()).unwrap();
    assert_eq!(back.source(), src);

    // Not trusted: a stored form is compiled again, under the limits in force now.
    let tight = Limits {
        max_nesting: 0,
        ..Limits::default()
    };
    assert!(Script::from_bytes(&bytes, &tight).is_err());
    let mut tampered = bytes.clone();
    let at = tampered.len() - 3;
    tampered[at] = b'{';
    assert!(Script::from_bytes(&tampered, &Limits::default()).is_err());
    let mut other_version = bytes.clone();
    other_version[8] = 99;
    assert!(Script::from_bytes(&other_version, &Limits::default())
        .unwrap_err()
        .message
        .contains("format version 99"));
    assert!(Script::from_bytes(b"garbage", &Limits::default()).is_err());
    assert!(Script::from_bytes(b"RMSIEVE\0\x01", &Limits::default()).is_err());
}
