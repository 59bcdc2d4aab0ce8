//! Per-user protocol trace, like Dovecot's rawlog: every line a user's sessions read and write,
//! in a file, to debug one client without turning on debug logs for everyone.
//!
//! Switched on by making a directory named after the user under `DATA/rawlog/`:
//!
//! ```text
//! mkdir -p /var/lib/ringmail/rawlog/alice@example.com   # on
//! rm -r /var/lib/ringmail/rawlog/alice@example.com      # off
//! ```
//!
//! Sessions check for the directory after login, and sessions already running check again
//! after a SIGHUP. Each traced session writes `DATA/rawlog/USER/SESSION-ID.log` with one line
//! per protocol line, `+SECONDS C: ...` for the client and `+SECONDS S: ...` for the server.
//! Tracing starts after login, so the password is never written; message bodies (APPEND,
//! FETCH) are, so the directory is made readable by the server's user only.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The directory under the data dir that holds one directory per traced user.
pub const RAWLOG_DIR: &str = "rawlog";

/// An open trace file for one session.
pub struct ProtocolTrace {
    file: File,
    started: Instant,
}

impl ProtocolTrace {
    /// Opens a trace for `user`'s session `session` when `DATA/rawlog/USER/` exists. User names
    /// that could leave that directory (a `/`, a leading dot) are never traced.
    pub fn open(data_dir: &Path, user: &str, session: u64) -> Option<ProtocolTrace> {
        let dir = user_dir(data_dir, user)?;
        if !dir.is_dir() {
            return None;
        }
        let path = dir.join(format!("{session}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path);
        match file {
            Ok(file) => {
                tracing::info!(path = %path.display(), "protocol trace on");
                Some(ProtocolTrace {
                    file,
                    started: Instant::now(),
                })
            }
            Err(e) => {
                tracing::warn!("cannot write the protocol trace {}: {e}", path.display());
                None
            }
        }
    }

    /// Bytes read from the client.
    pub fn client(&mut self, bytes: &[u8]) {
        self.write(b"C: ", bytes);
    }

    /// Bytes written to the client.
    pub fn server(&mut self, bytes: &[u8]) {
        self.write(b"S: ", bytes);
    }

    fn write(&mut self, who: &[u8], bytes: &[u8]) {
        let stamp = format!("+{:.3} ", self.started.elapsed().as_secs_f64());
        let mut text = Vec::with_capacity(bytes.len() + 64);
        for line in bytes.split_inclusive(|&b| b == b'\n') {
            text.extend_from_slice(stamp.as_bytes());
            text.extend_from_slice(who);
            text.extend_from_slice(line.strip_suffix(b"\n").unwrap_or(line));
            if text.last() == Some(&b'\r') {
                text.pop();
            }
            text.push(b'\n');
        }
        // A full disk must not end the session: the trace is a debugging aid.
        let _ = self.file.write_all(&text);
    }
}

/// `DATA/rawlog/USER`, or None for a name that is not a plain file name.
fn user_dir(data_dir: &Path, user: &str) -> Option<PathBuf> {
    let plain = !user.is_empty()
        && !user.starts_with('.')
        && !user.contains(['/', '\\', '\0'])
        && user.len() <= 255;
    plain.then(|| data_dir.join(RAWLOG_DIR).join(user))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_only_users_with_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        assert!(ProtocolTrace::open(dir.path(), "alice", 7).is_none());
        std::fs::create_dir_all(dir.path().join("rawlog/alice")).unwrap();
        let mut trace = ProtocolTrace::open(dir.path(), "alice", 7).expect("traced");
        trace.client(b"a1 SELECT INBOX\r\n");
        trace.server(b"* 2 EXISTS\r\na1 OK done\r\n");
        let text = std::fs::read_to_string(dir.path().join("rawlog/alice/7.log")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].ends_with(" C: a1 SELECT INBOX"), "{text}");
        assert!(lines[2].ends_with(" S: a1 OK done"), "{text}");
        assert!(ProtocolTrace::open(dir.path(), "../alice", 1).is_none());
        assert!(ProtocolTrace::open(dir.path(), "..", 1).is_none());
    }
}
