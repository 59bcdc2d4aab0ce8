//! A search program: the client's search keys compiled once per command into a tree that
//! evaluates against one message at a time.
//!
//! Every node knows the cheapest [`Level`] of data it needs: flags, sizes, dates, sets and
//! mod-sequences come from the in-memory index; header keys need the message's header; BODY
//! and TEXT need the whole message and its MIME structure. Evaluation is three-valued: with
//! only the index at hand a header key is [`Tri::Unknown`], and `AND`/`OR`/`NOT` combine
//! unknowns the way SQL does, so a message whose cheap keys already decide it never has its
//! bytes read.

use crate::recent::RecentUids;
use crate::selected::View;
use ringmail_mime::search_header::SearchField;
use ringmail_mime::search_text::{any_haystack, Scope};
use ringmail_mime::MessageMeta;
use ringmail_proto::dates::days_from_civil;
use ringmail_proto::parser::{Date, SearchKey};
use ringmail_store::{flag, to_ranges, MessageEntry};

use super::body;
use super::header::{fields, is_plain};
use super::scanner::Finder;

/// How much of a message a key needs, cheapest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// The index entry (flags, size, dates, UID, modseq).
    Index,
    /// The message header.
    Header,
    /// The whole message and its MIME structure.
    Full,
}

/// A truth value that may still depend on data not read yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tri {
    /// Matches.
    True,
    /// Does not match.
    False,
    /// Needs more of the message to decide.
    Unknown,
}

impl Tri {
    fn from_bool(b: bool) -> Tri {
        if b {
            Tri::True
        } else {
            Tri::False
        }
    }
    fn not(self) -> Tri {
        match self {
            Tri::True => Tri::False,
            Tri::False => Tri::True,
            Tri::Unknown => Tri::Unknown,
        }
    }
}

/// What a date key compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DateOp {
    Before,
    On,
    Since,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct DateTest {
    op: DateOp,
    /// Days since 1970-01-01.
    day: i64,
}

impl DateTest {
    fn new(op: DateOp, d: Date) -> DateTest {
        let day = days_from_civil(i64::from(d.year), u32::from(d.month), u32::from(d.day));
        DateTest { op, day }
    }
    pub(super) fn matches(self, day: i64) -> bool {
        match self.op {
            DateOp::Before => day < self.day,
            DateOp::On => day == self.day,
            DateOp::Since => day >= self.day,
        }
    }
    /// [`DateTest::matches`] for the day of `secs` (seconds since the epoch, UTC days),
    /// compared against the day's first second instead of dividing every message's date.
    fn matches_secs(self, secs: i64) -> bool {
        let (lo, hi) = self.secs();
        secs >= lo && secs <= hi
    }

    /// The seconds since the epoch whose UTC day matches, as the inclusive bounds of one
    /// range (`lo > hi` when none does).
    pub(super) fn secs(self) -> (i64, i64) {
        let start = self.day.saturating_mul(86_400);
        match self.op {
            DateOp::Before => match start.checked_sub(1) {
                Some(last) => (i64::MIN, last),
                None => (i64::MAX, i64::MIN),
            },
            DateOp::On => match start.saturating_add(86_400).checked_sub(1) {
                Some(last) => (start, last),
                None => (i64::MAX, i64::MIN),
            },
            DateOp::Since => (start, i64::MAX),
        }
    }
}

#[derive(Debug, Clone)]
pub(super) enum Node {
    Const(bool),
    /// All of `mask` set (`want`) or none of it set (`!want`).
    Flags {
        mask: u8,
        want: bool,
    },
    /// Keyword number `index` of [`Program::keywords`] set or not.
    Keyword {
        index: usize,
        want: bool,
    },
    Larger(u64),
    Smaller(u64),
    Internal(DateTest),
    Saved(DateTest),
    Sent(DateTest),
    /// INTERNALDATE at or after this instant (YOUNGER).
    InternalFrom(i64),
    /// INTERNALDATE at or before this instant (OLDER).
    InternalUntil(i64),
    /// Message numbers, as sorted inclusive ranges: `1:*` over a million messages is one
    /// range, not 4 MB, however many such keys a client sends.
    Msns(Vec<(u32, u32)>),
    /// UIDs, as sorted inclusive ranges.
    Uids(Vec<(u32, u32)>),
    /// `\Recent` for the session.
    Recent(RecentUids),
    ModSeq(u64),
    EmailId(Option<u64>),
    /// A header field (lowercase name) containing the string. `slot`: its key in
    /// [`Program::indexed`] when the store keeps the field in memory.
    Header {
        name: Vec<u8>,
        finder: Finder,
        slot: Option<usize>,
    },
    /// An address field (lowercase name) whose normalised address list contains the string.
    Address {
        name: Vec<u8>,
        finder: Finder,
        slot: Option<usize>,
    },
    Body(Finder),
    Text(Finder),
    Not(Box<Node>),
    And(Vec<Node>),
    Or(Box<Node>, Box<Node>),
}

/// One message as far as it has been read.
pub struct Message<'a> {
    /// Its message number in the session's view.
    pub msn: u32,
    /// Its index entry.
    pub entry: &'a MessageEntry,
    /// Bit `i` set when keyword `i` of [`Program::keywords`] is set on it.
    pub keywords: u64,
    /// What of its bytes has been read.
    pub content: Content<'a>,
    /// The verdicts of [`Program::indexed`] keys, from the mailbox's header-search values:
    /// one row per key, and this message's column in them.
    pub indexed: Option<(&'a [Vec<bool>], usize)>,
}

/// The message data read so far.
#[derive(Clone, Copy)]
pub enum Content<'a> {
    /// Nothing but the index entry.
    None,
    /// The header block.
    Header(&'a [u8]),
    /// The whole message, its header block and its MIME structure.
    Full {
        /// The raw message.
        raw: &'a [u8],
        /// Its header block (a prefix of `raw`).
        header: &'a [u8],
        /// Its MIME structure.
        meta: &'a MessageMeta,
    },
    /// The searchable text stored with the message (`ringmail_mime::search_text`), which
    /// BODY and TEXT scan instead of the message, and its header block when a header key
    /// needed it.
    Stored {
        /// The header block, if it was read.
        header: Option<&'a [u8]>,
        /// The stored text.
        text: &'a [u8],
        /// The message, at least as far as the text's references reach
        /// (`search_text::message_extent`).
        message: &'a [u8],
    },
}

impl<'a> Content<'a> {
    fn header(&self) -> Option<&'a [u8]> {
        match *self {
            Content::None => None,
            Content::Header(h) => Some(h),
            Content::Full { header, .. } => Some(header),
            Content::Stored { header, .. } => header,
        }
    }
}

/// A compiled search program.
#[derive(Debug, Clone)]
pub struct Program {
    root: Node,
    /// Keywords the program tests, in the order of [`Message::keywords`] bits.
    pub keywords: Vec<String>,
    /// A MODSEQ key is present: responses carry the highest mod-sequence (RFC 7162).
    pub uses_modseq: bool,
    /// The most any key needs.
    pub level: Level,
    /// Some key needs the header only.
    header_keys: bool,
    /// The header keys on fields the store keeps in memory, by slot.
    indexed: Vec<IndexedKey>,
}

/// A header key the mailbox's header-search values can answer (see [`super::fields`]).
#[derive(Debug, Clone)]
pub struct IndexedKey {
    /// The field and form it compares.
    pub field: SearchField,
    /// The search string.
    pub finder: Finder,
}

/// The client asked for more keywords in one search than the evaluator tracks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooComplex;

/// What compiling needs to know about the session.
pub struct Context<'a> {
    /// The session's message numbering.
    pub view: &'a View,
    /// UIDs saved by `SEARCH RETURN (SAVE)`, for `$`.
    pub saved: &'a [u32],
    /// Seconds since the epoch now (for OLDER / YOUNGER).
    pub now: i64,
    /// The UIDs `\Recent` for the session (none under IMAP4rev2).
    pub recent: &'a RecentUids,
}

impl Program {
    /// Compiles search keys (an implicit AND).
    pub fn compile(keys: &[SearchKey<'_>], cx: &Context<'_>) -> Result<Program, TooComplex> {
        let mut program = Program {
            root: Node::Const(true),
            keywords: Vec::new(),
            uses_modseq: false,
            level: Level::Index,
            header_keys: false,
            indexed: Vec::new(),
        };
        let nodes = keys
            .iter()
            .map(|k| program.node(k, cx))
            .collect::<Result<Vec<_>, _>>()?;
        let mut root = Node::And(nodes);
        sort_by_cost(&mut root);
        program.level = level(&root);
        program.header_keys = has_level(&root, Level::Header);
        program.root = root;
        Ok(program)
    }

    fn node(&mut self, key: &SearchKey<'_>, cx: &Context<'_>) -> Result<Node, TooComplex> {
        use SearchKey as K;
        let flags = |mask: u8, want: bool| Node::Flags { mask, want };
        Ok(match key {
            K::All | K::SaveDateSupported => Node::Const(true),
            // \Recent is the session's (see `imap::recent`); NEW is RECENT UNSEEN.
            K::Recent => Node::Recent(cx.recent.clone()),
            K::New => Node::And(vec![
                Node::Recent(cx.recent.clone()),
                flags(flag::SEEN, false),
            ]),
            K::Old => Node::Not(Box::new(Node::Recent(cx.recent.clone()))),
            K::Answered => flags(flag::ANSWERED, true),
            K::Deleted => flags(flag::DELETED, true),
            K::Draft => flags(flag::DRAFT, true),
            K::Flagged => flags(flag::FLAGGED, true),
            K::Seen => flags(flag::SEEN, true),
            K::Unanswered => flags(flag::ANSWERED, false),
            K::Undeleted => flags(flag::DELETED, false),
            K::Undraft => flags(flag::DRAFT, false),
            K::Unflagged => flags(flag::FLAGGED, false),
            K::Unseen => flags(flag::SEEN, false),
            K::Keyword(k) => self.keyword(k, true)?,
            K::Unkeyword(k) => self.keyword(k, false)?,
            K::Larger(n) => Node::Larger(*n),
            K::Smaller(n) => Node::Smaller(*n),
            K::Before(d) => Node::Internal(DateTest::new(DateOp::Before, *d)),
            K::On(d) => Node::Internal(DateTest::new(DateOp::On, *d)),
            K::Since(d) => Node::Internal(DateTest::new(DateOp::Since, *d)),
            K::SavedBefore(d) => Node::Saved(DateTest::new(DateOp::Before, *d)),
            K::SavedOn(d) => Node::Saved(DateTest::new(DateOp::On, *d)),
            K::SavedSince(d) => Node::Saved(DateTest::new(DateOp::Since, *d)),
            K::SentBefore(d) => Node::Sent(DateTest::new(DateOp::Before, *d)),
            K::SentOn(d) => Node::Sent(DateTest::new(DateOp::On, *d)),
            K::SentSince(d) => Node::Sent(DateTest::new(DateOp::Since, *d)),
            K::Older(secs) => Node::InternalUntil(cx.now.saturating_sub(clamp_secs(*secs))),
            K::Younger(secs) => Node::InternalFrom(cx.now.saturating_sub(clamp_secs(*secs))),
            K::SequenceSet(set) => Node::Msns(to_ranges(
                cx.view
                    .resolve(set, false, cx.saved)
                    .into_iter()
                    .map(|(msn, _)| msn),
            )),
            K::Uid(set) => Node::Uids(to_ranges(
                cx.view
                    .resolve(set, true, cx.saved)
                    .into_iter()
                    .map(|(_, uid)| uid),
            )),
            K::ModSeq { modseq, .. } => {
                self.uses_modseq = true;
                Node::ModSeq(*modseq)
            }
            K::EmailId(id) => Node::EmailId(
                id.strip_prefix('M')
                    .and_then(|hex| u64::from_str_radix(hex, 16).ok()),
            ),
            // THREADID is not assigned by this server (FETCH THREADID answers NIL).
            K::ThreadId(_) => Node::Const(false),
            K::Bcc(s) => self.address(b"bcc", s),
            K::Cc(s) => self.address(b"cc", s),
            K::From(s) => self.address(b"from", s),
            K::To(s) => self.address(b"to", s),
            K::Subject(s) => self.header(b"subject", s),
            K::Header(name, s) => self.header(&name.to_ascii_lowercase(), s),
            K::Body(s) => Node::Body(Finder::new(s)),
            K::Text(s) => Node::Text(Finder::new(s)),
            K::Not(inner) => Node::Not(Box::new(self.node(inner, cx)?)),
            K::Or(a, b) => Node::Or(Box::new(self.node(a, cx)?), Box::new(self.node(b, cx)?)),
            K::And(keys) => Node::And(
                keys.iter()
                    .map(|k| self.node(k, cx))
                    .collect::<Result<_, _>>()?,
            ),
        })
    }

    fn keyword(&mut self, name: &str, want: bool) -> Result<Node, TooComplex> {
        let index = match self
            .keywords
            .iter()
            .position(|k| k.eq_ignore_ascii_case(name))
        {
            Some(i) => i,
            None if self.keywords.len() < 64 => {
                self.keywords.push(name.to_string());
                self.keywords.len() - 1
            }
            None => return Err(TooComplex),
        };
        Ok(Node::Keyword { index, want })
    }

    fn header(&mut self, name: &[u8], needle: &[u8]) -> Node {
        let finder = Finder::new(needle);
        Node::Header {
            name: name.to_vec(),
            slot: self.slot(SearchField::header(name), &finder),
            finder,
        }
    }

    /// FROM, TO, CC and BCC: matched against the addresses, not the raw field, so that
    /// comments and folding neither hide a match (`<user (comment)@ domain.org>` is
    /// `user@domain.org`) nor fake one. HEADER FROM still searches the field as written.
    fn address(&mut self, name: &[u8], needle: &[u8]) -> Node {
        let finder = Finder::new(needle);
        Node::Address {
            name: name.to_vec(),
            slot: self.slot(SearchField::address(name), &finder),
            finder,
        }
    }

    fn slot(&mut self, field: Option<SearchField>, finder: &Finder) -> Option<usize> {
        let field = field?;
        self.indexed.push(IndexedKey {
            field,
            finder: finder.clone(),
        });
        Some(self.indexed.len() - 1)
    }

    /// The compiled tree.
    pub(super) fn root(&self) -> &Node {
        &self.root
    }

    /// Whether every key can be decided from the mailbox's columns alone (flags, keywords,
    /// sizes, INTERNALDATE, message numbers, UIDs; with `sent_days`, the sent days too):
    /// then [`super::column_scan`] evaluates it over whole columns instead of message by
    /// message.
    pub fn is_columnar(&self, sent_days: bool) -> bool {
        super::column_scan::is_columnar(&self.root, sent_days)
    }

    /// The header keys that the mailbox's header-search values answer, by slot.
    pub fn indexed(&self) -> &[IndexedKey] {
        &self.indexed
    }

    /// Whether some key needs only the header, so reading it first may save a full read.
    pub fn has_header_keys(&self) -> bool {
        self.header_keys
    }

    /// Evaluates the program against what has been read of a message.
    pub fn eval(&self, m: &Message<'_>) -> Tri {
        eval(&self.root, m)
    }

    /// The keyword bits of a message whose keywords are `names`.
    pub fn keyword_bits<'k>(&self, names: impl IntoIterator<Item = &'k str>) -> u64 {
        let mut bits = 0u64;
        for name in names {
            for (i, k) in self.keywords.iter().enumerate() {
                if k.eq_ignore_ascii_case(name) {
                    bits |= 1 << i;
                }
            }
        }
        bits
    }
}

fn clamp_secs(secs: u64) -> i64 {
    i64::try_from(secs).unwrap_or(i64::MAX)
}

fn level(node: &Node) -> Level {
    match node {
        Node::Header { .. } | Node::Address { .. } | Node::Sent(_) => Level::Header,
        Node::Body(_) | Node::Text(_) => Level::Full,
        Node::Not(inner) => level(inner),
        Node::Or(a, b) => level(a).max(level(b)),
        Node::And(nodes) => nodes.iter().map(level).max().unwrap_or(Level::Index),
        _ => Level::Index,
    }
}

fn has_level(node: &Node, want: Level) -> bool {
    match node {
        Node::Not(inner) => has_level(inner, want),
        Node::Or(a, b) => has_level(a, want) || has_level(b, want),
        Node::And(nodes) => nodes.iter().any(|n| has_level(n, want)),
        leaf => level(leaf) == want,
    }
}

/// Orders AND and OR operands cheapest first so evaluation stops before the expensive ones.
fn sort_by_cost(node: &mut Node) {
    match node {
        Node::And(nodes) => {
            nodes.iter_mut().for_each(sort_by_cost);
            nodes.sort_by_key(level);
        }
        Node::Or(a, b) => {
            sort_by_cost(a);
            sort_by_cost(b);
            // OR is symmetric: the cheaper side first, so it can decide alone.
            if level(b) < level(a) {
                std::mem::swap(a, b);
            }
        }
        Node::Not(inner) => sort_by_cost(inner),
        _ => {}
    }
}

/// Whether `x` lies in one of the sorted, disjoint inclusive `ranges`.
fn in_ranges(ranges: &[(u32, u32)], x: u32) -> bool {
    let i = ranges.partition_point(|&(_, hi)| hi < x);
    ranges.get(i).is_some_and(|&(lo, _)| lo <= x)
}

fn day_of(secs: i64) -> i64 {
    secs.div_euclid(86_400)
}

fn eval(node: &Node, m: &Message<'_>) -> Tri {
    let e = m.entry;
    match node {
        Node::Const(b) => Tri::from_bool(*b),
        Node::Flags { mask, want } => Tri::from_bool(if *want {
            e.flags & mask == *mask
        } else {
            e.flags & mask == 0
        }),
        Node::Keyword { index, want } => {
            let set = m
                .keywords
                .checked_shr(*index as u32)
                .is_some_and(|b| b & 1 == 1);
            Tri::from_bool(set == *want)
        }
        Node::Larger(n) => Tri::from_bool(u64::from(e.size) > *n),
        Node::Smaller(n) => Tri::from_bool(u64::from(e.size) < *n),
        Node::Internal(t) => Tri::from_bool(t.matches_secs(e.internal_date)),
        Node::Saved(t) => Tri::from_bool(t.matches_secs(e.save_date)),
        Node::InternalFrom(t) => Tri::from_bool(e.internal_date >= *t),
        Node::InternalUntil(t) => Tri::from_bool(e.internal_date <= *t),
        Node::Msns(set) => Tri::from_bool(in_ranges(set, m.msn)),
        Node::Uids(set) => Tri::from_bool(in_ranges(set, e.uid)),
        Node::Recent(set) => Tri::from_bool(set.contains(e.uid)),
        Node::ModSeq(n) => Tri::from_bool(e.modseq >= *n),
        Node::EmailId(id) => Tri::from_bool(*id == Some(e.email_id)),
        Node::Sent(t) => match m.content.header() {
            None => Tri::Unknown,
            Some(h) => Tri::from_bool(t.matches(
                ringmail_mime::search_header::sent_day(h).unwrap_or(day_of(e.internal_date)),
            )),
        },
        Node::Header {
            slot: Some(slot), ..
        }
        | Node::Address {
            slot: Some(slot), ..
        } if m.indexed.is_some() => m
            .indexed
            .and_then(|(rows, column)| rows.get(*slot)?.get(column).copied())
            .map_or(Tri::Unknown, Tri::from_bool),
        Node::Header { name, finder, .. } => match m.content.header() {
            None => Tri::Unknown,
            Some(h) => Tri::from_bool(header_matches(h, name, finder)),
        },
        Node::Address { name, finder, .. } => match m.content.header() {
            None => Tri::Unknown,
            Some(h) => Tri::from_bool(
                fields(h)
                    .filter(|f| f.name.eq_ignore_ascii_case(name))
                    .any(|f| finder.is_match_text(&ringmail_mime::address_search_text(f.value))),
            ),
        },
        Node::Body(finder) => match m.content {
            Content::Full { raw, meta, .. } => Tri::from_bool(body::contains(finder, meta, raw)),
            Content::Stored { text, message, .. } => stored(text, message, Scope::Body, finder),
            _ => Tri::Unknown,
        },
        Node::Text(finder) => match m.content {
            Content::Full { raw, header, meta } => {
                Tri::from_bool(body::text_contains(finder, header, meta, raw))
            }
            Content::Stored { text, message, .. } => stored(text, message, Scope::Text, finder),
            _ => Tri::Unknown,
        },
        Node::Not(inner) => eval(inner, m).not(),
        Node::And(nodes) => {
            let mut result = Tri::True;
            for n in nodes {
                match eval(n, m) {
                    Tri::False => return Tri::False,
                    Tri::Unknown => result = Tri::Unknown,
                    Tri::True => {}
                }
            }
            result
        }
        // A true left side decides: the right one (perhaps a header or body scan) is not run.
        Node::Or(a, b) => match eval(a, m) {
            Tri::True => Tri::True,
            left => match (left, eval(b, m)) {
                (_, Tri::True) => Tri::True,
                (Tri::False, Tri::False) => Tri::False,
                _ => Tri::Unknown,
            },
        },
    }
}

/// BODY or TEXT over a stored searchable text: each haystack on its own, as the parts of
/// the message are searched; unknown when the text is of a form this version does not read.
fn stored(text: &[u8], message: &[u8], scope: Scope, finder: &Finder) -> Tri {
    any_haystack(text, message, scope, |h| finder.is_match(h)).map_or(Tri::Unknown, Tri::from_bool)
}

/// Whether any `name` field of the header contains the string; an empty string matches
/// any message that has the field (RFC 9051 section 6.4.4, HEADER).
fn header_matches(header: &[u8], name: &[u8], finder: &Finder) -> bool {
    fields(header)
        .filter(|f| f.name.eq_ignore_ascii_case(name))
        .any(|f| {
            if is_plain(f.value) && !finder.needs_unicode() {
                finder.is_match(f.value)
            } else {
                finder.is_match_text(&ringmail_mime::decode_header_value(f.value))
            }
        })
}

/// The program of `SEARCH text`, parsed as a client's command line is (the search tests'
/// way to write a program).
#[cfg(test)]
pub(crate) fn compile_text(text: &str, cx: &Context<'_>) -> Program {
    use ringmail_proto::parser::{CommandBody, CommandReader, Limits, Next};
    let line = format!("t SEARCH {text}\r\n");
    let mut reader = CommandReader::new(Limits::default());
    reader.feed(line.as_bytes());
    let Next::Command(command) = reader.next() else {
        panic!("{text} does not parse");
    };
    let CommandBody::Search { criteria, .. } = command.body else {
        panic!("{text} is not a SEARCH");
    };
    Program::compile(&criteria, cx).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_tests_on_seconds_agree_with_days() {
        let day = |y, m, d| Date {
            year: y,
            month: m,
            day: d,
        };
        for d in [day(1969, 12, 31), day(1970, 1, 1), day(2024, 2, 29)] {
            for op in [DateOp::Before, DateOp::On, DateOp::Since] {
                let t = DateTest::new(op, d);
                let start = t.day * 86_400;
                for secs in [
                    start - 86_401,
                    start - 1,
                    start,
                    start + 1,
                    start + 86_399,
                    start + 86_400,
                ] {
                    assert_eq!(
                        t.matches_secs(secs),
                        t.matches(day_of(secs)),
                        "{op:?} {secs}"
                    );
                }
            }
        }
    }
    use ringmail_proto::parser::SearchKey as K;
    use std::borrow::Cow;

    fn entry(flags: u8) -> MessageEntry {
        MessageEntry {
            modseq: 1,
            internal_date: 0,
            save_date: 0,
            email_id: 7,
            uid: 1,
            kwset: 0,
            size: 100,
            segment: 0,
            offset: 0,
            meta_len: 0,
            flags,
        }
    }

    fn compile(keys: &[SearchKey<'_>]) -> Program {
        let view = View {
            uids: vec![1],
            gone: Vec::new(),
        };
        let cx = Context {
            view: &view,
            saved: &[],
            now: 0,
            recent: &RecentUids::default(),
        };
        Program::compile(keys, &cx).unwrap()
    }

    fn eval_with(p: &Program, flags: u8, header: Option<&[u8]>) -> Tri {
        let e = entry(flags);
        p.eval(&Message {
            msn: 1,
            entry: &e,
            keywords: 0,
            content: header.map_or(Content::None, Content::Header),
            indexed: None,
        })
    }

    #[test]
    fn recent_new_and_old_follow_the_sessions_recent_uids() {
        let view = View {
            uids: vec![1],
            gone: Vec::new(),
        };
        let mut recent = RecentUids::default();
        recent.push((1, 2));
        for (uid_recent, key, seen, want) in [
            (true, K::Recent, flag::SEEN, Tri::True),
            (true, K::New, 0, Tri::True),
            (true, K::New, flag::SEEN, Tri::False),
            (true, K::Old, 0, Tri::False),
            (false, K::Recent, 0, Tri::False),
            (false, K::New, 0, Tri::False),
            (false, K::Old, 0, Tri::True),
        ] {
            let none = RecentUids::default();
            let cx = Context {
                view: &view,
                saved: &[],
                now: 0,
                recent: if uid_recent { &recent } else { &none },
            };
            let p = Program::compile(std::slice::from_ref(&key), &cx).unwrap();
            assert_eq!(p.level, Level::Index);
            assert_eq!(eval_with(&p, seen, None), want, "{key:?} {uid_recent}");
        }
    }

    #[test]
    fn sets_are_kept_as_ranges() {
        let ranges = [(2, 4), (9, 9), (20, 30)];
        for (x, want) in [
            (1, false),
            (2, true),
            (3, true),
            (4, true),
            (5, false),
            (9, true),
            (10, false),
            (25, true),
            (31, false),
        ] {
            assert_eq!(in_ranges(&ranges, x), want, "{x}");
        }
        assert!(!in_ranges(&[], 1));
    }

    #[test]
    fn address_keys_match_the_addresses_not_the_raw_field() {
        let header: &[u8] = b"From: Pete(A nice \\) chap) <pete(his account)@silly.test>\r\n\
            To: A Group(Some people):Chris Jones <c@(Chris's host.)public.example>;\r\n\
            Cc: =?utf-8?q?J=C3=B6rg?= <j@x.de>\r\n\r\n";
        let matches = |key: SearchKey<'_>| eval_with(&compile(&[key]), 0, Some(header));
        let s = |v: &'static str| Cow::Borrowed(v.as_bytes());
        assert_eq!(matches(K::From(s("pete@silly.test"))), Tri::True);
        assert_eq!(matches(K::From(s("pete <pete@"))), Tri::True);
        assert_eq!(matches(K::From(s("his account"))), Tri::False);
        assert_eq!(
            matches(K::To(s("a group: chris jones <c@public"))),
            Tri::True
        );
        assert_eq!(matches(K::Cc(s("jörg <j@x.de>"))), Tri::True);
        assert_eq!(matches(K::Bcc(s(""))), Tri::False, "no Bcc field");
        assert_eq!(matches(K::Cc(s(""))), Tri::True);
        // HEADER still looks at the field as written.
        let raw = K::Header(s("From"), s("his account"));
        assert_eq!(matches(raw), Tri::True);
        assert_eq!(compile(&[K::To(s("x"))]).level, Level::Header);
    }

    #[test]
    fn cheap_keys_decide_before_bytes_are_read() {
        let subject = || K::Subject(Cow::Borrowed(b"x"));
        let p = compile(&[K::Or(Box::new(K::Flagged), Box::new(subject()))]);
        assert_eq!(p.level, Level::Header);
        assert_eq!(eval_with(&p, flag::FLAGGED, None), Tri::True);
        assert_eq!(eval_with(&p, 0, None), Tri::Unknown);
        assert_eq!(eval_with(&p, 0, Some(b"Subject: X\r\n\r\n")), Tri::True);
        assert_eq!(eval_with(&p, 0, Some(b"Subject: y\r\n\r\n")), Tri::False);

        let p = compile(&[K::Seen, K::Not(Box::new(subject()))]);
        assert_eq!(
            eval_with(&p, 0, None),
            Tri::False,
            "AND stops at a false flag"
        );
        assert_eq!(eval_with(&p, flag::SEEN, None), Tri::Unknown);
        assert_eq!(
            eval_with(&p, flag::SEEN, Some(b"Subject: x\r\n\r\n")),
            Tri::False
        );

        // The cheap side of an OR is tried first wherever the client wrote it.
        let p = compile(&[K::Or(Box::new(subject()), Box::new(K::Flagged))]);
        assert!(
            matches!(&p.root, Node::And(n) if matches!(&n[..], [Node::Or(a, _)] if matches!(**a, Node::Flags { .. })))
        );
        assert_eq!(eval_with(&p, flag::FLAGGED, None), Tri::True);

        let p = compile(&[K::Body(Cow::Borrowed(b"x")), K::Larger(1000)]);
        assert_eq!(p.level, Level::Full);
        assert_eq!(eval_with(&p, 0, None), Tri::False, "size decides first");
    }
}
