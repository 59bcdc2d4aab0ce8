//! `ringmail check [--repair]`: verifies every record's checksum and the index against the
//! log, per partition. With repair, a damaged segment is cut at its first bad record after
//! the damaged tail is copied aside to `<segment>.damaged-<offset>`, and checkpoints that no
//! longer match the log are moved aside so that recovery rebuilds from what remains.
//!
//! Runs with blocking file I/O on the caller's thread, with the partition closed.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::checkpoint;
use super::index::{Index, Loc};
use super::record::{self, kind, Record, FRAME_HEADER};
use super::segment::{
    list_segments, read_header, segment_path, HeaderError, Scanned, Scanner, SegmentKind,
};

/// Damage found in a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// Offset of the first bad record.
    pub offset: u64,
    /// What was wrong.
    pub reason: String,
}

/// Result of checking one segment.
#[derive(Debug, Clone)]
pub struct SegmentReport {
    /// Segment file name.
    pub name: String,
    /// Records whose checksum matched.
    pub records: u64,
    /// File length.
    pub bytes: u64,
    /// The first damage, if any.
    pub damage: Option<Damage>,
    /// Where the damaged tail was copied to, when repaired.
    pub moved_aside: Option<PathBuf>,
}

/// Result of checking one partition directory.
#[derive(Debug, Clone, Default)]
pub struct PartitionReport {
    /// The partition directory.
    pub dir: PathBuf,
    /// Per segment, in id order.
    pub segments: Vec<SegmentReport>,
    /// The checkpoint the index was verified from (None: full replay).
    pub checkpoint: Option<String>,
    /// Checkpoints that failed validation or no longer match the log.
    pub bad_checkpoints: Vec<String>,
    /// Index entries that do not point at an append record in the log, and Sieve state
    /// that breaks its rules (an active script that does not exist, limits exceeded).
    pub index_problems: Vec<String>,
    /// Messages in the verified index.
    pub messages: u64,
    /// What repair changed.
    pub repairs: Vec<String>,
}

impl PartitionReport {
    /// True when nothing is wrong (before repair).
    pub fn is_clean(&self) -> bool {
        self.segments.iter().all(|s| s.damage.is_none())
            && self.bad_checkpoints.is_empty()
            && self.index_problems.is_empty()
    }
}

/// Result of `check` over a data directory or a single partition.
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    /// One entry per partition.
    pub partitions: Vec<PartitionReport>,
}

impl CheckReport {
    /// True when every partition is clean.
    pub fn is_clean(&self) -> bool {
        self.partitions.iter().all(PartitionReport::is_clean)
    }
}

/// Checks `dir`: a data directory holding `p-NNNN` partitions (and `p-NNNN.replica`
/// copies, which are logs like a partition's), or one partition directory. A move's
/// `p-NNNN.incoming` copy is skipped: unfinished by nature, it is not served and the next
/// attempt replaces it.
pub fn check(dir: &Path, repair: bool) -> io::Result<CheckReport> {
    let mut parts: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("p-") && !n.ends_with(".incoming"))
        })
        .collect();
    parts.sort();
    if parts.is_empty() {
        parts.push(dir.to_path_buf());
    }
    let partitions = parts
        .iter()
        .map(|p| check_partition(p, repair))
        .collect::<io::Result<_>>()?;
    Ok(CheckReport { partitions })
}

/// Body locations of every append record: (segment, body offset, body length).
type Bodies = HashSet<(u32, u32, u32)>;

fn scan_segment(dir: &Path, id: u32, bodies: &mut Bodies) -> io::Result<SegmentReport> {
    let path = segment_path(dir, id);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let bytes = std::fs::metadata(&path)?.len();
    let mut report = SegmentReport {
        name,
        records: 0,
        bytes,
        damage: None,
        moved_aside: None,
    };
    if let Err(e) = read_header(&path)? {
        report.damage = Some(Damage {
            offset: 0,
            reason: e.to_string(),
        });
        return Ok(report);
    }
    let mut scan = Scanner::open(&path, 0)?;
    loop {
        match scan.next_record()? {
            Scanned::End => return Ok(report),
            Scanned::Record { pos, kind: k } => match record::decode(k, &scan.payload) {
                Ok(rec) => {
                    report.records += 1;
                    let body = match (k, &rec) {
                        (kind::APPEND, Record::Append(a)) => Some((a.body_at, a.body_len)),
                        (
                            kind::BODY,
                            Record::Body {
                                body_at, body_len, ..
                            },
                        ) => Some((*body_at, *body_len)),
                        _ => None,
                    };
                    if let Some((body_at, len)) = body {
                        let at = pos + FRAME_HEADER as u64 + body_at as u64;
                        if let Ok(at) = u32::try_from(at) {
                            bodies.insert((id, at, len));
                        }
                    }
                }
                Err(e) => {
                    report.damage = Some(Damage {
                        offset: pos,
                        reason: e.to_string(),
                    });
                    return Ok(report);
                }
            },
            Scanned::Bad { pos, reason } => {
                report.damage = Some(Damage {
                    offset: pos,
                    reason,
                });
                return Ok(report);
            }
        }
    }
}

/// Copies `path[offset..]` to `<path>.damaged-<offset>` and truncates `path` at `offset`.
fn cut_aside(path: &Path, offset: u64) -> io::Result<PathBuf> {
    let aside = PathBuf::from(format!("{}.damaged-{offset}", path.display()));
    let mut src = File::open(path)?;
    src.seek(SeekFrom::Start(offset))?;
    let mut tail = Vec::new();
    src.read_to_end(&mut tail)?;
    let mut out = File::create(&aside)?;
    out.write_all(&tail)?;
    out.sync_all()?;
    let f = std::fs::OpenOptions::new().write(true).open(path)?;
    f.set_len(offset)?;
    f.sync_all()?;
    Ok(aside)
}

/// Rebuilds the index from `ckpt` (or from scratch) and the log after it, read-only.
fn rebuild(dir: &Path, log_ids: &[u32], start: Option<(Index, Loc)>) -> io::Result<Index> {
    let (mut index, start) = start.unwrap_or_else(|| {
        (
            Index::new(0),
            Loc {
                segment: 0,
                offset: 0,
            },
        )
    });
    for &id in log_ids.iter().filter(|&&id| id >= start.segment) {
        let from = if id == start.segment { start.offset } else { 0 };
        let mut scan = Scanner::open(&segment_path(dir, id), from)?;
        while let Scanned::Record { pos, kind } = scan.next_record()? {
            let Ok(rec) = record::decode(kind, &scan.payload) else {
                break;
            };
            let _ = index.apply(
                &rec,
                Loc {
                    segment: id,
                    offset: pos,
                },
            );
        }
    }
    Ok(index)
}

fn check_partition(dir: &Path, repair: bool) -> io::Result<PartitionReport> {
    let mut report = PartitionReport {
        dir: dir.to_path_buf(),
        ..PartitionReport::default()
    };
    let ids = list_segments(dir)?;
    // A segment of a newer format is a newer ringmail's data, not damage: this one can
    // neither verify the partition nor repair it without destroying mail.
    let newer = ids.iter().any(|&id| {
        matches!(
            read_header(&segment_path(dir, id)),
            Ok(Err(HeaderError::Newer(_)))
        )
    });
    let repair = repair && !newer;
    let mut bodies = Bodies::new();
    let mut log_ids = Vec::new();
    let mut lengths = std::collections::HashMap::new();
    for &id in &ids {
        let mut seg = scan_segment(dir, id, &mut bodies)?;
        let path = segment_path(dir, id);
        if let Ok(Ok(h)) = read_header(&path) {
            if h.kind == SegmentKind::Log {
                log_ids.push(id);
            }
        }
        let mut len = seg.bytes;
        if let (true, Some(d)) = (repair, &seg.damage) {
            if d.offset == 0 {
                let aside = cut_aside(&path, 0)?;
                std::fs::remove_file(&path)?;
                report.repairs.push(format!(
                    "{}: bad header, moved to {}",
                    seg.name,
                    aside.display()
                ));
                seg.moved_aside = Some(aside);
                len = 0;
            } else {
                let aside = cut_aside(&path, d.offset)?;
                report.repairs.push(format!(
                    "{}: truncated at {} ({}), tail saved in {}",
                    seg.name,
                    d.offset,
                    d.reason,
                    aside.display()
                ));
                seg.moved_aside = Some(aside);
                len = d.offset;
            }
        }
        lengths.insert(id, len);
        report.segments.push(seg);
    }
    if newer {
        return Ok(report);
    }
    if repair {
        log_ids.retain(|id| lengths.get(id).is_some_and(|&l| l > 0));
    }

    // Verify the index: newest checkpoint that validates and matches the log, then replay.
    let mut start = None;
    for id in checkpoint::list(dir)? {
        let path = checkpoint::path(dir, id);
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let loaded = std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| checkpoint::decode(&b))
            .and_then(|(idx, pos)| match lengths.get(&pos.segment) {
                Some(&l) if pos.offset <= l && log_ids.contains(&pos.segment) => Ok((idx, pos)),
                _ => Err("position beyond the log".to_string()),
            });
        match loaded {
            Ok(c) if start.is_none() => {
                report.checkpoint = Some(name);
                start = Some(c);
            }
            Ok(_) => {}
            Err(e) => {
                report.bad_checkpoints.push(format!("{name}: {e}"));
                if repair {
                    let aside = path.with_extension("ckpt.damaged");
                    std::fs::rename(&path, &aside)?;
                    report
                        .repairs
                        .push(format!("{name}: moved to {}", aside.display()));
                }
            }
        }
    }
    let index = rebuild(dir, &log_ids, start)?;
    report.index_problems.extend(index.sieve.problems());
    report.index_problems.extend(index.sieve_log.problems());
    for (user, u) in &index.users {
        for mb in u.mailboxes.values() {
            for m in &mb.messages {
                report.messages += 1;
                if !bodies.contains(&(m.segment, m.offset, m.size)) {
                    report.index_problems.push(format!(
                        "{user}/{} uid {}: no append record at segment {} offset {}",
                        mb.name, m.uid, m.segment, m.offset
                    ));
                }
            }
        }
    }
    Ok(report)
}
