//! Header fields of a raw message, as SEARCH reads them: the header block is found in the
//! first bytes of the message and its fields are walked in place. [`search_values`] gives
//! the decoded values of the fields the store keeps in memory for SEARCH (see
//! `ringmail_store::SearchFields`), computed exactly as SEARCH compares them.

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

/// The header values the store keeps per message for SEARCH and SORT. The address forms
/// serve FROM / TO / CC / BCC, the header forms HEADER on the same fields and SUBJECT, and
/// [`SearchField::Sort`] the SORT keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum SearchField {
    /// From, as [`crate::address_search_text`] gives it.
    From,
    /// To, address form.
    To,
    /// Cc, address form.
    Cc,
    /// Bcc, address form.
    Bcc,
    /// From as HEADER compares it.
    HeaderFrom,
    /// To as HEADER compares it.
    HeaderTo,
    /// Cc as HEADER compares it.
    HeaderCc,
    /// Bcc as HEADER compares it.
    HeaderBcc,
    /// Subject as HEADER and SUBJECT compare it.
    HeaderSubject,
    /// The SORT keys ([`crate::SortFields::keys_to_bytes`]), one value per message.
    Sort,
}

/// How many [`SearchField`]s there are.
pub const SEARCH_FIELDS: usize = 10;

const ADDRESS_NAMES: [(&[u8], SearchField, SearchField); 4] = [
    (b"from", SearchField::From, SearchField::HeaderFrom),
    (b"to", SearchField::To, SearchField::HeaderTo),
    (b"cc", SearchField::Cc, SearchField::HeaderCc),
    (b"bcc", SearchField::Bcc, SearchField::HeaderBcc),
];

impl SearchField {
    /// The address form of field `name` (any case), if kept.
    pub fn address(name: &[u8]) -> Option<SearchField> {
        ADDRESS_NAMES
            .iter()
            .find(|(n, _, _)| n.eq_ignore_ascii_case(name))
            .map(|&(_, a, _)| a)
    }

    /// The header form of field `name` (any case), if kept.
    pub fn header(name: &[u8]) -> Option<SearchField> {
        if name.eq_ignore_ascii_case(b"subject") {
            return Some(SearchField::HeaderSubject);
        }
        ADDRESS_NAMES
            .iter()
            .find(|(n, _, _)| n.eq_ignore_ascii_case(name))
            .map(|&(_, _, h)| h)
    }

    /// Its number, `0..SEARCH_FIELDS`.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// One kept value: `plain` when `text` is the raw field value (see [`is_plain`]; HEADER
/// compares a Unicode needle against its decoded form), else `text` is already decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchValue {
    /// Which field.
    pub field: SearchField,
    /// The raw value was searchable as it is.
    pub plain: bool,
    /// What SEARCH compares.
    pub text: Vec<u8>,
}

/// The values of the kept fields of `header` (a header block), in header order, each in
/// the form SEARCH compares: the address form as FROM matches it, and the header form as
/// HEADER matches it (the raw value when plain, else decoded); the SORT keys first.
pub fn search_values(header: &[u8], mut push: impl FnMut(SearchValue)) {
    push(SearchValue {
        field: SearchField::Sort,
        plain: false,
        text: crate::sort_keys_of(header).keys_to_bytes(),
    });
    for f in fields(header) {
        if let Some(field) = SearchField::address(f.name) {
            push(SearchValue {
                field,
                plain: false,
                text: crate::address_search_text(f.value).into_bytes(),
            });
        }
        let Some(field) = SearchField::header(f.name) else {
            continue;
        };
        let plain = is_plain(f.value);
        let text = if plain {
            f.value.to_vec()
        } else {
            crate::decode_header_value(f.value).into_bytes()
        };
        push(SearchValue { field, plain, text });
    }
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

    #[test]
    fn kept_sort_keys_equal_what_analyze_stores() {
        let messages: [&[u8]; 6] = [
            b"Subject: Re: [list] =?utf-8?q?caf=C3=A9?=\r\nFrom: Ann <a@x.test>\r\n\
              To: team: b@x.test;\r\nCc: c@x.test\r\nDate: Fri, 4 Dec 2026 10:00:00 +0100\r\n\
              Message-ID: <m1@x>\r\nReferences: <r1@x> <r2@x>\r\n\r\nbody\r\n",
            b"From: nobody\r\n\r\n",
            b"no header at all",
            b"Subject: no blank line\r\nFrom: x@y",
            b"Subject: binary\r\n\x00\x01garbage: line\r\nFrom: late@x.test\r\n\r\n",
            b"\r\nFrom: in-body@x.test\r\n",
        ];
        for raw in messages {
            let header = header_block(raw).unwrap_or(raw);
            let stored = crate::analyze(raw).sort;
            let sort_only = crate::SortFields {
                message_id: None,
                in_reply_to: None,
                references: Vec::new(),
                ..stored
            };
            assert_eq!(crate::sort_keys_of(header), sort_only);
            let kept = crate::SortFields::keys_from_bytes(&sort_only.keys_to_bytes()).unwrap();
            assert_eq!(kept, sort_only);
        }
    }
}
