//! Server responses: framing (where one response ends, literals included) and the little
//! parsing the profiles need to check what the server said.
//!
//! A response is one line, unless it ends in a literal announcement `{N}`: then N bytes follow
//! and the response continues on the line after them. Framing never trusts N beyond
//! `max_literal`, so a broken server cannot make the client allocate without bound.

use memchr::memchr;

/// Longest line (literals excluded) accepted from a server before it counts as a protocol
/// violation. Dovecot's longest lines are well under this.
pub const MAX_LINE: usize = 1 << 20;

/// Why bytes from the server are not a valid response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A line ended in LF without CR.
    #[error("line ends in bare LF")]
    BareLf,
    /// A line grew past [`MAX_LINE`] without ending.
    #[error("line longer than {MAX_LINE} bytes")]
    LineTooLong,
    /// A literal announced more bytes than allowed.
    #[error("literal of {0} bytes is over the limit")]
    LiteralTooLarge(u64),
}

/// Length of the first complete response in `buf`, or `None` when more bytes are needed.
pub fn frame(buf: &[u8], max_literal: u64) -> Result<Option<usize>, FrameError> {
    let mut pos = 0;
    // Each turn consumes one line and the literal it announces; a line without a literal
    // ends the response. The buffer length bounds the number of turns.
    while pos < buf.len() {
        let Some(lf) = memchr(b'\n', &buf[pos..]) else {
            if buf.len() - pos > MAX_LINE {
                return Err(FrameError::LineTooLong);
            }
            return Ok(None);
        };
        let line_end = pos + lf;
        if lf == 0 || buf[line_end - 1] != b'\r' {
            return Err(FrameError::BareLf);
        }
        let line = &buf[pos..line_end - 1];
        match literal_len(line) {
            Some(n) if n > max_literal => return Err(FrameError::LiteralTooLarge(n)),
            Some(n) => {
                let after = (line_end + 1) as u64 + n;
                if after > buf.len() as u64 {
                    return Ok(None);
                }
                pos = after as usize;
            }
            None => return Ok(Some(line_end + 1)),
        }
    }
    Ok(None)
}

/// The N of a line ending in `{N}` (or `{N+}`, which servers do not send but costs nothing).
fn literal_len(line: &[u8]) -> Option<u64> {
    let inner = line.strip_suffix(b"}")?;
    let open = memchr::memrchr(b'{', inner)?;
    let digits = &inner[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    parse_u64(digits)
}

/// A decimal number made only of ASCII digits (no sign, no spaces), without overflow.
pub fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &d| {
        d.is_ascii_digit().then(|| acc * 10 + u64::from(d - b'0'))
    })
}

/// Status of a tagged response or of an untagged status response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// OK
    Ok,
    /// NO
    No,
    /// BAD
    Bad,
    /// BYE (untagged only)
    Bye,
    /// PREAUTH (untagged greeting only)
    Preauth,
}

impl Status {
    fn parse(word: &[u8]) -> Option<Status> {
        Some(match word.to_ascii_uppercase().as_slice() {
            b"OK" => Status::Ok,
            b"NO" => Status::No,
            b"BAD" => Status::Bad,
            b"BYE" => Status::Bye,
            b"PREAUTH" => Status::Preauth,
            _ => return None,
        })
    }
}

/// One framed response, classified. Slices borrow the framed bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response<'a> {
    /// `+ text`: the server waits for a literal or an IDLE/AUTHENTICATE continuation.
    Continue,
    /// `TAG STATUS text`.
    Tagged {
        /// The tag, as sent by the client.
        tag: &'a [u8],
        /// OK, NO or BAD.
        status: Status,
        /// The rest of the line, response code included.
        text: &'a [u8],
    },
    /// `* OK/NO/BAD/BYE/PREAUTH text`.
    UntaggedStatus {
        /// The status word.
        status: Status,
        /// The rest of the line.
        text: &'a [u8],
    },
    /// `* N EXISTS`
    Exists(u32),
    /// `* N EXPUNGE`
    Expunge(u32),
    /// `* N FETCH (...)`: the bytes between the outer parentheses.
    Fetch(u32, &'a [u8]),
    /// `* SEARCH n n n`: the bytes after SEARCH.
    Search(&'a [u8]),
    /// `* VANISHED ...` (QRESYNC).
    Vanished(&'a [u8]),
    /// `* CAPABILITY ...`: the bytes after CAPABILITY.
    Capability(&'a [u8]),
    /// Any other untagged data (LIST, STATUS, FLAGS, RECENT, ENABLED, ID, NAMESPACE, ...).
    Other(&'a [u8]),
}

/// Why a framed response could not be classified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unparsable response: {0}")]
pub struct ParseError(pub String);

impl<'a> Response<'a> {
    /// Classifies one complete response as returned by [`frame`] (CRLF included).
    pub fn parse(raw: &'a [u8]) -> Result<Response<'a>, ParseError> {
        let body = raw.strip_suffix(b"\r\n").unwrap_or(raw);
        let bad = || ParseError(printable(raw, 120));
        if body.first() == Some(&b'+') {
            return Ok(Response::Continue);
        }
        let (first, rest) = split_word(body);
        if first != b"*" {
            let (word, text) = split_word(rest);
            let status = Status::parse(word).ok_or_else(bad)?;
            if first.is_empty() || matches!(status, Status::Bye | Status::Preauth) {
                return Err(bad());
            }
            return Ok(Response::Tagged {
                tag: first,
                status,
                text,
            });
        }
        let (word, after) = split_word(rest);
        if let Some(status) = Status::parse(word) {
            return Ok(Response::UntaggedStatus {
                status,
                text: after,
            });
        }
        if let Some(n) = parse_u64(word) {
            let n = u32::try_from(n).map_err(|_| bad())?;
            let (kind, data) = split_word(after);
            return Ok(match kind.to_ascii_uppercase().as_slice() {
                b"EXISTS" => Response::Exists(n),
                b"EXPUNGE" => Response::Expunge(n),
                b"FETCH" => {
                    let inner = data
                        .strip_prefix(b"(")
                        .and_then(|d| d.strip_suffix(b")"))
                        .ok_or_else(bad)?;
                    Response::Fetch(n, inner)
                }
                _ => Response::Other(rest),
            });
        }
        Ok(match word.to_ascii_uppercase().as_slice() {
            b"SEARCH" => Response::Search(after),
            b"VANISHED" => Response::Vanished(after),
            b"CAPABILITY" => Response::Capability(after),
            _ => Response::Other(rest),
        })
    }
}

/// Splits at the first space: (word, rest after the space).
fn split_word(s: &[u8]) -> (&[u8], &[u8]) {
    match memchr(b' ', s) {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, &[]),
    }
}

/// The capability names in a `[CAPABILITY ...]` response code at the start of `text`.
pub fn capability_code(text: &[u8]) -> Option<&[u8]> {
    let rest = text.strip_prefix(b"[")?;
    let (word, after) = split_word(rest);
    if !word.eq_ignore_ascii_case(b"CAPABILITY") {
        return None;
    }
    let end = memchr(b']', after)?;
    Some(&after[..end])
}

/// The value of a `[NAME value]` response code at the start of `text` (e.g. UIDVALIDITY).
pub fn code_number(text: &[u8], name: &[u8]) -> Option<u64> {
    let rest = text.strip_prefix(b"[")?;
    let (word, after) = split_word(rest);
    if !word.eq_ignore_ascii_case(name) {
        return None;
    }
    let end = memchr(b']', after)?;
    parse_u64(&after[..end])
}

/// Whether `text` starts with the response code `[NAME` (e.g. EXPUNGEISSUED).
pub fn has_code(text: &[u8], name: &[u8]) -> bool {
    text.strip_prefix(b"[").is_some_and(|rest| {
        rest.len() >= name.len()
            && rest[..name.len()].eq_ignore_ascii_case(name)
            && matches!(rest.get(name.len()), Some(b']') | Some(b' '))
    })
}

/// At most `max` bytes of `raw` as text for error examples: control bytes escaped.
pub fn printable(raw: &[u8], max: usize) -> String {
    let cut = &raw[..raw.len().min(max)];
    let mut s: String = cut.escape_ascii().to_string();
    if raw.len() > max {
        s.push('…');
    }
    s
}

/// What the profiles need from the items of one FETCH response.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FetchData {
    /// UID item.
    pub uid: Option<u32>,
    /// RFC822.SIZE item.
    pub size: Option<u64>,
    /// FLAGS item: the flag names.
    pub flags: Option<Vec<String>>,
    /// MODSEQ item.
    pub modseq: Option<u64>,
    /// Whether an ENVELOPE item was present.
    pub envelope: bool,
    /// Length of a BODY[]/BODY[HEADER...]/RFC822 value (NIL counts as 0).
    pub body_len: Option<u64>,
}

/// Parses the items between the parentheses of `* N FETCH (...)`.
pub fn parse_fetch(items: &[u8]) -> Result<FetchData, ParseError> {
    let mut data = FetchData::default();
    let mut cur = Cursor { s: items, pos: 0 };
    // Each turn consumes a name and its value, so the item count is bounded by the length.
    loop {
        cur.skip_spaces();
        if cur.pos >= cur.s.len() {
            return Ok(data);
        }
        let name = cur.item_name()?.to_ascii_uppercase();
        cur.skip_spaces();
        let value = cur.value(0)?;
        match name.as_slice() {
            b"UID" => data.uid = value.number().and_then(|n| u32::try_from(n).ok()),
            b"RFC822.SIZE" => data.size = value.number(),
            b"MODSEQ" => {
                // MODSEQ (n)
                if let Value::List(inner) = value {
                    let inner = trim(inner);
                    data.modseq = parse_u64(inner);
                }
            }
            b"FLAGS" => {
                if let Value::List(inner) = value {
                    let flags = inner
                        .split(|&b| b == b' ')
                        .filter(|f| !f.is_empty())
                        .map(|f| String::from_utf8_lossy(f).into_owned())
                        .collect();
                    data.flags = Some(flags);
                }
            }
            b"ENVELOPE" => data.envelope = matches!(value, Value::List(_)),
            n if n.starts_with(b"BODY[")
                || n.starts_with(b"RFC822")
                || n.starts_with(b"BINARY[") =>
            {
                data.body_len = Some(match value {
                    Value::Bytes(b) => b.len() as u64,
                    Value::Nil => 0,
                    _ => {
                        return Err(ParseError(format!(
                            "{} is not a string",
                            printable(&name, 40)
                        )))
                    }
                });
            }
            _ => {}
        }
    }
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| b != b' ').unwrap_or(s.len());
    let end = s.iter().rposition(|&b| b != b' ').map_or(start, |e| e + 1);
    &s[start..end]
}

/// One FETCH item value.
enum Value<'a> {
    Atom(&'a [u8]),
    Bytes(&'a [u8]),
    List(&'a [u8]),
    Nil,
}

impl Value<'_> {
    fn number(&self) -> Option<u64> {
        match self {
            Value::Atom(a) => parse_u64(a),
            _ => None,
        }
    }
}

/// Nesting deeper than this in a FETCH response is refused (BODYSTRUCTURE of real mail stays
/// far below it).
const MAX_DEPTH: usize = 64;

struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn err(&self, what: &str) -> ParseError {
        ParseError(format!(
            "{what} at byte {} of FETCH: {}",
            self.pos,
            printable(self.s, 120)
        ))
    }

    fn skip_spaces(&mut self) {
        while self.s.get(self.pos) == Some(&b' ') {
            self.pos += 1;
        }
    }

    /// A FETCH item name: an atom that may carry a `[section]<partial>` part.
    fn item_name(&mut self) -> Result<&'a [u8], ParseError> {
        let start = self.pos;
        let mut depth = 0usize;
        while let Some(&b) = self.s.get(self.pos) {
            match b {
                b'[' => depth += 1,
                b']' => depth = depth.saturating_sub(1),
                b' ' if depth == 0 => break,
                b'(' | b')' if depth == 0 => break,
                _ => {}
            }
            self.pos += 1;
        }
        if self.pos == start {
            return Err(self.err("missing item name"));
        }
        Ok(&self.s[start..self.pos])
    }

    fn value(&mut self, depth: usize) -> Result<Value<'a>, ParseError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nesting too deep"));
        }
        match self.s.get(self.pos) {
            None => Err(self.err("missing value")),
            Some(b'(') => {
                let start = self.pos + 1;
                self.pos += 1;
                loop {
                    self.skip_spaces();
                    match self.s.get(self.pos) {
                        None => return Err(self.err("unclosed list")),
                        Some(b')') => {
                            let inner = &self.s[start..self.pos];
                            self.pos += 1;
                            return Ok(Value::List(inner));
                        }
                        Some(_) => {
                            self.value(depth + 1)?;
                        }
                    }
                }
            }
            Some(b'"') => {
                self.pos += 1;
                let start = self.pos;
                while let Some(&b) = self.s.get(self.pos) {
                    match b {
                        b'\\' => self.pos += 2,
                        b'"' => {
                            let v = &self.s[start..self.pos];
                            self.pos += 1;
                            return Ok(Value::Bytes(v));
                        }
                        _ => self.pos += 1,
                    }
                }
                Err(self.err("unclosed quoted string"))
            }
            Some(b'{') => {
                let close =
                    memchr(b'}', &self.s[self.pos..]).ok_or_else(|| self.err("bad literal"))?;
                let digits = &self.s[self.pos + 1..self.pos + close];
                let n = parse_u64(digits).ok_or_else(|| self.err("bad literal length"))?;
                let start = self.pos + close + 3; // "}\r\n"
                let end = usize::try_from(n)
                    .ok()
                    .and_then(|n| start.checked_add(n))
                    .filter(|&e| e <= self.s.len())
                    .ok_or_else(|| self.err("short literal"))?;
                self.pos = end;
                Ok(Value::Bytes(&self.s[start..end]))
            }
            Some(_) => {
                let start = self.pos;
                let mut bracket = 0usize;
                while let Some(&b) = self.s.get(self.pos) {
                    match b {
                        b'[' => bracket += 1,
                        b']' => bracket = bracket.saturating_sub(1),
                        b' ' | b'(' | b')' if bracket == 0 => break,
                        _ => {}
                    }
                    self.pos += 1;
                }
                let atom = &self.s[start..self.pos];
                if atom.eq_ignore_ascii_case(b"NIL") {
                    Ok(Value::Nil)
                } else {
                    Ok(Value::Atom(atom))
                }
            }
        }
    }
}

/// The numbers of a `* SEARCH` response (a trailing `(MODSEQ n)` is skipped).
pub fn parse_search(data: &[u8]) -> Result<Vec<u32>, ParseError> {
    let data = match memchr(b'(', data) {
        Some(i) => &data[..i],
        None => data,
    };
    data.split(|&b| b == b' ')
        .filter(|w| !w.is_empty())
        .map(|w| {
            parse_u64(w)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| ParseError(format!("bad SEARCH number {}", printable(w, 20))))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: u64 = 1 << 20;

    #[test]
    fn frames_one_line_at_a_time() {
        let buf = b"* 3 EXISTS\r\nA1 OK done\r\n";
        assert_eq!(frame(buf, MAX), Ok(Some(12)));
        assert_eq!(frame(&buf[12..], MAX), Ok(Some(12)));
    }

    #[test]
    fn incomplete_line_needs_more() {
        assert_eq!(frame(b"* 3 EXIS", MAX), Ok(None));
        assert_eq!(frame(b"* 3 EXISTS\r", MAX), Ok(None));
        assert_eq!(frame(b"", MAX), Ok(None));
    }

    #[test]
    fn literal_split_across_reads_is_one_response() {
        let full = b"* 1 FETCH (UID 7 BODY[] {11}\r\nhello\r\nbye!)\r\nA1 OK\r\n";
        let first = 34; // inside the literal
                        // Every prefix shorter than the response needs more bytes.
        let end = full.len() - 7;
        for cut in 0..end {
            assert_eq!(
                frame(&full[..cut], MAX),
                Ok(None),
                "cut at {cut} of {first}"
            );
        }
        assert_eq!(frame(full, MAX), Ok(Some(end)));
        let raw = &full[..end];
        let Response::Fetch(1, items) = Response::parse(raw).unwrap() else {
            panic!("not a fetch");
        };
        let data = parse_fetch(items).unwrap();
        assert_eq!(data.uid, Some(7));
        assert_eq!(data.body_len, Some(11));
    }

    #[test]
    fn literal_containing_crlf_and_braces_does_not_end_early() {
        let full = b"* 2 FETCH (BODY[] {8}\r\nx{3}\r\nab NIL)\r\n";
        assert_eq!(frame(full, MAX), Ok(Some(full.len())));
    }

    #[test]
    fn two_literals_in_one_response() {
        let full = b"* 1 FETCH (BODY[HEADER] {2}\r\nab BODY[TEXT] {3}\r\ncde)\r\n";
        assert_eq!(frame(&full[..full.len() - 1], MAX), Ok(None));
        assert_eq!(frame(full, MAX), Ok(Some(full.len())));
    }

    #[test]
    fn bare_lf_and_huge_literals_are_errors() {
        assert_eq!(frame(b"* OK hi\n", MAX), Err(FrameError::BareLf));
        assert_eq!(
            frame(b"* 1 FETCH (BODY[] {99999999999}\r\n", MAX),
            Err(FrameError::LiteralTooLarge(99_999_999_999))
        );
        let long = vec![b'a'; MAX_LINE + 10];
        assert_eq!(frame(&long, MAX), Err(FrameError::LineTooLong));
    }

    #[test]
    fn classifies_tagged_untagged_and_continuation() {
        assert_eq!(
            Response::parse(b"a12 NO [AUTHENTICATIONFAILED] nope\r\n").unwrap(),
            Response::Tagged {
                tag: b"a12",
                status: Status::No,
                text: b"[AUTHENTICATIONFAILED] nope"
            }
        );
        assert_eq!(
            Response::parse(b"+ idling\r\n").unwrap(),
            Response::Continue
        );
        assert_eq!(
            Response::parse(b"* 5 EXPUNGE\r\n").unwrap(),
            Response::Expunge(5)
        );
        assert_eq!(
            Response::parse(b"* BYE Logging out\r\n").unwrap(),
            Response::UntaggedStatus {
                status: Status::Bye,
                text: b"Logging out"
            }
        );
        assert_eq!(
            Response::parse(b"* SEARCH 1 4 9\r\n").unwrap(),
            Response::Search(b"1 4 9")
        );
        assert!(matches!(
            Response::parse(b"* LIST (\\HasNoChildren) \"/\" INBOX\r\n").unwrap(),
            Response::Other(_)
        ));
        assert!(Response::parse(b"a1 MAYBE\r\n").is_err());
        assert!(Response::parse(b"a1 BYE\r\n").is_err());
    }

    #[test]
    fn fetch_items_with_envelope_and_flags() {
        let items = br#"UID 42 FLAGS (\Seen $Junk) RFC822.SIZE 1234 MODSEQ (77) ENVELOPE ("Mon, 1 Jan 2024 00:00:00 +0000" "a (b) \"c\"" (("A" NIL "a" "x.org")) NIL NIL NIL NIL NIL NIL "<id@x>")"#;
        let data = parse_fetch(items).unwrap();
        assert_eq!(data.uid, Some(42));
        assert_eq!(data.size, Some(1234));
        assert_eq!(data.modseq, Some(77));
        assert!(data.envelope);
        assert_eq!(
            data.flags,
            Some(vec!["\\Seen".to_string(), "$Junk".to_string()])
        );
    }

    #[test]
    fn fetch_header_fields_section_is_a_body() {
        let items = b"UID 3 BODY[HEADER.FIELDS (FROM SUBJECT)] {4}\r\nab\r\n";
        let data = parse_fetch(items).unwrap();
        assert_eq!(data.body_len, Some(4));
        assert_eq!(data.uid, Some(3));
    }

    #[test]
    fn malformed_fetch_is_an_error_not_a_panic() {
        for bad in [
            &b"UID 1 FLAGS (\\Seen"[..],
            b"BODY[] {10}\r\nab",
            b"ENVELOPE (\"abc",
            b"BODY[] {x}\r\n",
        ] {
            assert!(parse_fetch(bad).is_err(), "{}", printable(bad, 50));
        }
    }

    #[test]
    fn response_codes() {
        assert_eq!(
            code_number(b"[UIDVALIDITY 99] ok", b"UIDVALIDITY"),
            Some(99)
        );
        assert_eq!(
            capability_code(b"[CAPABILITY IMAP4rev1 IDLE] Logged in"),
            Some(&b"IMAP4rev1 IDLE"[..])
        );
        assert!(has_code(b"[EXPUNGEISSUED] gone", b"EXPUNGEISSUED"));
        assert!(!has_code(b"[EXPUNGEISSUEDX] gone", b"EXPUNGEISSUED"));
    }

    #[test]
    fn search_numbers() {
        assert_eq!(parse_search(b"1 2 30").unwrap(), vec![1, 2, 30]);
        assert_eq!(parse_search(b"").unwrap(), Vec::<u32>::new());
        assert_eq!(parse_search(b"4 (MODSEQ 9)").unwrap(), vec![4]);
        assert!(parse_search(b"1 x").is_err());
    }
}
