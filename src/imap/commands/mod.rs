//! One file per command group, as Dovecot's src/imap has one per command. `dispatch` checks
//! the RFC 9051 state a command is valid in and hands it to its module.

pub mod authenticate;
pub mod capability;
pub mod enable;
pub mod id;
pub mod login;
pub mod namespace;
pub mod starttls;

use crate::imap::parser::{Command, CommandBody};
use crate::imap::session::{Action, Session, State};

/// Runs one command and says what the session loop must do next.
pub async fn dispatch(session: &mut Session, command: Command<'_>) -> Action {
    let tag = command.tag;
    let authenticated = matches!(session.state, State::Authenticated { .. });
    match command.body {
        CommandBody::Capability => {
            capability::run(session, tag);
            Action::Continue
        }
        CommandBody::Noop => {
            session.tagged(tag, "OK", "NOOP completed");
            Action::Continue
        }
        CommandBody::Logout => {
            session.untagged("BYE Logging out");
            session.tagged(tag, "OK", "LOGOUT completed");
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
            session.tagged(tag, "BAD", "Already logged in");
            Action::Continue
        }
        _ if !authenticated => {
            session.tagged(tag, "BAD", "Log in first");
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
        other => {
            session.tagged(
                tag,
                "BAD",
                &format!("{} is not supported by this server yet", name(&other)),
            );
            Action::Continue
        }
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
