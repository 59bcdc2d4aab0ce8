//! Hostile scripts: each is refused at compile time or stopped by a limit, quickly and
//! with an error naming the limit; never a stack overflow or a hang. Every case runs on a
//! thread with a small stack and a wall-clock bound.

mod common;

use std::sync::mpsc;
use std::time::Duration;

use common::{envelope, msg};
use ringmail_sieve::{IncludeLocation, Input, Limits, MemoryEnvironment, Outcome, Script};

/// Runs `f` on a 256 KiB stack and fails if it takes longer than `secs`.
fn bounded<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(move || {
            let _ = tx.send(f());
        })
        .unwrap();
    rx.recv_timeout(Duration::from_secs(secs))
        .expect("hostile case did not finish in time (or panicked)")
}

fn compile_error(src: String) -> String {
    bounded(10, move || {
        match Script::compile(&src, &Limits::default()) {
            Ok(_) => panic!("compiled"),
            Err(e) => e.to_string(),
        }
    })
}

fn eval(src: String, message: Vec<u8>, env: MemoryEnvironment) -> Outcome {
    bounded(20, move || {
        let mut env = env;
        let s = Script::compile(&src, &Limits::default()).unwrap();
        s.evaluate(
            Input {
                message: &message,
                envelope: &envelope(),
            },
            &mut env,
            &Limits::default(),
        )
    })
}

fn assert_fallback_keep(o: &Outcome, needle: &str) {
    assert_eq!(o.actions.len(), 1, "{o:?}");
    assert!(
        matches!(
            &o.actions[0],
            ringmail_sieve::Action::Keep { implicit: true, .. }
        ),
        "{o:?}"
    );
    assert!(
        o.errors.iter().any(|e| e.message.contains(needle)),
        "want an error with {needle:?}: {:?}",
        o.errors
    );
}

#[test]
fn deep_block_nesting_is_refused() {
    let src = "if true {".repeat(100_000) + &"}".repeat(100_000);
    assert!(compile_error(src).contains("nesting deeper than the limit of 32"));
}

#[test]
fn deep_test_nesting_is_refused() {
    let src = format!("if {}true {{}}", "not ".repeat(200_000));
    assert!(compile_error(src).contains("nesting"));
    let src = format!(
        "if {}true{} {{}}",
        "anyof(".repeat(100_000),
        ")".repeat(100_000)
    );
    assert!(compile_error(src).contains("nesting"));
}

#[test]
fn huge_string_list_is_refused() {
    let list: Vec<String> = (0..50_000).map(|i| format!("\"k{i}\"")).collect();
    let src = format!(
        "if header :is \"subject\" [{}] {{ discard; }}",
        list.join(",")
    );
    assert!(compile_error(src).contains("string list longer than the limit of 1024"));
}

#[test]
fn oversized_script_is_refused() {
    let src = "# padding\n".repeat(200_000);
    assert!(compile_error(src).contains("larger than the limit of 1048576 bytes"));
}

#[test]
fn regex_limits() {
    // Compiles to far more than the compiled-size limit.
    let src = r#"require "regex"; if header :regex "s" "(?:a{1000}){1000}" { stop; }"#.to_string();
    assert!(compile_error(src).contains("compiles larger than the limit"));
    let long = "a".repeat(10_000);
    let src = format!(r#"require "regex"; if header :regex "s" "{long}" {{ stop; }}"#);
    assert!(compile_error(src).contains("longer than the limit of 4096"));
}

#[test]
fn catastrophic_looking_regex_runs_in_linear_time() {
    // Exponential for a backtracking engine; linear for the regex crate.
    let src = r#"require ["regex", "fileinto"];
        if header :regex "subject" "^(a+)+$" { fileinto "never"; }
        if header :regex "subject" "^(a|aa)+$" { fileinto "never2"; }"#
        .to_string();
    let subject = "a".repeat(20_000) + "b";
    let o = eval(
        src,
        msg(&format!("Subject: {subject}"), ""),
        MemoryEnvironment::new(),
    );
    assert!(o.errors.is_empty(), "{:?}", o.errors);
    assert_eq!(o.actions.len(), 1);
}

#[test]
fn regex_from_variables_is_bounded_too() {
    let src = r#"require ["regex", "variables"];
        set "p" "(?:a{1000}){1000}";
        if header :regex "subject" "${p}" { discard; }"#
        .to_string();
    let o = eval(src, msg("Subject: aaa", ""), MemoryEnvironment::new());
    assert_fallback_keep(&o, "compiles larger than the limit");
}

#[test]
fn include_loop_is_detected() {
    let env = MemoryEnvironment::new()
        .with_script(
            IncludeLocation::Personal,
            "a",
            r#"require "include"; include "b";"#,
        )
        .with_script(
            IncludeLocation::Personal,
            "b",
            r#"require "include"; include "a";"#,
        );
    let o = eval(
        r#"require "include"; include "a";"#.into(),
        msg("Subject: x", ""),
        env,
    );
    assert_fallback_keep(&o, "include loop");
    let env = MemoryEnvironment::new().with_script(
        IncludeLocation::Global,
        "self",
        r#"require "include"; include :global "self";"#,
    );
    let o = eval(
        r#"require "include"; include :global "self";"#.into(),
        msg("Subject: x", ""),
        env,
    );
    assert_fallback_keep(&o, "include loop");
}

#[test]
fn include_depth_and_fan_out_are_bounded() {
    // A chain of 20 different scripts: deeper than the limit of 10.
    let mut env = MemoryEnvironment::new();
    for i in 0..20 {
        env = env.with_script(
            IncludeLocation::Personal,
            &format!("s{i}"),
            &format!("require \"include\"; include \"s{}\";", i + 1),
        );
    }
    let o = eval(
        r#"require "include"; include "s0";"#.into(),
        msg("Subject: x", ""),
        env,
    );
    assert_fallback_keep(&o, "nested deeper than the limit of 10");

    // Each level includes the next ten times: 10^9 runs without a bound.
    let mut env = MemoryEnvironment::new();
    for i in 0..9 {
        let body = format!("include \"f{}\";", i + 1).repeat(10);
        env = env.with_script(
            IncludeLocation::Personal,
            &format!("f{i}"),
            &format!("require \"include\"; {body}"),
        );
    }
    env = env.with_script(IncludeLocation::Personal, "f9", "keep;");
    let o = eval(
        r#"require "include"; include "f0";"#.into(),
        msg("Subject: x", ""),
        env,
    );
    assert_fallback_keep(&o, "more includes than the limit of 100");
}

#[test]
fn step_limit_stops_huge_match_work() {
    // 1024 keys against 5,000 header fields: five million comparisons.
    let keys: Vec<String> = (0..1024).map(|i| format!("\"needle{i}\"")).collect();
    let src = format!(
        "if header :contains \"x-h\" [{}] {{ discard; }}",
        keys.join(",")
    );
    let header: String = (0..5000).map(|i| format!("X-H: value {i}\n")).collect();
    let o = eval(src, msg(&header, ""), MemoryEnvironment::new());
    assert_fallback_keep(&o, "past the limit of 1000000 steps");
}

#[test]
fn step_limit_stops_expensive_wildcards() {
    let pattern = "*a".repeat(50) + "b";
    let keys: Vec<String> = (0..1000).map(|i| format!("\"{pattern}{i}\"")).collect();
    let src = format!(
        "if header :matches \"subject\" [{}] {{ discard; }}",
        keys.join(",")
    );
    let subject = "a".repeat(60_000);
    let o = eval(
        src,
        msg(&format!("Subject: {subject}"), ""),
        MemoryEnvironment::new(),
    );
    assert_fallback_keep(&o, "steps");
}

#[test]
fn variables_cannot_grow_without_bound() {
    let src = r#"require ["variables", "fileinto"]; set "a" "xxxxxxxxxxxxxxxx";"#.to_string()
        + &r#"set "a" "${a}${a}";"#.repeat(40)
        + r#"set :length "n" "${a}"; fileinto "len-${n}";"#;
    let o = eval(src, msg("Subject: x", ""), MemoryEnvironment::new());
    assert!(o.errors.is_empty());
    assert!(
        matches!(&o.actions[0], ringmail_sieve::Action::FileInto { mailbox, .. } if mailbox == "len-4096"),
        "{o:?}"
    );
}

#[test]
fn action_and_redirect_limits() {
    let many: String = (0..100).map(|i| format!("fileinto \"box{i}\";")).collect();
    let o = eval(
        format!("require \"fileinto\"; {many}"),
        msg("Subject: x", ""),
        MemoryEnvironment::new(),
    );
    assert_fallback_keep(&o, "more actions than the limit of 32");
    let redirects: String = (0..5)
        .map(|i| format!("redirect \"r{i}@example.net\";"))
        .collect();
    let o = eval(redirects, msg("Subject: x", ""), MemoryEnvironment::new());
    assert_fallback_keep(&o, "more redirects than the limit of 4");
}

#[test]
fn many_rules_compile_and_run_within_bounds() {
    // 5,000 sequential rules: well inside every limit, and quick.
    let rules: String = (0..5000)
        .map(|i| {
            format!("if header :contains \"subject\" \"word{i}.\" {{ fileinto \"f{i}\"; stop; }}\n")
        })
        .collect();
    let o = eval(
        format!("require \"fileinto\";\n{rules}"),
        msg("Subject: has word4999.", ""),
        MemoryEnvironment::new(),
    );
    assert!(o.errors.is_empty(), "{:?}", o.errors);
    assert!(
        matches!(&o.actions[0], ringmail_sieve::Action::FileInto { mailbox, .. } if mailbox == "f4999")
    );
}

#[test]
fn garbage_input_never_panics() {
    // Every prefix of a real script, and some binary noise, either compiles or errors.
    let src = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/corpus/roundcube.sieve"
    ))
    .unwrap();
    bounded(30, move || {
        for end in (0..src.len()).filter(|i| src.is_char_boundary(*i)) {
            let _ = Script::compile(&src[..end], &Limits::default());
        }
        let mut x: u32 = 12345;
        for _ in 0..2000 {
            let bytes: Vec<u8> = (0..64)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    let alphabet = b"if{}[]();,:\"\\#*/ text:\nabc123$";
                    alphabet[x as usize % alphabet.len()]
                })
                .collect();
            let _ = Script::compile_bytes(&bytes, &Limits::default());
        }
    });
}
