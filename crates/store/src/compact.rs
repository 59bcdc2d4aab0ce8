//! Compaction: sealed segments whose share of dead bytes is large are rewritten with only
//! the message bodies the index still refers to.
//!
//! Only segments entirely before the newest checkpoint are candidates, so nothing in them
//! is ever replayed again: the rewrite keeps just bodies (BODY records) in a new segment of
//! kind "compacted". Crash safety, step by step:
//! 1. the new segment is written and fdatasync'ed, the directory synced; a crash here leaves
//!    an unreferenced compacted segment, which recovery deletes;
//! 2. the index entries are switched to the new locations (in memory, in one step) and a
//!    checkpoint is written; a crash before it is durable recovers from the old checkpoint,
//!    which still refers to the old segment;
//! 3. the old segment is deleted only after `checkpoint::KEEP` more checkpoints, so the
//!    fallback checkpoint still finds it.
//!
//! A body's searchable text (the section after its metadata, `record::SEARCH_TEXT_MAGIC`)
//! is live with the body: it is copied along and counted as live bytes, so a segment of
//! messages with their texts is not taken for half dead.
//!
//! I/O is bounded: after `compact_bytes_per_tick` bytes copied the pass yields.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use tracing::{info, warn};

use super::error::{Result, StoreError};
use super::handover::CopyFile;
use super::record::{
    kind, search_text_len, FrameWriter, FRAME_HEADER, SEARCH_TEXT_HEADER, SEARCH_TEXT_MAGIC,
};
use super::replica::FileChange;
use super::segment::{segment_name, segment_path, SegmentKind, SEGMENT_HEADER};
use super::writer::{checkpoint_now, create_segment, write_all_at, Inner};

/// Starts a background compaction pass unless one is running or the partition is closing.
pub(crate) fn maybe_start(inner: &Rc<Inner>) {
    {
        let mut bg = inner.bg.borrow_mut();
        if bg.compaction_running
            || inner.closed.get()
            || inner.abandoned.get()
            || inner.frozen.get()
        {
            return;
        }
        bg.compaction_running = true;
    }
    let inner = inner.clone();
    glommio::spawn_local(async move {
        if let Err(e) = run_pass_inner(&inner).await {
            warn!(error = %e, "compaction failed; will retry after the next checkpoint");
        }
        inner.bg.borrow_mut().compaction_running = false;
    })
    .detach();
}

/// One pass over all candidate segments (waits for a running background pass first).
pub(crate) async fn run_pass(inner: &Rc<Inner>) -> Result<usize> {
    while inner.bg.borrow().compaction_running {
        glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
    }
    inner.bg.borrow_mut().compaction_running = true;
    let r = run_pass_inner(inner).await;
    inner.bg.borrow_mut().compaction_running = false;
    r
}

/// Live bodies per segment: body offset → (size, meta_len).
type Live = HashMap<u32, BTreeMap<u32, (u32, u32)>>;

fn live_bodies(inner: &Inner) -> Live {
    let idx = inner.index.borrow();
    let mut live: Live = HashMap::new();
    for u in idx.users.values() {
        for mb in u.mailboxes.values() {
            for m in &mb.messages {
                live.entry(m.segment)
                    .or_default()
                    .insert(m.offset, (m.size, m.meta_len));
            }
        }
    }
    live
}

async fn run_pass_inner(inner: &Rc<Inner>) -> Result<usize> {
    let Some(ckpt) = inner.bg.borrow().last_checkpoint else {
        return Ok(0);
    };
    let live = live_bodies(inner);
    let retired: Vec<u32> = inner.bg.borrow().retired.iter().map(|r| r.0).collect();
    let candidates: Vec<(u32, u64)> = {
        let files = inner.files.borrow();
        let mut ids: Vec<u32> = files
            .keys()
            .copied()
            .filter(|&id| id < ckpt.segment && !retired.contains(&id))
            .collect();
        ids.sort_unstable();
        ids.into_iter()
            .filter_map(|id| {
                let len = std::fs::metadata(segment_path(&inner.dir, id)).ok()?.len();
                Some((id, len))
            })
            .collect()
    };
    let mut done = 0;
    for (id, len) in candidates {
        if inner.abandoned.get() {
            break;
        }
        let empty = BTreeMap::new();
        let bodies = live.get(&id).unwrap_or(&empty);
        let live_bytes: u64 = bodies
            .values()
            .map(|&(s, m)| u64::from(s) + u64::from(m) + 30)
            .sum();
        let total = len.saturating_sub(SEGMENT_HEADER).max(1);
        let dead_share = |live: u64| 1.0 - live as f64 / total as f64;
        if dead_share(live_bytes) < inner.opts.compact_dead_share {
            continue;
        }
        // Texts only add live bytes: they are read only for a segment that looks dead enough
        // without them.
        let texts = live_text_bytes(inner, id, bodies).await?;
        if dead_share(live_bytes + texts) < inner.opts.compact_dead_share {
            continue;
        }
        compact_segment(inner, id).await?;
        done += 1;
    }
    Ok(done)
}

/// The length of the searchable text stored after the metadata that ends at `at` in `file`,
/// if there is one (else the next frame, or the end of the segment, is there).
async fn text_len(file: &glommio::io::BufferedFile, at: u64) -> Result<Option<usize>> {
    let h = file.read_at(at, SEARCH_TEXT_HEADER).await?;
    Ok(<&[u8; SEARCH_TEXT_HEADER]>::try_from(&h[..])
        .ok()
        .and_then(search_text_len))
}

/// The bytes of the searchable-text sections of the live `bodies` of segment `id`.
async fn live_text_bytes(
    inner: &Rc<Inner>,
    id: u32,
    bodies: &BTreeMap<u32, (u32, u32)>,
) -> Result<u64> {
    let Some(file) = inner.files.borrow().get(&id).cloned() else {
        return Ok(0);
    };
    let mut sum = 0;
    for (&offset, &(size, meta_len)) in bodies {
        let at = u64::from(offset) + u64::from(size) + u64::from(meta_len);
        if let Some(len) = text_len(&file, at).await? {
            sum += (SEARCH_TEXT_HEADER + len) as u64;
        }
    }
    Ok(sum)
}

/// Rewrites segment `old` with its live bodies (and their searchable texts) only.
async fn compact_segment(inner: &Rc<Inner>, old: u32) -> Result<()> {
    let src = inner
        .files
        .borrow()
        .get(&old)
        .cloned()
        .ok_or_else(|| StoreError::Corrupt(format!("segment {old} not open")))?;
    if inner.abandoned.get() {
        return Ok(());
    }
    let new_id = inner.reserve_segment_id();
    let path = segment_path(&inner.dir, new_id);
    let bodies = live_bodies(inner).remove(&old).unwrap_or_default();
    // Only BODY records: the segment gets the oldest format that holds them.
    let format = super::record::format_of(kind::BODY);
    let dst = create_segment(&inner.dir, new_id, SegmentKind::Compacted, format).await?;
    let copied = async {
        let mut pos = SEGMENT_HEADER;
        let mut moved: HashMap<u32, u32> = HashMap::new();
        let mut since_yield = 0usize;
        for (&offset, &(size, meta_len)) in &bodies {
            let n = size as usize + meta_len as usize;
            let data = src.read_at(u64::from(offset), n).await?;
            if data.len() != n {
                return Err(StoreError::Corrupt(format!("short read in segment {old}")));
            }
            let text_at = u64::from(offset) + n as u64;
            let text = match text_len(&src, text_at).await? {
                Some(len) => {
                    let text = src
                        .read_at(text_at + SEARCH_TEXT_HEADER as u64, len)
                        .await?;
                    if text.len() != len {
                        return Err(StoreError::Corrupt(format!("short read in segment {old}")));
                    }
                    Some(text)
                }
                None => None,
            };
            let text_bytes = text.as_ref().map_or(0, |t| SEARCH_TEXT_HEADER + t.len());
            let mut frame = Vec::with_capacity(n + text_bytes + 32);
            let mut w = FrameWriter::new(&mut frame, kind::BODY);
            w.str("").u32(size).u32(meta_len).bytes(&data);
            if let Some(text) = &text {
                w.u32(SEARCH_TEXT_MAGIC).u32(text.len() as u32).bytes(text);
            }
            let flen = w.finish();
            // Body starts after the frame header, the empty user (2) and two lengths (8).
            let body_at = pos + FRAME_HEADER as u64 + 10;
            let body_at = u32::try_from(body_at)
                .map_err(|_| StoreError::Corrupt("compacted segment beyond 4 GiB".into()))?;
            write_all_at(&dst, &frame, pos).await?;
            moved.insert(offset, body_at);
            pos += flen as u64;
            since_yield += n + text_bytes;
            if since_yield >= inner.opts.compact_bytes_per_tick {
                since_yield = 0;
                futures_lite::future::yield_now().await;
            }
        }
        dst.fdatasync().await?;
        Ok::<_, StoreError>(moved)
    }
    .await;
    let moved = match copied {
        // As after a crash here: recovery deletes the unreferenced segment.
        Ok(_) if inner.abandoned.get() => return Ok(()),
        Ok(x) => x,
        Err(e) => {
            let _ = dst.close().await;
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
    };
    // Switch every entry in one step (no await while the index is borrowed).
    {
        let mut idx = inner.index.borrow_mut();
        for u in idx.users.values_mut() {
            for mb in u.mailboxes.values_mut() {
                for m in mb.messages.iter_mut().filter(|m| m.segment == old) {
                    // Every body referenced now was live when the pass began: a copy needs a
                    // live source, so no entry can point at a body that was not copied.
                    if let Some(&at) = moved.get(&m.offset) {
                        m.segment = new_id;
                        m.offset = at;
                    }
                }
            }
        }
    }
    inner.files.borrow_mut().insert(new_id, Rc::new(dst));
    // Replicas get the new segment before the checkpoint that refers to it.
    inner.files_changed(FileChange {
        added: vec![CopyFile {
            name: segment_name(new_id),
            len: std::fs::metadata(&path)?.len(),
        }],
        removed: Vec::new(),
    });
    checkpoint_now(inner).await?;
    {
        let mut bg = inner.bg.borrow_mut();
        let at = bg.checkpoints_written;
        bg.retired.push((old, at));
    }
    inner.files.borrow_mut().remove(&old);
    // A map would keep the retired file's blocks allocated after its removal.
    inner.maps.forget(old);
    info!(
        old,
        new = new_id,
        bodies = bodies.len(),
        "compacted segment"
    );
    Ok(())
}
