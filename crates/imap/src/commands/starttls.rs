//! STARTTLS (RFC 9051 section 6.2.1).

use crate::commands::Outcome;
use crate::session::{Action, Session};
use ringmail_proto::response::{Code, Reply};

/// Answers STARTTLS; the session loop then discards pipelined plaintext and runs the handshake.
pub fn run(session: &mut Session) -> Outcome {
    if session.conn.is_tls() {
        return Reply::bad("TLS is already active").into();
    }
    if session.exec.tls().is_none() {
        return Reply::no("TLS is not configured")
            .with_code(Code::Unavailable)
            .into();
    }
    Outcome::then(Reply::ok("Begin TLS negotiation now"), Action::StartTls)
}
