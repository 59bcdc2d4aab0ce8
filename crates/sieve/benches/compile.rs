//! Compile time of a large generated script (target: a 1,000-rule script under 10 ms) and
//! evaluation time of a typical 20-rule script on a typical message.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use ringmail_sieve::{Envelope, Input, Limits, MemoryEnvironment, Script};

/// `n` rules of the kinds mail clients generate: header, address, size and body tests
/// combined with anyof/allof, filing with flags, variables in a few.
fn generated(n: usize) -> String {
    let mut s = String::from(
        "require [\"fileinto\", \"imap4flags\", \"variables\", \"body\", \"relational\", \"comparator-i;ascii-numeric\", \"copy\"];\n",
    );
    for i in 0..n {
        s.push_str(&format!("# rule:[rule {i}]\n"));
        match i % 5 {
            0 => s.push_str(&format!(
                "if anyof (header :contains \"list-id\" \"list{i}.example.org\", header :contains \"subject\" \"[list{i}]\") {{\n  fileinto \"Lists/list{i}\";\n  stop;\n}}\n"
            )),
            1 => s.push_str(&format!(
                "if allof (address :is :domain \"from\" \"sender{i}.example.com\", not header :is \"x-spam-flag\" \"YES\") {{\n  addflag \"\\\\Flagged\";\n  fileinto :copy \"Senders/{i}\";\n}}\n"
            )),
            2 => s.push_str(&format!(
                "if header :value \"ge\" :comparator \"i;ascii-numeric\" \"x-spam-score\" \"{}\" {{\n  fileinto :flags \"$Junk\" \"Junk/{i}\";\n}}\n",
                i % 20
            )),
            3 => s.push_str(&format!(
                "if header :matches \"subject\" \"*ticket {i}*\" {{\n  set \"t\" \"${{1}}\";\n  fileinto \"Tickets/${{t}}\";\n}}\n"
            )),
            _ => s.push_str(&format!(
                "if anyof (size :over {}K, body :text :contains \"keyword{i}\") {{\n  redirect :copy \"archive{i}@example.net\";\n}}\n",
                100 + i
            )),
        }
    }
    s
}

fn bench(c: &mut Criterion) {
    let limits = Limits::default();
    let big = generated(1000);
    c.bench_function("compile 1000 rules", |b| {
        b.iter(|| Script::compile(black_box(&big), &limits).unwrap())
    });
    let bytes = Script::compile(&big, &limits).unwrap().to_bytes();
    c.bench_function("from_bytes 1000 rules", |b| {
        b.iter(|| Script::from_bytes(black_box(&bytes), &limits).unwrap())
    });

    let script = Script::compile(&generated(20), &limits).unwrap();
    let message = include_bytes!("../tests/messages/multipart.eml");
    let envelope = Envelope {
        from: "shop@store.example".into(),
        to: "alice@example.com".into(),
        orig_to: None,
    };
    c.bench_function("evaluate 20 rules", |b| {
        b.iter(|| {
            let mut env = MemoryEnvironment::new();
            script.evaluate(
                Input {
                    message: black_box(message),
                    envelope: &envelope,
                },
                &mut env,
                &limits,
            )
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
