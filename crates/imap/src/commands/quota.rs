//! QUOTA (RFC 9208), read side: GETQUOTA and GETQUOTAROOT. Every user has one quota root,
//! `""`, covering all their mailboxes; limits come from `[quota]` in the config or the user's
//! directory entry (docs/auth.md), so SETQUOTA is refused.

use crate::commands::reply::{store_error, Code, Reply};
use crate::mailbox_name;
use crate::session::Session;
use ringmail_proto::parser::Mailbox;
use ringmail_proto::response::data::{Quota, QuotaResource, QuotaRoot};

/// `* QUOTA "" (STORAGE used limit MESSAGE used limit)`, with only the limited resources.
async fn send_quota(session: &mut Session) -> Result<(), Reply> {
    let (mail, user) = session
        .mail()
        .await
        .map_err(|e| store_error("QUOTA failed", &e))?;
    let q = mail.quota(&user);
    let mut resources = Vec::new();
    if q.limit.max_bytes != u64::MAX {
        // STORAGE is in units of 1024 octets.
        resources.push(QuotaResource {
            name: "STORAGE",
            usage: q.used_bytes.div_ceil(1024),
            limit: q.limit.max_bytes / 1024,
        });
    }
    if q.limit.max_messages != u64::MAX {
        resources.push(QuotaResource {
            name: "MESSAGE",
            usage: q.used_messages,
            limit: q.limit.max_messages,
        });
    }
    session.send(&Quota {
        root: b"",
        resources: &resources,
    });
    Ok(())
}

/// `GETQUOTA root`
pub async fn get_quota(session: &mut Session, root: &[u8]) -> Reply {
    if !root.is_empty() {
        return Reply::no("No such quota root").with_code(Code::NonExistent);
    }
    match send_quota(session).await {
        Ok(()) => Reply::ok("GETQUOTA completed"),
        Err(reply) => reply,
    }
}

/// `GETQUOTAROOT mailbox`
pub async fn get_quota_root(session: &mut Session, mailbox: &Mailbox<'_>) -> Reply {
    let name = match mailbox_name::decode(mailbox, session.enabled) {
        Ok(name) => name,
        Err(e) => return Reply::no(e),
    };
    let (mail, user) = match session.mail().await {
        Ok(m) => m,
        Err(e) => return store_error("GETQUOTAROOT failed", &e),
    };
    if let Err(e) = mail.status(&user, name.as_str()) {
        return store_error("GETQUOTAROOT failed", &e);
    }
    session.send(&QuotaRoot {
        mailbox: &mailbox_name::encode(&name, session.enabled),
        roots: &[b""],
    });
    match send_quota(session).await {
        Ok(()) => Reply::ok("GETQUOTAROOT completed"),
        Err(reply) => reply,
    }
}
