//! ringmail: a thread-per-core IMAP server. docs/architecture.md describes how it is built.
//!
//! The layers are crates of their own (crates/*), so cargo enforces which uses which:
//! proto, mime, store and auth at the bottom; config, metrics and the runtime above them;
//! the protocols (imap, lmtp, managesieve, admin) on top, none of them using another. This package keeps
//! the binary, `doctor` and `services` (which hands the protocols' listeners to the runtime).

pub mod cluster;
pub mod doctor;
pub mod fencing;
pub mod moves;
pub mod recover;
pub mod replication;
pub mod services;

// Re-exported under their old module names so that `crate::store::...` here and
// `ringmail::imap::...` in tests/ and benches/ keep working.
pub use ringmail_admin as admin;
pub use ringmail_admin::tools;
pub use ringmail_auth as auth;
pub use ringmail_config as config;
pub use ringmail_imap as imap;
pub use ringmail_lmtp as lmtp;
pub use ringmail_managesieve as managesieve;
pub use ringmail_metrics as metrics;
pub use ringmail_mime as mime;
pub use ringmail_proto as proto;
pub use ringmail_runtime as server;
pub use ringmail_store as store;
