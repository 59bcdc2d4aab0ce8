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
//! Most of those bytes are already in the message, which is stored in the same record: a
//! header block, and a text part that needs no decoding (or whose decoding changes nothing,
//! such as quoted-printable without escapes or an ASCII-only part in Latin-1). Those are stored
//! as a *reference* (offset and length into the message) rather than a copy, so the stored
//! text holds only what decoding made (HTML reduced to text, converted charsets, base64,
//! decoded header lines): delivery writes and syncs far fewer bytes. A search reads the
//! message up to [`message_extent`] alongside the text and resolves references into it.
//!
//! Encoding (opaque to the store), little-endian:
//! - version 2: `u8 2 | u32 extent` (how much of the message the references reach), then per
//!   haystack either a copy `u8 kind (0 header, 1 body) | u32 len | bytes` or a reference
//!   `u8 kind (2 header, 3 body) | u32 offset | u32 len` into the message.
//! - version 1 (written by an earlier build of this branch, never released): `u8 1`, then
//!   copies only. Still read, with an extent of 0.

use std::borrow::Cow;

use crate::decode::decode_transfer;
use crate::search_header::{fields, is_plain};
use crate::{decode_header_value, MessageMeta, PartKind, PartMeta};

const VERSION: u8 = 2;
/// The first format: copies only, no extent.
const VERSION_COPIES: u8 = 1;
const HEADER: u8 = 0;
const BODY: u8 = 1;
const HEADER_REF: u8 = 2;
const BODY_REF: u8 = 3;

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
    // Sized for what is copied, which is at most the decoded text parts and header lines;
    // references take 9 bytes each.
    let mut out = Writer {
        out: Vec::with_capacity(64 + copied_bytes(&meta.root)),
        raw,
        extent: 0,
    };
    out.out.push(VERSION);
    out.out.extend_from_slice(&[0; 4]);
    let header_end = (meta.root.header_end as usize).min(raw.len());
    out.header(0..header_end);
    part_headers(&meta.root, &mut out);
    in_message(&meta.root, raw, &mut out);
    let extent = out.extent.min(u32::MAX as usize) as u32;
    out.out[1..5].copy_from_slice(&extent.to_le_bytes());
    out.out
}

/// About how many bytes the copies below `p` take: its text parts that need decoding, as
/// they are in the message (a decoded part is rarely larger), and room for decoded header
/// lines.
fn copied_bytes(p: &PartMeta) -> usize {
    let decoded = |e: &Vec<u8>| {
        e.eq_ignore_ascii_case(b"base64") || e.eq_ignore_ascii_case(b"quoted-printable")
    };
    let copied =
        !p.subtype.eq_ignore_ascii_case(b"plain") || p.encoding.as_ref().is_some_and(decoded);
    let body = if p.kind == PartKind::Text && copied {
        p.body_end.saturating_sub(p.body_start) as usize
    } else {
        0
    };
    // Per part: its header reference (9 bytes) and body reference, or a short decoded line.
    let per_part = 32;
    body + per_part + p.children.iter().map(copied_bytes).sum::<usize>()
}

/// How many leading bytes of the message the references of `text` reach: what a search
/// must read of the message besides `text`. `None` when `text` is not a stored searchable
/// text this version reads.
pub fn message_extent(text: &[u8]) -> Option<usize> {
    match text.split_first()? {
        (&VERSION_COPIES, _) => Some(0),
        (&VERSION, rest) => Some(u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize),
        _ => None,
    }
}

/// Whether any haystack of `scope` satisfies `matches`, or `None` when `text` is not a
/// stored searchable text this version reads or refers past the end of `message` (the
/// caller then searches the message). `message` is the message the text was built from, or
/// at least its first [`message_extent`] bytes.
pub fn any_haystack(
    text: &[u8],
    message: &[u8],
    scope: Scope,
    mut matches: impl FnMut(&[u8]) -> bool,
) -> Option<bool> {
    let (&version, mut rest) = text.split_first()?;
    match version {
        VERSION_COPIES => {}
        VERSION => rest = rest.get(4..)?,
        _ => return None,
    }
    let refs = version == VERSION;
    let word = |b: &[u8], at: usize| -> Option<usize> {
        Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?) as usize)
    };
    while let Some((&kind, after)) = rest.split_first() {
        let bytes = match kind {
            HEADER | BODY => {
                let len = word(after, 0)?;
                let bytes = after.get(4..4 + len)?;
                rest = &after[4 + len..];
                bytes
            }
            HEADER_REF | BODY_REF if refs => {
                let (offset, len) = (word(after, 0)?, word(after, 4)?);
                rest = &after[8..];
                message.get(offset..offset.checked_add(len)?)?
            }
            _ => return None,
        };
        let wanted = match kind {
            HEADER | HEADER_REF => scope == Scope::Text,
            _ => true,
        };
        if wanted && matches(bytes) {
            return Some(true);
        }
    }
    Some(false)
}

struct Writer<'r> {
    out: Vec<u8>,
    /// The message, which references point into.
    raw: &'r [u8],
    /// The end of the furthest reference.
    extent: usize,
}

impl Writer<'_> {
    fn copy(&mut self, kind: u8, bytes: &[u8]) {
        // A part cannot exceed what a record holds (far below 4 GiB), so the length fits.
        self.out.push(kind);
        self.out
            .extend_from_slice(&(bytes.len().min(u32::MAX as usize) as u32).to_le_bytes());
        self.out.extend_from_slice(bytes);
    }

    /// The bytes `range` of the message, by reference.
    fn reference(&mut self, kind: u8, range: std::ops::Range<usize>) {
        // Offsets within a record fit in 32 bits (see the length above).
        self.out.push(kind);
        self.out
            .extend_from_slice(&(range.start as u32).to_le_bytes());
        self.out
            .extend_from_slice(&(range.len() as u32).to_le_bytes());
        self.extent = self.extent.max(range.end);
    }

    /// A body haystack whose text is `text`, and which is the message's bytes `range` when
    /// decoding changed nothing: then a reference, else a copy.
    fn body(&mut self, range: std::ops::Range<usize>, text: &[u8]) {
        // Borrowed from the message when nothing was decoded: no need to compare bytes.
        let same = self.raw.get(range.clone()).is_some_and(|raw| {
            raw.len() == text.len() && (raw.as_ptr() == text.as_ptr() || raw == text)
        });
        if same {
            self.reference(BODY_REF, range);
        } else {
            self.copy(BODY, text);
        }
    }

    /// A header block (the message's bytes `range`) by reference, and the decoded line of
    /// each field not plain as written.
    fn header(&mut self, range: std::ops::Range<usize>) {
        let raw = self.raw;
        let header = raw.get(range.clone()).unwrap_or_default();
        if header.is_empty() {
            // As the copy of an empty block was: a haystack that matches the empty needle.
            self.copy(HEADER, b"");
        } else {
            self.reference(HEADER_REF, range);
        }
        for f in fields(header).filter(|f| !is_plain(f.value)) {
            let mut line = String::from_utf8_lossy(f.name).into_owned();
            line.push_str(": ");
            line.push_str(&decode_header_value(f.value));
            self.copy(HEADER, line.as_bytes());
        }
    }
}

/// The headers below `p`: each body part's MIME header and each embedded message's header.
fn part_headers(p: &PartMeta, out: &mut Writer) {
    for child in &p.children {
        out.header(child.header_start as usize..child.header_end as usize);
        part_headers(child, out);
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

/// The charset a text part is searched in (SEARCH's fallback path reading the message
/// classifies parts with [`charset_of`] too, so both paths decode alike).
pub enum Charset {
    /// UTF-8 or US-ASCII (or none given): the bytes are the text.
    Utf8,
    /// Anything else that encoding_rs knows.
    Known(&'static encoding_rs::Encoding),
    /// A label encoding_rs does not know: read as UTF-8, lossily.
    Unknown,
}

/// The charset of text part `p`, from its `charset` parameter.
pub fn charset_of(p: &PartMeta) -> Charset {
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
    let range = p.body_start as usize..p.body_end as usize;
    let body = raw.get(range.clone()).unwrap_or_default();
    // An unknown transfer encoding is searched as it is.
    let decoded = decode_transfer(p.encoding.as_deref(), body).unwrap_or(Cow::Borrowed(body));
    let html = p.subtype.eq_ignore_ascii_case(b"html");
    let text: Cow<'_, str> = match charset_of(p) {
        Charset::Utf8 if !html => return out.body(range, &decoded),
        Charset::Utf8 | Charset::Unknown => String::from_utf8_lossy(&decoded),
        Charset::Known(enc) => enc.decode_without_bom_handling(&decoded).0,
    };
    if html {
        let reduced = mail_parser::decoders::html::html_to_text(&text);
        out.copy(BODY, reduced.as_bytes());
    } else {
        // ASCII in a single-byte charset, valid UTF-8 under an unknown label: often the
        // part's own bytes, and then a reference.
        out.body(range, text.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn haystacks(raw: &[u8], scope: Scope) -> Vec<String> {
        let text = search_text(&crate::analyze(raw), raw);
        let mut out = Vec::new();
        let done = any_haystack(&text, raw, scope, |h| {
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
    fn refers_to_what_decoding_leaves_as_it_is() {
        let raw = b"Subject: plain\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
            --b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nplain words here\r\n\
            --b\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\
            Content-Transfer-Encoding: quoted-printable\r\n\r\nascii only\r\n\
            --b\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\ncr\xe8me\r\n\
            --b\r\nContent-Type: application/pdf\r\n\r\nJVBERi0=\r\n--b--\r\n";
        let text = search_text(&crate::analyze(raw), raw);
        // The header blocks and the first two parts are references: none of their bytes is
        // copied. The Latin-1 part needed converting: a copy.
        let has = |needle: &[u8]| text.windows(needle.len()).any(|w| w == needle);
        assert!(!has(b"Subject") && !has(b"Content-Type"));
        assert!(!has(b"plain words") && !has(b"ascii only"));
        assert!(has("crème".as_bytes()));
        assert_eq!(
            haystacks(raw, Scope::Body),
            ["plain words here", "ascii only", "crème"]
        );
        // The search reads the message up to the last text part it refers to, not the PDF.
        let extent = message_extent(&text).unwrap();
        let pdf = raw.windows(8).position(|w| w == b"JVBERi0=").unwrap();
        assert!(extent <= pdf);
        let mut found = Vec::new();
        let done = any_haystack(&text, &raw[..extent], Scope::Text, |h| {
            found.push(h.to_vec());
            false
        });
        assert_eq!(done, Some(false));
        assert!(found.iter().any(|h| h.starts_with(b"Subject: plain")));
        // A message shorter than the references reach is refused, not searched in part.
        assert_eq!(
            any_haystack(&text, &raw[..extent - 1], Scope::Body, |_| false),
            None
        );
    }

    #[test]
    fn refuses_what_it_does_not_read() {
        assert_eq!(any_haystack(b"", b"", Scope::Text, |_| true), None);
        assert_eq!(any_haystack(&[9], b"", Scope::Text, |_| true), None);
        assert_eq!(message_extent(&[9]), None);
        assert_eq!(
            any_haystack(&[1, 1, 5, 0, 0, 0, b'a'], b"", Scope::Text, |_| false),
            None
        );
        assert_eq!(any_haystack(&[1], b"", Scope::Text, |_| true), Some(false));
        assert_eq!(
            any_haystack(&[2, 0, 0, 0, 0], b"", Scope::Text, |_| true),
            Some(false)
        );
        // A reference past the message, and a reference in the first format, are refused.
        let reference = [2, 0, 0, 0, 0, 3, 1, 0, 0, 0, 2, 0, 0, 0];
        assert_eq!(
            any_haystack(&reference, b"abc", Scope::Body, |h| h == b"bc"),
            Some(true)
        );
        assert_eq!(
            any_haystack(&reference, b"ab", Scope::Body, |_| false),
            None
        );
        let mut first_format = reference;
        first_format[0] = 1;
        assert_eq!(
            any_haystack(&first_format, b"abc", Scope::Body, |_| false),
            None
        );
    }

    /// Texts of the first format (copies only) are still read.
    #[test]
    fn reads_the_first_format() {
        let mut v1 = vec![1];
        for (kind, bytes) in [(HEADER, &b"Subject: x"[..]), (BODY, b"words")] {
            v1.push(kind);
            v1.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            v1.extend_from_slice(bytes);
        }
        assert_eq!(message_extent(&v1), Some(0));
        assert_eq!(
            any_haystack(&v1, b"", Scope::Body, |h| h == b"words"),
            Some(true)
        );
        assert_eq!(
            any_haystack(&v1, b"", Scope::Body, |h| h == b"Subject: x"),
            Some(false)
        );
        assert_eq!(
            any_haystack(&v1, b"", Scope::Text, |h| h == b"Subject: x"),
            Some(true)
        );
    }
}
