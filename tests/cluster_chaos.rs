//! Chaos on a replicated cluster (docs/cluster.md, "Replicas and failover", "Fencing"): 3 etcd
//! members, 3 ringmail nodes with `replicas = 1`, HAProxy in front. Nodes are killed with
//! `kill -9`, stopped with SIGSTOP past their lease, replicas killed under load, etcd members
//! stopped up to the loss of quorum; every message a client was told was written (IMAP OK,
//! LMTP 250) must be there afterwards exactly once, byte for byte.
//!
//! `CHAOS_ROUNDS` sets the number of kill rounds (default 3), `CHAOS_LEASE_SECS` the nodes'
//! `lease_secs` (default: the default, 4).

mod common;
#[path = "../crates/cluster/tests/harness/mod.rs"]
mod etcd;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::cluster::{connect_as, start_behind_haproxy_with, Haproxy, Node};
use common::load::{
    all_messages, append_load, lmtp_load, missing_or_doubled, quietly, served, serves, USERS,
};
use common::{free_port, http_get, metric_sum, Client};
use etcd::wait_until;
use ringmail::store::partition_of;

const PARTITIONS: u32 = 4;
/// How long the load runs in each round before the kill.
const LOAD: Duration = Duration::from_secs(3);

/// Sets the load's stop flag when dropped, so a failing assertion in a thread scope stops the
/// load threads the scope then waits for.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The nodes' lease: `CHAOS_LEASE_SECS`, else ringmail's default.
fn lease() -> Duration {
    Duration::from_secs(env_number("CHAOS_LEASE_SECS").unwrap_or(4))
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a number"))
    })
}

/// The `[cluster]` keys every node of these tests gets.
fn lease_config() -> String {
    match env_number("CHAOS_LEASE_SECS") {
        Some(secs) => format!("lease_secs = {secs}\n"),
        None => String::new(),
    }
}

/// 3 etcd members and nodes `{name}0..2` behind HAProxy, node i's config extended by
/// `config(i)`, once every partition has an owner and an in-sync replica.
fn start(name: &str, config: impl Fn(usize) -> String) -> Option<(etcd::Etcd, Vec<Node>, Haproxy)> {
    let etcd = etcd::Etcd::start(3)?;
    let users: String = USERS
        .iter()
        .map(|u| format!("{u}:{{PLAIN}}pass\n"))
        .collect();
    let ids: Vec<String> = (0..3).map(|i| format!("{name}{i}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let (nodes, proxy) =
        start_behind_haproxy_with(name, &ids, &etcd.endpoints(), PARTITIONS, &users, |i| {
            let config = config(i);
            if config.contains("lease_secs") {
                config
            } else {
                lease_config() + &config
            }
        })?;
    wait_all_in_sync(&nodes[0]);
    Some((etcd, nodes, proxy))
}

/// Waits (60 s at most) until the map, read through `witness`'s config, gives every partition
/// an owner and an in-sync replica.
fn wait_all_in_sync(witness: &Node) -> Duration {
    wait_until(
        Duration::from_secs(60),
        "every partition has an owner and an in-sync replica",
        || {
            let p = witness.placement();
            p.len() == PARTITIONS as usize
                && p.iter().all(|(_, owner, replicas)| {
                    owner.is_some() && replicas.iter().any(|(_, in_sync)| *in_sync)
                })
        },
    )
}

fn owner_of(witness: &Node, partition: u32) -> Option<String> {
    witness.placement()[partition as usize].1.clone()
}

fn index_of(nodes: &[Node], id: &str) -> usize {
    nodes.iter().position(|n| n.id == id).unwrap()
}

/// Every message of `user` read back through `connect` (30 s at most for the user to be
/// served); the ones of `acked` that are not there exactly once.
fn lost(connect: &dyn Fn() -> Client, user: &str, acked: &[String]) -> (usize, Vec<String>) {
    let mut found = None;
    wait_until(Duration::from_secs(30), "the user is served", || {
        found = all_messages(connect, user);
        found.is_some()
    });
    let found = found.unwrap();
    (found.len(), missing_or_doubled(acked, &found))
}

#[test]
fn kill_9_rounds() {
    // Each test runs 7 processes and measures failovers: one at a time.
    let _serial = etcd::serial();
    let rounds = env_number("CHAOS_ROUNDS").unwrap_or(3);
    let lease = lease();
    let Some((_etcd, mut nodes, proxy)) = start("chaos", |_| String::new()) else {
        return;
    };
    let lmtp: Vec<SocketAddr> = nodes.iter().map(|n| n.server.lmtp).collect();
    // Every message acknowledged so far, per user.
    let mut acked: Vec<Vec<String>> = vec![Vec::new(); USERS.len()];
    let mut failovers = Vec::new();
    let mut lost_total = 0;
    for round in 0..rounds {
        let stop = AtomicBool::new(false);
        let busy: Vec<AtomicUsize> = (0..PARTITIONS).map(|_| AtomicUsize::new(0)).collect();
        let this_round = Mutex::new(vec![Vec::new(); USERS.len()]);
        let (victim, took) = std::thread::scope(|s| {
            let _stop = StopOnDrop(&stop);
            for (u, user) in USERS.iter().enumerate() {
                let counter = &busy[partition_of(user, PARTITIONS) as usize];
                let (stop, lmtp, proxy, this_round) = (&stop, &lmtp, &proxy, &this_round);
                let ack = move |m: String| {
                    counter.fetch_add(1, Ordering::Relaxed);
                    this_round.lock().unwrap()[u].push(m);
                };
                s.spawn(move || {
                    let label = format!("round {round} append");
                    append_load(&|| proxy.connect(), user, &label, stop, &mut ack.clone());
                });
                s.spawn(move || {
                    let label = format!("round {round} lmtp");
                    lmtp_load(lmtp, user, &label, stop, &mut ack.clone());
                });
            }
            std::thread::sleep(LOAD);
            // The owner of the busiest partition dies without a word, under load.
            let busiest = (0..PARTITIONS)
                .max_by_key(|p| busy[*p as usize].load(Ordering::Relaxed))
                .unwrap();
            let user = USERS
                .iter()
                .find(|u| partition_of(u, PARTITIONS) == busiest)
                .unwrap();
            let victim = index_of(&nodes, &owner_of(&nodes[0], busiest).unwrap());
            let killed = Instant::now();
            nodes[victim].kill();
            // A client reconnecting in a loop through HAProxy until LOGIN and SELECT say OK.
            wait_until(lease * 6, "the busiest partition is served again", || {
                serves(&|| proxy.connect(), user)
            });
            let took = killed.elapsed();
            // Some load on the new owners, then stop.
            std::thread::sleep(Duration::from_secs(1));
            stop.store(true, Ordering::Relaxed);
            (victim, took)
        });
        nodes[victim].restart();
        let resync = wait_all_in_sync(&nodes[(victim + 1) % nodes.len()]);
        let this_round = this_round.into_inner().unwrap();
        let mut found = 0;
        let mut lost_now = 0;
        for (u, user) in USERS.iter().enumerate() {
            acked[u].extend(this_round[u].iter().cloned());
            let (_, bad) = lost(&|| proxy.connect(), user, &acked[u]);
            for m in &bad {
                eprintln!("{user}: acknowledged, not there exactly once: {m:?}");
            }
            found += acked[u].len() - bad.len();
            lost_now += bad.len();
        }
        let acked_now: usize = this_round.iter().map(Vec::len).sum();
        let acked_all: usize = acked.iter().map(Vec::len).sum();
        println!(
            "round {round}: killed {}, acknowledged {acked_now} (total {acked_all}), \
             found {found}, failover {:.2} s, in sync again after {:.1} s",
            nodes[victim].id,
            took.as_secs_f64(),
            resync.as_secs_f64()
        );
        failovers.push(took);
        lost_total = lost_now;
        if lost_now > 0 {
            break;
        }
    }
    failovers.sort();
    let acked_all: usize = acked.iter().map(Vec::len).sum();
    println!(
        "chaos summary: rounds {}, lease {} s, acknowledged {acked_all}, lost {lost_total}, \
         failover min {:.2} s, median {:.2} s, max {:.2} s",
        failovers.len(),
        lease.as_secs(),
        failovers[0].as_secs_f64(),
        failovers[failovers.len() / 2].as_secs_f64(),
        failovers[failovers.len() - 1].as_secs_f64()
    );
    assert_eq!(lost_total, 0, "acknowledged messages lost");
    for node in &mut nodes {
        node.server.terminate();
    }
    for node in &nodes {
        let (clean, out) = node.check();
        assert!(clean, "ringmail check on {}:\n{out}", node.id);
    }
}

#[test]
fn sigstop_owner_acknowledges_nothing_after_its_lease() {
    // Each test runs 7 processes and measures failovers: one at a time.
    let _serial = etcd::serial();
    let lease = lease();
    // (In [cluster]: what the takeover leaves on the stopped node goes 2 s after it.)
    let Some((_etcd, nodes, _proxy)) = start("stop", |_| "stale_copy_grace_secs = 2\n".into())
    else {
        return;
    };
    let user = USERS[0];
    let p = partition_of(user, PARTITIONS);
    let old = index_of(&nodes, &owner_of(&nodes[0], p).unwrap());
    let witness = &nodes[(old + 1) % nodes.len()];
    let imap = nodes[old].server.imap;
    let stop = AtomicBool::new(false);
    // Each acknowledged message with when its OK came.
    let acked = Mutex::new(Vec::new());
    let stopped = std::thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        // A client on the owner itself, not through HAProxy, writing all along.
        s.spawn(|| {
            append_load(
                &|| connect_as(imap, "127.0.0.60"),
                user,
                "stop",
                &stop,
                &mut |m| acked.lock().unwrap().push((Instant::now(), m)),
            )
        });
        std::thread::sleep(Duration::from_secs(2));
        nodes[old].signal("-STOP");
        let stopped = Instant::now();
        wait_until(lease * 6, "the stopped owner is failed over", || {
            owner_of(witness, p).is_some_and(|o| o != nodes[old].id)
        });
        nodes[old].signal("-CONT");
        // The client goes on through the old node (which proxies it to the new owner).
        std::thread::sleep(Duration::from_secs(3));
        stop.store(true, Ordering::Relaxed);
        stopped
    });
    let acked = acked.into_inner().unwrap();
    let late = acked.iter().filter(|(at, _)| *at > stopped + lease).count();
    assert!(
        acked.iter().any(|(at, _)| *at < stopped),
        "nothing acknowledged before the stop"
    );
    let new = index_of(&nodes, &owner_of(witness, p).unwrap());
    let acked: Vec<String> = acked.into_iter().map(|(_, m)| m).collect();
    let (found, bad) = lost(&|| nodes[new].connect("127.0.0.61"), user, &acked);
    println!(
        "sigstop: acknowledged {} ({late} after the lease ran out), new owner {} has {found}",
        acked.len(),
        nodes[new].id
    );
    assert!(
        bad.is_empty(),
        "acknowledged but not on the new owner exactly once: {bad:?}"
    );
    // The copy the old owner marked MOVED when it found the partition taken over is
    // removed once the grace period is over and the new owner and its replicas are alive
    // and in sync (with sync = true it acknowledged nothing the new owner lacks).
    // (A move may have given the partition back to it meanwhile, replacing that copy.)
    let marker = nodes[old]
        .server
        .dir
        .path()
        .join(format!("p-{p:04}"))
        .join("MOVED");
    let deadline = Instant::now() + Duration::from_secs(60);
    while marker.exists() {
        if Instant::now() > deadline {
            let (_, status, _) = witness.cluster_command(&["status"]);
            panic!(
                "the takeover's leftover is still there after 60 s:\n{status}\n{}",
                nodes[old].log_lines(&["stale", "old owner", "taken over", "move"])
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = nodes[old].server.log_text();
    println!(
        "sigstop: the takeover's leftover removed by the sweep: {}",
        log.contains("removed an old owner's copy left by a takeover")
    );
    assert!(
        log.contains("removed an old owner's copy left by a takeover")
            || owner_of(witness, p).as_deref() == Some(nodes[old].id.as_str()),
        "{}",
        nodes[old].log_lines(&["stale", "old owner", "taken over"])
    );
}

#[test]
fn replica_killed_under_load_catches_up() {
    // Each test runs 7 processes and measures failovers: one at a time.
    let _serial = etcd::serial();
    let lease = lease();
    let metrics: Vec<SocketAddr> = (0..3)
        .map(|_| format!("127.0.0.1:{}", free_port()).parse().unwrap())
        .collect();
    let Some((_etcd, mut nodes, _proxy)) = start("spare", |i| {
        format!("[metrics]\nlisten = [\"{}\"]\n", metrics[i])
    }) else {
        return;
    };
    let user = USERS[0];
    let p = partition_of(user, PARTITIONS) as usize;
    let placed = nodes[0].placement();
    let owner = index_of(&nodes, placed[p].1.as_deref().unwrap());
    let (replica, _) = placed[p].2.iter().find(|(_, in_sync)| *in_sync).unwrap();
    let replica = index_of(&nodes, replica);
    let dropped = || {
        let (_, page) = http_get(metrics[owner], "/metrics");
        metric_sum(
            &page,
            "ringmail_replication_in_sync_changes_total",
            &["change=\"dropped\""],
        )
    };
    let dropped_before = dropped();
    let imap = nodes[owner].server.imap;
    let stop = AtomicBool::new(false);
    let count = AtomicUsize::new(0);
    let acked = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        s.spawn(|| {
            append_load(
                &|| connect_as(imap, "127.0.0.62"),
                user,
                "spare",
                &stop,
                &mut |m| {
                    count.fetch_add(1, Ordering::Relaxed);
                    acked.lock().unwrap().push(m);
                },
            )
        });
        std::thread::sleep(Duration::from_secs(1));
        nodes[replica].kill();
        let at_kill = count.load(Ordering::Relaxed);
        wait_until(
            Duration::from_secs(20),
            "the owner counts the replica dropped",
            || dropped() > dropped_before,
        );
        nodes[replica].restart();
        let while_away = count.load(Ordering::Relaxed) - at_kill;
        assert!(
            while_away > 0,
            "the owner acknowledged nothing while its replica was away"
        );
        // A restarted node registers only once its old lease has expired, and by then the
        // balancer has dropped it from the in-sync set and placed the partition's replica on
        // the third node (rebalancing may move some replicas back to it later): what comes
        // back in sync is the partition, not necessarily on the restarted node.
        let id = nodes[replica].id.clone();
        let took = wait_until(
            Duration::from_secs(60),
            "the restarted node is registered and the partition has an in-sync replica",
            || {
                nodes[owner].status().1.get(&id) == Some(&true)
                    && nodes[owner].placement()[p]
                        .2
                        .iter()
                        .any(|(_, in_sync)| *in_sync)
            },
        );
        let back: Vec<u32> = nodes[owner]
            .placement()
            .iter()
            .filter(|(_, _, r)| r.iter().any(|(n, in_sync)| *n == id && *in_sync))
            .map(|(q, _, _)| *q)
            .collect();
        println!(
            "replica {id} back {:.1} s after its restart, in sync for partitions {back:?} \
             (partition {p}: {:?}); {while_away} writes acknowledged while it was away",
            took.as_secs_f64(),
            nodes[owner].placement()[p].2
        );
        std::thread::sleep(Duration::from_secs(1));
        stop.store(true, Ordering::Relaxed);
    });
    let acked = acked.into_inner().unwrap();
    let log = nodes[owner].server.log_text();
    assert!(
        log.contains("replica dropped from the in-sync set"),
        "{log}"
    );

    // The owner dies: the replica that caught up takes over with every acknowledged write.
    let owner_id = nodes[owner].id.clone();
    nodes[owner].kill();
    let witness = &nodes[replica];
    wait_until(
        lease * 6,
        "the dead owner's partition is failed over",
        || owner_of(witness, p as u32).is_some_and(|o| o != owner_id),
    );
    let heir = index_of(&nodes, &owner_of(witness, p as u32).unwrap());
    let (found, bad) = lost(&|| nodes[heir].connect("127.0.0.63"), user, &acked);
    println!(
        "replica: acknowledged {}, {} (failed over to) has {found}",
        acked.len(),
        nodes[heir].id
    );
    assert!(bad.is_empty(), "acknowledged but lost: {bad:?}");
}

/// Starts an APPEND of `m` on `c` (tag W) up to its literal; the caller reads the answer.
fn start_append(c: &mut Client, m: &str) {
    c.send(&format!("W APPEND INBOX {{{}}}\r\n", m.len()));
    let go = c.line();
    assert!(go.starts_with('+'), "{go}");
    c.send(&format!("{m}\r\n"));
}

fn append(c: &mut Client, m: &str) -> String {
    start_append(c, m);
    c.until_tagged("W").pop().unwrap()
}

#[test]
fn etcd_member_loss_and_quorum_loss() {
    // Each test runs 7 processes and measures failovers: one at a time.
    let _serial = etcd::serial();
    let lease = lease();
    let Some((etcd, nodes, proxy)) = start("quorum", |_| String::new()) else {
        return;
    };
    let user = USERS[0];
    let p = partition_of(user, PARTITIONS);
    let before = nodes[0].status().0;
    let owner = index_of(&nodes, &before[&p].0);
    let mut writer = nodes[owner].connect("127.0.0.64");
    let mut reader = nodes[owner].connect("127.0.0.65");
    assert!(served(&mut writer, user) && served(&mut reader, user));
    let mut acked = Vec::new();
    let mut n = 0;
    let mut next = || {
        n += 1;
        common::load::message(user, "quorum", n)
    };

    // One member (the leader) stops: writes go on being acknowledged, nobody fails over.
    let leader = etcd.leader().expect("etcd has a leader");
    etcd.freeze_member(leader, true);
    let until = Instant::now() + lease * 2;
    while Instant::now() < until {
        let m = next();
        let answer = append(&mut writer, &m);
        assert!(answer.starts_with("W OK"), "one etcd member down: {answer}");
        acked.push(m);
        std::thread::sleep(Duration::from_millis(40));
    }
    let now = nodes[0].status().0;
    assert!(
        now == before,
        "the map changed with one etcd member stopped: {before:?} -> {now:?}\n{}",
        lease_story(&nodes, &etcd)
    );

    // A second member stops: no quorum. Once the lease may have run out, writes wait
    // unanswered; reads on a selected mailbox go on. The member stopped is the follower, so
    // the leader left alone loses quorum and steps down, and the leader elected when quorum
    // returns extends every lease. (Had the leader been paused past the lease instead, it
    // would wake up still leader and revoke the leases it saw run out while it slept, before
    // any node could renew: etcd's behaviour, which no client can prevent.)
    let new_leader = etcd.new_leader_without(leader);
    let other = (0..3).find(|&i| i != leader && i != new_leader).unwrap();
    etcd.freeze_member(other, true);
    std::thread::sleep(lease + Duration::from_millis(1500));
    let waiting = next();
    start_append(&mut writer, &waiting);
    let silent = writer.silent_for(Duration::from_secs(2));
    reader.command("N", "NOOP");
    let read = reader.command("R", "FETCH 1:* (FLAGS)");
    etcd.freeze_member(leader, false);
    etcd.freeze_member(other, false);
    assert!(silent, "a write was acknowledged without etcd quorum");
    assert!(
        read.last().unwrap().starts_with("R OK") && read.len() > acked.len(),
        "reads without etcd quorum: {read:?}"
    );

    // Quorum back. The outage outlasted the leases, and etcd may let them expire as it comes
    // back (seen: every node's lease gone and its partitions reassigned at the next epoch).
    // Either way nothing acknowledged is lost: the write that waited is acknowledged, or
    // refused and never acknowledged; and the user is served again, writes included.
    let answer = writer.until_tagged("W").pop().unwrap();
    if answer.starts_with("W OK") {
        acked.push(waiting);
    } else {
        assert!(
            answer.contains("[UNAVAILABLE]"),
            "after quorum came back: {answer}"
        );
    }
    // A client told `[UNAVAILABLE]` logs in again through the balancer and retries, as
    // the reassignment may still be under way; each write must get OK within the bound.
    for _ in 0..5 {
        let deadline = Instant::now() + lease * 6;
        loop {
            let m = next();
            // A connection cut by the reassignment counts as not served.
            let answer = quietly(|| {
                let mut c = proxy.connect();
                if served(&mut c, user) {
                    append(&mut c, &m)
                } else {
                    "not served".to_string()
                }
            })
            .unwrap_or_else(|| "not served".to_string());
            if answer.starts_with("W OK") {
                acked.push(m);
                break;
            }
            assert!(
                Instant::now() < deadline
                    && (answer.contains("[UNAVAILABLE]") || answer == "not served"),
                "after quorum came back: {answer}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let after = nodes[0].status().0;
    if after != before {
        eprintln!(
            "the leases ran out during the quorum loss: {before:?} -> {after:?}\n{}",
            lease_story(&nodes, &etcd)
        );
    }
    let (_, bad) = lost(&|| proxy.connect(), user, &acked);
    assert!(bad.is_empty(), "acknowledged but lost: {bad:?}");
}

/// What the nodes logged about their leases, fencing and failovers, and what etcd logged
/// about leases and elections: the story behind an unexpected failover, for its message.
fn lease_story(nodes: &[Node], etcd: &etcd::Etcd) -> String {
    let words = ["lease", "fenced", "failed over", "etcd", "register"];
    let mut story: String = nodes.iter().map(|n| n.log_lines(&words)).collect();
    for i in 0..etcd.members.len() {
        let log = etcd.log(i);
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("lease") || l.contains("elected leader"))
            .collect();
        let recent = &lines[lines.len().saturating_sub(40)..];
        story += &format!("etcd member {i}:\n{}\n", recent.join("\n"));
    }
    story
}
