//! Modified UTF-7 mailbox names (RFC 3501 §5.1.3).
//!
//! Printable ASCII stands for itself except `&`, which is written `&-`; everything else is
//! UTF-16BE in base64 (with `,` for `/`, no padding) between `&` and `-`. Decoding is strict
//! so that one mailbox has exactly one spelling: printable ASCII inside a shift, trailing
//! non-zero bits and unpaired surrogates are refused.

use base64::alphabet::IMAP_MUTF7;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;

/// The base64 flavour of modified UTF-7.
const ENGINE: GeneralPurpose = GeneralPurpose::new(
    &IMAP_MUTF7,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(false),
);

/// Why a name is not valid modified UTF-7.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Mutf7Error {
    /// A byte outside printable ASCII appeared outside a shift sequence.
    #[error("non-ASCII byte in modified UTF-7 name")]
    NotAscii,
    /// `&` without its closing `-`.
    #[error("unterminated base64 section in mailbox name")]
    Unterminated,
    /// The base64 section is malformed or does not hold whole UTF-16 units.
    #[error("invalid base64 in mailbox name")]
    BadBase64,
    /// The UTF-16 inside is invalid (unpaired surrogate).
    #[error("invalid UTF-16 in mailbox name")]
    BadUtf16,
    /// Printable ASCII was base64-encoded (not the canonical spelling).
    #[error("printable ASCII must not be base64-encoded in a mailbox name")]
    NotCanonical,
}

/// Decodes a modified UTF-7 mailbox name to UTF-8.
pub fn decode_mutf7(name: &[u8]) -> Result<String, Mutf7Error> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some((&b, tail)) = rest.split_first() {
        rest = tail;
        match b {
            b'&' => {
                let end = rest
                    .iter()
                    .position(|&c| c == b'-')
                    .ok_or(Mutf7Error::Unterminated)?;
                let (b64, after) = rest.split_at(end);
                rest = after.get(1..).unwrap_or(b"");
                if b64.is_empty() {
                    out.push('&');
                    continue;
                }
                let bytes = ENGINE.decode(b64).map_err(|_| Mutf7Error::BadBase64)?;
                if bytes.len() % 2 != 0 {
                    return Err(Mutf7Error::BadBase64);
                }
                let units = bytes
                    .chunks_exact(2)
                    .map(|pair| u16::from_be_bytes([pair[0], pair[1]]));
                for ch in char::decode_utf16(units) {
                    let ch = ch.map_err(|_| Mutf7Error::BadUtf16)?;
                    if (' '..='~').contains(&ch) {
                        return Err(Mutf7Error::NotCanonical);
                    }
                    out.push(ch);
                }
            }
            0x20..=0x7e => out.push(char::from(b)),
            _ => return Err(Mutf7Error::NotAscii),
        }
    }
    Ok(out)
}

/// Encodes a UTF-8 mailbox name as modified UTF-7.
pub fn encode_mutf7(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut units: Vec<u8> = Vec::new();
    for ch in name.chars() {
        if (' '..='~').contains(&ch) {
            flush(&mut out, &mut units);
            if ch == '&' {
                out.push_str("&-");
            } else {
                out.push(ch);
            }
        } else {
            let mut buf = [0u16; 2];
            for unit in ch.encode_utf16(&mut buf) {
                units.extend_from_slice(&unit.to_be_bytes());
            }
        }
    }
    flush(&mut out, &mut units);
    out
}

/// Writes pending UTF-16 units as one `&...-` section.
fn flush(out: &mut String, units: &mut Vec<u8>) {
    if units.is_empty() {
        return;
    }
    out.push('&');
    ENGINE.encode_string(&*units, out);
    out.push('-');
    units.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_example_round_trips() {
        // RFC 3501 §5.1.3: "~peter/mail/台北/日本語"
        let enc = "~peter/mail/&U,BTFw-/&ZeVnLIqe-";
        let dec = "~peter/mail/台北/日本語";
        assert_eq!(decode_mutf7(enc.as_bytes()).as_deref(), Ok(dec));
        assert_eq!(encode_mutf7(dec), enc);
    }

    #[test]
    fn ampersand_and_ascii() {
        assert_eq!(decode_mutf7(b"Tom &- Jerry").as_deref(), Ok("Tom & Jerry"));
        assert_eq!(encode_mutf7("Tom & Jerry"), "Tom &- Jerry");
        assert_eq!(encode_mutf7("INBOX"), "INBOX");
    }

    #[test]
    fn non_bmp_uses_surrogate_pairs() {
        let s = "Mail 😀";
        let enc = encode_mutf7(s);
        assert_eq!(enc, "Mail &2D3eAA-");
        assert_eq!(decode_mutf7(enc.as_bytes()).as_deref(), Ok(s));
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(decode_mutf7(b"&U,BTFw"), Err(Mutf7Error::Unterminated));
        assert_eq!(
            decode_mutf7("Entwürfe".as_bytes()),
            Err(Mutf7Error::NotAscii)
        );
        assert_eq!(decode_mutf7(b"&AGE-"), Err(Mutf7Error::NotCanonical));
        assert_eq!(decode_mutf7(b"&2D0-"), Err(Mutf7Error::BadUtf16));
        assert_eq!(decode_mutf7(b"&!!-"), Err(Mutf7Error::BadBase64));
    }

    #[test]
    fn round_trips_arbitrary_text() {
        for s in ["Entwürfe", "Корзина", "a&b&", "日本語 & 😀 x", "", "&"] {
            let enc = encode_mutf7(s);
            assert!(enc.bytes().all(|b| (0x20..0x7f).contains(&b)), "{enc}");
            assert_eq!(decode_mutf7(enc.as_bytes()).as_deref(), Ok(s));
        }
    }
}
