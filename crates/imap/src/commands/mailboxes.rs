//! CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST (with LIST-EXTENDED, LIST-STATUS,
//! SPECIAL-USE and CHILDREN), LSUB and STATUS.

use std::collections::BTreeMap;

use crate::commands::reply::{store_error, Code, Reply};
use crate::mailbox_name;
use crate::recent::MailboxKey;
use crate::session::Session;
use ringmail_proto::parser::{AString, ListReturn, ListSelect, Mailbox, StatusItem};
use ringmail_proto::response::data::{self, MailboxStatus as StatusData, StatusValue};
use ringmail_proto::response::{Response, ResponseWriter, StatusResponse};
use ringmail_store::{special_use, MailboxStatus, Partition, StoreError, DELIMITER};

/// Special-use bits and their attribute names (RFC 6154).
const SPECIAL_USE: [(u8, &str); 7] = [
    (special_use::ALL, "\\All"),
    (special_use::ARCHIVE, "\\Archive"),
    (special_use::DRAFTS, "\\Drafts"),
    (special_use::FLAGGED, "\\Flagged"),
    (special_use::JUNK, "\\Junk"),
    (special_use::SENT, "\\Sent"),
    (special_use::TRASH, "\\Trash"),
];

fn decode(session: &Session, mailbox: &Mailbox<'_>) -> Result<String, Reply> {
    mailbox_name::decode(mailbox, session.enabled).map_err(Reply::no)
}

/// `CREATE name [(USE (\Attr))]`
pub async fn create(session: &mut Session, mailbox: &Mailbox<'_>, special: &[&str]) -> Reply {
    let name = match decode(session, mailbox) {
        Ok(name) => name,
        Err(reply) => return reply,
    };
    let mut bits = 0u8;
    for attr in special {
        match SPECIAL_USE
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(attr))
        {
            Some((bit, _)) => bits |= bit,
            None => {
                return Reply::no(format!("Unsupported special-use attribute {attr}"))
                    .with_code(Code::UseAttr)
            }
        }
    }
    // A trailing delimiter only says the client intends children (RFC 9051 section 6.3.4).
    let name = name.trim_end_matches(DELIMITER).to_string();
    if name.eq_ignore_ascii_case("INBOX") {
        return Reply::no("INBOX always exists").with_code(Code::AlreadyExists);
    }
    let (mail, user) = match session.mail().await {
        Ok(m) => m,
        Err(e) => return store_error("CREATE failed", &e),
    };
    // Missing parents are created too, as RFC 9051 asks.
    let mut parent = String::new();
    for part in name
        .split(DELIMITER)
        .collect::<Vec<_>>()
        .split_last()
        .map_or(&[][..], |(_, p)| p)
    {
        if !parent.is_empty() {
            parent.push(DELIMITER);
        }
        parent.push_str(part);
        match mail.create_mailbox(&user, &parent, 0).await {
            Ok(_) | Err(StoreError::AlreadyExists) => {}
            Err(e) => return store_error("CREATE failed", &e),
        }
    }
    match mail.create_mailbox(&user, &name, bits).await {
        Ok(_) => Reply::ok("CREATE completed"),
        Err(e) => store_error("CREATE failed", &e),
    }
}

/// `DELETE name`
pub async fn delete(session: &mut Session, mailbox: &Mailbox<'_>) -> Reply {
    let name = match decode(session, mailbox) {
        Ok(name) => name,
        Err(reply) => return reply,
    };
    if name.eq_ignore_ascii_case("INBOX") {
        return Reply::no("INBOX cannot be deleted").with_code(Code::Cannot);
    }
    let (mail, user) = match session.mail().await {
        Ok(m) => m,
        Err(e) => return store_error("DELETE failed", &e),
    };
    let id = mail.status(&user, name.as_str()).map(|s| s.id);
    match mail.delete_mailbox(&user, &name).await {
        Ok(()) => {
            if let Ok(id) = id {
                let partitions = session.exec.config().storage.partitions;
                crate::recent::forget(MailboxKey::new(&user, partitions, id));
            }
            if session.selected.as_ref().map(|s| s.id) == id.ok() {
                session.selected = None;
                session.send(&StatusResponse::ok("Mailbox deleted").with_code(Code::Closed));
            }
            Reply::ok("DELETE completed")
        }
        Err(e) => store_error("DELETE failed", &e),
    }
}

/// `RENAME from to`
pub async fn rename(session: &mut Session, from: &Mailbox<'_>, to: &Mailbox<'_>) -> Reply {
    let (from, to) = match (decode(session, from), decode(session, to)) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let (mail, user) = match session.mail().await {
        Ok(m) => m,
        Err(e) => return store_error("RENAME failed", &e),
    };
    match mail
        .rename_mailbox(&user, &from, to.trim_end_matches(DELIMITER))
        .await
    {
        Ok(()) => Reply::ok("RENAME completed"),
        Err(e) => store_error("RENAME failed", &e),
    }
}

/// `SUBSCRIBE name` / `UNSUBSCRIBE name`. Subscribing to a name that does not exist is
/// allowed (RFC 9051 section 6.3.7).
pub async fn subscribe(session: &mut Session, mailbox: &Mailbox<'_>, on: bool) -> Reply {
    let name = match decode(session, mailbox) {
        Ok(name) => name,
        Err(reply) => return reply,
    };
    let (mail, user) = match session.mail().await {
        Ok(m) => m,
        Err(e) => return store_error("SUBSCRIBE failed", &e),
    };
    match mail.subscribe(&user, &name, on).await {
        Ok(()) if on => Reply::ok("SUBSCRIBE completed"),
        Ok(()) => Reply::ok("UNSUBSCRIBE completed"),
        Err(e) => store_error("SUBSCRIBE failed", &e),
    }
}

/// What one LIST line says about a name.
#[derive(Default, Clone)]
struct Entry {
    exists: bool,
    special: u8,
    subscribed: bool,
    has_children: bool,
}

/// `LIST [(selection)] reference patterns [RETURN (...)]` and `LSUB reference pattern`.
pub async fn list(
    session: &mut Session,
    selection: &[ListSelect],
    reference: &Mailbox<'_>,
    patterns: &[AString<'_>],
    returns: &[ListReturn],
    lsub: bool,
) -> Reply {
    let command = if lsub { "LSUB" } else { "LIST" };
    let (mail, user) = match session.mail().await {
        Ok(m) => m,
        Err(e) => return store_error(&format!("{command} failed"), &e),
    };
    // The reference is a prefix of the patterns: one that does not decode matches nothing,
    // as a pattern that does not (Dovecot answers OK with no names).
    let reference = decode_pattern(reference.as_bytes(), session.enabled);
    // `LIST "" ""` asks for the delimiter and the root.
    if patterns.len() == 1 && patterns[0].is_empty() && !lsub {
        session.send(&data::List {
            lsub,
            attributes: &["\\Noselect"],
            delimiter: Some(DELIMITER),
            name: b"",
            child_info: &[],
        });
        return Reply::ok(format!("{command} completed"));
    }
    let subscribed_only = lsub || selection.contains(&ListSelect::Subscribed);
    let recursive = selection.contains(&ListSelect::RecursiveMatch);
    let special_only = selection.contains(&ListSelect::SpecialUse);
    let want_subscribed = subscribed_only || returns.contains(&ListReturn::Subscribed);
    let status_items: Option<&Vec<StatusItem>> = returns.iter().find_map(|r| match r {
        ListReturn::Status(items) => Some(items),
        _ => None,
    });

    let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
    for listing in mail.list_mailboxes(&user) {
        let entry = entries.entry(listing.name.clone()).or_default();
        entry.exists = true;
        entry.special = listing.special_use;
        entry.subscribed = listing.subscribed;
    }
    for name in mail.subscriptions(&user) {
        entries.entry(name).or_default().subscribed = true;
    }
    // Parents of existing names, for CHILDREN and for `%` matching a parent that is only a
    // level of the hierarchy.
    let names: Vec<String> = entries.keys().cloned().collect();
    for name in &names {
        let mut cut = name.as_str();
        while let Some(pos) = cut.rfind(DELIMITER) {
            cut = &cut[..pos];
            entries.entry(cut.to_string()).or_default().has_children = true;
        }
    }

    let full_patterns: Vec<String> = patterns
        .iter()
        .map(|p| format!("{reference}{}", decode_pattern(p, session.enabled)))
        .collect();
    let matched = |name: &str| full_patterns.iter().any(|p| matches(p, name));
    // RFC 3501 section 6.3.9: LSUB's `%` lists a name only implied by a subscribed child.
    let trailing_percent: Vec<&String> =
        full_patterns.iter().filter(|p| p.ends_with('%')).collect();

    let mut lines = Vec::new();
    let mut status_names = Vec::new();
    for (name, entry) in &entries {
        if !matched(name) {
            continue;
        }
        // A subscribed descendant that this listing does not show itself (its name matches
        // no pattern). RFC 5258 section 4 asks for CHILDINFO only then, so a parent whose
        // subscribed children are all listed is not repeated.
        let hidden_child = || has_unlisted_subscribed(&entries, name, &matched);
        let childinfo = recursive && subscribed_only && hidden_child();
        let implied = !entry.subscribed
            && if lsub {
                trailing_percent.iter().any(|p| matches(p, name)) && hidden_child()
            } else {
                childinfo
            };
        if subscribed_only && !entry.subscribed && !implied {
            continue;
        }
        if special_only && entry.special == 0 {
            continue;
        }
        if !entry.exists && !entry.has_children && !entry.subscribed {
            continue;
        }
        let mut attrs: Vec<&str> = Vec::new();
        if lsub && implied {
            // Listed for its subscribed children only (RFC 3501 section 6.3.9).
            attrs.push("\\Noselect");
        } else if !entry.exists {
            // A level of the hierarchy is \Noselect; a subscription to a name that does not
            // exist is \NonExistent (RFC 9051 section 7.3.1), which LSUB cannot express.
            attrs.push(if entry.has_children || lsub {
                "\\Noselect"
            } else {
                "\\NonExistent"
            });
        }
        if !lsub {
            attrs.push(if entry.has_children {
                "\\HasChildren"
            } else {
                "\\HasNoChildren"
            });
            for (bit, attr) in SPECIAL_USE {
                if entry.special & bit != 0 {
                    attrs.push(attr);
                }
            }
            if want_subscribed && entry.subscribed {
                attrs.push("\\Subscribed");
            }
        }
        let wire = mailbox_name::encode(name, session.enabled);
        let mut line = Vec::new();
        data::List {
            lsub,
            attributes: &attrs,
            delimiter: Some(DELIMITER),
            name: &wire,
            child_info: if childinfo { &["SUBSCRIBED"] } else { &[] },
        }
        .serialize(&mut ResponseWriter::new(&mut line, session.enabled.utf8()));
        lines.push(line);
        if entry.exists {
            status_names.push((lines.len() - 1, name.clone()));
        }
    }
    let mut status_lines: Vec<(usize, Vec<u8>)> = Vec::new();
    if let Some(items) = status_items {
        for (at, name) in status_names {
            if let Ok(line) = status_line(session, name.as_str(), items) {
                status_lines.push((at, line));
            }
        }
    }
    let mut status_iter = status_lines.into_iter().peekable();
    for (i, line) in lines.into_iter().enumerate() {
        session.out.extend_from_slice(&line);
        while let Some((at, _)) = status_iter.peek() {
            if *at != i {
                break;
            }
            if let Some((_, status)) = status_iter.next() {
                session.out.extend_from_slice(&status);
            }
        }
    }
    Reply::ok(format!("{command} completed"))
}

/// A LIST pattern in store form: wildcards are plain ASCII, so the modified UTF-7 decoder
/// keeps them; a pattern that does not decode matches nothing.
fn decode_pattern(pattern: &[u8], enabled: crate::session::Enabled) -> String {
    if enabled.utf8() {
        String::from_utf8_lossy(pattern).into_owned()
    } else {
        ringmail_proto::parser::mutf7::decode_mutf7(pattern).unwrap_or_else(|_| "\u{0}".into())
    }
}

/// Whether `name` has a subscribed descendant whose own name `listed` rejects.
fn has_unlisted_subscribed(
    entries: &BTreeMap<String, Entry>,
    name: &str,
    listed: &dyn Fn(&str) -> bool,
) -> bool {
    let prefix = format!("{name}{DELIMITER}");
    entries
        .range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
        .any(|(k, e)| e.subscribed && !listed(k))
}

/// LIST wildcard matching: `*` matches anything, `%` anything but the delimiter. INBOX is
/// matched case-insensitively.
pub fn matches(pattern: &str, name: &str) -> bool {
    let normalize = |s: &str| -> Vec<char> {
        match (s.get(..5), s.get(5..)) {
            (Some(head), Some(rest))
                if head.eq_ignore_ascii_case("INBOX")
                    && (rest.is_empty() || rest.starts_with(DELIMITER)) =>
            {
                format!("INBOX{rest}").chars().collect()
            }
            _ => s.chars().collect(),
        }
    };
    let (p, n) = (normalize(pattern), normalize(name));
    // Dynamic programming over (pattern position, name position): time and memory are
    // O(pattern x name) whatever the wildcards, so a pattern of many `*` cannot stall the core.
    // `reach[j]`: the pattern prefix read so far matches the first j characters of the name.
    let mut reach = vec![false; n.len() + 1];
    reach[0] = true;
    for c in &p {
        let mut next = vec![false; n.len() + 1];
        match c {
            '*' | '%' => {
                for j in 0..=n.len() {
                    // Extend a match by one more character the wildcard may swallow.
                    let extend = j > 0 && next[j - 1] && (*c == '*' || n[j - 1] != DELIMITER);
                    next[j] = reach[j] || extend;
                }
            }
            c => {
                for j in 1..=n.len() {
                    next[j] = reach[j - 1] && n[j - 1] == *c;
                }
            }
        }
        reach = next;
    }
    reach[n.len()]
}

/// `STATUS name (items)`
pub async fn status(session: &mut Session, mailbox: &Mailbox<'_>, items: &[StatusItem]) -> Reply {
    let name = match decode(session, mailbox) {
        Ok(name) => name,
        Err(reply) => return reply,
    };
    if let Err(e) = session.mail().await {
        return store_error("STATUS failed", &e);
    }
    match status_line(session, &name, items) {
        Ok(line) => {
            session.out.extend_from_slice(&line);
            Reply::ok("STATUS completed")
        }
        Err(e) => store_error("STATUS failed", &e),
    }
}

/// The `* STATUS name (...)` line.
fn status_line(session: &Session, name: &str, items: &[StatusItem]) -> Result<Vec<u8>, StoreError> {
    let (Some(mail), Some(user)) = (session.opened_mail(), session.user()) else {
        return Err(StoreError::NoSuchMailbox);
    };
    let status = mail.status(user, name)?;
    let wire = mailbox_name::encode(&status.name, session.enabled);
    let values: Vec<StatusValue> = items
        .iter()
        .map(|item| match item {
            StatusItem::Messages => StatusValue::Messages(status.messages.into()),
            StatusItem::Recent => {
                StatusValue::Recent(recent_count(session, &mail, user, &status).into())
            }
            StatusItem::UidNext => StatusValue::UidNext(status.uidnext.into()),
            StatusItem::UidValidity => StatusValue::UidValidity(status.uidvalidity.into()),
            StatusItem::Unseen => StatusValue::Unseen(status.unseen.into()),
            StatusItem::Deleted => StatusValue::Deleted(status.deleted.into()),
            StatusItem::Size => StatusValue::Size(status.size),
            StatusItem::HighestModSeq => StatusValue::HighestModSeq(status.highest_modseq),
            StatusItem::AppendLimit => {
                StatusValue::AppendLimit(session.exec.config().limits.max_literal)
            }
            StatusItem::MailboxId => StatusValue::MailboxId(status.id),
        })
        .collect();
    let mut line = Vec::new();
    StatusData {
        name: &wire,
        items: &values,
    }
    .serialize(&mut ResponseWriter::new(&mut line, session.enabled.utf8()));
    Ok(line)
}

/// STATUS RECENT: the messages no session has claimed, which the next SELECT would see as
/// `\Recent`; counting claims none (RFC 3501 section 6.3.10). IMAP4rev2 has no `\Recent`.
fn recent_count(session: &Session, mail: &Partition, user: &str, status: &MailboxStatus) -> u32 {
    if session.enabled.imap4rev2 {
        return 0;
    }
    let partitions = session.exec.config().storage.partitions;
    let key = MailboxKey::new(user, partitions, status.id);
    mail.with_mailbox(user, status.id, |v| {
        let messages = v.messages();
        let floor = crate::recent::floor(key, || v.uidnext_at_open());
        (messages.len() - messages.partition_point(|m| m.uid < floor)) as u32
    })
    .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn wildcards() {
        assert!(matches("*", "a/b/c"));
        assert!(matches("%", "a"));
        assert!(!matches("%", "a/b"));
        assert!(matches("a/%", "a/b"));
        assert!(!matches("a/%", "a/b/c"));
        assert!(matches("a/*", "a/b/c"));
        assert!(matches("inbox", "INBOX"));
        assert!(matches("Inbox/%", "INBOX/x"));
        assert!(!matches("inboxes", "INBOX"));
        assert!(matches("S%t", "Sent"));
        assert!(!matches("x", "y"));
        // Byte 5 falls inside a character: no slicing panic.
        assert!(matches("Gr*", "Größe"));
        assert!(!matches("Größe/%", "Größe"));
        // Many wildcards against a long name: answered, not explored combinatorially.
        let pattern = format!("{}b", "*a".repeat(40));
        assert!(!matches(&pattern, &"a".repeat(1000)));
        assert!(matches(&pattern, &format!("{}b", "a".repeat(1000))));
        assert!(matches("%/%", "a/b") && !matches("%/%", "a/b/c"));
    }
}
