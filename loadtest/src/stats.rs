//! What the sessions measure: a counter per command for the per-second line (shared, atomic),
//! a latency histogram per command per worker thread (merged at the end, so recording never
//! contends), and the error log.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;

/// Everything the load generator times. The short names are the per-second columns, in the
/// style of imaptest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Command {
    /// TCP connect, TLS handshake and greeting.
    Connect,
    /// LOGIN
    Login,
    /// LIST "" "*"
    List,
    /// STATUS
    Status,
    /// SELECT (plain, or with CONDSTORE/QRESYNC parameters)
    Select,
    /// FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE)
    Fetch,
    /// UID FETCH of full bodies.
    Fetch2,
    /// UID STORE of \Seen/\Flagged.
    Store,
    /// UID STORE +FLAGS.SILENT (\Deleted)
    Delete,
    /// EXPUNGE
    Expunge,
    /// APPEND
    Append,
    /// LOGOUT
    Logout,
    /// SEARCH BODY
    SearchBody,
    /// SEARCH FROM
    SearchFrom,
    /// SEARCH SUBJECT
    SearchSubject,
    /// SEARCH by flags.
    SearchFlags,
    /// UID FETCH 1:* of header fields (first sync).
    SyncFull,
    /// Resync: UID FETCH of changes (CHANGEDSINCE) and new messages.
    SyncChanges,
    /// IDLE: from the write of an APPEND to the EXISTS seen by the idling session.
    IdleNotify,
    /// LMTP LHLO.
    Lhlo,
    /// LMTP MAIL FROM.
    MailFrom,
    /// LMTP RCPT TO, one per recipient.
    RcptTo,
    /// LMTP DATA: from the DATA command to the last recipient's final reply.
    Data,
    /// One recipient's copy stored: from the end of the message to its 2xx reply.
    Delivery,
}

impl Command {
    /// Every command, in display order.
    pub const ALL: [Command; 24] = [
        Command::Connect,
        Command::Login,
        Command::List,
        Command::Status,
        Command::Select,
        Command::Fetch,
        Command::Fetch2,
        Command::Store,
        Command::Delete,
        Command::Expunge,
        Command::Append,
        Command::Logout,
        Command::SearchBody,
        Command::SearchFrom,
        Command::SearchSubject,
        Command::SearchFlags,
        Command::SyncFull,
        Command::SyncChanges,
        Command::IdleNotify,
        Command::Lhlo,
        Command::MailFrom,
        Command::RcptTo,
        Command::Data,
        Command::Delivery,
    ];

    /// Four-letter column name for the per-second line.
    pub fn short(self) -> &'static str {
        match self {
            Command::Connect => "Conn",
            Command::Login => "Logi",
            Command::List => "List",
            Command::Status => "Stat",
            Command::Select => "Sele",
            Command::Fetch => "Fetc",
            Command::Fetch2 => "Fet2",
            Command::Store => "Stor",
            Command::Delete => "Dele",
            Command::Expunge => "Expu",
            Command::Append => "Appe",
            Command::Logout => "Logo",
            Command::SearchBody => "SBod",
            Command::SearchFrom => "SFro",
            Command::SearchSubject => "SSub",
            Command::SearchFlags => "SFla",
            Command::SyncFull => "Sync",
            Command::SyncChanges => "Resy",
            Command::IdleNotify => "Idle",
            Command::Lhlo => "Lhlo",
            Command::MailFrom => "Mail",
            Command::RcptTo => "Rcpt",
            Command::Data => "Data",
            Command::Delivery => "Dlvr",
        }
    }

    /// Name in the summary and the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Command::Connect => "connect",
            Command::Login => "login",
            Command::List => "list",
            Command::Status => "status",
            Command::Select => "select",
            Command::Fetch => "fetch",
            Command::Fetch2 => "fetch2",
            Command::Store => "store",
            Command::Delete => "delete",
            Command::Expunge => "expunge",
            Command::Append => "append",
            Command::Logout => "logout",
            Command::SearchBody => "search_body",
            Command::SearchFrom => "search_from",
            Command::SearchSubject => "search_subject",
            Command::SearchFlags => "search_flags",
            Command::SyncFull => "sync_full",
            Command::SyncChanges => "sync_changes",
            Command::IdleNotify => "idle_notify",
            Command::Lhlo => "lhlo",
            Command::MailFrom => "mail_from",
            Command::RcptTo => "rcpt_to",
            Command::Data => "data",
            Command::Delivery => "delivery",
        }
    }

    /// Whether this is a command the client sent (counted in the total and in the server's
    /// CPU per 1000 commands), rather than a measurement spanning several (connect, an IDLE
    /// notification, a delivery).
    pub fn is_command(self) -> bool {
        !matches!(
            self,
            Command::Connect | Command::IdleNotify | Command::Delivery
        )
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Error examples kept per kind.
const EXAMPLES_PER_KIND: usize = 3;

/// Errors of one kind: how many, and the first few as examples.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ErrorKind {
    /// How many errors of this kind.
    pub count: u64,
    /// The first few, as text.
    pub examples: Vec<String>,
}

/// State shared by all worker threads and the reporter.
#[derive(Debug)]
pub struct Shared {
    counts: [AtomicU64; Command::ALL.len()],
    /// Sessions currently connected.
    pub connected: AtomicI64,
    /// Errors counted so far (for the per-second line).
    pub error_count: AtomicU64,
    errors: Mutex<BTreeMap<String, ErrorKind>>,
    /// False during warm-up: histograms record nothing then.
    pub measuring: AtomicBool,
    /// Set when the run is over: sessions stop at their next check.
    pub stopping: AtomicBool,
}

impl Default for Shared {
    fn default() -> Self {
        Self {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            connected: AtomicI64::new(0),
            error_count: AtomicU64::new(0),
            errors: Mutex::new(BTreeMap::new()),
            measuring: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
        }
    }
}

impl Shared {
    /// Commands completed so far, per command (warm-up included).
    pub fn counts(&self) -> [u64; Command::ALL.len()] {
        std::array::from_fn(|i| self.counts[i].load(Ordering::Relaxed))
    }

    /// Records an error of `kind` with a description, when measuring.
    pub fn error(&self, kind: &str, example: String) {
        if !self.measuring.load(Ordering::Relaxed) {
            return;
        }
        self.error_count.fetch_add(1, Ordering::Relaxed);
        let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        let entry = errors.entry(kind.to_string()).or_default();
        entry.count += 1;
        if entry.examples.len() < EXAMPLES_PER_KIND {
            entry.examples.push(example);
        }
    }

    /// Errors so far, by kind.
    pub fn errors(&self) -> BTreeMap<String, ErrorKind> {
        self.errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Latency histograms of one worker thread, in microseconds.
pub struct Recorder {
    histograms: Vec<Histogram<u64>>,
}

/// Longest latency a histogram holds (one hour, in µs); longer ones are clamped.
const MAX_MICROS: u64 = 3_600_000_000;

/// A histogram for latencies in µs, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("constant bounds are valid")
}

impl Default for Recorder {
    fn default() -> Self {
        Self {
            histograms: Command::ALL.iter().map(|_| new_histogram()).collect(),
        }
    }
}

impl Recorder {
    /// Records one completed command: always counted for the per-second line, and in the
    /// histogram once warm-up is over.
    pub fn record(&mut self, shared: &Shared, command: Command, latency: Duration) {
        shared.counts[command.index()].fetch_add(1, Ordering::Relaxed);
        if shared.measuring.load(Ordering::Relaxed) {
            let micros = u64::try_from(latency.as_micros()).unwrap_or(MAX_MICROS);
            if let Some(h) = self.histograms.get_mut(command.index()) {
                h.saturating_record(micros.clamp(1, MAX_MICROS));
            }
        }
    }

    /// Adds another thread's histograms to these.
    pub fn merge(&mut self, other: &Recorder) {
        for (mine, theirs) in self.histograms.iter_mut().zip(&other.histograms) {
            // Same bounds on both sides, so adding cannot fail.
            let _ = mine.add(theirs);
        }
    }

    /// The histogram of one command.
    pub fn histogram(&self, command: Command) -> Option<&Histogram<u64>> {
        self.histograms.get(command.index())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_up_is_counted_per_second_but_not_in_histograms() {
        let shared = Shared::default();
        let mut rec = Recorder::default();
        rec.record(&shared, Command::Login, Duration::from_millis(1));
        shared.measuring.store(true, Ordering::Relaxed);
        rec.record(&shared, Command::Login, Duration::from_millis(2));
        assert_eq!(shared.counts()[Command::Login.index()], 2);
        assert_eq!(rec.histogram(Command::Login).map(|h| h.len()), Some(1));
    }

    #[test]
    fn errors_keep_counts_and_a_few_examples() {
        let shared = Shared::default();
        shared.measuring.store(true, Ordering::Relaxed);
        for i in 0..10 {
            shared.error("NO", format!("example {i}"));
        }
        let errors = shared.errors();
        assert_eq!(errors["NO"].count, 10);
        assert_eq!(errors["NO"].examples.len(), EXAMPLES_PER_KIND);
    }

    #[test]
    fn command_table_is_in_index_order() {
        for (i, c) in Command::ALL.iter().enumerate() {
            assert_eq!(c.index(), i);
        }
    }
}
