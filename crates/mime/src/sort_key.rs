//! The SORT keys of a message in the form SORT compares them (RFC 5256 section 3, RFC 5957
//! DISPLAYFROM / DISPLAYTO): the base subject and the addresses already case-mapped. They
//! are computed once when a message is stored and kept per message by the store, so SORT
//! compares byte strings in place instead of decoding and case-mapping every message's
//! fields at each SORT.
//!
//! Encoded as `u8 has_date | i64 date (little-endian) | for each text key in [`SortText`]
//! order: u32 length (little-endian) and the bytes`.

use crate::subject::base_subject;
use crate::{SortAddress, SortFields};

/// A text key of SORT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortText {
    /// The base subject, i;ascii-casemap.
    Subject,
    /// The first From's mailbox, i;ascii-casemap.
    From,
    /// The first To's mailbox.
    To,
    /// The first Cc's mailbox.
    Cc,
    /// RFC 5957: the first From's display name, or its address, lowercased.
    DisplayFrom,
    /// The same of the first To.
    DisplayTo,
}

const TEXTS: usize = 6;
const DATE: usize = 9;

/// The encoded keys of a message with these SORT fields.
pub fn encode(fields: &SortFields) -> Vec<u8> {
    let texts: [String; TEXTS] = [
        base_subject(&fields.subject).key(),
        mailbox_key(fields.from.as_ref()),
        mailbox_key(fields.to.as_ref()),
        mailbox_key(fields.cc.as_ref()),
        display_key(fields.from.as_ref()),
        display_key(fields.to.as_ref()),
    ];
    let mut out = Vec::with_capacity(DATE + texts.iter().map(|t| 4 + t.len()).sum::<usize>());
    out.push(u8::from(fields.date.is_some()));
    out.extend_from_slice(&fields.date.unwrap_or(0).to_le_bytes());
    for t in &texts {
        // A subject or address is far below 4 GiB (the store limits messages).
        out.extend_from_slice(&(t.len() as u32).to_le_bytes());
        out.extend_from_slice(t.as_bytes());
    }
    out
}

fn mailbox_key(address: Option<&SortAddress>) -> String {
    address.map_or(String::new(), |a| a.mailbox.to_ascii_uppercase())
}

fn display_key(address: Option<&SortAddress>) -> String {
    let Some(a) = address else {
        return String::new();
    };
    let shown = if !a.name.trim().is_empty() {
        a.name.trim().to_string()
    } else if a.host.is_empty() {
        a.mailbox.clone()
    } else {
        format!("{}@{}", a.mailbox, a.host)
    };
    shown.to_lowercase()
}

/// The keys of one message, borrowed from their encoded form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortKeys<'a> {
    date: Option<i64>,
    texts: [&'a [u8]; TEXTS],
}

impl<'a> SortKeys<'a> {
    /// Reads [`encode`]'s bytes; `None` when they are not exactly that.
    pub fn parse(mut bytes: &'a [u8]) -> Option<SortKeys<'a>> {
        let (head, rest) = bytes.split_at_checked(DATE)?;
        let date = match head[0] {
            0 => None,
            1 => Some(i64::from_le_bytes(head[1..].try_into().ok()?)),
            _ => return None,
        };
        bytes = rest;
        let mut texts = [&b""[..]; TEXTS];
        for t in &mut texts {
            let (len, rest) = bytes.split_at_checked(4)?;
            let len = u32::from_le_bytes(len.try_into().ok()?) as usize;
            (*t, bytes) = rest.split_at_checked(len)?;
        }
        bytes.is_empty().then_some(SortKeys { date, texts })
    }

    /// The Date field in UTC, if it parsed.
    pub fn date(&self) -> Option<i64> {
        self.date
    }

    /// A text key.
    pub fn text(&self, which: SortText) -> &'a [u8] {
        self.texts[which as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_read_back_and_damage_is_refused() {
        let raw = b"Subject: Re: [list] =?utf-8?q?caf=C3=A9?= (fwd)\r\n\
            From: =?iso-8859-1?q?Zo=EB?= <zoe@x.test>\r\nTo: team: b@x.test;\r\n\
            Date: Fri, 4 Dec 2026 10:00:00 +0100\r\n\r\nbody\r\n";
        let bytes = encode(&crate::analyze(raw).sort);
        let keys = SortKeys::parse(&bytes).unwrap();
        assert_eq!(keys.date(), Some(1_796_374_800));
        assert_eq!(keys.text(SortText::Subject), "CAFé".as_bytes());
        assert_eq!(keys.text(SortText::From), b"ZOE");
        assert_eq!(keys.text(SortText::To), b"TEAM");
        assert_eq!(keys.text(SortText::Cc), b"");
        assert_eq!(keys.text(SortText::DisplayFrom), "zoë".as_bytes());
        assert_eq!(keys.text(SortText::DisplayTo), b"team");
        for cut in 0..bytes.len() {
            assert_eq!(SortKeys::parse(&bytes[..cut]), None, "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(SortKeys::parse(&longer), None);
    }
}
