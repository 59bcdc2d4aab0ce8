//! A bounded pool of connections for blocking callers (threads of the blocking pool, never
//! an executor): at most `size` connections are open; a caller that finds none free waits
//! on a condition variable until one is returned or its deadline passes. Connections are
//! made outside the lock, so a slow connect holds up only its own caller.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

struct State<C> {
    idle: Vec<C>,
    /// Connections that exist: idle ones, lent ones, and ones being made.
    open: usize,
}

/// The pool. `C` is the connection type (an LDAP connection; a dummy in the unit tests).
pub struct Pool<C> {
    state: Mutex<State<C>>,
    returned: Condvar,
    size: usize,
}

/// Why no connection could be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolError {
    /// Every connection stayed busy until the deadline.
    Exhausted,
    /// Making a new connection failed (the text says why).
    Connect(String),
}

/// A connection lent by the pool; it goes back when dropped, unless [`Pooled::discard`]ed.
pub struct Pooled<'a, C> {
    pool: &'a Pool<C>,
    conn: Option<C>,
    /// Whether it was idle in the pool before (it may have died since).
    pub reused: bool,
}

impl<C> Pool<C> {
    /// A pool of at most `size` connections (at least one).
    pub fn new(size: usize) -> Pool<C> {
        Pool {
            state: Mutex::new(State {
                idle: Vec::new(),
                open: 0,
            }),
            returned: Condvar::new(),
            size: size.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<C>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Lends an idle connection, or makes one with `connect` if fewer than `size` are open,
    /// or waits for one until `deadline`.
    pub fn get(
        &self,
        deadline: Instant,
        connect: impl FnOnce(Instant) -> Result<C, String>,
    ) -> Result<Pooled<'_, C>, PoolError> {
        let mut state = self.lock();
        loop {
            if let Some(conn) = state.idle.pop() {
                return Ok(Pooled {
                    pool: self,
                    conn: Some(conn),
                    reused: true,
                });
            }
            if state.open < self.size {
                state.open += 1;
                drop(state);
                return match connect(deadline) {
                    Ok(conn) => Ok(Pooled {
                        pool: self,
                        conn: Some(conn),
                        reused: false,
                    }),
                    Err(e) => {
                        self.release_slot();
                        Err(PoolError::Connect(e))
                    }
                };
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(PoolError::Exhausted);
            }
            state = self
                .returned
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn release_slot(&self) {
        let mut state = self.lock();
        state.open = state.open.saturating_sub(1);
        drop(state);
        self.returned.notify_one();
    }

    /// Closes every idle connection: after one turned out dead (the server restarted), the
    /// others that idled as long are most likely dead too.
    pub fn drain_idle(&self) {
        let mut state = self.lock();
        let idle = std::mem::take(&mut state.idle);
        state.open = state.open.saturating_sub(idle.len());
        drop(state);
        // Dropping closes them; outside the lock, as closing may take a moment.
        drop(idle);
        self.returned.notify_all();
    }

    /// The most connections it opens.
    pub fn capacity(&self) -> usize {
        self.size
    }

    /// (open, idle) connections now.
    pub fn counts(&self) -> (usize, usize) {
        let state = self.lock();
        (state.open, state.idle.len())
    }
}

impl<C> Pooled<'_, C> {
    /// The connection.
    pub fn conn(&mut self) -> &mut C {
        // Present from creation until drop or discard, both of which consume or end `self`.
        self.conn
            .as_mut()
            .unwrap_or_else(|| unreachable!("a lent connection is present until dropped"))
    }

    /// Replaces a dead connection with a new one, keeping its slot in the pool.
    pub fn reconnect(
        &mut self,
        deadline: Instant,
        connect: impl FnOnce(Instant) -> Result<C, String>,
    ) -> Result<(), PoolError> {
        self.conn = None;
        match connect(deadline) {
            Ok(conn) => {
                self.conn = Some(conn);
                self.reused = false;
                Ok(())
            }
            Err(e) => Err(PoolError::Connect(e)),
        }
    }

    /// Closes the connection instead of returning it (it failed and cannot be trusted).
    pub fn discard(mut self) {
        self.conn = None;
    }
}

impl<C> Drop for Pooled<'_, C> {
    fn drop(&mut self) {
        match self.conn.take() {
            Some(conn) => {
                self.pool.lock().idle.push(conn);
                self.pool.returned.notify_one();
            }
            None => self.pool.release_slot(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    fn soon(ms: u64) -> Instant {
        Instant::now() + Duration::from_millis(ms)
    }

    #[test]
    fn reuses_and_bounds() {
        let pool: Pool<u32> = Pool::new(2);
        let made = AtomicUsize::new(0);
        let connect = |_| Ok(made.fetch_add(1, Ordering::SeqCst) as u32);
        let a = pool.get(soon(1000), connect).unwrap();
        let b = pool.get(soon(1000), connect).unwrap();
        assert!(!a.reused && !b.reused);
        assert_eq!(pool.counts(), (2, 0));
        // Full: a third caller waits until its deadline, then gives up.
        let t0 = Instant::now();
        assert_eq!(
            pool.get(soon(100), connect).err(),
            Some(PoolError::Exhausted)
        );
        let waited = t0.elapsed();
        assert!(waited >= Duration::from_millis(100), "{waited:?}");
        assert!(waited < Duration::from_secs(2), "{waited:?}");
        drop(a);
        let mut c = pool.get(soon(1000), connect).unwrap();
        assert!(c.reused);
        assert_eq!(*c.conn(), 0);
        assert_eq!(made.load(Ordering::SeqCst), 2);
        drop((b, c));
        assert_eq!(pool.counts(), (2, 2));
    }

    #[test]
    fn a_waiter_gets_the_returned_connection() {
        let pool: Arc<Pool<u32>> = Arc::new(Pool::new(1));
        let held = pool.get(soon(1000), |_| Ok(7)).unwrap();
        let p = Arc::clone(&pool);
        let waiter = std::thread::spawn(move || {
            let mut c = p
                .get(soon(5000), |_| Err("must not connect".into()))
                .unwrap();
            *c.conn()
        });
        std::thread::sleep(Duration::from_millis(50));
        drop(held);
        assert_eq!(waiter.join().unwrap(), 7);
    }

    #[test]
    fn discard_and_failed_connects_free_the_slot() {
        let pool: Pool<u32> = Pool::new(1);
        assert_eq!(
            pool.get(soon(1000), |_| Err("refused".into())).err(),
            Some(PoolError::Connect("refused".into()))
        );
        assert_eq!(pool.counts(), (0, 0));
        let c = pool.get(soon(1000), |_| Ok(1)).unwrap();
        c.discard();
        assert_eq!(pool.counts(), (0, 0));
        let mut c = pool.get(soon(1000), |_| Ok(2)).unwrap();
        c.reconnect(soon(1000), |_| Ok(3)).unwrap();
        assert_eq!(*c.conn(), 3);
        assert!(c.reconnect(soon(1000), |_| Err("down".into())).is_err());
        drop(c);
        assert_eq!(pool.counts(), (0, 0));
    }

    #[test]
    fn drain_idle_closes_all_idle() {
        let pool: Pool<u32> = Pool::new(3);
        let a = pool.get(soon(1000), |_| Ok(1)).unwrap();
        let b = pool.get(soon(1000), |_| Ok(2)).unwrap();
        let c = pool.get(soon(1000), |_| Ok(3)).unwrap();
        drop((a, b));
        assert_eq!(pool.counts(), (3, 2));
        pool.drain_idle();
        assert_eq!(pool.counts(), (1, 0));
        drop(c);
        assert_eq!(pool.counts(), (1, 1));
    }
}
