//! The searchable text of a message: what SEARCH BODY and TEXT compare, produced once at
//! APPEND (from the analysis the store needs anyway) and stored next to the message, so that
//! a search scans it in place with no transfer decoding, charset conversion or HTML
//! reduction per message.
//!
//! The text is a list of *haystacks*, each searched on its own (a match never spans two of
//! them, as it never spans two parts when the message itself is searched):
//!
//! - body haystacks (BODY and TEXT): one per text part, embedded messages included. A part
//!   in UTF-8 or US-ASCII that is not HTML keeps its transfer-decoded bytes as they are
//!   (invalid UTF-8 included: an ASCII needle matches them byte for byte, a needle with
//!   non-ASCII letters reads them lossily, exactly as the part itself is searched). Every
//!   other part is converted to UTF-8 and, for HTML, reduced to its text.
//! - header haystacks (TEXT only): the message's header block as it is, the header of every
//!   part and embedded message, and for each field whose raw form is not plain text (encoded
//!   words, folding, 8-bit that is not UTF-8) the line `name: decoded value`.
//!
//! Why the stored form is needle-independent although the search of a raw message decodes
//! some parts only for some needles: an ASCII needle matches the raw bytes of a single-byte
//! ASCII-compatible charset exactly where it matches their UTF-8 conversion (bytes below
//! 0x80 are the same characters, every other byte becomes non-ASCII bytes), so the converted
//! text answers every needle as the raw part did.
//!
//! Encoding (opaque to the store): `u8 version (1)`, then per haystack `u8 kind (0 header,
//! 1 body) | u32 len | bytes`, little-endian.

use std::borrow::Cow;

use crate::decode::decode_transfer;
use crate::search_header::{fields, is_plain};
use crate::{decode_header_value, MessageMeta, PartKind, PartMeta};

const VERSION: u8 = 1;
const HEADER: u8 = 0;
const BODY: u8 = 1;

/// Which haystacks a search key looks in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// SEARCH BODY: the text parts.
    Body,
    /// SEARCH TEXT: the headers too.
    Text,
}

/// Builds the stored searchable text of the message `raw` whose structure is `meta`.
pub fn search_text(meta: &MessageMeta, raw: &[u8]) -> Vec<u8> {
    // Sized for the headers and text parts, not the message: an attachment adds nothing.
    let mut out = Writer(Vec::with_capacity(64 + text_bytes(&meta.root)));
    out.0.push(VERSION);
    let header_end = (meta.root.header_end as usize).min(raw.len());
    out.header(raw.get(..header_end).unwrap_or_default());
    part_headers(&meta.root, raw, &mut out);
    in_message(&meta.root, raw, &mut out);
    out.0
}

/// About how many bytes the haystacks below `p` take: its header and those of its
/// descendants, and its text parts as they are in the message.
fn text_bytes(p: &PartMeta) -> usize {
    let header = p.header_end.saturating_sub(p.header_start) as usize;
    let body = if p.kind == PartKind::Text {
        p.body_end.saturating_sub(p.body_start) as usize
    } else {
        0
    };
    header + body + p.children.iter().map(text_bytes).sum::<usize>()
}

/// Whether any haystack of `scope` satisfies `matches`, or `None` when `text` is not a
/// stored searchable text this version reads (the caller then searches the message).
pub fn any_haystack(
    text: &[u8],
    scope: Scope,
    mut matches: impl FnMut(&[u8]) -> bool,
) -> Option<bool> {
    let (&version, mut rest) = text.split_first()?;
    if version != VERSION {
        return None;
    }
    while let Some((&kind, after)) = rest.split_first() {
        let len = u32::from_le_bytes(after.get(..4)?.try_into().ok()?) as usize;
        let bytes = after.get(4..4 + len)?;
        rest = &after[4 + len..];
        let wanted = match kind {
            HEADER => scope == Scope::Text,
            BODY => true,
            _ => return None,
        };
        if wanted && matches(bytes) {
            return Some(true);
        }
    }
    Some(false)
}

struct Writer(Vec<u8>);

impl Writer {
    fn haystack(&mut self, kind: u8, bytes: &[u8]) {
        // A part cannot exceed what a record holds (far below 4 GiB), so the length fits.
        self.0.push(kind);
        self.0
            .extend_from_slice(&(bytes.len().min(u32::MAX as usize) as u32).to_le_bytes());
        self.0.extend_from_slice(bytes);
    }

    /// A header block as it is, and the decoded line of each field not plain as written.
    fn header(&mut self, header: &[u8]) {
        self.haystack(HEADER, header);
        for f in fields(header).filter(|f| !is_plain(f.value)) {
            let mut line = String::from_utf8_lossy(f.name).into_owned();
            line.push_str(": ");
            line.push_str(&decode_header_value(f.value));
            self.haystack(HEADER, line.as_bytes());
        }
    }
}

/// The headers below `p`: each body part's MIME header and each embedded message's header.
fn part_headers(p: &PartMeta, raw: &[u8], out: &mut Writer) {
    for child in &p.children {
        let header = raw
            .get(child.header_start as usize..child.header_end as usize)
            .unwrap_or_default();
        out.header(header);
        part_headers(child, raw, out);
    }
}

/// The text parts of a message whose root is `root`.
fn in_message(root: &PartMeta, raw: &[u8], out: &mut Writer) {
    match root.kind {
        PartKind::Multipart => root.children.iter().for_each(|c| part(c, raw, out)),
        _ => part(root, raw, out),
    }
}

fn part(p: &PartMeta, raw: &[u8], out: &mut Writer) {
    match p.kind {
        PartKind::Multipart => p.children.iter().for_each(|c| part(c, raw, out)),
        PartKind::Message => {
            if let Some(inner) = p.children.first() {
                in_message(inner, raw, out);
            }
        }
        PartKind::Text => text_part(p, raw, out),
        PartKind::Basic => {}
    }
}

/// The charset a text part is searched in.
enum Charset {
    /// UTF-8 or US-ASCII (or none given): the bytes are the text.
    Utf8,
    /// Anything else that encoding_rs knows.
    Known(&'static encoding_rs::Encoding),
    /// A label encoding_rs does not know: read as UTF-8, lossily.
    Unknown,
}

fn charset_of(p: &PartMeta) -> Charset {
    let label = p
        .params
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(b"charset"))
        .map(|(_, v)| v.as_slice());
    let Some(label) = label else {
        return Charset::Utf8;
    };
    if label.eq_ignore_ascii_case(b"us-ascii") || label.eq_ignore_ascii_case(b"utf-8") {
        return Charset::Utf8;
    }
    match encoding_rs::Encoding::for_label(label) {
        Some(enc) if enc == encoding_rs::UTF_8 => Charset::Utf8,
        Some(enc) => Charset::Known(enc),
        None => Charset::Unknown,
    }
}

fn text_part(p: &PartMeta, raw: &[u8], out: &mut Writer) {
    let body = raw
        .get(p.body_start as usize..p.body_end as usize)
        .unwrap_or_default();
    // An unknown transfer encoding is searched as it is.
    let decoded = decode_transfer(p.encoding.as_deref(), body).unwrap_or(Cow::Borrowed(body));
    let html = p.subtype.eq_ignore_ascii_case(b"html");
    let text: Cow<'_, str> = match charset_of(p) {
        Charset::Utf8 if !html => return out.haystack(BODY, &decoded),
        Charset::Utf8 | Charset::Unknown => String::from_utf8_lossy(&decoded),
        Charset::Known(enc) => enc.decode_without_bom_handling(&decoded).0,
    };
    if html {
        out.haystack(
            BODY,
            mail_parser::decoders::html::html_to_text(&text).as_bytes(),
        );
    } else {
        out.haystack(BODY, text.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn haystacks(raw: &[u8], scope: Scope) -> Vec<String> {
        let text = search_text(&crate::analyze(raw), raw);
        let mut out = Vec::new();
        let done = any_haystack(&text, scope, |h| {
            out.push(String::from_utf8_lossy(h).into_owned());
            false
        });
        assert_eq!(done, Some(false));
        out
    }

    #[test]
    fn decodes_parts_and_keeps_headers_apart() {
        let raw =
            b"Subject: =?utf-8?q?caf=C3=A9?=\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
            --b\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\
            Content-Transfer-Encoding: quoted-printable\r\n\r\ncr=E8me\r\n\
            --b\r\nContent-Type: text/html\r\n\r\n<p>a &amp; b</p>\r\n\
            --b\r\nContent-Type: application/pdf\r\n\r\nJVBERi0=\r\n--b--\r\n";
        let body = haystacks(raw, Scope::Body);
        assert_eq!(body, ["crème", "a & b\n"]);
        let text = haystacks(raw, Scope::Text);
        assert!(text.iter().any(|h| h == "Subject: café"));
        assert!(text.iter().any(|h| h.contains("application/pdf")));
        assert!(!text.iter().any(|h| h.contains("JVBERi0")));
    }

    #[test]
    fn refuses_what_it_does_not_read() {
        assert_eq!(any_haystack(b"", Scope::Text, |_| true), None);
        assert_eq!(any_haystack(&[9], Scope::Text, |_| true), None);
        assert_eq!(
            any_haystack(&[1, 1, 5, 0, 0, 0, b'a'], Scope::Text, |_| false),
            None
        );
        assert_eq!(any_haystack(&[1], Scope::Text, |_| true), Some(false));
    }
}
