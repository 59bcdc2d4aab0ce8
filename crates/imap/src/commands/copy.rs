//! COPY and MOVE (RFC 6851), with UIDPLUS's COPYUID (RFC 4315).

use crate::commands::reply::{expunge_issued, store_error, Code, Reply};
use crate::mailbox_name;
use crate::selected::to_ranges;
use crate::session::Session;
use ringmail_proto::parser::{Mailbox, SequenceSet};
use ringmail_proto::response::StatusResponse;
use ringmail_store::StoreError;

/// `[UID] COPY set mailbox` or `[UID] MOVE set mailbox`.
pub async fn copy(
    session: &mut Session,
    uid_mode: bool,
    set: &SequenceSet<'_>,
    mailbox: &Mailbox<'_>,
    is_move: bool,
) -> Reply {
    let command = if is_move { "MOVE" } else { "COPY" };
    let Some(selected) = session.selected.clone() else {
        return Reply::bad("No mailbox selected");
    };
    if is_move && selected.read_only {
        return Reply::no("Mailbox is read-only").with_code(Code::ReadOnly);
    }
    let dest = match mailbox_name::decode(mailbox, session.enabled) {
        Ok(name) => name,
        Err(e) => return Reply::no(e),
    };
    let (mail, user) = match session.mail().await {
        Ok(m) => m,
        Err(e) => return store_error(&format!("{command} failed"), &e),
    };
    let view = match selected.view(&mail, &user) {
        Ok(v) => v,
        Err(e) => return store_error(&format!("{command} failed"), &e),
    };
    if !uid_mode && !view.msns_valid(set) {
        return Reply::bad("Invalid message number");
    }
    let uids: Vec<u32> = view
        .resolve(set, uid_mode, &session.saved_search)
        .into_iter()
        .map(|(_, uid)| uid)
        .collect();
    // A message another session expunged (not announced yet) fails the whole command, as in
    // Dovecot. One expunged while the copy is being written is left out of it, and COPYUID
    // names only the copies made.
    if uids.iter().any(|&uid| view.is_gone(uid)) {
        return expunge_issued();
    }
    if uids.is_empty() {
        return Reply::ok(format!("{command} completed (no messages)"));
    }
    let ranges = to_ranges(uids);
    let result = if is_move {
        mail.move_messages(&user, selected.id, &ranges, dest.as_str())
            .await
    } else {
        mail.copy(&user, selected.id, &ranges, dest.as_str()).await
    };
    let result = match result {
        Ok(r) => r,
        Err(StoreError::NoSuchMailbox) => {
            return Reply::no("No such mailbox").with_code(Code::TryCreate)
        }
        Err(e) => return store_error(&format!("{command} failed"), &e),
    };
    if result.pairs.is_empty() {
        // Every message was expunged by another session while the copy was written.
        return expunge_issued();
    }
    let mut dst_uids: Vec<u32> = result.pairs.iter().map(|p| p.1).collect();
    dst_uids.sort_unstable();
    let code = Code::CopyUid {
        uidvalidity: result.uidvalidity,
        source: to_ranges(result.pairs.iter().map(|p| p.0)),
        destination: to_ranges(dst_uids),
    };
    if is_move {
        // RFC 6851: COPYUID goes in an untagged OK before the EXPUNGEs of the moved messages.
        session.send(&StatusResponse::ok("Moved").with_code(code));
        Reply::ok(format!("{command} completed"))
    } else {
        Reply::ok(format!("{command} completed")).with_code(code)
    }
}
