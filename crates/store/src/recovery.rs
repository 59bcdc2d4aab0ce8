//! Opening a partition: newest valid checkpoint, then replay of the log after it.
//!
//! A torn or garbage tail of the active (last) log segment is what a crash mid-write leaves:
//! it is truncated with a warning. Damage anywhere else — a sealed segment, a missing
//! segment — stops the partition with an error that names `ringmail check --repair`.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::rc::Rc;

use glommio::io::OpenOptions;
use tracing::{info, warn};

use super::checkpoint;
use super::commit::Pending;
use super::error::{Result, StoreError};
use super::index::{Index, Loc};
use super::partition::now;
use super::record;
use super::search_fields::SearchFields;
use super::segment::{
    list_segments, read_header, segment_path, HeaderError, Scanned, Scanner, SegmentHeader,
    SegmentKind, SEGMENT_HEADER,
};
use super::types::Options;
use super::writer::{create_segment, Background, Inner, LogState};
use ringmail_mime::search_header::header_block;

fn corrupt(msg: String) -> StoreError {
    StoreError::Corrupt(msg)
}

/// Loads the newest checkpoint that validates, warning about each one that does not.
fn load_checkpoint(dir: &Path) -> Result<Option<(Index, Loc)>> {
    for id in checkpoint::list(dir)? {
        let path = checkpoint::path(dir, id);
        let loaded = std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| checkpoint::decode(&b));
        match loaded {
            Ok(c) => return Ok(Some(c)),
            Err(e) => warn!(path = %path.display(), error = %e, "ignoring damaged checkpoint"),
        }
    }
    Ok(None)
}

/// Replays one log segment from `from`. Returns the end of its last good record.
fn replay_segment(index: &mut Index, dir: &Path, id: u32, from: u64, is_last: bool) -> Result<u64> {
    let path = segment_path(dir, id);
    let mut scan = Scanner::open(&path, from)?;
    if from > scan.file_len() {
        return Err(corrupt(format!(
            "{} is shorter ({} bytes) than the checkpoint position {from}; run `ringmail check --repair`",
            path.display(),
            scan.file_len()
        )));
    }
    loop {
        let (pos, reason) = match scan.next_record()? {
            Scanned::End => return Ok(scan.file_len()),
            Scanned::Record { pos, kind } => match record::decode(kind, &scan.payload) {
                Ok(rec) => {
                    // A record that conflicts with the state changed nothing when it was
                    // first applied either; skipping it again is the same outcome.
                    let _ = index.apply(
                        &rec,
                        Loc {
                            segment: id,
                            offset: pos,
                        },
                    );
                    continue;
                }
                Err(e) => (pos, e.to_string()),
            },
            Scanned::Bad { pos, reason } => (pos, reason),
        };
        if !is_last {
            return Err(corrupt(format!(
                "sealed segment {} is damaged at offset {pos} ({reason}); run `ringmail check --repair`",
                path.display()
            )));
        }
        let cut = scan.file_len() - pos;
        warn!(
            segment = %path.display(),
            offset = pos,
            bytes = cut,
            reason = %reason,
            "truncating {cut} bytes of torn or garbage tail of the active segment"
        );
        let f = std::fs::OpenOptions::new().write(true).open(&path)?;
        f.set_len(pos)?;
        f.sync_all()?;
        return Ok(pos);
    }
}

/// Bytes read first to find a message's header; most headers fit.
const HEADER_PREFIX: usize = 64 * 1024;

/// Fills the header-search values of the mailboxes the checkpoint had none for (one written
/// by an older ringmail), by reading each message's header once. Runs before the replay,
/// which appends to them.
fn rebuild_search_fields(index: &mut Index, dir: &Path) -> Result<()> {
    use std::os::unix::fs::FileExt;
    let mut files: HashMap<u32, std::fs::File> = HashMap::new();
    let mut rebuilt = 0usize;
    for u in index.users.values_mut() {
        for mb in u.mailboxes.values_mut() {
            if mb.fields.is_complete() && mb.fields.len() == mb.messages.len() {
                continue;
            }
            let mut fields = SearchFields::new();
            let mut buf = Vec::new();
            for m in &mb.messages {
                let file = match files.entry(m.segment) {
                    std::collections::hash_map::Entry::Occupied(f) => f.into_mut(),
                    std::collections::hash_map::Entry::Vacant(v) => {
                        v.insert(std::fs::File::open(segment_path(dir, m.segment))?)
                    }
                };
                let size = m.size as usize;
                buf.resize(size.min(HEADER_PREFIX), 0);
                file.read_exact_at(&mut buf, u64::from(m.offset))?;
                if buf.len() < size && header_block(&buf).is_none() {
                    buf.resize(size, 0);
                    file.read_exact_at(&mut buf, u64::from(m.offset))?;
                }
                fields.push_message(&buf);
            }
            rebuilt += mb.messages.len();
            mb.fields = fields;
        }
    }
    if rebuilt > 0 {
        info!(
            messages = rebuilt,
            "rebuilt header-search values the checkpoint did not hold"
        );
    }
    Ok(())
}

pub(crate) async fn open(dir: &Path, opts: Options) -> Result<Inner> {
    if super::handover::is_moved(dir) {
        return Err(StoreError::Moved);
    }
    std::fs::create_dir_all(dir)?;
    // Leftovers of checkpoints that were being written when the process stopped.
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if e.file_name()
            .to_str()
            .is_some_and(|n| n.contains(".ckpt.tmp"))
        {
            let _ = std::fs::remove_file(e.path());
        }
    }
    let mut log_ids = Vec::new();
    let mut log_versions = HashMap::new();
    let mut compacted = Vec::new();
    let all = list_segments(dir)?;
    let max_id = all.last().copied().unwrap_or(0);
    for &id in &all {
        let path = segment_path(dir, id);
        match read_header(&path)? {
            Ok(SegmentHeader {
                kind: SegmentKind::Log,
                version,
                ..
            }) => {
                log_ids.push(id);
                log_versions.insert(id, version);
            }
            Ok(SegmentHeader {
                kind: SegmentKind::Compacted,
                ..
            }) => compacted.push(id),
            // Intact but newer: never mistake it for a half-created file and remove it.
            Err(e @ HeaderError::Newer(_)) => {
                return Err(corrupt(format!(
                    "segment {}: {e}; upgrade ringmail to open this data dir",
                    path.display()
                )))
            }
            Err(reason) if id == max_id => {
                // A crash while a new segment was being created leaves it headerless.
                warn!(segment = %path.display(), %reason, "removing half-created segment");
                std::fs::remove_file(&path)?;
            }
            Err(reason) => {
                return Err(corrupt(format!(
                    "segment {} has a bad header ({reason}); run `ringmail check --repair`",
                    path.display()
                )))
            }
        }
    }

    let loaded = load_checkpoint(dir)?;
    let last_checkpoint = loaded.as_ref().map(|c| c.1);
    let (mut index, start) = match loaded {
        Some((index, pos)) => {
            if !log_ids.contains(&pos.segment) {
                return Err(corrupt(format!(
                    "checkpoint refers to missing segment {}; run `ringmail check --repair`",
                    pos.segment
                )));
            }
            (index, pos)
        }
        None => {
            // Full replay is only right when no segment was ever removed by compaction.
            let complete = log_ids.first().is_none_or(|&f| f == 1) && compacted.is_empty();
            let contiguous = log_ids.windows(2).all(|w| w[1] == w[0] + 1);
            if !complete || !contiguous {
                return Err(corrupt(
                    "no valid checkpoint and the log is incomplete (compacted); run `ringmail check --repair`"
                        .into(),
                ));
            }
            (
                Index::new(now()),
                Loc {
                    segment: log_ids.first().copied().unwrap_or(1),
                    offset: SEGMENT_HEADER,
                },
            )
        }
    };

    rebuild_search_fields(&mut index, dir)?;

    let mut active_end = SEGMENT_HEADER;
    let last = log_ids.last().copied();
    for &id in log_ids.iter().filter(|&&id| id >= start.segment) {
        let from = if id == start.segment {
            start.offset
        } else {
            SEGMENT_HEADER
        };
        active_end = replay_segment(&mut index, dir, id, from, Some(id) == last)?;
    }
    index.reset_reservations();

    // Compacted segments no entry refers to are leftovers of an interrupted compaction.
    let referenced: HashSet<u32> = index
        .users
        .values()
        .flat_map(|u| u.mailboxes.values())
        .flat_map(|m| m.messages.iter().map(|e| e.segment))
        .collect();
    let mut next_segment_id = max_id + 1;
    for id in compacted.iter().copied() {
        if !referenced.contains(&id) {
            info!(segment = id, "removing unreferenced compacted segment");
            std::fs::remove_file(segment_path(dir, id))?;
        }
    }

    let (active_id, active_version) = match last {
        Some(id) => (id, log_versions.get(&id).copied().unwrap_or(1)),
        None => {
            let id = next_segment_id;
            next_segment_id += 1;
            // The oldest format: a partition that never holds newer records stays readable
            // by an older ringmail.
            create_segment(dir, id, SegmentKind::Log, 1)
                .await?
                .close()
                .await?;
            active_end = SEGMENT_HEADER;
            (id, 1)
        }
    };

    let mut files = HashMap::new();
    for id in list_segments(dir)? {
        let f = OpenOptions::new()
            .read(true)
            .write(id == active_id)
            .buffered_open(segment_path(dir, id))
            .await?;
        files.insert(id, Rc::new(f));
    }
    let active = files
        .get(&active_id)
        .cloned()
        .ok_or_else(|| corrupt("active segment vanished".into()))?;

    Ok(Inner {
        dir: dir.to_path_buf(),
        opts,
        index: RefCell::new(index),
        log: RefCell::new(LogState {
            active_id,
            active,
            end: active_end,
            next_segment_id,
            flushing: false,
            dirty_tail: false,
            version: active_version,
        }),
        pending: RefCell::new(Pending::default()),
        frozen: Cell::new(false),
        moved: Cell::new(false),
        moved_waiters: RefCell::default(),
        replication: RefCell::new(None),
        next_waiter: Cell::new(0),
        files: RefCell::new(files),
        maps: Default::default(),
        bg: RefCell::new(Background {
            last_checkpoint,
            next_checkpoint_seq: checkpoint::list(dir)?.first().copied().unwrap_or(0),
            ..Background::default()
        }),
        closed: Cell::new(false),
        abandoned: Cell::new(false),
        stats: Default::default(),
    })
}
