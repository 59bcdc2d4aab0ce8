//! Per-partition append-only log, group commit, recovery, in-memory index, checkpoints.
