//! Public argument and result types of the [`Partition`](super::Partition) API.

use super::index::{MessageEntry, Quota};
use ringmail_mime::SearchValues;

/// When a mutation counts as done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Every batch is fdatasync'ed before its mutations resolve (the default).
    #[default]
    Always,
    /// Batches are written but never synced. A power loss or kernel crash can lose
    /// acknowledged mutations and leave a checkpoint pointing past the log's end, which
    /// then needs `ringmail check --repair`. For benchmarks and throwaway test servers only.
    Relaxed,
}

/// Settings of a partition.
#[derive(Debug, Clone)]
pub struct Options {
    /// Sync policy.
    pub durability: Durability,
    /// A segment is sealed and a new one started once it reaches this size (bytes, ≤ 2 GiB).
    pub segment_size: u64,
    /// Write a checkpoint after this many records.
    pub checkpoint_every: u64,
    /// A sealed segment is compacted when at least this share (0..=1) of its message
    /// bytes is dead.
    pub compact_dead_share: f64,
    /// Bytes compaction may copy before it yields to other tasks.
    pub compact_bytes_per_tick: usize,
    /// Share one write and fdatasync among all records of a tick (the default). `false`
    /// writes and syncs each record on its own; it exists to measure what group commit
    /// buys and has no other use.
    pub group_commit: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            durability: Durability::Always,
            segment_size: 256 << 20,
            checkpoint_every: 100_000,
            compact_dead_share: 0.5,
            compact_bytes_per_tick: 1 << 20,
            group_commit: true,
        }
    }
}

/// Names a mailbox: by name, or by its MAILBOXID (stable across renames).
#[derive(Debug, Clone, Copy)]
pub enum MailboxRef<'a> {
    /// The mailbox name (INBOX is case-insensitive).
    Name(&'a str),
    /// The MAILBOXID.
    Id(u64),
}

impl<'a> From<&'a str> for MailboxRef<'a> {
    fn from(s: &'a str) -> Self {
        MailboxRef::Name(s)
    }
}

impl<'a> From<&'a String> for MailboxRef<'a> {
    fn from(s: &'a String) -> Self {
        MailboxRef::Name(s)
    }
}

impl From<u64> for MailboxRef<'_> {
    fn from(id: u64) -> Self {
        MailboxRef::Id(id)
    }
}

/// One message to append.
#[derive(Debug, Clone, Copy)]
pub struct NewMessage<'a> {
    /// The full RFC 5322 message.
    pub body: &'a [u8],
    /// System flags ([`flag`](super::flag)).
    pub flags: u8,
    /// Keywords, stored as given.
    pub keywords: &'a [&'a str],
    /// INTERNALDATE (seconds since the epoch).
    pub internal_date: i64,
    /// Opaque metadata stored next to the body (ENVELOPE, BODYSTRUCTURE, part offsets).
    pub meta: &'a [u8],
    /// The message's header-search values, when the caller already has them from its own
    /// analysis (`ringmail_mime::analyze_for_store`); else the store computes
    /// them from `body` on the caller's task. They must be this body's values: SEARCH
    /// answers from them.
    pub search: Option<&'a SearchValues>,
    /// The message's searchable text (`ringmail_mime::search_text`), stored after the
    /// metadata so that SEARCH BODY / TEXT scan it instead of decoding the message; empty
    /// for none (those searches then read the message). Opaque to the store, like `meta`;
    /// it must be this body's text.
    pub text: &'a [u8],
}

impl<'a> NewMessage<'a> {
    /// A message with no flags, keywords, date or metadata: what most unit tests append
    /// (public, not test-only, because tests of the crates above the store use it too).
    pub fn plain(body: &'a [u8]) -> NewMessage<'a> {
        NewMessage {
            body,
            flags: 0,
            keywords: &[],
            internal_date: 0,
            meta: &[],
            search: None,
            text: &[],
        }
    }
}

/// Result of an append (APPENDUID).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendResult {
    /// UIDVALIDITY of the target mailbox.
    pub uidvalidity: u32,
    /// UIDs of the appended messages, in order.
    pub uids: Vec<u32>,
}

/// Result of a flag change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreResult {
    /// Modseq given to the changed messages.
    pub modseq: u64,
    /// UIDs left unchanged because of UNCHANGEDSINCE (the MODIFIED set).
    pub modified: Vec<u32>,
}

/// Result of COPY or MOVE (COPYUID).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyResult {
    /// UIDVALIDITY of the destination.
    pub uidvalidity: u32,
    /// (source UID, destination UID) for each copied message.
    pub pairs: Vec<(u32, u32)>,
}

/// STATUS items of a mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxStatus {
    /// MAILBOXID.
    pub id: u64,
    /// Current name.
    pub name: String,
    /// MESSAGES
    pub messages: u32,
    /// UIDNEXT
    pub uidnext: u32,
    /// UIDVALIDITY
    pub uidvalidity: u32,
    /// UNSEEN
    pub unseen: u32,
    /// HIGHESTMODSEQ
    pub highest_modseq: u64,
    /// SIZE (sum of RFC822.SIZE)
    pub size: u64,
    /// DELETED (messages with `\Deleted`)
    pub deleted: u32,
    /// Special-use bits.
    pub special_use: u8,
}

/// One mailbox in a LIST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxListing {
    /// Name.
    pub name: String,
    /// MAILBOXID.
    pub id: u64,
    /// Special-use bits.
    pub special_use: u8,
    /// Whether the name is subscribed.
    pub subscribed: bool,
}

/// A user's quota and usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaStatus {
    /// The limits.
    pub limit: Quota,
    /// Bytes used (copies count again).
    pub used_bytes: u64,
    /// Messages stored.
    pub used_messages: u64,
}

/// What changed in a mailbox since a session last looked (see `Partition::changes_since`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailboxChanges {
    /// `EXPUNGE n` responses to send, in this order (each already accounts for the previous).
    pub expunge_msns: Vec<u32>,
    /// The expunged UIDs (for `VANISHED` in QRESYNC sessions), ascending.
    pub vanished: Vec<u32>,
    /// The new message count (send `EXISTS` when it differs from the session's).
    pub exists: u32,
    /// Messages whose flags changed: (MSN, entry) in the current numbering.
    pub flag_changes: Vec<(u32, MessageEntry)>,
    /// The session's new high-water marks.
    pub highest_modseq: u64,
    /// UIDNEXT now.
    pub uidnext: u32,
    /// False when expunges older than the session's modseq were forgotten: the session
    /// cannot be brought up to date incrementally and must be closed (BYE) or reselect.
    pub complete: bool,
}

/// One of a user's Sieve scripts (ManageSieve LISTSCRIPTS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptInfo {
    /// The name, as stored.
    pub name: String,
    /// Whether it is the active script.
    pub active: bool,
    /// Bytes of source.
    pub size: usize,
}

/// A user's active Sieve script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveScript {
    /// Its name.
    pub name: String,
    /// Its source.
    pub source: String,
    /// The user's script version when this was read (see `Partition::script_version`).
    pub version: u64,
}
