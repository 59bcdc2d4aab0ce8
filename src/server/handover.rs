//! What travels on the mesh when a session moves to the executor that owns its user.

use crate::imap::session::SessionCarry;
use crate::server::conn::ConnParts;

/// A logged-in session on its way to its owner executor: the socket (dup()ed), the TLS
/// session, every byte read but not yet parsed, and the session's own state.
pub struct Handover {
    /// Socket and TLS state.
    pub conn: ConnParts,
    /// Bytes the client pipelined after its login command.
    pub unread: Vec<u8>,
    /// Session state.
    pub carry: SessionCarry,
}
