//! RPC: pipelining, answers in any order, bounds, the pool's reuse and reconnection.

use std::cell::RefCell;

use futures_channel::mpsc as async_mpsc;
use futures_lite::StreamExt;

use super::*;
use crate::handshake::{self, Opening};
use crate::wire::USE_RPC;
use crate::{Error, RpcPool};

/// A handler that sleeps for the request's payload (u32, milliseconds) and counts how many
/// run at once; answers with the payload and status = kind.
fn sleeping_handler(running: Arc<AtomicUsize>, most: Arc<AtomicUsize>) -> Handler {
    Arc::new(move |request: Request| {
        let running = running.clone();
        let most = most.clone();
        Box::pin(async move {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            let ms = u32::from_be_bytes(request.payload[..4].try_into().unwrap());
            glommio::timer::sleep(Duration::from_millis(ms.into())).await;
            running.fetch_sub(1, Ordering::SeqCst);
            Response {
                status: request.kind,
                payload: request.payload,
            }
        })
    })
}

/// Sends `count` calls at once from one pool; request i sleeps `delay(i)` ms on the server.
/// Returns the order in which the answers came back (checking each) and the pool's
/// connection count.
fn concurrent_calls(
    client: LinkConfig,
    addr: SocketAddr,
    count: u16,
    delay: fn(u16) -> u32,
) -> (Vec<u16>, usize, MetricsSnapshot) {
    executor("caller", move || async move {
        let link = Link::new(client).unwrap();
        let pool = Rc::new(RpcPool::new(link.clone()));
        let order = Rc::new(RefCell::new(Vec::new()));
        let addr = addr.to_string();
        let tasks: Vec<_> = (0..count)
            .map(|i| {
                let (pool, order, addr) = (pool.clone(), order.clone(), addr.clone());
                glommio::spawn_local(async move {
                    let mut payload = delay(i).to_be_bytes().to_vec();
                    payload.extend_from_slice(&i.to_be_bytes());
                    let answer = pool.call("n2", &addr, i, &payload).await.unwrap();
                    assert_eq!(answer.status, i);
                    assert_eq!(answer.payload, payload);
                    order.borrow_mut().push(i);
                })
            })
            .collect();
        for task in tasks {
            task.await;
        }
        let order = order.borrow().clone();
        (order, pool.connections("n2"), link.metrics())
    })
    .join()
    .unwrap()
}

#[test]
fn many_requests_on_one_connection_are_answered_out_of_order() {
    let (running, most) = (Arc::default(), Arc::new(AtomicUsize::new(0)));
    let mut owner = config("n2");
    owner.max_in_flight = 200;
    let server = Server::start(
        owner,
        "127.0.0.1:0".parse().unwrap(),
        Owner::Hold,
        sleeping_handler(running, most.clone()),
    );
    let mut client = config("n1");
    client.pool_size = 1;
    client.max_in_flight = 200;
    // The first request sleeps longest: answers come back in reverse.
    let (order, connections, metrics) =
        concurrent_calls(client, server.addr, 100, |i| 10 + 3 * (100 - u32::from(i)));
    assert_eq!(order.len(), 100);
    let position = |i: u16| order.iter().position(|&x| x == i).unwrap();
    assert!(
        position(99) < position(0),
        "answers came in request order: {order:?}"
    );
    assert_eq!(connections, 1);
    assert_eq!(metrics.rpc_connections_opened, 1);
    assert_eq!(
        (metrics.rpc_requests_sent, metrics.rpc_requests_failed),
        (100, 0)
    );
    // All of them ran at once on the owner: they were pipelined, not one by one.
    assert_eq!(most.load(Ordering::SeqCst), 100);
    assert!(matches!(server.event(), Event::Rpc { peer } if peer == "n1"));
    let served = server.stop();
    assert_eq!(served.rpc_requests_served, 100);
    assert_eq!(served.rpc_connections_accepted, 1);
}

#[test]
fn requests_in_flight_are_bounded_on_both_sides() {
    // The dialer's bound: 4 per connection, one connection.
    let (running, most) = (Arc::default(), Arc::new(AtomicUsize::new(0)));
    let server = Server::start(
        config("n2"),
        "127.0.0.1:0".parse().unwrap(),
        Owner::Hold,
        sleeping_handler(running, most.clone()),
    );
    let mut client = config("n1");
    client.pool_size = 1;
    client.max_in_flight = 4;
    let (order, ..) = concurrent_calls(client, server.addr, 20, |_| 20);
    assert_eq!(order.len(), 20);
    assert_eq!(most.load(Ordering::SeqCst), 4);
    drop(server);

    // The listener's bound: it reads no further request while 3 run.
    let (running, most) = (Arc::default(), Arc::new(AtomicUsize::new(0)));
    let mut owner = config("n2");
    owner.max_in_flight = 3;
    let server = Server::start(
        owner,
        "127.0.0.1:0".parse().unwrap(),
        Owner::Hold,
        sleeping_handler(running, most.clone()),
    );
    let mut client = config("n1");
    client.pool_size = 1;
    let (order, ..) = concurrent_calls(client, server.addr, 20, |_| 20);
    assert_eq!(order.len(), 20);
    assert_eq!(most.load(Ordering::SeqCst), 3);

    // Two connections share the load when one is full.
    let mut client = config("n1");
    client.pool_size = 2;
    client.max_in_flight = 5;
    let (order, connections, metrics) = concurrent_calls(client, server.addr, 20, |_| 20);
    assert_eq!(order.len(), 20);
    assert_eq!((connections, metrics.rpc_connections_opened), (2, 2));
}

#[test]
fn oversized_frames_are_refused_without_allocating_them() {
    let mut owner = config("n2");
    owner.max_frame = 64 * 1024;
    let server = Server::start(
        owner.clone(),
        "127.0.0.1:0".parse().unwrap(),
        Owner::Hold,
        echo_handler(),
    );
    let addr = server.addr.to_string();
    let (local, forged, metrics) = executor("caller", move || async move {
        let link = Link::new(LinkConfig {
            node: "n1".into(),
            ..owner
        })
        .unwrap();
        let pool = RpcPool::new(link.clone());
        // Over the dialer's own limit: refused before anything is sent.
        let local = pool
            .call("n2", &addr, 1, &vec![0u8; 64 * 1024 + 1])
            .await
            .unwrap_err();
        let opened = link.metrics().rpc_connections_opened;
        // Exactly at the limit: fine.
        let answer = pool
            .call("n2", &addr, 1, &vec![5u8; 64 * 1024])
            .await
            .unwrap();
        assert_eq!(answer.payload.len(), 64 * 1024);
        // A forged request claiming 3 GiB on an authenticated connection.
        let mut stream = link
            .dial("n2", &addr, &Opening::encode(USE_RPC, &[]))
            .await
            .unwrap();
        let mut head = ((3u32 << 30) + 10).to_be_bytes().to_vec();
        head.extend_from_slice(&[0; 10]);
        head.extend_from_slice(&[1; 1000]);
        stream.write_all(&head).await.unwrap();
        let mut buf = [0u8; 16];
        let forged = stream.read(&mut buf).await.map_err(|e| e.kind());
        (local, (opened, forged), link.metrics())
    })
    .join()
    .unwrap();
    assert!(
        matches!(
            local,
            Error::TooLarge {
                claimed: 65537,
                limit: 65536
            }
        ),
        "{local}"
    );
    assert_eq!(forged.0, 0, "a connection was opened for a refused call");
    assert!(
        matches!(forged.1, Ok(0) | Err(_)),
        "the listener answered: {:?}",
        forged.1
    );
    assert_eq!(
        metrics.rpc_requests_sent, 1,
        "the refused call was not sent"
    );
    // The pool's connection, then the forged one, which ends with the refusal.
    assert!(matches!(server.event(), Event::Rpc { .. }));
    assert!(matches!(server.event(), Event::Rpc { .. }));
    match server.event() {
        Event::RpcEnded(Err(e)) => assert!(e.contains("3221225472"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert!(LARGEST_ALLOCATION.load(Ordering::Relaxed) < 1 << 30);
    assert_eq!(server.stop().oversized_frames, 1);
}

#[test]
fn an_oversized_answer_fails_the_call_without_allocating_it() {
    // A node that authenticates properly and then answers with a frame claiming 3 GiB.
    let (ready_tx, ready_rx) = mpsc::channel();
    let liar = executor("liar", move || async move {
        let link = Link::new(config("n2")).unwrap();
        let listener = glommio::net::TcpListener::bind("127.0.0.1:0").unwrap();
        ready_tx.send(listener.local_addr().unwrap()).unwrap();
        let mut stream = listener.accept().await.unwrap();
        let (peer, _) = handshake::accept(&mut stream, &link.config).await.unwrap();
        assert_eq!(peer, "n1");
        let mut head = [0u8; 14];
        stream.read_exact(&mut head).await.unwrap();
        let id = u64::from_be_bytes(head[4..12].try_into().unwrap());
        let mut lie = ((3u32 << 30) + 10).to_be_bytes().to_vec();
        lie.extend_from_slice(&id.to_be_bytes());
        lie.extend_from_slice(&[0, 0]);
        let _ = stream.write_all(&lie).await;
        // Keep the connection until the caller gives up on it.
        let _ = stream.read(&mut [0u8; 64]).await;
    });
    let addr = ready_rx.recv_timeout(WAIT).unwrap().to_string();
    let (err, metrics) = executor("caller", move || async move {
        let link = Link::new(config("n1")).unwrap();
        let pool = RpcPool::new(link.clone());
        let err = pool.call("n2", &addr, 1, b"hello").await.unwrap_err();
        (err, link.metrics())
    })
    .join()
    .unwrap();
    assert!(
        matches!(&err, Error::Lost { reason, .. } if reason.contains("3221225472")),
        "{err}"
    );
    assert_eq!(
        (metrics.oversized_frames, metrics.rpc_requests_failed),
        (1, 1)
    );
    assert!(LARGEST_ALLOCATION.load(Ordering::Relaxed) < 1 << 30);
    liar.join().unwrap();
}

enum Step {
    Call(usize),
}

#[test]
fn the_pool_reuses_its_connection_and_reconnects_after_the_peer_restarts() {
    let server = Server::start(
        config("n2"),
        "127.0.0.1:0".parse().unwrap(),
        Owner::Hold,
        echo_handler(),
    );
    let addr = server.addr;
    let (steps, mut step_rx) = async_mpsc::unbounded::<Step>();
    let (results_tx, results) = mpsc::channel();
    let caller = executor("caller", move || async move {
        let link = Link::new(config("n1")).unwrap();
        let pool = RpcPool::new(link.clone());
        let target = addr.to_string();
        while let Some(Step::Call(n)) = step_rx.next().await {
            let mut answers = Vec::new();
            for i in 0..n {
                let payload = format!("request {i}").into_bytes();
                answers.push(
                    pool.call("n2", &target, 7, &payload)
                        .await
                        .map(|r| r.payload == payload)
                        .map_err(|e| e.to_string()),
                );
            }
            let metrics = link.metrics();
            let _ = results_tx.send((answers, pool.connections("n2"), metrics));
        }
    });
    let run = |n| {
        steps.unbounded_send(Step::Call(n)).unwrap();
        results.recv_timeout(WAIT).expect("the caller answers")
    };

    let (answers, connections, metrics) = run(10);
    assert!(answers.iter().all(|a| a == &Ok(true)), "{answers:?}");
    assert_eq!(
        (connections, metrics.rpc_connections_opened),
        (1, 1),
        "reused"
    );

    server.stop();
    let (answers, connections, _) = run(1);
    match &answers[0] {
        Err(e) => assert!(e.contains("cannot connect to node n2"), "{e}"),
        Ok(_) => panic!("a call to a stopped node succeeded"),
    }
    assert_eq!(connections, 0);

    // The node comes back on the same address.
    let server = Server::start(config("n2"), addr, Owner::Hold, echo_handler());
    let (answers, connections, metrics) = run(3);
    assert!(answers.iter().all(|a| a == &Ok(true)), "{answers:?}");
    assert_eq!((connections, metrics.rpc_connections_opened), (1, 2));
    assert_eq!(metrics.dial_failures, 1);
    drop(steps);
    caller.join().unwrap();
    drop(server);
}

#[test]
fn a_restart_between_calls_costs_no_failed_call() {
    // The pool notices a closed idle connection before using it.
    let server = Server::start(
        config("n2"),
        "127.0.0.1:0".parse().unwrap(),
        Owner::Hold,
        echo_handler(),
    );
    let addr = server.addr;
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let (first_tx, first_rx) = mpsc::channel();
    let caller = executor("caller", move || async move {
        let link = Link::new(config("n1")).unwrap();
        let pool = RpcPool::new(link.clone());
        let target = addr.to_string();
        let first = pool.call("n2", &target, 1, b"one").await.map(drop);
        first_tx.send(first.map_err(|e| e.to_string())).unwrap();
        go_rx.await.unwrap();
        let second = pool.call("n2", &target, 1, b"two").await;
        (
            second.map(|r| r.payload).map_err(|e| e.to_string()),
            link.metrics(),
        )
    });
    first_rx.recv_timeout(WAIT).unwrap().unwrap();
    server.stop();
    let server = Server::start(config("n2"), addr, Owner::Hold, echo_handler());
    go_tx.send(()).unwrap();
    let (second, metrics) = caller.join().unwrap();
    assert_eq!(second, Ok(b"two".to_vec()));
    assert_eq!(metrics.rpc_connections_opened, 2);
    assert_eq!(metrics.rpc_requests_failed, 0);
    drop(server);
}

#[test]
fn a_call_to_a_stalled_handler_times_out_and_the_connection_keeps_serving() {
    // The handler never answers kind 0; kind 1 answers at once.
    let handler: Handler = Arc::new(|request: Request| {
        Box::pin(async move {
            if request.kind == 0 {
                glommio::timer::sleep(Duration::from_secs(30)).await;
            }
            Response {
                status: 0,
                payload: request.payload,
            }
        })
    });
    let server = Server::start(
        config("n2"),
        "127.0.0.1:0".parse().unwrap(),
        Owner::Hold,
        handler,
    );
    let addr = server.addr.to_string();
    let (stalled, then, metrics) = executor("caller", move || async move {
        let mut client = config("n1");
        client.rpc_timeout = Duration::from_millis(300);
        let link = Link::new(client).unwrap();
        let pool = RpcPool::new(link.clone());
        let started = std::time::Instant::now();
        let stalled = pool.call("n2", &addr, 0, b"never").await.unwrap_err();
        let took = started.elapsed();
        let then = pool
            .call("n2", &addr, 1, b"at once")
            .await
            .map(|r| r.payload);
        (
            (stalled, took),
            then.map_err(|e| e.to_string()),
            link.metrics(),
        )
    })
    .join()
    .unwrap();
    assert!(matches!(stalled.0, Error::Timeout { .. }), "{}", stalled.0);
    assert!(stalled.1 < Duration::from_secs(2), "{:?}", stalled.1);
    // The late answer is dropped; the connection keeps serving.
    assert_eq!(then, Ok(b"at once".to_vec()));
    assert_eq!(metrics.rpc_connections_opened, 1);
    drop(server);
}
