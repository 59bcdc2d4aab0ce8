//! Slows down password guessing: every failed login from a client address makes the next
//! failure's answer wait longer (exponentially, up to a cap), and a connection that fails
//! too often is closed.
//!
//! Addresses are grouped the way they are handed out: one IPv4 address, or one IPv6 /64
//! (a single host usually owns a whole /64 and can pick any address in it). A successful
//! login does not clear the penalty: one guessed or owned account must not reset the counter
//! for guessing the others from the same address.

use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

use super::timed_map::TimedMap;

/// Settings for [`LoginThrottle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleOptions {
    /// Delay after the first failure; each further failure doubles it.
    pub base_delay: Duration,
    /// The longest delay, however many failures.
    pub max_delay: Duration,
    /// An address that has not failed for this long starts from zero again.
    pub forget_after: Duration,
    /// Most addresses tracked at once; beyond it the one that failed longest ago is forgotten.
    pub max_tracked: usize,
    /// Failed logins on one connection after which it is closed (0: never).
    pub max_failures_per_connection: u32,
}

impl Default for ThrottleOptions {
    fn default() -> Self {
        ThrottleOptions {
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(15),
            forget_after: Duration::from_secs(15 * 60),
            max_tracked: 100_000,
            max_failures_per_connection: 3,
        }
    }
}

impl ThrottleOptions {
    /// Whether a connection that has now failed `failures` logins must be closed.
    pub fn should_disconnect(&self, failures: u32) -> bool {
        self.max_failures_per_connection != 0 && failures >= self.max_failures_per_connection
    }
}

/// The unit the throttle counts failures for: one IPv4 address or one IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey(IpAddr);

impl ClientKey {
    /// The key for a client address. IPv4-mapped IPv6 addresses count as the IPv4 address.
    pub fn of(addr: IpAddr) -> ClientKey {
        match addr {
            IpAddr::V4(v4) => ClientKey(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey(IpAddr::V4(v4)),
                None => {
                    let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                    ClientKey(IpAddr::V6(Ipv6Addr::from(prefix)))
                }
            },
        }
    }
}

/// Failure counts per client address, bounded in memory.
pub struct LoginThrottle {
    options: ThrottleOptions,
    failures: TimedMap<ClientKey, u32>,
}

impl LoginThrottle {
    /// An empty throttle.
    pub fn new(options: ThrottleOptions) -> LoginThrottle {
        LoginThrottle {
            options,
            failures: TimedMap::new(options.max_tracked),
        }
    }

    /// The settings in use.
    pub fn options(&self) -> &ThrottleOptions {
        &self.options
    }

    /// Failures counted for `addr`'s group that are still remembered at `now`.
    pub fn failures(&self, addr: IpAddr, now: Instant) -> u32 {
        match self.failures.get(&ClientKey::of(addr)) {
            Some(e) if now.saturating_duration_since(e.written) < self.options.forget_after => {
                e.value
            }
            _ => 0,
        }
    }

    /// The delay owed by an address with `failures` failures.
    fn delay_for(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let max = self.options.max_delay;
        // base * 2^(failures-1) in nanoseconds; past u128 it is certainly beyond any cap.
        let doublings = (failures - 1).min(127);
        match self
            .options
            .base_delay
            .as_nanos()
            .checked_mul(1u128 << doublings)
        {
            Some(nanos) if nanos < max.as_nanos() => {
                let secs = (nanos / 1_000_000_000) as u64;
                Duration::new(secs, (nanos % 1_000_000_000) as u32)
            }
            _ => max,
        }
    }

    /// The delay an attempt from `addr` should wait before it is even looked at, given the
    /// failures already on record (zero for an address with a clean record).
    pub fn current_delay(&self, addr: IpAddr, now: Instant) -> Duration {
        self.delay_for(self.failures(addr, now))
    }

    /// Counts a failed login from `addr` at `now` and returns how long to wait before
    /// answering `NO [AUTHENTICATIONFAILED]`.
    pub fn record_failure(&mut self, addr: IpAddr, now: Instant) -> Duration {
        let count = self.failures(addr, now).saturating_add(1);
        if let Some(cutoff) = now.checked_sub(self.options.forget_after) {
            self.failures.remove_written_before(cutoff);
        }
        self.failures.insert(ClientKey::of(addr), count, now);
        self.delay_for(count)
    }

    /// How many address groups are tracked now.
    pub fn tracked(&self) -> usize {
        self.failures.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> ThrottleOptions {
        ThrottleOptions {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            forget_after: Duration::from_secs(60),
            max_tracked: 3,
            max_failures_per_connection: 3,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn delay_doubles_up_to_the_cap() {
        let t0 = Instant::now();
        let mut t = LoginThrottle::new(opts());
        let a = ip("192.0.2.1");
        assert_eq!(t.current_delay(a, t0), Duration::ZERO);
        let delays: Vec<u64> = (0..7)
            .map(|_| t.record_failure(a, t0).as_millis() as u64)
            .collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000, 1000]);
        assert_eq!(t.current_delay(a, t0), Duration::from_secs(1));
        // Another address is not affected.
        assert_eq!(t.current_delay(ip("192.0.2.2"), t0), Duration::ZERO);
    }

    #[test]
    fn huge_failure_counts_do_not_overflow() {
        let t0 = Instant::now();
        let mut t = LoginThrottle::new(ThrottleOptions {
            max_delay: Duration::MAX,
            ..opts()
        });
        let a = ip("192.0.2.1");
        let mut last = Duration::ZERO;
        for _ in 0..100 {
            last = t.record_failure(a, t0);
        }
        assert_eq!(last, Duration::MAX);
    }

    #[test]
    fn failures_are_forgotten_after_quiet_window() {
        let t0 = Instant::now();
        let mut t = LoginThrottle::new(opts());
        let a = ip("192.0.2.1");
        t.record_failure(a, t0);
        t.record_failure(a, t0 + Duration::from_secs(30));
        // The window counts from the latest failure.
        assert_eq!(t.failures(a, t0 + Duration::from_secs(89)), 2);
        assert_eq!(t.failures(a, t0 + Duration::from_secs(90)), 0);
        assert_eq!(
            t.record_failure(a, t0 + Duration::from_secs(90)),
            Duration::from_millis(100)
        );
    }

    #[test]
    fn ipv6_grouped_by_64_and_mapped_v4_by_address() {
        let t0 = Instant::now();
        let mut t = LoginThrottle::new(opts());
        t.record_failure(ip("2001:db8:1:2::1"), t0);
        t.record_failure(ip("2001:db8:1:2:ffff::9"), t0);
        assert_eq!(t.failures(ip("2001:db8:1:2::77"), t0), 2);
        assert_eq!(t.failures(ip("2001:db8:1:3::1"), t0), 0);
        t.record_failure(ip("::ffff:198.51.100.7"), t0);
        assert_eq!(t.failures(ip("198.51.100.7"), t0), 1);
        assert_eq!(t.tracked(), 2);
    }

    #[test]
    fn memory_is_bounded() {
        let t0 = Instant::now();
        let mut t = LoginThrottle::new(opts());
        for i in 0..10u8 {
            t.record_failure(
                IpAddr::from([10, 0, 0, i]),
                t0 + Duration::from_secs(i.into()),
            );
        }
        assert_eq!(t.tracked(), 3);
        let now = t0 + Duration::from_secs(10);
        assert_eq!(t.failures(IpAddr::from([10, 0, 0, 0]), now), 0);
        assert_eq!(t.failures(IpAddr::from([10, 0, 0, 9]), now), 1);
    }

    #[test]
    fn disconnect_policy() {
        let o = opts();
        assert!(!o.should_disconnect(2));
        assert!(o.should_disconnect(3));
        let never = ThrottleOptions {
            max_failures_per_connection: 0,
            ..o
        };
        assert!(!never.should_disconnect(1000));
    }
}
