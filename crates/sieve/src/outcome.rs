//! What a run of a script decides: the actions for the delivery code to carry out, header
//! edits, duplicate ids to record, and errors for the user's log.

use std::borrow::Cow;

use crate::error::RuntimeError;

/// One action to carry out. Implicit keep (RFC 5228 §2.10.2) shows up as a `Keep` with
/// `implicit: true` at the end of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Store into the user's default mailbox (INBOX) with these IMAP flags.
    Keep { flags: Vec<String>, implicit: bool },
    /// Store into `mailbox`. With `create`, make it first if it does not exist (RFC 5490).
    /// With `special_use`, prefer the mailbox that has that special-use attribute and use
    /// `mailbox` only when none has (RFC 8579 §4). `copy` (RFC 3894) is informational:
    /// it is why implicit keep was not cancelled.
    FileInto {
        mailbox: String,
        flags: Vec<String>,
        create: bool,
        special_use: Option<String>,
        copy: bool,
    },
    /// Do nothing with the message (it only cancels implicit keep).
    Discard,
    /// Resend the message to `address` (a bare `local@domain`).
    Redirect { address: String, copy: bool },
    /// Refuse the message: in the SMTP/LMTP reply when possible (ereject, RFC 5429 §2.1),
    /// otherwise by a delivery status notification with `reason` (reject).
    Reject { reason: String, extended: bool },
    /// Send an auto-reply (RFC 5230).
    Vacation(VacationResponse),
}

/// A vacation reply the delivery code should send (RFC 5230 §5), after which it records
/// that `to` was answered for `handle` (see `Environment::vacation_responded`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VacationResponse {
    /// The envelope sender of the message: where the reply goes.
    pub to: String,
    /// The envelope recipient this answers for (the user's address).
    pub recipient: String,
    /// The From: of the reply: `:from` or else `recipient`.
    pub from: String,
    /// The Subject: of the reply (`:subject`, or "Auto: " and the original subject).
    pub subject: String,
    /// The body; with `mime` it is a MIME entity (headers and body) to use as it is.
    pub reason: String,
    pub mime: bool,
    /// Identifies this vacation text, so that a changed text is sent anew (§4.2).
    pub handle: String,
    /// Do not answer the same sender for this handle again within this many seconds.
    pub period: u64,
    /// The Message-ID of the message answered, for In-Reply-To.
    pub in_reply_to: Option<String>,
    /// The References: of the reply (the original's References and Message-ID).
    pub references: Option<String>,
    /// The user's addresses the script named with `:addresses` (besides `recipient`).
    pub addresses: Vec<String>,
}

impl VacationResponse {
    /// The reply as an RFC 5322 message (RFC 5230 §5: Auto-Submitted, In-Reply-To,
    /// References), to be sent to `to` with the null envelope sender `<>`.
    /// `message_id` is the new message's id, with its angle brackets.
    pub fn to_message(&self, message_id: &str, date: crate::DateTime) -> Vec<u8> {
        use crate::message::encode_header_value;
        let mut m = String::new();
        let mut h = |name: &str, value: &str| {
            m.push_str(name);
            m.push_str(": ");
            m.push_str(&encode_header_value(value));
            m.push_str("\r\n");
        };
        h("Date", &date.part("std11").unwrap_or_default());
        h("From", &self.from);
        h("To", &format!("<{}>", self.to));
        h("Subject", &self.subject);
        h("Message-ID", message_id);
        if let Some(r) = &self.in_reply_to {
            h("In-Reply-To", r);
        }
        if let Some(r) = &self.references {
            h("References", r);
        }
        h("Auto-Submitted", "auto-replied (vacation)");
        h("Precedence", "bulk");
        h("MIME-Version", "1.0");
        let mut out = m.into_bytes();
        if self.mime {
            // The reason is a whole MIME entity: its own header, a blank line, its body.
            out.extend_from_slice(crlf(&self.reason).as_bytes());
        } else {
            let cte = if self.reason.is_ascii() {
                "7bit"
            } else {
                "8bit"
            };
            out.extend_from_slice(
                format!(
                    "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: {cte}\r\n\r\n"
                )
                .as_bytes(),
            );
            out.extend_from_slice(crlf(&self.reason).as_bytes());
        }
        if !out.ends_with(b"\r\n") {
            out.extend_from_slice(b"\r\n");
        }
        out
    }
}

/// Line ends as CRLF.
fn crlf(s: &str) -> String {
    s.replace("\r\n", "\n").replace('\n', "\r\n")
}

/// A change to the header of the stored and redirected copies (RFC 5293).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderEdit {
    Add {
        name: String,
        value: String,
        last: bool,
    },
    /// `count` fields named `name` were removed.
    Delete { name: String, count: usize },
}

/// A duplicate id (RFC 7352) to record once the message was delivered: later runs that
/// test the same handle and id within `seconds` from now see a duplicate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateRecord {
    pub handle: String,
    pub id: String,
    pub seconds: u64,
}

/// The result of evaluating a script for one message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// What to do, in script order; never empty (at least a keep) unless the script
    /// cancelled implicit keep on purpose.
    pub actions: Vec<Action>,
    /// Header edits in the order the script made them (for logs).
    pub header_edits: Vec<HeaderEdit>,
    /// The whole header section after the edits, when there were any (see
    /// `edited_message`).
    pub edited_header: Option<Vec<u8>>,
    /// Duplicate ids to record after successful delivery.
    pub duplicates: Vec<DuplicateRecord>,
    /// What went wrong at run time; when non-empty, `actions` is the fallback keep.
    pub errors: Vec<RuntimeError>,
    /// Things worth telling the user that are not errors (e.g. why no vacation reply).
    pub notes: Vec<String>,
    /// Steps the evaluation took (see `Limits::max_steps`).
    pub steps: u64,
}

impl Outcome {
    /// The message to store or redirect: `raw` with its header replaced by the edited one
    /// when the script used editheader.
    pub fn edited_message<'a>(&self, raw: &'a [u8]) -> Cow<'a, [u8]> {
        match &self.edited_header {
            None => Cow::Borrowed(raw),
            Some(h) => {
                let (_, body) = crate::message::split_header(raw);
                let mut out = Vec::with_capacity(h.len() + raw.len() - body);
                out.extend_from_slice(h);
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(&raw[body..]);
                Cow::Owned(out)
            }
        }
    }

    /// Whether the message ends up stored in some mailbox.
    pub fn stores(&self) -> bool {
        self.actions
            .iter()
            .any(|a| matches!(a, Action::Keep { .. } | Action::FileInto { .. }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vacation_reply_message() {
        let v = VacationResponse {
            to: "bob@example.org".into(),
            recipient: "alice@example.com".into(),
            from: "alice@example.com".into(),
            subject: "Auto: Réunion".into(),
            reason: "Away.\nBack Monday.".into(),
            mime: false,
            handle: "h".into(),
            period: 86400,
            in_reply_to: Some("<1@example.org>".into()),
            references: Some("<0@example.org> <1@example.org>".into()),
            addresses: Vec::new(),
        };
        let m = String::from_utf8(v.to_message(
            "<r1@example.com>",
            crate::DateTime {
                unix: 1_710_498_600,
                offset: 0,
            },
        ))
        .unwrap();
        assert!(m.starts_with("Date: Fri, 15 Mar 2024 10:30:00 +0000\r\nFrom: alice@example.com\r\nTo: <bob@example.org>\r\n"), "{m}");
        assert!(m.contains("Subject: =?UTF-8?B?"), "{m}");
        assert!(m.contains(
            "In-Reply-To: <1@example.org>\r\nReferences: <0@example.org> <1@example.org>\r\n"
        ));
        assert!(m.contains("Auto-Submitted: auto-replied (vacation)\r\n"));
        assert!(m.ends_with("7bit\r\n\r\nAway.\r\nBack Monday.\r\n"), "{m}");
    }
}
