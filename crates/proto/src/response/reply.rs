//! Status responses: the tagged [`Reply`] that completes a command, and the untagged
//! [`StatusResponse`] (`* OK [code] text`, `* BYE text`, the greeting).

use std::borrow::Cow;

use super::{Code, Response, ResponseWriter, Status};

/// The tagged response that completes a command: `tag STATUS [CODE] text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// OK, NO or BAD.
    pub status: Status,
    /// The response code, if any.
    pub code: Option<Code>,
    /// Human-readable text (CR and LF become spaces on the wire).
    pub text: Cow<'static, str>,
}

impl Reply {
    /// `OK text`
    pub fn ok(text: impl Into<Cow<'static, str>>) -> Reply {
        Reply::new(Status::Ok, text)
    }

    /// `NO text`
    pub fn no(text: impl Into<Cow<'static, str>>) -> Reply {
        Reply::new(Status::No, text)
    }

    /// `BAD text`
    pub fn bad(text: impl Into<Cow<'static, str>>) -> Reply {
        Reply::new(Status::Bad, text)
    }

    /// `status text`, without a code.
    pub fn new(status: Status, text: impl Into<Cow<'static, str>>) -> Reply {
        Reply {
            status,
            code: None,
            text: text.into(),
        }
    }

    /// The same reply with `code`.
    pub fn with_code(mut self, code: Code) -> Reply {
        self.code = Some(code);
        self
    }

    /// Whether the command succeeded.
    pub fn is_ok(&self) -> bool {
        self.status == Status::Ok
    }

    /// Writes `tag STATUS [CODE] text\r\n`.
    pub fn serialize(&self, tag: &str, w: &mut ResponseWriter<'_>) {
        w.tagged(tag, self.status, self.code.as_ref(), &self.text);
    }
}

/// An untagged status response: `* OK [CODE] text` and its NO, BAD, BYE and PREAUTH forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusResponse {
    /// The status word.
    pub status: Status,
    /// The response code, if any.
    pub code: Option<Code>,
    /// Human-readable text.
    pub text: Cow<'static, str>,
}

impl StatusResponse {
    /// `* OK text`
    pub fn ok(text: impl Into<Cow<'static, str>>) -> StatusResponse {
        StatusResponse::new(Status::Ok, text)
    }

    /// `* BYE text`: the server is closing the connection.
    pub fn bye(text: impl Into<Cow<'static, str>>) -> StatusResponse {
        StatusResponse::new(Status::Bye, text)
    }

    /// `* status text`, without a code.
    pub fn new(status: Status, text: impl Into<Cow<'static, str>>) -> StatusResponse {
        StatusResponse {
            status,
            code: None,
            text: text.into(),
        }
    }

    /// The same response with `code`.
    pub fn with_code(mut self, code: Code) -> StatusResponse {
        self.code = Some(code);
        self
    }

    /// The response as bytes, for a connection refused before it has a session.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.serialize(&mut ResponseWriter::new(&mut out, false));
        out
    }
}

impl Response for StatusResponse {
    fn serialize(&self, w: &mut ResponseWriter<'_>) {
        w.untagged_status(self.status, self.code.as_ref(), &self.text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tagged(tag: &str, reply: &Reply) -> String {
        let mut out = Vec::new();
        reply.serialize(tag, &mut ResponseWriter::new(&mut out, false));
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn replies_with_and_without_codes() {
        assert_eq!(
            tagged("a1", &Reply::ok("NOOP completed")),
            "a1 OK NOOP completed\r\n"
        );
        let copied = Reply::ok("COPY completed").with_code(Code::CopyUid {
            uidvalidity: 9,
            source: vec![(1, 2)],
            destination: vec![(5, 6)],
        });
        assert_eq!(
            tagged("c", &copied),
            "c OK [COPYUID 9 1:2 5:6] COPY completed\r\n"
        );
        let no = Reply::no("No such mailbox").with_code(Code::TryCreate);
        assert!(!no.is_ok());
        assert_eq!(tagged("x", &no), "x NO [TRYCREATE] No such mailbox\r\n");
        assert_eq!(
            tagged("y", &Reply::bad(format!("Malformed {} response", "PLAIN"))),
            "y BAD Malformed PLAIN response\r\n"
        );
    }

    #[test]
    fn untagged_status_responses() {
        let closed = StatusResponse::ok("Previous mailbox closed").with_code(Code::Closed);
        assert_eq!(
            closed.to_bytes(),
            b"* OK [CLOSED] Previous mailbox closed\r\n"
        );
        assert_eq!(
            StatusResponse::bye("Logging out").to_bytes(),
            b"* BYE Logging out\r\n"
        );
        let greeting = StatusResponse::ok("ringmail ready")
            .with_code(Code::Capability(vec!["IMAP4rev1".into()]));
        assert_eq!(
            greeting.to_bytes(),
            b"* OK [CAPABILITY IMAP4rev1] ringmail ready\r\n"
        );
    }
}
