//! Tokens of RFC 5228 §8.1: identifiers, tags, numbers, quoted and multi-line strings,
//! punctuation. Comments and white space are skipped here so the parser never sees them.

use crate::error::{CompileError, Pos};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok {
    Ident(String),
    Tag(String),
    Number(u64),
    Str(String),
    LBracket,
    RBracket,
    LParen,
    RParen,
    LBrace,
    RBrace,
    Comma,
    Semicolon,
    Eof,
}

impl Tok {
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("identifier '{s}'"),
            Tok::Tag(s) => format!("tag ':{s}'"),
            Tok::Number(n) => format!("number {n}"),
            Tok::Str(_) => "string".to_string(),
            Tok::LBracket => "'['".to_string(),
            Tok::RBracket => "']'".to_string(),
            Tok::LParen => "'('".to_string(),
            Tok::RParen => "')'".to_string(),
            Tok::LBrace => "'{'".to_string(),
            Tok::RBrace => "'}'".to_string(),
            Tok::Comma => "','".to_string(),
            Tok::Semicolon => "';'".to_string(),
            Tok::Eof => "end of script".to_string(),
        }
    }
}

pub(crate) struct Lexer<'a> {
    src: &'a [u8],
    at: usize,
    line: u32,
    line_start: usize,
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(src: &'a str) -> Self {
        Lexer {
            src: src.as_bytes(),
            at: 0,
            line: 1,
            line_start: 0,
        }
    }

    fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            column: (self.at - self.line_start) as u32 + 1,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.src.get(self.at).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.at += 1;
        if c == b'\n' {
            self.line += 1;
            self.line_start = self.at;
        }
        Some(c)
    }

    fn skip_space(&mut self) -> Result<(), CompileError> {
        loop {
            match self.peek() {
                Some(b' ' | b'\t' | b'\r' | b'\n') => {
                    self.bump();
                }
                Some(b'#') => {
                    while let Some(c) = self.bump() {
                        if c == b'\n' {
                            break;
                        }
                    }
                }
                Some(b'/') if self.src.get(self.at + 1) == Some(&b'*') => {
                    let start = self.pos();
                    self.bump();
                    self.bump();
                    loop {
                        match self.bump() {
                            Some(b'*') if self.peek() == Some(b'/') => {
                                self.bump();
                                break;
                            }
                            Some(_) => {}
                            None => {
                                return Err(CompileError::new(start, "unterminated /* comment"))
                            }
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    /// The next token and where it starts.
    pub(crate) fn next_token(&mut self) -> Result<(Tok, Pos), CompileError> {
        self.skip_space()?;
        let pos = self.pos();
        let Some(c) = self.peek() else {
            return Ok((Tok::Eof, pos));
        };
        let tok = match c {
            b'[' => self.single(Tok::LBracket),
            b']' => self.single(Tok::RBracket),
            b'(' => self.single(Tok::LParen),
            b')' => self.single(Tok::RParen),
            b'{' => self.single(Tok::LBrace),
            b'}' => self.single(Tok::RBrace),
            b',' => self.single(Tok::Comma),
            b';' => self.single(Tok::Semicolon),
            b'"' => {
                self.bump();
                Tok::Str(self.quoted(pos)?)
            }
            b':' => {
                self.bump();
                match self.peek() {
                    Some(c) if c.is_ascii_alphabetic() || c == b'_' => Tok::Tag(self.ident()),
                    _ => return Err(CompileError::new(pos, "':' must be followed by a tag name")),
                }
            }
            b'0'..=b'9' => Tok::Number(self.number(pos)?),
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let id = self.ident();
                if id.eq_ignore_ascii_case("text") && self.peek() == Some(b':') {
                    self.bump();
                    Tok::Str(self.multiline(pos)?)
                } else {
                    Tok::Ident(id)
                }
            }
            other => {
                let shown = if other.is_ascii_graphic() {
                    format!("'{}'", other as char)
                } else {
                    format!("byte 0x{other:02x}")
                };
                return Err(CompileError::new(
                    pos,
                    format!("unexpected character {shown}"),
                ));
            }
        };
        Ok((tok, pos))
    }

    fn single(&mut self, t: Tok) -> Tok {
        self.bump();
        t
    }

    fn ident(&mut self) -> String {
        let start = self.at;
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == b'_' {
                self.bump();
            } else {
                break;
            }
        }
        String::from_utf8_lossy(&self.src[start..self.at]).into_owned()
    }

    fn number(&mut self, pos: Pos) -> Result<u64, CompileError> {
        let mut n: u64 = 0;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            self.bump();
            n = n
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(c - b'0')))
                .ok_or_else(|| CompileError::new(pos, "number too large"))?;
        }
        let mult: u64 = match self.peek() {
            Some(b'K' | b'k') => 1 << 10,
            Some(b'M' | b'm') => 1 << 20,
            Some(b'G' | b'g') => 1 << 30,
            _ => 1,
        };
        if mult != 1 {
            self.bump();
        }
        if matches!(self.peek(), Some(c) if c.is_ascii_alphabetic() || c == b'_') {
            return Err(CompileError::new(
                pos,
                "a number must not be followed by letters",
            ));
        }
        n.checked_mul(mult)
            .ok_or_else(|| CompileError::new(pos, "number too large"))
    }

    fn quoted(&mut self, pos: Pos) -> Result<String, CompileError> {
        let mut out = Vec::new();
        loop {
            match self.bump() {
                None => return Err(CompileError::new(pos, "unterminated string")),
                Some(b'"') => break,
                // RFC 5228 §2.4.2: "\" before any character stands for that character.
                Some(b'\\') => match self.bump() {
                    Some(c) => out.push(c),
                    None => return Err(CompileError::new(pos, "unterminated string")),
                },
                // Bare LF inside a quoted string stands for CRLF (§2.4.2: lines end in CRLF).
                Some(b'\n') if out.last() != Some(&b'\r') => out.extend_from_slice(b"\r\n"),
                Some(c) => out.push(c),
            }
        }
        String::from_utf8(out).map_err(|_| CompileError::new(pos, "string is not valid UTF-8"))
    }

    /// `text:` already consumed: rest of the line (white space or a comment), then lines
    /// up to one holding a single ".", with dot-stuffing undone.
    fn multiline(&mut self, pos: Pos) -> Result<String, CompileError> {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.bump();
        }
        match self.peek() {
            Some(b'#') => {
                while let Some(c) = self.bump() {
                    if c == b'\n' {
                        break;
                    }
                }
            }
            Some(b'\r') if self.src.get(self.at + 1) == Some(&b'\n') => {
                self.bump();
                self.bump();
            }
            Some(b'\n') => {
                self.bump();
            }
            _ => {
                return Err(CompileError::new(
                    pos,
                    "'text:' must be followed by the end of the line",
                ))
            }
        }
        let mut out = Vec::new();
        loop {
            if self.at >= self.src.len() {
                return Err(CompileError::new(pos, "unterminated multi-line string"));
            }
            let start = self.at;
            while let Some(c) = self.peek() {
                if c == b'\n' {
                    break;
                }
                self.bump();
            }
            let mut line = &self.src[start..self.at];
            self.bump();
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            if line == b"." {
                break;
            }
            if line.first() == Some(&b'.') {
                line = &line[1..];
            }
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
        }
        String::from_utf8(out).map_err(|_| CompileError::new(pos, "string is not valid UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(src: &str) -> Vec<Tok> {
        let mut l = Lexer::new(src);
        let mut v = Vec::new();
        loop {
            let (t, _) = l.next_token().unwrap();
            if t == Tok::Eof {
                return v;
            }
            v.push(t);
        }
    }

    #[test]
    fn tokens_and_comments() {
        let t = all("if size :over 100K { # c\n discard; /* x */ }");
        assert_eq!(
            t,
            vec![
                Tok::Ident("if".into()),
                Tok::Ident("size".into()),
                Tok::Tag("over".into()),
                Tok::Number(102400),
                Tok::LBrace,
                Tok::Ident("discard".into()),
                Tok::Semicolon,
                Tok::RBrace
            ]
        );
    }

    #[test]
    fn strings() {
        assert_eq!(all(r#""a\"b\\c\d""#), vec![Tok::Str("a\"b\\cd".into())]);
        assert_eq!(
            all("text: # x\r\nline1\n..dot\n.\n"),
            vec![Tok::Str("line1\r\n.dot\r\n".into())]
        );
    }

    #[test]
    fn positions() {
        let mut l = Lexer::new("keep;\n  stop;");
        l.next_token().unwrap();
        l.next_token().unwrap();
        let (_, p) = l.next_token().unwrap();
        assert_eq!((p.line, p.column), (2, 3));
    }

    #[test]
    fn errors() {
        assert!(Lexer::new("\"abc").next_token().is_err());
        assert!(Lexer::new("/* abc").next_token().is_err());
        assert!(Lexer::new("99999999999999999999").next_token().is_err());
        assert!(Lexer::new("text: x\n").next_token().is_err());
    }
}
