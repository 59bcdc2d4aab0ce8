//! The IMAP protocol: parser, response writer, session state machine and commands.

pub mod parser;
pub mod response;
