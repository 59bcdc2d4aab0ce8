//! Comparators (RFC 4790 as used by RFC 5228 §2.7.3), match types (:is :contains :matches,
//! :regex, RFC 5231 :count/:value) and address parts (RFC 5228 §2.7.4, RFC 5233).
//! Every match here runs in time linear in the value times the pattern, never worse.

use std::cmp::Ordering;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Comparator {
    Octet,
    AsciiCasemap,
    AsciiNumeric,
}

impl Comparator {
    pub(crate) fn by_name(name: &str) -> Option<Comparator> {
        match name.to_ascii_lowercase().as_str() {
            "i;octet" => Some(Comparator::Octet),
            "i;ascii-casemap" => Some(Comparator::AsciiCasemap),
            "i;ascii-numeric" => Some(Comparator::AsciiNumeric),
            _ => None,
        }
    }

    fn char_eq(self, a: char, b: char) -> bool {
        match self {
            Comparator::AsciiCasemap => a.eq_ignore_ascii_case(&b),
            _ => a == b,
        }
    }

    pub(crate) fn equals(self, value: &str, key: &str) -> bool {
        match self {
            Comparator::Octet => value == key,
            Comparator::AsciiCasemap => value.eq_ignore_ascii_case(key),
            Comparator::AsciiNumeric => numeric_cmp(value, key) == Ordering::Equal,
        }
    }

    pub(crate) fn contains(self, value: &str, key: &str) -> bool {
        match self {
            Comparator::Octet => value.contains(key),
            Comparator::AsciiCasemap => {
                let (v, k) = (value.as_bytes(), key.as_bytes());
                k.is_empty() || v.windows(k.len()).any(|w| w.eq_ignore_ascii_case(k))
            }
            // Refused at compile time (i;ascii-numeric has no substring operation).
            Comparator::AsciiNumeric => false,
        }
    }

    pub(crate) fn order(self, value: &str, key: &str) -> Ordering {
        match self {
            Comparator::Octet => value.as_bytes().cmp(key.as_bytes()),
            Comparator::AsciiCasemap => value
                .bytes()
                .map(|b| b.to_ascii_lowercase())
                .cmp(key.bytes().map(|b| b.to_ascii_lowercase())),
            Comparator::AsciiNumeric => numeric_cmp(value, key),
        }
    }
}

/// i;ascii-numeric (RFC 4790 §9.1): the leading digits as a number of any size; a string
/// that does not start with a digit is positive infinity.
fn numeric_cmp(a: &str, b: &str) -> Ordering {
    fn digits(s: &str) -> Option<&str> {
        let n = s.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        let d = &s[..n];
        let d = d.trim_start_matches('0');
        Some(d)
    }
    match (digits(a), digits(b)) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) => x.len().cmp(&y.len()).then_with(|| x.cmp(y)),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RelOp {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
}

impl RelOp {
    pub(crate) fn by_name(s: &str) -> Option<RelOp> {
        match s.to_ascii_lowercase().as_str() {
            "gt" => Some(RelOp::Gt),
            "ge" => Some(RelOp::Ge),
            "lt" => Some(RelOp::Lt),
            "le" => Some(RelOp::Le),
            "eq" => Some(RelOp::Eq),
            "ne" => Some(RelOp::Ne),
            _ => None,
        }
    }

    pub(crate) fn holds(self, o: Ordering) -> bool {
        match self {
            RelOp::Gt => o == Ordering::Greater,
            RelOp::Ge => o != Ordering::Less,
            RelOp::Lt => o == Ordering::Less,
            RelOp::Le => o != Ordering::Greater,
            RelOp::Eq => o == Ordering::Equal,
            RelOp::Ne => o != Ordering::Equal,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MatchType {
    Is,
    Contains,
    Matches,
    Regex,
    Count(RelOp),
    Value(RelOp),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AddressPart {
    All,
    LocalPart,
    Domain,
    User,
    Detail,
}

impl AddressPart {
    /// The part of `addr` (a bare address, "" for the null path) this selects; None when
    /// the part does not exist (:detail without a separator), which matches nothing.
    /// `delimiter` separates user and detail (RFC 5233 leaves it to the site; the server's
    /// is `[lmtp] recipient_delimiter`); empty: local parts have no detail.
    pub(crate) fn extract(self, addr: &str, delimiter: &str) -> Option<String> {
        let (local, domain) = match addr.rfind('@') {
            Some(i) => (&addr[..i], &addr[i + 1..]),
            None => (addr, ""),
        };
        match self {
            AddressPart::All => Some(addr.to_string()),
            AddressPart::LocalPart => Some(local.to_string()),
            AddressPart::Domain => Some(domain.to_string()),
            AddressPart::User => Some(match split_detail(local, delimiter) {
                Some((user, _)) => user.to_string(),
                None => local.to_string(),
            }),
            AddressPart::Detail => {
                split_detail(local, delimiter).map(|(_, detail)| detail.to_string())
            }
        }
    }
}

/// A local part split at the first delimiter into user and detail.
fn split_detail<'a>(local: &'a str, delimiter: &str) -> Option<(&'a str, &'a str)> {
    if delimiter.is_empty() {
        return None;
    }
    local.split_once(delimiter)
}

/// `:matches` (RFC 5228 §2.7.1): `*` any run, `?` one character, `\` quotes the next one.
/// The classic single-backtrack algorithm: only the most recent `*` is ever widened, which
/// is enough for a wildcard pattern and bounds the work to value × pattern. It also gives
/// the captures RFC 5229 §3.2 shows: every `*` but the last takes as little as it can.
/// With `captures`, each wildcard's text is pushed in order (${1}...).
pub(crate) fn glob_match(
    cmp: Comparator,
    value: &str,
    pattern: &str,
    captures: Option<&mut Vec<String>>,
) -> bool {
    #[derive(Clone, Copy)]
    enum P {
        Star,
        One,
        Ch(char),
    }
    let mut pat = Vec::with_capacity(pattern.len());
    let mut it = pattern.chars();
    while let Some(c) = it.next() {
        match c {
            '*' => pat.push(P::Star),
            '?' => pat.push(P::One),
            '\\' => {
                if let Some(n) = it.next() {
                    pat.push(P::Ch(n));
                }
            }
            c => pat.push(P::Ch(c)),
        }
    }
    let val: Vec<(usize, char)> = value.char_indices().collect();
    let byte_at = |i: usize| val.get(i).map_or(value.len(), |(b, _)| *b);

    // Span [start, end) in characters of each wildcard, by pattern position.
    let want = captures.is_some();
    let mut spans: Vec<(usize, usize)> = if want {
        vec![(0, 0); pat.len()]
    } else {
        Vec::new()
    };
    let (mut p, mut v) = (0usize, 0usize);
    // The last star seen and the value position it currently extends to.
    let mut star: Option<(usize, usize)> = None;
    while v < val.len() {
        match pat.get(p) {
            Some(P::Star) => {
                star = Some((p, v));
                if want {
                    spans[p] = (v, v);
                }
                p += 1;
            }
            Some(P::One) => {
                if want {
                    spans[p] = (v, v + 1);
                }
                p += 1;
                v += 1;
            }
            Some(P::Ch(c)) if cmp.char_eq(*c, val[v].1) => {
                p += 1;
                v += 1;
            }
            _ => match star {
                Some((sp, sv)) => {
                    // Widen the last star by one character and retry what follows it.
                    star = Some((sp, sv + 1));
                    if want {
                        spans[sp] = (spans[sp].0, sv + 1);
                    }
                    p = sp + 1;
                    v = sv + 1;
                }
                None => return false,
            },
        }
    }
    while let Some(P::Star) = pat.get(p) {
        if want {
            spans[p] = (v, v);
        }
        p += 1;
    }
    if p != pat.len() {
        return false;
    }
    if let Some(out) = captures {
        out.clear();
        out.push(value.to_string());
        for (i, t) in pat.iter().enumerate() {
            if matches!(t, P::Star | P::One) {
                let (s, e) = spans[i];
                out.push(value[byte_at(s)..byte_at(e)].to_string());
            }
        }
    }
    true
}

/// Escape `*`, `?` and `\` (the `:quotewildcard` modifier of RFC 5229 §4.1).
pub(crate) fn quote_wildcard(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '\\') {
            o.push('\\');
        }
        o.push(c);
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(v: &str, p: &str) -> Option<Vec<String>> {
        let mut c = Vec::new();
        glob_match(Comparator::AsciiCasemap, v, p, Some(&mut c)).then_some(c)
    }

    #[test]
    fn glob() {
        assert!(glob_match(Comparator::Octet, "abc", "a*c", None));
        assert!(glob_match(Comparator::Octet, "abc", "*", None));
        assert!(glob_match(Comparator::Octet, "", "*", None));
        assert!(!glob_match(Comparator::Octet, "", "?", None));
        assert!(glob_match(Comparator::Octet, "a*c", "a\\*c", None));
        assert!(!glob_match(Comparator::Octet, "abc", "a\\*c", None));
        assert!(!glob_match(Comparator::Octet, "ABC", "a*", None));
        assert!(glob_match(Comparator::AsciiCasemap, "ABC", "a*", None));
        assert!(glob_match(Comparator::Octet, "xaaab", "*a?b", None));
        assert!(!glob_match(Comparator::Octet, "abcd", "*c", None));
        assert!(glob_match(Comparator::Octet, "é!", "?!", None));
    }

    #[test]
    fn glob_captures_follow_rfc5229() {
        let c = caps("[acme-users] [fwd] version 1.0 is out", "[*] *").unwrap();
        assert_eq!(c[1], "acme-users");
        assert_eq!(c[2], "[fwd] version 1.0 is out");
        let c = caps("coyote@desert.example.org", "*@*.*").unwrap();
        assert_eq!(&c[1..], ["coyote", "desert", "example.org"]);
        let c = caps("ab", "?*?").unwrap();
        assert_eq!(&c[1..], ["a", "", "b"]);
        let c = caps("Sieve <sieve.example.com>", "*<*@*").is_none();
        assert!(c);
    }

    #[test]
    fn glob_is_not_exponential() {
        let v = "a".repeat(5000);
        let p = "*a".repeat(200) + "b";
        let t = std::time::Instant::now();
        assert!(!glob_match(Comparator::Octet, &v, &p, None));
        assert!(t.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn numeric() {
        let c = Comparator::AsciiNumeric;
        assert!(c.equals("007", "7"));
        assert!(c.equals("abc", "def"));
        assert_eq!(c.order("10", "9"), Ordering::Greater);
        assert_eq!(c.order("x", "99999999999999999999999"), Ordering::Greater);
        assert_eq!(c.order("5 apples", "6"), Ordering::Less);
    }

    #[test]
    fn address_parts() {
        assert_eq!(
            AddressPart::User
                .extract("ken+sieve@example.org", "+")
                .as_deref(),
            Some("ken")
        );
        assert_eq!(
            AddressPart::Detail
                .extract("ken+sieve@example.org", "+")
                .as_deref(),
            Some("sieve")
        );
        assert_eq!(AddressPart::Detail.extract("ken@example.org", "+"), None);
        // The site's delimiter, not a fixed "+"; "" means no details at all.
        let dash = |part: AddressPart| part.extract("ken-a+b@example.org", "-");
        assert_eq!(dash(AddressPart::User).as_deref(), Some("ken"));
        assert_eq!(dash(AddressPart::Detail).as_deref(), Some("a+b"));
        let none = |part: AddressPart| part.extract("ken+sieve@example.org", "");
        assert_eq!(none(AddressPart::User).as_deref(), Some("ken+sieve"));
        assert_eq!(none(AddressPart::Detail), None);
        assert_eq!(
            AddressPart::Domain
                .extract("ken@Example.org", "+")
                .as_deref(),
            Some("Example.org")
        );
    }
}
