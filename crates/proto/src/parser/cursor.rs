//! The lexical layer: atoms, numbers, strings, literals, dates, sets and flags.
//!
//! A [`Cursor`] walks one complete command (the framing in `reader` has already checked that
//! every literal is present and within the limits), so running out of input is simply a
//! syntax error: there is no "incomplete" case down here.

use std::borrow::Cow;

use super::ast::{AString, Date, DateTime, Flag, Mailbox, SequenceSet};

/// Why a command could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyntaxError {
    /// Human-readable reason, sent after `BAD`.
    pub reason: &'static str,
    /// True when an implementation limit (nesting depth) was hit: answered with `[LIMIT]`.
    pub limit: bool,
}

/// Result of a grammar rule.
pub type PResult<T> = Result<T, SyntaxError>;

/// A syntax error with `reason`.
pub(crate) fn err<T>(reason: &'static str) -> PResult<T> {
    Err(SyntaxError {
        reason,
        limit: false,
    })
}

/// The longest keyword the grammar knows (`HEADER.FIELDS.NOT`, `SAVEDATESUPPORTED`): longer
/// atoms are never keywords, so upper-casing fits a small stack buffer.
const KEYWORD_MAX: usize = 24;

/// An atom upper-cased on the stack, for matching keywords without allocating.
pub(crate) struct Upper {
    buf: [u8; KEYWORD_MAX],
    len: usize,
}

impl Upper {
    /// The upper-cased bytes; empty when the atom was too long to be a keyword.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(b"")
    }
}

/// Upper-cases `raw` for keyword matching (too-long input matches nothing).
#[inline]
pub(crate) fn upper(raw: &[u8]) -> Upper {
    let mut out = Upper {
        buf: [0; KEYWORD_MAX],
        len: 0,
    };
    if let Some(dst) = out.buf.get_mut(..raw.len()) {
        dst.copy_from_slice(raw);
        dst.make_ascii_uppercase();
        out.len = raw.len();
    }
    out
}

/// Character classes, one bit each, looked up in [`CLASS`] (one load per byte instead of
/// a chain of comparisons: this is the parser's innermost loop).
const ATOM: u8 = 1;
const ASTRING: u8 = 2;
const TAG: u8 = 4;
const LIST: u8 = 8;
const KEYWORD: u8 = 16;

/// The class bits of every byte.
static CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0x21;
    while b < 0x7f {
        let c = b as u8;
        let special = matches!(c, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']');
        let mut bits = 0;
        if !special {
            bits |= ATOM | ASTRING | LIST;
            if c != b'+' {
                bits |= TAG;
            }
            if c != b'[' && c != b'<' {
                bits |= KEYWORD;
            }
        }
        if c == b']' {
            bits |= ASTRING | TAG | LIST;
        }
        if c == b'%' || c == b'*' {
            bits |= LIST;
        }
        table[b] = bits;
        b += 1;
    }
    table
};

/// True when `b` has any of the class bits `class`.
#[inline(always)]
fn is(b: u8, class: u8) -> bool {
    CLASS[usize::from(b)] & class != 0
}

/// ATOM-CHAR: any CHAR except atom-specials `( ) { SP CTL % * " \ ]`.
#[inline]
pub(crate) fn is_atom_char(b: u8) -> bool {
    is(b, ATOM)
}

/// ASTRING-CHAR: ATOM-CHAR or `]`.
#[inline]
pub(crate) fn is_astring_char(b: u8) -> bool {
    is(b, ASTRING)
}

/// list-char: ATOM-CHAR, list-wildcards or resp-specials.
#[inline]
fn is_list_char(b: u8) -> bool {
    is(b, LIST)
}

/// tag: ASTRING-CHAR except `+`.
#[inline]
pub(crate) fn is_tag_char(b: u8) -> bool {
    is(b, TAG)
}

/// The characters of a keyword: ATOM-CHAR except `[` and `<`, which start a section or a
/// partial (`BODY.PEEK[`, `BINARY[`).
#[inline]
fn is_keyword_char(b: u8) -> bool {
    is(b, KEYWORD)
}

/// Walks one complete command.
pub(crate) struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
    depth: usize,
    max_depth: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor over `s` allowing `max_depth` levels of parentheses.
    pub(crate) fn new(s: &'a [u8], max_depth: usize) -> Self {
        Cursor {
            s,
            pos: 0,
            depth: 0,
            max_depth,
        }
    }

    /// The next byte, if any.
    #[inline]
    pub(crate) fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    /// The rest of the input.
    #[inline]
    fn rest(&self) -> &'a [u8] {
        self.s.get(self.pos..).unwrap_or(b"")
    }

    /// The current position, to backtrack to with [`Cursor::restore_pos`].
    pub(crate) fn clone_pos(&self) -> usize {
        self.pos
    }

    /// Backtracks to a position saved with [`Cursor::clone_pos`].
    pub(crate) fn restore_pos(&mut self, pos: usize) {
        self.pos = pos.min(self.s.len());
    }

    /// The bytes from `start` (a saved position) to here.
    pub(crate) fn since(&self, start: usize) -> &'a [u8] {
        self.s.get(start..self.pos).unwrap_or(b"")
    }

    /// Steps back over the byte just consumed.
    pub(crate) fn unread_one(&mut self) {
        self.pos = self.pos.saturating_sub(1);
    }

    /// True if the input continues with exactly `bytes`.
    pub(crate) fn peek_is(&self, bytes: &[u8]) -> bool {
        self.rest().starts_with(bytes)
    }

    /// True if the input continues, `skip` bytes on, with `word` (ASCII case ignored).
    pub(crate) fn peek_ci_at(&self, skip: usize, word: &[u8]) -> bool {
        self.rest()
            .get(skip..)
            .and_then(|r| r.get(..word.len()))
            .is_some_and(|w| w.eq_ignore_ascii_case(word))
    }

    /// Consumes `b` if it is next.
    #[inline]
    pub(crate) fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Requires `b` next.
    #[inline]
    pub(crate) fn expect(&mut self, b: u8, reason: &'static str) -> PResult<()> {
        if self.eat(b) {
            Ok(())
        } else {
            err(reason)
        }
    }

    /// Requires a single space.
    #[inline]
    pub(crate) fn sp(&mut self) -> PResult<()> {
        self.expect(b' ', "expected a space")
    }

    /// Consumes `word` if the input starts with it, ignoring ASCII case.
    pub(crate) fn eat_ci(&mut self, word: &[u8]) -> bool {
        let rest = self.rest();
        if rest.len() >= word.len()
            && rest
                .get(..word.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(word))
        {
            self.pos += word.len();
            true
        } else {
            false
        }
    }

    /// Requires the end of the command: CRLF (a bare LF is tolerated) and nothing after it.
    pub(crate) fn end(&mut self) -> PResult<()> {
        self.eat(b'\r');
        if self.eat(b'\n') && self.pos == self.s.len() {
            Ok(())
        } else {
            err("unexpected characters at end of command")
        }
    }

    /// Enters one level of parentheses, enforcing the depth limit.
    pub(crate) fn open(&mut self) -> PResult<()> {
        self.expect(b'(', "expected '('")?;
        self.nest()
    }

    /// Leaves one level of parentheses.
    pub(crate) fn close(&mut self) -> PResult<()> {
        self.expect(b')', "expected ')'")?;
        self.unnest();
        Ok(())
    }

    /// Enters one level of nesting (parentheses, or NOT/OR operands, which recurse just
    /// the same): the limit keeps a hostile `NOT NOT NOT ...` from exhausting the stack.
    pub(crate) fn nest(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > self.max_depth {
            return Err(SyntaxError {
                reason: "too deeply nested",
                limit: true,
            });
        }
        Ok(())
    }

    /// Leaves one level of nesting.
    pub(crate) fn unnest(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// Takes bytes while `pred` holds.
    #[inline]
    pub(crate) fn take_while(&mut self, pred: impl Fn(u8) -> bool) -> &'a [u8] {
        let rest = self.rest();
        let n = rest.iter().position(|&b| !pred(b)).unwrap_or(rest.len());
        self.pos += n;
        rest.get(..n).unwrap_or(b"")
    }

    /// 1*ATOM-CHAR.
    pub(crate) fn atom(&mut self) -> PResult<&'a [u8]> {
        let a = self.take_while(is_atom_char);
        if a.is_empty() {
            err("expected an atom")
        } else {
            Ok(a)
        }
    }

    /// An atom as `&str` (atoms are ASCII by definition).
    pub(crate) fn atom_str(&mut self) -> PResult<&'a str> {
        let a = self.atom()?;
        std::str::from_utf8(a).or_else(|_| err("expected an atom"))
    }

    /// A keyword-like token: letters, digits, `.`, `-`, `=` and the like; upper-cased.
    /// Stops at `[`, `(`, `)`, SP and other specials, so `BODY.PEEK[` yields `BODY.PEEK`.
    pub(crate) fn keyword(&mut self) -> PResult<Upper> {
        let a = self.take_while(is_keyword_char);
        if a.is_empty() {
            err("expected a keyword")
        } else {
            Ok(upper(a))
        }
    }

    /// number: 1*DIGIT fitting in u32.
    pub(crate) fn number(&mut self) -> PResult<u32> {
        let n = self.number64()?;
        u32::try_from(n).or_else(|_| err("number too large"))
    }

    /// nz-number.
    pub(crate) fn nz_number(&mut self) -> PResult<u32> {
        match self.number()? {
            0 => err("number must not be zero"),
            n => Ok(n),
        }
    }

    /// number64: 1*DIGIT fitting in 63 bits (RFC 9051 §4.2).
    pub(crate) fn number64(&mut self) -> PResult<u64> {
        let digits = self.take_while(|b| b.is_ascii_digit());
        if digits.is_empty() {
            return err("expected a number");
        }
        let mut n: u64 = 0;
        for &d in digits {
            n = n
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(d - b'0')))
                .filter(|&n| n <= i64::MAX as u64)
                .ok_or(SyntaxError {
                    reason: "number too large",
                    limit: false,
                })?;
        }
        Ok(n)
    }

    /// A literal's header `{n}` / `{n+}` + CRLF, then its payload; `~` for literal8 is
    /// handled by the caller. The framing has checked that `n` bytes follow.
    fn literal_body(&mut self) -> PResult<&'a [u8]> {
        self.expect(b'{', "expected '{'")?;
        let n = self.number64()?;
        self.eat(b'+');
        self.expect(b'}', "expected '}'")?;
        self.eat(b'\r');
        self.expect(b'\n', "expected CRLF after literal size")?;
        let n = usize::try_from(n).or_else(|_| err("literal too large"))?;
        let end = self.pos.checked_add(n).filter(|&e| e <= self.s.len());
        match end.and_then(|e| self.s.get(self.pos..e)) {
            Some(data) => {
                self.pos += n;
                Ok(data)
            }
            None => err("literal data missing"),
        }
    }

    /// A literal (`{n}` or `{n+}`); NUL is not allowed in it (RFC 9051 `literal`).
    pub(crate) fn literal(&mut self) -> PResult<&'a [u8]> {
        let data = self.literal_body()?;
        if memchr::memchr(0, data).is_some() {
            return err("NUL in literal (use literal8)");
        }
        Ok(data)
    }

    /// A literal or literal8 (`~{n}`): returns the payload and whether it was literal8.
    pub(crate) fn literal_or_literal8(&mut self) -> PResult<(&'a [u8], bool)> {
        if self.eat(b'~') {
            Ok((self.literal_body()?, true))
        } else {
            Ok((self.literal()?, false))
        }
    }

    /// A quoted string, unescaped (borrowed unless it had escapes).
    pub(crate) fn quoted(&mut self) -> PResult<AString<'a>> {
        self.expect(b'"', "expected '\"'")?;
        let start = self.pos;
        let mut escaped = false;
        loop {
            match self.peek() {
                Some(b'"') => break,
                Some(b'\\') => {
                    escaped = true;
                    self.pos += 1;
                    match self.peek() {
                        Some(b'"') | Some(b'\\') => self.pos += 1,
                        _ => return err("bad escape in quoted string"),
                    }
                }
                Some(b'\r') | Some(b'\n') | Some(0) | None => {
                    return err("unterminated quoted string")
                }
                Some(_) => self.pos += 1,
            }
        }
        let raw = self.s.get(start..self.pos).unwrap_or(b"");
        self.pos += 1;
        if !escaped {
            return Ok(Cow::Borrowed(raw));
        }
        let mut out = Vec::with_capacity(raw.len());
        let mut bytes = raw.iter();
        while let Some(&b) = bytes.next() {
            if b == b'\\' {
                if let Some(&next) = bytes.next() {
                    out.push(next);
                }
            } else {
                out.push(b);
            }
        }
        Ok(Cow::Owned(out))
    }

    /// string: quoted or literal.
    pub(crate) fn string(&mut self) -> PResult<AString<'a>> {
        match self.peek() {
            Some(b'"') => self.quoted(),
            Some(b'{') => Ok(Cow::Borrowed(self.literal()?)),
            _ => err("expected a string"),
        }
    }

    /// astring: 1*ASTRING-CHAR or string.
    pub(crate) fn astring(&mut self) -> PResult<AString<'a>> {
        match self.peek() {
            Some(b'"') | Some(b'{') => self.string(),
            _ => {
                let a = self.take_while(is_astring_char);
                if a.is_empty() {
                    err("expected an atom or string")
                } else {
                    Ok(Cow::Borrowed(a))
                }
            }
        }
    }

    /// nstring: NIL or string.
    pub(crate) fn nstring(&mut self) -> PResult<Option<AString<'a>>> {
        if matches!(self.peek(), Some(b'n') | Some(b'N')) {
            if self.eat_ci(b"NIL") {
                return Ok(None);
            }
            return err("expected NIL or a string");
        }
        self.string().map(Some)
    }

    /// mailbox: an astring, with `INBOX` case-normalised.
    pub(crate) fn mailbox(&mut self) -> PResult<Mailbox<'a>> {
        let name = self.astring()?;
        if name.eq_ignore_ascii_case(b"INBOX") {
            Ok(Mailbox(Cow::Borrowed(b"INBOX")))
        } else {
            Ok(Mailbox(name))
        }
    }

    /// list-mailbox: 1*list-char or string (wildcards kept).
    pub(crate) fn list_mailbox(&mut self) -> PResult<AString<'a>> {
        match self.peek() {
            Some(b'"') | Some(b'{') => self.string(),
            _ => {
                let a = self.take_while(is_list_char);
                if a.is_empty() {
                    err("expected a mailbox pattern")
                } else {
                    Ok(Cow::Borrowed(a))
                }
            }
        }
    }

    /// sequence-set (with `*`) or `$`.
    pub(crate) fn sequence_set(&mut self) -> PResult<SequenceSet<'a>> {
        if self.eat(b'$') {
            return Ok(SequenceSet::from_validated(b"$"));
        }
        let start = self.pos;
        loop {
            self.seq_number()?;
            if self.eat(b':') {
                self.seq_number()?;
            }
            if !self.eat(b',') {
                break;
            }
        }
        Ok(SequenceSet::from_validated(
            self.s.get(start..self.pos).unwrap_or(b""),
        ))
    }

    /// seq-number: nz-number or `*`.
    fn seq_number(&mut self) -> PResult<()> {
        if self.eat(b'*') {
            return Ok(());
        }
        self.nz_number().map(|_| ())
    }

    /// date: `d-Mon-yyyy`, bare or quoted.
    pub(crate) fn date(&mut self) -> PResult<Date> {
        let quoted = self.eat(b'"');
        let day = self.take_while(|b| b.is_ascii_digit());
        if day.is_empty() || day.len() > 2 {
            return err("bad date");
        }
        let date = self.date_rest(digits_value(day))?;
        if quoted {
            self.expect(b'"', "bad date")?;
        }
        Ok(date)
    }

    /// `-Mon-yyyy` after the day.
    fn date_rest(&mut self, day: u32) -> PResult<Date> {
        self.expect(b'-', "bad date")?;
        let mon = self.rest().get(..3).map(upper);
        const MONTHS: [&[u8]; 12] = [
            b"JAN", b"FEB", b"MAR", b"APR", b"MAY", b"JUN", b"JUL", b"AUG", b"SEP", b"OCT", b"NOV",
            b"DEC",
        ];
        let month = mon
            .and_then(|m| MONTHS.iter().position(|&name| name == m.as_bytes()))
            .ok_or(SyntaxError {
                reason: "bad month in date",
                limit: false,
            })?;
        self.pos += 3;
        self.expect(b'-', "bad date")?;
        let year = self.fixed_digits(4, "bad year in date")?;
        if !(1..=31).contains(&day) {
            return err("bad day in date");
        }
        Ok(Date {
            year: year as u16,
            month: month as u8 + 1,
            day: day as u8,
        })
    }

    /// Exactly `n` digits.
    fn fixed_digits(&mut self, n: usize, reason: &'static str) -> PResult<u32> {
        let digits = self.rest().get(..n).ok_or(SyntaxError {
            reason,
            limit: false,
        })?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return err(reason);
        }
        self.pos += n;
        Ok(digits_value(digits))
    }

    /// date-time: `"dd-Mon-yyyy hh:mm:ss +zzzz"` (day may be space-padded).
    pub(crate) fn date_time(&mut self) -> PResult<DateTime> {
        self.expect(b'"', "expected a date-time")?;
        self.eat(b' ');
        let day = self.take_while(|b| b.is_ascii_digit());
        if day.is_empty() || day.len() > 2 {
            return err("bad date-time");
        }
        let date = self.date_rest(digits_value(day))?;
        self.sp()?;
        let hour = self.fixed_digits(2, "bad time")?;
        self.expect(b':', "bad time")?;
        let minute = self.fixed_digits(2, "bad time")?;
        self.expect(b':', "bad time")?;
        let second = self.fixed_digits(2, "bad time")?;
        self.sp()?;
        let sign: i16 = match self.peek() {
            Some(b'+') => 1,
            Some(b'-') => -1,
            _ => return err("bad time zone"),
        };
        self.pos += 1;
        let zone = self.fixed_digits(4, "bad time zone")?;
        self.expect(b'"', "bad date-time")?;
        if hour > 23 || minute > 59 || second > 60 || zone % 100 > 59 {
            return err("bad time");
        }
        Ok(DateTime {
            date,
            hour: hour as u8,
            minute: minute as u8,
            second: second as u8,
            zone_minutes: sign * ((zone / 100) * 60 + zone % 100) as i16,
        })
    }

    /// flag: `\Name` or a keyword atom.
    pub(crate) fn flag(&mut self) -> PResult<Flag<'a>> {
        if self.eat(b'\\') {
            let name = self.atom_str()?;
            let u = upper(name.as_bytes());
            return Ok(match u.as_bytes() {
                b"SEEN" => Flag::Seen,
                b"ANSWERED" => Flag::Answered,
                b"FLAGGED" => Flag::Flagged,
                b"DELETED" => Flag::Deleted,
                b"DRAFT" => Flag::Draft,
                _ => Flag::Extension(name),
            });
        }
        Ok(Flag::Keyword(self.atom_str()?))
    }

    /// flag-list: `(flag *(SP flag))`, possibly empty.
    pub(crate) fn flag_list(&mut self) -> PResult<Vec<Flag<'a>>> {
        self.open()?;
        let mut flags = Vec::new();
        if !self.eat(b')') {
            loop {
                flags.push(self.flag()?);
                if !self.eat(b' ') {
                    break;
                }
            }
            self.close()?;
        } else {
            self.unnest();
        }
        Ok(flags)
    }

    /// `(` item *(SP item) `)` with at least one item.
    pub(crate) fn paren_list<T>(
        &mut self,
        mut item: impl FnMut(&mut Self) -> PResult<T>,
    ) -> PResult<Vec<T>> {
        self.open()?;
        // Most lists are short: one allocation instead of growing 1, 2, 4.
        let mut items = Vec::with_capacity(4);
        loop {
            items.push(item(self)?);
            if !self.eat(b' ') {
                break;
            }
        }
        self.close()?;
        Ok(items)
    }
}

/// The value of a run of at most a few ASCII digits.
fn digits_value(digits: &[u8]) -> u32 {
    digits
        .iter()
        .fold(0u32, |n, &d| n * 10 + u32::from(d - b'0'))
}
