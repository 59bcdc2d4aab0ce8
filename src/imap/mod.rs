//! The IMAP protocol: parser, response writer, session state machine and commands.
