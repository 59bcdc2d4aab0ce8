//! Sieve at delivery: runs the recipient's active script on the owner core and carries out
//! what it decides (docs/sieve.md, "Delivery").
//!
//! - The compiled script is cached per executor, keyed by user and the store's
//!   `script_version`, so a script is compiled once per change, not once per message. It is
//!   compiled from the stored source (checked at upload) under the `[sieve]` limits.
//! - keep / fileinto are stored (durable) before the recipient's 250; several fileinto give
//!   several copies, one per distinct mailbox; discard stores nothing; reject / ereject turn
//!   into a `550 5.7.1` for that recipient (RFC 5429 §2.1.1: LMTP can always refuse one
//!   recipient, so no rejection notice is ever sent).
//! - A run-time error, a limit hit, a script that does not compile or a fileinto that cannot
//!   be carried out falls back to keeping the message in INBOX, and is logged with the user.
//!   Run-time errors and a script that does not compile also go into the user's Sieve log
//!   in their partition (`Partition::log_sieve_error`, read with `ringmail sieve log`).
//! - Outgoing mail goes to `[sieve] submission` through crates/smtp-out. A redirect that is
//!   the message's only disposition is sent before the 250, bounded by the submission
//!   timeout, and kept in INBOX if the send fails: the MTA's copy is the only one until the
//!   relay took it, so the 250 must wait. Every other send (vacation replies, redirects
//!   beside a stored copy) runs in a task of its own after the copy is durable; a failure is
//!   only logged, since the message is safe in the mailbox.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::time::Duration;

use futures_lite::future;
use tracing::{info, warn};

use ringmail_config::Config;
use ringmail_mime::StoredAnalysis;
use ringmail_sieve::{Action, CompileError, Environment, IncludeLocation, Input, Outcome};
/// The interpreter's types delivery uses, for tools that prepare scripts the same way.
pub use ringmail_sieve::{Limits, Script};
use ringmail_smtp_out::{Client, Outgoing};
use ringmail_store::{flag, special_use, NewMessage, Partition, SieveLogEntry, StoreError};

use crate::session::unix_now;

/// Compiled scripts kept per executor; beyond this many users the cache starts over (a
/// compile is cheap, the bound keeps memory flat with many users).
const MAX_CACHED: usize = 10_000;

/// Key prefixes of the remembered entries (`Partition::remember`).
const VACATION_KEY: &[u8] = b"v:";
const DUPLICATE_KEY: &[u8] = b"d:";

/// The script's limits from `[sieve]`; the rest are the interpreter's defaults.
pub fn limits(config: &Config) -> Limits {
    let s = &config.sieve;
    Limits {
        max_script_size: s.max_script_size,
        max_actions: s.max_actions,
        max_redirects: s.max_redirects,
        max_steps: s.max_steps,
        max_body_test_size: s.max_body_test_size,
        ..Limits::default()
    }
}

/// A compiled script (None: none, or it does not compile) and the `script_version` it
/// was compiled at.
type Versioned = (u64, Option<Script>);

/// A user's active script as delivery runs it: its name (for the user's Sieve log) and
/// the compiled script, or why it does not compile.
#[derive(Clone)]
pub struct Active {
    pub name: Rc<str>,
    pub script: Result<Script, Rc<CompileError>>,
}

thread_local! {
    /// user → (script_version, the active script or None when it has none).
    static CACHE: RefCell<HashMap<String, (u64, Option<Active>)>> = RefCell::new(HashMap::new());
    /// (user, name) → (script_version, the compiled script `include` names, None when the
    /// user has no script of that name).
    static INCLUDES: RefCell<HashMap<(String, String), Versioned>> = RefCell::new(HashMap::new());
}

/// The user's active script, compiled, from the cache while its version is unchanged.
pub fn active_script(mail: &Partition, user: &str, limits: &Limits) -> Option<Active> {
    let version = mail.script_version(user);
    if version == 0 {
        return None;
    }
    let cached = CACHE.with(|c| {
        c.borrow()
            .get(user)
            .filter(|(v, _)| *v == version)
            .map(|(_, s)| s.clone())
    });
    if let Some(active) = cached {
        return active;
    }
    let active = match mail.active_script(user) {
        Ok(Some(active)) => Some(Active {
            script: Script::compile(&active.source, limits).map_err(|e| {
                warn!(target: "ringmail_lmtp::sieve", user, script = %active.name, "Sieve: the active script does not compile, mail is kept in INBOX: {e}");
                Rc::new(e)
            }),
            name: active.name.into(),
        }),
        Ok(None) => None,
        Err(e) => {
            warn!(target: "ringmail_lmtp::sieve", user, "Sieve: cannot read the active script: {e}");
            return None;
        }
    };
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= MAX_CACHED {
            c.clear();
        }
        c.insert(user.to_string(), (version, active.clone()));
    });
    active
}

/// Adds an error of the user's script to their Sieve log; a failure to write it is only
/// logged (the message it is about is stored either way).
pub async fn log_error(mail: &Partition, user: &str, script: &str, line: u32, message: String) {
    let entry = SieveLogEntry {
        time: unix_now(),
        script: script.to_string(),
        line,
        message,
    };
    if let Err(e) = mail.log_sieve_error(user, entry).await {
        warn!(target: "ringmail_lmtp::sieve", user, "Sieve: cannot write the user's Sieve log: {e}");
    }
}

/// What happened to one recipient's copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Stored: (mailbox, uid) of each copy.
    Stored(Vec<(String, u32)>),
    /// The script discarded it (or only redirected it, and the relay took it).
    NotStored(&'static str),
    /// reject / ereject with the reason.
    Rejected(String),
}

/// The message being delivered to one user.
pub struct Message<'a> {
    pub user: &'a str,
    /// MAIL FROM, "" for `<>`.
    pub sender: &'a str,
    /// RCPT TO as given, with any `+detail` (the script's envelope "to").
    pub recipient: &'a str,
    /// The mailbox of implicit keep (the `+detail` folder or INBOX).
    pub default_mailbox: &'a str,
    /// Trace headers and message.
    pub bytes: &'a [u8],
    pub internal_date: i64,
}

/// Runs `script` for `m` and carries out its outcome. Err only for a store failure (the
/// recipient then gets a 4xx and the MTA tries again).
pub async fn deliver(
    config: &Config,
    mail: &Partition,
    name: &str,
    script: &Script,
    m: &Message<'_>,
) -> Result<Verdict, StoreError> {
    let limits = limits(config);
    let now = unix_now();
    let envelope = ringmail_sieve::Envelope {
        from: m.sender.to_string(),
        to: m.recipient.to_string(),
        orig_to: None,
    };
    let outcome = {
        let mut env = StoreEnv {
            mail,
            user: m.user,
            limits: &limits,
            now,
            delimiter: &config.lmtp.recipient_delimiter,
        };
        script.evaluate(
            Input {
                message: m.bytes,
                envelope: &envelope,
            },
            &mut env,
            &limits,
        )
    };
    for e in &outcome.errors {
        warn!(target: "ringmail_lmtp::sieve", user = m.user, steps = outcome.steps, "Sieve: script error, message kept: {e}");
    }
    for n in &outcome.notes {
        info!(target: "ringmail_lmtp::sieve", user = m.user, "Sieve: {n}");
    }
    // What this message will remember (vacation replies, duplicate ids) counts as
    // remembered from now on for the user's next evaluations on this executor, which owns
    // the user: a message delivered while this one is still being stored sees it, so a
    // sender gets one reply per period however close two messages come.
    let pending = Pending::new(m.user, remembered_keys(&outcome, now, config));
    if let Some(reason) = outcome.actions.iter().find_map(|a| match a {
        Action::Reject { reason, .. } => Some(reason.clone()),
        _ => None,
    }) {
        info!(target: "ringmail_lmtp::sieve", user = m.user, "Sieve: rejected: {reason}");
        return Ok(Verdict::Rejected(reason));
    }
    let stored_bytes = outcome.edited_message(m.bytes);
    let (mut stored, unfiled) = store_copies(mail, m, &outcome, &stored_bytes).await?;
    // Logged for the user once the message is safe.
    for e in &outcome.errors {
        let script = e.script.as_deref().unwrap_or(name);
        log_error(mail, m.user, script, e.line, e.message.clone()).await;
    }
    // A fileinto that could not be carried out: the action has no line (line 0).
    for why in unfiled {
        log_error(mail, m.user, name, 0, why).await;
    }
    let relay = config.sieve.submission.clone();
    let timeout = Duration::from_secs(config.sieve.submission_timeout_secs.max(1));
    let helo = super::session::hostname();
    let redirects = redirects(&outcome, m, &stored_bytes, &relay);
    let mut later: Vec<Outgoing> = Vec::new();
    let only_redirect = stored.is_empty() && !redirects.is_empty();
    if only_redirect {
        // The redirect is the only copy: sent before the 250, kept when it fails.
        let mut sent_any = false;
        for out in &redirects {
            match send(&relay, &helo, out, timeout).await {
                Ok(()) => {
                    sent_any = true;
                    info!(target: "ringmail_lmtp::sieve", user = m.user, to = ?out.envelope.to, "Sieve: redirected");
                }
                Err(e) => {
                    warn!(target: "ringmail_lmtp::sieve", user = m.user, to = ?out.envelope.to, "Sieve: redirect failed: {e}")
                }
            }
        }
        if !sent_any {
            warn!(target: "ringmail_lmtp::sieve", user = m.user, "Sieve: no redirect went out, the message is kept in INBOX");
            stored = vec![keep_in_inbox(mail, m, &stored_bytes).await?];
        }
    }
    let redirected = outcome
        .actions
        .iter()
        .any(|a| matches!(a, Action::Redirect { .. }));
    if redirected && stored.is_empty() && redirects.is_empty() {
        // Every redirect was refused before sending (a loop, no relay): keep, never lose.
        warn!(target: "ringmail_lmtp::sieve", user = m.user, "Sieve: the redirect cannot go out, the message is kept in INBOX");
        stored = vec![keep_in_inbox(mail, m, &stored_bytes).await?];
    }
    if !only_redirect {
        later.extend(redirects);
    }
    for a in &outcome.actions {
        if let Action::Vacation(v) = a {
            if relay.is_empty() {
                warn!(target: "ringmail_lmtp::sieve", user = m.user, "Sieve: no vacation reply: no [sieve] submission relay");
                continue;
            }
            let domain = v.from.rsplit_once('@').map_or(helo.as_str(), |(_, d)| d);
            let domain = domain.trim_end_matches('>');
            let id = ringmail_smtp_out::new_message_id(domain);
            later.push(ringmail_smtp_out::vacation(
                v,
                &id,
                ringmail_sieve::DateTime::now_utc(),
            ));
        }
    }
    let remember = &pending.keys;
    if !remember.is_empty() {
        let entries: Vec<(&[u8], i64)> = remember.iter().map(|(k, t)| (k.as_slice(), *t)).collect();
        for chunk in entries.chunks(ringmail_store::MAX_REMEMBER_ENTRIES) {
            if let Err(e) = mail.remember(m.user, now, chunk).await {
                warn!(target: "ringmail_lmtp::sieve", user = m.user, "Sieve: cannot remember vacation/duplicate state: {e}");
            }
        }
    }
    for out in later {
        let (relay, helo, user) = (relay.clone(), helo.clone(), m.user.to_string());
        glommio::spawn_local(async move {
            match send(&relay, &helo, &out, timeout).await {
                Ok(()) => {
                    info!(target: "ringmail_lmtp::sieve", user, to = ?out.envelope.to, from = %out.envelope.from, "Sieve: mail sent")
                }
                Err(e) => {
                    warn!(target: "ringmail_lmtp::sieve", user, to = ?out.envelope.to, "Sieve: sending failed: {e}")
                }
            }
        })
        .detach();
    }
    if stored.is_empty() {
        let why = if outcome
            .actions
            .iter()
            .any(|a| matches!(a, Action::Redirect { .. }))
        {
            "redirected"
        } else {
            "discarded"
        };
        return Ok(Verdict::NotStored(why));
    }
    Ok(Verdict::Stored(stored))
}

/// The keys `outcome` asks to remember, with their expiry: duplicate ids, and the vacation
/// reply when there is a relay to send it.
fn remembered_keys(outcome: &Outcome, now: i64, config: &Config) -> Vec<(Vec<u8>, i64)> {
    let mut keys: Vec<(Vec<u8>, i64)> = outcome
        .duplicates
        .iter()
        .map(|d| {
            let until = now.saturating_add(d.seconds as i64);
            (key(DUPLICATE_KEY, &d.handle, &d.id), until)
        })
        .collect();
    if !config.sieve.submission.is_empty() {
        for a in &outcome.actions {
            if let Action::Vacation(v) = a {
                let k = key(VACATION_KEY, &v.handle, &v.to.to_ascii_lowercase());
                keys.push((k, now.saturating_add(v.period as i64)));
            }
        }
    }
    keys
}

thread_local! {
    /// (user, key) pairs of messages whose delivery is under way and will remember them.
    static PENDING: RefCell<HashSet<(String, Vec<u8>)>> = RefCell::new(HashSet::new());
}

/// Keys marked pending while a delivery runs; unmarked when it ends, however it ends (by
/// then they are in the store, or the delivery failed and the MTA will try again).
struct Pending {
    user: String,
    keys: Vec<(Vec<u8>, i64)>,
}

impl Pending {
    fn new(user: &str, keys: Vec<(Vec<u8>, i64)>) -> Pending {
        PENDING.with(|p| {
            let mut p = p.borrow_mut();
            for (k, _) in &keys {
                p.insert((user.to_string(), k.clone()));
            }
        });
        Pending {
            user: user.to_string(),
            keys,
        }
    }

    fn contains(user: &str, key: &[u8]) -> bool {
        PENDING.with(|p| p.borrow().contains(&(user.to_string(), key.to_vec())))
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        PENDING.with(|p| {
            let mut p = p.borrow_mut();
            for (k, _) in self.keys.drain(..) {
                p.remove(&(self.user.clone(), k));
            }
        });
    }
}

/// The redirect copies to send; refused ones (a loop, no relay) are logged and left out.
fn redirects(outcome: &Outcome, m: &Message<'_>, bytes: &[u8], relay: &str) -> Vec<Outgoing> {
    let mut out = Vec::new();
    for a in &outcome.actions {
        let Action::Redirect { address, .. } = a else {
            continue;
        };
        if relay.is_empty() {
            warn!(target: "ringmail_lmtp::sieve", user = m.user, to = %address, "Sieve: no redirect: no [sieve] submission relay");
            continue;
        }
        match ringmail_smtp_out::redirect(bytes, m.sender, m.recipient, address) {
            Ok(o) => out.push(o),
            Err(e) => warn!(target: "ringmail_lmtp::sieve", user = m.user, "Sieve: {e}"),
        }
    }
    out
}

/// Stores one copy per distinct mailbox the outcome names, flags merged. Also returns, for
/// the user's Sieve log, why any fileinto went to INBOX instead.
async fn store_copies(
    mail: &Partition,
    m: &Message<'_>,
    outcome: &Outcome,
    bytes: &[u8],
) -> Result<(Vec<(String, u32)>, Vec<String>), StoreError> {
    // (mailbox, flags), in script order, one entry per mailbox.
    let mut targets: Vec<(String, Vec<String>)> = Vec::new();
    let mut unfiled = Vec::new();
    for a in &outcome.actions {
        let (mailbox, flags) = match a {
            Action::Keep { flags, .. } => (m.default_mailbox.to_string(), flags),
            Action::FileInto {
                mailbox,
                flags,
                create,
                special_use,
                ..
            } => {
                let (target, why) =
                    fileinto_target(mail, m.user, mailbox, *create, special_use.as_deref()).await;
                unfiled.extend(why);
                (target, flags)
            }
            _ => continue,
        };
        let same = |t: &&mut (String, Vec<String>)| same_mailbox(&t.0, &mailbox);
        match targets.iter_mut().find(|t| same(t)) {
            Some(t) => {
                for f in flags {
                    if !t.1.contains(f) {
                        t.1.push(f.clone());
                    }
                }
            }
            None => targets.push((mailbox, flags.clone())),
        }
    }
    // Every copy has the same bytes: their MIME metadata is computed once.
    let analysis = ringmail_mime::analyze_for_store(bytes);
    let mut stored = Vec::with_capacity(targets.len());
    for (mailbox, flags) in &targets {
        stored.push(store_one(mail, m.user, mailbox, flags, m, bytes, &analysis).await?);
    }
    Ok((stored, unfiled))
}

fn same_mailbox(a: &str, b: &str) -> bool {
    let n = |s: &str| ringmail_store::normalize_name(s).unwrap_or_else(|_| s.to_string());
    n(a) == n(b)
}

/// The mailbox a fileinto stores into: the special-use one when asked and present, the
/// named one (created with `:create`), and INBOX when it cannot be had, with why (for the
/// user's Sieve log, as Pigeonhole logs it).
async fn fileinto_target(
    mail: &Partition,
    user: &str,
    name: &str,
    create: bool,
    special: Option<&str>,
) -> (String, Option<String>) {
    if let Some(bit) = special.and_then(special_use_bit) {
        let list = mail.list_mailboxes(user);
        if let Some(mb) = list.iter().find(|mb| mb.special_use & bit != 0) {
            return (mb.name.clone(), None);
        }
    }
    if mail.status(user, name).is_ok() {
        return (name.to_string(), None);
    }
    let why = if create {
        match mail.create_mailbox(user, name, 0).await {
            Ok(_) | Err(StoreError::AlreadyExists) => {
                let _ = mail.subscribe(user, name, true).await;
                return (name.to_string(), None);
            }
            Err(e) => format!("fileinto :create {name:?} failed ({e}): kept in INBOX"),
        }
    } else {
        format!("fileinto {name:?}: no such mailbox (use :create): kept in INBOX")
    };
    warn!(target: "ringmail_lmtp::sieve", user, mailbox = name, "Sieve: {why}");
    ("INBOX".to_string(), Some(why))
}

fn special_use_bit(name: &str) -> Option<u8> {
    let bit = match name.trim_start_matches('\\').to_ascii_lowercase().as_str() {
        "all" => special_use::ALL,
        "archive" => special_use::ARCHIVE,
        "drafts" => special_use::DRAFTS,
        "flagged" => special_use::FLAGGED,
        "junk" => special_use::JUNK,
        "sent" => special_use::SENT,
        "trash" => special_use::TRASH,
        _ => return None,
    };
    Some(bit)
}

/// System flag bits and keywords of an imap4flags list.
fn split_flags(flags: &[String]) -> (u8, Vec<&str>) {
    let mut bits = 0u8;
    let mut keywords = Vec::new();
    for f in flags.iter().flat_map(|f| f.split_ascii_whitespace()) {
        match f.to_ascii_lowercase().as_str() {
            "\\seen" => bits |= flag::SEEN,
            "\\answered" => bits |= flag::ANSWERED,
            "\\flagged" => bits |= flag::FLAGGED,
            "\\deleted" => bits |= flag::DELETED,
            "\\draft" => bits |= flag::DRAFT,
            // Other backslash names are not flags a client can hold (\Recent included).
            s if s.starts_with('\\') => {}
            _ if f.len() <= 255 && f.bytes().all(is_atom_char) && !keywords.contains(&f) => {
                keywords.push(f)
            }
            _ => {}
        }
    }
    (bits, keywords)
}

/// A character an IMAP keyword (an atom) may hold.
fn is_atom_char(b: u8) -> bool {
    b > b' ' && b < 0x7f && !b"(){%*\"\\]".contains(&b)
}

/// The fallback copy when the script's own disposition cannot be carried out.
async fn keep_in_inbox(
    mail: &Partition,
    m: &Message<'_>,
    bytes: &[u8],
) -> Result<(String, u32), StoreError> {
    let analysis = ringmail_mime::analyze_for_store(bytes);
    store_one(mail, m.user, "INBOX", &[], m, bytes, &analysis).await
}

/// Appends one copy; a mailbox that went away in between gets the copy in INBOX.
async fn store_one(
    mail: &Partition,
    user: &str,
    mailbox: &str,
    flags: &[String],
    m: &Message<'_>,
    bytes: &[u8],
    analysis: &StoredAnalysis,
) -> Result<(String, u32), StoreError> {
    let (bits, keywords) = split_flags(flags);
    let new = [NewMessage {
        body: bytes,
        flags: bits,
        keywords: &keywords,
        internal_date: m.internal_date,
        meta: &analysis.meta,
        search: Some(&analysis.search),
        text: &analysis.text,
    }];
    match mail.append(user, mailbox, &new).await {
        Ok(done) => Ok((mailbox.to_string(), done.uids.first().copied().unwrap_or(0))),
        Err(StoreError::NoSuchMailbox | StoreError::InvalidName) if mailbox != "INBOX" => {
            let done = mail.append(user, "INBOX", &new).await?;
            Ok(("INBOX".to_string(), done.uids.first().copied().unwrap_or(0)))
        }
        Err(e) => Err(e),
    }
}

/// Hands one message to the relay, within `timeout`.
async fn send(relay: &str, helo: &str, out: &Outgoing, timeout: Duration) -> Result<(), String> {
    let attempt = async {
        let stream = glommio::net::TcpStream::connect(relay)
            .await
            .map_err(|e| format!("cannot connect to the relay {relay}: {e}"))?;
        let mut client = Client::connect(stream, helo)
            .await
            .map_err(|e| e.to_string())?;
        let sent = client
            .send(&out.envelope, &out.message)
            .await
            .map_err(|e| e.to_string())?;
        let _ = client.quit().await;
        match sent.refused.first() {
            Some((to, reply)) => Err(format!("the relay refused <{to}>: {reply}")),
            None => Ok(()),
        }
    };
    future::or(attempt, async {
        glommio::timer::sleep(timeout).await;
        Err(format!(
            "the relay {relay} did not take the message within {} seconds",
            timeout.as_secs()
        ))
    })
    .await
}

/// A remembered key: prefix, handle, NUL, value; long ones are shortened to a hash so that
/// they fit the store's key limit.
fn key(prefix: &[u8], handle: &str, value: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + handle.len() + value.len() + 1);
    k.extend_from_slice(prefix);
    k.extend_from_slice(handle.as_bytes());
    k.push(0);
    k.extend_from_slice(value.as_bytes());
    if k.len() > 256 {
        let (a, b) = (
            fnv(&k, 0xcbf2_9ce4_8422_2325),
            fnv(&k, 0x8422_2325_cbf2_9ce4),
        );
        let mut short = prefix.to_vec();
        short.extend_from_slice(format!("#{a:016x}{b:016x}").as_bytes());
        return short;
    }
    k
}

fn fnv(bytes: &[u8], seed: u64) -> u64 {
    bytes.iter().fold(seed, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// What the interpreter asks of the store.
struct StoreEnv<'a> {
    mail: &'a Partition,
    user: &'a str,
    limits: &'a Limits,
    now: i64,
    /// `[lmtp] recipient_delimiter`: `:user` / `:detail` split addresses as RCPT TO does.
    delimiter: &'a str,
}

impl Environment for StoreEnv<'_> {
    fn mailbox_exists(&mut self, name: &str) -> bool {
        self.mail.status(self.user, name).is_ok()
    }

    fn special_use_exists(&mut self, mailbox: Option<&str>, flag: &str) -> bool {
        let Some(bit) = special_use_bit(flag) else {
            return false;
        };
        self.mail.list_mailboxes(self.user).iter().any(|mb| {
            mb.special_use & bit != 0 && mailbox.is_none_or(|n| same_mailbox(&mb.name, n))
        })
    }

    fn duplicate_seen(&mut self, handle: &str, id: &str, _seconds: u64) -> bool {
        let k = key(DUPLICATE_KEY, handle, id);
        self.mail.remembered(self.user, &k, self.now) || Pending::contains(self.user, &k)
    }

    fn vacation_responded(&mut self, sender: &str, handle: &str, _period: u64) -> bool {
        let k = key(VACATION_KEY, handle, &sender.to_ascii_lowercase());
        self.mail.remembered(self.user, &k, self.now) || Pending::contains(self.user, &k)
    }

    fn include(&mut self, location: IncludeLocation, name: &str) -> Result<Option<Script>, String> {
        // No global scripts on this server: `include :global` finds none.
        if location == IncludeLocation::Global {
            return Ok(None);
        }
        // Cached like the active script: compiled once per change of the user's scripts.
        let version = self.mail.script_version(self.user);
        let cache_key = (self.user.to_string(), name.to_string());
        let cached = INCLUDES.with(|c| {
            c.borrow()
                .get(&cache_key)
                .filter(|(v, _)| *v == version)
                .map(|(_, s)| s.clone())
        });
        if let Some(script) = cached {
            return Ok(script);
        }
        let script = match self.mail.script(self.user, name) {
            Ok(None) => None,
            Ok(Some(source)) => Some(
                Script::compile(&source, self.limits)
                    .map_err(|e| format!("included script \"{name}\": {e}"))?,
            ),
            Err(e) => return Err(format!("included script \"{name}\": {e}")),
        };
        INCLUDES.with(|c| {
            let mut c = c.borrow_mut();
            if c.len() >= MAX_CACHED {
                c.clear();
            }
            c.insert(cache_key, (version, script.clone()));
        });
        Ok(script)
    }

    fn detail_delimiter(&self) -> &str {
        self.delimiter
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_keywords() {
        let flags = [
            "\\Seen \\flagged".to_string(),
            "$Label1".to_string(),
            "\\Recent".to_string(),
            "bad(kw".to_string(),
            "$Label1".to_string(),
        ];
        let (bits, kw) = split_flags(&flags);
        assert_eq!(bits, flag::SEEN | flag::FLAGGED);
        assert_eq!(kw, vec!["$Label1"]);
    }

    #[test]
    fn long_keys_fit_the_store() {
        let long = "x".repeat(5000);
        let k = key(VACATION_KEY, "h", &long);
        assert!(k.len() <= 256 && k.starts_with(VACATION_KEY));
        assert_ne!(k, key(VACATION_KEY, "h", &"y".repeat(5000)));
        assert_eq!(key(DUPLICATE_KEY, "h", "id"), b"d:h\0id".to_vec());
    }

    #[test]
    fn special_use_names() {
        assert_eq!(special_use_bit("\\Junk"), Some(special_use::JUNK));
        assert_eq!(special_use_bit("\\junk"), Some(special_use::JUNK));
        assert_eq!(special_use_bit("\\Important"), None);
    }
}
