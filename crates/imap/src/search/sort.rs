//! SORT keys (RFC 5256 section 3, RFC 5957 DISPLAYFROM / DISPLAYTO) and the ordering of
//! matched messages by them.
//!
//! Each message's keys are computed once (base subject, casemapped addresses) and then
//! compared; ties, whatever the criteria, go to the lower message number.

use std::cmp::Ordering;

use ringmail_mime::{SortAddress, SortFields};
use ringmail_proto::parser::{SortCriterion, SortKey};

use super::subject::base_subject;
use super::Hit;

/// One key value of one message.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Value {
    Number(i64),
    Text(String),
}

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

fn mailbox_key(address: Option<&SortAddress>) -> String {
    address.map_or(String::new(), |a| a.mailbox.to_ascii_uppercase())
}

/// RFC 5957: the display name, or the address when there is none.
fn display_key(address: Option<&SortAddress>) -> String {
    let Some(a) = address else {
        return String::new();
    };
    let shown = if !a.name.trim().is_empty() {
        a.name.trim().to_string()
    } else if a.host.is_empty() {
        a.mailbox.clone()
    } else {
        format!("{}@{}", a.mailbox, a.host)
    };
    shown.to_lowercase()
}

fn value(key: SortKey, hit: &Hit, fields: Option<&SortFields>) -> Value {
    match key {
        SortKey::Arrival => Value::Number(hit.internal_date),
        SortKey::Size => Value::Number(i64::from(hit.size)),
        SortKey::Date => Value::Number(sent_date(hit, fields)),
        SortKey::Subject => {
            Value::Text(fields.map_or(String::new(), |f| base_subject(&f.subject).key()))
        }
        SortKey::From => Value::Text(mailbox_key(fields.and_then(|f| f.from.as_ref()))),
        SortKey::To => Value::Text(mailbox_key(fields.and_then(|f| f.to.as_ref()))),
        SortKey::Cc => Value::Text(mailbox_key(fields.and_then(|f| f.cc.as_ref()))),
        SortKey::DisplayFrom => Value::Text(display_key(fields.and_then(|f| f.from.as_ref()))),
        SortKey::DisplayTo => Value::Text(display_key(fields.and_then(|f| f.to.as_ref()))),
    }
}

/// Orders `hits` by `criteria`. `fields[i]` belongs to `hits[i]`; it may be empty when no
/// criterion needs header fields. Returns the hits in sorted order.
pub fn sort(hits: &[Hit], fields: &[SortFields], criteria: &[SortCriterion]) -> Vec<Hit> {
    let mut keyed: Vec<(Vec<Value>, Hit)> = hits
        .iter()
        .enumerate()
        .map(|(i, hit)| {
            let f = fields.get(i);
            let values = criteria.iter().map(|c| value(c.key, hit, f)).collect();
            (values, *hit)
        })
        .collect();
    keyed.sort_by(|(a, ha), (b, hb)| {
        for (i, c) in criteria.iter().enumerate() {
            let ord = a.get(i).cmp(&b.get(i));
            let ord = if c.reverse { ord.reverse() } else { ord };
            if ord != Ordering::Equal {
                return ord;
            }
        }
        ha.msn.cmp(&hb.msn)
    });
    keyed.into_iter().map(|(_, hit)| hit).collect()
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
        let fields: Vec<SortFields> = headers
            .iter()
            .map(|h| ringmail_mime::analyze(format!("{h}\r\n\r\nbody\r\n").as_bytes()).sort)
            .collect();
        let criteria = [SortCriterion { key, reverse }];
        sort(&hits, &fields, &criteria)
            .iter()
            .map(|h| h.msn)
            .collect()
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
