//! One file per command group, as Dovecot's src/imap has one per command. `dispatch` checks
//! the RFC 9051 state a command is valid in and hands it to its module.

pub mod append;
pub mod authenticate;
pub mod capability;
pub mod copy;
pub mod enable;
pub mod expunge;
pub mod fetch;
pub mod id;
pub mod idle;
pub mod login;
pub mod mailboxes;
pub mod namespace;
pub mod quota;
pub mod reply;
pub mod search;
pub mod select;
pub mod sort;
pub mod starttls;
pub mod store;
pub mod thread;

use crate::selected::{announce_new, sync};
use crate::session::{Action, Session, State};
use reply::{Code, Reply};
use ringmail_proto::parser::{Command, CommandBody};
use ringmail_proto::response::StatusResponse;

/// Writes the untagged updates a command boundary allows, then the tagged reply.
fn finish(session: &mut Session, tag: &str, reply: Reply, allow_expunge: bool) -> Action {
    sync(session, allow_expunge);
    session.reply(tag, &reply);
    Action::Continue
}

/// Runs one command and says what the session loop must do next.
pub async fn dispatch(session: &mut Session, command: Command<'_>) -> Action {
    let tag = command.tag;
    let authenticated = matches!(session.state, State::Authenticated { .. });
    if authenticated && is_uid_command(&command.body) {
        // The UIDs may come from another connection (a message it appended): make them name
        // messages of this session's view before acting.
        announce_new(session);
    }
    match command.body {
        CommandBody::Capability => {
            capability::run(session, tag);
            Action::Continue
        }
        CommandBody::Noop => finish(session, tag, Reply::ok("NOOP completed"), true),
        CommandBody::Logout => {
            session.meter.end("logout");
            session.send(&StatusResponse::bye("Logging out"));
            session.reply(tag, &Reply::ok("LOGOUT completed"));
            Action::Close
        }
        CommandBody::Id(params) => {
            id::run(session, tag, params.as_deref());
            Action::Continue
        }
        CommandBody::StartTls if !authenticated => starttls::run(session, tag),
        CommandBody::Login { user, password } if !authenticated => {
            login::run(session, tag, &user, &password).await
        }
        CommandBody::Authenticate { mechanism, initial } if !authenticated => {
            login::authenticate_start(session, tag, mechanism, initial)
        }
        CommandBody::StartTls | CommandBody::Login { .. } | CommandBody::Authenticate { .. } => {
            session.reply(tag, &Reply::bad("Already logged in"));
            Action::Continue
        }
        _ if !authenticated => {
            session.reply(tag, &Reply::bad("Log in first"));
            Action::Continue
        }
        CommandBody::Enable(caps) => {
            enable::run(session, tag, &caps);
            Action::Continue
        }
        CommandBody::Namespace => {
            namespace::run(session, tag);
            Action::Continue
        }
        CommandBody::Check => {
            let reply = Reply::ok("CHECK completed");
            finish(session, tag, reply, true)
        }
        CommandBody::Idle => Action::Idle {
            tag: tag.to_string(),
        },
        CommandBody::Create {
            mailbox,
            special_use,
        } => {
            let reply = mailboxes::create(session, &mailbox, &special_use).await;
            finish(session, tag, reply, true)
        }
        CommandBody::Delete(mailbox) => {
            let reply = mailboxes::delete(session, &mailbox).await;
            finish(session, tag, reply, true)
        }
        CommandBody::Rename { from, to } => {
            let reply = mailboxes::rename(session, &from, &to).await;
            finish(session, tag, reply, true)
        }
        CommandBody::Subscribe(mailbox) => {
            let reply = mailboxes::subscribe(session, &mailbox, true).await;
            finish(session, tag, reply, true)
        }
        CommandBody::Unsubscribe(mailbox) => {
            let reply = mailboxes::subscribe(session, &mailbox, false).await;
            finish(session, tag, reply, true)
        }
        CommandBody::List {
            selection,
            reference,
            patterns,
            returns,
        } => {
            let reply =
                mailboxes::list(session, &selection, &reference, &patterns, &returns, false).await;
            finish(session, tag, reply, true)
        }
        CommandBody::Lsub { reference, pattern } => {
            let reply = mailboxes::list(session, &[], &reference, &[pattern], &[], true).await;
            finish(session, tag, reply, true)
        }
        CommandBody::Status { mailbox, items } => {
            let reply = mailboxes::status(session, &mailbox, &items).await;
            finish(session, tag, reply, true)
        }
        CommandBody::Append { mailbox, messages } => {
            let reply = append::append(session, &mailbox, &messages).await;
            if reply.is_ok() {
                let bytes = messages.iter().map(|m| m.data.len() as u64).sum();
                let count = messages.len() as u64;
                session.exec.metrics.borrow_mut().appended(count, bytes);
            }
            finish(session, tag, reply, true)
        }
        CommandBody::GetQuota(root) => {
            let reply = quota::get_quota(session, &root).await;
            finish(session, tag, reply, true)
        }
        CommandBody::GetQuotaRoot(mailbox) => {
            let reply = quota::get_quota_root(session, &mailbox).await;
            finish(session, tag, reply, true)
        }
        CommandBody::SetQuota { .. } => {
            let reply =
                Reply::no("Quotas are set in the server configuration").with_code(Code::NoPerm);
            finish(session, tag, reply, true)
        }
        CommandBody::Select { mailbox, params } => {
            let reply = select::select(session, &mailbox, &params, false).await;
            session.reply(tag, &reply);
            Action::Continue
        }
        CommandBody::Examine { mailbox, params } => {
            let reply = select::select(session, &mailbox, &params, true).await;
            session.reply(tag, &reply);
            Action::Continue
        }
        _ if session.selected.is_none() => {
            session.reply(tag, &Reply::bad("No mailbox selected"));
            Action::Continue
        }
        CommandBody::Close => {
            let reply = select::close(session).await;
            session.reply(tag, &reply);
            Action::Continue
        }
        CommandBody::Unselect => {
            let reply = select::unselect(session);
            session.reply(tag, &reply);
            Action::Continue
        }
        CommandBody::Expunge => {
            let reply = expunge::expunge(session, None).await;
            finish(session, tag, reply, true)
        }
        CommandBody::UidExpunge(set) => {
            let reply = expunge::expunge(session, Some(&set)).await;
            finish(session, tag, reply, true)
        }
        CommandBody::Fetch {
            uid,
            set,
            attrs,
            modifiers,
        } => {
            let reply = fetch::fetch(session, uid, &set, &attrs, &modifiers).await;
            finish(session, tag, reply, uid)
        }
        CommandBody::Store {
            uid,
            set,
            unchanged_since,
            mode,
            silent,
            flags,
        } => {
            let reply =
                store::store(session, uid, &set, unchanged_since, mode, silent, &flags).await;
            finish(session, tag, reply, uid)
        }
        CommandBody::Copy { uid, set, mailbox } => {
            let reply = copy::copy(session, uid, &set, &mailbox, false).await;
            finish(session, tag, reply, uid)
        }
        CommandBody::Move { uid, set, mailbox } => {
            // RFC 6851: MOVE announces its expunges even in the sequence-number form.
            let reply = copy::copy(session, uid, &set, &mailbox, true).await;
            finish(session, tag, reply, true)
        }
        CommandBody::Search {
            uid,
            ret,
            charset,
            criteria,
        } => {
            let reply = search::search(
                session,
                tag,
                uid,
                ret.as_deref(),
                charset.as_deref(),
                &criteria,
            )
            .await;
            finish(session, tag, reply, uid)
        }
        CommandBody::Sort {
            uid,
            ret,
            criteria,
            charset,
            keys,
        } => {
            let reply = sort::sort(
                session,
                tag,
                uid,
                ret.as_deref(),
                &criteria,
                &charset,
                &keys,
            )
            .await;
            finish(session, tag, reply, uid)
        }
        CommandBody::Thread {
            uid,
            algorithm,
            charset,
            keys,
        } => {
            let reply = thread::thread(session, uid, algorithm, &charset, &keys).await;
            finish(session, tag, reply, uid)
        }
    }
}

/// Whether `body` is a UID command (its set names UIDs, which need not have been announced to
/// this session).
fn is_uid_command(body: &CommandBody<'_>) -> bool {
    match body {
        CommandBody::UidExpunge(_) => true,
        CommandBody::Fetch { uid, .. }
        | CommandBody::Store { uid, .. }
        | CommandBody::Copy { uid, .. }
        | CommandBody::Move { uid, .. }
        | CommandBody::Search { uid, .. }
        | CommandBody::Sort { uid, .. }
        | CommandBody::Thread { uid, .. } => *uid,
        _ => false,
    }
}

/// The command's name, for logs and messages.
pub fn name(body: &CommandBody<'_>) -> &'static str {
    match body {
        CommandBody::Capability => "CAPABILITY",
        CommandBody::Noop => "NOOP",
        CommandBody::Logout => "LOGOUT",
        CommandBody::StartTls => "STARTTLS",
        CommandBody::Authenticate { .. } => "AUTHENTICATE",
        CommandBody::Login { .. } => "LOGIN",
        CommandBody::Enable(_) => "ENABLE",
        CommandBody::Id(_) => "ID",
        CommandBody::Namespace => "NAMESPACE",
        CommandBody::Idle => "IDLE",
        CommandBody::Select { .. } => "SELECT",
        CommandBody::Examine { .. } => "EXAMINE",
        CommandBody::Create { .. } => "CREATE",
        CommandBody::Delete(_) => "DELETE",
        CommandBody::Rename { .. } => "RENAME",
        CommandBody::Subscribe(_) => "SUBSCRIBE",
        CommandBody::Unsubscribe(_) => "UNSUBSCRIBE",
        CommandBody::List { .. } => "LIST",
        CommandBody::Lsub { .. } => "LSUB",
        CommandBody::Status { .. } => "STATUS",
        CommandBody::Append { .. } => "APPEND",
        CommandBody::Check => "CHECK",
        CommandBody::Close => "CLOSE",
        CommandBody::Unselect => "UNSELECT",
        CommandBody::Expunge => "EXPUNGE",
        CommandBody::UidExpunge(_) => "UID EXPUNGE",
        CommandBody::Search { .. } => "SEARCH",
        CommandBody::Fetch { .. } => "FETCH",
        CommandBody::Store { .. } => "STORE",
        CommandBody::Copy { .. } => "COPY",
        CommandBody::Move { .. } => "MOVE",
        CommandBody::Sort { .. } => "SORT",
        CommandBody::Thread { .. } => "THREAD",
        CommandBody::GetQuota(_) => "GETQUOTA",
        CommandBody::GetQuotaRoot(_) => "GETQUOTAROOT",
        CommandBody::SetQuota { .. } => "SETQUOTA",
    }
}
