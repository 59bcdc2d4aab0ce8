//! The admin socket: a local Unix socket through which operator tools work on a running
//! server's store without stopping it: `ringmail import` and `ringmail export`.
//!
//! A tool cannot open the partitions itself while the server runs: two writers on one log
//! would interleave records. So the tool keeps what needs its own permissions (reading and
//! writing the operator's Maildir or mbox files) and exchanges the messages here; the
//! executor that owns the user reads or stores them exactly as the offline tool would, and
//! IMAP sessions of that user, IDLE included, see imported mail at once.

//!
//! The tools themselves ([`tools`]: import, export, backup, restore, offline store access)
//! live here too, as both paths share them.

pub mod client;
pub mod forward;
pub mod protocol;
pub mod server;
pub mod tools;
