//! LMTP delivery (RFC 2033) from the MTA (Postfix, Exim).
//!
//! Any executor accepts the connection; each recipient's copy is stored by the executor that
//! owns the recipient ([`delivery`]), and the per-recipient reply after DATA is sent only once
//! that copy is durable. IMAP sessions idling on the mailbox see the new message through the
//! store's change notification, with nothing LMTP-specific.

pub mod command;
pub mod data;
pub mod delivery;
pub mod forward;
mod session;
pub mod sieve;

use std::cell::Cell;

pub use session::start;

use ringmail_runtime::runtime::Executor;

/// LMTP outcomes counted on one executor since it started.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    /// Copies stored (one per recipient).
    pub delivered: u64,
    /// RCPT TO refused: no such user.
    pub unknown_user: u64,
    /// Recipients refused for quota, at RCPT or after DATA.
    pub over_quota: u64,
    /// Messages refused for their size.
    pub too_large: u64,
    /// Transactions the client left in the middle of DATA (EOF or timeout).
    pub aborted: u64,
    /// Copies that failed temporarily (I/O, shutdown).
    pub failed: u64,
    /// Recipients whose Sieve script refused the message (reject / ereject).
    pub rejected: u64,
}

thread_local! {
    // Per executor thread, like everything else an executor owns.
    static COUNTERS: Cell<Counters> = Cell::new(Counters::default());
}

/// This executor's LMTP counters.
pub fn counters() -> Counters {
    COUNTERS.with(Cell::get)
}

/// One LMTP outcome, counted in [`Counters`] and in the executor's metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tally {
    Delivered,
    UnknownUser,
    OverQuota,
    TooLarge,
    Aborted,
    Failed,
    Rejected,
}

impl Tally {
    /// The `result` label of `ringmail_lmtp_deliveries_total`.
    fn label(self) -> &'static str {
        match self {
            Tally::Delivered => "delivered",
            Tally::UnknownUser => "unknown_user",
            Tally::OverQuota => "over_quota",
            Tally::TooLarge => "too_large",
            Tally::Aborted => "aborted",
            Tally::Failed => "failed",
            Tally::Rejected => "rejected",
        }
    }
}

fn count(exec: &Executor, tally: Tally) {
    COUNTERS.with(|c| {
        let mut v = c.get();
        let field = match tally {
            Tally::Delivered => &mut v.delivered,
            Tally::UnknownUser => &mut v.unknown_user,
            Tally::OverQuota => &mut v.over_quota,
            Tally::TooLarge => &mut v.too_large,
            Tally::Aborted => &mut v.aborted,
            Tally::Failed => &mut v.failed,
            Tally::Rejected => &mut v.rejected,
        };
        *field += 1;
        c.set(v);
    });
    exec.metrics.borrow_mut().lmtp_delivery(tally.label());
}
