//! Splitting a raw message into its MIME part tree (RFC 2045, RFC 2046).
//!
//! The splitter is tolerant in the way IMAP servers must be: a missing blank line,
//! a boundary that never appears, a missing close delimiter or a truncated part all
//! still give a tree whose offsets lie inside the message. Depth and part count are
//! bounded so that a hostile message cannot exhaust the stack or the metadata size.

use memchr::memmem;

use super::content::content_fields;
use super::header::split_header;
use super::meta::{PartKind, PartMeta, MAX_DEPTH};
use super::render::envelope;

/// Most parts analysed in one message; beyond it, multiparts are kept as leaves.
const MAX_PARTS: usize = 10_000;

/// The type a part has when it has no (usable) Content-Type.
#[derive(Clone, Copy, PartialEq, Eq)]
enum DefaultType {
    TextPlain,
    /// Inside multipart/digest (RFC 2046 §5.1.5).
    MessageRfc822,
}

pub(crate) struct Splitter<'a> {
    raw: &'a [u8],
    parts: usize,
}

impl<'a> Splitter<'a> {
    pub(crate) fn new(raw: &'a [u8]) -> Self {
        Splitter { raw, parts: 0 }
    }

    /// The part tree of the whole message.
    pub(crate) fn root(&mut self) -> PartMeta {
        self.part(0, self.raw.len(), DefaultType::TextPlain, 0)
    }

    fn part(&mut self, start: usize, end: usize, default: DefaultType, depth: usize) -> PartMeta {
        self.parts += 1;
        let raw = self.raw;
        let split = split_header(raw, start, end);
        let header = raw.get(start..split.fields_end).unwrap_or_default();
        let c = content_fields(header);
        let (media_type, subtype, mut params) = match c.content_type {
            Some(ct) => ct,
            None if default == DefaultType::MessageRfc822 => {
                (b"message".to_vec(), b"rfc822".to_vec(), Vec::new())
            }
            None => (
                b"text".to_vec(),
                b"plain".to_vec(),
                vec![(b"charset".to_vec(), b"us-ascii".to_vec())],
            ),
        };
        let body_start = split.body_start;
        let body = raw.get(body_start..end).unwrap_or_default();
        let kind = if media_type.eq_ignore_ascii_case(b"multipart") {
            PartKind::Multipart
        } else if media_type.eq_ignore_ascii_case(b"message")
            && (subtype.eq_ignore_ascii_case(b"rfc822") || subtype.eq_ignore_ascii_case(b"global"))
        {
            PartKind::Message
        } else if media_type.eq_ignore_ascii_case(b"text") {
            PartKind::Text
        } else {
            PartKind::Basic
        };
        if kind == PartKind::Text
            && !params
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case(b"charset"))
        {
            // RFC 2045 §5.2: text without a charset is US-ASCII; say so, as Dovecot does.
            params.push((b"charset".to_vec(), b"us-ascii".to_vec()));
        }
        let deeper_allowed = depth < MAX_DEPTH - 1 && self.parts < MAX_PARTS;
        let mut children = Vec::new();
        let mut envelope_bytes = None;
        match kind {
            PartKind::Multipart => {
                let boundary = params
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(b"boundary"))
                    .map(|(_, v)| v.clone())
                    .filter(|b| !b.is_empty());
                match boundary {
                    Some(b) if deeper_allowed => {
                        let child_default = if subtype.eq_ignore_ascii_case(b"digest") {
                            DefaultType::MessageRfc822
                        } else {
                            DefaultType::TextPlain
                        };
                        for (cs, ce) in split_multipart(raw, body_start, end, &b) {
                            children.push(self.part(cs, ce, child_default, depth + 1));
                            if self.parts >= MAX_PARTS {
                                break;
                            }
                        }
                    }
                    // Without a boundary (or too deep) nothing is split out.
                    _ => {}
                }
                if children.is_empty() {
                    // IMAP needs at least one body part: an empty text/plain one at
                    // the end of the body stands for "nothing here", as in Dovecot.
                    children.push(self.part(end, end, DefaultType::TextPlain, depth + 1));
                }
            }
            PartKind::Message if deeper_allowed => {
                let inner = self.part(body_start, end, DefaultType::TextPlain, depth + 1);
                let inner_header = raw
                    .get(inner.header_start as usize..inner.header_end as usize)
                    .unwrap_or_default();
                envelope_bytes = Some(envelope(inner_header));
                children.push(inner);
            }
            PartKind::Message => {
                envelope_bytes = Some(envelope(b""));
            }
            _ => {}
        }
        PartMeta {
            kind,
            header_start: start as u32,
            header_end: body_start as u32,
            body_start: body_start as u32,
            body_end: end as u32,
            media_type,
            subtype,
            params,
            id: c.id,
            description: c.description,
            encoding: c.encoding,
            size: body.len() as u32,
            lines: memchr::memchr_iter(b'\n', body).count() as u32,
            disposition: c.disposition,
            language: c.language,
            location: c.location,
            md5: c.md5,
            envelope: envelope_bytes,
            children,
        }
    }
}

/// Finds the body parts of a multipart body `raw[start..end]` delimited by
/// `--boundary` lines. Each returned range starts after a delimiter line and ends
/// before the line break that precedes the next delimiter (RFC 2046 §5.1.1: that
/// line break belongs to the delimiter). Text before the first delimiter (the
/// preamble) and after the close delimiter (the epilogue) belongs to no part.
/// Without a close delimiter the last part runs to `end`.
fn split_multipart(raw: &[u8], start: usize, end: usize, boundary: &[u8]) -> Vec<(usize, usize)> {
    let Some(region) = raw.get(start..end) else {
        return Vec::new();
    };
    let mut dash_boundary = Vec::with_capacity(boundary.len() + 2);
    dash_boundary.extend_from_slice(b"--");
    dash_boundary.extend_from_slice(boundary);
    let finder = memmem::Finder::new(&dash_boundary);

    let mut parts = Vec::new();
    let mut open: Option<usize> = None; // start of the part being read
    for hit in finder.find_iter(region) {
        let at_line_start = hit == 0 || region[hit - 1] == b'\n';
        let after = &region[hit + dash_boundary.len()..];
        let is_close = after.starts_with(b"--");
        let rest = if is_close { &after[2..] } else { after };
        // The boundary must be the whole word: only whitespace may follow it.
        let clean_end = rest
            .iter()
            .take_while(|&&b| b != b'\n')
            .all(|b| b.is_ascii_whitespace());
        if !at_line_start || !clean_end {
            continue;
        }
        if let Some(part_start) = open.take() {
            let mut part_end = hit;
            if part_end > 0 && region[part_end - 1] == b'\n' {
                part_end -= 1;
                if part_end > 0 && region[part_end - 1] == b'\r' {
                    part_end -= 1;
                }
            }
            parts.push((start + part_start, start + part_end.max(part_start)));
        }
        if is_close {
            return parts;
        }
        let line_end = memchr::memchr(b'\n', &region[hit..]).map_or(region.len(), |i| hit + i + 1);
        open = Some(line_end);
    }
    if let Some(part_start) = open {
        parts.push((start + part_start, end));
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delimiters_own_their_line_breaks() {
        let body = b"preamble\r\n--b\r\nA\r\n--b \r\n\r\nB\r\n--b--\r\nepilogue";
        let parts = split_multipart(body, 0, body.len(), b"b");
        let got: Vec<&[u8]> = parts.iter().map(|&(s, e)| &body[s..e]).collect();
        assert_eq!(got, vec![&b"A"[..], &b"\r\nB"[..]]);
    }

    #[test]
    fn longer_boundary_is_not_a_delimiter() {
        let body = b"--b\r\nA\r\n--bb\r\nstill A\r\n--b--";
        let parts = split_multipart(body, 0, body.len(), b"b");
        assert_eq!(parts.len(), 1);
        assert_eq!(&body[parts[0].0..parts[0].1], b"A\r\n--bb\r\nstill A");
    }

    #[test]
    fn missing_close_delimiter_runs_to_end() {
        let body = b"--b\r\nA\r\n--b\r\nB";
        let parts = split_multipart(body, 0, body.len(), b"b");
        let got: Vec<&[u8]> = parts.iter().map(|&(s, e)| &body[s..e]).collect();
        assert_eq!(got, vec![&b"A"[..], &b"B"[..]]);
    }
}
