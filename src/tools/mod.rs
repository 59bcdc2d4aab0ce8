//! Operator tools that work on a data dir: import, export, backup, restore.

pub mod lock;
pub mod offline;
