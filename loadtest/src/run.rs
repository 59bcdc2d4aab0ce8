//! A run: worker threads, each with its own single-threaded tokio executor and its share of
//! the sessions (thread-per-core, like the server: no work stealing, no shared histograms),
//! and the calling thread as the reporter printing the per-second line.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::client::{Endpoint, TlsMode};
use crate::idle::IdleBoard;
use crate::message::{MessagePool, SourceError};
use crate::options::{Options, OptionsError, Profile};
use crate::procstat::{self, TreeSample};
use crate::report::{self, ServerCost, Summary};
use crate::session::{drive, SessionCtx, UserPool};
use crate::stats::{Command, Recorder, Shared};

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Invalid options.
    #[error(transparent)]
    Options(#[from] OptionsError),
    /// The message source failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// TLS could not be configured.
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// A worker thread could not start.
    #[error("starting a worker: {0}")]
    Worker(std::io::Error),
    /// The OAuth tokens could not be made.
    #[error(transparent)]
    Tokens(#[from] crate::oauth::TokenError),
    /// The server PID does not exist.
    #[error("no process {0} (--pid)")]
    NoServer(u32),
}

/// Default connection rate of the idle profile: thousands of simultaneous connects overflow
/// accept backlogs and turn into SYN retries that measure the kernel, not the server.
const IDLE_CONNECT_RATE: u32 = 1000;

/// Runs the profile; `on_line` receives the header and each per-second line.
pub fn run(opts: Options, mut on_line: impl FnMut(&str)) -> Result<Summary, RunError> {
    let addr = opts.validate()?;
    let sessions = opts.clients()
        + if opts.profile == Profile::Idle {
            opts.senders
        } else {
            0
        };
    raise_open_files_limit(u64::from(sessions) + 64);
    let messages = match &opts.mbox {
        Some(path) => MessagePool::from_mbox(path, opts.max_message_size)?,
        None => MessagePool::generate(opts.seed, opts.max_message_size),
    };
    let tls = if opts.tls {
        TlsMode::Implicit(crate::tls::client_config()?)
    } else if opts.starttls {
        TlsMode::StartTls(crate::tls::client_config()?)
    } else {
        TlsMode::Plain
    };
    let endpoint = Endpoint {
        addr,
        tls,
        timeout: opts.timeout(),
        max_literal: (opts.max_message_size as u64 * 2).max(64 << 20),
    };
    let threads = opts
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .min(sessions as usize)
        .max(1);
    if let Some(pid) = opts.pid {
        procstat::sample(pid).ok_or(RunError::NoServer(pid))?;
    }

    let lmtp_data = (opts.profile == Profile::Lmtp).then(|| crate::lmtp::DataPool::new(&messages));
    // Signed here, before the clock starts: the run measures the server's check only.
    let tokens = crate::oauth::prepare(&opts)?.map(Arc::new);
    let shared = Arc::new(Shared::default());
    let users = Arc::new(UserPool::new(opts.users));
    let board = (opts.profile == Profile::Idle).then(|| Arc::new(IdleBoard::new(opts.clients())));
    let opts = Arc::new(opts);
    let start = Instant::now();
    let measure_from = start + opts.warmup();
    let deadline = measure_from + opts.duration();
    // Sessions get one command timeout past the deadline to finish what they started.
    let hard_stop = deadline + opts.timeout() + Duration::from_secs(1);
    let connect_rate = opts
        .connect_rate
        .unwrap_or(if opts.profile == Profile::Idle {
            IDLE_CONNECT_RATE
        } else {
            0
        });

    // Without warm-up, measuring starts before the first session does.
    let mut server_at_start: Option<TreeSample> = None;
    let mut own_start = procstat::sample(std::process::id()).unwrap_or_default();
    if opts.warmup == 0.0 {
        shared.measuring.store(true, Ordering::Relaxed);
        server_at_start = opts.pid.and_then(procstat::sample);
    }
    let mut workers = Vec::with_capacity(threads);
    for t in 0..threads {
        let worker = Worker {
            thread: t,
            threads,
            sessions,
            connect_rate,
            opts: opts.clone(),
            endpoint: endpoint.clone(),
            shared: shared.clone(),
            messages: messages.clone(),
            users: users.clone(),
            board: board.clone(),
            lmtp_data: lmtp_data.clone(),
            tokens: tokens.clone(),
            start,
            measure_from,
            deadline,
            hard_stop,
        };
        let handle = std::thread::Builder::new()
            .name(format!("load-{t}"))
            .spawn(move || worker.run())
            .map_err(RunError::Worker)?;
        workers.push(handle);
    }

    // Reporter: a line per second; flips to measuring when the warm-up ends.
    let ticks = procstat::ticks_per_second() as f64;
    let own_pid = std::process::id();
    let mut rss_peak = 0u64;
    if !opts.quiet {
        on_line(&report::header(opts.profile));
    }
    let mut last = shared.counts();
    let mut last_errors = 0u64;
    let mut next_tick = start + Duration::from_secs(1);
    // Bounded by hard_stop: workers end by then at the latest.
    while workers.iter().any(|w| !w.is_finished()) {
        let measuring = shared.measuring.load(Ordering::Relaxed);
        let wake = if measuring {
            next_tick
        } else {
            next_tick.min(measure_from)
        };
        std::thread::sleep(
            wake.saturating_duration_since(Instant::now())
                .min(Duration::from_millis(100)),
        );
        let now = Instant::now();
        if !measuring && now >= measure_from {
            server_at_start = opts.pid.and_then(procstat::sample);
            own_start = procstat::sample(own_pid).unwrap_or_default();
            shared.measuring.store(true, Ordering::Relaxed);
        }
        if now >= next_tick {
            next_tick += Duration::from_secs(1);
            let counts = shared.counts();
            let delta: Vec<u64> = counts.iter().zip(&last).map(|(a, b)| a - b).collect();
            last = counts;
            let errors = shared.error_count.load(Ordering::Relaxed);
            if !opts.quiet {
                on_line(&report::line(
                    opts.profile,
                    &delta,
                    shared.connected.load(Ordering::Relaxed),
                    sessions,
                    errors - last_errors,
                    now < measure_from,
                ));
            }
            last_errors = errors;
            if let Some(s) = opts.pid.and_then(procstat::sample) {
                rss_peak = rss_peak.max(s.rss_kib);
            }
        }
        if now >= hard_stop {
            shared.stopping.store(true, Ordering::Relaxed);
        }
    }
    let end = Instant::now();
    let mut recorder = Recorder::default();
    for w in workers {
        // A worker that panicked lost its histograms; the run still reports the others.
        if let Ok(r) = w.join() {
            recorder.merge(&r);
        }
    }
    if let Some(board) = &board {
        let missed = board.missed(opts.timeout());
        for _ in 0..missed {
            shared.error(
                "idle-missed",
                "an APPEND's EXISTS did not reach the idling session".into(),
            );
        }
    }

    let seconds = end.saturating_duration_since(measure_from).as_secs_f64();
    let commands = report::command_summaries(&recorder, seconds);
    let total_commands: u64 = Command::ALL
        .iter()
        .filter(|c| c.is_command())
        .filter_map(|&c| recorder.histogram(c).map(|h| h.len()))
        .sum();
    let deliveries = recorder.histogram(Command::Delivery).map_or(0, |h| h.len());
    let server = match (
        opts.pid,
        server_at_start,
        opts.pid.and_then(procstat::sample),
    ) {
        (Some(pid), Some(a), Some(b)) => {
            let cpu_seconds = b.cpu_ticks.saturating_sub(a.cpu_ticks) as f64 / ticks;
            Some(ServerCost {
                pid,
                cpu_seconds,
                cpu_ms_per_1000_commands: if total_commands > 0 {
                    cpu_seconds * 1000.0 * 1000.0 / total_commands as f64
                } else {
                    0.0
                },
                cpu_ms_per_1000_deliveries: (opts.profile == Profile::Lmtp && deliveries > 0)
                    .then(|| cpu_seconds * 1000.0 * 1000.0 / deliveries as f64),
                rss_kib: b.rss_kib,
                rss_peak_kib: rss_peak.max(b.rss_kib),
                processes: b.processes,
            })
        }
        _ => None,
    };
    let own_end = procstat::sample(own_pid).unwrap_or_default();
    let own_cpu = own_end.cpu_ticks.saturating_sub(own_start.cpu_ticks) as f64 / ticks;
    let errors = shared.errors();
    Ok(Summary {
        profile: format!("{:?}", opts.profile).to_lowercase(),
        target: addr.to_string(),
        clients: opts.clients(),
        threads,
        seed: opts.seed,
        seconds,
        commands,
        total_commands,
        error_count: errors.values().map(|e| e.count).sum(),
        errors,
        server,
        client_cpu_share: if seconds > 0.0 {
            own_cpu / seconds / threads as f64
        } else {
            0.0
        },
    })
}

/// One worker thread's share of the sessions.
struct Worker {
    thread: usize,
    threads: usize,
    sessions: u32,
    connect_rate: u32,
    opts: Arc<Options>,
    endpoint: Endpoint,
    shared: Arc<Shared>,
    messages: MessagePool,
    users: Arc<UserPool>,
    board: Option<Arc<IdleBoard>>,
    lmtp_data: Option<crate::lmtp::DataPool>,
    tokens: Option<Arc<crate::oauth::Tokens>>,
    start: Instant,
    measure_from: Instant,
    deadline: Instant,
    hard_stop: Instant,
}

impl Worker {
    fn run(self) -> Recorder {
        let recorder = Rc::new(RefCell::new(Recorder::default()));
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                self.shared
                    .error("runtime", format!("worker {}: {e}", self.thread));
                return Recorder::default();
            }
        };
        let local = tokio::task::LocalSet::new();
        let to_tokio = |t: Instant| tokio::time::Instant::from_std(t);
        for index in (self.thread as u32..self.sessions).step_by(self.threads) {
            let delay = if self.connect_rate > 0 {
                Duration::from_secs_f64(f64::from(index) / f64::from(self.connect_rate))
            } else {
                Duration::ZERO
            };
            let ctx = SessionCtx {
                index,
                rng: StdRng::seed_from_u64(
                    self.opts
                        .seed
                        .wrapping_add(u64::from(index).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
                ),
                opts: self.opts.clone(),
                endpoint: self.endpoint.clone(),
                source: self.opts.source_for(index),
                shared: self.shared.clone(),
                recorder: recorder.clone(),
                messages: self.messages.clone(),
                users: self.users.clone(),
                idle: self.board.clone(),
                lmtp_data: self.lmtp_data.clone(),
                tokens: self.tokens.clone(),
                measure_from: to_tokio(self.measure_from),
                deadline: to_tokio(self.deadline),
                iterations: 0,
            };
            let begin = to_tokio(self.start + delay);
            local.spawn_local(async move {
                tokio::time::sleep_until(begin.min(ctx.deadline)).await;
                drive(ctx).await;
            });
        }
        let hard_stop = to_tokio(self.hard_stop);
        // Sessions end by themselves at the deadline; the hard stop drops any still waiting.
        let _ = runtime.block_on(local.run_until(async {
            tokio::time::timeout_at(hard_stop, async {
                // Bounded by the hard stop: waits until no session task is left.
                while local_tasks_left(&recorder) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
            .await
        }));
        drop(local);
        recorder.replace(Recorder::default())
    }
}

/// Whether session tasks still hold this thread's recorder (each holds one clone).
fn local_tasks_left(recorder: &Rc<RefCell<Recorder>>) -> bool {
    Rc::strong_count(recorder) > 1
}

/// Raises the soft limit on open files towards the hard limit, to `want` if possible.
fn raise_open_files_limit(want: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own and pass by valid pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return;
    }
    if limit.rlim_cur >= want {
        return;
    }
    limit.rlim_cur = limit.rlim_max.min(want.max(limit.rlim_cur));
    // SAFETY: setrlimit reads the struct we own; lowering or raising the soft limit up to
    // the hard limit is always permitted.
    unsafe {
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
}
