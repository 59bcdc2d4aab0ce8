//! One executor's counters and histograms.
//!
//! Each executor owns an [`ExecutorMetrics`] behind an `Rc<RefCell<..>>` and updates it with
//! plain integer adds: no atomics, no cache lines shared between cores. Once a second the
//! executor clones it into a [`Snapshot`] for the metrics thread, which merges the latest
//! snapshot of every executor when Prometheus scrapes.
//!
//! Every label value is a `&'static str` from a fixed set in the code (command names, results,
//! mechanisms, limit names), never a user name or an address, so the number of series stays
//! bounded whatever clients send.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;

use ringmail_store::StoreStats;

/// Slowest latency a histogram tells apart, in microseconds (a minute); slower ones are
/// recorded as this.
const MAX_LATENCY_US: u64 = 60_000_000;

/// Which kind of listener accepted a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// Plain IMAP (STARTTLS offered).
    Imap,
    /// Implicit-TLS IMAP.
    Imaps,
    /// LMTP delivery.
    Lmtp,
    /// ManageSieve (RFC 5804).
    ManageSieve,
}

impl Listener {
    /// Every listener kind, in label order.
    pub const ALL: [Listener; 4] = [
        Listener::Imap,
        Listener::Imaps,
        Listener::Lmtp,
        Listener::ManageSieve,
    ];

    /// The Prometheus label value.
    pub fn label(self) -> &'static str {
        match self {
            Listener::Imap => "imap",
            Listener::Imaps => "imaps",
            Listener::Lmtp => "lmtp",
            Listener::ManageSieve => "managesieve",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Where an IMAP session is in RFC 9051's state diagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// Before login.
    NotAuthenticated,
    /// Logged in, no mailbox selected.
    Authenticated,
    /// A mailbox is selected.
    Selected,
}

impl SessionState {
    /// Every state, in label order.
    pub const ALL: [SessionState; 3] = [
        SessionState::NotAuthenticated,
        SessionState::Authenticated,
        SessionState::Selected,
    ];

    /// The Prometheus label value.
    pub fn label(self) -> &'static str {
        match self {
            SessionState::NotAuthenticated => "not_authenticated",
            SessionState::Authenticated => "authenticated",
            SessionState::Selected => "selected",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How a command ended: the status of its tagged response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// `OK`
    Ok,
    /// `NO`
    No,
    /// `BAD`
    Bad,
}

impl Outcome {
    /// Every outcome, in label order.
    pub const ALL: [Outcome; 3] = [Outcome::Ok, Outcome::No, Outcome::Bad];

    /// From a tagged response's status word; None for anything else.
    pub fn from_status(status: &str) -> Option<Outcome> {
        match status {
            "OK" => Some(Outcome::Ok),
            "NO" => Some(Outcome::No),
            "BAD" => Some(Outcome::Bad),
            _ => None,
        }
    }

    /// The Prometheus label value.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::No => "no",
            Outcome::Bad => "bad",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Counts and latencies of one command name.
#[derive(Debug, Clone)]
pub struct CommandStats {
    /// Completions by [`Outcome`] (indexed by `Outcome as usize`).
    pub results: [u64; 3],
    /// Latency in microseconds.
    pub latency: Histogram<u64>,
    /// Exact sum of the recorded latencies, in microseconds (the histogram's is rounded).
    pub latency_sum_us: u64,
}

impl CommandStats {
    fn new() -> CommandStats {
        CommandStats {
            results: [0; 3],
            latency: latency_histogram(),
            latency_sum_us: 0,
        }
    }

    /// Completions with `outcome`.
    pub fn count(&self, outcome: Outcome) -> u64 {
        self.results[outcome.index()]
    }
}

/// An empty latency histogram: 1 µs to a minute, two significant digits (1 % error), which
/// keeps one at a few KiB so a snapshot per second stays cheap.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 2).expect("constant bounds are valid")
}

/// One executor's metrics. Cloning it is the snapshot sent to the metrics thread.
#[derive(Debug, Clone)]
pub struct ExecutorMetrics {
    /// Connections accepted, by [`Listener`].
    pub accepted: [u64; 4],
    /// Connections open now, by [`Listener`].
    pub open: [i64; 4],
    /// Sessions open now, by [`SessionState`].
    pub sessions: [i64; 3],
    /// Sessions in IDLE now.
    pub idling: i64,
    /// IMAP commands, per command name.
    pub commands: BTreeMap<&'static str, CommandStats>,
    /// ManageSieve commands, per command name (a family of their own: both protocols
    /// have CAPABILITY, AUTHENTICATE, LOGOUT, ...).
    pub managesieve_commands: BTreeMap<&'static str, CommandStats>,
    /// Login attempts by (mechanism, result).
    pub logins: BTreeMap<(&'static str, &'static str), u64>,
    /// Logins answered by the auth cache (no password hash computed).
    pub auth_cache_hits: u64,
    /// Bytes read from clients.
    pub bytes_in: u64,
    /// Bytes written to clients.
    pub bytes_out: u64,
    /// Messages stored by APPEND.
    pub appended_messages: u64,
    /// Bytes of messages stored by APPEND.
    pub appended_bytes: u64,
    /// LMTP deliveries by result.
    pub lmtp_deliveries: BTreeMap<&'static str, u64>,
    /// Inputs refused by a limit, by the limit's name.
    pub rejected: BTreeMap<&'static str, u64>,
    /// Ended sessions by why they ended.
    pub disconnects: BTreeMap<&'static str, u64>,
    /// Store partitions this executor opened at start.
    pub partitions_open: u64,
    /// Its open partitions' store statistics, summed; filled in when the snapshot is taken
    /// (the store keeps its own counters, so the hot path does not touch these).
    pub store: StoreStats,
}

impl Default for ExecutorMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ExecutorMetrics {
    /// All zero.
    pub fn new() -> ExecutorMetrics {
        ExecutorMetrics {
            accepted: [0; 4],
            open: [0; 4],
            sessions: [0; 3],
            idling: 0,
            commands: BTreeMap::new(),
            managesieve_commands: BTreeMap::new(),
            logins: BTreeMap::new(),
            auth_cache_hits: 0,
            bytes_in: 0,
            bytes_out: 0,
            appended_messages: 0,
            appended_bytes: 0,
            lmtp_deliveries: BTreeMap::new(),
            rejected: BTreeMap::new(),
            disconnects: BTreeMap::new(),
            partitions_open: 0,
            store: StoreStats::default(),
        }
    }

    /// A listener accepted a connection.
    pub fn connection_accepted(&mut self, listener: Listener) {
        self.accepted[listener.index()] += 1;
    }

    /// A connection now lives on this executor (+1) or left it (-1).
    pub fn connection_open(&mut self, listener: Listener, delta: i64) {
        self.open[listener.index()] += delta;
    }

    /// A session entered (+1) or left (-1) `state` on this executor.
    pub fn session_state(&mut self, state: SessionState, delta: i64) {
        self.sessions[state.index()] += delta;
    }

    /// An IMAP command finished with `outcome` after `elapsed`; `timed` is false for
    /// commands whose duration is the client's choice (IDLE), which would drown the
    /// latencies.
    pub fn command(
        &mut self,
        name: &'static str,
        outcome: Outcome,
        elapsed: Duration,
        timed: bool,
    ) {
        record_command(&mut self.commands, name, outcome, elapsed, timed);
    }

    /// A command of a session from `listener` finished: counted with its protocol's
    /// commands.
    pub fn listener_command(
        &mut self,
        listener: Listener,
        name: &'static str,
        outcome: Outcome,
        elapsed: Duration,
        timed: bool,
    ) {
        let commands = match listener {
            Listener::ManageSieve => &mut self.managesieve_commands,
            Listener::Imap | Listener::Imaps | Listener::Lmtp => &mut self.commands,
        };
        record_command(commands, name, outcome, elapsed, timed);
    }

    /// A login attempt with `mechanism` ended with `result`.
    pub fn login(&mut self, mechanism: &'static str, result: &'static str, cache_hit: bool) {
        *self.logins.entry((mechanism, result)).or_insert(0) += 1;
        if cache_hit {
            self.auth_cache_hits += 1;
        }
    }

    /// APPEND stored `messages` messages of `bytes` bytes in all.
    pub fn appended(&mut self, messages: u64, bytes: u64) {
        self.appended_messages += messages;
        self.appended_bytes += bytes;
    }

    /// An LMTP recipient's delivery ended with `result` (e.g. "delivered", "temp_fail").
    pub fn lmtp_delivery(&mut self, result: &'static str) {
        *self.lmtp_deliveries.entry(result).or_insert(0) += 1;
    }

    /// An input or connection was refused by `limit` (e.g. "line", "literal", "connections").
    pub fn rejected(&mut self, limit: &'static str) {
        *self.rejected.entry(limit).or_insert(0) += 1;
    }

    /// A session ended because of `why`.
    pub fn disconnected(&mut self, why: &'static str) {
        *self.disconnects.entry(why).or_insert(0) += 1;
    }

    /// Adds `other` into `self` (counters, gauges and histograms alike).
    pub fn merge(&mut self, other: &ExecutorMetrics) {
        for (ours, theirs) in self.accepted.iter_mut().zip(other.accepted) {
            *ours += theirs;
        }
        for (ours, theirs) in self.open.iter_mut().zip(other.open) {
            *ours += theirs;
        }
        for (ours, theirs) in self.sessions.iter_mut().zip(other.sessions) {
            *ours += theirs;
        }
        self.idling += other.idling;
        merge_commands(&mut self.commands, &other.commands);
        merge_commands(&mut self.managesieve_commands, &other.managesieve_commands);
        merge_map(&mut self.logins, &other.logins);
        self.auth_cache_hits += other.auth_cache_hits;
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
        self.appended_messages += other.appended_messages;
        self.appended_bytes += other.appended_bytes;
        merge_map(&mut self.lmtp_deliveries, &other.lmtp_deliveries);
        merge_map(&mut self.rejected, &other.rejected);
        merge_map(&mut self.disconnects, &other.disconnects);
        self.partitions_open += other.partitions_open;
        self.store.merge(&other.store);
    }
}

fn record_command(
    commands: &mut BTreeMap<&'static str, CommandStats>,
    name: &'static str,
    outcome: Outcome,
    elapsed: Duration,
    timed: bool,
) {
    let stats = commands.entry(name).or_insert_with(CommandStats::new);
    stats.results[outcome.index()] += 1;
    if timed {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        stats.latency.saturating_record(us.clamp(1, MAX_LATENCY_US));
        stats.latency_sum_us = stats.latency_sum_us.saturating_add(us);
    }
}

fn merge_commands(
    ours: &mut BTreeMap<&'static str, CommandStats>,
    theirs: &BTreeMap<&'static str, CommandStats>,
) {
    for (name, theirs) in theirs {
        let ours = ours.entry(name).or_insert_with(CommandStats::new);
        for (o, t) in ours.results.iter_mut().zip(theirs.results) {
            *o += t;
        }
        // Both histograms have the same bounds, so adding cannot fail; if it ever did,
        // the counts above are still right and only the latency would be short.
        let _ = ours.latency.add(&theirs.latency);
        ours.latency_sum_us = ours.latency_sum_us.saturating_add(theirs.latency_sum_us);
    }
}

fn merge_map<K: Ord + Copy>(ours: &mut BTreeMap<K, u64>, theirs: &BTreeMap<K, u64>) {
    for (key, n) in theirs {
        *ours.entry(*key).or_insert(0) += n;
    }
}

/// What an executor sends the metrics thread once a second.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The executor's index.
    pub executor: usize,
    /// Its partitions are open and its listeners bound.
    pub ready: bool,
    /// It has begun shutting down.
    pub stopping: bool,
    /// Its metrics at the time of sending.
    pub metrics: ExecutorMetrics,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_counters_and_histograms() {
        let mut a = ExecutorMetrics::new();
        a.connection_accepted(Listener::Imap);
        a.command("FETCH", Outcome::Ok, Duration::from_micros(100), true);
        a.login("PLAIN", "ok", true);
        let mut b = ExecutorMetrics::new();
        b.connection_accepted(Listener::Imap);
        b.command("FETCH", Outcome::No, Duration::from_millis(10), true);
        b.command("IDLE", Outcome::Ok, Duration::from_secs(600), false);
        b.login("PLAIN", "ok", false);

        let mut total = ExecutorMetrics::new();
        total.merge(&a);
        total.merge(&b);
        assert_eq!(total.accepted[Listener::Imap.index()], 2);
        let fetch = &total.commands["FETCH"];
        assert_eq!(fetch.count(Outcome::Ok), 1);
        assert_eq!(fetch.count(Outcome::No), 1);
        assert_eq!(fetch.latency.len(), 2);
        assert_eq!(fetch.latency_sum_us, 10_100);
        // IDLE is counted but its duration is not a latency.
        assert_eq!(total.commands["IDLE"].count(Outcome::Ok), 1);
        assert_eq!(total.commands["IDLE"].latency.len(), 0);
        assert_eq!(total.logins[&("PLAIN", "ok")], 2);
        assert_eq!(total.auth_cache_hits, 1);
    }

    #[test]
    fn absurd_latency_is_clamped_not_lost() {
        let mut m = ExecutorMetrics::new();
        m.command("APPEND", Outcome::Ok, Duration::from_secs(3600), true);
        assert_eq!(m.commands["APPEND"].latency.len(), 1);
    }
}
