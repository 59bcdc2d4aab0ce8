//! The syntax tree of a client command.
//!
//! Every value borrows from the reader's buffer where it can: atoms and literals are
//! `&'a` slices; quoted strings are borrowed unless they contain a `\` escape, which is why
//! strings are [`Cow`]s. Nothing here is decoded beyond the IMAP grammar: mailbox names are
//! the raw bytes the client sent (modified UTF-7, or UTF-8 after `ENABLE UTF8=ACCEPT`); the
//! session decodes them with [`super::mutf7`].

use std::borrow::Cow;

/// An `astring` / `string` / `nstring` value: the bytes after unquoting or of the literal.
pub type AString<'a> = Cow<'a, [u8]>;

/// A complete command: its tag and what it asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command<'a> {
    /// The tag the client chose; the tagged response must repeat it.
    pub tag: &'a str,
    /// The command itself.
    pub body: CommandBody<'a>,
}

/// A mailbox name as sent by the client. `INBOX` in any letter case is normalised to
/// `INBOX` (RFC 9051 §5.1); other names are kept byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox<'a>(pub Cow<'a, [u8]>);

impl Mailbox<'_> {
    /// True for the (case-normalised) INBOX.
    pub fn is_inbox(&self) -> bool {
        self.0.as_ref() == b"INBOX"
    }
    /// The raw name bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Every command of RFC 9051 / RFC 3501 and of the extensions ringmail supports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandBody<'a> {
    /// `CAPABILITY`
    Capability,
    /// `NOOP`
    Noop,
    /// `LOGOUT`
    Logout,
    /// `STARTTLS`
    StartTls,
    /// `AUTHENTICATE mech [initial-response]` (SASL-IR).
    Authenticate {
        /// The SASL mechanism name, as sent (compare case-insensitively).
        mechanism: &'a str,
        /// The SASL-IR initial response, already base64-decoded; `=` gives `Some(vec![])`.
        initial: Option<Vec<u8>>,
    },
    /// `LOGIN user password`
    Login {
        /// The user name.
        user: AString<'a>,
        /// The password.
        password: AString<'a>,
    },
    /// `ENABLE cap...`
    Enable(Vec<&'a str>),
    /// `ID NIL` (None) or `ID (key value ...)`; values may be NIL.
    Id(Option<Vec<(AString<'a>, Option<AString<'a>>)>>),
    /// `NAMESPACE`
    Namespace,
    /// `IDLE`; the session then reads `DONE` with [`super::CommandReader::next_line`].
    Idle,
    /// `SELECT mailbox [(CONDSTORE | QRESYNC (...))]`
    Select {
        /// The mailbox.
        mailbox: Mailbox<'a>,
        /// CONDSTORE / QRESYNC parameters.
        params: SelectParams<'a>,
    },
    /// `EXAMINE mailbox [(...)]`, the read-only SELECT.
    Examine {
        /// The mailbox.
        mailbox: Mailbox<'a>,
        /// CONDSTORE / QRESYNC parameters.
        params: SelectParams<'a>,
    },
    /// `CREATE mailbox [(USE (\Attr ...))]`
    Create {
        /// The mailbox.
        mailbox: Mailbox<'a>,
        /// CREATE-SPECIAL-USE attributes, backslash included (`\Drafts`).
        special_use: Vec<&'a str>,
    },
    /// `DELETE mailbox`
    Delete(Mailbox<'a>),
    /// `RENAME from to`
    Rename {
        /// Existing name.
        from: Mailbox<'a>,
        /// New name.
        to: Mailbox<'a>,
    },
    /// `SUBSCRIBE mailbox`
    Subscribe(Mailbox<'a>),
    /// `UNSUBSCRIBE mailbox`
    Unsubscribe(Mailbox<'a>),
    /// `LIST [(select-opts)] reference (pattern | (patterns)) [RETURN (opts)]`
    List {
        /// LIST-EXTENDED selection options.
        selection: Vec<ListSelect>,
        /// The reference name (often empty).
        reference: Mailbox<'a>,
        /// One or more patterns (with `%` and `*` wildcards).
        patterns: Vec<AString<'a>>,
        /// LIST-EXTENDED return options (incl. LIST-STATUS).
        returns: Vec<ListReturn>,
    },
    /// `LSUB reference pattern`
    Lsub {
        /// The reference name.
        reference: Mailbox<'a>,
        /// The pattern.
        pattern: AString<'a>,
    },
    /// `STATUS mailbox (items)`
    Status {
        /// The mailbox.
        mailbox: Mailbox<'a>,
        /// Requested items.
        items: Vec<StatusItem>,
    },
    /// `APPEND mailbox [flags] [date] data` (MULTIAPPEND: several messages).
    Append {
        /// The target mailbox.
        mailbox: Mailbox<'a>,
        /// One message or more (MULTIAPPEND).
        messages: Vec<AppendMessage<'a>>,
    },
    /// `CHECK`
    Check,
    /// `CLOSE`
    Close,
    /// `UNSELECT`
    Unselect,
    /// `EXPUNGE`
    Expunge,
    /// `UID EXPUNGE set` (UIDPLUS)
    UidExpunge(SequenceSet<'a>),
    /// `[UID] SEARCH [RETURN (...)] [CHARSET x] keys`
    Search {
        /// UID SEARCH.
        uid: bool,
        /// ESEARCH return options; `None` = classic SEARCH response.
        ret: Option<Vec<SearchReturn>>,
        /// The CHARSET argument.
        charset: Option<AString<'a>>,
        /// The criteria; all must match (implicit AND).
        criteria: Vec<SearchKey<'a>>,
    },
    /// `[UID] FETCH set items [(modifiers)]`
    Fetch {
        /// UID FETCH.
        uid: bool,
        /// Message numbers or UIDs.
        set: SequenceSet<'a>,
        /// Requested attributes, macros (ALL, FAST, FULL) expanded.
        attrs: Vec<FetchAttr<'a>>,
        /// CONDSTORE / QRESYNC modifiers.
        modifiers: FetchModifiers,
    },
    /// `[UID] STORE set [(UNCHANGEDSINCE n)] (+|-)FLAGS[.SILENT] flags`
    Store {
        /// UID STORE.
        uid: bool,
        /// Message numbers or UIDs.
        set: SequenceSet<'a>,
        /// CONDSTORE `UNCHANGEDSINCE`.
        unchanged_since: Option<u64>,
        /// Replace, add or remove.
        mode: StoreMode,
        /// `.SILENT`: no untagged FETCH.
        silent: bool,
        /// The flags.
        flags: Vec<Flag<'a>>,
    },
    /// `[UID] COPY set mailbox`
    Copy {
        /// UID COPY.
        uid: bool,
        /// Message numbers or UIDs.
        set: SequenceSet<'a>,
        /// Target mailbox.
        mailbox: Mailbox<'a>,
    },
    /// `[UID] MOVE set mailbox`
    Move {
        /// UID MOVE.
        uid: bool,
        /// Message numbers or UIDs.
        set: SequenceSet<'a>,
        /// Target mailbox.
        mailbox: Mailbox<'a>,
    },
    /// `[UID] SORT [RETURN (...)] (criteria) charset keys` (RFC 5256, RFC 5267 ESORT)
    Sort {
        /// UID SORT.
        uid: bool,
        /// ESORT return options.
        ret: Option<Vec<SearchReturn>>,
        /// Sort criteria, most significant first.
        criteria: Vec<SortCriterion>,
        /// The charset.
        charset: AString<'a>,
        /// Search criteria (implicit AND).
        keys: Vec<SearchKey<'a>>,
    },
    /// `[UID] THREAD algorithm charset keys` (RFC 5256)
    Thread {
        /// UID THREAD.
        uid: bool,
        /// The threading algorithm.
        algorithm: ThreadAlgorithm,
        /// The charset.
        charset: AString<'a>,
        /// Search criteria (implicit AND).
        keys: Vec<SearchKey<'a>>,
    },
    /// `GETQUOTA root`
    GetQuota(AString<'a>),
    /// `GETQUOTAROOT mailbox`
    GetQuotaRoot(Mailbox<'a>),
    /// `SETQUOTA root (resource limit ...)`
    SetQuota {
        /// The quota root.
        root: AString<'a>,
        /// (resource name, limit) pairs; names as sent (`STORAGE`, `MESSAGE`, ...).
        limits: Vec<(&'a str, u64)>,
    },
}

/// SELECT / EXAMINE parameters (RFC 7162).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SelectParams<'a> {
    /// `(CONDSTORE)`
    pub condstore: bool,
    /// `(QRESYNC (...))`
    pub qresync: Option<QResync<'a>>,
}

/// The QRESYNC select parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QResync<'a> {
    /// The UIDVALIDITY the client knows.
    pub uidvalidity: u32,
    /// The last known mod-sequence.
    pub modseq: u64,
    /// UIDs the client knows.
    pub known_uids: Option<SequenceSet<'a>>,
    /// (message numbers, matching UIDs).
    pub seq_match: Option<(SequenceSet<'a>, SequenceSet<'a>)>,
}

/// A message number or UID in a set; `*` is the largest in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqNum {
    /// A number (never 0).
    Value(u32),
    /// `*`
    Star,
}

impl SeqNum {
    /// The number, with `*` standing for `largest`.
    pub fn resolve(self, largest: u32) -> u32 {
        match self {
            SeqNum::Value(v) => v,
            SeqNum::Star => largest,
        }
    }
}

/// One element of a sequence set, as written (`5:2` keeps its order; use
/// [`SeqRange::resolve`] to get `low..=high`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqRange {
    /// First end as written.
    pub start: SeqNum,
    /// Second end as written (equal to `start` for a single number).
    pub end: SeqNum,
}

impl SeqRange {
    /// The inclusive range `(low, high)` with `*` standing for `largest`.
    pub fn resolve(self, largest: u32) -> (u32, u32) {
        let a = self.start.resolve(largest);
        let b = self.end.resolve(largest);
        (a.min(b), a.max(b))
    }
}

/// A validated sequence set, kept as the client's bytes (zero-copy); iterate with
/// [`SequenceSet::ranges`]. `$` (SEARCHRES) is [`SequenceSet::is_saved`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequenceSet<'a> {
    raw: &'a [u8],
}

impl<'a> SequenceSet<'a> {
    /// Wraps bytes already checked by the parser.
    pub(crate) fn from_validated(raw: &'a [u8]) -> Self {
        SequenceSet { raw }
    }
    /// The set as the client wrote it.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.raw
    }
    /// True for `$`: the result saved by `SEARCH RETURN (SAVE)`.
    pub fn is_saved(&self) -> bool {
        self.raw == b"$"
    }
    /// The ranges in the order written; empty for `$`.
    pub fn ranges(&self) -> impl Iterator<Item = SeqRange> + 'a {
        let raw: &'a [u8] = if self.is_saved() { b"" } else { self.raw };
        raw.split(|&b| b == b',')
            .filter(|part| !part.is_empty())
            .map(|part| {
                let mut ends = part.splitn(2, |&b| b == b':');
                let start = seq_num(ends.next().unwrap_or(b"*"));
                let end = ends.next().map(seq_num).unwrap_or(start);
                SeqRange { start, end }
            })
    }
}

/// Reads one validated set element; the parser guarantees digits fitting u32 or `*`.
fn seq_num(raw: &[u8]) -> SeqNum {
    if raw == b"*" {
        return SeqNum::Star;
    }
    let mut n: u32 = 0;
    for &d in raw {
        n = n
            .saturating_mul(10)
            .saturating_add(u32::from(d.wrapping_sub(b'0')));
    }
    SeqNum::Value(n)
}

/// A message flag or keyword.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flag<'a> {
    /// `\Seen`
    Seen,
    /// `\Answered`
    Answered,
    /// `\Flagged`
    Flagged,
    /// `\Deleted`
    Deleted,
    /// `\Draft`
    Draft,
    /// Another system flag (`\Recent` or an extension), without the backslash.
    Extension(&'a str),
    /// A keyword (`$Forwarded`, `NonJunk`, ...).
    Keyword(&'a str),
}

/// How STORE changes the flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreMode {
    /// `FLAGS`
    Replace,
    /// `+FLAGS`
    Add,
    /// `-FLAGS`
    Remove,
}

/// A date (`d-Mon-yyyy`) as used by SEARCH.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Date {
    /// Year, e.g. 2024.
    pub year: u16,
    /// Month 1..=12.
    pub month: u8,
    /// Day 1..=31.
    pub day: u8,
}

/// An APPEND date-time (`"dd-Mon-yyyy hh:mm:ss +zzzz"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime {
    /// The date.
    pub date: Date,
    /// Hour 0..=23.
    pub hour: u8,
    /// Minute 0..=59.
    pub minute: u8,
    /// Second 0..=60.
    pub second: u8,
    /// Offset from UTC in minutes (`-0130` is -90).
    pub zone_minutes: i16,
}

/// One message of an APPEND.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendMessage<'a> {
    /// Initial flags.
    pub flags: Vec<Flag<'a>>,
    /// Internal date, if the client gave one.
    pub date: Option<DateTime>,
    /// The message bytes (the literal's payload, borrowed).
    pub data: &'a [u8],
    /// Sent as `~{n}` (BINARY literal8: may contain NUL).
    pub binary: bool,
    /// Sent as `UTF8 (literal)` (UTF8=ACCEPT).
    pub utf8: bool,
}

/// LIST-EXTENDED selection options (RFC 5258, RFC 6154).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListSelect {
    /// `SUBSCRIBED`
    Subscribed,
    /// `REMOTE`
    Remote,
    /// `RECURSIVEMATCH`
    RecursiveMatch,
    /// `SPECIAL-USE`
    SpecialUse,
}

/// LIST-EXTENDED return options (RFC 5258, RFC 5819, RFC 6154).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListReturn {
    /// `SUBSCRIBED`
    Subscribed,
    /// `CHILDREN`
    Children,
    /// `SPECIAL-USE`
    SpecialUse,
    /// `STATUS (items)` (LIST-STATUS)
    Status(Vec<StatusItem>),
}

/// A STATUS data item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusItem {
    /// `MESSAGES`
    Messages,
    /// `RECENT`
    Recent,
    /// `UIDNEXT`
    UidNext,
    /// `UIDVALIDITY`
    UidValidity,
    /// `UNSEEN`
    Unseen,
    /// `DELETED`
    Deleted,
    /// `SIZE` (STATUS=SIZE)
    Size,
    /// `HIGHESTMODSEQ` (CONDSTORE)
    HighestModSeq,
    /// `APPENDLIMIT` (RFC 7889)
    AppendLimit,
    /// `MAILBOXID` (OBJECTID)
    MailboxId,
}

/// A FETCH attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchAttr<'a> {
    /// `ENVELOPE`
    Envelope,
    /// `FLAGS`
    Flags,
    /// `INTERNALDATE`
    InternalDate,
    /// `RFC822` (same as `BODY[]`, sets \Seen)
    Rfc822,
    /// `RFC822.HEADER` (same as `BODY.PEEK[HEADER]`)
    Rfc822Header,
    /// `RFC822.SIZE`
    Rfc822Size,
    /// `RFC822.TEXT` (same as `BODY[TEXT]`)
    Rfc822Text,
    /// `BODY` (non-extensible BODYSTRUCTURE)
    Body,
    /// `BODYSTRUCTURE`
    BodyStructure,
    /// `UID`
    Uid,
    /// `BODY[section]<partial>` or `BODY.PEEK[...]`
    BodySection {
        /// `.PEEK`: do not set \Seen.
        peek: bool,
        /// The section.
        section: Section<'a>,
        /// `<offset.length>`
        partial: Option<Partial>,
    },
    /// `BINARY[part]<partial>` or `BINARY.PEEK[...]` (RFC 3516)
    Binary {
        /// `.PEEK`
        peek: bool,
        /// Part numbers (empty = whole message).
        part: Vec<u32>,
        /// `<offset.length>`
        partial: Option<Partial>,
    },
    /// `BINARY.SIZE[part]`
    BinarySize {
        /// Part numbers.
        part: Vec<u32>,
    },
    /// `MODSEQ` (CONDSTORE)
    ModSeq,
    /// `EMAILID` (OBJECTID)
    EmailId,
    /// `THREADID` (OBJECTID)
    ThreadId,
    /// `PREVIEW` / `PREVIEW (LAZY)` (RFC 8970)
    Preview {
        /// `(LAZY)`
        lazy: bool,
    },
    /// `SAVEDATE` (RFC 8514)
    SaveDate,
}

/// `<offset.length>` of a partial fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partial {
    /// First octet.
    pub offset: u32,
    /// Number of octets (never 0).
    pub length: u32,
}

/// A body section: part numbers then an optional text specifier.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Section<'a> {
    /// Part numbers (`1.2.3`); empty for the whole message.
    pub part: Vec<u32>,
    /// What of the part.
    pub text: Option<SectionText<'a>>,
}

/// The text specifier of a section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionText<'a> {
    /// `HEADER`
    Header,
    /// `HEADER.FIELDS (names)`
    HeaderFields(Vec<AString<'a>>),
    /// `HEADER.FIELDS.NOT (names)`
    HeaderFieldsNot(Vec<AString<'a>>),
    /// `TEXT`
    Text,
    /// `MIME` (only after part numbers)
    Mime,
}

/// FETCH modifiers (RFC 7162).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FetchModifiers {
    /// `CHANGEDSINCE n`
    pub changed_since: Option<u64>,
    /// `VANISHED` (UID FETCH with QRESYNC)
    pub vanished: bool,
}

/// ESEARCH / ESORT return options (RFC 4731, RFC 5182).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchReturn {
    /// `MIN`
    Min,
    /// `MAX`
    Max,
    /// `ALL`
    All,
    /// `COUNT`
    Count,
    /// `SAVE` (SEARCHRES)
    Save,
}

/// A search key (RFC 9051 §6.4.4 and extensions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchKey<'a> {
    /// `ALL`
    All,
    /// `ANSWERED`
    Answered,
    /// `BCC s`
    Bcc(AString<'a>),
    /// `BEFORE date`
    Before(Date),
    /// `BODY s`
    Body(AString<'a>),
    /// `CC s`
    Cc(AString<'a>),
    /// `DELETED`
    Deleted,
    /// `DRAFT`
    Draft,
    /// `FLAGGED`
    Flagged,
    /// `FROM s`
    From(AString<'a>),
    /// `HEADER field s`
    Header(AString<'a>, AString<'a>),
    /// `KEYWORD k`
    Keyword(&'a str),
    /// `LARGER n`
    Larger(u64),
    /// `NEW` (RFC 3501)
    New,
    /// `NOT key`
    Not(Box<SearchKey<'a>>),
    /// `OLD` (RFC 3501)
    Old,
    /// `ON date`
    On(Date),
    /// `OR a b`
    Or(Box<SearchKey<'a>>, Box<SearchKey<'a>>),
    /// `RECENT` (RFC 3501)
    Recent,
    /// `SEEN`
    Seen,
    /// `SENTBEFORE date`
    SentBefore(Date),
    /// `SENTON date`
    SentOn(Date),
    /// `SENTSINCE date`
    SentSince(Date),
    /// `SINCE date`
    Since(Date),
    /// `SMALLER n`
    Smaller(u64),
    /// `SUBJECT s`
    Subject(AString<'a>),
    /// `TEXT s`
    Text(AString<'a>),
    /// `TO s`
    To(AString<'a>),
    /// `UID set`
    Uid(SequenceSet<'a>),
    /// `UNANSWERED`
    Unanswered,
    /// `UNDELETED`
    Undeleted,
    /// `UNDRAFT`
    Undraft,
    /// `UNFLAGGED`
    Unflagged,
    /// `UNKEYWORD k`
    Unkeyword(&'a str),
    /// `UNSEEN`
    Unseen,
    /// A bare sequence set (message numbers, or `$`).
    SequenceSet(SequenceSet<'a>),
    /// `( key ... )`: all must match.
    And(Vec<SearchKey<'a>>),
    /// `MODSEQ ["entry" type] n` (CONDSTORE).
    ModSeq {
        /// Optional entry name and type (`"/flags/\\draft" all`).
        entry: Option<(AString<'a>, EntryType)>,
        /// The mod-sequence.
        modseq: u64,
    },
    /// `OLDER seconds` (WITHIN)
    Older(u64),
    /// `YOUNGER seconds` (WITHIN)
    Younger(u64),
    /// `EMAILID id` (OBJECTID)
    EmailId(&'a str),
    /// `THREADID id` (OBJECTID)
    ThreadId(&'a str),
    /// `SAVEDBEFORE date` (SAVEDATE)
    SavedBefore(Date),
    /// `SAVEDON date`
    SavedOn(Date),
    /// `SAVEDSINCE date`
    SavedSince(Date),
    /// `SAVEDATESUPPORTED`
    SaveDateSupported,
}

/// The entry type of a `SEARCH MODSEQ` entry (RFC 7162).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryType {
    /// `priv`
    Private,
    /// `shared`
    Shared,
    /// `all`
    All,
}

/// A SORT criterion (RFC 5256, RFC 5957).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortCriterion {
    /// `REVERSE`
    pub reverse: bool,
    /// The key.
    pub key: SortKey,
}

/// A SORT key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    /// `ARRIVAL`
    Arrival,
    /// `CC`
    Cc,
    /// `DATE`
    Date,
    /// `FROM`
    From,
    /// `SIZE`
    Size,
    /// `SUBJECT`
    Subject,
    /// `TO`
    To,
    /// `DISPLAYFROM` (RFC 5957)
    DisplayFrom,
    /// `DISPLAYTO` (RFC 5957)
    DisplayTo,
}

/// A THREAD algorithm (RFC 5256).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadAlgorithm {
    /// `ORDEREDSUBJECT`
    OrderedSubject,
    /// `REFERENCES`
    References,
    /// `REFS` (RFC 5256 draft successor, sent by some clients)
    Refs,
}
