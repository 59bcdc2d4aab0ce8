//! The handshake: who gets in, who is refused, and what a refused peer gets (nothing).

use std::io::{Read, Write};
use std::net::TcpStream as StdStream;
use std::time::{Duration, Instant};

use super::*;
use crate::wire::{put_short, MAGIC, NONCE_LEN, PROOF_LEN, VERSION};
use crate::Error;

/// A hello as a dialer sends it, built byte by byte.
fn hello(cluster: &str, from: &str, to: &str) -> Vec<u8> {
    let mut body = vec![7u8; NONCE_LEN];
    put_short(&mut body, cluster.as_bytes());
    put_short(&mut body, from.as_bytes());
    put_short(&mut body, to.as_bytes());
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Everything the server sends until it closes, and how the close looked (`None`: a clean
/// end of stream, else the error kind, e.g. a reset).
fn until_closed(stream: &mut StdStream) -> (Vec<u8>, Option<std::io::ErrorKind>) {
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (got, None),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => {
                assert!(
                    !matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ),
                    "the server did not close the connection within {WAIT:?}"
                );
                return (got, Some(e.kind()));
            }
        }
    }
}

/// Dials `server` from a node of `config` on an executor of its own.
fn open(config: LinkConfig, node: &'static str, server: &Server) -> Result<(), Error> {
    let addr = server.addr.to_string();
    executor("dialer", move || async move {
        let link = Link::new(config).unwrap();
        link.open_session(node, &addr, &header(b"")).await.map(drop)
    })
    .join()
    .unwrap()
}

fn refusal(server: &Server) -> HandshakeError {
    match server.event() {
        Event::Refused(e) => e,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn nodes_of_one_cluster_authenticate_each_other() {
    let server = Server::start(
        config("n2"),
        "127.0.0.1:0".parse().unwrap(),
        Owner::Hold,
        echo_handler(),
    );
    open(config("n1"), "n2", &server).unwrap();
    match server.event() {
        Event::Session { peer, header: got } => {
            assert_eq!(peer, "n1");
            assert_eq!(got, header(b""));
        }
        other => panic!("{other:?}"),
    }
    let metrics = server.stop();
    assert_eq!(metrics.sessions_accepted, 1);
    assert_eq!(metrics.handshake_failures_in, 0);
}

#[test]
fn a_wrong_secret_is_refused() {
    let server = Server::start(
        config("n2"),
        "127.0.0.1:0".parse().unwrap(),
        Owner::Hold,
        echo_handler(),
    );
    let mut wrong = config("n1");
    wrong.secret = b"another secret of thirty-two byt".to_vec();
    let err = open(wrong, "n2", &server).unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Handshake {
                reason: HandshakeError::Refused,
                ..
            }
        ),
        "{err}"
    );
    assert!(matches!(refusal(&server), HandshakeError::BadProof));
    assert_eq!(server.stop().handshake_failures_in, 1);
}

#[test]
fn after_a_wrong_proof_nothing_more_is_read_or_sent() {
    let server = Server::start(
        config("n2"),
        "127.0.0.1:0".parse().unwrap(),
        Owner::Hold,
        echo_handler(),
    );
    let mut raw = StdStream::connect(server.addr).unwrap();
    raw.set_read_timeout(Some(WAIT)).unwrap();
    raw.write_all(&hello(CLUSTER, "n1", "n2")).unwrap();
    let mut reply = [0u8; 8 + 2 + NONCE_LEN];
    raw.read_exact(&mut reply).unwrap();
    assert_eq!(reply[..8], MAGIC);
    // A wrong proof with a session's opening frame right behind it, in one segment.
    let mut out = vec![0u8; PROOF_LEN];
    out.extend_from_slice(&[1, 0, 0, 0, 4, b'u', b's', b'e', b'r']);
    raw.write_all(&out).unwrap();
    let (got, close) = until_closed(&mut raw);
    assert!(got.is_empty(), "a peer without the secret got {got:?}");
    // Closing a socket that still holds unread bytes sends a reset: the listener stopped
    // reading right after the proof.
    assert_eq!(close, Some(std::io::ErrorKind::ConnectionReset));
    assert!(matches!(refusal(&server), HandshakeError::BadProof));
}

#[test]
fn an_impostor_listener_is_detected_by_the_dialer() {
    // Listens like a node, takes any proof, and answers with a proof it cannot compute.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let impostor = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut head = [0u8; 12];
        s.read_exact(&mut head).unwrap();
        let mut body = vec![0u8; u16::from_be_bytes([head[10], head[11]]) as usize];
        s.read_exact(&mut body).unwrap();
        let mut reply = MAGIC.to_vec();
        reply.extend_from_slice(&VERSION.to_be_bytes());
        reply.extend_from_slice(&[9u8; NONCE_LEN]);
        s.write_all(&reply).unwrap();
        let mut proof = [0u8; PROOF_LEN];
        s.read_exact(&mut proof).unwrap();
        s.write_all(&[0u8; PROOF_LEN]).unwrap();
        // Whatever the dialer does next, it must not treat this as the owner.
        let _ = s.read(&mut [0u8; 16]);
    });
    let err = executor("dialer", move || async move {
        let link = Link::new(config("n1")).unwrap();
        let err = link
            .open_session("n2", &addr.to_string(), &header(b""))
            .await
            .unwrap_err();
        (err, link.metrics())
    })
    .join()
    .unwrap();
    assert!(
        matches!(
            &err.0,
            Error::Handshake {
                reason: HandshakeError::BadProof,
                ..
            }
        ),
        "{}",
        err.0
    );
    assert_eq!(err.1.handshake_failures_out, 1);
    assert_eq!(err.1.sessions_opened, 0);
    impostor.join().unwrap();
}

#[test]
fn another_cluster_or_another_node_is_refused_before_the_nonce() {
    let server = Server::start(
        config("n2"),
        "127.0.0.1:0".parse().unwrap(),
        Owner::Hold,
        echo_handler(),
    );

    let mut other = config("n1");
    other.cluster = "staging".into();
    let err = open(other, "n2", &server).unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Handshake {
                reason: HandshakeError::Refused,
                ..
            }
        ),
        "{err}"
    );
    match refusal(&server) {
        HandshakeError::ClusterMismatch { ours, theirs } => {
            assert_eq!((ours.as_str(), theirs.as_str()), (CLUSTER, "staging"));
        }
        e => panic!("{e}"),
    }

    // A dialer whose map says n3 lives at this address.
    let err = open(config("n1"), "n3", &server).unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Handshake {
                reason: HandshakeError::Refused,
                ..
            }
        ),
        "{err}"
    );
    match refusal(&server) {
        HandshakeError::WrongNode { expected, ours } => {
            assert_eq!((expected.as_str(), ours.as_str()), ("n3", "n2"));
        }
        e => panic!("{e}"),
    }

    // Byte level: a wrong cluster name gets not even the nonce.
    let mut raw = StdStream::connect(server.addr).unwrap();
    raw.write_all(&hello("staging", "n1", "n2")).unwrap();
    let (got, _) = until_closed(&mut raw);
    assert!(got.is_empty(), "got {got:?}");
    assert!(matches!(
        refusal(&server),
        HandshakeError::ClusterMismatch { .. }
    ));
    assert_eq!(server.stop().handshake_failures_in, 3);
}

#[test]
fn garbage_and_stalled_peers_are_closed_within_the_timeout() {
    let mut short = config("n2");
    short.handshake_timeout = Duration::from_millis(400);
    let server = Server::start(
        short,
        "127.0.0.1:0".parse().unwrap(),
        Owner::Hold,
        echo_handler(),
    );

    // Garbage: closed as soon as the magic is wrong.
    let started = Instant::now();
    let mut raw = StdStream::connect(server.addr).unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\nHost: mail\r\n\r\n")
        .unwrap();
    let (got, _) = until_closed(&mut raw);
    assert!(got.is_empty(), "got {got:?}");
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(refusal(&server), HandshakeError::NotAPeer));

    // Silence: closed after the timeout.
    let started = Instant::now();
    let mut raw = StdStream::connect(server.addr).unwrap();
    let (got, _) = until_closed(&mut raw);
    let took = started.elapsed();
    assert!(got.is_empty(), "got {got:?}");
    assert!(
        took >= Duration::from_millis(350) && took < Duration::from_millis(1500),
        "closed after {took:?}"
    );
    assert!(matches!(refusal(&server), HandshakeError::Timeout(_)));

    // A valid hello, then silence instead of the proof: the nonce, then closed in time.
    let started = Instant::now();
    let mut raw = StdStream::connect(server.addr).unwrap();
    raw.write_all(&hello(CLUSTER, "n1", "n2")).unwrap();
    let (got, _) = until_closed(&mut raw);
    let took = started.elapsed();
    assert_eq!(got.len(), 8 + 2 + NONCE_LEN, "only the nonce may come");
    assert!(took < Duration::from_millis(1500), "closed after {took:?}");
    assert!(matches!(refusal(&server), HandshakeError::Timeout(_)));

    // Another version of the protocol.
    let mut raw = StdStream::connect(server.addr).unwrap();
    let mut v2 = hello(CLUSTER, "n1", "n2");
    v2[9] = 2;
    raw.write_all(&v2).unwrap();
    let (got, _) = until_closed(&mut raw);
    assert!(got.is_empty());
    assert!(matches!(refusal(&server), HandshakeError::Version(2)));
    assert_eq!(server.stop().handshake_failures_in, 4);
}
