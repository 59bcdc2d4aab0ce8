//! Operator tools that work on a data dir: import and export of Maildir and mbox, backup
//! and restore.
//!
//! Import and export run against a stopped server's data dir ([`offline`]); the data-dir
//! [`lock`] makes them refuse, with a clear line, while a server runs on it. [`backup`]
//! copies a running server's data dir and takes no lock.

pub mod backup;
pub mod export;
pub mod import;
pub mod lock;
pub mod maildir;
pub mod mbox;
pub mod offline;
pub mod progress;
