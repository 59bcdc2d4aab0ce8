//! `ringmail export`: a user's mailboxes as a Maildir++ tree (every mailbox, with flags,
//! keywords, internal dates as file times and Dovecot's uidlist) or one mailbox as an mbox.
//!
//! Message bytes are written as stored, so importing an export gives back the same bytes.
//! The mail comes from a [`Source`]: the store itself ([`StoreSource`], a stopped data dir or
//! inside the server) or a running server's admin socket, so both paths write the same.

use std::io::Write;
use std::path::Path;
use std::rc::Rc;

use ringmail_store::{Partition, StoreError};

use super::maildir;
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
    /// Messages expunged between listing a mailbox and reading them (a running server).
    pub vanished: u64,
}

/// One stored message's index data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// UID.
    pub uid: u32,
    /// System flags (the store's bits).
    pub flags: u8,
    /// Keywords.
    pub keywords: Vec<String>,
    /// INTERNALDATE, seconds since the epoch.
    pub date: i64,
}

/// A mailbox's identity and messages at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// UIDVALIDITY.
    pub uidvalidity: u32,
    /// UIDNEXT.
    pub uidnext: u32,
    /// The messages, in UID order.
    pub entries: Vec<Entry>,
}

/// Where an export reads from: the store in this process ([`StoreSource`]) or a running
/// server's admin socket. The user is fixed when the source is made.
#[allow(async_fn_in_trait)]
pub trait Source {
    /// The user's mailbox names.
    async fn mailboxes(&mut self) -> Result<Vec<String>, String>;
    /// The user's subscriptions.
    async fn subscriptions(&mut self) -> Result<Vec<String>, String>;
    /// A mailbox's messages now.
    async fn listing(&mut self, mailbox: &str) -> Result<Listing, String>;
    /// The bytes of the first of `uids`, and of as many after it as one batch holds; `None`
    /// for a message expunged since it was listed.
    async fn read(&mut self, mailbox: &str, uids: &[u32]) -> Result<Vec<Option<Vec<u8>>>, String>;
}

/// Bytes one [`Source::read`] answer holds at most, unless its one message is larger.
pub const READ_BATCH_BYTES: usize = 16 << 20;
/// Messages one [`Source::read`] answer holds at most.
pub const READ_BATCH_MESSAGES: usize = 64;

/// Reads a user's mail from a partition in this process (offline, or inside the server).
pub struct StoreSource {
    mail: Rc<Partition>,
    user: String,
}

impl StoreSource {
    /// A source for `user`, whose partition is `mail`.
    pub fn new(mail: Rc<Partition>, user: &str) -> StoreSource {
        StoreSource {
            mail,
            user: user.to_string(),
        }
    }
}

impl Source for StoreSource {
    async fn mailboxes(&mut self) -> Result<Vec<String>, String> {
        Ok(self
            .mail
            .list_mailboxes(&self.user)
            .into_iter()
            .map(|l| l.name)
            .collect())
    }

    async fn subscriptions(&mut self) -> Result<Vec<String>, String> {
        Ok(self.mail.subscriptions(&self.user))
    }

    async fn listing(&mut self, mailbox: &str) -> Result<Listing, String> {
        self.mail
            .with_mailbox(&self.user, mailbox, |v| Listing {
                uidvalidity: v.uidvalidity(),
                uidnext: v.uidnext(),
                entries: v
                    .messages()
                    .iter()
                    .map(|m| Entry {
                        uid: m.uid,
                        flags: m.flags,
                        keywords: v.keywords(m).into_iter().map(str::to_string).collect(),
                        date: m.internal_date,
                    })
                    .collect(),
            })
            .map_err(|e| format!("{mailbox}: {e}"))
    }

    async fn read(&mut self, mailbox: &str, uids: &[u32]) -> Result<Vec<Option<Vec<u8>>>, String> {
        let mut out = Vec::new();
        let mut bytes = 0;
        for &uid in uids.iter().take(READ_BATCH_MESSAGES) {
            // The size from the index first, so a batch never grows past READ_BATCH_BYTES
            // with a large message (its answer must fit one admin frame).
            let size = self
                .mail
                .with_mailbox(&self.user, mailbox, |v| {
                    v.message(uid).map(|m| m.size as usize)
                })
                .map_err(|e| format!("{mailbox}: {e}"))?;
            let Some(size) = size else {
                out.push(None);
                continue;
            };
            if !out.is_empty() && bytes + size > READ_BATCH_BYTES {
                break;
            }
            let mut body = Vec::with_capacity(size);
            match self
                .mail
                .read_message_into(&self.user, mailbox, uid, None, &mut body)
                .await
            {
                Ok(_) => {
                    bytes += body.len();
                    out.push(Some(body));
                }
                Err(StoreError::NoSuchMessage) => out.push(None),
                Err(e) => return Err(format!("{mailbox} UID {uid}: {e}")),
            }
        }
        Ok(out)
    }
}

/// A mailbox's messages with their bytes, read from a [`Source`] one batch at a time in the
/// order of its listing (an export writes them; `ringmail cluster recover` sends them to an
/// import's sink).
pub struct Batches {
    mailbox: String,
    listing: Listing,
    uids: Vec<u32>,
    done: usize,
}

impl Batches {
    /// The messages of `listing`, a listing of `mailbox`.
    pub fn new(mailbox: &str, listing: Listing) -> Batches {
        let uids = listing.entries.iter().map(|e| e.uid).collect();
        Batches {
            mailbox: mailbox.to_string(),
            listing,
            uids,
            done: 0,
        }
    }

    /// The next batch: each entry with its bytes, `None` for one expunged since it was
    /// listed; `Ok(None)` once every entry was read.
    pub async fn next(
        &mut self,
        source: &mut impl Source,
    ) -> Result<Option<Vec<(&Entry, Option<Vec<u8>>)>>, String> {
        if self.done >= self.uids.len() {
            return Ok(None);
        }
        let batch = source.read(&self.mailbox, &self.uids[self.done..]).await?;
        if batch.is_empty() {
            return Err(format!(
                "{}: the store answered a read with nothing",
                self.mailbox
            ));
        }
        let entries = &self.listing.entries[self.done..];
        self.done += batch.len().min(entries.len());
        Ok(Some(entries.iter().zip(batch).collect()))
    }
}

/// Every message of `listing` with its bytes, read in batches; expunged ones are counted in
/// `report.vanished` and left out.
async fn each_message(
    source: &mut impl Source,
    mailbox: &str,
    listing: Listing,
    report: &mut ExportReport,
    mut write: impl FnMut(&Entry, &[u8]) -> Result<(), String>,
) -> Result<(), String> {
    let mut batches = Batches::new(mailbox, listing);
    while let Some(batch) = batches.next(source).await? {
        for (entry, body) in batch {
            match body {
                Some(bytes) => write(entry, &bytes)?,
                None => report.vanished += 1,
            }
        }
    }
    Ok(())
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

/// Writes every mailbox `source` has as a Maildir++ tree at `root`.
pub async fn write_maildir(
    source: &mut impl Source,
    user: &str,
    root: &Path,
) -> Result<ExportReport, String> {
    refuse_existing(root)?;
    let mailboxes = source.mailboxes().await?;
    if mailboxes.is_empty() {
        return Err(format!("user {user} has no mailboxes in this data dir"));
    }
    let mut report = ExportReport::default();
    let mut progress = Progress::new("export", None);
    for name in mailboxes {
        let dir = match maildir::folder_dir(root, &name) {
            Ok(dir) => dir,
            Err(why) => {
                progress.warn(&why);
                report.problems.push(why);
                continue;
            }
        };
        progress.mailbox(&name);
        maildir::create_maildir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let listing = source.listing(&name).await?;
        let (uidvalidity, uidnext) = (listing.uidvalidity, listing.uidnext);
        let mut table = Vec::new();
        let mut files = Vec::new();
        let mut written = 0;
        each_message(source, &name, listing, &mut report, |e, bytes| {
            let base = format!(
                "{}.M{}V{uidvalidity}.ringmail,S={}",
                e.date.max(0),
                e.uid,
                bytes.len()
            );
            let kw: Vec<&str> = e.keywords.iter().map(String::as_str).collect();
            let name = format!("{base}{}", maildir::info_suffix(e.flags, &kw, &mut table));
            let path = dir.join("cur").join(name);
            write_file(&path, bytes, e.date).map_err(|err| format!("{}: {err}", path.display()))?;
            files.push((e.uid, base));
            written += 1;
            progress.add(1);
            Ok(())
        })
        .await?;
        report.messages += written;
        maildir::write_keywords(&dir, &table).map_err(|e| e.to_string())?;
        maildir::write_uidlist(&dir, uidvalidity, uidnext, &files).map_err(|e| e.to_string())?;
        report.mailboxes += 1;
    }
    let subscribed: String = source
        .subscriptions()
        .await?
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

/// Writes `mailbox` of `source` as an mbox file.
pub async fn write_mbox(
    source: &mut impl Source,
    mailbox: &str,
    file: &Path,
) -> Result<ExportReport, String> {
    refuse_existing(file)?;
    let mailbox = ringmail_store::normalize_name(mailbox).map_err(|e| format!("{mailbox}: {e}"))?;
    let listing = source.listing(&mailbox).await?;
    let out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(file)
        .map_err(|e| format!("{}: {e}", file.display()))?;
    let mut out = std::io::BufWriter::new(out);
    let mut progress = Progress::new("export", Some(listing.entries.len() as u64));
    progress.mailbox(&mailbox);
    let mut report = ExportReport::default();
    let mut written = 0;
    each_message(source, &mailbox, listing, &mut report, |e, bytes| {
        let kw: Vec<&str> = e.keywords.iter().map(String::as_str).collect();
        super::mbox::write_message(&mut out, "", e.date, e.flags, &kw, bytes)
            .map_err(|err| format!("{}: {err}", file.display()))?;
        written += 1;
        progress.add(1);
        Ok(())
    })
    .await?;
    report.messages = written;
    out.into_inner()
        .map_err(|e| e.to_string())?
        .sync_all()
        .map_err(|e| e.to_string())?;
    report.mailboxes = 1;
    progress.finish();
    Ok(report)
}
