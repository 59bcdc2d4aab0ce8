//! SEARCH and UID SEARCH: the classic `* SEARCH` answer (IMAP4rev1), ESEARCH with MIN, MAX,
//! ALL, COUNT (RFC 4731), SAVE for `$` (RFC 5182), and the IMAP4rev2 form, where a plain
//! SEARCH answers in ESEARCH form.

use crate::commands::reply::{ok_noting_expunges, store_error, Code, Reply};
use crate::recent::RecentUids;
use crate::search::{self, Found, Hit, Scope, SearchError};
use crate::selected::to_ranges;
use crate::session::Session;
use ringmail_proto::parser::{SearchKey, SearchReturn};
use ringmail_proto::response::data::{self, Esearch};
use ringmail_store::StoreError;

/// `[UID] SEARCH [RETURN (...)] [CHARSET x] keys`
pub async fn search(
    session: &mut Session,
    tag: &str,
    uid: bool,
    ret: Option<&[SearchReturn]>,
    charset: Option<&[u8]>,
    criteria: &[SearchKey<'_>],
) -> Reply {
    let save = ret.is_some_and(|r| r.contains(&SearchReturn::Save));
    let found = match run_search(session, criteria, charset).await {
        Ok(found) => found,
        Err(e) => {
            // RFC 5182 section 2.1: a failed SEARCH ... SAVE leaves `$` empty.
            if save {
                session.saved_search.clear();
            }
            return error_reply(&e);
        }
    };
    let done = if uid {
        "UID SEARCH completed"
    } else {
        "SEARCH completed"
    };
    let esearch = ret.is_some() || session.enabled.imap4rev2;
    if !esearch {
        classic(session, uid, &found);
        return ok_noting_expunges(found.expunged, done);
    }
    // RETURN () and the IMAP4rev2 plain SEARCH both mean RETURN (ALL).
    let opts: Vec<SearchReturn> = match ret {
        Some(r) if !r.is_empty() => r.to_vec(),
        _ => vec![SearchReturn::All],
    };
    let hits = &found.hits;
    let want = |o: SearchReturn| opts.contains(&o);
    if save {
        session.saved_search = saved(hits, &opts);
    }
    if opts.iter().all(|&o| o == SearchReturn::Save) {
        // SAVE alone: no ESEARCH response (RFC 5182 section 2.1).
        return ok_noting_expunges(found.expunged, done);
    }
    let id = |h: &Hit| if uid { h.uid } else { h.msn };
    let all = want(SearchReturn::All).then(|| to_ranges(hits.iter().map(id)));
    session.send(&Esearch {
        tag,
        uid,
        min: want(SearchReturn::Min)
            .then(|| hits.first().map(id))
            .flatten(),
        max: want(SearchReturn::Max)
            .then(|| hits.last().map(id))
            .flatten(),
        all: all.as_deref(),
        count: want(SearchReturn::Count).then_some(hits.len() as u64),
        modseq: found
            .uses_modseq
            .then(|| returned_modseq(hits, &opts))
            .flatten(),
    });
    ok_noting_expunges(found.expunged, done)
}

/// Runs `keys` over the session's selected mailbox: the bridge between the session and the
/// search engine, which sees only a [`Scope`].
pub(crate) async fn run_search(
    session: &mut Session,
    keys: &[SearchKey<'_>],
    charset: Option<&[u8]>,
) -> Result<Found, SearchError> {
    if charset.is_some_and(|c| !search::charset_supported(c)) {
        return Err(SearchError::BadCharset);
    }
    let Some(selected) = session.selected.clone() else {
        return Err(SearchError::Store(StoreError::NoSuchMailbox));
    };
    let (mail, user) = session.mail().await?;
    let view = selected.view(&mail, &user)?;
    let no_recent = RecentUids::default();
    let recent = if session.enabled.imap4rev2 {
        &no_recent
    } else {
        &selected.recent
    };
    // Compiling never gives up; the run checks between chunks of messages.
    let never = || false;
    let scope = Scope {
        mail: &mail,
        user: &user,
        mailbox: selected.id,
        view: &view,
        saved: &session.saved_search,
        recent,
        abandon: &never,
    };
    let program = search::compile(&scope, keys)?;
    if program.uses_modseq {
        // SEARCH MODSEQ is a CONDSTORE-enabling command (RFC 7162 section 3.1).
        if let Some(s) = session.selected.as_mut() {
            s.condstore = true;
        }
    }
    let abandon = || session.should_abandon();
    let scope = Scope {
        mail: &mail,
        user: &user,
        mailbox: selected.id,
        view: &view,
        saved: &session.saved_search,
        recent,
        abandon: &abandon,
    };
    search::run(&scope, &program).await
}

/// The MODSEQ of an ESEARCH answer (RFC 7162 section 3.1.5): with MIN or MAX alone, the
/// mod-sequence of that one message; with MIN and MAX only, the higher of the two; with ALL
/// or COUNT, the highest of every match. `None` when nothing matched.
fn returned_modseq(hits: &[Hit], opts: &[SearchReturn]) -> Option<u64> {
    let want = |o: SearchReturn| opts.contains(&o);
    if want(SearchReturn::All) || want(SearchReturn::Count) {
        return hits.iter().map(|h| h.modseq).max();
    }
    let min = want(SearchReturn::Min).then(|| hits.first()).flatten();
    let max = want(SearchReturn::Max).then(|| hits.last()).flatten();
    min.into_iter().chain(max).map(|h| h.modseq).max()
}

/// `* SEARCH 1 2 3 [(MODSEQ n)]`
fn classic(session: &mut Session, uid: bool, found: &Found) {
    let ids: Vec<u32> = found
        .hits
        .iter()
        .map(|hit| if uid { hit.uid } else { hit.msn })
        .collect();
    let modseq = found
        .uses_modseq
        .then(|| found.hits.iter().map(|h| h.modseq).max())
        .flatten();
    session.send(&data::Search { ids: &ids, modseq });
}

/// What `SAVE` keeps: every match, or with MIN / MAX but neither ALL nor COUNT, just those
/// (RFC 5182 section 2.1).
fn saved(hits: &[Hit], opts: &[SearchReturn]) -> Vec<u32> {
    let min = opts.contains(&SearchReturn::Min);
    let max = opts.contains(&SearchReturn::Max);
    let all = opts.contains(&SearchReturn::All) || opts.contains(&SearchReturn::Count);
    if all || !(min || max) {
        return hits.iter().map(|h| h.uid).collect();
    }
    let mut uids: Vec<u32> = Vec::new();
    if let (true, Some(h)) = (min, hits.first()) {
        uids.push(h.uid);
    }
    if let (true, Some(h)) = (max, hits.last()) {
        uids.push(h.uid);
    }
    uids.sort_unstable();
    uids.dedup();
    uids
}

/// The tagged answer for a search that failed.
pub(crate) fn error_reply(e: &SearchError) -> Reply {
    match e {
        SearchError::BadCharset => {
            Reply::no("Unsupported charset").with_code(Code::BadCharset(&["UTF-8", "US-ASCII"]))
        }
        SearchError::TooComplex => {
            Reply::no("Too many keywords in one search").with_code(Code::Limit)
        }
        SearchError::Store(e) => store_error("SEARCH failed", e),
        SearchError::Abandoned => {
            Reply::no("Search abandoned: server shutting down").with_code(Code::Unavailable)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(msn: u32, modseq: u64) -> Hit {
        Hit {
            msn,
            uid: msn,
            size: 0,
            modseq,
            internal_date: 0,
        }
    }

    #[test]
    fn modseq_is_that_of_the_messages_returned() {
        // Message 2 changed last; the lowest and highest matches changed earlier.
        let hits = [hit(1, 10), hit(2, 30), hit(3, 20)];
        let modseq = |opts: &[SearchReturn]| returned_modseq(&hits, opts);
        assert_eq!(modseq(&[SearchReturn::Min]), Some(10));
        assert_eq!(modseq(&[SearchReturn::Max]), Some(20));
        assert_eq!(modseq(&[SearchReturn::Min, SearchReturn::Max]), Some(20));
        assert_eq!(modseq(&[SearchReturn::All]), Some(30));
        assert_eq!(modseq(&[SearchReturn::Min, SearchReturn::Count]), Some(30));
        assert_eq!(returned_modseq(&[], &[SearchReturn::Min]), None);
    }
}
