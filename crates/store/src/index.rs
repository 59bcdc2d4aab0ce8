//! The in-memory index of a partition: users, mailboxes, and one 64-byte entry per message.
//!
//! The index changes only through [`Index::apply`], which both the live commit path and
//! recovery call with the same decoded records, so a replayed partition equals the one that
//! was running. Records are applied after they are durable; a record that conflicts with
//! the state it meets (its mailbox was deleted in the same batch, ...) changes nothing,
//! in both paths alike.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::task::Waker;

use rkyv::{Archive, Deserialize, Serialize};

use super::columns::Columns;
use super::error::StoreError;
use super::record::{AppendRec, FlagMode, Record, UidRanges};
use super::search_fields::SearchFields;
use super::sieve::Sieve;
use super::sieve_log::SieveLogs;
use ringmail_mime::SearchValues;

/// System flags as bits of [`MessageEntry::flags`].
pub mod flag {
    /// `\Seen`
    pub const SEEN: u8 = 1;
    /// `\Answered`
    pub const ANSWERED: u8 = 2;
    /// `\Flagged`
    pub const FLAGGED: u8 = 4;
    /// `\Deleted`
    pub const DELETED: u8 = 8;
    /// `\Draft`
    pub const DRAFT: u8 = 16;
    /// All defined bits.
    pub const ALL: u8 = 31;
}

/// Special-use attributes (RFC 6154) as bits.
pub mod special_use {
    /// `\All`
    pub const ALL: u8 = 1;
    /// `\Archive`
    pub const ARCHIVE: u8 = 2;
    /// `\Drafts`
    pub const DRAFTS: u8 = 4;
    /// `\Flagged`
    pub const FLAGGED: u8 = 8;
    /// `\Junk`
    pub const JUNK: u8 = 16;
    /// `\Sent`
    pub const SENT: u8 = 32;
    /// `\Trash`
    pub const TRASH: u8 = 64;
}

/// One message in a mailbox: everything SEARCH, FETCH FLAGS and CONDSTORE need without
/// touching the disk. At most 64 bytes (asserted by a test).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct MessageEntry {
    /// Modification sequence of the last change (CONDSTORE).
    pub modseq: u64,
    /// INTERNALDATE, seconds since the Unix epoch.
    pub internal_date: i64,
    /// SAVEDATE (RFC 8514), seconds since the Unix epoch.
    pub save_date: i64,
    /// Stable message id (EMAILID, RFC 8474); copies share it.
    pub email_id: u64,
    /// The UID.
    pub uid: u32,
    /// Interned keyword set (0 = none).
    pub kwset: u32,
    /// RFC822.SIZE.
    pub size: u32,
    /// Segment holding the body.
    pub segment: u32,
    /// Offset of the body in the segment; the metadata blob follows the body.
    pub offset: u32,
    /// Length of the metadata blob.
    pub meta_len: u32,
    /// System flags ([`flag`]).
    pub flags: u8,
}

/// An expunged UID with the modseq of its expunge (for QRESYNC VANISHED).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct Expunged {
    /// Modseq of the expunge.
    pub modseq: u64,
    /// The expunged UID.
    pub uid: u32,
}

/// How many expunged UIDs a mailbox remembers; older ones raise `vanished_floor`.
pub(crate) const EXPUNGE_LOG_MAX: usize = 65_536;

/// A mailbox's state.
#[derive(Debug, Archive, Serialize, Deserialize)]
pub(crate) struct Mailbox {
    pub id: u64,
    pub name: String,
    pub uidvalidity: u32,
    pub uidnext: u32,
    pub highest_modseq: u64,
    pub special_use: u8,
    /// In UID order; MSN = position + 1.
    pub messages: Vec<MessageEntry>,
    /// Recent expunges in modseq order.
    pub expunged: Vec<Expunged>,
    /// Expunges at or below this modseq are forgotten.
    pub vanished_floor: u64,
    /// Header-search values, aligned with `messages`. Saved in a checkpoint section of its
    /// own (see `checkpoint`), so the layout of this archive is that of older checkpoints.
    #[rkyv(with = rkyv::with::Skip)]
    pub fields: SearchFields,
    /// The fields SEARCH scans, one array each, aligned with `messages`. Derived from
    /// `messages` (rebuilt when a checkpoint is loaded), so never saved.
    #[rkyv(with = rkyv::with::Skip)]
    pub columns: Columns,
    /// The header-search values of appends in flight, by UID in submission order (which
    /// is UID order): extracted on the appending session's task and only copied into
    /// `fields` when the record is applied. Replay finds none here and extracts them from
    /// the record's body.
    #[rkyv(with = rkyv::with::Skip)]
    pub prepared: VecDeque<(u32, SearchValues)>,
    /// Next UID to hand out (records not yet durable hold the ones before it).
    #[rkyv(with = rkyv::with::Skip)]
    pub uid_reserved: u32,
    /// Last modseq handed out.
    #[rkyv(with = rkyv::with::Skip)]
    pub modseq_reserved: u64,
    /// Sessions waiting in IDLE for a change.
    #[rkyv(with = rkyv::with::Skip)]
    pub waiters: Vec<Waker>,
    /// UIDNEXT when this process opened the partition (1 for a mailbox made since then):
    /// the messages from here on were stored by this run (IMAP's `\Recent` starts there).
    #[rkyv(with = rkyv::with::Skip)]
    pub uidnext_at_open: u32,
}

impl Mailbox {
    fn new(id: u64, name: String, uidvalidity: u32, special_use: u8) -> Mailbox {
        Mailbox {
            id,
            name,
            uidvalidity,
            uidnext: 1,
            highest_modseq: 1,
            special_use,
            messages: Vec::new(),
            expunged: Vec::new(),
            vanished_floor: 0,
            fields: SearchFields::new(),
            columns: Columns::default(),
            prepared: VecDeque::new(),
            uid_reserved: 1,
            modseq_reserved: 1,
            waiters: Vec::new(),
            uidnext_at_open: 1,
        }
    }

    /// Position of `uid` in `messages` (searched in the UID column: 4 bytes a step instead
    /// of an entry's 56).
    pub fn find(&self, uid: u32) -> Option<usize> {
        self.columns.uids().binary_search(&uid).ok()
    }

    /// Positions of the messages whose UID lies in the ranges, ascending.
    pub fn positions(&self, ranges: &[(u32, u32)]) -> Vec<usize> {
        let uids = self.columns.uids();
        let mut out = Vec::new();
        for &(a, b) in ranges {
            let start = uids.partition_point(|&u| u < a);
            let end = uids.partition_point(|&u| u <= b).max(start);
            out.extend(start..end);
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Keeps the header-search values of the append of `uid`, just submitted, for when its
    /// record is applied.
    pub fn prepare_search_values(&mut self, uid: u32, values: SearchValues) {
        self.prepared.push_back((uid, values));
    }

    /// The prepared values of `uid`, whose record is being applied. Those of lower UIDs
    /// belong to appends whose batch failed (their records were never applied) and go.
    fn take_prepared(&mut self, uid: u32) -> Option<SearchValues> {
        while let Some(&(first, _)) = self.prepared.front() {
            if first > uid {
                break;
            }
            let (first, values) = self.prepared.pop_front()?;
            if first == uid {
                return Some(values);
            }
        }
        None
    }

    /// Re-derives the live-only fields after loading a checkpoint.
    pub fn reset_reservations(&mut self) {
        self.uid_reserved = self.uidnext;
        self.modseq_reserved = self.highest_modseq;
    }

    fn wake(&mut self) {
        for w in self.waiters.drain(..) {
            w.wake();
        }
    }

    fn note_modseq(&mut self, modseq: u64) {
        self.highest_modseq = self.highest_modseq.max(modseq);
        self.modseq_reserved = self.modseq_reserved.max(self.highest_modseq);
    }

    fn record_expunge(&mut self, modseq: u64, uid: u32) {
        self.expunged.push(Expunged { modseq, uid });
        if self.expunged.len() > EXPUNGE_LOG_MAX {
            // Forget the older half; QRESYNC below the floor gets a full resync.
            let cut = self.expunged.len() / 2;
            self.vanished_floor = self.expunged[cut - 1].modseq;
            self.expunged.drain(..cut);
        }
    }
}

/// A user's per-user limits. `u64::MAX` means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct Quota {
    /// Storage limit in bytes.
    pub max_bytes: u64,
    /// Message count limit.
    pub max_messages: u64,
}

impl Default for Quota {
    fn default() -> Self {
        Quota {
            max_bytes: u64::MAX,
            max_messages: u64::MAX,
        }
    }
}

/// One user's mailboxes and settings.
#[derive(Debug, Default, Archive, Serialize, Deserialize)]
pub(crate) struct User {
    pub mailboxes: HashMap<u64, Mailbox>,
    /// Name → mailbox id.
    pub names: BTreeMap<String, u64>,
    pub subscriptions: BTreeSet<String>,
    pub quota: Quota,
    pub used_bytes: u64,
    pub used_messages: u64,
}

impl User {
    pub fn by_name(&self, name: &str) -> Option<&Mailbox> {
        self.mailboxes.get(self.names.get(name)?)
    }
    fn fits(&self, bytes: u64, messages: u64) -> bool {
        self.used_bytes.saturating_add(bytes) <= self.quota.max_bytes
            && self.used_messages.saturating_add(messages) <= self.quota.max_messages
    }
}

/// Interned keyword names and keyword sets, shared by the whole partition.
#[derive(Debug, Default, Archive, Serialize, Deserialize)]
pub(crate) struct Keywords {
    pub names: Vec<String>,
    pub by_name: HashMap<String, u32>,
    /// Set 0 is the empty set.
    pub sets: Vec<Vec<u32>>,
    pub by_set: HashMap<Vec<u32>, u32>,
}

impl Keywords {
    fn name_id(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.by_name.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(name.to_string());
        self.by_name.insert(name.to_string(), id);
        id
    }

    fn set_id(&mut self, mut set: Vec<u32>) -> u32 {
        set.sort_unstable();
        set.dedup();
        if set.is_empty() {
            return 0;
        }
        if self.sets.is_empty() {
            self.sets.push(Vec::new());
        }
        if let Some(&id) = self.by_set.get(&set) {
            return id;
        }
        let id = self.sets.len() as u32;
        self.sets.push(set.clone());
        self.by_set.insert(set, id);
        id
    }

    /// The keyword ids of a set.
    pub fn set(&self, id: u32) -> &[u32] {
        self.sets
            .get(id as usize)
            .map(|s| s.as_slice())
            .unwrap_or(&[])
    }

    /// A keyword's name.
    pub fn name(&self, id: u32) -> &str {
        self.names
            .get(id as usize)
            .map(|s| s.as_str())
            .unwrap_or("")
    }

    /// The names in a keyword set.
    pub fn names_of(&self, set: u32) -> Vec<&str> {
        self.set(set).iter().map(|&k| self.name(k)).collect()
    }

    fn combine(&mut self, current: u32, mode: FlagMode, names: &[&str]) -> u32 {
        let given: Vec<u32> = names.iter().map(|n| self.name_id(n)).collect();
        let cur = self.set(current).to_vec();
        let next = match mode {
            FlagMode::Replace => given,
            FlagMode::Add => cur.into_iter().chain(given).collect(),
            FlagMode::Remove => cur.into_iter().filter(|k| !given.contains(k)).collect(),
        };
        self.set_id(next)
    }

    /// Interns a keyword list as a set.
    pub fn intern_set(&mut self, names: &[&str]) -> u32 {
        let ids = names.iter().map(|n| self.name_id(n)).collect();
        self.set_id(ids)
    }
}

/// The whole partition's index.
#[derive(Debug, Default, Archive, Serialize, Deserialize)]
pub(crate) struct Index {
    pub users: HashMap<String, User>,
    pub keywords: Keywords,
    pub next_mailbox_id: u64,
    pub next_email_id: u64,
    pub next_uidvalidity: u32,
    /// Scripts and remembered keys per user. Not part of this archive: a checkpoint holds
    /// it as a second one (see `checkpoint`), so the mail index's archive is what it was
    /// before Sieve and older checkpoints still load.
    #[rkyv(with = rkyv::with::Skip)]
    pub sieve: Sieve,
    /// Each user's Sieve error log; a third archive of a checkpoint, like `sieve`.
    #[rkyv(with = rkyv::with::Skip)]
    pub sieve_log: SieveLogs,
}

/// Where a record was found: segment id and the offset of its frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Loc {
    pub segment: u32,
    pub offset: u64,
}

/// What applying a record produced beyond the state change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum Applied {
    #[default]
    Done,
    /// UIDs a flag change skipped because of UNCHANGEDSINCE.
    FlagConflicts(Vec<u32>),
    /// The (source, destination) pairs a copy or move really made, when a message of it was
    /// expunged by a record ahead of it in the log (see `Record::Copy`).
    CopiedOnly(Vec<(u32, u32)>),
}

fn combine_flags(cur: u8, mode: FlagMode, given: u8) -> u8 {
    match mode {
        FlagMode::Replace => given & flag::ALL,
        FlagMode::Add => (cur | given) & flag::ALL,
        FlagMode::Remove => cur & !given,
    }
}

impl Index {
    /// Seeds the id counters of a brand-new partition.
    pub fn new(now: i64) -> Index {
        Index {
            next_mailbox_id: 1,
            next_email_id: 1,
            // Time-based so that a recreated mailbox never reuses an old UIDVALIDITY.
            next_uidvalidity: (now.max(1) as u64 & 0x7fff_ffff) as u32,
            ..Index::default()
        }
    }

    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.get(name)
    }

    pub fn user_mut(&mut self, name: &str) -> &mut User {
        if !self.users.contains_key(name) {
            self.users.insert(name.to_string(), User::default());
        }
        // Inserted just above when missing.
        self.users.entry(name.to_string()).or_default()
    }

    /// Applies one durable record located at `loc`.
    pub fn apply(&mut self, rec: &Record<'_>, loc: Loc) -> Result<Applied, StoreError> {
        match rec {
            Record::Append(a) => self.apply_append(a, loc),
            Record::Flags {
                user,
                mailbox,
                modseq,
                mode,
                flags,
                keywords,
                unchanged_since,
                uids,
            } => {
                let Index {
                    users,
                    keywords: kw,
                    ..
                } = self;
                let mb = users
                    .get_mut(*user)
                    .and_then(|u| u.mailboxes.get_mut(mailbox))
                    .ok_or(StoreError::NoSuchMailbox)?;
                let mut conflicts = Vec::new();
                let mut changed = false;
                for i in mb.positions(uids) {
                    let m = &mut mb.messages[i];
                    if unchanged_since.is_some_and(|u| m.modseq > u) {
                        conflicts.push(m.uid);
                        continue;
                    }
                    let nf = combine_flags(m.flags, *mode, *flags);
                    let nk = kw.combine(m.kwset, *mode, keywords);
                    if nf != m.flags || nk != m.kwset {
                        m.flags = nf;
                        m.kwset = nk;
                        m.modseq = *modseq;
                        mb.columns.set_flags(i, nf, nk);
                        changed = true;
                    }
                }
                if changed {
                    mb.note_modseq(*modseq);
                    mb.wake();
                }
                Ok(if conflicts.is_empty() {
                    Applied::Done
                } else {
                    Applied::FlagConflicts(conflicts)
                })
            }
            Record::Expunge {
                user,
                mailbox,
                modseq,
                uids,
            } => {
                let u = self.users.get_mut(*user).ok_or(StoreError::NoSuchMailbox)?;
                let mb = u
                    .mailboxes
                    .get_mut(mailbox)
                    .ok_or(StoreError::NoSuchMailbox)?;
                let (bytes, count) = expunge_ranges(mb, uids, *modseq);
                u.used_bytes = u.used_bytes.saturating_sub(bytes);
                u.used_messages = u.used_messages.saturating_sub(count);
                Ok(Applied::Done)
            }
            Record::Copy {
                user,
                src,
                dst,
                dst_modseq,
                src_modseq,
                save_date,
                pairs,
            } => {
                let u = self.users.get_mut(*user).ok_or(StoreError::NoSuchMailbox)?;
                if !u.mailboxes.contains_key(dst) {
                    return Err(StoreError::NoSuchMailbox);
                }
                let s = u.mailboxes.get(src).ok_or(StoreError::NoSuchMailbox)?;
                let dst_next = u.mailboxes.get(dst).map_or(1, |d| d.uidnext);
                let mut copies = Vec::with_capacity(pairs.len());
                let mut copied_from = Vec::with_capacity(pairs.len());
                // A message expunged after the copy was submitted, by a record ahead of it in
                // the log, is not copied; the rest are. This is what every build has done with
                // such a record, so a log replays to the state its writer acknowledged; the
                // caller learns which pairs were made and reports only those.
                let mut lost = false;
                for &(su, du) in pairs {
                    let Some(i) = s.find(su) else {
                        lost = true;
                        continue;
                    };
                    if du >= dst_next && copies.last().is_none_or(|c: &MessageEntry| c.uid < du) {
                        let mut m = s.messages[i];
                        m.uid = du;
                        m.modseq = *dst_modseq;
                        m.save_date = *save_date;
                        copies.push(m);
                        copied_from.push(i);
                    }
                }
                let made: Option<Vec<(u32, u32)>> = lost.then(|| {
                    pairs
                        .iter()
                        .filter(|&&(_, du)| copies.iter().any(|c| c.uid == du))
                        .copied()
                        .collect()
                });
                // Taken before a MOVE expunges the originals (and the source may be the
                // destination).
                let mut copied_fields = SearchFields::new();
                copied_fields.push_copies(&s.fields, copied_from.iter().copied());
                let bytes: u64 = copies.iter().map(|m| u64::from(m.size)).sum();
                if src_modseq.is_none() && !u.fits(bytes, copies.len() as u64) {
                    return Err(StoreError::OverQuota);
                }
                if let Some(ms) = src_modseq {
                    let moved: Vec<(u32, u32)> = pairs.iter().map(|&(s, _)| (s, s)).collect();
                    let s = u.mailboxes.get_mut(src).ok_or(StoreError::NoSuchMailbox)?;
                    let (b, c) = expunge_ranges(s, &moved, *ms);
                    u.used_bytes = u.used_bytes.saturating_sub(b);
                    u.used_messages = u.used_messages.saturating_sub(c);
                }
                u.used_bytes += bytes;
                u.used_messages += copies.len() as u64;
                let d = u.mailboxes.get_mut(dst).ok_or(StoreError::NoSuchMailbox)?;
                if let Some(last) = copies.last() {
                    d.uidnext = last.uid.saturating_add(1);
                    d.uid_reserved = d.uid_reserved.max(d.uidnext);
                    d.note_modseq(*dst_modseq);
                }
                d.columns.reserve(copies.len());
                copies.iter().for_each(|m| d.columns.push(m));
                d.messages.extend(copies);
                d.fields.push_copies(&copied_fields, 0..copied_from.len());
                d.wake();
                Ok(made.map_or(Applied::Done, Applied::CopiedOnly))
            }
            Record::CreateMailbox {
                user,
                id,
                uidvalidity,
                special_use,
                name,
            } => {
                self.next_mailbox_id = self.next_mailbox_id.max(id.saturating_add(1));
                self.next_uidvalidity = self.next_uidvalidity.max(uidvalidity.wrapping_add(1));
                let u = self.user_mut(user);
                if u.names.contains_key(*name) || u.mailboxes.contains_key(id) {
                    return Err(StoreError::AlreadyExists);
                }
                u.names.insert(name.to_string(), *id);
                u.mailboxes.insert(
                    *id,
                    Mailbox::new(*id, name.to_string(), *uidvalidity, *special_use),
                );
                Ok(Applied::Done)
            }
            Record::RenameMailbox {
                user,
                renames,
                new_inbox,
            } => {
                if let Some((id, uv)) = new_inbox {
                    self.next_mailbox_id = self.next_mailbox_id.max(id.saturating_add(1));
                    self.next_uidvalidity = self.next_uidvalidity.max(uv.wrapping_add(1));
                }
                let u = self.users.get_mut(*user).ok_or(StoreError::NoSuchMailbox)?;
                let moving: Vec<u64> = renames.iter().map(|r| r.0).collect();
                for (id, new) in renames {
                    if !u.mailboxes.contains_key(id) {
                        return Err(StoreError::NoSuchMailbox);
                    }
                    if u.names.get(*new).is_some_and(|o| !moving.contains(o)) {
                        return Err(StoreError::AlreadyExists);
                    }
                }
                if let Some((id, _)) = new_inbox {
                    if u.mailboxes.contains_key(id) {
                        return Err(StoreError::AlreadyExists);
                    }
                }
                for (id, _) in renames {
                    if let Some(mb) = u.mailboxes.get(id) {
                        u.names.remove(&mb.name);
                    }
                }
                for (id, new) in renames {
                    if let Some(mb) = u.mailboxes.get_mut(id) {
                        mb.name = new.to_string();
                        mb.wake();
                    }
                    u.names.insert(new.to_string(), *id);
                }
                if let Some((id, uv)) = new_inbox {
                    u.names.insert("INBOX".into(), *id);
                    u.mailboxes
                        .insert(*id, Mailbox::new(*id, "INBOX".into(), *uv, 0));
                }
                Ok(Applied::Done)
            }
            Record::DeleteMailbox { user, id } => {
                let u = self.users.get_mut(*user).ok_or(StoreError::NoSuchMailbox)?;
                let mut mb = u.mailboxes.remove(id).ok_or(StoreError::NoSuchMailbox)?;
                u.names.remove(&mb.name);
                let freed: u64 = mb.messages.iter().map(|m| u64::from(m.size)).sum();
                u.used_bytes = u.used_bytes.saturating_sub(freed);
                u.used_messages = u.used_messages.saturating_sub(mb.messages.len() as u64);
                mb.wake();
                Ok(Applied::Done)
            }
            Record::Subscribe {
                user,
                subscribed,
                name,
            } => {
                let u = self.user_mut(user);
                if *subscribed {
                    u.subscriptions.insert(name.to_string());
                } else {
                    u.subscriptions.remove(*name);
                }
                Ok(Applied::Done)
            }
            Record::SetQuota {
                user,
                max_bytes,
                max_messages,
            } => {
                self.user_mut(user).quota = Quota {
                    max_bytes: *max_bytes,
                    max_messages: *max_messages,
                };
                Ok(Applied::Done)
            }
            Record::Body { .. } => Ok(Applied::Done),
            Record::PutScript { user, name, source } => {
                let replaces_active = self
                    .sieve
                    .user(user)
                    .is_some_and(|u| u.active.as_deref() == Some(*name));
                let applied = self.sieve.put_script(user, name, source)?;
                if replaces_active {
                    self.sieve_log.clear(user);
                }
                Ok(applied)
            }
            Record::DeleteScript { user, name } => self.sieve.delete_script(user, name),
            Record::RenameScript { user, from, to } => self.sieve.rename_script(user, from, to),
            Record::ActivateScript { user, name } => {
                let applied = self.sieve.activate_script(user, *name)?;
                if name.is_some() {
                    self.sieve_log.clear(user);
                }
                Ok(applied)
            }
            Record::SieveLog(rec) => {
                self.sieve_log.push(rec.user, rec.entry());
                Ok(Applied::Done)
            }
            Record::SieveRemember { user, now, entries } => {
                self.sieve.remember(user, *now, entries)
            }
            Record::RaiseUidnext {
                user,
                mailbox,
                uidnext,
            } => {
                let mb = self
                    .users
                    .get_mut(*user)
                    .and_then(|u| u.mailboxes.get_mut(mailbox))
                    .ok_or(StoreError::NoSuchMailbox)?;
                // Only ever up: UIDNEXT must not decrease (RFC 9051 2.3.1.1).
                mb.uidnext = mb.uidnext.max(*uidnext);
                mb.uid_reserved = mb.uid_reserved.max(mb.uidnext);
                Ok(Applied::Done)
            }
            Record::SetSpecialUse {
                user,
                id,
                special_use,
            } => {
                let mb = self
                    .users
                    .get_mut(*user)
                    .and_then(|u| u.mailboxes.get_mut(id))
                    .ok_or(StoreError::NoSuchMailbox)?;
                mb.special_use = *special_use;
                Ok(Applied::Done)
            }
        }
    }

    fn apply_append(&mut self, a: &AppendRec<'_>, loc: Loc) -> Result<Applied, StoreError> {
        self.next_email_id = self.next_email_id.max(a.email_id.saturating_add(1));
        let body = loc.offset + super::record::FRAME_HEADER as u64 + a.body_at as u64;
        let offset = u32::try_from(body)
            .map_err(|_| StoreError::Corrupt("record offset beyond 4 GiB".into()))?;
        let Index {
            users, keywords, ..
        } = self;
        let u = users.get_mut(a.user).ok_or(StoreError::NoSuchMailbox)?;
        if !u.fits(u64::from(a.body_len), 1) {
            return Err(StoreError::OverQuota);
        }
        let mb = u
            .mailboxes
            .get_mut(&a.mailbox)
            .ok_or(StoreError::NoSuchMailbox)?;
        if a.uid < mb.uidnext {
            return Err(StoreError::NotPermitted("UID already used"));
        }
        let kwset = keywords.intern_set(&a.keywords);
        let entry = MessageEntry {
            modseq: a.modseq,
            internal_date: a.internal_date,
            save_date: a.save_date,
            email_id: a.email_id,
            uid: a.uid,
            kwset,
            size: a.body_len,
            segment: loc.segment,
            offset,
            meta_len: a.meta_len,
            flags: a.flags & flag::ALL,
        };
        mb.columns.push(&entry);
        mb.messages.push(entry);
        match mb.take_prepared(a.uid) {
            Some(values) => mb.fields.push_values(&values),
            None => mb.fields.push_message(a.body),
        }
        mb.uidnext = a.uid.saturating_add(1);
        mb.uid_reserved = mb.uid_reserved.max(mb.uidnext);
        mb.note_modseq(a.modseq);
        mb.wake();
        u.used_bytes += u64::from(a.body_len);
        u.used_messages += 1;
        Ok(Applied::Done)
    }

    /// Marks what the partition held when it was opened (after recovery).
    pub fn mark_opened(&mut self) {
        for u in self.users.values_mut() {
            for mb in u.mailboxes.values_mut() {
                mb.uidnext_at_open = mb.uidnext;
            }
        }
    }

    /// Derives every mailbox's columns from its entries (a checkpoint holds no columns).
    pub fn rebuild_columns(&mut self) {
        for u in self.users.values_mut() {
            for mb in u.mailboxes.values_mut() {
                mb.columns = Columns::of(&mb.messages);
            }
        }
    }

    /// Re-derives live-only fields of every mailbox (after loading a checkpoint).
    pub fn reset_reservations(&mut self) {
        for u in self.users.values_mut() {
            for mb in u.mailboxes.values_mut() {
                mb.reset_reservations();
            }
        }
    }
}

/// Removes the messages in `ranges`, logging each expunge. Returns (bytes, messages) freed.
fn expunge_ranges(mb: &mut Mailbox, ranges: &UidRanges, modseq: u64) -> (u64, u64) {
    let pos = mb.positions(ranges);
    if pos.is_empty() {
        return (0, 0);
    }
    let mut bytes = 0u64;
    for &i in &pos {
        let m = mb.messages[i];
        bytes += u64::from(m.size);
        mb.record_expunge(modseq, m.uid);
    }
    let mut k = 0;
    let mut idx = 0;
    mb.messages.retain(|_| {
        let keep = pos.get(k) != Some(&idx);
        if !keep {
            k += 1;
        }
        idx += 1;
        keep
    });
    mb.fields.remove(&pos);
    mb.columns.remove(&pos);
    mb.note_modseq(modseq);
    mb.wake();
    (bytes, pos.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_entry_fits_in_64_bytes() {
        assert!(std::mem::size_of::<MessageEntry>() <= 64);
    }

    #[test]
    fn prepared_values_go_to_their_own_uid_and_those_of_failed_appends_are_dropped() {
        let values =
            |uid: u32| SearchValues::of_message(format!("Subject: {uid}\r\n\r\n").as_bytes());
        let mut mb = Mailbox::new(1, "INBOX".into(), 1, 0);
        for uid in [5, 6, 7, 9] {
            mb.prepare_search_values(uid, values(uid));
        }
        // 5's batch failed: its record is never applied.
        assert_eq!(mb.take_prepared(6), Some(values(6)));
        // 7's record fails to apply; 8 was never prepared (a record replayed from the log).
        assert_eq!(mb.take_prepared(8), None);
        assert_eq!(mb.take_prepared(9), Some(values(9)));
        assert!(mb.prepared.is_empty());
    }
}
