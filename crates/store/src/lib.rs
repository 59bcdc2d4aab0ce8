//! Per-partition append-only log, group commit, recovery, in-memory index, checkpoints.
//!
//! One [`Partition`] is owned by one executor and holds many users. Every mutation is a
//! framed record appended to the partition's log; records produced in one executor tick
//! share one fdatasync (group commit) and each mutation resolves only once its record is
//! durable and applied to the in-memory index. The format is specified in
//! docs/storage-format.md.
//!
//! Change notification is a pull model: a session remembers only its last HIGHESTMODSEQ
//! and UIDNEXT, asks [`Partition::changes_since`] at command boundaries, and in IDLE awaits
//! [`Partition::wait_for_change`] (one waker per idle session).
//!
//! Sieve (module `scripts`; format in docs/storage-format.md): a user's scripts live in
//! their partition. ManageSieve uses [`Partition::scripts`], [`Partition::script`],
//! [`Partition::put_script`], [`Partition::delete_script`], [`Partition::rename_script`]
//! and [`Partition::activate_script`]. Delivery reads [`Partition::script_version`] (cheap)
//! and, when it differs from the version of its compiled copy, [`Partition::active_script`];
//! vacation `:days` and `duplicate` use [`Partition::remembered`] and
//! [`Partition::remember`]. The store keeps sources as given: the caller compiles them.

mod check;
mod checkpoint;
mod columns;
#[cfg(test)]
mod columns_tests;
mod commit;
mod compact;
mod error;
mod handover;
mod incoming;
mod index;
mod mapped;
#[cfg(test)]
mod mapped_tests;
mod partition;
mod placement;
#[cfg(test)]
mod raise_uidnext_tests;
mod read;
mod record;
mod recovery;
mod replica;
#[cfg(test)]
mod replica_tests;
mod scripts;
mod search_fields;
#[cfg(test)]
mod search_fields_tests;
#[cfg(test)]
mod search_text_tests;
mod segment;
mod sieve;
mod sieve_log;
#[cfg(test)]
mod sieve_tests;
mod stats;
#[cfg(test)]
mod test_support;
mod types;
mod view;
mod writer;

pub use check::{check, CheckReport, Damage, PartitionReport, SegmentReport};
pub use columns::Columns;
pub use error::{Result, StoreError};
pub use handover::{is_moved, CopyFile, HandedOver, LogEnd, Snapshot, MOVED_MARKER};
pub use incoming::{Chunk, Incoming, MAX_CHUNK};
pub use index::{flag, special_use, Expunged, MessageEntry, Quota};
pub use mapped::{InPlace, RecordReader};
pub use partition::{clamp_range, normalize_name, to_ranges, Partition, DELIMITER};
pub use placement::partition_of;
pub use record::{
    FlagMode, MAX_MESSAGE_SIZE, MAX_META_SIZE, MAX_REMEMBER_ENTRIES, MAX_REMEMBER_KEY,
    MAX_SCRIPT_NAME, MAX_SCRIPT_SIZE,
};
pub use replica::{
    seed_plan, Batch, BatchPiece, FileChange, ReplicaFile, ReplicaLog, SendFile, ShipBatch, Shipped,
};
pub use search_fields::{FieldArena, FieldValue, SearchFields};
pub use segment::{FORMAT_VERSION, OLDEST_FORMAT_VERSION};
pub use sieve::{MAX_REMEMBERED, MAX_SCRIPTS, MAX_SCRIPT_BYTES};
pub use sieve_log::{SieveLogEntry, MAX_LOG_BYTES, MAX_LOG_ENTRIES};
pub use stats::{Buckets, StoreStats, BATCH_BUCKETS, FSYNC_BUCKETS_US};
pub use types::*;
pub use view::{ChangeWait, MailboxView};
