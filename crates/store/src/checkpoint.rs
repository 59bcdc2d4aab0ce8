//! Checkpoints: an rkyv snapshot of a partition's index at a log position.
//!
//! File `index-NNNNNNNN.ckpt` (NNNNNNNN = checkpoint sequence number): a 40-byte
//! header (magic, version, position, body length, body crc32c, header crc32c) followed by
//! the rkyv archive of the index. Loading verifies both checksums and then uses rkyv's
//! checked access, so a damaged file is refused and recovery falls back to an older one.

use std::path::{Path, PathBuf};

use rkyv::rancor;

use super::index::{Index, Loc};

const MAGIC: &[u8; 8] = b"RMAILCKP";
const VERSION: u32 = 1;
pub(crate) const HEADER: usize = 40;
/// How many checkpoint files are kept (the newest and one to fall back to).
pub(crate) const KEEP: usize = 2;

/// `index-NNNNNNNN.ckpt`
pub(crate) fn path(dir: &Path, seq: u32) -> PathBuf {
    dir.join(format!("index-{seq:08}.ckpt"))
}

fn parse_name(name: &str) -> Option<u32> {
    name.strip_prefix("index-")?
        .strip_suffix(".ckpt")?
        .parse()
        .ok()
}

/// Checkpoint ids present, newest first.
pub(crate) fn list(dir: &Path) -> std::io::Result<Vec<u32>> {
    let mut ids = Vec::new();
    for e in std::fs::read_dir(dir)? {
        if let Some(id) = e?.file_name().to_str().and_then(parse_name) {
            ids.push(id);
        }
    }
    ids.sort_unstable_by(|a, b| b.cmp(a));
    Ok(ids)
}

/// Serializes the index at `pos` into a complete checkpoint file image.
pub(crate) fn encode(index: &Index, pos: Loc) -> Result<Vec<u8>, String> {
    let body = rkyv::to_bytes::<rancor::Error>(index).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(HEADER + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&pos.segment.to_le_bytes());
    out.extend_from_slice(&pos.offset.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    let hcrc = crc32c::crc32c(&out);
    out.extend_from_slice(&hcrc.to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Validates and loads a checkpoint file image.
pub(crate) fn decode(file: &[u8]) -> Result<(Index, Loc), String> {
    let h = file.get(..HEADER).ok_or("file shorter than its header")?;
    if &h[..8] != MAGIC {
        return Err("bad magic".into());
    }
    if u32_at(h, 36) != crc32c::crc32c(&h[..36]) {
        return Err("header checksum mismatch".into());
    }
    if u32_at(h, 8) != VERSION {
        return Err(format!("unsupported checkpoint version {}", u32_at(h, 8)));
    }
    let pos = Loc {
        segment: u32_at(h, 12),
        offset: u64_at(h, 16),
    };
    let len = usize::try_from(u64_at(h, 24)).map_err(|_| "length")?;
    let body = file
        .get(HEADER..)
        .filter(|b| b.len() == len)
        .ok_or("body length mismatch")?;
    if crc32c::crc32c(body) != u32_at(h, 32) {
        return Err("body checksum mismatch".into());
    }
    // rkyv needs the archive aligned; the file image after the header is not.
    let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(body.len());
    aligned.extend_from_slice(body);
    let mut index =
        rkyv::from_bytes::<Index, rancor::Error>(&aligned).map_err(|e| e.to_string())?;
    index.reset_reservations();
    Ok((index, pos))
}
