//! STARTTLS (RFC 9051 section 6.2.1).

use crate::session::{Action, Session};
use ringmail_proto::response::{Code, Reply};

/// Answers STARTTLS; the session loop then discards pipelined plaintext and runs the handshake.
pub fn run(session: &mut Session, tag: &str) -> Action {
    if session.conn.is_tls() {
        session.reply(tag, &Reply::bad("TLS is already active"));
        return Action::Continue;
    }
    if session.exec.tls().is_none() {
        session.reply(
            tag,
            &Reply::no("TLS is not configured").with_code(Code::Unavailable),
        );
        return Action::Continue;
    }
    session.reply(tag, &Reply::ok("Begin TLS negotiation now"));
    Action::StartTls
}
