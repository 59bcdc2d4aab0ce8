//! Mailbox names on the wire and in the store.
//!
//! The store keeps names as UTF-8 with `/` as the hierarchy delimiter. IMAP4rev1 clients send
//! and expect modified UTF-7 (RFC 3501 section 5.1.3); after `ENABLE UTF8=ACCEPT` or
//! `ENABLE IMAP4rev2` names are UTF-8 on the wire (RFC 6855, RFC 9051).

use crate::session::Enabled;
use ringmail_proto::parser::mutf7::{decode_mutf7, encode_mutf7};
use ringmail_proto::parser::Mailbox;

/// Longest mailbox name accepted, in bytes of UTF-8.
pub const MAX_NAME: usize = 1024;

/// The store name for what the client sent, or why it is not acceptable.
pub fn decode(mailbox: &Mailbox<'_>, enabled: Enabled) -> Result<String, &'static str> {
    let raw = mailbox.as_bytes();
    let name = if enabled.utf8() {
        match std::str::from_utf8(raw) {
            Ok(s) => s.to_string(),
            Err(_) => return Err("Mailbox name is not valid UTF-8"),
        }
    } else {
        decode_mutf7(raw).map_err(|_| "Mailbox name is not valid modified UTF-7")?
    };
    if name.is_empty() || name.len() > MAX_NAME {
        return Err("Mailbox name is empty or too long");
    }
    if name.chars().any(|c| c.is_control()) {
        return Err("Mailbox name contains control characters");
    }
    Ok(name)
}

/// The wire form of a store name for this session.
pub fn encode(name: &str, enabled: Enabled) -> Vec<u8> {
    if enabled.utf8() {
        name.as_bytes().to_vec()
    } else {
        encode_mutf7(name).into_bytes()
    }
}
