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
//! SENTBEFORE / SENTON / SENTSINCE are columnar too where the mailbox keeps each message's
//! sent day among its header-search values (`SearchField::SentDay`). Keys that need more
//! (MODSEQ, SAVEDATE, EMAILID, `\Recent`, any other header or body key) make the program
//! non-columnar, and the message-by-message evaluator runs as before.

use ringmail_mime::search_header::decode_sent_day;
use std::ops::Range;

use ringmail_store::{Columns, FieldArena};

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
    /// The mailbox's sent days and the position in it of the slice's first message, when
    /// the mailbox keeps them.
    pub sent_days: Option<(&'a FieldArena, usize)>,
}

impl<'a> Slice<'a> {
    /// The messages at positions `r` of `columns`, numbered from `first_msn`.
    pub fn new(
        columns: &'a Columns,
        r: Range<usize>,
        first_msn: u32,
        keyword_bits: &'a [u64],
        sent_days: Option<(&'a FieldArena, usize)>,
    ) -> Slice<'a> {
        Slice {
            first_msn,
            uids: &columns.uids()[r.clone()],
            flags: &columns.flags()[r.clone()],
            kwsets: &columns.kwsets()[r.clone()],
            internal_dates: &columns.internal_dates()[r.clone()],
            sizes: &columns.sizes()[r],
            keyword_bits,
            sent_days,
        }
    }

    fn len(&self) -> usize {
        self.uids.len()
    }
}

/// Whether [`eval`] can decide `node` from the columns (`sent_days`: and the sent days).
pub fn is_columnar(node: &Node, sent_days: bool) -> bool {
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
        Node::Sent(_) => sent_days,
        Node::Not(inner) => is_columnar(inner, sent_days),
        Node::Or(a, b) => is_columnar(a, sent_days) && is_columnar(b, sent_days),
        Node::And(nodes) => nodes.iter().all(|n| is_columnar(n, sent_days)),
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
        // Sizes compared as u32s (a limit past u32::MAX decides every message alike): the
        // baseline x86-64 instruction set has no 64-bit vector compare, so widening each
        // size to u64 made the compiler emulate one per lane.
        Node::Larger(limit) => match u32::try_from(*limit) {
            Ok(limit) => out.extend(slice.sizes.iter().map(|&s| u8::from(s > limit))),
            Err(_) => out.resize(n, 0),
        },
        Node::Smaller(limit) => match u32::try_from(*limit) {
            Ok(limit) => out.extend(slice.sizes.iter().map(|&s| u8::from(s < limit))),
            Err(_) => out.resize(n, 1),
        },
        Node::Internal(test) => dates_within(slice, test.secs(), out),
        Node::InternalFrom(t) => dates_within(slice, (*t, i64::MAX), out),
        Node::InternalUntil(t) => dates_within(slice, (i64::MIN, *t), out),
        Node::Sent(test) => match slice.sent_days {
            // Without a valid Date field, the day of INTERNALDATE (as the evaluator does).
            // One walk along the arena beside the dates (see `FieldArena::first_values`).
            Some((arena, first)) => {
                let days = arena.first_values(first..first + n);
                out.extend(slice.internal_dates.iter().zip(days).map(|(&secs, day)| {
                    let day = day
                        .and_then(decode_sent_day)
                        .unwrap_or_else(|| secs.div_euclid(86_400));
                    u8::from(test.matches(day))
                }));
                // An arena shorter than the slice: the rest have no value either.
                let rest = slice.internal_dates.get(out.len()..).unwrap_or_default();
                out.extend(
                    rest.iter()
                        .map(|&secs| u8::from(test.matches(secs.div_euclid(86_400)))),
                );
            }
            None => out.resize(n, 0),
        },
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

/// 1 where INTERNALDATE lies in `lo..=hi`.
fn dates_within(slice: &Slice<'_>, (lo, hi): (i64, i64), out: &mut Vec<u8>) {
    out.extend(
        slice
            .internal_dates
            .iter()
            .map(|&d| u8::from(d >= lo && d <= hi)),
    );
}

/// The positions in `matches` (as [`eval`] wrote it) that are 1, ascending, eight bytes at
/// a time so that a rare match costs little more than reading the bytes and a common one
/// one step per match, not per byte tested.
pub fn for_each_match(matches: &[u8], mut f: impl FnMut(usize)) {
    let mut words = matches.chunks_exact(8);
    let mut base = 0;
    for word in words.by_ref() {
        let w = u64::from_le_bytes(word.try_into().unwrap_or([0; 8]));
        // Every byte is 0 or 1, at bit 8 * i: the multiplication gathers those bits into
        // the top byte, byte i's as bit i (no two partial products meet there, so there is
        // no carry between them).
        let mut bits = w.wrapping_mul(0x0102_0408_1020_4080) >> 56;
        while bits != 0 {
            f(base + bits.trailing_zeros() as usize);
            bits &= bits - 1;
        }
        base += 8;
    }
    for (i, &b) in words.remainder().iter().enumerate() {
        if b != 0 {
            f(base + i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recent::RecentUids;
    use crate::search::program::{compile_text, Content, Context, Message, Program, Tri};
    use crate::selected::View;
    use ringmail_store::{flag, MessageEntry};

    /// Keyword sets by id, as the partition interns them (0 is the empty set).
    const SETS: [&[&str]; 4] = [&[], &["a"], &["a", "b"], &["B"]];

    /// 300 messages with UIDs 2, 5, 8, ...; flags, keyword sets, dates around 2020-03-15
    /// and sizes varying with the position.
    fn entries() -> Vec<MessageEntry> {
        let day = 18_336 * 86_400; // 2020-03-15
        (0..300u32)
            .map(|i| MessageEntry {
                modseq: 1,
                internal_date: day + (i64::from(i) - 150) * 7_919,
                save_date: 0,
                email_id: u64::from(i),
                uid: 2 + 3 * i,
                kwset: i % 4,
                size: (i * 37) % 1000,
                segment: 0,
                offset: 0,
                meta_len: 0,
                flags: (i * 7 % 32) as u8 & flag::ALL,
            })
            .collect()
    }

    /// The programs of `SEARCH text` for each of `texts`, parsed as a client's command line
    /// is, in a session whose view holds `uids`, at `now` (Unix seconds).
    fn programs(uids: Vec<u32>, now: i64, texts: &[&'static str]) -> Vec<(&'static str, Program)> {
        let view = View {
            uids,
            gone: Vec::new(),
        };
        let recent = RecentUids::default();
        let cx = Context {
            view: &view,
            saved: &[],
            now,
            recent: &recent,
        };
        texts
            .iter()
            .map(|&text| (text, compile_text(text, &cx)))
            .collect()
    }

    /// Every key the columns decide, alone and combined, gives what the message-by-message
    /// evaluator gives, over a whole slice and over slices that start mid-mailbox.
    #[test]
    fn columns_give_the_answers_of_the_message_by_message_evaluator() {
        let searches = [
            "ALL",
            "SEEN",
            "UNSEEN",
            "FLAGGED UNDELETED",
            "ANSWERED DRAFT",
            "UNANSWERED UNDRAFT UNFLAGGED",
            "DELETED",
            "KEYWORD a",
            "KEYWORD b",
            "UNKEYWORD A",
            "KEYWORD nothere",
            "LARGER 500",
            "SMALLER 37",
            "LARGER 4294967295",
            "LARGER 4294967296",
            "SMALLER 4294967296",
            "SMALLER 0",
            "BEFORE 15-Mar-2020",
            "ON 15-Mar-2020",
            "SINCE 16-Mar-2020",
            "SINCE 14-Mar-2020 BEFORE 16-Mar-2020",
            "OLDER 100000",
            "YOUNGER 200000",
            "1:10,50,100:120,290:*",
            "UID 5:20,400,600:700,899",
            "NOT SEEN",
            "OR FLAGGED KEYWORD b",
            "NOT OR DELETED (LARGER 100 SMALLER 900)",
            "(SEEN (NOT KEYWORD a) OR ON 15-Mar-2020 UID 1:300) 3:*",
        ];
        let messages = entries();
        let columns = ringmail_store::Columns::of_entries(&messages);
        let uids = messages.iter().map(|m| m.uid).collect();
        for (text, program) in programs(uids, 18_337 * 86_400, &searches) {
            assert!(program.is_columnar(false), "{text}");
            let table: Vec<u64> = SETS
                .iter()
                .map(|s| program.keyword_bits(s.iter().copied()))
                .collect();
            let by_message: Vec<u8> = messages
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    let verdict = program.eval(&Message {
                        msn: i as u32 + 1,
                        entry: m,
                        keywords: table[m.kwset as usize],
                        content: Content::None,
                        indexed: None,
                    });
                    assert_ne!(verdict, Tri::Unknown, "{text}");
                    u8::from(verdict == Tri::True)
                })
                .collect();
            for start in [0, 1, 100, 299] {
                let r = start..messages.len();
                let slice = Slice::new(&columns, r.clone(), start as u32 + 1, &table, None);
                let mut out = Vec::new();
                eval(program.root(), &slice, &mut out);
                assert_eq!(out, by_message[r.clone()], "{text} from {start}");
                let mut listed = Vec::new();
                for_each_match(&out, |i| listed.push(i));
                let want: Vec<usize> = (0..out.len()).filter(|&i| out[i] == 1).collect();
                assert_eq!(listed, want, "{text} from {start}");
            }
        }
    }

    #[test]
    fn keys_the_columns_do_not_hold_are_left_to_the_evaluator() {
        let texts = [
            "SUBJECT x",
            "SEEN FROM y",
            "OR SEEN BODY z",
            "MODSEQ 5",
            "RECENT",
        ];
        for (text, program) in programs(vec![1], 0, &texts) {
            assert!(!program.is_columnar(true), "{text}");
        }
    }

    /// SENT* keys over the kept sent days answer as the evaluator does over the header:
    /// the Date field's own day, whatever its zone, or INTERNALDATE's day without one.
    #[test]
    fn sent_days_give_the_answers_of_the_header() {
        let headers: Vec<String> = (0..40)
            .map(|i| match i % 5 {
                0 => format!("Date: {} Mar 2020 23:30:00 -0800\r\n\r\n", 10 + i / 5),
                1 => format!("Date: Sun, {} Mar 2020 00:10:00 +1400\r\n\r\n", 10 + i / 5),
                2 => "Date: garbage\r\n\r\n".to_string(),
                3 => "Subject: no date\r\n\r\n".to_string(),
                _ => format!(
                    "Date: {} Mar 2020 12:00 GMT\r\nDate: 1 Jan 1999 00:00 +0000\r\n\r\n",
                    10 + i / 5
                ),
            })
            .collect();
        let mut fields = ringmail_store::SearchFields::new();
        headers
            .iter()
            .for_each(|h| fields.push_message(h.as_bytes()));
        let arena = fields
            .arena(ringmail_mime::search_header::SearchField::SentDay)
            .expect("kept");
        let day = 18_330 * 86_400; // 2020-03-09
        let messages: Vec<MessageEntry> = (0..40u32)
            .map(|i| MessageEntry {
                uid: i + 1,
                internal_date: day + i64::from(i) * 20_000,
                ..entries()[0]
            })
            .collect();
        let columns = ringmail_store::Columns::of_entries(&messages);
        let texts = [
            "SENTSINCE 12-Mar-2020",
            "SENTBEFORE 12-Mar-2020",
            "SENTON 11-Mar-2020",
            "SENTON 9-Mar-2020",
            "OR SENTON 13-Mar-2020 SEEN",
        ];
        let uids = messages.iter().map(|m| m.uid).collect();
        for (text, program) in programs(uids, 0, &texts) {
            assert!(
                program.is_columnar(true) && !program.is_columnar(false),
                "{text}"
            );
            let by_header: Vec<u8> = messages
                .iter()
                .zip(&headers)
                .enumerate()
                .map(|(i, (m, h))| {
                    let verdict = program.eval(&Message {
                        msn: i as u32 + 1,
                        entry: m,
                        keywords: 0,
                        content: Content::Header(h.as_bytes()),
                        indexed: None,
                    });
                    u8::from(verdict == Tri::True)
                })
                .collect();
            assert!(by_header.contains(&1) && by_header.contains(&0), "{text}");
            for start in [0, 7] {
                let r = start..messages.len();
                let slice = Slice::new(
                    &columns,
                    r.clone(),
                    start as u32 + 1,
                    &[0],
                    Some((arena, start)),
                );
                let mut out = Vec::new();
                eval(program.root(), &slice, &mut out);
                assert_eq!(out, by_header[r], "{text} from {start}");
            }
        }
    }
}
