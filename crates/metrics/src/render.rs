//! The Prometheus text exposition format (version 0.0.4) of the executors' latest snapshots.
//!
//! Connection, session and byte counts keep an `executor` label (a core that takes more than
//! its share shows up); commands, latencies, logins and the rest are merged over executors,
//! because per-core series of every command's histogram would multiply the series count by
//! the core count for no operational gain.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::registry::{CommandStats, ExecutorMetrics, Listener, Outcome, SessionState, Snapshot};
use ringmail_store::{Buckets, StoreStats, BATCH_BUCKETS, FSYNC_BUCKETS_US};

/// Upper bounds (microseconds) of the latency histogram buckets: 100 µs to 10 s.
const BUCKETS_US: [u64; 16] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// The quantiles of the latency summary.
const QUANTILES: [f64; 2] = [0.5, 0.99];

/// Facts about the process itself.
#[derive(Debug, Clone)]
pub struct ProcessInfo {
    /// Executors the server runs.
    pub executors: usize,
    /// Unix time the process started, in seconds.
    pub start_time: u64,
}

/// Renders the scrape body. `snapshots` holds the latest snapshot of each executor that has
/// reported so far.
pub fn render(snapshots: &[&Snapshot], process: &ProcessInfo) -> String {
    let mut out = Text(String::with_capacity(16 * 1024));
    let mut total = ExecutorMetrics::new();
    for s in snapshots {
        total.merge(&s.metrics);
    }

    out.header(
        "ringmail_build_info",
        "gauge",
        "Version of the running server.",
    );
    out.sample(
        "ringmail_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1,
    );
    out.header(
        "ringmail_start_time_seconds",
        "gauge",
        "Unix time the process started.",
    );
    out.sample("ringmail_start_time_seconds", &[], process.start_time);
    out.header(
        "ringmail_executors",
        "gauge",
        "Executors (cores) configured.",
    );
    out.sample("ringmail_executors", &[], process.executors);
    out.header(
        "ringmail_executors_ready",
        "gauge",
        "Executors whose partitions are open and listeners bound.",
    );
    let ready = snapshots.iter().filter(|s| s.ready && !s.stopping).count();
    out.sample("ringmail_executors_ready", &[], ready);

    per_executor(&mut out, snapshots);
    store(&mut out, snapshots);
    commands(&mut out, &total.commands, "ringmail_", "IMAP");
    commands(
        &mut out,
        &total.managesieve_commands,
        "ringmail_managesieve_",
        "ManageSieve",
    );

    out.header(
        "ringmail_logins_total",
        "counter",
        "Login attempts by SASL mechanism (LOGIN for the LOGIN command) and result.",
    );
    for ((mechanism, result), n) in &total.logins {
        out.sample(
            "ringmail_logins_total",
            &[("mechanism", mechanism), ("result", result)],
            n,
        );
    }
    out.header(
        "ringmail_auth_cache_hits_total",
        "counter",
        "Logins verified by the auth cache without hashing the password.",
    );
    out.sample("ringmail_auth_cache_hits_total", &[], total.auth_cache_hits);
    out.header(
        "ringmail_append_messages_total",
        "counter",
        "Messages stored by APPEND (acknowledged, so durable).",
    );
    out.sample(
        "ringmail_append_messages_total",
        &[],
        total.appended_messages,
    );
    out.header(
        "ringmail_append_bytes_total",
        "counter",
        "Bytes of the messages stored by APPEND.",
    );
    out.sample("ringmail_append_bytes_total", &[], total.appended_bytes);
    labelled_counter(
        &mut out,
        "ringmail_lmtp_deliveries_total",
        "LMTP recipient deliveries by result.",
        "result",
        &total.lmtp_deliveries,
    );
    labelled_counter(
        &mut out,
        "ringmail_rejected_total",
        "Inputs and connections refused by a limit, by limit.",
        "limit",
        &total.rejected,
    );
    labelled_counter(
        &mut out,
        "ringmail_disconnects_total",
        "Ended sessions by reason.",
        "reason",
        &total.disconnects,
    );
    out.0
}

/// One series per executor and listener kind.
fn by_listener<V: std::fmt::Display>(
    out: &mut Text,
    snapshots: &[&Snapshot],
    (name, kind): (&str, &str),
    help: &str,
    value: impl Fn(&ExecutorMetrics, Listener) -> V,
) {
    out.header(name, kind, help);
    for s in snapshots {
        let executor = s.executor.to_string();
        for l in Listener::ALL {
            out.sample(
                name,
                &[("executor", &executor), ("listener", l.label())],
                value(&s.metrics, l),
            );
        }
    }
}

fn per_executor(out: &mut Text, snapshots: &[&Snapshot]) {
    by_listener(
        out,
        snapshots,
        ("ringmail_connections_accepted_total", "counter"),
        "Connections accepted, by executor and listener.",
        |m, l| m.accepted[l as usize],
    );
    by_listener(
        out,
        snapshots,
        ("ringmail_connections_open", "gauge"),
        "Connections open now, by executor and listener.",
        |m, l| m.open[l as usize],
    );
    out.header(
        "ringmail_sessions",
        "gauge",
        "IMAP sessions open now, by executor and state.",
    );
    for s in snapshots {
        let executor = s.executor.to_string();
        for state in SessionState::ALL {
            out.sample(
                "ringmail_sessions",
                &[("executor", &executor), ("state", state.label())],
                s.metrics.sessions[state as usize],
            );
        }
    }
    for (name, kind, help, value) in [
        (
            "ringmail_idle_sessions",
            "gauge",
            "Sessions in IDLE now.",
            (|m: &ExecutorMetrics| m.idling) as fn(&ExecutorMetrics) -> i64,
        ),
        (
            "ringmail_bytes_received_total",
            "counter",
            "Bytes read from IMAP clients.",
            |m| m.bytes_in as i64,
        ),
        (
            "ringmail_bytes_sent_total",
            "counter",
            "Bytes written to IMAP clients.",
            |m| m.bytes_out as i64,
        ),
        (
            "ringmail_partitions_open",
            "gauge",
            "Store partitions opened at start.",
            |m| m.partitions_open as i64,
        ),
    ] {
        out.header(name, kind, help);
        for s in snapshots {
            out.sample(
                name,
                &[("executor", &s.executor.to_string())],
                value(&s.metrics),
            );
        }
    }
}

/// Store series, summed over each executor's partitions: a partition label would mean up to
/// 256 series per metric, and a slow disk shows up per executor just as well.
fn store(out: &mut Text, snapshots: &[&Snapshot]) {
    for (name, kind, help, value) in [
        (
            "ringmail_store_appends_total",
            "counter",
            "Records appended to the store log and made durable (every mutation).",
            (|s: &StoreStats| s.appends) as fn(&StoreStats) -> u64,
        ),
        (
            "ringmail_store_batches_total",
            "counter",
            "Group-commit batches written to the store log.",
            |s| s.batches,
        ),
        (
            "ringmail_store_fsyncs_total",
            "counter",
            "fdatasync calls that made a group-commit batch durable.",
            |s| s.fsyncs,
        ),
        (
            "ringmail_store_messages",
            "gauge",
            "Messages in the executor's open partitions.",
            |s| s.messages,
        ),
        (
            "ringmail_store_index_bytes",
            "gauge",
            "Estimated heap bytes of the in-memory indexes of the executor's open partitions.",
            |s| s.index_bytes,
        ),
    ] {
        out.header(name, kind, help);
        for s in snapshots {
            out.sample(
                name,
                &[("executor", &s.executor.to_string())],
                value(&s.metrics.store),
            );
        }
    }

    let name = "ringmail_store_fsync_seconds";
    out.header(
        name,
        "histogram",
        "Latency of the store log's group-commit fdatasync.",
    );
    for s in snapshots {
        let bounds: Vec<String> = FSYNC_BUCKETS_US.iter().map(|&us| seconds(us)).collect();
        let h = &s.metrics.store.fsync_us;
        fixed_histogram(out, name, &s.executor.to_string(), &bounds, h);
        out.sample_f(
            &format!("{name}_sum"),
            &[("executor", &s.executor.to_string())],
            h.sum as f64 / 1e6,
        );
        out.sample(
            &format!("{name}_count"),
            &[("executor", &s.executor.to_string())],
            h.count(),
        );
    }

    let name = "ringmail_store_batch_records";
    out.header(
        name,
        "histogram",
        "Records per group-commit batch of the store log.",
    );
    for s in snapshots {
        let bounds: Vec<String> = BATCH_BUCKETS.iter().map(u64::to_string).collect();
        let h = &s.metrics.store.batch_records;
        fixed_histogram(out, name, &s.executor.to_string(), &bounds, h);
        out.sample(
            &format!("{name}_sum"),
            &[("executor", &s.executor.to_string())],
            h.sum,
        );
        out.sample(
            &format!("{name}_count"),
            &[("executor", &s.executor.to_string())],
            h.count(),
        );
    }
}

/// The cumulative `_bucket` lines of one executor's fixed-bound histogram.
fn fixed_histogram<const N: usize>(
    out: &mut Text,
    name: &str,
    executor: &str,
    bounds: &[String],
    h: &Buckets<N>,
) {
    let bucket = format!("{name}_bucket");
    let mut cumulative = 0;
    for (le, n) in bounds.iter().zip(h.counts) {
        cumulative += n;
        out.sample(&bucket, &[("executor", executor), ("le", le)], cumulative);
    }
    out.sample(
        &bucket,
        &[("executor", executor), ("le", "+Inf")],
        h.count(),
    );
}

/// One protocol's command families: `{prefix}commands_total`,
/// `{prefix}command_duration_seconds` and `{prefix}command_duration_quantile_seconds`.
fn commands(
    out: &mut Text,
    commands: &BTreeMap<&'static str, CommandStats>,
    prefix: &str,
    protocol: &str,
) {
    let total = format!("{prefix}commands_total");
    out.header(
        &total,
        "counter",
        &format!("{protocol} commands completed, by command and result."),
    );
    for (name, stats) in commands {
        for outcome in Outcome::ALL {
            let n = stats.count(outcome);
            if n > 0 {
                out.sample(&total, &[("command", name), ("result", outcome.label())], n);
            }
        }
    }

    let histogram = &format!("{prefix}command_duration_seconds");
    out.header(
        histogram,
        "histogram",
        &format!(
            "{protocol} command latency, from the complete command to its final response (IDLE excluded)."
        ),
    );
    for (name, stats) in commands {
        let h = &stats.latency;
        if h.is_empty() {
            continue;
        }
        let mut in_bucket = [0u64; BUCKETS_US.len()];
        for v in h.iter_recorded() {
            let value = v.value_iterated_to();
            if let Some(i) = BUCKETS_US.iter().position(|&le| value <= le) {
                in_bucket[i] += v.count_at_value();
            }
        }
        let mut cumulative = 0;
        for (le, n) in BUCKETS_US.iter().zip(in_bucket) {
            cumulative += n;
            let le = seconds(*le);
            out.sample(
                &format!("{histogram}_bucket"),
                &[("command", name), ("le", &le)],
                cumulative,
            );
        }
        out.sample(
            &format!("{histogram}_bucket"),
            &[("command", name), ("le", "+Inf")],
            h.len(),
        );
        out.sample_f(
            &format!("{histogram}_sum"),
            &[("command", name)],
            stats.latency_sum_us as f64 / 1e6,
        );
        out.sample(&format!("{histogram}_count"), &[("command", name)], h.len());
    }

    let summary = &format!("{prefix}command_duration_quantile_seconds");
    out.header(
        summary,
        "summary",
        &format!(
            "{protocol} command latency quantiles since start, from the merged hdrhistograms."
        ),
    );
    for (name, stats) in commands {
        let h = &stats.latency;
        if h.is_empty() {
            continue;
        }
        for q in QUANTILES {
            out.sample_f(
                summary,
                &[("command", name), ("quantile", &q.to_string())],
                h.value_at_quantile(q) as f64 / 1e6,
            );
        }
        out.sample_f(
            &format!("{summary}_sum"),
            &[("command", name)],
            stats.latency_sum_us as f64 / 1e6,
        );
        out.sample(&format!("{summary}_count"), &[("command", name)], h.len());
    }
}

fn labelled_counter(
    out: &mut Text,
    name: &str,
    help: &str,
    label: &str,
    values: &std::collections::BTreeMap<&'static str, u64>,
) {
    out.header(name, "counter", help);
    for (value, n) in values {
        out.sample(name, &[(label, value)], n);
    }
}

fn seconds(us: u64) -> String {
    (us as f64 / 1e6).to_string()
}

/// The output being built.
struct Text(String);

impl Text {
    fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.name_and_labels(name, labels);
        let _ = writeln!(self.0, " {value}");
    }

    fn sample_f(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.sample(name, labels, value);
    }

    fn name_and_labels(&mut self, name: &str, labels: &[(&str, &str)]) {
        self.0.push_str(name);
        if labels.is_empty() {
            return;
        }
        self.0.push('{');
        for (i, (key, value)) in labels.iter().enumerate() {
            if i > 0 {
                self.0.push(',');
            }
            self.0.push_str(key);
            self.0.push_str("=\"");
            for c in value.chars() {
                match c {
                    '\\' => self.0.push_str("\\\\"),
                    '"' => self.0.push_str("\\\""),
                    '\n' => self.0.push_str("\\n"),
                    c => self.0.push(c),
                }
            }
            self.0.push('"');
        }
        self.0.push('}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn snapshot(executor: usize, metrics: ExecutorMetrics) -> Snapshot {
        Snapshot {
            executor,
            ready: true,
            stopping: false,
            metrics,
        }
    }

    fn value_of(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_merged() {
        let mut a = ExecutorMetrics::new();
        a.command("FETCH", Outcome::Ok, Duration::from_micros(80), true);
        a.command("FETCH", Outcome::Ok, Duration::from_millis(3), true);
        let mut b = ExecutorMetrics::new();
        b.command("FETCH", Outcome::Bad, Duration::from_secs(20), true);
        let (a, b) = (snapshot(0, a), snapshot(1, b));
        let info = ProcessInfo {
            executors: 2,
            start_time: 1,
        };
        let text = render(&[&a, &b], &info);
        let bucket = |le: &str| {
            value_of(
                &text,
                &format!(
                    "ringmail_command_duration_seconds_bucket{{command=\"FETCH\",le=\"{le}\"}}"
                ),
            )
        };
        assert_eq!(bucket("0.0001"), Some(1.0));
        assert_eq!(bucket("0.005"), Some(2.0));
        assert_eq!(bucket("10"), Some(2.0));
        assert_eq!(bucket("+Inf"), Some(3.0));
        assert_eq!(
            value_of(
                &text,
                "ringmail_commands_total{command=\"FETCH\",result=\"ok\"}"
            ),
            Some(2.0)
        );
        assert_eq!(
            value_of(
                &text,
                "ringmail_commands_total{command=\"FETCH\",result=\"bad\"}"
            ),
            Some(1.0)
        );
        let p50 = value_of(
            &text,
            "ringmail_command_duration_quantile_seconds{command=\"FETCH\",quantile=\"0.5\"}",
        )
        .expect("p50");
        assert!((0.0029..0.0031).contains(&p50), "{p50}");
        assert_eq!(value_of(&text, "ringmail_executors_ready"), Some(2.0));
    }

    #[test]
    fn store_histograms_are_cumulative_per_executor() {
        let mut a = ExecutorMetrics::new();
        let mut b = ExecutorMetrics::new();
        a.store.fsync_us.record(&FSYNC_BUCKETS_US, 80);
        a.store.fsync_us.record(&FSYNC_BUCKETS_US, 3_000);
        a.store.fsync_us.record(&FSYNC_BUCKETS_US, 5_000_000);
        a.store.fsyncs = 3;
        a.store.messages = 7;
        b.store.batch_records.record(&BATCH_BUCKETS, 3);
        let (a, b) = (snapshot(0, a), snapshot(1, b));
        let text = render(
            &[&a, &b],
            &ProcessInfo {
                executors: 2,
                start_time: 1,
            },
        );
        let fsync = |le: &str| {
            value_of(
                &text,
                &format!("ringmail_store_fsync_seconds_bucket{{executor=\"0\",le=\"{le}\"}}"),
            )
        };
        assert_eq!(fsync("0.0001"), Some(1.0));
        assert_eq!(fsync("0.005"), Some(2.0));
        assert_eq!(fsync("1"), Some(2.0));
        assert_eq!(fsync("+Inf"), Some(3.0));
        assert_eq!(
            value_of(&text, "ringmail_store_fsync_seconds_count{executor=\"0\"}"),
            Some(3.0)
        );
        assert_eq!(
            value_of(&text, "ringmail_store_messages{executor=\"0\"}"),
            Some(7.0)
        );
        assert_eq!(
            value_of(
                &text,
                "ringmail_store_batch_records_bucket{executor=\"1\",le=\"4\"}"
            ),
            Some(1.0)
        );
        assert_eq!(
            value_of(
                &text,
                "ringmail_store_batch_records_bucket{executor=\"1\",le=\"2\"}"
            ),
            Some(0.0)
        );
    }

    #[test]
    fn per_executor_series_keep_their_label() {
        let mut a = ExecutorMetrics::new();
        a.connection_accepted(Listener::Imaps);
        a.connection_open(Listener::Imaps, 1);
        a.session_state(SessionState::Selected, 1);
        let a = snapshot(3, a);
        let text = render(
            &[&a],
            &ProcessInfo {
                executors: 4,
                start_time: 1,
            },
        );
        assert_eq!(
            value_of(
                &text,
                "ringmail_connections_accepted_total{executor=\"3\",listener=\"imaps\"}"
            ),
            Some(1.0)
        );
        assert_eq!(
            value_of(
                &text,
                "ringmail_sessions{executor=\"3\",state=\"selected\"}"
            ),
            Some(1.0)
        );
        // Every sample line is `name{labels} value` or `name value`.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap_or("");
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
