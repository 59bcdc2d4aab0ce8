//! Checkpoints: an rkyv snapshot of a partition's index at a log position.
//!
//! File `index-NNNNNNNN.ckpt` (NNNNNNNN = checkpoint sequence number): a 40-byte
//! header (magic, version, position, body length, body crc32c, header crc32c) followed by
//! the body. Loading verifies both checksums and then uses rkyv's checked access, so a
//! damaged file is refused and recovery falls back to an older one.
//!
//! Body of version 1: the rkyv archive of the mail index. Version 2 adds the Sieve state as
//! a second archive: `u64 mail_len | mail archive | sieve archive`. Version 3 adds the
//! users' Sieve error logs as a third: `u64 mail_len | mail | u64 sieve_len | sieve | logs`.
//! Version 4 adds the header-search values of every mailbox (`search_fields`) as a fourth:
//! `... | u64 logs_len | logs | fields`. Version N holds N archives, each but the last
//! preceded by its length. Like segments, a checkpoint is written in the oldest version that
//! holds it, so a partition that never used Sieve and holds no mail keeps version-1
//! checkpoints that an older ringmail reads.
//!
//! The mail archive keeps its layout in every version (the header-search values are skipped
//! there), so a checkpoint of version 1 to 3 still loads; its mailboxes then have no values,
//! and recovery rebuilds them by reading each message's header once.

use std::path::{Path, PathBuf};

use rkyv::{rancor, Archive, Deserialize, Serialize};

use super::index::{Index, Loc, Mailbox};
use super::search_fields::SearchFields;
use super::sieve::Sieve;
use super::sieve_log::SieveLogs;

const MAGIC: &[u8; 8] = b"RMAILCKP";
/// Version of a checkpoint without Sieve state: the mail index archive alone.
const VERSION_MAIL: u32 = 1;
/// Version of a checkpoint with Sieve state.
pub(crate) const VERSION_SIEVE: u32 = 2;
/// Version of a checkpoint with Sieve error logs.
pub(crate) const VERSION_LOGS: u32 = 3;
/// Version of a checkpoint with header-search values; the newest this ringmail reads.
pub(crate) const VERSION: u32 = 4;
pub(crate) const HEADER: usize = 40;
/// How many checkpoint files are kept (the newest and one to fall back to).
pub(crate) const KEEP: usize = 2;

/// `index-NNNNNNNN.ckpt`
pub(crate) fn path(dir: &Path, seq: u32) -> PathBuf {
    dir.join(file_name(seq))
}

/// The file name of checkpoint `seq`.
pub(crate) fn file_name(seq: u32) -> String {
    format!("index-{seq:08}.ckpt")
}

pub(crate) fn parse_name(name: &str) -> Option<u32> {
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

/// The header-search values of one mailbox, in the version-4 section.
#[derive(Debug, Archive, Serialize, Deserialize)]
struct MailboxFields {
    user: String,
    mailbox: u64,
    fields: SearchFields,
}

/// The values of every mailbox that has messages and values (recovery rebuilds the others).
fn mailbox_fields(index: &Index) -> Vec<MailboxFields> {
    let mut out = Vec::new();
    for (user, u) in &index.users {
        let saved = |mb: &&Mailbox| !mb.messages.is_empty() && mb.fields.is_complete();
        for mb in u.mailboxes.values().filter(saved) {
            out.push(MailboxFields {
                user: user.clone(),
                mailbox: mb.id,
                fields: mb.fields.clone(),
            });
        }
    }
    out
}

/// Serializes the index at `pos` into a complete checkpoint file image.
pub(crate) fn encode(index: &Index, pos: Loc) -> Result<Vec<u8>, String> {
    let fields = mailbox_fields(index);
    // Each archive is built only if this or a later one is needed.
    let version = if !fields.is_empty() {
        VERSION
    } else if !index.sieve_log.is_empty() {
        VERSION_LOGS
    } else if !index.sieve.is_empty() {
        VERSION_SIEVE
    } else {
        VERSION_MAIL
    };
    let archive = |r: Result<rkyv::util::AlignedVec, rancor::Error>| r.map_err(|e| e.to_string());
    let mut archives = vec![archive(rkyv::to_bytes::<rancor::Error>(index))?];
    if version >= VERSION_SIEVE {
        archives.push(archive(rkyv::to_bytes::<rancor::Error>(&index.sieve))?);
    }
    if version >= VERSION_LOGS {
        archives.push(archive(rkyv::to_bytes::<rancor::Error>(&index.sieve_log))?);
    }
    if version >= VERSION {
        archives.push(archive(rkyv::to_bytes::<rancor::Error>(&fields))?);
    }
    let mut body = Vec::with_capacity(archives.iter().map(|a| 8 + a.len()).sum());
    let last = archives.len() - 1;
    for (i, a) in archives.iter().enumerate() {
        if i < last {
            body.extend_from_slice(&(a.len() as u64).to_le_bytes());
        }
        body.extend_from_slice(a);
    }
    let mut out = Vec::with_capacity(HEADER + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&version.to_le_bytes());
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
    let version = u32_at(h, 8);
    if !(VERSION_MAIL..=VERSION).contains(&version) {
        return Err(format!("unsupported checkpoint version {version}"));
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
    // Version N holds N archives: mail, sieve, logs, fields.
    let mut archives = Vec::with_capacity(version as usize);
    let mut rest = body;
    for what in ["mail", "sieve", "logs"]
        .into_iter()
        .take(version as usize - 1)
    {
        let (archive, after) = split_archive(rest, what)?;
        archives.push(archive);
        rest = after;
    }
    archives.push(rest);
    let mut archives = archives.into_iter();
    let mut index = unarchive::<Index>(archives.next().unwrap_or_default())?;
    if let Some(sieve) = archives.next() {
        index.sieve = unarchive::<Sieve>(sieve)?;
    }
    if let Some(logs) = archives.next() {
        index.sieve_log = unarchive::<SieveLogs>(logs)?;
    }
    if let Some(fields) = archives.next() {
        attach_fields(&mut index, unarchive::<Vec<MailboxFields>>(fields)?);
    }
    index.rebuild_columns();
    index.reset_reservations();
    Ok((index, pos))
}

/// Splits `u64 len | archive | rest` into the archive and the rest.
fn split_archive<'a>(body: &'a [u8], what: &str) -> Result<(&'a [u8], &'a [u8]), String> {
    let len = body
        .get(..8)
        .ok_or_else(|| format!("body shorter than its {what} length"))?;
    let len = usize::try_from(u64_at(len, 0)).map_err(|_| format!("{what} length"))?;
    let rest = &body[8..];
    if len > rest.len() {
        return Err(format!("{what} length beyond the body"));
    }
    Ok(rest.split_at(len))
}

/// Gives each mailbox its saved values; those that do not hold exactly its messages are
/// left out (recovery rebuilds them).
fn attach_fields(index: &mut Index, saved: Vec<MailboxFields>) {
    for entry in saved {
        let Some(mb) = index
            .users
            .get_mut(&entry.user)
            .and_then(|u| u.mailboxes.get_mut(&entry.mailbox))
        else {
            continue;
        };
        if entry.fields.is_complete() && entry.fields.len() == mb.messages.len() {
            mb.fields = entry.fields;
        }
    }
}

/// Checked access to one archive of a checkpoint body.
fn unarchive<T>(bytes: &[u8]) -> Result<T, String>
where
    T: rkyv::Archive,
    T::Archived: for<'a> rkyv::bytecheck::CheckBytes<rkyv::api::high::HighValidator<'a, rancor::Error>>
        + rkyv::Deserialize<T, rkyv::api::high::HighDeserializer<rancor::Error>>,
{
    // rkyv needs the archive aligned; the file image after the header is not.
    let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(bytes.len());
    aligned.extend_from_slice(bytes);
    rkyv::from_bytes::<T, rancor::Error>(&aligned).map_err(|e| e.to_string())
}
