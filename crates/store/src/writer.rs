//! The log's write side: the shared partition state, group-commit flushing, segment
//! rollover, and checkpoint writing. See `commit` for the batching protocol.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use glommio::io::{BufferedFile, Directory, OpenOptions};
use tracing::warn;

use super::checkpoint;
use super::commit::{Pending, Slot};
use super::error::{Result, StoreError};
use super::handover::{CopyFile, LogEnd};
use super::index::{Applied, Index, Loc};
use super::mapped::SegmentMaps;
use super::record::{self, FrameHeader, FrameWriter, FRAME_HEADER};
use super::replica::{Batch, FileChange, ShipBatch};
use super::segment::{segment_name, segment_path, SegmentHeader, SegmentKind, SEGMENT_HEADER};
use super::stats::Recorder;
use super::types::{Durability, Options};

/// The log's write side.
pub(crate) struct LogState {
    pub active_id: u32,
    pub active: Rc<BufferedFile>,
    /// Durable end of the active segment; the next batch is written here.
    pub end: u64,
    pub next_segment_id: u32,
    pub flushing: bool,
    /// A failed write may have left bytes after `end` that must go before the next write.
    pub dirty_tail: bool,
    /// Record format of the active segment's header. It only rises: a batch holding a
    /// record of a newer format starts a new segment of that format, and later segments
    /// keep it.
    pub version: u32,
}

/// Background work bookkeeping.
#[derive(Default)]
pub(crate) struct Background {
    pub records_since_checkpoint: u64,
    pub checkpoint_running: bool,
    pub compaction_running: bool,
    /// Position of the newest durable checkpoint.
    pub last_checkpoint: Option<Loc>,
    /// Checkpoints written by this process.
    pub checkpoints_written: u64,
    /// Sequence number of the newest checkpoint file (names `index-NNNNNNNN.ckpt`).
    pub next_checkpoint_seq: u32,
    /// Segments replaced by compaction, with `checkpoints_written` at that time: a file
    /// is removed once every kept checkpoint was written after its replacement.
    pub retired: Vec<(u32, u64)>,
}

/// Shared state of a partition; background tasks hold an `Rc` to it.
pub(crate) struct Inner {
    pub dir: PathBuf,
    pub opts: Options,
    pub index: RefCell<Index>,
    pub log: RefCell<LogState>,
    pub pending: RefCell<Pending>,
    pub files: RefCell<HashMap<u32, Rc<BufferedFile>>>,
    /// Read-only maps of the segments in `files` that SEARCH has read in place.
    pub maps: SegmentMaps,
    pub bg: RefCell<Background>,
    pub closed: Cell<bool>,
    /// The `Partition` was dropped without `close`: background work stops before its
    /// next visible step, as it would in a crash.
    pub abandoned: Cell<bool>,
    /// Appends, batches and fsync latency (see `stats`).
    pub stats: Recorder,
    /// Writes wait in `pending` while a move hands the partition over (see `handover`).
    pub frozen: Cell<bool>,
    /// The partition was handed to another node: every write fails with `Moved`.
    pub moved: Cell<bool>,
    /// Sessions waiting to hear of the hand-over (`Partition::handed_over`), by waiter id.
    pub moved_waiters: RefCell<HashMap<u64, std::task::Waker>>,
    pub next_waiter: Cell<u64>,
    /// Where each batch is shipped to the partition's replicas (see `replica`).
    pub replication: RefCell<Option<Rc<dyn ShipBatch>>>,
}

impl Inner {
    /// Encodes one record into the pending batch and makes sure a flush will run.
    pub fn submit(self: &Rc<Self>, kind: u8, fill: impl FnOnce(&mut FrameWriter<'_>)) -> Rc<Slot> {
        let slot = Rc::new(Slot::default());
        if self.moved.get() {
            slot.fill(Err(StoreError::Moved));
            return slot;
        }
        {
            let mut p = self.pending.borrow_mut();
            let start = p.bytes.len();
            let mut w = FrameWriter::new(&mut p.bytes, kind);
            fill(&mut w);
            w.finish();
            p.records.push((start, slot.clone()));
        }
        self.start_flushing();
        slot
    }

    /// Makes sure a flush loop runs for what is pending, unless writes are frozen.
    pub fn start_flushing(self: &Rc<Self>) {
        let mut log = self.log.borrow_mut();
        if !log.flushing && !self.frozen.get() {
            log.flushing = true;
            glommio::spawn_local(flush_loop(self.clone())).detach();
        }
    }

    /// Waits until nothing is pending or being flushed.
    pub async fn drain(&self) {
        while self.log.borrow().flushing || !self.pending.borrow().is_empty() {
            glommio::timer::sleep(std::time::Duration::from_micros(200)).await;
        }
    }

    /// Writes (and, with `Durability::Always`, syncs) a batch at the end of the active
    /// segment, and at the same time hands it to the replication sink, if one is set.
    /// Returns where it starts. On failure of either the file is cut back to its durable
    /// end. `format` is the oldest segment format that may hold every record of the batch.
    async fn write_batch(&self, bytes: &Rc<Vec<u8>>, format: u32) -> Result<Loc> {
        let (file, prev, dirty, need_roll) = {
            let log = self.log.borrow();
            let full =
                log.end > SEGMENT_HEADER && log.end + bytes.len() as u64 > self.opts.segment_size;
            (
                log.active.clone(),
                LogEnd {
                    segment: log.active_id,
                    offset: log.end,
                },
                log.dirty_tail,
                full || format > log.version,
            )
        };
        if dirty {
            file.truncate(prev.offset).await?;
            self.log.borrow_mut().dirty_tail = false;
        }
        if need_roll {
            self.roll_over(format).await?;
        }
        let (file, seg, end, version) = {
            let log = self.log.borrow();
            (log.active.clone(), log.active_id, log.end, log.version)
        };
        let local = async {
            write_all_at(&file, bytes, end).await?;
            if self.opts.durability == Durability::Always {
                let started = std::time::Instant::now();
                file.fdatasync().await?;
                self.stats.synced(started.elapsed());
            }
            Ok(())
        };
        let sink = self.replication.borrow().clone();
        let res = match sink {
            None => local.await,
            Some(sink) => {
                let batch = Batch {
                    prev,
                    at: LogEnd {
                        segment: seg,
                        offset: end,
                    },
                    format: version,
                    bytes: bytes.clone(),
                };
                let (local, shipped) = futures_lite::future::zip(local, sink.ship(batch)).await;
                local.and(shipped)
            }
        };
        if let Err(e) = res {
            // The batch is not durable (here, or on a replica that could not be dropped
            // from the in-sync set): make sure none of it is read back after a restart.
            if file.truncate(end).await.is_err() {
                self.log.borrow_mut().dirty_tail = true;
            }
            return Err(e);
        }
        self.log.borrow_mut().end = end + bytes.len() as u64;
        Ok(Loc {
            segment: seg,
            offset: end,
        })
    }

    /// Tells the replication sink, if any, that files other than the log's tail changed.
    pub fn files_changed(&self, change: FileChange) {
        let sink = self.replication.borrow().clone();
        if let Some(sink) = sink {
            sink.files_changed(change);
        }
    }

    /// Takes the next segment id. Synchronous, so that a rollover and a compaction that
    /// run at the same time never pick the same file.
    pub fn reserve_segment_id(&self) -> u32 {
        let mut log = self.log.borrow_mut();
        let id = log.next_segment_id;
        log.next_segment_id += 1;
        id
    }

    /// Seals the active segment and starts the next one, of at least format `format`.
    async fn roll_over(&self, format: u32) -> Result<()> {
        let id = self.reserve_segment_id();
        let version = self.log.borrow().version.max(format);
        let f = Rc::new(create_segment(&self.dir, id, SegmentKind::Log, version).await?);
        let mut log = self.log.borrow_mut();
        log.active_id = id;
        log.active = f.clone();
        log.end = SEGMENT_HEADER;
        log.version = version;
        self.files.borrow_mut().insert(id, f);
        Ok(())
    }

    /// Applies a durable batch to the index and resolves its mutations.
    fn apply_batch(self: &Rc<Self>, bytes: &[u8], records: Vec<(usize, Rc<Slot>)>, base: Loc) {
        let n = records.len() as u64;
        {
            let mut idx = self.index.borrow_mut();
            for (start, slot) in records {
                let r = apply_frame(&mut idx, &bytes[start..], base, start);
                slot.fill(r);
            }
        }
        let start_checkpoint = {
            let mut bg = self.bg.borrow_mut();
            bg.records_since_checkpoint += n;
            let due = bg.records_since_checkpoint >= self.opts.checkpoint_every
                && !bg.checkpoint_running
                && !self.closed.get()
                && !self.frozen.get();
            if due {
                bg.checkpoint_running = true;
            }
            due
        };
        if start_checkpoint {
            let inner = self.clone();
            glommio::spawn_local(async move {
                if let Err(e) = checkpoint_now(&inner).await {
                    warn!(error = %e, "background checkpoint failed");
                }
                inner.bg.borrow_mut().checkpoint_running = false;
                super::compact::maybe_start(&inner);
            })
            .detach();
        }
    }
}

fn apply_frame(idx: &mut Index, frame: &[u8], base: Loc, start: usize) -> Result<Applied> {
    let mut h = [0u8; FRAME_HEADER];
    h.copy_from_slice(frame.get(..FRAME_HEADER).ok_or_else(|| bug("frame"))?);
    let h = FrameHeader::parse(&h);
    let payload = frame
        .get(FRAME_HEADER..FRAME_HEADER + h.payload_len as usize)
        .ok_or_else(|| bug("payload"))?;
    let rec = record::decode(h.kind, payload)?;
    idx.apply(
        &rec,
        Loc {
            segment: base.segment,
            offset: base.offset + start as u64,
        },
    )
}

fn bug(what: &str) -> StoreError {
    StoreError::Corrupt(format!("internal: bad pending {what}"))
}

async fn flush_loop(inner: Rc<Inner>) {
    loop {
        // Let every task that is runnable in this tick add its records to the batch.
        futures_lite::future::yield_now().await;
        if inner.frozen.get() {
            // A move is handing the partition over: what is pending waits for the thaw
            // (written then) or the hand-over (failed then, never acknowledged).
            inner.log.borrow_mut().flushing = false;
            return;
        }
        let batch = if inner.opts.group_commit {
            std::mem::take(&mut *inner.pending.borrow_mut())
        } else {
            inner.pending.borrow_mut().split_first()
        };
        if batch.is_empty() {
            inner.log.borrow_mut().flushing = false;
            return;
        }
        let format = batch.format();
        let Pending { bytes, records } = batch;
        // Shared with the replication sink, which may still be sending it.
        let bytes = Rc::new(bytes);
        match inner.write_batch(&bytes, format).await {
            Ok(base) => {
                inner.stats.batch_written(records.len());
                inner.apply_batch(&bytes, records, base)
            }
            Err(e) => {
                warn!(error = %e, records = records.len(), "log write failed; batch not acknowledged");
                Pending::fail_records(records, &e);
            }
        }
    }
}

/// Writes all of `buf` at `pos` (a short write is retried for the rest).
pub(crate) async fn write_all_at(file: &BufferedFile, buf: &[u8], pos: u64) -> Result<()> {
    let mut done = 0;
    while done < buf.len() {
        // glommio takes ownership of the buffer it hands to io_uring.
        let n = file
            .write_at(buf[done..].to_vec(), pos + done as u64)
            .await?;
        if n == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::WriteZero).into());
        }
        done += n;
    }
    Ok(())
}

/// Creates segment `id` of record format `version` with its header, synced, and syncs the
/// directory. On failure the file is removed again, but only if this call created it.
pub(crate) async fn create_segment(
    dir: &Path,
    id: u32,
    kind: SegmentKind,
    version: u32,
) -> Result<BufferedFile> {
    let path = segment_path(dir, id);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .buffered_open(&path)
        .await?;
    let header = SegmentHeader { id, kind, version }.encode();
    let done = async {
        write_all_at(&f, &header, 0).await?;
        f.fdatasync().await?;
        sync_dir(dir).await
    }
    .await;
    match done {
        Ok(()) => Ok(f),
        Err(e) => {
            let _ = f.close().await;
            let _ = std::fs::remove_file(&path);
            Err(e)
        }
    }
}

/// fsyncs a directory so that created, renamed and removed names are durable.
pub(crate) async fn sync_dir(dir: &Path) -> Result<()> {
    let d = Directory::open(dir).await?;
    d.sync().await?;
    d.close().await?;
    Ok(())
}

/// Writes a checkpoint of the current index at the current durable position.
pub(crate) async fn checkpoint_now(inner: &Rc<Inner>) -> Result<()> {
    let (image, pos, file) = {
        let mut idx = inner.index.borrow_mut();
        // Remembered keys expired by the partition's Sieve clock are dead weight in every
        // checkpoint to come.
        idx.sieve.prune();
        let log = inner.log.borrow();
        let pos = Loc {
            segment: log.active_id,
            offset: log.end,
        };
        let image = checkpoint::encode(&idx, pos).map_err(StoreError::Corrupt)?;
        inner.bg.borrow_mut().records_since_checkpoint = 0;
        (image, pos, log.active.clone())
    };
    // With Durability::Relaxed the log may not be synced yet; a checkpoint must never
    // point past durable log data.
    file.fdatasync().await?;
    let seq = {
        let mut bg = inner.bg.borrow_mut();
        bg.next_checkpoint_seq += 1;
        bg.next_checkpoint_seq
    };
    let path = checkpoint::path(&inner.dir, seq);
    // Unique, so that an abandoned instance's late task never shares a file with a new one.
    let tmp = path.with_extension(format!("ckpt.tmp-{}", rand::random::<u32>()));
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .buffered_open(&tmp)
        .await?;
    let written = async {
        write_all_at(&f, &image, 0).await?;
        f.fdatasync().await?;
        Ok::<_, StoreError>(())
    }
    .await;
    f.close().await?;
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    if inner.abandoned.get() {
        let _ = std::fs::remove_file(&tmp);
        return Ok(());
    }
    std::fs::rename(&tmp, &path)?;
    sync_dir(&inner.dir).await?;
    let mut change = FileChange {
        added: vec![CopyFile {
            name: checkpoint::file_name(seq),
            len: image.len() as u64,
        }],
        removed: Vec::new(),
    };
    for old in checkpoint::list(&inner.dir)?
        .into_iter()
        .skip(checkpoint::KEEP)
    {
        let _ = std::fs::remove_file(checkpoint::path(&inner.dir, old));
        change.removed.push(checkpoint::file_name(old));
    }
    let expired: Vec<u32> = {
        let mut bg = inner.bg.borrow_mut();
        bg.last_checkpoint = Some(pos);
        bg.checkpoints_written += 1;
        let written = bg.checkpoints_written;
        let (gone, keep): (Vec<_>, Vec<_>) = bg
            .retired
            .iter()
            .partition(|&&(_, at)| written >= at + checkpoint::KEEP as u64);
        bg.retired = keep;
        gone.into_iter().map(|(id, _)| id).collect()
    };
    if !expired.is_empty() {
        for id in expired {
            let _ = std::fs::remove_file(segment_path(&inner.dir, id));
            change.removed.push(segment_name(id));
        }
        sync_dir(&inner.dir).await?;
    }
    inner.files_changed(change);
    Ok(())
}
