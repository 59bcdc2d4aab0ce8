//! Process resource limits the runtime depends on.

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
