//! BODY and TEXT: the text parts of a message, decoded only where decoding changes what can
//! match.
//!
//! A part in 7bit/8bit/binary whose charset is UTF-8 or US-ASCII (or, for an ASCII needle,
//! any ASCII-compatible single-byte charset, where ASCII bytes are ASCII characters) is
//! scanned in place in the message bytes: no copy, no allocation. Base64 and
//! quoted-printable parts are transfer-decoded, other charsets are converted to UTF-8, and
//! HTML parts are reduced to their text so that tags and entities do not hide or fake a
//! match; only those parts pay for it.

use std::borrow::Cow;

use ringmail_mime::{decode_header_value, decode_part, MessageMeta, PartKind, PartMeta};

use super::header::{fields, is_plain};
use super::scanner::Finder;

/// Whether the message's header contains the string: raw first, then the decoded form of
/// every field whose raw form differs from its decoded one (encoded words, folding, 8-bit).
pub fn header_contains(finder: &Finder, header: &[u8]) -> bool {
    if finder.is_match(header) {
        return true;
    }
    fields(header).any(|f| {
        !is_plain(f.value) && {
            let mut line = String::from_utf8_lossy(f.name).into_owned();
            line.push_str(": ");
            line.push_str(&decode_header_value(f.value));
            finder.is_match_text(&line)
        }
    })
}

/// SEARCH TEXT: whether the message's header, the header of any part or embedded message
/// (a forwarded message's Subject, an attachment's file name), or any text part contains the
/// string. RFC 9051 section 6.4.4: TEXT is "the header or body of the message", and an
/// embedded message's header is body of the outer one.
pub fn text_contains(finder: &Finder, header: &[u8], meta: &MessageMeta, raw: &[u8]) -> bool {
    header_contains(finder, header)
        || part_headers_contain(finder, &meta.root, raw)
        || contains(finder, meta, raw)
}

/// The headers below `p`: each body part's MIME header and each embedded message's header.
fn part_headers_contain(finder: &Finder, p: &PartMeta, raw: &[u8]) -> bool {
    p.children.iter().any(|child| {
        let header = raw
            .get(child.header_start as usize..child.header_end as usize)
            .unwrap_or_default();
        header_contains(finder, header) || part_headers_contain(finder, child, raw)
    })
}

/// Whether any text part of the message (embedded messages included) contains the string.
pub fn contains(finder: &Finder, meta: &MessageMeta, raw: &[u8]) -> bool {
    let mut path = Vec::new();
    in_message(finder, &meta.root, meta, raw, &mut path)
}

/// The parts of a message whose root is `root`; IMAP numbers a single-part message's body 1.
fn in_message(
    finder: &Finder,
    root: &PartMeta,
    meta: &MessageMeta,
    raw: &[u8],
    path: &mut Vec<u32>,
) -> bool {
    if root.kind == PartKind::Multipart {
        return children(finder, root, meta, raw, path);
    }
    path.push(1);
    let found = part(finder, root, meta, raw, path);
    path.pop();
    found
}

fn children(
    finder: &Finder,
    multipart: &PartMeta,
    meta: &MessageMeta,
    raw: &[u8],
    path: &mut Vec<u32>,
) -> bool {
    multipart.children.iter().enumerate().any(|(i, child)| {
        path.push(i as u32 + 1);
        let found = part(finder, child, meta, raw, path);
        path.pop();
        found
    })
}

fn part(
    finder: &Finder,
    p: &PartMeta,
    meta: &MessageMeta,
    raw: &[u8],
    path: &mut Vec<u32>,
) -> bool {
    match p.kind {
        PartKind::Multipart => children(finder, p, meta, raw, path),
        PartKind::Message => p
            .children
            .first()
            .is_some_and(|inner| in_message(finder, inner, meta, raw, path)),
        PartKind::Text => text_part(finder, p, meta, raw, path),
        PartKind::Basic => false,
    }
}

/// How a part's bytes relate to the text a needle is compared with.
enum Charset {
    /// UTF-8 (or ASCII): the bytes are the text.
    Utf8,
    /// An ASCII-compatible single-byte charset: ASCII needles can match the bytes.
    SingleByte(&'static encoding_rs::Encoding),
    /// Anything else: convert first.
    Other(Option<&'static encoding_rs::Encoding>),
}

fn charset_of(p: &PartMeta) -> Charset {
    use ringmail_mime::search_text::{self, Charset as Label};
    match search_text::charset_of(p) {
        Label::Utf8 => Charset::Utf8,
        Label::Known(enc) if enc.is_single_byte() && enc.is_ascii_compatible() => {
            Charset::SingleByte(enc)
        }
        Label::Known(enc) => Charset::Other(Some(enc)),
        Label::Unknown => Charset::Other(None),
    }
}

fn needs_transfer_decoding(p: &PartMeta) -> bool {
    p.encoding.as_deref().is_some_and(|enc| {
        ![&b"7bit"[..], b"8bit", b"binary"]
            .iter()
            .any(|e| enc.eq_ignore_ascii_case(e))
    })
}

fn text_part(finder: &Finder, p: &PartMeta, meta: &MessageMeta, raw: &[u8], path: &[u32]) -> bool {
    let body = raw
        .get(p.body_start as usize..p.body_end as usize)
        .unwrap_or_default();
    let html = p.subtype.eq_ignore_ascii_case(b"html");
    let charset = charset_of(p);
    let bytes_are_text = match charset {
        Charset::Utf8 => !finder.needs_unicode(),
        Charset::SingleByte(_) => finder.is_ascii(),
        Charset::Other(_) => false,
    };
    let decoded: Cow<'_, [u8]> = if needs_transfer_decoding(p) {
        // An unknown transfer encoding is searched as it is.
        decode_part(meta, raw, path).unwrap_or(Cow::Borrowed(body))
    } else {
        Cow::Borrowed(body)
    };
    if bytes_are_text && !html {
        // The common case: scanned where it lies (in the message, or the decoded copy).
        return finder.is_match(&decoded);
    }
    let text: Cow<'_, str> = match charset {
        Charset::Utf8 => String::from_utf8_lossy(&decoded),
        Charset::SingleByte(enc) | Charset::Other(Some(enc)) => {
            enc.decode_without_bom_handling(&decoded).0
        }
        Charset::Other(None) => String::from_utf8_lossy(&decoded),
    };
    if html {
        finder.is_match_text(&mail_parser::decoders::html::html_to_text(&text))
    } else {
        finder.is_match_text(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_has(raw: &str, needle: &str) -> bool {
        let raw = raw.as_bytes();
        let meta = ringmail_mime::analyze(raw);
        contains(&Finder::new(needle.as_bytes()), &meta, raw)
    }

    const MIXED: &str = "Content-Type: multipart/alternative; boundary=b\r\n\r\n\
        --b\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\
        Content-Transfer-Encoding: quoted-printable\r\n\r\ncaf=E9 cr=E8me\r\n\
        --b\r\nContent-Type: text/html; charset=utf-8\r\n\
        Content-Transfer-Encoding: base64\r\n\r\nPHA+PGI+Ym9sZDwvYj50ZXh0ICZhbXA7IG1vcmU8L3A+\r\n\
        --b\r\nContent-Type: application/octet-stream\r\n\r\nsecret-binary\r\n--b--\r\n";

    #[test]
    fn decodes_what_needs_decoding() {
        assert!(body_has(MIXED, "CAFÉ CRÈME"));
        assert!(body_has(MIXED, "boldtext & more"));
        assert!(!body_has(MIXED, "<b>"), "tags are not text");
        assert!(
            !body_has(MIXED, "secret-binary"),
            "non-text parts are not searched"
        );
        assert!(
            !body_has(MIXED, "E9"),
            "quoted-printable escapes are decoded"
        );
    }

    #[test]
    fn text_reaches_embedded_and_part_headers() {
        // A forwarded message (RFC 2046 section 5.2.1) inside a multipart.
        let raw = b"From: a@example.org\r\nSubject: Fwd: see below\r\n\
            Content-Type: multipart/mixed; boundary=x\r\n\r\n\
            --x\r\nContent-Type: text/plain\r\n\r\nHave a look.\r\n\
            --x\r\nContent-Type: message/rfc822\r\n\r\n\
            From: b@example.org\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe_aus_Wien?=\r\n\r\nOriginal text.\r\n\
            --x\r\nContent-Type: application/pdf; name=\"budget-2024.pdf\"\r\n\r\nJVBERi0=\r\n--x--\r\n";
        let meta = ringmail_mime::analyze(raw);
        let header = crate::search::header::header_block(raw).unwrap();
        let text =
            |needle: &str| text_contains(&Finder::new(needle.as_bytes()), header, &meta, raw);
        assert!(
            text("grüße aus wien"),
            "the embedded message's Subject, decoded"
        );
        assert!(text("b@example.org"), "the embedded message's From");
        assert!(text("budget-2024.pdf"), "an attachment's MIME header");
        assert!(text("original text"));
        assert!(text("fwd: see"));
        assert!(!text("JVBERi0"), "non-text bodies are not searched");
        // BODY stays with the text parts: headers, embedded ones included, are not body text.
        assert!(!contains(&Finder::new("grüße".as_bytes()), &meta, raw));
    }

    #[test]
    fn header_decoding() {
        let header = b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nX-Long: one\r\n two\r\n\r\n";
        assert!(header_contains(&Finder::new("grüße".as_bytes()), header));
        assert!(header_contains(&Finder::new(b"one two"), header));
        assert!(!header_contains(&Finder::new(b"absent"), header));
    }
}
