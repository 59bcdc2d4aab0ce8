//! The copy a `redirect` sends (RFC 5228 §4.2), with Pigeonhole's loop protection: each
//! redirect adds `X-Sieve-Redirected-From: <the recipient>`, and a message that already
//! carries one naming the recipient is not redirected again (it came back around).
//! Using Pigeonhole's header means a loop through a Dovecot server is caught too.

use crate::client::Envelope;
use crate::header;
use crate::outgoing::Outgoing;

/// The header that records a redirect (Pigeonhole's name for it).
pub const REDIRECTED_FROM: &str = "X-Sieve-Redirected-From";

/// Why no copy is sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedirectError {
    #[error("not redirecting to <{to}>: the message was redirected by <{recipient}> before (X-Sieve-Redirected-From), so it would loop")]
    Loop { recipient: String, to: String },
}

/// Whether the message was already redirected by one of `addresses` (the user's).
pub fn redirected_before(message: &[u8], addresses: &[&str]) -> bool {
    let (head, _) = header::split(message);
    header::fields(head)
        .iter()
        .filter(|f| f.name.eq_ignore_ascii_case(REDIRECTED_FROM))
        .map(|f| {
            f.value
                .trim_matches(|c| c == '<' || c == '>' || c == ' ')
                .to_string()
        })
        .any(|v| addresses.iter().any(|a| a.eq_ignore_ascii_case(&v)))
}

/// The copy of `message` (as stored, after any editheader changes) that `recipient`'s
/// script redirects to `to`. The envelope sender stays the original one, as Pigeonhole
/// does (RFC 5228 §4.2 leaves the choice to the implementation), so bounces go to the
/// author; `<>` stays `<>`. Return-Path is dropped: the next delivery writes its own.
pub fn redirect(
    message: &[u8],
    envelope_from: &str,
    recipient: &str,
    to: &str,
) -> Result<Outgoing, RedirectError> {
    if redirected_before(message, &[recipient]) {
        return Err(RedirectError::Loop {
            recipient: recipient.to_string(),
            to: to.to_string(),
        });
    }
    let (head, body) = header::split(message);
    let mut out = Vec::with_capacity(message.len() + 100);
    out.extend_from_slice(b"X-Sieve: ringmail\r\n");
    out.extend_from_slice(format!("{REDIRECTED_FROM}: {recipient}\r\n").as_bytes());
    for field in header::fields(head) {
        if !field.name.eq_ignore_ascii_case("Return-Path") {
            out.extend_from_slice(field.raw);
        }
    }
    if !out.ends_with(b"\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    Ok(Outgoing {
        envelope: Envelope {
            from: envelope_from.to_string(),
            to: vec![to.to_string()],
        },
        message: out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGE: &[u8] =
        b"Return-Path: <bob@example.org>\r\nFrom: bob@example.org\r\nSubject: hi\r\n\r\nHello.\r\n";

    #[test]
    fn adds_the_loop_header_and_keeps_the_rest() {
        let out = redirect(
            MESSAGE,
            "bob@example.org",
            "alice@example.com",
            "alice@elsewhere.example",
        )
        .unwrap();
        assert_eq!(
            out.envelope,
            Envelope {
                from: "bob@example.org".into(),
                to: vec!["alice@elsewhere.example".into()]
            }
        );
        assert_eq!(
            String::from_utf8(out.message).unwrap(),
            "X-Sieve: ringmail\r\nX-Sieve-Redirected-From: alice@example.com\r\nFrom: bob@example.org\r\nSubject: hi\r\n\r\nHello.\r\n"
        );
    }

    #[test]
    fn a_message_coming_back_is_not_redirected_again() {
        let once = redirect(MESSAGE, "", "alice@example.com", "carol@example.net").unwrap();
        assert_eq!(once.envelope.from, "", "the null sender stays null");
        // carol redirects it back to alice; alice's script would send it out again.
        let twice = redirect(&once.message, "", "carol@example.net", "alice@example.com").unwrap();
        assert_eq!(
            redirect(&twice.message, "", "ALICE@example.com", "carol@example.net"),
            Err(RedirectError::Loop {
                recipient: "ALICE@example.com".into(),
                to: "carol@example.net".into()
            })
        );
        // Pigeonhole's form with angle brackets is recognised too.
        let dovecot = b"X-Sieve-Redirected-From: <alice@example.com>\r\n\r\nx";
        assert!(redirected_before(
            dovecot,
            &["dave@example.com", "alice@example.com"]
        ));
        assert!(!redirected_before(MESSAGE, &["alice@example.com"]));
    }
}
