//! Messages between executors. Executors share nothing; whatever one needs from another
//! travels as one of these on the glommio channel mesh.

use crate::server::handover::Handover;

/// One message on the mesh.
pub enum MeshMessage {
    /// A logged-in session moving to the executor that owns its user.
    Handover(Handover),
    /// An LMTP question or delivery for the executor that owns the recipient; the answer
    /// travels back as an [`MeshMessage::Answer`].
    Lmtp(crate::lmtp::delivery::OwnerRequest),
    /// One admin-socket request, for the executor that owns the user it is about.
    Admin(crate::admin::server::OwnerRequest),
    /// The answer to a request this executor sent (see `crate::server::rpc`).
    Answer {
        /// The request's number on this executor.
        id: u64,
        /// The answer.
        answer: crate::server::rpc::Answer,
    },
}
