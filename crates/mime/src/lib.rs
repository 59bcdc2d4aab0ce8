//! MIME structure, computed once when a message is appended and kept in the
//! store's metadata blob, so that FETCH never reparses a message.
//!
//! - [`analyze`] turns raw message bytes into a [`MessageMeta`]: the part tree with
//!   byte offsets, pre-rendered ENVELOPE / BODYSTRUCTURE / BODY, the SORT and THREAD
//!   fields and the PREVIEW text. It never fails: a malformed message still gets a
//!   sensible structure.
//! - [`MessageMeta::to_bytes`] / [`MessageMeta::from_bytes`] store and load it.
//! - [`section_range`] and [`filter_header_fields`] serve `BODY[section]`,
//!   [`decode_part`] serves `BINARY[section]`, [`decoded_text_for_search`],
//!   [`decode_header_value`] and [`address_search_text`] serve SEARCH;
//!   [`search_header::search_values`] gives what the store keeps in memory for header
//!   searches.
//! - [`binary_parts_as_base64`] re-encodes what APPEND received as a binary literal8.
//!
//! Header parsing here is our own (small, raw-byte, IMAP-shaped: ENVELOPE wants
//! display names and subjects undecoded); mail-parser provides HTML-to-text and
//! date parsing, encoding_rs the charsets.

mod address;
mod content;
mod decode;
mod header;
mod lexer;
mod meta;
mod reencode;
mod render;
pub mod search_header;
mod section;
mod structure;

pub use decode::{decode_header_value, decode_part, decoded_text_for_search, DecodeError};
pub use header::filter_header_fields;
pub use meta::{MessageMeta, MetaError, Params, PartKind, PartMeta, SortAddress, SortFields};
pub use reencode::binary_parts_as_base64;
pub use section::{section_bytes, section_range, SectionSpec, SectionText};

use address::{parse_address_list, AddressItem};
use header::{first_value, unfold};

/// Analyses a raw message (as stored, normally with CRLF line ends). Infallible:
/// anything that is not valid MIME degrades to a single text/plain part.
pub fn analyze(raw: &[u8]) -> MessageMeta {
    let root = structure::Splitter::new(raw).root();
    let header = raw
        .get(root.header_start as usize..root.header_end as usize)
        .unwrap_or_default();
    MessageMeta {
        envelope: render::envelope(header),
        bodystructure: render::body_structure(&root, true),
        body: render::body_structure(&root, false),
        sort: sort_fields(header),
        preview: decode::preview(&root, raw),
        root,
    }
}

/// The text SEARCH FROM / TO / CC / BCC look in: the field's address list with comments
/// and folding removed, in one normalised form (see `address::search_form`), encoded
/// words decoded.
pub fn address_search_text(value: &[u8]) -> String {
    decode_header_value(&address::search_form(&parse_address_list(&unfold(value))))
}

/// The SORT keys of a message, from its header block (or the whole message): what
/// [`analyze`] puts in [`MessageMeta::sort`], without the message ids (THREAD's).
pub fn sort_keys_of(raw: &[u8]) -> SortFields {
    let split = header::split_header(raw, 0, raw.len());
    sort_keys(raw.get(..split.fields_end).unwrap_or_default())
}

fn sort_fields(header: &[u8]) -> SortFields {
    let msg_ids = |name: &[u8]| first_value(header, name).map(msg_ids).unwrap_or_default();
    SortFields {
        message_id: msg_ids(b"message-id").into_iter().next(),
        in_reply_to: msg_ids(b"in-reply-to").into_iter().next(),
        references: msg_ids(b"references"),
        ..sort_keys(header)
    }
}

fn sort_keys(header: &[u8]) -> SortFields {
    // The first address structure of the field as ENVELOPE lists it (RFC 5256 "the first
    // address", RFC 5957 section 3): a group's start counts, with the group name as its
    // addr-mailbox, so `Cc: team: a@b;` sorts as "team", not as "a".
    let first_address = |name: &[u8]| {
        let value = first_value(header, name)?;
        parse_address_list(&unfold(value))
            .into_iter()
            .find_map(|item| match item {
                AddressItem::Mailbox {
                    name,
                    mailbox,
                    host,
                    ..
                } => Some(SortAddress {
                    name: name.map(|n| decode_header_value(&n)).unwrap_or_default(),
                    mailbox: decode_header_value(&mailbox),
                    host: host.map(|h| decode_header_value(&h)).unwrap_or_default(),
                }),
                AddressItem::GroupStart(group) => Some(SortAddress {
                    name: String::new(),
                    mailbox: decode_header_value(&group),
                    host: String::new(),
                }),
                AddressItem::GroupEnd => None,
            })
    };
    SortFields {
        subject: first_value(header, b"subject")
            .map(decode_header_value)
            .unwrap_or_default(),
        from: first_address(b"from"),
        to: first_address(b"to"),
        cc: first_address(b"cc"),
        date: first_value(header, b"date").and_then(parse_date),
        ..SortFields::default()
    }
}

/// The `<...>` message ids in a field value, brackets removed, whitespace dropped.
fn msg_ids(value: &[u8]) -> Vec<String> {
    let mut ids = Vec::new();
    let mut rest = value;
    while let Some(open) = memchr::memchr(b'<', rest) {
        let after = &rest[open + 1..];
        let Some(close) = memchr::memchr(b'>', after) else {
            break;
        };
        let id: Vec<u8> = after[..close]
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        if !id.is_empty() {
            ids.push(String::from_utf8_lossy(&id).into_owned());
        }
        rest = &after[close + 1..];
    }
    ids
}

/// An RFC 5322 date as a UTC timestamp, via mail-parser's tolerant date parser.
fn parse_date(value: &[u8]) -> Option<i64> {
    let text = String::from_utf8_lossy(&unfold(value)).into_owned();
    let date = mail_parser::DateTime::parse_rfc822(&text)?;
    date.is_valid().then(|| date.to_timestamp())
}
