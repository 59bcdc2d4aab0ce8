//! Read access for sessions: a borrowed view of one mailbox and the IDLE wait future.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::columns::Columns;
use super::index::{Index, Mailbox, MessageEntry};
use super::search_fields::SearchFields;
use super::writer::Inner;

/// Read-only access to one mailbox's index.
pub struct MailboxView<'a> {
    pub(crate) mailbox: &'a Mailbox,
    pub(crate) index: &'a Index,
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
    /// UIDNEXT when this process opened the partition: the messages from here on were
    /// stored since the server started (1 for a mailbox created since).
    pub fn uidnext_at_open(&self) -> u32 {
        self.mailbox.uidnext_at_open
    }
    /// HIGHESTMODSEQ.
    pub fn highest_modseq(&self) -> u64 {
        self.mailbox.highest_modseq
    }
    /// Messages in UID order (MSN = index + 1).
    pub fn messages(&self) -> &[MessageEntry] {
        &self.mailbox.messages
    }
    /// The header-search values of [`MailboxView::messages`], position for position; `None`
    /// when this mailbox has none (SEARCH then reads the messages).
    pub fn search_fields(&self) -> Option<&SearchFields> {
        Some(&self.mailbox.fields).filter(|f| f.is_complete())
    }
    /// The columns of [`MailboxView::messages`] that SEARCH scans, position for position.
    pub fn columns(&self) -> &Columns {
        debug_assert_eq!(self.mailbox.columns.len(), self.mailbox.messages.len());
        &self.mailbox.columns
    }
    /// How many keyword sets the partition has interned: the ids in
    /// [`Columns::kwsets`] are below it.
    pub fn keyword_set_count(&self) -> usize {
        self.index.keywords.sets.len().max(1)
    }
    /// The keyword names of interned set `id` (a value of [`Columns::kwsets`]).
    pub fn keyword_set(&self, id: u32) -> Vec<&str> {
        self.index.keywords.names_of(id)
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

/// Future returned by [`Partition::wait_for_change`](super::Partition::wait_for_change).
pub struct ChangeWait {
    pub(crate) inner: Rc<Inner>,
    pub(crate) user: String,
    pub(crate) mailbox: u64,
    pub(crate) since_modseq: u64,
    pub(crate) name: Option<String>,
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
