//! Outgoing mail for Sieve: the SMTP client that hands messages to the configured relay
//! (`[sieve] submission`), and the messages the actions send.
//!
//! - redirect: [`redirect`] copies the message with the loop-protection header, from the
//!   original envelope sender;
//! - vacation: [`vacation`] wraps crates/sieve's reply, from `<>`;
//! - reject (when the LMTP reply cannot carry it): [`reject_notice`], an MDN from `<>`.
//!
//! ```no_run
//! # async fn send<S: futures_lite::AsyncRead + futures_lite::AsyncWrite + Unpin>(relay: S, out: ringmail_smtp_out::Outgoing) -> Result<(), ringmail_smtp_out::Error> {
//! let mut client = ringmail_smtp_out::Client::connect(relay, "mail.example.com").await?;
//! let sent = client.send(&out.envelope, &out.message).await?;
//! assert!(sent.refused.is_empty());
//! client.quit().await
//! # }
//! ```
//!
//! Timeouts are the caller's: see [`Client`].

mod client;
mod data;
mod header;
mod notice;
mod outgoing;
mod redirect;
mod reply;

pub use client::{Client, Envelope, Error, Extensions, Sent};
pub use notice::{reject_notice, Rejection};
pub use outgoing::{new_message_id, vacation, Outgoing};
pub use redirect::{redirect, redirected_before, RedirectError, REDIRECTED_FROM};
pub use reply::Reply;
