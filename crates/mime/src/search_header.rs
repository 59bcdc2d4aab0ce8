//! Header fields of a raw message, as SEARCH reads them: the header block is found in the
//! first bytes of the message and its fields are walked in place. [`SearchValues`] are the decoded values of the fields the store keeps in memory for
//! SEARCH (see `ringmail_store::SearchFields`), computed exactly as SEARCH compares them.

use crate::address;
use crate::parsed::{Name, ParsedHeader};
use crate::SortFields;

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
    /// The SORT keys as SORT compares them ([`crate::sort_key::encode`]), one value per
    /// message.
    Sort,
    /// The day of the Date field as SENTBEFORE / SENTON / SENTSINCE compare it
    /// ([`sent_day`]), days since 1970-01-01 as 8 little-endian bytes; no value when the
    /// field is missing or does not parse.
    SentDay,
}

/// How many [`SearchField`]s there are.
pub const SEARCH_FIELDS: usize = 11;

/// The day of the first Date field in its own time zone (RFC 9051 section 6.4.4: SENT*
/// keys disregard time and time zone), in days since 1970-01-01; `None` when there is no
/// Date field or it does not parse to a valid date.
pub fn sent_day(header: &[u8]) -> Option<i64> {
    let field = fields(header).find(|f| f.name.eq_ignore_ascii_case(b"date"))?;
    let text = String::from_utf8_lossy(field.value);
    let unfolded: String = text.chars().filter(|&c| c != '\r' && c != '\n').collect();
    let date = mail_parser::DateTime::parse_rfc822(unfolded.trim())?;
    if !date.is_valid() {
        return None;
    }
    Some(ringmail_proto::dates::days_from_civil(
        i64::from(date.year),
        u32::from(date.month),
        u32::from(date.day),
    ))
}

/// A [`SearchField::SentDay`] value back as days since 1970-01-01.
pub fn decode_sent_day(text: &[u8]) -> Option<i64> {
    Some(i64::from_le_bytes(text.try_into().ok()?))
}

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

/// The header-search values of one message: for each kept field its values in header
/// order, each in the form SEARCH compares (the address form as FROM matches it; the header
/// form as HEADER matches it, the raw value when [`is_plain`], else decoded; the SORT keys).
/// Built where the message is analysed, then copied into the mailbox's arenas by the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchValues {
    /// The texts, one after the other.
    text: Vec<u8>,
    /// Per value: its field, whether it is the raw value, and where its text ends.
    values: Vec<(SearchField, bool, u32)>,
}

impl SearchValues {
    /// The values of a raw message (its header block is all that is read; a prefix holding
    /// it will do). The same as [`crate::analyze_with_search_values`] gives.
    pub fn of_message(raw: &[u8]) -> SearchValues {
        let header = header_block(raw).unwrap_or(raw);
        let split = crate::header::split_header(header, 0, header.len());
        let parsed = ParsedHeader::of(header.get(..split.fields_end).unwrap_or_default());
        collect(raw, &crate::sort_keys(&parsed), &parsed)
    }

    /// Each value: its field, whether `text` is the raw field value, and the text.
    pub fn iter(&self) -> impl Iterator<Item = (SearchField, bool, &[u8])> {
        let mut start = 0;
        self.values.iter().map(move |&(field, plain, end)| {
            let text = self.text.get(start..end as usize).unwrap_or_default();
            start = end as usize;
            (field, plain, text)
        })
    }

    fn push(&mut self, field: SearchField, plain: bool, text: &[u8]) {
        self.text.extend_from_slice(text);
        // A header block is far below 4 GiB (the store limits messages), and so are its
        // values.
        let end = u32::try_from(self.text.len()).unwrap_or(u32::MAX);
        self.values.push((field, plain, end));
    }
}

/// The search values of `raw`, given its SORT keys and its parsed header (both from the
/// same message): address lists and the subject already decoded there are reused when a
/// field's value is the very same bytes, which gives what decoding them again would.
pub(crate) fn collect(raw: &[u8], sort: &SortFields, parsed: &ParsedHeader<'_>) -> SearchValues {
    let header = header_block(raw).unwrap_or(raw);
    let mut out = SearchValues {
        text: Vec::with_capacity(header.len() / 4),
        values: Vec::with_capacity(12),
    };
    out.push(SearchField::Sort, false, &crate::sort_key::encode(sort));
    if let Some(day) = sent_day(header) {
        out.push(SearchField::SentDay, false, &day.to_le_bytes());
    }
    for f in fields(header) {
        if let Some(field) = SearchField::address(f.name) {
            let text = match parsed.list_of(f.value) {
                Some(list) => crate::decode_header_value(&address::search_form(list)),
                None => crate::address_search_text(f.value),
            };
            out.push(field, false, text.as_bytes());
        }
        let Some(field) = SearchField::header(f.name) else {
            continue;
        };
        if is_plain(f.value) {
            out.push(field, true, f.value);
        } else if field == SearchField::HeaderSubject && parsed.is_value_of(Name::Subject, f.value)
        {
            // The SORT subject is this very value, decoded the same way.
            out.push(field, false, sort.subject.as_bytes());
        } else {
            out.push(field, false, crate::decode_header_value(f.value).as_bytes());
        }
    }
    out
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
        }
    }

    /// The values as the header path of SEARCH computes them, field by field, nothing
    /// reused: what both ways of building them must give.
    fn reference(raw: &[u8]) -> Vec<(SearchField, bool, Vec<u8>)> {
        let header = header_block(raw).unwrap_or(raw);
        let mut out = vec![(
            SearchField::Sort,
            false,
            crate::sort_key::encode(&crate::sort_keys_of(header)),
        )];
        if let Some(day) = sent_day(header) {
            out.push((SearchField::SentDay, false, day.to_le_bytes().to_vec()));
        }
        for f in fields(header) {
            if let Some(field) = SearchField::address(f.name) {
                out.push((
                    field,
                    false,
                    crate::address_search_text(f.value).into_bytes(),
                ));
            }
            if let Some(field) = SearchField::header(f.name) {
                let plain = is_plain(f.value);
                let text = if plain {
                    f.value.to_vec()
                } else {
                    crate::decode_header_value(f.value).into_bytes()
                };
                out.push((field, plain, text));
            }
        }
        out
    }

    #[test]
    fn values_from_analysis_equal_values_from_the_header_alone() {
        let messages: [&[u8]; 11] = [
            b"Date: Tue, 1 Dec 2026 23:30:00 -0800\r\nSubject: late\r\n\r\n",
            b"Date: not a date\r\nDate: Tue, 1 Dec 2026 01:00:00 +0000\r\n\r\n",
            b"From: =?utf-8?q?J=C3=B6rg?= <j@x.test>\r\nTo: Ann <a@x.test>, b@x.test,\r\n\
              \tc@x.test\r\nCc: team: d@x.test;\r\nSubject: =?iso-8859-1?q?R=E9union?= x\r\n\
              Bcc: (hidden) e@x.test\r\n\r\nbody\r\n",
            // Every field twice: only the first is parsed by the analysis.
            b"From: a@x.test\r\nFrom: =?utf-8?b?w6k=?= <b@x.test>\r\nSubject: one\r\n\
              Subject: =?utf-8?q?two?=\r\nTo: t@x.test\r\nTO: u@x.test\r\n\r\n",
            b"Subject: folded\r\n line\r\nFrom: \"Q, R\" <q@x.test>\r\n\r\n",
            b"From: nobody\r\n\r\n",
            b"no header at all",
            b"Subject: no blank line\r\nFrom: x@y",
            b"Subject: binary\r\n\x00\x01garbage: line\r\nFrom: late@x.test\r\n\r\n",
            b"\r\nFrom: in-body@x.test\r\n",
            b" From: leading@x.test\r\nFrom : spaced@x.test\r\nSubject: caf\xe9\r\n\n",
        ];
        for raw in messages {
            let own = |v: &SearchValues| {
                v.iter()
                    .map(|(f, plain, text)| (f, plain, text.to_vec()))
                    .collect::<Vec<_>>()
            };
            let expected = reference(raw);
            let name = String::from_utf8_lossy(raw);
            assert_eq!(own(&SearchValues::of_message(raw)), expected, "{name}");
            let (meta, values) = crate::analyze_with_search_values(raw);
            assert_eq!(own(&values), expected, "{name}");
            assert_eq!(meta, crate::analyze(raw), "{name}");
        }
    }
}
