//! THREAD and UID THREAD (RFC 5256): ORDEREDSUBJECT and REFERENCES.

use crate::commands::reply::{store_error, Reply};
use crate::commands::search::{error_reply, run_search};
use crate::search::{self, sort::sent_date, thread, Collect};
use crate::session::Session;
use ringmail_proto::parser::{SearchKey, ThreadAlgorithm};
use ringmail_proto::response::data::{Thread, ThreadNode};

/// `[UID] THREAD algorithm charset keys`
pub async fn thread(
    session: &mut Session,
    uid: bool,
    algorithm: ThreadAlgorithm,
    charset: &[u8],
    keys: &[SearchKey<'_>],
) -> Reply {
    if algorithm == ThreadAlgorithm::Refs {
        return Reply::bad("THREAD=REFS is not supported");
    }
    let mut found = match run_search(session, keys, Some(charset), Collect::Hits).await {
        Ok(found) => found,
        Err(e) => return error_reply(&e),
    };
    let Some(selected) = session.selected.clone() else {
        return Reply::bad("No mailbox selected");
    };
    let (mail, user) = match session.mail().await {
        Ok(m) => m,
        Err(e) => return store_error("THREAD failed", &e),
    };
    // A message expunged meanwhile is left out; unlike SEARCH and SORT, Dovecot's THREAD
    // answers a plain OK then, and so does this.
    let abandon = || session.should_abandon();
    let fields =
        match search::load_sort_fields(&abandon, &mail, &user, selected.id, &mut found).await {
            Ok(fields) => fields,
            Err(e) => return error_reply(&e),
        };
    let msgs: Vec<thread::ThreadMsg> = found
        .hits
        .iter()
        .zip(fields)
        .map(|(hit, f)| thread::ThreadMsg {
            id: if uid { hit.uid } else { hit.msn },
            msn: hit.msn,
            date: sent_date(hit, Some(&f)),
            subject: f.subject,
            message_id: f.message_id,
            in_reply_to: f.in_reply_to,
            references: f.references,
        })
        .collect();
    let threads = match algorithm {
        ThreadAlgorithm::OrderedSubject => thread::ordered_subject(&msgs),
        ThreadAlgorithm::References | ThreadAlgorithm::Refs => thread::references(&msgs),
    };
    let threads: Vec<ThreadNode> = threads.iter().map(|t| thread::to_wire(&msgs, t)).collect();
    session.send(&Thread(&threads));
    Reply::ok(if uid {
        "UID THREAD completed"
    } else {
        "THREAD completed"
    })
}
