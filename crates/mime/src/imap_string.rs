//! The IMAP string forms used inside pre-rendered ENVELOPE and BODYSTRUCTURE bytes,
//! written by ringmail-proto's response writer (the one place that picks quoted string or
//! literal).
//!
//! These bytes are rendered once at APPEND and replayed verbatim to every client, so
//! the choice between quoted string and literal must be valid for any client: the writer
//! runs without UTF8=ACCEPT, so 8-bit data goes out as a literal (legal with or without
//! it), everything short and plain as a quoted string.

use ringmail_proto::response::ResponseWriter;

/// Appends `NIL` for `None`, otherwise [`string`].
pub(crate) fn nstring(out: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        None => {
            ResponseWriter::new(out, false).nstring(None);
        }
        Some(v) => string(out, v),
    }
}

/// Appends `value` as a quoted string when that is allowed, otherwise as a literal.
///
/// NUL is not allowed even in a literal (RFC 9051 `CHAR8`), so a value holding one goes
/// out as a literal with each NUL replaced by a space: a header containing NUL is broken
/// anyway and must not break the response. (Still a literal, as these bytes have always
/// been on disk.)
pub(crate) fn string(out: &mut Vec<u8>, value: &[u8]) {
    let mut writer = ResponseWriter::new(out, false);
    if value.contains(&0) {
        let spaced: Vec<u8> = value
            .iter()
            .map(|&b| if b == 0 { b' ' } else { b })
            .collect();
        writer.literal(&spaced);
    } else {
        writer.string(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringmail_proto::response::QUOTED_MAX as MAX_QUOTED_LEN;

    fn render(v: Option<&[u8]>) -> Vec<u8> {
        let mut out = Vec::new();
        nstring(&mut out, v);
        out
    }

    #[test]
    fn nil_quoted_and_literal() {
        assert_eq!(render(None), b"NIL");
        assert_eq!(render(Some(b"plain text")), b"\"plain text\"");
        assert_eq!(
            render(Some(b"say \"hi\" \\o/")),
            b"\"say \\\"hi\\\" \\\\o/\""
        );
        assert_eq!(render(Some("caf\u{e9}".as_bytes())), b"{5}\r\ncaf\xc3\xa9");
        assert_eq!(render(Some(b"a\r\nb")), b"{4}\r\na\r\nb");
        assert_eq!(render(Some(b"a\0b")), b"{3}\r\na b");
        let long = vec![b'x'; MAX_QUOTED_LEN + 1];
        assert!(render(Some(&long)).starts_with(b"{1025}\r\n"));
    }
}
