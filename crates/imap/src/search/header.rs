//! Header fields of a raw message, as the header search keys read them: the header block is
//! found in the first bytes of the message and its fields are walked in place.

/// The header block of a raw message: everything up to and including the blank line that
/// ends it. `None` when `raw` holds no blank line (the caller may have read only a prefix).
pub fn header_block(raw: &[u8]) -> Option<&[u8]> {
    if raw.starts_with(b"\r\n") {
        return Some(&raw[..2]);
    }
    if raw.starts_with(b"\n") {
        return Some(&raw[..1]);
    }
    let mut from = 0;
    while let Some(i) = memchr::memchr(b'\n', raw.get(from..)?) {
        let next = from + i + 1;
        match raw.get(next..) {
            Some([b'\r', b'\n', ..]) => return Some(&raw[..next + 2]),
            Some([b'\n', ..]) => return Some(&raw[..next + 1]),
            _ => from = next,
        }
    }
    None
}

/// One header field: its name and raw value (folding kept, line end removed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    /// The field name as written.
    pub name: &'a [u8],
    /// The raw value after the colon, continuation lines included.
    pub value: &'a [u8],
}

/// The fields of a header block, in order. Lines that are not fields (no colon) are skipped.
pub fn fields(header: &[u8]) -> impl Iterator<Item = Field<'_>> {
    let mut rest = header;
    std::iter::from_fn(move || loop {
        if rest.is_empty() || rest.starts_with(b"\r\n") || rest.starts_with(b"\n") {
            return None;
        }
        // The field ends at a line end not followed by whitespace (a continuation).
        let mut end = rest.len();
        let mut scan = 0;
        while let Some(i) = memchr::memchr(b'\n', &rest[scan..]) {
            let nl = scan + i;
            if !matches!(rest.get(nl + 1), Some(b' ' | b'\t')) {
                end = nl + 1;
                break;
            }
            scan = nl + 1;
        }
        let line = &rest[..end];
        rest = &rest[end..];
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        let name = trim_end(&line[..colon]);
        let value = trim_line_end(&line[colon + 1..]);
        return Some(Field { name, value });
    })
}

fn trim_end(b: &[u8]) -> &[u8] {
    let n = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    &b[..n]
}

fn trim_line_end(b: &[u8]) -> &[u8] {
    let b = b.strip_suffix(b"\n").unwrap_or(b);
    b.strip_suffix(b"\r").unwrap_or(b)
}

/// Whether a raw value can be searched as it is: ASCII or UTF-8 without encoded words or
/// folding, so that decoding would not change it.
pub fn is_plain(value: &[u8]) -> bool {
    memchr::memchr2(b'\n', b'\r', value).is_none()
        && memchr::memmem::find(value, b"=?").is_none()
        && (value.is_ascii() || std::str::from_utf8(value).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_folded_fields() {
        let raw = b"Subject: a\r\n b\r\nFrom:x@y\r\nbogus line\r\nTo: t\r\n\r\nbody: no";
        let header = header_block(raw).unwrap();
        assert!(header.ends_with(b"To: t\r\n\r\n"));
        let got: Vec<(&[u8], &[u8])> = fields(header).map(|f| (f.name, f.value)).collect();
        assert_eq!(
            got,
            vec![
                (&b"Subject"[..], &b" a\r\n b"[..]),
                (&b"From"[..], &b"x@y"[..]),
                (&b"To"[..], &b" t"[..]),
            ]
        );
        assert_eq!(header_block(b"no end"), None);
        assert_eq!(header_block(b"\r\nbody"), Some(&b"\r\n"[..]));
    }
}
