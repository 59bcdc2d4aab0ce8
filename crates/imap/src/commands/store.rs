//! STORE and UID STORE, with CONDSTORE's UNCHANGEDSINCE (RFC 7162).

use crate::commands::reply::{store_error, Code, Reply};
use crate::selected::{announce_keywords, enable_condstore, to_ranges};
use crate::session::Session;
use ringmail_proto::parser::{Flag, SequenceSet, StoreMode};
use ringmail_proto::response::data::FetchFlags;
use ringmail_proto::response::{Response, ResponseWriter};
use ringmail_store::{FlagMode, MessageEntry};

/// `[UID] STORE set [(UNCHANGEDSINCE n)] (+|-)FLAGS[.SILENT] (flags)`
#[allow(clippy::too_many_arguments)]
pub async fn store(
    session: &mut Session,
    uid_mode: bool,
    set: &SequenceSet<'_>,
    unchanged_since: Option<u64>,
    mode: StoreMode,
    silent: bool,
    flags: &[Flag<'_>],
) -> Reply {
    let Some(selected) = session.selected.clone() else {
        return Reply::bad("No mailbox selected");
    };
    if selected.read_only {
        return Reply::no("Mailbox is read-only").with_code(Code::ReadOnly);
    }
    let (mail, user) = match session.mail().await {
        Ok(m) => m,
        Err(e) => return store_error("STORE failed", &e),
    };
    let view = match selected.view(&mail, &user) {
        Ok(v) => v,
        Err(e) => return store_error("STORE failed", &e),
    };
    if !uid_mode && !view.msns_valid(set) {
        return Reply::bad("Invalid message number");
    }
    let targets: Vec<(u32, u32)> = view
        .resolve(set, uid_mode, &session.saved_search)
        .into_iter()
        .filter(|(_, uid)| !view.is_gone(*uid))
        .collect();
    let (bits, keywords) = crate::flags::from_client(flags);
    let mode = match mode {
        StoreMode::Add => FlagMode::Add,
        StoreMode::Remove => FlagMode::Remove,
        StoreMode::Replace => FlagMode::Replace,
    };
    let ranges = to_ranges(targets.iter().map(|(_, uid)| *uid));
    if ranges.is_empty() {
        return Reply::ok("STORE completed");
    }
    let result = match mail
        .store_flags(
            &user,
            selected.id,
            &ranges,
            mode,
            bits,
            &keywords,
            unchanged_since,
        )
        .await
    {
        Ok(r) => r,
        Err(e) => return store_error("STORE failed", &e),
    };
    session.own_modseqs.push(result.modseq);
    let condstore = selected.condstore || unchanged_since.is_some();
    let rev2 = session.enabled.imap4rev2;
    if condstore {
        enable_condstore(session);
    }
    // The messages as this STORE left them, with their message numbers.
    let stored: Vec<(u32, MessageEntry)> = mail
        .with_mailbox(&user, selected.id, |v| {
            targets
                .iter()
                .filter_map(|&(msn, uid)| v.message(uid).map(|m| (msn, m)))
                .collect()
        })
        .unwrap_or_default();
    // A keyword this STORE brought into the mailbox is announced in FLAGS first, even when
    // .SILENT hides the FETCHes: later FETCHes will show it.
    announce_keywords(session, &mail, &user, stored.iter().map(|(_, m)| m));
    // The new flags of every message this STORE changed (silent only hides them when
    // nothing else changed them, RFC 7162 section 3.1.3).
    let utf8 = session.enabled.utf8();
    let lines: Vec<u8> = mail
        .with_mailbox(&user, selected.id, |v| {
            let mut out = Vec::new();
            let mut w = ResponseWriter::new(&mut out, utf8);
            for &(msn, m) in stored
                .iter()
                .filter(|(_, m)| !result.modified.contains(&m.uid))
                .filter(|(_, m)| !silent || (condstore && m.modseq != result.modseq))
            {
                let keywords = v.keywords(&m);
                FetchFlags {
                    msn,
                    uid: uid_mode.then_some(m.uid),
                    flags: crate::flags::shown(
                        m.flags,
                        &keywords,
                        !rev2 && selected.recent.contains(m.uid),
                    ),
                    modseq: condstore.then_some(m.modseq),
                }
                .serialize(&mut w);
            }
            out
        })
        .unwrap_or_default();
    session.out.extend_from_slice(&lines);
    if result.modified.is_empty() {
        Reply::ok("STORE completed")
    } else {
        let modified: Vec<u32> = if uid_mode {
            result.modified.clone()
        } else {
            targets
                .iter()
                .filter(|(_, uid)| result.modified.contains(uid))
                .map(|(msn, _)| *msn)
                .collect()
        };
        Reply::ok("Conditional STORE failed for some messages")
            .with_code(Code::Modified(to_ranges(modified)))
    }
}
