//! The base subject of RFC 5256 section 2.1: the subject without `Re:`, `Fwd:`, `[list]`
//! tags, `(fwd)` trailers and `[Fwd: ...]` wrappers, for SORT SUBJECT and threading.

/// A base subject and whether extracting it showed a reply or forward (RFC 5256: removal
/// in steps 2, 3 or 6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseSubject {
    /// The base subject, whitespace collapsed, original case kept.
    pub text: String,
    /// The subject marked the message as a reply or forward.
    pub is_reply: bool,
}

impl BaseSubject {
    /// The collation key: i;ascii-casemap, as RFC 5256 asks for the base subject.
    pub fn key(&self) -> String {
        self.text.to_ascii_uppercase()
    }
}

/// Extracts the base subject of a decoded (RFC 2047 already undone) subject.
pub fn base_subject(subject: &str) -> BaseSubject {
    // Step 1: tabs and line breaks become spaces, runs of spaces one space.
    let mut s = String::with_capacity(subject.len());
    for c in subject.chars() {
        let c = if matches!(c, '\t' | '\r' | '\n') {
            ' '
        } else {
            c
        };
        if !(c == ' ' && s.ends_with(' ')) {
            s.push(c);
        }
    }
    let mut is_reply = false;
    loop {
        // Step 2: trailing "(fwd)" and whitespace.
        loop {
            if s.ends_with(' ') {
                s.pop();
            } else if s.len() >= 5
                && s.is_char_boundary(s.len() - 5)
                && s[s.len() - 5..].eq_ignore_ascii_case("(fwd)")
            {
                s.truncate(s.len() - 5);
                is_reply = true;
            } else {
                break;
            }
        }
        // Steps 3 to 5: leaders and blobs.
        loop {
            let before = s.len();
            if s.starts_with(' ') {
                s.remove(0);
            } else if let Some(end) = leader(s.as_bytes()) {
                s.drain(..end);
                is_reply = true;
            }
            if let Some(end) = blob(s.as_bytes(), 0) {
                if end < s.len() {
                    s.drain(..end);
                }
            }
            if s.len() == before {
                break;
            }
        }
        // Step 6: "[fwd: ...]".
        let b = s.as_bytes();
        if b.len() >= 6 && b[..5].eq_ignore_ascii_case(b"[fwd:") && b.ends_with(b"]") {
            s = s[5..s.len() - 1].to_string();
            is_reply = true;
            continue;
        }
        break;
    }
    BaseSubject { text: s, is_reply }
}

/// `*subj-blob subj-refwd`: the end of a reply/forward leader at the start of `b`.
fn leader(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    loop {
        if let Some(end) = refwd(b, i) {
            return Some(end);
        }
        i = blob(b, i)?;
    }
}

/// `("re" / ("fw" ["d"])) *WSP [subj-blob] ":"` at `i`.
fn refwd(b: &[u8], i: usize) -> Option<usize> {
    let word = |w: &[u8]| {
        b.get(i..i + w.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(w))
            .then_some(i + w.len())
    };
    [word(b"fwd"), word(b"fw"), word(b"re")]
        .into_iter()
        .flatten()
        .find_map(|mut j| {
            while matches!(b.get(j), Some(b' ' | b'\t')) {
                j += 1;
            }
            if let Some(end) = blob(b, j) {
                j = end;
            }
            (b.get(j) == Some(&b':')).then_some(j + 1)
        })
}

/// `"[" *BLOBCHAR "]" *WSP` at `i`: its end.
fn blob(b: &[u8], i: usize) -> Option<usize> {
    if b.get(i) != Some(&b'[') {
        return None;
    }
    let close = i
        + 1
        + b.get(i + 1..)?
            .iter()
            .position(|&c| c == b']' || c == b'[')?;
    if b.get(close) != Some(&b']') {
        return None;
    }
    let mut j = close + 1;
    while matches!(b.get(j), Some(b' ' | b'\t')) {
        j += 1;
    }
    Some(j)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(s: &str) -> (String, bool) {
        let b = base_subject(s);
        (b.text, b.is_reply)
    }

    #[test]
    fn rfc5256_examples() {
        assert_eq!(base("Hello"), ("Hello".into(), false));
        assert_eq!(base("Re: Hello"), ("Hello".into(), true));
        assert_eq!(base("RE:  re: Fwd:Hello"), ("Hello".into(), true));
        assert_eq!(base("[list] Re: Hello"), ("Hello".into(), true));
        assert_eq!(base("Re[2]: Hello (fwd)"), ("Hello".into(), true));
        assert_eq!(base("[Fwd: Re: Hello]"), ("Hello".into(), true));
        assert_eq!(base("[list] Hello"), ("Hello".into(), false));
        assert_eq!(base("[only a blob]"), ("[only a blob]".into(), false));
        assert_eq!(base("  spaced \t out  "), ("spaced out".into(), false));
        assert_eq!(base("Reply to all"), ("Reply to all".into(), false));
        assert_eq!(base(""), ("".into(), false));
        assert_eq!(base("Re: été"), ("été".into(), true));
    }
}
