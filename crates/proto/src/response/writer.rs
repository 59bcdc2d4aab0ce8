//! The response writer: IMAP tokens written into a `Vec<u8>`.
//!
//! Its main job is picking the right form for every byte string: an atom where the grammar
//! allows one and the bytes are atom-safe, a quoted string when that is safe, a literal
//! otherwise (CR, LF, NUL, 8-bit data unless the session is in UTF-8 mode, or long strings,
//! which clients read faster as literals than unescaped quoted text). The typed responses
//! (`Reply`, `StatusResponse`, the `data` module) are written with it; so is FETCH, whose
//! hot path appends literals straight from storage (see [`ResponseWriter::literal_start`]).

use super::{decimal, Code, Status};
use crate::parser::{Flag, RejectKind, Rejection};

/// Strings longer than this are sent as literals even when quoting would be legal.
pub const QUOTED_MAX: usize = 1024;

/// Writes response tokens into a buffer the session owns.
#[derive(Debug)]
pub struct ResponseWriter<'b> {
    out: &'b mut Vec<u8>,
    utf8: bool,
}

impl<'b> ResponseWriter<'b> {
    /// A writer appending to `out`. `utf8`: the session is in UTF-8 mode (the client enabled
    /// UTF8=ACCEPT or IMAP4rev2), so valid UTF-8 may be sent in quoted strings. An IMAP
    /// session decides that once, when ENABLE changes it, and hands it to every writer.
    pub fn new(out: &'b mut Vec<u8>, utf8: bool) -> Self {
        ResponseWriter { out, utf8 }
    }

    /// Whether this writer is in UTF-8 mode.
    pub fn utf8(&self) -> bool {
        self.utf8
    }

    /// The buffer written so far.
    pub fn buffer(&self) -> &[u8] {
        self.out
    }

    /// How many bytes the buffer holds: a mark to [`truncate`](Self::truncate) back to.
    pub fn len(&self) -> usize {
        self.out.len()
    }

    /// Whether the buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// Takes back everything written after `mark` (a response that failed half way).
    pub fn truncate(&mut self, mark: usize) {
        self.out.truncate(mark);
    }

    /// The buffer itself, for literal data appended in place: a store read straight into
    /// it after [`literal_start`](Self::literal_start).
    pub fn buffer_mut(&mut self) -> &mut Vec<u8> {
        self.out
    }

    /// Makes room for `additional` more bytes at once (a long answer of known size then
    /// grows the buffer once instead of doubling it a dozen times).
    pub fn reserve(&mut self, additional: usize) -> &mut Self {
        self.out.reserve(additional);
        self
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
        // The digits go left-aligned into a fixed 20 bytes that are appended whole and cut
        // back: a copy of constant length is a couple of stores, where one of the digits'
        // own length is a call to memcpy per number (a SEARCH answer lists a million).
        let mut digits = [0u8; 20];
        let len = decimal::format(n, &mut digits);
        let at = self.out.len();
        self.out.extend_from_slice(&digits);
        self.out.truncate(at + len);
        self
    }

    /// ` n` for each of `ids`: the list of a SEARCH or SORT answer, fastest when the ids
    /// ascend (see [`decimal::append_spaced`]).
    pub fn spaced_numbers(&mut self, ids: &[u32]) -> &mut Self {
        decimal::append_spaced(self.out, ids);
        self
    }

    /// ringmail's RFC 8474 objectid for `id`: `M` and the id in lowercase hex.
    pub fn object_id(&mut self, id: u64) -> &mut Self {
        let mut digits = [0u8; 16];
        let mut i = digits.len();
        let mut n = id;
        loop {
            i -= 1;
            digits[i] = b"0123456789abcdef"[(n & 0xf) as usize];
            n >>= 4;
            if n == 0 {
                break;
            }
        }
        self.out.push(b'M');
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

    /// A string taken from a message header (the pre-rendered ENVELOPE and BODYSTRUCTURE):
    /// as [`string`](Self::string), except that NUL, which is not allowed even in a literal
    /// (RFC 9051 `CHAR8`), makes it a literal with each NUL replaced by a space: a header
    /// holding NUL is broken anyway and must not break the response.
    pub fn header_string(&mut self, s: &[u8]) -> &mut Self {
        if memchr::memchr(0, s).is_none() {
            return self.string(s);
        }
        let spaced: Vec<u8> = s.iter().map(|&b| if b == 0 { b' ' } else { b }).collect();
        self.literal(&spaced)
    }

    /// `NIL` for `None`, else [`header_string`](Self::header_string).
    pub fn header_nstring(&mut self, s: Option<&[u8]>) -> &mut Self {
        match s {
            None => self.raw(b"NIL"),
            Some(s) => self.header_string(s),
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

    /// A value in double quotes as it is, whatever its length: for values whose grammar
    /// rules out `"`, `\`, CR, LF and NUL (a command tag, which is an atom).
    pub fn quoted_verbatim(&mut self, s: &[u8]) -> &mut Self {
        self.out.push(b'"');
        self.out.extend_from_slice(s);
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
    /// must use [`literal8`](Self::literal8), message text [`text_literal`](Self::text_literal).
    pub fn literal(&mut self, s: &[u8]) -> &mut Self {
        self.literal_start(s.len() as u64);
        self.out.extend_from_slice(s);
        self
    }

    /// A BINARY literal8 `~{n}\r\n` + bytes.
    pub fn literal8(&mut self, s: &[u8]) -> &mut Self {
        self.out.push(b'~');
        self.literal(s)
    }

    /// The head of a literal of `len` bytes, `{len}\r\n`; the caller appends exactly `len`
    /// bytes to [`buffer_mut`](Self::buffer_mut) next. Returns where they start.
    pub fn literal_start(&mut self, len: u64) -> usize {
        self.out.push(b'{');
        self.number(len);
        self.out.extend_from_slice(b"}\r\n");
        self.out.len()
    }

    /// A literal of message text. A literal must not hold NUL (RFC 3501 section 9: a
    /// literal is CHAR8s; the same in RFC 9051), and mail that arrived by LMTP or import
    /// may: each NUL goes out as 0x80, as Dovecot sends it, keeping the length. BINARY sends
    /// the exact bytes ([`binary_literal`](Self::binary_literal)).
    pub fn text_literal(&mut self, s: &[u8]) -> &mut Self {
        let start = self.literal_start(s.len() as u64);
        self.out.extend_from_slice(s);
        self.text_literal_end(start)
    }

    /// Ends a literal of message text whose bytes were appended in place since `start`
    /// (what [`literal_start`](Self::literal_start) returned): each NUL there becomes 0x80,
    /// as in [`text_literal`](Self::text_literal).
    pub fn text_literal_end(&mut self, start: usize) -> &mut Self {
        if let Some(text) = self.out.get_mut(start..) {
            replace_nuls(text);
        }
        self
    }

    /// BINARY's literal (RFC 3516): the decoded bytes as they are, as a literal8 when they
    /// hold NUL.
    pub fn binary_literal(&mut self, s: &[u8]) -> &mut Self {
        if memchr::memchr(0, s).is_some() {
            self.literal8(s)
        } else {
            self.literal(s)
        }
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
        // ESEARCH ALL over a large mailbox can be hundreds of thousands of ranges.
        decimal::append_ranges(self.out, ranges);
        self
    }

    /// `tag STATUS [CODE] text\r\n`
    pub fn tagged(
        &mut self,
        tag: &str,
        status: Status,
        code: Option<&Code>,
        text: &str,
    ) -> &mut Self {
        self.raw(tag.as_bytes()).sp();
        self.status_line(status, code, text)
    }

    /// `* STATUS [CODE] text\r\n`
    pub fn untagged_status(
        &mut self,
        status: Status,
        code: Option<&Code>,
        text: &str,
    ) -> &mut Self {
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

    /// The response to a [`Rejection`] from the command reader: tagged when it has a tag,
    /// else `* BAD ...`.
    pub fn rejection(&mut self, r: &Rejection) -> &mut Self {
        let status = match r.kind {
            RejectKind::Bad => Status::Bad,
            RejectKind::No => Status::No,
        };
        match &r.tag {
            Some(tag) => self.tagged(tag, status, r.code.as_ref(), &r.text),
            None => self.untagged_status(status, r.code.as_ref(), &r.text),
        }
    }

    /// `STATUS [CODE] text\r\n`
    fn status_line(&mut self, status: Status, code: Option<&Code>, text: &str) -> &mut Self {
        self.raw(status.as_str().as_bytes()).sp();
        if let Some(code) = code {
            self.raw(b"[");
            code.serialize(self);
            self.raw(b"] ");
        }
        // resp-text needs at least one character.
        self.text(if text.is_empty() { "done" } else { text });
        self.crlf()
    }

    /// Human-readable text: CR and LF would end the line early, so they become spaces.
    pub fn text(&mut self, text: &str) -> &mut Self {
        self.out.extend(text.bytes().map(|b| match b {
            b'\r' | b'\n' | 0 => b' ',
            b => b,
        }));
        self
    }
}

/// NUL becomes 0x80, in place. Mail almost never holds NUL: one memchr pass finds none.
fn replace_nuls(text: &mut [u8]) {
    let mut at = 0;
    while let Some(i) = memchr::memchr(0, &text[at..]) {
        text[at + i] = 0x80;
        at += i + 1;
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
    fn header_strings_nil_quoted_and_literal() {
        let render = |v: Option<&[u8]>| {
            let mut out = Vec::new();
            ResponseWriter::new(&mut out, false).header_nstring(v);
            out
        };
        assert_eq!(render(None), b"NIL");
        assert_eq!(render(Some(b"plain text")), b"\"plain text\"");
        assert_eq!(
            render(Some(b"say \"hi\" \\o/")),
            b"\"say \\\"hi\\\" \\\\o/\""
        );
        assert_eq!(render(Some("caf\u{e9}".as_bytes())), b"{5}\r\ncaf\xc3\xa9");
        assert_eq!(render(Some(b"a\r\nb")), b"{4}\r\na\r\nb");
        assert_eq!(render(Some(b"a\0b")), b"{3}\r\na b");
        let long = vec![b'x'; QUOTED_MAX + 1];
        assert!(render(Some(&long)).starts_with(b"{1025}\r\n"));
    }

    #[test]
    fn message_text_and_binary_literals() {
        let mut out = Vec::new();
        ResponseWriter::new(&mut out, false)
            .raw(b"x ")
            .text_literal(b"a\0b");
        assert_eq!(out, b"x {3}\r\na\x80b");
        let mut out = Vec::new();
        let mut w = ResponseWriter::new(&mut out, false);
        let start = w.literal_start(4);
        w.buffer_mut().extend_from_slice(b"\0a\0\x80");
        w.text_literal_end(start);
        assert_eq!(out, b"{4}\r\n\x80a\x80\x80");
        let mut out = Vec::new();
        ResponseWriter::new(&mut out, false).binary_literal(b"a\0b");
        assert_eq!(out, b"~{3}\r\na\0b");
        let mut out = Vec::new();
        ResponseWriter::new(&mut out, false).binary_literal(b"ab");
        assert_eq!(out, b"{2}\r\nab");
    }

    #[test]
    fn every_nul_becomes_0x80_and_nothing_else_changes() {
        let mut text = b"\0a\0\0b\x80c\0".to_vec();
        replace_nuls(&mut text);
        assert_eq!(text, b"\x80a\x80\x80b\x80c\x80");
    }

    #[test]
    fn object_ids_and_verbatim_quotes() {
        assert_eq!(
            write(false, |w| {
                w.object_id(0)
                    .sp()
                    .object_id(0xbeef)
                    .sp()
                    .object_id(u64::MAX);
            }),
            "M0 Mbeef Mffffffffffffffff"
        );
        assert_eq!(
            write(false, |w| {
                w.quoted_verbatim(b"a1");
            }),
            "\"a1\""
        );
    }

    #[test]
    fn marks_and_truncation() {
        let mut out = b"keep".to_vec();
        let mut w = ResponseWriter::new(&mut out, true);
        assert!(w.utf8());
        let mark = w.len();
        w.raw(b" half a response");
        w.truncate(mark);
        assert_eq!(w.buffer(), b"keep");
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
                w.tagged("a1", Status::Ok, Some(&Code::ReadWrite), "SELECT completed");
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
            code: Some(Code::TooBig),
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
