//! `ringmail export`: a user's mailboxes as a Maildir++ tree (every mailbox, with flags,
//! keywords, internal dates as file times and Dovecot's uidlist) or one mailbox as an mbox.
//!
//! Message bytes are written as stored, so importing an export gives back the same bytes.

use std::io::Write;
use std::path::Path;

use crate::store::Partition;

use super::maildir;
use super::offline::OfflineStore;
use super::progress::Progress;

/// What an export wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportReport {
    /// Messages written.
    pub messages: u64,
    /// Mailboxes written.
    pub mailboxes: u64,
    /// Mailboxes that could not be written, and why.
    pub problems: Vec<String>,
}

/// One stored message's index data.
struct Entry {
    uid: u32,
    flags: u8,
    keywords: Vec<String>,
    date: i64,
}

fn entries(mail: &Partition, user: &str, mailbox: &str) -> Result<(u32, u32, Vec<Entry>), String> {
    mail.with_mailbox(user, mailbox, |v| {
        let list = v
            .messages()
            .iter()
            .map(|m| Entry {
                uid: m.uid,
                flags: m.flags,
                keywords: v.keywords(m).into_iter().map(str::to_string).collect(),
                date: m.internal_date,
            })
            .collect();
        (v.uidvalidity(), v.uidnext(), list)
    })
    .map_err(|e| format!("{mailbox}: {e}"))
}

fn refuse_existing(path: &Path) -> Result<(), String> {
    let in_use = match std::fs::read_dir(path) {
        Ok(mut d) => d.next().is_some(),
        Err(_) => path.exists(),
    };
    if in_use {
        return Err(format!(
            "{} exists already: export into a new (or empty) place",
            path.display()
        ));
    }
    Ok(())
}

/// Writes every mailbox of `user` as a Maildir++ tree at `root`.
pub async fn export_maildir(
    store: &OfflineStore,
    user: &str,
    root: &Path,
) -> Result<ExportReport, String> {
    refuse_existing(root)?;
    let mail = store.partition_of(user).await.map_err(|e| e.to_string())?;
    let mailboxes = mail.list_mailboxes(user);
    if mailboxes.is_empty() {
        return Err(format!("user {user} has no mailboxes in this data dir"));
    }
    let mut report = ExportReport::default();
    let mut progress = Progress::new("export", None);
    for listing in mailboxes {
        let dir = match maildir::folder_dir(root, &listing.name) {
            Ok(dir) => dir,
            Err(why) => {
                progress.warn(&why);
                report.problems.push(why);
                continue;
            }
        };
        progress.mailbox(&listing.name);
        maildir::create_maildir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let (uidvalidity, uidnext, list) = entries(&mail, user, &listing.name)?;
        let mut table = Vec::new();
        let mut files = Vec::new();
        for e in list {
            let bytes = mail
                .read_message(user, listing.name.as_str(), e.uid, None)
                .await
                .map_err(|err| format!("{} UID {}: {err}", listing.name, e.uid))?;
            let base = format!(
                "{}.M{}V{uidvalidity}.ringmail,S={}",
                e.date.max(0),
                e.uid,
                bytes.len()
            );
            let kw: Vec<&str> = e.keywords.iter().map(String::as_str).collect();
            let name = format!("{base}{}", maildir::info_suffix(e.flags, &kw, &mut table));
            let path = dir.join("cur").join(name);
            write_file(&path, &bytes, e.date)
                .map_err(|err| format!("{}: {err}", path.display()))?;
            files.push((e.uid, base));
            report.messages += 1;
            progress.add(1);
        }
        maildir::write_keywords(&dir, &table).map_err(|e| e.to_string())?;
        maildir::write_uidlist(&dir, uidvalidity, uidnext, &files).map_err(|e| e.to_string())?;
        report.mailboxes += 1;
    }
    let subscribed: String = mail
        .subscriptions(user)
        .into_iter()
        .filter(|n| n != "INBOX")
        .map(|n| format!("{}\n", n.replace('/', ".")))
        .collect();
    std::fs::write(root.join("subscriptions"), subscribed).map_err(|e| e.to_string())?;
    progress.finish();
    Ok(report)
}

/// Writes `bytes` to a new file whose modification time is `date` (the received date
/// Dovecot and `import` read back).
fn write_file(path: &Path, bytes: &[u8], date: i64) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    f.write_all(bytes)?;
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(date.max(0) as u64);
    f.set_modified(time)?;
    f.sync_all()
}

/// Writes `mailbox` of `user` as an mbox file.
pub async fn export_mbox(
    store: &OfflineStore,
    user: &str,
    mailbox: &str,
    file: &Path,
) -> Result<ExportReport, String> {
    refuse_existing(file)?;
    let mail = store.partition_of(user).await.map_err(|e| e.to_string())?;
    let mailbox = crate::store::normalize_name(mailbox).map_err(|e| format!("{mailbox}: {e}"))?;
    let (_, _, list) = entries(&mail, user, &mailbox)?;
    let out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(file)
        .map_err(|e| format!("{}: {e}", file.display()))?;
    let mut out = std::io::BufWriter::new(out);
    let mut progress = Progress::new("export", Some(list.len() as u64));
    progress.mailbox(&mailbox);
    let mut report = ExportReport::default();
    for e in list {
        let bytes = mail
            .read_message(user, mailbox.as_str(), e.uid, None)
            .await
            .map_err(|err| format!("{mailbox} UID {}: {err}", e.uid))?;
        let kw: Vec<&str> = e.keywords.iter().map(String::as_str).collect();
        super::mbox::write_message(&mut out, "", e.date, e.flags, &kw, &bytes)
            .map_err(|err| format!("{}: {err}", file.display()))?;
        report.messages += 1;
        progress.add(1);
    }
    out.into_inner()
        .map_err(|e| e.to_string())?
        .sync_all()
        .map_err(|e| e.to_string())?;
    report.mailboxes = 1;
    progress.finish();
    Ok(report)
}
