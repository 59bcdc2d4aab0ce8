//! Client load for the cluster tests: APPEND and LMTP loops that run until told to stop,
//! survive the connection being cut under them (a node killed, stopped or failed over), and
//! report each message the server acknowledged; and the read-back of a user's INBOX.

use std::cell::Cell;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;
use std::time::Duration;

use super::{lmtp_connect, Client};

/// At most this many messages per load loop, so a loop that is never stopped still ends.
const MAX_MESSAGES: usize = 20_000;
/// The pause after each acknowledged message: a steady load, not a flood, so that reading
/// back everything written over many rounds stays quick.
const PACE: Duration = Duration::from_millis(40);

/// The users the cluster tests write for (password `pass`), spread over the partitions.
pub const USERS: [&str; 6] = [
    "ann@example.com",
    "bob@example.com",
    "cyd@example.com",
    "dan@example.com",
    "eve@example.com",
    "fay@example.com",
];

/// How every test message starts.
const FIRST_LINE: &str = "From: sender@example.net\r\n";

/// A message unique to (`user`, `label`, `n`): every test message is told apart by its
/// whole bytes, so "there exactly once" is a comparison, not a search.
pub fn message(user: &str, label: &str, n: usize) -> String {
    format!(
        "{FIRST_LINE}To: {user}\r\nSubject: {label} {n}\r\n\r\n\
         {label} message {n} for {user}: {}\r\n",
        "x".repeat(64 + (n % 16) * 37)
    )
}

thread_local! {
    /// Set while this thread runs client code whose panics mean "the connection was cut".
    static EXPECTED: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f`, catching its panic; the panic hook stays silent about it, so hundreds of cut
/// connections in a chaos run do not bury the test's own messages.
pub fn quietly<T>(f: impl FnOnce() -> T) -> Option<T> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !EXPECTED.with(Cell::get) {
                default(info);
            }
        }));
    });
    let outer = EXPECTED.with(|e| e.replace(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    EXPECTED.with(|e| e.set(outer));
    result.ok()
}

pub fn login(c: &mut Client, user: &str) -> bool {
    c.command("L", &format!("LOGIN {user} pass"))
        .last()
        .is_some_and(|l| l.starts_with("L OK"))
}

/// LOGIN and SELECT INBOX both answered OK on `c`.
pub fn served(c: &mut Client, user: &str) -> bool {
    login(c, user)
        && c.command("S", "SELECT INBOX")
            .last()
            .is_some_and(|l| l.starts_with("S OK"))
}

/// Whether a new connection from `connect` gets OK for LOGIN and SELECT (false where the
/// connection fails or is cut).
pub fn serves(connect: &dyn Fn() -> Client, user: &str) -> bool {
    quietly(|| served(&mut connect(), user)).unwrap_or(false)
}

/// APPENDs `message(user, label, n)` for n = 0, 1, ... on connections from `connect` until
/// `stop`, logging in again after any failure; `acked` gets each message answered OK.
pub fn append_load(
    connect: &dyn Fn() -> Client,
    user: &str,
    label: &str,
    stop: &AtomicBool,
    acked: &mut dyn FnMut(String),
) {
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) && n < MAX_MESSAGES {
        // A connection cut under the client panics inside it: that APPEND was not acked.
        quietly(|| {
            let mut c = connect();
            if !login(&mut c, user) {
                return;
            }
            while !stop.load(Ordering::Relaxed) && n < MAX_MESSAGES {
                let m = message(user, label, n);
                n += 1;
                c.send(&format!("A APPEND INBOX {{{}}}\r\n", m.len()));
                if !c.line().starts_with('+') {
                    return;
                }
                c.send(&format!("{m}\r\n"));
                if !c.until_tagged("A").last().unwrap().starts_with("A OK") {
                    // NO [UNAVAILABLE] while the partition changes hands: log in again.
                    return;
                }
                acked(m);
                std::thread::sleep(PACE);
            }
        });
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Delivers `message(user, label, n)` by LMTP until `stop`, to `targets` in turn (the next
/// one after any failure); `acked` gets each message answered 250.
pub fn lmtp_load(
    targets: &[SocketAddr],
    user: &str,
    label: &str,
    stop: &AtomicBool,
    acked: &mut dyn FnMut(String),
) {
    let mut n = 0;
    let mut target = 0;
    while !stop.load(Ordering::Relaxed) && n < MAX_MESSAGES {
        quietly(|| {
            let mut c = lmtp_connect(targets[target % targets.len()]);
            while !stop.load(Ordering::Relaxed) && n < MAX_MESSAGES {
                let m = message(user, label, n);
                n += 1;
                c.send("MAIL FROM:<sender@example.net>\r\n");
                if !c.line().starts_with("250") {
                    return;
                }
                c.send(&format!("RCPT TO:<{user}>\r\n"));
                if !c.line().starts_with("250") {
                    return;
                }
                c.send("DATA\r\n");
                if !c.line().starts_with("354") {
                    return;
                }
                c.send(&format!("{m}.\r\n"));
                if !c.line().starts_with("250") {
                    return;
                }
                acked(m);
                std::thread::sleep(PACE);
            }
        });
        target += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every message of `user`'s INBOX (FETCH 1:* BODY.PEEK[]) on a new connection from
/// `connect`; None while the user is not served (LOGIN or SELECT refused, connection cut).
pub fn all_messages(connect: &dyn Fn() -> Client, user: &str) -> Option<Vec<String>> {
    quietly(|| {
        let mut c = connect();
        if !served(&mut c, user) {
            return None;
        }
        c.send("F FETCH 1:* BODY.PEEK[]\r\n");
        let raw = String::from_utf8(c.until_tagged_bytes("F")).expect("the test's mail is ASCII");
        if !raw.lines().last().is_some_and(|l| l.starts_with("F OK")) {
            return None;
        }
        let mut out = Vec::new();
        let mut rest = raw.as_str();
        // `* N FETCH (BODY[] {len}\r\n<len bytes>)`
        while let Some(open) = rest.find("BODY[] {") {
            let after = &rest[open + 8..];
            let close = after.find('}').unwrap();
            let len: usize = after[..close].parse().unwrap();
            let start = close + 3;
            out.push(after[start..start + len].to_string());
            rest = &after[start + len..];
        }
        c.command("Z", "LOGOUT");
        Some(out)
    })
    .flatten()
}

/// The messages of `acked` that are not in `found` exactly once, byte for byte (after the
/// trace fields LMTP delivery puts in front of a message).
pub fn missing_or_doubled(acked: &[String], found: &[String]) -> Vec<String> {
    let mut seen = std::collections::HashMap::new();
    for m in found {
        let start = m.find(FIRST_LINE).unwrap_or(0);
        *seen.entry(&m[start..]).or_insert(0usize) += 1;
    }
    acked
        .iter()
        .filter(|m| seen.get(m.as_str()) != Some(&1))
        .cloned()
        .collect()
}
