//! The evaluator: runs the instruction list in a loop (an explicit stack of frames for
//! `include`, never recursion), counts steps against `Limits::max_steps`, and collects the
//! outcome. Implicit keep follows RFC 5228 §2.10.2; a run-time error turns the outcome
//! into the fallback keep of §2.10.6.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use crate::compile::{build_regex, valid_address};
use crate::date::DateTime;
use crate::env::{Environment, Input};
use crate::error::RuntimeError;
use crate::limits::Limits;
use crate::matching::{glob_match, quote_wildcard, AddressPart, MatchType};
use crate::message::{
    body_parts, decode_rfc2047, encode_header_value, is_field_name, parse_addresses, split_header,
    BodyPart, Field,
};
use crate::outcome::{Action, DuplicateRecord, HeaderEdit, Outcome, VacationResponse};
use crate::program::*;
use crate::Script;

/// Header fields no script may add or delete: the trace and loop-prevention fields.
pub(crate) fn is_protected_header(name: &str) -> bool {
    name.eq_ignore_ascii_case("received") || name.eq_ignore_ascii_case("auto-submitted")
}

/// Default period of a duplicate test without :seconds (RFC 7352 leaves it to us).
const DEFAULT_DUPLICATE_PERIOD: u64 = 12 * 3600;

struct Frame {
    script: Script,
    pc: usize,
    locals: Vec<String>,
    matches: Vec<String>,
    /// Which included script this is; None for the main one.
    key: Option<(IncludeLocation, String)>,
}

impl Frame {
    fn new(script: Script, key: Option<(IncludeLocation, String)>) -> Frame {
        let n = script.inner.locals;
        Frame {
            script,
            pc: 0,
            locals: vec![String::new(); n],
            matches: Vec::new(),
            key,
        }
    }
}

type Res<T> = Result<T, String>;

struct Run<'a> {
    input: Input<'a>,
    env: &'a mut dyn Environment,
    limits: &'a Limits,
    fields: Vec<Field>,
    body_start: usize,
    parts: Option<Vec<BodyPart>>,
    globals: HashMap<String, String>,
    /// The imap4flags internal variable, as a list of flags.
    flags: Vec<String>,
    actions: Vec<Action>,
    implicit_keep: bool,
    taken: usize,
    redirects: usize,
    included: HashSet<(IncludeLocation, String)>,
    includes: usize,
    edits: Vec<HeaderEdit>,
    dups: Vec<DuplicateRecord>,
    dup_seen: HashMap<(String, String), bool>,
    notes: Vec<String>,
    steps: u64,
    regexes: HashMap<(String, bool), regex::Regex>,
}

pub(crate) fn run(
    script: &Script,
    input: Input<'_>,
    env: &mut dyn Environment,
    limits: &Limits,
) -> Outcome {
    let (fields, body_start) = split_header(input.message);
    let mut r = Run {
        input,
        env,
        limits,
        fields,
        body_start,
        parts: None,
        globals: HashMap::new(),
        flags: Vec::new(),
        actions: Vec::new(),
        implicit_keep: true,
        taken: 0,
        redirects: 0,
        included: HashSet::new(),
        includes: 0,
        edits: Vec::new(),
        dups: Vec::new(),
        dup_seen: HashMap::new(),
        notes: Vec::new(),
        steps: 0,
        regexes: HashMap::new(),
    };
    let mut frames = vec![Frame::new(script.clone(), None)];
    let result = r.exec(&mut frames);
    let mut out = Outcome {
        steps: r.steps,
        notes: std::mem::take(&mut r.notes),
        ..Outcome::default()
    };
    match result {
        Ok(()) => {
            // Implicit keep stores into INBOX: not again when an action already does.
            if r.implicit_keep && !r.actions.iter().any(|a| inbox_store(a).is_some()) {
                r.actions.push(Action::Keep {
                    flags: r.flags.clone(),
                    implicit: true,
                });
            }
            out.actions = r.actions;
            if !r.edits.is_empty() {
                out.edited_header = Some(edited_header(input.message, &r.fields));
            }
            out.header_edits = r.edits;
            out.duplicates = r.dups;
        }
        Err(e) => {
            out.actions = vec![Action::Keep {
                flags: Vec::new(),
                implicit: true,
            }];
            out.errors.push(e);
        }
    }
    out
}

fn edited_header(raw: &[u8], fields: &[Field]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in fields {
        match f.span {
            Some((s, e)) => {
                out.extend_from_slice(&raw[s..e]);
                if !out.ends_with(b"\n") {
                    out.extend_from_slice(b"\r\n");
                }
            }
            None => {
                out.extend_from_slice(f.name.as_bytes());
                out.push(b':');
                out.extend_from_slice(f.raw.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    out
}

fn split_flags<'s>(list: impl IntoIterator<Item = &'s str>, into: &mut Vec<String>) {
    for s in list {
        for f in s.split_whitespace() {
            if !into.iter().any(|x| x.eq_ignore_ascii_case(f)) {
                into.push(f.to_string());
            }
        }
    }
}

/// RFC 5232 §3: flags are IMAP flags; anything else (a stray "(", a quote) is dropped.
fn valid_flag(f: &str) -> bool {
    let atom = |s: &str| {
        !s.is_empty()
            && s.bytes().all(|b| {
                b.is_ascii_graphic()
                    && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
            })
    };
    match f.strip_prefix('\\') {
        Some(sys) => atom(sys),
        None => atom(f),
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

impl Run<'_> {
    fn step(&mut self, n: u64) -> Res<()> {
        self.steps += n;
        if self.steps > self.limits.max_steps {
            return Err(format!(
                "the script ran past the limit of {} steps",
                self.limits.max_steps
            ));
        }
        Ok(())
    }

    fn exec(&mut self, frames: &mut Vec<Frame>) -> Result<(), RuntimeError> {
        let mut cur = frames[0].script.clone();
        loop {
            let fi = frames.len() - 1;
            let pc = frames[fi].pc;
            let Some((op, line)) = cur.inner.ops.get(pc) else {
                // End of an included script: back to the one that included it.
                frames.pop();
                match frames.last() {
                    None => return Ok(()),
                    Some(f) => {
                        cur = f.script.clone();
                        continue;
                    }
                }
            };
            frames[fi].pc += 1;
            let err = |frames: &Vec<Frame>, message: String| RuntimeError {
                script: frames[fi].key.as_ref().map(|(l, n)| {
                    format!(
                        "{}:{n}",
                        if *l == IncludeLocation::Global {
                            "global"
                        } else {
                            "personal"
                        }
                    )
                }),
                line: *line,
                message,
            };
            if let Err(e) = self.step(1) {
                return Err(err(frames, e));
            }
            match op {
                Op::Jump(t) => frames[fi].pc = *t,
                Op::Test {
                    test,
                    jump_if,
                    target,
                } => match self.test(&cur.inner.tests[*test], &mut frames[fi]) {
                    Ok(r) => {
                        if r == *jump_if {
                            frames[fi].pc = *target;
                        }
                    }
                    Err(e) => return Err(err(frames, e)),
                },
                Op::Stop => return Ok(()),
                Op::Return => {
                    frames.pop();
                    match frames.last() {
                        None => return Ok(()),
                        Some(f) => cur = f.script.clone(),
                    }
                }
                Op::Include {
                    location,
                    once,
                    optional,
                    name,
                } => match self.include(frames, *location, *once, *optional, name) {
                    Ok(Some(s)) => cur = s,
                    Ok(None) => {}
                    Err(e) => return Err(err(frames, e)),
                },
                other => {
                    if let Err(e) = self.command(other, &mut frames[fi]) {
                        return Err(err(frames, e));
                    }
                }
            }
        }
    }

    fn include(
        &mut self,
        frames: &mut Vec<Frame>,
        location: IncludeLocation,
        once: bool,
        optional: bool,
        name: &str,
    ) -> Res<Option<Script>> {
        let key = (location, name.to_string());
        if once && self.included.contains(&key) {
            return Ok(None);
        }
        if frames.iter().any(|f| f.key.as_ref() == Some(&key)) {
            return Err(format!(
                "include loop: script \"{name}\" is already being run (it includes itself)"
            ));
        }
        if frames.len() > self.limits.max_include_depth {
            return Err(format!(
                "includes nested deeper than the limit of {}",
                self.limits.max_include_depth
            ));
        }
        self.includes += 1;
        if self.includes > self.limits.max_includes {
            return Err(format!(
                "more includes than the limit of {}",
                self.limits.max_includes
            ));
        }
        match self.env.include(location, name) {
            Ok(Some(s)) => {
                self.included.insert(key.clone());
                frames.push(Frame::new(s.clone(), Some(key)));
                Ok(Some(s))
            }
            Ok(None) if optional => Ok(None),
            Ok(None) => Err(format!("included script \"{name}\" does not exist")),
            Err(e) => Err(e),
        }
    }

    // ---- strings -------------------------------------------------------------------------

    fn expand<'s>(&self, f: &Frame, s: &'s Str) -> Cow<'s, str> {
        match s {
            Str::Lit(l) => Cow::Borrowed(l),
            Str::Tpl(pieces) => {
                let mut out = String::new();
                for p in pieces {
                    match p {
                        Piece::Lit(l) => out.push_str(l),
                        Piece::Var(v) => out.push_str(self.var(f, v)),
                        Piece::Match(n) => out.push_str(f.matches.get(*n).map_or("", |s| s)),
                    }
                }
                Cow::Owned(out)
            }
        }
    }

    fn expand_all(&self, f: &Frame, l: &[Str]) -> Vec<String> {
        l.iter().map(|s| self.expand(f, s).into_owned()).collect()
    }

    fn var<'s>(&'s self, f: &'s Frame, v: &VarRef) -> &'s str {
        match v {
            VarRef::Local(i) => f.locals.get(*i).map_or("", |s| s),
            VarRef::Global(n) => self.globals.get(n).map_or("", |s| s),
        }
    }

    fn set_var(&mut self, f: &mut Frame, v: &VarRef, value: String) {
        let value = truncate(value, self.limits.max_variable_size);
        match v {
            VarRef::Local(i) => {
                if let Some(slot) = f.locals.get_mut(*i) {
                    *slot = value;
                }
            }
            VarRef::Global(n) => {
                self.globals.insert(n.clone(), value);
            }
        }
    }

    // ---- matching ------------------------------------------------------------------------

    fn regex(&mut self, pattern: &str, m: &Match) -> Res<regex::Regex> {
        let ci = m.comparator == crate::matching::Comparator::AsciiCasemap;
        if let Some(r) = self.regexes.get(&(pattern.to_string(), ci)) {
            return Ok(r.clone());
        }
        self.step(1 + pattern.len() as u64 / 16)?;
        let r = build_regex(pattern, m.comparator, self.limits)?;
        self.regexes.insert((pattern.to_string(), ci), r.clone());
        Ok(r)
    }

    /// Whether any value matches any key; a successful :matches/:regex sets ${N}.
    fn matches(&mut self, m: &Match, values: &[String], f: &mut Frame) -> Res<bool> {
        let keys: Vec<String> = self.expand_all(f, &m.keys.keys);
        let cmp = m.comparator;
        match m.match_type {
            MatchType::Count(rel) => {
                let n = values.len().to_string();
                self.step(keys.len() as u64)?;
                Ok(keys.iter().any(|k| rel.holds(cmp.order(&n, k))))
            }
            MatchType::Value(rel) => {
                for v in values {
                    for k in &keys {
                        self.step(1 + (v.len() + k.len()) as u64 / 1024)?;
                        if rel.holds(cmp.order(v, k)) {
                            return Ok(true);
                        }
                    }
                }
                Ok(false)
            }
            MatchType::Is | MatchType::Contains => {
                let contains = m.match_type == MatchType::Contains;
                for v in values {
                    for k in &keys {
                        self.step(1 + (v.len() + k.len()) as u64 / 1024)?;
                        let hit = if contains {
                            cmp.contains(v, k)
                        } else {
                            cmp.equals(v, k)
                        };
                        if hit {
                            return Ok(true);
                        }
                    }
                }
                Ok(false)
            }
            MatchType::Matches => {
                let mut caps = Vec::new();
                for v in values {
                    for k in &keys {
                        let stars = k.bytes().filter(|&b| b == b'*').count() as u64;
                        self.step(1 + v.len() as u64 * (1 + stars) / 1024)?;
                        let want = m.set_match_vars;
                        if glob_match(cmp, v, k, want.then_some(&mut caps)) {
                            if want {
                                f.matches = std::mem::take(&mut caps);
                            }
                            return Ok(true);
                        }
                    }
                }
                Ok(false)
            }
            MatchType::Regex => {
                for (i, k) in keys.iter().enumerate() {
                    let re = match m.keys.regexes.get(i).and_then(|r| r.clone()) {
                        Some(r) => r,
                        None => self.regex(k, m)?,
                    };
                    for v in values {
                        self.step(1 + v.len() as u64 / 512)?;
                        if m.set_match_vars {
                            if let Some(c) = re.captures(v) {
                                f.matches = c
                                    .iter()
                                    .map(|g| g.map_or(String::new(), |g| g.as_str().to_string()))
                                    .collect();
                                return Ok(true);
                            }
                        } else if re.is_match(v) {
                            return Ok(true);
                        }
                    }
                }
                Ok(false)
            }
        }
    }

    // ---- message access ------------------------------------------------------------------

    fn fields_named(&self, name: &str, index: Option<Index>) -> Vec<&Field> {
        let all: Vec<&Field> = self
            .fields
            .iter()
            .filter(|f| f.name.eq_ignore_ascii_case(name))
            .collect();
        match index {
            None => all,
            Some(Index { n, last }) => {
                let i = if last {
                    all.len().checked_sub(n)
                } else {
                    Some(n - 1)
                };
                i.and_then(|i| all.get(i).copied()).into_iter().collect()
            }
        }
    }

    /// The start of the message the body test sees (`max_body_test_size`).
    fn body_scanned(&self) -> &[u8] {
        let m = self.input.message;
        &m[..m.len().min(self.limits.max_body_test_size)]
    }

    fn parts(&mut self) -> &[BodyPart] {
        if self.parts.is_none() {
            self.parts = Some(body_parts(self.body_scanned()));
        }
        self.parts.as_deref().unwrap_or(&[])
    }

    fn test(&mut self, t: &TestOp, f: &mut Frame) -> Res<bool> {
        match t {
            TestOp::Exists(names) => {
                let names = self.expand_all(f, names);
                Ok(names
                    .iter()
                    .all(|n| self.fields.iter().any(|x| x.name.eq_ignore_ascii_case(n))))
            }
            TestOp::Size { over, limit } => {
                let size = self.input.message.len() as u64;
                Ok(if *over { size > *limit } else { size < *limit })
            }
            TestOp::Header { names, m, index } => {
                let names = self.expand_all(f, names);
                let mut values = Vec::new();
                for n in &names {
                    values.extend(self.fields_named(n, *index).iter().map(|x| x.value()));
                }
                self.step(values.len() as u64)?;
                self.matches(m, &values, f)
            }
            TestOp::Address {
                names,
                part,
                m,
                index,
            } => {
                let names = self.expand_all(f, names);
                let mut values = Vec::new();
                for n in &names {
                    if !crate::message::is_address_header(n) {
                        return Err(format!("the address test does not accept header \"{n}\""));
                    }
                    for field in self.fields_named(n, *index) {
                        for a in parse_addresses(&field.unfolded()) {
                            values.extend(part.extract(&a, self.env.detail_delimiter()));
                        }
                    }
                }
                self.step(values.len() as u64)?;
                self.matches(m, &values, f)
            }
            TestOp::Envelope { parts, part, m } => {
                let parts = self.expand_all(f, parts);
                let mut values = Vec::new();
                for p in &parts {
                    let addr = match p.to_ascii_lowercase().as_str() {
                        "from" => self.input.envelope.from.clone(),
                        "to" => self.input.envelope.to.clone(),
                        other => return Err(format!("\"{other}\" is not an envelope part")),
                    };
                    // The null reverse-path has no parts but the whole (RFC 5228 §5.4).
                    if addr.is_empty() && *part != AddressPart::All {
                        continue;
                    }
                    values.extend(part.extract(&addr, self.env.detail_delimiter()));
                }
                self.matches(m, &values, f)
            }
            TestOp::Body { transform, m } => {
                let values: Vec<String> = match transform {
                    BodyTransform::Raw => {
                        let scanned = self.body_scanned();
                        let body = scanned.get(self.body_start..).unwrap_or_default();
                        vec![String::from_utf8_lossy(body).into_owned()]
                    }
                    BodyTransform::Text => self
                        .parts()
                        .iter()
                        .filter(|p| p.content_type.starts_with("text/"))
                        .map(|p| {
                            if p.html {
                                mail_parser::decoders::html::html_to_text(&p.text)
                            } else {
                                p.text.clone()
                            }
                        })
                        .collect(),
                    BodyTransform::Content(types) => {
                        let types = self.expand_all(f, types);
                        self.parts()
                            .iter()
                            .filter(|p| {
                                !p.content_type.starts_with("multipart/")
                                    && types
                                        .iter()
                                        .any(|t| content_type_matches(t, &p.content_type))
                            })
                            .map(|p| p.text.clone())
                            .collect()
                    }
                };
                self.matches(m, &values, f)
            }
            TestOp::Date {
                header,
                zone,
                date_part,
                m,
                index,
            } => {
                let header = self.expand(f, header).into_owned();
                let part = self.expand(f, date_part).into_owned();
                if !crate::date::is_date_part(&part) {
                    return Err(format!("\"{part}\" is not a date part"));
                }
                let local = self.env.now().offset;
                let mut values = Vec::new();
                for field in self.fields_named(&header, *index) {
                    let text = field.unfolded();
                    let text = if header.eq_ignore_ascii_case("received") {
                        text.rsplit(';').next().unwrap_or("").trim().to_string()
                    } else {
                        text
                    };
                    if let Some(d) = DateTime::parse_rfc5322(&text) {
                        let d = match zone {
                            Zone::Fixed(o) => d.in_zone(*o),
                            Zone::Local => d.in_zone(local),
                            Zone::Original => d,
                        };
                        values.extend(d.part(&part));
                    }
                }
                self.matches(m, &values, f)
            }
            TestOp::CurrentDate { zone, date_part, m } => {
                let part = self.expand(f, date_part).into_owned();
                if !crate::date::is_date_part(&part) {
                    return Err(format!("\"{part}\" is not a date part"));
                }
                let now = self.env.now();
                let now = match zone {
                    Zone::Fixed(o) => now.in_zone(*o),
                    _ => now,
                };
                let values: Vec<String> = now.part(&part).into_iter().collect();
                self.matches(m, &values, f)
            }
            TestOp::String { sources, m } => {
                let mut values = self.expand_all(f, sources);
                // RFC 5229 §5: :count counts the non-empty strings.
                if matches!(m.match_type, MatchType::Count(_)) {
                    values.retain(|v| !v.is_empty());
                }
                self.matches(m, &values, f)
            }
            TestOp::HasFlag { vars, m } => {
                let mut values = Vec::new();
                match vars {
                    None => values = self.flags.clone(),
                    Some(vs) => {
                        for v in vs {
                            let s = self.var(f, v).to_string();
                            split_flags([s.as_str()], &mut values);
                        }
                    }
                }
                self.matches(m, &values, f)
            }
            TestOp::MailboxExists(names) => {
                let names = self.expand_all(f, names);
                self.step(names.len() as u64)?;
                Ok(names.iter().all(|n| self.env.mailbox_exists(n)))
            }
            TestOp::SpecialUseExists { mailbox, uses } => {
                let uses = self.expand_all(f, uses);
                self.step(uses.len() as u64)?;
                match mailbox {
                    Some(mb) => {
                        let mb = self.expand(f, mb).into_owned();
                        Ok(self.env.mailbox_exists(&mb)
                            && uses
                                .iter()
                                .all(|u| self.env.special_use_exists(Some(&mb), u)))
                    }
                    None => Ok(uses.iter().all(|u| self.env.special_use_exists(None, u))),
                }
            }
            TestOp::Duplicate {
                handle,
                id,
                seconds,
                last,
            } => {
                let handle = handle
                    .as_ref()
                    .map_or(String::new(), |h| self.expand(f, h).into_owned());
                let id = match id {
                    DupId::MessageId => self
                        .fields_named("message-id", None)
                        .first()
                        .map(|x| x.unfolded()),
                    DupId::Header(h) => {
                        let h = self.expand(f, h).into_owned();
                        self.fields_named(&h, None).first().map(|x| x.unfolded())
                    }
                    DupId::Unique(u) => Some(self.expand(f, u).into_owned()),
                };
                // RFC 7352 §3.1: without an id (no such header) the test is false.
                let Some(id) = id.filter(|i| !i.is_empty()) else {
                    return Ok(false);
                };
                let secs = seconds
                    .unwrap_or(DEFAULT_DUPLICATE_PERIOD)
                    .min(self.limits.max_duplicate_period);
                let key = (handle.clone(), id.clone());
                if let Some(seen) = self.dup_seen.get(&key) {
                    return Ok(*seen);
                }
                let seen = self.env.duplicate_seen(&handle, &id, secs);
                self.dup_seen.insert(key, seen);
                // Without :last the first sighting's expiry stands; with it, each refreshes.
                if !seen || *last {
                    self.dups.push(DuplicateRecord {
                        handle,
                        id,
                        seconds: secs,
                    });
                }
                Ok(seen)
            }
        }
    }

    // ---- commands ------------------------------------------------------------------------

    fn push_action(&mut self, a: Action) -> Res<()> {
        // Duplicates of the same action are one action (RFC 5228 §2.10.3); keep and
        // fileinto "INBOX" store into the same mailbox, so they are one too.
        if let Some(new_flags) = inbox_store(&a) {
            for existing in self.actions.iter_mut() {
                if inbox_store(existing).is_some() {
                    match existing {
                        Action::Keep { flags, .. } | Action::FileInto { flags, .. } => {
                            flags.clone_from(new_flags)
                        }
                        _ => {}
                    }
                    return Ok(());
                }
            }
        }
        for existing in self.actions.iter_mut() {
            match (&mut *existing, &a) {
                // The later one's flags win, as in Pigeonhole.
                (Action::Keep { flags, .. }, Action::Keep { flags: new, .. }) => {
                    flags.clone_from(new);
                    return Ok(());
                }
                (
                    Action::FileInto { mailbox, flags, .. },
                    Action::FileInto {
                        mailbox: m2,
                        flags: new,
                        ..
                    },
                ) if mailbox == m2 => {
                    flags.clone_from(new);
                    return Ok(());
                }
                (Action::Redirect { address, .. }, Action::Redirect { address: a2, .. })
                    if address.eq_ignore_ascii_case(a2) =>
                {
                    return Ok(())
                }
                (Action::Discard, Action::Discard) => return Ok(()),
                _ => {}
            }
        }
        let is_reject = matches!(a, Action::Reject { .. });
        for existing in &self.actions {
            let conflict = match existing {
                Action::Reject { .. } => !matches!(a, Action::Discard),
                Action::Keep { .. }
                | Action::FileInto { .. }
                | Action::Redirect { .. }
                | Action::Vacation(_) => is_reject,
                Action::Discard => false,
            };
            if conflict {
                return Err(format!(
                    "{} conflicts with the earlier {} (RFC 5429 §2.1)",
                    action_name(&a),
                    action_name(existing)
                ));
            }
        }
        self.taken += 1;
        if self.taken > self.limits.max_actions {
            return Err(format!(
                "more actions than the limit of {}",
                self.limits.max_actions
            ));
        }
        self.actions.push(a);
        Ok(())
    }

    fn flag_values(&self, f: &Frame, l: &Option<Vec<Str>>) -> Vec<String> {
        match l {
            None => self.flags.clone(),
            Some(l) => {
                let v = self.expand_all(f, l);
                let mut out = Vec::new();
                split_flags(v.iter().map(|s| s.as_str()), &mut out);
                out.retain(|x| valid_flag(x));
                out
            }
        }
    }

    fn command(&mut self, op: &Op, f: &mut Frame) -> Res<()> {
        match op {
            Op::Keep { flags } => {
                let flags = self.flag_values(f, flags);
                self.push_action(Action::Keep {
                    flags,
                    implicit: false,
                })?;
                self.implicit_keep = false;
            }
            Op::Discard => {
                self.push_action(Action::Discard)?;
                self.implicit_keep = false;
            }
            Op::FileInto {
                mailbox,
                flags,
                copy,
                create,
                special_use,
            } => {
                let mailbox = self.expand(f, mailbox).into_owned();
                if mailbox.is_empty() || mailbox.chars().any(char::is_control) {
                    return Err(format!("fileinto: \"{mailbox}\" is not a mailbox name"));
                }
                let flags = self.flag_values(f, flags);
                let special_use = special_use.as_ref().map(|s| self.expand(f, s).into_owned());
                self.push_action(Action::FileInto {
                    mailbox,
                    flags,
                    create: *create,
                    special_use,
                    copy: *copy,
                })?;
                if !copy {
                    self.implicit_keep = false;
                }
            }
            Op::Redirect { address, copy } => {
                let raw = self.expand(f, address).into_owned();
                let addrs = parse_addresses(&raw);
                let address = match addrs.as_slice() {
                    [a] if valid_address(a) => a.clone(),
                    _ => return Err(format!("redirect: \"{raw}\" is not a valid address")),
                };
                self.redirects += 1;
                if self.redirects > self.limits.max_redirects {
                    return Err(format!(
                        "more redirects than the limit of {}",
                        self.limits.max_redirects
                    ));
                }
                self.push_action(Action::Redirect {
                    address,
                    copy: *copy,
                })?;
                if !copy {
                    self.implicit_keep = false;
                }
            }
            Op::Reject { reason, extended } => {
                if self
                    .actions
                    .iter()
                    .any(|a| matches!(a, Action::Reject { .. }))
                {
                    return Err("more than one reject".to_string());
                }
                let reason = self.expand(f, reason).into_owned();
                self.push_action(Action::Reject {
                    reason,
                    extended: *extended,
                })?;
                self.implicit_keep = false;
            }
            Op::Vacation(v) => self.vacation(v, f)?,
            Op::Flags { op, var, flags } => {
                let given = self.expand_all(f, flags);
                let mut current = match var {
                    None => self.flags.clone(),
                    Some(v) => {
                        let mut l = Vec::new();
                        split_flags([self.var(f, v)], &mut l);
                        l
                    }
                };
                let mut list = Vec::new();
                split_flags(given.iter().map(|s| s.as_str()), &mut list);
                match op {
                    FlagOp::Set => current = list,
                    FlagOp::Add => split_flags(list.iter().map(|s| s.as_str()), &mut current),
                    FlagOp::Remove => {
                        current.retain(|c| !list.iter().any(|x| x.eq_ignore_ascii_case(c)))
                    }
                }
                match var {
                    None => self.flags = current,
                    Some(v) => self.set_var(f, v, current.join(" ")),
                }
            }
            Op::Set {
                var,
                value,
                modifiers,
            } => {
                let mut v = self.expand(f, value).into_owned();
                for m in modifiers {
                    v = match m {
                        Modifier::Lower => v.to_lowercase(),
                        Modifier::Upper => v.to_uppercase(),
                        Modifier::LowerFirst => first_char(&v, |c| c.to_lowercase().collect()),
                        Modifier::UpperFirst => first_char(&v, |c| c.to_uppercase().collect()),
                        Modifier::QuoteWildcard => quote_wildcard(&v),
                        Modifier::QuoteRegex => regex::escape(&v),
                        Modifier::Length => v.chars().count().to_string(),
                    };
                }
                self.step(1 + v.len() as u64 / 1024)?;
                self.set_var(f, var, v);
            }
            Op::AddHeader { last, name, value } => {
                let name = self.expand(f, name).into_owned();
                self.check_edit_name(&name)?;
                let value = self.expand(f, value).into_owned();
                if value.len() > self.limits.max_header_value {
                    return Err(format!(
                        "addheader: value longer than the limit of {} bytes",
                        self.limits.max_header_value
                    ));
                }
                let field = Field {
                    name: name.clone(),
                    raw: format!(" {}", encode_header_value(&value)),
                    span: None,
                };
                if *last {
                    self.fields.push(field);
                } else {
                    self.fields.insert(0, field);
                }
                self.edits.push(HeaderEdit::Add {
                    name,
                    value,
                    last: *last,
                });
            }
            Op::DeleteHeader { index, name, m } => {
                let name = self.expand(f, name).into_owned();
                self.check_edit_name(&name)?;
                let positions: Vec<usize> = self
                    .fields
                    .iter()
                    .enumerate()
                    .filter(|(_, x)| x.name.eq_ignore_ascii_case(&name))
                    .map(|(i, _)| i)
                    .collect();
                let candidates: Vec<usize> = match index {
                    None => positions,
                    Some(Index { n, last }) => {
                        let i = if *last {
                            positions.len().checked_sub(*n)
                        } else {
                            Some(n - 1)
                        };
                        i.and_then(|i| positions.get(i).copied())
                            .into_iter()
                            .collect()
                    }
                };
                let mut delete = Vec::new();
                for i in candidates {
                    let hit = match m {
                        None => true,
                        Some(m) => {
                            let v = vec![self.fields[i].value()];
                            self.matches(m, &v, f)?
                        }
                    };
                    if hit {
                        delete.push(i);
                    }
                }
                for i in delete.iter().rev() {
                    self.fields.remove(*i);
                }
                if !delete.is_empty() {
                    self.edits.push(HeaderEdit::Delete {
                        name,
                        count: delete.len(),
                    });
                }
            }
            Op::Jump(_) | Op::Test { .. } | Op::Stop | Op::Return | Op::Include { .. } => {
                unreachable!("control flow is handled by exec")
            }
        }
        Ok(())
    }

    fn check_edit_name(&self, name: &str) -> Res<()> {
        if !is_field_name(name) {
            return Err(format!("\"{name}\" is not a valid header field name"));
        }
        if name.len() > self.limits.max_header_name {
            return Err(format!(
                "header name longer than the limit of {} bytes",
                self.limits.max_header_name
            ));
        }
        if is_protected_header(name) {
            return Err(format!(
                "header \"{name}\" is protected: it may not be added or deleted"
            ));
        }
        Ok(())
    }

    fn vacation(&mut self, v: &VacationOp, f: &mut Frame) -> Res<()> {
        if self
            .actions
            .iter()
            .any(|a| matches!(a, Action::Vacation(_)))
        {
            return Err("more than one vacation action".to_string());
        }
        let reason = self.expand(f, &v.reason).into_owned();
        if reason.len() > self.limits.max_vacation_reason {
            return Err(format!(
                "vacation reason longer than the limit of {} bytes",
                self.limits.max_vacation_reason
            ));
        }
        let env = self.input.envelope;
        let sender = env.from.clone();
        let recipient = env.to.clone();
        let period = match v.period {
            Some(p) if v.seconds => p,
            Some(d) => d.saturating_mul(86400),
            None => self.limits.default_vacation_period,
        }
        .clamp(
            self.limits.min_vacation_period,
            self.limits.max_vacation_period,
        );
        let subject_given = v.subject.as_ref().map(|s| self.expand(f, s).into_owned());
        let from_given = v.from.as_ref().map(|s| self.expand(f, s).into_owned());
        let mut mine: Vec<String> = vec![recipient.to_ascii_lowercase()];
        mine.extend(env.orig_to.iter().map(|a| a.to_ascii_lowercase()));
        for a in self.expand_all(f, &v.addresses) {
            mine.extend(
                parse_addresses(&a)
                    .into_iter()
                    .map(|a| a.to_ascii_lowercase()),
            );
        }
        // RFC 5230 §4.5/§5: reasons not to answer at all.
        let why_not = || -> Option<String> {
            if sender.is_empty() {
                return Some("the sender is the null address".into());
            }
            let local = sender
                .rsplit_once('@')
                .map_or(sender.as_str(), |(l, _)| l)
                .to_ascii_lowercase();
            if local == "mailer-daemon"
                || local == "listserv"
                || local == "majordomo"
                || local.starts_with("owner-")
                || local.ends_with("-request")
            {
                return Some(format!("the sender <{sender}> is an automatic address"));
            }
            if mine.iter().any(|m| m.eq_ignore_ascii_case(&sender)) {
                return Some("the sender is the user".into());
            }
            let field = |n: &'static str| {
                self.fields
                    .iter()
                    .filter(move |x| x.name.eq_ignore_ascii_case(n))
            };
            if field("auto-submitted").any(|x| !x.value().eq_ignore_ascii_case("no")) {
                return Some("the message was sent automatically (Auto-Submitted)".into());
            }
            if field("precedence").any(|x| {
                matches!(
                    x.value().to_ascii_lowercase().as_str(),
                    "bulk" | "list" | "junk"
                )
            }) {
                return Some("the message is bulk mail (Precedence)".into());
            }
            if self.fields.iter().any(|x| {
                let n = x.name.to_ascii_lowercase();
                matches!(
                    n.as_str(),
                    "list-id"
                        | "list-help"
                        | "list-subscribe"
                        | "list-unsubscribe"
                        | "list-post"
                        | "list-owner"
                        | "list-archive"
                )
            }) {
                return Some("the message comes from a mailing list".into());
            }
            let addressed = ["to", "cc", "bcc", "resent-to", "resent-cc", "resent-bcc"]
                .iter()
                .flat_map(|n| field(n))
                .flat_map(|x| parse_addresses(&x.unfolded()))
                .any(|a| mine.iter().any(|m| m.eq_ignore_ascii_case(&a)));
            if !addressed {
                return Some("the user's address is not in To, Cc or Bcc".into());
            }
            None
        };
        if let Some(why) = why_not() {
            self.notes.push(format!("vacation: no reply: {why}"));
            return Ok(());
        }
        let subject = match &subject_given {
            Some(s) => s.clone(),
            None => match self.fields_named("subject", None).first() {
                Some(s) => format!("Auto: {}", s.value()),
                None => "Automated reply".to_string(),
            },
        };
        let handle = match &v.handle {
            Some(h) => self.expand(f, h).into_owned(),
            None => v.default_handle.clone(),
        };
        if self.env.vacation_responded(&sender, &handle, period) {
            self.notes.push(format!(
                "vacation: no reply: <{sender}> was answered within the last {period} seconds"
            ));
            return Ok(());
        }
        let from = match from_given {
            Some(f) => {
                if parse_addresses(&f)
                    .first()
                    .is_none_or(|a| !valid_address(a))
                {
                    return Err(format!("vacation: :from \"{f}\" is not a valid address"));
                }
                f
            }
            None => recipient.clone(),
        };
        let in_reply_to = self
            .fields_named("message-id", None)
            .first()
            .map(|x| x.unfolded());
        let references = match (self.fields_named("references", None).first(), &in_reply_to) {
            (Some(r), Some(id)) => Some(format!("{} {id}", r.unfolded())),
            (None, Some(id)) => Some(id.clone()),
            (Some(r), None) => Some(r.unfolded()),
            (None, None) => None,
        };
        let addresses = self.expand_all(f, &v.addresses);
        self.push_action(Action::Vacation(VacationResponse {
            to: sender,
            recipient,
            from,
            subject: decode_rfc2047(&subject),
            reason,
            mime: v.mime,
            handle,
            period,
            in_reply_to,
            references,
            addresses,
        }))
    }
}

/// The flags of an action that stores into INBOX (keep, or fileinto "INBOX").
fn inbox_store(a: &Action) -> Option<&Vec<String>> {
    match a {
        Action::Keep { flags, .. } => Some(flags),
        Action::FileInto { mailbox, flags, .. } if mailbox.eq_ignore_ascii_case("INBOX") => {
            Some(flags)
        }
        _ => None,
    }
}

fn action_name(a: &Action) -> &'static str {
    match a {
        Action::Keep { .. } => "keep",
        Action::FileInto { .. } => "fileinto",
        Action::Discard => "discard",
        Action::Redirect { .. } => "redirect",
        Action::Reject {
            extended: false, ..
        } => "reject",
        Action::Reject { extended: true, .. } => "ereject",
        Action::Vacation(_) => "vacation",
    }
}

fn first_char(s: &str, f: impl Fn(char) -> String) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => f(first) + c.as_str(),
        None => String::new(),
    }
}

/// `:content` types (RFC 5173 §5.2): "" any part, "type" its subtypes, "type/sub" exactly.
fn content_type_matches(spec: &str, ct: &str) -> bool {
    let spec = spec.to_ascii_lowercase();
    if spec.is_empty() {
        return true;
    }
    match spec.split_once('/') {
        Some(_) => spec == ct,
        None => ct.split('/').next() == Some(spec.as_str()),
    }
}
