//! The status word and the response codes of status responses (RFC 9051 section 7.1, and
//! the extensions': RFC 4315 UIDPLUS, RFC 5530, RFC 7162, RFC 8474, RFC 6154, RFC 3516).

use std::borrow::Cow;

use super::ResponseWriter;

/// The status word of a status response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// `OK`
    Ok,
    /// `NO`
    No,
    /// `BAD`
    Bad,
    /// `PREAUTH` (greeting only)
    PreAuth,
    /// `BYE`
    Bye,
}

impl Status {
    /// The word on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::No => "NO",
            Status::Bad => "BAD",
            Status::PreAuth => "PREAUTH",
            Status::Bye => "BYE",
        }
    }
}

/// A response code: the bracketed part of a status response, for the client's software
/// rather than its user. Set ranges are inclusive `(low, high)` pairs, ascending where the
/// grammar wants a set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Code {
    /// `ALERT`: the text must be shown to the user.
    Alert,
    /// `ALREADYEXISTS` (RFC 5530)
    AlreadyExists,
    /// `APPENDUID uidvalidity uid-set` (RFC 4315)
    AppendUid {
        /// The destination's UIDVALIDITY.
        uidvalidity: u32,
        /// The UIDs the appended messages got.
        uids: Vec<(u32, u32)>,
    },
    /// `AUTHENTICATIONFAILED` (RFC 5530)
    AuthenticationFailed,
    /// `AUTHORIZATIONFAILED` (RFC 5530): authenticated, but not allowed to act as that user
    AuthorizationFailed,
    /// `BADCHARSET (charsets)`
    BadCharset(&'static [&'static str]),
    /// `CANNOT` (RFC 5530)
    Cannot,
    /// `CAPABILITY cap ...`
    Capability(Vec<Cow<'static, str>>),
    /// `CLIENTBUG` (RFC 5530)
    ClientBug,
    /// `CLOSED` (RFC 7162): the selected mailbox is closed.
    Closed,
    /// `CONTACTADMIN` (RFC 5530)
    ContactAdmin,
    /// `COPYUID uidvalidity source-set destination-set` (RFC 4315)
    CopyUid {
        /// The destination's UIDVALIDITY.
        uidvalidity: u32,
        /// The source UIDs, ascending.
        source: Vec<(u32, u32)>,
        /// The destination UIDs, in the order of `source`.
        destination: Vec<(u32, u32)>,
    },
    /// `EXPUNGEISSUED` (RFC 5530)
    ExpungeIssued,
    /// `HIGHESTMODSEQ n` (RFC 7162)
    HighestModSeq(u64),
    /// `INUSE` (RFC 5530)
    InUse,
    /// `LIMIT` (RFC 5530)
    Limit,
    /// `MAILBOXID (objectid)` (RFC 8474), with ringmail's objectid form of the id.
    MailboxId(u64),
    /// `MODIFIED set` (RFC 7162): a conditional STORE left these messages alone.
    Modified(Vec<(u32, u32)>),
    /// `NOMODSEQ` (RFC 7162)
    NoModSeq,
    /// `NONEXISTENT` (RFC 5530)
    NonExistent,
    /// `NOPERM` (RFC 5530)
    NoPerm,
    /// `OVERQUOTA` (RFC 5530)
    OverQuota,
    /// `PARSE`
    Parse,
    /// `PERMANENTFLAGS (flag ...)`
    PermanentFlags(Vec<Cow<'static, str>>),
    /// `PRIVACYREQUIRED` (RFC 5530)
    PrivacyRequired,
    /// `READ-ONLY`
    ReadOnly,
    /// `READ-WRITE`
    ReadWrite,
    /// `SERVERBUG` (RFC 5530)
    ServerBug,
    /// `TOOBIG` (RFC 4469, RFC 7889)
    TooBig,
    /// `TRYCREATE`
    TryCreate,
    /// `UIDNEXT n`
    UidNext(u32),
    /// `UIDNOTSTICKY` (RFC 4315)
    UidNotSticky,
    /// `UIDVALIDITY n`
    UidValidity(u32),
    /// `UNAVAILABLE` (RFC 5530)
    Unavailable,
    /// `UNKNOWN-CTE` (RFC 3516)
    UnknownCte,
    /// `UNSEEN n` (IMAP4rev1)
    Unseen(u32),
    /// `USEATTR` (RFC 6154)
    UseAttr,
}

impl Code {
    /// The code's name, the atom that starts it.
    pub fn name(&self) -> &'static str {
        match self {
            Code::Alert => "ALERT",
            Code::AlreadyExists => "ALREADYEXISTS",
            Code::AppendUid { .. } => "APPENDUID",
            Code::AuthenticationFailed => "AUTHENTICATIONFAILED",
            Code::AuthorizationFailed => "AUTHORIZATIONFAILED",
            Code::BadCharset(_) => "BADCHARSET",
            Code::Cannot => "CANNOT",
            Code::Capability(_) => "CAPABILITY",
            Code::ClientBug => "CLIENTBUG",
            Code::Closed => "CLOSED",
            Code::ContactAdmin => "CONTACTADMIN",
            Code::CopyUid { .. } => "COPYUID",
            Code::ExpungeIssued => "EXPUNGEISSUED",
            Code::HighestModSeq(_) => "HIGHESTMODSEQ",
            Code::InUse => "INUSE",
            Code::Limit => "LIMIT",
            Code::MailboxId(_) => "MAILBOXID",
            Code::Modified(_) => "MODIFIED",
            Code::NoModSeq => "NOMODSEQ",
            Code::NonExistent => "NONEXISTENT",
            Code::NoPerm => "NOPERM",
            Code::OverQuota => "OVERQUOTA",
            Code::Parse => "PARSE",
            Code::PermanentFlags(_) => "PERMANENTFLAGS",
            Code::PrivacyRequired => "PRIVACYREQUIRED",
            Code::ReadOnly => "READ-ONLY",
            Code::ReadWrite => "READ-WRITE",
            Code::ServerBug => "SERVERBUG",
            Code::TooBig => "TOOBIG",
            Code::TryCreate => "TRYCREATE",
            Code::UidNext(_) => "UIDNEXT",
            Code::UidNotSticky => "UIDNOTSTICKY",
            Code::UidValidity(_) => "UIDVALIDITY",
            Code::Unavailable => "UNAVAILABLE",
            Code::UnknownCte => "UNKNOWN-CTE",
            Code::Unseen(_) => "UNSEEN",
            Code::UseAttr => "USEATTR",
        }
    }

    /// Writes the code without its brackets.
    pub fn serialize(&self, w: &mut ResponseWriter<'_>) {
        w.raw(self.name().as_bytes());
        match self {
            Code::AppendUid { uidvalidity, uids } => {
                w.sp().number(u64::from(*uidvalidity)).sp();
                w.sequence_set(uids.iter().copied());
            }
            Code::BadCharset(charsets) => {
                w.sp().flag_list(charsets.iter());
            }
            Code::Capability(caps) => {
                for cap in caps {
                    w.sp().raw(cap.as_bytes());
                }
            }
            Code::CopyUid {
                uidvalidity,
                source,
                destination,
            } => {
                w.sp().number(u64::from(*uidvalidity)).sp();
                w.sequence_set(source.iter().copied()).sp();
                w.sequence_set(destination.iter().copied());
            }
            Code::HighestModSeq(n) => {
                w.sp().number(*n);
            }
            Code::MailboxId(id) => {
                w.sp().open().object_id(*id).close();
            }
            Code::Modified(set) => {
                w.sp().sequence_set(set.iter().copied());
            }
            Code::PermanentFlags(flags) => {
                w.sp().flag_list(flags.iter().map(|f| f.as_bytes()));
            }
            Code::UidNext(n) | Code::UidValidity(n) | Code::Unseen(n) => {
                w.sp().number(u64::from(*n));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(c: Code) -> String {
        let mut out = Vec::new();
        c.serialize(&mut ResponseWriter::new(&mut out, false));
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn codes_with_data() {
        assert_eq!(
            code(Code::AppendUid {
                uidvalidity: 38505,
                uids: vec![(3955, 3955)]
            }),
            "APPENDUID 38505 3955"
        );
        assert_eq!(
            code(Code::CopyUid {
                uidvalidity: 1,
                source: vec![(1, 3), (7, 7)],
                destination: vec![(10, 13)]
            }),
            "COPYUID 1 1:3,7 10:13"
        );
        assert_eq!(code(Code::Modified(vec![(2, 2), (5, 9)])), "MODIFIED 2,5:9");
        assert_eq!(
            code(Code::BadCharset(&["UTF-8", "US-ASCII"])),
            "BADCHARSET (UTF-8 US-ASCII)"
        );
        assert_eq!(
            code(Code::Capability(vec![
                "IMAP4rev1".into(),
                "APPENDLIMIT=10".into()
            ])),
            "CAPABILITY IMAP4rev1 APPENDLIMIT=10"
        );
        assert_eq!(code(Code::MailboxId(0x1f)), "MAILBOXID (M1f)");
        assert_eq!(
            code(Code::PermanentFlags(vec!["\\Seen".into(), "\\*".into()])),
            "PERMANENTFLAGS (\\Seen \\*)"
        );
        assert_eq!(code(Code::PermanentFlags(Vec::new())), "PERMANENTFLAGS ()");
        assert_eq!(
            code(Code::HighestModSeq(u64::MAX)),
            "HIGHESTMODSEQ 18446744073709551615"
        );
        assert_eq!(code(Code::UidNext(5)), "UIDNEXT 5");
        assert_eq!(code(Code::UidValidity(7)), "UIDVALIDITY 7");
        assert_eq!(code(Code::Unseen(2)), "UNSEEN 2");
    }

    #[test]
    fn codes_without_data_are_their_names() {
        assert_eq!(code(Code::ReadOnly), "READ-ONLY");
        assert_eq!(code(Code::UnknownCte), "UNKNOWN-CTE");
        assert_eq!(code(Code::ExpungeIssued), "EXPUNGEISSUED");
        assert_eq!(code(Code::TryCreate), "TRYCREATE");
    }
}
