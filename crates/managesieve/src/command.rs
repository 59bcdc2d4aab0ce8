//! Commands (RFC 5804 §2): a parsed line checked against each command's arguments.

use crate::parser::Arg;

/// A script's text as it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    Bytes(Vec<u8>),
    /// Larger than the literal limit; only its size is known.
    Oversized(u64),
}

/// One client command. Script names are the raw bytes; `name::check` validates them so
/// that the refusal can say what is wrong with the name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Authenticate {
        mechanism: String,
        initial_response: Option<Vec<u8>>,
    },
    StartTls,
    Logout,
    Capability,
    HaveSpace {
        name: Vec<u8>,
        size: u64,
    },
    PutScript {
        name: Vec<u8>,
        script: Payload,
    },
    ListScripts,
    SetActive {
        name: Vec<u8>,
    },
    GetScript {
        name: Vec<u8>,
    },
    DeleteScript {
        name: Vec<u8>,
    },
    RenameScript {
        old: Vec<u8>,
        new: Vec<u8>,
    },
    CheckScript {
        script: Payload,
    },
    Noop {
        tag: Option<Vec<u8>>,
    },
    Unauthenticate,
}

impl Command {
    /// Whether the command may be given before authentication (RFC 5804 §2).
    pub fn allowed_unauthenticated(&self) -> bool {
        matches!(
            self,
            Command::Authenticate { .. }
                | Command::StartTls
                | Command::Logout
                | Command::Capability
                | Command::Noop { .. }
        )
    }

    /// The command's name, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Authenticate { .. } => "AUTHENTICATE",
            Command::StartTls => "STARTTLS",
            Command::Logout => "LOGOUT",
            Command::Capability => "CAPABILITY",
            Command::HaveSpace { .. } => "HAVESPACE",
            Command::PutScript { .. } => "PUTSCRIPT",
            Command::ListScripts => "LISTSCRIPTS",
            Command::SetActive { .. } => "SETACTIVE",
            Command::GetScript { .. } => "GETSCRIPT",
            Command::DeleteScript { .. } => "DELETESCRIPT",
            Command::RenameScript { .. } => "RENAMESCRIPT",
            Command::CheckScript { .. } => "CHECKSCRIPT",
            Command::Noop { .. } => "NOOP",
            Command::Unauthenticate => "UNAUTHENTICATE",
        }
    }

    /// Reads a command from a parsed line; the error is the text of the NO response.
    pub fn from_args(args: Vec<Arg>) -> Result<Command, String> {
        let mut args = args.into_iter();
        let name = match args.next() {
            Some(Arg::Atom(name)) => name.to_ascii_uppercase(),
            Some(_) => return Err("expected a command name".into()),
            None => return Err("empty command line".into()),
        };
        let rest: Vec<Arg> = args.collect();
        let mut a = Args {
            command: &name,
            args: rest.into_iter(),
        };
        let command = match name.as_str() {
            "AUTHENTICATE" => {
                // auth-type is a string; an atom is taken too, as lenient servers do.
                let mechanism = match a.next()? {
                    Arg::Atom(m) => m,
                    Arg::String(m) => String::from_utf8(m)
                        .map_err(|_| a.invalid("the mechanism name is not UTF-8"))?,
                    Arg::Oversized(_) => return Err(a.invalid("the mechanism name is too long")),
                };
                let initial_response = a.optional_string()?;
                Command::Authenticate {
                    mechanism: mechanism.to_ascii_uppercase(),
                    initial_response,
                }
            }
            "STARTTLS" => Command::StartTls,
            "LOGOUT" => Command::Logout,
            "CAPABILITY" => Command::Capability,
            "HAVESPACE" => {
                let name = a.string()?;
                let size = match a.next()? {
                    Arg::Atom(n) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
                        n.parse().map_err(|_| a.invalid("the size is too large"))?
                    }
                    _ => return Err(a.invalid("the size must be a number")),
                };
                Command::HaveSpace { name, size }
            }
            "PUTSCRIPT" => {
                let name = a.string()?;
                let script = a.payload()?;
                Command::PutScript { name, script }
            }
            "LISTSCRIPTS" => Command::ListScripts,
            "SETACTIVE" => Command::SetActive { name: a.string()? },
            "GETSCRIPT" => Command::GetScript { name: a.string()? },
            "DELETESCRIPT" => Command::DeleteScript { name: a.string()? },
            "RENAMESCRIPT" => {
                let old = a.string()?;
                let new = a.string()?;
                Command::RenameScript { old, new }
            }
            "CHECKSCRIPT" => Command::CheckScript {
                script: a.payload()?,
            },
            "NOOP" => Command::Noop {
                tag: a.optional_string()?,
            },
            "UNAUTHENTICATE" => Command::Unauthenticate,
            _ => return Err(format!("unknown command {name}")),
        };
        a.end()?;
        Ok(command)
    }
}

/// The arguments after the command name.
struct Args<'a> {
    command: &'a str,
    args: std::vec::IntoIter<Arg>,
}

impl Args<'_> {
    fn invalid(&self, why: &str) -> String {
        format!("{}: {why}", self.command)
    }

    fn next(&mut self) -> Result<Arg, String> {
        self.args
            .next()
            .ok_or_else(|| self.invalid("missing arguments"))
    }

    fn string(&mut self) -> Result<Vec<u8>, String> {
        match self.next()? {
            Arg::String(s) => Ok(s),
            Arg::Atom(_) => Err(self.invalid("expected a quoted string or a literal")),
            Arg::Oversized(_) => Err(self.invalid("the string is too long")),
        }
    }

    fn optional_string(&mut self) -> Result<Option<Vec<u8>>, String> {
        if self.args.as_slice().is_empty() {
            return Ok(None);
        }
        self.string().map(Some)
    }

    fn payload(&mut self) -> Result<Payload, String> {
        match self.next()? {
            Arg::String(s) => Ok(Payload::Bytes(s)),
            Arg::Oversized(n) => Ok(Payload::Oversized(n)),
            Arg::Atom(_) => Err(self.invalid("expected the script as a literal or quoted string")),
        }
    }

    fn end(&mut self) -> Result<(), String> {
        if self.args.as_slice().is_empty() {
            Ok(())
        } else {
            Err(self.invalid("too many arguments"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::{Parser, ParserLimits};

    fn parse(line: &[u8]) -> Result<Command, String> {
        let mut p = Parser::new(ParserLimits {
            max_literal: 10,
            ..ParserLimits::default()
        });
        let (n, got) = p.feed(line);
        assert_eq!(n, line.len());
        Command::from_args(got.expect("a whole line").expect("parses"))
    }

    #[test]
    fn every_command() {
        let b = |s: &str| s.as_bytes().to_vec();
        let cases: Vec<(&[u8], Command)> = vec![
            (
                b"Authenticate \"plain\" \"AGEAYg==\"\r\n",
                Command::Authenticate {
                    mechanism: "PLAIN".into(),
                    initial_response: Some(b("AGEAYg==")),
                },
            ),
            (
                b"AUTHENTICATE \"LOGIN\"\r\n",
                Command::Authenticate {
                    mechanism: "LOGIN".into(),
                    initial_response: None,
                },
            ),
            (b"starttls\r\n", Command::StartTls),
            (b"LOGOUT\r\n", Command::Logout),
            (b"CAPABILITY\r\n", Command::Capability),
            (
                b"HAVESPACE \"s\" 4294967295\r\n",
                Command::HaveSpace {
                    name: b("s"),
                    size: 4_294_967_295,
                },
            ),
            (
                b"PUTSCRIPT \"s\" {5+}\r\nkeep;\r\n",
                Command::PutScript {
                    name: b("s"),
                    script: Payload::Bytes(b("keep;")),
                },
            ),
            (
                b"PUTSCRIPT \"s\" {11+}\r\nkeep; keep;\r\n",
                Command::PutScript {
                    name: b("s"),
                    script: Payload::Oversized(11),
                },
            ),
            (b"LISTSCRIPTS\r\n", Command::ListScripts),
            (b"SETACTIVE \"\"\r\n", Command::SetActive { name: b("") }),
            (b"GETSCRIPT \"s\"\r\n", Command::GetScript { name: b("s") }),
            (
                b"DELETESCRIPT {1+}\r\ns\r\n",
                Command::DeleteScript { name: b("s") },
            ),
            (
                b"RENAMESCRIPT \"a\" \"b\"\r\n",
                Command::RenameScript {
                    old: b("a"),
                    new: b("b"),
                },
            ),
            (
                b"CHECKSCRIPT \"keep;\"\r\n",
                Command::CheckScript {
                    script: Payload::Bytes(b("keep;")),
                },
            ),
            (b"NOOP\r\n", Command::Noop { tag: None }),
            (b"NOOP \"t\"\r\n", Command::Noop { tag: Some(b("t")) }),
            (b"UNAUTHENTICATE\r\n", Command::Unauthenticate),
        ];
        for (line, want) in cases {
            assert_eq!(parse(line), Ok(want), "{line:?}");
        }
    }

    #[test]
    fn wrong_arguments() {
        let cases: &[(&[u8], &str)] = &[
            (b"FOO\r\n", "unknown command FOO"),
            (b"\"NOOP\"\r\n", "expected a command name"),
            (b"\r\n", "empty command line"),
            (b"PUTSCRIPT\r\n", "PUTSCRIPT: missing arguments"),
            (
                b"PUTSCRIPT foo \"keep;\"\r\n",
                "PUTSCRIPT: expected a quoted string or a literal",
            ),
            (
                b"PUTSCRIPT \"a\" keep\r\n",
                "PUTSCRIPT: expected the script as a literal or quoted string",
            ),
            (b"LISTSCRIPTS \"x\"\r\n", "LISTSCRIPTS: too many arguments"),
            (b"NOOP a\r\n", "NOOP: expected a quoted string or a literal"),
            (
                b"HAVESPACE \"a\" \"12\"\r\n",
                "HAVESPACE: the size must be a number",
            ),
            (
                b"HAVESPACE \"a\" 99999999999999999999999\r\n",
                "HAVESPACE: the size is too large",
            ),
            (
                b"GETSCRIPT {11+}\r\nxxxxxxxxxxx\r\n",
                "GETSCRIPT: the string is too long",
            ),
        ];
        for (line, want) in cases {
            assert_eq!(parse(line), Err(want.to_string()), "{line:?}");
        }
    }
}
