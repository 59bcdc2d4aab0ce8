//! Recursive descent over the grammar of RFC 5228 §8.2 into a generic syntax tree (commands,
//! tests, arguments). What each command means is checked afterwards (`compile`). Recursion
//! is bounded by `Limits::max_nesting`, counted for blocks and nested tests together.

use crate::error::{CompileError, Pos};
use crate::lexer::{Lexer, Tok};
use crate::limits::Limits;

#[derive(Debug, Clone)]
pub(crate) struct Command {
    pub name: String,
    pub pos: Pos,
    pub args: Vec<Arg>,
    pub tests: Vec<Test>,
    /// True when the tests came in parentheses (a test list), as allof/anyof need.
    pub test_list: bool,
    pub block: Option<Vec<Command>>,
}

#[derive(Debug, Clone)]
pub(crate) struct Test {
    pub name: String,
    pub pos: Pos,
    pub args: Vec<Arg>,
    pub tests: Vec<Test>,
    pub test_list: bool,
}

#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Tag(String, Pos),
    Number(u64, Pos),
    /// A single string (not in brackets).
    Str(String, Pos),
    /// A bracketed string list.
    List(Vec<String>, Pos),
}

impl Arg {
    pub(crate) fn pos(&self) -> Pos {
        match self {
            Arg::Tag(_, p) | Arg::Number(_, p) | Arg::Str(_, p) | Arg::List(_, p) => *p,
        }
    }
}

pub(crate) fn parse(src: &str, limits: &Limits) -> Result<Vec<Command>, CompileError> {
    let mut p = Parser {
        lexer: Lexer::new(src),
        tok: Tok::Eof,
        pos: Pos::default(),
        limits,
        depth: 0,
    };
    p.advance()?;
    let cmds = p.commands()?;
    if p.tok != Tok::Eof {
        return Err(p.unexpected("a command"));
    }
    Ok(cmds)
}

struct Parser<'a> {
    lexer: Lexer<'a>,
    tok: Tok,
    pos: Pos,
    limits: &'a Limits,
    depth: usize,
}

impl Parser<'_> {
    fn advance(&mut self) -> Result<Tok, CompileError> {
        let (t, p) = self.lexer.next_token()?;
        self.pos = p;
        Ok(std::mem::replace(&mut self.tok, t))
    }

    fn unexpected(&self, wanted: &str) -> CompileError {
        CompileError::new(
            self.pos,
            format!("expected {wanted}, found {}", self.tok.describe()),
        )
    }

    fn enter(&mut self) -> Result<(), CompileError> {
        self.depth += 1;
        if self.depth > self.limits.max_nesting {
            return Err(CompileError::new(
                self.pos,
                format!(
                    "nesting deeper than the limit of {} levels",
                    self.limits.max_nesting
                ),
            ));
        }
        Ok(())
    }

    fn commands(&mut self) -> Result<Vec<Command>, CompileError> {
        let mut out = Vec::new();
        while let Tok::Ident(_) = self.tok {
            out.push(self.command()?);
        }
        Ok(out)
    }

    fn command(&mut self) -> Result<Command, CompileError> {
        let pos = self.pos;
        let Tok::Ident(mut name) = self.advance()? else {
            unreachable!("command() is called on an identifier")
        };
        name.make_ascii_lowercase();
        let (args, tests, test_list) = self.arguments()?;
        let block = match self.tok {
            Tok::Semicolon => {
                self.advance()?;
                None
            }
            Tok::LBrace => {
                self.enter()?;
                self.advance()?;
                let cmds = self.commands()?;
                if self.tok != Tok::RBrace {
                    return Err(self.unexpected("'}' or a command"));
                }
                self.advance()?;
                self.depth -= 1;
                Some(cmds)
            }
            _ => return Err(self.unexpected("';' or '{'")),
        };
        Ok(Command {
            name,
            pos,
            args,
            tests,
            test_list,
            block,
        })
    }

    #[allow(clippy::type_complexity)]
    fn arguments(&mut self) -> Result<(Vec<Arg>, Vec<Test>, bool), CompileError> {
        let mut args = Vec::new();
        loop {
            let pos = self.pos;
            match &self.tok {
                Tok::Tag(_) => {
                    let Tok::Tag(mut t) = self.advance()? else {
                        unreachable!()
                    };
                    t.make_ascii_lowercase();
                    args.push(Arg::Tag(t, pos));
                }
                Tok::Number(n) => {
                    args.push(Arg::Number(*n, pos));
                    self.advance()?;
                }
                Tok::Str(_) => {
                    let Tok::Str(s) = self.advance()? else {
                        unreachable!()
                    };
                    self.check_string(&s, pos)?;
                    args.push(Arg::Str(s, pos));
                }
                Tok::LBracket => {
                    self.advance()?;
                    let mut list = Vec::new();
                    loop {
                        let spos = self.pos;
                        let Tok::Str(_) = self.tok else {
                            return Err(self.unexpected("a string in the string list"));
                        };
                        let Tok::Str(s) = self.advance()? else {
                            unreachable!()
                        };
                        self.check_string(&s, spos)?;
                        list.push(s);
                        if list.len() > self.limits.max_string_list {
                            return Err(CompileError::new(
                                spos,
                                format!(
                                    "string list longer than the limit of {} strings",
                                    self.limits.max_string_list
                                ),
                            ));
                        }
                        match self.tok {
                            Tok::Comma => {
                                self.advance()?;
                            }
                            Tok::RBracket => {
                                self.advance()?;
                                break;
                            }
                            _ => return Err(self.unexpected("',' or ']'")),
                        }
                    }
                    args.push(Arg::List(list, pos));
                }
                _ => break,
            }
        }
        match self.tok {
            Tok::Ident(_) => {
                let t = self.test()?;
                Ok((args, vec![t], false))
            }
            Tok::LParen => {
                self.enter()?;
                self.advance()?;
                let mut tests = vec![self.test()?];
                loop {
                    match self.tok {
                        Tok::Comma => {
                            self.advance()?;
                            tests.push(self.test()?);
                        }
                        Tok::RParen => {
                            self.advance()?;
                            break;
                        }
                        _ => return Err(self.unexpected("',' or ')'")),
                    }
                }
                self.depth -= 1;
                Ok((args, tests, true))
            }
            _ => Ok((args, Vec::new(), false)),
        }
    }

    fn test(&mut self) -> Result<Test, CompileError> {
        let pos = self.pos;
        let Tok::Ident(_) = self.tok else {
            return Err(self.unexpected("a test"));
        };
        let Tok::Ident(mut name) = self.advance()? else {
            unreachable!()
        };
        name.make_ascii_lowercase();
        self.enter()?;
        let (args, tests, test_list) = self.arguments()?;
        self.depth -= 1;
        Ok(Test {
            name,
            pos,
            args,
            tests,
            test_list,
        })
    }

    fn check_string(&self, s: &str, pos: Pos) -> Result<(), CompileError> {
        if s.len() > self.limits.max_string_size {
            return Err(CompileError::new(
                pos,
                format!(
                    "string longer than the limit of {} bytes",
                    self.limits.max_string_size
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structure() {
        let cmds = parse(
            "require [\"fileinto\"];\nif anyof (header :is \"a\" \"b\", true) { fileinto \"x\"; } else { keep; }",
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(cmds.len(), 3);
        assert_eq!(cmds[1].name, "if");
        assert_eq!(cmds[1].tests[0].name, "anyof");
        assert!(cmds[1].tests[0].test_list);
        assert_eq!(cmds[1].tests[0].tests.len(), 2);
        assert_eq!(cmds[2].name, "else");
    }

    #[test]
    fn depth_limit() {
        let limits = Limits::default();
        let deep = "if true {".repeat(100) + &"}".repeat(100);
        let e = parse(&deep, &limits).unwrap_err();
        assert!(e.message.contains("nesting"), "{e}");
        let deep = "if ".to_string() + &"not ".repeat(100_000) + "true {}";
        let e = parse(&deep, &limits).unwrap_err();
        assert!(e.message.contains("nesting"), "{e}");
    }

    #[test]
    fn syntax_errors_have_positions() {
        let e = parse("keep;\nfileinto \"x\"", &Limits::default()).unwrap_err();
        assert_eq!(e.pos.line, 2);
        assert!(e.message.contains("expected ';'"), "{e}");
        let e = parse("if true { keep; ", &Limits::default()).unwrap_err();
        assert!(e.message.contains("'}'"), "{e}");
    }
}
