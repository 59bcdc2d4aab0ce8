//! The `idle` profile: `--clients` sessions each log in as their own user, SELECT and IDLE;
//! `--senders` sessions APPEND messages to idling users at `--deliver-rate` per second. The
//! time from the start of an APPEND to the EXISTS the idling session receives is the
//! `idle_notify` latency.
//!
//! The board holds, per user, whether the user is idling and when a delivery to it started;
//! senders claim a user by setting its start time (one delivery in flight per user), the
//! idling session clears it when it sees the new message.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

use crate::client::SessionError;
use crate::response::Response;
use crate::session::SessionCtx;
use crate::stats::Command;

/// IDLE is re-issued this often: RFC 9051 lets servers drop a client idle for 30 minutes.
const IDLE_RENEW: Duration = Duration::from_secs(20 * 60);

/// Random picks a sender tries before giving up on finding an idle user this turn.
const PICK_TRIES: usize = 32;

/// Per-user IDLE state shared by idlers and senders.
#[derive(Debug)]
pub struct IdleBoard {
    epoch: std::time::Instant,
    /// Per user: nanoseconds since `epoch` (+1) when a delivery started; 0 = none pending.
    sent: Vec<AtomicU64>,
    /// Per user: whether its session is in IDLE now.
    idling: Vec<AtomicBool>,
}

impl IdleBoard {
    /// A board for `users` idling users.
    pub fn new(users: u32) -> IdleBoard {
        IdleBoard {
            epoch: std::time::Instant::now(),
            sent: (0..users).map(|_| AtomicU64::new(0)).collect(),
            idling: (0..users).map(|_| AtomicBool::new(false)).collect(),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos())
            .unwrap_or(u64::MAX - 1)
            .saturating_add(1)
    }

    fn set_idling(&self, user: u32, on: bool) {
        if let Some(flag) = self.idling.get(user as usize) {
            flag.store(on, Ordering::Relaxed);
        }
    }

    /// Claims `user` for a delivery if it idles and has none pending.
    fn claim(&self, user: u32) -> bool {
        let idle = self
            .idling
            .get(user as usize)
            .is_some_and(|f| f.load(Ordering::Relaxed));
        idle && self.sent.get(user as usize).is_some_and(|s| {
            s.compare_exchange(0, self.now(), Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        })
    }

    fn release(&self, user: u32) {
        if let Some(s) = self.sent.get(user as usize) {
            s.store(0, Ordering::Release);
        }
    }

    /// The delay since the pending delivery to `user` started, clearing it.
    fn seen(&self, user: u32) -> Option<Duration> {
        let sent = self.sent.get(user as usize)?.swap(0, Ordering::AcqRel);
        (sent != 0).then(|| Duration::from_nanos(self.now().saturating_sub(sent)))
    }

    /// Deliveries started more than `older_than` ago whose EXISTS never arrived.
    pub fn missed(&self, older_than: Duration) -> u64 {
        let now = self.now();
        let limit = u64::try_from(older_than.as_nanos()).unwrap_or(u64::MAX);
        self.sent
            .iter()
            .map(|s| s.load(Ordering::Acquire))
            .filter(|&s| s != 0 && now.saturating_sub(s) > limit)
            .count() as u64
    }
}

/// An idling session: user number = session number.
pub async fn idler(ctx: &mut SessionCtx) -> Result<(), SessionError> {
    let Some(board) = ctx.idle.clone() else {
        return Err(SessionError::Protocol(
            "idle profile without a board".into(),
        ));
    };
    let user = ctx.index;
    let mut live = ctx.connect().await?;
    ctx.login(&mut live, user).await?;
    live.ensure_capabilities().await?;
    if !live.caps.idle {
        return Err(SessionError::Protocol(
            "server does not announce IDLE".into(),
        ));
    }
    let mut exists = 0u32;
    let cmd = format!("SELECT \"{}\"", ctx.opts.mailbox);
    let started = Instant::now();
    live.command("SELECT", cmd.as_bytes(), |r| {
        if let Response::Exists(n) = r {
            exists = n;
        }
        Ok(())
    })
    .await?;
    ctx.record(Command::Select, started);

    while !ctx.should_stop() {
        let tag = live.idle_start(|_| Ok(())).await?;
        board.set_idling(user, true);
        let renew = (Instant::now() + IDLE_RENEW).min(ctx.deadline);
        // Bounded by `renew`: idle_wait returns None once it passes.
        while let Some(response) = live.idle_wait(renew).await? {
            match response {
                Response::Exists(n) if n > exists => {
                    exists = n;
                    if let Some(delay) = board.seen(user) {
                        ctx.recorder
                            .borrow_mut()
                            .record(&ctx.shared, Command::IdleNotify, delay);
                    }
                }
                Response::Exists(n) => exists = n,
                Response::Expunge(_) => exists = exists.saturating_sub(1),
                _ => {}
            }
            if ctx.should_stop() {
                break;
            }
        }
        board.set_idling(user, false);
        live.idle_done(&tag, |r| {
            if let Response::Exists(n) = r {
                exists = n;
            }
            Ok(())
        })
        .await?;
        ctx.iterations += 1;
    }
    ctx.logout(&mut live).await
}

/// A delivering session: picks an idling user, logs in as it, APPENDs one message, logs out;
/// paced so that all senders together deliver `--deliver-rate` messages per second.
pub async fn sender(ctx: &mut SessionCtx) -> Result<(), SessionError> {
    let Some(board) = ctx.idle.clone() else {
        return Err(SessionError::Protocol(
            "idle profile without a board".into(),
        ));
    };
    // Deliveries start when measuring does, so that the idlers had the warm-up to connect.
    tokio::time::sleep_until(ctx.measure_from.min(ctx.deadline)).await;
    let interval =
        Duration::from_secs_f64(f64::from(ctx.opts.senders) / f64::from(ctx.opts.deliver_rate));
    let mut next = Instant::now();
    let idlers = ctx.opts.clients();
    while !ctx.should_stop() {
        next += interval;
        let user = (0..PICK_TRIES)
            .map(|_| ctx.rng.gen_range(0..idlers))
            .find(|&u| board.claim(u));
        if let Some(user) = user {
            let result = deliver(ctx, user).await;
            if result.is_err() {
                board.release(user);
            }
            result?;
        }
        ctx.iterations += 1;
        tokio::time::sleep_until(next.min(ctx.deadline)).await;
    }
    Ok(())
}

async fn deliver(ctx: &mut SessionCtx, user: u32) -> Result<(), SessionError> {
    let mut live = ctx.connect().await?;
    ctx.login(&mut live, user).await?;
    let message = ctx.messages.pick(&mut ctx.rng).to_vec();
    let mailbox = ctx.opts.mailbox.clone();
    let started = Instant::now();
    live.append(&mailbox, "", &message, |_| Ok(())).await?;
    ctx.record(Command::Append, started);
    ctx.logout(&mut live).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_delivery_in_flight_per_idling_user() {
        let board = IdleBoard::new(2);
        assert!(!board.claim(0), "not idling yet");
        board.set_idling(0, true);
        assert!(board.claim(0));
        assert!(!board.claim(0), "already pending");
        assert!(board.seen(0).is_some());
        assert!(board.seen(0).is_none(), "seen clears");
        assert!(board.claim(0));
        assert!(!board.claim(7), "out of range is refused, not a panic");
    }

    #[test]
    fn missed_counts_old_pending_deliveries() {
        let board = IdleBoard::new(3);
        board.set_idling(1, true);
        assert!(board.claim(1));
        assert_eq!(board.missed(Duration::from_secs(60)), 0);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(board.missed(Duration::from_millis(1)), 1);
    }
}
