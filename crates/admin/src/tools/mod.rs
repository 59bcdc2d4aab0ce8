//! Operator tools that work on a data dir: import and export of Maildir and mbox, import of
//! Dovecot sieve directories, backup and restore.
//!
//! Import and export run either way: against a stopped server's data dir ([`offline`], under
//! the data-dir [`lock`](ringmail_runtime::lock)), or through a running server's admin socket (`crate::server`), with
//! the same store-side code on both paths. [`backup`] copies a running server's data dir and
//! takes no lock.

pub mod backup;
pub mod export;
pub mod import;
pub mod maildir;
pub mod mbox;
pub mod offline;
pub mod progress;
pub mod sieve;
