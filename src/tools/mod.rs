//! Operator tools that work on a data dir: import and export of Maildir and mbox, backup
//! and restore.
//!
//! Export runs against a stopped server's data dir ([`offline`]); the data-dir [`lock`]
//! makes it refuse, with a clear line, while a server runs on it. Import runs either way:
//! offline, or into the running server through its admin socket (`crate::admin`), with the
//! same store-side code. [`backup`] copies a running server's data dir and takes no lock.

pub mod backup;
pub mod export;
pub mod import;
pub mod lock;
pub mod maildir;
pub mod mbox;
pub mod offline;
pub mod progress;
