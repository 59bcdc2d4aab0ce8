//! SEARCH and UID SEARCH: the classic `* SEARCH` answer (IMAP4rev1), ESEARCH with MIN, MAX,
//! ALL, COUNT (RFC 4731), SAVE for `$` (RFC 5182), and the IMAP4rev2 form, where a plain
//! SEARCH answers in ESEARCH form.

use crate::commands::reply::{ok_noting_expunges, store_error, Code, Reply};
use crate::commands::sort::ordered_runs;
use crate::recent::RecentUids;
use crate::search::{self, Collect, Found, Hit, Scope, SearchError};
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
    // The answer needs one number per match; SAVE of a message-number search needs the
    // UIDs as well.
    let collect = match (uid, save) {
        (true, _) => Collect::Uids,
        (false, false) => Collect::Msns,
        (false, true) => Collect::Hits,
    };
    let found = match run_search(session, criteria, charset, collect).await {
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
    let ids = found.numbers(uid);
    let esearch = ret.is_some() || session.enabled.imap4rev2;
    if !esearch {
        let modseq = found
            .uses_modseq
            .then(|| found.hits.iter().map(|h| h.modseq).max())
            .flatten();
        session.send(&data::Search { ids: &ids, modseq });
        return ok_noting_expunges(found.expunged, done);
    }
    // RETURN () and the IMAP4rev2 plain SEARCH both mean RETURN (ALL).
    let opts: Vec<SearchReturn> = match ret {
        Some(r) if !r.is_empty() => r.to_vec(),
        _ => vec![SearchReturn::All],
    };
    let want = |o: SearchReturn| opts.contains(&o);
    if save {
        session.saved_search = saved(found.numbers(true).into_owned(), &opts);
    }
    if opts.iter().all(|&o| o == SearchReturn::Save) {
        // SAVE alone: no ESEARCH response (RFC 5182 section 2.1).
        return ok_noting_expunges(found.expunged, done);
    }
    // The ids ascend: consecutive ones are ranges as they come, nothing to sort.
    let all = want(SearchReturn::All).then(|| ordered_runs(ids.iter().copied()));
    session.send(&Esearch {
        tag,
        uid,
        min: want(SearchReturn::Min)
            .then(|| ids.first().copied())
            .flatten(),
        max: want(SearchReturn::Max)
            .then(|| ids.last().copied())
            .flatten(),
        all: all.as_deref(),
        count: want(SearchReturn::Count).then_some(ids.len() as u64),
        modseq: found
            .uses_modseq
            .then(|| returned_modseq(&found.hits, &opts))
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
    collect: Collect,
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
    // The answer's MODSEQ is read from whole hits.
    let collect = if program.uses_modseq {
        Collect::Hits
    } else {
        collect
    };
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
    search::run(&scope, &program, collect).await
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

/// What `SAVE` keeps of the matches' `uids` (ascending): every match, or with MIN / MAX
/// but neither ALL nor COUNT, just those (RFC 5182 section 2.1). Takes the list to keep it
/// as it is: the UIDs of a message-number search were just built for this.
fn saved(uids: Vec<u32>, opts: &[SearchReturn]) -> Vec<u32> {
    let min = opts.contains(&SearchReturn::Min);
    let max = opts.contains(&SearchReturn::Max);
    let all = opts.contains(&SearchReturn::All) || opts.contains(&SearchReturn::Count);
    if all || !(min || max) {
        return uids;
    }
    let mut kept: Vec<u32> = Vec::new();
    if let (true, Some(&u)) = (min, uids.first()) {
        kept.push(u);
    }
    if let (true, Some(&u)) = (max, uids.last()) {
        kept.push(u);
    }
    kept.dedup();
    kept
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
