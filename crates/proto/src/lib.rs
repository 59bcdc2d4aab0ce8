//! IMAP syntax, both ways, with no I/O and no store: the command parser, the response
//! writer (the one place that picks atom, quoted string or literal for a value), modified
//! UTF-7 and the date forms. The IMAP session, the MIME layer's pre-rendered ENVELOPE and
//! BODYSTRUCTURE, and the mbox tools all write IMAP through this crate.

pub mod dates;
pub mod parser;
pub mod response;
