//! Everything a script needs from outside: the caller implements `Environment` over its
//! store; `MemoryEnvironment` is a complete one in memory for tests and tools.

use std::collections::{HashMap, HashSet};

use crate::date::DateTime;
use crate::program::IncludeLocation;
use crate::Script;

/// The SMTP/LMTP envelope of the message being delivered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Envelope {
    /// MAIL FROM, bare (`local@domain`); "" for the null reverse-path `<>`.
    pub from: String,
    /// RCPT TO of the user this delivery is for, bare.
    pub to: String,
    /// The original recipient (RFC 3461 ORCPT) when known.
    pub orig_to: Option<String>,
}

/// The message a script runs against.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// The whole message, header and body, as received.
    pub message: &'a [u8],
    pub envelope: &'a Envelope,
}

/// What the evaluator asks the caller. Each method is called only when a script uses the
/// matching test or command.
pub trait Environment {
    /// Whether the user has a mailbox of this name (RFC 5490 mailboxexists).
    fn mailbox_exists(&mut self, name: &str) -> bool;

    /// Whether `mailbox` (None: any of the user's mailboxes) has the special-use
    /// attribute `flag`, such as `\Junk` (RFC 8579; compare case-insensitively).
    fn special_use_exists(&mut self, mailbox: Option<&str>, flag: &str) -> bool;

    /// Whether `id` was recorded under `handle` (see `Outcome::duplicates`) and has not
    /// expired yet (RFC 7352). `seconds` is the period the script asks for, for stores
    /// that keep the time seen rather than an expiry.
    fn duplicate_seen(&mut self, handle: &str, id: &str, seconds: u64) -> bool;

    /// Whether a vacation reply with `handle` went to `sender` within the last `period`
    /// seconds (RFC 5230 §4.2). The caller records a reply when it sends one.
    fn vacation_responded(&mut self, sender: &str, handle: &str, period: u64) -> bool;

    /// The script `include` names (RFC 6609), compiled; Ok(None) when there is no such
    /// script. Err (e.g. it fails to compile) is a run-time error of the including script.
    fn include(&mut self, location: IncludeLocation, name: &str) -> Result<Option<Script>, String>;

    /// What separates user and detail in a local part (RFC 5233 `:user` / `:detail`);
    /// "" when addresses have no detail. The server answers with the delimiter its LMTP
    /// uses to find the recipient, so both read an address the same way.
    fn detail_delimiter(&self) -> &str {
        "+"
    }

    /// The current time, in the zone the user or server is in (currentdate, and the date
    /// test without :zone).
    fn now(&self) -> DateTime {
        DateTime::now_utc()
    }
}

/// An `Environment` held in memory, for tests and for checking a script by hand.
#[derive(Debug, Clone, Default)]
pub struct MemoryEnvironment {
    /// Mailbox name → its special-use attributes.
    pub mailboxes: HashMap<String, Vec<String>>,
    /// (handle, id) pairs already seen.
    pub duplicates: HashSet<(String, String)>,
    /// (sender, handle) pairs already answered.
    pub vacations: HashSet<(String, String)>,
    /// Scripts by location and name, as source (compiled with the default limits).
    pub scripts: HashMap<(IncludeLocation, String), String>,
    /// The time `now` returns; the real time when None.
    pub time: Option<DateTime>,
    /// The user/detail delimiter; "+" when None.
    pub detail_delimiter: Option<String>,
}

impl MemoryEnvironment {
    pub fn new() -> Self {
        let mut e = Self::default();
        e.mailboxes.insert("INBOX".to_string(), Vec::new());
        e
    }

    pub fn with_mailbox(mut self, name: &str, special_use: &[&str]) -> Self {
        self.mailboxes.insert(
            name.to_string(),
            special_use.iter().map(|s| s.to_string()).collect(),
        );
        self
    }

    pub fn with_script(mut self, location: IncludeLocation, name: &str, source: &str) -> Self {
        self.scripts
            .insert((location, name.to_string()), source.to_string());
        self
    }

    /// Records what an outcome asks to record (duplicates, a sent vacation reply), as the
    /// delivery code does after delivering.
    pub fn record(&mut self, outcome: &crate::Outcome) {
        for d in &outcome.duplicates {
            self.duplicates.insert((d.handle.clone(), d.id.clone()));
        }
        for a in &outcome.actions {
            if let crate::Action::Vacation(v) = a {
                self.vacations
                    .insert((v.to.to_ascii_lowercase(), v.handle.clone()));
            }
        }
    }
}

impl Environment for MemoryEnvironment {
    fn mailbox_exists(&mut self, name: &str) -> bool {
        self.mailboxes.contains_key(name)
            || (name.eq_ignore_ascii_case("INBOX") && self.mailboxes.contains_key("INBOX"))
    }

    fn special_use_exists(&mut self, mailbox: Option<&str>, flag: &str) -> bool {
        let has = |uses: &Vec<String>| uses.iter().any(|u| u.eq_ignore_ascii_case(flag));
        match mailbox {
            Some(m) => self.mailboxes.get(m).is_some_and(has),
            None => self.mailboxes.values().any(has),
        }
    }

    fn duplicate_seen(&mut self, handle: &str, id: &str, _seconds: u64) -> bool {
        self.duplicates
            .contains(&(handle.to_string(), id.to_string()))
    }

    fn vacation_responded(&mut self, sender: &str, handle: &str, _period: u64) -> bool {
        self.vacations
            .contains(&(sender.to_ascii_lowercase(), handle.to_string()))
    }

    fn include(&mut self, location: IncludeLocation, name: &str) -> Result<Option<Script>, String> {
        match self.scripts.get(&(location, name.to_string())) {
            None => Ok(None),
            Some(src) => Script::compile(src, &crate::Limits::default())
                .map(Some)
                .map_err(|e| format!("included script \"{name}\": {e}")),
        }
    }

    fn now(&self) -> DateTime {
        self.time.unwrap_or_else(DateTime::now_utc)
    }

    fn detail_delimiter(&self) -> &str {
        self.detail_delimiter.as_deref().unwrap_or("+")
    }
}
