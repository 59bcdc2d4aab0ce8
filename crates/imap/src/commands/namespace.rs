//! NAMESPACE (RFC 2342): one personal namespace with "/" as the hierarchy delimiter; no shared
//! or other users' namespaces.

use crate::session::Session;

/// `NAMESPACE`
pub fn run(session: &mut Session, tag: &str) {
    session.untagged("NAMESPACE ((\"\" \"/\")) NIL NIL");
    session.tagged(tag, "OK", "NAMESPACE completed");
}
