//! Connection limits as a provider meets them: many users behind one address (NAT, a webmail
//! host, a balancer without PROXY header) log in; one user's sessions from one address are
//! capped (`max_sessions_per_user_ip`, answered `NO [LIMIT]` like Dovecot's
//! `mail_max_userip_connections`); unauthenticated connections from one address are capped
//! (`max_preauth_per_ip`); the process total is capped (`max_connections`).

mod common;

use std::net::TcpStream;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::{Client, Server};

/// `u0..u{n-1}` with password `p{i}`.
fn users(n: usize) -> String {
    (0..n).map(|i| format!("u{i}:{{PLAIN}}p{i}\n")).collect()
}

/// Raises this process's open-files soft limit to the hard limit: the big runs hold thousands
/// of sockets here as well as in the server.
fn raise_nofile() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// Opens `sessions` connections, all at once from `threads` threads (session `i` logs in as
/// user `i % users`), waits until every one of them has its greeting, then logs them all in
/// concurrently. Returns the clients and each LOGIN's tagged reply, in session order.
fn log_in_all(
    server: &Server,
    sessions: usize,
    users: usize,
    threads: usize,
) -> (Vec<Client>, Vec<String>) {
    let connected = Arc::new(Barrier::new(threads));
    let addr = server.imap;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let connected = connected.clone();
            std::thread::spawn(move || {
                let mine: Vec<usize> = (t..sessions).step_by(threads).collect();
                let mut clients: Vec<Client> = mine
                    .iter()
                    .map(|_| {
                        let mut c = Client::from_stream(TcpStream::connect(addr).expect("connect"));
                        let greeting = c.line();
                        assert!(greeting.starts_with("* OK"), "greeting: {greeting}");
                        c
                    })
                    .collect();
                // Every connection is open and not logged in before any LOGIN is sent.
                connected.wait();
                for (c, &i) in clients.iter_mut().zip(&mine) {
                    let u = i % users;
                    c.send(&format!("l LOGIN u{u} p{u}\r\n"));
                }
                let replies: Vec<(usize, String)> = clients
                    .iter_mut()
                    .zip(&mine)
                    .map(|(c, &i)| (i, c.until_tagged("l").pop().unwrap_or_default()))
                    .collect();
                (clients, replies)
            })
        })
        .collect();
    let mut all: Vec<(usize, Client, String)> = Vec::with_capacity(sessions);
    for handle in handles {
        let (clients, replies) = handle.join().expect("client thread");
        for (c, (i, reply)) in clients.into_iter().zip(replies) {
            all.push((i, c, reply));
        }
    }
    all.sort_by_key(|(i, _, _)| *i);
    all.into_iter().map(|(_, c, r)| (c, r)).unzip()
}

/// Sends NOOP on every client (pipelined per thread of the caller's choice: here all at once)
/// and checks each is answered OK: the sessions are all alive at the same time.
fn all_answer_noop(clients: &mut [Client]) {
    for c in clients.iter_mut() {
        c.send("n NOOP\r\n");
    }
    for (i, c) in clients.iter_mut().enumerate() {
        let reply = c.until_tagged("n").pop().unwrap_or_default();
        assert!(reply.starts_with("n OK"), "session {i}: {reply}");
    }
}

#[test]
fn five_hundred_sessions_of_a_hundred_users_from_one_address_log_in_with_the_defaults() {
    raise_nofile();
    // Default limits; 127.0.0.1 is in the default secure_networks, so the 500 connections
    // waiting to log in are not counted against max_preauth_per_ip (see the next test for an
    // address that is), and 5 sessions per user stay under max_sessions_per_user_ip = 20.
    let server = Server::start(2, "", "", &users(100));
    let started = Instant::now();
    let (mut clients, replies) = log_in_all(&server, 500, 100, 10);
    let took = started.elapsed();
    for (i, reply) in replies.iter().enumerate() {
        assert!(reply.starts_with("l OK"), "session {i}: {reply}");
    }
    all_answer_noop(&mut clients);
    eprintln!("500 sessions (100 users x 5) from 127.0.0.1 logged in in {took:?}");
}

#[test]
fn five_hundred_sessions_from_an_address_that_is_not_a_secure_network_log_in_in_waves() {
    // A company behind one NAT address: no secure network, so LOGIN needs TLS and every
    // connection counts against max_preauth_per_ip (100) until it has logged in. With the
    // defaults 500 sessions of 100 users get in as long as no more than 100 are logging in at
    // the same moment: here in waves of 100.
    raise_nofile();
    let server = Server::start(2, "secure_networks = []\n", "", &users(100));
    let cert = server.dir.path().join("tls/cert.pem");
    let addr = server.imap;
    let started = Instant::now();
    let mut sessions = Vec::new();
    for wave in 0..5 {
        // All 100 of a wave are connected, and not logged in, at the same time.
        let connected = Arc::new(Barrier::new(10));
        let handles: Vec<_> = (0..10)
            .map(|t| {
                let cert = cert.clone();
                let connected = connected.clone();
                std::thread::spawn(move || {
                    let clients: Vec<Client> = (0..10)
                        .map(|_| {
                            // Retried while the start-up probes are still counted.
                            let deadline = Instant::now() + Duration::from_secs(10);
                            loop {
                                let mut c =
                                    Client::from_stream(TcpStream::connect(addr).expect("connect"));
                                let greeting = c.line();
                                if greeting.starts_with("* OK") {
                                    break c;
                                }
                                assert!(greeting.contains("max_preauth_per_ip"), "{greeting}");
                                assert!(Instant::now() < deadline, "never admitted");
                                std::thread::sleep(Duration::from_millis(20));
                            }
                        })
                        .collect();
                    connected.wait();
                    clients
                        .into_iter()
                        .enumerate()
                        .map(|(k, mut c)| {
                            let u = (wave * 100 + t * 10 + k) % 100;
                            let ok = c.command("s", "STARTTLS");
                            assert!(ok.last().unwrap().starts_with("s OK"), "{ok:?}");
                            let mut tls = c.into_tls(&cert);
                            let login = tls.command("l", &format!("LOGIN u{u} p{u}"));
                            assert!(login.last().unwrap().starts_with("l OK"), "{login:?}");
                            tls
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for handle in handles {
            sessions.extend(handle.join().expect("client thread"));
        }
    }
    let took = started.elapsed();
    assert_eq!(sessions.len(), 500);
    for (i, tls) in sessions.iter_mut().enumerate() {
        let reply = tls.command("n", "NOOP");
        assert!(
            reply.last().unwrap().starts_with("n OK"),
            "session {i}: {reply:?}"
        );
    }
    eprintln!(
        "500 TLS sessions (100 users x 5) from a non-secure 127.0.0.1 in waves of 100: {took:?}"
    );
}

#[test]
fn five_thousand_sessions_of_a_hundred_users_from_one_address_log_in() {
    // Only max_sessions_per_user_ip is raised (50 sessions per user here). Client and server
    // hold 5,000 sockets each, below the 20,000 open files of a process on the CI machine.
    raise_nofile();
    let server = Server::start(2, "", "max_sessions_per_user_ip = 100\n", &users(100));
    let started = Instant::now();
    let (mut clients, replies) = log_in_all(&server, 5000, 100, 16);
    let took = started.elapsed();
    let refused: Vec<(usize, &String)> = replies
        .iter()
        .enumerate()
        .filter(|(_, r)| !r.starts_with("l OK"))
        .collect();
    assert!(
        refused.is_empty(),
        "{} of 5000 not logged in, e.g. {:?}",
        refused.len(),
        &refused[..refused.len().min(3)]
    );
    all_answer_noop(&mut clients);
    eprintln!("5000 sessions (100 users x 50) from 127.0.0.1 logged in in {took:?}");
}

/// The executor that owns `user` when `executors` run (256 partitions, the default).
fn owner(user: &str, executors: usize) -> usize {
    ringmail::server::partition::executor_of(
        ringmail::server::partition::partition_of(user, 256),
        executors,
    )
}

/// The executor serving a session, from the server's ID reply.
fn executor_of(c: &mut Client) -> usize {
    let id = c.command("i", "ID NIL");
    let line = &id[0];
    let at = line.find("\"x-executor\" \"").expect("x-executor in ID") + 14;
    line[at..].split('"').next().unwrap().parse().unwrap()
}

/// A connection that logged in as `user`, or the tagged reply that refused it.
fn login(server: &Server, user: &str, pass: &str) -> Result<Client, String> {
    let mut c = server.connect();
    let reply = c.command("l", &format!("LOGIN {user} {pass}"));
    let last = reply.last().cloned().unwrap_or_default();
    if last.starts_with("l OK") {
        Ok(c)
    } else {
        Err(last)
    }
}

#[test]
fn the_twenty_first_session_of_a_user_from_one_address_is_refused_until_one_ends() {
    const EXECUTORS: usize = 2;
    let server = Server::start(EXECUTORS, "", "", &users(2));
    let mut held: Vec<Client> = (0..20)
        .map(|i| login(&server, "u0", "p0").unwrap_or_else(|e| panic!("session {i}: {e}")))
        .collect();

    // The refusal is the LOGIN's own tagged reply, naming the setting, and the connection is
    // closed (as Dovecot does). The owner executor decides, also for a session that started
    // on the other executor and was handed over: try until both kinds were refused.
    let mut refused_where = [false; 2];
    for _ in 0..40 {
        let mut c = server.connect();
        let started_on_owner = executor_of(&mut c) == owner("u0", EXECUTORS);
        let reply = c.command("l", "LOGIN u0 p0").pop().unwrap_or_default();
        assert!(
            reply.starts_with("l NO [LIMIT]") && reply.contains("max_sessions_per_user_ip = 20"),
            "{reply}"
        );
        assert!(c.is_closed(), "the refused connection is closed");
        refused_where[usize::from(started_on_owner)] = true;
        if refused_where == [true, true] {
            break;
        }
    }
    assert_eq!(
        refused_where,
        [true, true],
        "refused after a hand-over and on the owner"
    );

    // Another user from the same address is not affected.
    let other = login(&server, "u1", "p1");
    assert!(other.is_ok(), "{:?}", other.err());

    // One of the 20 logs out: its place is free again.
    let mut leaving = held.pop().unwrap();
    let bye = leaving.command("o", "LOGOUT");
    assert!(bye.last().unwrap().starts_with("o OK"), "{bye:?}");
    assert!(leaving.is_closed());
    let deadline = Instant::now() + Duration::from_secs(5);
    let again = loop {
        match login(&server, "u0", "p0") {
            Ok(c) => break c,
            Err(e) if Instant::now() < deadline => {
                assert!(e.contains("[LIMIT]"), "{e}");
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("no place after a LOGOUT: {e}"),
        }
    };
    held.push(again);

    // A dropped connection frees its place as well.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    while let Err(e) = login(&server, "u0", "p0") {
        assert!(
            Instant::now() < deadline,
            "no place after a disconnect: {e}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn authenticate_is_refused_with_the_same_limit() {
    let server = Server::start(2, "", "max_sessions_per_user_ip = 1\n", &users(1));
    let _first = login(&server, "u0", "p0").expect("first session");
    let mut c = server.connect();
    // AUTHENTICATE PLAIN with SASL-IR: "\0u0\0p0".
    let reply = c.command("a", "AUTHENTICATE PLAIN AHUwAHAw");
    let last = reply.last().unwrap();
    assert!(
        last.starts_with("a NO [LIMIT]") && last.contains("max_sessions_per_user_ip = 1"),
        "{reply:?}"
    );
    assert!(c.is_closed());
}

/// Connects and returns the first line the server sends.
fn first_line(server: &Server) -> (Client, String) {
    let mut c = Client::from_stream(TcpStream::connect(server.imap).expect("connect"));
    let line = c.line();
    (c, line)
}

/// Connects until the server greets instead of refusing (it may take a moment to notice
/// that a connection went away); bounded.
fn connect_when_admitted(server: &Server) -> Client {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (c, line) = first_line(server);
        if line.starts_with("* OK") {
            return c;
        }
        assert!(line.starts_with("* BYE [UNAVAILABLE]"), "{line}");
        assert!(Instant::now() < deadline, "never admitted again: {line}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_hundred_and_first_connection_not_logged_in_from_an_address_is_refused() {
    // No secure network: 127.0.0.1 is treated like any client address (and LOGIN needs TLS).
    let server = Server::start(2, "secure_networks = []\n", "", &users(1));
    // (Admitted with retries: the probes that saw the server start may still be counted.)
    let mut waiting: Vec<Client> = (0..100).map(|_| connect_when_admitted(&server)).collect();
    // 100 over 2 executors, spread by the kernel: the count is shared, so it is exact.
    let (mut refused, bye) = first_line(&server);
    assert!(
        bye.starts_with("* BYE [UNAVAILABLE]") && bye.contains("max_preauth_per_ip = 100"),
        "{bye}"
    );
    assert!(refused.is_closed());

    // A connection that goes away frees its place.
    drop(waiting.pop());
    waiting.push(connect_when_admitted(&server));
    let (_, bye) = first_line(&server);
    assert!(bye.starts_with("* BYE [UNAVAILABLE]"), "{bye}");

    // So does logging in (over STARTTLS here, as plaintext LOGIN is refused).
    let mut c = waiting.pop().unwrap();
    let ok = c.command("s", "STARTTLS");
    assert!(ok.last().unwrap().starts_with("s OK"), "{ok:?}");
    let mut tls = c.into_tls(&server.dir.path().join("tls/cert.pem"));
    let ok = tls.command("l", "LOGIN u0 p0");
    assert!(ok.last().unwrap().starts_with("l OK"), "{ok:?}");
    waiting.push(connect_when_admitted(&server));
    drop(tls);
}

#[test]
fn connections_per_process_are_capped() {
    // 4 in total over 2 executors: each admits its share of 2. Loopback is a secure network,
    // so no per-address limit applies here.
    let server = Server::start(2, "", "max_connections = 4\n", &users(1));
    let mut clients = Vec::new();
    let (mut ok, mut refused) = (0, 0);
    for _ in 0..10 {
        let (c, line) = first_line(&server);
        if line.starts_with("* OK") {
            ok += 1;
        } else {
            assert!(
                line.starts_with("* BYE [UNAVAILABLE]") && line.contains("max_connections"),
                "{line}"
            );
            refused += 1;
        }
        clients.push(c);
    }
    assert!((1..=4).contains(&ok), "admitted {ok}");
    assert_eq!(ok + refused, 10);
}
