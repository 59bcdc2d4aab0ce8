//! The owner's side: a [`Shipper`] per open partition, with per replica an ordered queue
//! drained by one task (seed, stream, in sync; dropped from `in_sync` before a batch it
//! lacks is acknowledged).

use super::*;
use ringmail_cluster::ReplicaProgress;

/// Payload bytes of a batch request that are not records: the request header with the
/// owner's name (at most 64 KiB) and the batch header, with margin.
pub(super) const REQUEST_ROOM: usize = 128 << 10;

/// One replica as the owner's side sees it.
pub(super) struct Peer {
    queue: mpsc::UnboundedSender<Queued>,
    /// Batches go to it in order and it has taken every batch queued so far.
    streaming: Cell<bool>,
    /// This side asked etcd to add it to the in-sync set (so acknowledgements wait for it
    /// even before the local map shows it).
    claimed: Cell<bool>,
    /// Bytes of batches in `queue`.
    pub(super) queued: Cell<usize>,
    /// The queue was dropped while seeding: another round is needed.
    pub(super) overflowed: Cell<bool>,
    /// Set when it is removed from the map's replicas: its task ends.
    gone: Cell<bool>,
    /// Identifies it in the lag gauge.
    id: u64,
    /// When each batch in `queue` was queued, and its records, oldest first.
    waiting: RefCell<std::collections::VecDeque<(Instant, usize)>>,
    /// Where its copy is known durable: the end of the last seeding round or batch it
    /// confirmed (`ringmail cluster status` shows it).
    at: Cell<Option<LogEnd>>,
}

/// Peer ids, unique in the process.
static NEXT_PEER: AtomicU64 = AtomicU64::new(1);

impl Peer {
    /// A batch of `records` records entered the queue.
    fn batch_queued(&self, records: usize) {
        let mut waiting = self.waiting.borrow_mut();
        waiting.push_back((Instant::now(), records));
        if waiting.len() == 1 {
            set_waiting_since(self.id, waiting.front().map(|&(at, _)| at));
        }
        COUNTERS.lag_batches.fetch_add(1, Ordering::Relaxed);
        COUNTERS
            .lag_records
            .fetch_add(records as u64, Ordering::Relaxed);
    }

    /// The oldest batch left the queue (sent, or failed).
    fn batch_left(&self) {
        let mut waiting = self.waiting.borrow_mut();
        if let Some((_, records)) = waiting.pop_front() {
            COUNTERS.lag_batches.fetch_sub(1, Ordering::Relaxed);
            COUNTERS
                .lag_records
                .fetch_sub(records as u64, Ordering::Relaxed);
        }
        set_waiting_since(self.id, waiting.front().map(|&(at, _)| at));
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // Batches still queued are dropped with it: they no longer count.
        while !self.waiting.borrow().is_empty() {
            self.batch_left();
        }
        set_waiting_since(self.id, None);
    }
}

enum Queued {
    Batch(Batch, Option<oneshot::Sender<bool>>),
    Files(FileChange),
}

/// The owner's side of one partition's replication: the partition's `ShipBatch` sink.
pub struct Shipper<D, T> {
    p: u32,
    directory: Rc<D>,
    transport: Rc<T>,
    /// The partition's directory, read by seeding and catch-up rounds.
    dir: PathBuf,
    /// `sync = true`: acknowledge only what every streamed-to replica has.
    sync: bool,
    pub(super) peers: RefCell<HashMap<String, Rc<Peer>>>,
    /// For the rounds' snapshots.
    partition: Weak<Partition>,
    /// Itself, for the futures of `ship`.
    me: Weak<Self>,
}

impl<D: ReplicaDirectory + 'static, T: Transport + 'static> Shipper<D, T> {
    /// A shipper for partition `p`, open as `partition`, set as its sink.
    pub fn attach(
        p: u32,
        partition: &Rc<Partition>,
        directory: Rc<D>,
        transport: Rc<T>,
        sync: bool,
    ) -> Rc<Self> {
        let shipper = Rc::new_cyclic(|me| Shipper {
            p,
            directory,
            transport,
            dir: partition.dir().to_path_buf(),
            sync,
            peers: RefCell::default(),
            partition: Rc::downgrade(partition),
            me: me.clone(),
        });
        partition.set_replication(Some(shipper.clone()));
        shipper.follow_map();
        shipper
    }

    /// Starts shipping to replicas the map added, stops for those it removed. Called on
    /// every map change concerning the partition, and with every batch.
    pub fn follow_map(self: &Rc<Self>) {
        let listed = self.directory.replicas(self.p);
        let me = self.directory.node();
        let mut peers = self.peers.borrow_mut();
        peers.retain(|node, peer| {
            let keep = listed.iter().any(|r| &r.node == node);
            if !keep {
                peer.gone.set(true);
                peer.queue.close_channel();
            }
            keep
        });
        for r in listed.iter().filter(|r| r.node != me) {
            if peers.contains_key(&r.node) {
                continue;
            }
            let (tx, rx) = mpsc::unbounded();
            let peer = Rc::new(Peer {
                queue: tx,
                streaming: Cell::new(false),
                claimed: Cell::new(false),
                queued: Cell::new(0),
                overflowed: Cell::new(false),
                gone: Cell::new(false),
                id: NEXT_PEER.fetch_add(1, Ordering::Relaxed),
                waiting: RefCell::default(),
                at: Cell::new(None),
            });
            peers.insert(r.node.clone(), peer.clone());
            let this = self.clone();
            let node = r.node.clone();
            glommio::spawn_local(async move { this.run_peer(&node, &peer, rx).await }).detach();
        }
    }

    /// The partition's log end and each replica's progress, for `ringmail cluster status`;
    /// `None` once the partition is closed.
    pub fn progress(&self) -> Option<(LogEnd, Vec<(String, ReplicaProgress)>)> {
        let end = self.partition.upgrade()?.log_end();
        let peers = self.peers.borrow();
        let replicas = peers
            .iter()
            .map(|(node, peer)| {
                let waiting = peer.waiting.borrow();
                let progress = ReplicaProgress {
                    state: if peer.streaming.get() {
                        "streaming"
                    } else {
                        "seeding"
                    },
                    position: peer.at.get().map(position),
                    lag_batches: waiting.len() as u64,
                    lag_records: waiting.iter().map(|&(_, n)| n as u64).sum(),
                    lag_ms: waiting
                        .front()
                        .map_or(0, |(since, _)| since.elapsed().as_millis() as u64),
                };
                (node.clone(), progress)
            })
            .collect();
        Some((end, replicas))
    }

    /// Stops shipping (the partition was closed or opened anew): every replica's task ends.
    pub fn stop(&self) {
        for (_, peer) in self.peers.borrow_mut().drain() {
            peer.gone.set(true);
            peer.queue.close_channel();
        }
    }

    /// A replica's task: seed it, stream to it, re-seed after any failure, until it is no
    /// longer listed.
    async fn run_peer(&self, node: &str, peer: &Peer, mut rx: mpsc::UnboundedReceiver<Queued>) {
        let mut failures = 0u32;
        while !peer.gone.get() && self.serving() {
            match self.seed_and_stream(node, peer, &mut rx).await {
                Ok(()) => return,
                Err(e) => {
                    // A replica that was streamed to starts again at the shortest wait.
                    failures = if peer.streaming.replace(false) {
                        1
                    } else {
                        failures + 1
                    };
                    if !self.sync && peer.claimed.get() {
                        // Asynchronous shipping acknowledged without it; it is behind now.
                        let _ = self.drop_in_sync(node, Some(peer)).await;
                    }
                    warn!(
                        partition = self.p,
                        replica = node,
                        "replica behind, seeding it again: {e}"
                    );
                    // The batches queued meanwhile are in the next round's snapshot.
                    self.drain_failed(peer, &mut rx);
                    glommio::timer::sleep(retry_delay(failures)).await;
                    self.drain_failed(peer, &mut rx);
                }
            }
        }
    }

    /// Fails what waits in the queue (the batches' writers drop the replica from in-sync).
    fn drain_failed(&self, peer: &Peer, rx: &mut mpsc::UnboundedReceiver<Queued>) {
        while let Ok(q) = rx.try_recv() {
            if let Queued::Batch(_, done) = q {
                peer.batch_left();
                if let Some(done) = done {
                    let _ = done.send(false);
                }
            }
        }
        peer.queued.set(0);
    }

    /// The partition is open here and not handed over.
    pub(super) fn serving(&self) -> bool {
        self.partition.upgrade().is_some_and(|p| !p.is_moved())
    }

    fn addr(&self, node: &str) -> Result<String, String> {
        self.directory
            .replicas(self.p)
            .into_iter()
            .find(|r| r.node == node && !r.internal.is_empty())
            .map(|r| r.internal)
            .ok_or_else(|| format!("replica node {node} is not alive"))
    }

    async fn call(&self, node: &str, kind: u16, body: &[u8]) -> Result<Vec<u8>, String> {
        self.call_with(node, kind, body.len(), |out| out.extend_from_slice(body))
            .await
    }

    /// [`Shipper::call`] with a body of `len` bytes that `body` writes straight after the
    /// request's header (a batch's records are copied once, not encoded and then copied).
    async fn call_with(
        &self,
        node: &str,
        kind: u16,
        len: usize,
        body: impl FnOnce(&mut Vec<u8>),
    ) -> Result<Vec<u8>, String> {
        let epoch = self
            .directory
            .is_owner(self.p)
            .ok_or("this node no longer owns the partition")?;
        let mut payload = request(self.p, epoch, &self.directory.node(), len);
        body(&mut payload);
        COUNTERS
            .bytes
            .fetch_add(payload.len() as u64, Ordering::Relaxed);
        let addr = self.addr(node)?;
        self.transport.call(node, &addr, kind, payload).await
    }

    /// One seeding round: what the replica lacks of the partition as it is now. Returns the
    /// replica's log end after it.
    async fn seed_round(&self, node: &str) -> Result<LogEnd, String> {
        let partition = self.partition.upgrade().ok_or("the partition was closed")?;
        let snap = partition.snapshot().map_err(|e| e.to_string())?;
        drop(partition);
        let held = self.call(node, KIND_ATTACH, &[]).await?;
        let held = decode_files(&held).ok_or("malformed file list")?;
        let (dir, files) = (self.dir.clone(), snap.clone());
        let plan = glommio::executor()
            .spawn_blocking(move || seed_plan(&dir, &files, &held).map_err(|e| e.to_string()))
            .await?;
        for f in &plan {
            self.send_file(node, &f.name, f.from, f.len).await?;
        }
        let list: String = snap.files.iter().map(|f| format!("{}\n", f.name)).collect();
        let end = self.call(node, KIND_KEEP, list.as_bytes()).await?;
        match decode_end(&end).ok_or("malformed answer")? {
            Some(end) if end == snap.end => Ok(end),
            other => Err(format!(
                "the replica's copy ends at {other:?}, not at {:?}",
                snap.end
            )),
        }
    }

    /// Sends bytes `from..to` of a partition file, chunk by chunk.
    async fn send_file(&self, node: &str, name: &str, from: u64, to: u64) -> Result<(), String> {
        let path = self.dir.join(name);
        let mut offset = from;
        while offset < to {
            let end = to.min(offset + MAX_CHUNK as u64);
            let read = path.clone();
            let piece = glommio::executor()
                .spawn_blocking(move || crate::moves::read_range(&read, offset, end))
                .await
                .map_err(|e| format!("reading {name}: {e}"))?;
            let mut body = Vec::with_capacity(piece.len() + 64);
            encode_chunk(&mut body, &Chunk::new(name, offset, &piece));
            self.call(node, KIND_CHUNK, &body).await?;
            offset = end;
        }
        Ok(())
    }

    async fn seed_and_stream(
        &self,
        node: &str,
        peer: &Peer,
        rx: &mut mpsc::UnboundedReceiver<Queued>,
    ) -> Result<(), String> {
        let mut pos = loop {
            peer.overflowed.set(false);
            let end = self.seed_round(node).await?;
            if !peer.overflowed.get() {
                break end;
            }
            // Batches were left out: the next round's snapshot holds them and those queued.
            self.drain_failed(peer, rx);
        };
        info!(partition = self.p, replica = node, end = ?pos, "replica seeded");
        peer.at.set(Some(pos));
        // The batches queued since the round's snapshot bring it up to date.
        let mut caught_up = false;
        loop {
            let next = if caught_up {
                rx.next().await
            } else {
                match rx.try_recv() {
                    Ok(q) => Some(q),
                    Err(mpsc::TryRecvError::Closed) => None,
                    Err(mpsc::TryRecvError::Empty) => {
                        caught_up = true;
                        peer.streaming.set(true);
                        self.mark_in_sync(node, peer).await?;
                        continue;
                    }
                }
            };
            let Some(q) = next else {
                return Ok(());
            };
            match q {
                Queued::Batch(batch, done) => {
                    peer.batch_left();
                    peer.queued
                        .set(peer.queued.get().saturating_sub(batch.bytes.len()));
                    let sent = if batch.end() <= pos {
                        // Already in the round's snapshot.
                        Ok(pos)
                    } else if batch.prev != pos {
                        Err(format!("batch at {:?} does not continue {pos:?}", batch.at))
                    } else {
                        self.send_batch(node, &batch).await
                    };
                    let ok = sent.is_ok();
                    if let Some(done) = done {
                        let _ = done.send(ok);
                    }
                    pos = sent?;
                    peer.at.set(Some(pos));
                    if caught_up && !peer.streaming.get() {
                        return Err("a batch took too long; dropped from the in-sync set".into());
                    }
                }
                Queued::Files(change) => self.catch_up(node, &change).await?,
            }
        }
    }

    /// Sends a batch in pieces that fit the link's frames (one piece unless large messages
    /// were committed together); the replica has it durable once the last is answered.
    async fn send_batch(&self, node: &str, batch: &Batch) -> Result<LogEnd, String> {
        // Room for the request's header (p, epoch, the owner's name) and the batch's own.
        let max = self.transport.max_payload().saturating_sub(REQUEST_ROOM);
        for piece in batch.pieces(max) {
            let answer = self
                .call_with(node, KIND_BATCH, piece.encoded_len(), |out| {
                    piece.encode(out)
                })
                .await?;
            match decode_end(&answer) {
                Some(Some(end)) if end == piece.end() => {}
                other => return Err(format!("the replica answered {other:?} for a batch")),
            }
        }
        COUNTERS.batches.fetch_add(1, Ordering::Relaxed);
        Ok(batch.end())
    }

    /// Copies the files a checkpoint or compaction added, then removes what it removed.
    async fn catch_up(&self, node: &str, change: &FileChange) -> Result<(), String> {
        for f in &change.added {
            self.send_file(node, &f.name, 0, f.len).await?;
        }
        if !change.removed.is_empty() {
            let list: String = change.removed.iter().map(|n| format!("{n}\n")).collect();
            self.call(node, KIND_REMOVE, list.as_bytes()).await?;
        }
        Ok(())
    }

    async fn mark_in_sync(&self, node: &str, peer: &Peer) -> Result<(), String> {
        let listed = self.directory.replicas(self.p);
        if listed.iter().any(|r| r.node == node && r.in_sync) {
            peer.claimed.set(true);
            return Ok(());
        }
        let epoch = self.directory.is_owner(self.p).ok_or("not the owner")?;
        // From here on every acknowledgement waits for this replica.
        peer.claimed.set(true);
        self.directory
            .set_in_sync(self.p, node, true, epoch)
            .await?;
        COUNTERS.in_sync_adds.fetch_add(1, Ordering::Relaxed);
        info!(partition = self.p, replica = node, epoch, "replica in sync");
        Ok(())
    }

    /// Removes `node` from the in-sync set before a batch it lacks is acknowledged.
    async fn drop_in_sync(&self, node: &str, peer: Option<&Peer>) -> Result<(), StoreError> {
        let epoch = self
            .directory
            .is_owner(self.p)
            .ok_or(StoreError::NotPermitted("no longer the partition's owner"))?;
        if let Err(e) = self.directory.set_in_sync(self.p, node, false, epoch).await {
            warn!(
                partition = self.p,
                replica = node,
                "could not drop a failed replica from the in-sync set; the write fails: {e}"
            );
            return Err(StoreError::NotPermitted(
                "a replica failed and could not be dropped from the in-sync set",
            ));
        }
        if let Some(peer) = peer {
            peer.claimed.set(false);
        }
        COUNTERS.in_sync_drops.fetch_add(1, Ordering::Relaxed);
        warn!(
            partition = self.p,
            replica = node,
            epoch,
            "replica dropped from the in-sync set"
        );
        Ok(())
    }

    fn queue(&self, peer: &Peer, q: Queued) {
        if let Queued::Batch(b, _) = &q {
            let queued = peer.queued.get() + b.bytes.len();
            if queued > QUEUE_LIMIT {
                // Seeding takes long, or (asynchronous shipping) the replica fell that far
                // behind: the batch is not queued, and the replica is seeded again instead
                // (a waiting writer hears of it as a failure).
                peer.overflowed.set(true);
                peer.streaming.set(false);
                return;
            }
            peer.queued.set(queued);
            peer.batch_queued(b.records());
        }
        let _ = peer.queue.unbounded_send(q);
    }

    async fn ship_batch(self: Rc<Self>, batch: Batch) -> Result<(), StoreError> {
        self.follow_map();
        let listed = self.directory.replicas(self.p);
        let peers: Vec<(String, Rc<Peer>)> = self
            .peers
            .borrow()
            .iter()
            .map(|(n, p)| (n.clone(), p.clone()))
            .collect();
        let mut waits = Vec::new();
        let mut drop = Vec::new();
        for (node, peer) in peers {
            let in_sync = listed.iter().any(|r| r.node == node && r.in_sync);
            let wait = self.sync && (peer.streaming.get() || peer.claimed.get());
            let (done, answer) = if wait {
                let (tx, rx) = oneshot::channel();
                (Some(tx), Some(rx))
            } else {
                (None, None)
            };
            self.queue(&peer, Queued::Batch(batch.clone(), done));
            match answer {
                Some(rx) => waits.push((node, peer, rx)),
                None if self.sync && in_sync => drop.push((node, peer)),
                None => {}
            }
        }
        // Replicas that take the batch durably in time are done; the others are dropped
        // from the in-sync set before the batch counts as acknowledged. Their tasks work
        // at the same time, so one deadline covers them all.
        let deadline = Instant::now() + BATCH_TIMEOUT;
        for (node, peer, answer) in waits {
            let left = deadline.saturating_duration_since(Instant::now());
            let ok = future::or(async { answer.await.unwrap_or(false) }, async {
                glommio::timer::sleep(left).await;
                false
            })
            .await;
            if !ok {
                // Its task re-seeds it once it sees this.
                peer.streaming.set(false);
                drop.push((node, peer));
            }
        }
        for (node, peer) in drop {
            self.drop_in_sync(&node, Some(&peer)).await?;
        }
        Ok(())
    }
}

impl<D: ReplicaDirectory + 'static, T: Transport + 'static> ShipBatch for Shipper<D, T> {
    fn ship(&self, batch: Batch) -> Shipped {
        match self.me.upgrade() {
            Some(this) => Box::pin(this.ship_batch(batch)),
            None => Box::pin(async { Err(StoreError::NotPermitted("replication stopped")) }),
        }
    }

    fn files_changed(&self, change: FileChange) {
        for peer in self.peers.borrow().values() {
            self.queue(peer, Queued::Files(change.clone()));
        }
    }
}

/// A store log end as the status shows it.
pub(super) fn position(end: LogEnd) -> ringmail_cluster::LogPosition {
    ringmail_cluster::LogPosition {
        segment: end.segment,
        offset: end.offset,
    }
}
