//! APPEND, with MULTIAPPEND (RFC 3502): all messages of one command land together or not at
//! all, and the tagged OK is sent only once they are durable.

use crate::imap::commands::dates;
use crate::imap::commands::reply::Reply;
use crate::imap::mailbox_name;
use crate::imap::parser::{AppendMessage, Mailbox};
use crate::imap::selected::{to_ranges, write_set};
use crate::imap::session::Session;
use crate::store::{NewMessage, StoreError};

/// `APPEND mailbox [flags] [date] message ...`
pub async fn append(
    session: &mut Session,
    mailbox: &Mailbox<'_>,
    messages: &[AppendMessage<'_>],
) -> Reply {
    let name = match mailbox_name::decode(mailbox, session.enabled) {
        Ok(name) => name,
        Err(e) => return Reply::no(e),
    };
    if messages.iter().any(|m| m.data.is_empty()) {
        return Reply::no("Empty message refused");
    }
    let (mail, user) = match session.mail().await {
        Ok(m) => m,
        Err(e) => return Reply::store_error("APPEND failed", &e),
    };
    let now = dates::now();
    let parsed: Vec<(u8, Vec<&str>, i64, Vec<u8>)> = messages
        .iter()
        .map(|m| {
            let (bits, keywords) = crate::imap::flags::from_client(&m.flags);
            let date = m.date.as_ref().map_or(now, dates::from_date_time);
            (
                bits,
                keywords,
                date,
                crate::mime::analyze(m.data).to_bytes(),
            )
        })
        .collect();
    let new: Vec<NewMessage<'_>> = messages
        .iter()
        .zip(&parsed)
        .map(|(m, (bits, keywords, date, meta))| NewMessage {
            body: m.data,
            flags: *bits,
            keywords,
            internal_date: *date,
            meta,
        })
        .collect();
    match mail.append(&user, name.as_str(), &new).await {
        Ok(result) => {
            let mut set = String::new();
            write_set(&mut set, &to_ranges(result.uids.iter().copied()));
            Reply::ok(format!(
                "[APPENDUID {} {set}] APPEND completed",
                result.uidvalidity
            ))
        }
        Err(StoreError::NoSuchMailbox) => Reply::no("[TRYCREATE] No such mailbox"),
        Err(e) => Reply::store_error("APPEND failed", &e),
    }
}
