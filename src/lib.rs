//! ringmail: a thread-per-core IMAP server. See ../shared/DESIGN.md for the architecture.

pub mod admin;
pub mod doctor;
pub mod services;
pub mod tools;

// The leaf layers live in their own crates (crates/mime, crates/store, crates/auth), so cargo
// enforces that they use nothing above them. Re-exported under their old names so that
// `crate::store::...` and `ringmail::store::...` keep working.
pub use ringmail_auth as auth;
pub use ringmail_config as config;
pub use ringmail_imap as imap;
pub use ringmail_lmtp as lmtp;
pub use ringmail_metrics as metrics;
pub use ringmail_mime as mime;
pub use ringmail_runtime as server;
pub use ringmail_store as store;
