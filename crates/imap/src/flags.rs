//! Message flags between the parser's form, the store's bits and the wire.

use ringmail_proto::parser::Flag;
use ringmail_proto::response::data::MessageFlags;
use ringmail_proto::response::ResponseWriter;
use ringmail_store::flag;

/// System flags a client may set, as `FLAGS` and `PERMANENTFLAGS` list them.
pub const SYSTEM_FLAGS: &str = "\\Answered \\Flagged \\Deleted \\Seen \\Draft";

/// Splits client flags into store bits and keywords. `\Recent` and unknown system flags are
/// dropped: `\Recent` is the server's alone (RFC 3501), and IMAP4rev2 removed it.
pub fn from_client<'a>(flags: &[Flag<'a>]) -> (u8, Vec<&'a str>) {
    let mut bits = 0;
    let mut keywords = Vec::new();
    for f in flags {
        match f {
            Flag::Seen => bits |= flag::SEEN,
            Flag::Answered => bits |= flag::ANSWERED,
            Flag::Flagged => bits |= flag::FLAGGED,
            Flag::Deleted => bits |= flag::DELETED,
            Flag::Draft => bits |= flag::DRAFT,
            Flag::Extension(_) => {}
            Flag::Keyword(k) => {
                if !keywords.iter().any(|x: &&str| x.eq_ignore_ascii_case(k)) {
                    keywords.push(*k)
                }
            }
        }
    }
    (bits, keywords)
}

/// A message's store bits and keywords as a response shows them, with `\Recent` when
/// `recent` (it is the session's, not the store's: see `imap::recent`).
pub fn shown<'a>(bits: u8, keywords: &'a [&'a str], recent: bool) -> MessageFlags<'a> {
    MessageFlags {
        answered: bits & flag::ANSWERED != 0,
        flagged: bits & flag::FLAGGED != 0,
        deleted: bits & flag::DELETED != 0,
        seen: bits & flag::SEEN != 0,
        draft: bits & flag::DRAFT != 0,
        recent,
        keywords,
    }
}

/// Writes `(\Seen \Flagged kw ...)`.
pub fn write(out: &mut Vec<u8>, bits: u8, keywords: &[&str]) {
    write_with_recent(out, bits, keywords, false)
}

/// Writes `(\Seen \Flagged kw ...)`, with `\Recent` when `recent` (it is the session's, not
/// the store's: see `imap::recent`).
pub fn write_with_recent(out: &mut Vec<u8>, bits: u8, keywords: &[&str], recent: bool) {
    // Flags are atoms: the writer's UTF-8 mode plays no part.
    shown(bits, keywords, recent).serialize(&mut ResponseWriter::new(out, false));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let (bits, kws) = from_client(&[Flag::Seen, Flag::Keyword("$Forwarded"), Flag::Deleted]);
        assert_eq!(bits, flag::SEEN | flag::DELETED);
        let mut out = Vec::new();
        write(&mut out, bits, &kws);
        assert_eq!(out, b"(\\Deleted \\Seen $Forwarded)");
        let mut out = Vec::new();
        write(&mut out, 0, &[]);
        assert_eq!(out, b"()");
        let mut out = Vec::new();
        write_with_recent(&mut out, flag::SEEN, &["Work"], true);
        assert_eq!(out, b"(\\Seen \\Recent Work)");
        let mut out = Vec::new();
        write_with_recent(&mut out, 0, &[], true);
        assert_eq!(out, b"(\\Recent)");
    }
}
