//! CAPABILITY, and the capability list the greeting and tagged responses carry.
//!
//! Only what is implemented end to end is advertised: a client that sees a capability will
//! use it.

use std::borrow::Cow;

use crate::session::{Session, State};
use ringmail_proto::response::data::Capability;
use ringmail_proto::response::{Code, Reply, StatusResponse};

/// What every state offers.
const ALWAYS: &[&str] = &[
    "IMAP4rev1",
    "IMAP4rev2",
    "LITERAL+",
    "SASL-IR",
    "ID",
    "ENABLE",
];

/// What a logged-in session offers besides [`ALWAYS`] and APPENDLIMIT.
const AUTHENTICATED: &[&str] = &[
    "NAMESPACE",
    "UTF8=ACCEPT",
    "IDLE",
    "UIDPLUS",
    "MOVE",
    "UNSELECT",
    "CHILDREN",
    "LIST-EXTENDED",
    "LIST-STATUS",
    "SPECIAL-USE",
    "CREATE-SPECIAL-USE",
    "STATUS=SIZE",
    "MULTIAPPEND",
    "BINARY",
    "PREVIEW",
    "QUOTA",
    "QUOTA=RES-STORAGE",
    "QUOTA=RES-MESSAGE",
    "ESEARCH",
    "SEARCHRES",
    "SORT",
    "SORT=DISPLAY",
    "ESORT",
    "THREAD=ORDEREDSUBJECT",
    "THREAD=REFERENCES",
    "WITHIN",
    "CONDSTORE",
    "QRESYNC",
    "OBJECTID",
    "SAVEDATE",
];

/// The capability list for the session's current state.
pub fn list(session: &Session) -> Vec<Cow<'static, str>> {
    let mut caps: Vec<Cow<'static, str>> = ALWAYS.iter().map(|&c| Cow::Borrowed(c)).collect();
    match session.state {
        State::NotAuthenticated => {
            if !session.conn.is_tls() && session.exec.tls().is_some() {
                caps.push("STARTTLS".into());
            }
            if session.plaintext_auth_allowed() {
                // OAUTHBEARER and XOAUTH2 only when a backend takes bearer tokens.
                for mechanism in session.exec.auth.sasl_mechanisms() {
                    caps.push(format!("AUTH={mechanism}").into());
                }
            } else {
                caps.push("LOGINDISABLED".into());
            }
        }
        State::Authenticated { .. } => {
            caps.extend(AUTHENTICATED.iter().map(|&c| Cow::Borrowed(c)));
            let limit = session.exec.config().limits.max_literal;
            caps.push(format!("APPENDLIMIT={limit}").into());
        }
    }
    caps
}

/// The greeting: `* OK [CAPABILITY ...] ringmail ready`, so clients need no CAPABILITY
/// round trip.
pub fn greeting(session: &mut Session) {
    let greeting = StatusResponse::ok("ringmail ready").with_code(Code::Capability(list(session)));
    session.send(&greeting);
}

/// `CAPABILITY`
pub fn run(session: &mut Session) -> Reply {
    let caps = list(session);
    session.send(&Capability(&caps));
    Reply::ok("CAPABILITY completed")
}
