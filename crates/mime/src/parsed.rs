//! The header fields that ENVELOPE, the SORT keys and the header-search values all read,
//! found once per message and each address list parsed at most once (on first use).

use std::cell::OnceCell;

use super::address::{parse_address_list, AddressItem};
use super::header::{fields, unfold};

/// The fields ENVELOPE lists, in its order (RFC 9051 section 7.5.2), then References
/// (THREAD's).
const NAMES: [&[u8]; 11] = [
    b"date",
    b"subject",
    b"from",
    b"sender",
    b"reply-to",
    b"to",
    b"cc",
    b"bcc",
    b"in-reply-to",
    b"message-id",
    b"references",
];

/// A field of [`NAMES`], by position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Name {
    Date,
    Subject,
    From,
    Sender,
    ReplyTo,
    To,
    Cc,
    Bcc,
    InReplyTo,
    MessageId,
    References,
}

/// The address fields, in [`NAMES`] order (the first at `Name::From`).
const FIRST_ADDRESS: usize = Name::From as usize;
const ADDRESS_FIELDS: usize = 6;

/// The first value of each field of [`NAMES`] in a header block, with the parsed address
/// lists.
pub(crate) struct ParsedHeader<'a> {
    values: [Option<&'a [u8]>; 11],
    lists: [OnceCell<Vec<AddressItem>>; ADDRESS_FIELDS],
}

impl<'a> ParsedHeader<'a> {
    /// Finds the fields of `header` (one walk; nothing is parsed yet).
    pub fn of(header: &'a [u8]) -> ParsedHeader<'a> {
        let mut values = [None; 11];
        for f in fields(header) {
            if let Some(i) = NAMES.iter().position(|n| n.eq_ignore_ascii_case(f.name)) {
                values[i] = values[i].or(Some(f.value));
            }
        }
        ParsedHeader {
            values,
            lists: Default::default(),
        }
    }

    /// The raw value of the first field `name`.
    pub fn value(&self, name: Name) -> Option<&'a [u8]> {
        self.values[name as usize]
    }

    /// The address list of the first field `name` (an address field), parsed once.
    pub fn list(&self, name: Name) -> Option<&[AddressItem]> {
        let at = (name as usize).checked_sub(FIRST_ADDRESS)?;
        let value = self.value(name)?;
        let list = self.lists.get(at)?;
        Some(list.get_or_init(|| parse_address_list(&unfold(value))))
    }

    /// The parsed address list of `value` when it is the very value (the same bytes of the
    /// same message) of one of the address fields here, so parsing it again would give the
    /// same list.
    pub fn list_of(&self, value: &[u8]) -> Option<&[AddressItem]> {
        let same = |v: &&[u8]| std::ptr::eq(*v, value);
        let at = self.values[FIRST_ADDRESS..FIRST_ADDRESS + ADDRESS_FIELDS]
            .iter()
            .position(|v| v.as_ref().is_some_and(same))?;
        self.list(ADDRESS_NAMES[at])
    }

    /// Whether `value` is the value of the first field `name` (the same bytes).
    pub fn is_value_of(&self, name: Name, value: &[u8]) -> bool {
        self.value(name).is_some_and(|v| std::ptr::eq(v, value))
    }
}

const ADDRESS_NAMES: [Name; ADDRESS_FIELDS] = [
    Name::From,
    Name::Sender,
    Name::ReplyTo,
    Name::To,
    Name::Cc,
    Name::Bcc,
];
