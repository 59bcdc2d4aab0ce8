//! APPEND, with MULTIAPPEND (RFC 3502): all messages of one command land together or not at
//! all, and the tagged OK is sent only once they are durable.

use std::borrow::Cow;

use crate::commands::reply::{store_error, Code, Reply};
use crate::mailbox_name;
use crate::selected::to_ranges;
use crate::session::Session;
use ringmail_mime::StoredAnalysis;
use ringmail_proto::dates;
use ringmail_proto::parser::{AppendMessage, Mailbox};
use ringmail_store::{NewMessage, StoreError};

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
        Err(e) => return store_error("APPEND failed", &e),
    };
    let now = dates::now();
    // A literal8's binary parts are stored base64-encoded (RFC 3516 section 4.4): BODY[]
    // could not send their NULs; BINARY[] decodes them back to what was appended.
    let bodies: Vec<Cow<'_, [u8]>> = messages
        .iter()
        .map(|m| {
            m.binary
                .then(|| ringmail_mime::binary_parts_as_base64(m.data))
                .flatten()
                .map_or(Cow::Borrowed(m.data), Cow::Owned)
        })
        .collect();
    let parsed: Vec<(u8, Vec<&str>, i64, StoredAnalysis)> = messages
        .iter()
        .zip(&bodies)
        .map(|(m, body)| {
            let (bits, keywords) = crate::flags::from_client(&m.flags);
            let date = m.date.as_ref().map_or(now, dates::from_date_time);
            (bits, keywords, date, ringmail_mime::analyze_for_store(body))
        })
        .collect();
    let new: Vec<NewMessage<'_>> = bodies
        .iter()
        .zip(&parsed)
        .map(|(body, (bits, keywords, date, analysis))| NewMessage {
            body,
            flags: *bits,
            keywords,
            internal_date: *date,
            meta: &analysis.meta,
            search: Some(&analysis.search),
            text: &analysis.text,
        })
        .collect();
    match mail.append(&user, name.as_str(), &new).await {
        Ok(result) => Reply::ok("APPEND completed").with_code(Code::AppendUid {
            uidvalidity: result.uidvalidity,
            uids: to_ranges(result.uids.iter().copied()),
        }),
        Err(StoreError::NoSuchMailbox) => Reply::no("No such mailbox").with_code(Code::TryCreate),
        Err(e) => store_error("APPEND failed", &e),
    }
}
