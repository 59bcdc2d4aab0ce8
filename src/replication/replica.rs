//! The replica node's side: the RPCs that keep a partition's copy, one request per copy
//! at a time, and the promotion of a copy when the map makes this node the owner.

use super::*;

/// Replica copies, by partition directory: whether a request is working on one (on any
/// executor: requests for one partition come over several connections, so a second one at
/// once is refused; the owner sends one at a time, a second can only be a timed-out one's
/// successor), and how many requests have taken it, so that an executor knows whether the
/// copy it kept open after its last batch is still as it left it.
static COPIES: Mutex<Vec<(PathBuf, CopyState)>> = Mutex::new(Vec::new());

#[derive(Clone, Copy)]
struct CopyState {
    busy: bool,
    taken: u64,
}

/// A request's hold on a replica copy; `taken` counts the requests so far, this one included.
pub(super) struct Busy {
    target: PathBuf,
    taken: u64,
}

impl Busy {
    pub(super) fn take(target: &Path) -> Option<Busy> {
        let mut copies = COPIES.lock().unwrap_or_else(|e| e.into_inner());
        let taken = match copies.iter_mut().find(|(t, _)| t == target) {
            Some((_, c)) if c.busy => return None,
            Some((_, c)) => {
                c.busy = true;
                c.taken += 1;
                c.taken
            }
            None => {
                copies.push((
                    target.to_path_buf(),
                    CopyState {
                        busy: true,
                        taken: 1,
                    },
                ));
                1
            }
        };
        Some(Busy {
            target: target.to_path_buf(),
            taken,
        })
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let mut copies = COPIES.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, c)) = copies.iter_mut().find(|(t, _)| *t == self.target) {
            c.busy = false;
        }
    }
}

thread_local! {
    /// The copies this executor applied the last batch of, open, with the request count
    /// then. A batch of a stream reuses it when no other request touched the copy since
    /// (the common case): no directory listing, header read and file open per batch.
    static OPEN_COPIES: RefCell<HashMap<PathBuf, (u64, ReplicaLog)>> = RefCell::default();
}

/// The copy at `target` as the request holding `busy` finds it: the one this executor kept
/// open if nothing touched it since, else opened from its files.
fn open_copy(target: &Path, busy: &Busy) -> Result<ReplicaLog, StoreError> {
    let kept = OPEN_COPIES.with(|c| c.borrow_mut().remove(target));
    match kept {
        Some((taken, r)) if taken + 1 == busy.taken => Ok(r),
        _ => ReplicaLog::open(target),
    }
}

pub fn is_replication_kind(kind: u16) -> bool {
    (KIND_ATTACH..=KIND_REMOVE).contains(&kind) || kind == super::KIND_STATUS
}

/// Answers one replication request on a replica node: `Ok` payload or a refusal's reason.
/// `target` gives the directory partition `p` lives in once promoted.
pub async fn serve(
    directory: &dyn ReplicaDirectory,
    target: impl Fn(u32) -> PathBuf,
    kind: u16,
    payload: Vec<u8>,
) -> Result<Vec<u8>, String> {
    let h = parse_request(&payload).ok_or("malformed replication request")?;
    let p = h.p;
    match directory.replica_of(p) {
        Some((owner, epoch)) if owner == h.owner && h.epoch >= epoch => {}
        Some((owner, epoch)) => {
            return Err(format!(
                "partition {p}: node {} at epoch {} is not its owner ({owner} at epoch {epoch})",
                h.owner, h.epoch
            ))
        }
        None => return Err(format!("this node holds no replica of partition {p}")),
    }
    let target = target(p);
    let busy = Busy::take(&target).ok_or("another request for this replica is running")?;
    let err = |e: StoreError| e.to_string();
    match kind {
        KIND_ATTACH => {
            // Reading every file for its checksum runs on the blocking pool.
            glommio::executor()
                .spawn_blocking(move || {
                    let files = ReplicaLog::rejoin(&target).and_then(|r| r.files());
                    files.map(|f| encode_files(&f)).map_err(err)
                })
                .await
        }
        KIND_CHUNK => {
            let body = h.body.to_vec();
            glommio::executor()
                .spawn_blocking(move || {
                    let chunk = decode_chunk(&body).ok_or("malformed chunk")?;
                    let len = ReplicaLog::open(&target)
                        .and_then(|mut r| r.write_chunk(&chunk))
                        .map_err(err)?;
                    Ok(len.to_be_bytes().to_vec())
                })
                .await
        }
        KIND_KEEP | KIND_REMOVE => {
            let names: Vec<String> = std::str::from_utf8(h.body)
                .map_err(|_| "malformed file list")?
                .lines()
                .map(str::to_string)
                .collect();
            let mut r = ReplicaLog::open(&target).map_err(err)?;
            if kind == KIND_KEEP {
                let keep: Vec<&str> = names.iter().map(String::as_str).collect();
                r.keep_only(&keep).map_err(err)?;
            } else {
                r.remove(&names).map_err(err)?;
            }
            Ok(encode_end(r.position()))
        }
        KIND_BATCH => {
            let batch = Batch::decode(h.body).map_err(err)?;
            let mut r = open_copy(&target, &busy).map_err(err)?;
            let end = r.apply(&batch).await.map_err(err)?;
            OPEN_COPIES.with(|c| c.borrow_mut().insert(target.clone(), (busy.taken, r)));
            Ok(encode_end(Some(end)))
        }
        _ => Err("unknown replication request".into()),
    }
}

/// Removes the replica copy of the partition that lives at `target` when promoted, if
/// `still_stale` holds once no replication request is working on the copy (the caller
/// checks its map again: a replica placed here meanwhile keeps it). Returns whether it was
/// removed (not while a request holds the copy: the next look tries again).
pub(super) async fn remove_stale_copy(
    target: &Path,
    still_stale: impl FnOnce() -> bool,
) -> Result<bool, StoreError> {
    remove_stale_dir(target, ReplicaLog::dir_for(target), still_stale).await
}

/// Removes `dir`, a stale copy of the partition that lives at `target` (its replica copy, or
/// the directory itself when a move or a takeover left it), under the same hold and check as
/// [`remove_stale_copy`].
pub(super) async fn remove_stale_dir(
    target: &Path,
    dir: PathBuf,
    still_stale: impl FnOnce() -> bool,
) -> Result<bool, StoreError> {
    let Some(_busy) = Busy::take(target) else {
        return Ok(false);
    };
    if !still_stale() {
        return Ok(false);
    }
    // A copy this executor kept open for the next batch goes with it; one kept by another
    // executor is not reused, since taking the copy counted as a request.
    OPEN_COPIES.with(|c| c.borrow_mut().remove(target));
    glommio::executor()
        .spawn_blocking(move || match remove_marker_last(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StoreError::from(e)),
            _ => Ok(()),
        })
        .await?;
    Ok(true)
}

/// Removes `dir` so that a removal cut short (a crash, an I/O error) never leaves what
/// looks like a partition with part of its files: a `p-NNNN/` a move or a takeover left is
/// told from a live one only by its MOVED marker, and [`promote_if_replica`] would drop the
/// replica copy for an unmarked one. So the marker goes last, once the rest is gone for
/// good, and the parent is synced before the removal is counted.
fn remove_marker_last(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name() == ringmail_store::MOVED_MARKER {
            continue;
        }
        if entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(entry.path())?;
        } else {
            std::fs::remove_file(entry.path())?;
        }
    }
    std::fs::File::open(dir)?.sync_all()?;
    std::fs::remove_dir_all(dir)?;
    if let Some(parent) = dir.parent() {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

/// Before partition `p` is opened at `target` on the node that now owns it: a replica copy
/// there becomes the partition (the map promoted this node), unless a partition directory
/// is there already (a move installed one; the replica copy is stale then and goes).
pub fn promote_if_replica(p: u32, target: &Path) -> Result<(), StoreError> {
    if !ReplicaLog::dir_for(target).is_dir() {
        return Ok(());
    }
    let _busy = Busy::take(target).ok_or(StoreError::NotPermitted(
        "the replica copy is being written; try again",
    ))?;
    // A copy this executor kept open for the next batch becomes the partition's files.
    OPEN_COPIES.with(|c| c.borrow_mut().remove(target));
    let r = ReplicaLog::open(target)?;
    if target.exists() && !ringmail_store::is_moved(target) {
        info!(
            partition = p,
            "dropping a stale replica copy: the partition is here"
        );
        return r.discard();
    }
    let end = r.position();
    r.promote()?;
    COUNTERS.promotions.fetch_add(1, Ordering::Relaxed);
    info!(partition = p, end = ?end, "replica promoted: serving the partition from its copy");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_a_moved_directory_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("p-0003");
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        for f in ["seg-0001", "sub/x", ringmail_store::MOVED_MARKER] {
            std::fs::write(dir.join(f), b"x").unwrap();
        }
        remove_marker_last(&dir).unwrap();
        assert!(!dir.exists());
        let gone = remove_marker_last(&dir).unwrap_err();
        assert_eq!(gone.kind(), std::io::ErrorKind::NotFound);
    }
}
