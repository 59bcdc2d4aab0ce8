//! ManageSieve (RFC 5804) for ringmail: users upload, check, activate and fetch their
//! Sieve scripts with Thunderbird's sieve add-on, Roundcube's managesieve plugin or
//! sieve-connect.
//!
//! This crate is the protocol and the session, with no runtime and no store of its own.
//! The server supplies three things:
//!
//! - the connection, as a [`Transport`] (`read`, `write_all`); [`FuturesIo`] adapts any
//!   `futures_io` stream;
//! - the password check and login throttle, as an [`Authenticator`];
//! - the user's scripts, as a [`ScriptStore`] ([`MemoryScripts`] for tests).
//!
//! ```
//! # use std::sync::Arc;
//! # use ringmail_managesieve::*;
//! # async fn serve<T: Transport, A: Authenticator>(mut conn: T, auth: A) -> std::io::Result<()> {
//! let options = Arc::new(Options { starttls: true, ..Options::default() });
//! let scripts = MemoryScripts::new();
//! let mut session = Session::new(options, Security { tls: false, secure_network: false });
//! loop {
//!     match session.run(&mut conn, &auth, &scripts).await? {
//!         Exit::StartTls => {
//!             // The caller runs the TLS handshake on `conn` here, then:
//!             session.tls_started();
//!         }
//!         Exit::Logout | Exit::Closed | Exit::Bye => return Ok(()),
//!     }
//! }
//! # }
//! ```
//!
//! Timeouts and failure delays are the server's: it races `run` against its idle timer,
//! and `Authenticator::failed` waits out the delay.

mod auth;
mod capability;
mod check;
mod command;
mod name;
mod options;
pub mod parser;
pub mod response;
pub mod server;
mod session;
mod store;
mod transport;

pub use auth::{AfterFailure, Authenticator, Verdict};
pub use capability::sieve_extensions;
pub use check::{check_script, Refusal};
pub use command::{Command, Payload};
pub use name::{check as check_name, MIN_NAME_LIMIT};
pub use options::{MailPolicy, Options};
pub use session::{Exit, Security, Session};
pub use store::{contract as store_contract, MemoryScripts, ScriptInfo, ScriptStore, StoreError};
pub use transport::{FuturesIo, Transport};
