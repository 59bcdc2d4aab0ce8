//! A partition: its log files, its index, and the API the owner executor calls.

use std::path::Path;
use std::rc::Rc;

use glommio::io::{BufferedFile, ReadResult};

use super::commit::wait_all;
use super::error::{Result, StoreError};
use super::index::{flag, Applied, Index, Mailbox, MessageEntry, Quota, User};
use super::record::{
    flag_mode_byte, kind, search_text_len, FlagMode, MAX_MESSAGE_SIZE, MAX_META_SIZE,
    MAX_SEARCH_TEXT, SEARCH_TEXT_HEADER, SEARCH_TEXT_MAGIC,
};
use super::recovery;
use super::types::*;
use super::view::{ChangeWait, MailboxView};
use super::writer::{checkpoint_now, Inner};
use ringmail_mime::SearchValues;

/// Hierarchy delimiter of mailbox names.
pub const DELIMITER: char = '/';

/// Seconds since the Unix epoch.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// One partition of the store, owned by one executor. Sessions share it as `Rc<Partition>`.
///
/// Mutations resolve after their records are durable (see [`Durability`]); reads see only
/// durable state.
pub struct Partition {
    pub(crate) inner: Rc<Inner>,
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

/// Merges UIDs (any order, duplicates allowed) into sorted inclusive ranges.
pub fn to_ranges(uids: impl IntoIterator<Item = u32>) -> Vec<(u32, u32)> {
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
        inner.index.borrow_mut().mark_opened();
        Ok(Partition {
            inner: Rc::new(inner),
        })
    }

    /// Stops the way a crash would: no checkpoint, and background work (a checkpoint or a
    /// compaction pass under way) stops before its next visible step. Resolves once that
    /// work has stopped, so the directory can be opened again as a restarted process would
    /// find it; dropping the `Partition` instead leaves that work finishing on its own,
    /// while a new instance may already own the directory.
    pub async fn crash(self) {
        let inner = self.inner.clone();
        drop(self);
        loop {
            let busy = {
                let bg = inner.bg.borrow();
                bg.checkpoint_running || bg.compaction_running || inner.log.borrow().flushing
            };
            if !busy {
                return;
            }
            glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
        }
    }

    /// Clean shutdown: waits for in-flight commits and writes a checkpoint.
    pub async fn close(self) -> Result<()> {
        self.inner.closed.set(true);
        // A freeze nobody ended: what waited is written, as after a failed move.
        self.thaw();
        self.inner.drain().await;
        if self.inner.moved.get() {
            // The directory is the copy a move left behind; nothing more goes into it.
            return Ok(());
        }
        while self.inner.bg.borrow().checkpoint_running || self.inner.bg.borrow().compaction_running
        {
            glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
        }
        checkpoint_now(&self.inner).await
    }

    /// Appends, group-commit batches and fsync latency since open, with the message count
    /// and index size measured now.
    pub fn stats(&self) -> super::StoreStats {
        self.inner.stats.snapshot(&self.inner.index.borrow())
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
        self.create_mailbox_inner(user, name, special_use, None)
            .await
    }

    /// Creates a mailbox with a given UIDVALIDITY (non-zero), so that a migration keeps
    /// the one clients cached from the old server; returns its MAILBOXID.
    pub async fn create_mailbox_with_uidvalidity(
        &self,
        user: &str,
        name: &str,
        special_use: u8,
        uidvalidity: u32,
    ) -> Result<u64> {
        if uidvalidity == 0 {
            return Err(StoreError::NotPermitted("UIDVALIDITY 0"));
        }
        self.create_mailbox_inner(user, name, special_use, Some(uidvalidity))
            .await
    }

    async fn create_mailbox_inner(
        &self,
        user: &str,
        name: &str,
        special_use: u8,
        uidvalidity: Option<u32>,
    ) -> Result<u64> {
        let name = normalize_name(name)?;
        let (slot, id) = {
            let mut idx = self.inner.index.borrow_mut();
            if idx.user(user).is_some_and(|u| u.names.contains_key(&name)) {
                return Err(StoreError::AlreadyExists);
            }
            let id = idx.next_mailbox_id;
            idx.next_mailbox_id += 1;
            let uv = match uidvalidity {
                Some(uv) => uv,
                None => next_uidvalidity(&mut idx),
            };
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

    /// Every user this partition holds a mailbox, subscription or quota of, sorted (a tool
    /// reading a partition copy as a whole: `ringmail cluster recover`).
    pub fn users(&self) -> Vec<String> {
        let idx = self.inner.index.borrow();
        let mut users: Vec<String> = idx.users.keys().cloned().collect();
        users.sort_unstable();
        users
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
        self.append_inner(user, mailbox.into(), msgs, None).await
    }

    /// Appends messages with the UIDs they had on another server (a migration keeps them).
    /// `uids` pairs with `msgs`; each must be at least the mailbox's UIDNEXT (and no UID
    /// already reserved by an append in flight) and higher than the one before, else
    /// nothing is appended and the error is `NotPermitted`.
    pub async fn append_with_uids<'m>(
        &self,
        user: &str,
        mailbox: impl Into<MailboxRef<'m>>,
        msgs: &[NewMessage<'_>],
        uids: &[u32],
    ) -> Result<AppendResult> {
        if uids.len() != msgs.len() {
            return Err(StoreError::NotPermitted("one UID per message"));
        }
        if uids.windows(2).any(|w| w[1] <= w[0]) || uids.last() == Some(&u32::MAX) {
            return Err(StoreError::NotPermitted("UIDs must increase"));
        }
        self.append_inner(user, mailbox.into(), msgs, Some(uids))
            .await
    }

    /// Raises a mailbox's UIDNEXT to `uidnext` (a migration keeps the old server's UIDNEXT
    /// when its newest messages were expunged, so their UIDs are never handed out again
    /// under the same UIDVALIDITY). Never lowers it: with `uidnext` at or below the current
    /// UIDNEXT nothing is written. Resolves once the change is durable and returns the
    /// mailbox's UIDNEXT afterwards.
    pub async fn raise_uidnext(&self, user: &str, mailbox: &str, uidnext: u32) -> Result<u32> {
        let mailbox = MailboxRef::Name(mailbox);
        let (slot, id) = {
            let mut idx = self.inner.index.borrow_mut();
            let u = idx.users.get_mut(user).ok_or(StoreError::NoSuchMailbox)?;
            let mb = resolve_mut(u, mailbox)?;
            // Compared with the durable UIDNEXT, not the reservations of appends in
            // flight: one of those may still fail, and the raise must not depend on it.
            if uidnext <= mb.uidnext {
                return Ok(mb.uidnext);
            }
            // Appends submitted after this call get UIDs at or above the raised value.
            mb.uid_reserved = mb.uid_reserved.max(uidnext);
            let id = mb.id;
            let slot = self.inner.submit(kind::RAISE_UIDNEXT, |w| {
                w.str(user).u64(id).u32(uidnext);
            });
            (slot, id)
        };
        slot.wait().await?;
        self.with_mailbox(user, id, |v| v.uidnext())
    }

    async fn append_inner(
        &self,
        user: &str,
        mailbox: MailboxRef<'_>,
        msgs: &[NewMessage<'_>],
        given_uids: Option<&[u32]>,
    ) -> Result<AppendResult> {
        for m in msgs {
            if m.body.len() > MAX_MESSAGE_SIZE || m.meta.len() > MAX_META_SIZE {
                return Err(StoreError::TooLarge);
            }
            check_keywords(m.keywords)?;
        }
        // The header-search values the caller did not bring are extracted here, on the
        // caller's task and before the index is borrowed, not where the record is applied.
        let mut values: Vec<SearchValues> = msgs
            .iter()
            .map(|m| {
                m.search
                    .map_or_else(|| SearchValues::of_message(m.body), Clone::clone)
            })
            .collect();
        let save_date = now();
        let (slots, uidvalidity, uids) = {
            let mut idx = self.inner.index.borrow_mut();
            let first_email = idx.next_email_id;
            idx.next_email_id += msgs.len() as u64;
            let u = idx.users.get_mut(user).ok_or(StoreError::NoSuchMailbox)?;
            resolve(u, mailbox)?;
            let bytes: u64 = msgs.iter().map(|m| m.body.len() as u64).sum();
            let within = u.used_bytes.saturating_add(bytes) <= u.quota.max_bytes
                && u.used_messages.saturating_add(msgs.len() as u64) <= u.quota.max_messages;
            if !within {
                return Err(StoreError::OverQuota);
            }
            let mb = resolve_mut(u, mailbox)?;
            let first_uid = mb.uid_reserved;
            let uid_of = |i: usize| match given_uids {
                Some(given) => given.get(i).copied().unwrap_or(u32::MAX),
                None => first_uid + i as u32,
            };
            match given_uids {
                Some(given) => {
                    if given.first().is_some_and(|&f| f < first_uid) {
                        return Err(StoreError::NotPermitted("UID below UIDNEXT"));
                    }
                    if let Some(&last) = given.last() {
                        mb.uid_reserved = last + 1;
                    }
                }
                None => {
                    if u32::MAX - first_uid < msgs.len() as u32 + 1 {
                        return Err(StoreError::NotPermitted("UIDs exhausted"));
                    }
                    mb.uid_reserved += msgs.len() as u32;
                }
            }
            let (id, uidvalidity) = (mb.id, mb.uidvalidity);
            let mut slots = Vec::with_capacity(msgs.len());
            let mut uids = Vec::with_capacity(msgs.len());
            for (i, m) in msgs.iter().enumerate() {
                mb.modseq_reserved += 1;
                let uid = uid_of(i);
                let modseq = mb.modseq_reserved;
                uids.push(uid);
                mb.prepare_search_values(uid, std::mem::take(&mut values[i]));
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
                    if !m.text.is_empty() && m.text.len() <= MAX_SEARCH_TEXT {
                        w.u32(SEARCH_TEXT_MAGIC)
                            .u32(m.text.len() as u32)
                            .bytes(m.text);
                    }
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
            Applied::Done | Applied::CopiedOnly(_) => Vec::new(),
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
            // A MOVE into the mailbox itself is allowed (Dovecot and Cyrus do it): the messages
            // get new UIDs and the old ones are expunged, as for any other destination.
            let dst_id = d.id;
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
        let pairs = match slot.wait().await? {
            Applied::CopiedOnly(made) => made,
            Applied::Done | Applied::FlagConflicts(_) => pairs,
        };
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
        let (start, end) = clamp_range(range, u64::from(e.size));
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

    /// A reader of messages and their searchable texts in place, for one search pass: it
    /// hands out what the page cache holds without copying it (see `store::mapped`).
    pub fn record_reader(&self) -> super::mapped::RecordReader<'_> {
        super::mapped::RecordReader::new(&self.inner)
    }

    /// Appends the searchable text stored with a message (`NewMessage::text`) to `out` and
    /// returns true, or returns false with `out` as it was when the message has none (it
    /// was stored without one, by an older ringmail, or its compaction by one dropped it).
    ///
    /// The text follows the metadata blob in the message's record, behind a section header
    /// that no frame can start with (`SEARCH_TEXT_MAGIC`), so its presence is read from the
    /// bytes there. Both reads come from the page cache when it holds them (`store::read`).
    pub async fn read_search_text_into<'m>(
        &self,
        user: &str,
        mailbox: impl Into<MailboxRef<'m>>,
        uid: u32,
        out: &mut Vec<u8>,
    ) -> Result<bool> {
        let e = self.entry(user, mailbox.into(), uid)?;
        let file = self.file(e.segment)?;
        let at = u64::from(e.offset) + u64::from(e.size) + u64::from(e.meta_len);
        let start = out.len();
        // At the end of a segment there is nothing after the metadata: a short read.
        match super::read::read_into(&file, at, SEARCH_TEXT_HEADER, out).await {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(false),
            Err(err) => return Err(super::read::store_error(err, e.segment)),
        }
        let mut h = [0u8; SEARCH_TEXT_HEADER];
        h.copy_from_slice(&out[start..]);
        out.truncate(start);
        let Some(len) = search_text_len(&h) else {
            return Ok(false);
        };
        super::read::read_into(&file, at + SEARCH_TEXT_HEADER as u64, len, out)
            .await
            .map_err(|err| super::read::store_error(err, e.segment))?;
        Ok(true)
    }

    /// Appends a message's bytes, or the byte range `range` of it (clamped to the message),
    /// to `out`; returns how many bytes that was. On error `out` is as it was.
    ///
    /// The bytes go from the page cache straight into `out` when they are cached (see
    /// `store::read`): no allocation and no copy beyond the kernel's.
    pub async fn read_message_into<'m>(
        &self,
        user: &str,
        mailbox: impl Into<MailboxRef<'m>>,
        uid: u32,
        range: Option<std::ops::Range<u64>>,
        out: &mut Vec<u8>,
    ) -> Result<usize> {
        let e = self.entry(user, mailbox.into(), uid)?;
        let (start, end) = clamp_range(range, u64::from(e.size));
        let file = self.file(e.segment)?;
        let len = (end - start) as usize;
        super::read::read_into(&file, u64::from(e.offset) + start, len, out)
            .await
            .map_err(|err| super::read::store_error(err, e.segment))?;
        Ok(len)
    }

    /// Appends the metadata blob stored with a message at append to `out`; returns its
    /// length. On error `out` is as it was.
    pub async fn read_meta_into<'m>(
        &self,
        user: &str,
        mailbox: impl Into<MailboxRef<'m>>,
        uid: u32,
        out: &mut Vec<u8>,
    ) -> Result<usize> {
        let e = self.entry(user, mailbox.into(), uid)?;
        let file = self.file(e.segment)?;
        let pos = u64::from(e.offset) + u64::from(e.size);
        let len = e.meta_len as usize;
        super::read::read_into(&file, pos, len, out)
            .await
            .map_err(|err| super::read::store_error(err, e.segment))?;
        Ok(len)
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
            // Every expunge and flag change raises HIGHESTMODSEQ: when it has not moved past
            // the session's, there is nothing to scan for. Most commands are such, and each
            // scan walks the whole mailbox (5 ms for a million messages, up to three a
            // command).
            let (expunged, messages) = if since_modseq < mb.highest_modseq {
                (&mb.expunged[..], &mb.messages[..])
            } else {
                (&[][..], &[][..])
            };
            let mut vanished: Vec<u32> = expunged
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
            let flag_changes = messages
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

/// `range` of a message of `size` bytes cut to the message (the whole message when `None`),
/// as (start, end) with start <= end <= size.
pub fn clamp_range(range: Option<std::ops::Range<u64>>, size: u64) -> (u64, u64) {
    let r = range.unwrap_or(0..size);
    let start = r.start.min(size);
    (start, r.end.clamp(start, size))
}
