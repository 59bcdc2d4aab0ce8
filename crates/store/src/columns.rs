//! The fields SEARCH tests most, one array per field, aligned with a mailbox's index entries.
//!
//! `MessageEntry` is 56 bytes; a search for a flag or a date walking a million of them reads
//! 56 MB and evaluates a program per message. The same test over a column reads 1 MB of
//! flags (or 8 MB of dates) in one pass the compiler vectorises, and the session's view is
//! a copy of the UID column instead of a gather over the entries. The columns hold copies:
//! the entries stay the reference (FETCH, CONDSTORE, checkpoints), so the columns are not
//! saved in a checkpoint but rebuilt from the entries when one is loaded.
//!
//! Cost: 21 bytes per message (UID 4, flags 1, keyword set 4, INTERNALDATE 8, size 4).

use super::index::MessageEntry;

/// Per-message columns of one mailbox; position `i` is `Mailbox::messages[i]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Columns {
    uids: Vec<u32>,
    flags: Vec<u8>,
    kwsets: Vec<u32>,
    internal_dates: Vec<i64>,
    sizes: Vec<u32>,
}

impl Columns {
    /// The columns of `messages` (public for the tests of the crates above the store).
    pub fn of_entries(messages: &[MessageEntry]) -> Columns {
        Columns::of(messages)
    }

    /// The columns of `messages`.
    pub(crate) fn of(messages: &[MessageEntry]) -> Columns {
        let mut c = Columns::default();
        c.reserve(messages.len());
        messages.iter().for_each(|m| c.push(m));
        c
    }

    pub(crate) fn reserve(&mut self, n: usize) {
        self.uids.reserve(n);
        self.flags.reserve(n);
        self.kwsets.reserve(n);
        self.internal_dates.reserve(n);
        self.sizes.reserve(n);
    }

    /// Appends the columns of a new last entry.
    pub(crate) fn push(&mut self, m: &MessageEntry) {
        self.uids.push(m.uid);
        self.flags.push(m.flags);
        self.kwsets.push(m.kwset);
        self.internal_dates.push(m.internal_date);
        self.sizes.push(m.size);
    }

    /// Entry `pos` got new flags and keywords.
    pub(crate) fn set_flags(&mut self, pos: usize, flags: u8, kwset: u32) {
        if let (Some(f), Some(k)) = (self.flags.get_mut(pos), self.kwsets.get_mut(pos)) {
            *f = flags;
            *k = kwset;
        }
    }

    /// Removes positions `gone` (ascending, distinct), keeping the rest in order.
    pub(crate) fn remove(&mut self, gone: &[usize]) {
        remove_positions(&mut self.uids, gone);
        remove_positions(&mut self.flags, gone);
        remove_positions(&mut self.kwsets, gone);
        remove_positions(&mut self.internal_dates, gone);
        remove_positions(&mut self.sizes, gone);
    }

    /// How many messages.
    pub fn len(&self) -> usize {
        self.uids.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.uids.is_empty()
    }

    /// UIDs, ascending.
    pub fn uids(&self) -> &[u32] {
        &self.uids
    }

    /// System flags ([`crate::flag`]).
    pub fn flags(&self) -> &[u8] {
        &self.flags
    }

    /// Interned keyword set ids (see `MailboxView::keyword_set`).
    pub fn kwsets(&self) -> &[u32] {
        &self.kwsets
    }

    /// INTERNALDATE, seconds since the epoch.
    pub fn internal_dates(&self) -> &[i64] {
        &self.internal_dates
    }

    /// RFC822.SIZE.
    pub fn sizes(&self) -> &[u32] {
        &self.sizes
    }

    /// Bytes held (capacity), for the cost figures.
    pub fn heap_bytes(&self) -> usize {
        self.uids.capacity() * 4
            + self.flags.capacity()
            + self.kwsets.capacity() * 4
            + self.internal_dates.capacity() * 8
            + self.sizes.capacity() * 4
    }
}

/// Removes `gone` (ascending, distinct positions) from `v` in place: what follows the first
/// of them moves down once, so expunging recent messages (the usual case) moves little.
fn remove_positions<T: Copy>(v: &mut Vec<T>, gone: &[usize]) {
    let Some(&first) = gone.first().filter(|&&p| p < v.len()) else {
        return;
    };
    let mut write = first;
    let mut next = gone.iter().peekable();
    for read in first..v.len() {
        if next.next_if_eq(&&read).is_some() {
            continue;
        }
        v[write] = v[read];
        write += 1;
    }
    v.truncate(write);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removing_positions_keeps_the_rest_in_order() {
        for mask in 0u32..(1 << 8) {
            let mut v: Vec<u32> = (0..8).collect();
            let gone: Vec<usize> = (0..8).filter(|i| mask & (1 << i) != 0).collect();
            remove_positions(&mut v, &gone);
            let kept: Vec<u32> = (0..8).filter(|i| mask & (1 << i) == 0).collect();
            assert_eq!(v, kept, "mask {mask:b}");
        }
        let mut v = vec![1, 2];
        remove_positions(&mut v, &[5]);
        assert_eq!(v, [1, 2], "a position past the end removes nothing");
    }
}
