//! ENABLE (RFC 5161): IMAP4rev2, UTF8=ACCEPT, CONDSTORE and QRESYNC. Extensions the server does not know, or does not implement yet, are left
//! out of the `* ENABLED` answer as the RFC asks; that is not an error.

use crate::session::Session;
use ringmail_proto::response::data::Enabled;
use ringmail_proto::response::Reply;

/// `ENABLE cap ...`
pub fn run(session: &mut Session, caps: &[&str]) -> Reply {
    let mut enabled = Vec::new();
    for cap in caps {
        if cap.eq_ignore_ascii_case("IMAP4rev2") {
            if !session.enabled.imap4rev2 {
                session.enabled.imap4rev2 = true;
                enabled.push("IMAP4rev2");
            }
        } else if cap.eq_ignore_ascii_case("UTF8=ACCEPT") && !session.enabled.utf8_accept {
            session.enabled.utf8_accept = true;
            enabled.push("UTF8=ACCEPT");
        } else if cap.eq_ignore_ascii_case("CONDSTORE") && !session.enabled.condstore {
            session.enabled.condstore = true;
            enabled.push("CONDSTORE");
        } else if cap.eq_ignore_ascii_case("QRESYNC") && !session.enabled.qresync {
            // QRESYNC implies CONDSTORE (RFC 7162 section 3.2.3).
            session.enabled.qresync = true;
            session.enabled.condstore = true;
            enabled.push("QRESYNC");
        }
    }
    session.send(&Enabled(&enabled));
    Reply::ok("ENABLE completed")
}
