//! The response writer: IMAP tokens written into a `Vec<u8>`.
//!
//! Its main job is picking the right form for every byte string: an atom where the grammar
//! allows one and the bytes are atom-safe, a quoted string when that is safe, a literal
//! otherwise (CR, LF, NUL, 8-bit data unless UTF8=ACCEPT is enabled, or long strings, which
//! clients read faster as literals than unescaped quoted text).

use crate::parser::{Flag, RejectKind, Rejection};

/// Strings longer than this are sent as literals even when quoting would be legal.
pub const QUOTED_MAX: usize = 1024;

/// The status word of a status response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// `OK`
    Ok,
    /// `NO`
    No,
    /// `BAD`
    Bad,
    /// `PREAUTH` (greeting only)
    PreAuth,
    /// `BYE`
    Bye,
}

impl Status {
    /// The word on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::No => "NO",
            Status::Bad => "BAD",
            Status::PreAuth => "PREAUTH",
            Status::Bye => "BYE",
        }
    }
}

/// Writes response tokens into a buffer the session owns.
#[derive(Debug)]
pub struct ResponseWriter<'b> {
    out: &'b mut Vec<u8>,
    utf8: bool,
}

impl<'b> ResponseWriter<'b> {
    /// A writer appending to `out`. `utf8`: the client enabled UTF8=ACCEPT, so valid UTF-8
    /// may be sent in quoted strings.
    pub fn new(out: &'b mut Vec<u8>, utf8: bool) -> Self {
        ResponseWriter { out, utf8 }
    }

    /// The buffer written so far.
    pub fn buffer(&self) -> &[u8] {
        self.out
    }

    /// Raw bytes, written as they are (the caller vouches for the syntax).
    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.out.extend_from_slice(bytes);
        self
    }

    /// One space.
    pub fn sp(&mut self) -> &mut Self {
        self.out.push(b' ');
        self
    }

    /// The line end.
    pub fn crlf(&mut self) -> &mut Self {
        self.out.extend_from_slice(b"\r\n");
        self
    }

    /// `(`
    pub fn open(&mut self) -> &mut Self {
        self.out.push(b'(');
        self
    }

    /// `)`
    pub fn close(&mut self) -> &mut Self {
        self.out.push(b')');
        self
    }

    /// A decimal number.
    pub fn number(&mut self, n: u64) -> &mut Self {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        let mut n = n;
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.out.extend_from_slice(&digits[i..]);
        self
    }

    /// `string`: quoted when safe, else a literal.
    pub fn string(&mut self, s: &[u8]) -> &mut Self {
        if self.quotable(s) {
            self.quoted(s)
        } else {
            self.literal(s)
        }
    }

    /// `astring`: an atom when every byte is ASTRING-CHAR (and it is not `NIL`, which a
    /// client could take for nil), else as [`string`](Self::string).
    pub fn astring(&mut self, s: &[u8]) -> &mut Self {
        if is_atom_safe(s) {
            self.raw(s)
        } else {
            self.string(s)
        }
    }

    /// `nstring`: `NIL` for `None`, else a string.
    pub fn nstring(&mut self, s: Option<&[u8]>) -> &mut Self {
        match s {
            None => self.raw(b"NIL"),
            Some(s) => self.string(s),
        }
    }

    /// A quoted string; the caller has checked [`quotable`](Self::quotable).
    fn quoted(&mut self, s: &[u8]) -> &mut Self {
        self.out.reserve(s.len() + 2);
        self.out.push(b'"');
        for &b in s {
            if b == b'"' || b == b'\\' {
                self.out.push(b'\\');
            }
            self.out.push(b);
        }
        self.out.push(b'"');
        self
    }

    /// True when `s` may be sent as a quoted string.
    pub fn quotable(&self, s: &[u8]) -> bool {
        if s.len() > QUOTED_MAX {
            return false;
        }
        let mut eight_bit = false;
        for &b in s {
            match b {
                0 | b'\r' | b'\n' => return false,
                0x80.. => eight_bit = true,
                _ => {}
            }
        }
        !eight_bit || (self.utf8 && std::str::from_utf8(s).is_ok())
    }

    /// A literal `{n}\r\n` + bytes. NUL cannot travel in a literal: BINARY data with NUL
    /// must use [`literal8`](Self::literal8).
    pub fn literal(&mut self, s: &[u8]) -> &mut Self {
        self.out.push(b'{');
        self.number(s.len() as u64);
        self.out.extend_from_slice(b"}\r\n");
        self.out.extend_from_slice(s);
        self
    }

    /// A BINARY literal8 `~{n}\r\n` + bytes.
    pub fn literal8(&mut self, s: &[u8]) -> &mut Self {
        self.out.push(b'~');
        self.literal(s)
    }

    /// A parenthesised flag list from flags written out (`\Seen`, `$Junk`).
    pub fn flag_list<I, F>(&mut self, flags: I) -> &mut Self
    where
        I: IntoIterator<Item = F>,
        F: AsRef<[u8]>,
    {
        self.open();
        for (i, flag) in flags.into_iter().enumerate() {
            if i > 0 {
                self.sp();
            }
            self.raw(flag.as_ref());
        }
        self.close()
    }

    /// One parsed flag.
    pub fn flag(&mut self, flag: &Flag<'_>) -> &mut Self {
        match flag {
            Flag::Seen => self.raw(b"\\Seen"),
            Flag::Answered => self.raw(b"\\Answered"),
            Flag::Flagged => self.raw(b"\\Flagged"),
            Flag::Deleted => self.raw(b"\\Deleted"),
            Flag::Draft => self.raw(b"\\Draft"),
            Flag::Extension(name) => self.raw(b"\\").raw(name.as_bytes()),
            Flag::Keyword(name) => self.raw(name.as_bytes()),
        }
    }

    /// A sequence set from inclusive ranges, e.g. `1:3,7,9:12` (a range `(n, n)` is `n`).
    pub fn sequence_set<I>(&mut self, ranges: I) -> &mut Self
    where
        I: IntoIterator<Item = (u32, u32)>,
    {
        for (i, (low, high)) in ranges.into_iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            self.number(u64::from(low));
            if high != low {
                self.out.push(b':');
                self.number(u64::from(high));
            }
        }
        self
    }

    /// `tag STATUS [CODE] text\r\n`
    pub fn tagged(
        &mut self,
        tag: &str,
        status: Status,
        code: Option<&str>,
        text: &str,
    ) -> &mut Self {
        self.raw(tag.as_bytes()).sp();
        self.status_line(status, code, text)
    }

    /// `* STATUS [CODE] text\r\n`
    pub fn untagged_status(&mut self, status: Status, code: Option<&str>, text: &str) -> &mut Self {
        self.untagged();
        self.status_line(status, code, text)
    }

    /// `* ` — the start of an untagged line; finish it with [`crlf`](Self::crlf).
    pub fn untagged(&mut self) -> &mut Self {
        self.raw(b"* ")
    }

    /// `+ text\r\n`
    pub fn continuation(&mut self, text: &str) -> &mut Self {
        self.raw(b"+ ");
        self.text(text);
        self.crlf()
    }

    /// The response to a [`Rejection`] from the command reader.
    pub fn rejection(&mut self, r: &Rejection) -> &mut Self {
        let status = match r.kind {
            RejectKind::Bad => Status::Bad,
            RejectKind::No => Status::No,
        };
        match &r.tag {
            Some(tag) => self.tagged(tag, status, r.code, &r.text),
            None => self.untagged_status(status, r.code, &r.text),
        }
    }

    /// `STATUS [CODE] text\r\n`
    fn status_line(&mut self, status: Status, code: Option<&str>, text: &str) -> &mut Self {
        self.raw(status.as_str().as_bytes()).sp();
        if let Some(code) = code {
            self.raw(b"[");
            self.text(code);
            self.raw(b"] ");
        }
        // resp-text needs at least one character.
        self.text(if text.is_empty() { "done" } else { text });
        self.crlf()
    }

    /// Human-readable text: CR and LF would end the line early, so they become spaces.
    fn text(&mut self, text: &str) {
        self.out.extend(text.bytes().map(|b| match b {
            b'\r' | b'\n' | 0 => b' ',
            b => b,
        }));
    }
}

/// True when `s` can be sent as a bare atom (ASTRING-CHAR only, and not `NIL`).
fn is_atom_safe(s: &[u8]) -> bool {
    !s.is_empty()
        && !s.eq_ignore_ascii_case(b"NIL")
        && s.iter().all(|&b| {
            b > 0x20 && b < 0x7f && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(utf8: bool, f: impl FnOnce(&mut ResponseWriter<'_>)) -> String {
        let mut out = Vec::new();
        f(&mut ResponseWriter::new(&mut out, utf8));
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn astring_picks_atom_quoted_or_literal() {
        assert_eq!(
            write(false, |w| {
                w.astring(b"INBOX");
            }),
            "INBOX"
        );
        assert_eq!(
            write(false, |w| {
                w.astring(b"Sent]x");
            }),
            "Sent]x"
        );
        assert_eq!(
            write(false, |w| {
                w.astring(b"My Mail");
            }),
            "\"My Mail\""
        );
        assert_eq!(
            write(false, |w| {
                w.astring(b"");
            }),
            "\"\""
        );
        assert_eq!(
            write(false, |w| {
                w.astring(b"nil");
            }),
            "\"nil\""
        );
        assert_eq!(
            write(false, |w| {
                w.astring(b"a*b");
            }),
            "\"a*b\""
        );
        assert_eq!(
            write(false, |w| {
                w.astring(b"{5}");
            }),
            "\"{5}\""
        );
    }

    #[test]
    fn quoted_strings_escape_quote_and_backslash() {
        assert_eq!(
            write(false, |w| {
                w.string(br#"say "hi" \o/"#);
            }),
            r#""say \"hi\" \\o/""#
        );
    }

    #[test]
    fn unsafe_bytes_force_a_literal() {
        assert_eq!(
            write(false, |w| {
                w.string(b"a\r\nb");
            }),
            "{4}\r\na\r\nb"
        );
        assert_eq!(
            write(false, |w| {
                w.string(b"a\0b");
            }),
            "{3}\r\na\0b"
        );
        let long = vec![b'x'; QUOTED_MAX + 1];
        let s = write(false, |w| {
            w.string(&long);
        });
        assert!(s.starts_with("{1025}\r\nxxx"), "{}", &s[..10]);
    }

    #[test]
    fn eight_bit_is_quoted_only_with_utf8_enabled() {
        let name = "Entwürfe".as_bytes();
        assert_eq!(
            write(false, |w| {
                w.string(name);
            }),
            "{9}\r\nEntwürfe"
        );
        assert_eq!(
            write(true, |w| {
                w.string(name);
            }),
            "\"Entwürfe\""
        );
        // Invalid UTF-8 stays a literal even in UTF-8 mode.
        let bad = write(true, |w| {
            w.string(b"\xff\xfe");
        });
        assert!(bad.starts_with("{2}\r\n"));
    }

    #[test]
    fn nstring_nil_and_value() {
        assert_eq!(
            write(false, |w| {
                w.nstring(None);
            }),
            "NIL"
        );
        assert_eq!(
            write(false, |w| {
                w.nstring(Some(b"NIL"));
            }),
            "\"NIL\""
        );
    }

    #[test]
    fn literal8_and_numbers() {
        assert_eq!(
            write(false, |w| {
                w.literal8(b"\0\x01");
            }),
            "~{2}\r\n\0\x01"
        );
        assert_eq!(
            write(false, |w| {
                w.number(0).sp().number(u64::MAX);
            }),
            "0 18446744073709551615"
        );
    }

    #[test]
    fn flags_and_sets() {
        assert_eq!(
            write(false, |w| {
                w.flag_list(["\\Seen", "$Junk"]);
            }),
            "(\\Seen $Junk)"
        );
        assert_eq!(
            write(false, |w| {
                w.flag_list::<_, &str>([]);
            }),
            "()"
        );
        assert_eq!(
            write(false, |w| {
                w.flag(&Flag::Flagged)
                    .sp()
                    .flag(&Flag::Extension("Recent"))
                    .sp()
                    .flag(&Flag::Keyword("NonJunk"));
            }),
            "\\Flagged \\Recent NonJunk"
        );
        assert_eq!(
            write(false, |w| {
                w.sequence_set([(1, 3), (7, 7), (9, 12)]);
            }),
            "1:3,7,9:12"
        );
    }

    #[test]
    fn status_lines() {
        assert_eq!(
            write(false, |w| {
                w.tagged("a1", Status::Ok, Some("READ-WRITE"), "SELECT completed");
            }),
            "a1 OK [READ-WRITE] SELECT completed\r\n"
        );
        assert_eq!(
            write(false, |w| {
                w.untagged_status(Status::Bye, None, "bye\r\nx");
            }),
            "* BYE bye  x\r\n"
        );
        assert_eq!(
            write(false, |w| {
                w.continuation("Ready");
            }),
            "+ Ready\r\n"
        );
        assert_eq!(
            write(false, |w| {
                w.untagged().raw(b"3 EXISTS").crlf();
            }),
            "* 3 EXISTS\r\n"
        );
    }

    #[test]
    fn rejections_with_and_without_tag() {
        let r = Rejection {
            tag: Some("x".into()),
            kind: RejectKind::No,
            code: Some("TOOBIG"),
            text: "message too large".into(),
            limit: None,
        };
        assert_eq!(
            write(false, |w| {
                w.rejection(&r);
            }),
            "x NO [TOOBIG] message too large\r\n"
        );
        let r = Rejection {
            tag: None,
            kind: RejectKind::Bad,
            code: None,
            text: "missing or invalid tag".into(),
            limit: None,
        };
        assert_eq!(
            write(false, |w| {
                w.rejection(&r);
            }),
            "* BAD missing or invalid tag\r\n"
        );
    }
}
