//! What is kept about one message: the part tree with offsets, the pre-rendered
//! ENVELOPE / BODYSTRUCTURE / BODY bytes, the sort and thread fields and the preview,
//! plus the versioned binary form it is stored in.
//!
//! The binary form is hand-rolled (little-endian integers, length-prefixed byte
//! strings) because it is read for every FETCH of a message's structure and must
//! refuse truncated or foreign bytes with an error rather than trust them.

use std::fmt;
use std::ops::Range;

/// Everything FETCH, SEARCH, SORT and THREAD need about a message's MIME structure.
/// Built once by [`analyze`](super::analyze), stored, and read back with
/// [`MessageMeta::from_bytes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageMeta {
    /// The top-level part: the message itself (its header is the message header).
    pub root: PartMeta,
    /// The `ENVELOPE` value, ready to write after `ENVELOPE `.
    pub envelope: Vec<u8>,
    /// The `BODYSTRUCTURE` value (with extension data).
    pub bodystructure: Vec<u8>,
    /// The `BODY` value (the non-extensible form).
    pub body: Vec<u8>,
    /// Decoded fields for SORT and THREAD.
    pub sort: SortFields,
    /// RFC 8970 preview: at most 200 characters of the first text part.
    pub preview: String,
}

/// MIME parameters (`name`, `value`) in the order written.
pub type Params = Vec<(Vec<u8>, Vec<u8>)>;

/// What kind of body a part has; decides how it is rendered and addressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartKind {
    /// Any non-text leaf part.
    Basic,
    /// A `text/*` leaf part (BODYSTRUCTURE carries its line count).
    Text,
    /// `multipart/*`: the children are its body parts.
    Multipart,
    /// `message/rfc822` or `message/global`: the only child is the embedded message.
    Message,
}

/// One MIME part. Offsets are byte positions in the raw message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartMeta {
    /// What kind of body this part has.
    pub kind: PartKind,
    /// Start of the part's MIME header (for the root: of the message header).
    pub header_start: u32,
    /// End of the header, after the blank line that ends it (if there was one).
    pub header_end: u32,
    /// Start of the body (equal to `header_end`).
    pub body_start: u32,
    /// End of the body: before the line break that precedes the next boundary.
    pub body_end: u32,
    /// Media type, as written (`text` when absent).
    pub media_type: Vec<u8>,
    /// Media subtype, as written (`plain` when absent).
    pub subtype: Vec<u8>,
    /// Content-Type parameters, RFC 2231 continuations joined.
    pub params: Params,
    /// Content-ID, unfolded.
    pub id: Option<Vec<u8>>,
    /// Content-Description, unfolded, encoded words left as they are.
    pub description: Option<Vec<u8>>,
    /// Content-Transfer-Encoding as written; `None` means 7bit.
    pub encoding: Option<Vec<u8>>,
    /// Body size in octets.
    pub size: u32,
    /// Body line count (meaningful for text and message parts).
    pub lines: u32,
    /// Content-Disposition value and parameters.
    pub disposition: Option<(Vec<u8>, Params)>,
    /// Content-Language tags.
    pub language: Vec<Vec<u8>>,
    /// Content-Location, unfolded.
    pub location: Option<Vec<u8>>,
    /// Content-MD5, unfolded.
    pub md5: Option<Vec<u8>>,
    /// The embedded message's ENVELOPE, for `Message` parts only.
    pub envelope: Option<Vec<u8>>,
    /// Body parts of a multipart; the embedded message's root for a message part.
    pub children: Vec<PartMeta>,
}

/// Header values decoded for SORT (RFC 5256, RFC 5957) and THREAD.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SortFields {
    /// Subject with RFC 2047 encoded words decoded to UTF-8 (base subject is not applied).
    pub subject: String,
    /// First mailbox of From.
    pub from: Option<SortAddress>,
    /// First mailbox of To.
    pub to: Option<SortAddress>,
    /// First mailbox of Cc.
    pub cc: Option<SortAddress>,
    /// The Date header as seconds since the Unix epoch (UTC), if it parses.
    pub date: Option<i64>,
    /// The first msg-id of Message-ID, angle brackets removed.
    pub message_id: Option<String>,
    /// The first msg-id of In-Reply-To, angle brackets removed.
    pub in_reply_to: Option<String>,
    /// All msg-ids of References in order, angle brackets removed.
    pub references: Vec<String>,
}

/// The first mailbox of an address header, decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SortAddress {
    /// Display name, RFC 2047 decoded; empty when there is none.
    pub name: String,
    /// Local part.
    pub mailbox: String,
    /// Domain; empty when missing.
    pub host: String,
}

/// Why stored metadata could not be read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaError {
    /// Not a metadata blob of a version this build understands.
    BadVersion,
    /// The blob ends early, has trailing bytes, or contains values out of range.
    Corrupt,
}

impl fmt::Display for MetaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetaError::BadVersion => f.write_str("unknown message metadata version"),
            MetaError::Corrupt => f.write_str("corrupt message metadata"),
        }
    }
}

impl std::error::Error for MetaError {}

const MAGIC: &[u8; 3] = b"RMM";
const VERSION: u8 = 1;
/// Deepest part nesting read back; [`analyze`](super::analyze) never produces deeper.
pub(crate) const MAX_DEPTH: usize = 64;

impl MessageMeta {
    /// Serialises to the stored binary form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(256 + self.bodystructure.len() * 2));
        w.0.extend_from_slice(MAGIC);
        w.0.push(VERSION);
        w.part(&self.root);
        w.bytes(&self.envelope);
        w.bytes(&self.bodystructure);
        w.bytes(&self.body);
        w.bytes(self.sort.subject.as_bytes());
        for a in [&self.sort.from, &self.sort.to, &self.sort.cc] {
            w.opt(a.as_ref(), |w, a| {
                w.bytes(a.name.as_bytes());
                w.bytes(a.mailbox.as_bytes());
                w.bytes(a.host.as_bytes());
            });
        }
        w.opt(self.sort.date.as_ref(), |w, d| {
            w.0.extend_from_slice(&d.to_le_bytes())
        });
        w.opt_str(self.sort.message_id.as_deref());
        w.opt_str(self.sort.in_reply_to.as_deref());
        w.u32(self.sort.references.len() as u32);
        for r in &self.sort.references {
            w.bytes(r.as_bytes());
        }
        w.bytes(self.preview.as_bytes());
        w.0
    }

    /// Reads the stored binary form back; garbage, truncation or trailing bytes
    /// are an error, never a panic.
    pub fn from_bytes(bytes: &[u8]) -> Result<MessageMeta, MetaError> {
        let rest = bytes.strip_prefix(MAGIC).ok_or(MetaError::BadVersion)?;
        let (&version, rest) = rest.split_first().ok_or(MetaError::BadVersion)?;
        if version != VERSION {
            return Err(MetaError::BadVersion);
        }
        let mut r = Reader(rest);
        let root = r.part(0)?;
        let envelope = r.bytes()?;
        let bodystructure = r.bytes()?;
        let body = r.bytes()?;
        let subject = r.string()?;
        let mut addrs = [None, None, None];
        for slot in &mut addrs {
            *slot = r.opt(|r| {
                Ok(SortAddress {
                    name: r.string()?,
                    mailbox: r.string()?,
                    host: r.string()?,
                })
            })?;
        }
        let [from, to, cc] = addrs;
        let date = r.opt(|r| {
            let b = r.take(8)?;
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            Ok(i64::from_le_bytes(a))
        })?;
        let message_id = r.opt(Reader::string)?;
        let in_reply_to = r.opt(Reader::string)?;
        let n = r.count()?;
        let mut references = Vec::with_capacity(n);
        for _ in 0..n {
            references.push(r.string()?);
        }
        let preview = r.string()?;
        if !r.0.is_empty() {
            return Err(MetaError::Corrupt);
        }
        Ok(MessageMeta {
            root,
            envelope,
            bodystructure,
            body,
            sort: SortFields {
                subject,
                from,
                to,
                cc,
                date,
                message_id,
                in_reply_to,
                references,
            },
            preview,
        })
    }
}

/// The pre-rendered FETCH values of a stored blob, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rendered<'a> {
    /// The `ENVELOPE` value.
    pub envelope: &'a [u8],
    /// The `BODYSTRUCTURE` value.
    pub bodystructure: &'a [u8],
    /// The `BODY` value.
    pub body: &'a [u8],
}

impl MessageMeta {
    /// The pre-rendered ENVELOPE / BODYSTRUCTURE / BODY of a stored blob, without building
    /// the part tree: FETCH of those items then allocates nothing per message.
    ///
    /// Walks and checks the whole blob exactly as [`MessageMeta::from_bytes`] does, so a
    /// blob is accepted here if and only if `from_bytes` accepts it, with the same values.
    pub fn rendered(bytes: &[u8]) -> Result<Rendered<'_>, MetaError> {
        let [envelope, bodystructure, body] = Self::rendered_ranges(bytes)?;
        let at = |range| bytes.get(range).unwrap_or_default();
        Ok(Rendered {
            envelope: at(envelope),
            bodystructure: at(bodystructure),
            body: at(body),
        })
    }

    /// Where [`MessageMeta::rendered`]'s values lie in `bytes`: the ranges of the ENVELOPE,
    /// BODYSTRUCTURE and BODY values, in that order. A caller that needs several of them
    /// keeps these and walks the blob once, instead of once per value.
    pub fn rendered_ranges(bytes: &[u8]) -> Result<[Range<usize>; 3], MetaError> {
        let rest = bytes.strip_prefix(MAGIC).ok_or(MetaError::BadVersion)?;
        let (&version, rest) = rest.split_first().ok_or(MetaError::BadVersion)?;
        if version != VERSION {
            return Err(MetaError::BadVersion);
        }
        let mut r = Reader(rest);
        r.skip_part(0)?;
        // The range of the next length-prefixed value, as an offset into `bytes`.
        let value = |r: &mut Reader<'_>| {
            let len = r.slice()?.len();
            let end = bytes.len() - r.0.len();
            Ok::<_, MetaError>(end - len..end)
        };
        let envelope = value(&mut r)?;
        let bodystructure = value(&mut r)?;
        let body = value(&mut r)?;
        r.str()?; // subject
        for _ in 0..3 {
            r.opt(|r| {
                for _ in 0..3 {
                    r.str()?;
                }
                Ok(())
            })?;
        }
        r.opt(|r| r.take(8).map(drop))?; // date
        r.opt(Reader::str)?; // message-id
        r.opt(Reader::str)?; // in-reply-to
        for _ in 0..r.count()? {
            r.str()?;
        }
        r.str()?; // preview
        if !r.0.is_empty() {
            return Err(MetaError::Corrupt);
        }
        Ok([envelope, bodystructure, body])
    }
}

struct Writer(Vec<u8>);

impl Writer {
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
    }
    fn opt<T>(&mut self, v: Option<&T>, f: impl FnOnce(&mut Self, &T)) {
        match v {
            None => self.0.push(0),
            Some(v) => {
                self.0.push(1);
                f(self, v);
            }
        }
    }
    fn opt_str(&mut self, v: Option<&str>) {
        self.opt(v.map(str::as_bytes).as_ref(), |w, b| w.bytes(b));
    }
    fn opt_bytes(&mut self, v: &Option<Vec<u8>>) {
        self.opt(v.as_ref(), |w, b| w.bytes(b));
    }
    fn params(&mut self, p: &[(Vec<u8>, Vec<u8>)]) {
        self.u32(p.len() as u32);
        for (k, v) in p {
            self.bytes(k);
            self.bytes(v);
        }
    }
    fn part(&mut self, p: &PartMeta) {
        self.0.push(match p.kind {
            PartKind::Basic => 0,
            PartKind::Text => 1,
            PartKind::Multipart => 2,
            PartKind::Message => 3,
        });
        for v in [
            p.header_start,
            p.header_end,
            p.body_start,
            p.body_end,
            p.size,
            p.lines,
        ] {
            self.u32(v);
        }
        self.bytes(&p.media_type);
        self.bytes(&p.subtype);
        self.params(&p.params);
        self.opt_bytes(&p.id);
        self.opt_bytes(&p.description);
        self.opt_bytes(&p.encoding);
        self.opt(p.disposition.as_ref(), |w, (v, params)| {
            w.bytes(v);
            w.params(params);
        });
        self.u32(p.language.len() as u32);
        for l in &p.language {
            self.bytes(l);
        }
        self.opt_bytes(&p.location);
        self.opt_bytes(&p.md5);
        self.opt_bytes(&p.envelope);
        self.u32(p.children.len() as u32);
        for c in &p.children {
            self.part(c);
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], MetaError> {
        if n > self.0.len() {
            return Err(MetaError::Corrupt);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, MetaError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, MetaError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// An element count; each element takes at least one byte, which bounds the
    /// allocation a forged count can cause.
    fn count(&mut self) -> Result<usize, MetaError> {
        let n = self.u32()? as usize;
        if n > self.0.len() {
            return Err(MetaError::Corrupt);
        }
        Ok(n)
    }
    /// A length-prefixed byte string, borrowed.
    fn slice(&mut self) -> Result<&'a [u8], MetaError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    /// A length-prefixed string, checked to be UTF-8 as [`Reader::string`] does.
    fn str(&mut self) -> Result<(), MetaError> {
        std::str::from_utf8(self.slice()?).map_err(|_| MetaError::Corrupt)?;
        Ok(())
    }
    fn skip_params(&mut self) -> Result<(), MetaError> {
        for _ in 0..self.count()? {
            self.slice()?;
            self.slice()?;
        }
        Ok(())
    }
    /// Checks a part as [`Reader::part`] does, keeping nothing.
    fn skip_part(&mut self, depth: usize) -> Result<(), MetaError> {
        if depth > MAX_DEPTH || self.u8()? > 3 {
            return Err(MetaError::Corrupt);
        }
        let header_start = self.u32()?;
        let header_end = self.u32()?;
        let body_start = self.u32()?;
        let body_end = self.u32()?;
        self.take(8)?; // size, lines
        if !(header_start <= header_end && header_end <= body_start && body_start <= body_end) {
            return Err(MetaError::Corrupt);
        }
        self.slice()?; // media type
        self.slice()?; // subtype
        self.skip_params()?;
        for _ in 0..3 {
            self.opt(Reader::slice)?; // id, description, encoding
        }
        self.opt(|r| {
            r.slice()?;
            r.skip_params()
        })?;
        for _ in 0..self.count()? {
            self.slice()?; // language
        }
        for _ in 0..3 {
            self.opt(Reader::slice)?; // location, md5, envelope
        }
        for _ in 0..self.count()? {
            self.skip_part(depth + 1)?;
        }
        Ok(())
    }
    fn bytes(&mut self) -> Result<Vec<u8>, MetaError> {
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }
    fn string(&mut self) -> Result<String, MetaError> {
        String::from_utf8(self.bytes()?).map_err(|_| MetaError::Corrupt)
    }
    fn opt<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, MetaError>,
    ) -> Result<Option<T>, MetaError> {
        match self.u8()? {
            0 => Ok(None),
            1 => f(self).map(Some),
            _ => Err(MetaError::Corrupt),
        }
    }
    fn opt_bytes(&mut self) -> Result<Option<Vec<u8>>, MetaError> {
        self.opt(Reader::bytes)
    }
    fn params(&mut self) -> Result<Params, MetaError> {
        let n = self.count()?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push((self.bytes()?, self.bytes()?));
        }
        Ok(out)
    }
    fn part(&mut self, depth: usize) -> Result<PartMeta, MetaError> {
        if depth > MAX_DEPTH {
            return Err(MetaError::Corrupt);
        }
        let kind = match self.u8()? {
            0 => PartKind::Basic,
            1 => PartKind::Text,
            2 => PartKind::Multipart,
            3 => PartKind::Message,
            _ => return Err(MetaError::Corrupt),
        };
        let header_start = self.u32()?;
        let header_end = self.u32()?;
        let body_start = self.u32()?;
        let body_end = self.u32()?;
        let size = self.u32()?;
        let lines = self.u32()?;
        if !(header_start <= header_end && header_end <= body_start && body_start <= body_end) {
            return Err(MetaError::Corrupt);
        }
        let media_type = self.bytes()?;
        let subtype = self.bytes()?;
        let params = self.params()?;
        let id = self.opt_bytes()?;
        let description = self.opt_bytes()?;
        let encoding = self.opt_bytes()?;
        let disposition = self.opt(|r| Ok((r.bytes()?, r.params()?)))?;
        let n = self.count()?;
        let mut language = Vec::with_capacity(n);
        for _ in 0..n {
            language.push(self.bytes()?);
        }
        let location = self.opt_bytes()?;
        let md5 = self.opt_bytes()?;
        let envelope = self.opt_bytes()?;
        let n = self.count()?;
        let mut children = Vec::with_capacity(n);
        for _ in 0..n {
            children.push(self.part(depth + 1)?);
        }
        Ok(PartMeta {
            kind,
            header_start,
            header_end,
            body_start,
            body_end,
            media_type,
            subtype,
            params,
            id,
            description,
            encoding,
            size,
            lines,
            disposition,
            language,
            location,
            md5,
            envelope,
            children,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MULTIPART: &[u8] = b"From: A <a@example.com>\r\nTo: b@example.com\r\n\
Subject: hi\r\nMessage-ID: <1@x>\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
Content-Type: text/plain; charset=utf-8\r\n\r\nhello\r\n--b\r\n\
Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\nbody\r\n--b--\r\n";

    #[test]
    fn rendered_matches_the_parsed_blob() {
        let meta = super::super::analyze(MULTIPART);
        let blob = meta.to_bytes();
        let r = MessageMeta::rendered(&blob).unwrap();
        assert_eq!(r.envelope, &meta.envelope[..]);
        assert_eq!(r.bodystructure, &meta.bodystructure[..]);
        assert_eq!(r.body, &meta.body[..]);
        assert!(r.bodystructure.starts_with(b"((\"text\" \"plain\""));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// Damaged blobs: `rendered` accepts exactly what `from_bytes` accepts.
        #[test]
        fn rendered_agrees_with_from_bytes(cut in 0usize..8, at in 0usize..2000, byte: u8) {
            let mut blob = super::super::analyze(MULTIPART).to_bytes();
            if at < blob.len() {
                blob[at] = byte;
            }
            // Most cases keep the length, so that flipped bytes that still parse are compared too.
            blob.truncate(blob.len().saturating_sub(cut.saturating_sub(6)));
            let full = MessageMeta::from_bytes(&blob);
            let lazy = MessageMeta::rendered(&blob);
            match (full, lazy) {
                (Ok(m), Ok(r)) => {
                    prop_assert_eq!(r.envelope, &m.envelope[..]);
                    prop_assert_eq!(r.bodystructure, &m.bodystructure[..]);
                    prop_assert_eq!(r.body, &m.body[..]);
                }
                (Err(a), Err(b)) => prop_assert_eq!(a, b),
                (a, b) => prop_assert!(false, "from_bytes {:?} vs rendered {:?}", a.map(|_| ()), b),
            }
        }
    }
}
