//! Each user's Sieve error log: the last run-time errors of their scripts, as Pigeonhole
//! keeps them in `~/.sieve.log`, so that a user (or the operator for them) can see why a
//! filter did not file a message.
//!
//! Built only by applying SIEVE_LOG records (kind 18) and carried by checkpoints as a third
//! archive (see `checkpoint`). It is bounded per user by entries and bytes, the oldest
//! entries going first, and a user's log is cleared when a script is activated or the
//! active script is replaced: the errors were about the script that is no longer there.

use std::collections::HashMap;

use rkyv::{Archive, Deserialize, Serialize};

/// Most entries a user's log keeps.
pub const MAX_LOG_ENTRIES: usize = 20;
/// Most bytes (script names and reasons) a user's log keeps.
pub const MAX_LOG_BYTES: usize = 16 << 10;

/// One logged error.
#[derive(Debug, Clone, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct SieveLogEntry {
    /// When it happened (seconds since the epoch).
    pub time: i64,
    /// The script it happened in (the active script, or the included one).
    pub script: String,
    /// The line of the script (1-based; 0 when the error has no line, e.g. a script that
    /// does not compile as a whole).
    pub line: u32,
    /// Why.
    pub message: String,
}

impl SieveLogEntry {
    fn bytes(&self) -> usize {
        self.script.len() + self.message.len()
    }
}

/// All users' logs, oldest entry first.
#[derive(Debug, Default, Archive, Serialize, Deserialize)]
pub(crate) struct SieveLogs {
    pub users: HashMap<String, Vec<SieveLogEntry>>,
}

impl SieveLogs {
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    pub fn user(&self, name: &str) -> &[SieveLogEntry] {
        self.users.get(name).map_or(&[], Vec::as_slice)
    }

    /// Adds an entry, then drops the oldest until the user's log is within both bounds.
    pub fn push(&mut self, user: &str, entry: SieveLogEntry) {
        let log = self.users.entry(user.to_string()).or_default();
        log.push(entry);
        let mut bytes: usize = log.iter().map(SieveLogEntry::bytes).sum();
        let mut drop = 0;
        while log.len() - drop > MAX_LOG_ENTRIES || bytes > MAX_LOG_BYTES {
            bytes -= log[drop].bytes();
            drop += 1;
        }
        log.drain(..drop);
        if log.is_empty() {
            self.users.remove(user);
        }
    }

    pub fn clear(&mut self, user: &str) {
        self.users.remove(user);
    }

    /// Where the logs break their bounds (a damaged or forged checkpoint), for `check`.
    pub fn problems(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .users
            .iter()
            .filter(|(_, log)| {
                log.is_empty()
                    || log.len() > MAX_LOG_ENTRIES
                    || log.iter().map(SieveLogEntry::bytes).sum::<usize>() > MAX_LOG_BYTES
            })
            .map(|(name, log)| {
                format!(
                    "user {name:?}: Sieve log of {} entries out of bounds",
                    log.len()
                )
            })
            .collect();
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: usize, message_len: usize) -> SieveLogEntry {
        SieveLogEntry {
            time: i as i64,
            script: "s".into(),
            line: i as u32,
            message: "x".repeat(message_len),
        }
    }

    #[test]
    fn the_oldest_entries_go_first_by_count_and_by_bytes() {
        let mut logs = SieveLogs::default();
        for i in 0..MAX_LOG_ENTRIES + 5 {
            logs.push("u", entry(i, 10));
        }
        let lines: Vec<u32> = logs.user("u").iter().map(|e| e.line).collect();
        assert_eq!(lines, (5..MAX_LOG_ENTRIES as u32 + 5).collect::<Vec<_>>());
        // Three entries of 6000 bytes do not fit in 16 KiB: the first goes.
        for i in 100..103 {
            logs.push("u", entry(i, 6000));
        }
        let lines: Vec<u32> = logs.user("u").iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![101, 102]);
        // One entry alone over the bytes bound leaves an empty log, never a broken bound.
        logs.push("w", entry(1, MAX_LOG_BYTES));
        assert!(logs.user("w").is_empty());
        assert!(logs.problems().is_empty());
        logs.clear("u");
        assert!(logs.is_empty());
    }
}
