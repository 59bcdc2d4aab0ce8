//! A partition: its log files, its index, and the API the owner executor calls.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use glommio::io::{BufferedFile, Directory, OpenOptions, ReadResult};
use tracing::warn;

use super::checkpoint;
use super::commit::{wait_all, Pending, Slot};
use super::error::{Result, StoreError};
use super::index::{flag, Applied, Index, Loc, Mailbox, MessageEntry, Quota, User};
use super::record::{
    self, flag_mode_byte, kind, FlagMode, FrameHeader, FrameWriter, FRAME_HEADER, MAX_MESSAGE_SIZE,
    MAX_META_SIZE,
};
use super::recovery;
use super::segment::{segment_path, SegmentHeader, SegmentKind, SEGMENT_HEADER};
use super::types::*;

/// Hierarchy delimiter of mailbox names.
pub const DELIMITER: char = '/';

/// Seconds since the Unix epoch.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The log's write side.
pub(crate) struct LogState {
    pub active_id: u32,
    pub active: Rc<BufferedFile>,
    /// Durable end of the active segment; the next batch is written here.
    pub end: u64,
    pub next_segment_id: u32,
    pub flushing: bool,
    /// A failed write may have left bytes after `end` that must go before the next write.
    pub dirty_tail: bool,
}

/// Background work bookkeeping.
#[derive(Default)]
pub(crate) struct Background {
    pub records_since_checkpoint: u64,
    pub checkpoint_running: bool,
    pub compaction_running: bool,
    /// Position of the newest durable checkpoint.
    pub last_checkpoint: Option<Loc>,
    /// Checkpoints written by this process.
    pub checkpoints_written: u64,
    /// Sequence number of the newest checkpoint file (names `index-NNNNNNNN.ckpt`).
    pub next_checkpoint_seq: u32,
    /// Segments replaced by compaction, with `checkpoints_written` at that time: a file
    /// is removed once every kept checkpoint was written after its replacement.
    pub retired: Vec<(u32, u64)>,
}

/// Shared state of a partition; background tasks hold an `Rc` to it.
pub(crate) struct Inner {
    pub dir: PathBuf,
    pub opts: Options,
    pub index: RefCell<Index>,
    pub log: RefCell<LogState>,
    pub pending: RefCell<Pending>,
    pub files: RefCell<HashMap<u32, Rc<BufferedFile>>>,
    pub bg: RefCell<Background>,
    pub closed: Cell<bool>,
    /// The `Partition` was dropped without `close`: background work stops before its
    /// next visible step, as it would in a crash.
    pub abandoned: Cell<bool>,
}

/// One partition of the store, owned by one executor. Sessions share it as `Rc<Partition>`.
///
/// Mutations resolve after their records are durable (see [`Durability`]); reads see only
/// durable state.
pub struct Partition {
    inner: Rc<Inner>,
}

/// Normalizes a mailbox name: INBOX (any case) as the first component becomes `INBOX`.
pub fn normalize_name(name: &str) -> Result<String> {
    let bad = name.is_empty()
        || name.len() > 1024
        || name.starts_with(DELIMITER)
        || name.ends_with(DELIMITER)
        || name.contains("//")
        || name.chars().any(|c| c.is_control());
    if bad {
        return Err(StoreError::InvalidName);
    }
    let (first, rest) = match name.find(DELIMITER) {
        Some(i) => name.split_at(i),
        None => (name, ""),
    };
    if first.eq_ignore_ascii_case("INBOX") {
        Ok(format!("INBOX{rest}"))
    } else {
        Ok(name.to_string())
    }
}

fn check_keywords(keywords: &[&str]) -> Result<()> {
    for k in keywords {
        if k.is_empty() || k.len() > 255 {
            return Err(StoreError::NotPermitted("keyword length"));
        }
    }
    if keywords.len() > 1000 {
        return Err(StoreError::NotPermitted("too many keywords"));
    }
    Ok(())
}

fn resolve<'u>(user: &'u User, mailbox: MailboxRef<'_>) -> Result<&'u Mailbox> {
    match mailbox {
        MailboxRef::Id(id) => user.mailboxes.get(&id),
        MailboxRef::Name(n) => user.by_name(&normalize_name(n)?),
    }
    .ok_or(StoreError::NoSuchMailbox)
}

fn resolve_mut<'u>(user: &'u mut User, mailbox: MailboxRef<'_>) -> Result<&'u mut Mailbox> {
    let id = resolve(user, mailbox)?.id;
    user.mailboxes.get_mut(&id).ok_or(StoreError::NoSuchMailbox)
}

/// Merges UIDs into inclusive ranges.
pub(crate) fn to_ranges(uids: impl IntoIterator<Item = u32>) -> Vec<(u32, u32)> {
    let mut v: Vec<u32> = uids.into_iter().collect();
    v.sort_unstable();
    v.dedup();
    let mut out: Vec<(u32, u32)> = Vec::new();
    for u in v {
        match out.last_mut() {
            Some((_, b)) if b.checked_add(1) == Some(u) => *b = u,
            _ => out.push((u, u)),
        }
    }
    out
}

impl Partition {
    /// Opens (or creates) the partition in `dir`: loads the newest valid checkpoint, replays
    /// the log after it, and truncates a torn tail of the active segment.
    pub async fn open(dir: impl AsRef<Path>, opts: Options) -> Result<Partition> {
        let inner = recovery::open(dir.as_ref(), opts).await?;
        Ok(Partition {
            inner: Rc::new(inner),
        })
    }

    /// Clean shutdown: waits for in-flight commits and writes a checkpoint.
    pub async fn close(self) -> Result<()> {
        self.inner.closed.set(true);
        self.inner.drain().await;
        while self.inner.bg.borrow().checkpoint_running || self.inner.bg.borrow().compaction_running
        {
            glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
        }
        checkpoint_now(&self.inner).await
    }

    /// Waits until every submitted record is written (or failed).
    pub async fn flush(&self) {
        self.inner.drain().await;
    }

    /// Runs one compaction pass now (normally started in the background after a
    /// checkpoint). Returns how many segments were rewritten.
    pub async fn compact(&self) -> Result<usize> {
        self.inner.drain().await;
        checkpoint_now(&self.inner).await?;
        super::compact::run_pass(&self.inner).await
    }

    /// Writes a checkpoint now (normally done in the background every
    /// `checkpoint_every` records).
    pub async fn checkpoint(&self) -> Result<()> {
        self.inner.drain().await;
        checkpoint_now(&self.inner).await
    }

    // ----- mailboxes -----

    /// Makes sure the user exists with an INBOX (call at login).
    pub async fn ensure_user(&self, user: &str) -> Result<()> {
        let exists = self
            .inner
            .index
            .borrow()
            .user(user)
            .is_some_and(|u| u.names.contains_key("INBOX"));
        if exists {
            return Ok(());
        }
        match self.create_mailbox(user, "INBOX", 0).await {
            Ok(_) | Err(StoreError::AlreadyExists) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Creates a mailbox; returns its MAILBOXID.
    pub async fn create_mailbox(&self, user: &str, name: &str, special_use: u8) -> Result<u64> {
        let name = normalize_name(name)?;
        let (slot, id) = {
            let mut idx = self.inner.index.borrow_mut();
            if idx.user(user).is_some_and(|u| u.names.contains_key(&name)) {
                return Err(StoreError::AlreadyExists);
            }
            let id = idx.next_mailbox_id;
            idx.next_mailbox_id += 1;
            let uv = next_uidvalidity(&mut idx);
            let slot = self.inner.submit(kind::CREATE_MAILBOX, |w| {
                w.str(user).u64(id).u32(uv).u8(special_use).str(&name);
            });
            (slot, id)
        };
        slot.wait().await?;
        Ok(id)
    }

    /// Renames a mailbox and its children. Renaming INBOX moves its messages to the new
    /// name and leaves an empty INBOX (its children stay where they are).
    pub async fn rename_mailbox(&self, user: &str, from: &str, to: &str) -> Result<()> {
        let from = normalize_name(from)?;
        let to = normalize_name(to)?;
        let slot = {
            let mut idx = self.inner.index.borrow_mut();
            let u = idx.user(user).ok_or(StoreError::NoSuchMailbox)?;
            let src = u.by_name(&from).ok_or(StoreError::NoSuchMailbox)?;
            if u.names.contains_key(&to) {
                return Err(StoreError::AlreadyExists);
            }
            if to.starts_with(&format!("{from}{DELIMITER}")) {
                return Err(StoreError::InvalidName);
            }
            let mut renames = vec![(src.id, to.clone())];
            let new_inbox = from == "INBOX";
            if !new_inbox {
                let prefix = format!("{from}{DELIMITER}");
                for (name, &id) in u.names.range(prefix.clone()..) {
                    let Some(rest) = name.strip_prefix(&prefix) else {
                        break;
                    };
                    let new = format!("{to}{DELIMITER}{rest}");
                    if u.names.contains_key(&new) {
                        return Err(StoreError::AlreadyExists);
                    }
                    renames.push((id, new));
                }
            }
            let inbox = if new_inbox {
                let id = idx.next_mailbox_id;
                idx.next_mailbox_id += 1;
                Some((id, next_uidvalidity(&mut idx)))
            } else {
                None
            };
            self.inner.submit(kind::RENAME_MAILBOX, |w| {
                w.str(user).u32(renames.len() as u32);
                for (id, n) in &renames {
                    w.u64(*id).str(n);
                }
                match inbox {
                    Some((id, uv)) => w.u8(1).u64(id).u32(uv),
                    None => w.u8(0),
                };
            })
        };
        slot.wait().await.map(|_| ())
    }

    /// Deletes a mailbox and its messages (not its children). INBOX cannot be deleted.
    pub async fn delete_mailbox(&self, user: &str, name: &str) -> Result<()> {
        let name = normalize_name(name)?;
        if name == "INBOX" {
            return Err(StoreError::NotPermitted("INBOX cannot be deleted"));
        }
        let slot = {
            let idx = self.inner.index.borrow();
            let u = idx.user(user).ok_or(StoreError::NoSuchMailbox)?;
            let id = u.by_name(&name).ok_or(StoreError::NoSuchMailbox)?.id;
            self.inner.submit(kind::DELETE_MAILBOX, |w| {
                w.str(user).u64(id);
            })
        };
        slot.wait().await.map(|_| ())
    }

    /// The user's mailboxes, sorted by name.
    pub fn list_mailboxes(&self, user: &str) -> Vec<MailboxListing> {
        let idx = self.inner.index.borrow();
        let Some(u) = idx.user(user) else {
            return Vec::new();
        };
        u.names
            .iter()
            .filter_map(|(name, id)| {
                let mb = u.mailboxes.get(id)?;
                Some(MailboxListing {
                    name: name.clone(),
                    id: *id,
                    special_use: mb.special_use,
                    subscribed: u.subscriptions.contains(name),
                })
            })
            .collect()
    }

    /// Subscribes (`on`) or unsubscribes a name (which need not exist, RFC 9051 6.3.7).
    pub async fn subscribe(&self, user: &str, name: &str, on: bool) -> Result<()> {
        let name = normalize_name(name)?;
        let slot = self.inner.submit(kind::SUBSCRIBE, |w| {
            w.str(user).u8(on as u8).str(&name);
        });
        slot.wait().await.map(|_| ())
    }

    /// Subscribed names, sorted.
    pub fn subscriptions(&self, user: &str) -> Vec<String> {
        let idx = self.inner.index.borrow();
        idx.user(user)
            .map(|u| u.subscriptions.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Sets a mailbox's special-use attributes ([`special_use`](super::special_use) bits).
    pub async fn set_special_use<'m>(
        &self,
        user: &str,
        mailbox: impl Into<MailboxRef<'m>>,
        special_use: u8,
    ) -> Result<()> {
        let slot = {
            let idx = self.inner.index.borrow();
            let u = idx.user(user).ok_or(StoreError::NoSuchMailbox)?;
            let id = resolve(u, mailbox.into())?.id;
            self.inner.submit(kind::SET_SPECIAL_USE, |w| {
                w.str(user).u64(id).u8(special_use);
            })
        };
        slot.wait().await.map(|_| ())
    }

    /// Sets the user's quota.
    pub async fn set_quota(&self, user: &str, quota: Quota) -> Result<()> {
        let slot = self.inner.submit(kind::SET_QUOTA, |w| {
            w.str(user).u64(quota.max_bytes).u64(quota.max_messages);
        });
        slot.wait().await.map(|_| ())
    }

    /// The user's quota and usage.
    pub fn quota(&self, user: &str) -> QuotaStatus {
        let idx = self.inner.index.borrow();
        match idx.user(user) {
            Some(u) => QuotaStatus {
                limit: u.quota,
                used_bytes: u.used_bytes,
                used_messages: u.used_messages,
            },
            None => QuotaStatus {
                limit: Quota::default(),
                used_bytes: 0,
                used_messages: 0,
            },
        }
    }

    // ----- messages -----

    /// Appends messages (one or, for MULTIAPPEND, several) and returns their UIDs.
    pub async fn append<'m>(
        &self,
        user: &str,
        mailbox: impl Into<MailboxRef<'m>>,
        msgs: &[NewMessage<'_>],
    ) -> Result<AppendResult> {
        for m in msgs {
            if m.body.len() > MAX_MESSAGE_SIZE || m.meta.len() > MAX_META_SIZE {
                return Err(StoreError::TooLarge);
            }
            check_keywords(m.keywords)?;
        }
        let save_date = now();
        let (slots, uidvalidity, uids) = {
            let mut idx = self.inner.index.borrow_mut();
            let first_email = idx.next_email_id;
            idx.next_email_id += msgs.len() as u64;
            let u = idx.users.get_mut(user).ok_or(StoreError::NoSuchMailbox)?;
            let mailbox = mailbox.into();
            resolve(u, mailbox)?;
            let bytes: u64 = msgs.iter().map(|m| m.body.len() as u64).sum();
            let within = u.used_bytes.saturating_add(bytes) <= u.quota.max_bytes
                && u.used_messages.saturating_add(msgs.len() as u64) <= u.quota.max_messages;
            if !within {
                return Err(StoreError::OverQuota);
            }
            let mb = resolve_mut(u, mailbox)?;
            let first_uid = mb.uid_reserved;
            if u32::MAX - first_uid < msgs.len() as u32 + 1 {
                return Err(StoreError::NotPermitted("UIDs exhausted"));
            }
            mb.uid_reserved += msgs.len() as u32;
            let (id, uidvalidity) = (mb.id, mb.uidvalidity);
            let mut slots = Vec::with_capacity(msgs.len());
            let mut uids = Vec::with_capacity(msgs.len());
            for (i, m) in msgs.iter().enumerate() {
                mb.modseq_reserved += 1;
                let uid = first_uid + i as u32;
                let modseq = mb.modseq_reserved;
                uids.push(uid);
                slots.push(self.inner.submit(kind::APPEND, |w| {
                    w.str(user)
                        .u64(id)
                        .u32(uid)
                        .u64(modseq)
                        .u8(m.flags & flag::ALL)
                        .strs(m.keywords)
                        .i64(m.internal_date)
                        .i64(save_date)
                        .u64(first_email + i as u64)
                        .u32(m.body.len() as u32)
                        .u32(m.meta.len() as u32)
                        .bytes(m.body)
                        .bytes(m.meta);
                }));
            }
            (slots, uidvalidity, uids)
        };
        wait_all(slots).await?;
        Ok(AppendResult { uidvalidity, uids })
    }

    /// Adds, removes or replaces flags and keywords of the messages in `uids` (inclusive
    /// ranges). Changed messages get a new modseq. With `unchanged_since`, messages whose
    /// modseq is higher are left alone and reported (CONDSTORE).
    #[allow(clippy::too_many_arguments)]
    pub async fn store_flags<'m>(
        &self,
        user: &str,
        mailbox: impl Into<MailboxRef<'m>>,
        uids: &[(u32, u32)],
        mode: FlagMode,
        flags: u8,
        keywords: &[&str],
        unchanged_since: Option<u64>,
    ) -> Result<StoreResult> {
        check_keywords(keywords)?;
        let (slot, modseq) = {
            let mut idx = self.inner.index.borrow_mut();
            let u = idx.users.get_mut(user).ok_or(StoreError::NoSuchMailbox)?;
            let mb = resolve_mut(u, mailbox.into())?;
            mb.modseq_reserved += 1;
            let (id, modseq) = (mb.id, mb.modseq_reserved);
            let slot = self.inner.submit(kind::FLAGS, |w| {
                w.str(user)
                    .u64(id)
                    .u64(modseq)
                    .u8(flag_mode_byte(mode))
                    .u8(flags & flag::ALL)
                    .strs(keywords)
                    .u64(unchanged_since.unwrap_or(u64::MAX))
                    .ranges(uids);
            });
            (slot, modseq)
        };
        let modified = match slot.wait().await? {
            Applied::FlagConflicts(v) => v,
            Applied::Done => Vec::new(),
        };
        Ok(StoreResult { modseq, modified })
    }

    /// Copies the messages in `uids` from `src` to `dst`.
    pub async fn copy<'a, 'b>(
        &self,
        user: &str,
        src: impl Into<MailboxRef<'a>>,
        uids: &[(u32, u32)],
        dst: impl Into<MailboxRef<'b>>,
    ) -> Result<CopyResult> {
        self.copy_or_move(user, src.into(), uids, dst.into(), false)
            .await
    }

    /// Moves the messages in `uids` from `src` to `dst` (RFC 6851): one record, so the
    /// copy and the expunge are durable together.
    pub async fn move_messages<'a, 'b>(
        &self,
        user: &str,
        src: impl Into<MailboxRef<'a>>,
        uids: &[(u32, u32)],
        dst: impl Into<MailboxRef<'b>>,
    ) -> Result<CopyResult> {
        self.copy_or_move(user, src.into(), uids, dst.into(), true)
            .await
    }

    async fn copy_or_move(
        &self,
        user: &str,
        src: MailboxRef<'_>,
        uids: &[(u32, u32)],
        dst: MailboxRef<'_>,
        is_move: bool,
    ) -> Result<CopyResult> {
        let save_date = now();
        let (slot, uidvalidity, pairs) = {
            let mut idx = self.inner.index.borrow_mut();
            let u = idx.users.get_mut(user).ok_or(StoreError::NoSuchMailbox)?;
            let s = resolve(u, src)?;
            let src_id = s.id;
            let found: Vec<(u32, u32)> = s
                .positions(uids)
                .into_iter()
                .map(|i| (s.messages[i].uid, s.messages[i].size))
                .collect();
            let bytes: u64 = found.iter().map(|&(_, sz)| u64::from(sz)).sum();
            if !is_move
                && (u.used_bytes.saturating_add(bytes) > u.quota.max_bytes
                    || u.used_messages.saturating_add(found.len() as u64) > u.quota.max_messages)
            {
                return Err(StoreError::OverQuota);
            }
            let d = resolve_mut(u, dst)?;
            let dst_id = d.id;
            if src_id == dst_id && is_move {
                return Err(StoreError::NotPermitted("move into the same mailbox"));
            }
            if u32::MAX - d.uid_reserved < found.len() as u32 + 1 {
                return Err(StoreError::NotPermitted("UIDs exhausted"));
            }
            let first = d.uid_reserved;
            d.uid_reserved += found.len() as u32;
            d.modseq_reserved += 1;
            let dst_modseq = d.modseq_reserved;
            let uidvalidity = d.uidvalidity;
            let pairs: Vec<(u32, u32)> = found
                .iter()
                .enumerate()
                .map(|(i, &(uid, _))| (uid, first + i as u32))
                .collect();
            let src_modseq = if is_move {
                let s = u
                    .mailboxes
                    .get_mut(&src_id)
                    .ok_or(StoreError::NoSuchMailbox)?;
                s.modseq_reserved += 1;
                s.modseq_reserved
            } else {
                0
            };
            let slot = self.inner.submit(kind::COPY, |w| {
                w.str(user)
                    .u64(src_id)
                    .u64(dst_id)
                    .u64(dst_modseq)
                    .u64(src_modseq)
                    .i64(save_date)
                    .u32(pairs.len() as u32);
                for &(a, b) in &pairs {
                    w.u32(a).u32(b);
                }
            });
            (slot, uidvalidity, pairs)
        };
        slot.wait().await?;
        Ok(CopyResult { uidvalidity, pairs })
    }

    /// Expunges the messages in `uids`; returns the UIDs that were present.
    pub async fn expunge<'m>(
        &self,
        user: &str,
        mailbox: impl Into<MailboxRef<'m>>,
        uids: &[(u32, u32)],
    ) -> Result<Vec<u32>> {
        let (slot, present) = {
            let mut idx = self.inner.index.borrow_mut();
            let u = idx.users.get_mut(user).ok_or(StoreError::NoSuchMailbox)?;
            let mb = resolve_mut(u, mailbox.into())?;
            let present: Vec<u32> = mb
                .positions(uids)
                .into_iter()
                .map(|i| mb.messages[i].uid)
                .collect();
            if present.is_empty() {
                return Ok(present);
            }
            mb.modseq_reserved += 1;
            let (id, modseq) = (mb.id, mb.modseq_reserved);
            let ranges = to_ranges(present.iter().copied());
            let slot = self.inner.submit(kind::EXPUNGE, |w| {
                w.str(user).u64(id).u64(modseq).ranges(&ranges);
            });
            (slot, present)
        };
        slot.wait().await?;
        Ok(present)
    }

    /// Expunges every message flagged `\Deleted` (EXPUNGE / CLOSE).
    pub async fn expunge_deleted<'m>(
        &self,
        user: &str,
        mailbox: impl Into<MailboxRef<'m>>,
    ) -> Result<Vec<u32>> {
        let mailbox = mailbox.into();
        let deleted = self.with_mailbox(user, mailbox, |v| {
            to_ranges(
                v.messages()
                    .iter()
                    .filter(|m| m.flags & flag::DELETED != 0)
                    .map(|m| m.uid),
            )
        })?;
        self.expunge(user, mailbox, &deleted).await
    }

    // ----- reads -----

    /// STATUS of a mailbox.
    pub fn status<'m>(
        &self,
        user: &str,
        mailbox: impl Into<MailboxRef<'m>>,
    ) -> Result<MailboxStatus> {
        self.with_mailbox(user, mailbox, |v| {
            let mb = v.mailbox;
            MailboxStatus {
                id: mb.id,
                name: mb.name.clone(),
                messages: mb.messages.len() as u32,
                uidnext: mb.uidnext,
                uidvalidity: mb.uidvalidity,
                unseen: mb
                    .messages
                    .iter()
                    .filter(|m| m.flags & flag::SEEN == 0)
                    .count() as u32,
                highest_modseq: mb.highest_modseq,
                size: mb.messages.iter().map(|m| u64::from(m.size)).sum(),
                deleted: mb
                    .messages
                    .iter()
                    .filter(|m| m.flags & flag::DELETED != 0)
                    .count() as u32,
                special_use: mb.special_use,
            }
        })
    }

    /// Runs `f` on a read-only view of a mailbox's index (no copy; `f` cannot await).
    pub fn with_mailbox<'m, R>(
        &self,
        user: &str,
        mailbox: impl Into<MailboxRef<'m>>,
        f: impl FnOnce(&MailboxView<'_>) -> R,
    ) -> Result<R> {
        let idx = self.inner.index.borrow();
        let u = idx.user(user).ok_or(StoreError::NoSuchMailbox)?;
        let mailbox = resolve(u, mailbox.into())?;
        Ok(f(&MailboxView {
            mailbox,
            index: &idx,
        }))
    }

    fn entry(&self, user: &str, mailbox: MailboxRef<'_>, uid: u32) -> Result<MessageEntry> {
        self.with_mailbox(user, mailbox, |v| v.message(uid))?
            .ok_or(StoreError::NoSuchMessage)
    }

    fn file(&self, segment: u32) -> Result<Rc<BufferedFile>> {
        self.inner
            .files
            .borrow()
            .get(&segment)
            .cloned()
            .ok_or_else(|| StoreError::Corrupt(format!("segment {segment} is missing")))
    }

    /// Reads a message's bytes, or the byte range `range` of it (clamped to the message).
    pub async fn read_message<'m>(
        &self,
        user: &str,
        mailbox: impl Into<MailboxRef<'m>>,
        uid: u32,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<ReadResult> {
        let e = self.entry(user, mailbox.into(), uid)?;
        let size = u64::from(e.size);
        let r = range.unwrap_or(0..size);
        let start = r.start.min(size);
        let end = r.end.clamp(start, size);
        let file = self.file(e.segment)?;
        let data = file
            .read_at(u64::from(e.offset) + start, (end - start) as usize)
            .await?;
        if data.len() as u64 != end - start {
            return Err(StoreError::Corrupt(format!(
                "short read in segment {}",
                e.segment
            )));
        }
        Ok(data)
    }

    /// Reads the metadata blob stored with a message at append.
    pub async fn read_meta<'m>(
        &self,
        user: &str,
        mailbox: impl Into<MailboxRef<'m>>,
        uid: u32,
    ) -> Result<ReadResult> {
        let e = self.entry(user, mailbox.into(), uid)?;
        let file = self.file(e.segment)?;
        let data = file
            .read_at(u64::from(e.offset) + u64::from(e.size), e.meta_len as usize)
            .await?;
        if data.len() != e.meta_len as usize {
            return Err(StoreError::Corrupt(format!(
                "short read in segment {}",
                e.segment
            )));
        }
        Ok(data)
    }

    /// What changed in a mailbox since a session's last sync point (`since_modseq`, with
    /// `view_uidnext` the UIDNEXT it knew then). The session keeps only those two numbers
    /// and its EXISTS count; after sending these responses its view equals the index.
    pub fn changes_since<'m>(
        &self,
        user: &str,
        mailbox: impl Into<MailboxRef<'m>>,
        since_modseq: u64,
        view_uidnext: u32,
    ) -> Result<MailboxChanges> {
        self.with_mailbox(user, mailbox, |v| {
            let mb = v.mailbox;
            let mut vanished: Vec<u32> = mb
                .expunged
                .iter()
                .filter(|e| e.modseq > since_modseq && e.uid < view_uidnext)
                .map(|e| e.uid)
                .collect();
            vanished.sort_unstable();
            vanished.dedup();
            // Highest first, so each EXPUNGE leaves the lower numbers untouched; the MSN of
            // uid x in the session's view counts the live and the vanished UIDs below x.
            let expunge_msns = vanished
                .iter()
                .enumerate()
                .rev()
                .map(|(i, &x)| (mb.messages.partition_point(|m| m.uid < x) + i + 1) as u32)
                .collect();
            let flag_changes = mb
                .messages
                .iter()
                .enumerate()
                .filter(|(_, m)| m.modseq > since_modseq && m.uid < view_uidnext)
                .map(|(i, m)| (i as u32 + 1, *m))
                .collect();
            MailboxChanges {
                expunge_msns,
                vanished,
                exists: mb.messages.len() as u32,
                flag_changes,
                highest_modseq: mb.highest_modseq,
                uidnext: mb.uidnext,
                complete: since_modseq >= mb.vanished_floor,
            }
        })
    }

    /// Resolves when the mailbox's HIGHESTMODSEQ passes `since_modseq` (new message,
    /// flag change, expunge) or the mailbox is renamed or deleted. An idle session holds
    /// only this future: one waker in the mailbox's list.
    pub fn wait_for_change(&self, user: &str, mailbox: u64, since_modseq: u64) -> ChangeWait {
        ChangeWait {
            inner: self.inner.clone(),
            user: user.to_string(),
            mailbox,
            since_modseq,
            name: None,
        }
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        self.inner.abandoned.set(true);
    }
}

fn next_uidvalidity(idx: &mut Index) -> u32 {
    let uv = idx.next_uidvalidity.max(1);
    idx.next_uidvalidity = uv.wrapping_add(1).max(1);
    uv
}

/// Read-only access to one mailbox's index.
pub struct MailboxView<'a> {
    mailbox: &'a Mailbox,
    index: &'a Index,
}

impl MailboxView<'_> {
    /// MAILBOXID.
    pub fn id(&self) -> u64 {
        self.mailbox.id
    }
    /// Current name.
    pub fn name(&self) -> &str {
        &self.mailbox.name
    }
    /// UIDVALIDITY.
    pub fn uidvalidity(&self) -> u32 {
        self.mailbox.uidvalidity
    }
    /// UIDNEXT.
    pub fn uidnext(&self) -> u32 {
        self.mailbox.uidnext
    }
    /// HIGHESTMODSEQ.
    pub fn highest_modseq(&self) -> u64 {
        self.mailbox.highest_modseq
    }
    /// Messages in UID order (MSN = index + 1).
    pub fn messages(&self) -> &[MessageEntry] {
        &self.mailbox.messages
    }
    /// The entry of `uid`.
    pub fn message(&self, uid: u32) -> Option<MessageEntry> {
        self.mailbox.find(uid).map(|i| self.mailbox.messages[i])
    }
    /// MSN of `uid`.
    pub fn msn(&self, uid: u32) -> Option<u32> {
        self.mailbox.find(uid).map(|i| i as u32 + 1)
    }
    /// Keyword names of a message.
    pub fn keywords(&self, m: &MessageEntry) -> Vec<&str> {
        self.index.keywords.names_of(m.kwset)
    }
    /// Every keyword name in use in the partition (for PERMANENTFLAGS/FLAGS).
    pub fn known_keywords(&self) -> &[String] {
        &self.index.keywords.names
    }
    /// Resolves a sequence number in a session's view that has not yet been told about
    /// the expunges after `since_modseq` (RFC 9051 forbids sending EXPUNGE during FETCH,
    /// STORE and SEARCH, so such a session still numbers the old way). Returns the UID and
    /// whether that message is already expunged. `view_uidnext` is the UIDNEXT the session
    /// knew; messages at or above it are not in its view.
    pub fn uid_in_view(
        &self,
        msn: u32,
        since_modseq: u64,
        view_uidnext: u32,
    ) -> Option<(u32, bool)> {
        let live = &self.mailbox.messages[..self
            .mailbox
            .messages
            .partition_point(|m| m.uid < view_uidnext)];
        let mut gone: Vec<u32> = self
            .mailbox
            .expunged
            .iter()
            .filter(|e| e.modseq > since_modseq && e.uid < view_uidnext)
            .map(|e| e.uid)
            .collect();
        gone.sort_unstable();
        gone.dedup();
        let msn = msn as usize;
        if msn == 0 || msn > live.len() + gone.len() {
            return None;
        }
        // Position (1-based) of each expunged UID in the old view.
        let mut before = 0;
        for (i, &g) in gone.iter().enumerate() {
            let pos = live.partition_point(|m| m.uid < g) + i + 1;
            match pos.cmp(&msn) {
                std::cmp::Ordering::Equal => return Some((g, true)),
                std::cmp::Ordering::Less => before = i + 1,
                std::cmp::Ordering::Greater => break,
            }
        }
        live.get(msn - 1 - before).map(|m| (m.uid, false))
    }

    /// Expunges newer than `modseq` as (modseq, uid), and whether the list is complete
    /// (false when older expunges were forgotten). For QRESYNC `VANISHED (EARLIER)`.
    pub fn vanished_since(&self, modseq: u64) -> (Vec<u32>, bool) {
        let uids = self
            .mailbox
            .expunged
            .iter()
            .filter(|e| e.modseq > modseq)
            .map(|e| e.uid)
            .collect();
        (uids, modseq >= self.mailbox.vanished_floor)
    }
}

/// Future returned by [`Partition::wait_for_change`].
pub struct ChangeWait {
    inner: Rc<Inner>,
    user: String,
    mailbox: u64,
    since_modseq: u64,
    name: Option<String>,
}

impl Future for ChangeWait {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let inner = self.inner.clone();
        let mut idx = inner.index.borrow_mut();
        let Some(mb) = idx
            .users
            .get_mut(&self.user)
            .and_then(|u| u.mailboxes.get_mut(&self.mailbox))
        else {
            return Poll::Ready(());
        };
        let renamed = self.name.as_ref().is_some_and(|n| *n != mb.name);
        if mb.highest_modseq > self.since_modseq || renamed {
            return Poll::Ready(());
        }
        if self.name.is_none() {
            self.name = Some(mb.name.clone());
        }
        mb.waiters.retain(|w| !w.will_wake(cx.waker()));
        mb.waiters.push(cx.waker().clone());
        Poll::Pending
    }
}

impl Inner {
    /// Encodes one record into the pending batch and makes sure a flush will run.
    pub fn submit(self: &Rc<Self>, kind: u8, fill: impl FnOnce(&mut FrameWriter<'_>)) -> Rc<Slot> {
        let slot = Rc::new(Slot::default());
        {
            let mut p = self.pending.borrow_mut();
            let start = p.bytes.len();
            let mut w = FrameWriter::new(&mut p.bytes, kind);
            fill(&mut w);
            w.finish();
            p.records.push((start, slot.clone()));
        }
        let mut log = self.log.borrow_mut();
        if !log.flushing {
            log.flushing = true;
            glommio::spawn_local(flush_loop(self.clone())).detach();
        }
        slot
    }

    /// Waits until nothing is pending or being flushed.
    pub async fn drain(&self) {
        while self.log.borrow().flushing || !self.pending.borrow().is_empty() {
            glommio::timer::sleep(std::time::Duration::from_micros(200)).await;
        }
    }

    /// Writes (and, with `Durability::Always`, syncs) a batch at the end of the active
    /// segment. Returns where it starts. On failure the file is cut back to its durable end.
    async fn write_batch(&self, bytes: &[u8]) -> Result<Loc> {
        let (file, end, dirty, need_roll) = {
            let log = self.log.borrow();
            let need_roll =
                log.end > SEGMENT_HEADER && log.end + bytes.len() as u64 > self.opts.segment_size;
            (log.active.clone(), log.end, log.dirty_tail, need_roll)
        };
        if dirty {
            file.truncate(end).await?;
            self.log.borrow_mut().dirty_tail = false;
        }
        if need_roll {
            self.roll_over().await?;
            return Box::pin(self.write_batch(bytes)).await;
        }
        let seg = self.log.borrow().active_id;
        let len = bytes.len();
        let res = write_all_at(&file, bytes, end).await;
        let res = match res {
            Ok(()) if self.opts.durability == Durability::Always => {
                file.fdatasync().await.map_err(StoreError::from)
            }
            other => other,
        };
        if let Err(e) = res {
            // The batch is not durable: make sure none of it is read back after a restart.
            if file.truncate(end).await.is_err() {
                self.log.borrow_mut().dirty_tail = true;
            }
            return Err(e);
        }
        self.log.borrow_mut().end = end + len as u64;
        Ok(Loc {
            segment: seg,
            offset: end,
        })
    }

    /// Takes the next segment id. Synchronous, so that a rollover and a compaction that
    /// run at the same time never pick the same file.
    pub fn reserve_segment_id(&self) -> u32 {
        let mut log = self.log.borrow_mut();
        let id = log.next_segment_id;
        log.next_segment_id += 1;
        id
    }

    /// Seals the active segment and starts the next one.
    async fn roll_over(&self) -> Result<()> {
        let id = self.reserve_segment_id();
        let f = Rc::new(create_segment(&self.dir, id, SegmentKind::Log).await?);
        let mut log = self.log.borrow_mut();
        log.active_id = id;
        log.active = f.clone();
        log.end = SEGMENT_HEADER;
        self.files.borrow_mut().insert(id, f);
        Ok(())
    }

    /// Applies a durable batch to the index and resolves its mutations.
    fn apply_batch(self: &Rc<Self>, batch: Pending, base: Loc) {
        let n = batch.records.len() as u64;
        {
            let mut idx = self.index.borrow_mut();
            for (start, slot) in batch.records {
                let r = apply_frame(&mut idx, &batch.bytes[start..], base, start);
                slot.fill(r);
            }
        }
        let start_checkpoint = {
            let mut bg = self.bg.borrow_mut();
            bg.records_since_checkpoint += n;
            let due = bg.records_since_checkpoint >= self.opts.checkpoint_every
                && !bg.checkpoint_running
                && !self.closed.get();
            if due {
                bg.checkpoint_running = true;
            }
            due
        };
        if start_checkpoint {
            let inner = self.clone();
            glommio::spawn_local(async move {
                if let Err(e) = checkpoint_now(&inner).await {
                    warn!(error = %e, "background checkpoint failed");
                }
                inner.bg.borrow_mut().checkpoint_running = false;
                super::compact::maybe_start(&inner);
            })
            .detach();
        }
    }
}

fn apply_frame(idx: &mut Index, frame: &[u8], base: Loc, start: usize) -> Result<Applied> {
    let mut h = [0u8; FRAME_HEADER];
    h.copy_from_slice(frame.get(..FRAME_HEADER).ok_or_else(|| bug("frame"))?);
    let h = FrameHeader::parse(&h);
    let payload = frame
        .get(FRAME_HEADER..FRAME_HEADER + h.payload_len as usize)
        .ok_or_else(|| bug("payload"))?;
    let rec = record::decode(h.kind, payload)?;
    idx.apply(
        &rec,
        Loc {
            segment: base.segment,
            offset: base.offset + start as u64,
        },
    )
}

fn bug(what: &str) -> StoreError {
    StoreError::Corrupt(format!("internal: bad pending {what}"))
}

async fn flush_loop(inner: Rc<Inner>) {
    loop {
        // Let every task that is runnable in this tick add its records to the batch.
        futures_lite::future::yield_now().await;
        let batch = if inner.opts.group_commit {
            std::mem::take(&mut *inner.pending.borrow_mut())
        } else {
            inner.pending.borrow_mut().split_first()
        };
        if batch.is_empty() {
            inner.log.borrow_mut().flushing = false;
            return;
        }
        match inner.write_batch(&batch.bytes).await {
            Ok(base) => inner.apply_batch(batch, base),
            Err(e) => {
                warn!(error = %e, records = batch.records.len(), "log write failed; batch not acknowledged");
                batch.fail(&e);
            }
        }
    }
}

/// Writes all of `buf` at `pos` (a short write is retried for the rest).
pub(crate) async fn write_all_at(file: &BufferedFile, buf: &[u8], pos: u64) -> Result<()> {
    let mut done = 0;
    while done < buf.len() {
        // glommio takes ownership of the buffer it hands to io_uring.
        let n = file
            .write_at(buf[done..].to_vec(), pos + done as u64)
            .await?;
        if n == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::WriteZero).into());
        }
        done += n;
    }
    Ok(())
}

/// Creates segment `id` with its header, synced, and syncs the directory. On failure the
/// file is removed again, but only if this call created it.
pub(crate) async fn create_segment(dir: &Path, id: u32, kind: SegmentKind) -> Result<BufferedFile> {
    let path = segment_path(dir, id);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .buffered_open(&path)
        .await?;
    let header = SegmentHeader { id, kind }.encode();
    let done = async {
        write_all_at(&f, &header, 0).await?;
        f.fdatasync().await?;
        sync_dir(dir).await
    }
    .await;
    match done {
        Ok(()) => Ok(f),
        Err(e) => {
            let _ = f.close().await;
            let _ = std::fs::remove_file(&path);
            Err(e)
        }
    }
}

/// fsyncs a directory so that created, renamed and removed names are durable.
pub(crate) async fn sync_dir(dir: &Path) -> Result<()> {
    let d = Directory::open(dir).await?;
    d.sync().await?;
    d.close().await?;
    Ok(())
}

/// Writes a checkpoint of the current index at the current durable position.
pub(crate) async fn checkpoint_now(inner: &Rc<Inner>) -> Result<()> {
    let (image, pos, file) = {
        let idx = inner.index.borrow();
        let log = inner.log.borrow();
        let pos = Loc {
            segment: log.active_id,
            offset: log.end,
        };
        let image = checkpoint::encode(&idx, pos).map_err(StoreError::Corrupt)?;
        inner.bg.borrow_mut().records_since_checkpoint = 0;
        (image, pos, log.active.clone())
    };
    // With Durability::Relaxed the log may not be synced yet; a checkpoint must never
    // point past durable log data.
    file.fdatasync().await?;
    let seq = {
        let mut bg = inner.bg.borrow_mut();
        bg.next_checkpoint_seq += 1;
        bg.next_checkpoint_seq
    };
    let path = checkpoint::path(&inner.dir, seq);
    // Unique, so that an abandoned instance's late task never shares a file with a new one.
    let tmp = path.with_extension(format!("ckpt.tmp-{}", rand::random::<u32>()));
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .buffered_open(&tmp)
        .await?;
    let written = async {
        write_all_at(&f, &image, 0).await?;
        f.fdatasync().await?;
        Ok::<_, StoreError>(())
    }
    .await;
    f.close().await?;
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    if inner.abandoned.get() {
        let _ = std::fs::remove_file(&tmp);
        return Ok(());
    }
    std::fs::rename(&tmp, &path)?;
    sync_dir(&inner.dir).await?;
    for old in checkpoint::list(&inner.dir)?
        .into_iter()
        .skip(checkpoint::KEEP)
    {
        let _ = std::fs::remove_file(checkpoint::path(&inner.dir, old));
    }
    let expired: Vec<u32> = {
        let mut bg = inner.bg.borrow_mut();
        bg.last_checkpoint = Some(pos);
        bg.checkpoints_written += 1;
        let written = bg.checkpoints_written;
        let (gone, keep): (Vec<_>, Vec<_>) = bg
            .retired
            .iter()
            .partition(|&&(_, at)| written >= at + checkpoint::KEEP as u64);
        bg.retired = keep;
        gone.into_iter().map(|(id, _)| id).collect()
    };
    if !expired.is_empty() {
        for id in expired {
            let _ = std::fs::remove_file(segment_path(&inner.dir, id));
        }
        sync_dir(&inner.dir).await?;
    }
    Ok(())
}
