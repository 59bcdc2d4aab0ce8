//! A partition moved live (docs/cluster.md, "Moving a partition"), on 3 etcd members and
//! 3 nodes behind HAProxy: while APPEND (through HAProxy) and LMTP load run against the
//! partition's user, `ringmail cluster move` hands it to another node; every message that
//! got OK or 250 is there afterwards exactly once, byte for byte, FETCHed through a third
//! node, a session left open on the old owner gets `* BYE [UNAVAILABLE]`, and the old owner's data dir keeps the copy marked as moved. Then `cluster drain`
//! empties the new owner the same way.

mod common;
#[path = "../crates/cluster/tests/harness/mod.rs"]
mod etcd;

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::{self, Haproxy, Node};
use common::Client;

const PARTITIONS: u32 = 8;
const USER: &str = "mover@example.com";

fn login(c: &mut Client) -> bool {
    c.command("L", &format!("LOGIN {USER} pass"))
        .last()
        .is_some_and(|l| l.starts_with("L OK"))
}

/// APPENDs numbered messages through HAProxy until `stop`, reconnecting after any failure;
/// returns the bodies that got a tagged OK.
fn append_load(haproxy: &Haproxy, stop: &AtomicBool) -> Vec<String> {
    let mut acked = Vec::new();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) && n < 5000 {
        // A connection cut by the move panics inside the client: that APPEND was not acked.
        let _ = catch_unwind(AssertUnwindSafe(|| {
            let mut c = haproxy.connect();
            if !login(&mut c) {
                std::thread::sleep(Duration::from_millis(20));
                return;
            }
            while !stop.load(Ordering::Relaxed) && n < 5000 {
                n += 1;
                let body = format!("Subject: append {n}\r\n\r\nappended body {n}\r\n");
                c.send(&format!("A APPEND INBOX {{{}}}\r\n", body.len()));
                if !c.line().starts_with('+') {
                    return;
                }
                c.send(&format!("{body}\r\n"));
                let tagged = c.until_tagged("A");
                if !tagged.last().unwrap().starts_with("A OK") {
                    // NO [UNAVAILABLE] while the partition changed hands: log in again.
                    return;
                }
                acked.push(body);
            }
        }));
    }
    acked
}

/// Delivers numbered messages by LMTP to `node` until `stop`; returns those answered 250.
fn lmtp_load(node: &Node, stop: &AtomicBool) -> Vec<String> {
    let mut acked = Vec::new();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) && n < 5000 {
        n += 1;
        let body = format!("Subject: lmtp {n}\r\n\r\ndelivered body {n}\r\n");
        let _ = catch_unwind(AssertUnwindSafe(|| {
            let mut c = node.server.lmtp();
            c.send("MAIL FROM:<sender@example.org>\r\n");
            c.line();
            c.send(&format!("RCPT TO:<{USER}>\r\n"));
            if !c.line().starts_with("250") {
                return;
            }
            c.send("DATA\r\n");
            c.line();
            c.send(&format!("{body}.\r\n"));
            if c.line().starts_with("250") {
                acked.push(body.clone());
            }
            c.send("QUIT\r\n");
        }));
    }
    acked
}

/// Four messages of 900 KB each (the test servers' literal limit is 1 MiB), appended over TLS
/// to `node` (the owner) before the move: together several times a copy chunk, so the copier
/// must cut the segment into several chunks.
fn append_large(node: &Node) -> Vec<String> {
    let mut c = node.connect_tls("127.0.0.31");
    c.send(&format!("L LOGIN {USER} pass\r\n"));
    assert!(c.until_tagged("L").last().unwrap().starts_with("L OK"));
    let mut acked = Vec::new();
    for i in 0..4 {
        let line = format!("large message {i}, line of text {}\r\n", "x".repeat(50));
        let body = format!(
            "Subject: large {i}\r\n\r\n{}",
            line.repeat(900_000 / line.len())
        );
        c.send(&format!("A APPEND INBOX {{{}}}\r\n", body.len()));
        let go = c.line();
        assert!(go.starts_with('+'), "{go}");
        c.send(&body);
        c.send("\r\n");
        let tagged = c.until_tagged("A");
        assert!(tagged.last().unwrap().starts_with("A OK"), "{tagged:?}");
        acked.push(body);
    }
    c.send("Z LOGOUT\r\n");
    c.until_tagged("Z");
    let total: usize = acked.iter().map(String::len).sum();
    assert!(total > 3 * ringmail::store::MAX_CHUNK);
    acked
}

/// Every message of the user's INBOX, fetched through `node`.
fn all_messages(node: &Node) -> Vec<String> {
    common::load::all_messages(&|| node.connect("127.0.0.20"), USER).expect("the user is served")
}

#[test]
fn a_partition_moved_under_append_and_lmtp_load_loses_no_acknowledged_message() {
    let Some(etcd) = etcd::Etcd::start(3) else {
        return;
    };
    let users = format!("{USER}:{{PLAIN}}pass\n");
    let Some((nodes, haproxy)) = cluster::start_behind_haproxy(
        "move",
        &["m0", "m1", "m2"],
        &etcd.endpoints(),
        PARTITIONS,
        &users,
    ) else {
        return;
    };
    let p = ringmail::store::partition_of(USER, PARTITIONS);
    let deadline = Instant::now() + Duration::from_secs(20);
    let (from, epoch) = loop {
        if let Some(owner) = nodes[0].status().0.get(&p) {
            break owner.clone();
        }
        assert!(Instant::now() < deadline, "partition {p} not assigned");
        std::thread::sleep(Duration::from_millis(100));
    };
    let index = |id: &str| nodes.iter().position(|n| n.id == id).unwrap();
    let old = index(&from);
    let (to, third) = ((old + 1) % 3, (old + 2) % 3);
    let to_id = nodes[to].id.clone();

    // Mail before the move, and a session on the old owner that stays open.
    let large = append_large(&nodes[old]);
    let mut before = nodes[old].connect("127.0.0.30");
    assert!(login(&mut before));
    before.command("S", "SELECT INBOX");

    let stop = Arc::new(AtomicBool::new(false));
    let appended = Arc::new(Mutex::new(Vec::new()));
    let delivered = Arc::new(Mutex::new(Vec::new()));
    std::thread::scope(|s| {
        s.spawn(|| *appended.lock().unwrap() = append_load(&haproxy, &stop));
        s.spawn(|| *delivered.lock().unwrap() = lmtp_load(&nodes[third], &stop));
        std::thread::sleep(Duration::from_millis(500));
        let (ok, out, err) = nodes[third].cluster_command(&["move", &p.to_string(), &to_id]);
        assert!(ok, "cluster move: {out} {err}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let now = nodes[third].status().0.get(&p).cloned();
            if now.as_ref().is_some_and(|(o, e)| *o == to_id && *e > epoch) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the move did not complete: {now:?}\n{}",
                nodes[old].server.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        // Load on the new owner for a moment, then stop.
        std::thread::sleep(Duration::from_millis(500));
        stop.store(true, Ordering::Relaxed);
    });
    let appended = appended.lock().unwrap().clone();
    let delivered = delivered.lock().unwrap().clone();
    assert!(
        !appended.is_empty() && !delivered.is_empty(),
        "load ran: {} appends, {} deliveries",
        appended.len(),
        delivered.len()
    );

    // The session that was open on the old owner, waiting for its client, was ended.
    let bye = before.line_or_eof();
    assert!(
        bye.as_deref()
            .is_some_and(|l| l.starts_with("* BYE [UNAVAILABLE]")),
        "{bye:?}"
    );
    assert!(before.line_or_eof().is_none(), "closed after the BYE");

    let messages = all_messages(&nodes[third]);
    for body in large.iter().chain(&appended).chain(&delivered) {
        let copies = messages
            .iter()
            .filter(|m| m.ends_with(body.as_str()))
            .count();
        assert_eq!(
            copies, 1,
            "acknowledged message {body:?} is there {copies} times"
        );
    }
    let moved_line = nodes[old]
        .server
        .log_text()
        .lines()
        .find(|l| l.contains("ringmail::moves: partition moved"))
        .map(str::to_string);
    eprintln!(
        "moved partition {p} {from} -> {to_id} under load: {} appends, {} deliveries \
         acknowledged, {} messages after; {moved_line:?}",
        appended.len(),
        delivered.len(),
        messages.len()
    );
    // What `ringmail check` does, on the copy the new owner serves: clean.
    let copy = nodes[to].server.dir.path().join(format!("p-{p:04}"));
    let report = ringmail::store::check(&copy, false).expect("check runs");
    assert!(report.is_clean(), "the moved copy: {report:?}");
    let data = nodes[old].server.dir.path();
    assert!(
        data.join(format!("p-{p:04}")).join("MOVED").exists(),
        "the old copy is marked as moved"
    );

    // `drain` empties the new owner through the same path; the mail follows it.
    let (ok, out, err) = nodes[third].cluster_command(&["drain", &to_id]);
    assert!(ok, "cluster drain: {out} {err}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = nodes[third].status().0;
        let left = now.values().filter(|(o, _)| *o == to_id).count();
        if left == 0 && now.len() == PARTITIONS as usize {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{to_id} still owns {left} partitions: {now:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let after_drain = all_messages(&nodes[to]);
    assert_eq!(
        after_drain, messages,
        "the mail is the same after the drain"
    );

    // `undrain` after the maintenance: the balancer gives the node its share back.
    let (ok, out, err) = nodes[third].cluster_command(&["undrain", &to_id]);
    assert!(
        ok && out.contains("undrained"),
        "cluster undrain: {out} {err}"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = nodes[third].status().0;
        let back = now.values().filter(|(o, _)| *o == to_id).count();
        if back >= PARTITIONS as usize / 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{to_id} got {back} partitions back: {now:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        all_messages(&nodes[old]),
        messages,
        "the mail is the same after the undrain"
    );
    drop(etcd);
}

/// A node that joins a running cluster gets its share of the partitions by live moves,
/// with their mail: every user's message is there, through the new node, afterwards.
#[test]
fn a_joining_node_gets_its_share_of_partitions_with_their_mail() {
    let Some(etcd) = etcd::Etcd::start(3) else {
        return;
    };
    let users: Vec<String> = (0..24).map(|i| format!("joiner{i}@example.com")).collect();
    let passwd: String = users
        .iter()
        .map(|u| format!("{u}:{{PLAIN}}pass\n"))
        .collect();
    let mut nodes: Vec<Node> = ["j0", "j1"]
        .iter()
        .map(|id| Node::start("join", id, &etcd.endpoints(), PARTITIONS, &passwd))
        .collect();
    for n in &nodes {
        n.wait_ready();
    }
    let share = |nodes: &[Node], want: usize| -> Option<BTreeMap<u32, (String, u64)>> {
        let owners = nodes[0].status().0;
        let mut count: BTreeMap<&str, usize> = BTreeMap::new();
        for (o, _) in owners.values() {
            *count.entry(o).or_default() += 1;
        }
        let even = PARTITIONS as usize / want;
        let balanced = owners.len() == PARTITIONS as usize
            && count.len() == want
            && count.values().all(|&n| n == even || n == even + 1);
        balanced.then_some(owners)
    };
    let mut before = BTreeMap::new();
    etcd::wait_until(Duration::from_secs(30), "two nodes share the map", || {
        share(&nodes, 2).map(|owners| before = owners).is_some()
    });
    // One message per user, delivered through j0 to whichever node owns the user.
    for u in &users {
        let mut c = nodes[0].server.lmtp();
        c.send("MAIL FROM:<sender@example.org>\r\n");
        c.line();
        c.send(&format!("RCPT TO:<{u}>\r\n"));
        assert!(c.line().starts_with("250"));
        c.send("DATA\r\n");
        c.line();
        c.send(&format!("Subject: for {u}\r\n\r\nbody for {u}\r\n.\r\n"));
        let reply = c.line();
        assert!(reply.starts_with("250"), "{u}: {reply}");
        c.send("QUIT\r\n");
    }

    nodes.push(Node::start(
        "join",
        "j2",
        &etcd.endpoints(),
        PARTITIONS,
        &passwd,
    ));
    nodes[2].wait_ready();
    let mut after = BTreeMap::new();
    etcd::wait_until(Duration::from_secs(60), "j2 gets its share", || {
        share(&nodes, 3).map(|owners| after = owners).is_some()
    });
    let moved: Vec<u32> = (0..PARTITIONS).filter(|p| after[p].0 == "j2").collect();
    for p in &moved {
        assert!(
            after[p].1 > before[p].1,
            "partition {p} moved at a new epoch"
        );
        let old = nodes.iter().find(|n| n.id == before[p].0).unwrap();
        // etcd shows the new owner a moment before the old one has written its marker.
        let marker = old.server.dir.path().join(format!("p-{p:04}/MOVED"));
        etcd::wait_until(
            Duration::from_secs(5),
            &format!("the old copy of {p} is marked"),
            || marker.exists(),
        );
    }
    // Every user sees their message through the new node, the moved ones included.
    let mut on_j2 = 0;
    for u in &users {
        let p = ringmail::store::partition_of(u, PARTITIONS);
        on_j2 += usize::from(moved.contains(&p));
        let mut c = nodes[2].connect("127.0.0.50");
        let reply = c.command("L", &format!("LOGIN {u} pass"));
        assert!(reply.last().unwrap().starts_with("L OK"), "{u}: {reply:?}");
        c.command("S", "SELECT INBOX");
        let fetch = c.command("F", "FETCH 1:* BODY.PEEK[TEXT]");
        let bodies: Vec<&String> = fetch.iter().filter(|l| l.starts_with("body ")).collect();
        assert_eq!(bodies, [&format!("body for {u}")], "{u} (partition {p})");
        c.command("Z", "LOGOUT");
    }
    assert!(on_j2 > 0, "some users live on the moved partitions");
    drop(etcd);
}
