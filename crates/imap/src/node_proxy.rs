//! Sessions whose user's partition another node of the cluster serves (docs/cluster.md).
//!
//! After a successful login on a node that does not serve the user, the session is proxied:
//! the node opens an authenticated connection to the owner, sends the user, the client's
//! address, the login's tag, the ENABLEd extensions and whatever the client pipelined after
//! its login, and from then on copies bytes both ways. TLS ends here; the owner serves the
//! session as though the client were its own, starting logged in, and writes the login's
//! tagged OK itself (after counting the session against `max_sessions_per_user_ip`), so the
//! client sees one ordinary session, IDLE included.

use std::rc::Rc;
use std::time::Duration;

use futures_lite::future;
use ringmail_peer::{IncomingSession, PumpEnd, PumpOptions, SessionHeader};
use ringmail_proto::parser::CommandReader;
use ringmail_proto::response::{Code, Reply};
use ringmail_runtime::conn::Conn;
use ringmail_runtime::conn_io::ConnIo;
use ringmail_runtime::nodes::{Place, Remote};
use ringmail_runtime::runtime::Executor;
use tracing::{debug, info, warn};

use crate::session::{Enabled, Session, State};

/// How long a proxied session may stay silent both ways: beyond the owner's autologout
/// (which ends an idle session itself), so this only catches an owner that vanished.
fn pump_idle(exec: &Executor) -> Duration {
    exec.config().idle_auth() * 2 + Duration::from_secs(60)
}

/// Proxies a logged-in session to `to`, the node serving its user. True when the session
/// went there (it has ended when this returns); false when the owner could not be reached:
/// the login was then answered `NO [UNAVAILABLE]` and the session goes on, not logged in.
pub(crate) async fn proxy(
    session: &mut Session,
    reader: &mut CommandReader,
    tag: &str,
    to: &Remote,
) -> bool {
    let Some(link) = session.exec.nodes.as_ref().map(|n| n.link.clone()) else {
        return false;
    };
    let State::Authenticated { user } = &session.state else {
        return false;
    };
    let user = user.clone();
    if session.flush_out().await.is_err() {
        return true;
    }
    let header = SessionHeader {
        user: user.clone(),
        client: session.conn.peer,
        local: session.conn.local,
        extensions: encode_state(session.enabled, session.storage_quota),
        tag: tag.to_string(),
        pipelined: reader.take_unread(),
    };
    let stream = link.open_session(&to.node, &to.addr, &header).await;
    let mut stream = match stream {
        Ok(stream) => stream,
        Err(e) => {
            warn!(user = %user, node = %to.node, "cannot proxy the session to its owner: {e}");
            reader.feed(&header.pipelined);
            session.state = State::NotAuthenticated;
            let reply =
                Reply::no("The server holding this mailbox cannot be reached, try again later");
            session.reply(tag, &reply.with_code(Code::Unavailable));
            return false;
        }
    };
    debug!(node = %to.node, "session proxied to its owner");
    session.meter.end("proxied to another node");
    let options = PumpOptions::new(pump_idle(&session.exec));
    let exec = session.exec.clone();
    let report = {
        let mut client = ConnIo::new(&mut session.conn);
        // At shutdown the pump stops: both connections close, the client reconnects through
        // the balancer.
        future::or(
            async { Some(link.pump(&mut client, &mut stream, &options).await) },
            async {
                exec.shutting_down().await;
                None
            },
        )
        .await
    };
    match report {
        Some(report) => match report.end {
            PumpEnd::Failed { side, error } => {
                info!(node = %to.node, ?side, "proxied session failed: {error}")
            }
            end => debug!(
                node = %to.node,
                to_owner = report.to_peer,
                to_client = report.to_client,
                ?end,
                "proxied session ended"
            ),
        },
        None => debug!("proxied session closed at shutdown"),
    }
    session.conn.close().await;
    true
}

/// On the owner: serves a session another node proxied here. It starts logged in, with the
/// pipelined bytes first; the login's tagged reply is written here.
pub fn accept(exec: Rc<Executor>, incoming: IncomingSession) {
    let IncomingSession {
        peer,
        header,
        stream,
    } = incoming;
    let mut conn = Conn::new(stream, header.client, header.local);
    if exec.place(&header.user) != Place::Here {
        // The maps of the two nodes disagree for a moment (a partition just moved): the
        // client logs in again through the balancer.
        info!(user = %header.user, from = %peer, "proxied session refused: this node does not serve the user now");
        let reply = format!(
            "{} NO [UNAVAILABLE] The mailbox is moving, try again\r\n",
            header.tag
        );
        glommio::spawn_local(async move {
            let _ = conn.write_all(reply.as_bytes()).await;
            conn.close().await;
        })
        .detach();
        return;
    }
    let (enabled, storage_quota) = decode_state(&header.extensions);
    debug!(user = %header.user, from = %peer, "serving a session proxied by another node");
    crate::session::adopt_from_node(
        exec,
        conn,
        header.user,
        header.tag,
        enabled,
        storage_quota,
        header.pipelined,
    );
}

/// The session state that goes with a proxied session: the ENABLEd extensions (one byte),
/// then, when the login's backend named one (LDAP's quota attribute), the storage quota as a
/// big-endian u64. The owner applies the quota where the store lives, as it would for a
/// login of its own. A header with the first byte only (a node from before the quota was
/// carried) means no quota.
fn encode_state(enabled: Enabled, storage_quota: Option<u64>) -> Vec<u8> {
    let mut out = vec![encode_enabled(enabled)];
    if let Some(bytes) = storage_quota {
        out.extend_from_slice(&bytes.to_be_bytes());
    }
    out
}

fn decode_state(bytes: &[u8]) -> (Enabled, Option<u64>) {
    let enabled = decode_enabled(bytes.first().copied().unwrap_or(0));
    let quota = bytes
        .get(1..9)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes);
    (enabled, quota)
}

fn encode_enabled(enabled: Enabled) -> u8 {
    u8::from(enabled.imap4rev2)
        | (u8::from(enabled.utf8_accept) << 1)
        | (u8::from(enabled.condstore) << 2)
        | (u8::from(enabled.qresync) << 3)
}

fn decode_enabled(bits: u8) -> Enabled {
    Enabled {
        imap4rev2: bits & 1 != 0,
        utf8_accept: bits & 2 != 0,
        condstore: bits & 4 != 0,
        qresync: bits & 8 != 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enabled_extensions_survive_the_trip() {
        for bits in 0..16u8 {
            assert_eq!(encode_enabled(decode_enabled(bits)), bits);
        }
        let all = Enabled {
            imap4rev2: true,
            utf8_accept: false,
            condstore: true,
            qresync: true,
        };
        assert_eq!(decode_enabled(encode_enabled(all)), all);
    }

    #[test]
    fn the_directory_quota_travels_with_the_session() {
        let enabled = decode_enabled(0b1011);
        for quota in [None, Some(0), Some(2048), Some(u64::MAX)] {
            assert_eq!(
                decode_state(&encode_state(enabled, quota)),
                (enabled, quota)
            );
        }
        // A node that sends the extensions byte only: no quota.
        assert_eq!(decode_state(&[0b1011]), (enabled, None));
        assert_eq!(decode_state(&[]), (decode_enabled(0), None));
    }
}
