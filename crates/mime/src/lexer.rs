//! A tolerant tokenizer for structured header fields (RFC 5322 §3.2, RFC 2045 §5.1).
//!
//! It turns an unfolded field value into words (atoms or unescaped quoted strings),
//! specials and domain literals, dropping comments but remembering their text
//! (an address's trailing comment is a display name of last resort). Unterminated
//! quotes, comments and literals simply end at the end of input.

/// Specials of RFC 5322 (addresses): `.` separates, `@` and `<>` delimit.
pub(crate) const ADDRESS_SPECIALS: &[u8] = b"()<>@,;:\\\".[]";
/// `tspecials` of RFC 2045 (Content-Type and friends): `/` and `=` delimit, `.` does not.
pub(crate) const MIME_SPECIALS: &[u8] = b"()<>@,;:\\\"/[]?=";

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Token {
    /// An atom, or a quoted string's content with its escapes removed (`quoted` set).
    Word { text: Vec<u8>, quoted: bool },
    /// One special character.
    Special(u8),
    /// `[...]`, brackets included.
    DomainLiteral(Vec<u8>),
}

/// Tokens of one field value plus the text of its comments.
pub(crate) struct Lexed {
    pub tokens: Vec<Token>,
    /// For each comment, the token index it followed and its text.
    pub comments: Vec<(usize, Vec<u8>)>,
}

pub(crate) fn lex(input: &[u8], specials: &[u8]) -> Lexed {
    let mut tokens = Vec::new();
    let mut comments = Vec::new();
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        if b.is_ascii_whitespace() {
            i += 1;
        } else if b == b'(' {
            let (text, next) = comment(input, i);
            comments.push((tokens.len(), text));
            i = next;
        } else if b == b'"' {
            let (text, next) = quoted(input, i + 1);
            tokens.push(Token::Word { text, quoted: true });
            i = next;
        } else if b == b'[' && specials == ADDRESS_SPECIALS {
            let end = input[i..]
                .iter()
                .position(|&c| c == b']')
                .map_or(input.len(), |p| i + p + 1);
            tokens.push(Token::DomainLiteral(input[i..end].to_vec()));
            i = end;
        } else if specials.contains(&b) {
            tokens.push(Token::Special(b));
            i += 1;
        } else {
            let start = i;
            while i < input.len()
                && !input[i].is_ascii_whitespace()
                && !input[i].is_ascii_control()
                && !specials.contains(&input[i])
            {
                i += 1;
            }
            if i == start {
                // A control character: skip it rather than loop.
                i += 1;
                continue;
            }
            tokens.push(Token::Word {
                text: input[start..i].to_vec(),
                quoted: false,
            });
        }
    }
    Lexed { tokens, comments }
}

/// Reads a (possibly nested) comment starting at `input[start] == '('`.
fn comment(input: &[u8], start: usize) -> (Vec<u8>, usize) {
    let mut depth = 0usize;
    let mut text = Vec::new();
    let mut i = start;
    while i < input.len() {
        let b = input[i];
        i += 1;
        match b {
            b'\\' if i < input.len() => {
                text.push(input[i]);
                i += 1;
            }
            b'(' => {
                if depth > 0 {
                    text.push(b);
                }
                depth += 1;
            }
            b')' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    break;
                }
                text.push(b);
            }
            _ => text.push(b),
        }
    }
    (text, i)
}

/// Reads a quoted string's content starting just after the opening quote.
fn quoted(input: &[u8], mut i: usize) -> (Vec<u8>, usize) {
    let mut text = Vec::new();
    while i < input.len() {
        let b = input[i];
        i += 1;
        match b {
            b'\\' if i < input.len() => {
                text.push(input[i]);
                i += 1;
            }
            b'"' => break,
            _ => text.push(b),
        }
    }
    (text, i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(s: &str, quoted: bool) -> Token {
        Token::Word {
            text: s.as_bytes().to_vec(),
            quoted,
        }
    }

    #[test]
    fn address_tokens() {
        let l = lex(
            b"\"Doe, \\\"J\\\"\" (the (real) one) <j.doe@[1.2.3.4]>",
            ADDRESS_SPECIALS,
        );
        assert_eq!(
            l.tokens,
            vec![
                word("Doe, \"J\"", true),
                Token::Special(b'<'),
                word("j", false),
                Token::Special(b'.'),
                word("doe", false),
                Token::Special(b'@'),
                Token::DomainLiteral(b"[1.2.3.4]".to_vec()),
                Token::Special(b'>'),
            ]
        );
        assert_eq!(l.comments, vec![(1, b"the (real) one".to_vec())]);
    }

    #[test]
    fn mime_tokens_and_unterminated_quote() {
        let l = lex(b"text/plain; name=\"a.txt", MIME_SPECIALS);
        assert_eq!(
            l.tokens,
            vec![
                word("text", false),
                Token::Special(b'/'),
                word("plain", false),
                Token::Special(b';'),
                word("name", false),
                Token::Special(b'='),
                word("a.txt", true),
            ]
        );
    }
}
