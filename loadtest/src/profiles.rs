//! The profiles other than idle (see [`crate::idle`]): what one session does, and which
//! answers count as wrong.
//!
//! Data checks (counts, sizes, flags) are strict only when the session holds its user alone
//! ([`crate::session::UserLease::exclusive`]); with more sessions than users, another session
//! may change the mailbox between two commands, and only what no interleaving can explain is
//! an error.

use std::collections::HashMap;
use std::fmt::Write as _;

use rand::seq::SliceRandom;
use rand::Rng;
use tokio::time::Instant;

use crate::client::{is_expunge_issued, SessionError};
use crate::message::{SEARCH_WORDS, SENDERS};
use crate::response::{code_number, parse_fetch, parse_search, FetchData, Response};
use crate::session::{Live, SessionCtx};
use crate::stats::Command;

/// `logins`: connect, LOGIN, LOGOUT; one connection per iteration.
pub async fn logins(ctx: &mut SessionCtx) -> Result<(), SessionError> {
    let user = ctx.rng.gen_range(0..ctx.opts.users);
    let mut live = ctx.connect().await?;
    ctx.login(&mut live, user).await?;
    ctx.logout(&mut live).await?;
    ctx.iterations += 1;
    Ok(())
}

/// What one `mix` session does, drawn up front from the session's RNG: the imaptest states
/// with their probabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MixPlan {
    /// LIST "" "*" (50%).
    pub list: bool,
    /// STATUS (50%).
    pub status: bool,
    /// STORE of \Seen or \Flagged on some messages (50%).
    pub store: bool,
    /// APPEND one message (5% of sessions; more when the mailbox is below its target).
    pub append: bool,
}

/// Probability of LIST, STATUS and STORE in a mix session.
pub const MIX_HALF: f64 = 0.5;
/// Share of mix sessions that APPEND.
pub const MIX_APPEND: f64 = 0.05;
/// Share of messages FETCH2 reads in full.
pub const MIX_FETCH2_SHARE: f64 = 0.3;
/// Share of messages STORE changes.
pub const MIX_STORE_SHARE: f64 = 0.1;
/// Most messages one session appends to refill its mailbox, so that one session's work stays
/// bounded however empty the mailbox is.
pub const MIX_REFILL_MAX: u32 = 10;

impl MixPlan {
    /// Draws the plan of one session.
    pub fn draw(rng: &mut impl Rng) -> MixPlan {
        MixPlan {
            list: rng.gen_bool(MIX_HALF),
            status: rng.gen_bool(MIX_HALF),
            store: rng.gen_bool(MIX_HALF),
            append: rng.gen_bool(MIX_APPEND),
        }
    }
}

/// `amount` of the `uids`, chosen at random (at least one when there are any).
pub fn choose_share(rng: &mut impl Rng, uids: &[u32], share: f64) -> Vec<u32> {
    if uids.is_empty() {
        return Vec::new();
    }
    let n = ((uids.len() as f64 * share).round() as usize).clamp(1, uids.len());
    let mut chosen: Vec<u32> = uids.choose_multiple(rng, n).copied().collect();
    chosen.sort_unstable();
    chosen
}

/// A UID set in IMAP syntax, ranges collapsed: `1:3,7,9:10`. `uids` must be sorted.
pub fn uid_set(uids: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while let Some(&first) = uids.get(i) {
        let mut last = first;
        i += 1;
        while uids.get(i) == Some(&(last.wrapping_add(1))) {
            last += 1;
            i += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        if first == last {
            let _ = write!(out, "{first}");
        } else {
            let _ = write!(out, "{first}:{last}");
        }
    }
    out
}

/// What a session knows about its selected mailbox.
#[derive(Debug, Default)]
struct View {
    exists: u32,
    uidvalidity: u64,
    uidnext: u64,
    highestmodseq: u64,
    /// UID and size of each message, in sequence order, from the last FETCH 1:*.
    messages: Vec<(u32, u64)>,
}

impl View {
    /// Applies the untagged responses every command may carry.
    fn update(&mut self, r: &Response<'_>) {
        match *r {
            Response::Exists(n) => self.exists = n,
            Response::Expunge(n) => {
                self.exists = self.exists.saturating_sub(1);
                if let Some(i) = (n as usize)
                    .checked_sub(1)
                    .filter(|&i| i < self.messages.len())
                {
                    self.messages.remove(i);
                }
            }
            Response::UntaggedStatus { text, .. } => {
                if let Some(v) = code_number(text, b"UIDVALIDITY") {
                    self.uidvalidity = v;
                }
                if let Some(v) = code_number(text, b"UIDNEXT") {
                    self.uidnext = v;
                }
                if let Some(v) = code_number(text, b"HIGHESTMODSEQ") {
                    self.highestmodseq = v;
                }
            }
            _ => {}
        }
    }

    fn uids(&self) -> Vec<u32> {
        self.messages.iter().map(|&(u, _)| u).collect()
    }
}

fn fetch_data(items: &[u8]) -> Result<FetchData, SessionError> {
    parse_fetch(items).map_err(|e| SessionError::Protocol(e.to_string()))
}

/// SELECT the profile's mailbox (with `params`, e.g. ` (CONDSTORE)`), timed as `select`.
async fn select(ctx: &mut SessionCtx, live: &mut Live, params: &str) -> Result<View, SessionError> {
    let mut view = View::default();
    let cmd = format!("SELECT \"{}\"{params}", ctx.opts.mailbox);
    let started = Instant::now();
    live.command("SELECT", cmd.as_bytes(), |r| {
        view.update(&r);
        Ok(())
    })
    .await?;
    ctx.record(Command::Select, started);
    Ok(view)
}

/// FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE), timed as `fetch`; fills `view.messages`.
async fn fetch_all(
    ctx: &mut SessionCtx,
    live: &mut Live,
    view: &mut View,
    exclusive: bool,
) -> Result<(), SessionError> {
    view.messages.clear();
    if view.exists == 0 {
        return Ok(());
    }
    let mut fetched: Vec<(u32, u64)> = Vec::with_capacity(view.exists as usize);
    let mut problem: Option<SessionError> = None;
    let started = Instant::now();
    let mut exists = view.exists;
    let result = live
        .command(
            "FETCH",
            b"FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE)",
            |r| {
                match r {
                    Response::Fetch(_, items) => {
                        let d = fetch_data(items)?;
                        match (d.uid, d.size, d.flags.is_some(), d.envelope) {
                            (Some(uid), Some(size), true, true) => fetched.push((uid, size)),
                            _ => {
                                problem.get_or_insert(SessionError::Data(format!(
                                    "FETCH lacks UID, FLAGS, RFC822.SIZE or ENVELOPE: {}",
                                    crate::response::printable(items, 120)
                                )));
                            }
                        }
                    }
                    Response::Exists(n) => exists = n,
                    _ => {}
                }
                Ok(())
            },
        )
        .await;
    match result {
        Err(e) if is_expunge_issued(&e) && !exclusive => {}
        other => other?,
    }
    ctx.record(Command::Fetch, started);
    view.exists = exists;
    if let Some(p) = problem {
        return Err(p);
    }
    if exclusive && fetched.len() != view.exists as usize {
        return Err(SessionError::Data(format!(
            "FETCH 1:* returned {} messages, EXISTS is {}",
            fetched.len(),
            view.exists
        )));
    }
    if fetched.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Err(SessionError::Data("FETCH 1:* UIDs not ascending".into()));
    }
    view.messages = fetched;
    Ok(())
}

/// APPENDs one message from the pool (timed as `append`); returns its size.
async fn append_one(
    ctx: &mut SessionCtx,
    live: &mut Live,
    flags: &str,
) -> Result<usize, SessionError> {
    let message = ctx.messages.pick(&mut ctx.rng).to_vec();
    let mailbox = ctx.opts.mailbox.clone();
    let started = Instant::now();
    live.append(&mailbox, flags, &message, |_| Ok(())).await?;
    ctx.record(Command::Append, started);
    Ok(message.len())
}

/// `mix`: one imaptest-style session from connect to LOGOUT.
pub async fn mix(ctx: &mut SessionCtx) -> Result<(), SessionError> {
    let lease = ctx.users.checkout(&mut ctx.rng);
    let exclusive = lease.exclusive;
    let target = ctx.opts.messages();
    let plan = MixPlan::draw(&mut ctx.rng);
    let mut live = ctx.connect().await?;
    ctx.login(&mut live, lease.index).await?;

    if plan.list {
        let started = Instant::now();
        live.command("LIST", b"LIST \"\" \"*\"", |_| Ok(())).await?;
        ctx.record(Command::List, started);
    }
    if plan.status {
        let cmd = format!("STATUS \"{}\" (MESSAGES UIDNEXT UNSEEN)", ctx.opts.mailbox);
        let started = Instant::now();
        live.command("STATUS", cmd.as_bytes(), |_| Ok(())).await?;
        ctx.record(Command::Status, started);
    }
    let mut view = select(ctx, &mut live, "").await?;
    fetch_all(ctx, &mut live, &mut view, exclusive).await?;

    // FETCH2: full bodies of 30% of the messages; each must be as long as RFC822.SIZE said.
    if !view.messages.is_empty() {
        let chosen = choose_share(&mut ctx.rng, &view.uids(), MIX_FETCH2_SHARE);
        let sizes: HashMap<u32, u64> = view.messages.iter().copied().collect();
        let cmd = format!("UID FETCH {} (UID BODY.PEEK[])", uid_set(&chosen));
        let mut problem = None;
        let mut got = 0usize;
        let started = Instant::now();
        let result = live
            .command("FETCH2", cmd.as_bytes(), |r| {
                view.update(&r);
                if let Response::Fetch(_, items) = r {
                    let d = fetch_data(items)?;
                    got += 1;
                    if let (Some(uid), Some(len)) = (d.uid, d.body_len) {
                        if sizes.get(&uid).is_some_and(|&s| s != len) {
                            problem.get_or_insert(SessionError::Data(format!(
                                "UID {uid}: BODY[] is {len} bytes, RFC822.SIZE said {}",
                                sizes.get(&uid).copied().unwrap_or(0)
                            )));
                        }
                    }
                }
                Ok(())
            })
            .await;
        match result {
            Err(e) if is_expunge_issued(&e) && !exclusive => {}
            other => other?,
        }
        ctx.record(Command::Fetch2, started);
        if let Some(p) = problem {
            return Err(p);
        }
        if exclusive && got != chosen.len() {
            return Err(SessionError::Data(format!(
                "FETCH2 of {} UIDs returned {got}",
                chosen.len()
            )));
        }
    }

    // STORE: set or clear \Seen or \Flagged; the FETCH answers must show the change.
    if plan.store && !view.messages.is_empty() {
        let chosen = choose_share(&mut ctx.rng, &view.uids(), MIX_STORE_SHARE);
        let flag = if ctx.rng.gen_bool(0.5) {
            "\\Seen"
        } else {
            "\\Flagged"
        };
        let add = ctx.rng.gen_bool(0.5);
        let cmd = format!(
            "UID STORE {} {}FLAGS ({flag})",
            uid_set(&chosen),
            if add { "+" } else { "-" }
        );
        let mut problem = None;
        let started = Instant::now();
        live.command("STORE", cmd.as_bytes(), |r| {
            view.update(&r);
            if let Response::Fetch(_, items) = r {
                let d = fetch_data(items)?;
                if let Some(flags) = d.flags {
                    let has = flags.iter().any(|f| f.eq_ignore_ascii_case(flag));
                    if exclusive && has != add {
                        problem.get_or_insert(SessionError::Data(format!(
                            "STORE {}{flag} answered FLAGS {flags:?}",
                            if add { "+" } else { "-" }
                        )));
                    }
                }
            }
            Ok(())
        })
        .await?;
        ctx.record(Command::Store, started);
        if let Some(p) = problem {
            return Err(p);
        }
    }

    // DELETE: mark what is over the target, so that with APPEND the mailbox stays near it.
    let excess = view.messages.len().saturating_sub(target as usize);
    let mut deleted = 0usize;
    if excess > 0 {
        let uids = view.uids();
        let mut chosen: Vec<u32> = uids
            .choose_multiple(&mut ctx.rng, excess)
            .copied()
            .collect();
        chosen.sort_unstable();
        let cmd = format!("UID STORE {} +FLAGS.SILENT (\\Deleted)", uid_set(&chosen));
        let started = Instant::now();
        live.command("DELETE", cmd.as_bytes(), |r| {
            view.update(&r);
            Ok(())
        })
        .await?;
        ctx.record(Command::Delete, started);
        deleted = chosen.len();
    }

    // EXPUNGE every session; what we marked must go.
    let mut expunged = 0usize;
    let started = Instant::now();
    live.command("EXPUNGE", b"EXPUNGE", |r| {
        if let Response::Expunge(_) = r {
            expunged += 1;
        }
        view.update(&r);
        Ok(())
    })
    .await?;
    ctx.record(Command::Expunge, started);
    if exclusive && expunged < deleted {
        return Err(SessionError::Data(format!(
            "EXPUNGE removed {expunged} messages, {deleted} were marked \\Deleted"
        )));
    }

    // APPEND: 5% of sessions, and any session whose mailbox is below the target refills it.
    let below = target.saturating_sub(view.exists).min(MIX_REFILL_MAX);
    let appends = below.max(u32::from(plan.append));
    for _ in 0..appends {
        let flags = if ctx.rng.gen_bool(0.5) { "\\Seen" } else { "" };
        append_one(ctx, &mut live, flags).await?;
    }

    ctx.logout(&mut live).await?;
    ctx.iterations += 1;
    Ok(())
}

/// `append`: one connection APPENDs until the run ends; past `--messages` in the mailbox it
/// deletes everything and expunges (timed as `delete` and `expunge`), so disk use stays bounded.
pub async fn append(ctx: &mut SessionCtx) -> Result<(), SessionError> {
    let lease = ctx.users.checkout(&mut ctx.rng);
    let mut live = ctx.connect().await?;
    ctx.login(&mut live, lease.index).await?;
    live.ensure_capabilities().await?;
    let mut view = select(ctx, &mut live, "").await?;
    let limit = ctx.opts.messages().max(1);
    while !ctx.should_stop() {
        if view.exists >= limit {
            let started = Instant::now();
            live.command("DELETE", b"STORE 1:* +FLAGS.SILENT (\\Deleted)", |r| {
                view.update(&r);
                Ok(())
            })
            .await?;
            ctx.record(Command::Delete, started);
            let started = Instant::now();
            live.command("EXPUNGE", b"EXPUNGE", |r| {
                view.update(&r);
                Ok(())
            })
            .await?;
            ctx.record(Command::Expunge, started);
        }
        let message = ctx.messages.pick(&mut ctx.rng).to_vec();
        let mailbox = ctx.opts.mailbox.clone();
        let before = view.exists;
        let started = Instant::now();
        live.append(&mailbox, "", &message, |r| {
            view.update(&r);
            Ok(())
        })
        .await?;
        ctx.record(Command::Append, started);
        ctx.iterations += 1;
        // Servers report the new message in an untagged EXISTS when the mailbox is selected;
        // count it ourselves when they do not, so the clean-up still happens.
        if view.exists == before {
            view.exists += 1;
        }
    }
    ctx.logout(&mut live).await
}

/// Fills the selected mailbox up to `target` messages (not timed: setup). Flags follow a
/// typical mailbox: most read, a few flagged.
async fn fill(
    ctx: &mut SessionCtx,
    live: &mut Live,
    view: &mut View,
    target: u32,
) -> Result<(), SessionError> {
    let missing = target.saturating_sub(view.exists);
    for _ in 0..missing {
        if ctx.should_stop() {
            break;
        }
        let mut flags = String::new();
        if ctx.rng.gen_bool(0.7) {
            flags.push_str("\\Seen");
        }
        if ctx.rng.gen_bool(0.05) {
            flags.push_str(if flags.is_empty() {
                "\\Flagged"
            } else {
                " \\Flagged"
            });
        }
        let message = ctx.messages.pick(&mut ctx.rng).to_vec();
        let mailbox = ctx.opts.mailbox.clone();
        live.append(&mailbox, &flags, &message, |r| {
            view.update(&r);
            Ok(())
        })
        .await?;
    }
    Ok(())
}

/// `search`: fills the mailbox to `--messages`, then loops over SEARCH BODY, FROM, SUBJECT
/// and flag searches. Every number returned must be a message of the mailbox.
pub async fn search(ctx: &mut SessionCtx) -> Result<(), SessionError> {
    let lease = ctx.users.checkout(&mut ctx.rng);
    let mut live = ctx.connect().await?;
    ctx.login(&mut live, lease.index).await?;
    live.ensure_capabilities().await?;
    let mut view = select(ctx, &mut live, "").await?;
    fill(ctx, &mut live, &mut view, ctx.opts.messages()).await?;
    const FLAG_SEARCHES: [&str; 5] = [
        "UNSEEN",
        "FLAGGED",
        "SEEN NOT FLAGGED",
        "DELETED",
        "ANSWERED",
    ];
    while !ctx.should_stop() {
        let (command, query) = match ctx.rng.gen_range(0..4) {
            0 => {
                let w = SEARCH_WORDS[ctx.rng.gen_range(0..SEARCH_WORDS.len())];
                (Command::SearchBody, format!("SEARCH BODY \"{w}\""))
            }
            1 => {
                let (name, _) = SENDERS[ctx.rng.gen_range(0..SENDERS.len())];
                let last = name.split(' ').next_back().unwrap_or(name);
                (Command::SearchFrom, format!("SEARCH FROM \"{last}\""))
            }
            2 => {
                let w = SEARCH_WORDS[ctx.rng.gen_range(0..SEARCH_WORDS.len())];
                (Command::SearchSubject, format!("SEARCH SUBJECT \"{w}\""))
            }
            _ => {
                let f = FLAG_SEARCHES[ctx.rng.gen_range(0..FLAG_SEARCHES.len())];
                (Command::SearchFlags, format!("SEARCH {f}"))
            }
        };
        let mut problem = None;
        let exists = view.exists;
        let started = Instant::now();
        live.command("SEARCH", query.as_bytes(), |r| {
            if let Response::Search(data) = r {
                let numbers =
                    parse_search(data).map_err(|e| SessionError::Protocol(e.to_string()))?;
                if let Some(bad) = numbers.iter().find(|&&n| n == 0 || n > exists) {
                    problem.get_or_insert(SessionError::Data(format!(
                        "{query}: message {bad} of a mailbox with {exists}"
                    )));
                }
            }
            view.update(&r);
            Ok(())
        })
        .await?;
        ctx.record(command, started);
        if let Some(p) = problem {
            return Err(p);
        }
        ctx.iterations += 1;
    }
    ctx.logout(&mut live).await
}

/// Header fields a Thunderbird-like client fetches for its message list.
const SYNC_HEADERS: &str =
    "BODY.PEEK[HEADER.FIELDS (FROM TO CC SUBJECT DATE MESSAGE-ID REFERENCES IN-REPLY-TO CONTENT-TYPE)]";

/// `sync`: fills the mailbox, then per iteration: first sync (UID FETCH 1:* of flags, size
/// and list headers), changes some flags, and resyncs in a new session with QRESYNC (or
/// CONDSTORE, or a plain FLAGS fetch when the server has neither). The resync must report
/// every change this session made.
pub async fn sync(ctx: &mut SessionCtx) -> Result<(), SessionError> {
    let lease = ctx.users.checkout(&mut ctx.rng);
    let exclusive = lease.exclusive;
    let mut live = ctx.connect().await?;
    ctx.login(&mut live, lease.index).await?;
    live.ensure_capabilities().await?;
    let caps = live.caps;
    let condstore = caps.condstore || caps.qresync;
    let select_params = if condstore { " (CONDSTORE)" } else { "" };
    let mut view = select(ctx, &mut live, select_params).await?;
    fill(ctx, &mut live, &mut view, ctx.opts.messages()).await?;

    while !ctx.should_stop() {
        // First sync.
        let cmd = format!("UID FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE {SYNC_HEADERS})");
        let mut uids = Vec::with_capacity(view.exists as usize);
        // Messages without \Flagged: only on these does +FLAGS change anything, and a
        // STORE that changes nothing need not raise a MODSEQ (RFC 7162), so only these
        // make changes a resync must report.
        let mut unflagged = Vec::with_capacity(view.exists as usize);
        let mut exists = view.exists;
        let started = Instant::now();
        live.command("SYNC", cmd.as_bytes(), |r| {
            match r {
                Response::Fetch(_, items) => {
                    let d = fetch_data(items)?;
                    if let (Some(uid), Some(_)) = (d.uid, d.body_len) {
                        uids.push(uid);
                        let flagged = d
                            .flags
                            .as_ref()
                            .is_some_and(|f| f.iter().any(|f| f.eq_ignore_ascii_case("\\Flagged")));
                        if d.flags.is_some() && !flagged {
                            unflagged.push(uid);
                        }
                    }
                }
                Response::Exists(n) => exists = n,
                _ => {}
            }
            Ok(())
        })
        .await?;
        ctx.record(Command::SyncFull, started);
        view.exists = exists;
        if exclusive && uids.len() != view.exists as usize {
            return Err(SessionError::Data(format!(
                "UID FETCH 1:* returned {} messages with headers, EXISTS is {}",
                uids.len(),
                view.exists
            )));
        }

        // Flag changes the resync must report: toggle \Flagged on 1% of messages.
        unflagged.sort_unstable();
        let share = 0.01 * uids.len() as f64 / unflagged.len().max(1) as f64;
        let changed = choose_share(&mut ctx.rng, &unflagged, share.min(1.0));
        if !changed.is_empty() {
            let cmd = format!("UID STORE {} +FLAGS.SILENT (\\Flagged)", uid_set(&changed));
            let started = Instant::now();
            live.command("STORE", cmd.as_bytes(), |_| Ok(())).await?;
            ctx.record(Command::Store, started);
        }
        let (uidvalidity, modseq, uidnext) = (view.uidvalidity, view.highestmodseq, view.uidnext);
        ctx.logout(&mut live).await?;

        // Resync in a new session, as a client does after restarting.
        live = ctx.connect().await?;
        ctx.login(&mut live, lease.index).await?;
        live.ensure_capabilities().await?;
        let mut reported = 0usize;
        if caps.qresync && uidvalidity > 0 && modseq > 0 {
            live.command("ENABLE", b"ENABLE QRESYNC", |_| Ok(()))
                .await?;
            let params = format!(" (QRESYNC ({uidvalidity} {modseq}))");
            let cmd = format!("SELECT \"{}\"{params}", ctx.opts.mailbox);
            let mut fresh = View::default();
            let started = Instant::now();
            live.command("SELECT", cmd.as_bytes(), |r| {
                if let Response::Fetch(..) = r {
                    reported += 1;
                }
                fresh.update(&r);
                Ok(())
            })
            .await?;
            ctx.record(Command::SyncChanges, started);
            view = fresh;
        } else {
            view = select(ctx, &mut live, select_params).await?;
            let cmd = if condstore && modseq > 0 {
                format!("UID FETCH 1:* (UID FLAGS) (CHANGEDSINCE {modseq})")
            } else {
                "UID FETCH 1:* (UID FLAGS)".to_string()
            };
            let started = Instant::now();
            live.command("RESYNC", cmd.as_bytes(), |r| {
                if let Response::Fetch(..) = r {
                    reported += 1;
                }
                view.update(&r);
                Ok(())
            })
            .await?;
            ctx.record(Command::SyncChanges, started);
        }
        if exclusive && reported < changed.len() {
            return Err(SessionError::Data(format!(
                "resync reported {reported} changed messages, {} were changed",
                changed.len()
            )));
        }
        // New mail since the first sync (none unless another session shares the user).
        if uidnext > 0 && u64::from(view.exists) > 0 && view.uidnext > uidnext {
            let cmd = format!("UID FETCH {uidnext}:* (UID FLAGS RFC822.SIZE {SYNC_HEADERS})");
            live.command("SYNCNEW", cmd.as_bytes(), |_| Ok(())).await?;
        }
        // Undo the flag change so every iteration starts alike.
        if !changed.is_empty() {
            let cmd = format!("UID STORE {} -FLAGS.SILENT (\\Flagged)", uid_set(&changed));
            live.command("STORE", cmd.as_bytes(), |_| Ok(())).await?;
        }
        ctx.iterations += 1;
    }
    ctx.logout(&mut live).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn mix_probabilities_match_imaptest_within_tolerance() {
        let mut rng = StdRng::seed_from_u64(42);
        let n = 20_000;
        let plans: Vec<MixPlan> = (0..n).map(|_| MixPlan::draw(&mut rng)).collect();
        let share =
            |f: fn(&MixPlan) -> bool| plans.iter().filter(|p| f(p)).count() as f64 / n as f64;
        assert!((share(|p| p.list) - 0.5).abs() < 0.02);
        assert!((share(|p| p.status) - 0.5).abs() < 0.02);
        assert!((share(|p| p.store) - 0.5).abs() < 0.02);
        assert!((share(|p| p.append) - 0.05).abs() < 0.01);
        // The choices are independent: LIST and STATUS together about a quarter of the time.
        assert!((share(|p| p.list && p.status) - 0.25).abs() < 0.02);
    }

    #[test]
    fn mix_plan_is_reproducible_from_the_seed() {
        let draw = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..50).map(|_| MixPlan::draw(&mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(draw(9), draw(9));
        assert_ne!(draw(9), draw(10));
    }

    #[test]
    fn fetch2_share_is_thirty_percent_of_messages() {
        let mut rng = StdRng::seed_from_u64(1);
        let uids: Vec<u32> = (1..=200).collect();
        let chosen = choose_share(&mut rng, &uids, MIX_FETCH2_SHARE);
        assert_eq!(chosen.len(), 60);
        assert!(chosen.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(
            choose_share(&mut rng, &uids[..2], MIX_FETCH2_SHARE).len(),
            1
        );
        assert!(choose_share(&mut rng, &[], MIX_FETCH2_SHARE).is_empty());
    }

    #[test]
    fn uid_sets_collapse_ranges() {
        assert_eq!(uid_set(&[1, 2, 3, 7, 9, 10]), "1:3,7,9:10");
        assert_eq!(uid_set(&[5]), "5");
        assert_eq!(uid_set(&[]), "");
        assert_eq!(
            uid_set(&[u32::MAX - 1, u32::MAX]),
            format!("{}:{}", u32::MAX - 1, u32::MAX)
        );
    }

    #[test]
    fn view_follows_expunges_and_codes() {
        let mut v = View {
            exists: 3,
            messages: vec![(10, 1), (11, 2), (12, 3)],
            ..View::default()
        };
        v.update(&Response::Expunge(2));
        assert_eq!(v.exists, 2);
        assert_eq!(v.uids(), vec![10, 12]);
        v.update(&Response::Expunge(9));
        assert_eq!(v.exists, 1);
        v.update(&Response::UntaggedStatus {
            status: crate::response::Status::Ok,
            text: b"[HIGHESTMODSEQ 77] ok",
        });
        assert_eq!(v.highestmodseq, 77);
    }
}
