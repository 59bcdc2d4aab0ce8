//! The receiving end of a live move: the files of a partition another node hands over,
//! written chunk by chunk into a directory beside the partition's (`p-NNNN.incoming`) and
//! put in place only once the whole copy is there, so a move that fails half-way never
//! leaves something that opens as a partition.
//!
//! Every chunk names one of the partition's own files (a segment or a checkpoint, nothing
//! else: no path from the network reaches the file system), carries the crc32c of its
//! bytes, and continues its file where the copy stands (or rewrites from an earlier offset,
//! so a round can be sent again after a broken connection).

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::checkpoint;
use super::error::{Result, StoreError};
use super::handover::{is_moved, MOVED_MARKER};
use super::segment::parse_segment_name;

/// The most bytes one chunk may carry: the copier cuts files into pieces of at most this,
/// the receiver refuses larger ones.
pub const MAX_CHUNK: usize = 1 << 20;

/// One piece of one file of a partition being moved.
#[derive(Debug, Clone, Copy)]
pub struct Chunk<'a> {
    /// The file's name in the partition directory.
    pub name: &'a str,
    /// Where in the file `data` goes.
    pub offset: u64,
    pub data: &'a [u8],
    /// crc32c of `data`.
    pub crc: u32,
}

impl Chunk<'_> {
    /// The chunk of `data` at `offset` of file `name`, with its checksum.
    pub fn new<'a>(name: &'a str, offset: u64, data: &'a [u8]) -> Chunk<'a> {
        Chunk {
            name,
            offset,
            data,
            crc: crc32c::crc32c(data),
        }
    }
}

/// A partition copy being received.
pub struct Incoming {
    /// Where the partition will live.
    target: PathBuf,
    /// Where its files are written until then.
    dir: PathBuf,
}

impl Incoming {
    /// Starts (or restarts) receiving the partition that will live at `target`. Whatever an
    /// earlier, unfinished attempt left is removed. A partition already at `target` that is
    /// not the copy an earlier move left behind is live data: refused.
    pub fn start(target: &Path) -> Result<Incoming> {
        if target.exists() && !is_moved(target) {
            return Err(StoreError::NotPermitted(
                "a live partition directory is in the way",
            ));
        }
        let dir = incoming_dir(target);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        Ok(Incoming {
            target: target.to_path_buf(),
            dir,
        })
    }

    /// The copy being received for `target`, as [`Incoming::start`] left it (each request
    /// of a move names its partition; no state is kept between them).
    pub fn resume(target: &Path) -> Incoming {
        Incoming {
            target: target.to_path_buf(),
            dir: incoming_dir(target),
        }
    }

    /// Writes one chunk; returns the length of its file after it.
    pub fn write(&self, chunk: &Chunk<'_>) -> Result<u64> {
        if !self.dir.is_dir() {
            return Err(StoreError::NotPermitted(
                "no move of this partition was started",
            ));
        }
        write_chunk(&self.dir, chunk)
    }

    /// The files received so far with their lengths, for the sender to compare with what
    /// it sent.
    pub fn files(&self) -> Result<Vec<(String, u64)>> {
        list_files(&self.dir)
    }

    /// Makes the copy durable and puts it where the partition lives, replacing the copy an
    /// earlier move away left there. `files` is the sender's final list: files received in
    /// earlier rounds that the sender removed since (old checkpoints, segments compaction
    /// replaced, a compaction's unfinished output) are dropped. The caller opens the copy
    /// next (which recovers and checks it).
    pub fn install(self, files: &[&str]) -> Result<PathBuf> {
        for e in std::fs::read_dir(&self.dir)? {
            let e = e?;
            if files.iter().any(|name| e.file_name() == **name) {
                File::open(e.path())?.sync_all()?;
            } else {
                std::fs::remove_file(e.path())?;
            }
        }
        File::open(&self.dir)?.sync_all()?;
        put_in_place(&self.dir, &self.target)?;
        Ok(self.target)
    }
}

/// Writes one chunk of a partition file into `dir` (a move's or a replica's copy) and
/// syncs it; returns the length of its file after it.
pub(crate) fn write_chunk(dir: &Path, chunk: &Chunk<'_>) -> Result<u64> {
    let bad = |why| Err(StoreError::NotPermitted(why));
    if !is_partition_file(chunk.name) {
        return bad("not a partition file name");
    }
    if chunk.data.len() > MAX_CHUNK {
        return bad("chunk over the size limit");
    }
    if crc32c::crc32c(chunk.data) != chunk.crc {
        return bad("chunk checksum mismatch");
    }
    let path = dir.join(chunk.name);
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)?;
    let len = f.metadata()?.len();
    if chunk.offset > len {
        return bad("chunk leaves a gap in its file");
    }
    f.set_len(chunk.offset)?;
    f.seek(SeekFrom::Start(chunk.offset))?;
    f.write_all(chunk.data)?;
    // Synced as it arrives, so the install (inside the old owner's write freeze) has
    // only the last round's bytes left to sync, not the whole partition.
    f.sync_data()?;
    Ok(chunk.offset + chunk.data.len() as u64)
}

/// The files in `dir` with their lengths, by name.
pub(crate) fn list_files(dir: &Path) -> Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        out.push((name, e.metadata()?.len()));
    }
    out.sort();
    Ok(out)
}

/// `p-NNNN.incoming` beside `p-NNNN`.
fn incoming_dir(target: &Path) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_os_string();
    name.push(".incoming");
    target.with_file_name(name)
}

/// Segments and checkpoints: the files a move copies. Never the [`MOVED_MARKER`].
pub(crate) fn is_partition_file(name: &str) -> bool {
    name != MOVED_MARKER
        && (parse_segment_name(name).is_some() || checkpoint::parse_name(name).is_some())
}

/// Renames the complete copy `dir` to `target`, where the partition lives, and syncs the
/// parent directory. Only a copy a move away left there (marked MOVED) may be replaced: a
/// live partition in the way is refused.
pub(crate) fn put_in_place(dir: &Path, target: &Path) -> Result<()> {
    if target.exists() {
        if !is_moved(target) {
            return Err(StoreError::NotPermitted(
                "a live partition directory is in the way",
            ));
        }
        std::fs::remove_dir_all(target)?;
    }
    std::fs::rename(dir, target)?;
    if let Some(parent) = target.parent() {
        File::open(parent)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_checked_before_anything_is_written() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("p-0003");
        let rx = Incoming::start(&target).unwrap();
        let ok = Chunk::new("seg-00000001.log", 0, b"abcdef");
        assert_eq!(rx.write(&ok).unwrap(), 6);
        for name in [
            "../p-0004/seg-00000001.log",
            "MOVED",
            "passwd",
            "seg-1.log.tmp",
        ] {
            let r = rx.write(&Chunk::new(name, 0, b"x"));
            assert!(
                matches!(r, Err(StoreError::NotPermitted(_))),
                "{name}: {r:?}"
            );
        }
        let mut torn = Chunk::new("seg-00000001.log", 6, b"ghi");
        torn.crc ^= 1;
        assert!(rx.write(&torn).is_err());
        assert!(rx
            .write(&Chunk::new("seg-00000001.log", 7, b"ghi"))
            .is_err());
        let big = vec![0u8; MAX_CHUNK + 1];
        assert!(rx.write(&Chunk::new("seg-00000001.log", 6, &big)).is_err());
        // A round sent again rewrites from its offset.
        assert_eq!(
            rx.write(&Chunk::new("seg-00000001.log", 3, b"DEFG"))
                .unwrap(),
            7
        );
        assert_eq!(rx.files().unwrap(), vec![("seg-00000001.log".into(), 7)]);
        rx.write(&Chunk::new("index-00000001.ckpt", 0, b"old"))
            .unwrap();
        assert!(!target.exists(), "nothing is in place before install");
        let dir = rx.install(&["seg-00000001.log"]).unwrap();
        assert_eq!(
            std::fs::read(dir.join("seg-00000001.log")).unwrap(),
            b"abcDEFG"
        );
        assert!(
            !dir.join("index-00000001.ckpt").exists(),
            "a file the sender no longer has is dropped"
        );
    }

    #[test]
    fn a_live_partition_is_never_replaced_but_a_moved_copy_is() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("p-0003");
        std::fs::create_dir_all(&target).unwrap();
        std::fs::write(target.join("seg-00000001.log"), b"live").unwrap();
        assert!(Incoming::start(&target).is_err());
        std::fs::write(target.join(MOVED_MARKER), b"moved to b\n").unwrap();
        let rx = Incoming::start(&target).unwrap();
        rx.write(&Chunk::new("seg-00000002.log", 0, b"new"))
            .unwrap();
        rx.install(&["seg-00000002.log"]).unwrap();
        assert!(!is_moved(&target));
        assert!(!target.join("seg-00000001.log").exists());
        assert_eq!(
            std::fs::read(target.join("seg-00000002.log")).unwrap(),
            b"new"
        );
    }
}
