//! The `lmtp` profile: what an MTA does to the mail store. Each session opens one
//! connection, says LHLO once, then delivers until the run ends: `MAIL FROM`, one `RCPT TO`
//! per recipient (`--recipients`, drawn from the bench users without repeats), `DATA` with a
//! generated message, and one final reply per accepted recipient (RFC 2033).
//!
//! Timed: `lhlo`, `mail_from`, each `rcpt_to`, `data` (from the DATA command to the last
//! recipient's final reply) and, per recipient stored, `delivery` (from the end of the
//! message to that recipient's 2xx: the server's time to make the copy durable). Any reply
//! outside 2xx (354 after DATA) is an error, counted per recipient with examples.

pub mod conn;
pub mod data;
pub mod reply;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use rand::seq::index;
use tokio::time::Instant;

use crate::client::SessionError;
use crate::session::SessionCtx;
use crate::stats::{Command, Shared};
use conn::LmtpConnection;
pub use data::DataPool;

/// The name the load generator gives in LHLO.
const LHLO_NAME: &str = "ringmail-load.localhost";

/// Counts the session in the "connected" column while it lives.
struct Connected(Arc<Shared>);

impl Connected {
    fn new(shared: &Arc<Shared>) -> Connected {
        shared.connected.fetch_add(1, Ordering::Relaxed);
        Connected(shared.clone())
    }
}

impl Drop for Connected {
    fn drop(&mut self) {
        self.0.connected.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The address of bench user `index`: the user name, with `@--rcpt-domain` unless it
/// already has a domain.
pub fn recipient_address(ctx: &SessionCtx, index: u32) -> String {
    let user = ctx.opts.user_name(index);
    if user.contains('@') {
        user
    } else {
        format!("{user}@{}", ctx.opts.rcpt_domain)
    }
}

/// Records every refusal but the first as an error, and returns the first for the session
/// loop (which counts it, then reconnects after a pause, so a refusing server is not
/// hammered).
fn refused(ctx: &SessionCtx, mut refusals: Vec<String>) -> Result<(), SessionError> {
    if refusals.is_empty() {
        return Ok(());
    }
    let first = refusals.remove(0);
    for r in refusals {
        ctx.error(&SessionError::Refused(r));
    }
    Err(SessionError::Refused(first))
}

/// `lmtp`: one connection, LHLO, transactions until the run ends or `--iterations`.
pub async fn deliver(ctx: &mut SessionCtx) -> Result<(), SessionError> {
    let pool = ctx
        .lmtp_data
        .clone()
        .ok_or_else(|| SessionError::Protocol("no DATA pool for the lmtp profile".into()))?;
    let started = Instant::now();
    let mut conn = LmtpConnection::connect(&ctx.endpoint, ctx.source).await?;
    ctx.record(Command::Connect, started);
    let _connected = Connected::new(&ctx.shared);

    let started = Instant::now();
    let lhlo = conn.command(&format!("LHLO {LHLO_NAME}")).await?;
    if !lhlo.is_positive() {
        return Err(SessionError::Refused(format!("LHLO: {}", lhlo.summary())));
    }
    ctx.record(Command::Lhlo, started);
    let announce_size = lhlo.extension("SIZE").is_some();

    let users = ctx.opts.users as usize;
    let per_message = (ctx.opts.recipients as usize).min(users);
    while !ctx.should_stop() {
        let message = pool
            .pick(&mut ctx.rng)
            .ok_or_else(|| SessionError::Protocol("empty message pool".into()))?;
        let recipients: Vec<String> = index::sample(&mut ctx.rng, users, per_message)
            .iter()
            .map(|i| recipient_address(ctx, i as u32))
            .collect();

        let mail = if announce_size {
            format!("MAIL FROM:<{}> SIZE={}", ctx.opts.sender, message.size)
        } else {
            format!("MAIL FROM:<{}>", ctx.opts.sender)
        };
        let started = Instant::now();
        let reply = conn.command(&mail).await?;
        if !reply.is_positive() {
            return Err(SessionError::Refused(format!(
                "MAIL FROM: {}",
                reply.summary()
            )));
        }
        ctx.record(Command::MailFrom, started);

        let mut refusals = Vec::new();
        let mut accepted = Vec::with_capacity(recipients.len());
        for rcpt in recipients {
            let started = Instant::now();
            let reply = conn.command(&format!("RCPT TO:<{rcpt}>")).await?;
            ctx.record(Command::RcptTo, started);
            if reply.is_positive() {
                accepted.push(rcpt);
            } else {
                refusals.push(format!("RCPT TO:<{rcpt}>: {}", reply.summary()));
            }
        }
        if accepted.is_empty() {
            // No DATA without a recipient; end the transaction cleanly.
            let reply = conn.command("RSET").await?;
            if !reply.is_positive() {
                refusals.push(format!("RSET: {}", reply.summary()));
            }
            return refused(ctx, refusals);
        }

        let data_started = Instant::now();
        let reply = conn.command("DATA").await?;
        if reply.code != 354 {
            refusals.push(format!("DATA: {}", reply.summary()));
            return refused(ctx, refusals);
        }
        conn.send(&message.wire).await?;
        let sent = Instant::now();
        for rcpt in &accepted {
            let reply = conn.read_reply().await?;
            if reply.is_positive() {
                ctx.record(Command::Delivery, sent);
            } else {
                refusals.push(format!("delivery to <{rcpt}>: {}", reply.summary()));
            }
        }
        ctx.record(Command::Data, data_started);
        if conn.has_unread() {
            return Err(SessionError::Protocol(
                "more replies after DATA than accepted recipients".into(),
            ));
        }
        ctx.iterations += 1;
        refused(ctx, refusals)?;
    }
    conn.quit().await;
    Ok(())
}
