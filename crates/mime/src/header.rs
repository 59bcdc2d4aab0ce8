//! Header blocks: where they end, their fields, unfolding, and the field filter
//! behind `BODY[HEADER.FIELDS (...)]`.
//!
//! Everything here works on raw bytes and never fails: a line that is neither a
//! field nor a continuation ends the header block, so binary garbage becomes body.

use memchr::memchr;

/// Where a header block ends inside `raw[start..end]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeaderSplit {
    /// End of the header fields, before the blank separator line.
    pub fields_end: usize,
    /// Start of the body: after the blank line, or `fields_end` when there is none.
    pub body_start: usize,
}

/// Finds the end of the header block that starts at `start`.
///
/// A line is part of the header when it is a continuation (starts with SP or TAB)
/// or contains a `:` after a non-empty run of printable ASCII name characters. An
/// empty line (LF or CRLF) is the separator and belongs to the header (RFC 9051
/// includes it in `BODY[HEADER]`); any other line starts the body.
pub(crate) fn split_header(raw: &[u8], start: usize, end: usize) -> HeaderSplit {
    let end = end.min(raw.len());
    let mut pos = start.min(end);
    while pos < end {
        let line_end = memchr(b'\n', &raw[pos..end]).map_or(end, |i| pos + i + 1);
        let line = &raw[pos..line_end];
        match line {
            b"\n" | b"\r\n" => {
                return HeaderSplit {
                    fields_end: pos,
                    body_start: line_end,
                }
            }
            [b' ' | b'\t', ..] if pos > start => {}
            _ if is_field_line(line) => {}
            _ => {
                return HeaderSplit {
                    fields_end: pos,
                    body_start: pos,
                }
            }
        }
        pos = line_end;
    }
    HeaderSplit {
        fields_end: end,
        body_start: end,
    }
}

fn is_field_line(line: &[u8]) -> bool {
    match memchr(b':', line) {
        Some(0) | None => false,
        Some(colon) => line[..colon]
            .iter()
            .all(|&b| (33..=126).contains(&b) || b == b' ' || b == b'\t'),
    }
}

/// One header field: its name and where its raw bytes are.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field<'a> {
    /// The field name, without trailing whitespace.
    pub name: &'a [u8],
    /// The value after the colon, continuation lines included, final line break excluded.
    pub value: &'a [u8],
    /// The whole field, name through the line break after its last continuation line.
    pub raw: &'a [u8],
}

/// Iterates over the fields of a header block (as found by [`split_header`]).
/// Lines that are not fields (and stray leading continuations) are skipped.
pub(crate) fn fields(block: &[u8]) -> impl Iterator<Item = Field<'_>> {
    let mut pos = 0;
    std::iter::from_fn(move || loop {
        if pos >= block.len() {
            return None;
        }
        let start = pos;
        let mut end = next_line(block, pos);
        while end < block.len() && matches!(block[end], b' ' | b'\t') {
            end = next_line(block, end);
        }
        pos = end;
        let raw = &block[start..end];
        let Some(colon) = memchr(b':', raw) else {
            continue;
        };
        let name = trim_end(&raw[..colon]);
        if name.is_empty() || matches!(raw[0], b' ' | b'\t') {
            continue;
        }
        let value = strip_line_break(&raw[colon + 1..]);
        return Some(Field { name, value, raw });
    })
}

fn next_line(block: &[u8], pos: usize) -> usize {
    memchr(b'\n', &block[pos..]).map_or(block.len(), |i| pos + i + 1)
}

fn strip_line_break(v: &[u8]) -> &[u8] {
    let v = v.strip_suffix(b"\n").unwrap_or(v);
    v.strip_suffix(b"\r").unwrap_or(v)
}

fn trim_end(v: &[u8]) -> &[u8] {
    let n = v
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    &v[..n]
}

/// Unfolds a raw field value: line breaks removed (the whitespace after them kept)
/// and leading whitespace trimmed. Trailing whitespace stays, as in Dovecot's
/// ENVELOPE. This is the form ENVELOPE carries.
pub(crate) fn unfold(value: &[u8]) -> Vec<u8> {
    let lead = value
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(value.len());
    value[lead..]
        .iter()
        .copied()
        .filter(|&b| b != b'\r' && b != b'\n')
        .collect()
}

/// Filters a header block for `BODY[HEADER.FIELDS (...)]` (`not == false`) or
/// `BODY[HEADER.FIELDS.NOT (...)]` (`not == true`).
///
/// Field names compare case-insensitively; each kept field is copied byte for byte,
/// folded continuation lines included, and the result always ends with the empty
/// line that terminates a header, as RFC 9051 §6.4.5 requires, even if no field
/// matched. A last field without a line break gets one, so the block stays well formed.
pub fn filter_header_fields(header_bytes: &[u8], fields_wanted: &[&[u8]], not: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(header_bytes.len().min(4096));
    for field in fields(header_bytes) {
        let listed = fields_wanted
            .iter()
            .any(|w| w.eq_ignore_ascii_case(field.name));
        if listed != not {
            out.extend_from_slice(field.raw);
            if !field.raw.ends_with(b"\n") {
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_blank_line() {
        let m = b"A: 1\r\nB: 2\r\n\r\nbody";
        let s = split_header(m, 0, m.len());
        assert_eq!(s.fields_end, 12);
        assert_eq!(s.body_start, 14);
    }

    #[test]
    fn no_blank_line_means_no_body() {
        let m = b"A: 1\r\nB: 2";
        let s = split_header(m, 0, m.len());
        assert_eq!((s.fields_end, s.body_start), (m.len(), m.len()));
    }

    #[test]
    fn garbage_line_starts_the_body() {
        let m = b"A: 1\r\n\x00\x01garbage\r\nmore";
        let s = split_header(m, 0, m.len());
        assert_eq!((s.fields_end, s.body_start), (6, 6));
    }

    #[test]
    fn filter_keeps_continuations_and_blank_line() {
        let h = b"Subject: hello\r\n  world\r\nFrom: a@b\r\nTo: c@d\r\n\r\n";
        let got = filter_header_fields(h, &[b"SUBJECT", b"to"], false);
        assert_eq!(got, b"Subject: hello\r\n  world\r\nTo: c@d\r\n\r\n");
        let got = filter_header_fields(h, &[b"subject"], true);
        assert_eq!(got, b"From: a@b\r\nTo: c@d\r\n\r\n");
        let got = filter_header_fields(h, &[b"x-none"], false);
        assert_eq!(got, b"\r\n");
    }

    #[test]
    fn unfolds_values() {
        assert_eq!(unfold(b" \r\n hello\r\n\tworld  "), b"hello\tworld  ");
    }
}
