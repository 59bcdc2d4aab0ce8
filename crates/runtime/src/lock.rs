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
        Ok(lock_exclusive(&file)?.then_some(DataDirLock { _file: file }))
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

/// An exclusive `flock` without waiting: whether it was taken (false: another process holds
/// one on the same file).
fn lock_exclusive(file: &File) -> std::io::Result<bool> {
    // SAFETY: flock on a descriptor owned by `file`, which outlives the call.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

/// A `flock` held on a directory itself, which is opened read-only and not written: for a
/// tool that must not run twice on one directory it never modifies (`cluster recover`).
#[derive(Debug)]
pub struct DirLock {
    _dir: File,
}

impl DirLock {
    /// Takes the lock without waiting. `Ok(None)` when another process holds it.
    pub fn try_acquire(dir: &Path) -> std::io::Result<Option<DirLock>> {
        let dir = File::open(dir)?;
        Ok(lock_exclusive(&dir)?.then_some(DirLock { _dir: dir }))
    }
}

/// A process holding a data dir's lock, as the kernel's lock table shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holder {
    /// Its pid, when the table names one visible from here (0 there means another pid
    /// namespace).
    pub pid: Option<u32>,
}

/// Who holds `data_dir`'s lock now, read from /proc/locks without taking the lock (taking it,
/// even for a moment, could make a server starting then refuse to start). None when nobody
/// does or there is no lock file.
pub fn holder(data_dir: &Path) -> Option<Holder> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(data_dir.join(LOCK_NAME)).ok()?;
    let table = std::fs::read_to_string("/proc/locks").ok()?;
    let device = format!(
        "{:02x}:{:02x}:{}",
        libc::major(meta.dev()),
        libc::minor(meta.dev()),
        meta.ino()
    );
    holder_in(&table, &device)
}

/// The holder of the FLOCK on `device` (`MAJ:MIN:INODE`) in a /proc/locks text.
fn holder_in(table: &str, device: &str) -> Option<Holder> {
    table.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // `1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF`; a waiter's line has `->`.
        match fields.as_slice() {
            [_, "FLOCK", _, _, pid, dev, ..] if *dev == device => Some(Holder {
                pid: pid.parse().ok().filter(|&p| p != 0),
            }),
            _ => None,
        }
    })
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

    #[test]
    fn the_holder_is_read_from_the_lock_table() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(holder(dir.path()), None, "no lock file");
        let lock = DataDirLock::try_acquire(dir.path()).unwrap().unwrap();
        assert_eq!(
            holder(dir.path()),
            Some(Holder {
                pid: Some(std::process::id())
            })
        );
        drop(lock);
        assert_eq!(holder(dir.path()), None, "released");
    }

    #[test]
    fn waiters_and_other_files_are_not_holders() {
        let table = "1: FLOCK  ADVISORY  WRITE 77 08:02:99 0 EOF\n\
                     1: -> FLOCK  ADVISORY  WRITE 78 08:02:42 0 EOF\n\
                     2: POSIX  ADVISORY  WRITE 79 08:02:42 0 EOF\n\
                     3: FLOCK  ADVISORY  WRITE 0 08:02:43 0 EOF\n";
        assert_eq!(holder_in(table, "08:02:99"), Some(Holder { pid: Some(77) }));
        assert_eq!(holder_in(table, "08:02:42"), None);
        assert_eq!(holder_in(table, "08:02:43"), Some(Holder { pid: None }));
    }
}
