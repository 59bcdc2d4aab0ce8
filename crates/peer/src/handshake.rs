//! The challenge-response handshake that opens every node-to-node connection, and the first
//! frame that says what the connection is for.
//!
//! ```text
//! dialer                                           listener
//! hello: magic, version, len, nonce_d,
//!        cluster, dialer id, expected id   ──►     checks magic, version, cluster, that it is
//!                                                  the expected node; else closes, sends nothing
//!                                          ◄──     magic, version, nonce_a
//! proof_d = HMAC(secret, DIALER, ...)
//! + the opening frame (pipelined)          ──►     reads exactly proof_d; a wrong one: closes
//!                                                  without reading further
//!                                          ◄──     proof_a = HMAC(secret, LISTENER, ...)
//! checks proof_a before reading anything            reads the opening frame
//! else from the listener
//! ```
//!
//! Both proofs cover the cluster name, both node ids and both nonces, with a different role
//! byte, so neither can be replayed on another connection or reflected back to its sender.
//! The listener's first bytes are a fresh random nonce: a peer that has not proved the
//! secret learns nothing from them.

use futures_lite::{AsyncRead, AsyncWrite, AsyncWriteExt};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::session::SessionHeader;
use crate::wire::{
    put_short, read_body, read_head, Decoder, MAGIC, NONCE_LEN, PROOF_LEN, USE_RPC, USE_SESSION,
    VERSION,
};
use crate::{HandshakeError, LinkConfig};

/// A hello's body: nonce and three names of at most 255 bytes with their lengths.
const MAX_HELLO_BODY: usize = NONCE_LEN + 3 * 256;
/// magic, version, body length.
const HELLO_HEAD_LEN: usize = 8 + 2 + 2;
/// magic, version, nonce.
const REPLY_LEN: usize = 8 + 2 + NONCE_LEN;
/// The opening frame's head: use, body length.
const OPEN_HEAD_LEN: usize = 1 + 4;

const ROLE_DIALER: u8 = 1;
const ROLE_LISTENER: u8 = 2;
/// Keeps these MACs apart from any other use of the same secret.
const MAC_CONTEXT: &[u8] = b"ringmail node link v1\0";

/// What a connection is for, as its opening frame says.
#[derive(Debug)]
pub(crate) enum Opening {
    Session(SessionHeader),
    Rpc,
}

impl Opening {
    /// The opening frame's bytes.
    pub(crate) fn encode(use_: u8, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(OPEN_HEAD_LEN + body.len());
        out.push(use_);
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(body);
        out
    }
}

/// The names both proofs cover.
struct Transcript<'a> {
    cluster: &'a str,
    dialer: &'a str,
    listener: &'a str,
    nonce_d: &'a [u8; NONCE_LEN],
    nonce_a: &'a [u8; NONCE_LEN],
}

impl Transcript<'_> {
    fn proof(&self, secret: &[u8], role: u8) -> [u8; PROOF_LEN] {
        let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
            Ok(mac) => mac,
            // HMAC takes keys of any length; this arm cannot be reached.
            Err(_) => return [0; PROOF_LEN],
        };
        mac.update(MAC_CONTEXT);
        mac.update(&[role]);
        for name in [self.cluster, self.dialer, self.listener] {
            mac.update(&[name.len() as u8]);
            mac.update(name.as_bytes());
        }
        mac.update(self.nonce_d);
        mac.update(self.nonce_a);
        mac.finalize().into_bytes().into()
    }

    fn check(&self, secret: &[u8], role: u8, given: &[u8; PROOF_LEN]) -> bool {
        self.proof(secret, role).ct_eq(given).into()
    }
}

fn nonce() -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    nonce
}

/// A read that ended or was reset during the handshake: the other end closed on us.
fn refused_on_close(e: std::io::Error) -> HandshakeError {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    if matches!(
        e.kind(),
        UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe
    ) {
        HandshakeError::Refused
    } else {
        HandshakeError::Io(e)
    }
}

/// The dialer's side: proves the secret, sends `opening` right behind its proof (the listener
/// reads it only once the proof checked out), and returns once the listener proved the secret
/// too; nothing the listener sent is read before that.
pub(crate) async fn dial<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    config: &LinkConfig,
    expected: &str,
    opening: &[u8],
) -> Result<(), HandshakeError> {
    if expected.is_empty() || expected.len() > 255 {
        return Err(HandshakeError::Malformed(
            "a node id must be 1 to 255 bytes",
        ));
    }
    let nonce_d = nonce();
    let mut body = Vec::with_capacity(MAX_HELLO_BODY);
    body.extend_from_slice(&nonce_d);
    put_short(&mut body, config.cluster.as_bytes());
    put_short(&mut body, config.node.as_bytes());
    put_short(&mut body, expected.as_bytes());
    let mut hello = Vec::with_capacity(HELLO_HEAD_LEN + body.len());
    hello.extend_from_slice(&MAGIC);
    hello.extend_from_slice(&VERSION.to_be_bytes());
    hello.extend_from_slice(&(body.len() as u16).to_be_bytes());
    hello.extend_from_slice(&body);
    stream.write_all(&hello).await.map_err(refused_on_close)?;

    let reply: [u8; REPLY_LEN] = read_head(stream)
        .await
        .map_err(refused_on_close)?
        .ok_or(HandshakeError::Refused)?;
    let mut d = Decoder::new(&reply);
    if d.array::<8>() != Some(MAGIC) {
        return Err(HandshakeError::NotAPeer);
    }
    let version = d.u16().unwrap_or_default();
    if version != VERSION {
        return Err(HandshakeError::Version(version));
    }
    let nonce_a: [u8; NONCE_LEN] = d.array().ok_or(HandshakeError::Malformed("short reply"))?;
    let transcript = Transcript {
        cluster: &config.cluster,
        dialer: &config.node,
        listener: expected,
        nonce_d: &nonce_d,
        nonce_a: &nonce_a,
    };
    let mut out = Vec::with_capacity(PROOF_LEN + opening.len());
    out.extend_from_slice(&transcript.proof(&config.secret, ROLE_DIALER));
    out.extend_from_slice(opening);
    stream.write_all(&out).await.map_err(refused_on_close)?;
    drop(out);

    let proof: [u8; PROOF_LEN] = read_head(stream)
        .await
        .map_err(refused_on_close)?
        .ok_or(HandshakeError::Refused)?;
    if !transcript.check(&config.secret, ROLE_LISTENER, &proof) {
        return Err(HandshakeError::BadProof);
    }
    Ok(())
}

/// The listener's side: returns the dialer's node id and what the connection is for. On any
/// failure it returns at once, having sent nothing but its nonce (and that only to a dialer
/// of the right cluster that asked for this node), and having read nothing past the point of
/// failure; the caller closes the connection.
pub(crate) async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    config: &LinkConfig,
) -> Result<(String, Opening), HandshakeError> {
    let head: [u8; HELLO_HEAD_LEN] = read_head(stream)
        .await?
        .ok_or(HandshakeError::Io(std::io::ErrorKind::UnexpectedEof.into()))?;
    let mut d = Decoder::new(&head);
    if d.array::<8>() != Some(MAGIC) {
        return Err(HandshakeError::NotAPeer);
    }
    let version = d.u16().unwrap_or_default();
    if version != VERSION {
        return Err(HandshakeError::Version(version));
    }
    let len = d.u16().unwrap_or_default() as usize;
    if len > MAX_HELLO_BODY {
        return Err(HandshakeError::Malformed("hello too long"));
    }
    let body = read_body(stream, len).await?;
    let mut d = Decoder::new(&body);
    let malformed = || HandshakeError::Malformed("bad hello");
    let nonce_d: [u8; NONCE_LEN] = d.array().ok_or_else(malformed)?;
    let text = |b: Option<&[u8]>| {
        b.and_then(|b| std::str::from_utf8(b).ok())
            .map(str::to_owned)
    };
    let (Some(cluster), Some(dialer), Some(expected)) =
        (text(d.short()), text(d.short()), text(d.short()))
    else {
        return Err(malformed());
    };
    if !d.is_empty() || dialer.is_empty() {
        return Err(malformed());
    }
    if cluster != config.cluster {
        return Err(HandshakeError::ClusterMismatch {
            ours: config.cluster.clone(),
            theirs: cluster,
        });
    }
    if expected != config.node {
        return Err(HandshakeError::WrongNode {
            expected,
            ours: config.node.clone(),
        });
    }

    let nonce_a = nonce();
    let mut reply = Vec::with_capacity(REPLY_LEN);
    reply.extend_from_slice(&MAGIC);
    reply.extend_from_slice(&VERSION.to_be_bytes());
    reply.extend_from_slice(&nonce_a);
    stream.write_all(&reply).await?;

    let transcript = Transcript {
        cluster: &config.cluster,
        dialer: &dialer,
        listener: &config.node,
        nonce_d: &nonce_d,
        nonce_a: &nonce_a,
    };
    let proof: [u8; PROOF_LEN] = read_head(stream)
        .await?
        .ok_or(HandshakeError::Io(std::io::ErrorKind::UnexpectedEof.into()))?;
    if !transcript.check(&config.secret, ROLE_DIALER, &proof) {
        return Err(HandshakeError::BadProof);
    }
    stream
        .write_all(&transcript.proof(&config.secret, ROLE_LISTENER))
        .await?;

    // Authenticated: now the opening frame may be read.
    let head: [u8; OPEN_HEAD_LEN] = read_head(stream)
        .await?
        .ok_or(HandshakeError::Io(std::io::ErrorKind::UnexpectedEof.into()))?;
    let use_ = head[0];
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]);
    let opening = match use_ {
        USE_SESSION => {
            if len as u64 > config.max_frame as u64 {
                return Err(HandshakeError::TooLarge {
                    claimed: len.into(),
                    limit: config.max_frame,
                });
            }
            let body = read_body(stream, len as usize).await?;
            let header = SessionHeader::decode(&body)
                .ok_or(HandshakeError::Malformed("bad session header"))?;
            Opening::Session(header)
        }
        USE_RPC if len == 0 => Opening::Rpc,
        _ => return Err(HandshakeError::Malformed("unknown opening frame")),
    };
    Ok((dialer, opening))
}
