//! Segment files: the 32-byte header and a sequential scanner over framed records.
//!
//! Recovery and `check` read segments with plain blocking reads: both run before (or
//! outside) serving, and reading sequentially through a buffer is what they need.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::record::{frame_crc, FrameHeader, FRAME_HEADER, MAX_PAYLOAD};

/// Size of the segment header; the first record starts here.
pub(crate) const SEGMENT_HEADER: u64 = 32;
const MAGIC: &[u8; 8] = b"RMAILSEG";
/// The newest record format this ringmail reads and writes. A segment header carries the
/// oldest format that can read the segment: 1 for the record kinds 1–11, 2 once a segment
/// may hold RAISE_UIDNEXT (kind 12), 3 once it may hold the Sieve records (kinds 13–17),
/// 4 once it may hold a Sieve error log entry (kind 18).
/// Keeping the oldest format a segment needs lets an older ringmail still open a data dir
/// that never used the newer records.
pub const FORMAT_VERSION: u32 = 4;
/// The oldest record format this ringmail still reads.
pub const OLDEST_FORMAT_VERSION: u32 = 1;

/// What a segment holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SegmentKind {
    /// Part of the log: replayed in id order.
    Log,
    /// Output of compaction: message bodies referenced by a checkpoint, never replayed.
    Compacted,
}

/// A parsed segment header.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SegmentHeader {
    pub id: u32,
    pub kind: SegmentKind,
    /// Record format of the segment (see [`FORMAT_VERSION`]).
    pub version: u32,
}

/// Why a segment header was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeaderError {
    /// Not a complete, intact header: torn, garbage, or a file that was being created.
    Invalid(String),
    /// An intact header of a format newer than this ringmail reads. The segment is not
    /// damaged and must never be removed or "repaired": a newer ringmail wrote it.
    Newer(u32),
}

impl std::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderError::Invalid(reason) => f.write_str(reason),
            HeaderError::Newer(v) => write!(
                f,
                "format version {v} was written by a newer ringmail (this one reads up to {FORMAT_VERSION})"
            ),
        }
    }
}

impl SegmentHeader {
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(SEGMENT_HEADER as usize);
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&self.version.to_le_bytes());
        b.push(match self.kind {
            SegmentKind::Log => 0,
            SegmentKind::Compacted => 1,
        });
        b.extend_from_slice(&[0u8; 3]);
        b.extend_from_slice(&self.id.to_le_bytes());
        b.extend_from_slice(&[0u8; 8]);
        let crc = crc32c::crc32c(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Result<SegmentHeader, HeaderError> {
        let invalid = |s: &str| HeaderError::Invalid(s.to_string());
        let b = b
            .get(..SEGMENT_HEADER as usize)
            .ok_or_else(|| invalid("short header"))?;
        if &b[..8] != MAGIC {
            return Err(invalid("bad magic"));
        }
        let crc = u32::from_le_bytes([b[28], b[29], b[30], b[31]]);
        if crc != crc32c::crc32c(&b[..28]) {
            return Err(invalid("header checksum mismatch"));
        }
        let version = u32::from_le_bytes([b[8], b[9], b[10], b[11]]);
        if version > FORMAT_VERSION {
            return Err(HeaderError::Newer(version));
        }
        if version < OLDEST_FORMAT_VERSION {
            return Err(invalid(&format!("unsupported format version {version}")));
        }
        let kind = match b[12] {
            0 => SegmentKind::Log,
            1 => SegmentKind::Compacted,
            k => return Err(invalid(&format!("unknown segment kind {k}"))),
        };
        let id = u32::from_le_bytes([b[16], b[17], b[18], b[19]]);
        Ok(SegmentHeader { id, kind, version })
    }
}

/// `seg-NNNNNNNN.log`
pub(crate) fn segment_path(dir: &Path, id: u32) -> PathBuf {
    dir.join(segment_name(id))
}

/// The file name of segment `id`.
pub(crate) fn segment_name(id: u32) -> String {
    format!("seg-{id:08}.log")
}

/// Parses `seg-NNNNNNNN.log` into its id.
pub(crate) fn parse_segment_name(name: &str) -> Option<u32> {
    name.strip_prefix("seg-")?
        .strip_suffix(".log")?
        .parse()
        .ok()
}

/// Segment ids present in a partition directory, ascending.
pub(crate) fn list_segments(dir: &Path) -> std::io::Result<Vec<u32>> {
    let mut ids = Vec::new();
    for e in std::fs::read_dir(dir)? {
        if let Some(id) = e?.file_name().to_str().and_then(parse_segment_name) {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// Reads a segment's header.
pub(crate) fn read_header(path: &Path) -> std::io::Result<Result<SegmentHeader, HeaderError>> {
    let mut f = File::open(path)?;
    let mut b = Vec::with_capacity(SEGMENT_HEADER as usize);
    f.by_ref().take(SEGMENT_HEADER).read_to_end(&mut b)?;
    Ok(SegmentHeader::decode(&b))
}

/// One step of a scan.
#[derive(Debug)]
pub(crate) enum Scanned {
    /// A record whose checksum matched, starting at `pos`.
    Record { pos: u64, kind: u8 },
    /// Clean end of the file.
    End,
    /// Damage at `pos`: a torn frame, an impossible length or a checksum mismatch.
    Bad { pos: u64, reason: String },
}

/// Reads framed records one after another, verifying each checksum.
pub(crate) struct Scanner {
    file: BufReader<File>,
    pos: u64,
    len: u64,
    /// Payload of the last record returned.
    pub payload: Vec<u8>,
}

impl Scanner {
    /// Starts scanning `path` at byte `from` (at least the header size).
    pub fn open(path: &Path, from: u64) -> std::io::Result<Scanner> {
        let mut f = File::open(path)?;
        let len = f.metadata()?.len();
        let from = from.max(SEGMENT_HEADER);
        f.seek(SeekFrom::Start(from))?;
        Ok(Scanner {
            file: BufReader::with_capacity(1 << 20, f),
            pos: from,
            len,
            payload: Vec::new(),
        })
    }

    /// Length of the file.
    pub fn file_len(&self) -> u64 {
        self.len
    }

    /// Reads the next record into `self.payload`.
    pub fn next_record(&mut self) -> std::io::Result<Scanned> {
        let pos = self.pos;
        if pos >= self.len {
            return Ok(Scanned::End);
        }
        let left = self.len - pos;
        if left < FRAME_HEADER as u64 {
            return Ok(Scanned::Bad {
                pos,
                reason: format!("torn frame header ({left} bytes)"),
            });
        }
        let mut h = [0u8; FRAME_HEADER];
        self.file.read_exact(&mut h)?;
        let h = FrameHeader::parse(&h);
        if h.payload_len > MAX_PAYLOAD || u64::from(h.payload_len) > left - FRAME_HEADER as u64 {
            let reason = if h.payload_len > MAX_PAYLOAD {
                format!("impossible record length {}", h.payload_len)
            } else {
                format!("torn record (length {} past end of file)", h.payload_len)
            };
            return Ok(Scanned::Bad { pos, reason });
        }
        self.payload.clear();
        self.payload.resize(h.payload_len as usize, 0);
        self.file.read_exact(&mut self.payload)?;
        if frame_crc(h.kind, &self.payload) != h.crc {
            return Ok(Scanned::Bad {
                pos,
                reason: "checksum mismatch".into(),
            });
        }
        self.pos = pos + FRAME_HEADER as u64 + u64::from(h.payload_len);
        Ok(Scanned::Record { pos, kind: h.kind })
    }
}
