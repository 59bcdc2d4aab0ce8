//! Output: the per-second line (imaptest style) and the summary, as text and as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::options::Profile;
use crate::stats::{Command, ErrorKind, Recorder};

/// The commands shown in the per-second line of each profile.
pub fn columns(profile: Profile) -> &'static [Command] {
    use Command::*;
    match profile {
        Profile::Logins => &[Connect, Login, Logout],
        Profile::Append => &[Append, Delete, Expunge],
        Profile::Mix => &[
            Login, List, Status, Select, Fetch, Fetch2, Store, Delete, Expunge, Append, Logout,
        ],
        Profile::Search => &[SearchBody, SearchFrom, SearchSubject, SearchFlags],
        Profile::Sync => &[Login, Select, SyncFull, Store, SyncChanges, Logout],
        Profile::Idle => &[Connect, Login, Append, IdleNotify, Logout],
        Profile::Lmtp => &[Connect, Lhlo, MailFrom, RcptTo, Data, Delivery],
    }
}

/// The header printed above the per-second lines.
pub fn header(profile: Profile) -> String {
    let mut s = String::new();
    for c in columns(profile) {
        let _ = write!(s, "{:>5}", c.short());
    }
    s.push_str("   conn  errors");
    s
}

/// One per-second line: commands completed in the last second per column, connected
/// sessions against the sessions of the run (idle: clients + senders), errors in the last
/// second.
pub fn line(
    profile: Profile,
    delta: &[u64],
    connected: i64,
    sessions: u32,
    errors: u64,
    warmup: bool,
) -> String {
    let mut s = String::new();
    for c in columns(profile) {
        let n = delta.get(*c as usize).copied().unwrap_or(0);
        let _ = write!(s, "{n:>5}");
    }
    let _ = write!(s, " {connected:>6}/{sessions}  {errors}");
    if warmup {
        s.push_str("  (warm-up)");
    }
    s
}

/// Throughput and latency of one command over the measured time.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct CommandSummary {
    /// Command name (see [`Command::name`]).
    pub command: String,
    /// Completed commands.
    pub count: u64,
    /// Completed per second.
    pub per_second: f64,
    /// Latency percentiles and max, milliseconds.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Slowest.
    pub max_ms: f64,
}

/// The server's cost over the measured time, from /proc.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct ServerCost {
    /// The PID given; its descendants are included.
    pub pid: u32,
    /// CPU seconds (user + system) used by the process tree.
    pub cpu_seconds: f64,
    /// CPU milliseconds per 1000 commands.
    pub cpu_ms_per_1000_commands: f64,
    /// CPU milliseconds per 1000 LMTP deliveries (one per recipient stored); lmtp only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_ms_per_1000_deliveries: Option<f64>,
    /// Resident memory of the tree at the end, KiB.
    pub rss_kib: u64,
    /// Highest resident memory sampled (once a second), KiB.
    pub rss_peak_kib: u64,
    /// Processes in the tree at the end.
    pub processes: u32,
}

/// Everything a run reports; `--json` writes this.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Summary {
    /// Profile name.
    pub profile: String,
    /// Server address.
    pub target: String,
    /// Concurrent sessions.
    pub clients: u32,
    /// Worker threads of the load generator.
    pub threads: usize,
    /// Seed.
    pub seed: u64,
    /// Seconds measured (from the end of the warm-up to the end of the last session).
    pub seconds: f64,
    /// Per command, those that ran.
    pub commands: Vec<CommandSummary>,
    /// All commands completed (connect and idle notifications excluded).
    pub total_commands: u64,
    /// Errors by kind, with examples.
    pub errors: BTreeMap<String, ErrorKind>,
    /// Total errors.
    pub error_count: u64,
    /// Server cost, when `--pid` was given.
    pub server: Option<ServerCost>,
    /// CPU the load generator used, as a share of its threads (1.0 = all threads busy).
    pub client_cpu_share: f64,
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

/// Per-command summaries from merged histograms over `seconds`.
pub fn command_summaries(recorder: &Recorder, seconds: f64) -> Vec<CommandSummary> {
    Command::ALL
        .iter()
        .filter_map(|&c| {
            let h = recorder.histogram(c)?;
            if h.is_empty() {
                return None;
            }
            Some(CommandSummary {
                command: c.name().to_string(),
                count: h.len(),
                per_second: if seconds > 0.0 {
                    h.len() as f64 / seconds
                } else {
                    0.0
                },
                p50_ms: ms(h.value_at_quantile(0.5)),
                p90_ms: ms(h.value_at_quantile(0.9)),
                p99_ms: ms(h.value_at_quantile(0.99)),
                p999_ms: ms(h.value_at_quantile(0.999)),
                max_ms: ms(h.max()),
            })
        })
        .collect()
}

impl Summary {
    /// The summary as text, for the terminal.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "\nringmail-load {} against {}: {} clients, {} threads, seed {}, {:.1} s measured",
            self.profile, self.target, self.clients, self.threads, self.seed, self.seconds
        );
        let _ = writeln!(
            s,
            "{:<15} {:>9} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "command", "count", "per sec", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms"
        );
        for c in &self.commands {
            let _ = writeln!(
                s,
                "{:<15} {:>9} {:>10.1} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
                c.command, c.count, c.per_second, c.p50_ms, c.p90_ms, c.p99_ms, c.p999_ms, c.max_ms
            );
        }
        let _ = writeln!(
            s,
            "total commands: {} ({:.1}/s)",
            self.total_commands,
            if self.seconds > 0.0 {
                self.total_commands as f64 / self.seconds
            } else {
                0.0
            }
        );
        if self.error_count == 0 {
            let _ = writeln!(s, "errors: none");
        } else {
            let _ = writeln!(s, "errors: {}", self.error_count);
            for (kind, e) in &self.errors {
                let _ = writeln!(s, "  {kind}: {}", e.count);
                for ex in &e.examples {
                    let _ = writeln!(s, "    {ex}");
                }
            }
        }
        if let Some(server) = &self.server {
            let _ = writeln!(
                s,
                "server pid {} ({} processes): {:.2} CPU s, {:.3} CPU ms per 1000 commands, RSS {} KiB (peak {} KiB)",
                server.pid,
                server.processes,
                server.cpu_seconds,
                server.cpu_ms_per_1000_commands,
                server.rss_kib,
                server.rss_peak_kib
            );
            if let Some(per_delivery) = server.cpu_ms_per_1000_deliveries {
                let _ = writeln!(s, "server CPU per 1000 deliveries: {per_delivery:.1} ms");
            }
        }
        let _ = writeln!(
            s,
            "load generator CPU: {:.0}% of its {} threads{}",
            self.client_cpu_share * 100.0,
            self.threads,
            if self.client_cpu_share > 0.8 {
                " - it may be the bottleneck; add --threads or run it on more cores"
            } else {
                ""
            }
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Shared;
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    #[test]
    fn summaries_have_percentiles_in_milliseconds() {
        let shared = Shared::default();
        shared.measuring.store(true, Ordering::Relaxed);
        let mut rec = Recorder::default();
        for ms in 1..=100 {
            rec.record(&shared, Command::Login, Duration::from_millis(ms));
        }
        let summaries = command_summaries(&rec, 2.0);
        assert_eq!(summaries.len(), 1);
        let login = &summaries[0];
        assert_eq!(login.count, 100);
        assert!((login.per_second - 50.0).abs() < 1e-9);
        assert!((login.p50_ms - 50.0).abs() < 0.1, "{}", login.p50_ms);
        assert!((login.max_ms - 100.0).abs() < 0.1, "{}", login.max_ms);
    }

    #[test]
    fn line_has_a_column_per_command() {
        let mut delta = vec![0u64; Command::ALL.len()];
        delta[Command::Login as usize] = 120;
        let l = line(Profile::Logins, &delta, 7, 10, 0, false);
        assert_eq!(l, "    0  120    0      7/10  0");
        assert_eq!(header(Profile::Logins), " Conn Logi Logo   conn  errors");
    }
}
