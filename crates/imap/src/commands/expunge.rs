//! EXPUNGE and UID EXPUNGE (UIDPLUS). The EXPUNGE responses come from the sync that runs
//! before the tagged OK, so they carry the session's own numbering.

use crate::commands::reply::{store_error, Code, Reply};
use crate::selected::to_ranges;
use crate::session::Session;
use ringmail_proto::parser::SequenceSet;
use ringmail_store::flag;

/// `EXPUNGE`, or `UID EXPUNGE set` when `set` is given (only `\Deleted` messages in it go).
pub async fn expunge(session: &mut Session, set: Option<&SequenceSet<'_>>) -> Reply {
    let Some(selected) = session.selected.clone() else {
        return Reply::bad("No mailbox selected");
    };
    if selected.read_only {
        return Reply::no("Mailbox is read-only").with_code(Code::ReadOnly);
    }
    let (mail, user) = match session.mail().await {
        Ok(m) => m,
        Err(e) => return store_error("EXPUNGE failed", &e),
    };
    let result = match set {
        None => mail.expunge_deleted(&user, selected.id).await.map(drop),
        Some(set) => {
            let view = match selected.view(&mail, &user) {
                Ok(v) => v,
                Err(e) => return store_error("EXPUNGE failed", &e),
            };
            let named = view.resolve(set, true, &session.saved_search);
            let deleted: Vec<u32> = mail
                .with_mailbox(&user, selected.id, |v| {
                    named
                        .iter()
                        .filter_map(|&(_, uid)| v.message(uid))
                        .filter(|m| m.flags & flag::DELETED != 0)
                        .map(|m| m.uid)
                        .collect()
                })
                .unwrap_or_default();
            if deleted.is_empty() {
                Ok(())
            } else {
                mail.expunge(&user, selected.id, &to_ranges(deleted))
                    .await
                    .map(drop)
            }
        }
    };
    match result {
        Ok(()) => Reply::ok("EXPUNGE completed"),
        Err(e) => store_error("EXPUNGE failed", &e),
    }
}
