//! What a search keeps of each match, and the list it keeps it in.
//!
//! SORT and THREAD need a [`Hit`] per match (32 bytes: numbers, size, dates); a SEARCH
//! answer needs one number. Over a million messages a third of which match, the hits are
//! 10 MB written (and faulted in) where the numbers are 1.3 MB, so SEARCH asks for the
//! numbers alone, and columnar matches come straight from the columns without reading the
//! 56-byte index entries.

use ringmail_store::MessageEntry;

use super::column_scan::{for_each_match, Slice};
use super::Hit;

/// What a search keeps of each match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Collect {
    /// A whole [`Hit`], in [`Found::hits`](super::Found::hits).
    #[default]
    Hits,
    /// The UID, in [`Found::ids`](super::Found::ids).
    Uids,
    /// The message number, in [`Found::ids`](super::Found::ids).
    Msns,
}

/// The matches found so far, in message-number order, in the form [`Collect`] asks for.
#[derive(Debug)]
pub(super) struct Matches {
    collect: Collect,
    /// With [`Collect::Hits`].
    pub hits: Vec<Hit>,
    /// With [`Collect::Uids`] and [`Collect::Msns`].
    pub ids: Vec<u32>,
}

impl Matches {
    pub fn new(collect: Collect) -> Matches {
        Matches {
            collect,
            hits: Vec::new(),
            ids: Vec::new(),
        }
    }

    /// How many so far.
    pub fn len(&self) -> usize {
        match self.collect {
            Collect::Hits => self.hits.len(),
            Collect::Uids | Collect::Msns => self.ids.len(),
        }
    }

    /// Adds message `msn`.
    pub fn push(&mut self, msn: u32, entry: &MessageEntry) {
        match self.collect {
            Collect::Hits => self.hits.push(Hit::new(msn, entry)),
            Collect::Uids => self.ids.push(entry.uid),
            Collect::Msns => self.ids.push(msn),
        }
    }

    /// Adds the messages of `slice` that are 1 in `matches` (as `column_scan::eval` wrote
    /// it). `entries`: the index entries of the slice's messages, read only for the
    /// mod-sequences of whole hits when `modseq` is set (columns do not hold them, and
    /// nothing reads a hit's mod-sequence unless the search used MODSEQ).
    pub fn extend_from_columns(
        &mut self,
        slice: &Slice<'_>,
        matches: &[u8],
        entries: &[MessageEntry],
        modseq: bool,
    ) {
        let first_msn = slice.first_msn;
        let count = matches.iter().map(|&m| usize::from(m)).sum();
        match self.collect {
            Collect::Msns => extend_ids(&mut self.ids, count, matches, |i| first_msn + i as u32),
            Collect::Uids => {
                let uids = slice.uids;
                extend_ids(&mut self.ids, count, matches, |i| {
                    uids.get(i).copied().unwrap_or(0)
                });
            }
            Collect::Hits => {
                self.hits.reserve(count);
                for_each_match(matches, |i| {
                    self.hits.push(Hit {
                        msn: first_msn + i as u32,
                        uid: slice.uids[i],
                        size: slice.sizes[i],
                        modseq: if modseq {
                            entries.get(i).map_or(0, |e| e.modseq)
                        } else {
                            0
                        },
                        internal_date: slice.internal_dates[i],
                    })
                });
            }
        }
    }

    /// Drops the matches at the positions `rejected` marks.
    pub fn reject(&mut self, rejected: &[bool]) {
        let mut index = 0;
        let mut keep = || {
            index += 1;
            !rejected.get(index - 1).copied().unwrap_or(false)
        };
        match self.collect {
            Collect::Hits => self.hits.retain(|_| keep()),
            Collect::Uids | Collect::Msns => self.ids.retain(|_| keep()),
        }
    }
}

/// Appends `id(i)` for each of the `count` positions `i` that are 1 in `matches`. The ids
/// are written into slots made first, through a local index: a `push` per match reloads
/// and stores the vector's length each time (the closure holds the vector by reference),
/// which was the largest cost of the loop in the profile.
fn extend_ids(ids: &mut Vec<u32>, count: usize, matches: &[u8], id: impl Fn(usize) -> u32) {
    let start = ids.len();
    ids.resize(start + count, 0);
    let slots = &mut ids[start..];
    let mut written = 0;
    for_each_match(matches, |i| {
        if let Some(slot) = slots.get_mut(written) {
            *slot = id(i);
        }
        written += 1;
    });
    // `count` was the number of matches: every slot was written.
    debug_assert_eq!(written, count);
}
