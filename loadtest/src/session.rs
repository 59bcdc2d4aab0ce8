//! What every session has: its options, its own seeded RNG, the message pool, the shared
//! counters, its thread's recorder, and the user it works as. Also the loop that runs a
//! profile until the run ends, counting errors and backing off after them.

use std::cell::RefCell;
use std::net::IpAddr;
use std::ops::{Deref, DerefMut};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::Rng;
use tokio::time::Instant;

use crate::client::{Connection, Endpoint, SessionError};
use crate::idle::IdleBoard;
use crate::message::MessagePool;
use crate::options::{Options, Profile};
use crate::profiles;
use crate::stats::{Command, Recorder, Shared};

/// Users handed out so that, while there are at least as many users as sessions, no two
/// sessions work in the same mailbox at once (their checks of counts and flags hold then).
#[derive(Debug)]
pub struct UserPool {
    free: Mutex<Vec<u32>>,
    total: u32,
}

impl UserPool {
    /// Users 0..total (indexes into the user range of the options).
    pub fn new(total: u32) -> UserPool {
        UserPool {
            free: Mutex::new((0..total).collect()),
            total,
        }
    }

    /// A user no other session holds, or any user (shared) when all are taken.
    pub fn checkout(self: &Arc<Self>, rng: &mut impl Rng) -> UserLease {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        if free.is_empty() {
            return UserLease {
                index: rng.gen_range(0..self.total.max(1)),
                exclusive: false,
                pool: self.clone(),
            };
        }
        let i = rng.gen_range(0..free.len());
        let index = free.swap_remove(i);
        UserLease {
            index,
            exclusive: true,
            pool: self.clone(),
        }
    }
}

/// A user held by one session; returned to the pool on drop.
#[derive(Debug)]
pub struct UserLease {
    /// Index into the user range.
    pub index: u32,
    /// Whether no other session holds this user now.
    pub exclusive: bool,
    pool: Arc<UserPool>,
}

impl Drop for UserLease {
    fn drop(&mut self) {
        if self.exclusive {
            let mut free = self.pool.free.lock().unwrap_or_else(|e| e.into_inner());
            free.push(self.index);
        }
    }
}

/// A connection counted in the "connected" column while it lives.
pub struct Live {
    conn: Connection,
    shared: Arc<Shared>,
}

impl Deref for Live {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.conn
    }
}

impl DerefMut for Live {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.shared.connected.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One session's context.
pub struct SessionCtx {
    /// Session number, 0-based over the whole run.
    pub index: u32,
    /// Seeded from `--seed` and the session number.
    pub rng: StdRng,
    /// The run's options.
    pub opts: Arc<Options>,
    /// Where to connect.
    pub endpoint: Endpoint,
    /// Local address to connect from.
    pub source: Option<IpAddr>,
    /// Counters and errors.
    pub shared: Arc<Shared>,
    /// This thread's histograms.
    pub recorder: Rc<RefCell<Recorder>>,
    /// Messages to APPEND.
    pub messages: MessagePool,
    /// Users to log in as.
    pub users: Arc<UserPool>,
    /// IDLE bookkeeping, for the idle profile.
    pub idle: Option<Arc<IdleBoard>>,
    /// The messages as DATA, for the lmtp profile.
    pub lmtp_data: Option<crate::lmtp::DataPool>,
    /// Tokens to log in with (`--auth oauthbearer`/`xoauth2`), signed before the run.
    pub tokens: Option<Arc<crate::oauth::Tokens>>,
    /// When the warm-up ends and measuring starts.
    pub measure_from: Instant,
    /// When the run ends.
    pub deadline: Instant,
    /// Iterations done so far.
    pub iterations: u64,
}

impl SessionCtx {
    /// Whether the session should stop: the run is over or its iteration budget spent.
    pub fn should_stop(&self) -> bool {
        self.shared.stopping.load(Ordering::Relaxed)
            || Instant::now() >= self.deadline
            || (self.opts.iterations > 0 && self.iterations >= self.opts.iterations)
    }

    /// Records a command that started at `started`.
    pub fn record(&self, command: Command, started: Instant) {
        self.recorder
            .borrow_mut()
            .record(&self.shared, command, started.elapsed());
    }

    /// Records an error that did not end the session.
    pub fn error(&self, e: &SessionError) {
        self.shared
            .error(e.kind(), format!("session {}: {e}", self.index));
    }

    /// Connects and reads the greeting (timed as `connect`).
    pub async fn connect(&mut self) -> Result<Live, SessionError> {
        let started = Instant::now();
        let conn = Connection::connect(&self.endpoint, self.source).await?;
        self.record(Command::Connect, started);
        self.shared.connected.fetch_add(1, Ordering::Relaxed);
        Ok(Live {
            conn,
            shared: self.shared.clone(),
        })
    }

    /// Logs in as user `index` (timed as `login`): LOGIN, or AUTHENTICATE with the user's
    /// token.
    pub async fn login(&mut self, live: &mut Live, index: u32) -> Result<(), SessionError> {
        let started = if let Some(tokens) = &self.tokens {
            let initial = tokens.initial[index as usize].as_bytes();
            let started = Instant::now();
            live.authenticate(tokens.mechanism, initial).await?;
            started
        } else {
            let user = self.opts.user_name(index);
            let password = self.opts.user_password(index);
            let started = Instant::now();
            live.login(&user, &password).await?;
            started
        };
        self.record(Command::Login, started);
        Ok(())
    }

    /// Logs out (timed as `logout`).
    pub async fn logout(&mut self, live: &mut Live) -> Result<(), SessionError> {
        let started = Instant::now();
        live.logout().await?;
        self.record(Command::Logout, started);
        Ok(())
    }
}

/// Pause after the first error of a streak; doubles per error up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Runs the session's profile until the run ends. Errors are counted and the session starts
/// over after a pause, so a failing server is reported, not hammered.
pub async fn drive(mut ctx: SessionCtx) {
    let mut backoff = FIRST_BACKOFF;
    // Bounded by the deadline: each turn either completes an iteration or sleeps.
    while !ctx.should_stop() {
        let result = match ctx.opts.profile {
            Profile::Logins => profiles::logins(&mut ctx).await,
            Profile::Mix => profiles::mix(&mut ctx).await,
            Profile::Append => profiles::append(&mut ctx).await,
            Profile::Search => profiles::search(&mut ctx).await,
            Profile::Sync => profiles::sync(&mut ctx).await,
            Profile::Lmtp => crate::lmtp::deliver(&mut ctx).await,
            Profile::Idle if ctx.index < ctx.opts.clients() => crate::idle::idler(&mut ctx).await,
            Profile::Idle => crate::idle::sender(&mut ctx).await,
        };
        match result {
            Ok(()) => backoff = FIRST_BACKOFF,
            Err(e) => {
                ctx.error(&e);
                let until = (Instant::now() + backoff).min(ctx.deadline);
                tokio::time::sleep_until(until).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}
