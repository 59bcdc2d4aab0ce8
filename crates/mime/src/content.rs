//! The MIME `Content-*` fields of one part (RFC 2045, RFC 2183, RFC 2231, RFC 3282).

use super::header::{fields, unfold};
use super::lexer::{lex, Token, MIME_SPECIALS};

use super::meta::Params;

/// The Content-* fields of a part header, raw where IMAP wants them raw.
#[derive(Debug, Default)]
pub(crate) struct ContentFields {
    /// `(type, subtype, params)` when Content-Type is present and has a type/subtype.
    pub content_type: Option<(Vec<u8>, Vec<u8>, Params)>,
    pub encoding: Option<Vec<u8>>,
    pub id: Option<Vec<u8>>,
    pub description: Option<Vec<u8>>,
    pub disposition: Option<(Vec<u8>, Params)>,
    pub language: Vec<Vec<u8>>,
    pub location: Option<Vec<u8>>,
    pub md5: Option<Vec<u8>>,
}

/// Reads the Content-* fields of a header block; the first occurrence of each wins.
pub(crate) fn content_fields(block: &[u8]) -> ContentFields {
    let mut c = ContentFields::default();
    let mut seen_type = false;
    for f in fields(block) {
        let Some(rest) = strip_prefix_ci(f.name, b"content-") else {
            continue;
        };
        let lower = rest.to_ascii_lowercase();
        match lower.as_slice() {
            b"type" if !seen_type => {
                seen_type = true;
                c.content_type = parse_content_type(&unfold(f.value));
            }
            b"transfer-encoding" if c.encoding.is_none() => {
                let v = unfold(f.value);
                c.encoding = lex(&v, MIME_SPECIALS)
                    .tokens
                    .into_iter()
                    .find_map(|t| match t {
                        Token::Word { text, .. } => Some(text),
                        _ => None,
                    });
            }
            b"id" if c.id.is_none() => c.id = non_empty(unfold(f.value)),
            b"description" if c.description.is_none() => c.description = non_empty(unfold(f.value)),
            b"disposition" if c.disposition.is_none() => {
                let toks = lex(&unfold(f.value), MIME_SPECIALS).tokens;
                if let Some(Token::Word { text, .. }) = toks.first() {
                    c.disposition = Some((text.clone(), parse_params(&toks[1..])));
                }
            }
            b"language" if c.language.is_empty() => {
                c.language = lex(&unfold(f.value), MIME_SPECIALS)
                    .tokens
                    .into_iter()
                    .filter_map(|t| match t {
                        Token::Word { text, .. } => Some(text),
                        _ => None,
                    })
                    .collect();
            }
            b"location" if c.location.is_none() => {
                // RFC 2557: folding whitespace inside a URL is not part of it.
                let v: Vec<u8> = unfold(f.value)
                    .into_iter()
                    .filter(|b| !b.is_ascii_whitespace())
                    .collect();
                c.location = non_empty(v);
            }
            b"md5" if c.md5.is_none() => c.md5 = non_empty(unfold(f.value)),
            _ => {}
        }
    }
    c
}

fn strip_prefix_ci<'a>(v: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    if v.len() >= prefix.len() && v[..prefix.len()].eq_ignore_ascii_case(prefix) {
        Some(&v[prefix.len()..])
    } else {
        None
    }
}

fn non_empty(v: Vec<u8>) -> Option<Vec<u8>> {
    (!v.is_empty()).then_some(v)
}

fn parse_content_type(value: &[u8]) -> Option<(Vec<u8>, Vec<u8>, Params)> {
    let toks = lex(value, MIME_SPECIALS).tokens;
    match toks.as_slice() {
        [Token::Word { text: t, .. }, Token::Special(b'/'), Token::Word { text: s, .. }, rest @ ..] => {
            Some((t.clone(), s.clone(), parse_params(rest)))
        }
        _ => None,
    }
}

/// Parses `; name=value` pairs, tolerating junk between them and unquoted values
/// that contain specials (common for encoded-word file names). RFC 2231
/// continuations (`name*0`, `name*1*`, ...) are joined into one `name` or, when
/// any piece is charset-encoded, one `name*` parameter.
fn parse_params(toks: &[Token]) -> Params {
    let mut raw: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        if let (Some(Token::Word { text: name, .. }), Some(Token::Special(b'='))) =
            (toks.get(i), toks.get(i + 1))
        {
            i += 2;
            let mut value = Vec::new();
            while i < toks.len() && toks[i] != Token::Special(b';') {
                match &toks[i] {
                    Token::Word { text, .. } | Token::DomainLiteral(text) => {
                        value.extend_from_slice(text)
                    }
                    Token::Special(c) => value.push(*c),
                }
                i += 1;
            }
            raw.push((name.clone(), value));
        } else {
            i += 1;
        }
    }
    join_continuations(raw)
}

fn join_continuations(raw: Params) -> Params {
    let mut out: Params = Vec::new();
    // (base name, index in out, extended) of names seen with a `*N` section.
    let mut joined: Vec<(Vec<u8>, usize, bool)> = Vec::new();
    for (name, value) in raw {
        let Some(star) = name.iter().position(|&b| b == b'*') else {
            out.push((name, value));
            continue;
        };
        let base = name[..star].to_vec();
        let extended = name.ends_with(b"*");
        let section = &name[star + 1..name.len() - usize::from(extended && name.len() > star + 1)];
        if section.is_empty() || !section.iter().all(u8::is_ascii_digit) {
            // `name*=charset''value` (no continuation) or junk: keep as written.
            out.push((name, value));
            continue;
        }
        match joined
            .iter_mut()
            .find(|(b, _, _)| b.eq_ignore_ascii_case(&base))
        {
            Some((_, at, ext)) => {
                if let Some(slot) = out.get_mut(*at) {
                    if extended && !*ext {
                        *ext = true;
                        slot.0.push(b'*');
                    }
                    slot.1.extend_from_slice(&value);
                }
            }
            None => {
                let mut key = base.clone();
                if extended {
                    key.push(b'*');
                }
                joined.push((base, out.len(), extended));
                out.push((key, value));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type_with_params() {
        let c = content_fields(
            b"Content-Type: multipart/mixed;\r\n boundary=\"=_abc\"; charset=utf-8\r\nContent-Transfer-Encoding: Base64 (comment)\r\n",
        );
        let (t, s, p) = c.content_type.unwrap();
        assert_eq!(
            (t.as_slice(), s.as_slice()),
            (&b"multipart"[..], &b"mixed"[..])
        );
        assert_eq!(
            p,
            vec![
                (b"boundary".to_vec(), b"=_abc".to_vec()),
                (b"charset".to_vec(), b"utf-8".to_vec())
            ]
        );
        assert_eq!(c.encoding.unwrap(), b"Base64");
    }

    #[test]
    fn rfc2231_continuations_are_joined() {
        let c = content_fields(
            b"Content-Disposition: attachment; filename*0*=utf-8''caf; filename*1*=%C3%A9.txt; size=3\r\n",
        );
        let (v, p) = c.disposition.unwrap();
        assert_eq!(v, b"attachment");
        assert_eq!(
            p,
            vec![
                (b"filename*".to_vec(), b"utf-8''caf%C3%A9.txt".to_vec()),
                (b"size".to_vec(), b"3".to_vec())
            ]
        );
    }

    #[test]
    fn broken_content_type_is_absent() {
        assert!(content_fields(b"Content-Type: text\r\n")
            .content_type
            .is_none());
        assert!(content_fields(b"Content-Type: /\r\n")
            .content_type
            .is_none());
    }
}
