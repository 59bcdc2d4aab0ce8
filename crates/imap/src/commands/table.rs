//! The command table: for every command its name, the state it needs and its
//! sequence-number policy, declared once. The dispatcher checks the state and, after the
//! handler, runs the sync the policy allows; logs and metrics take the name from here.

use ringmail_proto::parser::CommandBody;

/// The RFC 9051 state a command is valid in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Any state.
    Any,
    /// Not logged in yet (STARTTLS, LOGIN, AUTHENTICATE).
    NotAuthenticated,
    /// Logged in, with or without a mailbox selected.
    Authenticated,
    /// A mailbox selected.
    Selected,
}

/// What the sync before a command's tagged reply may announce (Dovecot's `USES_SEQS` and
/// `BREAKS_SEQS`): while a client's command uses message numbers, an EXPUNGE would renumber
/// the messages under it (RFC 9051 section 7.5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seqs {
    /// No sync: the command writes nothing about the selected mailbox (CAPABILITY, ID), or
    /// changes the selection itself (SELECT, CLOSE), or syncs on its own (IDLE).
    NoSync,
    /// The sync may announce everything, EXPUNGE included.
    MayExpunge,
    /// The command names messages by number unless it is the UID form: EXPUNGE waits for a
    /// later command then (new messages and flag changes do not).
    UsesSeqs,
}

/// One command's entry in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// The name, for logs and metrics.
    pub name: &'static str,
    /// The state it needs.
    pub needs: Needs,
    /// What the sync before its tagged reply may announce.
    pub seqs: Seqs,
}

impl Spec {
    const fn new(name: &'static str, needs: Needs, seqs: Seqs) -> Spec {
        Spec { name, needs, seqs }
    }
}

/// A parsed command's table entry, and whether it is the UID form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The command's spec.
    pub spec: &'static Spec,
    /// `UID FETCH`, `UID SEARCH`...: its set names UIDs, which need not have been announced
    /// to this session yet.
    pub uid: bool,
}

impl Entry {
    /// The sync before the tagged reply: `None` for none, else whether it may announce
    /// expunges.
    pub fn sync(&self) -> Option<bool> {
        match self.spec.seqs {
            Seqs::NoSync => None,
            Seqs::MayExpunge => Some(true),
            Seqs::UsesSeqs => Some(self.uid),
        }
    }
}

use Needs::{Any, Authenticated, NotAuthenticated, Selected};
use Seqs::{MayExpunge, NoSync, UsesSeqs};

/// `CAPABILITY`
pub const CAPABILITY: Spec = Spec::new("CAPABILITY", Any, NoSync);
/// `NOOP`
pub const NOOP: Spec = Spec::new("NOOP", Any, MayExpunge);
/// `LOGOUT`
pub const LOGOUT: Spec = Spec::new("LOGOUT", Any, NoSync);
/// `ID` (RFC 2971)
pub const ID: Spec = Spec::new("ID", Any, NoSync);
/// `STARTTLS`
pub const STARTTLS: Spec = Spec::new("STARTTLS", NotAuthenticated, NoSync);
/// `LOGIN`
pub const LOGIN: Spec = Spec::new("LOGIN", NotAuthenticated, NoSync);
/// `AUTHENTICATE`
pub const AUTHENTICATE: Spec = Spec::new("AUTHENTICATE", NotAuthenticated, NoSync);
/// `ENABLE` (RFC 5161)
pub const ENABLE: Spec = Spec::new("ENABLE", Authenticated, NoSync);
/// `NAMESPACE` (RFC 2342)
pub const NAMESPACE: Spec = Spec::new("NAMESPACE", Authenticated, NoSync);
/// `CHECK`
pub const CHECK: Spec = Spec::new("CHECK", Authenticated, MayExpunge);
/// `IDLE` (RFC 2177): it syncs as changes come.
pub const IDLE: Spec = Spec::new("IDLE", Authenticated, NoSync);
/// `CREATE`
pub const CREATE: Spec = Spec::new("CREATE", Authenticated, MayExpunge);
/// `DELETE`
pub const DELETE: Spec = Spec::new("DELETE", Authenticated, MayExpunge);
/// `RENAME`
pub const RENAME: Spec = Spec::new("RENAME", Authenticated, MayExpunge);
/// `SUBSCRIBE`
pub const SUBSCRIBE: Spec = Spec::new("SUBSCRIBE", Authenticated, MayExpunge);
/// `UNSUBSCRIBE`
pub const UNSUBSCRIBE: Spec = Spec::new("UNSUBSCRIBE", Authenticated, MayExpunge);
/// `LIST`
pub const LIST: Spec = Spec::new("LIST", Authenticated, MayExpunge);
/// `LSUB`
pub const LSUB: Spec = Spec::new("LSUB", Authenticated, MayExpunge);
/// `STATUS`
pub const STATUS: Spec = Spec::new("STATUS", Authenticated, MayExpunge);
/// `APPEND`
pub const APPEND: Spec = Spec::new("APPEND", Authenticated, MayExpunge);
/// `GETQUOTA` (RFC 9208)
pub const GETQUOTA: Spec = Spec::new("GETQUOTA", Authenticated, MayExpunge);
/// `GETQUOTAROOT` (RFC 9208)
pub const GETQUOTAROOT: Spec = Spec::new("GETQUOTAROOT", Authenticated, MayExpunge);
/// `SETQUOTA` (RFC 9208), refused
pub const SETQUOTA: Spec = Spec::new("SETQUOTA", Authenticated, MayExpunge);
/// `SELECT`: it replaces the selection, so there is nothing to sync.
pub const SELECT: Spec = Spec::new("SELECT", Authenticated, NoSync);
/// `EXAMINE`
pub const EXAMINE: Spec = Spec::new("EXAMINE", Authenticated, NoSync);
/// `CLOSE`
pub const CLOSE: Spec = Spec::new("CLOSE", Selected, NoSync);
/// `UNSELECT` (RFC 3691)
pub const UNSELECT: Spec = Spec::new("UNSELECT", Selected, NoSync);
/// `EXPUNGE`
pub const EXPUNGE: Spec = Spec::new("EXPUNGE", Selected, MayExpunge);
/// `UID EXPUNGE` (RFC 4315)
pub const UID_EXPUNGE: Spec = Spec::new("UID EXPUNGE", Selected, MayExpunge);
/// `[UID] FETCH`
pub const FETCH: Spec = Spec::new("FETCH", Selected, UsesSeqs);
/// `[UID] STORE`
pub const STORE: Spec = Spec::new("STORE", Selected, UsesSeqs);
/// `[UID] COPY`
pub const COPY: Spec = Spec::new("COPY", Selected, UsesSeqs);
/// `[UID] MOVE` (RFC 6851): it announces its expunges even in the sequence-number form.
pub const MOVE: Spec = Spec::new("MOVE", Selected, MayExpunge);
/// `[UID] SEARCH`
pub const SEARCH: Spec = Spec::new("SEARCH", Selected, UsesSeqs);
/// `[UID] SORT` (RFC 5256)
pub const SORT: Spec = Spec::new("SORT", Selected, UsesSeqs);
/// `[UID] THREAD` (RFC 5256)
pub const THREAD: Spec = Spec::new("THREAD", Selected, UsesSeqs);

/// The table entry of a parsed command.
pub fn entry(body: &CommandBody<'_>) -> Entry {
    let (spec, uid) = match body {
        CommandBody::Capability => (&CAPABILITY, false),
        CommandBody::Noop => (&NOOP, false),
        CommandBody::Logout => (&LOGOUT, false),
        CommandBody::Id(_) => (&ID, false),
        CommandBody::StartTls => (&STARTTLS, false),
        CommandBody::Login { .. } => (&LOGIN, false),
        CommandBody::Authenticate { .. } => (&AUTHENTICATE, false),
        CommandBody::Enable(_) => (&ENABLE, false),
        CommandBody::Namespace => (&NAMESPACE, false),
        CommandBody::Check => (&CHECK, false),
        CommandBody::Idle => (&IDLE, false),
        CommandBody::Create { .. } => (&CREATE, false),
        CommandBody::Delete(_) => (&DELETE, false),
        CommandBody::Rename { .. } => (&RENAME, false),
        CommandBody::Subscribe(_) => (&SUBSCRIBE, false),
        CommandBody::Unsubscribe(_) => (&UNSUBSCRIBE, false),
        CommandBody::List { .. } => (&LIST, false),
        CommandBody::Lsub { .. } => (&LSUB, false),
        CommandBody::Status { .. } => (&STATUS, false),
        CommandBody::Append { .. } => (&APPEND, false),
        CommandBody::GetQuota(_) => (&GETQUOTA, false),
        CommandBody::GetQuotaRoot(_) => (&GETQUOTAROOT, false),
        CommandBody::SetQuota { .. } => (&SETQUOTA, false),
        CommandBody::Select { .. } => (&SELECT, false),
        CommandBody::Examine { .. } => (&EXAMINE, false),
        CommandBody::Close => (&CLOSE, false),
        CommandBody::Unselect => (&UNSELECT, false),
        CommandBody::Expunge => (&EXPUNGE, false),
        CommandBody::UidExpunge(_) => (&UID_EXPUNGE, true),
        CommandBody::Fetch { uid, .. } => (&FETCH, *uid),
        CommandBody::Store { uid, .. } => (&STORE, *uid),
        CommandBody::Copy { uid, .. } => (&COPY, *uid),
        CommandBody::Move { uid, .. } => (&MOVE, *uid),
        CommandBody::Search { uid, .. } => (&SEARCH, *uid),
        CommandBody::Sort { uid, .. } => (&SORT, *uid),
        CommandBody::Thread { uid, .. } => (&THREAD, *uid),
    };
    Entry { spec, uid }
}
