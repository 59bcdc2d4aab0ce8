//! Binary parts re-encoded as base64 when a message arrives in an APPEND literal8.
//!
//! RFC 3516 section 4.4 lets the client append unencoded binary data (`~{n}`) and lets the
//! server change the transfer encoding of such parts. It has to: a part sent with
//! `Content-Transfer-Encoding: binary` may hold NUL, which no `BODY[...]` literal can carry
//! (RFC 9051 section 4.3). Stored as base64, `BODY[...]` sends the encoded text, while
//! `BINARY[...]` decodes it back to exactly the bytes the client appended. Dovecot does the
//! same on APPEND.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::header::fields;
use super::meta::{PartKind, PartMeta};

/// Characters of base64 per line: the most RFC 2045 section 6.8 allows.
const LINE: usize = 76;

/// `raw` with every leaf part whose transfer encoding is `binary` re-encoded as base64 (its
/// Content-Transfer-Encoding field rewritten to say so); `None` when there is no such part.
/// Multipart and message parts are left alone: RFC 2046 allows them no encoding but the
/// identity ones, and their own parts are visited instead.
pub fn binary_parts_as_base64(raw: &[u8]) -> Option<Vec<u8>> {
    let root = super::structure::Splitter::new(raw).root();
    let mut edits: Vec<(usize, usize, Vec<u8>)> = Vec::new();
    collect(&root, raw, &mut edits);
    if edits.is_empty() {
        return None;
    }
    // The tree is walked in byte order (a part's header before its body, parts in order),
    // so the edits are sorted and never overlap.
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 3 + 64);
    let mut at = 0;
    for (start, end, replacement) in edits {
        out.extend_from_slice(raw.get(at..start)?);
        out.extend_from_slice(&replacement);
        at = end;
    }
    out.extend_from_slice(raw.get(at..)?);
    Some(out)
}

fn collect(part: &PartMeta, raw: &[u8], edits: &mut Vec<(usize, usize, Vec<u8>)>) {
    let is_leaf = matches!(part.kind, PartKind::Basic | PartKind::Text);
    let binary = part
        .encoding
        .as_deref()
        .is_some_and(|e| e.eq_ignore_ascii_case(b"binary"));
    if !(is_leaf && binary) {
        for child in &part.children {
            collect(child, raw, edits);
        }
        return;
    }
    let (header_start, header_end) = (part.header_start as usize, part.header_end as usize);
    let (body_start, body_end) = (part.body_start as usize, part.body_end as usize);
    let (Some(header), Some(body)) = (
        raw.get(header_start..header_end),
        raw.get(body_start..body_end),
    ) else {
        return;
    };
    let Some(field) =
        fields(header).find(|f| f.name.eq_ignore_ascii_case(b"content-transfer-encoding"))
    else {
        return;
    };
    // Where the field lies in the message: `field.raw` is a slice of `header`.
    let field_start = header_start + (field.raw.as_ptr() as usize - header.as_ptr() as usize);
    let field_end = field_start + field.raw.len();
    // The message's own line ending, so the rewritten part looks like the rest.
    let eol: &[u8] = if field.raw.ends_with(b"\r\n") || !field.raw.ends_with(b"\n") {
        b"\r\n"
    } else {
        b"\n"
    };
    let mut cte = b"Content-Transfer-Encoding: base64".to_vec();
    cte.extend_from_slice(eol);
    edits.push((field_start, field_end, cte));
    edits.push((body_start, body_end, base64_lines(body, eol)));
}

/// `data` in base64, `LINE` characters a line. No line break after the last line: the one
/// that ends the part (before a boundary) is still there.
fn base64_lines(data: &[u8], eol: &[u8]) -> Vec<u8> {
    let encoded = STANDARD.encode(data);
    let mut out = Vec::with_capacity(encoded.len() + encoded.len() / LINE * eol.len());
    for (i, line) in encoded.as_bytes().chunks(LINE).enumerate() {
        if i > 0 {
            out.extend_from_slice(eol);
        }
        out.extend_from_slice(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{analyze, decode_part};

    #[test]
    fn binary_leaf_parts_become_base64_and_decode_back() {
        let raw = b"From: a@example.org\r\nContent-Type: multipart/mixed; boundary=sep\r\n\r\n\
            --sep\r\nContent-Type: text/plain\r\n\r\nplain text\r\n\
            --sep\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: Binary\r\n\
            X-After: kept\r\n\r\n\x00\x01\xff binary\r\nwith lines\r\n--sep--\r\n";
        let converted = binary_parts_as_base64(raw).unwrap();
        let text = String::from_utf8(converted.clone()).unwrap();
        assert!(text.contains("Content-Transfer-Encoding: base64\r\nX-After: kept\r\n\r\n"));
        assert!(!converted.contains(&0), "no NUL left for BODY[] to send");
        assert!(text.contains("--sep\r\nContent-Type: text/plain\r\n\r\nplain text\r\n--sep\r\n"));
        let meta = analyze(&converted);
        assert_eq!(meta.root.children.len(), 2);
        assert_eq!(
            decode_part(&meta, &converted, &[2]).unwrap().as_ref(),
            b"\x00\x01\xff binary\r\nwith lines"
        );
    }

    #[test]
    fn long_parts_wrap_and_other_messages_are_untouched() {
        let body = vec![0u8; 100];
        let mut raw = b"Content-Transfer-Encoding: binary\r\n\r\n".to_vec();
        raw.extend_from_slice(&body);
        let converted = binary_parts_as_base64(&raw).unwrap();
        let encoded =
            &converted[converted.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4..];
        assert!(encoded.split(|&b| b == b'\n').all(|l| l.len() <= LINE + 1));
        assert_eq!(
            decode_part(&analyze(&converted), &converted, &[1])
                .unwrap()
                .as_ref(),
            &body[..]
        );

        assert_eq!(binary_parts_as_base64(b"Subject: x\r\n\r\nhello\r\n"), None);
        let multipart_binary = b"Content-Type: multipart/mixed; boundary=b\r\n\
            Content-Transfer-Encoding: binary\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n";
        assert_eq!(binary_parts_as_base64(multipart_binary), None);
    }
}
