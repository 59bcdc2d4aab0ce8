//! Admin sessions for users another node of the cluster serves (docs/cluster.md, "Admin
//! socket from any node"): the node whose socket the tool reached passes each request over
//! the node-to-node link to the partition's owner, which runs it exactly as a request from
//! its own socket (`crate::server`, on the executor that owns the user) and answers with the
//! reply. So `ringmail import` and `ringmail export` work on any node, and only the owner
//! ever writes the partition.
//!
//! One RPC per admin request, [`KIND_ADMIN`]; the payload is
//! `u64 session | u16 user length | user | request frame` (big-endian, the frame without its
//! length prefix; no frame: the tool's connection ended). The owner numbers the session when
//! it gets the hello (session 0) and the reply carries the number: `u64 session | reply frame`.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use ringmail_runtime::nodes::Remote;
use ringmail_runtime::runtime::Executor;

use crate::protocol::{Reply, Request, VERSION};
use crate::server::relay;

/// RPC kind of a forwarded admin request.
pub const KIND_ADMIN: u16 = 0x0301;

const OK: u16 = 0;
const REFUSED: u16 = 1;

/// The tool's side of a forwarded session: where its requests go, and the owner's number
/// for it (0 until the hello was answered).
pub struct Forwarded {
    to: Remote,
    session: u64,
}

impl Forwarded {
    pub fn new(to: Remote) -> Forwarded {
        Forwarded { to, session: 0 }
    }

    /// Sends `request` (None: the connection ended) for `user` to the owner; its reply.
    pub async fn relay(&mut self, exec: &Executor, user: &str, request: Option<Request>) -> Reply {
        let Some(nodes) = exec.nodes.as_ref() else {
            return Reply::Error("not a cluster node".into());
        };
        let frame = request.map(|r| r.encode());
        let payload = encode(
            self.session,
            user,
            frame.as_deref().map(|f| &f[4..]).unwrap_or_default(),
        );
        let answer = match nodes
            .pool
            .call(&self.to.node, &self.to.addr, KIND_ADMIN, &payload)
            .await
        {
            Ok(answer) => answer,
            Err(e) => {
                return Reply::Error(format!(
                    "node {} serves this user and did not answer: {e}; run the command again \
                     (an import adds only what is missing)",
                    self.to.node
                ))
            }
        };
        if answer.status != OK {
            return Reply::Error(format!(
                "node {} refused: {}",
                self.to.node,
                String::from_utf8_lossy(&answer.payload)
            ));
        }
        match decode_reply(&answer.payload) {
            Some((session, reply)) => {
                self.session = session;
                reply
            }
            None => Reply::Error(format!("node {} sent a malformed reply", self.to.node)),
        }
    }
}

/// The owner's side: runs one forwarded request; (status, payload) for the link's response.
pub fn serve(
    exec: Rc<Executor>,
    payload: Vec<u8>,
) -> Pin<Box<dyn Future<Output = (u16, Vec<u8>)>>> {
    Box::pin(async move {
        let Some((session, user, frame)) = decode(&payload) else {
            return (REFUSED, b"malformed admin request".to_vec());
        };
        let request = match frame {
            [] => None,
            frame => match Request::decode(frame) {
                Ok(r) => Some(r),
                Err(e) => return (REFUSED, e.to_string().into_bytes()),
            },
        };
        let session = match (&request, session) {
            (Some(Request::Hello { version, .. }), 0) if *version == VERSION => {
                exec.new_session_id()
            }
            (Some(Request::Hello { version, .. }), 0) => {
                let why = format!(
                    "the forwarding node speaks admin protocol {version}, this node \
                     {VERSION}: run the tool on a node of this node's version"
                );
                return (OK, encode_reply(0, &Reply::Error(why)));
            }
            (_, 0) => {
                return (
                    REFUSED,
                    b"a forwarded admin session starts with a hello".to_vec(),
                )
            }
            (_, session) => session,
        };
        let owner = exec.owner_of(user);
        let reply = relay(&exec, owner, session, user, request).await;
        (OK, encode_reply(session, &reply))
    })
}

fn encode(session: u64, user: &str, frame: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(10 + user.len() + frame.len());
    out.extend_from_slice(&session.to_be_bytes());
    out.extend_from_slice(&(user.len() as u16).to_be_bytes());
    out.extend_from_slice(user.as_bytes());
    out.extend_from_slice(frame);
    out
}

fn decode(b: &[u8]) -> Option<(u64, &str, &[u8])> {
    let session = u64::from_be_bytes(b.get(0..8)?.try_into().ok()?);
    let len = u16::from_be_bytes(b.get(8..10)?.try_into().ok()?) as usize;
    let user = std::str::from_utf8(b.get(10..10 + len)?).ok()?;
    Some((session, user, b.get(10 + len..)?))
}

fn encode_reply(session: u64, reply: &Reply) -> Vec<u8> {
    let frame = reply.encode();
    let mut out = Vec::with_capacity(8 + frame.len());
    out.extend_from_slice(&session.to_be_bytes());
    out.extend_from_slice(&frame[4..]);
    out
}

fn decode_reply(b: &[u8]) -> Option<(u64, Reply)> {
    let session = u64::from_be_bytes(b.get(0..8)?.try_into().ok()?);
    Some((session, Reply::decode(b.get(8..)?).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_replies_survive_their_encoding_and_cut_payloads_are_refused() {
        let frame = Request::ListMailboxes.encode();
        let wire = encode(42, "anna@example.com", &frame[4..]);
        let (session, user, back) = decode(&wire).unwrap();
        assert_eq!((session, user), (42, "anna@example.com"));
        assert_eq!(Request::decode(back).unwrap(), Request::ListMailboxes);
        for cut in 0..10 + user.len() {
            assert!(decode(&wire[..cut]).is_none(), "cut at {cut}");
        }
        let reply = encode_reply(7, &Reply::Ok("stored".into()));
        let (session, back) = decode_reply(&reply).unwrap();
        assert_eq!(session, 7);
        assert!(matches!(back, Reply::Ok(s) if s == "stored"));
        assert!(decode_reply(&reply[..6]).is_none());
    }
}
