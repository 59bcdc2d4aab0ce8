//! Just enough of RFC 5322 for the builders: where the header ends, and its fields.

/// A header field: its name, its complete bytes (continuation lines and line ends
/// included), and its value unfolded and trimmed.
pub(crate) struct Field<'a> {
    pub name: &'a str,
    pub raw: &'a [u8],
    pub value: String,
}

/// Splits a message into its header (with the last field's line end) and its body (after
/// the blank line). A message without a blank line is all header.
pub(crate) fn split(message: &[u8]) -> (&[u8], &[u8]) {
    if message.starts_with(b"\r\n") {
        return (&[], &message[2..]);
    }
    if message.starts_with(b"\n") {
        return (&[], &message[1..]);
    }
    for (i, w) in message.windows(2).enumerate() {
        if w == b"\n\n" {
            return (&message[..=i], &message[i + 2..]);
        }
        if w == b"\n\r" && message.get(i + 2) == Some(&b'\n') {
            return (&message[..=i], &message[i + 3..]);
        }
    }
    (message, &[])
}

/// The fields of a header section. Lines that are not fields are skipped.
pub(crate) fn fields(header: &[u8]) -> Vec<Field<'_>> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < header.len() {
        // A field runs to the line end not followed by a continuation (space or tab).
        let mut end = start;
        loop {
            match header[end..].iter().position(|&b| b == b'\n') {
                Some(i) => end += i + 1,
                None => {
                    end = header.len();
                    break;
                }
            }
            if !matches!(header.get(end), Some(b' ' | b'\t')) {
                break;
            }
        }
        let raw = &header[start..end];
        if let Some(colon) = raw.iter().position(|&b| b == b':') {
            if let Ok(name) = std::str::from_utf8(&raw[..colon]) {
                let value = String::from_utf8_lossy(&raw[colon + 1..]);
                let value: String = value.split(['\r', '\n']).collect::<Vec<_>>().join("");
                out.push(Field {
                    name: name.trim(),
                    raw,
                    value: value.trim().to_string(),
                });
            }
        }
        start = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_and_fields() {
        let m = b"From: a@example.org\r\nSubject: two\r\n  lines\r\n\r\nbody\r\n";
        let (h, b) = split(m);
        assert_eq!(b, b"body\r\n");
        let f = fields(h);
        assert_eq!(f.len(), 2);
        assert_eq!((f[1].name, f[1].value.as_str()), ("Subject", "two  lines"));
        assert_eq!(f[1].raw, b"Subject: two\r\n  lines\r\n");
        assert_eq!(split(b"A: b\n\nc"), (&b"A: b\n"[..], &b"c"[..]));
        assert_eq!(split(b"A: b\r\n"), (&b"A: b\r\n"[..], &b""[..]));
        assert_eq!(split(b"\r\nbody"), (&b""[..], &b"body"[..]));
    }
}
