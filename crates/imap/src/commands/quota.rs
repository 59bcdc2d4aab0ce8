//! QUOTA (RFC 9208), read side: GETQUOTA and GETQUOTAROOT. Every user has one quota root,
//! `""`, covering all their mailboxes; limits come from `[quota]` in the config, so SETQUOTA
//! is refused.

use crate::commands::reply::Reply;
use crate::mailbox_name;
use crate::session::Session;
use ringmail_proto::parser::Mailbox;

/// `* QUOTA "" (STORAGE used limit MESSAGE used limit)`, with only the limited resources.
async fn quota_line(session: &mut Session) -> Result<String, Reply> {
    let (mail, user) = session
        .mail()
        .await
        .map_err(|e| Reply::store_error("QUOTA failed", &e))?;
    let q = mail.quota(&user);
    let mut resources = Vec::new();
    if q.limit.max_bytes != u64::MAX {
        // STORAGE is in units of 1024 octets.
        resources.push(format!(
            "STORAGE {} {}",
            q.used_bytes.div_ceil(1024),
            q.limit.max_bytes / 1024
        ));
    }
    if q.limit.max_messages != u64::MAX {
        resources.push(format!(
            "MESSAGE {} {}",
            q.used_messages, q.limit.max_messages
        ));
    }
    Ok(format!("QUOTA \"\" ({})", resources.join(" ")))
}

/// `GETQUOTA root`
pub async fn get_quota(session: &mut Session, root: &[u8]) -> Reply {
    if !root.is_empty() {
        return Reply::no("[NONEXISTENT] No such quota root");
    }
    match quota_line(session).await {
        Ok(line) => {
            session.untagged(&line);
            Reply::ok("GETQUOTA completed")
        }
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
        Err(e) => return Reply::store_error("GETQUOTAROOT failed", &e),
    };
    if let Err(e) = mail.status(&user, name.as_str()) {
        return Reply::store_error("GETQUOTAROOT failed", &e);
    }
    let mut line = b"* QUOTAROOT ".to_vec();
    let utf8 = session.enabled.utf8_accept || session.enabled.imap4rev2;
    ringmail_proto::response::ResponseWriter::new(&mut line, utf8)
        .astring(&mailbox_name::encode(&name, session.enabled));
    line.extend_from_slice(b" \"\"\r\n");
    session.out.extend_from_slice(&line);
    match quota_line(session).await {
        Ok(quota) => {
            session.untagged(&quota);
            Reply::ok("GETQUOTAROOT completed")
        }
        Err(reply) => reply,
    }
}
