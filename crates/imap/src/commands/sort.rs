//! SORT and UID SORT (RFC 5256, RFC 5957 SORT=DISPLAY) with ESORT return options (RFC 5267).

use crate::commands::reply::Reply;
use crate::commands::search::{error_reply, esearch_prefix};
use crate::search::{self, sort, Found, Hit};
use crate::selected::write_set;
use crate::session::Session;
use ringmail_proto::parser::{SearchKey, SearchReturn, SortCriterion};

/// `[UID] SORT [RETURN (...)] (criteria) charset keys`
pub async fn sort(
    session: &mut Session,
    tag: &str,
    uid: bool,
    ret: Option<&[SearchReturn]>,
    criteria: &[SortCriterion],
    charset: &[u8],
    keys: &[SearchKey<'_>],
) -> Reply {
    let save = ret.is_some_and(|r| r.contains(&SearchReturn::Save));
    let found = match run(session, criteria, charset, keys).await {
        Ok(found) => found,
        Err(e) => {
            if save {
                session.saved_search.clear();
            }
            return error_reply(&e);
        }
    };
    let done = if uid {
        "UID SORT completed"
    } else {
        "SORT completed"
    };
    let sorted = &found.hits;
    let id = |h: &Hit| if uid { h.uid } else { h.msn };
    let Some(ret) = ret else {
        let mut line = String::from("SORT");
        for hit in sorted {
            line.push(' ');
            line.push_str(&id(hit).to_string());
        }
        session.untagged(&line);
        return Reply::ok_noting_expunges(found.expunged, done);
    };
    let opts: Vec<SearchReturn> = if ret.is_empty() {
        vec![SearchReturn::All]
    } else {
        ret.to_vec()
    };
    let want = |o: SearchReturn| opts.contains(&o);
    if save {
        let mut uids: Vec<u32> = sorted.iter().map(|h| h.uid).collect();
        uids.sort_unstable();
        session.saved_search = uids;
    }
    if opts.iter().all(|&o| o == SearchReturn::Save) {
        return Reply::ok_noting_expunges(found.expunged, done);
    }
    let mut line = esearch_prefix(tag, uid);
    // ESORT: MIN and MAX are the first and last in sort order; ALL keeps the sort order.
    if let (Some(first), Some(last)) = (sorted.first(), sorted.last()) {
        if want(SearchReturn::Min) {
            line.push_str(&format!(" MIN {}", id(first)));
        }
        if want(SearchReturn::Max) {
            line.push_str(&format!(" MAX {}", id(last)));
        }
        if want(SearchReturn::All) {
            line.push_str(" ALL ");
            write_set(&mut line, &ordered_runs(sorted.iter().map(id)));
        }
    }
    if want(SearchReturn::Count) {
        line.push_str(&format!(" COUNT {}", sorted.len()));
    }
    session.untagged(&line);
    Reply::ok_noting_expunges(found.expunged, done)
}

/// ESORT ALL is a sequence-set "in the requested sort order" (RFC 5267): runs of ids that
/// rise by one are written as ranges (`1:5`), and nothing is reordered. A run never descends:
/// `5:1` means the same set as `1:5`, and the order would be lost (Dovecot writes the same).
fn ordered_runs(ids: impl IntoIterator<Item = u32>) -> Vec<(u32, u32)> {
    let mut runs: Vec<(u32, u32)> = Vec::new();
    for id in ids {
        match runs.last_mut() {
            Some((_, hi)) if hi.checked_add(1) == Some(id) => *hi = id,
            _ => runs.push((id, id)),
        }
    }
    runs
}

/// The matches in sort order.
async fn run(
    session: &mut Session,
    criteria: &[SortCriterion],
    charset: &[u8],
    keys: &[SearchKey<'_>],
) -> Result<Found, search::SearchError> {
    let mut found = search::run(session, keys, Some(charset)).await?;
    let fields = if sort::needs_fields(criteria) {
        let Some(selected) = session.selected.clone() else {
            return Ok(Found::default());
        };
        let (mail, user) = session.mail().await?;
        search::load_sort_fields(session, &mail, &user, selected.id, &mut found).await?
    } else {
        Vec::new()
    };
    found.hits = sort::sort(&found.hits, &fields, criteria);
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_keeps_the_sort_order_and_compacts_rising_runs() {
        let set = |ids: &[u32]| {
            let mut s = String::new();
            write_set(&mut s, &ordered_runs(ids.iter().copied()));
            s
        };
        assert_eq!(set(&[1, 2, 3, 4, 5]), "1:5");
        assert_eq!(set(&[5, 4, 3, 2, 1]), "5,4,3,2,1");
        assert_eq!(set(&[7, 8, 2, 3, 4, 9]), "7:8,2:4,9");
        assert_eq!(set(&[u32::MAX, 1, 2]), "4294967295,1:2");
        assert_eq!(set(&[]), "");
    }
}
