//! SEARCH, SORT and THREAD: evaluating search keys over the selected mailbox, sort keys,
//! base subjects and threading.
//!
//! A search runs in two passes. The first walks the index only, in chunks, and decides every
//! message the cheap keys decide (flags, sizes, dates, sets, mod-sequences); the second reads
//! just the header, or the whole message, of the messages still undecided. Both passes give
//! the executor back between chunks and messages (`glommio::yield_if_needed`), so a search
//! over a huge mailbox never holds the core for long, and both stop when the server shuts
//! down. The second pass scans what the page cache holds in place
//! (`Partition::record_reader`) and reads only the rest.
//!
//! Header keys on the fields the store keeps in memory (FROM, TO, CC, BCC, SUBJECT, HEADER
//! on those) are decided in the first pass too: [`fields::scan`] runs the scanner over the
//! mailbox's header-search values for each chunk, so such a search reads no message.

pub mod body;
mod collect;
mod column_scan;
pub mod fields;
pub mod header;
pub mod program;
pub mod scanner;
pub mod sort;
pub mod thread;

#[cfg(test)]
mod pass2_tests;
#[cfg(test)]
mod run_tests;
#[cfg(test)]
mod stored_text_tests;

use std::borrow::Cow;
use std::rc::Rc;

use crate::recent::RecentUids;
use crate::selected::View;
use glommio::io::ReadResult;
use ringmail_mime::search_header::SearchField;
use ringmail_mime::{self as mime, MessageMeta, SortFields};
use ringmail_proto::dates;
use ringmail_proto::parser::SearchKey;
use ringmail_store::{InPlace, MailboxView, MessageEntry, Partition, StoreError};

pub use collect::Collect;
use collect::Matches;
use program::{Content, Context, Level, Message, Program, Tri};

/// Messages the index pass handles between two chances to yield.
const INDEX_CHUNK: usize = 4096;

/// The same for a program [`column_scan`] evaluates: a few microseconds per thousand
/// messages, so larger runs keep the per-chunk work (the mailbox lookup, the buffers) small
/// beside the scan and still yield within a millisecond or two.
const COLUMN_CHUNK: usize = 65_536;

/// Undecided messages the second pass decides in place between two chances to yield: about
/// a microsecond each for small messages in the page cache.
const IN_PLACE_BATCH: usize = 256;

/// Message bytes the second pass scans in place between two chances to yield, at most (and
/// a message more): well under a millisecond at the scanner's speed.
const IN_PLACE_BYTES: usize = 1 << 20;

/// How many pending messages ahead pass 2 asks for the record of (`RecordReader::prefetch`):
/// its first bytes arrive from memory while the one before it is scanned. (On the 1M bench
/// 2 measured the same as 1.)
const PREFETCH_AHEAD: usize = 1;

/// Bytes read first for a header-only key; most headers fit.
const HEADER_PREFIX: u64 = 16 * 1024;

/// One matching message: what SEARCH, SORT and THREAD answers need of it (32 bytes, so a
/// search matching a million messages stays small).
#[derive(Debug, Clone, Copy)]
pub struct Hit {
    /// Its message number in the session's view.
    pub msn: u32,
    /// Its UID.
    pub uid: u32,
    /// RFC822.SIZE.
    pub size: u32,
    /// Its mod-sequence; only read (and, for matches decided from the columns, only set)
    /// when the search used MODSEQ ([`Found::uses_modseq`]).
    pub modseq: u64,
    /// INTERNALDATE, seconds since the epoch.
    pub internal_date: i64,
}

impl Hit {
    fn new(msn: u32, e: &MessageEntry) -> Hit {
        Hit {
            msn,
            uid: e.uid,
            size: e.size,
            modseq: e.modseq,
            internal_date: e.internal_date,
        }
    }
}

/// The result of a search.
#[derive(Debug, Default)]
pub struct Found {
    /// What it kept of each match: where the matches are.
    pub kept: Collect,
    /// Matching messages in message-number order, with [`Collect::Hits`].
    pub hits: Vec<Hit>,
    /// Their UIDs or message numbers, ascending, with [`Collect::Uids`] or
    /// [`Collect::Msns`].
    pub ids: Vec<u32>,
    /// A MODSEQ key was used: responses must carry mod-sequences (RFC 7162 section 3.1.5).
    pub uses_modseq: bool,
    /// Messages of the session's view were expunged by another session before they could be
    /// tested (or, for SORT and THREAD, their fields read): the answer may lack some that
    /// would have matched, and says so with RFC 5530's EXPUNGEISSUED.
    pub expunged: bool,
}

impl Found {
    /// The matches' UIDs (`uid`) or message numbers, ascending, from whichever form the
    /// search kept. Numbers it did not keep (message numbers of a search that kept UIDs)
    /// are a caller's mistake: none.
    pub fn numbers(&self, uid: bool) -> Cow<'_, [u32]> {
        match (self.kept, uid) {
            (Collect::Hits, _) => Cow::Owned(
                self.hits
                    .iter()
                    .map(|h| if uid { h.uid } else { h.msn })
                    .collect(),
            ),
            (Collect::Uids, true) | (Collect::Msns, false) => Cow::Borrowed(&self.ids),
            (Collect::Uids, false) | (Collect::Msns, true) => {
                debug_assert!(false, "{:?} asked for uid={uid}", self.kept);
                Cow::Borrowed(&[])
            }
        }
    }
}

/// Why a search produced no result.
#[derive(Debug)]
pub enum SearchError {
    /// A CHARSET other than UTF-8 or US-ASCII.
    BadCharset,
    /// More distinct keywords than one search can test.
    TooComplex,
    /// The store failed.
    Store(StoreError),
    /// The server is shutting down.
    Abandoned,
}

impl From<StoreError> for SearchError {
    fn from(e: StoreError) -> Self {
        SearchError::Store(e)
    }
}

/// Whether a CHARSET argument is one ringmail searches in.
pub fn charset_supported(charset: &[u8]) -> bool {
    charset.eq_ignore_ascii_case(b"UTF-8") || charset.eq_ignore_ascii_case(b"US-ASCII")
}

/// What a search needs of the session that runs it, and no more: the selected mailbox as
/// the session numbers it, `$`, its `\Recent` messages, and when to give up.
pub struct Scope<'a> {
    /// The user's partition.
    pub mail: &'a Partition,
    /// The user.
    pub user: &'a str,
    /// The selected mailbox's id.
    pub mailbox: u64,
    /// The session's message numbering.
    pub view: &'a View,
    /// The UIDs `SEARCH RETURN (SAVE)` saved, for `$`.
    pub saved: &'a [u32],
    /// The UIDs `\Recent` for the session (none under IMAP4rev2).
    pub recent: &'a RecentUids,
    /// True when the search should stop: the server is shutting down or the client has gone
    /// away (nobody would read the answer).
    pub abandon: &'a dyn Fn() -> bool,
}

/// Compiles search keys for `scope` (the caller has checked the CHARSET with
/// [`charset_supported`]).
pub fn compile(scope: &Scope<'_>, keys: &[SearchKey<'_>]) -> Result<Program, SearchError> {
    let context = Context {
        view: scope.view,
        saved: scope.saved,
        now: dates::now(),
        recent: scope.recent,
    };
    Program::compile(keys, &context).map_err(|_| SearchError::TooComplex)
}

/// Runs a compiled search over the selected mailbox, keeping of each match what `collect`
/// asks for.
pub async fn run(
    scope: &Scope<'_>,
    program: &Program,
    collect: Collect,
) -> Result<Found, SearchError> {
    let (mail, user, view) = (scope.mail, scope.user, scope.view);
    let mailbox = scope.mailbox;

    // Pass 1: the index. `pending` lists the matches whose bytes must be read: their
    // positions in `hits` and their message numbers and UIDs.
    let mut hits = Matches::new(collect);
    let mut pending: Vec<(usize, u32, u32)> = Vec::new();
    let mut keyword_table: Vec<u64> = Vec::new();
    let mut matches: Vec<u8> = Vec::new();
    let mut expunged = false;
    // Columnar with the sent days if the mailbox keeps them (checked per chunk: a mailbox
    // can lose its header-search values), and perhaps even without them.
    let columnar_with_days = program.is_columnar(true);
    let columnar = program.is_columnar(false);
    let chunk_len = if columnar_with_days {
        COLUMN_CHUNK
    } else {
        INDEX_CHUNK
    };
    for (chunk_no, chunk) in view.uids.chunks(chunk_len).enumerate() {
        let first_msn = chunk_no * chunk_len + 1;
        mail.with_mailbox(user, mailbox, |v| {
            if !program.keywords.is_empty() {
                extend_keyword_table(&mut keyword_table, program, v);
            }
            let messages = v.messages();
            let columns = v.columns();
            let uids = columns.uids();
            let mut pos = chunk
                .first()
                .map_or(0, |&first| uids.partition_point(|&u| u < first));
            let first_pos = pos;
            let end_pos = chunk
                .last()
                .map_or(pos, |&last| uids.partition_point(|&u| u <= last))
                .max(first_pos);
            // The store's UIDs in the chunk's range are a subset of the chunk's (the view
            // holds every live UID below its UIDNEXT and the unannounced expunged ones), so
            // as many of them means the same ones: position first_pos + i is the chunk's
            // message i.
            let sent_days = v
                .search_fields()
                .and_then(|f| f.arena(SearchField::SentDay))
                .map(|arena| (arena, first_pos));
            let columnar = columnar || (columnar_with_days && sent_days.is_some());
            if columnar && end_pos - first_pos == chunk.len() {
                let slice = column_scan::Slice::new(
                    columns,
                    first_pos..end_pos,
                    first_msn as u32,
                    &keyword_table,
                    sent_days,
                );
                column_scan::eval(program.root(), &slice, &mut matches);
                let entries = messages.get(first_pos..end_pos).unwrap_or_default();
                hits.extend_from_columns(&slice, &matches, entries, program.uses_modseq);
                return;
            }
            // Header keys on the fields kept in memory: one scan of those messages' values.
            let indexed = v
                .search_fields()
                .and_then(|f| fields::scan(program, f, first_pos..end_pos));
            for (i, &uid) in chunk.iter().enumerate() {
                while uids.get(pos).is_some_and(|&u| u < uid) {
                    pos += 1;
                }
                // Not in the store: expunged, and not announced to this session yet.
                let Some(entry) = messages.get(pos).filter(|m| m.uid == uid) else {
                    expunged = true;
                    continue;
                };
                let keywords = keyword_table
                    .get(entry.kwset as usize)
                    .copied()
                    .unwrap_or(0);
                let msn = (first_msn + i) as u32;
                let message = Message {
                    msn,
                    entry,
                    keywords,
                    content: Content::None,
                    indexed: indexed.as_deref().map(|rows| (rows, pos - first_pos)),
                };
                match program.eval(&message) {
                    Tri::True => hits.push(msn, entry),
                    Tri::Unknown => {
                        pending.push((hits.len(), msn, uid));
                        hits.push(msn, entry);
                    }
                    Tri::False => {}
                }
            }
        })?;
        pause(scope.abandon).await?;
    }

    // Pass 2: the messages the index could not decide. Their entries are looked up again:
    // their flags may have changed while this search gave the executor away. Most are
    // decided where their bytes lie in the page cache (`decide_in_place`), a batch under
    // one look at the index; the rest, one at a time, from reads (`read_and_eval`).
    let mut rejected = vec![false; if pending.is_empty() { 0 } else { hits.len() }];
    let mut text = Vec::new();
    let mut reader = mail.record_reader();
    let mut next = 0;
    while next < pending.len() {
        let batch_end = (next + IN_PLACE_BATCH).min(pending.len());
        let to_read = mail.with_mailbox(user, mailbox, |v| {
            let messages = v.messages();
            // Where the next message probably is: pending messages ascend, mostly one
            // after another, so the position after the last one found spares a search.
            let mut at = 0;
            let mut scanned = 0;
            let position = |uid: u32, hint: usize| match messages.get(hint) {
                Some(m) if m.uid == uid => Some(hint),
                _ => v.msn(uid).map(|msn| msn as usize - 1),
            };
            while let Some(&(index, msn, uid)) = pending[..batch_end].get(next) {
                let Some(pos) = position(uid, at) else {
                    // Expunged by another session since the index pass: it matches nothing.
                    expunged = true;
                    rejected[index] = true;
                    next += 1;
                    continue;
                };
                at = pos + 1;
                let entry = messages[pos];
                // A message a little further on starts loading while this one is scanned
                // (when the pending messages are consecutive there, as for BODY alone).
                let ahead = pending
                    .get(next + PREFETCH_AHEAD)
                    .and_then(|&(_, _, ahead)| {
                        messages
                            .get(pos + PREFETCH_AHEAD)
                            .filter(|m| m.uid == ahead)
                    });
                if let Some(m) = ahead {
                    reader.prefetch(m);
                }
                let keywords = if program.keywords.is_empty() {
                    0
                } else {
                    program.keyword_bits(v.keywords(&entry))
                };
                let decided = reader
                    .read(&entry)
                    .and_then(|record| decide_in_place(program, msn, &entry, keywords, record));
                match decided {
                    Some(matched) => {
                        rejected[index] = !matched;
                        next += 1;
                    }
                    None => return Some((index, msn, entry, keywords)),
                }
                // Large messages end the batch sooner: the executor is given back about
                // as often as for small ones.
                scanned += entry.size as usize;
                if scanned >= IN_PLACE_BYTES {
                    break;
                }
            }
            None
        })?;
        if let Some((index, msn, entry, keywords)) = to_read {
            let matched = match read_and_eval(
                program, mail, user, mailbox, msn, &entry, keywords, &mut text,
            )
            .await
            {
                Ok(matched) => matched,
                Err(StoreError::NoSuchMessage) => {
                    expunged = true;
                    false
                }
                Err(e) => return Err(e.into()),
            };
            rejected[index] = !matched;
            next += 1;
        }
        pause(scope.abandon).await?;
    }
    if rejected.contains(&true) {
        hits.reject(&rejected);
    }
    Ok(Found {
        kept: collect,
        hits: hits.hits,
        ids: hits.ids,
        uses_modseq: program.uses_modseq,
        expunged,
    })
}

/// Brings `table` (the program's keyword bits of each interned keyword set, by set id) up
/// to the sets the partition has now. Sets are only ever added, so the entries already
/// computed stay right for the whole search.
fn extend_keyword_table(table: &mut Vec<u64>, program: &Program, v: &MailboxView<'_>) {
    for id in table.len()..v.keyword_set_count() {
        table.push(program.keyword_bits(v.keyword_set(id as u32)));
    }
}

/// Gives other sessions on this executor their turn, and stops at shutdown or when the
/// client has gone away (nobody would read the answer).
async fn pause(abandon: &dyn Fn() -> bool) -> Result<(), SearchError> {
    glommio::yield_if_needed().await;
    if abandon() {
        return Err(SearchError::Abandoned);
    }
    Ok(())
}

/// Decides a message as [`read_and_eval`] would, from its bytes and stored text in place
/// (`record`); `None` when that takes more than they hold: the message's MIME structure,
/// because it has no stored text or one of a form this version does not read.
fn decide_in_place(
    program: &Program,
    msn: u32,
    entry: &MessageEntry,
    keywords: u64,
    record: InPlace<'_>,
) -> Option<bool> {
    let hit = (msn, entry);
    let raw = record.message;
    let header = program
        .has_header_keys()
        .then(|| header::header_block(raw).unwrap_or(raw));
    if let Some(h) = header {
        match program.eval(&message(hit, keywords, Content::Header(h))) {
            Tri::True => return Some(true),
            Tri::False => return Some(false),
            Tri::Unknown => {}
        }
    }
    if program.level < Level::Full {
        return Some(false);
    }
    let content = Content::Stored {
        header,
        text: record.text?,
        message: raw,
    };
    match program.eval(&message(hit, keywords, content)) {
        Tri::True => Some(true),
        Tri::False => Some(false),
        Tri::Unknown => None,
    }
}

/// Reads as little of the message as decides it: the header first when a header key may
/// settle it, then the searchable text stored with the message and the part of the message
/// it refers to (`text` is the buffer both are read into, reused from message to message),
/// and only for a message stored without one
/// (by an older ringmail) the whole message with its structure.
#[allow(clippy::too_many_arguments)]
async fn read_and_eval(
    program: &Program,
    mail: &Partition,
    user: &str,
    mailbox: u64,
    msn: u32,
    entry: &MessageEntry,
    keywords: u64,
    text: &mut Vec<u8>,
) -> Result<bool, StoreError> {
    let uid = entry.uid;
    let hit = (msn, entry);
    let mut whole: Option<ReadResult> = None;
    // Bytes whose header block is the message's header (all of them when none ends).
    let mut header_src: Option<ReadResult> = None;
    if program.has_header_keys() {
        // `read_message` clamps the range to the message, so a small one is read whole.
        let whole_read = u64::from(entry.size) <= HEADER_PREFIX;
        let prefix = mail
            .read_message(user, mailbox, uid, Some(0..HEADER_PREFIX))
            .await?;
        let verdict = match header::header_block(&prefix) {
            Some(h) => program.eval(&message(hit, keywords, Content::Header(h))),
            None if whole_read => {
                // No blank line at all: the whole message is header.
                program.eval(&message(hit, keywords, Content::Header(&prefix)))
            }
            None => {
                let raw = mail.read_message(user, mailbox, uid, None).await?;
                let h = header::header_block(&raw).unwrap_or(&raw);
                let verdict = program.eval(&message(hit, keywords, Content::Header(h)));
                whole = Some(raw);
                verdict
            }
        };
        match verdict {
            Tri::True => return Ok(true),
            Tri::False => return Ok(false),
            Tri::Unknown => {}
        }
        if whole_read {
            // The prefix is the message: a BODY / TEXT key below must not read it again.
            whole = Some(prefix.clone());
        }
        header_src = Some(whole.clone().unwrap_or(prefix));
    }
    if program.level < Level::Full {
        return Ok(false);
    }
    text.clear();
    if mail.read_search_text_into(user, mailbox, uid, text).await? {
        // The text refers to the message's header blocks and undecoded text parts: read the
        // message as far as those reach, after the text in the same buffer, unless what a
        // header key read already covers it. An unknown form reaches nothing (and the
        // program answers unknown below).
        let text_len = text.len();
        let extent = mime::search_text::message_extent(text).unwrap_or(0);
        let read = header_src.as_deref().filter(|src| src.len() >= extent);
        if read.is_none() {
            let range = 0..extent as u64;
            mail.read_message_into(user, mailbox, uid, Some(range), text)
                .await?;
        }
        let (text, rest) = text.split_at(text_len);
        let header = header_src
            .as_deref()
            .map(|src| header::header_block(src).unwrap_or(src));
        let content = Content::Stored {
            header,
            text,
            message: read.unwrap_or(rest),
        };
        match program.eval(&message(hit, keywords, content)) {
            Tri::True => return Ok(true),
            Tri::False => return Ok(false),
            // A stored text of a form this version does not read: search the message.
            Tri::Unknown => {}
        }
    }
    let raw = match whole {
        Some(raw) => raw,
        None => mail.read_message(user, mailbox, uid, None).await?,
    };
    let meta = load_meta(mail, user, mailbox, uid, &raw).await?;
    let header_end = (meta.root.header_end as usize).min(raw.len());
    let header = raw.get(..header_end).unwrap_or_default();
    let verdict = program.eval(&message(
        hit,
        keywords,
        Content::Full {
            raw: &raw,
            header,
            meta: &meta,
        },
    ));
    Ok(verdict == Tri::True)
}

fn message<'a>(
    (msn, entry): (u32, &'a MessageEntry),
    keywords: u64,
    content: Content<'a>,
) -> Message<'a> {
    Message {
        msn,
        entry,
        keywords,
        content,
        indexed: None,
    }
}

/// The stored MIME structure of a message, rebuilt from `raw` if the stored blob is
/// unreadable.
async fn load_meta(
    mail: &Partition,
    user: &str,
    mailbox: u64,
    uid: u32,
    raw: &[u8],
) -> Result<MessageMeta, StoreError> {
    let blob = mail.read_meta(user, mailbox, uid).await?;
    Ok(MessageMeta::from_bytes(&blob).unwrap_or_else(|_| mime::analyze(raw)))
}

/// The decoded SORT / THREAD fields of a message (from its stored metadata).
pub async fn sort_fields(
    mail: &Rc<Partition>,
    user: &str,
    mailbox: u64,
    uid: u32,
) -> Result<SortFields, StoreError> {
    let blob = mail.read_meta(user, mailbox, uid).await?;
    match MessageMeta::from_bytes(&blob) {
        Ok(meta) => Ok(meta.sort),
        Err(_) => {
            let raw = mail.read_message(user, mailbox, uid, None).await?;
            Ok(mime::analyze(&raw).sort)
        }
    }
}

/// [`sort_fields`] for every hit, in order, yielding between messages. A message expunged
/// meanwhile leaves the hits (there is nothing left to sort it by), and `found` notes it.
pub async fn load_sort_fields(
    abandon: &dyn Fn() -> bool,
    mail: &Rc<Partition>,
    user: &str,
    mailbox: u64,
    found: &mut Found,
) -> Result<Vec<SortFields>, SearchError> {
    let mut out = Vec::with_capacity(found.hits.len());
    // Positions of the hits expunged meanwhile, ascending.
    let mut lost = Vec::new();
    for (i, hit) in found.hits.iter().enumerate() {
        match sort_fields(mail, user, mailbox, hit.uid).await {
            Ok(fields) => out.push(fields),
            Err(StoreError::NoSuchMessage) => lost.push(i),
            Err(e) => return Err(e.into()),
        }
        pause(abandon).await?;
    }
    drop_lost(found, &lost);
    Ok(out)
}

/// The SORT keys of every hit (`ringmail_mime::sort_key`), from the mailbox's kept values a
/// chunk at a time, so SORT reads no message; a message without them gets them from its
/// stored metadata as [`sort_fields`] reads it. A message expunged meanwhile leaves the
/// hits, and `found` notes it.
pub async fn load_sort_keys(
    abandon: &dyn Fn() -> bool,
    mail: &Rc<Partition>,
    user: &str,
    mailbox: u64,
    found: &mut Found,
) -> Result<sort::KeyTable, SearchError> {
    let mut out = sort::KeyTable::with_capacity(found.hits.len());
    let mut lost = Vec::new();
    // Per hit of a chunk: false when expunged; the keys of those with kept keys go to
    // `out` right away, in order, the others are read after the chunk.
    let mut missing = Vec::new();
    for (chunk_no, chunk) in found.hits.chunks(INDEX_CHUNK).enumerate() {
        missing.clear();
        mail.with_mailbox(user, mailbox, |v| {
            let messages = v.messages();
            let arena = v.search_fields().and_then(|f| f.arena(SearchField::Sort));
            for (i, hit) in chunk.iter().enumerate() {
                let Ok(pos) = messages.binary_search_by_key(&hit.uid, |m| m.uid) else {
                    lost.push(chunk_no * INDEX_CHUNK + i);
                    continue;
                };
                match arena.and_then(|a| a.values(pos).next()) {
                    Some(kept) if missing.is_empty() => out.push(kept.text),
                    _ => missing.push(i),
                }
            }
        })?;
        // Once one hit of the chunk lacks kept keys, the rest of it is read in order too.
        for &i in &missing {
            let hit = &chunk[i];
            match sort_fields(mail, user, mailbox, hit.uid).await {
                Ok(fields) => out.push(&mime::sort_key::encode(&fields)),
                Err(StoreError::NoSuchMessage) => lost.push(chunk_no * INDEX_CHUNK + i),
                Err(e) => return Err(e.into()),
            }
        }
        pause(abandon).await?;
    }
    lost.sort_unstable();
    drop_lost(found, &lost);
    Ok(out)
}

/// Removes the hits at `lost` (ascending positions), which were expunged meanwhile.
fn drop_lost(found: &mut Found, lost: &[usize]) {
    if lost.is_empty() {
        return;
    }
    found.expunged = true;
    let mut i = 0;
    found.hits.retain(|_| {
        i += 1;
        lost.binary_search(&(i - 1)).is_err()
    });
}
