//! The DATA section (RFC 5321 §4.5.2): lines end in CRLF, a line that starts with a dot
//! gets another dot, and a lone dot ends the message.

/// Appends `message` to `out` as it goes after DATA, terminator included. Bare LFs become
/// CRLF; a message not ending in a line end gets one.
pub fn stuff(message: &[u8], out: &mut Vec<u8>) {
    out.reserve(message.len() + message.len() / 64 + 5);
    let mut line_start = true;
    let mut prev = 0u8;
    for &b in message {
        if line_start && b == b'.' {
            out.push(b'.');
        }
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        line_start = b == b'\n';
        prev = b;
    }
    if !message.is_empty() && !line_start {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stuffed(m: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        stuff(m, &mut out);
        out
    }

    #[test]
    fn dots_and_line_ends() {
        assert_eq!(stuffed(b"a\r\n.b\r\n.\r\n"), b"a\r\n..b\r\n..\r\n.\r\n");
        assert_eq!(stuffed(b".first\nsecond\n"), b"..first\r\nsecond\r\n.\r\n");
        assert_eq!(stuffed(b"no end"), b"no end\r\n.\r\n");
        assert_eq!(
            stuffed(b"a.b\r\n"),
            b"a.b\r\n.\r\n",
            "only at the start of a line"
        );
        assert_eq!(stuffed(b""), b".\r\n");
    }
}
