//! The CPUs this process may run on, and which one each executor is pinned to.
//!
//! An operator (or a container's cpuset) may start ringmail on some of a machine's CPUs
//! only: `taskset -c 4-7`, `systemd CPUAffinity=`, `docker --cpuset-cpus`. Executor `i` is
//! pinned to the `i`-th CPU of that set, not to CPU `i`: pinning to CPU `i` would pile every
//! ringmail process of a machine onto its first CPUs whatever the operator chose (and
//! outside a cpuset the pin fails), and io_uring's worker threads, which run `fdatasync`
//! and blocking writes, inherit their executor's CPU.

/// The CPUs the calling thread may run on, in ascending order (empty if the kernel does not
/// say; the caller then places executors as it would without a mask).
pub fn allowed() -> Vec<usize> {
    // SAFETY: `cpu_set_t` is a plain bit array for which all zeros is a valid value, and
    // sched_getaffinity writes at most `size_of::<cpu_set_t>()` bytes into the one we own.
    let set = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        set
    };
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `cpu` is below CPU_SETSIZE, the size of the set CPU_ISSET reads.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect()
}

/// Restricts the calling thread to `cpu` alone; threads and processes it starts later
/// inherit that (tests start a server as `taskset -c CPU` would).
pub fn restrict_current_thread(cpu: usize) -> std::io::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(std::io::Error::from(std::io::ErrorKind::InvalidInput));
    }
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET writes within it (cpu < CPU_SETSIZE,
    // checked above), and sched_setaffinity reads exactly that set.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The CPU executor `index` of `executors` is pinned to, given the CPUs the process may run
/// on; `None` (not pinned) when there are more executors than those CPUs, or the set is
/// unknown.
pub fn for_executor(index: usize, executors: usize, allowed: &[usize]) -> Option<usize> {
    if executors > allowed.len() {
        return None;
    }
    allowed.get(index).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executors_take_the_allowed_cpus_in_order() {
        let allowed = [2, 3, 6, 7];
        let pins: Vec<Option<usize>> = (0..4).map(|i| for_executor(i, 4, &allowed)).collect();
        assert_eq!(pins, [Some(2), Some(3), Some(6), Some(7)]);
        assert_eq!(for_executor(0, 2, &allowed), Some(2));
        // More executors than allowed CPUs: none is pinned (the scheduler spreads them).
        assert_eq!(for_executor(0, 5, &allowed), None);
        assert_eq!(for_executor(0, 1, &[]), None);
    }

    #[test]
    fn the_allowed_set_is_this_threads_affinity() {
        let all = allowed();
        assert!(!all.is_empty(), "the kernel reports no CPU for this thread");
        assert_eq!(
            all.len(),
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            "the standard library counts the same CPUs"
        );
        // Narrowed to its last CPU, a thread sees exactly that CPU.
        let last = *all.last().unwrap();
        let seen = std::thread::spawn(move || {
            restrict_current_thread(last).unwrap();
            allowed()
        })
        .join()
        .unwrap();
        assert_eq!(seen, [last]);
    }
}
