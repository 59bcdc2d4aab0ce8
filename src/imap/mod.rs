//! The IMAP protocol: parser, response writer, session state machine and commands.

pub mod buffers;
pub mod commands;
pub mod flags;
pub mod mailbox_name;
pub mod recent;
pub mod search;
pub mod selected;
pub mod session;
pub mod store_error;

// The syntax lives in crates/proto; re-exported so `crate::imap::parser` and
// `ringmail::imap::parser` keep naming it.
pub use ringmail_proto::{parser, response};
