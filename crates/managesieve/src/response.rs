//! Responses (RFC 5804 §1.2, §1.3, §4): `OK`, `NO` and `BYE` with an optional response
//! code and text, and the strings of data lines, quoted where they can be and literals
//! otherwise.

/// The result of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    No,
    /// The server closes the connection.
    Bye,
}

/// A response code (RFC 5804 §1.3): what a client can act on without reading the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Code {
    /// The mechanism is weaker than the server allows for this user.
    AuthTooWeak,
    /// TLS must be negotiated first (plaintext authentication over a clear channel).
    EncryptNeeded,
    /// Some quota was exceeded.
    Quota,
    /// The user has as many scripts as allowed.
    QuotaMaxScripts,
    /// The script is larger than allowed.
    QuotaMaxSize,
    /// The user is served elsewhere (a `sieve://` URL).
    Referral(String),
    /// Final SASL data (base64) of a successful AUTHENTICATE.
    Sasl(String),
    /// The user must first change their password by another means.
    TransitionNeeded,
    /// A temporary failure: the same command may succeed later.
    TryLater,
    /// The script is the active one (DELETESCRIPT).
    Active,
    /// No script has that name.
    NonExistent,
    /// A script with that name exists already (RENAMESCRIPT).
    AlreadyExists,
    /// The script was stored (or checked) but has warnings, given in the text.
    Warnings,
    /// NOOP's echo of the client's tag.
    Tag(Vec<u8>),
}

/// Appends a response line: `OK`, `NO` or `BYE`, the code, and `text` (as a literal when
/// it spans lines, such as a script error with context).
pub fn write_response(out: &mut Vec<u8>, status: Status, code: Option<&Code>, text: &str) {
    out.extend_from_slice(match status {
        Status::Ok => b"OK",
        Status::No => b"NO",
        Status::Bye => b"BYE",
    });
    if let Some(code) = code {
        out.extend_from_slice(b" (");
        write_code(out, code);
        out.push(b')');
    }
    if !text.is_empty() {
        out.push(b' ');
        write_string(out, text.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

fn write_code(out: &mut Vec<u8>, code: &Code) {
    let name: &[u8] = match code {
        Code::AuthTooWeak => b"AUTH-TOO-WEAK",
        Code::EncryptNeeded => b"ENCRYPT-NEEDED",
        Code::Quota => b"QUOTA",
        Code::QuotaMaxScripts => b"QUOTA/MAXSCRIPTS",
        Code::QuotaMaxSize => b"QUOTA/MAXSIZE",
        Code::Referral(_) => b"REFERRAL",
        Code::Sasl(_) => b"SASL",
        Code::TransitionNeeded => b"TRANSITION-NEEDED",
        Code::TryLater => b"TRYLATER",
        Code::Active => b"ACTIVE",
        Code::NonExistent => b"NONEXISTENT",
        Code::AlreadyExists => b"ALREADYEXISTS",
        Code::Warnings => b"WARNINGS",
        Code::Tag(_) => b"TAG",
    };
    out.extend_from_slice(name);
    match code {
        // sieveurl is not a string in the grammar: it goes bare.
        Code::Referral(url) => {
            out.push(b' ');
            out.extend_from_slice(url.as_bytes());
        }
        Code::Sasl(data) => {
            out.push(b' ');
            write_string(out, data.as_bytes());
        }
        Code::Tag(tag) => {
            out.push(b' ');
            write_string(out, tag);
        }
        _ => {}
    }
}

/// Longest quoted string RFC 5804 §4 allows (erratum 2655: octets).
const MAX_QUOTED: usize = 1024;

/// Appends `s` as a quoted string when it can be one (UTF-8 without CR, LF or NUL, at most
/// 1024 bytes), otherwise as a literal `{n}` CRLF and the bytes.
pub fn write_string(out: &mut Vec<u8>, s: &[u8]) {
    let quotable = s.len() <= MAX_QUOTED
        && !s.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0))
        && std::str::from_utf8(s).is_ok();
    if !quotable {
        write_literal(out, s);
        return;
    }
    out.push(b'"');
    for &b in s {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
}

/// Appends `s` as a literal (literal-s2c: `{n}`, no `+`).
pub fn write_literal(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(format!("{{{}}}\r\n", s.len()).as_bytes());
    out.extend_from_slice(s);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: Status, code: Option<Code>, text: &str) -> String {
        let mut out = Vec::new();
        write_response(&mut out, status, code.as_ref(), text);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn status_code_and_text() {
        assert_eq!(response(Status::Ok, None, "Done."), "OK \"Done.\"\r\n");
        assert_eq!(response(Status::Ok, None, ""), "OK\r\n");
        assert_eq!(
            response(Status::No, Some(Code::QuotaMaxSize), "too big"),
            "NO (QUOTA/MAXSIZE) \"too big\"\r\n"
        );
        assert_eq!(
            response(
                Status::Bye,
                Some(Code::Referral("sieve://b.example.com".into())),
                "moved"
            ),
            "BYE (REFERRAL sieve://b.example.com) \"moved\"\r\n"
        );
        assert_eq!(
            response(Status::Ok, Some(Code::Tag(b"a\"b".to_vec())), "Done"),
            "OK (TAG \"a\\\"b\") \"Done\"\r\n"
        );
        assert_eq!(
            response(Status::Ok, Some(Code::Sasl("dj1yZXNw".into())), ""),
            "OK (SASL \"dj1yZXNw\")\r\n"
        );
        for (code, name) in [
            (Code::AuthTooWeak, "AUTH-TOO-WEAK"),
            (Code::EncryptNeeded, "ENCRYPT-NEEDED"),
            (Code::Quota, "QUOTA"),
            (Code::QuotaMaxScripts, "QUOTA/MAXSCRIPTS"),
            (Code::TransitionNeeded, "TRANSITION-NEEDED"),
            (Code::TryLater, "TRYLATER"),
            (Code::Active, "ACTIVE"),
            (Code::NonExistent, "NONEXISTENT"),
            (Code::AlreadyExists, "ALREADYEXISTS"),
            (Code::Warnings, "WARNINGS"),
        ] {
            assert_eq!(
                response(Status::No, Some(code), "x"),
                format!("NO ({name}) \"x\"\r\n")
            );
        }
    }

    #[test]
    fn multi_line_text_is_a_literal() {
        assert_eq!(
            response(Status::No, None, "line 2, column 1: bad\nmore"),
            "NO {26}\r\nline 2, column 1: bad\nmore\r\n"
        );
    }

    #[test]
    fn strings_quoted_or_literal() {
        let s = |b: &[u8]| {
            let mut out = Vec::new();
            write_string(&mut out, b);
            out
        };
        assert_eq!(s(b"r\xc3\xa9gles"), b"\"r\xc3\xa9gles\"");
        assert_eq!(s(b"a\\b"), b"\"a\\\\b\"");
        assert_eq!(s(b"\xff"), b"{1}\r\n\xff");
        assert_eq!(s(b"a\r\nb"), b"{4}\r\na\r\nb");
        let long = vec![b'a'; MAX_QUOTED + 1];
        assert!(s(&long).starts_with(b"{1025}\r\n"));
        assert_eq!(s(&long[..MAX_QUOTED])[0], b'"');
    }
}
