//! `ringmail import`: Maildir(++) trees and mbox files into a user's mailboxes.
//!
//! The work is split where the admin socket can cut it. The *source* side
//! ([`import_maildir`], [`import_mbox`]) reads files, with the operator's permissions, and
//! hands messages to a [`Sink`]. The *store* side, [`StoreSink`], decides what to store and
//! stores it. Offline both run in the tool's process; against a running server the tool
//! sends what the source side produces over the admin socket (`crate::server`), and the
//! executor that owns the user runs the same [`StoreSink`] there.
//!
//! Re-running an import adds nothing twice: a message counts as present when the target
//! mailbox already holds one with the same internal date, size and bytes (compared byte for
//! byte, so two different messages that merely share a date and size are both kept, and
//! a source holding the same message twice keeps both copies). Bad input is reported per
//! file and counted; it never stops the rest of the import, and what was imported stays.
//!
//! A Maildir folder with Dovecot's `dovecot-uidlist` keeps its UIDVALIDITY and UIDs, so
//! clients that cached the mailbox need not download it again: a mailbox the import creates
//! (for a new user, INBOX and the special-use folders too) takes the uidlist's UIDVALIDITY,
//! each listed message its UID, and the mailbox Dovecot's UIDNEXT, so a UID Dovecot handed
//! out (even to a message since expunged) is never handed out again. A mailbox that exists
//! with another UIDVALIDITY gets new UIDs, and the report says so.

use std::collections::HashMap;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use ringmail_config::Config;
use ringmail_mime::StoredAnalysis;
use ringmail_store::{NewMessage, Partition, StoreError};

use super::maildir;
use super::mbox::{MboxError, MboxReader};
use super::offline::OfflineStore;
use super::progress::Progress;

/// Messages appended in one store call (one durable commit).
const BATCH_MESSAGES: usize = 64;
/// Bytes appended in one store call.
const BATCH_BYTES: usize = 16 << 20;

/// What to import.
#[derive(Debug, Clone)]
pub enum Source {
    /// A Maildir or Maildir++ tree.
    Maildir(PathBuf),
    /// One mbox file into one mailbox.
    Mbox {
        /// The file.
        file: PathBuf,
        /// The target mailbox.
        mailbox: String,
    },
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Messages added.
    pub imported: u64,
    /// Messages skipped because the mailbox already had them.
    pub already_present: u64,
    /// Mailboxes created.
    pub mailboxes_created: u64,
    /// Messages that kept the UID of their `dovecot-uidlist`.
    pub uids_kept: u64,
    /// One line per file, folder or message that could not be imported.
    pub problems: Vec<String>,
    /// Things the operator should know that are not failures (such as UIDs not kept).
    pub notes: Vec<String>,
}

impl ImportReport {
    /// Adds what `other` counted (the store side's report to the source side's).
    pub fn merge(&mut self, other: ImportReport) {
        self.imported += other.imported;
        self.already_present += other.already_present;
        self.mailboxes_created += other.mailboxes_created;
        self.uids_kept += other.uids_kept;
        self.problems.extend(other.problems);
        self.notes.extend(other.notes);
    }
}

/// A Maildir folder's identity in Dovecot's `dovecot-uidlist`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FolderIds {
    /// UIDVALIDITY (never 0 when present).
    pub uidvalidity: u32,
    /// The next UID Dovecot would have given (0 when the uidlist did not say).
    pub next_uid: u32,
}

/// One message on its way in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    /// The message, CRLF line ends.
    pub bytes: Vec<u8>,
    /// System flags (the store's bits).
    pub flags: u8,
    /// Keywords.
    pub keywords: Vec<String>,
    /// INTERNALDATE, seconds since the epoch.
    pub date: i64,
    /// The UID to keep, or `None` for the mailbox's next one.
    pub uid: Option<u32>,
}

/// Where the source side puts what it read: the store in this process ([`StoreSink`]) or a
/// running server's admin socket. Calls come in the order `set_up_user`, then for each
/// mailbox `open`, `add`…, `close`. An `Err` is fatal (the store cannot take more); problems
/// with single messages are counted in the sink's report instead.
#[allow(async_fn_in_trait)]
pub trait Sink {
    /// Makes a user new to the store, giving the named mailboxes these UIDVALIDITYs.
    async fn set_up_user(&mut self, uidvalidities: &[(String, u32)]) -> Result<(), String>;
    /// Starts on `mailbox` (created when missing), which Dovecot knew as `ids`.
    async fn open(&mut self, mailbox: &str, ids: Option<FolderIds>) -> Result<(), String>;
    /// One message for the open mailbox.
    async fn add(&mut self, msg: Incoming) -> Result<(), String>;
    /// The open mailbox is complete: everything added is durable when this returns.
    async fn close(&mut self) -> Result<(), String>;
}

/// The store side of an import: appends to one user's mailboxes in `mail`, skipping what they
/// already hold. Runs in the tool (offline) or on the user's owner executor (online).
pub struct StoreSink {
    mail: Rc<Partition>,
    config: std::sync::Arc<Config>,
    user: String,
    target: Option<Target>,
    report: ImportReport,
}

impl StoreSink {
    /// A sink for `user`, whose partition is `mail`.
    pub fn new(mail: Rc<Partition>, config: std::sync::Arc<Config>, user: &str) -> StoreSink {
        StoreSink {
            mail,
            config,
            user: user.to_string(),
            target: None,
            report: ImportReport::default(),
        }
    }

    /// What was stored, skipped and noted so far.
    pub fn into_report(self) -> ImportReport {
        self.report
    }
}

impl Sink for StoreSink {
    /// A user new to the store gets INBOX and the special-use folders as at the first login,
    /// but those the source has a `dovecot-uidlist` for are made with its UIDVALIDITY (a
    /// mailbox cannot change its UIDVALIDITY once made). Nothing happens for a known user.
    async fn set_up_user(&mut self, uidvalidities: &[(String, u32)]) -> Result<(), String> {
        let wanted: HashMap<String, u32> = uidvalidities
            .iter()
            .filter_map(|(name, uv)| Some((ringmail_store::normalize_name(name).ok()?, *uv)))
            .collect();
        let wanted = |name: &str| {
            ringmail_store::normalize_name(name)
                .ok()
                .and_then(|n| wanted.get(&n).copied())
        };
        ringmail_runtime::partitions::setup_user(&self.mail, &self.user, &self.config, &wanted)
            .await
            .map(drop)
            .map_err(|e| format!("cannot set up the new user {}: {e}", self.user))
    }

    async fn open(&mut self, mailbox: &str, ids: Option<FolderIds>) -> Result<(), String> {
        self.close().await?;
        let target = Target::open(
            self.mail.clone(),
            &self.user,
            mailbox,
            ids,
            &mut self.report,
        )
        .await?;
        self.target = Some(target);
        Ok(())
    }

    async fn add(&mut self, msg: Incoming) -> Result<(), String> {
        let Some(target) = self.target.as_mut() else {
            return Err("a message came before its mailbox was opened".to_string());
        };
        target.add(msg, &mut self.report).await.map(drop)
    }

    async fn close(&mut self) -> Result<(), String> {
        let Some(mut target) = self.target.take() else {
            return Ok(());
        };
        target.flush(&mut self.report).await?;
        target.raise_uidnext().await
    }
}

/// Appends to one mailbox, skipping what it already holds.
struct Target {
    mail: Rc<Partition>,
    user: String,
    mailbox: String,
    /// (size, internal date) → UIDs of existing messages not yet matched in this run.
    existing: HashMap<(u32, i64), Vec<u32>>,
    pending: Vec<Incoming>,
    pending_bytes: usize,
    /// Listed UIDs are kept while this is true: the mailbox has the uidlist's UIDVALIDITY
    /// and every UID so far was above the one before (and at least UIDNEXT).
    keep_uids: bool,
    /// The lowest UID the next kept one may have.
    uid_floor: u32,
    /// Dovecot's UIDNEXT, to be reached once the messages are in; 0 when the mailbox has
    /// another UIDVALIDITY than the uidlist's (its UIDs mean nothing here).
    dovecot_uidnext: u32,
}

impl Target {
    async fn open(
        mail: Rc<Partition>,
        user: &str,
        mailbox: &str,
        ids: Option<FolderIds>,
        report: &mut ImportReport,
    ) -> Result<Target, String> {
        let mailbox = ringmail_store::normalize_name(mailbox)
            .map_err(|_| format!("{mailbox:?} is not a valid mailbox name"))?;
        let uidvalidity = ids.map_or(0, |l| l.uidvalidity);
        let created = if uidvalidity != 0 {
            mail.create_mailbox_with_uidvalidity(user, &mailbox, 0, uidvalidity)
                .await
        } else {
            mail.create_mailbox(user, &mailbox, 0).await
        };
        match created {
            Ok(_) => {
                report.mailboxes_created += 1;
                mail.subscribe(user, &mailbox, true)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Err(StoreError::AlreadyExists) => {}
            Err(e) => return Err(format!("cannot create mailbox {mailbox}: {e}")),
        }
        let mut existing: HashMap<(u32, i64), Vec<u32>> = HashMap::new();
        mail.with_mailbox(user, mailbox.as_str(), |v| {
            for m in v.messages() {
                existing
                    .entry((m.size, m.internal_date))
                    .or_default()
                    .push(m.uid);
            }
        })
        .map_err(|e| e.to_string())?;
        let status = mail
            .status(user, mailbox.as_str())
            .map_err(|e| e.to_string())?;
        let keep_uids = uidvalidity != 0 && status.uidvalidity == uidvalidity;
        if uidvalidity != 0 && !keep_uids {
            report.notes.push(format!(
                "{mailbox}: exists with UIDVALIDITY {} (the uidlist says {uidvalidity}): its \
                 messages get new UIDs, so clients download them again",
                status.uidvalidity
            ));
        }
        Ok(Target {
            mail,
            user: user.to_string(),
            mailbox,
            existing,
            pending: Vec::new(),
            pending_bytes: 0,
            keep_uids,
            uid_floor: status.uidnext,
            dovecot_uidnext: if keep_uids {
                ids.map_or(0, |l| l.next_uid)
            } else {
                0
            },
        })
    }

    /// The UID `msg` keeps, if it can keep the one it had. Once one cannot (a UID below
    /// UIDNEXT, a repeated one, a message the uidlist does not list), every later message
    /// gets a new UID too, so kept UIDs always stay above the ones handed out.
    fn choose_uid(&mut self, listed: Option<u32>) -> Option<u32> {
        match listed {
            Some(uid) if self.keep_uids && uid >= self.uid_floor && uid < u32::MAX => {
                self.uid_floor = uid + 1;
                Some(uid)
            }
            _ => {
                self.keep_uids = false;
                None
            }
        }
    }

    /// Queues `msg` unless the mailbox already has it; true when it was new.
    async fn add(&mut self, mut msg: Incoming, report: &mut ImportReport) -> Result<bool, String> {
        let key = (msg.bytes.len() as u32, msg.date);
        let candidates = self.existing.get(&key).cloned().unwrap_or_default();
        for uid in candidates {
            let same = match self
                .mail
                .read_message(&self.user, self.mailbox.as_str(), uid, None)
                .await
            {
                Ok(stored) => *stored == *msg.bytes,
                Err(_) => false,
            };
            if same {
                if let Some(uids) = self.existing.get_mut(&key) {
                    uids.retain(|&u| u != uid);
                }
                report.already_present += 1;
                return Ok(false);
            }
        }
        msg.uid = self.choose_uid(msg.uid);
        self.pending_bytes += msg.bytes.len();
        self.pending.push(msg);
        if self.pending.len() >= BATCH_MESSAGES || self.pending_bytes >= BATCH_BYTES {
            self.flush(report).await?;
        }
        Ok(true)
    }

    /// Appends the queued messages: runs that keep their UIDs and runs that get new ones,
    /// each in one commit.
    async fn flush(&mut self, report: &mut ImportReport) -> Result<(), String> {
        let mut batch = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        while !batch.is_empty() {
            let kept = batch[0].uid.is_some();
            let run = batch
                .iter()
                .position(|m| m.uid.is_some() != kept)
                .unwrap_or(batch.len());
            let rest = batch.split_off(run);
            self.append_run(&batch, report).await?;
            batch = rest;
        }
        Ok(())
    }

    /// Appends messages that all keep their UIDs or all get new ones: in one commit, or one
    /// by one when the commit fails, so a single bad message costs only itself.
    async fn append_run(
        &self,
        batch: &[Incoming],
        report: &mut ImportReport,
    ) -> Result<(), String> {
        let analyses: Vec<StoredAnalysis> = batch
            .iter()
            .map(|m| ringmail_mime::analyze_for_store(&m.bytes))
            .collect();
        let keywords: Vec<Vec<&str>> = batch
            .iter()
            .map(|m| m.keywords.iter().map(String::as_str).collect())
            .collect();
        let new: Vec<NewMessage<'_>> = batch
            .iter()
            .zip(&analyses)
            .zip(&keywords)
            .map(|((m, analysis), kw)| NewMessage {
                body: &m.bytes,
                flags: m.flags,
                keywords: kw,
                internal_date: m.date,
                meta: &analysis.meta,
                search: Some(&analysis.search),
                text: &analysis.text,
            })
            .collect();
        let uids: Option<Vec<u32>> = batch.iter().map(|m| m.uid).collect();
        if uids.is_none() {
            // Messages Dovecot did not list get UIDs from Dovecot's UIDNEXT up, never one it
            // gave to a message since expunged (clients may still cache that one).
            self.raise_uidnext().await?;
        }
        match self.append(&new, uids.as_deref()).await {
            Ok(done) => {
                report.imported += done.uids.len() as u64;
                if uids.is_some() {
                    report.uids_kept += done.uids.len() as u64;
                }
                Ok(())
            }
            Err(e)
                if e.is_disk_full() || matches!(e, StoreError::Io(_) | StoreError::Corrupt(_)) =>
            {
                Err(format!("storing into {} failed: {e}", self.mailbox))
            }
            Err(_) => {
                for (i, one) in new.iter().enumerate() {
                    let uid = uids
                        .as_ref()
                        .and_then(|u| u.get(i))
                        .map(std::slice::from_ref);
                    match self.append(std::slice::from_ref(one), uid).await {
                        Ok(_) => {
                            report.imported += 1;
                            report.uids_kept += u64::from(uid.is_some());
                        }
                        Err(e) => report.problems.push(format!(
                            "{}: a message of {} bytes was not stored: {e}",
                            self.mailbox,
                            one.body.len()
                        )),
                    }
                }
                Ok(())
            }
        }
    }

    async fn append(
        &self,
        msgs: &[NewMessage<'_>],
        uids: Option<&[u32]>,
    ) -> Result<ringmail_store::AppendResult, StoreError> {
        let mailbox = self.mailbox.as_str();
        match uids {
            Some(uids) => {
                self.mail
                    .append_with_uids(&self.user, mailbox, msgs, uids)
                    .await
            }
            None => self.mail.append(&self.user, mailbox, msgs).await,
        }
    }

    /// Brings UIDNEXT up to Dovecot's, so UIDs Dovecot gave to messages it later expunged
    /// are not given again under the same UIDVALIDITY. Writes nothing once it is there.
    async fn raise_uidnext(&self) -> Result<(), String> {
        if self.dovecot_uidnext == 0 {
            return Ok(());
        }
        self.mail
            .raise_uidnext(&self.user, self.mailbox.as_str(), self.dovecot_uidnext)
            .await
            .map(drop)
            .map_err(|e| format!("{}: cannot raise UIDNEXT: {e}", self.mailbox))
    }
}

/// Imports `source` into `user`'s mailboxes in the store of a stopped server.
pub async fn import(
    store: &OfflineStore,
    user: &str,
    source: &Source,
) -> Result<ImportReport, String> {
    let mail = store.partition_of(user).await.map_err(|e| e.to_string())?;
    let mut sink = StoreSink::new(mail, std::sync::Arc::new(store.config().clone()), user);
    let mut report = read_source(source, &mut sink).await?;
    report.merge(sink.into_report());
    Ok(report)
}

/// Reads `source` into `sink`; the report holds what the source side found wrong (files that
/// cannot be read or are not mail).
pub async fn read_source(source: &Source, sink: &mut impl Sink) -> Result<ImportReport, String> {
    let mut report = ImportReport::default();
    match source {
        Source::Maildir(root) => import_maildir(sink, root, &mut report).await?,
        Source::Mbox { file, mailbox } => import_mbox(sink, file, mailbox, &mut report).await?,
    }
    Ok(report)
}

/// What [`import_mailbox`] read from its source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MailboxRead {
    /// Messages listed in the source mailbox.
    pub listed: u64,
    /// Messages sent to the sink (listed ones not expunged from the source meanwhile).
    pub sent: u64,
}

/// Imports `mailbox` of a store, read through an export's [`Source`](super::export::Source)
/// (a partition copy set aside after a failover, `ringmail cluster recover`), into the same
/// mailbox of `sink`: every message with its flags, keywords and internal date, under the
/// target's next UIDs (the source's mean nothing there). The sink skips what the target
/// holds already, as it does for any import, so sending the same mailbox again adds nothing.
pub async fn import_mailbox(
    source: &mut impl super::export::Source,
    mailbox: &str,
    sink: &mut impl Sink,
) -> Result<MailboxRead, String> {
    let listing = source.listing(mailbox).await?;
    let mut read = MailboxRead {
        listed: listing.entries.len() as u64,
        sent: 0,
    };
    sink.open(mailbox, None).await?;
    let mut batches = super::export::Batches::new(mailbox, listing);
    while let Some(batch) = batches.next(source).await? {
        for (entry, bytes) in batch {
            let Some(bytes) = bytes else { continue };
            sink.add(Incoming {
                bytes,
                flags: entry.flags,
                keywords: entry.keywords.clone(),
                date: entry.date,
                uid: None,
            })
            .await?;
            read.sent += 1;
        }
    }
    sink.close().await?;
    Ok(read)
}

async fn import_maildir(
    sink: &mut impl Sink,
    root: &Path,
    report: &mut ImportReport,
) -> Result<(), String> {
    let (folders, bad) = maildir::scan(root).map_err(|e| e.to_string())?;
    for b in bad {
        report
            .problems
            .push(format!("{}: skipped: {}", b.dir.display(), b.reason));
    }
    let mut listed = Vec::new();
    for folder in folders {
        match maildir::messages(&folder) {
            Ok(messages) => {
                let ids = maildir::read_uidlist(&folder.dir)
                    .filter(|l| l.uidvalidity != 0)
                    .map(|l| FolderIds {
                        uidvalidity: l.uidvalidity,
                        next_uid: l.next_uid,
                    });
                listed.push((folder, messages, ids));
            }
            Err(e) => report
                .problems
                .push(format!("{}: cannot list: {e}", folder.dir.display())),
        }
    }
    let uidvalidities: Vec<(String, u32)> = listed
        .iter()
        .filter_map(|(f, _, ids)| Some((f.name.clone(), ids.as_ref()?.uidvalidity)))
        .collect();
    sink.set_up_user(&uidvalidities).await?;
    let total = listed.iter().map(|(_, m, _)| m.len() as u64).sum();
    let mut progress = Progress::new("import", Some(total));
    for (folder, messages, ids) in listed {
        progress.mailbox(&folder.name);
        sink.open(&folder.name, ids).await?;
        for m in messages {
            progress.add(1);
            // The store refuses a message over its limit: say so without reading it all.
            let too_large = std::fs::metadata(&m.path)
                .is_ok_and(|meta| meta.len() > ringmail_store::MAX_MESSAGE_SIZE as u64);
            if too_large {
                let line = format!(
                    "{}: skipped: larger than the store's limit of {} bytes",
                    m.path.display(),
                    ringmail_store::MAX_MESSAGE_SIZE
                );
                progress.warn(&line);
                report.problems.push(line);
                continue;
            }
            let bytes = match std::fs::read(&m.path) {
                Ok(b) => to_crlf(b),
                Err(e) => {
                    let line = format!("{}: cannot read: {e}", m.path.display());
                    progress.warn(&line);
                    report.problems.push(line);
                    continue;
                }
            };
            if !looks_like_mail(&bytes) {
                let line = format!("{}: skipped: not a mail message", m.path.display());
                progress.warn(&line);
                report.problems.push(line);
                continue;
            }
            let msg = Incoming {
                bytes,
                flags: m.flags,
                keywords: m.keywords,
                date: m.mtime,
                uid: m.uid,
            };
            sink.add(msg).await?;
        }
        sink.close().await?;
    }
    progress.finish();
    Ok(())
}

async fn import_mbox(
    sink: &mut impl Sink,
    file: &Path,
    mailbox: &str,
    report: &mut ImportReport,
) -> Result<(), String> {
    let f = std::fs::File::open(file).map_err(|e| format!("{}: {e}", file.display()))?;
    sink.set_up_user(&[]).await?;
    sink.open(mailbox, None).await?;
    let mut progress = Progress::new("import", None);
    progress.mailbox(mailbox);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    for item in MboxReader::new(BufReader::new(f)) {
        match item {
            Ok(m) if looks_like_mail(&m.bytes) => {
                progress.add(1);
                let msg = Incoming {
                    bytes: m.bytes,
                    flags: m.flags,
                    keywords: m.keywords,
                    date: m.date.unwrap_or(now),
                    uid: None,
                };
                sink.add(msg).await?;
            }
            Ok(m) => {
                let line = format!("{}:{}: skipped: not a mail message", file.display(), m.line);
                progress.warn(&line);
                report.problems.push(line);
            }
            Err(
                e @ (MboxError::NotMbox
                | MboxError::Truncated { .. }
                | MboxError::TooLarge { .. }
                | MboxError::Io(_)),
            ) => {
                let line = format!("{}: {e}", file.display());
                progress.warn(&line);
                report.problems.push(line);
            }
        }
    }
    sink.close().await?;
    progress.finish();
    Ok(())
}

/// Bare LF line ends become CRLF (IMAP's form); CRLF stays as it is. Lines are found with
/// memchr and copied whole: a byte-at-a-time loop here was half of an import's CPU time.
pub fn to_crlf(bytes: Vec<u8>) -> Vec<u8> {
    let bare = |i: usize| i == 0 || bytes[i - 1] != b'\r';
    let count = memchr::memchr_iter(b'\n', &bytes)
        .filter(|&i| bare(i))
        .count();
    if count == 0 {
        return bytes;
    }
    let mut out = Vec::with_capacity(bytes.len() + count);
    let mut start = 0;
    for i in memchr::memchr_iter(b'\n', &bytes).filter(|&i| bare(i)) {
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(b"\r\n");
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out
}

/// Whether `bytes` starts like an RFC 5322 message: a header field on its first line.
pub fn looks_like_mail(bytes: &[u8]) -> bool {
    let first = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    let Some(colon) = first.iter().position(|&b| b == b':') else {
        return false;
    };
    colon > 0 && first[..colon].iter().all(|&b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The store calls the import relies on: a chosen UIDVALIDITY, chosen UIDs (only
    /// increasing and at least UIDNEXT), both kept across a restart (log replay).
    #[test]
    fn chosen_uidvalidity_and_uids_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_owned();
        glommio::LocalExecutorBuilder::default()
            .spawn(move || async move {
                let p = Partition::open(&path, Default::default()).await.unwrap();
                p.create_mailbox_with_uidvalidity("u", "INBOX", 0, 1_500_000_000)
                    .await
                    .unwrap();
                let (a, b) = (b"Subject: a\r\n\r\n", b"Subject: b\r\n\r\n");
                let done = p
                    .append_with_uids(
                        "u",
                        "INBOX",
                        &[NewMessage::plain(a), NewMessage::plain(b)],
                        &[3, 7],
                    )
                    .await
                    .unwrap();
                assert_eq!(done.uids, [3, 7]);
                assert_eq!(done.uidvalidity, 1_500_000_000);
                for bad in [[7, 9], [9, 9], [10, 8]] {
                    let r = p
                        .append_with_uids(
                            "u",
                            "INBOX",
                            &[NewMessage::plain(a), NewMessage::plain(b)],
                            &bad,
                        )
                        .await;
                    assert!(matches!(r, Err(StoreError::NotPermitted(_))), "{bad:?}");
                }
                let next = p
                    .append("u", "INBOX", &[NewMessage::plain(a)])
                    .await
                    .unwrap();
                assert_eq!(next.uids, [8]);
                // Abandoned without close: the reopen replays the log.
                drop(p);
                let p = Partition::open(&path, Default::default()).await.unwrap();
                let st = p.status("u", "INBOX").unwrap();
                assert_eq!(
                    (st.uidvalidity, st.uidnext, st.messages),
                    (1_500_000_000, 9, 3)
                );
                let uids = p
                    .with_mailbox("u", "INBOX", |v| {
                        v.messages().iter().map(|m| m.uid).collect::<Vec<_>>()
                    })
                    .unwrap();
                assert_eq!(uids, [3, 7, 8]);
                assert!(p
                    .create_mailbox_with_uidvalidity("u", "Other", 0, 0)
                    .await
                    .is_err());
                p.close().await.unwrap();
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn crlf_and_mail_detection() {
        assert_eq!(to_crlf(b"a\nb\r\nc\n".to_vec()), b"a\r\nb\r\nc\r\n");
        assert_eq!(to_crlf(b"\n".to_vec()), b"\r\n");
        assert_eq!(to_crlf(b"\r\n\n\n".to_vec()), b"\r\n\r\n\r\n");
        assert_eq!(to_crlf(b"no line end".to_vec()), b"no line end");
        assert_eq!(to_crlf(b"x\r".to_vec()), b"x\r");
        assert!(looks_like_mail(b"Subject: x\r\n\r\n"));
        assert!(!looks_like_mail(b"\x7fELF\x02\x01"));
        assert!(!looks_like_mail(b""));
        assert!(!looks_like_mail(b"hello world: no\n"));
    }
}
