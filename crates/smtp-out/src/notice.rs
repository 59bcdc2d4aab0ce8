//! The notice a `reject` sends when the refusal cannot be given in the LMTP reply
//! (RFC 5429 §2.1.2). Its form is Pigeonhole's: an MDN (RFC 8098) with the disposition
//! "deleted", a human-readable part with the script's reason, and the original header
//! (not the whole message: the author has it, and it may be large). It goes from the
//! null sender `<>`, and never to `<>`.

use ringmail_sieve::DateTime;

use crate::client::Envelope;
use crate::header;
use crate::outgoing::Outgoing;

/// What the notice is about.
#[derive(Debug, Clone, Copy)]
pub struct Rejection<'a> {
    /// The rejected message as it arrived.
    pub message: &'a [u8],
    /// Its envelope sender: where the notice goes.
    pub sender: &'a str,
    /// The user whose script rejected it (the final recipient).
    pub recipient: &'a str,
    /// The recipient as the sending MTA first gave it, when known (LMTP ORCPT).
    pub original_recipient: Option<&'a str>,
    /// The script's reason.
    pub reason: &'a str,
    /// The From: of the notice, e.g. postmaster@ the user's domain.
    pub postmaster: &'a str,
    /// This host's name, for Reporting-UA.
    pub host: &'a str,
}

/// The notice, or None when the sender is `<>` (a notice about a notice could loop).
pub fn reject_notice(r: &Rejection<'_>, message_id: &str, date: DateTime) -> Option<Outgoing> {
    if r.sender.is_empty() {
        return None;
    }
    let (head, _) = header::split(r.message);
    let original_id = header::fields(head)
        .into_iter()
        .find(|f| f.name.eq_ignore_ascii_case("Message-ID"))
        .map(|f| f.value);
    // Random enough and never in the parts: derived from our own new Message-ID.
    let boundary: String = std::iter::once("=_ringmail_".to_string())
        .chain(
            message_id
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .map(String::from),
        )
        .collect();
    let mut m = String::new();
    m.push_str(&format!("Date: {}\r\n", date.rfc5322()));
    m.push_str(&format!(
        "From: Mail Delivery System <{}>\r\n",
        r.postmaster
    ));
    m.push_str(&format!("To: <{}>\r\n", r.sender));
    m.push_str("Subject: Automatically rejected mail\r\n");
    m.push_str(&format!("Message-ID: {message_id}\r\n"));
    if let Some(id) = &original_id {
        m.push_str(&format!("In-Reply-To: {id}\r\n"));
    }
    m.push_str("Auto-Submitted: auto-replied (rejected)\r\n");
    m.push_str("Precedence: bulk\r\n");
    m.push_str("MIME-Version: 1.0\r\n");
    m.push_str(&format!(
        "Content-Type: multipart/report; report-type=disposition-notification;\r\n\tboundary=\"{boundary}\"\r\n\r\n"
    ));
    m.push_str("This is a MIME-encapsulated message.\r\n\r\n");
    m.push_str(&format!("--{boundary}\r\n"));
    m.push_str("Content-Type: text/plain; charset=utf-8\r\n");
    m.push_str("Content-Disposition: inline\r\n");
    m.push_str("Content-Transfer-Encoding: 8bit\r\n\r\n");
    m.push_str(&format!(
        "Your message to <{}> was automatically rejected:\r\n\r\n",
        r.recipient
    ));
    m.push_str(&crlf(r.reason));
    m.push_str("\r\n\r\n");
    m.push_str(&format!("--{boundary}\r\n"));
    m.push_str("Content-Type: message/disposition-notification\r\n\r\n");
    m.push_str(&format!("Reporting-UA: {}; ringmail\r\n", r.host));
    if let Some(orcpt) = r.original_recipient {
        m.push_str(&format!("Original-Recipient: rfc822; {orcpt}\r\n"));
    }
    m.push_str(&format!("Final-Recipient: rfc822; {}\r\n", r.recipient));
    if let Some(id) = &original_id {
        m.push_str(&format!("Original-Message-ID: {id}\r\n"));
    }
    m.push_str("Disposition: automatic-action/MDN-sent-automatically; deleted\r\n\r\n");
    m.push_str(&format!("--{boundary}\r\n"));
    m.push_str("Content-Type: text/rfc822-headers\r\n\r\n");
    let mut message = m.into_bytes();
    message.extend_from_slice(crlf(&String::from_utf8_lossy(head)).as_bytes());
    message.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    Some(Outgoing {
        envelope: Envelope {
            from: String::new(),
            to: vec![r.sender.to_string()],
        },
        message,
    })
}

/// Line ends as CRLF.
fn crlf(s: &str) -> String {
    s.replace("\r\n", "\n").replace('\n', "\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejection(sender: &str) -> Rejection<'_> {
        Rejection {
            message: b"From: bob@example.org\r\nMessage-ID: <m1@example.org>\r\nSubject: offer\r\n\r\nBuy now.\r\n",
            sender,
            recipient: "alice@example.com",
            original_recipient: Some("alice+shop@example.com"),
            reason: "I do not want this.\nPlease stop.",
            postmaster: "postmaster@example.com",
            host: "mail.example.com",
        }
    }

    #[test]
    fn an_mdn_with_the_reason_and_the_original_header() {
        let date = DateTime {
            unix: 1_710_498_600,
            offset: 0,
        };
        let out =
            reject_notice(&rejection("bob@example.org"), "<n1@mail.example.com>", date).unwrap();
        assert_eq!(
            out.envelope,
            Envelope {
                from: String::new(),
                to: vec!["bob@example.org".into()]
            }
        );
        let m = String::from_utf8(out.message).unwrap();
        let boundary = "=_ringmail_n1mailexamplecom";
        let want_head = "Date: Fri, 15 Mar 2024 10:30:00 +0000\r\nFrom: Mail Delivery System <postmaster@example.com>\r\nTo: <bob@example.org>\r\nSubject: Automatically rejected mail\r\nMessage-ID: <n1@mail.example.com>\r\nIn-Reply-To: <m1@example.org>\r\nAuto-Submitted: auto-replied (rejected)\r\n";
        assert!(m.starts_with(want_head), "{m}");
        assert!(
            m.contains(&format!(
                "report-type=disposition-notification;\r\n\tboundary=\"{boundary}\"\r\n"
            )),
            "{m}"
        );
        assert!(
            m.contains(
                "was automatically rejected:\r\n\r\nI do not want this.\r\nPlease stop.\r\n"
            ),
            "{m}"
        );
        assert!(m.contains("Original-Recipient: rfc822; alice+shop@example.com\r\nFinal-Recipient: rfc822; alice@example.com\r\nOriginal-Message-ID: <m1@example.org>\r\nDisposition: automatic-action/MDN-sent-automatically; deleted\r\n"), "{m}");
        assert!(
            m.contains("Content-Type: text/rfc822-headers\r\n\r\nFrom: bob@example.org\r\n"),
            "{m}"
        );
        assert!(!m.contains("Buy now"), "the body is not sent back");
        assert!(
            m.ends_with(&format!("Subject: offer\r\n\r\n--{boundary}--\r\n")),
            "{m}"
        );
        // Three parts and the closing delimiter.
        assert_eq!(m.matches(&format!("--{boundary}")).count(), 4);
    }

    #[test]
    fn no_notice_to_the_null_sender() {
        let date = DateTime { unix: 0, offset: 0 };
        assert_eq!(reject_notice(&rejection(""), "<n@x>", date), None);
    }
}
