//! SORT and UID SORT (RFC 5256, RFC 5957 SORT=DISPLAY) with ESORT return options (RFC 5267).

use crate::commands::reply::{ok_noting_expunges, Reply};
use crate::commands::search::{error_reply, run_search};
use crate::search::{self, sort, Collect, Found, Hit};
use crate::session::Session;
use ringmail_proto::parser::{SearchKey, SearchReturn, SortCriterion};
use ringmail_proto::response::data::{Esearch, Sort};

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
        let ids: Vec<u32> = sorted.iter().map(id).collect();
        session.send(&Sort(&ids));
        return ok_noting_expunges(found.expunged, done);
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
        return ok_noting_expunges(found.expunged, done);
    }
    // ESORT: MIN and MAX are the first and last in sort order; ALL keeps the sort order.
    let all = want(SearchReturn::All).then(|| ordered_runs(sorted.iter().map(id)));
    session.send(&Esearch {
        tag,
        uid,
        min: want(SearchReturn::Min)
            .then(|| sorted.first().map(id))
            .flatten(),
        max: want(SearchReturn::Max)
            .then(|| sorted.last().map(id))
            .flatten(),
        all: all.as_deref(),
        count: want(SearchReturn::Count).then_some(sorted.len() as u64),
        modseq: None,
    });
    ok_noting_expunges(found.expunged, done)
}

/// ESORT ALL is a sequence-set "in the requested sort order" (RFC 5267): runs of ids that
/// rise by one are written as ranges (`1:5`), and nothing is reordered. A run never descends:
/// `5:1` means the same set as `1:5`, and the order would be lost (Dovecot writes the same).
pub(crate) fn ordered_runs(ids: impl IntoIterator<Item = u32>) -> Vec<(u32, u32)> {
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
    let mut found = run_search(session, keys, Some(charset), Collect::Hits).await?;
    let fields = if sort::needs_fields(criteria) {
        let Some(selected) = session.selected.clone() else {
            return Ok(Found::default());
        };
        let (mail, user) = session.mail().await?;
        let abandon = || session.should_abandon();
        search::load_sort_keys(&abandon, &mail, &user, selected.id, &mut found).await?
    } else {
        sort::KeyTable::default()
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
            let mut s = Vec::new();
            ringmail_proto::response::ResponseWriter::new(&mut s, false)
                .sequence_set(ordered_runs(ids.iter().copied()));
            String::from_utf8(s).unwrap()
        };
        assert_eq!(set(&[1, 2, 3, 4, 5]), "1:5");
        assert_eq!(set(&[5, 4, 3, 2, 1]), "5,4,3,2,1");
        assert_eq!(set(&[7, 8, 2, 3, 4, 9]), "7:8,2:4,9");
        assert_eq!(set(&[u32::MAX, 1, 2]), "4294967295,1:2");
        assert_eq!(set(&[]), "");
    }
}
