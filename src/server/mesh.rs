//! Messages between executors. Executors share nothing; whatever one needs from another
//! travels as one of these on the glommio channel mesh.

use crate::server::handover::Handover;

/// One message on the mesh.
pub enum MeshMessage {
    /// A logged-in session moving to the executor that owns its user.
    Handover(Handover),
    /// An LMTP question or delivery for the executor that owns the recipient; the answer
    /// travels back on the oneshot channel inside.
    Lmtp(crate::lmtp::delivery::OwnerRequest),
    /// An admin-socket connection's requests, for the executor that owns its user.
    Admin(crate::admin::server::AdminSession),
}
