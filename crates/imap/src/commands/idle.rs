//! IDLE (RFC 2177): changes to the selected mailbox are pushed as they happen until the
//! client sends DONE.
//!
//! While idle the session waits on three things only: the socket, the store's change
//! notification for its mailbox (one waker) and the keepalive timer. Nothing is polled.
//!
//! Keepalive: a connection silent for minutes is dropped by NAT and mobile gateways, so every
//! `[imap] idle_keepalive_secs` without other output an untagged `* OK Still here` is sent.
//! As in Dovecot, each keepalive also restarts the autologout timer
//! (`idle_timeout_auth_secs`): clients such as Outlook IDLE for hours without re-issuing the
//! command, and a connection that died is found by the keepalive itself (its write fails once
//! TCP gives up). With keepalives off the timer runs from the client's last input only, which
//! RFC 9051 section 6.3.13 allows: clients re-issue IDLE at least every 29 minutes to stay
//! within the usual 30.

use std::time::{Duration, Instant};

use futures_lite::future;

use crate::selected::sync;
use crate::session::{Action, ReadOutcome, Session};
use ringmail_proto::parser::CommandReader;
use ringmail_proto::response::{Code, Reply, StatusResponse};

/// What ended one wait of the IDLE loop.
enum Woke {
    /// The mailbox changed.
    Change,
    /// Nothing was sent for the keepalive interval.
    Keepalive,
    /// The client sent bytes, closed, timed out, or the server is stopping.
    Read(ReadOutcome),
}

/// Runs IDLE until DONE; returns the action for the session loop.
pub async fn run(session: &mut Session, reader: &mut CommandReader, tag: &str) -> Action {
    let config = session.exec.config();
    let keepalive = Some(Duration::from_secs(config.imap.idle_keepalive_secs))
        .filter(|interval| !interval.is_zero());
    let silence = config.idle_auth();
    let mut deadline = Instant::now() + silence;
    let mut next_keepalive = keepalive.map(|interval| Instant::now() + interval);
    session.writer().continuation("idling");
    loop {
        sync(session, true);
        if let (Some(interval), false) = (keepalive, session.out.is_empty()) {
            next_keepalive = Some(Instant::now() + interval);
        }
        if session.flush_out().await.is_err() {
            return Action::Close;
        }
        // DONE may already be buffered (pipelined right after IDLE).
        match reader.next_line() {
            Some(Ok(line)) => {
                if line.eq_ignore_ascii_case(b"DONE") {
                    session.reply(tag, &Reply::ok("IDLE terminated"));
                } else {
                    session.reply(tag, &Reply::bad("Expected DONE"));
                }
                return Action::Continue;
            }
            Some(Err(_)) => {
                session.reply(tag, &Reply::bad("Line too long").with_code(Code::Limit));
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
        let now = Instant::now();
        let woke = future::or(
            async {
                match change {
                    Some(wait) => {
                        wait.await;
                        Woke::Change
                    }
                    None => future::pending().await,
                }
            },
            future::or(
                async {
                    match next_keepalive {
                        Some(at) => {
                            glommio::timer::sleep(at.saturating_duration_since(now)).await;
                            Woke::Keepalive
                        }
                        None => future::pending().await,
                    }
                },
                async {
                    let left = deadline.saturating_duration_since(now);
                    Woke::Read(session.read_more_within(reader, left).await)
                },
            ),
        )
        .await;
        match woke {
            Woke::Change => {}
            Woke::Keepalive => {
                session.send(&StatusResponse::ok("Still here"));
                deadline = Instant::now() + silence;
            }
            Woke::Read(ReadOutcome::Data) => deadline = Instant::now() + silence,
            Woke::Read(ReadOutcome::IdleTimeout) => {
                session.send(&StatusResponse::bye("Autologout; idle for too long"));
                return Action::Close;
            }
            Woke::Read(ReadOutcome::Shutdown) => {
                session.send(&StatusResponse::bye("Server shutting down"));
                return Action::Close;
            }
            Woke::Read(ReadOutcome::Moved) => {
                session.send(&crate::session::moved_bye());
                return Action::Close;
            }
            Woke::Read(ReadOutcome::Closed | ReadOutcome::ProxyRefused) => return Action::Close,
        }
    }
}
