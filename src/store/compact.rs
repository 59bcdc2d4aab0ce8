//! Compaction of sealed segments (see docs/storage-format.md).

use std::rc::Rc;

use super::partition::Inner;

/// Starts a background compaction pass when one is due.
pub(crate) fn maybe_start(_inner: &Rc<Inner>) {}
