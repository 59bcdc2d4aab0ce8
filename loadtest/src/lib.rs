//! ringmail-load: a load generator for IMAP servers, bundled with ringmail.
//!
//! It opens many sessions against any IMAP server (ringmail, Dovecot, ...), or LMTP
//! connections against a mail store's LMTP service, and runs one of the
//! [`options::Profile`]s in each, printing a line per second and a summary with
//! throughput, latency percentiles, errors and the server's cost. See docs/loadtest.md.

pub mod client;
pub mod idle;
pub mod lmtp;
pub mod message;
pub mod oauth;
pub mod options;
pub mod procstat;
pub mod profiles;
pub mod report;
pub mod response;
pub mod run;
pub mod session;
pub mod stats;
pub mod tls;

pub use options::{Options, Profile};
pub use report::Summary;
pub use run::{run, RunError};
