//! The replication RPCs' bodies: the request header every kind starts with, log ends,
//! file lists with checksums and chunks, big-endian.

use super::*;

/// Every request starts with `p u32 | epoch u64 | owner_len u16 | owner`, big-endian.
pub(super) fn request(p: u32, epoch: u64, owner: &str, body_len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(14 + owner.len() + body_len);
    out.extend_from_slice(&p.to_be_bytes());
    out.extend_from_slice(&epoch.to_be_bytes());
    out.extend_from_slice(&(owner.len() as u16).to_be_bytes());
    out.extend_from_slice(owner.as_bytes());
    out
}

pub(super) struct Header<'a> {
    pub(super) p: u32,
    pub(super) epoch: u64,
    pub(super) owner: &'a str,
    pub(super) body: &'a [u8],
}

pub(super) fn parse_request(b: &[u8]) -> Option<Header<'_>> {
    let p = u32::from_be_bytes(b.get(0..4)?.try_into().ok()?);
    let epoch = u64::from_be_bytes(b.get(4..12)?.try_into().ok()?);
    let len = u16::from_be_bytes(b.get(12..14)?.try_into().ok()?) as usize;
    let owner = std::str::from_utf8(b.get(14..14 + len)?).ok()?;
    Some(Header {
        p,
        epoch,
        owner,
        body: b.get(14 + len..)?,
    })
}

pub(super) fn encode_end(end: Option<LogEnd>) -> Vec<u8> {
    let (segment, offset) = end.map_or((u32::MAX, 0), |e| (e.segment, e.offset));
    let mut out = segment.to_be_bytes().to_vec();
    out.extend_from_slice(&offset.to_be_bytes());
    out
}

pub(super) fn decode_end(b: &[u8]) -> Option<Option<LogEnd>> {
    let segment = u32::from_be_bytes(b.get(0..4)?.try_into().ok()?);
    let offset = u64::from_be_bytes(b.get(4..12)?.try_into().ok()?);
    Some((segment != u32::MAX).then_some(LogEnd { segment, offset }))
}

/// `n u32, n × (name_len u16, name, len u64, crc u32)`.
pub(super) fn encode_files(files: &[ReplicaFile]) -> Vec<u8> {
    let mut out = (files.len() as u32).to_be_bytes().to_vec();
    for f in files {
        out.extend_from_slice(&(f.name.len() as u16).to_be_bytes());
        out.extend_from_slice(f.name.as_bytes());
        out.extend_from_slice(&f.len.to_be_bytes());
        out.extend_from_slice(&f.crc.to_be_bytes());
    }
    out
}

pub(super) fn decode_files(b: &[u8]) -> Option<Vec<ReplicaFile>> {
    let n = u32::from_be_bytes(b.get(0..4)?.try_into().ok()?) as usize;
    let mut at = 4;
    let mut out = Vec::with_capacity(n.min(4096));
    for _ in 0..n {
        let len = u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?) as usize;
        let name = std::str::from_utf8(b.get(at + 2..at + 2 + len)?).ok()?;
        at += 2 + len;
        let flen = u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?);
        let crc = u32::from_be_bytes(b.get(at + 8..at + 12)?.try_into().ok()?);
        at += 12;
        out.push(ReplicaFile {
            name: name.to_string(),
            len: flen,
            crc,
        });
    }
    Some(out)
}

/// `offset u64 | crc u32 | name_len u16 | name | data`.
pub(super) fn encode_chunk(out: &mut Vec<u8>, c: &Chunk<'_>) {
    out.extend_from_slice(&c.offset.to_be_bytes());
    out.extend_from_slice(&c.crc.to_be_bytes());
    out.extend_from_slice(&(c.name.len() as u16).to_be_bytes());
    out.extend_from_slice(c.name.as_bytes());
    out.extend_from_slice(c.data);
}

pub(super) fn decode_chunk(b: &[u8]) -> Option<Chunk<'_>> {
    let offset = u64::from_be_bytes(b.get(0..8)?.try_into().ok()?);
    let crc = u32::from_be_bytes(b.get(8..12)?.try_into().ok()?);
    let len = u16::from_be_bytes(b.get(12..14)?.try_into().ok()?) as usize;
    let name = std::str::from_utf8(b.get(14..14 + len)?).ok()?;
    Some(Chunk {
        name,
        offset,
        data: b.get(14 + len..)?,
        crc,
    })
}
