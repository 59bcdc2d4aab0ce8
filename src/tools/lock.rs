//! The data-dir lock: `DATA/ringmail.lock`, held with `flock` by the running server and by
//! the offline tools, so a tool never writes partitions a server has open (two writers on
//! one log would interleave records) and a server never starts under a running import.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::Path;

/// The lock file's name inside the data dir.
pub const LOCK_NAME: &str = "ringmail.lock";

/// A held data-dir lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    /// Takes the lock without waiting. `Ok(None)` when another process holds it.
    pub fn try_acquire(data_dir: &Path) -> std::io::Result<Option<DataDirLock>> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(data_dir.join(LOCK_NAME))?;
        // SAFETY: flock on a descriptor owned by `file`, which outlives the call.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(Some(DataDirLock { _file: file }));
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            Ok(None)
        } else {
            Err(e)
        }
    }

    /// Takes the lock or says, in one line, that a server (or tool) is using the data dir.
    pub fn acquire(data_dir: &Path, what: &str) -> Result<DataDirLock, String> {
        match Self::try_acquire(data_dir) {
            Ok(Some(lock)) => Ok(lock),
            Ok(None) => Err(format!(
                "{what}: the data dir {} is in use by a running ringmail server or tool \
                 (it holds {LOCK_NAME})",
                data_dir.display()
            )),
            Err(e) => Err(format!(
                "{what}: cannot lock {}: {e}",
                data_dir.join(LOCK_NAME).display()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDirLock::try_acquire(dir.path()).unwrap();
        assert!(first.is_some());
        assert!(DataDirLock::try_acquire(dir.path()).unwrap().is_none());
        let err = DataDirLock::acquire(dir.path(), "import").unwrap_err();
        assert!(err.contains("in use"), "{err}");
        drop(first);
        assert!(DataDirLock::try_acquire(dir.path()).unwrap().is_some());
    }
}
