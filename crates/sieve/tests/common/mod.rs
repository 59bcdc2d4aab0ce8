//! Helpers shared by the integration tests: run a script on a message and describe the
//! outcome as short strings a reader can compare at a glance.
#![allow(dead_code)]

use ringmail_sieve::{
    Action, DateTime, Envelope, Input, Limits, MemoryEnvironment, Outcome, Script,
};

pub const SENDER: &str = "sender@example.org";
pub const RCPT: &str = "alice@example.com";

pub fn envelope() -> Envelope {
    Envelope {
        from: SENDER.to_string(),
        to: RCPT.to_string(),
        orig_to: None,
    }
}

/// A message from header lines and a body, with CRLF line ends.
pub fn msg(header: &str, body: &str) -> Vec<u8> {
    let mut s = String::new();
    for l in header.trim_start_matches('\n').lines() {
        s.push_str(l);
        s.push_str("\r\n");
    }
    s.push_str("\r\n");
    for l in body.lines() {
        s.push_str(l);
        s.push_str("\r\n");
    }
    s.into_bytes()
}

/// 2024-03-15 10:30:00 +0000 (a Friday).
pub fn fixed_now() -> DateTime {
    DateTime {
        unix: 1_710_498_600,
        offset: 0,
    }
}

pub fn env() -> MemoryEnvironment {
    let mut e = MemoryEnvironment::new();
    e.time = Some(fixed_now());
    e
}

pub fn compile(src: &str) -> Script {
    match Script::compile(src, &Limits::default()) {
        Ok(s) => s,
        Err(e) => panic!("script does not compile: {e}\n{src}"),
    }
}

pub fn compile_err(src: &str) -> String {
    match Script::compile(src, &Limits::default()) {
        Ok(_) => panic!("script compiled but should not:\n{src}"),
        Err(e) => e.to_string(),
    }
}

pub fn run_full(
    src: &str,
    message: &[u8],
    env: &mut MemoryEnvironment,
    envelope: &Envelope,
) -> Outcome {
    compile(src).evaluate(Input { message, envelope }, env, &Limits::default())
}

pub fn run(src: &str, message: &[u8]) -> Outcome {
    run_full(src, message, &mut env(), &envelope())
}

/// The actions as strings, errors last.
pub fn summary(o: &Outcome) -> Vec<String> {
    let flags = |f: &Vec<String>| {
        if f.is_empty() {
            String::new()
        } else {
            format!(" [{}]", f.join(" "))
        }
    };
    let mut v: Vec<String> = o
        .actions
        .iter()
        .map(|a| match a {
            Action::Keep { flags: f, implicit } => {
                format!(
                    "{}{}",
                    if *implicit { "implicit-keep" } else { "keep" },
                    flags(f)
                )
            }
            Action::FileInto {
                mailbox,
                flags: f,
                create,
                special_use,
                copy,
            } => {
                let mut s = format!("fileinto {mailbox}{}", flags(f));
                if *create {
                    s.push_str(" :create");
                }
                if let Some(u) = special_use {
                    s.push_str(&format!(" :specialuse {u}"));
                }
                if *copy {
                    s.push_str(" :copy");
                }
                s
            }
            Action::Discard => "discard".to_string(),
            Action::Redirect { address, copy } => {
                format!("redirect {address}{}", if *copy { " :copy" } else { "" })
            }
            Action::Reject { reason, extended } => {
                format!("{} {reason}", if *extended { "ereject" } else { "reject" })
            }
            Action::Vacation(v) => format!("vacation to {} subject {:?}", v.to, v.subject),
        })
        .collect();
    v.extend(o.errors.iter().map(|e| format!("error: {e}")));
    v
}

/// `summary` of running `src` on `message`, as a Vec<&str>-comparable list.
pub fn actions(src: &str, message: &[u8]) -> Vec<String> {
    summary(&run(src, message))
}
