//! SEARCH and UID SEARCH: the classic `* SEARCH` answer (IMAP4rev1), ESEARCH with MIN, MAX,
//! ALL, COUNT (RFC 4731), SAVE for `$` (RFC 5182), and the IMAP4rev2 form, where a plain
//! SEARCH answers in ESEARCH form.

use std::fmt::Write as _;

use crate::imap::commands::reply::Reply;
use crate::imap::parser::{SearchKey, SearchReturn};
use crate::imap::search::{self, Found, Hit, SearchError};
use crate::imap::selected::{to_ranges, write_set};
use crate::imap::session::Session;

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
    let found = match search::run(session, criteria, charset).await {
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
        return Reply::ok(done);
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
        return Reply::ok(done);
    }
    let id = |h: &Hit| if uid { h.uid } else { h.msn };
    let mut line = esearch_prefix(tag, uid);
    if let (Some(first), Some(last)) = (hits.first(), hits.last()) {
        if want(SearchReturn::Min) {
            line.push_str(&format!(" MIN {}", id(first)));
        }
        if want(SearchReturn::Max) {
            line.push_str(&format!(" MAX {}", id(last)));
        }
        if want(SearchReturn::All) {
            line.push_str(" ALL ");
            write_set(&mut line, &to_ranges(hits.iter().map(id)));
        }
    }
    if want(SearchReturn::Count) {
        line.push_str(&format!(" COUNT {}", hits.len()));
    }
    if found.uses_modseq {
        // RFC 7162 section 3.1.5: the highest mod-sequence of what was returned.
        let returned: Box<dyn Iterator<Item = &Hit>> =
            if want(SearchReturn::All) || want(SearchReturn::Count) {
                Box::new(hits.iter())
            } else {
                Box::new(hits.first().into_iter().chain(hits.last()))
            };
        if let Some(modseq) = returned.map(|h| h.modseq).max() {
            line.push_str(&format!(" MODSEQ {modseq}"));
        }
    }
    session.untagged(&line);
    Reply::ok(done)
}

/// `* SEARCH 1 2 3 [(MODSEQ n)]`
fn classic(session: &mut Session, uid: bool, found: &Found) {
    // About 8 bytes a hit; one growing buffer, no string per hit.
    let mut line = String::with_capacity(8 + found.hits.len() * 8);
    line.push_str("SEARCH");
    for hit in &found.hits {
        let _ = write!(line, " {}", if uid { hit.uid } else { hit.msn });
    }
    if found.uses_modseq {
        if let Some(modseq) = found.hits.iter().map(|h| h.modseq).max() {
            line.push_str(&format!(" (MODSEQ {modseq})"));
        }
    }
    session.untagged(&line);
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

/// `ESEARCH (TAG "t") [UID]`
pub(crate) fn esearch_prefix(tag: &str, uid: bool) -> String {
    // A tag holds no '"' or '\' (they are atom-specials), so it can be quoted as is.
    let mut line = format!("ESEARCH (TAG \"{tag}\")");
    if uid {
        line.push_str(" UID");
    }
    line
}

/// The tagged answer for a search that failed.
pub(crate) fn error_reply(e: &SearchError) -> Reply {
    match e {
        SearchError::BadCharset => Reply::no("[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset"),
        SearchError::TooComplex => Reply::no("[LIMIT] Too many keywords in one search"),
        SearchError::Store(e) => Reply::store_error("SEARCH failed", e),
        SearchError::Abandoned => Reply::no("[UNAVAILABLE] Search abandoned: server shutting down"),
    }
}
