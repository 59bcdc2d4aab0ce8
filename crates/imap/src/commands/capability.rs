//! CAPABILITY, and the capability list the greeting and tagged responses carry.
//!
//! Only what is implemented end to end is advertised: a client that sees a capability will
//! use it.

use crate::session::{Session, State};

/// Appends the space-separated capability list for the session's current state.
pub fn write_list(session: &Session, out: &mut Vec<u8>) {
    out.extend_from_slice(b"IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID ENABLE");
    match session.state {
        State::NotAuthenticated => {
            if !session.conn.is_tls() && session.exec.tls().is_some() {
                out.extend_from_slice(b" STARTTLS");
            }
            if session.plaintext_auth_allowed() {
                // OAUTHBEARER and XOAUTH2 only when a backend takes bearer tokens.
                for mechanism in session.exec.auth.sasl_mechanisms() {
                    out.extend_from_slice(b" AUTH=");
                    out.extend_from_slice(mechanism.as_bytes());
                }
            } else {
                out.extend_from_slice(b" LOGINDISABLED");
            }
        }
        State::Authenticated { .. } => {
            out.extend_from_slice(
                b" NAMESPACE UTF8=ACCEPT IDLE UIDPLUS MOVE UNSELECT CHILDREN LIST-EXTENDED \
                  LIST-STATUS SPECIAL-USE CREATE-SPECIAL-USE STATUS=SIZE MULTIAPPEND BINARY PREVIEW \
                  QUOTA QUOTA=RES-STORAGE QUOTA=RES-MESSAGE ESEARCH SEARCHRES SORT SORT=DISPLAY \
                  ESORT THREAD=ORDEREDSUBJECT THREAD=REFERENCES WITHIN CONDSTORE QRESYNC OBJECTID \
                  SAVEDATE",
            );
            out.extend_from_slice(
                format!(" APPENDLIMIT={}", session.exec.config().limits.max_literal).as_bytes(),
            );
        }
    }
}

/// The greeting: `* OK [CAPABILITY ...] ringmail ready`, so clients need no CAPABILITY
/// round trip.
pub fn greeting(session: &mut Session) {
    let mut line = b"* OK [CAPABILITY ".to_vec();
    write_list(session, &mut line);
    line.extend_from_slice(b"] ringmail ready\r\n");
    session.out.extend_from_slice(&line);
}

/// `CAPABILITY`
pub fn run(session: &mut Session, tag: &str) {
    let mut line = b"* CAPABILITY ".to_vec();
    write_list(session, &mut line);
    line.extend_from_slice(b"\r\n");
    session.out.extend_from_slice(&line);
    session.tagged(tag, "OK", "CAPABILITY completed");
}
