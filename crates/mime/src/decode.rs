//! Content-transfer decoding (BINARY, SEARCH), charset conversion and RFC 2047
//! header decoding. Decoding is lenient, as mail readers are: stray characters
//! in base64 are skipped, invalid quoted-printable escapes are kept literally, and
//! unknown charsets fall back to lossy UTF-8.

use std::borrow::Cow;
use std::fmt;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;

use super::meta::{MessageMeta, PartKind, PartMeta};
use super::section::find_part;

/// Why a part cannot be decoded for `BINARY[...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The part path names no part of this message (or the message is shorter
    /// than its metadata says).
    NoSuchPart,
    /// The part's Content-Transfer-Encoding is not one this server knows; the
    /// IMAP layer answers `NO [UNKNOWN-CTE]` (RFC 3516).
    UnknownEncoding(String),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::NoSuchPart => f.write_str("no such message part"),
            DecodeError::UnknownEncoding(e) => write!(f, "unknown content-transfer-encoding {e}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// The content-transfer-decoded body of the part at `part_path` (`[2, 1]` is part
/// 2.1), for `BINARY[section]` and `BINARY.SIZE`. `[]` is the whole message, which
/// has no transfer encoding (RFC 3516). 7bit, 8bit and binary bodies are borrowed
/// from `raw` without copying; multipart bodies are returned as they are.
pub fn decode_part<'r>(
    meta: &MessageMeta,
    raw: &'r [u8],
    part_path: &[u32],
) -> Result<Cow<'r, [u8]>, DecodeError> {
    if part_path.is_empty() {
        return Ok(Cow::Borrowed(raw));
    }
    let part = find_part(&meta.root, part_path).ok_or(DecodeError::NoSuchPart)?;
    let body = raw
        .get(part.body_start as usize..part.body_end as usize)
        .ok_or(DecodeError::NoSuchPart)?;
    if part.kind == PartKind::Multipart {
        return Ok(Cow::Borrowed(body));
    }
    decode_transfer(part.encoding.as_deref(), body)
}

pub(crate) fn decode_transfer<'r>(
    encoding: Option<&[u8]>,
    body: &'r [u8],
) -> Result<Cow<'r, [u8]>, DecodeError> {
    let Some(enc) = encoding else {
        return Ok(Cow::Borrowed(body));
    };
    if enc.eq_ignore_ascii_case(b"base64") {
        Ok(Cow::Owned(base64_lenient(body)))
    } else if enc.eq_ignore_ascii_case(b"quoted-printable") {
        Ok(Cow::Owned(quoted_printable(body, false)))
    } else if [&b"7bit"[..], b"8bit", b"binary"]
        .iter()
        .any(|e| enc.eq_ignore_ascii_case(e))
    {
        Ok(Cow::Borrowed(body))
    } else {
        Err(DecodeError::UnknownEncoding(
            String::from_utf8_lossy(enc).into_owned(),
        ))
    }
}

const BASE64_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Decodes base64, skipping line breaks and any non-alphabet byte and stopping at
/// the first `=`; a truncated last group yields what it completely encodes.
pub(crate) fn base64_lenient(input: &[u8]) -> Vec<u8> {
    let mut clean: Vec<u8> = input
        .iter()
        .copied()
        .take_while(|&b| b != b'=')
        .filter(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
        .collect();
    if clean.len() % 4 == 1 {
        clean.pop(); // six bits encode no whole byte
    }
    BASE64_LENIENT.decode(&clean).unwrap_or_default()
}

/// Decodes quoted-printable (RFC 2045 §6.7); `header` selects the RFC 2047 "Q"
/// variant, where `_` is a space. Invalid escapes are kept as written; whitespace at
/// the end of a body line is dropped.
pub(crate) fn quoted_printable(input: &[u8], header: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        match b {
            b'=' => {
                let hex = |c: Option<&u8>| c.and_then(|c| (*c as char).to_digit(16));
                if let (Some(h), Some(l)) = (hex(input.get(i + 1)), hex(input.get(i + 2))) {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                // A soft line break: '=' then optional whitespace then the line end.
                let mut j = i + 1;
                while j < input.len() && matches!(input[j], b' ' | b'\t') {
                    j += 1;
                }
                match input.get(j..) {
                    Some([b'\r', b'\n', ..]) => i = j + 2,
                    Some([b'\n', ..]) => i = j + 1,
                    Some([]) => i = j,
                    _ => {
                        out.push(b'=');
                        i += 1;
                    }
                }
            }
            b'_' if header => {
                out.push(b' ');
                i += 1;
            }
            b' ' | b'\t' if !header => {
                // RFC 2045 section 6.7 rule 3: whitespace ending a line was added in
                // transport (an encoder writes it as =20 / =09), so it is deleted.
                let run_end = input[i..]
                    .iter()
                    .position(|c| !matches!(c, b' ' | b'\t'))
                    .map_or(input.len(), |n| i + n);
                if !matches!(
                    input.get(run_end..),
                    Some([] | [b'\r', b'\n', ..] | [b'\n', ..])
                ) {
                    out.extend_from_slice(&input[i..run_end]);
                }
                i = run_end;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// Converts text in `charset` to UTF-8. Unknown or missing charsets are read as
/// UTF-8 with invalid sequences replaced.
pub(crate) fn to_utf8(bytes: &[u8], charset: Option<&[u8]>) -> String {
    match charset.and_then(encoding_rs::Encoding::for_label) {
        Some(enc) => enc.decode_without_bom_handling(bytes).0.into_owned(),
        None => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// Raw 8-bit header text: UTF-8 if it is valid UTF-8 (RFC 6532), else Latin-1
/// (windows-1252), the most common legacy header charset.
fn raw_header_text(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => {
            encoding_rs::WINDOWS_1252
                .decode_without_bom_handling(bytes)
                .0
        }
    }
}

/// Decodes a raw header value to UTF-8: unfolds it, decodes RFC 2047 encoded words
/// in any charset (whitespace between adjacent encoded words is dropped, as the RFC
/// says) and reads raw 8-bit text as UTF-8 or else Latin-1.
pub fn decode_header_value(value: &[u8]) -> String {
    let unfolded: Vec<u8> = value
        .iter()
        .copied()
        .filter(|&b| b != b'\r' && b != b'\n')
        .collect();
    let v = unfolded.as_slice();
    let mut out = String::with_capacity(v.len());
    let mut i = 0;
    let mut plain_start = 0;
    let mut last_was_word = false;
    while i < v.len() {
        if v[i] == b'=' && v.get(i + 1) == Some(&b'?') {
            if let Some((text, len)) = encoded_word(&v[i..]) {
                let gap = &v[plain_start..i];
                if !(last_was_word && gap.iter().all(|b| matches!(b, b' ' | b'\t'))) {
                    out.push_str(&raw_header_text(gap));
                }
                out.push_str(&text);
                i += len;
                plain_start = i;
                last_was_word = true;
                continue;
            }
        }
        if !matches!(v[i], b' ' | b'\t') {
            last_was_word = false;
        }
        i += 1;
    }
    out.push_str(&raw_header_text(&v[plain_start..]));
    out.trim().to_string()
}

/// Decodes one `=?charset?enc?text?=` at the start of `s`; returns the text and the
/// encoded word's length.
fn encoded_word(s: &[u8]) -> Option<(String, usize)> {
    let rest = s.get(2..)?;
    let q1 = rest.iter().position(|&b| b == b'?')?;
    let charset = &rest[..q1];
    let enc = *rest.get(q1 + 1)?;
    if rest.get(q1 + 2) != Some(&b'?') {
        return None;
    }
    let text_start = q1 + 3;
    let text_len = memchr::memmem::find(rest.get(text_start..)?, b"?=")?;
    let text = &rest[text_start..text_start + text_len];
    if charset.is_empty() || text.iter().any(|b| matches!(b, b' ' | b'\t')) {
        return None;
    }
    // RFC 2231 §5: a language may follow the charset after '*'.
    let charset = charset.split(|&b| b == b'*').next().unwrap_or(charset);
    let bytes = match enc {
        b'B' | b'b' => base64_lenient(text),
        b'Q' | b'q' => quoted_printable(text, true),
        _ => return None,
    };
    Some((
        to_utf8(&bytes, Some(charset)),
        2 + text_start + text_len + 2,
    ))
}

/// The UTF-8 text of every `text/*` leaf part (embedded messages included), in
/// order, for SEARCH BODY / TEXT: transfer-decoded, charset-converted, HTML reduced
/// to its text. Parts with an unknown transfer encoding are searched as they are.
pub fn decoded_text_for_search(meta: &MessageMeta, raw: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    collect_text(&meta.root, raw, &mut out, &mut |_| true);
    out
}

fn collect_text(
    part: &PartMeta,
    raw: &[u8],
    out: &mut Vec<String>,
    want: &mut dyn FnMut(&PartMeta) -> bool,
) {
    match part.kind {
        PartKind::Multipart | PartKind::Message => {
            for c in &part.children {
                collect_text(c, raw, out, want);
            }
        }
        PartKind::Text if want(part) => out.push(part_text(part, raw)),
        _ => {}
    }
}

/// The readable text of one text part.
pub(crate) fn part_text(part: &PartMeta, raw: &[u8]) -> String {
    let body = raw
        .get(part.body_start as usize..part.body_end as usize)
        .unwrap_or_default();
    let decoded = decode_transfer(part.encoding.as_deref(), body).unwrap_or(Cow::Borrowed(body));
    let charset = part
        .params
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(b"charset"))
        .map(|(_, v)| v.as_slice());
    let text = to_utf8(&decoded, charset);
    if part.subtype.eq_ignore_ascii_case(b"html") {
        mail_parser::decoders::html::html_to_text(&text)
    } else {
        text
    }
}

/// RFC 8970 PREVIEW: whitespace-collapsed text of the first inline text/plain part
/// (or, failing that, text/html), at most 200 characters.
pub(crate) fn preview(root: &PartMeta, raw: &[u8]) -> String {
    let inline_text = |p: &PartMeta, subtype: &[u8]| {
        p.subtype.eq_ignore_ascii_case(subtype)
            && !p
                .disposition
                .as_ref()
                .is_some_and(|(d, _)| d.eq_ignore_ascii_case(b"attachment"))
    };
    let text = first_leaf(root, &|p| inline_text(p, b"plain"))
        .or_else(|| first_leaf(root, &|p| inline_text(p, b"html")))
        .map(|p| part_text(p, raw))
        .unwrap_or_default();
    let mut out = String::new();
    let mut count = 0;
    for word in text.split_whitespace() {
        for ch in (!out.is_empty())
            .then_some(' ')
            .into_iter()
            .chain(word.chars())
        {
            if count == 200 {
                return out;
            }
            out.push(ch);
            count += 1;
        }
    }
    out
}

/// The first text leaf matching `pred`, not looking inside embedded messages.
fn first_leaf<'p>(part: &'p PartMeta, pred: &dyn Fn(&PartMeta) -> bool) -> Option<&'p PartMeta> {
    match part.kind {
        PartKind::Multipart => part.children.iter().find_map(|c| first_leaf(c, pred)),
        PartKind::Text if pred(part) => Some(part),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_words() {
        assert_eq!(decode_header_value(b"=?UTF-8?B?w6l0w6k=?="), "été");
        assert_eq!(
            decode_header_value(b"=?iso-8859-1?q?caf=E9_noir?="),
            "café noir"
        );
        assert_eq!(
            decode_header_value(b"a =?utf-8?q?b?=  =?utf-8?q?c?= d\r\n =?utf-8?q?e?="),
            "a bc d e"
        );
        assert_eq!(decode_header_value(b"=?bogus?x?y?="), "=?bogus?x?y?=");
        assert_eq!(decode_header_value(b"caf\xe9"), "café");
        assert_eq!(decode_header_value("café".as_bytes()), "café");
        assert_eq!(decode_header_value(b"=?shift_jis?B?g2WDWINn?="), "テスト");
    }

    #[test]
    fn lenient_transfer_decoding() {
        assert_eq!(base64_lenient(b"aGVs\r\nbG8=\r\n"), b"hello");
        assert_eq!(base64_lenient(b"aGVsbG8"), b"hello");
        assert_eq!(base64_lenient(b"aGVsb"), b"hel");
        assert_eq!(quoted_printable(b"a=3Db=\r\nc =ZZ=", false), b"a=bc =ZZ");
    }

    #[test]
    fn quoted_printable_drops_transport_whitespace() {
        // RFC 2045 section 6.7 rule 3: whitespace at a line end was added in transport;
        // encoded (=20, =09) or followed by text it is data. A soft break may be padded too.
        let qp = |s: &[u8]| quoted_printable(s, false);
        assert_eq!(qp(b"end  \r\nnext\t \nlast \t"), b"end\r\nnext\nlast");
        assert_eq!(
            qp(b"kept=20\r\nand=09\r\nin \t between"),
            b"kept \r\nand\t\r\nin \t between"
        );
        assert_eq!(qp(b"soft= \t\r\nbreak"), b"softbreak");
        // The "Q" encoding of headers has no lines to end.
        assert_eq!(quoted_printable(b"a_b=20", true), b"a b ");
    }
}
