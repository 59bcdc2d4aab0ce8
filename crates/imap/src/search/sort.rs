//! SORT keys (RFC 5256 section 3, RFC 5957 DISPLAYFROM / DISPLAYTO) and the ordering of
//! matched messages by them.
//!
//! Each message's keys come already computed (base subject, casemapped addresses; see
//! `ringmail_mime::sort_key`), from the mailbox's kept values or, for a message without
//! them, from its stored metadata; SORT compares them in place. Ties, whatever the
//! criteria, go to the lower message number.

use std::cmp::Ordering;

use ringmail_mime::sort_key::{SortKeys, SortText};
use ringmail_mime::SortFields;
use ringmail_proto::parser::{SortCriterion, SortKey};

use super::Hit;

/// Whether any criterion needs the message's header fields (all but ARRIVAL and SIZE).
pub fn needs_fields(criteria: &[SortCriterion]) -> bool {
    criteria
        .iter()
        .any(|c| !matches!(c.key, SortKey::Arrival | SortKey::Size))
}

/// The sent date used by SORT DATE and threading: the Date field in UTC, or INTERNALDATE
/// when there is none (RFC 5256 section 2.2).
pub fn sent_date(hit: &Hit, fields: Option<&SortFields>) -> i64 {
    fields.and_then(|f| f.date).unwrap_or(hit.internal_date)
}

/// The encoded SORT keys (`ringmail_mime::sort_key::encode`) of a run of hits, one after
/// the other in one buffer.
#[derive(Debug, Default)]
pub struct KeyTable {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl KeyTable {
    /// Room for `n` hits.
    pub fn with_capacity(n: usize) -> KeyTable {
        KeyTable {
            bytes: Vec::with_capacity(n * 64),
            ends: Vec::with_capacity(n),
        }
    }

    /// Adds the next hit's encoded keys.
    pub fn push(&mut self, encoded: &[u8]) {
        self.bytes.extend_from_slice(encoded);
        self.ends.push(self.bytes.len());
    }

    /// The keys of hit `i`; none when the table holds none for it (no criterion needed
    /// them, so none were loaded).
    fn keys(&self, i: usize) -> Option<SortKeys<'_>> {
        let end = *self.ends.get(i)?;
        let start = i
            .checked_sub(1)
            .and_then(|p| self.ends.get(p))
            .map_or(0, |&e| e);
        SortKeys::parse(self.bytes.get(start..end)?)
    }
}

fn text_of(key: SortKey) -> Option<SortText> {
    Some(match key {
        SortKey::Subject => SortText::Subject,
        SortKey::From => SortText::From,
        SortKey::To => SortText::To,
        SortKey::Cc => SortText::Cc,
        SortKey::DisplayFrom => SortText::DisplayFrom,
        SortKey::DisplayTo => SortText::DisplayTo,
        SortKey::Arrival | SortKey::Size | SortKey::Date => return None,
    })
}

fn compare(key: SortKey, a: &Keyed<'_>, b: &Keyed<'_>) -> Ordering {
    match key {
        SortKey::Arrival => a.0.internal_date.cmp(&b.0.internal_date),
        SortKey::Size => a.0.size.cmp(&b.0.size),
        SortKey::Date => sent(a).cmp(&sent(b)),
        other => {
            let t = text_of(other).unwrap_or(SortText::Subject);
            text(a, t).cmp(text(b, t))
        }
    }
}

/// A hit and its keys (none when no criterion needs header fields).
type Keyed<'a> = (Hit, Option<SortKeys<'a>>);

fn text<'a>(k: &Keyed<'a>, t: SortText) -> &'a [u8] {
    k.1.map_or(&[], |keys| keys.text(t))
}

/// The sent date of RFC 5256 section 2.2, as [`sent_date`] gives it.
fn sent(k: &Keyed<'_>) -> i64 {
    k.1.and_then(|keys| keys.date())
        .unwrap_or(k.0.internal_date)
}

/// The key of `criterion` as a number that orders as the key does as far as the number
/// tells: when two hits' numbers differ, so do their keys, in the same direction (a text
/// key gives its first 8 bytes, zero-padded; a shorter key that is a prefix of a longer one
/// pads with zeros, which come first, as the shorter one does). Most comparisons of a sort
/// end at the number, without reaching the key's bytes.
fn prefix(criterion: SortKey, k: &Keyed<'_>) -> u64 {
    let signed = |v: i64| (v as u64) ^ (1 << 63);
    match criterion {
        SortKey::Arrival => signed(k.0.internal_date),
        SortKey::Size => u64::from(k.0.size),
        SortKey::Date => signed(sent(k)),
        other => {
            let t = text(k, text_of(other).unwrap_or(SortText::Subject));
            let mut b = [0u8; 8];
            let n = t.len().min(8);
            b[..n].copy_from_slice(&t[..n]);
            u64::from_be_bytes(b)
        }
    }
}

/// Orders `hits` by `criteria`. `keys` holds the keys of `hits[i]` at `i`; it may be empty
/// when no criterion needs header fields. Returns the hits in sorted order.
pub fn sort(hits: &[Hit], keys: &KeyTable, criteria: &[SortCriterion]) -> Vec<Hit> {
    let keyed: Vec<Keyed<'_>> = hits
        .iter()
        .enumerate()
        .map(|(i, hit)| (*hit, keys.keys(i)))
        .collect();
    let first = criteria.first();
    let mut order: Vec<(u64, usize)> = keyed
        .iter()
        .enumerate()
        .map(|(i, k)| (first.map_or(0, |c| prefix(c.key, k)), i))
        .collect();
    // Every comparison ends at the message numbers at the latest, so no two hits are
    // equal and an unstable sort gives the one order.
    order.sort_unstable_by(|&(pa, x), &(pb, y)| {
        let ord = pa.cmp(&pb);
        let ord = if first.is_some_and(|c| c.reverse) {
            ord.reverse()
        } else {
            ord
        };
        if ord != Ordering::Equal {
            return ord;
        }
        let (a, b) = (&keyed[x], &keyed[y]);
        for c in criteria {
            let ord = compare(c.key, a, b);
            let ord = if c.reverse { ord.reverse() } else { ord };
            if ord != Ordering::Equal {
                return ord;
            }
        }
        a.0.msn.cmp(&b.0.msn)
    });
    order.into_iter().map(|(_, i)| keyed[i].0).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sorts messages made of `header` lines by one key; returns the message numbers.
    fn order(headers: &[&str], key: SortKey, reverse: bool) -> Vec<u32> {
        let hits: Vec<Hit> = (1..=headers.len() as u32)
            .map(|msn| Hit {
                msn,
                uid: msn,
                size: 0,
                modseq: 1,
                internal_date: 0,
            })
            .collect();
        let mut keys = KeyTable::default();
        for h in headers {
            let sort = ringmail_mime::analyze(format!("{h}\r\n\r\nbody\r\n").as_bytes()).sort;
            keys.push(&ringmail_mime::sort_key::encode(&sort));
        }
        let criteria = [SortCriterion { key, reverse }];
        sort(&hits, &keys, &criteria)
            .iter()
            .map(|h| h.msn)
            .collect()
    }

    #[test]
    fn the_prefix_never_contradicts_the_key() {
        let subjects = [
            "",
            "a",
            "ab",
            "abcdefgh",
            "abcdefghi",
            "abcdefgh\u{0}",
            "abcdefgg",
            "b",
            "\u{0}",
            "\u{0}\u{0}",
            "é",
            "abcdefghij",
            "abcdefghia",
        ];
        let mut keys = KeyTable::default();
        for subject in subjects {
            let sort = SortFields {
                subject: subject.to_string(),
                ..SortFields::default()
            };
            keys.push(&ringmail_mime::sort_key::encode(&sort));
        }
        let keyed: Vec<Keyed<'_>> = (0..subjects.len())
            .map(|i| {
                let hit = Hit {
                    msn: i as u32 + 1,
                    uid: i as u32 + 1,
                    size: 0,
                    modseq: 1,
                    internal_date: -(i as i64),
                };
                (hit, keys.keys(i))
            })
            .collect();
        for key in [SortKey::Subject, SortKey::Arrival] {
            for a in &keyed {
                for b in &keyed {
                    let by_prefix = prefix(key, a).cmp(&prefix(key, b));
                    if by_prefix != Ordering::Equal {
                        assert_eq!(by_prefix, compare(key, a, b), "{key:?} {a:?} {b:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn keys_are_not_needed_for_arrival_and_size() {
        let hits: Vec<Hit> = [(1, 30, 7), (2, 10, 7), (3, 20, 5)]
            .iter()
            .map(|&(msn, internal_date, size)| Hit {
                msn,
                uid: msn,
                size,
                modseq: 1,
                internal_date,
            })
            .collect();
        let by = |key, reverse| {
            sort(
                &hits,
                &KeyTable::default(),
                &[SortCriterion { key, reverse }],
            )
            .iter()
            .map(|h| h.msn)
            .collect::<Vec<_>>()
        };
        assert_eq!(by(SortKey::Arrival, false), [2, 3, 1]);
        assert_eq!(by(SortKey::Size, true), [1, 2, 3]);
    }

    #[test]
    fn a_group_sorts_by_its_name() {
        // RFC 5256: the addr-mailbox of the first address; a group's first address structure
        // carries the group name there (as in ENVELOPE), not its first member's.
        let cc = [
            "Cc: Mary Smith <mary@x.test>",
            "Cc: Accounts: zoe@x.test;",
            "Cc: kim@x.test",
        ];
        assert_eq!(order(&cc, SortKey::Cc, false), [2, 3, 1]);
        assert_eq!(order(&cc, SortKey::Cc, true), [1, 3, 2]);
    }

    #[test]
    fn display_keys_follow_rfc5957() {
        // RFC 5957 section 3: the decoded display name, else mailbox@host, else the mailbox
        // (a group's name, an address without a host); compared case-insensitively.
        let to = [
            "To: =?iso-8859-1?q?Zo=EB?= <a@x.test>",
            "To: undisclosed-recipients:;",
            "To: bob@y.test",
            "To: Carol <c@x.test>, Adam <a@x.test>",
            "To: ann",
            "To: Friends: dave@x.test, eve@x.test;",
        ];
        assert_eq!(order(&to, SortKey::DisplayTo, false), [5, 3, 4, 6, 2, 1]);
        assert_eq!(order(&to, SortKey::DisplayTo, true), [1, 2, 6, 4, 3, 5]);
        let from: Vec<String> = to.iter().map(|h| h.replacen("To:", "From:", 1)).collect();
        let from: Vec<&str> = from.iter().map(String::as_str).collect();
        assert_eq!(
            order(&from, SortKey::DisplayFrom, false),
            [5, 3, 4, 6, 2, 1]
        );
    }
}
