//! Sieve (RFC 5228) mail filtering for ringmail: parse and check a script once (upload,
//! ManageSieve PUTSCRIPT), keep it compiled, and evaluate it for each delivered message.
//!
//! ```
//! use ringmail_sieve::{Script, Limits, Input, Envelope, MemoryEnvironment, Action};
//! let limits = Limits::default();
//! let script = Script::compile(r#"require "fileinto";
//!     if header :contains "subject" "[list]" { fileinto "Lists"; }"#, &limits).unwrap();
//! let msg = b"Subject: [list] hello\r\n\r\nbody\r\n";
//! let env = Envelope { from: "a@example.org".into(), to: "me@example.com".into(), orig_to: None };
//! let out = script.evaluate(Input { message: msg, envelope: &env }, &mut MemoryEnvironment::new(), &limits);
//! assert!(matches!(&out.actions[0], Action::FileInto { mailbox, .. } if mailbox == "Lists"));
//! ```
//!
//! Extensions: see `CAPABILITIES` and docs/sieve.md.

mod compile;
mod date;
mod env;
mod error;
mod eval;
mod lexer;
mod limits;
mod matching;
mod message;
mod outcome;
mod parser;
mod program;

use std::sync::Arc;

pub use compile::CAPABILITIES;
pub use date::DateTime;
pub use env::{Envelope, Environment, Input, MemoryEnvironment};
pub use error::{CompileError, Pos, RuntimeError};
pub use limits::Limits;
pub use outcome::{Action, DuplicateRecord, HeaderEdit, Outcome, VacationResponse};
pub use program::IncludeLocation;

/// A command that can make the server send mail (see `Script::mail_actions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MailAction {
    /// `redirect`: the message is resent.
    Redirect,
    /// `vacation`: an auto-reply.
    Vacation,
    /// `reject`: refused in the LMTP reply, or else by a notice to the sender.
    Reject,
    /// `ereject`: like reject; RFC 5429 §2.1 prefers the protocol-level refusal.
    Ereject,
}

impl MailAction {
    /// The Sieve command's name.
    pub fn command(self) -> &'static str {
        match self {
            MailAction::Redirect => "redirect",
            MailAction::Vacation => "vacation",
            MailAction::Reject => "reject",
            MailAction::Ereject => "ereject",
        }
    }
}

/// A checked, compiled script. Cheap to clone (shared).
#[derive(Clone)]
pub struct Script {
    inner: Arc<Inner>,
}

struct Inner {
    source: String,
    ops: Vec<(program::Op, u32)>,
    tests: Vec<program::TestOp>,
    locals: usize,
    capabilities: Vec<String>,
}

impl std::fmt::Debug for Script {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Script")
            .field("bytes", &self.inner.source.len())
            .field("instructions", &self.inner.ops.len())
            .field("capabilities", &self.inner.capabilities)
            .finish()
    }
}

/// Starts the serialized form of a script (`Script::to_bytes`).
const MAGIC: &[u8; 8] = b"RMSIEVE\0";
/// Version of the serialized form; a change of the compiler that alters what a script
/// means bumps it, and old forms are then refused (recompile from the source).
pub const FORMAT_VERSION: u32 = 1;

impl Script {
    /// Parses and checks `source`. The error says where (line, column) and why, fit to be
    /// shown to the user as it is (a ManageSieve NO response).
    pub fn compile(source: &str, limits: &Limits) -> Result<Script, CompileError> {
        if source.len() > limits.max_script_size {
            return Err(CompileError::new(
                Pos { line: 1, column: 1 },
                format!(
                    "script of {} bytes is larger than the limit of {} bytes",
                    source.len(),
                    limits.max_script_size
                ),
            ));
        }
        let ast = parser::parse(source, limits)?;
        let c = compile::compile(&ast, limits)?;
        Ok(Script {
            inner: Arc::new(Inner {
                source: source.to_string(),
                ops: c.ops,
                tests: c.tests,
                locals: c.locals,
                capabilities: c.capabilities,
            }),
        })
    }

    /// Like `compile`, for the bytes of an uploaded script, which must be UTF-8.
    pub fn compile_bytes(source: &[u8], limits: &Limits) -> Result<Script, CompileError> {
        match std::str::from_utf8(source) {
            Ok(s) => Script::compile(s, limits),
            Err(e) => {
                let before = &source[..e.valid_up_to()];
                let line = before.iter().filter(|&&b| b == b'\n').count() as u32 + 1;
                let column = (before.len()
                    - before
                        .iter()
                        .rposition(|&b| b == b'\n')
                        .map_or(0, |i| i + 1)) as u32
                    + 1;
                Err(CompileError::new(
                    Pos { line, column },
                    "the script is not valid UTF-8",
                ))
            }
        }
    }

    pub fn source(&self) -> &str {
        &self.inner.source
    }

    /// The extensions the script requires, sorted.
    pub fn capabilities(&self) -> &[String] {
        &self.inner.capabilities
    }

    /// The commands of this script (not of those it includes) that can make the server
    /// send mail, each with its line, in script order. A server with no way to send mail
    /// refuses such scripts at upload instead of failing them at delivery.
    pub fn mail_actions(&self) -> Vec<(MailAction, u32)> {
        use program::Op;
        self.inner
            .ops
            .iter()
            .filter_map(|(op, line)| {
                let action = match op {
                    Op::Redirect { .. } => MailAction::Redirect,
                    Op::Vacation(_) => MailAction::Vacation,
                    Op::Reject {
                        extended: false, ..
                    } => MailAction::Reject,
                    Op::Reject { extended: true, .. } => MailAction::Ereject,
                    _ => return None,
                };
                Some((action, *line))
            })
            .collect()
    }

    /// The form to cache in the store. It holds the version and the source, and
    /// `from_bytes` compiles that source again: compiling is fast (a 1,000-rule script in
    /// a few milliseconds) and a stored form is then never trusted, whatever wrote it.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(12 + self.inner.source.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(self.inner.source.as_bytes());
        out
    }

    /// Reads `to_bytes`' form back, checking the script fully again under `limits`.
    pub fn from_bytes(bytes: &[u8], limits: &Limits) -> Result<Script, CompileError> {
        let bad = |m: &str| CompileError::new(Pos::default(), m.to_string());
        let rest = bytes
            .strip_prefix(MAGIC.as_slice())
            .ok_or_else(|| bad("not a serialized sieve script"))?;
        if rest.len() < 4 {
            return Err(bad("serialized sieve script is truncated"));
        }
        let version = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
        if version != FORMAT_VERSION {
            return Err(bad(&format!(
                "serialized sieve script has format version {version}, this build reads {FORMAT_VERSION}: compile it again from its source"
            )));
        }
        Script::compile_bytes(&rest[4..], limits)
    }

    /// Runs the script for one message. Never fails: run-time errors make the outcome the
    /// fallback keep (RFC 5228 §2.10.6) and are listed in `Outcome::errors`.
    pub fn evaluate(
        &self,
        input: Input<'_>,
        env: &mut dyn Environment,
        limits: &Limits,
    ) -> Outcome {
        eval::run(self, input, env, limits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compiled scripts are shared between the executors' threads (a cache per core or
    /// one for all), and outcomes cross to the delivery task.
    #[test]
    fn types_can_cross_threads() {
        fn shared<T: Send + Sync + Clone>() {}
        shared::<Script>();
        shared::<Limits>();
        shared::<Outcome>();
        shared::<CompileError>();
    }

    #[test]
    fn mail_actions_with_lines() {
        let s = Script::compile(
            "require [\"vacation\", \"reject\", \"ereject\", \"fileinto\"];\n\
             if header :contains \"subject\" \"x\" {\n  redirect \"a@example.org\";\n}\n\
             fileinto \"Box\";\nvacation \"away\";\nif false { reject \"no\"; }\nereject \"no\";\n",
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(
            s.mail_actions(),
            vec![
                (MailAction::Redirect, 3),
                (MailAction::Vacation, 6),
                (MailAction::Reject, 7),
                (MailAction::Ereject, 8)
            ]
        );
        let quiet = Script::compile(
            "require \"fileinto\"; fileinto \"A\"; keep;",
            &Limits::default(),
        )
        .unwrap();
        assert!(quiet.mail_actions().is_empty());
    }
}
