//! The message as tests see it: header fields in order (as `editheader` leaves them), their
//! values unfolded and MIME-decoded (RFC 5228 §2.7.2, RFC 2047), addresses (RFC 5322
//! §3.4), and the body as `body` wants it (RFC 5173), decoded by mail-parser.

use std::borrow::Cow;

use base64::Engine;

#[derive(Debug, Clone)]
pub(crate) struct Field {
    pub name: String,
    /// The raw value after the colon, folding kept, as bytes of the message (lossy UTF-8).
    pub raw: String,
    /// Where the whole field (line ending included) is in the original message; None for
    /// a field added by `addheader`.
    pub span: Option<(usize, usize)>,
}

impl Field {
    /// Unfolded, white space trimmed, encoded words decoded.
    pub(crate) fn value(&self) -> String {
        decode_rfc2047(unfold(&self.raw).trim())
    }

    /// Unfolded and trimmed, encoded words kept (for addresses and dates).
    pub(crate) fn unfolded(&self) -> String {
        unfold(&self.raw).trim().to_string()
    }
}

/// The header fields of `raw` in order, and where the body starts.
pub(crate) fn split_header(raw: &[u8]) -> (Vec<Field>, usize) {
    fn finish(raw: &[u8], start: usize, colon: usize, end: usize, fields: &mut Vec<Field>) {
        let name = String::from_utf8_lossy(&raw[start..colon])
            .trim_end()
            .to_string();
        if is_field_name(&name) {
            let mut value = &raw[colon + 1..end];
            // Drop the line ending of the field's last line.
            while let Some((b'\r' | b'\n', rest)) = value.split_last() {
                value = rest;
            }
            fields.push(Field {
                name,
                raw: String::from_utf8_lossy(value).into_owned(),
                span: Some((start, end)),
            });
        }
    }
    let mut fields: Vec<Field> = Vec::new();
    let mut at = 0;
    let mut current: Option<(usize, usize)> = None; // (start of line, colon)
    let body_start = loop {
        if at >= raw.len() {
            break raw.len();
        }
        let eol = raw[at..]
            .iter()
            .position(|&c| c == b'\n')
            .map_or(raw.len(), |i| at + i + 1);
        let line = &raw[at..eol];
        let content = line
            .strip_suffix(b"\n")
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .unwrap_or(line);
        if content.is_empty() {
            if let Some((s, c)) = current.take() {
                finish(raw, s, c, at, &mut fields);
            }
            break eol;
        }
        if matches!(content[0], b' ' | b'\t') && current.is_some() {
            at = eol;
            continue;
        }
        if let Some((s, c)) = current.take() {
            finish(raw, s, c, at, &mut fields);
        }
        if let Some(colon) = content.iter().position(|&b| b == b':') {
            current = Some((at, at + colon));
        }
        at = eol;
    };
    if let Some((s, c)) = current.take() {
        finish(raw, s, c, body_start, &mut fields);
    }
    (fields, body_start)
}

pub(crate) fn unfold(s: &str) -> Cow<'_, str> {
    if !s.contains(['\r', '\n']) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(s.chars().filter(|c| *c != '\r' && *c != '\n').collect())
}

/// Decodes RFC 2047 encoded words; white space between two adjacent encoded words goes
/// (§6.2). Words that do not decode are left as they are.
pub(crate) fn decode_rfc2047(s: &str) -> String {
    if !s.contains("=?") {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    let mut pending_space: Option<&str> = None;
    let mut last_was_word = false;
    while !rest.is_empty() {
        if rest.starts_with("=?") {
            if let Some((text, used)) = encoded_word(rest) {
                let sp = pending_space.take();
                if !last_was_word {
                    out.push_str(sp.unwrap_or(""));
                }
                out.push_str(&text);
                rest = &rest[used..];
                last_was_word = true;
                continue;
            }
        }
        let ws = rest
            .find(|c: char| c != ' ' && c != '\t')
            .unwrap_or(rest.len());
        if ws > 0 {
            out.push_str(pending_space.take().unwrap_or(""));
            pending_space = Some(&rest[..ws]);
            rest = &rest[ws..];
            continue;
        }
        out.push_str(pending_space.take().unwrap_or(""));
        let c = rest.chars().next().unwrap_or(' ');
        out.push(c);
        rest = &rest[c.len_utf8()..];
        last_was_word = false;
    }
    out.push_str(pending_space.unwrap_or(""));
    out
}

/// One `=?charset?enc?text?=` at the start of `s`: its text and the bytes it used.
fn encoded_word(s: &str) -> Option<(String, usize)> {
    let q1 = 2 + s[2..].find('?')?;
    let q2 = q1 + 1 + s[q1 + 1..].find('?')?;
    let end = q2 + 1 + s[q2 + 1..].find("?=")?;
    let charset = &s[2..q1];
    let enc = &s[q1 + 1..q2];
    let text = &s[q2 + 1..end];
    if charset.is_empty() || text.contains([' ', '\t']) {
        return None;
    }
    // RFC 2231 §5: charset*language.
    let charset = charset.split('*').next().unwrap_or(charset);
    let bytes = match enc {
        "B" | "b" => base64::engine::general_purpose::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
                .with_decode_allow_trailing_bits(true),
        )
        .decode(text)
        .ok()?,
        "Q" | "q" => decode_q(text),
        _ => return None,
    };
    Some((decode_charset(charset, &bytes), end + 2))
}

fn decode_q(text: &str) -> Vec<u8> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'_' => out.push(b' '),
            b'=' if i + 2 < b.len() => {
                let h = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                if let Some(v) = h {
                    out.push(v);
                    i += 3;
                    continue;
                }
                out.push(b'=');
            }
            c => out.push(c),
        }
        i += 1;
    }
    out
}

pub(crate) fn decode_charset(charset: &str, bytes: &[u8]) -> String {
    match encoding_rs::Encoding::for_label(charset.trim().as_bytes()) {
        Some(enc) => enc.decode_without_bom_handling(bytes).0.into_owned(),
        None => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// The addresses of an address-list header value, bare (`local@domain`), groups
/// flattened; `<>` gives "". A value that holds no address at all gives nothing.
pub(crate) fn parse_addresses(value: &str) -> Vec<String> {
    fn push(cur: &mut String, angle: &mut Option<String>, out: &mut Vec<String>) {
        let addr = match angle.take() {
            Some(a) => {
                // Drop an obsolete route ("@a,@b:").
                let a = match (a.starts_with('@'), a.find(':')) {
                    (true, Some(i)) => a[i + 1..].to_string(),
                    _ => a,
                };
                Some(a.trim().to_string())
            }
            None => {
                let t: String = cur.split_whitespace().collect();
                (!t.is_empty()).then_some(t)
            }
        };
        out.extend(addr);
        cur.clear();
    }
    let mut out = Vec::new();
    let mut cur = String::new(); // text outside <> and comments
    let mut angle: Option<String> = None;
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '(' => {
                let mut depth = 1;
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '(' => depth += 1,
                        ')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                cur.push(' ');
            }
            '"' => {
                // A quoted local part stays; a quoted display name loses to the <...>.
                cur.push('"');
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            cur.push('\\');
                            cur.extend(chars.next());
                        }
                        '"' => break,
                        c => cur.push(c),
                    }
                }
                cur.push('"');
            }
            '<' => {
                let mut a = String::new();
                for c in chars.by_ref() {
                    if c == '>' {
                        break;
                    }
                    a.push(c);
                }
                angle = Some(a);
            }
            // A group's name: what came before is not an address.
            ':' if angle.is_none() => cur.clear(),
            ',' | ';' => push(&mut cur, &mut angle, &mut out),
            c => cur.push(c),
        }
    }
    push(&mut cur, &mut angle, &mut out);
    out
}

/// The header names whose values are address lists, which the address test accepts
/// (RFC 5228 §5.1 requires at least the first seven).
pub(crate) fn is_address_header(name: &str) -> bool {
    const NAMES: &[&str] = &[
        "from",
        "to",
        "cc",
        "bcc",
        "sender",
        "resent-from",
        "resent-to",
        "resent-cc",
        "resent-bcc",
        "resent-sender",
        "reply-to",
        "resent-reply-to",
        "return-receipt-to",
        "disposition-notification-to",
        "delivered-to",
        "envelope-to",
        "errors-to",
        "x-original-to",
        "x-envelope-to",
        "x-beenthere",
        "return-path",
        "approved",
        "mail-followup-to",
        "mail-reply-to",
        "original-recipient",
        "original-from",
    ];
    NAMES.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// Whether `name` may name a header field (RFC 5322 §3.6.8: printable ASCII but ':').
pub(crate) fn is_field_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| (33..=126).contains(&b) && b != b':')
}

/// One part of the body for the body test.
pub(crate) struct BodyPart {
    /// "type/subtype", lower case.
    pub content_type: String,
    /// Transfer encoding undone and charset converted to UTF-8; empty for multipart and
    /// message/rfc822 containers (their children follow them).
    pub text: String,
    /// Whether this is a text/html part (whose text `body :text` converts to plain text).
    pub html: bool,
}

/// The parts of the message, root first, as mail-parser lists them.
pub(crate) fn body_parts(raw: &[u8]) -> Vec<BodyPart> {
    use mail_parser::{MessageParser, MimeHeaders, PartType};
    let Some(msg) = MessageParser::default().parse(raw) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for part in msg.parts.iter() {
        let ct = part
            .content_type()
            .map(|c| {
                format!(
                    "{}/{}",
                    c.ctype().to_ascii_lowercase(),
                    c.subtype().unwrap_or("").to_ascii_lowercase()
                )
            })
            .unwrap_or_else(|| match part.body {
                PartType::Multipart(_) => "multipart/mixed".to_string(),
                PartType::Message(_) => "message/rfc822".to_string(),
                _ => "text/plain".to_string(),
            });
        let (text, html) = match &part.body {
            PartType::Text(t) => (t.to_string(), false),
            PartType::Html(h) => (h.to_string(), true),
            PartType::Binary(b) | PartType::InlineBinary(b) => {
                (String::from_utf8_lossy(b).into_owned(), false)
            }
            PartType::Message(_) | PartType::Multipart(_) => (String::new(), false),
        };
        out.push(BodyPart {
            content_type: ct,
            text,
            html,
        });
    }
    out
}

/// A header value as it goes into the message: non-ASCII as RFC 2047 encoded words,
/// line breaks as folding.
pub(crate) fn encode_header_value(v: &str) -> String {
    use base64::Engine;
    let v = v.replace("\r\n", "\n").replace('\r', "\n");
    let lines: Vec<&str> = v.split('\n').collect();
    let enc = |l: &str| -> String {
        if l.is_ascii() {
            l.to_string()
        } else {
            format!(
                "=?UTF-8?B?{}?=",
                base64::engine::general_purpose::STANDARD.encode(l.as_bytes())
            )
        }
    };
    lines
        .iter()
        .map(|l| enc(l))
        .collect::<Vec<_>>()
        .join("\r\n ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_split() {
        let raw = b"From: a@b\r\nSubject: one\r\n two\r\nX-Empty:\r\n\r\nbody";
        let (f, body) = split_header(raw);
        assert_eq!(f.len(), 3);
        assert_eq!(f[1].name, "Subject");
        assert_eq!(f[1].value(), "one two");
        assert_eq!(f[2].value(), "");
        assert_eq!(&raw[body..], b"body");
    }

    #[test]
    fn rfc2047() {
        assert_eq!(decode_rfc2047("=?utf-8?q?caf=C3=A9?="), "café");
        assert_eq!(
            decode_rfc2047("=?ISO-8859-1?B?SWYgeW91IGNhbiByZWFkIHRoaXMgeW8=?= =?ISO-8859-2?B?dSB1bmRlcnN0YW5kIHRoZSBleGFtcGxlLg==?="),
            "If you can read this you understand the example."
        );
        assert_eq!(decode_rfc2047("a =?utf-8?q?b?= c"), "a b c");
        assert_eq!(decode_rfc2047("=?bogus"), "=?bogus");
        assert_eq!(decode_rfc2047("=?iso-8859-1?q?a_b?="), "a b");
    }

    #[test]
    fn addresses() {
        assert_eq!(
            parse_addresses("\"Doe, John\" <john@example.com>, jane@example.org (Jane)"),
            vec!["john@example.com", "jane@example.org"]
        );
        assert_eq!(
            parse_addresses("friends: a@x.org, b@y.org;, c@z.org"),
            vec!["a@x.org", "b@y.org", "c@z.org"]
        );
        assert_eq!(
            parse_addresses("undisclosed-recipients:;"),
            Vec::<String>::new()
        );
        assert_eq!(parse_addresses("<>"), vec![""]);
        assert_eq!(parse_addresses("<@route:a@b.c>"), vec!["a@b.c"]);
    }
}
