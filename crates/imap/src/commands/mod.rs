//! One file per command group, as Dovecot's src/imap has one per command. The command
//! table (`table`) says what each command needs; `dispatch` checks that once, runs the
//! handler and writes its tagged reply after the sync the table allows.

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
pub mod table;
pub mod thread;

use crate::selected::{announce_new, sync};
use crate::session::{Action, Session, State};
use reply::{Code, Reply};
use ringmail_proto::parser::{Command, CommandBody};
use ringmail_proto::response::StatusResponse;
use table::Needs;

/// What a handler hands back: the tagged reply for the dispatcher to write (after the sync
/// the command table allows), and what the session loop does next. A handler that needs
/// the session loop before it can answer (LOGIN, AUTHENTICATE, IDLE) returns only an
/// [`Action`] and answers itself.
pub struct Outcome {
    /// The tagged reply, if the dispatcher writes it.
    pub reply: Option<Reply>,
    /// What the session loop does next.
    pub then: Action,
}

impl Outcome {
    /// `reply`, then `action`.
    pub fn then(reply: Reply, action: Action) -> Outcome {
        Outcome {
            reply: Some(reply),
            then: action,
        }
    }
}

impl From<Reply> for Outcome {
    fn from(reply: Reply) -> Outcome {
        Outcome::then(reply, Action::Continue)
    }
}

impl From<Action> for Outcome {
    fn from(then: Action) -> Outcome {
        Outcome { reply: None, then }
    }
}

/// Runs one command and says what the session loop must do next.
pub async fn dispatch(session: &mut Session, command: Command<'_>) -> Action {
    let tag = command.tag;
    let entry = table::entry(&command.body);
    let authenticated = matches!(session.state, State::Authenticated { .. });
    if authenticated && entry.uid {
        // The UIDs may come from another connection (a message it appended): make them name
        // messages of this session's view before acting.
        announce_new(session);
    }
    if let Some(why) = refusal(session, entry.spec.needs) {
        session.reply(tag, &Reply::bad(why));
        return Action::Continue;
    }
    let outcome = run(session, tag, command.body).await;
    if let Some(reply) = outcome.reply {
        if let Some(allow_expunge) = entry.sync() {
            sync(session, allow_expunge);
        }
        session.reply(tag, &reply);
    }
    outcome.then
}

/// Why a command may not run in the session's state, or `None` when it may.
fn refusal(session: &Session, needs: Needs) -> Option<&'static str> {
    let authenticated = matches!(session.state, State::Authenticated { .. });
    match needs {
        Needs::Any => None,
        Needs::NotAuthenticated if authenticated => Some("Already logged in"),
        Needs::Authenticated | Needs::Selected if !authenticated => Some("Log in first"),
        Needs::Selected if session.selected.is_none() => Some("No mailbox selected"),
        _ => None,
    }
}

/// Hands a command whose state was checked to its handler.
async fn run(session: &mut Session, tag: &str, body: CommandBody<'_>) -> Outcome {
    match body {
        CommandBody::Capability => capability::run(session).into(),
        CommandBody::Noop => Reply::ok("NOOP completed").into(),
        CommandBody::Logout => {
            session.meter.end("logout");
            session.send(&StatusResponse::bye("Logging out"));
            Outcome::then(Reply::ok("LOGOUT completed"), Action::Close)
        }
        CommandBody::Id(params) => id::run(session, params.as_deref()).into(),
        CommandBody::StartTls => starttls::run(session),
        CommandBody::Login { user, password } => {
            login::run(session, tag, &user, &password).await.into()
        }
        CommandBody::Authenticate { mechanism, initial } => {
            login::authenticate_start(session, tag, mechanism, initial).into()
        }
        CommandBody::Enable(caps) => enable::run(session, &caps).into(),
        CommandBody::Namespace => namespace::run(session).into(),
        CommandBody::Check => Reply::ok("CHECK completed").into(),
        CommandBody::Idle => Action::Idle {
            tag: tag.to_string(),
        }
        .into(),
        CommandBody::Create {
            mailbox,
            special_use,
        } => mailboxes::create(session, &mailbox, &special_use)
            .await
            .into(),
        CommandBody::Delete(mailbox) => mailboxes::delete(session, &mailbox).await.into(),
        CommandBody::Rename { from, to } => mailboxes::rename(session, &from, &to).await.into(),
        CommandBody::Subscribe(mailbox) => {
            mailboxes::subscribe(session, &mailbox, true).await.into()
        }
        CommandBody::Unsubscribe(mailbox) => {
            mailboxes::subscribe(session, &mailbox, false).await.into()
        }
        CommandBody::List {
            selection,
            reference,
            patterns,
            returns,
        } => mailboxes::list(session, &selection, &reference, &patterns, &returns, false)
            .await
            .into(),
        CommandBody::Lsub { reference, pattern } => {
            mailboxes::list(session, &[], &reference, &[pattern], &[], true)
                .await
                .into()
        }
        CommandBody::Status { mailbox, items } => {
            mailboxes::status(session, &mailbox, &items).await.into()
        }
        CommandBody::Append { mailbox, messages } => {
            let reply = append::append(session, &mailbox, &messages).await;
            if reply.is_ok() {
                let bytes = messages.iter().map(|m| m.data.len() as u64).sum();
                let count = messages.len() as u64;
                session.exec.metrics.borrow_mut().appended(count, bytes);
            }
            reply.into()
        }
        CommandBody::GetQuota(root) => quota::get_quota(session, &root).await.into(),
        CommandBody::GetQuotaRoot(mailbox) => quota::get_quota_root(session, &mailbox).await.into(),
        CommandBody::SetQuota { .. } => Reply::no("Quotas are set in the server configuration")
            .with_code(Code::NoPerm)
            .into(),
        CommandBody::Select { mailbox, params } => {
            select::select(session, &mailbox, &params, false)
                .await
                .into()
        }
        CommandBody::Examine { mailbox, params } => {
            select::select(session, &mailbox, &params, true)
                .await
                .into()
        }
        CommandBody::Close => select::close(session).await.into(),
        CommandBody::Unselect => select::unselect(session).into(),
        CommandBody::Expunge => expunge::expunge(session, None).await.into(),
        CommandBody::UidExpunge(set) => expunge::expunge(session, Some(&set)).await.into(),
        CommandBody::Fetch {
            uid,
            set,
            attrs,
            modifiers,
        } => fetch::fetch(session, uid, &set, &attrs, &modifiers)
            .await
            .into(),
        CommandBody::Store {
            uid,
            set,
            unchanged_since,
            mode,
            silent,
            flags,
        } => store::store(session, uid, &set, unchanged_since, mode, silent, &flags)
            .await
            .into(),
        CommandBody::Copy { uid, set, mailbox } => {
            copy::copy(session, uid, &set, &mailbox, false).await.into()
        }
        CommandBody::Move { uid, set, mailbox } => {
            copy::copy(session, uid, &set, &mailbox, true).await.into()
        }
        CommandBody::Search {
            uid,
            ret,
            charset,
            criteria,
        } => search::search(
            session,
            tag,
            uid,
            ret.as_deref(),
            charset.as_deref(),
            &criteria,
        )
        .await
        .into(),
        CommandBody::Sort {
            uid,
            ret,
            criteria,
            charset,
            keys,
        } => sort::sort(
            session,
            tag,
            uid,
            ret.as_deref(),
            &criteria,
            &charset,
            &keys,
        )
        .await
        .into(),
        CommandBody::Thread {
            uid,
            algorithm,
            charset,
            keys,
        } => thread::thread(session, uid, algorithm, &charset, &keys)
            .await
            .into(),
    }
}

/// The command's name, for logs and messages (the command table's).
pub fn name(body: &CommandBody<'_>) -> &'static str {
    table::entry(body).spec.name
}
