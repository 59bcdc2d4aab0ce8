//! `ringmail backup` and `ringmail restore`: a consistent copy of a running server's data
//! dir, and bringing it back into an empty one.
//!
//! The server keeps running: the backup takes no data-dir lock and writes nothing the server
//! reads. It relies on three facts of the store (docs/storage-format.md):
//!
//! * the log is append-only: a segment only grows (a failed write is cut back to its durable
//!   end), and a sealed or compacted segment never changes;
//! * a checkpoint is renamed into place only after the log up to the position it names was
//!   written, so that position lies inside the segment's length from then on;
//! * a file is deleted only by `checkpoint_now`, after a *new* checkpoint was renamed into
//!   place (retired segments, checkpoints beyond the two kept ones).
//!
//! So, per partition: hard-link the checkpoints into a staging folder inside the data dir
//! (same file system), then hard-link every segment, then list the checkpoints again. If
//! the list changed, a deletion may have happened in between and the step is retried;
//! otherwise the links hold a set in which every file a linked checkpoint refers to is
//! present. Segment lengths are taken after that, so every checkpoint position lies inside
//! the copied bytes, and every record acknowledged before the backup began (written and
//! synced before it) does too. Only the last log segment can end in a half-written record
//! (a segment is sealed before the next one is created); recovery truncates that tail when
//! the restored server starts, so nothing half-written is ever served. Bytes are then
//! copied from the links (which keep the files alive if compaction deletes them meanwhile)
//! and the links are removed.
//!
//! A manifest (`ringmail-backup.manifest`: each file's size and crc32c) is written last; a
//! backup without one is incomplete, and restore verifies every file against it.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use ringmail_runtime::lock::LOCK_NAME;

/// The manifest's file name inside a backup.
pub const MANIFEST: &str = "ringmail-backup.manifest";
const MANIFEST_HEADER: &str = "ringmail-backup 1";
/// Prefix of the staging folders made inside the data dir while a backup runs.
const STAGING_PREFIX: &str = ".ringmail-backup-";
/// Attempts at linking a partition's files between two checkpoints.
const LINK_ATTEMPTS: usize = 50;
/// Size of a segment header (`RMAILSEG` magic first); a shorter segment is half-created.
const SEGMENT_HEADER: u64 = 32;
const SEGMENT_MAGIC: &[u8; 8] = b"RMAILSEG";

/// What a backup or restore copied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyReport {
    /// Partitions copied.
    pub partitions: u64,
    /// Files copied.
    pub files: u64,
    /// Bytes copied.
    pub bytes: u64,
}

/// One file of a backup, as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    path: String,
    size: u64,
    crc: u32,
}

/// Takes a consistent copy of the data dir `data_dir` (whose server may be running) into
/// `target`, which must be missing or empty.
pub fn backup(data_dir: &Path, target: &Path) -> Result<CopyReport, String> {
    ensure_empty(target)?;
    create_private_dir(target)?;
    let inside = std::fs::canonicalize(target)
        .and_then(|t| Ok(t.starts_with(std::fs::canonicalize(data_dir)?)))
        .map_err(|e| format!("{}: {e}", target.display()))?;
    if inside {
        let _ = std::fs::remove_dir(target);
        return Err(format!(
            "{} is inside the data dir {}: put the backup elsewhere",
            target.display(),
            data_dir.display()
        ));
    }
    let staging = Staging::new(data_dir)?;
    let mut entries = Vec::new();
    let mut report = CopyReport::default();
    let mut names: Vec<_> = read_names(data_dir)?;
    names.sort();
    for name in names {
        if name == LOCK_NAME || name.starts_with(STAGING_PREFIX) || name == MANIFEST {
            continue;
        }
        let path = data_dir.join(&name);
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        if meta.is_dir() && is_partition_name(&name) {
            let files = link_partition(&path, &staging.path.join(&name))?;
            copy_partition(&name, &files, target, &mut entries)?;
            report.partitions += 1;
        } else if meta.is_dir() {
            copy_tree(&path, &name, target, &mut entries)?;
        } else if meta.is_file() {
            copy_file(&path, u64::MAX, target, &name, &mut entries)?;
        }
    }
    drop(staging);
    write_manifest(target, &entries)?;
    report.files = entries.len() as u64;
    report.bytes = entries.iter().map(|e| e.size).sum();
    Ok(report)
}

/// Restores the backup in `backup_dir` into `data_dir`, which must be missing or empty.
/// Every file is checked against the manifest; on any mismatch nothing is left behind.
pub fn restore(backup_dir: &Path, data_dir: &Path) -> Result<CopyReport, String> {
    let entries = read_manifest(backup_dir)?;
    ensure_empty(data_dir)?;
    let created = !data_dir.exists();
    create_private_dir(data_dir)?;
    let result = restore_into(backup_dir, data_dir, &entries);
    if result.is_err() {
        // The target was empty (or missing): take back everything this restore wrote.
        for name in read_names(data_dir).unwrap_or_default() {
            let p = data_dir.join(name);
            let _ = std::fs::remove_dir_all(&p).or_else(|_| std::fs::remove_file(&p));
        }
        if created {
            let _ = std::fs::remove_dir(data_dir);
        }
    }
    result
}

fn restore_into(
    backup_dir: &Path,
    data_dir: &Path,
    entries: &[Entry],
) -> Result<CopyReport, String> {
    let mut report = CopyReport::default();
    for e in entries {
        let src = backup_dir.join(&e.path);
        let dst = data_dir.join(&e.path);
        if let Some(parent) = dst.parent() {
            create_private_dir(parent)?;
        }
        let (size, crc) = copy_bytes(&src, u64::MAX, &dst)?;
        if size != e.size || crc != e.crc {
            return Err(format!(
                "{} does not match the manifest (size {size}, expected {}; crc32c {crc:08x}, \
                 expected {:08x}): the backup is damaged",
                src.display(),
                e.size,
                e.crc
            ));
        }
        report.files += 1;
        report.bytes += size;
    }
    let mut partitions: Vec<&str> = entries
        .iter()
        .filter_map(|e| e.path.split_once('/').map(|(d, _)| d))
        .filter(|d| is_partition_name(d))
        .collect();
    partitions.sort_unstable();
    partitions.dedup();
    report.partitions = partitions.len() as u64;
    for dir in std::iter::once(PathBuf::new()).chain(dirs_of(entries)) {
        sync_dir(&data_dir.join(dir))?;
    }
    Ok(report)
}

/// Every folder (relative) that holds a file of the backup, deepest last.
fn dirs_of(entries: &[Entry]) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = entries
        .iter()
        .filter_map(|e| Path::new(&e.path).parent().map(Path::to_path_buf))
        .filter(|d| !d.as_os_str().is_empty())
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

/// Hard links to a partition's files, taken between two identical checkpoint listings.
struct Linked {
    files: Vec<LinkedFile>,
}

/// One hard link in the staging folder.
struct LinkedFile {
    /// The file's name in the partition.
    name: String,
    /// The link.
    link: PathBuf,
    /// How many bytes to copy (`u64::MAX`: all).
    len: u64,
}

fn link_partition(dir: &Path, stage: &Path) -> Result<Linked, String> {
    for _ in 0..LINK_ATTEMPTS {
        if stage.exists() {
            std::fs::remove_dir_all(stage).map_err(|e| format!("{}: {e}", stage.display()))?;
        }
        create_private_dir(stage)?;
        let before = names_matching(dir, is_checkpoint_name)?;
        let Some(mut links) = link_all(dir, stage, &before)? else {
            continue;
        };
        let segments = names_matching(dir, is_segment_name)?;
        let Some(seg_links) = link_all(dir, stage, &segments)? else {
            continue;
        };
        // A file is only ever deleted after a new checkpoint appears: an unchanged listing
        // means the links form a set in which every checkpoint finds its segments.
        if names_matching(dir, is_checkpoint_name)? != before {
            continue;
        }
        // Lengths after the second listing: every linked checkpoint's position is inside.
        for mut file in seg_links {
            file.len = std::fs::metadata(&file.link)
                .map_err(|e| format!("{}: {e}", file.link.display()))?
                .len();
            links.push(file);
        }
        return Ok(Linked { files: links });
    }
    Err(format!(
        "{}: checkpoints kept changing while the backup linked the partition's files \
         ({LINK_ATTEMPTS} attempts); try again",
        dir.display()
    ))
}

/// Links each of `names` from `dir` into `stage`. `None` when one vanished meanwhile.
fn link_all(dir: &Path, stage: &Path, names: &[String]) -> Result<Option<Vec<LinkedFile>>, String> {
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let link = stage.join(name);
        match std::fs::hard_link(dir.join(name), &link) {
            Ok(()) => out.push(LinkedFile {
                name: name.clone(),
                link,
                len: u64::MAX,
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(format!(
                    "cannot hard-link {} into {} (the backup links files inside the data \
                     dir's file system): {e}",
                    dir.join(name).display(),
                    stage.display()
                ))
            }
        }
    }
    Ok(Some(out))
}

fn copy_partition(
    name: &str,
    linked: &Linked,
    target: &Path,
    entries: &mut Vec<Entry>,
) -> Result<(), String> {
    let dir = target.join(name);
    create_private_dir(&dir)?;
    for file in &linked.files {
        if is_segment_name(&file.name) && !has_segment_header(&file.link, file.len)? {
            // A segment being created right now; recovery would delete it too.
            continue;
        }
        let rel = format!("{name}/{}", file.name);
        copy_file(&file.link, file.len, target, &rel, entries)?;
    }
    sync_dir(&dir)
}

fn has_segment_header(path: &Path, len: u64) -> Result<bool, String> {
    if len < SEGMENT_HEADER {
        return Ok(false);
    }
    let mut magic = [0u8; 8];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(&magic == SEGMENT_MAGIC)
}

/// Copies a folder outside the partitions (such as `tls/`), recursively.
fn copy_tree(dir: &Path, rel: &str, target: &Path, entries: &mut Vec<Entry>) -> Result<(), String> {
    create_private_dir(&target.join(rel))?;
    let mut names = read_names(dir)?;
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let rel = format!("{rel}/{name}");
        let meta = std::fs::metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if meta.is_dir() {
            copy_tree(&path, &rel, target, entries)?;
        } else if meta.is_file() {
            copy_file(&path, u64::MAX, target, &rel, entries)?;
        }
    }
    sync_dir(&target.join(rel))
}

fn copy_file(
    src: &Path,
    limit: u64,
    target: &Path,
    rel: &str,
    entries: &mut Vec<Entry>,
) -> Result<(), String> {
    let (size, crc) = copy_bytes(src, limit, &target.join(rel))?;
    entries.push(Entry {
        path: rel.to_string(),
        size,
        crc,
    });
    Ok(())
}

/// Copies at most `limit` bytes of `src` into a new file `dst` (synced); size and crc32c.
fn copy_bytes(src: &Path, limit: u64, dst: &Path) -> Result<(u64, u32), String> {
    let input = File::open(src).map_err(|e| format!("{}: {e}", src.display()))?;
    let out = File::options()
        .write(true)
        .create_new(true)
        .open(dst)
        .map_err(|e| format!("{}: {e}", dst.display()))?;
    let mut w = CrcWriter {
        inner: io::BufWriter::with_capacity(1 << 20, out),
        crc: 0,
    };
    let size = io::copy(&mut input.take(limit), &mut w)
        .map_err(|e| format!("copying {} to {}: {e}", src.display(), dst.display()))?;
    let out = w
        .inner
        .into_inner()
        .map_err(|e| format!("{}: {}", dst.display(), e.error()))?;
    out.sync_all()
        .map_err(|e| format!("{}: {e}", dst.display()))?;
    Ok((size, w.crc))
}

/// Checksums what passes through it.
struct CrcWriter<W> {
    inner: W,
    crc: u32,
}

impl<W: Write> Write for CrcWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc = crc32c::crc32c_append(self.crc, &buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn write_manifest(target: &Path, entries: &[Entry]) -> Result<(), String> {
    let mut text = format!("{MANIFEST_HEADER}\n");
    for e in entries {
        text.push_str(&format!("{:08x} {} {}\n", e.crc, e.size, e.path));
    }
    let tmp = target.join(format!("{MANIFEST}.tmp"));
    let path = target.join(MANIFEST);
    let write = || -> io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    };
    write().map_err(|e| format!("{}: {e}", path.display()))?;
    sync_dir(target)
}

fn read_manifest(backup_dir: &Path) -> Result<Vec<Entry>, String> {
    let path = backup_dir.join(MANIFEST);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "{}: {e} (a backup without its manifest is incomplete)",
            path.display()
        )
    })?;
    let mut lines = text.lines();
    if lines.next() != Some(MANIFEST_HEADER) {
        return Err(format!(
            "{} is not a ringmail backup manifest",
            path.display()
        ));
    }
    lines
        .enumerate()
        .map(|(i, line)| {
            parse_entry(line).ok_or_else(|| {
                format!(
                    "{}:{}: damaged manifest line {line:?}",
                    path.display(),
                    i + 2
                )
            })
        })
        .collect()
}

fn parse_entry(line: &str) -> Option<Entry> {
    let mut parts = line.splitn(3, ' ');
    let crc = u32::from_str_radix(parts.next()?, 16).ok()?;
    let size = parts.next()?.parse().ok()?;
    let path = parts.next()?.to_string();
    // Only plain relative paths: a manifest must not write outside the target.
    let safe = !path.is_empty()
        && Path::new(&path)
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
    safe.then_some(Entry { path, size, crc })
}

/// The staging folder inside the data dir; removed (with its links) when dropped.
struct Staging {
    path: PathBuf,
}

impl Staging {
    fn new(data_dir: &Path) -> Result<Staging, String> {
        let path = data_dir.join(format!(
            "{STAGING_PREFIX}{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        create_private_dir(&path)?;
        Ok(Staging { path })
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn ensure_empty(dir: &Path) -> Result<(), String> {
    match std::fs::read_dir(dir) {
        Ok(mut it) => match it.next() {
            None => Ok(()),
            Some(_) => Err(format!(
                "{} is not empty: give an empty or new directory",
                dir.display()
            )),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("{}: {e}", dir.display())),
    }
}

fn create_private_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))
}

fn sync_dir(dir: &Path) -> Result<(), String> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("cannot sync {}: {e}", dir.display()))
}

fn read_names(dir: &Path) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let e = e.map_err(|e| format!("{}: {e}", dir.display()))?;
        match e.file_name().into_string() {
            Ok(name) => out.push(name),
            Err(name) => {
                return Err(format!(
                    "{}: file name {name:?} is not UTF-8",
                    dir.display()
                ))
            }
        }
    }
    Ok(out)
}

fn names_matching(dir: &Path, keep: fn(&str) -> bool) -> Result<Vec<String>, String> {
    let mut names: Vec<String> = read_names(dir)?.into_iter().filter(|n| keep(n)).collect();
    names.sort();
    Ok(names)
}

fn numbered(name: &str, prefix: &str, suffix: &str) -> bool {
    name.strip_prefix(prefix)
        .and_then(|n| n.strip_suffix(suffix))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn is_partition_name(name: &str) -> bool {
    numbered(name, "p-", "")
}

fn is_segment_name(name: &str) -> bool {
    numbered(name, "seg-", ".log")
}

fn is_checkpoint_name(name: &str) -> bool {
    numbered(name, "index-", ".ckpt")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_paths_stay_inside_the_target() {
        assert!(parse_entry("0000002a 7 p-0001/seg-00000001.log").is_some());
        assert!(parse_entry("0000002a 7 ../etc/passwd").is_none());
        assert!(parse_entry("0000002a 7 /etc/passwd").is_none());
        assert!(parse_entry("zz 7 users").is_none());
        assert!(parse_entry("0000002a").is_none());
    }

    #[test]
    fn file_names() {
        assert!(is_partition_name("p-0042"));
        assert!(!is_partition_name("p-"));
        assert!(is_segment_name("seg-00000001.log"));
        assert!(!is_segment_name("seg-00000001.log.damaged-40"));
        assert!(is_checkpoint_name("index-00000002.ckpt"));
        assert!(!is_checkpoint_name("index-00000002.ckpt.tmp-1"));
    }
}
