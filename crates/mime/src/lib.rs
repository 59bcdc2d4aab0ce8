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
//!   [`analyze_with_search_values`] and [`SearchValues::of_message`] give what the store
//!   keeps in memory for header searches.
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
mod parsed;
mod reencode;
mod render;
pub mod search_header;
pub mod search_text;
mod section;
pub mod sort_key;
mod structure;
pub mod subject;

pub use decode::{decode_header_value, decode_part, decoded_text_for_search, DecodeError};
pub use header::filter_header_fields;
pub use meta::{MessageMeta, MetaError, Params, PartKind, PartMeta, SortAddress, SortFields};
pub use reencode::binary_parts_as_base64;
pub use section::{section_bytes, section_range, SectionSpec, SectionText};

use address::{parse_address_list, AddressItem};
use header::unfold;
use parsed::{Name, ParsedHeader};
pub use search_header::SearchValues;

/// Analyses a raw message (as stored, normally with CRLF line ends). Infallible:
/// anything that is not valid MIME degrades to a single text/plain part.
pub fn analyze(raw: &[u8]) -> MessageMeta {
    let root = structure::Splitter::new(raw).root();
    let header = raw
        .get(root.header_start as usize..root.header_end as usize)
        .unwrap_or_default();
    analyze_with(raw, root, &ParsedHeader::of(header))
}

/// [`analyze`] and the message's header-search values ([`SearchValues::of_message`]) from
/// one walk of its header: the address lists and the decoded subject that ENVELOPE and the
/// SORT keys need are parsed once and reused where the search values read the same bytes.
/// What APPEND and delivery hand to the store.
pub fn analyze_with_search_values(raw: &[u8]) -> (MessageMeta, SearchValues) {
    let root = structure::Splitter::new(raw).root();
    let header = raw
        .get(root.header_start as usize..root.header_end as usize)
        .unwrap_or_default();
    let parsed = ParsedHeader::of(header);
    let meta = analyze_with(raw, root, &parsed);
    let values = search_header::collect(raw, &meta.sort, &parsed);
    (meta, values)
}

/// What the store keeps of a message's analysis: the metadata blob and the header-search
/// values (see [`analyze_with_search_values`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAnalysis {
    /// [`MessageMeta::to_bytes`].
    pub meta: Vec<u8>,
    /// The header-search values.
    pub search: SearchValues,
    /// The searchable text ([`search_text::search_text`]): what BODY and TEXT scan.
    pub text: Vec<u8>,
}

/// Analyses a message about to be stored (APPEND, delivery, import).
pub fn analyze_for_store(raw: &[u8]) -> StoredAnalysis {
    let (meta, search) = analyze_with_search_values(raw);
    StoredAnalysis {
        text: search_text::search_text(&meta, raw),
        meta: meta.to_bytes(),
        search,
    }
}

fn analyze_with(raw: &[u8], root: PartMeta, header: &ParsedHeader<'_>) -> MessageMeta {
    MessageMeta {
        envelope: render::envelope_of(header),
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
    sort_keys(&ParsedHeader::of(
        raw.get(..split.fields_end).unwrap_or_default(),
    ))
}

fn sort_fields(header: &ParsedHeader<'_>) -> SortFields {
    let msg_ids = |name| header.value(name).map(msg_ids).unwrap_or_default();
    SortFields {
        message_id: msg_ids(Name::MessageId).into_iter().next(),
        in_reply_to: msg_ids(Name::InReplyTo).into_iter().next(),
        references: msg_ids(Name::References),
        ..sort_keys(header)
    }
}

fn sort_keys(header: &ParsedHeader<'_>) -> SortFields {
    // The first address structure of the field as ENVELOPE lists it (RFC 5256 "the first
    // address", RFC 5957 section 3): a group's start counts, with the group name as its
    // addr-mailbox, so `Cc: team: a@b;` sorts as "team", not as "a".
    let first_address = |name| {
        header.list(name)?.iter().find_map(|item| match item {
            AddressItem::Mailbox {
                name,
                mailbox,
                host,
                ..
            } => Some(SortAddress {
                name: name.as_deref().map(decode_header_value).unwrap_or_default(),
                mailbox: decode_header_value(mailbox),
                host: host.as_deref().map(decode_header_value).unwrap_or_default(),
            }),
            AddressItem::GroupStart(group) => Some(SortAddress {
                name: String::new(),
                mailbox: decode_header_value(group),
                host: String::new(),
            }),
            AddressItem::GroupEnd => None,
        })
    };
    SortFields {
        subject: header
            .value(Name::Subject)
            .map(decode_header_value)
            .unwrap_or_default(),
        from: first_address(Name::From),
        to: first_address(Name::To),
        cc: first_address(Name::Cc),
        date: header.value(Name::Date).and_then(parse_date),
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
