//! Evaluating a search program over whole columns of the mailbox at once.
//!
//! A program whose keys all read the index (flags, keywords, sizes, INTERNALDATE, message
//! numbers, UIDs) is decided for a run of consecutive messages by one pass per key over the
//! store's columns (`ringmail_store::Columns`): each leaf writes one byte per message (1 =
//! matches), AND / OR / NOT combine those byte arrays, and the matches are read off at the
//! end. Those loops touch only the bytes they test and the compiler vectorises them, where
//! the message-by-message evaluator walks 56-byte entries and a tree per message; over a
//! million messages that is the difference between a few milliseconds and tens of them.
//!
//! Keys that need more (MODSEQ, SAVEDATE, EMAILID, `\Recent`, any header or body key) make
//! the program non-columnar, and the message-by-message evaluator runs as before.

use super::program::Node;

/// The columns of a run of consecutive messages of the session's view (equally long).
pub struct Slice<'a> {
    /// The message number of the first.
    pub first_msn: u32,
    /// UIDs, ascending.
    pub uids: &'a [u32],
    /// System flags.
    pub flags: &'a [u8],
    /// Interned keyword set ids.
    pub kwsets: &'a [u32],
    /// INTERNALDATE, seconds since the epoch.
    pub internal_dates: &'a [i64],
    /// RFC822.SIZE.
    pub sizes: &'a [u32],
    /// For each interned keyword set id, the program's keyword bits (bit `i` set when the
    /// set holds keyword `i` of `Program::keywords`).
    pub keyword_bits: &'a [u64],
}

impl Slice<'_> {
    fn len(&self) -> usize {
        self.uids.len()
    }
}

/// Whether [`eval`] can decide `node` from the columns.
pub fn is_columnar(node: &Node) -> bool {
    match node {
        Node::Const(_)
        | Node::Flags { .. }
        | Node::Keyword { .. }
        | Node::Larger(_)
        | Node::Smaller(_)
        | Node::Internal(_)
        | Node::InternalFrom(_)
        | Node::InternalUntil(_)
        | Node::Msns(_)
        | Node::Uids(_) => true,
        Node::Not(inner) => is_columnar(inner),
        Node::Or(a, b) => is_columnar(a) && is_columnar(b),
        Node::And(nodes) => nodes.iter().all(is_columnar),
        _ => false,
    }
}

/// Evaluates a columnar `node` over `slice`: `out` gets one byte per message, 1 where it
/// matches and 0 elsewhere. A node that is not columnar matches nothing (callers check
/// [`is_columnar`] first).
pub fn eval(node: &Node, slice: &Slice<'_>, out: &mut Vec<u8>) {
    let n = slice.len();
    out.clear();
    match node {
        Node::Const(b) => out.resize(n, u8::from(*b)),
        Node::Flags { mask, want } => {
            let (mask, want) = (*mask, *want);
            let expect = if want { mask } else { 0 };
            out.extend(slice.flags.iter().map(|&f| u8::from(f & mask == expect)));
        }
        Node::Keyword { index, want } => {
            let bit = 1u64.checked_shl(*index as u32).unwrap_or(0);
            let want = *want;
            out.extend(slice.kwsets.iter().map(|&k| {
                let bits = slice.keyword_bits.get(k as usize).copied().unwrap_or(0);
                u8::from((bits & bit != 0) == want)
            }));
        }
        Node::Larger(limit) => {
            let limit = *limit;
            out.extend(slice.sizes.iter().map(|&s| u8::from(u64::from(s) > limit)));
        }
        Node::Smaller(limit) => {
            let limit = *limit;
            out.extend(slice.sizes.iter().map(|&s| u8::from(u64::from(s) < limit)));
        }
        Node::Internal(test) => dates_within(slice, test.secs(), out),
        Node::InternalFrom(t) => dates_within(slice, *t..=i64::MAX, out),
        Node::InternalUntil(t) => dates_within(slice, i64::MIN..=*t, out),
        Node::Msns(ranges) => {
            out.resize(n, 0);
            let first = u64::from(slice.first_msn);
            for &(lo, hi) in ranges {
                // Message numbers first..first + n, as positions in `out`.
                let lo = u64::from(lo).saturating_sub(first).min(n as u64) as usize;
                let end = (u64::from(hi) + 1).saturating_sub(first).min(n as u64) as usize;
                if lo < end {
                    out[lo..end].fill(1);
                }
            }
        }
        Node::Uids(ranges) => {
            out.resize(n, 0);
            let (Some(&first), Some(&last)) = (slice.uids.first(), slice.uids.last()) else {
                return;
            };
            // Only the ranges that reach into this slice, each as a run of positions.
            let from = ranges.partition_point(|&(_, hi)| hi < first);
            for &(lo, hi) in ranges[from..].iter().take_while(|&&(lo, _)| lo <= last) {
                let start = slice.uids.partition_point(|&u| u < lo);
                let end = slice.uids.partition_point(|&u| u <= hi);
                if start < end {
                    out[start..end].fill(1);
                }
            }
        }
        Node::Not(inner) => {
            eval(inner, slice, out);
            out.iter_mut().for_each(|b| *b ^= 1);
        }
        Node::And(nodes) => {
            out.resize(n, 1);
            let mut part = Vec::with_capacity(n);
            for node in nodes {
                eval(node, slice, &mut part);
                out.iter_mut().zip(&part).for_each(|(o, p)| *o &= p);
            }
        }
        Node::Or(a, b) => {
            eval(a, slice, out);
            let mut part = Vec::with_capacity(n);
            eval(b, slice, &mut part);
            out.iter_mut().zip(&part).for_each(|(o, p)| *o |= p);
        }
        _ => out.resize(n, 0),
    }
}

fn dates_within(slice: &Slice<'_>, range: std::ops::RangeInclusive<i64>, out: &mut Vec<u8>) {
    let (lo, hi) = (*range.start(), *range.end());
    out.extend(
        slice
            .internal_dates
            .iter()
            .map(|&d| u8::from(d >= lo && d <= hi)),
    );
}

/// The positions in `matches` (as [`eval`] wrote it) that are 1, ascending, eight bytes at
/// a time so that a rare match costs little more than reading the bytes.
pub fn for_each_match(matches: &[u8], mut f: impl FnMut(usize)) {
    let mut words = matches.chunks_exact(8);
    let mut base = 0;
    for word in words.by_ref() {
        let w = u64::from_ne_bytes(word.try_into().unwrap_or([0; 8]));
        if w != 0 {
            for (i, &b) in word.iter().enumerate() {
                if b != 0 {
                    f(base + i);
                }
            }
        }
        base += 8;
    }
    for (i, &b) in words.remainder().iter().enumerate() {
        if b != 0 {
            f(base + i);
        }
    }
}
