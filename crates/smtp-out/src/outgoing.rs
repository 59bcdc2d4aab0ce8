//! A message ready for the relay, and the vacation reply.

use ringmail_sieve::{DateTime, VacationResponse};

use crate::client::Envelope;

/// A message and its envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub envelope: Envelope,
    pub message: Vec<u8>,
}

/// A vacation reply (RFC 5230 §5): the message crates/sieve builds, from the null sender
/// `<>` (§5.1) so that no reply comes back to it.
pub fn vacation(reply: &VacationResponse, message_id: &str, date: DateTime) -> Outgoing {
    Outgoing {
        envelope: Envelope {
            from: String::new(),
            to: vec![reply.to.clone()],
        },
        message: reply.to_message(message_id, date),
    }
}

/// A new Message-ID, with its angle brackets: the time and 64 random bits at `domain`.
pub fn new_message_id(domain: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("<{now}.{:016x}@{domain}>", rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vacation_goes_from_the_null_sender() {
        let reply = VacationResponse {
            to: "bob@example.org".into(),
            recipient: "alice@example.com".into(),
            from: "alice@example.com".into(),
            subject: "Auto: hello".into(),
            reason: "Away until Monday.".into(),
            mime: false,
            handle: "h".into(),
            period: 86400,
            in_reply_to: Some("<1@example.org>".into()),
            references: None,
            addresses: Vec::new(),
        };
        let out = vacation(&reply, "<r@example.com>", DateTime { unix: 0, offset: 0 });
        assert_eq!(
            out.envelope,
            Envelope {
                from: String::new(),
                to: vec!["bob@example.org".into()]
            }
        );
        let text = String::from_utf8(out.message).unwrap();
        assert!(
            text.contains("Auto-Submitted: auto-replied (vacation)\r\n"),
            "{text}"
        );
        assert!(text.ends_with("Away until Monday.\r\n"), "{text}");
    }

    #[test]
    fn message_ids_differ() {
        let a = new_message_id("mail.example.com");
        assert!(
            a.starts_with('<') && a.ends_with("@mail.example.com>"),
            "{a}"
        );
        assert_ne!(a, new_message_id("mail.example.com"));
    }
}
