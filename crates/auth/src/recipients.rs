//! What the directory said about LMTP recipients, remembered for a while.
//!
//! Every RCPT TO for a user outside the passwd-file would otherwise be a directory search;
//! a mailing list's message to the same users, or a stream of spam to the same unknown
//! names, asks again and again. Found users are kept for the auth cache's TTL, names the
//! directory does not know (or marks disabled) for a shorter time, so a user created in the
//! directory soon receives mail. "Cannot answer" is never kept. Bounded: at capacity the
//! oldest answer is forgotten.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::backend::Lookup;
use crate::timed_map::TimedMap;

/// Longest an answer of "no such user" (or "disabled") is kept.
const NEGATIVE_TTL_MAX: Duration = Duration::from_secs(30);

/// Recent directory answers for recipient names.
pub(crate) struct RecipientCache {
    answers: Mutex<TimedMap<String, Lookup>>,
    found_ttl: Duration,
    negative_ttl: Duration,
}

impl RecipientCache {
    /// Keeps found users for `ttl` (0 keeps nothing) and other answers for at most 30 s,
    /// `capacity` names at most.
    pub(crate) fn new(ttl: Duration, capacity: usize) -> RecipientCache {
        RecipientCache {
            answers: Mutex::new(TimedMap::new(if ttl.is_zero() { 0 } else { capacity })),
            found_ttl: ttl,
            negative_ttl: ttl.min(NEGATIVE_TTL_MAX),
        }
    }

    /// The answer remembered for `name`, if it is still fresh. Never blocks on the network.
    pub(crate) fn get(&self, name: &str, now: Instant) -> Option<Lookup> {
        let answers = self.answers.lock().unwrap_or_else(|e| e.into_inner());
        let entry = answers.get(name)?;
        let ttl = match entry.value {
            Lookup::Found(_) => self.found_ttl,
            _ => self.negative_ttl,
        };
        (now.saturating_duration_since(entry.written) < ttl).then(|| entry.value.clone())
    }

    /// Remembers the directory's answer for `name` (not "cannot answer now").
    pub(crate) fn put(&self, name: &str, answer: &Lookup, now: Instant) {
        if matches!(answer, Lookup::Unavailable(_)) {
            return;
        }
        let mut answers = self.answers.lock().unwrap_or_else(|e| e.into_inner());
        answers.insert(name.to_owned(), answer.clone(), now);
    }

    /// Forgets everything (the users file was reloaded).
    pub(crate) fn clear(&self) {
        self.answers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::UserInfo;

    #[test]
    fn found_outlives_unknown_and_unavailable_is_not_kept() {
        let cache = RecipientCache::new(Duration::from_secs(300), 2);
        let t0 = Instant::now();
        let alice = Lookup::Found(UserInfo::named("alice"));
        cache.put("alice", &alice, t0);
        cache.put("nobody", &Lookup::Unknown, t0);
        cache.put("down", &Lookup::Unavailable("x".into()), t0);
        assert_eq!(cache.get("alice", t0), Some(alice.clone()));
        assert_eq!(cache.get("nobody", t0), Some(Lookup::Unknown));
        assert_eq!(cache.get("down", t0), None);
        let later = t0 + Duration::from_secs(31);
        assert_eq!(cache.get("alice", later), Some(alice));
        assert_eq!(cache.get("nobody", later), None);
        assert_eq!(cache.get("alice", t0 + Duration::from_secs(300)), None);
        // Bounded: a third name evicts the oldest.
        cache.put("bob", &Lookup::Unknown, later);
        cache.put("carol", &Lookup::Unknown, later);
        assert_eq!(cache.get("alice", later), None);
    }

    #[test]
    fn zero_ttl_keeps_nothing() {
        let cache = RecipientCache::new(Duration::ZERO, 10);
        let now = Instant::now();
        cache.put("alice", &Lookup::Unknown, now);
        assert_eq!(cache.get("alice", now), None);
    }
}
