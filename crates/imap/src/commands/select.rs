//! SELECT, EXAMINE, CLOSE and UNSELECT.

use crate::commands::reply::{store_error, Code, Reply};
use crate::mailbox_name;
use crate::recent::{MailboxKey, RecentUids};
use crate::selected::Selected;
use crate::selected::{to_ranges, write_flags};
use crate::session::Session;
use ringmail_proto::parser::QResync;
use ringmail_proto::parser::{Mailbox, SelectParams};
use ringmail_proto::response::data::{Exists, FetchFlags, Recent, Vanished};
use ringmail_proto::response::{Response, ResponseWriter, StatusResponse};
use ringmail_store::flag;
use ringmail_store::{Partition, StoreError};

/// `SELECT` (read-write) or `EXAMINE` (read-only).
pub async fn select(
    session: &mut Session,
    mailbox: &Mailbox<'_>,
    params: &SelectParams<'_>,
    read_only: bool,
) -> Reply {
    let command = if read_only { "EXAMINE" } else { "SELECT" };
    let name = match mailbox_name::decode(mailbox, session.enabled) {
        Ok(name) => name,
        Err(e) => return Reply::no(e),
    };
    // Selecting closes the previous mailbox first, even when the new one fails to open; the
    // saved search result belongs to it (RFC 5182 section 2.1).
    session.saved_search.clear();
    if session.selected.take().is_some() {
        let closed = StatusResponse::ok("Previous mailbox closed").with_code(Code::Closed);
        session.send(&closed);
    }
    if params.qresync.is_some() && !session.enabled.qresync {
        return Reply::bad("SELECT (QRESYNC) needs ENABLE QRESYNC first");
    }
    if params.condstore {
        session.enabled.condstore = true;
    }
    let condstore = session.enabled.condstore;
    let qresync = session.enabled.qresync;
    let rev1 = !session.enabled.imap4rev2;
    let (mail, user) = match session.mail().await {
        Ok(m) => m,
        Err(e) => return store_error(&format!("{command} failed"), &e),
    };
    let partitions = session.exec.config().storage.partitions;
    let opened = mail.with_mailbox(&user, name.as_str(), |view| {
        let messages = view.messages();
        // The messages no session has claimed yet are recent for this one; SELECT claims
        // them, EXAMINE only shows them (RFC 3501 section 6.3.2). IMAP4rev2 has no \Recent.
        let recent_key = MailboxKey::new(&user, partitions, view.id());
        let mut recent = RecentUids::default();
        if rev1 {
            let initial = || view.uidnext_at_open();
            if let Some(range) =
                crate::recent::take(recent_key, 1, view.uidnext(), !read_only, initial)
            {
                recent.push(range);
            }
        }
        let recent_count = recent.count(|uid| messages.partition_point(|m| m.uid < uid));
        let first_unseen = messages
            .iter()
            .position(|m| m.flags & flag::SEEN == 0)
            .map(|i| i as u32 + 1);
        let mut keywords: Vec<String> = Vec::new();
        for m in messages {
            for k in view.keywords(m) {
                if !keywords.iter().any(|x| x == k) {
                    keywords.push(k.to_string());
                }
            }
        }
        (
            Selected {
                id: view.id(),
                name: view.name().to_string(),
                read_only,
                uidvalidity: view.uidvalidity(),
                modseq: view.highest_modseq(),
                uidnext: view.uidnext(),
                exists: messages.len() as u32,
                condstore,
                qresync,
                recent_key,
                recent,
                keywords,
            },
            first_unseen,
            recent_count,
        )
    });
    let (selected, first_unseen, recent_count) = match opened {
        Ok(o) => o,
        Err(e) => return store_error(&format!("{command} failed"), &e),
    };
    session.send(&Exists(selected.exists));
    if !session.enabled.imap4rev2 {
        session.send(&Recent(recent_count));
        if let Some(msn) = first_unseen {
            session.send(&StatusResponse::ok("First unseen").with_code(Code::Unseen(msn)));
        }
    }
    write_flags(&mut session.writer(), &selected.keywords, read_only);
    for (code, text) in [
        (Code::UidValidity(selected.uidvalidity), "UIDs valid"),
        (Code::UidNext(selected.uidnext), "Predicted next UID"),
        (Code::HighestModSeq(selected.modseq), "Highest"),
        (Code::MailboxId(selected.id), "Ok"),
    ] {
        session.send(&StatusResponse::ok(text).with_code(code));
    }
    if let Some(q) = &params.qresync {
        if q.uidvalidity == selected.uidvalidity {
            if let Err(e) = resync(session, &mail, &user, &selected, q) {
                return store_error(&format!("{command} failed"), &e);
            }
        }
    }
    session.selected = Some(selected);
    if read_only {
        Reply::ok("EXAMINE completed").with_code(Code::ReadOnly)
    } else {
        Reply::ok("SELECT completed").with_code(Code::ReadWrite)
    }
}

/// `CLOSE`: expunges `\Deleted` messages silently (when read-write) and deselects.
pub async fn close(session: &mut Session) -> Reply {
    let Some(selected) = session.selected.take() else {
        return Reply::bad("No mailbox selected");
    };
    session.saved_search.clear();
    if !selected.read_only {
        if let (Some(mail), Some(user)) = (session.opened_mail(), session.user()) {
            let user = user.to_string();
            if let Err(e) = mail.expunge_deleted(&user, selected.id).await {
                return store_error("CLOSE failed to expunge", &e);
            }
        }
    }
    Reply::ok("CLOSE completed")
}

/// `UNSELECT` (RFC 3691): deselects without expunging.
pub fn unselect(session: &mut Session) -> Reply {
    if session.selected.take().is_none() {
        return Reply::bad("No mailbox selected");
    }
    session.saved_search.clear();
    Reply::ok("UNSELECT completed")
}

/// QRESYNC's quick resynchronisation (RFC 7162 section 3.2.5): what the client's cache is
/// missing since `modseq`, as `VANISHED (EARLIER)` and FETCH responses, without the client
/// listing its whole mailbox.
fn resync(
    session: &mut Session,
    mail: &Partition,
    user: &str,
    selected: &Selected,
    q: &QResync<'_>,
) -> Result<(), StoreError> {
    let utf8 = session.enabled.utf8();
    let lines = mail.with_mailbox(user, selected.id, |view| {
        let known = |uid: u32| match &q.known_uids {
            None => true,
            Some(set) => set.ranges().any(|r| {
                let (lo, hi) = r.resolve(u32::MAX);
                (lo..=hi).contains(&uid)
            }),
        };
        let (gone, complete) = view.vanished_since(q.modseq);
        let mut vanished = if complete {
            to_ranges(gone)
        } else {
            // Older expunges were forgotten: every UID below UIDNEXT that is not here, kept
            // as ranges (gaps between live UIDs) so a sparse mailbox costs no UID-sized list.
            let mut gaps = Vec::new();
            let mut next = 1u32;
            for m in view.messages() {
                if m.uid > next {
                    gaps.push((next, m.uid - 1));
                }
                next = m.uid.saturating_add(1);
            }
            if view.uidnext() > next {
                gaps.push((next, view.uidnext() - 1));
            }
            gaps
        };
        if let Some(set) = &q.known_uids {
            let known: Vec<(u32, u32)> = set.ranges().map(|r| r.resolve(u32::MAX)).collect();
            vanished = intersect(&vanished, &merge(known));
        }
        let mut out = Vec::new();
        let mut w = ResponseWriter::new(&mut out, utf8);
        if !vanished.is_empty() {
            Vanished {
                earlier: true,
                uids: &vanished,
            }
            .serialize(&mut w);
        }
        for (i, m) in view.messages().iter().enumerate() {
            if m.modseq > q.modseq && known(m.uid) {
                let keywords = view.keywords(m);
                FetchFlags {
                    msn: i as u32 + 1,
                    uid: Some(m.uid),
                    flags: crate::flags::shown(m.flags, &keywords, selected.recent.contains(m.uid)),
                    modseq: Some(m.modseq),
                }
                .serialize(&mut w);
            }
        }
        out
    })?;
    session.out.extend_from_slice(&lines);
    Ok(())
}

/// Sorts ranges and merges the ones that overlap or touch.
fn merge(mut ranges: Vec<(u32, u32)>) -> Vec<(u32, u32)> {
    ranges.sort_unstable();
    let mut out: Vec<(u32, u32)> = Vec::with_capacity(ranges.len());
    for (lo, hi) in ranges {
        match out.last_mut() {
            Some((_, last)) if lo <= last.saturating_add(1) => *last = (*last).max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

/// The UIDs in both sorted, disjoint range lists, as ranges (one pass over both).
fn intersect(a: &[(u32, u32)], b: &[(u32, u32)]) -> Vec<(u32, u32)> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while let (Some(&(a_lo, a_hi)), Some(&(b_lo, b_hi))) = (a.get(i), b.get(j)) {
        let (lo, hi) = (a_lo.max(b_lo), a_hi.min(b_hi));
        if lo <= hi {
            out.push((lo, hi));
        }
        if a_hi < b_hi {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{intersect, merge};

    #[test]
    fn range_algebra() {
        assert_eq!(
            merge(vec![(5, 9), (1, 2), (3, 4), (20, 20)]),
            vec![(1, 9), (20, 20)]
        );
        assert_eq!(
            intersect(
                &[(1, 3), (7, 10), (15, 4_000_000_000)],
                &[(2, 8), (12, u32::MAX)]
            ),
            vec![(2, 3), (7, 8), (15, 4_000_000_000)]
        );
        assert!(intersect(&[(1, 3)], &[]).is_empty());
    }
}
