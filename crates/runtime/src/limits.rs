//! Process resource limits and allocator settings the runtime depends on.

/// glommio locks memory for its io_uring rings; below this it cannot start an executor.
const MIN_MEMLOCK: u64 = 512 * 1024;

/// Raises the memlock soft limit to the hard limit; fails with an operator-facing message when
/// even the hard limit is below what glommio needs.
pub fn raise_memlock() -> Result<(), String> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and reads nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) } != 0 {
        return Err(format!(
            "cannot read the memlock limit: {}",
            std::io::Error::last_os_error()
        ));
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &raised) } == 0 {
            limit = raised;
        } else {
            tracing::warn!(
                "cannot raise the memlock soft limit to the hard limit: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    if limit.rlim_cur != libc::RLIM_INFINITY && limit.rlim_cur < MIN_MEMLOCK {
        return Err(format!(
            "the memlock limit is {} KiB but io_uring needs at least {} KiB: run `ulimit -l unlimited` \
             before starting, or set LimitMEMLOCK=infinity in the systemd unit \
             (memlock in /etc/security/limits.conf for a login shell)",
            limit.rlim_cur / 1024,
            MIN_MEMLOCK / 1024
        ));
    }
    Ok(())
}

/// Raises the open-files soft limit to the hard limit (every connection is a descriptor).
pub fn raise_nofile() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and reads nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return;
    }
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: setrlimit only reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            tracing::warn!(
                "cannot raise the open-files limit: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

/// Allocations at least this large are mapped on their own and unmapped when freed. Above
/// the response buffers of ordinary FETCHes (messages up to a few MiB), below Argon2's
/// working memory (19 MiB per verification).
const MMAP_THRESHOLD: i32 = 8 << 20;
/// Free memory an arena keeps at its top before giving it back (glibc's own choice is twice
/// the mmap threshold once it starts adjusting it).
const TRIM_THRESHOLD: i32 = 16 << 20;

/// Makes glibc give large freed blocks back to the system instead of keeping them in its
/// per-thread arenas.
///
/// glibc raises its mmap threshold each time a mapped block is freed (up to 32 MiB), so after
/// the first Argon2 verification every later one is carved from the arena of whichever thread
/// ran it, and the arena keeps the pages: a server that had verified a hundred passwords held
/// about 700 MB it would never use again, which looked like memory per open partition. Fixed
/// thresholds turn that adjustment off. They are not lower because blocks under the mmap
/// threshold are reused without page faults: at 1 MiB, FETCHes of messages with attachments
/// mapped and unmapped their buffers and the loadtest mix spent about 15% more CPU per command.
pub fn return_large_frees() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt changes a global allocator setting under glibc's own lock; it
        // touches no memory of ours.
        let set = unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
        };
        if !set {
            tracing::warn!(
                "cannot set the allocator's mmap threshold: large freed blocks stay in the heap"
            );
        }
    }
}
