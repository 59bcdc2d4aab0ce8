//! Case-insensitive substring search over raw message bytes, as SEARCH needs it (RFC 9051
//! section 6.4.4: "case-insensitive substring").
//!
//! The haystack is never copied or folded. A needle without ASCII letters is found with
//! memchr's SIMD `memmem` directly. A needle with letters is found by a rare-byte prefilter,
//! the way memchr's own `memmem` prefilter works: the rarest byte of the needle (by a
//! frequency ranking of mail text) is looked for in both its cases with the SIMD `memchr2`,
//! a second rare byte at its fixed distance rejects most false candidates, and only then is
//! the whole needle compared. Rare needles therefore run at `memchr2` speed, many GB/s.
//!
//! Case folding is ASCII-only on the byte path. A needle holding non-ASCII letters that have
//! case (`É`) cannot be matched that way; [`Finder::is_match_text`] then folds both sides with
//! Unicode lowercasing, and callers pass decoded text for such needles (see
//! [`Finder::needs_unicode`]). Caseless non-ASCII (CJK, symbols) stays on the byte path.

use memchr::memmem;

/// A compiled search string.
#[derive(Debug, Clone)]
pub struct Finder {
    /// The needle, ASCII-lowercased (Unicode-lowercased in Unicode mode).
    folded: Vec<u8>,
    strategy: Strategy,
}

#[derive(Debug, Clone)]
enum Strategy {
    /// The empty string: everything contains it.
    Empty,
    /// No byte of the needle has an ASCII case variant: plain memmem.
    Exact(memmem::Finder<'static>),
    /// ASCII letters present: rare-byte prefilter, then a folded compare.
    Folded {
        /// Offset of the rarest byte in the needle.
        rare1: usize,
        /// Offset of the second rarest byte (may equal `rare1` for 1-byte needles).
        rare2: usize,
    },
    /// The needle has non-ASCII letters with case: compare Unicode-lowercased text.
    Unicode(memmem::Finder<'static>),
}

impl Finder {
    /// Compiles `needle` (UTF-8 expected; other bytes are compared as they are).
    pub fn new(needle: &[u8]) -> Finder {
        if needle.is_empty() {
            return Finder {
                folded: Vec::new(),
                strategy: Strategy::Empty,
            };
        }
        if let Ok(text) = std::str::from_utf8(needle) {
            if text.chars().any(|c| !c.is_ascii() && has_case(c)) {
                let folded = text.to_lowercase().into_bytes();
                let finder = memmem::Finder::new(&folded).into_owned();
                return Finder {
                    folded,
                    strategy: Strategy::Unicode(finder),
                };
            }
        }
        let folded = needle.to_ascii_lowercase();
        if !folded.iter().any(u8::is_ascii_alphabetic) {
            let finder = memmem::Finder::new(&folded).into_owned();
            return Finder {
                folded,
                strategy: Strategy::Exact(finder),
            };
        }
        let mut order: Vec<usize> = (0..folded.len()).collect();
        order.sort_by_key(|&i| rank(folded[i]));
        let rare1 = order[0];
        let rare2 = order.get(1).copied().unwrap_or(rare1);
        Finder {
            folded,
            strategy: Strategy::Folded { rare1, rare2 },
        }
    }

    /// True when only decoded text can be matched ([`Finder::is_match_text`]): the needle
    /// has non-ASCII letters with case.
    pub fn needs_unicode(&self) -> bool {
        matches!(self.strategy, Strategy::Unicode(_))
    }

    /// True when the needle is pure ASCII: then it can be matched in place in any
    /// ASCII-compatible single-byte charset as well as in UTF-8.
    pub fn is_ascii(&self) -> bool {
        self.folded.is_ascii()
    }

    /// True for the empty needle, which every haystack contains.
    pub fn is_empty(&self) -> bool {
        matches!(self.strategy, Strategy::Empty)
    }

    /// Whether `haystack` contains the needle, ASCII case-insensitively. In Unicode mode the
    /// haystack is read as UTF-8 (lossily) and folded first, which allocates.
    pub fn is_match(&self, haystack: &[u8]) -> bool {
        self.find(haystack).is_some()
    }

    /// Where the first match in `haystack` starts, ASCII case-insensitively. In Unicode mode
    /// the haystack is folded first and a match is reported at 0 (folding moves offsets).
    pub fn find(&self, haystack: &[u8]) -> Option<usize> {
        match &self.strategy {
            Strategy::Empty => Some(0),
            Strategy::Exact(f) => f.find(haystack),
            Strategy::Folded { rare1, rare2 } => self.folded_find(haystack, *rare1, *rare2),
            Strategy::Unicode(f) => {
                let text = String::from_utf8_lossy(haystack);
                f.find(text.to_lowercase().as_bytes()).map(|_| 0)
            }
        }
    }

    /// Whether decoded `text` contains the needle; full Unicode lowercasing in Unicode mode.
    pub fn is_match_text(&self, text: &str) -> bool {
        match &self.strategy {
            Strategy::Unicode(f) => f.find(text.to_lowercase().as_bytes()).is_some(),
            _ => self.is_match(text.as_bytes()),
        }
    }

    fn folded_find(&self, haystack: &[u8], rare1: usize, rare2: usize) -> Option<usize> {
        let needle = self.folded.as_slice();
        let n = needle.len();
        if haystack.len() < n {
            return None;
        }
        let (&b1, &b2) = (needle.get(rare1)?, needle.get(rare2)?);
        let b1_upper = b1.to_ascii_uppercase();
        // Candidates for the rare byte can only lie where a whole needle fits around them.
        let last_start = haystack.len() - n;
        let mut from = rare1;
        let end = last_start + rare1 + 1;
        while from < end {
            let window = &haystack[from..end];
            let hit = if b1 == b1_upper {
                memchr::memchr(b1, window)
            } else {
                memchr::memchr2(b1, b1_upper, window)
            };
            let offset = hit?;
            let start = from + offset - rare1;
            let candidate = &haystack[start..start + n];
            if candidate[rare2].to_ascii_lowercase() == b2 && candidate.eq_ignore_ascii_case(needle)
            {
                return Some(start);
            }
            from += offset + 1;
        }
        None
    }
}

/// Whether a character has a distinct lower or upper case form.
fn has_case(c: char) -> bool {
    c.is_lowercase() || c.is_uppercase() || c.to_lowercase().ne(std::iter::once(c))
}

/// How common a (lowercased) byte is in mail text; lower is rarer. Letters follow English
/// letter frequency, whitespace and line ends are the most common of all, non-ASCII bytes
/// (UTF-8 lead and continuation bytes) are rare in most mail.
fn rank(b: u8) -> u16 {
    const LETTERS: &[u8] = b"zqxjkvbpygfwmucldrhsnioate";
    match b {
        b' ' | b'\n' | b'\r' | b'\t' => 255,
        b'a'..=b'z' => {
            let pos = LETTERS.iter().position(|&l| l == b).unwrap_or(0) as u16;
            // 'z' (rarest letter) ranks 60; 'e' (commonest) 250.
            60 + pos * 190 / 25
        }
        b'0'..=b'9' => 90,
        b'.' | b',' | b'-' | b'=' | b'/' | b':' | b'<' | b'>' | b'"' => 110,
        0x80..=0xff => 40,
        _ => 50,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(needle: &str, hay: &str) -> bool {
        hay.to_ascii_lowercase()
            .contains(&needle.to_ascii_lowercase())
    }

    #[test]
    fn ascii_case_insensitive() {
        let f = Finder::new(b"Hello");
        assert!(f.is_match(b"say hELLo there"));
        assert!(f.is_match(b"HELLO"));
        assert!(!f.is_match(b"hell o"));
        assert!(!f.is_match(b"hell"));
        assert!(Finder::new(b"").is_match(b""));
        assert!(Finder::new(b"x").is_match(b"aaX"));
        assert!(!Finder::new(b"x").is_match(b"aaa"));
    }

    #[test]
    fn needle_at_both_ends() {
        let f = Finder::new(b"zap");
        assert!(f.is_match(b"ZAP..."));
        assert!(f.is_match(b"...zAp"));
        assert!(!f.is_match(b"...za"));
    }

    #[test]
    fn exact_and_unicode_needles() {
        assert!(Finder::new(b"42.7").is_match(b"x 42.7 y"));
        assert!(!Finder::new(b"42.7").is_match(b"x 42,7 y"));
        let f = Finder::new("ÉTÉ".as_bytes());
        assert!(f.needs_unicode());
        assert!(f.is_match_text("un été chaud"));
        assert!(!f.is_match_text("un ete chaud"));
        let cjk = Finder::new("テスト".as_bytes());
        assert!(!cjk.needs_unicode());
        assert!(cjk.is_match("これはテストです".as_bytes()));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]
        #[test]
        fn agrees_with_naive(needle in "[a-dA-D .]{1,4}", hay in "[a-dA-D .\n]{0,40}") {
            proptest::prop_assert_eq!(
                Finder::new(needle.as_bytes()).is_match(hay.as_bytes()),
                naive(&needle, &hay)
            );
            proptest::prop_assert_eq!(
                Finder::new(needle.as_bytes()).find(hay.as_bytes()),
                hay.to_ascii_lowercase().find(&needle.to_ascii_lowercase())
            );
        }
    }
}
