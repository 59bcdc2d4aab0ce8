//! NAMESPACE (RFC 2342): one personal namespace with "/" as the hierarchy delimiter; no shared
//! or other users' namespaces.

use crate::session::Session;
use ringmail_proto::response::data::{Namespace, NamespaceEntry};
use ringmail_proto::response::Reply;
use ringmail_store::DELIMITER;

/// `NAMESPACE`
pub fn run(session: &mut Session) -> Reply {
    let personal = [NamespaceEntry {
        prefix: b"",
        delimiter: Some(DELIMITER),
    }];
    session.send(&Namespace {
        personal: &personal,
        other: &[],
        shared: &[],
    });
    Reply::ok("NAMESPACE completed")
}
