//! What one session contributes to its executor's metrics, and its disconnect log line.
//!
//! A [`SessionMeter`] lives inside the session. It counts the connection as open while it
//! lives, moves the session between the state gauges, times each command from the moment it
//! was read to its tagged response, and when dropped writes one `disconnect` line with the
//! session's duration, commands, bytes and the reason it ended. A session handed over to
//! another core takes its totals along ([`MeterCarry`]), so the line is written once, by the
//! executor where the session really ends.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::registry::{ExecutorMetrics, Listener, Outcome, SessionState};

/// The shared handle to an executor's metrics (one per executor thread).
pub type Registry = Rc<RefCell<ExecutorMetrics>>;

/// A session's running totals, sent with it to another executor.
#[derive(Debug, Clone)]
pub struct MeterCarry {
    listener: Listener,
    started: Instant,
    commands: u64,
    bytes_in: u64,
    bytes_out: u64,
    /// The command still running: the LOGIN or AUTHENTICATE whose tagged reply the owner
    /// executor writes after the hand-over.
    current: Option<(&'static str, Instant)>,
}

/// One session's share of the metrics; see the module docs.
pub struct SessionMeter {
    registry: Registry,
    listener: Listener,
    state: SessionState,
    idling: bool,
    started: Instant,
    commands: u64,
    bytes_in: u64,
    bytes_out: u64,
    current: Option<(&'static str, Instant)>,
    end: &'static str,
    handed_over: bool,
}

impl SessionMeter {
    /// A new connection from `listener`, counted as open until the meter is dropped.
    pub fn new(registry: Registry, listener: Listener) -> SessionMeter {
        Self::open(
            registry,
            MeterCarry {
                listener,
                started: Instant::now(),
                commands: 0,
                bytes_in: 0,
                bytes_out: 0,
                current: None,
            },
            SessionState::NotAuthenticated,
        )
    }

    /// A session handed over from another executor, logged in.
    pub fn adopted(registry: Registry, carry: MeterCarry) -> SessionMeter {
        Self::open(registry, carry, SessionState::Authenticated)
    }

    fn open(registry: Registry, carry: MeterCarry, state: SessionState) -> SessionMeter {
        {
            let mut m = registry.borrow_mut();
            m.connection_open(carry.listener, 1);
            m.session_state(state, 1);
        }
        SessionMeter {
            registry,
            listener: carry.listener,
            state,
            idling: false,
            started: carry.started,
            commands: carry.commands,
            bytes_in: carry.bytes_in,
            bytes_out: carry.bytes_out,
            current: carry.current,
            end: "closed",
            handed_over: false,
        }
    }

    /// The session leaves this executor: its totals go along, and no disconnect is logged here.
    pub fn hand_over(&mut self) -> MeterCarry {
        self.handed_over = true;
        MeterCarry {
            listener: self.listener,
            started: self.started,
            commands: self.commands,
            bytes_in: self.bytes_in,
            bytes_out: self.bytes_out,
            current: self.current.take(),
        }
    }

    /// The session is now in `state`.
    pub fn set_state(&mut self, state: SessionState) {
        if state != self.state {
            let mut m = self.registry.borrow_mut();
            m.session_state(self.state, -1);
            m.session_state(state, 1);
            self.state = state;
        }
    }

    /// A command named `name` was read and starts running.
    pub fn command_started(&mut self, name: &'static str) {
        self.current = Some((name, Instant::now()));
    }

    /// A tagged response with `status` was written: it ends the running command.
    pub fn tagged(&mut self, status: &str) {
        let (Some((name, started)), Some(outcome)) = (self.current, Outcome::from_status(status))
        else {
            return;
        };
        self.current = None;
        self.commands += 1;
        let timed = name != "IDLE";
        self.registry.borrow_mut().listener_command(
            self.listener,
            name,
            outcome,
            started.elapsed(),
            timed,
        );
    }

    /// `n` bytes came from the client.
    pub fn read(&mut self, n: usize) {
        self.bytes_in += n as u64;
        self.registry.borrow_mut().bytes_in += n as u64;
    }

    /// `n` bytes went to the client.
    pub fn wrote(&mut self, n: usize) {
        self.bytes_out += n as u64;
        self.registry.borrow_mut().bytes_out += n as u64;
    }

    /// The session entered (true) or left (false) IDLE.
    pub fn idle(&mut self, on: bool) {
        if on != self.idling {
            self.idling = on;
            self.registry.borrow_mut().idling += if on { 1 } else { -1 };
        }
    }

    /// Records why the session is ending (the last reason given wins).
    pub fn end(&mut self, why: &'static str) {
        self.end = why;
    }

    /// An input was refused by `limit`.
    pub fn rejected(&self, limit: &'static str) {
        self.registry.borrow_mut().rejected(limit);
    }

    /// How long the session has been running (across hand-overs).
    pub fn duration(&self) -> Duration {
        self.started.elapsed()
    }
}

impl Drop for SessionMeter {
    fn drop(&mut self) {
        // try_borrow: a drop during a panic unwind must not panic again.
        if let Ok(mut m) = self.registry.try_borrow_mut() {
            m.connection_open(self.listener, -1);
            m.session_state(self.state, -1);
            if self.idling {
                m.idling -= 1;
            }
            if !self.handed_over {
                m.disconnected(self.end);
            }
        }
        if !self.handed_over {
            tracing::info!(
                duration_ms = self.duration().as_millis() as u64,
                commands = self.commands,
                bytes_in = self.bytes_in,
                bytes_out = self.bytes_out,
                reason = self.end,
                "disconnect"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauges_return_to_zero_and_totals_follow_a_hand_over() {
        let a: Registry = Rc::new(RefCell::new(ExecutorMetrics::new()));
        let b: Registry = Rc::new(RefCell::new(ExecutorMetrics::new()));
        let mut meter = SessionMeter::new(a.clone(), Listener::Imaps);
        meter.command_started("LOGIN");
        meter.read(30);
        meter.tagged("OK");
        meter.wrote(100);
        meter.set_state(SessionState::Authenticated);
        assert_eq!(a.borrow().open[Listener::Imaps as usize], 1);
        let carry = meter.hand_over();
        drop(meter);
        assert_eq!(a.borrow().open, [0, 0, 0, 0]);
        assert_eq!(a.borrow().sessions, [0, 0, 0]);
        assert!(
            a.borrow().disconnects.is_empty(),
            "no disconnect on hand-over"
        );

        let mut meter = SessionMeter::adopted(b.clone(), carry);
        meter.set_state(SessionState::Selected);
        meter.command_started("IDLE");
        meter.idle(true);
        assert_eq!(b.borrow().idling, 1);
        meter.end("client closed");
        drop(meter);
        let b = b.borrow();
        assert_eq!(b.idling, 0);
        assert_eq!(b.sessions, [0, 0, 0]);
        assert_eq!(b.disconnects[&"client closed"], 1);
        assert_eq!(a.borrow().commands["LOGIN"].count(Outcome::Ok), 1);
        // An untagged status or a tagged one with no command running counts nothing.
        assert!(!b.commands.contains_key("IDLE"));
    }

    #[test]
    fn a_login_answered_after_the_hand_over_counts_where_it_is_answered() {
        let a: Registry = Rc::new(RefCell::new(ExecutorMetrics::new()));
        let b: Registry = Rc::new(RefCell::new(ExecutorMetrics::new()));
        let mut meter = SessionMeter::new(a.clone(), Listener::Imap);
        meter.command_started("LOGIN");
        let carry = meter.hand_over();
        drop(meter);
        let mut meter = SessionMeter::adopted(b.clone(), carry);
        meter.tagged("NO");
        assert!(!a.borrow().commands.contains_key("LOGIN"));
        assert_eq!(b.borrow().commands["LOGIN"].count(Outcome::No), 1);
    }
}
