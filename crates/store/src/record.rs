//! Log records: the framing (`len | crc32c | kind | payload`) and each kind's payload.
//!
//! The byte layout is specified in docs/storage-format.md; this module is its only
//! implementation. All integers are little-endian. A payload is decoded without copying
//! message bytes: an append record hands back where its body starts inside the frame.

use super::error::{Result, StoreError};

/// Bytes before a record's payload: payload length (u32), crc32c (u32), kind (u8).
pub(crate) const FRAME_HEADER: usize = 9;
/// Largest payload a frame may carry; a bigger length field is garbage, not a record.
pub(crate) const MAX_PAYLOAD: u32 = 512 << 20;
/// Largest message body accepted by append.
pub const MAX_MESSAGE_SIZE: usize = 256 << 20;
/// Largest per-message metadata blob.
pub const MAX_META_SIZE: usize = 16 << 20;
/// Largest searchable text stored with a message; a larger one is not stored (SEARCH then
/// reads the message). Body, metadata and text together stay below [`MAX_PAYLOAD`].
pub const MAX_SEARCH_TEXT: usize = 128 << 20;
/// First word of the searchable-text section that may follow the metadata blob of an APPEND
/// or BODY record (`u32 magic | u32 len | text`). As a little-endian `u32` it is above
/// [`MAX_PAYLOAD`], so it can never be the first word of a frame: the bytes after a message's
/// metadata are either this section or the next frame (or the end of the segment), and a
/// reader tells them apart without knowing how long the record is.
pub const SEARCH_TEXT_MAGIC: u32 = u32::from_le_bytes(*b"RMtx");
/// Bytes before the searchable text: magic and length.
pub const SEARCH_TEXT_HEADER: usize = 8;

// A frame can never start with the magic, and a record with the largest body, metadata and
// text still fits a frame (with room for the fixed fields, user name and keywords).
const _: () = assert!(SEARCH_TEXT_MAGIC > MAX_PAYLOAD);
const _: () = assert!(
    MAX_MESSAGE_SIZE + MAX_META_SIZE + SEARCH_TEXT_HEADER + MAX_SEARCH_TEXT
        < MAX_PAYLOAD as usize - (1 << 20)
);

/// The length of the searchable text whose section header is `h`, or `None` when `h` does not
/// start one.
pub(crate) fn search_text_len(h: &[u8; SEARCH_TEXT_HEADER]) -> Option<usize> {
    let magic = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
    let len = u32::from_le_bytes([h[4], h[5], h[6], h[7]]) as usize;
    (magic == SEARCH_TEXT_MAGIC && len <= MAX_SEARCH_TEXT).then_some(len)
}

/// Record kinds (the `kind` byte of a frame).
pub(crate) mod kind {
    pub const APPEND: u8 = 1;
    pub const FLAGS: u8 = 2;
    pub const EXPUNGE: u8 = 3;
    pub const COPY: u8 = 4;
    pub const CREATE_MAILBOX: u8 = 5;
    pub const RENAME_MAILBOX: u8 = 6;
    pub const DELETE_MAILBOX: u8 = 7;
    pub const SUBSCRIBE: u8 = 8;
    pub const SET_QUOTA: u8 = 9;
    pub const SET_SPECIAL_USE: u8 = 10;
    pub const BODY: u8 = 11;
    pub const RAISE_UIDNEXT: u8 = 12;
    pub const PUT_SCRIPT: u8 = 13;
    pub const DELETE_SCRIPT: u8 = 14;
    pub const RENAME_SCRIPT: u8 = 15;
    pub const ACTIVATE_SCRIPT: u8 = 16;
    pub const SIEVE_REMEMBER: u8 = 17;
    pub const SIEVE_LOG: u8 = 18;
}

/// The oldest segment format (see [`FORMAT_VERSION`](super::segment::FORMAT_VERSION)) that
/// may hold a record of `kind`: a segment of an older format must never receive it, or an
/// older ringmail would take the record for a torn tail and cut it off.
pub(crate) fn format_of(kind: u8) -> u32 {
    match kind {
        kind::RAISE_UIDNEXT => 2,
        kind::PUT_SCRIPT
        | kind::DELETE_SCRIPT
        | kind::RENAME_SCRIPT
        | kind::ACTIVATE_SCRIPT
        | kind::SIEVE_REMEMBER => 3,
        kind::SIEVE_LOG => 4,
        _ => 1,
    }
}

/// Largest Sieve script source (bytes) a PUT_SCRIPT record carries. Decoding refuses a
/// larger one, so raising it is a record format change.
pub const MAX_SCRIPT_SIZE: usize = 1 << 20;
/// Longest script name (bytes).
pub const MAX_SCRIPT_NAME: usize = 1024;
/// Longest remembered key (bytes) of a SIEVE_REMEMBER entry.
pub const MAX_REMEMBER_KEY: usize = 1024;
/// Most entries one SIEVE_REMEMBER record carries.
pub const MAX_REMEMBER_ENTRIES: usize = 1024;
/// Longest reason (bytes) of a SIEVE_LOG entry; `Partition::log_sieve_error` cuts longer
/// ones.
pub const MAX_LOG_MESSAGE: usize = 1024;

/// How a flag change combines with the flags a message already has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagMode {
    /// `+FLAGS`
    Add,
    /// `-FLAGS`
    Remove,
    /// `FLAGS`
    Replace,
}

/// Inclusive UID ranges, ascending and non-overlapping.
pub type UidRanges = Vec<(u32, u32)>;

/// A SIEVE_LOG record.
#[derive(Debug)]
pub(crate) struct SieveLogRec<'a> {
    pub user: &'a str,
    pub time: i64,
    pub script: &'a str,
    pub line: u32,
    pub message: &'a str,
}

impl SieveLogRec<'_> {
    /// The log entry it adds.
    pub fn entry(&self) -> crate::SieveLogEntry {
        crate::SieveLogEntry {
            time: self.time,
            script: self.script.to_string(),
            line: self.line,
            message: self.message.to_string(),
        }
    }
}

/// A decoded record. Strings and bodies borrow from the frame.
#[derive(Debug)]
pub(crate) enum Record<'a> {
    Append(AppendRec<'a>),
    Flags {
        user: &'a str,
        mailbox: u64,
        modseq: u64,
        mode: FlagMode,
        flags: u8,
        keywords: Vec<&'a str>,
        unchanged_since: Option<u64>,
        uids: UidRanges,
    },
    Expunge {
        user: &'a str,
        mailbox: u64,
        modseq: u64,
        uids: UidRanges,
    },
    /// COPY, or MOVE when `src_modseq` is set (the source expunge's modseq).
    Copy {
        user: &'a str,
        src: u64,
        dst: u64,
        dst_modseq: u64,
        src_modseq: Option<u64>,
        save_date: i64,
        pairs: Vec<(u32, u32)>,
    },
    CreateMailbox {
        user: &'a str,
        id: u64,
        uidvalidity: u32,
        special_use: u8,
        name: &'a str,
    },
    /// Renames (a mailbox and its children); `new_inbox` recreates an empty INBOX.
    RenameMailbox {
        user: &'a str,
        renames: Vec<(u64, &'a str)>,
        new_inbox: Option<(u64, u32)>,
    },
    DeleteMailbox {
        user: &'a str,
        id: u64,
    },
    Subscribe {
        user: &'a str,
        subscribed: bool,
        name: &'a str,
    },
    SetQuota {
        user: &'a str,
        max_bytes: u64,
        max_messages: u64,
    },
    SetSpecialUse {
        user: &'a str,
        id: u64,
        special_use: u8,
    },
    /// Raises a mailbox's UIDNEXT to at least `uidnext` (a migration keeps the old server's
    /// UIDNEXT when its newest messages were expunged, so that their UIDs are never reused).
    RaiseUidnext {
        user: &'a str,
        mailbox: u64,
        uidnext: u32,
    },
    /// Creates or replaces a Sieve script (an active script stays active).
    PutScript {
        user: &'a str,
        name: &'a str,
        source: &'a str,
    },
    DeleteScript {
        user: &'a str,
        name: &'a str,
    },
    /// Renames a script; the active flag follows it.
    RenameScript {
        user: &'a str,
        from: &'a str,
        to: &'a str,
    },
    /// Makes `name` the active script, or none.
    ActivateScript {
        user: &'a str,
        name: Option<&'a str>,
    },
    /// Remembers opaque keys until their expiry (vacation responses sent, duplicate ids
    /// seen). `now` is the writer's clock: entries expired by then are dropped, so that
    /// replay does the same without reading a clock.
    SieveRemember {
        user: &'a str,
        now: i64,
        entries: Vec<(&'a [u8], i64)>,
    },
    /// One entry of the user's Sieve error log (what Pigeonhole writes to `.sieve.log`).
    SieveLog(SieveLogRec<'a>),
    /// A message body (and metadata) moved by compaction into a compacted segment; only
    /// index entries refer to it, it is never replayed. The user field is empty.
    Body {
        body_len: u32,
        body_at: usize,
    },
}

/// The fixed part of an append record; the body and metadata follow it in the payload.
#[derive(Debug)]
pub(crate) struct AppendRec<'a> {
    pub user: &'a str,
    pub mailbox: u64,
    pub uid: u32,
    pub modseq: u64,
    pub flags: u8,
    pub keywords: Vec<&'a str>,
    pub internal_date: i64,
    pub save_date: i64,
    pub email_id: u64,
    pub body_len: u32,
    pub meta_len: u32,
    /// Where the body starts, counted from the start of the payload.
    pub body_at: usize,
    /// The body: the raw message.
    pub body: &'a [u8],
}

/// Builds one framed record at the end of a buffer.
pub(crate) struct FrameWriter<'b> {
    buf: &'b mut Vec<u8>,
    start: usize,
}

impl<'b> FrameWriter<'b> {
    pub fn new(buf: &'b mut Vec<u8>, kind: u8) -> Self {
        let start = buf.len();
        buf.extend_from_slice(&[0u8; FRAME_HEADER]);
        buf[start + 8] = kind;
        FrameWriter { buf, start }
    }
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Bytes of at most 65535 with a `u16` length (callers validate the length first).
    pub fn bytes16(&mut self, b: &[u8]) -> &mut Self {
        let len = b.len().min(u16::MAX as usize);
        self.buf.extend_from_slice(&(len as u16).to_le_bytes());
        self.buf.extend_from_slice(&b[..len]);
        self
    }
    /// A string of at most 65535 bytes (callers validate names and keywords first).
    pub fn str(&mut self, s: &str) -> &mut Self {
        let len = s.len().min(u16::MAX as usize);
        self.buf.extend_from_slice(&(len as u16).to_le_bytes());
        self.buf.extend_from_slice(&s.as_bytes()[..len]);
        self
    }
    pub fn strs<S: AsRef<str>>(&mut self, list: &[S]) -> &mut Self {
        self.buf
            .extend_from_slice(&(list.len().min(u16::MAX as usize) as u16).to_le_bytes());
        for s in list.iter().take(u16::MAX as usize) {
            self.str(s.as_ref());
        }
        self
    }
    pub fn ranges(&mut self, r: &[(u32, u32)]) -> &mut Self {
        self.u32(r.len() as u32);
        for &(a, b) in r {
            self.u32(a).u32(b);
        }
        self
    }
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self
    }
    /// Fills in length and checksum. Returns the frame's total length.
    pub fn finish(self) -> usize {
        let payload_len = (self.buf.len() - self.start - FRAME_HEADER) as u32;
        let crc = crc32c::crc32c(&self.buf[self.start + 8..]);
        self.buf[self.start..self.start + 4].copy_from_slice(&payload_len.to_le_bytes());
        self.buf[self.start + 4..self.start + 8].copy_from_slice(&crc.to_le_bytes());
        self.buf.len() - self.start
    }
}

/// The checksum a frame must carry: crc32c over the kind byte and the payload.
pub(crate) fn frame_crc(kind: u8, payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&[kind]), payload)
}

/// A parsed frame header.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FrameHeader {
    pub payload_len: u32,
    pub crc: u32,
    pub kind: u8,
}

impl FrameHeader {
    pub fn parse(b: &[u8; FRAME_HEADER]) -> FrameHeader {
        FrameHeader {
            payload_len: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            crc: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            kind: b[8],
        }
    }
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("malformed record payload: {what}"))
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or_else(|| corrupt("length"))?;
        let s = self
            .b
            .get(self.pos..end)
            .ok_or_else(|| corrupt("truncated"))?;
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        let s = self.take(2)?;
        Ok(u16::from_le_bytes([s[0], s[1]]))
    }
    fn u32(&mut self) -> Result<u32> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(a))
    }
    fn u64(&mut self) -> Result<u64> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
    fn i64(&mut self) -> Result<i64> {
        Ok(self.u64()? as i64)
    }
    fn str(&mut self) -> Result<&'a str> {
        let n = self.u16()? as usize;
        std::str::from_utf8(self.take(n)?).map_err(|_| corrupt("utf-8"))
    }
    /// A `str` of at most `max` bytes (checked before the bytes are looked at).
    fn str_max(&mut self, max: usize, what: &str) -> Result<&'a str> {
        let n = self.u16()? as usize;
        if n > max {
            return Err(corrupt(what));
        }
        std::str::from_utf8(self.take(n)?).map_err(|_| corrupt("utf-8"))
    }
    /// A script name: 1 ..= MAX_SCRIPT_NAME bytes of UTF-8.
    fn script_name(&mut self) -> Result<&'a str> {
        let name = self.str_max(MAX_SCRIPT_NAME, "script name length")?;
        if name.is_empty() {
            return Err(corrupt("empty script name"));
        }
        Ok(name)
    }
    fn strs(&mut self) -> Result<Vec<&'a str>> {
        let n = self.u16()? as usize;
        (0..n).map(|_| self.str()).collect()
    }
    fn count(&mut self, elem_size: usize) -> Result<usize> {
        let n = self.u32()? as usize;
        // A count larger than the bytes left is garbage: refuse before allocating.
        if n.saturating_mul(elem_size) > self.b.len().saturating_sub(self.pos) {
            return Err(corrupt("count"));
        }
        Ok(n)
    }
    fn ranges(&mut self) -> Result<UidRanges> {
        let n = self.count(8)?;
        (0..n).map(|_| Ok((self.u32()?, self.u32()?))).collect()
    }
}

fn flag_mode(b: u8) -> Result<FlagMode> {
    match b {
        0 => Ok(FlagMode::Add),
        1 => Ok(FlagMode::Remove),
        2 => Ok(FlagMode::Replace),
        _ => Err(corrupt("flag mode")),
    }
}

pub(crate) fn flag_mode_byte(m: FlagMode) -> u8 {
    match m {
        FlagMode::Add => 0,
        FlagMode::Remove => 1,
        FlagMode::Replace => 2,
    }
}

/// Decodes a payload whose CRC has already been verified.
pub(crate) fn decode(kind: u8, payload: &[u8]) -> Result<Record<'_>> {
    let mut r = Reader { b: payload, pos: 0 };
    let user = r.str()?;
    let rec = match kind {
        kind::APPEND => {
            let mailbox = r.u64()?;
            let uid = r.u32()?;
            let modseq = r.u64()?;
            let flags = r.u8()?;
            let keywords = r.strs()?;
            let internal_date = r.i64()?;
            let save_date = r.i64()?;
            let email_id = r.u64()?;
            let body_len = r.u32()?;
            let meta_len = r.u32()?;
            let body_at = r.pos;
            let body = r.take(body_len as usize)?;
            r.take(meta_len as usize)?;
            Record::Append(AppendRec {
                user,
                mailbox,
                uid,
                modseq,
                flags,
                keywords,
                internal_date,
                save_date,
                email_id,
                body_len,
                meta_len,
                body_at,
                body,
            })
        }
        kind::FLAGS => {
            let mailbox = r.u64()?;
            let modseq = r.u64()?;
            let mode = flag_mode(r.u8()?)?;
            let flags = r.u8()?;
            let keywords = r.strs()?;
            let unchanged_since = match r.u64()? {
                u64::MAX => None,
                v => Some(v),
            };
            let uids = r.ranges()?;
            Record::Flags {
                user,
                mailbox,
                modseq,
                mode,
                flags,
                keywords,
                unchanged_since,
                uids,
            }
        }
        kind::EXPUNGE => Record::Expunge {
            user,
            mailbox: r.u64()?,
            modseq: r.u64()?,
            uids: r.ranges()?,
        },
        kind::COPY => {
            let src = r.u64()?;
            let dst = r.u64()?;
            let dst_modseq = r.u64()?;
            let src_modseq = match r.u64()? {
                0 => None,
                v => Some(v),
            };
            let save_date = r.i64()?;
            let n = r.count(8)?;
            let pairs = (0..n)
                .map(|_| Ok((r.u32()?, r.u32()?)))
                .collect::<Result<_>>()?;
            Record::Copy {
                user,
                src,
                dst,
                dst_modseq,
                src_modseq,
                save_date,
                pairs,
            }
        }
        kind::CREATE_MAILBOX => Record::CreateMailbox {
            user,
            id: r.u64()?,
            uidvalidity: r.u32()?,
            special_use: r.u8()?,
            name: r.str()?,
        },
        kind::RENAME_MAILBOX => {
            let n = r.count(10)?;
            let renames = (0..n)
                .map(|_| Ok((r.u64()?, r.str()?)))
                .collect::<Result<_>>()?;
            let new_inbox = match r.u8()? {
                0 => None,
                _ => Some((r.u64()?, r.u32()?)),
            };
            Record::RenameMailbox {
                user,
                renames,
                new_inbox,
            }
        }
        kind::DELETE_MAILBOX => Record::DeleteMailbox { user, id: r.u64()? },
        kind::SUBSCRIBE => Record::Subscribe {
            user,
            subscribed: r.u8()? != 0,
            name: r.str()?,
        },
        kind::SET_QUOTA => Record::SetQuota {
            user,
            max_bytes: r.u64()?,
            max_messages: r.u64()?,
        },
        kind::SET_SPECIAL_USE => Record::SetSpecialUse {
            user,
            id: r.u64()?,
            special_use: r.u8()?,
        },
        kind::RAISE_UIDNEXT => Record::RaiseUidnext {
            user,
            mailbox: r.u64()?,
            uidnext: r.u32()?,
        },
        kind::PUT_SCRIPT => {
            let name = r.script_name()?;
            let len = r.u32()? as usize;
            if len > MAX_SCRIPT_SIZE {
                return Err(corrupt("script length"));
            }
            let source = std::str::from_utf8(r.take(len)?).map_err(|_| corrupt("utf-8"))?;
            Record::PutScript { user, name, source }
        }
        kind::DELETE_SCRIPT => Record::DeleteScript {
            user,
            name: r.script_name()?,
        },
        kind::RENAME_SCRIPT => Record::RenameScript {
            user,
            from: r.script_name()?,
            to: r.script_name()?,
        },
        kind::ACTIVATE_SCRIPT => Record::ActivateScript {
            user,
            name: match r.u8()? {
                0 => None,
                1 => Some(r.script_name()?),
                _ => return Err(corrupt("activate flag")),
            },
        },
        kind::SIEVE_REMEMBER => {
            let now = r.i64()?;
            // Each entry takes at least 2 + 1 + 8 bytes.
            let n = r.count(11)?;
            if n > MAX_REMEMBER_ENTRIES {
                return Err(corrupt("remember count"));
            }
            let mut entries = Vec::with_capacity(n);
            for _ in 0..n {
                let len = r.u16()? as usize;
                if len == 0 || len > MAX_REMEMBER_KEY {
                    return Err(corrupt("remember key length"));
                }
                let key = r.take(len)?;
                entries.push((key, r.i64()?));
            }
            Record::SieveRemember { user, now, entries }
        }
        kind::SIEVE_LOG => Record::SieveLog(SieveLogRec {
            user,
            time: r.i64()?,
            script: r.script_name()?,
            line: r.u32()?,
            message: r.str_max(MAX_LOG_MESSAGE, "log message length")?,
        }),
        kind::BODY => {
            let body_len = r.u32()?;
            let meta_len = r.u32()?;
            let body_at = r.pos;
            r.take(body_len as usize)?;
            r.take(meta_len as usize)?;
            Record::Body { body_len, body_at }
        }
        other => return Err(corrupt(&format!("unknown kind {other}"))),
    };
    // The Sieve records (formats 3 and 4) are exact: bytes after the last field are a forged or
    // damaged length, not padding.
    if format_of(kind) >= 3 && r.pos != payload.len() {
        return Err(corrupt("trailing bytes"));
    }
    Ok(rec)
}

/// Encoders of the Sieve records (formats 3 and 4). Callers check the limits first
/// (`MAX_SCRIPT_*`, `MAX_REMEMBER_*`, `MAX_LOG_MESSAGE`); the decoder refuses what
/// exceeds them.
pub(crate) mod sieve {
    use super::FrameWriter;

    pub fn put_script(w: &mut FrameWriter<'_>, user: &str, name: &str, source: &str) {
        w.str(user)
            .str(name)
            .u32(source.len() as u32)
            .bytes(source.as_bytes());
    }

    pub fn delete_script(w: &mut FrameWriter<'_>, user: &str, name: &str) {
        w.str(user).str(name);
    }

    pub fn rename_script(w: &mut FrameWriter<'_>, user: &str, from: &str, to: &str) {
        w.str(user).str(from).str(to);
    }

    pub fn activate_script(w: &mut FrameWriter<'_>, user: &str, name: Option<&str>) {
        w.str(user);
        match name {
            Some(n) => w.u8(1).str(n),
            None => w.u8(0),
        };
    }

    pub fn remember(w: &mut FrameWriter<'_>, user: &str, now: i64, entries: &[(&[u8], i64)]) {
        w.str(user).i64(now).u32(entries.len() as u32);
        for &(key, expires) in entries {
            w.bytes16(key).i64(expires);
        }
    }

    pub fn log(w: &mut FrameWriter<'_>, user: &str, entry: &crate::SieveLogEntry) {
        w.str(user)
            .i64(entry.time)
            .str(&entry.script)
            .u32(entry.line)
            .str(&entry.message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_roundtrip_and_crc() {
        let mut buf = Vec::new();
        let mut w = FrameWriter::new(&mut buf, kind::EXPUNGE);
        w.str("alice").u64(7).u64(9).ranges(&[(1, 3), (8, 8)]);
        let n = w.finish();
        assert_eq!(n, buf.len());
        let mut h = [0u8; FRAME_HEADER];
        h.copy_from_slice(&buf[..FRAME_HEADER]);
        let h = FrameHeader::parse(&h);
        assert_eq!(h.payload_len as usize, n - FRAME_HEADER);
        assert_eq!(h.crc, frame_crc(h.kind, &buf[FRAME_HEADER..]));
        match decode(h.kind, &buf[FRAME_HEADER..]).unwrap() {
            Record::Expunge {
                user,
                mailbox,
                modseq,
                uids,
            } => {
                assert_eq!((user, mailbox, modseq), ("alice", 7, 9));
                assert_eq!(uids, vec![(1, 3), (8, 8)]);
            }
            other => panic!("wrong record {other:?}"),
        }
    }

    #[test]
    fn raise_uidnext_roundtrip() {
        let mut buf = Vec::new();
        let mut w = FrameWriter::new(&mut buf, kind::RAISE_UIDNEXT);
        w.str("bob").u64(3).u32(4711);
        w.finish();
        // user (2 + 3) + mailbox (8) + uidnext (4), as docs/storage-format.md says.
        assert_eq!(buf.len(), FRAME_HEADER + 5 + 8 + 4);
        match decode(kind::RAISE_UIDNEXT, &buf[FRAME_HEADER..]).unwrap() {
            Record::RaiseUidnext {
                user,
                mailbox,
                uidnext,
            } => assert_eq!((user, mailbox, uidnext), ("bob", 3, 4711)),
            other => panic!("wrong record {other:?}"),
        }
        // A truncated payload is an error.
        assert!(decode(kind::RAISE_UIDNEXT, &buf[FRAME_HEADER..buf.len() - 1]).is_err());
        assert_eq!(format_of(kind::RAISE_UIDNEXT), 2);
        assert_eq!(format_of(kind::APPEND), 1);
    }

    /// Frames a record built by `fill` and returns its payload.
    fn payload(k: u8, fill: impl FnOnce(&mut FrameWriter<'_>)) -> Vec<u8> {
        let mut buf = Vec::new();
        let mut w = FrameWriter::new(&mut buf, k);
        fill(&mut w);
        w.finish();
        buf.split_off(FRAME_HEADER)
    }

    /// One record of each Sieve kind, with the exact payload size docs/storage-format.md
    /// gives for it.
    fn sieve_samples() -> Vec<(u8, Vec<u8>, usize)> {
        let key: &[u8] = b"v:\x00\xffbob@example.org";
        vec![
            (
                kind::PUT_SCRIPT,
                payload(kind::PUT_SCRIPT, |w| {
                    sieve::put_script(w, "al", "vacation", "keep;\r\n")
                }),
                (2 + 2) + (2 + 8) + 4 + 7,
            ),
            (
                kind::DELETE_SCRIPT,
                payload(kind::DELETE_SCRIPT, |w| sieve::delete_script(w, "al", "x")),
                (2 + 2) + (2 + 1),
            ),
            (
                kind::RENAME_SCRIPT,
                payload(kind::RENAME_SCRIPT, |w| {
                    sieve::rename_script(w, "al", "a", "bé")
                }),
                (2 + 2) + (2 + 1) + (2 + 3),
            ),
            (
                kind::ACTIVATE_SCRIPT,
                payload(kind::ACTIVATE_SCRIPT, |w| {
                    sieve::activate_script(w, "al", Some("a"))
                }),
                (2 + 2) + 1 + (2 + 1),
            ),
            (
                kind::ACTIVATE_SCRIPT,
                payload(kind::ACTIVATE_SCRIPT, |w| {
                    sieve::activate_script(w, "al", None)
                }),
                (2 + 2) + 1,
            ),
            (
                kind::SIEVE_REMEMBER,
                payload(kind::SIEVE_REMEMBER, |w| {
                    sieve::remember(
                        w,
                        "al",
                        1_700_000_000,
                        &[(key, 1_700_086_400), (b"d:1", -5)],
                    )
                }),
                (2 + 2) + 8 + 4 + (2 + key.len() + 8) + (2 + 3 + 8),
            ),
        ]
    }

    #[test]
    fn sieve_records_roundtrip_with_the_documented_sizes() {
        let samples = sieve_samples();
        for (k, p, size) in &samples {
            assert_eq!(p.len(), *size, "payload size of kind {k}");
            assert_eq!(format_of(*k), 3);
        }
        let decoded: Vec<String> = samples
            .iter()
            .map(|(k, p, _)| format!("{:?}", decode(*k, p).unwrap()))
            .collect();
        match decode(samples[0].0, &samples[0].1).unwrap() {
            Record::PutScript { user, name, source } => {
                assert_eq!((user, name, source), ("al", "vacation", "keep;\r\n"))
            }
            other => panic!("{other:?}"),
        }
        match decode(samples[2].0, &samples[2].1).unwrap() {
            Record::RenameScript { user, from, to } => {
                assert_eq!((user, from, to), ("al", "a", "bé"))
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decode(samples[3].0, &samples[3].1).unwrap(),
            Record::ActivateScript {
                name: Some("a"),
                ..
            }
        ));
        assert!(matches!(
            decode(samples[4].0, &samples[4].1).unwrap(),
            Record::ActivateScript { name: None, .. }
        ));
        match decode(samples[5].0, &samples[5].1).unwrap() {
            Record::SieveRemember { user, now, entries } => {
                assert_eq!((user, now), ("al", 1_700_000_000));
                let want: Vec<(&[u8], i64)> =
                    vec![(b"v:\x00\xffbob@example.org", 1_700_086_400), (b"d:1", -5)];
                assert_eq!(entries, want);
            }
            other => panic!("{other:?}"),
        }
        assert!(decoded[1].contains("DeleteScript"), "{}", decoded[1]);
    }

    #[test]
    fn sieve_log_records_roundtrip_and_refuse_damage() {
        let entry = crate::SieveLogEntry {
            time: 1_700_000_000,
            script: "main".into(),
            line: 4,
            message: "fileinto: \"\" is not a mailbox name".into(),
        };
        let p = payload(kind::SIEVE_LOG, |w| sieve::log(w, "al", &entry));
        // As docs/storage-format.md has it: str user, i64 time, str script, u32 line, str message.
        assert_eq!(
            p.len(),
            (2 + 2) + 8 + (2 + 4) + 4 + (2 + entry.message.len())
        );
        assert_eq!(format_of(kind::SIEVE_LOG), 4);
        match decode(kind::SIEVE_LOG, &p).unwrap() {
            Record::SieveLog(rec) => assert_eq!((rec.user, rec.entry()), ("al", entry.clone())),
            other => panic!("{other:?}"),
        }
        for cut in 0..p.len() {
            assert!(decode(kind::SIEVE_LOG, &p[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = p.clone();
        longer.push(0);
        assert!(decode(kind::SIEVE_LOG, &longer).is_err());
        // A reason over the limit, and an empty script name.
        let long = crate::SieveLogEntry {
            message: "x".repeat(MAX_LOG_MESSAGE + 1),
            ..entry.clone()
        };
        let p = payload(kind::SIEVE_LOG, |w| sieve::log(w, "al", &long));
        assert!(decode(kind::SIEVE_LOG, &p).is_err());
        let nameless = crate::SieveLogEntry {
            script: String::new(),
            ..entry
        };
        let p = payload(kind::SIEVE_LOG, |w| sieve::log(w, "al", &nameless));
        assert!(decode(kind::SIEVE_LOG, &p).is_err());
    }

    #[test]
    fn every_truncation_and_extension_of_a_sieve_record_is_refused() {
        for (k, p, _) in sieve_samples() {
            for cut in 0..p.len() {
                assert!(
                    decode(k, &p[..cut]).is_err(),
                    "kind {k} cut at {cut} accepted"
                );
            }
            let mut longer = p.clone();
            longer.push(0);
            assert!(
                decode(k, &longer).is_err(),
                "kind {k} with a trailing byte accepted"
            );
        }
    }

    #[test]
    fn forged_sieve_lengths_are_refused_before_allocating() {
        // A script length over the limit, with no bytes behind it.
        let p = payload(kind::PUT_SCRIPT, |w| {
            w.str("u").str("a").u32(MAX_SCRIPT_SIZE as u32 + 1);
        });
        assert!(decode(kind::PUT_SCRIPT, &p).is_err());
        // An over-long script is refused even when its bytes are all there.
        let big = "x".repeat(MAX_SCRIPT_SIZE + 1);
        let p = payload(kind::PUT_SCRIPT, |w| sieve::put_script(w, "u", "a", &big));
        assert!(decode(kind::PUT_SCRIPT, &p).is_err());
        // The largest script is accepted.
        let max = "x".repeat(MAX_SCRIPT_SIZE);
        let p = payload(kind::PUT_SCRIPT, |w| sieve::put_script(w, "u", "a", &max));
        assert!(decode(kind::PUT_SCRIPT, &p).is_ok());
        // A script length that points past the payload (or short of its end).
        let p = payload(kind::PUT_SCRIPT, |w| {
            w.str("u").str("a").u32(10).bytes(b"keep;");
        });
        assert!(decode(kind::PUT_SCRIPT, &p).is_err());
        let p = payload(kind::PUT_SCRIPT, |w| {
            w.str("u").str("a").u32(2).bytes(b"keep;");
        });
        assert!(decode(kind::PUT_SCRIPT, &p).is_err());
        // Names: empty, too long, not UTF-8.
        let long = "n".repeat(MAX_SCRIPT_NAME + 1);
        for name in ["", long.as_str()] {
            let p = payload(kind::DELETE_SCRIPT, |w| sieve::delete_script(w, "u", name));
            assert!(
                decode(kind::DELETE_SCRIPT, &p).is_err(),
                "name of {}",
                name.len()
            );
            let p = payload(kind::RENAME_SCRIPT, |w| {
                sieve::rename_script(w, "u", "a", name)
            });
            assert!(decode(kind::RENAME_SCRIPT, &p).is_err());
        }
        let p = payload(kind::DELETE_SCRIPT, |w| {
            w.str("u").bytes16(&[0xff, 0xfe]);
        });
        assert!(decode(kind::DELETE_SCRIPT, &p).is_err());
        let p = payload(kind::ACTIVATE_SCRIPT, |w| {
            w.str("u").u8(2);
        });
        assert!(
            decode(kind::ACTIVATE_SCRIPT, &p).is_err(),
            "activate flag 2"
        );
        // Remember: a count larger than the bytes left, over the limit, keys of bad lengths.
        let p = payload(kind::SIEVE_REMEMBER, |w| {
            w.str("u").i64(0).u32(u32::MAX);
        });
        assert!(decode(kind::SIEVE_REMEMBER, &p).is_err());
        let n = MAX_REMEMBER_ENTRIES + 1;
        let keys: Vec<(&[u8], i64)> = vec![(b"k", 1); n];
        let p = payload(kind::SIEVE_REMEMBER, |w| sieve::remember(w, "u", 0, &keys));
        assert!(decode(kind::SIEVE_REMEMBER, &p).is_err(), "{n} entries");
        let p = payload(kind::SIEVE_REMEMBER, |w| {
            sieve::remember(w, "u", 0, &keys[1..])
        });
        assert!(
            decode(kind::SIEVE_REMEMBER, &p).is_ok(),
            "{} entries",
            n - 1
        );
        let long = vec![7u8; MAX_REMEMBER_KEY + 1];
        for key in [&b""[..], &long[..]] {
            let p = payload(kind::SIEVE_REMEMBER, |w| {
                sieve::remember(w, "u", 0, &[(key, 1)])
            });
            assert!(
                decode(kind::SIEVE_REMEMBER, &p).is_err(),
                "key of {}",
                key.len()
            );
        }
    }

    #[test]
    fn garbage_payload_is_an_error_not_a_panic() {
        for kind in 0..=18u8 {
            for len in 0..40 {
                let payload: Vec<u8> = (0..len).map(|i| (i * 37 + kind as usize) as u8).collect();
                let _ = decode(kind, &payload);
            }
        }
        // A huge count must not allocate.
        let mut buf = Vec::new();
        let mut w = FrameWriter::new(&mut buf, kind::EXPUNGE);
        w.str("u").u64(1).u64(1).u32(u32::MAX);
        w.finish();
        assert!(decode(kind::EXPUNGE, &buf[FRAME_HEADER..]).is_err());
    }
}
