//! Script names (RFC 5804 §1.6): UTF-8, at least one character, none of the control
//! characters, DEL, the C1 controls, or the Unicode line and paragraph separators, and no
//! longer than the server's limit (at least 128 characters; a longer name is refused,
//! never cut).
//!
//! Names are kept as the client sent them. RFC 5804 asks for Net-Unicode (NFC) names; we
//! do not normalize, so two names that differ only in normalization are two scripts.

/// The shortest limit RFC 5804 lets a server set.
pub const MIN_NAME_LIMIT: usize = 128;

/// Checks a script name; `max_chars` is the server's limit in characters.
pub fn check(name: &[u8], max_chars: usize) -> Result<&str, String> {
    let name = std::str::from_utf8(name).map_err(|_| "the script name is not UTF-8".to_string())?;
    if name.is_empty() {
        return Err("the script name is empty".into());
    }
    if let Some(c) = name.chars().find(|&c| forbidden(c)) {
        return Err(format!(
            "the script name contains U+{:04X}, which script names may not contain",
            u32::from(c)
        ));
    }
    let chars = name.chars().count();
    if chars > max_chars {
        return Err(format!(
            "the script name has {chars} characters, more than the limit of {max_chars}"
        ));
    }
    Ok(name)
}

fn forbidden(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{2028}' | '\u{2029}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_names() {
        for name in [
            "a",
            "vacation",
            "Règles du courrier",
            "my filters/2024",
            "日本語",
        ] {
            assert_eq!(check(name.as_bytes(), 128), Ok(name));
        }
        let long = "é".repeat(128);
        assert_eq!(
            check(long.as_bytes(), 128),
            Ok(long.as_str()),
            "128 characters, 256 bytes"
        );
    }

    #[test]
    fn refused_names() {
        assert!(check(b"", 128).unwrap_err().contains("empty"));
        assert!(check(b"\xff", 128).unwrap_err().contains("UTF-8"));
        for bad in [
            "a\tb",
            "a\nb",
            "del\u{7f}",
            "c1\u{85}",
            "ls\u{2028}",
            "ps\u{2029}",
        ] {
            let e = check(bad.as_bytes(), 128).unwrap_err();
            assert!(e.contains("U+"), "{bad:?}: {e}");
        }
        let e = check("x".repeat(129).as_bytes(), 128).unwrap_err();
        assert!(e.contains("129 characters"), "{e}");
    }
}
