//! `\Recent` as IMAP4rev1 defines it (RFC 3501 section 2.3.2): a message is recent for exactly
//! one session, the first one that has its mailbox selected read-write after it arrived.
//!
//! Like Dovecot's index header field `first_recent_uid`, each mailbox has a *recent floor*: the
//! lowest UID no session has claimed yet. A read-write SELECT claims `[floor, UIDNEXT)` and
//! raises the floor to UIDNEXT; a selected session that later sees new messages claims them
//! the same way, if no other session got there first. EXAMINE and STATUS only look at the
//! floor. IMAP4rev2 (RFC 9051) removed `\Recent`, so sessions that ENABLE it neither claim nor
//! show anything.
//!
//! The floors live in a thread-local map, one per executor thread. That is exactly the scope
//! they need: every session of a user runs on the executor that owns the user's partition
//! (sessions are handed over after login), so all the sessions that compete for a mailbox's
//! recent messages touch the same map, and no cross-core coordination is needed. Keeping it
//! here rather than in the executor or the store keeps `\Recent` — a protocol-level,
//! per-session notion that IMAP4rev2 dropped — inside the IMAP layer.
//!
//! The floors are not persisted. A mailbox no session has touched since the server started
//! gets the floor the store gives it: UIDNEXT as it was when the partition was opened
//! (`MailboxView::uidnext_at_open`), i.e. the first message stored since the start.
//! Messages stored before it count as claimed by the sessions of the previous run — the alternative, every
//! message recent once more, would make every mutt or alpine user see all their mail as new
//! after each restart. What is lost is the `\Recent` of mail that arrived before a restart and
//! that no session had seen yet. (Dovecot keeps `first_recent_uid` in its index file and
//! loses neither.) A floor costs one map entry per mailbox a session has selected read-write
//! since the process started (about 40 bytes); DELETE drops it.

use std::cell::RefCell;
use std::collections::HashMap;

/// Which mailbox a floor belongs to. Mailbox ids are unique within a partition and never
/// reused (a recreated mailbox gets a new id), so no UIDVALIDITY check is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MailboxKey {
    /// The user's store partition.
    pub partition: u32,
    /// The mailbox id (MAILBOXID).
    pub mailbox: u64,
}

impl MailboxKey {
    /// The key of `mailbox` of `user`, with `partitions` the partition count.
    pub fn new(user: &str, partitions: u32, mailbox: u64) -> MailboxKey {
        MailboxKey {
            partition: ringmail_runtime::partition::partition_of(user, partitions),
            mailbox,
        }
    }
}

thread_local! {
    /// The lowest UID not yet claimed by a session, per mailbox; absent means 1.
    static FLOORS: RefCell<HashMap<MailboxKey, u32>> = RefCell::new(HashMap::new());
}

/// The mailbox's recent floor: messages with this UID or higher are recent for the next
/// session that selects it read-write. `initial` gives it when no session has claimed from
/// the mailbox since the start (see [`initial_floor`]).
pub fn floor(key: MailboxKey, initial: impl FnOnce() -> u32) -> u32 {
    FLOORS
        .with(|f| f.borrow().get(&key).copied())
        .unwrap_or_else(initial)
}

/// The UIDs in `[from, uidnext)` no session has claimed, as a half-open range. With `claim`
/// they become this caller's: the floor rises to `uidnext` and no other session gets them.
/// `initial` as for [`floor`].
pub fn take(
    key: MailboxKey,
    from: u32,
    uidnext: u32,
    claim: bool,
    initial: impl FnOnce() -> u32,
) -> Option<(u32, u32)> {
    FLOORS.with(|f| {
        let mut floors = f.borrow_mut();
        let floor = match floors.get(&key) {
            Some(&floor) => floor,
            None => initial(),
        };
        let lo = floor.max(from);
        if lo >= uidnext {
            return None;
        }
        if claim {
            floors.insert(key, uidnext);
        }
        Some((lo, uidnext))
    })
}

/// Forgets a deleted mailbox's floor.
pub fn forget(key: MailboxKey) {
    FLOORS.with(|f| f.borrow_mut().remove(&key));
}

/// The UIDs recent for one session: sorted, disjoint half-open ranges. Usually one range (what
/// SELECT claimed, extended as new mail arrives); another only when a second session claimed
/// some messages in between. Empty, it allocates nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecentUids {
    ranges: Vec<(u32, u32)>,
}

impl RecentUids {
    /// Adds `[lo, hi)`, above every range held.
    pub fn push(&mut self, (lo, hi): (u32, u32)) {
        match self.ranges.last_mut() {
            Some((_, last)) if *last >= lo => *last = (*last).max(hi),
            _ => self.ranges.push((lo, hi)),
        }
    }

    /// Whether `uid` is recent.
    pub fn contains(&self, uid: u32) -> bool {
        let i = self.ranges.partition_point(|&(_, hi)| hi <= uid);
        self.ranges.get(i).is_some_and(|&(lo, _)| lo <= uid)
    }

    /// How many of `uids` (ascending) are recent: one binary search per range.
    pub fn count(&self, uids: impl Fn(u32) -> usize) -> u32 {
        self.ranges
            .iter()
            .map(|&(lo, hi)| uids(hi).saturating_sub(uids(lo)) as u32)
            .sum()
    }

    /// Whether no UID is recent.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(mailbox: u64) -> MailboxKey {
        MailboxKey {
            partition: 7,
            mailbox,
        }
    }

    #[test]
    fn first_claim_wins_and_peeks_do_not_claim() {
        let k = key(1);
        assert_eq!(floor(k, || 1), 1);
        assert_eq!(take(k, 1, 3, false, || 1), Some((1, 3)));
        assert_eq!(floor(k, || 1), 1, "a peek claims nothing");
        assert_eq!(take(k, 1, 3, true, || 1), Some((1, 3)));
        assert_eq!(floor(k, || 1), 3);
        assert_eq!(
            take(k, 1, 3, true, || 1),
            None,
            "a second session gets nothing"
        );
        // New mail: whoever notices first claims it.
        assert_eq!(take(k, 3, 5, true, || 1), Some((3, 5)));
        assert_eq!(take(k, 3, 5, true, || 1), None);
        forget(k);
        assert_eq!(floor(k, || 1), 1);
        assert_eq!(floor(key(2), || 1), 1, "floors are per mailbox");
    }

    #[test]
    fn ranges_merge_and_count() {
        let mut r = RecentUids::default();
        assert!(r.is_empty());
        r.push((3, 5));
        r.push((5, 6));
        r.push((9, 10));
        assert_eq!(r.ranges, vec![(3, 6), (9, 10)]);
        assert!(!r.contains(2) && r.contains(3) && r.contains(5) && !r.contains(6));
        assert!(r.contains(9) && !r.contains(10));
        let live = [1u32, 3, 4, 8, 9, 12];
        let below = |uid: u32| live.partition_point(|&u| u < uid);
        assert_eq!(r.count(below), 3);
    }
}
