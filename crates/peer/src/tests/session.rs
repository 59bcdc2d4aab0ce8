//! Proxied sessions: a client on loopback, a proxying node pumping bytes, an owner node.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream as StdStream};
use std::time::Instant;

use super::*;
use crate::handshake::Opening;
use crate::wire::USE_SESSION;
use crate::{Error, PumpEnd, PumpOptions, PumpReport, Side};

/// A proxying node (n1) in its own executor: accepts one client, opens a session with
/// `header` to the owner n2 at `owner`, pumps, and returns the report and its counters.
struct Proxy {
    addr: SocketAddr,
    thread: ExecutorJoinHandle<(PumpReport, MetricsSnapshot)>,
}

impl Proxy {
    fn start(owner: SocketAddr, header: SessionHeader, options: PumpOptions) -> Proxy {
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = executor("proxy", move || async move {
            let listener = glommio::net::TcpListener::bind("127.0.0.1:0").unwrap();
            ready_tx.send(listener.local_addr().unwrap()).unwrap();
            let mut client = listener.accept().await.unwrap();
            let link = Link::new(config("n1")).unwrap();
            let mut peer = link
                .open_session("n2", &owner.to_string(), &header)
                .await
                .unwrap();
            let report = link.pump(&mut client, &mut peer, &options).await;
            (report, link.metrics())
        });
        let addr = ready_rx.recv_timeout(WAIT).unwrap();
        Proxy { addr, thread }
    }

    fn client(&self) -> StdStream {
        let client = StdStream::connect(self.addr).unwrap();
        client.set_read_timeout(Some(WAIT)).unwrap();
        client
    }

    fn finish(self) -> (PumpReport, MetricsSnapshot) {
        self.thread.join().unwrap()
    }
}

fn owner_saw(server: &Server) -> (String, SessionHeader, Vec<u8>) {
    let Event::Session { peer, header } = server.event() else {
        panic!("no session")
    };
    let Event::SessionEnded { read } = server.event() else {
        panic!("the session did not end")
    };
    (peer, header, read)
}

#[test]
fn pipelined_bytes_come_first_then_bytes_flow_both_ways_until_the_client_closes() {
    let server = Server::start(
        config("n2"),
        "127.0.0.1:0".parse().unwrap(),
        Owner::Echo,
        echo_handler(),
    );
    let pipelined = b"a2 SELECT INBOX\r\n";
    let proxy = Proxy::start(server.addr, header(pipelined), PumpOptions::new(WAIT));
    let mut client = proxy.client();
    client.write_all(b"a3 NOOP\r\n").unwrap();
    let mut first = vec![0u8; pipelined.len() + 9];
    client.read_exact(&mut first).unwrap();
    assert_eq!(first, b"a2 SELECT INBOX\r\na3 NOOP\r\n");
    client.write_all(b"a4 LOGOUT\r\n").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).unwrap();
    assert_eq!(
        rest, b"a4 LOGOUT\r\n",
        "the echo, then a clean end of stream"
    );

    let (report, metrics) = proxy.finish();
    assert!(
        matches!(
            report.end,
            PumpEnd::Closed {
                first: Side::Client
            }
        ),
        "{report:?}"
    );
    assert_eq!(report.to_peer, 9 + 11);
    assert_eq!(report.to_client, (pipelined.len() + 9 + 11) as u64);
    assert_eq!(metrics.sessions_opened, 1);
    assert_eq!(metrics.session_bytes_to_owner, report.to_peer);
    assert_eq!(metrics.session_bytes_from_owner, report.to_client);

    let (peer, got, read) = owner_saw(&server);
    assert_eq!(peer, "n1");
    assert_eq!(got, header(pipelined));
    // The pipelined bytes came in the header only, not again on the stream.
    assert_eq!(read, b"a3 NOOP\r\na4 LOGOUT\r\n");
}

#[test]
fn the_owner_closing_first_ends_both_directions_cleanly() {
    let server = Server::start(
        config("n2"),
        "127.0.0.1:0".parse().unwrap(),
        Owner::ByeFirst,
        echo_handler(),
    );
    let proxy = Proxy::start(server.addr, header(b""), PumpOptions::new(WAIT));
    let mut client = proxy.client();
    let mut bye = Vec::new();
    client.read_to_end(&mut bye).unwrap();
    assert_eq!(bye, b"* BYE shutting down\r\n");
    // The owner only stopped sending: what the client still says reaches it.
    client.write_all(b"a9 LOGOUT\r\n").unwrap();
    client.shutdown(Shutdown::Write).unwrap();

    let (report, _) = proxy.finish();
    assert!(
        matches!(report.end, PumpEnd::Closed { first: Side::Peer }),
        "{report:?}"
    );
    let (_, _, read) = owner_saw(&server);
    assert_eq!(read, b"a9 LOGOUT\r\n");
}

#[test]
fn a_quiet_session_ends_at_the_idle_limit_and_a_half_closed_one_at_the_linger() {
    let server = Server::start(
        config("n2"),
        "127.0.0.1:0".parse().unwrap(),
        Owner::Hold,
        echo_handler(),
    );
    let mut options = PumpOptions::new(Duration::from_millis(300));
    options.linger = Duration::from_millis(100);
    let proxy = Proxy::start(server.addr, header(b""), options);
    let mut client = proxy.client();
    client.write_all(b"a1 IDLE\r\n").unwrap();
    let started = Instant::now();
    let (report, _) = proxy.finish();
    let took = started.elapsed();
    assert!(matches!(report.end, PumpEnd::Idle), "{report:?}");
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_millis(1500),
        "ended after {took:?}"
    );
    // The proxy let go of both sides: the owner sees the end of its stream.
    let (_, _, read) = owner_saw(&server);
    assert_eq!(read, b"a1 IDLE\r\n");
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());

    // The owner said BYE and closed; a client that never closes is let go after the linger.
    let server = Server::start(
        config("n2"),
        "127.0.0.1:0".parse().unwrap(),
        Owner::ByeFirst,
        echo_handler(),
    );
    let mut options = PumpOptions::new(WAIT);
    options.linger = Duration::from_millis(200);
    let proxy = Proxy::start(server.addr, header(b""), options);
    let mut client = proxy.client();
    let mut bye = Vec::new();
    client.read_to_end(&mut bye).unwrap();
    let started = Instant::now();
    let (report, _) = proxy.finish();
    assert!(matches!(report.end, PumpEnd::Idle), "{report:?}");
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn fifty_megabytes_each_way_through_the_pump() {
    const LEN: usize = 50 * 1000 * 1000;
    let server = Server::start(
        config("n2"),
        "127.0.0.1:0".parse().unwrap(),
        Owner::Stream(LEN),
        echo_handler(),
    );
    let proxy = Proxy::start(server.addr, header(b""), PumpOptions::new(WAIT));
    let target = proxy.addr;
    let (took, received) = executor("client", move || async move {
        let stream = glommio::net::TcpStream::connect(target).await.unwrap();
        let (mut reader, mut writer) = Half::pair(stream);
        let started = Instant::now();
        let (sent, received) = future::zip(
            async {
                let sent = send_pattern(&mut writer, 1, LEN).await;
                let _ = writer.close().await;
                sent
            },
            check_pattern(&mut reader, 2, LEN),
        )
        .await;
        sent.unwrap();
        (started.elapsed(), received)
    })
    .join()
    .unwrap();
    assert_eq!(
        received, LEN as u64,
        "the client got all of the owner's bytes"
    );
    let (report, metrics) = proxy.finish();
    assert!(matches!(report.end, PumpEnd::Closed { .. }), "{report:?}");
    assert_eq!((report.to_peer, report.to_client), (LEN as u64, LEN as u64));
    assert_eq!(metrics.session_bytes_to_owner, LEN as u64);
    let (_, _, read) = owner_saw(&server);
    assert_eq!(
        read,
        (LEN as u64).to_le_bytes(),
        "the owner got all of the client's bytes"
    );
    let mb = LEN as f64 / 1e6;
    eprintln!(
        "pump: {mb:.0} MB each way in {took:.2?}: {:.0} MB/s per direction, {:.0} MB/s in all",
        mb / took.as_secs_f64(),
        2.0 * mb / took.as_secs_f64()
    );
}

#[test]
fn an_oversized_session_header_is_refused_unread() {
    let mut small = config("n2");
    small.max_frame = 4096;
    let server = Server::start(
        small.clone(),
        "127.0.0.1:0".parse().unwrap(),
        Owner::Hold,
        echo_handler(),
    );
    let addr = server.addr.to_string();
    let (local, claimed) = executor("dialer", move || async move {
        let link = Link::new(LinkConfig {
            node: "n1".into(),
            ..small
        })
        .unwrap();
        // Refused by the dialer before it connects.
        let local = link
            .open_session("n2", &addr, &header(&[b'x'; 5000]))
            .await
            .unwrap_err();
        // A forged opening that claims 3 GiB: the listener refuses it from its head.
        let mut opening = Opening::encode(USE_SESSION, &[]);
        opening[1..5].copy_from_slice(&(3u32 << 30).to_be_bytes());
        let mut stream = link.dial("n2", &addr, &opening).await.unwrap();
        let mut buf = [0u8; 16];
        let read = stream.read(&mut buf).await;
        (local, read.map_err(|e| e.kind()))
    })
    .join()
    .unwrap();
    assert!(
        matches!(
            local,
            Error::TooLarge {
                claimed: 5000..,
                limit: 4096
            }
        ),
        "{local}"
    );
    assert!(
        matches!(claimed, Ok(0) | Err(_)),
        "the listener answered {claimed:?}"
    );
    match server.event() {
        Event::Refused(HandshakeError::TooLarge {
            claimed,
            limit: 4096,
        }) => {
            assert_eq!(claimed, 3 << 30)
        }
        other => panic!("{other:?}"),
    }
    assert!(LARGEST_ALLOCATION.load(Ordering::Relaxed) < 1 << 30);
    let metrics = server.stop();
    assert_eq!(
        (metrics.oversized_frames, metrics.sessions_accepted),
        (1, 0)
    );
}

#[test]
fn traffic_keeps_a_session_past_the_idle_limit() {
    let server = Server::start(
        config("n2"),
        "127.0.0.1:0".parse().unwrap(),
        Owner::Echo,
        echo_handler(),
    );
    let proxy = Proxy::start(
        server.addr,
        header(b""),
        PumpOptions::new(Duration::from_millis(300)),
    );
    let mut client = proxy.client();
    let started = Instant::now();
    // A byte every 100 ms for a second: more than three idle limits in all.
    for _ in 0..10 {
        client.write_all(b".").unwrap();
        let mut echo = [0u8; 1];
        client.read_exact(&mut echo).unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    let last = started.elapsed();
    let (report, _) = proxy.finish();
    let took = started.elapsed();
    assert!(matches!(report.end, PumpEnd::Idle), "{report:?}");
    assert_eq!((report.to_peer, report.to_client), (10, 10));
    assert!(
        took >= last + Duration::from_millis(150),
        "ended {:?} after the last byte",
        took - last
    );
    assert!(
        took < last + Duration::from_millis(1500),
        "ended {:?} after the last byte",
        took - last
    );
}
