//! The untagged data responses a server sends (RFC 9051 section 7 and the extensions'),
//! each a value that writes its whole line with [`Response::serialize`].
//!
//! They borrow what they show: building one allocates nothing, so the session can make one
//! per message where it must (the FETCH of a flag change).

use std::borrow::Cow;

use super::{Response, ResponseWriter};

/// `* n EXISTS`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exists(pub u32);

impl Response for Exists {
    fn serialize(&self, w: &mut ResponseWriter<'_>) {
        w.untagged()
            .number(u64::from(self.0))
            .raw(b" EXISTS")
            .crlf();
    }
}

/// `* n RECENT` (IMAP4rev1)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recent(pub u32);

impl Response for Recent {
    fn serialize(&self, w: &mut ResponseWriter<'_>) {
        w.untagged()
            .number(u64::from(self.0))
            .raw(b" RECENT")
            .crlf();
    }
}

/// `* n EXPUNGE`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expunge(pub u32);

impl Response for Expunge {
    fn serialize(&self, w: &mut ResponseWriter<'_>) {
        w.untagged()
            .number(u64::from(self.0))
            .raw(b" EXPUNGE")
            .crlf();
    }
}

/// `* FLAGS (flag ...)`: the flags the mailbox's messages may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flags<'a>(pub &'a [Cow<'static, str>]);

impl Response for Flags<'_> {
    fn serialize(&self, w: &mut ResponseWriter<'_>) {
        w.untagged().raw(b"FLAGS ");
        w.flag_list(self.0.iter().map(|f| f.as_bytes())).crlf();
    }
}

/// `* CAPABILITY cap ...`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capability<'a>(pub &'a [Cow<'static, str>]);

impl Response for Capability<'_> {
    fn serialize(&self, w: &mut ResponseWriter<'_>) {
        w.untagged().raw(b"CAPABILITY");
        for cap in self.0 {
            w.sp().raw(cap.as_bytes());
        }
        w.crlf();
    }
}

/// `* ENABLED cap ...` (RFC 5161): the extensions this ENABLE turned on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enabled<'a>(pub &'a [&'a str]);

impl Response for Enabled<'_> {
    fn serialize(&self, w: &mut ResponseWriter<'_>) {
        w.untagged().raw(b"ENABLED");
        for cap in self.0 {
            w.sp().raw(cap.as_bytes());
        }
        w.crlf();
    }
}

/// `* VANISHED [(EARLIER)] uid-set` (RFC 7162 QRESYNC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vanished<'a> {
    /// `(EARLIER)`: the expunges happened before this command, the client may know them.
    pub earlier: bool,
    /// The UIDs, as ascending ranges (not empty).
    pub uids: &'a [(u32, u32)],
}

impl Response for Vanished<'_> {
    fn serialize(&self, w: &mut ResponseWriter<'_>) {
        w.untagged().raw(b"VANISHED ");
        if self.earlier {
            w.raw(b"(EARLIER) ");
        }
        w.sequence_set(self.uids.iter().copied()).crlf();
    }
}

/// `* LIST (attributes) "delimiter" name [extended data]`, or its LSUB form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct List<'a> {
    /// LSUB instead of LIST.
    pub lsub: bool,
    /// Name attributes, written out (`\HasChildren`).
    pub attributes: &'a [&'a str],
    /// The hierarchy delimiter, `None` for a flat namespace (`NIL`).
    pub delimiter: Option<char>,
    /// The name in its wire form (modified UTF-7, or UTF-8 in UTF-8 mode).
    pub name: &'a [u8],
    /// RFC 5258 CHILDINFO selection options that have matching children
    /// (`("CHILDINFO" ("SUBSCRIBED"))`); empty for none.
    pub child_info: &'a [&'a str],
}

impl Response for List<'_> {
    fn serialize(&self, w: &mut ResponseWriter<'_>) {
        w.untagged()
            .raw(if self.lsub { b"LSUB " } else { b"LIST " })
            .flag_list(self.attributes.iter())
            .sp();
        delimiter(w, self.delimiter);
        w.sp().astring(self.name);
        if !self.child_info.is_empty() {
            w.raw(b" (\"CHILDINFO\" (");
            for (i, option) in self.child_info.iter().enumerate() {
                if i > 0 {
                    w.sp();
                }
                w.string(option.as_bytes());
            }
            w.raw(b"))");
        }
        w.crlf();
    }
}

/// A hierarchy delimiter as a quoted character, or `NIL`.
fn delimiter(w: &mut ResponseWriter<'_>, delimiter: Option<char>) {
    match delimiter {
        Some(c) => {
            let mut buf = [0u8; 4];
            w.string(c.encode_utf8(&mut buf).as_bytes());
        }
        None => {
            w.raw(b"NIL");
        }
    }
}

/// One item of a STATUS response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusValue {
    /// `MESSAGES n`
    Messages(u64),
    /// `RECENT n` (IMAP4rev1)
    Recent(u64),
    /// `UIDNEXT n`
    UidNext(u64),
    /// `UIDVALIDITY n`
    UidValidity(u64),
    /// `UNSEEN n`
    Unseen(u64),
    /// `DELETED n` (IMAP4rev2)
    Deleted(u64),
    /// `SIZE n` (RFC 8438)
    Size(u64),
    /// `HIGHESTMODSEQ n` (RFC 7162)
    HighestModSeq(u64),
    /// `APPENDLIMIT n` (RFC 7889)
    AppendLimit(u64),
    /// `MAILBOXID (objectid)` (RFC 8474), with ringmail's objectid form of the id.
    MailboxId(u64),
}

impl StatusValue {
    fn serialize(&self, w: &mut ResponseWriter<'_>) {
        let (name, n): (&[u8], u64) = match *self {
            StatusValue::Messages(n) => (b"MESSAGES ", n),
            StatusValue::Recent(n) => (b"RECENT ", n),
            StatusValue::UidNext(n) => (b"UIDNEXT ", n),
            StatusValue::UidValidity(n) => (b"UIDVALIDITY ", n),
            StatusValue::Unseen(n) => (b"UNSEEN ", n),
            StatusValue::Deleted(n) => (b"DELETED ", n),
            StatusValue::Size(n) => (b"SIZE ", n),
            StatusValue::HighestModSeq(n) => (b"HIGHESTMODSEQ ", n),
            StatusValue::AppendLimit(n) => (b"APPENDLIMIT ", n),
            StatusValue::MailboxId(id) => {
                w.raw(b"MAILBOXID (").object_id(id).close();
                return;
            }
        };
        w.raw(name).number(n);
    }
}

/// `* STATUS name (item value ...)`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailboxStatus<'a> {
    /// The name in its wire form.
    pub name: &'a [u8],
    /// The items, in the order asked.
    pub items: &'a [StatusValue],
}

impl Response for MailboxStatus<'_> {
    fn serialize(&self, w: &mut ResponseWriter<'_>) {
        w.untagged().raw(b"STATUS ").astring(self.name).raw(b" (");
        for (i, item) in self.items.iter().enumerate() {
            if i > 0 {
                w.sp();
            }
            item.serialize(w);
        }
        w.close().crlf();
    }
}

/// `* SEARCH n ... [(MODSEQ m)]` (IMAP4rev1 and RFC 7162).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Search<'a> {
    /// Message numbers or UIDs, in order.
    pub ids: &'a [u32],
    /// The highest mod-sequence of the matches, when the search used MODSEQ.
    pub modseq: Option<u64>,
}

impl Response for Search<'_> {
    fn serialize(&self, w: &mut ResponseWriter<'_>) {
        w.untagged().raw(b"SEARCH").spaced_numbers(self.ids);
        if let Some(modseq) = self.modseq {
            w.raw(b" (MODSEQ ").number(modseq).close();
        }
        w.crlf();
    }
}

/// `* ESEARCH (TAG "t") [UID] [MIN n] [MAX n] [ALL set] [COUNT n] [MODSEQ m]` (RFC 4731,
/// RFC 5267 ESORT, RFC 7162).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Esearch<'a> {
    /// The command's tag.
    pub tag: &'a str,
    /// The numbers are UIDs.
    pub uid: bool,
    /// `MIN n`
    pub min: Option<u32>,
    /// `MAX n`
    pub max: Option<u32>,
    /// `ALL set`, as ranges in the order to send (left out when empty).
    pub all: Option<&'a [(u32, u32)]>,
    /// `COUNT n`
    pub count: Option<u64>,
    /// `MODSEQ m`
    pub modseq: Option<u64>,
}

impl Response for Esearch<'_> {
    fn serialize(&self, w: &mut ResponseWriter<'_>) {
        // A tag is an atom: it holds no '"' or '\', so it is quoted as it is, whatever its
        // length.
        w.untagged()
            .raw(b"ESEARCH (TAG ")
            .quoted_verbatim(self.tag.as_bytes())
            .close();
        if self.uid {
            w.raw(b" UID");
        }
        if let Some(min) = self.min {
            w.raw(b" MIN ").number(u64::from(min));
        }
        if let Some(max) = self.max {
            w.raw(b" MAX ").number(u64::from(max));
        }
        if let Some(all) = self.all.filter(|all| !all.is_empty()) {
            w.raw(b" ALL ").sequence_set(all.iter().copied());
        }
        if let Some(count) = self.count {
            w.raw(b" COUNT ").number(count);
        }
        if let Some(modseq) = self.modseq {
            w.raw(b" MODSEQ ").number(modseq);
        }
        w.crlf();
    }
}

/// `* SORT n ...` (RFC 5256)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort<'a>(pub &'a [u32]);

impl Response for Sort<'_> {
    fn serialize(&self, w: &mut ResponseWriter<'_>) {
        w.untagged().raw(b"SORT").spaced_numbers(self.0);
        w.crlf();
    }
}

/// One node of a THREAD response: a message, or a dummy standing for a message that is
/// referenced but not there, and its replies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadNode {
    /// The message number or UID; `None` for a dummy.
    pub id: Option<u32>,
    /// The replies, in order.
    pub children: Vec<ThreadNode>,
}

impl ThreadNode {
    /// A node's content inside its parentheses: `3 6 (4 23)(44 7 96)`. A single reply
    /// continues the line; several each get parentheses.
    fn serialize_body(&self, w: &mut ResponseWriter<'_>) {
        if let Some(id) = self.id {
            w.number(u64::from(id));
            match self.children.as_slice() {
                [] => return,
                [only] => {
                    w.sp();
                    only.serialize_body(w);
                    return;
                }
                _ => {
                    w.sp();
                }
            }
        }
        for child in &self.children {
            w.open();
            child.serialize_body(w);
            w.close();
        }
    }
}

/// `* THREAD (...)(...)` (RFC 5256): one parenthesised tree per thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thread<'a>(pub &'a [ThreadNode]);

impl Response for Thread<'_> {
    fn serialize(&self, w: &mut ResponseWriter<'_>) {
        w.untagged().raw(b"THREAD");
        if !self.0.is_empty() {
            w.sp();
        }
        for thread in self.0 {
            w.open();
            thread.serialize_body(w);
            w.close();
        }
        w.crlf();
    }
}

/// One resource of a QUOTA response (RFC 9208): its usage and limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaResource {
    /// `STORAGE` (in units of 1024 octets), `MESSAGE`, ...
    pub name: &'static str,
    /// How much is used.
    pub usage: u64,
    /// The limit.
    pub limit: u64,
}

/// `* QUOTA root (resource usage limit ...)` (RFC 9208)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota<'a> {
    /// The quota root.
    pub root: &'a [u8],
    /// The limited resources.
    pub resources: &'a [QuotaResource],
}

impl Response for Quota<'_> {
    fn serialize(&self, w: &mut ResponseWriter<'_>) {
        w.untagged().raw(b"QUOTA ").astring(self.root).raw(b" (");
        for (i, r) in self.resources.iter().enumerate() {
            if i > 0 {
                w.sp();
            }
            w.raw(r.name.as_bytes())
                .sp()
                .number(r.usage)
                .sp()
                .number(r.limit);
        }
        w.close().crlf();
    }
}

/// `* QUOTAROOT mailbox root ...` (RFC 9208)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaRoot<'a> {
    /// The mailbox name in its wire form.
    pub mailbox: &'a [u8],
    /// Its quota roots.
    pub roots: &'a [&'a [u8]],
}

impl Response for QuotaRoot<'_> {
    fn serialize(&self, w: &mut ResponseWriter<'_>) {
        w.untagged().raw(b"QUOTAROOT ").astring(self.mailbox);
        for root in self.roots {
            w.sp().astring(root);
        }
        w.crlf();
    }
}

/// `* ID (field value ...)` or `* ID NIL` (RFC 2971): the server's identification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Id<'a>(pub Option<&'a [(&'a str, &'a str)]>);

impl Response for Id<'_> {
    fn serialize(&self, w: &mut ResponseWriter<'_>) {
        w.untagged().raw(b"ID ");
        match self.0 {
            None => {
                w.raw(b"NIL");
            }
            Some(fields) => {
                w.open();
                for (i, (field, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        w.sp();
                    }
                    w.string(field.as_bytes()).sp().string(value.as_bytes());
                }
                w.close();
            }
        }
        w.crlf();
    }
}

/// One namespace of a NAMESPACE response: its prefix and hierarchy delimiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NamespaceEntry<'a> {
    /// The prefix of the namespace's names (`""` for the user's own).
    pub prefix: &'a [u8],
    /// The hierarchy delimiter, `None` for a flat namespace.
    pub delimiter: Option<char>,
}

/// `* NAMESPACE personal other shared` (RFC 2342), each a list or `NIL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Namespace<'a> {
    /// The user's own namespaces.
    pub personal: &'a [NamespaceEntry<'a>],
    /// Other users' namespaces.
    pub other: &'a [NamespaceEntry<'a>],
    /// Shared namespaces.
    pub shared: &'a [NamespaceEntry<'a>],
}

impl Response for Namespace<'_> {
    fn serialize(&self, w: &mut ResponseWriter<'_>) {
        w.untagged().raw(b"NAMESPACE");
        for entries in [self.personal, self.other, self.shared] {
            w.sp();
            if entries.is_empty() {
                w.raw(b"NIL");
                continue;
            }
            w.open();
            for entry in entries {
                w.open().string(entry.prefix).sp();
                delimiter(w, entry.delimiter);
                w.close();
            }
            w.close();
        }
        w.crlf();
    }
}

/// The flags of one message, as a FETCH response shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MessageFlags<'a> {
    /// `\Answered`
    pub answered: bool,
    /// `\Flagged`
    pub flagged: bool,
    /// `\Deleted`
    pub deleted: bool,
    /// `\Seen`
    pub seen: bool,
    /// `\Draft`
    pub draft: bool,
    /// `\Recent` (IMAP4rev1; the session's, not the message's)
    pub recent: bool,
    /// Keywords, written as they are.
    pub keywords: &'a [&'a str],
}

impl MessageFlags<'_> {
    /// Writes `(\Seen \Recent kw ...)`: the system flags, `\Recent` after them and before
    /// the keywords (where Dovecot puts it), then the keywords.
    pub fn serialize(&self, w: &mut ResponseWriter<'_>) {
        let system = [
            (self.answered, "\\Answered"),
            (self.flagged, "\\Flagged"),
            (self.deleted, "\\Deleted"),
            (self.seen, "\\Seen"),
            (self.draft, "\\Draft"),
            (self.recent, "\\Recent"),
        ];
        let names = system
            .iter()
            .filter(|(set, _)| *set)
            .map(|(_, name)| *name)
            .chain(self.keywords.iter().copied());
        w.flag_list(names);
    }
}

/// `* n FETCH ([UID u ]FLAGS (...)[ MODSEQ (m)])`: a message's flags changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchFlags<'a> {
    /// Its message number.
    pub msn: u32,
    /// Its UID, when the response carries it.
    pub uid: Option<u32>,
    /// Its flags now.
    pub flags: MessageFlags<'a>,
    /// Its mod-sequence, under CONDSTORE.
    pub modseq: Option<u64>,
}

impl Response for FetchFlags<'_> {
    fn serialize(&self, w: &mut ResponseWriter<'_>) {
        w.untagged().number(u64::from(self.msn)).raw(b" FETCH (");
        if let Some(uid) = self.uid {
            w.raw(b"UID ").number(u64::from(uid)).sp();
        }
        w.raw(b"FLAGS ");
        self.flags.serialize(w);
        if let Some(modseq) = self.modseq {
            w.raw(b" MODSEQ (").number(modseq).close();
        }
        w.close().crlf();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(r: &dyn Response, utf8: bool) -> String {
        let mut out = Vec::new();
        r.serialize(&mut ResponseWriter::new(&mut out, utf8));
        String::from_utf8(out).unwrap()
    }

    fn ascii(r: &dyn Response) -> String {
        line(r, false)
    }

    #[test]
    fn counts() {
        assert_eq!(ascii(&Exists(3)), "* 3 EXISTS\r\n");
        assert_eq!(ascii(&Recent(0)), "* 0 RECENT\r\n");
        assert_eq!(ascii(&Expunge(17)), "* 17 EXPUNGE\r\n");
    }

    #[test]
    fn flags_capabilities_enabled() {
        let flags: Vec<Cow<'static, str>> = vec!["\\Seen".into(), "$Work".into()];
        assert_eq!(ascii(&Flags(&flags)), "* FLAGS (\\Seen $Work)\r\n");
        let caps: Vec<Cow<'static, str>> = vec!["IMAP4rev1".into(), "IDLE".into()];
        assert_eq!(ascii(&Capability(&caps)), "* CAPABILITY IMAP4rev1 IDLE\r\n");
        assert_eq!(
            ascii(&Enabled(&["CONDSTORE", "QRESYNC"])),
            "* ENABLED CONDSTORE QRESYNC\r\n"
        );
        assert_eq!(ascii(&Enabled(&[])), "* ENABLED\r\n");
    }

    #[test]
    fn vanished() {
        let uids = [(1, 3), (9, 9)];
        assert_eq!(
            ascii(&Vanished {
                earlier: true,
                uids: &uids
            }),
            "* VANISHED (EARLIER) 1:3,9\r\n"
        );
        assert_eq!(
            ascii(&Vanished {
                earlier: false,
                uids: &uids
            }),
            "* VANISHED 1:3,9\r\n"
        );
    }

    #[test]
    fn list_names_follow_the_utf8_mode() {
        let list = List {
            lsub: false,
            attributes: &["\\HasNoChildren", "\\Sent"],
            delimiter: Some('/'),
            name: "Gesendete Objekte".as_bytes(),
            child_info: &[],
        };
        assert_eq!(
            ascii(&list),
            "* LIST (\\HasNoChildren \\Sent) \"/\" \"Gesendete Objekte\"\r\n"
        );
        let utf8 = List {
            name: "Entwürfe".as_bytes(),
            attributes: &[],
            ..list
        };
        assert_eq!(line(&utf8, false), "* LIST () \"/\" {9}\r\nEntwürfe\r\n");
        assert_eq!(line(&utf8, true), "* LIST () \"/\" \"Entwürfe\"\r\n");
        let lsub = List {
            lsub: true,
            attributes: &["\\Noselect"],
            delimiter: None,
            name: b"INBOX",
            child_info: &["SUBSCRIBED"],
        };
        assert_eq!(
            ascii(&lsub),
            "* LSUB (\\Noselect) NIL INBOX (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n"
        );
        let root = List {
            lsub: false,
            attributes: &["\\Noselect"],
            delimiter: Some('/'),
            name: b"",
            child_info: &[],
        };
        assert_eq!(ascii(&root), "* LIST (\\Noselect) \"/\" \"\"\r\n");
    }

    #[test]
    fn status() {
        let items = [
            StatusValue::Messages(2),
            StatusValue::UidNext(10),
            StatusValue::MailboxId(0xab),
            StatusValue::Size(123),
        ];
        assert_eq!(
            ascii(&MailboxStatus {
                name: b"INBOX",
                items: &items
            }),
            "* STATUS INBOX (MESSAGES 2 UIDNEXT 10 MAILBOXID (Mab) SIZE 123)\r\n"
        );
        assert_eq!(
            ascii(&MailboxStatus {
                name: b"a b",
                items: &[]
            }),
            "* STATUS \"a b\" ()\r\n"
        );
    }

    #[test]
    fn search_esearch_sort() {
        assert_eq!(
            ascii(&Search {
                ids: &[1, 5],
                modseq: None
            }),
            "* SEARCH 1 5\r\n"
        );
        assert_eq!(
            ascii(&Search {
                ids: &[],
                modseq: None
            }),
            "* SEARCH\r\n"
        );
        assert_eq!(
            ascii(&Search {
                ids: &[4],
                modseq: Some(9)
            }),
            "* SEARCH 4 (MODSEQ 9)\r\n"
        );
        let all = [(1, 3), (7, 7)];
        let full = Esearch {
            tag: "A282",
            uid: true,
            min: Some(1),
            max: Some(7),
            all: Some(&all),
            count: Some(4),
            modseq: Some(12),
        };
        assert_eq!(
            ascii(&full),
            "* ESEARCH (TAG \"A282\") UID MIN 1 MAX 7 ALL 1:3,7 COUNT 4 MODSEQ 12\r\n"
        );
        let none = Esearch {
            tag: "t",
            count: Some(0),
            all: Some(&[]),
            ..Esearch::default()
        };
        assert_eq!(ascii(&none), "* ESEARCH (TAG \"t\") COUNT 0\r\n");
        assert_eq!(ascii(&Sort(&[3, 1, 2])), "* SORT 3 1 2\r\n");
        assert_eq!(ascii(&Sort(&[])), "* SORT\r\n");
    }

    #[test]
    fn threads_in_rfc5256_form() {
        let leaf = |id| ThreadNode {
            id: Some(id),
            children: Vec::new(),
        };
        let node = |id, children| ThreadNode { id, children };
        // RFC 5256's example: (2)(3 6 (4 23)(44 7 96))
        let threads = vec![
            leaf(2),
            node(
                Some(3),
                vec![node(
                    Some(6),
                    vec![
                        node(Some(4), vec![leaf(23)]),
                        node(Some(44), vec![node(Some(7), vec![leaf(96)])]),
                    ],
                )],
            ),
        ];
        assert_eq!(
            ascii(&Thread(&threads)),
            "* THREAD (2)(3 6 (4 23)(44 7 96))\r\n"
        );
        // A dummy root shows only its children.
        let dummy = vec![node(None, vec![leaf(1), leaf(2)])];
        assert_eq!(ascii(&Thread(&dummy)), "* THREAD ((1)(2))\r\n");
        assert_eq!(ascii(&Thread(&[])), "* THREAD\r\n");
    }

    #[test]
    fn quota_id_namespace() {
        let resources = [
            QuotaResource {
                name: "STORAGE",
                usage: 10,
                limit: 512,
            },
            QuotaResource {
                name: "MESSAGE",
                usage: 1,
                limit: 100,
            },
        ];
        assert_eq!(
            ascii(&Quota {
                root: b"",
                resources: &resources
            }),
            "* QUOTA \"\" (STORAGE 10 512 MESSAGE 1 100)\r\n"
        );
        assert_eq!(
            ascii(&Quota {
                root: b"",
                resources: &[]
            }),
            "* QUOTA \"\" ()\r\n"
        );
        assert_eq!(
            ascii(&QuotaRoot {
                mailbox: b"INBOX",
                roots: &[b""]
            }),
            "* QUOTAROOT INBOX \"\"\r\n"
        );
        assert_eq!(
            ascii(&Id(Some(&[("name", "ringmail"), ("x-executor", "2")]))),
            "* ID (\"name\" \"ringmail\" \"x-executor\" \"2\")\r\n"
        );
        assert_eq!(ascii(&Id(None)), "* ID NIL\r\n");
        let personal = [NamespaceEntry {
            prefix: b"",
            delimiter: Some('/'),
        }];
        assert_eq!(
            ascii(&Namespace {
                personal: &personal,
                other: &[],
                shared: &[]
            }),
            "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n"
        );
    }

    #[test]
    fn fetch_of_flags() {
        let flags = MessageFlags {
            seen: true,
            deleted: true,
            recent: true,
            keywords: &["$Junk"],
            ..MessageFlags::default()
        };
        assert_eq!(
            ascii(&FetchFlags {
                msn: 4,
                uid: Some(40),
                flags,
                modseq: Some(7)
            }),
            "* 4 FETCH (UID 40 FLAGS (\\Deleted \\Seen \\Recent $Junk) MODSEQ (7))\r\n"
        );
        assert_eq!(
            ascii(&FetchFlags {
                msn: 1,
                uid: None,
                flags: MessageFlags::default(),
                modseq: None
            }),
            "* 1 FETCH (FLAGS ())\r\n"
        );
        let every = MessageFlags {
            answered: true,
            flagged: true,
            deleted: true,
            seen: true,
            draft: true,
            recent: false,
            keywords: &[],
        };
        let mut out = Vec::new();
        every.serialize(&mut ResponseWriter::new(&mut out, false));
        assert_eq!(out, b"(\\Answered \\Flagged \\Deleted \\Seen \\Draft)");
    }
}
