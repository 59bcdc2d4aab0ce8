//! mbox files (mboxrd, the variant mutt, Thunderbird exports and Dovecot read): reading one
//! message at a time for import, writing for export.
//!
//! A message starts at a `From ` line at the start of the file or after a blank line; lines
//! in the message that begin with `>*From ` carry one extra `>`. Flags travel in the
//! `Status:`, `X-Status:` and `X-Keywords:` headers, which are taken out of the message on
//! import and put in on export, so an exported message imports back byte for byte. mbox uses
//! LF line ends; the store keeps CRLF, so lines are converted both ways.

use std::io::{self, BufRead, Write};

use ringmail_proto::dates::{civil_from_days, days_from_civil};
use ringmail_store::flag;

/// One message read from an mbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MboxMessage {
    /// The message with CRLF line ends, flag headers removed.
    pub bytes: Vec<u8>,
    /// The date of its `From ` line (seconds since the epoch), if it had a readable one.
    pub date: Option<i64>,
    /// System flags.
    pub flags: u8,
    /// Keywords.
    pub keywords: Vec<String>,
    /// The line number of its `From ` line.
    pub line: u64,
}

/// What is wrong with an mbox.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MboxError {
    /// The file does not start with a `From ` line.
    #[error("not an mbox file: it does not start with a \"From \" line")]
    NotMbox,
    /// The file ends in the middle of a line: the last message is cut off.
    #[error("the file ends in the middle of a line (truncated?): the message at line {line} is incomplete and was not imported")]
    Truncated {
        /// Where the cut message starts.
        line: u64,
    },
    /// A message larger than the store takes; it is skipped and the next one read.
    #[error("the message at line {line} has more than {limit} bytes, the store's limit: it was not imported", limit = ringmail_store::MAX_MESSAGE_SIZE)]
    TooLarge {
        /// Where the message starts.
        line: u64,
    },
    /// Reading failed.
    #[error("read error: {0}")]
    Io(String),
}

/// Reads the messages of an mbox one at a time.
pub struct MboxReader<R> {
    input: R,
    /// The `From ` line that starts the next message, and its line number.
    next_from: Option<(Vec<u8>, u64)>,
    line_no: u64,
    started: bool,
    done: bool,
    /// Largest message returned (the store's limit, smaller in tests).
    limit: usize,
}

impl<R: BufRead> MboxReader<R> {
    /// A reader over `input`.
    pub fn new(input: R) -> MboxReader<R> {
        MboxReader {
            input,
            next_from: None,
            line_no: 0,
            started: false,
            done: false,
            limit: ringmail_store::MAX_MESSAGE_SIZE,
        }
    }

    /// A reader that refuses messages over `limit` bytes.
    #[cfg(test)]
    fn with_limit(input: R, limit: usize) -> MboxReader<R> {
        MboxReader {
            limit,
            ..MboxReader::new(input)
        }
    }

    fn read_line(&mut self, buf: &mut Vec<u8>) -> Result<usize, MboxError> {
        buf.clear();
        // A "line" longer than a whole message can be comes back in pieces: its message is
        // refused as too large anyway, and no line can make the tool run out of memory.
        let n = std::io::Read::take(&mut self.input, self.limit as u64 + 1)
            .read_until(b'\n', buf)
            .map_err(|e| MboxError::Io(e.to_string()))?;
        if n > 0 {
            self.line_no += 1;
        }
        Ok(n)
    }
}

impl<R: BufRead> Iterator for MboxReader<R> {
    type Item = Result<MboxMessage, MboxError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let mut line = Vec::new();
        if !self.started {
            self.started = true;
            // Blank lines before the first message are tolerated.
            loop {
                match self.read_line(&mut line) {
                    Err(e) => return self.fail(e),
                    Ok(0) => {
                        self.done = true;
                        return None;
                    }
                    Ok(_) if line.iter().all(u8::is_ascii_whitespace) => continue,
                    Ok(_) if line.starts_with(b"From ") => {
                        self.next_from = Some((line.clone(), self.line_no));
                        break;
                    }
                    Ok(_) => return self.fail(MboxError::NotMbox),
                }
            }
        }
        let (from, start) = self.next_from.take()?;
        let mut lines: Vec<Vec<u8>> = Vec::new();
        // Bytes of this message so far; past the store's limit its lines are dropped while
        // the reader looks for the next message.
        let mut size = 0usize;
        loop {
            match self.read_line(&mut line) {
                Err(e) => return self.fail(e),
                Ok(0) => {
                    self.done = true;
                    if lines.last().is_some_and(|l| !l.ends_with(b"\n")) {
                        return Some(Err(MboxError::Truncated { line: start }));
                    }
                    break;
                }
                Ok(_) => {
                    let after_blank = lines.last().is_some_and(|l| is_blank(l));
                    if line.starts_with(b"From ") && after_blank {
                        self.next_from = Some((std::mem::take(&mut line), self.line_no));
                        break;
                    }
                    size += line.len();
                    if size <= self.limit {
                        lines.push(std::mem::take(&mut line));
                    } else {
                        // Keeps the last line only, for the blank-line check above.
                        lines.clear();
                        lines.push(std::mem::take(&mut line));
                    }
                }
            }
        }
        if size > self.limit {
            return Some(Err(MboxError::TooLarge { line: start }));
        }
        // The blank line before the next From line (or at the end) is the separator.
        if lines.last().is_some_and(|l| is_blank(l)) {
            lines.pop();
        }
        Some(Ok(assemble(&from, lines, start)))
    }
}

impl<R> MboxReader<R> {
    fn fail(&mut self, e: MboxError) -> Option<Result<MboxMessage, MboxError>> {
        self.done = true;
        Some(Err(e))
    }
}

fn is_blank(line: &[u8]) -> bool {
    line == b"\n" || line == b"\r\n"
}

/// Builds a message from its lines: flag headers taken out, `>From` unescaped, CRLF ends.
fn assemble(from: &[u8], lines: Vec<Vec<u8>>, start: u64) -> MboxMessage {
    let mut msg = MboxMessage {
        bytes: Vec::new(),
        date: from_line_date(from),
        flags: 0,
        keywords: Vec::new(),
        line: start,
    };
    let mut in_header = true;
    for line in lines {
        let content = line
            .strip_suffix(b"\n")
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .unwrap_or(&line);
        let had_end = line.ends_with(b"\n");
        if in_header {
            if content.is_empty() {
                in_header = false;
            } else if flag_header(content, &mut msg) {
                continue;
            }
        }
        let unescaped = match content.iter().position(|&b| b != b'>') {
            Some(n) if n > 0 && content[n..].starts_with(b"From ") => &content[1..],
            _ => content,
        };
        msg.bytes.extend_from_slice(unescaped);
        if had_end {
            msg.bytes.extend_from_slice(b"\r\n");
        }
    }
    msg
}

/// Takes a `Status:`, `X-Status:` or `X-Keywords:` header into `msg`; true if it was one.
fn flag_header(line: &[u8], msg: &mut MboxMessage) -> bool {
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return false;
    };
    let name = &line[..colon];
    let value = String::from_utf8_lossy(&line[colon + 1..]);
    if name.eq_ignore_ascii_case(b"Status") {
        if value.contains('R') {
            msg.flags |= flag::SEEN;
        }
    } else if name.eq_ignore_ascii_case(b"X-Status") {
        for (c, bit) in [
            ('A', flag::ANSWERED),
            ('F', flag::FLAGGED),
            ('T', flag::DRAFT),
            ('D', flag::DELETED),
        ] {
            if value.contains(c) {
                msg.flags |= bit;
            }
        }
    } else if name.eq_ignore_ascii_case(b"X-Keywords") {
        msg.keywords.extend(
            value
                .split([' ', ','])
                .filter(|k| !k.is_empty())
                .map(str::to_string),
        );
    } else {
        return false;
    }
    true
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];

/// The date of a `From sender Www Mmm dd hh:mm:ss yyyy` line (UTC, as mbox writers use).
fn from_line_date(line: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(line).ok()?;
    let tokens: Vec<&str> = text.split_ascii_whitespace().collect();
    let m = tokens.iter().position(|t| MONTHS.contains(t))?;
    let month_name = tokens.get(m)?;
    let month = MONTHS.iter().position(|x| x == month_name)? as u32 + 1;
    let day: u32 = tokens.get(m + 1)?.parse().ok()?;
    let mut hms = tokens.get(m + 2)?.split(':').map(|x| x.parse::<i64>());
    let (h, min, s) = (
        hms.next()?.ok()?,
        hms.next()?.ok()?,
        hms.next().unwrap_or(Ok(0)).ok()?,
    );
    let year: i64 = tokens.get(m + 3)?.parse().ok()?;
    if !(1..=31).contains(&day) || h > 23 || min > 59 || s > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86400 + h * 3600 + min * 60 + s)
}

/// The asctime form of `secs` (UTC) for a `From ` line.
fn asctime(secs: i64) -> String {
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{} {} {:2} {:02}:{:02}:{:02} {y}",
        WEEKDAYS[days.rem_euclid(7) as usize],
        MONTHS[(m as usize).saturating_sub(1) % 12],
        d,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Writes one message in mboxrd form.
pub fn write_message(
    out: &mut impl Write,
    sender: &str,
    date: i64,
    flags: u8,
    keywords: &[&str],
    bytes: &[u8],
) -> io::Result<()> {
    let sender = if sender.is_empty() {
        "MAILER-DAEMON"
    } else {
        sender
    };
    writeln!(out, "From {sender} {}", asctime(date))?;
    if flags & flag::SEEN != 0 {
        out.write_all(b"Status: RO\n")?;
    }
    let x: String = [
        (flag::ANSWERED, 'A'),
        (flag::FLAGGED, 'F'),
        (flag::DRAFT, 'T'),
        (flag::DELETED, 'D'),
    ]
    .iter()
    .filter(|(bit, _)| flags & bit != 0)
    .map(|&(_, c)| c)
    .collect();
    if !x.is_empty() {
        writeln!(out, "X-Status: {x}")?;
    }
    if !keywords.is_empty() {
        writeln!(out, "X-Keywords: {}", keywords.join(" "))?;
    }
    let mut rest = bytes;
    while !rest.is_empty() {
        let (line, more) = match memchr::memchr(b'\n', rest) {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &[][..]),
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(n) = line.iter().position(|&b| b != b'>') {
            if line[n..].starts_with(b"From ") {
                out.write_all(b">")?;
            }
        }
        out.write_all(line)?;
        out.write_all(b"\n")?;
        rest = more;
    }
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(text: &[u8]) -> Vec<Result<MboxMessage, MboxError>> {
        MboxReader::new(text).collect()
    }

    #[test]
    fn splits_unescapes_and_takes_flags() {
        let text = b"From a@b Mon Jan  2 15:04:05 2006\nStatus: RO\nX-Status: AF\nX-Keywords: Work $Label1\nSubject: one\n\n>From the start\n>>From x\nbody\n\nFrom c@d Tue Jan  3 00:00:00 2006\nSubject: two\n\nsecond\n\n";
        let msgs = read_all(text);
        assert_eq!(msgs.len(), 2);
        let one = msgs[0].as_ref().unwrap();
        assert_eq!(
            one.bytes,
            b"Subject: one\r\n\r\nFrom the start\r\n>From x\r\nbody\r\n"
        );
        assert_eq!(one.flags, flag::SEEN | flag::ANSWERED | flag::FLAGGED);
        assert_eq!(one.keywords, vec!["Work", "$Label1"]);
        assert_eq!(one.date, Some(1136214245));
        let two = msgs[1].as_ref().unwrap();
        assert_eq!(two.bytes, b"Subject: two\r\n\r\nsecond\r\n");
        assert_eq!(two.line, 11);
    }

    #[test]
    fn round_trip() {
        let body = b"Subject: x\r\n\r\nFrom me\r\n>From you\r\n\r\nend\r\n";
        let mut out = Vec::new();
        write_message(
            &mut out,
            "s@x",
            1136214245,
            flag::SEEN | flag::DRAFT,
            &["k"],
            body,
        )
        .unwrap();
        write_message(&mut out, "", 0, 0, &[], b"Subject: y\r\n\r\ny\r\n").unwrap();
        let msgs: Vec<_> = read_all(&out).into_iter().map(Result::unwrap).collect();
        assert_eq!(msgs[0].bytes, body);
        assert_eq!(msgs[0].flags, flag::SEEN | flag::DRAFT);
        assert_eq!(msgs[0].keywords, vec!["k"]);
        assert_eq!(msgs[0].date, Some(1136214245));
        assert_eq!(msgs[1].bytes, b"Subject: y\r\n\r\ny\r\n");
        assert_eq!(msgs[1].date, Some(0));
    }

    #[test]
    fn bad_input() {
        assert_eq!(
            read_all(b"Subject: no from line\n"),
            vec![Err(MboxError::NotMbox)]
        );
        let cut = read_all(b"From a Mon Jan  2 15:04:05 2006\nS: 1\n\nok\n\nFrom b Mon Jan  2 15:04:05 2006\nS: 2\n\nhalf a li");
        assert!(cut[0].is_ok());
        assert_eq!(cut[1], Err(MboxError::Truncated { line: 6 }));
        assert!(read_all(b"").is_empty());
    }

    #[test]
    fn a_message_over_the_limit_is_skipped_and_the_next_one_read() {
        let text = format!(
            "From a Sat Jan  3 01:05:34 2015\nSubject: big\n\n{}\n\n\
             From b Sat Jan  3 01:05:35 2015\nSubject: small\n\nok\n",
            "x".repeat(500)
        );
        let items: Vec<_> = MboxReader::with_limit(text.as_bytes(), 200).collect();
        assert_eq!(items.len(), 2, "{items:?}");
        assert!(
            matches!(items[0], Err(MboxError::TooLarge { line: 1 })),
            "{items:?}"
        );
        let second = items[1].as_ref().expect("the next message is read");
        assert!(second.bytes.starts_with(b"Subject: small"), "{second:?}");
    }
}
