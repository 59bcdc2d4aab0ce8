//! Replicas of a partition (docs/cluster.md, "Replicas"): the owner's group commit hands
//! each batch, the exact bytes it writes at (segment, offset), to a [`ShipBatch`] sink at
//! the same time as it writes them itself; a replica node keeps a byte-identical copy of
//! the partition's files in `p-NNNN.replica/` with a [`ReplicaLog`] and, when it is
//! promoted, renames that into place and opens it as the partition.
//!
//! How a replica gets and keeps an exact copy:
//! - **Seeding** (and re-seeding after any refusal): copy rounds as a move does
//!   ([`seed_plan`] says what the replica lacks, `Incoming`'s chunk writing puts it there),
//!   comparing a crc32c of every file the replica already has, so a tail that only the
//!   replica has (an old owner's records no client was told about) is replaced.
//! - **Streaming**: every batch names the log end it continues (`prev`) and where it goes
//!   (`at`); the replica applies it only if `prev` is exactly its own end, so a gap, an
//!   overlap or a different history is refused and the owner re-seeds.
//! - **Other files** (checkpoints, compacted segments, removals) are not streamed: the
//!   store reports them as a [`FileChange`] and the sink copies them asynchronously.

use std::future::Future;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::rc::Rc;

use glommio::io::{BufferedFile, OpenOptions};

use super::checkpoint;
use super::error::{Result, StoreError};
use super::handover::{is_moved, CopyFile, LogEnd, Snapshot};
use super::incoming::{list_files, write_chunk, Chunk};
use super::partition::Partition;
use super::record::{FrameHeader, FRAME_HEADER};
use super::segment::{
    list_segments, read_header, segment_path, SegmentKind, FORMAT_VERSION, OLDEST_FORMAT_VERSION,
    SEGMENT_HEADER,
};
use super::writer::{create_segment, write_all_at};

/// One group-commit batch as the owner wrote it.
#[derive(Debug, Clone)]
pub struct Batch {
    /// The log end before the batch: the batch continues exactly this.
    pub prev: LogEnd,
    /// Where the batch starts. A segment other than `prev.segment` is a new one, starting
    /// right after its header.
    pub at: LogEnd,
    /// Record format of `at.segment`'s header.
    pub format: u32,
    /// The framed records, exactly as written.
    pub bytes: Rc<Vec<u8>>,
}

/// Bytes of [`Batch::encode`] before the records.
const BATCH_HEADER: usize = 4 + 8 + 4 + 8 + 4 + 4;

impl Batch {
    /// How many records the batch holds (its frames, walked by their length fields).
    pub fn records(&self) -> usize {
        let (mut n, mut pos) = (0, 0usize);
        while let Some(h) = self.bytes.get(pos..pos + FRAME_HEADER) {
            let h: &[u8; FRAME_HEADER] = h.try_into().expect("a frame header's length");
            pos += FRAME_HEADER + FrameHeader::parse(h).payload_len as usize;
            n += 1;
        }
        n
    }

    /// The log end after the batch.
    pub fn end(&self) -> LogEnd {
        LogEnd {
            segment: self.at.segment,
            offset: self.at.offset + self.bytes.len() as u64,
        }
    }

    /// Appends the batch's wire form: `u32 prev segment, u64 prev offset, u32 segment,
    /// u64 offset, u32 format, u32 crc32c(records), records` (big-endian, like the link).
    pub fn encode(&self, out: &mut Vec<u8>) {
        self.piece(0, self.bytes.len()).encode(out);
    }

    /// The batch cut into pieces of at most `max` bytes of records (at least one piece).
    /// Each piece is a batch of its own that continues the one before, so a replica applies
    /// them in turn: a batch larger than one link frame (several large messages committed
    /// together) still reaches the replica.
    pub fn pieces(&self, max: usize) -> impl Iterator<Item = BatchPiece<'_>> {
        let max = max.max(1);
        let len = self.bytes.len();
        let count = len.div_ceil(max).max(1);
        (0..count).map(move |i| self.piece(i * max, ((i + 1) * max).min(len)))
    }

    fn piece(&self, from: usize, to: usize) -> BatchPiece<'_> {
        BatchPiece {
            batch: self,
            from,
            to,
        }
    }

    /// Parses [`Batch::encode`]'s form, checking the records' checksum.
    pub fn decode(b: &[u8]) -> Result<Batch> {
        let bad = |why| Err(StoreError::NotPermitted(why));
        if b.len() < BATCH_HEADER {
            return bad("short replication batch");
        }
        let u32_at = |i: usize| u32::from_be_bytes(b[i..i + 4].try_into().unwrap_or_default());
        let u64_at = |i: usize| u64::from_be_bytes(b[i..i + 8].try_into().unwrap_or_default());
        let bytes = b[BATCH_HEADER..].to_vec();
        if crc32c::crc32c(&bytes) != u32_at(28) {
            return bad("replication batch checksum mismatch");
        }
        Ok(Batch {
            prev: LogEnd {
                segment: u32_at(0),
                offset: u64_at(4),
            },
            at: LogEnd {
                segment: u32_at(12),
                offset: u64_at(16),
            },
            format: u32_at(24),
            bytes: Rc::new(bytes),
        })
    }
}

/// Bytes `from..to` of a batch's records, as a batch of their own (see [`Batch::pieces`]).
pub struct BatchPiece<'a> {
    batch: &'a Batch,
    from: usize,
    to: usize,
}

impl BatchPiece<'_> {
    /// Where the piece starts: the batch's start for the first, else right after the
    /// piece before, in the same segment.
    fn at(&self) -> LogEnd {
        LogEnd {
            segment: self.batch.at.segment,
            offset: self.batch.at.offset + self.from as u64,
        }
    }

    /// The log end the piece continues.
    fn prev(&self) -> LogEnd {
        if self.from == 0 {
            self.batch.prev
        } else {
            self.at()
        }
    }

    /// The log end after the piece.
    pub fn end(&self) -> LogEnd {
        LogEnd {
            segment: self.batch.at.segment,
            offset: self.batch.at.offset + self.to as u64,
        }
    }

    /// Bytes of [`BatchPiece::encode`]'s output.
    pub fn encoded_len(&self) -> usize {
        BATCH_HEADER + self.to - self.from
    }

    /// Appends the piece's wire form, [`Batch::encode`]'s.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let (prev, at) = (self.prev(), self.at());
        let records = &self.batch.bytes[self.from..self.to];
        out.reserve(self.encoded_len());
        out.extend_from_slice(&prev.segment.to_be_bytes());
        out.extend_from_slice(&prev.offset.to_be_bytes());
        out.extend_from_slice(&at.segment.to_be_bytes());
        out.extend_from_slice(&at.offset.to_be_bytes());
        out.extend_from_slice(&self.batch.format.to_be_bytes());
        out.extend_from_slice(&crc32c::crc32c(records).to_be_bytes());
        out.extend_from_slice(records);
    }
}

/// Files of a partition other than the log's tail that changed: a checkpoint or a
/// compacted segment written (`added`, complete, in the order a replica must get them),
/// checkpoints and replaced segments removed (`removed`, after the `added` of the same
/// change).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileChange {
    pub added: Vec<CopyFile>,
    pub removed: Vec<String>,
}

/// The future of [`ShipBatch::ship`].
pub type Shipped = Pin<Box<dyn Future<Output = Result<()>>>>;

/// Where a partition's group commit sends its batches (set with
/// [`Partition::set_replication`]).
pub trait ShipBatch {
    /// Ships one batch; called in log order, one batch at a time per partition, while the
    /// owner writes it. The batch is acknowledged to clients once the local write is
    /// durable and this resolves `Ok`: with synchronous replication once every in-sync
    /// replica has it durable, or once a replica that failed was dropped from the in-sync
    /// set. `Err` (a replica that could neither take the batch nor be dropped) fails the
    /// batch, unacknowledged, and cuts it from the owner's log again.
    fn ship(&self, batch: Batch) -> Shipped;

    /// Files other than the log's tail changed; the sink copies them to the replicas in
    /// the background, in the order of the calls.
    fn files_changed(&self, change: FileChange);
}

impl Partition {
    /// Sets (or with `None` removes) the sink that every later batch is shipped to.
    pub fn set_replication(&self, sink: Option<Rc<dyn ShipBatch>>) {
        *self.inner.replication.borrow_mut() = sink;
    }

    /// The partition's directory (a sink reads checkpoints and segments from it).
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }
}

/// A file a replica holds: its name, length and the crc32c of all its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaFile {
    pub name: String,
    pub len: u64,
    pub crc: u32,
}

/// One file of a seeding round: send bytes `from..len` of `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendFile {
    pub name: String,
    pub from: u64,
    pub len: u64,
}

/// What to send a replica holding `replica` so that it holds exactly `snap` (of the
/// partition in `dir`): per file, from where. A replica file that is a prefix of the
/// owner's (same crc32c over its length) is continued; one that is longer or differs is
/// sent whole (its first chunk, at offset 0, cuts it). Segments come before checkpoints, so
/// a checkpoint never arrives before a segment it refers to. The replica's files that
/// `snap` does not list are removed afterwards ([`ReplicaLog::keep_only`]).
pub fn seed_plan(dir: &Path, snap: &Snapshot, replica: &[ReplicaFile]) -> Result<Vec<SendFile>> {
    let mut plan = Vec::new();
    let (checkpoints, segments): (Vec<&CopyFile>, Vec<&CopyFile>) = snap
        .files
        .iter()
        .partition(|f| checkpoint::parse_name(&f.name).is_some());
    for f in segments.into_iter().chain(checkpoints) {
        let from = match replica.iter().find(|r| r.name == f.name) {
            Some(r) if r.len <= f.len && crc_of_prefix(&dir.join(&f.name), r.len)? == r.crc => {
                r.len
            }
            _ => 0,
        };
        if from < f.len {
            plan.push(SendFile {
                name: f.name.clone(),
                from,
                len: f.len,
            });
        }
    }
    Ok(plan)
}

/// crc32c of the first `len` bytes of `path`.
fn crc_of_prefix(path: &Path, len: u64) -> Result<u32> {
    let mut f = std::fs::File::open(path)?.take(len);
    let mut buf = vec![0u8; 1 << 20];
    let (mut crc, mut read) = (0u32, 0u64);
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        crc = crc32c::crc32c_append(crc, &buf[..n]);
        read += n as u64;
    }
    if read != len {
        return Err(StoreError::Corrupt(format!(
            "{} is shorter than {len} bytes",
            path.display()
        )));
    }
    Ok(crc)
}

/// The replica copy of one partition, in `p-NNNN.replica` beside where the partition
/// would live. Never opened as a partition while it is a replica.
pub struct ReplicaLog {
    /// Where the partition lives once promoted.
    target: PathBuf,
    dir: PathBuf,
    /// The end of the newest log segment: where the next batch must continue. `None`
    /// before the first seeding round.
    pos: Option<LogEnd>,
    /// The newest log segment, open for appending.
    active: Option<(u32, Rc<BufferedFile>)>,
}

impl ReplicaLog {
    /// `p-NNNN.replica` beside `target`.
    pub fn dir_for(target: &Path) -> PathBuf {
        let mut name = target.file_name().unwrap_or_default().to_os_string();
        name.push(".replica");
        target.with_file_name(name)
    }

    /// Opens (creating it if needed) the replica copy of the partition that lives at
    /// `target` when promoted.
    pub fn open(target: &Path) -> Result<ReplicaLog> {
        let dir = Self::dir_for(target);
        std::fs::create_dir_all(&dir)?;
        let mut r = ReplicaLog {
            target: target.to_path_buf(),
            dir,
            pos: None,
            active: None,
        };
        r.find_position()?;
        Ok(r)
    }

    /// Like [`ReplicaLog::open`], for a node that held the partition itself before and
    /// stopped (a crash, a kill): its files (the partition directory, not open) become the
    /// replica copy, so seeding sends only what differs. They may end in records no client
    /// was told about; seeding replaces them with the owner's. A directory marked
    /// [`MOVED`](super::MOVED_MARKER) is left as it is (a node that found its partition
    /// given away while it served it keeps that copy for the operator): the copy starts
    /// empty then.
    pub fn rejoin(target: &Path) -> Result<ReplicaLog> {
        let dir = Self::dir_for(target);
        if target.is_dir() && !dir.exists() && !is_moved(target) {
            std::fs::rename(target, &dir)?;
            if let Some(parent) = target.parent() {
                std::fs::File::open(parent)?.sync_all()?;
            }
        }
        Self::open(target)
    }

    /// The directory holding the copy.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the next batch must continue (`None` before the first seeding).
    pub fn position(&self) -> Option<LogEnd> {
        self.pos
    }

    /// The files held, with lengths and checksums, for the owner's [`seed_plan`].
    pub fn files(&self) -> Result<Vec<ReplicaFile>> {
        list_files(&self.dir)?
            .into_iter()
            .map(|(name, len)| {
                let crc = crc_of_prefix(&self.dir.join(&name), len)?;
                Ok(ReplicaFile { name, len, crc })
            })
            .collect()
    }

    /// Writes one chunk of a seeding or catch-up round (the checks of a move's chunks).
    pub fn write_chunk(&mut self, chunk: &Chunk<'_>) -> Result<u64> {
        // The chunk may rewrite the segment that batches were appended to.
        self.active = None;
        let written = write_chunk(&self.dir, chunk);
        self.find_position()?;
        written
    }

    /// Removes every file not in `names` (the owner's complete list after a seeding round).
    pub fn keep_only(&mut self, names: &[&str]) -> Result<()> {
        let gone: Vec<String> = list_files(&self.dir)?
            .into_iter()
            .map(|(name, _)| name)
            .filter(|name| !names.contains(&name.as_str()))
            .collect();
        self.remove(&gone)
    }

    /// Removes the named files (a catch-up round's removals). Names that are not a
    /// partition's files are ignored.
    pub fn remove(&mut self, names: &[String]) -> Result<()> {
        for name in names {
            if super::incoming::is_partition_file(name) {
                match std::fs::remove_file(self.dir.join(name)) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                    _ => {}
                }
            }
        }
        std::fs::File::open(&self.dir)?.sync_all()?;
        self.active = None;
        self.find_position()
    }

    /// Sets `pos` from the files: the newest log segment and its length.
    fn find_position(&mut self) -> Result<()> {
        self.pos = None;
        for id in list_segments(&self.dir)?.into_iter().rev() {
            let path = segment_path(&self.dir, id);
            if let Ok(Ok(h)) = read_header(&path) {
                if h.kind == SegmentKind::Log {
                    let offset = std::fs::metadata(&path)?.len();
                    self.pos = Some(LogEnd {
                        segment: id,
                        offset,
                    });
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Appends a batch the owner wrote and syncs it; returns the durable end. A batch
    /// that does not continue the copy exactly is refused (the owner re-seeds).
    pub async fn apply(&mut self, batch: &Batch) -> Result<LogEnd> {
        let refuse = |why| Err(StoreError::NotPermitted(why));
        if self.pos != Some(batch.prev) {
            return refuse("batch does not continue the replica's log");
        }
        let new_segment = batch.at.segment != batch.prev.segment;
        if new_segment {
            if batch.at.segment < batch.prev.segment || batch.at.offset != SEGMENT_HEADER {
                return refuse("batch starts a segment out of order");
            }
            if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&batch.format) {
                return refuse("batch of a segment format this ringmail does not read");
            }
            if segment_path(&self.dir, batch.at.segment).exists() {
                return refuse("batch starts a segment the replica already has");
            }
            let f =
                create_segment(&self.dir, batch.at.segment, SegmentKind::Log, batch.format).await?;
            self.active = Some((batch.at.segment, Rc::new(f)));
            self.pos = Some(LogEnd {
                segment: batch.at.segment,
                offset: SEGMENT_HEADER,
            });
        } else if batch.at != batch.prev {
            return refuse("batch does not start where its log ended");
        }
        let file = self.active_file(batch.at.segment).await?;
        let written = async {
            write_all_at(&file, &batch.bytes, batch.at.offset).await?;
            file.fdatasync().await?;
            Ok::<_, StoreError>(())
        }
        .await;
        if let Err(e) = written {
            // Nothing of a failed batch may look applied: cut it off (or leave the file
            // longer than `pos`, which refuses every batch until a re-seed).
            self.active = None;
            if file.truncate(batch.at.offset).await.is_err() {
                self.pos = None;
            }
            return Err(e);
        }
        self.pos = Some(batch.end());
        Ok(batch.end())
    }

    async fn active_file(&mut self, segment: u32) -> Result<Rc<BufferedFile>> {
        if let Some((id, f)) = &self.active {
            if *id == segment {
                return Ok(f.clone());
            }
        }
        let f = Rc::new(
            OpenOptions::new()
                .read(true)
                .write(true)
                .buffered_open(segment_path(&self.dir, segment))
                .await?,
        );
        self.active = Some((segment, f.clone()));
        Ok(f)
    }

    /// Puts the copy where the partition lives (replacing the copy a move away left
    /// there; a live partition in the way is refused). The caller opens it next: recovery
    /// replays it and cuts a torn last batch.
    pub fn promote(self) -> Result<PathBuf> {
        drop(self.active);
        super::incoming::put_in_place(&self.dir, &self.target)?;
        Ok(self.target)
    }

    /// Removes the copy (this node no longer holds a replica of the partition).
    pub fn discard(self) -> Result<()> {
        drop(self.active);
        match std::fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}
