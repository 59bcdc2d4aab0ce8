//! The process's own threads for lookups that wait on the network: a directory search and
//! bind, a fetch of the issuer's key set, a token introspection.
//!
//! The executors' blocking pools (a few threads per core) run what only costs CPU: a hash,
//! a passwd-file lookup, an auth cache hit. Were a directory login to run there, a directory
//! that answers slowly would occupy those threads for up to its timeout, and every other
//! login of that core (passwd-file users too) would queue behind it. So a login that needs
//! the network is handed to this pool instead: a few threads shared by all executors, and a
//! bounded queue. When the queue is full the login is answered Unavailable at once, and a
//! login that waited in the queue longer than the backend's own timeout is answered so
//! without being tried: a stalled directory costs each login at most about twice the
//! timeout, and never holds up anything else.

use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Queued lookups per thread before new ones are refused: a burst of logins is absorbed, a
/// stalled directory is not allowed to pile up work without bound.
pub const QUEUE_PER_THREAD: usize = 16;

/// A unit of work and when it was queued; `run` is told whether it waited too long.
struct Job {
    queued: Instant,
    run: Box<dyn FnOnce(bool) + Send>,
}

/// A fixed set of threads taking jobs from one bounded queue. The threads end when the pool
/// is dropped (the queue's sender goes with it) and the jobs queued have run.
pub struct LookupPool {
    queue: SyncSender<Job>,
    threads: usize,
    capacity: usize,
    max_wait: Duration,
}

/// Why a lookup was not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The queue is full.
    Busy(String),
    /// The lookup waited in the queue past the backend's timeout.
    Late(String),
}

impl Refused {
    /// The reason, for the log and `NO [UNAVAILABLE]`.
    pub fn reason(self) -> String {
        match self {
            Refused::Busy(why) | Refused::Late(why) => why,
        }
    }
}

impl LookupPool {
    /// Starts `threads` threads (at least one) with room for
    /// `threads * QUEUE_PER_THREAD` waiting jobs; a job that waited more than `max_wait` is
    /// not run.
    pub fn new(threads: usize, max_wait: Duration) -> std::io::Result<LookupPool> {
        let threads = threads.max(1);
        let capacity = threads * QUEUE_PER_THREAD;
        let (queue, jobs) = mpsc::sync_channel::<Job>(capacity);
        let jobs = Arc::new(Mutex::new(jobs));
        for i in 0..threads {
            let jobs = Arc::clone(&jobs);
            std::thread::Builder::new()
                .name(format!("ringmail-lookup-{i}"))
                .spawn(move || work(&jobs, max_wait))?;
        }
        Ok(LookupPool {
            queue,
            threads,
            capacity,
            max_wait,
        })
    }

    /// Threads of the pool.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Queues `work`; the returned receiver resolves (as a future, on any executor) to its
    /// result, or to [`Refused::Late`] when it waited too long to be tried. Refused::Busy
    /// at once when the queue is full.
    pub fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<futures_channel::oneshot::Receiver<Result<T, Refused>>, Refused> {
        let (tx, rx) = futures_channel::oneshot::channel();
        let max_wait = self.max_wait;
        let job = Job {
            queued: Instant::now(),
            run: Box::new(move |late| {
                let result = if late {
                    Err(Refused::Late(format!(
                        "waited more than {} ms for a lookup thread",
                        max_wait.as_millis()
                    )))
                } else {
                    Ok(work())
                };
                // The caller may have gone (its connection closed): nothing to tell.
                let _ = tx.send(result);
            }),
        };
        match self.queue.try_send(job) {
            Ok(()) => Ok(rx),
            Err(TrySendError::Full(_)) => Err(Refused::Busy(format!(
                "all {} lookup threads are busy and {} lookups wait",
                self.threads, self.capacity
            ))),
            Err(TrySendError::Disconnected(_)) => {
                Err(Refused::Busy("the lookup threads have stopped".into()))
            }
        }
    }
}

/// One thread's loop: takes jobs until the pool is gone.
fn work(jobs: &Mutex<Receiver<Job>>, max_wait: Duration) {
    loop {
        // The lock is held only while waiting for the next job, never while running one.
        let job = jobs.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(job) = job else {
            return;
        };
        let late = job.queued.elapsed() > max_wait;
        (job.run)(late);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;

    fn block_on<T>(rx: futures_channel::oneshot::Receiver<T>) -> T {
        // A oneshot's receiver is also answerable without an executor: poll by waiting.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut rx = rx;
        loop {
            match rx.try_recv() {
                Ok(Some(value)) => return value,
                Ok(None) => {}
                Err(_) => panic!("the job was dropped"),
            }
            assert!(Instant::now() < deadline, "no answer within 10 s");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn runs_work_and_refuses_past_the_queue() {
        let pool = LookupPool::new(1, Duration::from_secs(10)).unwrap();
        assert_eq!(block_on(pool.run(|| 6 * 7).unwrap()), Ok(42));

        // Hold the only thread, then fill the queue: the next one is refused at once.
        let (release, held) = channel::<()>();
        let holding = pool
            .run(move || {
                let _ = held.recv_timeout(Duration::from_secs(10));
                1
            })
            .unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let queued: Vec<_> = (0..QUEUE_PER_THREAD)
            .map(|i| pool.run(move || i).expect("room in the queue"))
            .collect();
        let refused = pool.run(|| 0).unwrap_err();
        assert!(
            matches!(refused, Refused::Busy(ref why) if why.contains("busy")),
            "{refused:?}"
        );
        release.send(()).unwrap();
        assert_eq!(block_on(holding), Ok(1));
        for (i, rx) in queued.into_iter().enumerate() {
            assert_eq!(block_on(rx), Ok(i));
        }
    }

    #[test]
    fn work_that_waited_too_long_is_not_run() {
        let pool = LookupPool::new(1, Duration::from_millis(100)).unwrap();
        let (release, held) = channel::<()>();
        let holding = pool
            .run(move || {
                let _ = held.recv_timeout(Duration::from_secs(10));
            })
            .unwrap();
        let ran = Arc::new(Mutex::new(false));
        let flag = Arc::clone(&ran);
        let late = pool.run(move || *flag.lock().unwrap() = true).unwrap();
        std::thread::sleep(Duration::from_millis(250));
        release.send(()).unwrap();
        assert_eq!(block_on(holding), Ok(()));
        assert!(matches!(block_on(late), Err(Refused::Late(_))));
        assert!(!*ran.lock().unwrap());
    }
}
