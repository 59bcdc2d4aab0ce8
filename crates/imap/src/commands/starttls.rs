//! STARTTLS (RFC 9051 section 6.2.1).

use crate::session::{Action, Session};

/// Answers STARTTLS; the session loop then discards pipelined plaintext and runs the handshake.
pub fn run(session: &mut Session, tag: &str) -> Action {
    if session.conn.is_tls() {
        session.tagged(tag, "BAD", "TLS is already active");
        return Action::Continue;
    }
    if session.exec.tls().is_none() {
        session.tagged(tag, "NO", "[UNAVAILABLE] TLS is not configured");
        return Action::Continue;
    }
    session.tagged(tag, "OK", "Begin TLS negotiation now");
    Action::StartTls
}
