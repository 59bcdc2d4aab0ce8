//! LMTP/SMTP replies (RFC 5321 4.2): framing and classification.
//!
//! A reply is one or more lines `CCC-text` ending with a line `CCC text` (or just `CCC`), all
//! with the same three-digit code. Framing works on whatever the socket delivered so far: it
//! says how long the first complete reply is, or that more bytes are needed, and refuses
//! what no server may send (bare LF, overlong lines, mixed codes) so a broken server is
//! reported instead of waited on.

use memchr::memchr;

/// Longest reply line accepted (RFC 5321 allows 512; servers add long texts, never this).
pub const MAX_REPLY_LINE: usize = 4096;
/// Most lines in one reply (an LHLO reply lists a dozen extensions at most).
pub const MAX_REPLY_LINES: usize = 100;

/// Why bytes from the server are not a valid reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// A line ended in LF without CR.
    #[error("reply line ends in bare LF")]
    BareLf,
    /// A line grew past [`MAX_REPLY_LINE`].
    #[error("reply line longer than {MAX_REPLY_LINE} bytes")]
    LineTooLong,
    /// More than [`MAX_REPLY_LINES`] lines.
    #[error("reply of more than {MAX_REPLY_LINES} lines")]
    TooManyLines,
    /// A line that does not start with a three-digit code and ' ' or '-'.
    #[error("malformed reply line: {0}")]
    Malformed(String),
    /// A continuation line with a different code than the first line.
    #[error("reply lines with different codes: {0}")]
    MixedCodes(String),
}

/// One complete reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit code, 200..=599 for what servers send.
    pub code: u16,
    /// The text of each line, without code, separator and CRLF.
    pub lines: Vec<String>,
}

impl Reply {
    /// 2xx: the command (or this recipient's delivery) succeeded.
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// 3xx: the server waits for more (354 after DATA).
    pub fn is_intermediate(&self) -> bool {
        (300..400).contains(&self.code)
    }

    /// The reply as one line for error examples: `550 5.1.1 <x> User unknown`.
    pub fn summary(&self) -> String {
        let text = self.lines.last().map_or("", String::as_str);
        format!("{} {}", self.code, text)
    }

    /// Whether an LHLO reply lists `keyword` (case-insensitive), and its parameter if any:
    /// `SIZE 67108864` gives `Some(Some("67108864"))`.
    pub fn extension(&self, keyword: &str) -> Option<Option<&str>> {
        // The first line is the server's name, not an extension.
        self.lines.iter().skip(1).find_map(|line| {
            let (word, rest) = match line.split_once(' ') {
                Some((w, r)) => (w, Some(r.trim())),
                None => (line.as_str(), None),
            };
            word.eq_ignore_ascii_case(keyword).then_some(rest)
        })
    }
}

/// The first complete reply in `buf` and its length in bytes, or `None` when more bytes are
/// needed.
pub fn frame_reply(buf: &[u8]) -> Result<Option<(Reply, usize)>, ReplyError> {
    let mut pos = 0;
    let mut code = None;
    let mut lines = Vec::new();
    // Each turn consumes one line; the buffer length and MAX_REPLY_LINES bound the turns.
    loop {
        let rest = buf.get(pos..).unwrap_or_default();
        let Some(lf) = memchr(b'\n', rest) else {
            if rest.len() > MAX_REPLY_LINE {
                return Err(ReplyError::LineTooLong);
            }
            return Ok(None);
        };
        if lf > MAX_REPLY_LINE {
            return Err(ReplyError::LineTooLong);
        }
        let Some(line) = rest[..lf].strip_suffix(b"\r") else {
            return Err(ReplyError::BareLf);
        };
        let printable = || String::from_utf8_lossy(line).into_owned();
        let (this_code, last, text) =
            split_line(line).ok_or_else(|| ReplyError::Malformed(printable()))?;
        if *code.get_or_insert(this_code) != this_code {
            return Err(ReplyError::MixedCodes(printable()));
        }
        lines.push(String::from_utf8_lossy(text).into_owned());
        pos += lf + 1;
        if last {
            return Ok(Some((
                Reply {
                    code: this_code,
                    lines,
                },
                pos,
            )));
        }
        if lines.len() >= MAX_REPLY_LINES {
            return Err(ReplyError::TooManyLines);
        }
    }
}

/// Code, whether this is the last line, and the text of one reply line.
fn split_line(line: &[u8]) -> Option<(u16, bool, &[u8])> {
    let digits = line.get(..3)?;
    if !digits.iter().all(u8::is_ascii_digit) || !(b'2'..=b'5').contains(&digits[0]) {
        return None;
    }
    let code = digits
        .iter()
        .fold(0u16, |acc, &d| acc * 10 + u16::from(d - b'0'));
    match line.get(3) {
        None => Some((code, true, &[])),
        Some(b' ') => Some((code, true, &line[4..])),
        Some(b'-') => Some((code, false, &line[4..])),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_line_reply() {
        let (r, n) = frame_reply(b"250 2.1.0 Sender OK\r\nrest")
            .unwrap()
            .unwrap();
        assert_eq!(n, 21);
        assert_eq!(r.code, 250);
        assert_eq!(r.lines, vec!["2.1.0 Sender OK"]);
        assert!(r.is_positive());
        assert_eq!(r.summary(), "250 2.1.0 Sender OK");
    }

    #[test]
    fn multi_line_lhlo_reply_and_extensions() {
        let full = b"250-mail.example\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 67108864\r\n";
        let (r, n) = frame_reply(full).unwrap().unwrap();
        assert_eq!(n, full.len());
        assert_eq!(r.lines.len(), 4);
        assert_eq!(r.extension("pipelining"), Some(None));
        assert_eq!(r.extension("SIZE"), Some(Some("67108864")));
        assert_eq!(r.extension("CHUNKING"), None);
        // The server name line is not an extension even when it looks like one.
        let (r, _) = frame_reply(b"250-SIZE\r\n250 8BITMIME\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(r.extension("SIZE"), None);
    }

    #[test]
    fn every_cut_of_a_multi_line_reply_needs_more_bytes() {
        let full = b"250-host\r\n250-PIPELINING\r\n250 SIZE 10\r\n";
        for cut in 0..full.len() {
            assert_eq!(frame_reply(&full[..cut]), Ok(None), "cut at {cut}");
        }
        assert_eq!(frame_reply(full).unwrap().unwrap().1, full.len());
    }

    #[test]
    fn replies_after_data_are_framed_one_at_a_time() {
        // Per-recipient replies after DATA arrive back to back, possibly in one read.
        let buf = b"250 2.0.0 <a@x> Saved\r\n550 5.1.1 <b@x> User unknown\r\n452 4.3.1 full\r\n";
        let mut pos = 0;
        let mut codes = Vec::new();
        while let Some((r, n)) = frame_reply(&buf[pos..]).unwrap() {
            codes.push(r.code);
            pos += n;
        }
        assert_eq!(codes, vec![250, 550, 452]);
        assert_eq!(pos, buf.len());
    }

    #[test]
    fn bare_code_line_is_a_reply() {
        let (r, _) = frame_reply(b"354\r\n").unwrap().unwrap();
        assert_eq!(r.code, 354);
        assert!(r.is_intermediate());
        assert_eq!(r.lines, vec![""]);
    }

    #[test]
    fn broken_replies_are_errors_not_waits() {
        assert_eq!(frame_reply(b"250 ok\n"), Err(ReplyError::BareLf));
        assert!(matches!(
            frame_reply(b"25 ok\r\n"),
            Err(ReplyError::Malformed(_))
        ));
        assert!(matches!(
            frame_reply(b"OK fine\r\n"),
            Err(ReplyError::Malformed(_))
        ));
        assert!(matches!(
            frame_reply(b"250_ok\r\n"),
            Err(ReplyError::Malformed(_))
        ));
        assert!(matches!(
            frame_reply(b"150 ok\r\n"),
            Err(ReplyError::Malformed(_))
        ));
        assert!(matches!(
            frame_reply(b"250-a\r\n550 b\r\n"),
            Err(ReplyError::MixedCodes(_))
        ));
        let long = vec![b'2'; MAX_REPLY_LINE + 2];
        assert_eq!(frame_reply(&long), Err(ReplyError::LineTooLong));
        let many: Vec<u8> = b"250-x\r\n".repeat(MAX_REPLY_LINES + 1);
        assert_eq!(frame_reply(&many), Err(ReplyError::TooManyLines));
    }

    #[test]
    fn non_ascii_text_does_not_panic() {
        let (r, _) = frame_reply(b"550 5.1.1 <\xff\xfe> unknown\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(r.code, 550);
    }
}
