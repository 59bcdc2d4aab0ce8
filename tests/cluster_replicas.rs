//! Replicas and failover end to end (docs/cluster.md, "Replicas"), on 3 etcd members, 3
//! ringmail nodes with `replicas = 1` and HAProxy in front: mail acknowledged by APPEND
//! through HAProxy and by LMTP 250 on any node is, after `kill -9` of a partition's owner and
//! the promotion of its in-sync replica, there byte for byte exactly once; and with its
//! replica killed instead, the owner goes on acknowledging writes (the replica dropped from
//! the in-sync set first).

mod common;
#[path = "../crates/cluster/tests/harness/mod.rs"]
mod etcd;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use common::cluster::{start_behind_haproxy, Node};
use common::load::USERS;
use common::{Client, TlsClient};

const PARTITIONS: u32 = 4;
/// The nodes' `lease_secs` (the default).
const LEASE: Duration = Duration::from_secs(4);

fn message(user: &str, how: &str, i: usize) -> String {
    format!(
        "From: sender@example.net\r\nTo: {user}\r\nSubject: {how} {i}\r\n\r\n\
         {how} message {i} for {user}: {}\r\n",
        "x".repeat(64 + i * 37)
    )
}

fn login(c: &mut Client, user: &str) -> bool {
    c.command("L", &format!("LOGIN {user} pass"))
        .last()
        .is_some_and(|l| l.starts_with("L OK"))
}

/// APPENDs messages `from..from + n` for `user` on connection `c`; returns those acknowledged with OK.
fn append_all(mut c: Client, user: &str, from: usize, n: usize) -> Vec<String> {
    assert!(login(&mut c, user), "login {user}");
    let mut acked = Vec::new();
    for i in from..from + n {
        let m = message(user, "append", i);
        c.send(&format!("A{i} APPEND INBOX {{{}}}\r\n", m.len()));
        let go = c.line();
        assert!(go.starts_with('+'), "{go}");
        c.send(&format!("{m}\r\n"));
        if c.until_tagged(&format!("A{i}"))
            .last()
            .is_some_and(|l| l.starts_with(&format!("A{i} OK")))
        {
            acked.push(m);
        }
    }
    c.command("Z", "LOGOUT");
    acked
}

/// Delivers messages `from..from + n` to `user` by LMTP on `node`; returns those answered 250.
fn deliver_all(node: &Node, user: &str, from: usize, n: usize) -> Vec<String> {
    let mut c = node.server.lmtp();
    let mut acked = Vec::new();
    for i in from..from + n {
        let m = message(user, "lmtp", i);
        c.send("MAIL FROM:<sender@example.net>\r\n");
        assert!(c.line().starts_with("250"));
        c.send(&format!("RCPT TO:<{user}>\r\n"));
        assert!(c.line().starts_with("250"));
        c.send("DATA\r\n");
        assert!(c.line().starts_with("354"));
        c.send(&format!("{m}.\r\n"));
        if c.line().starts_with("250") {
            acked.push(m);
        }
    }
    acked
}

/// The raw answer to FETCH 1:* BODY.PEEK[] for `user` on a new connection, or None while the
/// user is not served (the failover is not done yet).
fn fetch_all(connect: impl Fn() -> Client, user: &str) -> Option<Vec<u8>> {
    catch_unwind(AssertUnwindSafe(|| {
        let mut c = connect();
        if !login(&mut c, user) {
            return None;
        }
        if !c
            .command("S", "SELECT INBOX")
            .last()
            .is_some_and(|l| l.starts_with("S OK"))
        {
            return None;
        }
        c.send("F FETCH 1:* BODY.PEEK[]\r\n");
        let raw = c.until_tagged_bytes("F");
        let ok = raw.windows(5).rev().take(64).any(|w| w == b"F OK ");
        ok.then_some(raw)
    }))
    .ok()
    .flatten()
}

/// A message of real size: a 3 MB base64 attachment whose lines differ (so a byte-for-byte
/// comparison finds any piece out of place).
fn large_message(user: &str) -> Vec<u8> {
    let mut m = format!(
        "From: sender@example.net\r\nTo: {user}\r\nSubject: large attachment\r\n\
         MIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n"
    )
    .into_bytes();
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut x: u32 = 0x9e37_79b9;
    while m.len() < 3 << 20 {
        for _ in 0..76 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            m.push(alphabet[(x % 64) as usize]);
        }
        m.extend_from_slice(b"\r\n");
    }
    m
}

/// APPENDs `m` to `mailbox` over implicit TLS; true when acknowledged.
fn append_tls(c: &mut TlsClient, user: &str, mailbox: &str, m: &[u8]) -> bool {
    let ok = |lines: Vec<String>, tag: &str| {
        lines
            .last()
            .is_some_and(|l| l.starts_with(&format!("{tag} OK")))
    };
    if !ok(c.command("L", &format!("LOGIN {user} pass")), "L") {
        return false;
    }
    c.send(&format!("A APPEND {mailbox} {{{}}}\r\n", m.len()));
    let go = c.line();
    assert!(go.starts_with('+'), "{go}");
    c.send_bytes(m);
    c.send("\r\n");
    ok(c.until_tagged("A"), "A")
}

/// The body of the message of `mailbox` whose subject is `subject`, fetched over implicit
/// TLS, or None while the user is not served.
fn fetch_tls(c: &mut TlsClient, user: &str, mailbox: &str, subject: &str) -> Option<Vec<u8>> {
    let ok = |lines: &[String], tag: &str| {
        lines
            .last()
            .is_some_and(|l| l.starts_with(&format!("{tag} OK")))
    };
    if !ok(&c.command("L", &format!("LOGIN {user} pass")), "L")
        || !ok(&c.command("S", &format!("SELECT {mailbox}")), "S")
    {
        return None;
    }
    let found = c.command("Q", &format!("UID SEARCH SUBJECT \"{subject}\""));
    let uid = found
        .iter()
        .find_map(|l| l.strip_prefix("* SEARCH "))?
        .split(' ')
        .next()?
        .to_string();
    c.send(&format!("F UID FETCH {uid} BODY.PEEK[]\r\n"));
    let head = c.line();
    let size: usize = head.rsplit_once('{')?.1.strip_suffix('}')?.parse().ok()?;
    let body = c.bytes(size);
    ok(&c.until_tagged("F"), "F").then_some(body)
}

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle)
        .count()
}

/// A users file giving each of `users` the password "pass".
fn users_file<S: AsRef<str>>(users: &[S]) -> String {
    users
        .iter()
        .map(|u| format!("{}:{{PLAIN}}pass\n", u.as_ref()))
        .collect()
}

/// A free loopback address for each node's metrics endpoint.
fn metrics_addrs(nodes: usize) -> Vec<std::net::SocketAddr> {
    (0..nodes)
        .map(|_| {
            format!("127.0.0.1:{}", common::free_port())
                .parse()
                .unwrap()
        })
        .collect()
}

#[test]
fn every_acknowledged_message_survives_kill_9_of_its_owner() {
    let Some(etcd) = etcd::Etcd::start(3) else {
        return;
    };
    let users = users_file(&USERS);
    let Some((mut nodes, proxy)) = start_behind_haproxy(
        "replicas",
        &["r0", "r1", "r2"],
        &etcd.endpoints(),
        PARTITIONS,
        &users,
    ) else {
        return;
    };
    // Every partition, used or not, gets an in-sync replica (an owner creates and seeds
    // them all), so any can fail over.
    etcd::wait_until(
        Duration::from_secs(60),
        "every partition has an owner and an in-sync replica",
        || {
            let p = nodes[0].placement();
            p.len() == PARTITIONS as usize
                && p.iter().all(|(_, owner, replicas)| {
                    owner.is_some() && replicas.iter().any(|(_, in_sync)| *in_sync)
                })
        },
    );

    // Two rounds of writes, with a check between them that the replicas are (still) in
    // sync after the first writes to each partition.
    let mut acked: Vec<(&str, Vec<String>)> = USERS.iter().map(|u| (*u, Vec::new())).collect();
    for round in 0..2 {
        for (i, (user, mine)) in acked.iter_mut().enumerate() {
            let sent = append_all(proxy.connect(), user, round * 8, 8);
            assert_eq!(sent.len(), 8, "{user}: an APPEND was refused");
            mine.extend(sent);
            let sent = deliver_all(&nodes[i % nodes.len()], user, round * 4, 4);
            assert_eq!(sent.len(), 4, "{user}: a delivery was refused");
            mine.extend(sent);
        }
        if round == 0 {
            etcd::wait_until(
                Duration::from_secs(30),
                "the users' partitions have an in-sync replica",
                || {
                    let p = nodes[0].placement();
                    USERS.iter().all(|u| {
                        let q = ringmail::store::partition_of(u, PARTITIONS) as usize;
                        p[q].2.iter().any(|(_, in_sync)| *in_sync)
                    })
                },
            );
        }
    }

    // A real-sized message over implicit TLS, as a phone sends it, through whichever node
    // (proxied to the owner when it is not): its batch is larger than most.
    let big = large_message(USERS[0]);
    assert!(
        append_tls(
            &mut nodes[0].connect_tls("198.51.100.7"),
            USERS[0],
            "INBOX",
            &big
        ),
        "the large APPEND over TLS was refused"
    );

    // The owner of the first user's partition dies without a word.
    let p = ringmail::store::partition_of(USERS[0], PARTITIONS);
    let before = nodes[0].placement();
    let victim = before[p as usize].1.clone().unwrap();
    let v = nodes.iter().position(|n| n.id == victim).unwrap();
    nodes[v].kill();
    let witness = (v + 1) % nodes.len();
    let took = etcd::wait_until(
        LEASE * 6,
        "the dead owner's partitions are failed over",
        || {
            nodes[witness]
                .placement()
                .iter()
                .all(|(_, owner, _)| owner.as_deref().is_some_and(|o| o != victim))
        },
    );
    eprintln!("failover seen after {took:?}");

    for (user, mine) in &acked {
        let mut raw = None;
        etcd::wait_until(Duration::from_secs(30), "the user is served again", || {
            raw = fetch_all(|| proxy.connect(), user);
            raw.is_some()
        });
        let raw = raw.unwrap();
        for m in mine {
            assert_eq!(
                count(&raw, m.as_bytes()),
                1,
                "{user}: an acknowledged message is not there exactly once: {m:?}"
            );
        }
    }
    // The large message, byte for byte, over TLS through a surviving node.
    let mut got = None;
    etcd::wait_until(
        Duration::from_secs(30),
        "the large message is served",
        || {
            got = fetch_tls(
                &mut nodes[witness].connect_tls("198.51.100.8"),
                USERS[0],
                "INBOX",
                "large attachment",
            );
            got.is_some()
        },
    );
    assert!(got.unwrap() == big, "the large message came back changed");
    // The new owner serves the partition from its replica copy.
    let after = nodes[witness].placement();
    let heir = after[p as usize].1.clone().unwrap();
    let heir = nodes.iter().find(|n| n.id == heir).unwrap();
    let log = heir.server.log_text();
    assert!(log.contains("replica promoted"), "{log}");
}

#[test]
fn the_owner_keeps_serving_when_its_replica_dies() {
    let Some(etcd) = etcd::Etcd::start(3) else {
        return;
    };
    let user = USERS[0];
    let users = format!("{user}:{{PLAIN}}pass\n");
    let Some((mut nodes, proxy)) = start_behind_haproxy(
        "replica-dies",
        &["s0", "s1", "s2"],
        &etcd.endpoints(),
        PARTITIONS,
        &users,
    ) else {
        return;
    };
    let p = ringmail::store::partition_of(user, PARTITIONS) as usize;
    etcd::wait_until(
        Duration::from_secs(30),
        "the partition has an owner",
        || nodes[0].placement()[p].1.is_some(),
    );
    let mut acked = append_all(proxy.connect(), user, 0, 4);
    let mut replica = String::new();
    etcd::wait_until(
        Duration::from_secs(30),
        "the replica is in sync",
        || match nodes[0].placement()[p]
            .2
            .iter()
            .find(|(_, in_sync)| *in_sync)
        {
            Some((node, _)) => {
                replica = node.clone();
                true
            }
            None => false,
        },
    );
    let owner = nodes[0].placement()[p].1.clone().unwrap();
    let o = nodes.iter().position(|n| n.id == owner).unwrap();
    let r = nodes.iter().position(|n| n.id == replica).unwrap();

    // `cluster status` shows where the owner's log ends and that the in-sync replica has
    // all of it (every write was acknowledged only once the replica had it); a write
    // moves both.
    let (end, progress) = progress_of(&nodes[0], p, &replica);
    assert_eq!(progress["state"], "streaming", "{progress}");
    assert_eq!(
        progress["position"], end,
        "the in-sync replica lags: {progress}"
    );
    acked.extend(append_all(proxy.connect(), user, 100, 1));
    let (later, progress) = progress_of(&nodes[0], p, &replica);
    assert!(
        (later["segment"].as_u64(), later["offset"].as_u64())
            > (end["segment"].as_u64(), end["offset"].as_u64()),
        "the log end did not move with a write: {end} then {later}"
    );
    assert_eq!(progress["position"], later, "{progress}");
    let (ok, text, err) = nodes[0].cluster_command(&["status"]);
    assert!(ok, "{err}");
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("partition {p} ")))
        .unwrap();
    let shown = format!(
        "replica {replica}(in-sync at {}/{} lag 0 records",
        later["segment"], later["offset"]
    );
    assert!(line.contains(&shown), "{line:?} lacks {shown:?}");

    nodes[r].kill();

    // Every write on the owner is still acknowledged, the first once the replica is out of
    // the set.
    let started = std::time::Instant::now();
    let more = append_all(nodes[o].connect("127.0.0.50"), user, 4, 8);
    assert_eq!(more.len(), 8, "a write was refused after the replica died");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "writes took {:?}",
        started.elapsed()
    );
    acked.extend(more);
    let log = nodes[o].server.log_text();
    assert!(
        log.contains("replica dropped from the in-sync set"),
        "{log}"
    );
    let raw = fetch_all(|| nodes[o].connect("127.0.0.51"), user).expect("the owner serves");
    for m in &acked {
        assert_eq!(count(&raw, m.as_bytes()), 1, "{m:?}");
    }
}

/// Partition `p`'s log end and `replica`'s progress, as `cluster status --json` through
/// `witness` reports them (the owner's node answers for both).
fn progress_of(witness: &Node, p: usize, replica: &str) -> (serde_json::Value, serde_json::Value) {
    let (ok, out, err) = witness.cluster_command(&["status", "--json"]);
    assert!(ok, "cluster status: {err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let partition = &json["partitions"][p];
    let progress = partition["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["node"] == replica)
        .map(|r| r["progress"].clone())
        .unwrap_or_default();
    (partition["end"].clone(), progress)
}

/// Partitions of the rebalancing test: enough that each node holds several replicas.
const REBALANCE_PARTITIONS: u32 = 12;

/// Replicas `node` holds in `placement`, and how many of them are in sync.
fn held(placement: &common::cluster::Placement, node: &str) -> (usize, usize) {
    let mine: Vec<bool> = placement
        .iter()
        .flat_map(|(_, _, r)| r.iter().filter(|(n, _)| n == node).map(|(_, s)| *s))
        .collect();
    (mine.len(), mine.iter().filter(|s| **s).count())
}

/// Every partition owned, with exactly one replica, in sync, and every node holding
/// `P / 3` of them (even: no node more than one more than another, 12 over 3).
fn settled_even(placement: &common::cluster::Placement, ids: &[String]) -> bool {
    placement
        .iter()
        .all(|(_, owner, r)| owner.is_some() && r.len() == 1 && r[0].1)
        && ids.iter().all(|id| held(placement, id) == (4, 4))
}

/// The partitions whose replica copy (`p-NNNN.replica`) is in `dir`.
fn replica_copies(dir: &std::path::Path) -> Vec<u32> {
    let mut found: Vec<u32> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_prefix("p-")?
                .strip_suffix(".replica")?
                .parse()
                .ok()
        })
        .collect();
    found.sort_unstable();
    found
}

#[test]
fn a_node_back_after_its_lease_expired_gets_replicas_again_and_stale_copies_go() {
    let Some(etcd) = etcd::Etcd::start(3) else {
        return;
    };
    let users: Vec<String> = (0..24).map(|i| format!("user{i}@example.com")).collect();
    let passwords = users_file(&users);
    let metrics = metrics_addrs(3);
    let Some((mut nodes, proxy)) = common::cluster::start_behind_haproxy_with(
        "rebalance",
        &["b0", "b1", "b2"],
        &etcd.endpoints(),
        REBALANCE_PARTITIONS,
        &passwords,
        // These lines land in [cluster]: stale copies go 2 s after the map drops them.
        |i| {
            format!(
                "stale_copy_grace_secs = 2\n[metrics]\nlisten = [\"{}\"]\n",
                metrics[i]
            )
        },
    ) else {
        return;
    };
    let ids: Vec<String> = nodes.iter().map(|n| n.id.clone()).collect();
    etcd::wait_until(
        Duration::from_secs(60),
        "every partition has an in-sync replica, 4 per node",
        || settled_even(&nodes[0].placement(), &ids),
    );
    // One message per user, acknowledged before anything happens.
    let mut acked: Vec<Vec<String>> = users
        .iter()
        .map(|u| append_all(proxy.connect(), u, 0, 1))
        .collect();
    assert!(acked.iter().all(|a| a.len() == 1), "an APPEND was refused");

    // b2 dies; once its lease has expired its partitions are failed over and its replicas
    // placed on b0 and b1.
    nodes[2].kill();
    etcd::wait_until(
        LEASE * 6,
        "b2's partitions are failed over and its replicas replaced",
        || {
            let p = nodes[0].placement();
            p.iter().all(|(_, owner, r)| {
                owner.as_deref().is_some_and(|o| o != "b2")
                    && r.iter().any(|(n, in_sync)| n != "b2" && *in_sync)
                    && r.iter().all(|(n, _)| n != "b2")
            })
        },
    );
    let left_on_b2 = replica_copies(nodes[2].server.dir.path());
    assert!(!left_on_b2.is_empty(), "b2 held replicas before it died");

    // b2 comes back (a new lease, registered again): it gets replicas again, seeded and in
    // sync, until the replicas are even.
    let restarted = std::time::Instant::now();
    nodes[2].restart();
    etcd::wait_until(
        Duration::from_secs(60),
        "b2 holds an in-sync replica again",
        || held(&nodes[0].placement(), "b2").1 > 0,
    );
    let first = restarted.elapsed();
    etcd::wait_until(
        Duration::from_secs(120),
        "the replicas are even again, every one in sync",
        || settled_even(&nodes[0].placement(), &ids),
    );
    let even = restarted.elapsed();
    println!(
        "after b2's restart: first in-sync replica on b2 after {:.1} s, 4 in-sync replicas on \
         every node after {:.1} s (b2 had left copies of {left_on_b2:?})",
        first.as_secs_f64(),
        even.as_secs_f64()
    );

    // The copies the map no longer lists (those moved away from b0 and b1, b2's old ones
    // not given back) are removed once their grace period is over; every other is kept.
    let placement = nodes[0].placement();
    etcd::wait_until(
        Duration::from_secs(30),
        "every node keeps exactly the replica copies the map lists for it",
        || {
            nodes.iter().all(|n| {
                let listed: Vec<u32> = placement
                    .iter()
                    .filter(|(_, _, r)| r.iter().any(|(id, _)| *id == n.id))
                    .map(|(p, _, _)| *p)
                    .collect();
                replica_copies(n.server.dir.path()) == listed
            })
        },
    );
    let removed: f64 = metrics
        .iter()
        .map(|m| {
            let (_, page) = common::http_get(*m, "/metrics");
            common::metric_sum(
                &page,
                "ringmail_replication_stale_copies_removed_total",
                &[],
            )
        })
        .sum();
    assert!(removed >= 1.0, "no stale copy counted as removed");
    assert!(
        nodes
            .iter()
            .any(|n| n.server.log_text().contains("removed a stale replica copy")),
        "no node logged a stale copy's removal"
    );

    // A replica moved to b2 is a whole copy: its owner dies and b2 serves every message.
    let (u, q) = users
        .iter()
        .enumerate()
        .map(|(i, u)| (i, ringmail::store::partition_of(u, REBALANCE_PARTITIONS)))
        .find(|(_, q)| placement[*q as usize].2 == [("b2".to_string(), true)])
        .expect("a user whose partition's replica is on b2");
    let more = append_all(proxy.connect(), &users[u], 1, 2);
    assert_eq!(more.len(), 2, "an APPEND was refused");
    acked[u].extend(more);
    let owner = nodes[0].placement()[q as usize].1.clone().unwrap();
    let o = nodes.iter().position(|n| n.id == owner).unwrap();
    nodes[o].kill();
    etcd::wait_until(LEASE * 6, "the partition is failed over to b2", || {
        nodes[2].placement()[q as usize].1.as_deref() == Some("b2")
    });
    let mut raw = None;
    etcd::wait_until(Duration::from_secs(30), "the user is served again", || {
        raw = fetch_all(|| nodes[2].connect("127.0.0.52"), &users[u]);
        raw.is_some()
    });
    let raw = raw.unwrap();
    for m in &acked[u] {
        assert_eq!(count(&raw, m.as_bytes()), 1, "{}: {m:?}", users[u]);
    }
}

/// What `dir` holds for partitions: the partition directories (`p-NNNN`, not marked
/// MOVED), the replica copies (`p-NNNN.replica`), and every other `p-*` entry by name (a
/// move's leftovers, old owners' copies set aside, a move being received).
fn partition_dirs(dir: &std::path::Path) -> (Vec<u32>, Vec<u32>, Vec<String>) {
    let (mut partitions, mut copies, mut other) = (Vec::new(), Vec::new(), Vec::new());
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        let Some(rest) = name.strip_prefix("p-") else {
            continue;
        };
        if let Some(q) = rest.strip_suffix(".replica").and_then(|d| d.parse().ok()) {
            copies.push(q);
        } else if let (Ok(q), false) = (rest.parse(), dir.join(&name).join("MOVED").exists()) {
            partitions.push(q);
        } else {
            other.push(name);
        }
    }
    partitions.sort_unstable();
    copies.sort_unstable();
    other.sort();
    (partitions, copies, other)
}

/// What the map lists `node` for in `placement`: (partitions it owns, replicas it holds).
fn listed_for(placement: &common::cluster::Placement, node: &str) -> (Vec<u32>, Vec<u32>) {
    let owned = placement
        .iter()
        .filter(|(_, owner, _)| owner.as_deref() == Some(node))
        .map(|(p, _, _)| *p)
        .collect();
    let replicas = placement
        .iter()
        .filter(|(_, _, r)| r.iter().any(|(n, _)| n == node))
        .map(|(p, _, _)| *p)
        .collect();
    (owned, replicas)
}

/// `metric` summed over the nodes' /metrics pages.
fn metric_on(metrics: &[std::net::SocketAddr], metric: &str) -> Vec<f64> {
    metrics
        .iter()
        .map(|m| common::metric_sum(&common::http_get(*m, "/metrics").1, metric, &[]))
        .collect()
}

/// APPENDs messages `from..from + n` for `user` through `connect` once the user is served
/// (a failover may still be under way: LOGIN is tried again for up to 30 s); returns those
/// acknowledged.
fn append_when_served(
    connect: impl Fn() -> Client,
    user: &str,
    from: usize,
    n: usize,
) -> Vec<String> {
    etcd::wait_until(Duration::from_secs(30), "the user is served", || {
        catch_unwind(AssertUnwindSafe(|| login(&mut connect(), user))).unwrap_or(false)
    });
    append_all(connect(), user, from, n)
}

/// Partitions of the old owners' test: each node owns two and holds two replicas.
const OLD_OWNER_PARTITIONS: u32 = 6;

#[test]
fn an_old_owners_directories_become_replica_copies_after_a_failover_and_are_never_served() {
    let Some(etcd) = etcd::Etcd::start(3) else {
        return;
    };
    let users = users_file(&USERS);
    let metrics = metrics_addrs(3);
    let Some((mut nodes, proxy)) = common::cluster::start_behind_haproxy_with(
        "oldowner",
        &["o0", "o1", "o2"],
        &etcd.endpoints(),
        OLD_OWNER_PARTITIONS,
        &users,
        // These lines land in [cluster]: stale copies go 2 s after the map drops them.
        |i| {
            format!(
                "stale_copy_grace_secs = 2\n[metrics]\nlisten = [\"{}\"]\n",
                metrics[i]
            )
        },
    ) else {
        return;
    };
    etcd::wait_until(
        Duration::from_secs(60),
        "every partition has an owner and an in-sync replica",
        || {
            nodes[0]
                .placement()
                .iter()
                .all(|(_, owner, r)| owner.is_some() && r.len() == 1 && r[0].1)
        },
    );
    let mut acked: Vec<Vec<String>> = USERS
        .iter()
        .map(|u| append_all(proxy.connect(), u, 0, 3))
        .collect();
    assert!(acked.iter().all(|a| a.len() == 3), "an APPEND was refused");

    // The owner of the first user's partition dies without a word; its partitions fail
    // over to their in-sync replicas.
    let q0 = ringmail::store::partition_of(USERS[0], OLD_OWNER_PARTITIONS);
    let victim = nodes[0].placement()[q0 as usize].1.clone().unwrap();
    let v = nodes.iter().position(|n| n.id == victim).unwrap();
    let (owned_before, _) = listed_for(&nodes[0].placement(), &victim);
    let witness = (v + 1) % nodes.len();
    nodes[v].kill();
    etcd::wait_until(
        LEASE * 6,
        "the dead owner's partitions are failed over",
        || {
            nodes[witness]
                .placement()
                .iter()
                .all(|(_, owner, _)| owner.as_deref().is_some_and(|o| o != victim))
        },
    );
    // Mail the new owners acknowledge: the old owner's copies never see it.
    for (user, mine) in USERS.iter().zip(acked.iter_mut()) {
        let sent = append_when_served(|| nodes[witness].connect("127.0.0.61"), user, 3, 2);
        assert_eq!(
            sent.len(),
            2,
            "{user}: an APPEND after the failover was refused"
        );
        mine.extend(sent);
    }

    // The old owner comes back with its old partition directories. Whatever it answers for
    // the users of those partitions comes from their new owners: every message acknowledged
    // after the failover is there.
    nodes[v].restart();
    let moved_users: Vec<usize> = (0..USERS.len())
        .filter(|i| {
            owned_before.contains(&ringmail::store::partition_of(
                USERS[*i],
                OLD_OWNER_PARTITIONS,
            ))
        })
        .collect();
    assert!(moved_users.contains(&0));
    for _round in 0..2 {
        for &i in &moved_users {
            let mut raw = None;
            etcd::wait_until(Duration::from_secs(30), "the user is served", || {
                raw = fetch_all(|| nodes[v].connect("127.0.0.62"), USERS[i]);
                raw.is_some()
            });
            let raw = raw.unwrap();
            for m in &acked[i] {
                assert_eq!(count(&raw, m.as_bytes()), 1, "{}: {m:?}", USERS[i]);
            }
        }
    }

    // Once the map is even again, every node holds exactly the directories the map lists
    // for it: the old owner's became replica copies (seeded, or removed once unlisted for
    // 2 s), what the moves back to it left on the others is gone.
    let ids: Vec<String> = nodes.iter().map(|n| n.id.clone()).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let seen = loop {
        let placement = nodes[0].placement();
        let even = placement
            .iter()
            .all(|(_, owner, r)| owner.is_some() && r.len() == 1 && r[0].1)
            && ids.iter().all(|id| {
                let (owned, replicas) = listed_for(&placement, id);
                owned.len() == 2 && replicas.len() == 2
            });
        let seen: Vec<_> = nodes
            .iter()
            .map(|n| (n.id.clone(), partition_dirs(n.server.dir.path())))
            .collect();
        let exact = nodes.iter().zip(&seen).all(|(n, (_, (p, c, other)))| {
            let (owned, replicas) = listed_for(&placement, &n.id);
            *p == owned && *c == replicas && other.is_empty()
        });
        if even && exact {
            break seen;
        }
        if std::time::Instant::now() > deadline {
            let (_, status, _) = nodes[witness].cluster_command(&["status"]);
            let logs: String = nodes
                .iter()
                .map(|n| n.log_lines(&["stale", "old owner", "move", "WARN"]))
                .collect();
            panic!(
                "after 120 s the nodes do not hold exactly what the map lists for them: \
                 {seen:?}\n{status}\n{logs}"
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    eprintln!("directories at the end: {seen:?}");
    let adopted = metric_on(&metrics, "ringmail_replication_old_owner_copies_total");
    assert_eq!(
        adopted[v],
        owned_before.len() as f64,
        "every old partition directory of {victim} became a replica copy: {adopted:?}"
    );
    let log = nodes[v].server.log_text();
    assert!(
        log.contains("an old owner's partition directory became a replica copy"),
        "{log}"
    );
    assert!(!log.contains("set aside"), "{log}");
    // The moves that gave the old owner its share back left copies on the others, removed
    // once the grace period was over.
    let moved_removed: f64 = metric_on(&metrics, "ringmail_replication_moved_copies_removed_total")
        .iter()
        .sum();
    assert!(moved_removed >= 1.0, "no moved copy removed");
    let (ok, status, err) = nodes[witness].cluster_command(&["status"]);
    assert!(ok, "{err}");
    assert!(!status.contains("stale copy"), "{status}");

    // Every acknowledged message is there exactly once.
    for (user, mine) in USERS.iter().zip(&acked) {
        let mut raw = None;
        etcd::wait_until(Duration::from_secs(30), "the user is served", || {
            raw = fetch_all(|| proxy.connect(), user);
            raw.is_some()
        });
        let raw = raw.unwrap();
        for m in mine {
            assert_eq!(count(&raw, m.as_bytes()), 1, "{user}: {m:?}");
        }
    }
}

#[test]
fn with_replicas_0_a_moves_leftover_goes_and_an_old_owners_copy_is_set_aside() {
    let Some(etcd) = etcd::Etcd::start(3) else {
        return;
    };
    let users = users_file(&USERS);
    let metrics = metrics_addrs(2);
    let Some((mut nodes, proxy)) = common::cluster::start_behind_haproxy_with(
        "noreplicas",
        &["z0", "z1"],
        &etcd.endpoints(),
        PARTITIONS,
        &users,
        |i| {
            format!(
                "replicas = 0\nstale_copy_grace_secs = 2\n[metrics]\nlisten = [\"{}\"]\n",
                metrics[i]
            )
        },
    ) else {
        return;
    };
    let owned_by = |placement: &common::cluster::Placement, node: &str| -> Vec<u32> {
        listed_for(placement, node).0
    };
    etcd::wait_until(
        Duration::from_secs(60),
        "each node owns 2 partitions",
        || {
            let p = nodes[0].placement();
            owned_by(&p, "z0").len() == 2 && owned_by(&p, "z1").len() == 2
        },
    );
    let acked: Vec<Vec<String>> = USERS
        .iter()
        .map(|u| append_all(proxy.connect(), u, 0, 2))
        .collect();
    assert!(acked.iter().all(|a| a.len() == 2), "an APPEND was refused");
    let used: Vec<u32> = USERS
        .iter()
        .map(|u| ringmail::store::partition_of(u, PARTITIONS))
        .collect();

    // A move: the copy it leaves on the old owner (MOVED) goes once the grace period is
    // over, since the new owner at the move's epoch is alive.
    let placement = nodes[0].placement();
    let (from, to) = if used.iter().any(|q| owned_by(&placement, "z0").contains(q)) {
        (0, 1)
    } else {
        (1, 0)
    };
    let q = *used
        .iter()
        .find(|q| owned_by(&placement, &nodes[from].id).contains(q))
        .unwrap();
    let (ok, out, err) = nodes[0].cluster_command(&["move", &q.to_string(), &nodes[to].id]);
    assert!(ok, "move: {out}{err}");
    let left = nodes[from].server.dir.path().join(format!("p-{q:04}"));
    etcd::wait_until(
        Duration::from_secs(30),
        "the moved partition's old copy is removed",
        || !left.exists(),
    );
    assert_eq!(
        nodes[0].placement()[q as usize].1.as_deref(),
        Some(nodes[to].id.as_str())
    );
    assert!(nodes[from]
        .server
        .log_text()
        .contains("removed the copy a completed move left"));
    assert_eq!(
        metric_on(&metrics, "ringmail_replication_moved_copies_removed_total")[from],
        1.0
    );

    // z0 dies, and the operator gives one of its used partitions to z1 (with replicas = 0
    // nothing fails over on its own): z1 starts it empty, so z0's copy may hold the only
    // acknowledged mail. z0 comes back: its copy is set aside, never served, never removed.
    let placement = nodes[0].placement();
    let Some(r) = used
        .iter()
        .copied()
        .find(|r| owned_by(&placement, "z0").contains(r))
    else {
        panic!("z0 owns no used partition: {placement:?}");
    };
    let u = used.iter().position(|x| *x == r).unwrap();
    // On z0 before it dies: a flag on the user's first message, and a message in Sent with
    // a flag and an internal date of its own; with them, the flags and dates z0 has.
    let sent = message(USERS[u], "sent", 0);
    {
        let mut c = nodes[0].connect("127.0.0.62");
        assert!(login(&mut c, USERS[u]));
        let ok = |lines: Vec<String>, tag: &str| {
            assert!(
                lines
                    .last()
                    .is_some_and(|l| l.starts_with(&format!("{tag} OK"))),
                "{lines:?}"
            )
        };
        ok(c.command("S", "SELECT INBOX"), "S");
        ok(c.command("F", "STORE 1 +FLAGS (\\Flagged)"), "F");
        c.send(&format!(
            "A APPEND Sent (\\Seen $Work) \"01-Feb-2020 10:00:00 +0000\" {{{}}}\r\n",
            sent.len()
        ));
        assert!(c.line().starts_with('+'));
        c.send(&format!("{sent}\r\n"));
        ok(c.until_tagged("A"), "A");
    }
    // And a real-sized one over implicit TLS: recover carries it through the admin socket
    // and the node link.
    let big = large_message(USERS[u]);
    assert!(
        append_tls(
            &mut nodes[0].connect_tls("127.0.0.62"),
            USERS[u],
            "Sent",
            &big
        ),
        "the large APPEND over TLS was refused"
    );
    let on_z0 = fetch_items(|| nodes[0].connect("127.0.0.62"), USERS[u], "INBOX").unwrap();
    let old_items: Vec<String> = acked[u].iter().map(|m| items_of(&on_z0, m)).collect();
    assert!(old_items[0].contains("\\Flagged"), "{old_items:?}");
    nodes[0].kill();
    etcd::wait_until(LEASE * 6, "z0's lease has expired", || {
        !nodes[1].status().1.get("z0").copied().unwrap_or(false)
    });
    let (ok, out, err) = nodes[1].cluster_command(&["move", &r.to_string(), "z1"]);
    assert!(ok, "move: {out}{err}");
    let after = append_when_served(|| nodes[1].connect("127.0.0.63"), USERS[u], 10, 1);
    assert_eq!(after.len(), 1, "the APPEND on the new owner was refused");
    nodes[0].restart();
    let aside_prefix = format!("p-{r:04}.old-owner-");
    let status_line = format!("stale copy of partition {r} on z0: {aside_prefix}");
    let mut status = String::new();
    etcd::wait_until(
        Duration::from_secs(30),
        "cluster status shows z0's old copy, set aside",
        || {
            let (ok, out, _) = nodes[1].cluster_command(&["status"]);
            status = out;
            ok && status
                .lines()
                .any(|l| l.starts_with(&status_line) && l.contains("kept for the operator"))
        },
    );
    // Past the grace period (three times over) it is still there, whole.
    std::thread::sleep(Duration::from_secs(6));
    let (_, _, other) = partition_dirs(nodes[0].server.dir.path());
    assert!(
        other.iter().any(|n| n.starts_with(&aside_prefix)),
        "{other:?}"
    );
    assert_eq!(
        metric_on(&metrics, "ringmail_replication_old_owner_copies_total")[0],
        1.0
    );
    assert!(nodes[0].server.log_text().contains("set aside"));
    // Served from the new owner's copy, through z0 too: the message it acknowledged is
    // there, those only the old copy holds are not.
    for node in &nodes {
        let mut raw = None;
        etcd::wait_until(Duration::from_secs(30), "the user is served", || {
            raw = fetch_all(|| node.connect("127.0.0.64"), USERS[u]);
            raw.is_some()
        });
        let raw = raw.unwrap();
        assert_eq!(count(&raw, after[0].as_bytes()), 1, "{}", node.id);
        for m in &acked[u] {
            assert_eq!(
                count(&raw, m.as_bytes()),
                0,
                "{}: served the old copy",
                node.id
            );
        }
    }
    // The users of the other partitions lost nothing.
    for (i, (user, mine)) in USERS.iter().zip(&acked).enumerate() {
        if used[i] == r {
            continue;
        }
        let mut raw = None;
        etcd::wait_until(Duration::from_secs(30), "the user is served", || {
            raw = fetch_all(|| proxy.connect(), user);
            raw.is_some()
        });
        let raw = raw.unwrap();
        for m in mine {
            assert_eq!(count(&raw, m.as_bytes()), 1, "{user}: {m:?}");
        }
    }
    // `ringmail cluster recover` on z0 sends the copy's mail to z1 (the owner now), leaving
    // the copy as it is: every message z0 acknowledged is then served once, byte for byte.
    let aside = partition_dirs(nodes[0].server.dir.path())
        .2
        .into_iter()
        .find(|n| n.starts_with(&aside_prefix))
        .map(|n| nodes[0].server.dir.path().join(n))
        .unwrap();
    let aside_arg = aside.to_str().unwrap();
    let before = common::tree(&aside);
    let in_r: Vec<usize> = (0..USERS.len()).filter(|&i| used[i] == r).collect();
    // The acknowledged INBOX messages, the one in Sent and the large one.
    let lost = in_r.iter().map(|&i| acked[i].len()).sum::<usize>() + 2;
    let (ok, out, err) = nodes[0].cluster_command(&["recover", aside_arg]);
    assert!(ok, "recover: {out}{err}");
    assert!(
        out.contains(&format!(
            "{lost} messages examined, {lost} added, 0 already present"
        )),
        "{out}"
    );
    assert!(out.contains("can be removed"), "{out}");
    assert_eq!(common::tree(&aside), before, "recover changed the copy");
    // The private copy it read from is gone.
    let scratch = out
        .split("read from a copy in ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(!std::path::Path::new(scratch).exists(), "{scratch} is left");
    let served_once = |owner: &Node, what: &str| {
        for &i in &in_r {
            let mut raw = None;
            etcd::wait_until(Duration::from_secs(30), "the user is served", || {
                raw = fetch_all(|| owner.connect("127.0.0.65"), USERS[i]);
                raw.is_some()
            });
            let raw = raw.unwrap();
            let mut expected = acked[i].clone();
            if i == u {
                expected.extend(after.iter().cloned());
            }
            for m in &expected {
                assert_eq!(count(&raw, m.as_bytes()), 1, "{what}: {}: {m:?}", USERS[i]);
            }
            assert_eq!(
                count(&raw, b" FETCH ("),
                expected.len(),
                "{what}: {}: other messages in INBOX",
                USERS[i]
            );
        }
    };
    served_once(&nodes[1], "after recover");
    // With their flags, keywords and internal dates.
    let on_z1 = fetch_items(|| nodes[1].connect("127.0.0.65"), USERS[u], "INBOX").unwrap();
    let new_items: Vec<String> = acked[u].iter().map(|m| items_of(&on_z1, m)).collect();
    assert_eq!(new_items, old_items);
    let in_sent = fetch_items(|| nodes[1].connect("127.0.0.65"), USERS[u], "Sent").unwrap();
    assert_eq!(count(&in_sent, b" FETCH ("), 2);
    let got = fetch_tls(
        &mut nodes[1].connect_tls("127.0.0.65"),
        USERS[u],
        "Sent",
        "large attachment",
    );
    assert!(
        got == Some(big),
        "the large message came back changed or not at all"
    );
    assert_eq!(
        items_of(&in_sent, &sent),
        "FLAGS ($Work \\Seen) INTERNALDATE \"01-Feb-2020 10:00:00 +0000\""
    );
    // Again: everything is there already.
    let (ok, out, err) = nodes[0].cluster_command(&["recover", aside_arg]);
    assert!(ok, "recover again: {out}{err}");
    assert!(
        out.contains(&format!(
            "{lost} messages examined, 0 added, {lost} already present"
        )),
        "{out}"
    );
    served_once(&nodes[1], "after recovering twice");

    // `ringmail check` on the stopped node checks the copy set aside and says what it is.
    nodes[0].kill();
    let (clean, report) = nodes[0].check();
    assert!(clean, "{report}");
    assert!(
        report
            .lines()
            .any(|l| l.contains(&aside_prefix) && l.contains("an old owner's copy set aside")),
        "{report}"
    );

    // `--remove` removes it once everything is on the owner, and `cluster status` no longer
    // lists it.
    nodes[0].restart();
    let (ok, out, err) = nodes[0].cluster_command(&["recover", "--remove", aside_arg]);
    assert!(ok, "recover --remove: {out}{err}");
    assert!(out.contains("0 added"), "{out}");
    assert!(out.contains("removed it"), "{out}");
    assert!(!aside.exists());
    etcd::wait_until(
        Duration::from_secs(30),
        "cluster status no longer lists the copy",
        || {
            let (ok, out, _) = nodes[1].cluster_command(&["status"]);
            ok && out.contains("partition") && !out.contains(&aside_prefix)
        },
    );
    served_once(&nodes[1], "after --remove");
}

/// The raw answer to FETCH 1:* (FLAGS INTERNALDATE BODY.PEEK[]) of `user`'s `mailbox`.
fn fetch_items(connect: impl Fn() -> Client, user: &str, mailbox: &str) -> Option<Vec<u8>> {
    let mut c = connect();
    if !login(&mut c, user) {
        return None;
    }
    let selected = c.command("S", &format!("SELECT {mailbox}"));
    if !selected.last().is_some_and(|l| l.starts_with("S OK")) {
        return None;
    }
    c.send("F FETCH 1:* (FLAGS INTERNALDATE BODY.PEEK[])\r\n");
    Some(c.until_tagged_bytes("F"))
}

/// The flags (but \Recent, which a session sees or not) and internal date in the FETCH
/// answer `raw` of the message `m`, as `FLAGS (...) INTERNALDATE "..."`.
fn items_of(raw: &[u8], m: &str) -> String {
    let at = raw
        .windows(m.len())
        .position(|w| w == m.as_bytes())
        .unwrap_or_else(|| panic!("{m:?} not in {}", String::from_utf8_lossy(raw)));
    let start = raw[..at]
        .windows(8)
        .rposition(|w| w == b" FETCH (")
        .unwrap()
        + 8;
    let items = String::from_utf8_lossy(&raw[start..at]);
    let flags = items
        .split("FLAGS (")
        .nth(1)
        .and_then(|f| f.split(')').next())
        .unwrap_or_default();
    let mut flags: Vec<&str> = flags
        .split_whitespace()
        .filter(|f| *f != "\\Recent")
        .collect();
    flags.sort_unstable();
    let date = items
        .split("INTERNALDATE \"")
        .nth(1)
        .and_then(|d| d.split('"').next())
        .unwrap_or_default();
    format!("FLAGS ({}) INTERNALDATE \"{date}\"", flags.join(" "))
}

#[test]
fn recover_refuses_what_is_not_an_old_owners_copy_and_leaves_it_untouched() {
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("ringmail.toml"), "").unwrap();
    for (name, why) in [
        ("p-0000", "a partition directory a node serves"),
        ("p-0000.replica", "a replica copy"),
    ] {
        let dir = data.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("00000001.log"), b"acknowledged mail").unwrap();
        let before = common::tree(&dir);
        for extra in [&[][..], &["--remove"][..]] {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringmail"))
                .args(["cluster", "recover"])
                .args(extra)
                .arg(&dir)
                .arg("--data")
                .arg(data.path())
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{name}: {err}");
            assert!(err.contains(why), "{name}: {err}");
            assert!(
                err.contains("recover reads only an old owner's copy set aside"),
                "{name}: {err}"
            );
            assert!(err.contains("nothing was done"), "{name}: {err}");
            assert_eq!(common::tree(&dir), before, "{name} was changed");
        }
    }
}
