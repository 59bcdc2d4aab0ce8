//! The admin socket's wire format: length-prefixed binary frames, one request answered by one
//! reply, in order.
//!
//! A frame is `u32 length | u8 kind | payload`, little-endian, where `length` counts the kind
//! byte and the payload. Strings are `u16 length | UTF-8`, byte strings `u32 length | bytes`.
//! The format is private to one ringmail version talking to itself over a local socket:
//! [`VERSION`] is exchanged in the hello, and a mismatch is refused with a clear message
//! rather than decoded on hope.

use std::fmt;

use crate::tools::export::{Entry, Listing};
use crate::tools::import::{FolderIds, ImportReport, Incoming};
use crate::tools::sieve::StoredScript;
use ringmail_store::SieveLogEntry;

/// Bumped whenever a frame's layout changes or a kind is added (2: the Sieve requests, 3:
/// the Sieve export and log).
pub const VERSION: u32 = 3;

/// Largest frame either side accepts: one message of the store's largest size plus room for
/// its flags and keywords. Batches are cut well below this (see [`BATCH_BYTES`]).
pub const MAX_FRAME: usize = ringmail_store::MAX_MESSAGE_SIZE + (1 << 20);

/// A client closes a batch of messages at this many bytes (a bigger single message travels
/// alone); with [`BATCH_MESSAGES`] this bounds what a batch holds in the server's memory.
pub const BATCH_BYTES: usize = 16 << 20;

/// A client closes a batch at this many messages; the server commits a batch at once.
pub const BATCH_MESSAGES: usize = 64;

/// What a client asks.
#[derive(Debug, PartialEq)]
pub enum Request {
    /// The first frame: the protocol version, and the user every later request is about.
    Hello {
        /// The client's [`VERSION`].
        version: u32,
        /// The canonical user name.
        user: String,
    },
    /// Make a user new to the store, with these UIDVALIDITYs for the named mailboxes.
    SetUpUser(Vec<(String, u32)>),
    /// Start importing into `mailbox` (created when missing).
    Open {
        /// The mailbox name (IMAP form, `/`-separated).
        mailbox: String,
        /// Dovecot's UIDVALIDITY and next UID for the folder, when it had a uidlist.
        ids: Option<FolderIds>,
    },
    /// Messages for the open mailbox.
    Batch(Vec<Incoming>),
    /// The open mailbox is complete.
    Close,
    /// The import is complete: answer with the report.
    End,
    /// Export: the user's mailbox names.
    ListMailboxes,
    /// Export: the user's subscriptions.
    Subscriptions,
    /// Export: a mailbox's UIDVALIDITY, UIDNEXT and messages now.
    Listing(String),
    /// Export: the bytes of these messages (a batch's worth of them, from the first).
    Read {
        /// The mailbox.
        mailbox: String,
        /// UIDs, ascending.
        uids: Vec<u32>,
    },
    /// Sieve import: store a script (checked by the tool) under `name`, replacing one of
    /// that name. Answered `Ok("")` when stored, `Ok(why)` when refused (the session goes
    /// on with the next script).
    PutScript {
        /// The script name.
        name: String,
        /// Its source.
        source: String,
    },
    /// Sieve import: make this script the active one.
    ActivateScript(String),
    /// Sieve export: every script of the user with its source.
    Scripts,
    /// The user's Sieve error log.
    SieveLog,
}

/// What the server answers.
#[derive(Debug, PartialEq)]
pub enum Reply {
    /// Done. After a hello, `text` says who answered (pid and executor).
    Ok(String),
    /// Refused or failed; the connection closes after this.
    Error(String),
    /// The answer to [`Request::End`].
    Report(ImportReport),
    /// Mailbox names or subscriptions.
    Names(Vec<String>),
    /// The answer to [`Request::Listing`].
    Listing(Listing),
    /// The answer to [`Request::Read`]: message bytes, `None` for one expunged since.
    Messages(Vec<Option<Vec<u8>>>),
    /// The answer to [`Request::Scripts`].
    Scripts(Vec<StoredScript>),
    /// The answer to [`Request::SieveLog`], oldest entry first.
    SieveLog(Vec<SieveLogEntry>),
}

/// A frame that does not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "admin protocol: {}", self.0)
    }
}

impl std::error::Error for ProtocolError {}

fn bad(what: &str) -> ProtocolError {
    ProtocolError(what.to_string())
}

mod kind {
    pub const HELLO: u8 = b'H';
    pub const SET_UP_USER: u8 = b'S';
    pub const OPEN: u8 = b'O';
    pub const BATCH: u8 = b'B';
    pub const CLOSE: u8 = b'C';
    pub const END: u8 = b'Z';
    pub const LIST_MAILBOXES: u8 = b'L';
    pub const SUBSCRIPTIONS: u8 = b'U';
    pub const LISTING: u8 = b'I';
    pub const READ: u8 = b'R';
    pub const PUT_SCRIPT: u8 = b'P';
    pub const ACTIVATE_SCRIPT: u8 = b'A';
    pub const SCRIPTS: u8 = b'T';
    pub const SIEVE_LOG: u8 = b'G';
    pub const OK: u8 = b'k';
    pub const ERROR: u8 = b'e';
    pub const REPORT: u8 = b'r';
    pub const NAMES: u8 = b'n';
    pub const LISTING_REPLY: u8 = b'i';
    pub const MESSAGES: u8 = b'm';
    pub const SCRIPTS_REPLY: u8 = b't';
    pub const SIEVE_LOG_REPLY: u8 = b'g';
}

/// Builds one frame; the length is filled in by [`Encoder::finish`].
struct Encoder(Vec<u8>);

impl Encoder {
    fn new(kind: u8) -> Encoder {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&[0; 4]);
        out.push(kind);
        Encoder(out)
    }

    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }

    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    /// Strings longer than a u16 length are cut at a character boundary: they are names and
    /// report lines, where a cut is harmless and a panic is not.
    fn str(&mut self, s: &str) {
        let mut end = s.len().min(u16::MAX as usize);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.0.extend_from_slice(&(end as u16).to_le_bytes());
        self.0.extend_from_slice(&s.as_bytes()[..end]);
    }

    fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
    }

    fn strs(&mut self, list: &[String]) {
        self.u32(list.len() as u32);
        for s in list {
            self.str(s);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        let len = (self.0.len() - 4) as u32;
        self.0[..4].copy_from_slice(&len.to_le_bytes());
        self.0
    }
}

/// Reads a frame's payload; every read is bounds-checked.
struct Decoder<'a>(&'a [u8]);

impl<'a> Decoder<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtocolError> {
        if self.0.len() < n {
            return Err(bad("frame ends early"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, ProtocolError> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ProtocolError> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u32(&mut self) -> Result<u32, ProtocolError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, ProtocolError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, ProtocolError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    fn str(&mut self) -> Result<String, ProtocolError> {
        let len = u16::from_le_bytes(self.array()?) as usize;
        let raw = self.take(len)?;
        String::from_utf8(raw.to_vec()).map_err(|_| bad("a string is not UTF-8"))
    }

    fn bytes(&mut self) -> Result<Vec<u8>, ProtocolError> {
        let len = self.u32()? as usize;
        Ok(self.take(len)?.to_vec())
    }

    /// A count of items each at least `min_size` bytes long, checked against what is left
    /// so a forged count cannot make the reader reserve memory the frame does not back.
    fn count(&mut self, min_size: usize) -> Result<usize, ProtocolError> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_size) > self.0.len() {
            return Err(bad("a count is larger than the frame"));
        }
        Ok(n)
    }

    fn strs(&mut self) -> Result<Vec<String>, ProtocolError> {
        let n = self.count(2)?;
        (0..n).map(|_| self.str()).collect()
    }

    fn end(self) -> Result<(), ProtocolError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(bad("bytes after the end of a frame"))
        }
    }
}

impl Request {
    /// The request as one frame.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Request::Hello { version, user } => {
                let mut e = Encoder::new(kind::HELLO);
                e.u32(*version);
                e.str(user);
                e.finish()
            }
            Request::SetUpUser(list) => {
                let mut e = Encoder::new(kind::SET_UP_USER);
                e.u32(list.len() as u32);
                for (name, uidvalidity) in list {
                    e.str(name);
                    e.u32(*uidvalidity);
                }
                e.finish()
            }
            Request::Open { mailbox, ids } => {
                let mut e = Encoder::new(kind::OPEN);
                e.str(mailbox);
                let ids = ids.unwrap_or_default();
                e.u32(ids.uidvalidity);
                e.u32(ids.next_uid);
                e.finish()
            }
            Request::Batch(messages) => {
                let mut e = Encoder::new(kind::BATCH);
                e.u32(messages.len() as u32);
                for m in messages {
                    e.u8(m.flags);
                    e.i64(m.date);
                    e.u32(m.uid.unwrap_or(0));
                    e.strs(&m.keywords);
                    e.bytes(&m.bytes);
                }
                e.finish()
            }
            Request::Close => Encoder::new(kind::CLOSE).finish(),
            Request::End => Encoder::new(kind::END).finish(),
            Request::ListMailboxes => Encoder::new(kind::LIST_MAILBOXES).finish(),
            Request::Subscriptions => Encoder::new(kind::SUBSCRIPTIONS).finish(),
            Request::Listing(mailbox) => {
                let mut e = Encoder::new(kind::LISTING);
                e.str(mailbox);
                e.finish()
            }
            Request::Read { mailbox, uids } => {
                let mut e = Encoder::new(kind::READ);
                e.str(mailbox);
                e.u32(uids.len() as u32);
                for uid in uids {
                    e.u32(*uid);
                }
                e.finish()
            }
            Request::PutScript { name, source } => {
                let mut e = Encoder::new(kind::PUT_SCRIPT);
                e.str(name);
                e.bytes(source.as_bytes());
                e.finish()
            }
            Request::ActivateScript(name) => {
                let mut e = Encoder::new(kind::ACTIVATE_SCRIPT);
                e.str(name);
                e.finish()
            }
            Request::Scripts => Encoder::new(kind::SCRIPTS).finish(),
            Request::SieveLog => Encoder::new(kind::SIEVE_LOG).finish(),
        }
    }

    /// Decodes a frame's kind and payload (the bytes after the length).
    pub fn decode(frame: &[u8]) -> Result<Request, ProtocolError> {
        let (&k, payload) = frame.split_first().ok_or_else(|| bad("empty frame"))?;
        let mut d = Decoder(payload);
        let request = match k {
            kind::HELLO => Request::Hello {
                version: d.u32()?,
                user: d.str()?,
            },
            kind::SET_UP_USER => {
                let n = d.count(6)?;
                let list = (0..n)
                    .map(|_| Ok((d.str()?, d.u32()?)))
                    .collect::<Result<_, ProtocolError>>()?;
                Request::SetUpUser(list)
            }
            kind::OPEN => {
                let mailbox = d.str()?;
                let ids = FolderIds {
                    uidvalidity: d.u32()?,
                    next_uid: d.u32()?,
                };
                Request::Open {
                    mailbox,
                    ids: (ids.uidvalidity != 0).then_some(ids),
                }
            }
            kind::BATCH => {
                let n = d.count(21)?;
                let mut messages = Vec::with_capacity(n);
                for _ in 0..n {
                    let flags = d.u8()?;
                    let date = d.i64()?;
                    let uid = d.u32()?;
                    let keywords = d.strs()?;
                    let bytes = d.bytes()?;
                    messages.push(Incoming {
                        bytes,
                        flags,
                        keywords,
                        date,
                        uid: (uid != 0).then_some(uid),
                    });
                }
                Request::Batch(messages)
            }
            kind::CLOSE => Request::Close,
            kind::END => Request::End,
            kind::LIST_MAILBOXES => Request::ListMailboxes,
            kind::SUBSCRIPTIONS => Request::Subscriptions,
            kind::LISTING => Request::Listing(d.str()?),
            kind::READ => {
                let mailbox = d.str()?;
                let n = d.count(4)?;
                let uids = (0..n).map(|_| d.u32()).collect::<Result<_, _>>()?;
                Request::Read { mailbox, uids }
            }
            kind::PUT_SCRIPT => Request::PutScript {
                name: d.str()?,
                source: String::from_utf8(d.bytes()?).map_err(|_| bad("a script is not UTF-8"))?,
            },
            kind::ACTIVATE_SCRIPT => Request::ActivateScript(d.str()?),
            kind::SCRIPTS => Request::Scripts,
            kind::SIEVE_LOG => Request::SieveLog,
            other => return Err(ProtocolError(format!("unknown request kind {other}"))),
        };
        d.end()?;
        Ok(request)
    }
}

impl Reply {
    /// The reply as one frame.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Reply::Ok(text) => {
                let mut e = Encoder::new(kind::OK);
                e.str(text);
                e.finish()
            }
            Reply::Error(text) => {
                let mut e = Encoder::new(kind::ERROR);
                e.str(text);
                e.finish()
            }
            Reply::Report(r) => {
                let mut e = Encoder::new(kind::REPORT);
                e.u64(r.imported);
                e.u64(r.already_present);
                e.u64(r.mailboxes_created);
                e.u64(r.uids_kept);
                e.strs(&r.problems);
                e.strs(&r.notes);
                e.finish()
            }
            Reply::Names(names) => {
                let mut e = Encoder::new(kind::NAMES);
                e.strs(names);
                e.finish()
            }
            Reply::Listing(l) => {
                let mut e = Encoder::new(kind::LISTING_REPLY);
                e.u32(l.uidvalidity);
                e.u32(l.uidnext);
                e.u32(l.entries.len() as u32);
                for m in &l.entries {
                    e.u32(m.uid);
                    e.u8(m.flags);
                    e.i64(m.date);
                    e.strs(&m.keywords);
                }
                e.finish()
            }
            Reply::Messages(list) => {
                let mut e = Encoder::new(kind::MESSAGES);
                e.u32(list.len() as u32);
                for m in list {
                    match m {
                        Some(bytes) => {
                            e.u8(1);
                            e.bytes(bytes);
                        }
                        None => e.u8(0),
                    }
                }
                e.finish()
            }
            Reply::Scripts(list) => {
                let mut e = Encoder::new(kind::SCRIPTS_REPLY);
                e.u32(list.len() as u32);
                for s in list {
                    e.str(&s.name);
                    e.u8(u8::from(s.active));
                    e.bytes(s.source.as_bytes());
                }
                e.finish()
            }
            Reply::SieveLog(list) => {
                let mut e = Encoder::new(kind::SIEVE_LOG_REPLY);
                e.u32(list.len() as u32);
                for entry in list {
                    e.i64(entry.time);
                    e.str(&entry.script);
                    e.u32(entry.line);
                    e.str(&entry.message);
                }
                e.finish()
            }
        }
    }

    /// Decodes a frame's kind and payload (the bytes after the length).
    pub fn decode(frame: &[u8]) -> Result<Reply, ProtocolError> {
        let (&k, payload) = frame.split_first().ok_or_else(|| bad("empty frame"))?;
        let mut d = Decoder(payload);
        let reply = match k {
            kind::OK => Reply::Ok(d.str()?),
            kind::ERROR => Reply::Error(d.str()?),
            kind::REPORT => Reply::Report(ImportReport {
                imported: d.u64()?,
                already_present: d.u64()?,
                mailboxes_created: d.u64()?,
                uids_kept: d.u64()?,
                problems: d.strs()?,
                notes: d.strs()?,
            }),
            kind::NAMES => Reply::Names(d.strs()?),
            kind::LISTING_REPLY => {
                let uidvalidity = d.u32()?;
                let uidnext = d.u32()?;
                let n = d.count(17)?;
                let mut entries = Vec::with_capacity(n);
                for _ in 0..n {
                    entries.push(Entry {
                        uid: d.u32()?,
                        flags: d.u8()?,
                        date: d.i64()?,
                        keywords: d.strs()?,
                    });
                }
                Reply::Listing(Listing {
                    uidvalidity,
                    uidnext,
                    entries,
                })
            }
            kind::MESSAGES => {
                let n = d.count(1)?;
                let mut list = Vec::with_capacity(n);
                for _ in 0..n {
                    list.push(match d.u8()? {
                        0 => None,
                        _ => Some(d.bytes()?),
                    });
                }
                Reply::Messages(list)
            }
            kind::SCRIPTS_REPLY => {
                let n = d.count(7)?;
                let mut list = Vec::with_capacity(n);
                for _ in 0..n {
                    list.push(StoredScript {
                        name: d.str()?,
                        active: d.u8()? != 0,
                        source: String::from_utf8(d.bytes()?)
                            .map_err(|_| bad("a script is not UTF-8"))?,
                    });
                }
                Reply::Scripts(list)
            }
            kind::SIEVE_LOG_REPLY => {
                let n = d.count(16)?;
                let mut list = Vec::with_capacity(n);
                for _ in 0..n {
                    list.push(SieveLogEntry {
                        time: d.i64()?,
                        script: d.str()?,
                        line: d.u32()?,
                        message: d.str()?,
                    });
                }
                Reply::SieveLog(list)
            }
            other => return Err(ProtocolError(format!("unknown reply kind {other}"))),
        };
        d.end()?;
        Ok(reply)
    }
}

/// The payload length a frame header announces, refused when over [`MAX_FRAME`] or empty.
pub fn frame_len(header: [u8; 4]) -> Result<usize, ProtocolError> {
    let len = u32::from_le_bytes(header) as usize;
    if len == 0 {
        return Err(bad("empty frame"));
    }
    if len > MAX_FRAME {
        return Err(ProtocolError(format!(
            "a frame of {len} bytes is over the limit of {MAX_FRAME}"
        )));
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(r: Request) {
        let frame = r.encode();
        let len = frame_len(frame[..4].try_into().unwrap()).unwrap();
        assert_eq!(len, frame.len() - 4);
        assert_eq!(Request::decode(&frame[4..]).unwrap(), r);
    }

    #[test]
    fn requests_round_trip() {
        round_trip(Request::Hello {
            version: VERSION,
            user: "anna@example.org".into(),
        });
        round_trip(Request::SetUpUser(vec![
            ("INBOX".into(), 7),
            ("Sent".into(), 9),
        ]));
        round_trip(Request::Open {
            mailbox: "Work/Projects".into(),
            ids: Some(FolderIds {
                uidvalidity: 1_500_000_000,
                next_uid: 12,
            }),
        });
        round_trip(Request::Open {
            mailbox: "INBOX".into(),
            ids: None,
        });
        round_trip(Request::Batch(vec![
            Incoming {
                bytes: b"Subject: a\r\n\r\nbody\r\n".to_vec(),
                flags: 3,
                keywords: vec!["$Label1".into(), "Work".into()],
                date: -5,
                uid: Some(42),
            },
            Incoming {
                bytes: Vec::new(),
                flags: 0,
                keywords: Vec::new(),
                date: 1_700_000_000,
                uid: None,
            },
        ]));
        round_trip(Request::Close);
        round_trip(Request::End);
        round_trip(Request::ListMailboxes);
        round_trip(Request::Subscriptions);
        round_trip(Request::Listing("Work/Projects".into()));
        round_trip(Request::Read {
            mailbox: "INBOX".into(),
            uids: vec![3, 7, 10],
        });
        round_trip(Request::PutScript {
            name: "vacation".into(),
            source: "require \"vacation\";\r\nvacation \"Away\";\r\n".into(),
        });
        round_trip(Request::ActivateScript("vacation".into()));
        round_trip(Request::Scripts);
        round_trip(Request::SieveLog);
    }

    #[test]
    fn replies_round_trip() {
        for r in [
            Reply::Ok("pid 1 executor 0".into()),
            Reply::Error("no".into()),
            Reply::Report(ImportReport {
                imported: 5,
                already_present: 2,
                mailboxes_created: 1,
                uids_kept: 4,
                problems: vec!["x: skipped".into()],
                notes: vec![],
            }),
            Reply::Names(vec!["INBOX".into(), "Sent".into()]),
            Reply::Listing(Listing {
                uidvalidity: 9,
                uidnext: 12,
                entries: vec![Entry {
                    uid: 11,
                    flags: 2,
                    keywords: vec!["$Label1".into()],
                    date: 1_600_000_000,
                }],
            }),
            Reply::Messages(vec![Some(b"Subject: x\r\n\r\n".to_vec()), None]),
            Reply::Scripts(vec![
                StoredScript {
                    name: "vacation".into(),
                    active: true,
                    source: "require \"vacation\";\r\n".into(),
                },
                StoredScript {
                    name: "lists".into(),
                    active: false,
                    source: String::new(),
                },
            ]),
            Reply::SieveLog(vec![SieveLogEntry {
                time: 1_700_000_000,
                script: "main".into(),
                line: 3,
                message: "fileinto: \"\" is no mailbox name".into(),
            }]),
        ] {
            let frame = r.encode();
            assert_eq!(Reply::decode(&frame[4..]).unwrap(), r);
        }
    }

    /// Every truncation of a valid frame, and a forged count, is an error and never a panic
    /// or a huge allocation.
    #[test]
    fn damaged_frames_are_errors() {
        let frame = Request::Batch(vec![Incoming {
            bytes: b"Subject: a\r\n\r\n".to_vec(),
            flags: 1,
            keywords: vec!["k".into()],
            date: 1,
            uid: Some(1),
        }])
        .encode();
        for cut in 4..frame.len() {
            assert!(Request::decode(&frame[4..cut]).is_err(), "cut at {cut}");
        }
        let mut forged = vec![kind::BATCH];
        forged.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(Request::decode(&forged).is_err());
        assert!(Request::decode(b"?").is_err());
        let mut long = frame.clone();
        long.push(0);
        assert!(Request::decode(&long[4..]).is_err());
        assert!(frame_len(0u32.to_le_bytes()).is_err());
        assert!(frame_len(((MAX_FRAME + 1) as u32).to_le_bytes()).is_err());
    }
}
