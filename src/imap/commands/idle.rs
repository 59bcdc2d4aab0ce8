//! IDLE (RFC 2177): changes to the selected mailbox are pushed as they happen until the
//! client sends DONE.
//!
//! While idle the session waits on two things only: the socket and the store's change
//! notification for its mailbox (one waker). Nothing is polled.

use futures_lite::future;

use crate::imap::parser::CommandReader;
use crate::imap::selected::sync;
use crate::imap::session::{Action, ReadOutcome, Session};

/// Runs IDLE until DONE; returns the action for the session loop.
pub async fn run(session: &mut Session, reader: &mut CommandReader, tag: &str) -> Action {
    session.out.extend_from_slice(b"+ idling\r\n");
    loop {
        sync(session, true);
        if session.flush_out().await.is_err() {
            return Action::Close;
        }
        // DONE may already be buffered (pipelined right after IDLE).
        match reader.next_line() {
            Some(Ok(line)) => {
                if line.eq_ignore_ascii_case(b"DONE") {
                    session.tagged(tag, "OK", "IDLE terminated");
                } else {
                    session.tagged(tag, "BAD", "Expected DONE");
                }
                return Action::Continue;
            }
            Some(Err(_)) => {
                session.tagged(tag, "BAD", "[LIMIT] Line too long");
                return Action::Continue;
            }
            None => {}
        }
        let change = match (&session.selected, session.opened_mail(), session.user()) {
            (Some(sel), Some(mail), Some(user)) => {
                Some(mail.wait_for_change(user, sel.id, sel.modseq))
            }
            _ => None,
        };
        let woke = future::or(
            async {
                match change {
                    Some(wait) => {
                        wait.await;
                        None
                    }
                    None => future::pending().await,
                }
            },
            async { Some(session.read_more(reader).await) },
        )
        .await;
        match woke {
            None | Some(ReadOutcome::Data) => {}
            Some(ReadOutcome::IdleTimeout) => {
                session.untagged("BYE Autologout; idle for too long");
                return Action::Close;
            }
            Some(ReadOutcome::Shutdown) => {
                session.untagged("BYE Server shutting down");
                return Action::Close;
            }
            Some(ReadOutcome::Closed | ReadOutcome::ProxyRefused) => return Action::Close,
        }
    }
}
