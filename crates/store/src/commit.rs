//! Group commit: records produced during one executor tick share one write and one
//! fdatasync, and each mutation's future resolves only after the sync that covers it.
//!
//! Mutations encode their records into `pending` and get a [`Slot`]. The first record of a
//! batch spawns the flusher, which yields once (so every task runnable in this tick adds its
//! records), then writes and syncs everything pending, applies the records to the index and
//! fills the slots. Records arriving while a sync is in flight form the next batch.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use super::error::{Result, StoreError};
use super::index::Applied;
use super::record::{self, FRAME_HEADER};

/// Where one mutation's outcome is delivered.
#[derive(Default)]
pub(crate) struct Slot {
    result: RefCell<Option<Result<Applied>>>,
    waker: RefCell<Option<Waker>>,
}

impl Slot {
    pub fn fill(&self, r: Result<Applied>) {
        *self.result.borrow_mut() = Some(r);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    /// Resolves once the record is durable and applied (or failed).
    pub fn wait(self: Rc<Self>) -> SlotFuture {
        SlotFuture(self)
    }
}

/// Future of a [`Slot`].
pub(crate) struct SlotFuture(Rc<Slot>);

impl Future for SlotFuture {
    type Output = Result<Applied>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(r) = self.0.result.borrow_mut().take() {
            return Poll::Ready(r);
        }
        *self.0.waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// Records waiting for the next flush.
#[derive(Default)]
pub(crate) struct Pending {
    pub bytes: Vec<u8>,
    /// Start of each record in `bytes` with its slot.
    pub records: Vec<(usize, Rc<Slot>)>,
}

impl Pending {
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The oldest segment format that may hold every record of the batch.
    pub fn format(&self) -> u32 {
        self.records
            .iter()
            .filter_map(|&(start, _)| self.bytes.get(start + FRAME_HEADER - 1))
            .map(|&kind| record::format_of(kind))
            .max()
            .unwrap_or(1)
    }

    /// Splits off the first record (for `Options::group_commit = false`).
    pub fn split_first(&mut self) -> Pending {
        if self.records.len() <= 1 {
            return std::mem::take(self);
        }
        let cut = self.records[1].0;
        let rest_bytes = self.bytes.split_off(cut);
        let rest_records: Vec<(usize, Rc<Slot>)> = self
            .records
            .drain(1..)
            .map(|(start, slot)| (start - cut, slot))
            .collect();
        Pending {
            bytes: std::mem::replace(&mut self.bytes, rest_bytes),
            records: std::mem::replace(&mut self.records, rest_records),
        }
    }

    /// Fails every record of a batch that could not be made durable.
    pub fn fail(self, e: &StoreError) {
        Self::fail_records(self.records, e);
    }

    /// Fails the records of a batch whose bytes were taken apart from them.
    pub fn fail_records(records: Vec<(usize, Rc<Slot>)>, e: &StoreError) {
        for (_, s) in records {
            s.fill(Err(e.clone()));
        }
    }
}

/// Waits for several slots; the first error wins, but all are awaited so that nothing
/// of the operation is still in flight when the caller answers.
pub(crate) async fn wait_all(slots: Vec<Rc<Slot>>) -> Result<Vec<Applied>> {
    let mut out = Vec::with_capacity(slots.len());
    let mut err = None;
    for s in slots {
        match s.wait().await {
            Ok(a) => out.push(a),
            Err(e) => {
                if err.is_none() {
                    err = Some(e);
                }
            }
        }
    }
    match err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}
