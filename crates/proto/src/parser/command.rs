//! The command grammar: tag, command name, and the arguments of every command.

use base64::Engine as _;

use super::ast::{
    AppendMessage, Command, CommandBody, ListReturn, ListSelect, QResync, SelectParams, StatusItem,
    StoreMode,
};
use super::cursor::{err, is_tag_char, Cursor, PResult, SyntaxError};
use super::{fetch, search};

/// Parses one complete command (CRLF included). On failure returns the tag, if one could be
/// read, with the reason.
pub(crate) fn parse_command(
    input: &[u8],
    max_depth: usize,
) -> Result<Command<'_>, (Option<&str>, SyntaxError)> {
    let mut c = Cursor::new(input, max_depth);
    let tag = c.take_while(is_tag_char);
    let tag = match std::str::from_utf8(tag) {
        Ok(t) if !t.is_empty() && c.peek() == Some(b' ') => t,
        _ => {
            return Err((
                None,
                SyntaxError {
                    reason: "missing or invalid tag",
                    limit: false,
                },
            ))
        }
    };
    let body = c
        .sp()
        .and_then(|()| command_body(&mut c))
        .and_then(|body| c.end().map(|()| body))
        .map_err(|e| (Some(tag), e))?;
    Ok(Command { tag, body })
}

/// The command name and its arguments.
fn command_body<'a>(c: &mut Cursor<'a>) -> PResult<CommandBody<'a>> {
    let name = c.keyword()?;
    let body = match name.as_bytes() {
        b"CAPABILITY" => CommandBody::Capability,
        b"NOOP" => CommandBody::Noop,
        b"LOGOUT" => CommandBody::Logout,
        b"STARTTLS" => CommandBody::StartTls,
        b"NAMESPACE" => CommandBody::Namespace,
        b"IDLE" => CommandBody::Idle,
        b"CHECK" => CommandBody::Check,
        b"CLOSE" => CommandBody::Close,
        b"UNSELECT" => CommandBody::Unselect,
        b"EXPUNGE" => CommandBody::Expunge,
        b"AUTHENTICATE" => authenticate(c)?,
        b"LOGIN" => {
            c.sp()?;
            // userid is an astring, but `*` (and `%`) are taken in its atom too, as Dovecot
            // does: master-user logins (`user*master`) arrive unquoted from Python's imaplib
            // and other scripts.
            let user = c.list_mailbox()?;
            c.sp()?;
            let password = c.astring()?;
            CommandBody::Login { user, password }
        }
        b"ENABLE" => {
            let mut caps = Vec::new();
            while c.eat(b' ') {
                caps.push(c.atom_str()?);
            }
            if caps.is_empty() {
                return err("ENABLE needs a capability");
            }
            CommandBody::Enable(caps)
        }
        b"ID" => id(c)?,
        b"SELECT" | b"EXAMINE" => {
            c.sp()?;
            let mailbox = c.mailbox()?;
            let params = select_params(c)?;
            if name.as_bytes() == b"SELECT" {
                CommandBody::Select { mailbox, params }
            } else {
                CommandBody::Examine { mailbox, params }
            }
        }
        b"CREATE" => create(c)?,
        b"DELETE" => CommandBody::Delete(arg_mailbox(c)?),
        b"SUBSCRIBE" => CommandBody::Subscribe(arg_mailbox(c)?),
        b"UNSUBSCRIBE" => CommandBody::Unsubscribe(arg_mailbox(c)?),
        b"RENAME" => {
            let from = arg_mailbox(c)?;
            let to = arg_mailbox(c)?;
            CommandBody::Rename { from, to }
        }
        b"LIST" => list(c)?,
        b"LSUB" => {
            let reference = arg_mailbox(c)?;
            c.sp()?;
            let pattern = c.list_mailbox()?;
            CommandBody::Lsub { reference, pattern }
        }
        b"STATUS" => {
            let mailbox = arg_mailbox(c)?;
            c.sp()?;
            let items = status_items(c)?;
            CommandBody::Status { mailbox, items }
        }
        b"APPEND" => append(c)?,
        b"UID" => {
            c.sp()?;
            let sub = c.keyword()?;
            match sub.as_bytes() {
                b"EXPUNGE" => {
                    c.sp()?;
                    CommandBody::UidExpunge(c.sequence_set()?)
                }
                other => numbered(c, other, true)?,
            }
        }
        other => numbered(c, other, false)?,
    };
    Ok(body)
}

/// The commands that also exist as `UID ...`.
fn numbered<'a>(c: &mut Cursor<'a>, name: &[u8], uid: bool) -> PResult<CommandBody<'a>> {
    Ok(match name {
        b"FETCH" => {
            c.sp()?;
            let set = c.sequence_set()?;
            c.sp()?;
            let attrs = fetch::fetch_items(c)?;
            let modifiers = if c.eat(b' ') {
                fetch::fetch_modifiers(c, uid)?
            } else {
                Default::default()
            };
            CommandBody::Fetch {
                uid,
                set,
                attrs,
                modifiers,
            }
        }
        b"STORE" => store(c, uid)?,
        b"COPY" | b"MOVE" => {
            c.sp()?;
            let set = c.sequence_set()?;
            let mailbox = arg_mailbox(c)?;
            if name == b"COPY" {
                CommandBody::Copy { uid, set, mailbox }
            } else {
                CommandBody::Move { uid, set, mailbox }
            }
        }
        b"SEARCH" => {
            let ret = search::return_opts(c)?;
            c.sp()?;
            let (charset, criteria) = search::search_program(c)?;
            CommandBody::Search {
                uid,
                ret,
                charset,
                criteria,
            }
        }
        b"SORT" => {
            let ret = search::return_opts(c)?;
            c.sp()?;
            let criteria = search::sort_criteria(c)?;
            c.sp()?;
            let charset = c.astring()?;
            c.sp()?;
            let keys = search::search_keys(c)?;
            CommandBody::Sort {
                uid,
                ret,
                criteria,
                charset,
                keys,
            }
        }
        b"THREAD" => {
            c.sp()?;
            let algorithm = search::thread_algorithm(c)?;
            c.sp()?;
            let charset = c.astring()?;
            c.sp()?;
            let keys = search::search_keys(c)?;
            CommandBody::Thread {
                uid,
                algorithm,
                charset,
                keys,
            }
        }
        _ if uid => return err("unknown UID command"),
        b"GETQUOTA" => {
            c.sp()?;
            CommandBody::GetQuota(c.astring()?)
        }
        b"GETQUOTAROOT" => CommandBody::GetQuotaRoot(arg_mailbox(c)?),
        b"SETQUOTA" => {
            c.sp()?;
            let root = c.astring()?;
            c.sp()?;
            c.open()?;
            let mut limits = Vec::new();
            if !c.eat(b')') {
                loop {
                    let resource = c.atom_str()?;
                    c.sp()?;
                    limits.push((resource, c.number64()?));
                    if !c.eat(b' ') {
                        break;
                    }
                }
                c.close()?;
            } else {
                c.unnest();
            }
            CommandBody::SetQuota { root, limits }
        }
        _ => return err("unknown command"),
    })
}

/// `SP mailbox`
fn arg_mailbox<'a>(c: &mut Cursor<'a>) -> PResult<super::ast::Mailbox<'a>> {
    c.sp()?;
    c.mailbox()
}

/// `AUTHENTICATE SP mech [SP (base64 / "=")]`: the initial response is decoded here.
fn authenticate<'a>(c: &mut Cursor<'a>) -> PResult<CommandBody<'a>> {
    c.sp()?;
    let mechanism = c.atom_str()?;
    let initial = if c.eat(b' ') {
        if c.eat(b'=') {
            Some(Vec::new())
        } else {
            let b64 =
                c.take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
            if b64.is_empty() {
                return err("expected a base64 initial response");
            }
            match base64::engine::general_purpose::STANDARD.decode(b64) {
                Ok(bytes) => Some(bytes),
                Err(_) => return err("invalid base64 in initial response"),
            }
        }
    } else {
        None
    };
    Ok(CommandBody::Authenticate { mechanism, initial })
}

/// `ID SP (NIL / "(" [string SP nstring *(SP string SP nstring)] ")")`
fn id<'a>(c: &mut Cursor<'a>) -> PResult<CommandBody<'a>> {
    c.sp()?;
    if c.eat_ci(b"NIL") {
        return Ok(CommandBody::Id(None));
    }
    c.open()?;
    let mut params = Vec::new();
    if !c.eat(b')') {
        loop {
            let key = c.string()?;
            c.sp()?;
            params.push((key, c.nstring()?));
            if !c.eat(b' ') {
                break;
            }
        }
        c.close()?;
    } else {
        c.unnest();
    }
    Ok(CommandBody::Id(Some(params)))
}

/// `[SP "(" select-param *(SP select-param) ")"]` (CONDSTORE, QRESYNC).
fn select_params<'a>(c: &mut Cursor<'a>) -> PResult<SelectParams<'a>> {
    let mut params = SelectParams::default();
    if !c.eat(b' ') {
        return Ok(params);
    }
    c.paren_list(|c| {
        let kw = c.keyword()?;
        match kw.as_bytes() {
            b"CONDSTORE" => params.condstore = true,
            b"QRESYNC" => {
                c.sp()?;
                c.open()?;
                let uidvalidity = c.nz_number()?;
                c.sp()?;
                let modseq = c.number64()?;
                let mut known_uids = None;
                let mut seq_match = None;
                if c.eat(b' ') {
                    if c.peek() != Some(b'(') {
                        known_uids = Some(c.sequence_set()?);
                        c.eat(b' ');
                    }
                    if c.peek() == Some(b'(') {
                        c.open()?;
                        let seqs = c.sequence_set()?;
                        c.sp()?;
                        let uids = c.sequence_set()?;
                        c.close()?;
                        seq_match = Some((seqs, uids));
                    }
                }
                c.close()?;
                params.qresync = Some(QResync {
                    uidvalidity,
                    modseq,
                    known_uids,
                    seq_match,
                });
            }
            _ => return err("unknown SELECT parameter"),
        }
        Ok(())
    })?;
    Ok(params)
}

/// `CREATE SP mailbox [SP "(" USE SP "(" \attr *(SP \attr) ")" ")"]` (RFC 6154).
fn create<'a>(c: &mut Cursor<'a>) -> PResult<CommandBody<'a>> {
    let mailbox = arg_mailbox(c)?;
    let mut special_use = Vec::new();
    if c.eat(b' ') {
        c.paren_list(|c| {
            let kw = c.keyword()?;
            if kw.as_bytes() != b"USE" {
                return err("unknown CREATE parameter");
            }
            c.sp()?;
            special_use = c.paren_list(|c| {
                let start = c.clone_pos();
                c.expect(b'\\', "expected a special-use attribute")?;
                c.atom()?;
                std::str::from_utf8(c.since(start)).or_else(|_| err("bad attribute"))
            })?;
            Ok(())
        })?;
    }
    Ok(CommandBody::Create {
        mailbox,
        special_use,
    })
}

/// `LIST [SP (sel-opts)] SP ref SP (pattern / (patterns)) [SP RETURN SP (opts)]`
fn list<'a>(c: &mut Cursor<'a>) -> PResult<CommandBody<'a>> {
    c.sp()?;
    let mut selection = Vec::new();
    if c.peek() == Some(b'(') {
        c.open()?;
        if !c.eat(b')') {
            loop {
                let kw = c.keyword()?;
                selection.push(match kw.as_bytes() {
                    b"SUBSCRIBED" => ListSelect::Subscribed,
                    b"REMOTE" => ListSelect::Remote,
                    b"RECURSIVEMATCH" => ListSelect::RecursiveMatch,
                    b"SPECIAL-USE" => ListSelect::SpecialUse,
                    _ => return err("unknown LIST selection option"),
                });
                if !c.eat(b' ') {
                    break;
                }
            }
            c.close()?;
        } else {
            c.unnest();
        }
        c.sp()?;
    }
    let reference = c.mailbox()?;
    c.sp()?;
    let patterns = if c.peek() == Some(b'(') {
        c.paren_list(|c| c.list_mailbox())?
    } else {
        vec![c.list_mailbox()?]
    };
    let mut returns = Vec::new();
    if c.eat(b' ') {
        if !c.eat_ci(b"RETURN") {
            return err("expected RETURN");
        }
        c.sp()?;
        c.open()?;
        if !c.eat(b')') {
            loop {
                let kw = c.keyword()?;
                returns.push(match kw.as_bytes() {
                    b"SUBSCRIBED" => ListReturn::Subscribed,
                    b"CHILDREN" => ListReturn::Children,
                    b"SPECIAL-USE" => ListReturn::SpecialUse,
                    b"STATUS" => {
                        c.sp()?;
                        ListReturn::Status(status_items(c)?)
                    }
                    _ => return err("unknown LIST return option"),
                });
                if !c.eat(b' ') {
                    break;
                }
            }
            c.close()?;
        } else {
            c.unnest();
        }
    }
    // RFC 5258 section 3: RECURSIVEMATCH alone, or with REMOTE only, selects nothing to
    // recurse on.
    if selection.contains(&ListSelect::RecursiveMatch)
        && selection
            .iter()
            .all(|s| matches!(s, ListSelect::RecursiveMatch | ListSelect::Remote))
    {
        return err("RECURSIVEMATCH needs a selection option other than REMOTE");
    }
    Ok(CommandBody::List {
        selection,
        reference,
        patterns,
        returns,
    })
}

/// `"(" status-att *(SP status-att) ")"`
fn status_items(c: &mut Cursor<'_>) -> PResult<Vec<StatusItem>> {
    c.paren_list(|c| {
        let kw = c.keyword()?;
        Ok(match kw.as_bytes() {
            b"MESSAGES" => StatusItem::Messages,
            b"RECENT" => StatusItem::Recent,
            b"UIDNEXT" => StatusItem::UidNext,
            b"UIDVALIDITY" => StatusItem::UidValidity,
            b"UNSEEN" => StatusItem::Unseen,
            b"DELETED" => StatusItem::Deleted,
            b"SIZE" => StatusItem::Size,
            b"HIGHESTMODSEQ" => StatusItem::HighestModSeq,
            b"APPENDLIMIT" => StatusItem::AppendLimit,
            b"MAILBOXID" => StatusItem::MailboxId,
            _ => return err("unknown STATUS item"),
        })
    })
}

/// `APPEND SP mailbox 1*(SP [flag-list SP] [date-time SP] append-data)` (MULTIAPPEND).
fn append<'a>(c: &mut Cursor<'a>) -> PResult<CommandBody<'a>> {
    let mailbox = arg_mailbox(c)?;
    let mut messages = Vec::new();
    while c.eat(b' ') {
        let flags = if c.peek() == Some(b'(') {
            let f = c.flag_list()?;
            c.sp()?;
            f
        } else {
            Vec::new()
        };
        let date = if c.peek() == Some(b'"') {
            let d = c.date_time()?;
            c.sp()?;
            Some(d)
        } else {
            None
        };
        let utf8 = c.eat_ci(b"UTF8 (");
        if utf8 {
            c.nest()?;
        }
        let (data, binary) = c.literal_or_literal8()?;
        if utf8 {
            c.close()?;
        }
        messages.push(AppendMessage {
            flags,
            date,
            data,
            binary,
            utf8,
        });
    }
    if messages.is_empty() {
        return err("APPEND needs a message");
    }
    Ok(CommandBody::Append { mailbox, messages })
}

/// `STORE SP set [SP (UNCHANGEDSINCE n)] SP [+-]FLAGS[.SILENT] SP flags`
fn store<'a>(c: &mut Cursor<'a>, uid: bool) -> PResult<CommandBody<'a>> {
    c.sp()?;
    let set = c.sequence_set()?;
    c.sp()?;
    let mut unchanged_since = None;
    if c.peek() == Some(b'(') {
        c.paren_list(|c| {
            let kw = c.keyword()?;
            if kw.as_bytes() != b"UNCHANGEDSINCE" {
                return err("unknown STORE modifier");
            }
            c.sp()?;
            unchanged_since = Some(c.number64()?);
            Ok(())
        })?;
        c.sp()?;
    }
    let mode = if c.eat(b'+') {
        StoreMode::Add
    } else if c.eat(b'-') {
        StoreMode::Remove
    } else {
        StoreMode::Replace
    };
    let kw = c.keyword()?;
    let silent = match kw.as_bytes() {
        b"FLAGS" => false,
        b"FLAGS.SILENT" => true,
        _ => return err("expected FLAGS or FLAGS.SILENT"),
    };
    c.sp()?;
    let flags = if c.peek() == Some(b'(') {
        c.flag_list()?
    } else {
        let mut flags = vec![c.flag()?];
        while c.eat(b' ') {
            flags.push(c.flag()?);
        }
        flags
    };
    Ok(CommandBody::Store {
        uid,
        set,
        unchanged_since,
        mode,
        silent,
        flags,
    })
}
