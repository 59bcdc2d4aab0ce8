//! FETCH and UID FETCH.
//!
//! Structure (ENVELOPE, BODYSTRUCTURE, part offsets) comes from the metadata blob computed at
//! APPEND; a section is a positioned read of just its bytes from the store, never a reparse.
//! A fetch of a body section without .PEEK sets `\Seen` first, so the FLAGS sent with the data
//! already include it.

use std::io::Write as _;

use glommio::io::ReadResult;

use crate::commands::reply::{ok_noting_expunges, store_error, Code, Reply};
use crate::session::Session;
use ringmail_mime::{self as mime, MessageMeta, SectionSpec};
use ringmail_proto::dates;
use ringmail_proto::parser::{
    FetchAttr, FetchModifiers, Partial, Section, SectionText, SequenceSet,
};
use ringmail_proto::response::data::Vanished;
use ringmail_store::{flag, FlagMode, MessageEntry, Partition, StoreError};

/// Pending responses are sent once they pass this size.
const FLUSH_AT: usize = 256 * 1024;
/// Room for the rest of a message's FETCH response around its literal (UID, FLAGS, the
/// section label); more only costs one growth of the buffer.
const RESPONSE_LINE: usize = 1024;

/// `[UID] FETCH set attrs [(modifiers)]`
pub async fn fetch(
    session: &mut Session,
    uid_mode: bool,
    set: &SequenceSet<'_>,
    attrs: &[FetchAttr<'_>],
    modifiers: &FetchModifiers,
) -> Reply {
    let Some(selected) = session.selected.clone() else {
        return Reply::bad("No mailbox selected");
    };
    let (mail, user) = match session.mail().await {
        Ok(m) => m,
        Err(e) => return store_error("FETCH failed", &e),
    };
    let view = match selected.view(&mail, &user) {
        Ok(v) => v,
        Err(e) => return store_error("FETCH failed", &e),
    };
    if !uid_mode && !view.msns_valid(set) {
        return Reply::bad("Invalid message number");
    }
    if modifiers.vanished
        && !(uid_mode && session.enabled.qresync && modifiers.changed_since.is_some())
    {
        return Reply::bad("VANISHED needs UID FETCH, ENABLE QRESYNC and CHANGEDSINCE");
    }
    let targets = view.resolve(set, uid_mode, &session.saved_search);
    let marks_seen = !selected.read_only
        && attrs.iter().any(|a| match a {
            FetchAttr::BodySection { peek, .. } | FetchAttr::Binary { peek, .. } => !peek,
            FetchAttr::Rfc822 | FetchAttr::Rfc822Text => true,
            _ => false,
        });
    if marks_seen {
        let unseen: Vec<u32> = mail
            .with_mailbox(&user, selected.id, |v| {
                targets
                    .iter()
                    .filter_map(|&(_, uid)| v.message(uid))
                    .filter(|m| m.flags & flag::SEEN == 0)
                    .map(|m| m.uid)
                    .collect()
            })
            .unwrap_or_default();
        if !unseen.is_empty() {
            let ranges = crate::selected::to_ranges(unseen);
            match mail
                .store_flags(
                    &user,
                    selected.id,
                    &ranges,
                    FlagMode::Add,
                    flag::SEEN,
                    &[],
                    None,
                )
                .await
            {
                Ok(result) => session.own_modseqs.push(result.modseq),
                Err(e) => return store_error("FETCH failed to set \\Seen", &e),
            }
        }
    }
    if let (true, Some(since)) = (modifiers.vanished, modifiers.changed_since) {
        // RFC 7162 section 3.2.6: expunged UIDs of the set, changed after `since`.
        let gone = mail
            .with_mailbox(&user, selected.id, |v| v.vanished_since(since).0)
            .unwrap_or_default();
        let mut in_set: Vec<u32> = gone
            .into_iter()
            .filter(|&uid| {
                set.ranges().any(|r| {
                    let (lo, hi) = r.resolve(u32::MAX);
                    (lo..=hi).contains(&uid)
                })
            })
            .collect();
        in_set.sort_unstable();
        in_set.dedup();
        if !in_set.is_empty() {
            session.send(&Vanished {
                earlier: true,
                uids: &crate::selected::to_ranges(in_set),
            });
        }
    }
    let condstore = selected.condstore
        || attrs.contains(&FetchAttr::ModSeq)
        || modifiers.changed_since.is_some();
    if condstore {
        crate::selected::enable_condstore(session);
    }
    let request = Request {
        uid_mode,
        attrs,
        seen_set: marks_seen,
        condstore,
    };
    // Holds each message's metadata blob while its response is made; one buffer for all.
    let mut scratch = Vec::new();
    let sends_bodies = attrs.iter().any(|a| {
        matches!(
            a,
            FetchAttr::BodySection { .. }
                | FetchAttr::Binary { .. }
                | FetchAttr::Rfc822
                | FetchAttr::Rfc822Header
                | FetchAttr::Rfc822Text
        )
    });
    if sends_bodies {
        // Room for a flush's worth now, while the buffer is (nearly) empty: growing it later
        // copies everything it holds. With the flush before an oversized message below, the
        // buffer then never grows while it holds much.
        session.out.reserve(FLUSH_AT);
    }
    // Messages another session expunged, before this session was told or while this FETCH
    // ran, are left out and the tagged OK says so (RFC 2180 section 4.1, RFC 5530
    // EXPUNGEISSUED), as Dovecot answers; the other messages are still sent.
    let mut expunged = false;
    for (msn, uid) in targets {
        if view.is_gone(uid) {
            expunged = true;
            continue;
        }
        let Ok(Some(entry)) = mail.with_mailbox(&user, selected.id, |v| v.message(uid)) else {
            expunged = true;
            continue;
        };
        if let Some(since) = modifiers.changed_since {
            if entry.modseq <= since {
                continue;
            }
        }
        // What is pending goes out before a message that would take the buffer past the
        // flush size, so the buffer peaks near the flush size or one message, whichever is
        // larger, instead of their sum (and stays small enough to be reused; see
        // `imap::buffers`).
        let body = body_bytes(attrs, entry.size);
        if body > 0 && !session.out.is_empty() && session.out.len() + body > FLUSH_AT {
            if let Err(e) = send_pending(session).await {
                return Reply::no(format!("FETCH aborted: {e}")).with_code(Code::Unavailable);
            }
        }
        // A message larger than an empty buffer gets a new buffer: growing the old one
        // would copy all of its capacity, though nothing in it is wanted.
        let need = body.saturating_add(RESPONSE_LINE);
        if body > 0 && session.out.is_empty() && session.out.capacity() < need {
            // The old one goes back to the pool for another session's next command.
            let old = std::mem::replace(&mut session.out, Vec::with_capacity(need.max(FLUSH_AT)));
            crate::buffers::give_back_response(old);
        }
        let msg = Message {
            mail: &mail,
            user: &user,
            mailbox: selected.id,
            msn,
            entry: &entry,
        };
        crate::selected::announce_keywords(session, &mail, &user, [&entry]);
        let recent = !session.enabled.imap4rev2 && selected.recent.contains(uid);
        match render_for_session(&msg, recent, &request, &mut session.out, &mut scratch).await {
            Ok(()) => {}
            // Expunged while its bytes were read; its response was taken back whole.
            Err(FetchError::Store(StoreError::NoSuchMessage)) => expunged = true,
            Err(FetchError::Store(e)) => return store_error("FETCH failed", &e),
            Err(FetchError::UnknownCte(cte)) => {
                return Reply::no(format!("Cannot decode {cte}")).with_code(Code::UnknownCte);
            }
        }
        // Large fetches go out as they are made instead of piling up in memory.
        if session.out.len() > FLUSH_AT {
            if let Err(e) = send_pending(session).await {
                return Reply::no(format!("FETCH aborted: {e}")).with_code(Code::Unavailable);
            }
        }
    }
    if expunged {
        return ok_noting_expunges(true, "Some messages were already expunged.");
    }
    Reply::ok(if uid_mode {
        "UID FETCH completed"
    } else {
        "FETCH completed"
    })
}

/// At most how many bytes of a `size`-byte message the items copy into the response,
/// counting only those that can be large: whole bodies, texts and parts (bounded by a
/// partial's length). Headers count nothing, so a listing that fetches the headers of large
/// messages neither flushes before each one nor sizes the buffer for its attachments.
fn body_bytes(attrs: &[FetchAttr<'_>], size: u32) -> usize {
    let size = size as usize;
    let bounded = |partial: &Option<Partial>| partial.map_or(size, |p| size.min(p.length as usize));
    attrs
        .iter()
        .map(|a| match a {
            FetchAttr::Rfc822 | FetchAttr::Rfc822Text => size,
            FetchAttr::Binary { partial, .. } => bounded(partial),
            FetchAttr::BodySection {
                section, partial, ..
            } => match section.text {
                None | Some(SectionText::Text) => bounded(partial),
                Some(_) => 0,
            },
            _ => 0,
        })
        .fold(0, usize::saturating_add)
}

/// Sends the pending responses, then lets the executor's other sessions run. Cached
/// message bytes are read without waiting, so a FETCH of many large messages would
/// otherwise hold the core until its last byte while every other session's command waits.
async fn send_pending(session: &mut Session) -> std::io::Result<()> {
    session.flush_out().await?;
    futures_lite::future::yield_now().await;
    Ok(())
}

/// What one FETCH asks of every message; fixed for the whole command.
pub struct Request<'a> {
    /// UID FETCH: the UID is always returned.
    pub uid_mode: bool,
    /// The requested items, in the order asked.
    pub attrs: &'a [FetchAttr<'a>],
    /// `\Seen` was just set by this FETCH, so FLAGS are sent even if not asked for.
    pub seen_set: bool,
    /// CONDSTORE is on: MODSEQ goes with every response.
    pub condstore: bool,
}

/// The message one `* n FETCH` response is about.
pub struct Message<'a> {
    /// The store holding it.
    pub mail: &'a Partition,
    /// Its owner.
    pub user: &'a str,
    /// The selected mailbox's id.
    pub mailbox: u64,
    /// Its sequence number in the session's view.
    pub msn: u32,
    /// Its index entry, as read when the response is made.
    pub entry: &'a MessageEntry,
}

/// Why a message's FETCH response could not be made.
#[derive(Debug)]
pub enum FetchError {
    /// The store failed to read the message or its metadata.
    Store(StoreError),
    /// BINARY of a part whose Content-Transfer-Encoding is unknown (RFC 3516 `UNKNOWN-CTE`).
    UnknownCte(String),
}

impl From<StoreError> for FetchError {
    fn from(e: StoreError) -> Self {
        FetchError::Store(e)
    }
}

/// Appends `* msn FETCH (...)\r\n` for one message to `out`. On error `out` is left as it
/// was, so a failed FETCH never sends half a response.
///
/// Message bytes are read straight into `out`, and the metadata blob into `scratch`, which
/// the caller keeps for the next message: for BODY[], RFC822, ENVELOPE, BODYSTRUCTURE, BODY,
/// FLAGS and the number items nothing is allocated per message once both buffers have
/// grown (benches/fetch.rs counts it).
pub async fn render_message(
    msg: &Message<'_>,
    req: &Request<'_>,
    out: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
) -> Result<(), FetchError> {
    render_for_session(msg, false, req, out, scratch).await
}

/// [`render_message`] for a session, with `recent` when the message is `\Recent` for it
/// (the flag is the session's, not the store's: see `imap::recent`).
async fn render_for_session(
    msg: &Message<'_>,
    recent: bool,
    req: &Request<'_>,
    out: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
) -> Result<(), FetchError> {
    let mark = out.len();
    let item = Item {
        mail: msg.mail,
        user: msg.user,
        mailbox: msg.mailbox,
        entry: msg.entry,
        recent,
    };
    // Writing to a Vec cannot fail.
    let _ = write!(out, "* {} FETCH (", msg.msn);
    let mut meta = Meta::Unread;
    let rendered = render(&item, req, out, &mut meta, scratch).await;
    // The blob's buffer goes back to the caller for the next message.
    if let Meta::Blob { blob, .. } = meta {
        *scratch = blob;
    }
    match rendered {
        Ok(()) => {
            out.extend_from_slice(b")\r\n");
            Ok(())
        }
        Err(e) => {
            out.truncate(mark);
            Err(e)
        }
    }
}

/// One message being rendered.
struct Item<'a> {
    mail: &'a Partition,
    user: &'a str,
    mailbox: u64,
    entry: &'a MessageEntry,
    recent: bool,
}

/// A message's stored metadata, read at most once per response. Most items only need
/// the pre-rendered values, which are borrowed from the blob; the part tree is built only
/// for the items that walk it.
enum Meta {
    Unread,
    /// The blob as stored, in the caller's scratch buffer. Checked as it is used (walking
    /// it is most of the cost of an ENVELOPE): a blob that does not parse, damaged or from
    /// a future version, is replaced by metadata rebuilt from the message. `at` caches
    /// where the pre-rendered values lie once the blob was walked for one of them.
    Blob {
        blob: Vec<u8>,
        at: Option<[std::ops::Range<usize>; 3]>,
    },
    Parsed(Box<MessageMeta>),
}

/// A value stored pre-rendered in the metadata blob.
/// (The order of [`MessageMeta::rendered_ranges`].)
#[derive(Clone, Copy)]
enum Prerendered {
    Envelope = 0,
    BodyStructure = 1,
    Body = 2,
}

impl Meta {
    /// The pre-rendered value; None before the metadata is loaded or when the blob does not
    /// parse. The blob is walked (and checked) once per message, however many of the
    /// values are asked for.
    fn prerendered(&mut self, which: Prerendered) -> Option<&[u8]> {
        match self {
            Meta::Unread => None,
            Meta::Blob { blob, at } => {
                if at.is_none() {
                    *at = MessageMeta::rendered_ranges(blob).ok();
                }
                let range = at.as_ref()?.get(which as usize)?.clone();
                blob.get(range)
            }
            Meta::Parsed(m) => Some(match which {
                Prerendered::Envelope => &m.envelope,
                Prerendered::BodyStructure => &m.bodystructure,
                Prerendered::Body => &m.body,
            }),
        }
    }
}

/// Bytes of a message: the store's read buffer as it is, or a filtered copy.
enum Bytes {
    Read(ReadResult),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Read(r) => r,
            Bytes::Owned(v) => v,
        }
    }
}

impl Item<'_> {
    /// Reads the metadata blob into `scratch`'s buffer if it is not yet read.
    async fn load(&self, meta: &mut Meta, scratch: &mut Vec<u8>) -> Result<(), StoreError> {
        if let Meta::Unread = meta {
            let mut blob = std::mem::take(scratch);
            blob.clear();
            if let Err(e) = self
                .mail
                .read_meta_into(self.user, self.mailbox, self.entry.uid, &mut blob)
                .await
            {
                *scratch = blob;
                return Err(e);
            }
            *meta = Meta::Blob { blob, at: None };
        }
        Ok(())
    }

    /// Replaces a blob that does not parse with metadata rebuilt from the message itself,
    /// rather than failing the FETCH.
    async fn rebuild_meta(&self, meta: &mut Meta, scratch: &mut Vec<u8>) -> Result<(), StoreError> {
        let parsed = self.rebuild().await?;
        if let Meta::Blob { blob, .. } = std::mem::replace(meta, Meta::Parsed(Box::new(parsed))) {
            *scratch = blob;
        }
        Ok(())
    }

    /// The full metadata, for the items that walk the part tree.
    async fn parsed<'m>(
        &self,
        meta: &'m mut Meta,
        scratch: &mut Vec<u8>,
    ) -> Result<Option<&'m MessageMeta>, StoreError> {
        self.load(meta, scratch).await?;
        if let Meta::Blob { blob, .. } = meta {
            match MessageMeta::from_bytes(blob) {
                Ok(parsed) => {
                    // The blob's buffer goes back for the next message.
                    let old = std::mem::replace(meta, Meta::Parsed(Box::new(parsed)));
                    if let Meta::Blob { blob, .. } = old {
                        *scratch = blob;
                    }
                }
                Err(_) => self.rebuild_meta(meta, scratch).await?,
            }
        }
        Ok(match meta {
            Meta::Parsed(m) => Some(m),
            _ => None,
        })
    }

    async fn rebuild(&self) -> Result<MessageMeta, StoreError> {
        let raw = self.read(None).await?;
        Ok(mime::analyze(&raw))
    }

    async fn read(&self, range: Option<std::ops::Range<u64>>) -> Result<ReadResult, StoreError> {
        self.mail
            .read_message(self.user, self.mailbox, self.entry.uid, range)
            .await
    }

    /// Writes the message's bytes (or `range` of them) to `out` as a literal, read from the
    /// store straight into `out` (NUL then becomes 0x80 there, as in [`literal`]).
    async fn literal_into(
        &self,
        range: Option<std::ops::Range<u64>>,
        out: &mut Vec<u8>,
    ) -> Result<(), StoreError> {
        // The store's clamping, so the literal's length is known before the read.
        let (start, end) = ringmail_store::clamp_range(range, u64::from(self.entry.size));
        let mark = out.len();
        let _ = write!(out, "{{{}}}\r\n", end - start);
        let read = self
            .mail
            .read_message_into(
                self.user,
                self.mailbox,
                self.entry.uid,
                Some(start..end),
                out,
            )
            .await;
        // On error the store left `out` as it was; the literal's header goes too.
        read.map(drop).inspect_err(|_| out.truncate(mark))?;
        let body = out.len() - (end - start) as usize;
        replace_nuls(&mut out[body..]);
        Ok(())
    }
}

async fn render(
    item: &Item<'_>,
    req: &Request<'_>,
    out: &mut Vec<u8>,
    meta: &mut Meta,
    scratch: &mut Vec<u8>,
) -> Result<(), FetchError> {
    let attrs = req.attrs;
    let entry = item.entry;
    let mut first = true;
    let mut sep = |out: &mut Vec<u8>| {
        if !first {
            out.push(b' ');
        }
        first = false;
    };
    let has = |want: &FetchAttr<'_>| attrs.iter().any(|a| a == want);
    // UID FETCH always returns UID (RFC 9051 section 6.4.9).
    if req.uid_mode || has(&FetchAttr::Uid) {
        sep(out);
        let _ = write!(out, "UID {}", entry.uid);
    }
    if has(&FetchAttr::Flags) || req.seen_set {
        sep(out);
        out.extend_from_slice(b"FLAGS ");
        // Names straight from the index (no await since the entry was read, so they match
        // its flags); an empty keyword set allocates nothing.
        let written = item.mail.with_mailbox(item.user, item.mailbox, |v| {
            crate::flags::write_with_recent(out, entry.flags, &v.keywords(entry), item.recent);
        });
        if written.is_err() {
            crate::flags::write_with_recent(out, entry.flags, &[], item.recent);
        }
    }
    if req.condstore {
        sep(out);
        let _ = write!(out, "MODSEQ ({})", entry.modseq);
    }
    for attr in attrs {
        match attr {
            FetchAttr::Uid | FetchAttr::Flags | FetchAttr::ModSeq => {}
            FetchAttr::InternalDate => {
                sep(out);
                out.extend_from_slice(b"INTERNALDATE ");
                out.extend_from_slice(dates::imap_date_time(entry.internal_date).as_bytes());
            }
            FetchAttr::SaveDate => {
                sep(out);
                out.extend_from_slice(b"SAVEDATE ");
                out.extend_from_slice(dates::imap_date_time(entry.save_date).as_bytes());
            }
            FetchAttr::Rfc822Size => {
                sep(out);
                let _ = write!(out, "RFC822.SIZE {}", entry.size);
            }
            FetchAttr::EmailId => {
                sep(out);
                let _ = write!(out, "EMAILID (M{:x})", entry.email_id);
            }
            FetchAttr::ThreadId => {
                sep(out);
                out.extend_from_slice(b"THREADID NIL");
            }
            FetchAttr::Envelope | FetchAttr::BodyStructure | FetchAttr::Body => {
                let (label, which): (&[u8], _) = match attr {
                    FetchAttr::Envelope => (b"ENVELOPE ", Prerendered::Envelope),
                    FetchAttr::BodyStructure => (b"BODYSTRUCTURE ", Prerendered::BodyStructure),
                    _ => (b"BODY ", Prerendered::Body),
                };
                item.load(meta, scratch).await?;
                sep(out);
                out.extend_from_slice(label);
                // One walk of the blob both checks it and finds the value.
                if let Some(value) = meta.prerendered(which) {
                    out.extend_from_slice(value);
                } else {
                    item.rebuild_meta(meta, scratch).await?;
                    out.extend_from_slice(meta.prerendered(which).unwrap_or_default());
                }
            }
            FetchAttr::Preview { .. } => {
                let m = item.parsed(meta, scratch).await?;
                sep(out);
                out.extend_from_slice(b"PREVIEW ");
                let preview = m.map_or("", |m| m.preview.as_str());
                // RFC 8970 section 3: the preview is UTF-8 text whatever the session's mode,
                // so it is quoted as UTF-8 text always.
                ringmail_proto::response::ResponseWriter::new(out, true)
                    .nstring(Some(preview.as_bytes()));
            }
            FetchAttr::Rfc822 => {
                sep(out);
                out.extend_from_slice(b"RFC822 ");
                item.literal_into(None, out).await?;
            }
            FetchAttr::Rfc822Header | FetchAttr::Rfc822Text => {
                let m = item.parsed(meta, scratch).await?;
                let text = if *attr == FetchAttr::Rfc822Header {
                    mime::SectionText::Header
                } else {
                    mime::SectionText::Text
                };
                let spec = SectionSpec {
                    part: Vec::new(),
                    text,
                };
                let data = section(item, m, &spec).await?;
                sep(out);
                out.extend_from_slice(if *attr == FetchAttr::Rfc822Header {
                    b"RFC822.HEADER "
                } else {
                    b"RFC822.TEXT "
                });
                literal(out, &data);
            }
            FetchAttr::BodySection {
                section: sec,
                partial,
                ..
            } => {
                if sec.part.is_empty() && sec.text.is_none() {
                    // BODY[] needs no structure: read just the requested range.
                    let range = partial
                        .map(|p| u64::from(p.offset)..u64::from(p.offset) + u64::from(p.length));
                    sep(out);
                    write_section_label(out, sec, *partial);
                    item.literal_into(range, out).await?;
                    continue;
                }
                let spec = to_spec(sec);
                let m = item.parsed(meta, scratch).await?;
                let data = section(item, m, &spec).await?;
                sep(out);
                write_section_label(out, sec, *partial);
                literal(out, apply_partial(&data, *partial));
            }
            FetchAttr::Binary { part, partial, .. } => {
                let m = item.parsed(meta, scratch).await?;
                let raw = item.read(None).await?;
                let decoded = match m.map(|m| mime::decode_part(m, &raw, part)) {
                    Some(Ok(d)) => d.into_owned(),
                    Some(Err(mime::DecodeError::UnknownEncoding(cte))) => {
                        return Err(FetchError::UnknownCte(cte))
                    }
                    _ => Vec::new(),
                };
                sep(out);
                out.extend_from_slice(b"BINARY[");
                write_part(out, part);
                out.push(b']');
                if let Some(p) = partial {
                    let _ = write!(out, "<{}>", p.offset);
                }
                out.push(b' ');
                binary_literal(out, apply_partial(&decoded, *partial));
            }
            FetchAttr::BinarySize { part } => {
                let m = item.parsed(meta, scratch).await?;
                let raw = item.read(None).await?;
                let size = match m.map(|m| mime::decode_part(m, &raw, part)) {
                    Some(Ok(d)) => d.len(),
                    Some(Err(mime::DecodeError::UnknownEncoding(cte))) => {
                        return Err(FetchError::UnknownCte(cte))
                    }
                    _ => 0,
                };
                sep(out);
                out.extend_from_slice(b"BINARY.SIZE[");
                write_part(out, part);
                let _ = write!(out, "] {size}");
            }
        }
    }
    Ok(())
}

/// The bytes of a section: a positioned read of its range, then header filtering.
async fn section(
    item: &Item<'_>,
    meta: Option<&MessageMeta>,
    spec: &SectionSpec,
) -> Result<Bytes, StoreError> {
    let Some(meta) = meta else {
        return Ok(Bytes::Owned(Vec::new()));
    };
    let Some(range) = mime::section_range(meta, item.entry.size as usize, spec) else {
        // A part that does not exist is an empty string (RFC 9051 section 6.4.5).
        return Ok(Bytes::Owned(Vec::new()));
    };
    let bytes = item
        .read(Some(range.start as u64..range.end as u64))
        .await?;
    Ok(match &spec.text {
        mime::SectionText::HeaderFields(names) | mime::SectionText::HeaderFieldsNot(names) => {
            let names: Vec<&[u8]> = names.iter().map(Vec::as_slice).collect();
            let not = matches!(spec.text, mime::SectionText::HeaderFieldsNot(_));
            Bytes::Owned(mime::filter_header_fields(&bytes, &names, not))
        }
        _ => Bytes::Read(bytes),
    })
}

fn to_spec(section: &Section<'_>) -> SectionSpec {
    let text = match &section.text {
        None => mime::SectionText::Full,
        Some(SectionText::Header) => mime::SectionText::Header,
        Some(SectionText::HeaderFields(names)) => {
            mime::SectionText::HeaderFields(names.iter().map(|n| n.to_vec()).collect())
        }
        Some(SectionText::HeaderFieldsNot(names)) => {
            mime::SectionText::HeaderFieldsNot(names.iter().map(|n| n.to_vec()).collect())
        }
        Some(SectionText::Text) => mime::SectionText::Text,
        Some(SectionText::Mime) => mime::SectionText::Mime,
    };
    SectionSpec {
        part: section.part.clone(),
        text,
    }
}

fn apply_partial(data: &[u8], partial: Option<Partial>) -> &[u8] {
    match partial {
        None => data,
        Some(p) => {
            let start = (p.offset as usize).min(data.len());
            let end = start.saturating_add(p.length as usize).min(data.len());
            &data[start..end]
        }
    }
}

fn write_part(out: &mut Vec<u8>, part: &[u32]) {
    for (i, n) in part.iter().enumerate() {
        if i > 0 {
            out.push(b'.');
        }
        let _ = write!(out, "{n}");
    }
}

/// `BODY[1.HEADER.FIELDS (FROM TO)]<0> ` as the response names the section.
fn write_section_label(out: &mut Vec<u8>, section: &Section<'_>, partial: Option<Partial>) {
    out.extend_from_slice(b"BODY[");
    write_part(out, &section.part);
    let dot = if section.part.is_empty() { "" } else { "." };
    match &section.text {
        None => {}
        Some(SectionText::Header) => {
            let _ = write!(out, "{dot}HEADER");
        }
        Some(SectionText::Text) => {
            let _ = write!(out, "{dot}TEXT");
        }
        Some(SectionText::Mime) => {
            let _ = write!(out, "{dot}MIME");
        }
        Some(SectionText::HeaderFields(names)) | Some(SectionText::HeaderFieldsNot(names)) => {
            let not = matches!(section.text, Some(SectionText::HeaderFieldsNot(_)));
            out.extend_from_slice(dot.as_bytes());
            out.extend_from_slice(if not {
                b"HEADER.FIELDS.NOT ("
            } else {
                b"HEADER.FIELDS ("
            });
            for (i, name) in names.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                ringmail_proto::response::ResponseWriter::new(out, false).astring(name);
            }
            out.push(b')');
        }
    }
    out.push(b']');
    if let Some(p) = partial {
        let _ = write!(out, "<{}>", p.offset);
    }
    out.push(b' ');
}

/// A literal of message text. A literal must not hold NUL (RFC 3501 section 9: a literal is
/// CHAR8s; the same in RFC 9051), and mail that arrived by LMTP or import may: each NUL goes
/// out as 0x80, as Dovecot sends it, keeping the length. BINARY sends the exact bytes
/// ([`binary_literal`]).
fn literal(out: &mut Vec<u8>, data: &[u8]) {
    let _ = write!(out, "{{{}}}\r\n", data.len());
    let start = out.len();
    out.extend_from_slice(data);
    replace_nuls(&mut out[start..]);
}

/// BINARY's literal: the decoded bytes as they are, as a literal8 when they hold NUL
/// (RFC 3516).
fn binary_literal(out: &mut Vec<u8>, data: &[u8]) {
    if memchr::memchr(0, data).is_some() {
        out.push(b'~');
    }
    let _ = write!(out, "{{{}}}\r\n", data.len());
    out.extend_from_slice(data);
}

/// NUL becomes 0x80, in place. Mail almost never holds NUL: one memchr pass finds none.
fn replace_nuls(text: &mut [u8]) {
    let mut at = 0;
    while let Some(i) = memchr::memchr(0, &text[at..]) {
        text[at + i] = 0x80;
        at += i + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringmail_proto::parser::Partial;
    use ringmail_store::{NewMessage, Options};

    const RAW: &[u8] = b"From: a@example.com\r\nSubject: hi\r\n\r\nhello world\r\n";

    /// Renders `attrs` for the one message of a fresh mailbox (and for a UID that is not
    /// there), returning both outputs, each appended after existing bytes.
    fn fetch(attrs: Vec<FetchAttr<'static>>) -> (String, Result<String, String>) {
        fetch_with_meta(mime::analyze(RAW).to_bytes(), attrs)
    }

    /// As [`fetch`], with `meta` stored as the message's metadata blob.
    fn fetch_with_meta(
        meta: Vec<u8>,
        attrs: Vec<FetchAttr<'static>>,
    ) -> (String, Result<String, String>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        glommio::LocalExecutorBuilder::default()
            .spawn(move || async move {
                let mail = Partition::open(&path, Options::default()).await.unwrap();
                mail.ensure_user("u").await.unwrap();
                let m = NewMessage {
                    body: RAW,
                    flags: flag::SEEN,
                    keywords: &["$Junk"],
                    internal_date: 0,
                    meta: &meta,
                    search: None,
                    text: &[],
                };
                mail.append("u", "INBOX", &[m]).await.unwrap();
                let (mailbox, entry) = mail
                    .with_mailbox("u", "INBOX", |v| (v.id(), v.messages()[0]))
                    .unwrap();
                let req = Request {
                    uid_mode: true,
                    attrs: &attrs,
                    seen_set: false,
                    condstore: false,
                };
                let mut msg = Message {
                    mail: &mail,
                    user: "u",
                    mailbox,
                    msn: 1,
                    entry: &entry,
                };
                let mut out = b"before\r\n".to_vec();
                let mut scratch = Vec::new();
                render_message(&msg, &req, &mut out, &mut scratch)
                    .await
                    .unwrap();
                let found = String::from_utf8(out).unwrap();
                let gone = MessageEntry { uid: 99, ..entry };
                msg.entry = &gone;
                let mut out = b"before\r\n".to_vec();
                let missing = match render_message(&msg, &req, &mut out, &mut scratch).await {
                    Ok(()) => Ok(String::from_utf8(out).unwrap()),
                    Err(_) => Err(String::from_utf8(out).unwrap()),
                };
                (found, missing)
            })
            .unwrap()
            .join()
            .unwrap()
    }

    #[test]
    fn renders_flags_structure_and_partial_body() {
        let attrs = vec![
            FetchAttr::Flags,
            FetchAttr::BodyStructure,
            FetchAttr::BodySection {
                peek: true,
                section: Section {
                    part: Vec::new(),
                    text: None,
                },
                partial: Some(Partial {
                    offset: 6,
                    length: 11,
                }),
            },
        ];
        let meta = mime::analyze(RAW);
        let (found, missing) = fetch(attrs);
        let want = format!(
            "before\r\n* 1 FETCH (UID 1 FLAGS (\\Seen $Junk) BODYSTRUCTURE {} BODY[]<6> {{11}}\r\na@example.c)\r\n",
            String::from_utf8_lossy(&meta.bodystructure)
        );
        assert_eq!(found, want);
        // A message the store cannot read leaves the output as it was: no half response.
        assert_eq!(missing, Err("before\r\n".to_string()));
    }

    #[test]
    fn every_nul_becomes_0x80_and_nothing_else_changes() {
        let mut text = b"\0a\0\0b\x80c\0".to_vec();
        replace_nuls(&mut text);
        assert_eq!(text, b"\x80a\x80\x80b\x80c\x80");
        let mut out = b"x ".to_vec();
        literal(&mut out, b"a\0b");
        assert_eq!(out, b"x {3}\r\na\x80b");
        let mut out = Vec::new();
        binary_literal(&mut out, b"a\0b");
        assert_eq!(out, b"~{3}\r\na\0b");
        let mut out = Vec::new();
        binary_literal(&mut out, b"ab");
        assert_eq!(out, b"{2}\r\nab");
    }

    #[test]
    fn only_bodies_count_toward_the_response_size() {
        let section = |text, partial| FetchAttr::BodySection {
            peek: true,
            section: Section {
                part: Vec::new(),
                text,
            },
            partial,
        };
        let headers = [FetchAttr::Flags, section(Some(SectionText::Header), None)];
        assert_eq!(body_bytes(&headers, 5_000_000), 0);
        let first_kb = Partial {
            offset: 0,
            length: 1024,
        };
        let parts = [section(None, Some(first_kb)), FetchAttr::Rfc822];
        assert_eq!(body_bytes(&parts, 5_000_000), 5_001_024);
        assert_eq!(body_bytes(&parts, 100), 200);
    }

    #[test]
    fn a_blob_that_does_not_parse_is_rebuilt_from_the_message() {
        let meta = mime::analyze(RAW);
        let want = format!(
            "before\r\n* 1 FETCH (UID 1 ENVELOPE {} BODY {})\r\n",
            String::from_utf8_lossy(&meta.envelope),
            String::from_utf8_lossy(&meta.body)
        );
        for damaged in [b"not a blob".to_vec(), Vec::new()] {
            let (found, _) = fetch_with_meta(damaged, vec![FetchAttr::Envelope, FetchAttr::Body]);
            assert_eq!(found, want);
        }
    }
}
