//! Offline and online mail tools: import, export, backup, restore.
