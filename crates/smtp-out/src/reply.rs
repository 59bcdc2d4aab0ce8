//! SMTP replies (RFC 5321 §4.2): a three-digit code and one or more lines of text, all
//! but the last marked with a `-` after the code.

use std::fmt;

/// Longest reply line taken (RFC 5321 §4.5.3.1.5 allows 512; relays add long texts).
pub const MAX_LINE: usize = 4096;
/// Most lines in one reply (an EHLO reply lists one extension a line).
pub const MAX_LINES: usize = 128;

/// One reply from the relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// The text of each line, without the code and separator.
    pub lines: Vec<String>,
}

impl Reply {
    /// 2xx.
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// 5xx: the same request will fail again.
    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }
}

impl fmt::Display for Reply {
    /// The code and the text, lines joined by a space: fit for a log line or an error.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        for line in &self.lines {
            if !line.is_empty() {
                write!(f, " {line}")?;
            }
        }
        Ok(())
    }
}

/// One line of a reply: its code, whether more lines follow, its text.
pub(crate) fn parse_line(line: &[u8]) -> Result<(u16, bool, String), String> {
    let bad = || format!("malformed reply line {:?}", String::from_utf8_lossy(line));
    if line.len() < 3
        || !line[..3].iter().all(u8::is_ascii_digit)
        || !(b'2'..=b'5').contains(&line[0])
    {
        return Err(bad());
    }
    let code = line[..3]
        .iter()
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    let (more, text) = match line.get(3) {
        None => (false, &[][..]),
        Some(b' ') => (false, &line[4..]),
        Some(b'-') => (true, &line[4..]),
        Some(_) => return Err(bad()),
    };
    Ok((code, more, String::from_utf8_lossy(text).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        assert_eq!(
            parse_line(b"250-SIZE 1000"),
            Ok((250, true, "SIZE 1000".into()))
        );
        assert_eq!(
            parse_line(b"550 5.1.1 No such user"),
            Ok((550, false, "5.1.1 No such user".into()))
        );
        assert_eq!(parse_line(b"354"), Ok((354, false, String::new())));
        for bad in [&b"25"[..], b"abc text", b"250x", b"650 odd"] {
            assert!(parse_line(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn display() {
        let r = Reply {
            code: 550,
            lines: vec!["5.7.1 Refused:".into(), "policy".into()],
        };
        assert_eq!(r.to_string(), "550 5.7.1 Refused: policy");
        assert!(r.is_permanent() && !r.is_positive());
    }
}
