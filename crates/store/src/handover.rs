//! Handing a partition to another node (a live move, docs/cluster.md "Moving a partition"):
//! which bytes make up its durable state, the freeze that holds writes back while the last
//! of them go over, and the two ways out of a freeze: thaw (the move failed, keep serving)
//! or hand over (the new owner has it: nothing is written here again).
//!
//! The copier (the cluster's move task) takes a [`Snapshot`] per round and copies what is
//! new since the last one: whole files that appeared, and the active segment from the
//! offset it had copied. Under the freeze the snapshot no longer changes, so its last round
//! makes the copy exact.

use std::future::Future;
use std::io::Write;
use std::path::Path;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::checkpoint;
use super::error::{Result, StoreError};
use super::partition::Partition;
use super::segment::{list_segments, segment_path};
use super::writer::{sync_dir, Inner};

/// The file that marks a partition directory as handed to another node. It holds a line
/// saying where to; while it exists the directory is never opened (`open` fails with
/// [`StoreError::Moved`]). The operator removes the directory once the move is confirmed.
pub const MOVED_MARKER: &str = "MOVED";

/// True when `dir` is the copy a move left behind.
pub fn is_moved(dir: &Path) -> bool {
    dir.join(MOVED_MARKER).exists()
}

/// The durable end of a partition's log: the active segment and how far it is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct LogEnd {
    pub segment: u32,
    pub offset: u64,
}

/// One file of a partition's durable state and how many of its bytes belong to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyFile {
    /// The file name inside the partition directory.
    pub name: String,
    pub len: u64,
}

/// The files holding a partition's durable state at one moment: a directory with exactly
/// these bytes opens as the same partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Checkpoints and segments, segments in id order; the active segment is the last and
    /// is cut at `end.offset`.
    pub files: Vec<CopyFile>,
    pub end: LogEnd,
}

impl Partition {
    /// The durable end of the log now.
    pub fn log_end(&self) -> LogEnd {
        let log = self.inner.log.borrow();
        LogEnd {
            segment: log.active_id,
            offset: log.end,
        }
    }

    /// The files of the durable state now: checkpoints and sealed segments whole, the
    /// active segment up to its durable end. Unless the partition is frozen, later writes
    /// extend the active segment or start a new one, and a checkpoint or compaction may add
    /// files and (two checkpoints after a compaction) remove replaced segments: a copier
    /// that finds a listed file gone takes the next snapshot.
    pub fn snapshot(&self) -> Result<Snapshot> {
        let dir = &self.inner.dir;
        let end = self.log_end();
        let mut files = Vec::new();
        for seq in checkpoint::list(dir)?.into_iter().rev() {
            let path = checkpoint::path(dir, seq);
            files.push(copy_file(&path, std::fs::metadata(&path)?.len()));
        }
        for id in list_segments(dir)? {
            let path = segment_path(dir, id);
            let len = if id == end.segment {
                end.offset
            } else {
                std::fs::metadata(&path)?.len()
            };
            // Segments after the active one are compaction's, still being written.
            if id <= end.segment || self.inner.files.borrow().contains_key(&id) {
                files.push(copy_file(&path, len));
            }
        }
        Ok(Snapshot { files, end })
    }

    /// Holds writes back for a hand-over: mutations submitted from now on wait (their
    /// futures do not resolve), reads go on. Returns once the batch being written is
    /// durable and no checkpoint or compaction runs, with the snapshot that stays exact
    /// until [`Partition::thaw`] or [`Partition::hand_over`].
    pub async fn freeze(&self) -> Result<Snapshot> {
        // A checkpoint or compaction may take long on a large partition: let it finish
        // before writes wait, not while they do (none starts while frozen).
        self.settle(false).await;
        self.inner.frozen.set(true);
        self.settle(true).await;
        match self.snapshot() {
            Ok(s) => Ok(s),
            Err(e) => {
                self.thaw();
                Err(e)
            }
        }
    }

    /// Waits until no checkpoint or compaction runs, and with `writes` no batch is being
    /// written either.
    async fn settle(&self, writes: bool) {
        loop {
            let busy = {
                let bg = self.inner.bg.borrow();
                (writes && self.inner.log.borrow().flushing)
                    || bg.checkpoint_running
                    || bg.compaction_running
            };
            if !busy {
                return;
            }
            glommio::timer::sleep(std::time::Duration::from_micros(200)).await;
        }
    }

    /// True between [`Partition::freeze`] and its thaw or hand-over.
    pub fn is_frozen(&self) -> bool {
        self.inner.frozen.get()
    }

    /// True once the partition was handed over.
    pub fn is_moved(&self) -> bool {
        self.inner.moved.get()
    }

    /// Resolves once the partition is handed over: a session waiting for its client holds
    /// this to end itself then (one waker per waiting session, removed when it stops
    /// waiting).
    pub fn handed_over(&self) -> HandedOver {
        HandedOver {
            inner: self.inner.clone(),
            id: None,
        }
    }

    /// Ends a freeze without a move: the writes that waited are written now, in order.
    pub fn thaw(&self) {
        if self.inner.frozen.replace(false) && !self.inner.moved.get() {
            self.inner.start_flushing();
        }
    }

    /// Ends a freeze because the partition belongs to another node now: the writes that
    /// waited, and every later one, fail with [`StoreError::Moved`] (none was acknowledged,
    /// the client retries at the new owner), and the directory gets the [`MOVED_MARKER`]
    /// holding `note` so this node never opens it again.
    pub async fn hand_over(&self, note: &str) -> Result<()> {
        self.inner.moved.set(true);
        self.inner.frozen.set(false);
        let waiting = std::mem::take(&mut *self.inner.pending.borrow_mut());
        waiting.fail(&StoreError::Moved);
        let sessions: Vec<_> = self.inner.moved_waiters.borrow_mut().drain().collect();
        for (_, waker) in sessions {
            waker.wake();
        }
        let dir = &self.inner.dir;
        let mut marker = std::fs::File::create(dir.join(MOVED_MARKER))?;
        marker.write_all(format!("{note}\n").as_bytes())?;
        marker.sync_all()?;
        sync_dir(dir).await
    }
}

/// The future of [`Partition::handed_over`].
pub struct HandedOver {
    inner: Rc<Inner>,
    id: Option<u64>,
}

impl Future for HandedOver {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.inner.moved.get() {
            return Poll::Ready(());
        }
        let this = &mut *self;
        let inner = &this.inner;
        let id = *this.id.get_or_insert_with(|| {
            let id = inner.next_waiter.get();
            inner.next_waiter.set(id + 1);
            id
        });
        inner
            .moved_waiters
            .borrow_mut()
            .insert(id, cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for HandedOver {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.inner.moved_waiters.borrow_mut().remove(&id);
        }
    }
}

fn copy_file(path: &Path, len: u64) -> CopyFile {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    CopyFile { name, len }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::path::Path;
    use std::rc::Rc;
    use std::time::Duration;

    use super::super::test_support::{append_n, run, tmp_partition};
    use super::super::{NewMessage, Options, Partition, StoreError};
    use super::{is_moved, Snapshot};

    /// Copies what `snap` lists from `from` to `to`, the active segment from `done` on (the
    /// bytes before it were copied by an earlier round), as a move's copier does.
    fn copy_round(from: &Path, to: &Path, snap: &Snapshot, done: Option<super::LogEnd>) {
        std::fs::create_dir_all(to).unwrap();
        for f in &snap.files {
            let bytes = std::fs::read(from.join(&f.name)).unwrap();
            let bytes = &bytes[..f.len as usize];
            let target = to.join(&f.name);
            let resume = done.filter(|d| f.name == format!("seg-{:08}.log", d.segment));
            match resume {
                Some(d) => {
                    let mut old = std::fs::read(&target).unwrap();
                    assert_eq!(old.len() as u64, d.offset);
                    old.extend_from_slice(&bytes[d.offset as usize..]);
                    std::fs::write(&target, old).unwrap();
                }
                None => std::fs::write(&target, bytes).unwrap(),
            }
        }
    }

    fn uids(p: &Partition) -> Vec<u32> {
        p.with_mailbox("u", "INBOX", |m| {
            m.messages().iter().map(|e| e.uid).collect()
        })
        .unwrap()
    }

    async fn append_one(p: &Partition) -> Result<Vec<u32>, StoreError> {
        let body = b"Subject: one\r\n\r\n1".to_vec();
        let r = p.append("u", "INBOX", &[NewMessage::plain(&body)]).await;
        r.map(|a| a.uids)
    }

    #[test]
    fn freeze_holds_writes_back_and_thaw_writes_them() {
        let (_tmp, dir) = tmp_partition();
        run(move || async move {
            let p = Rc::new(Partition::open(&dir, Options::default()).await.unwrap());
            p.ensure_user("u").await.unwrap();
            append_n(&p, "INBOX", 3).await;
            let before = p.freeze().await.unwrap();
            let done = Rc::new(Cell::new(None));
            let (writer, result) = (p.clone(), done.clone());
            let task = glommio::spawn_local(async move {
                result.set(Some(append_one(&writer).await));
            });
            glommio::timer::sleep(Duration::from_millis(30)).await;
            assert!(p.is_frozen());
            assert!(done.take().is_none(), "a write finished during the freeze");
            assert_eq!(
                p.snapshot().unwrap(),
                before,
                "the files changed during the freeze"
            );
            assert_eq!(p.status("u", "INBOX").unwrap().messages, 3, "reads go on");
            p.thaw();
            task.await;
            assert_eq!(done.take().map(Result::unwrap), Some(vec![4]));
            assert!(p.log_end() > before.end);
        });
    }

    #[test]
    fn a_copy_in_rounds_opens_as_the_same_partition_and_the_old_one_refuses_writes() {
        let (tmp, dir) = tmp_partition();
        let copy = tmp.path().join("copy").join("p-0000");
        run(move || async move {
            // Small segments, so the rounds see sealed segments appear.
            let opts = Options {
                segment_size: 4096,
                ..Options::default()
            };
            let p = Rc::new(Partition::open(&dir, opts.clone()).await.unwrap());
            p.ensure_user("u").await.unwrap();
            append_n(&p, "INBOX", 10).await;
            let first = p.snapshot().unwrap();
            copy_round(&dir, &copy, &first, None);
            append_n(&p, "INBOX", 3).await;
            let last = p.freeze().await.unwrap();
            let done = (first.end.segment == last.end.segment).then_some(first.end);
            copy_round(&dir, &copy, &last, done);

            let queued = Rc::new(Cell::new(None));
            let (writer, result) = (p.clone(), queued.clone());
            let task = glommio::spawn_local(async move {
                result.set(Some(append_one(&writer).await.err()));
            });
            glommio::timer::sleep(Duration::from_millis(10)).await;
            let session = glommio::spawn_local(p.handed_over());
            let ended = glommio::spawn_local(p.handed_over());
            drop(p.handed_over());
            glommio::timer::sleep(Duration::from_millis(5)).await;
            assert_eq!(p.inner.moved_waiters.borrow().len(), 2, "two sessions wait");
            p.hand_over("moved to node b at epoch 2").await.unwrap();
            task.await;
            session.await;
            ended.await;
            assert!(p.inner.moved_waiters.borrow().is_empty());
            assert!(matches!(queued.take(), Some(Some(StoreError::Moved))));
            let later = append_one(&p).await;
            assert!(matches!(later, Err(StoreError::Moved)), "{later:?}");
            assert_eq!(uids(&p), (1..=13).collect::<Vec<_>>());

            let moved = Partition::open(&copy, opts.clone()).await.unwrap();
            assert_eq!(uids(&moved), (1..=13).collect::<Vec<_>>());
            for uid in [1, 13] {
                let old = p.read_message("u", "INBOX", uid, None).await.unwrap();
                let new = moved.read_message("u", "INBOX", uid, None).await.unwrap();
                assert_eq!(&old[..], &new[..]);
            }
            assert_eq!(append_one(&moved).await.unwrap(), vec![14]);

            assert!(is_moved(&dir));
            let again = Partition::open(&dir, opts).await;
            assert!(matches!(again, Err(StoreError::Moved)));
        });
    }
}
