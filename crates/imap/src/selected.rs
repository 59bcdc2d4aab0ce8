//! The selected mailbox as one session sees it, and keeping that view in step with the store.
//!
//! A session keeps no copy of the mailbox: only the point it last synchronised at (HIGHESTMODSEQ
//! and UIDNEXT) and the message count it announced. The store answers "what changed since" at
//! command boundaries (`Partition::changes_since`). While expunges are pending but may not be
//! announced (RFC 9051 section 7.5.1: not during FETCH, STORE, SEARCH or any command that uses
//! sequence numbers), the session's numbering is rebuilt from the store's live UIDs plus the
//! expunged ones it has not announced yet.

use std::borrow::Cow;

use crate::recent::{self, MailboxKey, RecentUids};
use crate::session::Session;
use ringmail_proto::parser::SequenceSet;
use ringmail_proto::response::data::{Exists, Expunge, FetchFlags, Flags, Recent, Vanished};
use ringmail_proto::response::{Code, Response, ResponseWriter, StatusResponse};
use ringmail_store::{MailboxChanges, MessageEntry, Partition, StoreError};

/// A selected (or examined) mailbox.
#[derive(Debug, Clone)]
pub struct Selected {
    /// MAILBOXID (stable across renames).
    pub id: u64,
    /// The name as the client selected it (store form, UTF-8).
    pub name: String,
    /// EXAMINE, or SELECT of a mailbox the user may not change.
    pub read_only: bool,
    /// UIDVALIDITY at selection.
    pub uidvalidity: u32,
    /// HIGHESTMODSEQ the view is synchronised to.
    pub modseq: u64,
    /// UIDNEXT the view knows: messages with higher UIDs are not announced yet.
    pub uidnext: u32,
    /// The EXISTS count announced.
    pub exists: u32,
    /// CONDSTORE is on for this selection (MODSEQ in FETCH responses).
    pub condstore: bool,
    /// QRESYNC is on: expunges are announced as VANISHED.
    pub qresync: bool,
    /// Where the mailbox's `\Recent` floor is kept (see `imap::recent`).
    pub recent_key: MailboxKey,
    /// The UIDs recent for this session (always empty under IMAP4rev2).
    pub recent: RecentUids,
    /// The keywords the last FLAGS response listed: a FETCH may show no other (RFC 3501
    /// section 7.2.6), so a new one is announced first (see `announce_keywords`).
    pub keywords: Vec<String>,
}

/// The session's message numbering: MSN n is `uids[n - 1]`.
pub struct View {
    /// UIDs in MSN order, including expunged ones not announced yet.
    pub uids: Vec<u32>,
    /// Of `uids`, those expunged in the store (their data is gone).
    pub gone: Vec<u32>,
}

impl View {
    /// Number of messages the session sees.
    pub fn len(&self) -> u32 {
        self.uids.len() as u32
    }

    /// Whether the session sees no message.
    pub fn is_empty(&self) -> bool {
        self.uids.is_empty()
    }

    /// Whether `uid` was expunged but not announced yet.
    pub fn is_gone(&self, uid: u32) -> bool {
        self.gone.binary_search(&uid).is_ok()
    }

    /// (MSN, UID) pairs a sequence set names, ascending, each once. With `uid_set` the set
    /// holds UIDs (`*` is the highest UID seen); otherwise message numbers.
    pub fn resolve(&self, set: &SequenceSet<'_>, uid_set: bool, saved: &[u32]) -> Vec<(u32, u32)> {
        let mut out: Vec<(u32, u32)> = Vec::new();
        if set.is_saved() {
            // `$`: the UIDs saved by SEARCH RETURN (SAVE).
            for &uid in saved {
                if let Ok(i) = self.uids.binary_search(&uid) {
                    out.push((i as u32 + 1, uid));
                }
            }
            return out;
        }
        if self.uids.is_empty() {
            return out;
        }
        for range in set.ranges() {
            if uid_set {
                let largest = *self.uids.last().unwrap_or(&0);
                let (lo, hi) = range.resolve(largest);
                let start = self.uids.partition_point(|&u| u < lo);
                let end = self.uids.partition_point(|&u| u <= hi);
                for i in start..end {
                    out.push((i as u32 + 1, self.uids[i]));
                }
            } else {
                let (lo, hi) = range.resolve(self.len());
                let hi = hi.min(self.len());
                for msn in lo.max(1)..=hi {
                    out.push((msn, self.uids[msn as usize - 1]));
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Whether every message number in a (non-UID) set exists; RFC 9051 asks for BAD
    /// otherwise.
    pub fn msns_valid(&self, set: &SequenceSet<'_>) -> bool {
        if set.is_saved() {
            return true;
        }
        set.ranges().all(|range| {
            let (lo, hi) = range.resolve(self.len());
            lo >= 1 && hi <= self.len()
        })
    }
}

/// UID ranges for store operations (the store's own merge, re-exported for the commands).
pub use ringmail_store::to_ranges;

/// Before a UID command acts: announces the messages that arrived since the session last
/// looked (EXISTS, and RECENT for IMAP4rev1), so that a UID the client learned on another
/// connection (iOS Mail appends on one and moves on another) names a message here instead of
/// nothing. RFC 9051 section 7.4.1 lets EXISTS go out at any time; expunges may not during
/// FETCH, STORE or SEARCH (section 7.5.1), so pending ones stay for the sync at the end.
pub fn announce_new(session: &mut crate::session::Session) {
    let (Some(sel), Some(mail), Some(user)) = (
        session.selected.clone(),
        session.opened_mail(),
        session.user().map(str::to_string),
    ) else {
        return;
    };
    // A deleted mailbox is reported by the sync at the end of the command.
    let Ok(changes) = sel.changes(&mail, &user) else {
        return;
    };
    if changes.uidnext <= sel.uidnext {
        return;
    }
    if changes.vanished.is_empty() {
        // Nothing held back: the usual sync announces everything.
        sync(session, false);
        return;
    }
    // Expunges are pending and stay unannounced, so only the new messages join the view, and
    // only below the first of them that is already expunged again: past it, the later sync
    // would announce the expunge of a message this session never saw.
    let Ok(again) = mail.changes_since(&user, sel.id, sel.modseq, changes.uidnext) else {
        return;
    };
    let upto = again
        .vanished
        .iter()
        .copied()
        .find(|&uid| uid >= sel.uidnext)
        .unwrap_or(changes.uidnext);
    let rev1 = !session.enabled.imap4rev2;
    let mut recent = sel.recent.clone();
    if rev1 {
        if let Some(range) = recent::take(sel.recent_key, sel.uidnext, upto, !sel.read_only, || {
            sel.uidnext
        }) {
            recent.push(range);
        }
    }
    let Ok((added, modseqs, recent_count)) = mail.with_mailbox(&user, sel.id, |view| {
        let messages = view.messages();
        let first = messages.partition_point(|m| m.uid < sel.uidnext);
        let end = messages.partition_point(|m| m.uid < upto);
        let new = messages.get(first..end).unwrap_or_default();
        let recent_count = recent.count(|uid| messages.partition_point(|m| m.uid < uid));
        let modseqs: Vec<u64> = new.iter().map(|m| m.modseq).collect();
        (new.len() as u32, modseqs, recent_count)
    }) else {
        return;
    };
    if added == 0 {
        return;
    }
    let exists = sel.exists + added;
    session.send(&Exists(exists));
    if rev1 {
        session.send(&Recent(recent_count));
    }
    // Their modseqs are above the view's, so the next sync would take them for flag changes
    // and send FETCH FLAGS nobody asked for; marked as seen like the session's own STOREs.
    session.own_modseqs.extend(modseqs);
    if let Some(selected) = session.selected.as_mut() {
        selected.uidnext = upto;
        selected.exists = exists;
        selected.recent = recent;
    }
}

impl Selected {
    /// The session's numbering now. Cheap when nothing is pending: the store's live UIDs up to
    /// the announced count.
    pub fn view(&self, store: &Partition, user: &str) -> Result<View, StoreError> {
        let pending = store.changes_since(user, self.id, self.modseq, self.uidnext)?;
        store.with_mailbox(user, self.id, |mailbox| {
            // Sorted by UID: cut at the session's UIDNEXT first, so the copy has an exact
            // size (a million messages: one allocation instead of twenty regrowths).
            let uids = mailbox.columns().uids();
            let known = uids.partition_point(|&u| u < self.uidnext);
            let mut uids: Vec<u32> = uids[..known].to_vec();
            let gone = pending.vanished.clone();
            if !gone.is_empty() {
                uids.extend(gone.iter().copied());
                uids.sort_unstable();
                uids.dedup();
            }
            View { uids, gone }
        })
    }

    /// Changes since the last sync, for `sync`.
    pub fn changes(&self, store: &Partition, user: &str) -> Result<MailboxChanges, StoreError> {
        store.changes_since(user, self.id, self.modseq, self.uidnext)
    }
}

/// A CONDSTORE enabling command (FETCH MODSEQ, STORE UNCHANGEDSINCE, ...) ran: CONDSTORE is
/// on for the rest of the session, and the first time it comes on for the selected mailbox
/// its HIGHESTMODSEQ is sent (RFC 7162 section 3.1).
pub fn enable_condstore(session: &mut Session) {
    session.enabled.condstore = true;
    let Some(selected) = session.selected.as_mut() else {
        return;
    };
    if !selected.condstore {
        selected.condstore = true;
        let highest = StatusResponse::ok("Highest").with_code(Code::HighestModSeq(selected.modseq));
        session.send(&highest);
    }
}

/// Writes the `FLAGS` and `PERMANENTFLAGS` responses of a mailbox whose messages use
/// `keywords`. A read-only selection may change no flag at all.
pub fn write_flags(w: &mut ResponseWriter<'_>, keywords: &[String], read_only: bool) {
    let mut list: Vec<Cow<'static, str>> = crate::flags::SYSTEM_FLAGS
        .split(' ')
        .map(Cow::Borrowed)
        .chain(keywords.iter().map(|k| Cow::Owned(k.clone())))
        .collect();
    Flags(&list).serialize(w);
    let permanent = if read_only {
        StatusResponse::ok("Read-only mailbox").with_code(Code::PermanentFlags(Vec::new()))
    } else {
        list.push(Cow::Borrowed("\\*"));
        StatusResponse::ok("Flags permitted").with_code(Code::PermanentFlags(list))
    };
    permanent.serialize(w);
}

/// Before FETCH responses showing `messages`' flags: when one of them carries a keyword
/// the session's last FLAGS response did not list (set by this session, another one or
/// LMTP), FLAGS and PERMANENTFLAGS go out again with it, as RFC 3501 section 7.2.6 and
/// RFC 9051 section 7.3.5 require.
pub fn announce_keywords<'m>(
    session: &mut Session,
    mail: &Partition,
    user: &str,
    messages: impl IntoIterator<Item = &'m MessageEntry>,
) {
    let Some(selected) = session.selected.as_mut() else {
        return;
    };
    // Keyword sets repeat across messages: each is looked at once, and a FETCH of messages
    // without keywords costs no look-up at all.
    let mut sets: Vec<&MessageEntry> = messages.into_iter().filter(|m| m.kwset != 0).collect();
    if sets.is_empty() {
        return;
    }
    sets.sort_unstable_by_key(|m| m.kwset);
    sets.dedup_by_key(|m| m.kwset);
    let new: Vec<String> = mail
        .with_mailbox(user, selected.id, |view| {
            let mut new: Vec<String> = Vec::new();
            for m in sets {
                for k in view.keywords(m) {
                    if !selected.keywords.iter().any(|x| x == k) && !new.iter().any(|x| x == k) {
                        new.push(k.to_string());
                    }
                }
            }
            new
        })
        .unwrap_or_default();
    if new.is_empty() {
        return;
    }
    selected.keywords.extend(new);
    let mut w = ResponseWriter::new(&mut session.out, session.enabled.utf8());
    write_flags(&mut w, &selected.keywords, selected.read_only);
}

/// Sends what changed in the selected mailbox since the session last looked: EXPUNGE (or
/// VANISHED with QRESYNC), EXISTS and FETCH FLAGS. With `allow_expunge` false (a command that
/// uses message numbers is running) nothing is sent while expunges are pending, so the
/// client's numbering stays valid; they go out at the next command that allows them.
pub fn sync(session: &mut Session, allow_expunge: bool) {
    let (Some(sel), Some(mail), Some(user)) = (
        session.selected.clone(),
        session.opened_mail(),
        session.user().map(str::to_string),
    ) else {
        return;
    };
    let changes = match sel.changes(&mail, &user) {
        Ok(changes) => changes,
        Err(_) => {
            // Deleted by another session: the selection is gone (RFC 9051 section 6.3.4).
            session.selected = None;
            let closed = StatusResponse::ok("The selected mailbox was deleted");
            session.send(&closed.with_code(Code::Closed));
            return;
        }
    };
    if !changes.vanished.is_empty() && !allow_expunge {
        return;
    }
    let own = std::mem::take(&mut session.own_modseqs);
    // The FETCHes below and the new messages a later FETCH shows may carry new keywords.
    let shown: Vec<MessageEntry> = mail
        .with_mailbox(&user, sel.id, |view| {
            let messages = view.messages();
            let new = &messages[messages.partition_point(|m| m.uid < sel.uidnext)..];
            let changed = changes.flag_changes.iter().map(|(_, entry)| entry);
            changed
                .chain(new)
                .filter(|m| m.kwset != 0)
                .copied()
                .collect()
        })
        .unwrap_or_default();
    announce_keywords(session, &mail, &user, &shown);
    if !changes.vanished.is_empty() {
        if sel.qresync {
            session.send(&Vanished {
                earlier: false,
                uids: &to_ranges(changes.vanished.iter().copied()),
            });
        } else {
            for &msn in &changes.expunge_msns {
                session.send(&Expunge(msn));
            }
        }
    }
    // New messages are recent for the first session that notices them (RFC 3501 section
    // 2.3.2); EXAMINE only looks. IMAP4rev2 has no \Recent.
    let rev1 = !session.enabled.imap4rev2;
    let mut recent = sel.recent;
    if rev1 && changes.uidnext > sel.uidnext {
        if let Some(range) =
            // A session that is selected made the floor exist unless its SELECT found
            // nothing to claim; then nothing below its own UIDNEXT is left to claim either.
            recent::take(
                sel.recent_key,
                sel.uidnext,
                changes.uidnext,
                !sel.read_only,
                || sel.uidnext,
            )
        {
            recent.push(range);
        }
    }
    let after_expunge = sel.exists.saturating_sub(changes.vanished.len() as u32);
    if changes.exists != after_expunge
        || (changes.exists != sel.exists && changes.vanished.is_empty())
    {
        session.send(&Exists(changes.exists));
        if rev1 {
            // RFC 3501 section 7.3.2: RECENT goes with a change of the mailbox's size.
            let count = mail
                .with_mailbox(&user, sel.id, |v| {
                    let messages = v.messages();
                    recent.count(|uid| messages.partition_point(|m| m.uid < uid))
                })
                .unwrap_or(0);
            session.send(&Recent(count));
        }
    }
    let utf8 = session.enabled.utf8();
    let flag_lines: Vec<Vec<u8>> = mail
        .with_mailbox(&user, sel.id, |view| {
            changes
                .flag_changes
                .iter()
                .filter(|(_, entry)| !own.contains(&entry.modseq))
                .map(|&(msn, entry)| {
                    let keywords = view.keywords(&entry);
                    let mut line = Vec::new();
                    FetchFlags {
                        msn,
                        uid: Some(entry.uid),
                        flags: crate::flags::shown(
                            entry.flags,
                            &keywords,
                            rev1 && recent.contains(entry.uid),
                        ),
                        modseq: sel.condstore.then_some(entry.modseq),
                    }
                    .serialize(&mut ResponseWriter::new(&mut line, utf8));
                    line
                })
                .collect()
        })
        .unwrap_or_default();
    for line in flag_lines {
        session.out.extend_from_slice(&line);
    }
    if let Some(selected) = session.selected.as_mut() {
        selected.modseq = changes.highest_modseq;
        selected.uidnext = changes.uidnext;
        selected.exists = changes.exists;
        selected.recent = recent;
    }
}

#[cfg(test)]
mod tests {
    use super::write_flags;
    use ringmail_proto::response::ResponseWriter;

    #[test]
    fn flags_and_permanentflags_list_the_same_keywords() {
        let mut out = Vec::new();
        let keywords = ["$Work".to_string(), "NIL".to_string()];
        write_flags(&mut ResponseWriter::new(&mut out, false), &keywords, false);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work NIL)\r\n\
             * OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work NIL \\*)] \
             Flags permitted\r\n"
        );
        let mut out = Vec::new();
        let keywords = ["$Work".to_string()];
        write_flags(&mut ResponseWriter::new(&mut out, false), &keywords, true);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work)\r\n\
             * OK [PERMANENTFLAGS ()] Read-only mailbox\r\n"
        );
    }
}
