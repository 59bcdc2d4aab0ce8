//! The server's cost, from /proc: CPU time and resident memory of a process and all its
//! descendants.
//!
//! Dovecot runs many processes (master, imap-login, auth, one imap per user), so the whole
//! tree is measured. CPU of children that exited is in their parent's cutime/cstime once the
//! parent reaped them (Dovecot's master does), so a tree sample is
//! `utime+stime+cutime+cstime of the root + utime+stime of each live descendant`, and the
//! difference of two samples is the CPU the tree used between them.

use std::collections::HashMap;

/// One sample of a process tree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TreeSample {
    /// CPU time in clock ticks, as described in the module comment.
    pub cpu_ticks: u64,
    /// Sum of VmRSS over the tree, in KiB.
    pub rss_kib: u64,
    /// Processes in the tree.
    pub processes: u32,
}

/// Fields of /proc/PID/stat the sampler needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    ppid: u32,
    utime: u64,
    stime: u64,
    cutime: u64,
    cstime: u64,
}

/// Parses /proc/PID/stat. The command name (field 2) may hold spaces and parentheses, so
/// fields are counted after its last ')'.
fn parse_stat(text: &str) -> Option<Stat> {
    let after = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // after ')' : state(3) ppid(4) ... utime(14) stime(15) cutime(16) cstime(17)
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    Some(Stat {
        ppid: u32::try_from(field(4)?).ok()?,
        utime: field(14)?,
        stime: field(15)?,
        cutime: field(16)?,
        cstime: field(17)?,
    })
}

/// VmRSS in KiB from /proc/PID/status.
fn parse_rss(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Clock ticks per second (USER_HZ).
pub fn ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions and only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(hz).ok().filter(|&h| h > 0).unwrap_or(100)
}

/// Samples `root` and its descendants; `None` when `root` does not exist.
pub fn sample(root: u32) -> Option<TreeSample> {
    let mut stats: HashMap<u32, Stat> = HashMap::new();
    let entries = std::fs::read_dir("/proc").ok()?;
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // A process may exit between listing and reading: skip it.
        if let Some(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|t| parse_stat(&t))
        {
            stats.insert(pid, stat);
        }
    }
    let root_stat = stats.get(&root)?;
    let tree = descendants(root, &stats);
    let mut sample = TreeSample {
        cpu_ticks: root_stat.utime + root_stat.stime + root_stat.cutime + root_stat.cstime,
        ..TreeSample::default()
    };
    for pid in std::iter::once(root).chain(tree.iter().copied()) {
        if pid != root {
            if let Some(s) = stats.get(&pid) {
                sample.cpu_ticks += s.utime + s.stime;
            }
        }
        let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|t| parse_rss(&t))
            .unwrap_or(0);
        sample.rss_kib += rss;
        sample.processes += 1;
    }
    Some(sample)
}

/// All descendants of `root` (children, grandchildren, ...).
fn descendants(root: u32, stats: &HashMap<u32, Stat>) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for (&pid, s) in stats {
        children.entry(s.ppid).or_default().push(pid);
    }
    let mut out = Vec::new();
    let mut stack = vec![root];
    // Each pid is visited once: a process has one parent, so the walk is a tree walk,
    // bounded by the number of processes.
    while let Some(pid) = stack.pop() {
        if let Some(kids) = children.get(&pid) {
            for &k in kids {
                if k != root && out.len() < stats.len() {
                    out.push(k);
                    stack.push(k);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_spaces_in_name() {
        let text =
            "1234 (imap (x) y) S 1 1234 1234 0 -1 4194560 100 0 0 0 25 7 3 2 20 0 1 0 100 1000 200";
        let s = parse_stat(text).unwrap();
        assert_eq!(
            s,
            Stat {
                ppid: 1,
                utime: 25,
                stime: 7,
                cutime: 3,
                cstime: 2
            }
        );
    }

    #[test]
    fn rss_from_status() {
        assert_eq!(
            parse_rss("Name:\tx\nVmRSS:\t  5120 kB\nVmHWM: 1 kB\n"),
            Some(5120)
        );
        assert_eq!(parse_rss("Name:\tx\n"), None);
    }

    #[test]
    fn own_process_can_be_sampled() {
        let me = sample(std::process::id()).unwrap();
        assert!(me.rss_kib > 0);
        assert!(me.processes >= 1);
    }

    #[test]
    fn tree_includes_grandchildren_once() {
        let mut stats = HashMap::new();
        let st = |ppid| Stat {
            ppid,
            utime: 1,
            stime: 0,
            cutime: 0,
            cstime: 0,
        };
        stats.insert(10, st(1));
        stats.insert(11, st(10));
        stats.insert(12, st(11));
        stats.insert(13, st(1));
        let mut d = descendants(10, &stats);
        d.sort();
        assert_eq!(d, vec![11, 12]);
    }
}
