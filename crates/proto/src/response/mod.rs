//! IMAP responses: typed values serialized by one writer.
//!
//! A server never formats a response line by hand. It builds a value — a tagged [`Reply`],
//! an untagged [`StatusResponse`], or one of the untagged data responses in [`data`] —
//! and serializes it with a [`ResponseWriter`], which knows the session's UTF-8 mode and
//! picks the form of every string. Response codes are a type ([`Code`]), so a handler says
//! `Code::TryCreate` and never spells or compares a string.

pub mod code;
pub mod data;
pub mod decimal;
pub mod reply;
pub mod writer;

pub use code::{Code, Status};
pub use reply::{Reply, StatusResponse};
pub use writer::{ResponseWriter, QUOTED_MAX};

/// An untagged response (or a tagged one given its tag, see [`Reply::serialize`]) that
/// writes itself, CRLF included.
pub trait Response {
    /// Appends the response to `w`.
    fn serialize(&self, w: &mut ResponseWriter<'_>);
}
