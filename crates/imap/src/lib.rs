//! The IMAP protocol: session state machine, commands, search and the selected mailbox's
//! state. The syntax (parser, response writer) is ringmail-proto's; the store, MIME layer,
//! runtime, auth, config and metrics are the crates below this one.

pub mod buffers;
pub mod commands;
pub mod flags;
pub mod mailbox_name;
pub mod node_proxy;
pub mod recent;
pub mod search;
pub mod selected;
pub mod session;
pub mod store_error;

// The parser lives in crates/proto; re-exported so `ringmail::imap::parser` (tests,
// benches) keeps naming it.
pub use ringmail_proto::parser;
