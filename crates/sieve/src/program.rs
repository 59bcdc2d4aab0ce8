//! The checked, compiled form of a script: a flat list of instructions with jumps, so the
//! evaluator runs it in a loop without recursion whatever the script's nesting.

use crate::matching::{AddressPart, Comparator, MatchType};

/// A string of the script after `encoded-character` decoding, split where variables are
/// referenced (RFC 5229 §3) so the evaluator only concatenates.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Str {
    Lit(String),
    Tpl(Vec<Piece>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Piece {
    Lit(String),
    Var(VarRef),
    /// `${0}` .. `${9}`: the match variables of the last successful :matches/:regex.
    Match(usize),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum VarRef {
    /// Slot in the running script's own variables.
    Local(usize),
    /// A variable shared between scripts (RFC 6609 §3.4, lower-cased name).
    Global(String),
}

impl Str {
    pub(crate) fn as_lit(&self) -> Option<&str> {
        match self {
            Str::Lit(s) => Some(s),
            Str::Tpl(_) => None,
        }
    }
}

/// The key list of a match, with the regular expressions compiled once where the keys are
/// constant.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    pub keys: Vec<Str>,
    pub regexes: Vec<Option<regex::Regex>>,
}

#[derive(Debug, Clone)]
pub(crate) struct Match {
    pub comparator: Comparator,
    pub match_type: MatchType,
    pub keys: Keys,
    /// Whether this script has `variables`, so a successful :matches/:regex sets ${N}.
    pub set_match_vars: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Index {
    /// 1-based position among the fields of that name.
    pub n: usize,
    /// Count from the last field backwards.
    pub last: bool,
}

#[derive(Debug, Clone)]
pub(crate) enum Zone {
    /// The time in the zone given (`+hhmm`), or the local zone of the environment.
    Fixed(i32),
    Local,
    Original,
}

#[derive(Debug, Clone)]
pub(crate) enum BodyTransform {
    Raw,
    Text,
    Content(Vec<Str>),
}

#[derive(Debug, Clone)]
pub(crate) enum DupId {
    MessageId,
    Header(Str),
    Unique(Str),
}

#[derive(Debug, Clone)]
pub(crate) enum TestOp {
    Exists(Vec<Str>),
    Size {
        over: bool,
        limit: u64,
    },
    Header {
        names: Vec<Str>,
        m: Match,
        index: Option<Index>,
    },
    Address {
        names: Vec<Str>,
        part: AddressPart,
        m: Match,
        index: Option<Index>,
    },
    Envelope {
        parts: Vec<Str>,
        part: AddressPart,
        m: Match,
    },
    Body {
        transform: BodyTransform,
        m: Match,
    },
    Date {
        header: Str,
        zone: Zone,
        date_part: Str,
        m: Match,
        index: Option<Index>,
    },
    CurrentDate {
        zone: Zone,
        date_part: Str,
        m: Match,
    },
    String {
        sources: Vec<Str>,
        m: Match,
    },
    HasFlag {
        vars: Option<Vec<VarRef>>,
        m: Match,
    },
    MailboxExists(Vec<Str>),
    SpecialUseExists {
        mailbox: Option<Str>,
        uses: Vec<Str>,
    },
    Duplicate {
        handle: Option<Str>,
        id: DupId,
        seconds: Option<u64>,
        last: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlagOp {
    Set,
    Add,
    Remove,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Modifier {
    Lower,
    Upper,
    LowerFirst,
    UpperFirst,
    QuoteWildcard,
    QuoteRegex,
    Length,
}

impl Modifier {
    /// RFC 5229 §4.1: modifiers apply from the highest precedence down.
    pub(crate) fn precedence(self) -> u8 {
        match self {
            Modifier::Lower | Modifier::Upper => 40,
            Modifier::LowerFirst | Modifier::UpperFirst => 30,
            Modifier::QuoteWildcard | Modifier::QuoteRegex => 20,
            Modifier::Length => 10,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IncludeLocation {
    Personal,
    Global,
}

#[derive(Debug, Clone)]
pub(crate) struct VacationOp {
    pub period: Option<u64>,
    pub seconds: bool,
    pub subject: Option<Str>,
    pub from: Option<Str>,
    pub addresses: Vec<Str>,
    pub mime: bool,
    pub handle: Option<Str>,
    pub default_handle: String,
    pub reason: Str,
}

#[derive(Debug, Clone)]
pub(crate) enum Op {
    Jump(usize),
    /// Evaluate test `test`; when its result equals `jump_if`, go to `target`.
    Test {
        test: usize,
        jump_if: bool,
        target: usize,
    },
    Stop,
    Return,
    Keep {
        flags: Option<Vec<Str>>,
    },
    Discard,
    FileInto {
        mailbox: Str,
        flags: Option<Vec<Str>>,
        copy: bool,
        create: bool,
        special_use: Option<Str>,
    },
    Redirect {
        address: Str,
        copy: bool,
    },
    Reject {
        reason: Str,
        extended: bool,
    },
    Vacation(Box<VacationOp>),
    Flags {
        op: FlagOp,
        var: Option<VarRef>,
        flags: Vec<Str>,
    },
    Set {
        var: VarRef,
        value: Str,
        modifiers: Vec<Modifier>,
    },
    AddHeader {
        last: bool,
        name: Str,
        value: Str,
    },
    DeleteHeader {
        index: Option<Index>,
        name: Str,
        m: Option<Match>,
    },
    Include {
        location: IncludeLocation,
        once: bool,
        optional: bool,
        name: String,
    },
}
