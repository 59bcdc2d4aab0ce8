//! The IMAP protocol: parser, response writer, session state machine and commands.

pub mod buffers;
pub mod commands;
pub mod flags;
pub mod mailbox_name;
pub mod parser;
pub mod recent;
pub mod response;
pub mod search;
pub mod selected;
pub mod session;
pub mod store_error;
