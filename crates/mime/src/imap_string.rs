//! The IMAP string forms used inside pre-rendered ENVELOPE and BODYSTRUCTURE bytes.
//!
//! These bytes are rendered once at APPEND and replayed verbatim to every client, so
//! the choice between quoted string and literal must be valid for any client: 8-bit
//! data goes out as a literal (legal with or without UTF8=ACCEPT), everything short and
//! plain as a quoted string.

/// Longest value sent as a quoted string; longer ones become literals, which clients
/// parse without scanning for escapes.
const MAX_QUOTED_LEN: usize = 1024;

/// Appends `NIL` for `None`, otherwise [`string`].
pub(crate) fn nstring(out: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        None => out.extend_from_slice(b"NIL"),
        Some(v) => string(out, v),
    }
}

/// Appends `value` as a quoted string when that is allowed, otherwise as a literal.
///
/// NUL is not allowed even in a literal (RFC 9051 `CHAR8`), so it is replaced by a
/// space: a header containing NUL is broken anyway and must not break the response.
pub(crate) fn string(out: &mut Vec<u8>, value: &[u8]) {
    let needs_literal = value.len() > MAX_QUOTED_LEN
        || value
            .iter()
            .any(|&b| b == b'\r' || b == b'\n' || b == 0 || b >= 0x80);
    if needs_literal {
        out.push(b'{');
        out.extend_from_slice(value.len().to_string().as_bytes());
        out.extend_from_slice(b"}\r\n");
        out.extend(value.iter().map(|&b| if b == 0 { b' ' } else { b }));
    } else {
        out.push(b'"');
        for &b in value {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
