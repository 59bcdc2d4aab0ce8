//! The control plane against a real 3-member etcd cluster.

mod harness;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use harness::{balanced, converged, serial, wait_until, Etcd};
use ringmail_cluster::{
    Admin, ClusterView, ControlPlane, CopyKind, Error, PartitionState, Registration,
};

/// Generous bounds: the machine running the tests may be busy.
const CONVERGE: Duration = Duration::from_secs(10);

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}

fn admin(etcd: &Etcd, cluster: &str) -> Admin {
    let config = harness::config(cluster, "admin", etcd.endpoints(), etcd.dir.path());
    Admin::connect(&config).expect("admin client")
}

/// Pending moves in `view`'s copy: partition → (from, to).
fn intents(view: &ClusterView) -> BTreeMap<u32, (String, String)> {
    let map = view.map();
    map.assignments
        .iter()
        .enumerate()
        .filter_map(|(p, a)| {
            let to = a.moving_to()?;
            Some((p as u32, (a.owner.clone()?, to.to_string())))
        })
        .collect()
}

#[test]
fn partition_count_is_fixed_when_the_cluster_is_created() {
    let _serial = serial();
    let Some(etcd) = Etcd::start(3) else { return };
    let first = harness::node(&etcd, "fixed", "a", 16);
    let config = harness::config("fixed", "b", etcd.endpoints(), etcd.dir.path());
    let err = ControlPlane::start(config.clone(), Registration::new(32, vec![]))
        .err()
        .expect("a node with another P must be refused");
    assert!(
        matches!(
            err,
            Error::PartitionMismatch {
                existing: 16,
                ours: 32,
                ..
            }
        ),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains("16") && message.contains("32"),
        "{message}"
    );
    // The refused node did not register; one with the right P joins.
    assert!(!first.view().map().alive("b"));
    let second = ControlPlane::start(config, Registration::new(16, vec![])).expect("same P joins");
    assert_eq!(admin(&etcd, "fixed").status().unwrap().partition_count, 16);
    // A second process with the same node id is refused while the first is alive.
    let config = harness::config("fixed", "b", etcd.endpoints(), etcd.dir.path());
    let err = ControlPlane::start(config, Registration::new(16, vec![]))
        .err()
        .expect("duplicate node id");
    assert!(matches!(err, Error::AlreadyRegistered { .. }), "{err}");
    // Leaving revokes the lease: the others see the node gone at once, not a lease later.
    let view = first.view();
    assert!(view.map().alive("b"));
    second.shutdown();
    let gone = wait_until(Duration::from_secs(2), "b gone after shutdown", || {
        !view.map().alive("b")
    });
    eprintln!("a node that shuts down is seen gone {gone:?} later");
}

#[test]
fn three_nodes_spread_partitions_evenly_and_copies_converge() {
    let _serial = serial();
    let Some(etcd) = Etcd::start(3) else { return };
    let started = Instant::now();
    let nodes: Vec<ControlPlane> = ["a", "b", "c"]
        .iter()
        .map(|n| harness::node(&etcd, "spread", n, 64))
        .collect();
    let views: Vec<ClusterView> = nodes.iter().map(ControlPlane::view).collect();
    let spread_in = wait_until(CONVERGE, "partitions spread over a, b, c", || {
        balanced(&views[0], &["a", "b", "c"])
    });
    let converge_in = wait_until(CONVERGE, "all copies equal", || converged(&views));
    eprintln!(
        "3 nodes: all 64 partitions assigned {:?} after the first start ({spread_in:?} after \
         the last), copies equal {converge_in:?} later",
        started.elapsed() - converge_in
    );
    let map = views[2].map();
    // Assigned once each, straight to their owner: epoch 1 everywhere.
    assert!(map.assignments.iter().all(|a| a.epoch == 1), "{map:?}");
    for view in &views {
        let mine = (0..64).filter(|p| view.is_owner(*p).is_some()).count();
        assert!((21..=22).contains(&mine), "{} owns {mine}", view.node());
        assert!(!view.fenced());
        assert!(view.lease_valid_until().is_some_and(|t| t > Instant::now()));
    }
    // The balancer was elected exactly once, on one node.
    let elections: u64 = views.iter().map(|v| v.metrics().balancer_elections).sum();
    assert_eq!(elections, 1);
    let balancer = map.balancer.clone().expect("a balancer");
    let on_balancer = views.iter().find(|v| v.node() == balancer).unwrap();
    assert!(on_balancer.metrics().balancer);
    assert_eq!(on_balancer.metrics().claims_won, 64);

    // What the CLI shows agrees with the nodes' copies.
    let admin = admin(&etcd, "spread");
    let status = admin.status().unwrap();
    let json: serde_json::Value = serde_json::from_str(&status.to_json()).unwrap();
    let listed: Vec<(&str, bool)> = json["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n["alive"].as_bool().unwrap()))
        .collect();
    assert_eq!(listed, [("a", true), ("b", true), ("c", true)]);
    let partitions = json["partitions"].as_array().unwrap();
    assert_eq!(partitions.len(), 64);
    for (p, entry) in partitions.iter().enumerate() {
        let a = map.assignment(p as u32);
        assert_eq!(entry["partition"].as_u64(), Some(p as u64));
        assert_eq!(entry["owner"].as_str(), a.owner.as_deref());
        assert_eq!(entry["epoch"].as_u64(), Some(a.epoch));
    }
    let text = status.to_string();
    assert!(text.contains("node a alive owns 2"), "{text}");
    let location = admin.locate("Alice@Example.com").unwrap();
    let p = ringmail_cluster::partition_of("alice@example.com", 64);
    let owner = map.assignment(p).owner.clone().unwrap();
    assert_eq!(
        location.to_string(),
        format!("partition {p} owner {owner} epoch 1")
    );
    assert_eq!(views[0].owner(p).unwrap().node, owner);
}

#[test]
fn a_dead_nodes_partitions_wait_for_it() {
    let _serial = serial();
    let Some(etcd) = Etcd::start(3) else { return };
    let mut nodes: BTreeMap<&str, ControlPlane> = ["a", "b", "c"]
        .into_iter()
        .map(|n| (n, harness::node(&etcd, "death", n, 48)))
        .collect();
    let view = nodes["a"].view();
    wait_until(CONVERGE, "partitions spread", || {
        balanced(&view, &["a", "b", "c"])
    });
    // Kill the balancer's node, so the survivors must also elect a new one.
    let victim = view.map().balancer.clone().expect("a balancer");
    let victim: &str = ["a", "b", "c"].into_iter().find(|n| *n == victim).unwrap();
    let survivors: Vec<&str> = ["a", "b", "c"]
        .into_iter()
        .filter(|n| *n != victim)
        .collect();
    let watcher = nodes[survivors[0]].view();
    let before = watcher.map();
    let lost: Vec<(u32, u64)> = (0..48)
        .filter(|p| before.assignment(*p).owned_by(victim))
        .map(|p| (p, before.assignment(p).epoch))
        .collect();
    assert_eq!(lost.len(), 16);

    // Crash: stop without revoking the lease.
    drop(nodes.remove(victim));
    let died = Instant::now();
    wait_until(Duration::from_secs(10), "lease expiry seen", || {
        !watcher.map().alive(victim)
    });
    wait_until(Duration::from_secs(15), "a new balancer", || {
        watcher
            .map()
            .balancer
            .as_deref()
            .is_some_and(|b| survivors.contains(&b))
    });
    // Give the new balancer several rounds: the victim's partitions hold mail only on its
    // disk (no replicas yet), so none may be handed to a survivor, which would show their
    // users empty mailboxes. They wait, unserved, for the node or an operator's move.
    std::thread::sleep(Duration::from_secs(3));
    let views: Vec<ClusterView> = survivors.iter().map(|n| nodes[n].view()).collect();
    wait_until(CONVERGE, "survivors agree", || converged(&views));
    let map = watcher.map();
    for (p, epoch) in &lost {
        let a = map.assignment(*p);
        assert!(
            a.owned_by(victim),
            "partition {p} left its dead owner: {a:?}"
        );
        assert_eq!(a.epoch, *epoch, "partition {p}");
    }
    assert!(died.elapsed() >= Duration::from_secs(3));
}

#[test]
fn of_two_concurrent_claims_exactly_one_wins() {
    let _serial = serial();
    let Some(etcd) = Etcd::start(3) else { return };
    // No balancer, so nothing assigns the partitions but the claims.
    let start = |node: &str| {
        let config = harness::config("claims", node, etcd.endpoints(), etcd.dir.path());
        let mut registration = Registration::new(8, vec![]);
        registration.balancer = false;
        ControlPlane::start(config, registration).unwrap()
    };
    let (a, b) = (start("a"), start("b"));
    let (va, vb) = (a.view(), b.view());
    wait_until(CONVERGE, "both see both", || {
        va.map().alive("b") && vb.map().alive("a") && converged(&[va.clone(), vb.clone()])
    });
    let mut winners = Vec::new();
    let mut conflicts = 0;
    for p in 0..8 {
        let (ra, rb) = block_on(async { tokio::join!(va.claim(p), vb.claim(p)) });
        let (winner, loser) = match (&ra, &rb) {
            (Ok(epoch), Err(e)) => {
                assert_eq!(*epoch, 1);
                ("a", e)
            }
            (Err(e), Ok(epoch)) => {
                assert_eq!(*epoch, 1);
                ("b", e)
            }
            _ => panic!("partition {p}: exactly one claim must win: {ra:?} {rb:?}"),
        };
        // Either it lost the compare-and-set, or it already saw the winner's write.
        assert!(
            matches!(loser, Error::Conflict(q) if *q == p)
                || matches!(loser, Error::Owned { owner, .. } if owner == winner),
            "{loser}"
        );
        conflicts += usize::from(matches!(loser, Error::Conflict(_)));
        winners.push(winner);
    }
    eprintln!("claims: winners {winners:?}, {conflicts} of 8 losers lost the compare-and-set");
    wait_until(CONVERGE, "both copies show the winners", || {
        converged(&[va.clone(), vb.clone()]) && (0..8).all(|p| va.map().assignment(p).epoch == 1)
    });
    let map = va.map();
    for (p, winner) in winners.iter().enumerate() {
        assert!(map.assignment(p as u32).owned_by(winner));
    }
    let won = va.metrics().claims_won + vb.metrics().claims_won;
    assert_eq!(won, 8);
    // A partition with a live owner cannot be claimed.
    let taken = block_on(vb.claim(winners.iter().position(|w| *w == "a").unwrap_or(0) as u32));
    assert!(taken.is_err());
}

#[test]
fn a_joining_node_gets_a_fair_share_as_moves_and_complete_move_bumps_the_epoch() {
    let _serial = serial();
    let Some(etcd) = Etcd::start(3) else { return };
    let mut nodes: Vec<ControlPlane> = ["a", "b", "c"]
        .iter()
        .map(|n| harness::node(&etcd, "join", n, 48))
        .collect();
    let va = nodes[0].view();
    wait_until(CONVERGE, "partitions spread", || {
        balanced(&va, &["a", "b", "c"])
    });
    let mut a_changes = va.subscribe();
    nodes.push(harness::node(&etcd, "join", "d", 48));
    let vd = nodes[3].view();
    wait_until(CONVERGE, "12 move intents to d", || {
        let pending = intents(&vd);
        pending.len() == 12 && pending.values().all(|(_, to)| to == "d")
    });
    let pending = intents(&vd);
    // Taken evenly from the others, which still own them until the move is done.
    let mut from: BTreeMap<&str, usize> = BTreeMap::new();
    for (owner, _) in pending.values() {
        *from.entry(owner.as_str()).or_default() += 1;
    }
    assert_eq!(
        from.values().copied().collect::<Vec<_>>(),
        [4, 4, 4],
        "{from:?}"
    );
    assert!(vd.map().owned_count("d") == 0);
    let mine: Vec<(u32, String, String)> = pending
        .iter()
        .map(|(p, (from, to))| (*p, from.clone(), to.clone()))
        .collect();
    assert_eq!(vd.pending_moves(), mine);
    // a subscribed before d joined: it is told which of its partitions to hand over.
    wait_until(CONVERGE, "a's copy shows the intents", || {
        intents(&va).len() == 12
    });
    let announced = a_changes.poll().expect("a is told of the intents");
    let from_a: Vec<u32> = pending
        .iter()
        .filter(|(_, (owner, _))| owner == "a")
        .map(|(p, _)| *p)
        .collect();
    let told: Vec<u32> = announced.moves.iter().map(|m| m.partition).collect();
    assert_eq!(told, from_a);
    assert!(announced
        .moves
        .iter()
        .all(|m| m.after.moving_to() == Some("d")));
    assert!(
        announced.lost.is_empty(),
        "a still owns them until the move is done"
    );

    // complete_move on a partition that is not moving is refused.
    let steady = (0..48).find(|p| !pending.contains_key(p)).unwrap();
    let owner = vd.map().assignment(steady).owner.clone().unwrap();
    let refused = block_on(vd.complete_move(steady, &owner, "d"));
    assert!(
        matches!(refused, Err(Error::NotMoving { .. })),
        "{refused:?}"
    );

    // The data plane would copy each partition, then complete the move, from an executor.
    let before = vd.map();
    let completing = vd.clone();
    let moves = pending.clone();
    let epochs = glommio::LocalExecutorBuilder::default()
        .spawn(move || async move {
            let mut epochs = BTreeMap::new();
            for (p, (owner, to)) in &moves {
                let epoch = completing.complete_move(*p, owner, to).await;
                epochs.insert(*p, epoch.expect("complete"));
            }
            epochs
        })
        .expect("glommio executor")
        .join()
        .expect("executor ran");
    for (p, epoch) in &epochs {
        assert_eq!(*epoch, before.assignment(*p).epoch + 1);
    }
    let views: Vec<ClusterView> = nodes.iter().map(ControlPlane::view).collect();
    wait_until(CONVERGE, "four nodes balanced, copies equal", || {
        balanced(&va, &["a", "b", "c", "d"]) && converged(&views)
    });
    for p in pending.keys() {
        assert_eq!(vd.is_owner(*p), Some(before.assignment(*p).epoch + 1));
        assert_eq!(va.is_owner(*p), None);
    }
    let mut told = Vec::new();
    while let Some(changes) = a_changes.poll() {
        told.extend(changes.lost);
    }
    assert_eq!(told, from_a);
    assert!(vd.pending_moves().is_empty());
    assert_eq!(vd.metrics().moves_completed, 12);
}

#[test]
fn drain_empties_a_node_and_undrain_refills_it() {
    let _serial = serial();
    let Some(etcd) = Etcd::start(3) else { return };
    let nodes: Vec<ControlPlane> = ["a", "b", "c"]
        .iter()
        .map(|n| harness::node(&etcd, "drain", n, 30))
        .collect();
    let views: Vec<ClusterView> = nodes.iter().map(ControlPlane::view).collect();
    wait_until(CONVERGE, "partitions spread", || {
        balanced(&views[0], &["a", "b", "c"])
    });
    let admin = admin(&etcd, "drain");
    let drained = admin.drain("b").unwrap();
    assert_eq!((drained.moving, drained.stuck), (10, 0), "{drained}");
    wait_until(CONVERGE, "b's copy shows the intents", || {
        intents(&views[1]).len() == 10
    });
    let pending = intents(&views[1]);
    assert!(pending.values().all(|(from, to)| from == "b" && to != "b"));
    for (p, (from, to)) in &pending {
        block_on(views[1].complete_move(*p, from, to)).expect("complete");
    }
    wait_until(CONVERGE, "b empty, a and c balanced", || {
        balanced(&views[0], &["a", "c"]) && converged(&views)
    });
    // b's replica copies (replicas = 1) get a replacement beside them, and go once the owner
    // has marked the replacement in sync (as its data plane would after seeding it).
    let view_of = |node: &str| views.iter().find(|v| v.node() == node).unwrap().clone();
    let mut marked = 0;
    wait_until(CONVERGE, "b's replicas replaced", || {
        let map = views[0].map();
        for (p, a) in map.assignments.iter().enumerate() {
            if a.replicated_on("b") && a.replicas.len() == 2 && a.in_sync.len() < 2 {
                let owner = a.owner.clone().unwrap();
                let new = a.replicas.iter().find(|n| *n != "b").unwrap();
                if block_on(view_of(&owner).set_in_sync(p as u32, new, true, a.epoch)).is_ok() {
                    marked += 1;
                }
            }
        }
        map.replica_count("b") == 0
            && map.assignments.iter().all(|a| {
                a.replicas.len() == 1 && !a.owned_by(&a.replicas[0]) && a.replicas[0] != "b"
            })
    });
    assert!(marked > 0, "b held replicas to replace");
    // Two balancer rounds later, b has still been given nothing.
    std::thread::sleep(Duration::from_millis(2500));
    let map = views[0].map();
    assert_eq!(map.owned_count("b"), 0);
    assert_eq!(map.replica_count("b"), 0);
    assert!(intents(&views[0]).is_empty());
    assert!(admin
        .status()
        .unwrap()
        .nodes
        .iter()
        .any(|n| n.id == "b" && n.drained));

    admin.undrain("b").unwrap();
    wait_until(CONVERGE, "b is given a fair share back", || {
        let pending = intents(&views[0]);
        pending.len() == 10 && pending.values().all(|(_, to)| to == "b")
    });
}

#[test]
fn the_cluster_keeps_working_without_one_etcd_member() {
    let _serial = serial();
    let Some(mut etcd) = Etcd::start(3) else {
        return;
    };
    let nodes: Vec<ControlPlane> = ["a", "b"]
        .iter()
        .map(|n| harness::node(&etcd, "quorum", n, 16))
        .collect();
    let views: Vec<ClusterView> = nodes.iter().map(ControlPlane::view).collect();
    wait_until(CONVERGE, "partitions spread", || {
        balanced(&views[0], &["a", "b"])
    });
    let renewals: Vec<u64> = views.iter().map(|v| v.metrics().lease_renewals).collect();

    // The worst member to lose: the leader (an election follows, leases carry over to the new
    // leader) that every client is pinned to (the first listed), so every watch and keep-alive
    // stream breaks and must fail over.
    etcd.make_leader(0);
    let leader = 0;
    etcd.kill(leader);
    let killed = Instant::now();

    // The map stays writable and watchable: move a partition and see every copy follow.
    let admin = admin(&etcd, "quorum");
    let p = (0..16)
        .find(|p| views[0].map().assignment(*p).owned_by("a"))
        .unwrap();
    let deadline = Instant::now() + CONVERGE;
    let moved = loop {
        match admin.move_partition(p, "b") {
            Ok(moved) => break moved,
            Err(e) if Instant::now() < deadline => eprintln!("move while etcd elects: {e}"),
            Err(e) => panic!("move after losing one etcd member: {e}"),
        }
    };
    assert!(
        moved.to_string().contains("will move from a to b"),
        "{moved}"
    );
    wait_until(CONVERGE, "both copies show the intent", || {
        views
            .iter()
            .all(|v| v.map().assignment(p).moving_to() == Some("b"))
    });
    let before = views[0].map().assignment(p).epoch;
    block_on(views[0].complete_move(p, "a", "b")).expect("complete the move");
    wait_until(CONVERGE, "both copies show the new owner", || {
        views.iter().all(|v| {
            let a = v.map().assignment(p).clone();
            a.owned_by("b") && a.epoch == before + 1 && a.state == PartitionState::Active
        })
    });
    // Leases keep being renewed through the surviving members.
    wait_until(Duration::from_secs(10), "renewals after the kill", || {
        views
            .iter()
            .zip(&renewals)
            .all(|(v, before)| v.metrics().lease_renewals >= before + 2)
    });
    for view in &views {
        assert!(!view.fenced(), "{} fenced", view.node());
        // Its watch was on the killed member: it re-read the map and watches elsewhere.
        assert!(view.metrics().map_reloads >= 1, "{:?}", view.metrics());
    }
    let status = admin.status().expect("status with a member down");
    assert_eq!(status.nodes.iter().filter(|n| n.alive).count(), 2);
    eprintln!(
        "etcd leader m{leader} killed: move, completion and renewals done {:?} later; lease \
         failures {:?}",
        killed.elapsed(),
        views
            .iter()
            .map(|v| v.metrics().lease_failures)
            .collect::<Vec<_>>()
    );
}

#[test]
fn a_silent_etcd_leader_is_left_before_any_lease_runs_out() {
    let _serial = serial();
    let Some(etcd) = Etcd::start(3) else { return };
    let nodes: Vec<ControlPlane> = ["a", "b"]
        .iter()
        .map(|n| harness::node(&etcd, "silent", n, 16))
        .collect();
    let views: Vec<ClusterView> = nodes.iter().map(ControlPlane::view).collect();
    wait_until(CONVERGE, "partitions spread", || {
        balanced(&views[0], &["a", "b"])
    });
    // Every client is pinned to the first member; make it the leader, then freeze it: its
    // connections stay open but nothing comes back (as when the network to it fails), and
    // the others must elect a new leader.
    etcd.make_leader(0);
    let renewals: Vec<u64> = views.iter().map(|v| v.metrics().lease_renewals).collect();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let fenced_seen = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let mut seen = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for view in &views {
                    if view.fenced() && !seen.contains(&view.node().to_string()) {
                        seen.push(view.node().to_string());
                    }
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            seen
        });
        etcd.freeze_member(0, true);
        let frozen = Instant::now();
        // The map stays writable and every copy follows.
        let admin = admin(&etcd, "silent");
        let p = (0..16)
            .find(|p| views[0].map().assignment(*p).owned_by("a"))
            .unwrap();
        let deadline = Instant::now() + CONVERGE;
        loop {
            match admin.move_partition(p, "b") {
                Ok(_) => break,
                Err(e) if Instant::now() < deadline => eprintln!("move while etcd elects: {e}"),
                Err(e) => panic!("move with a silent member: {e}"),
            }
        }
        wait_until(CONVERGE, "both copies show the intent", || {
            views
                .iter()
                .all(|v| v.map().assignment(p).moving_to() == Some("b"))
        });
        let seen_in = frozen.elapsed();
        // Two lease lengths with renewals going on.
        wait_until(Duration::from_secs(15), "renewals go on", || {
            frozen.elapsed() >= Duration::from_secs(10)
                && views
                    .iter()
                    .zip(&renewals)
                    .all(|(v, before)| v.metrics().lease_renewals >= before + 4)
        });
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        eprintln!(
            "etcd leader m0 frozen: intent seen by every copy {seen_in:?} later; metrics {:?}",
            views.iter().map(ClusterView::metrics).collect::<Vec<_>>()
        );
        sampler.join().unwrap()
    });
    assert!(
        fenced_seen.is_empty(),
        "fenced while one member was silent: {fenced_seen:?}"
    );
}

#[test]
fn a_node_that_cannot_renew_its_lease_is_fenced_in_time() {
    let _serial = serial();
    let Some(etcd) = Etcd::start(3) else { return };
    let mut config = harness::config("fence", "a", etcd.endpoints(), etcd.dir.path());
    config.lease_secs = 2;
    let node = ControlPlane::start(config, Registration::new(8, vec![])).unwrap();
    let view = node.view();
    wait_until(CONVERGE, "a owns every partition", || {
        (0..8).all(|p| view.is_owner(p).is_some())
    });
    let epochs: Vec<u64> = (0..8).map(|p| view.is_owner(p).unwrap()).collect();
    let mut changes = view.subscribe();
    // The data plane learns of it on a glommio executor, woken by the control thread.
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let (told_tx, told) = std::sync::mpsc::channel();
    let executor_view = view.clone();
    std::thread::spawn(move || {
        glommio::LocalExecutorBuilder::default()
            .spawn(move || async move {
                let mut subscription = executor_view.subscribe();
                ready_tx.send(()).unwrap();
                let changes = subscription.changed().await;
                let _ = told_tx.send((changes.fenced, executor_view.is_owner(0)));
            })
            .expect("glommio executor")
            .join()
            .expect("executor ran");
    });
    ready.recv_timeout(CONVERGE).expect("executor started");

    // etcd stops answering (frozen, connections stay open): no renewal gets through.
    etcd.freeze(true);
    let frozen = Instant::now();
    wait_until(Duration::from_secs(5), "fenced", || view.fenced());
    let fenced_after = frozen.elapsed();
    assert!(
        fenced_after <= Duration::from_millis(2100),
        "fenced only {fenced_after:?} after the last chance to renew a 2 s lease"
    );
    assert!((0..8).all(|p| view.is_owner(p).is_none()));
    assert!(view.lease_valid_until().unwrap() <= Instant::now());
    let (executor_fenced, executor_owner) = told
        .recv_timeout(Duration::from_secs(5))
        .expect("the executor was woken");
    assert!(executor_fenced);
    assert_eq!(executor_owner, None);
    assert!(changes.poll().expect("fence change").fenced);

    // Long enough for etcd to expire the lease once it runs again.
    std::thread::sleep(Duration::from_secs(3));
    etcd.freeze(false);
    let thawed = Instant::now();
    wait_until(Duration::from_secs(15), "owner again", || {
        !view.fenced() && (0..8).all(|p| view.is_owner(p).is_some())
    });
    for p in 0..8u32 {
        assert!(view.is_owner(p).unwrap() >= epochs[p as usize]);
    }
    eprintln!(
        "lease_secs=2: fenced {fenced_after:?} after etcd froze; owner again {:?} after it \
         thawed; metrics {:?}",
        thawed.elapsed(),
        view.metrics()
    );
}

#[test]
fn unreachable_etcd_fails_within_the_timeout_naming_the_endpoints() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    // One endpoint refuses connections; the other accepts them but never answers.
    let refused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let refused_url = format!("http://{}", refused.local_addr().unwrap());
    drop(refused);
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    let limit = ringmail_cluster::ETCD_TIMEOUT + Duration::from_secs(2);
    for endpoints in [
        vec![refused_url.clone()],
        vec![silent_url.clone()],
        vec![refused_url, silent_url],
    ] {
        let config = harness::config("gone", "a", endpoints.clone(), dir.path());
        type Check = fn(&Admin) -> Result<String, Error>;
        let checks: [(&str, Check); 4] = [
            ("status", |a| a.status().map(|s| s.to_string())),
            ("locate", |a| a.locate("alice").map(|l| l.to_string())),
            ("move", |a| a.move_partition(1, "b").map(|m| m.to_string())),
            ("drain", |a| a.drain("b").map(|d| d.to_string())),
        ];
        // Each check waits out the timeout; run them side by side.
        std::thread::scope(|scope| {
            for (what, check) in checks {
                let config = config.clone();
                let endpoints = &endpoints;
                scope.spawn(move || {
                    let admin = Admin::connect(&config).expect("connecting is lazy");
                    let started = Instant::now();
                    let err = check(&admin).expect_err(what).to_string();
                    let took = started.elapsed();
                    assert!(took < limit, "{what} took {took:?}");
                    for endpoint in endpoints {
                        assert!(err.contains(endpoint.as_str()), "{what}: {err}");
                    }
                });
            }
            let started = Instant::now();
            let err = ControlPlane::start(config.clone(), Registration::new(8, vec![]))
                .err()
                .expect("no etcd, no start")
                .to_string();
            assert!(
                started.elapsed() < limit,
                "start took {:?}",
                started.elapsed()
            );
            assert!(err.contains(&endpoints[0]), "{err}");
            eprintln!("{endpoints:?}: {err}");
        });
    }
    drop(silent);
}

/// Partitions of `owner` in `view`'s copy, with their epoch and their one replica.
fn replicated(view: &ClusterView, owner: &str) -> BTreeMap<u32, (u64, String)> {
    let map = view.map();
    map.assignments
        .iter()
        .enumerate()
        .filter(|(_, a)| a.owned_by(owner) && a.replicas.len() == 1)
        .map(|(p, a)| (p as u32, (a.epoch, a.replicas[0].clone())))
        .collect()
}

#[test]
fn replicas_are_placed_and_an_in_sync_one_takes_over_from_a_dead_owner() {
    let _serial = serial();
    let Some(etcd) = Etcd::start(3) else { return };
    const P: u32 = 24;
    let names = ["a", "b", "c"];
    let mut nodes: BTreeMap<&str, ControlPlane> = names
        .into_iter()
        .map(|n| (n, harness::node(&etcd, "failover", n, P)))
        .collect();
    let views: BTreeMap<&str, ClusterView> = nodes.iter().map(|(n, c)| (*n, c.view())).collect();
    let all: Vec<ClusterView> = views.values().cloned().collect();
    // replicas = 1: every partition gets one replica, on another node than its owner.
    wait_until(CONVERGE, "every partition owned and replicated", || {
        let map = views["a"].map();
        balanced(&views["a"], &names)
            && map.assignments.iter().all(|a| {
                a.replicas.len() == 1 && !a.owned_by(&a.replicas[0]) && map.alive(&a.replicas[0])
            })
    });
    wait_until(CONVERGE, "copies equal", || converged(&all));
    let map = views["a"].map();
    for n in names {
        assert_eq!(map.replica_count(n), 8, "{n} holds 8 replicas");
        assert!(map.assignments.iter().all(|a| a.in_sync.is_empty()));
    }

    // The balancer's node dies: the worst case, a new balancer must be elected first.
    let victim: &str = names
        .into_iter()
        .find(|n| map.balancer.as_deref() == Some(*n))
        .expect("a balancer");
    let survivors: Vec<&str> = names.into_iter().filter(|n| *n != victim).collect();
    let of_victim = replicated(&views[victim], victim);
    assert_eq!(of_victim.len(), 8);
    // The owner's data plane seeds a replica, then marks it in sync; two of the victim's
    // partitions are left unseeded.
    let unseeded: Vec<u32> = of_victim.keys().copied().take(2).collect();
    for (p, (epoch, replica)) in &of_victim {
        if unseeded.contains(p) {
            continue;
        }
        block_on(views[victim].set_in_sync(*p, replica, true, *epoch)).expect("owner marks");
    }
    for owner in &survivors {
        for (p, (epoch, replica)) in replicated(&views[owner], owner) {
            block_on(views[*owner].set_in_sync(p, &replica, true, epoch)).expect("owner marks");
        }
    }
    // Only the owner, at its epoch, may change the in-sync set; and only its replicas join.
    let (p, (epoch, replica)) = of_victim.iter().nth(2).expect("a seeded partition");
    let bystander = survivors.iter().find(|n| *n != replica).unwrap();
    let err = block_on(views[replica.as_str()].set_in_sync(*p, replica, false, *epoch));
    assert!(matches!(err, Err(Error::NotOwner { .. })), "{err:?}");
    let err = block_on(views[victim].set_in_sync(*p, replica, false, epoch - 1));
    assert!(
        matches!(err, Err(Error::NotOwner { current, .. }) if current == *epoch),
        "{err:?}"
    );
    let err = block_on(views[victim].set_in_sync(*p, bystander, true, *epoch));
    assert!(matches!(err, Err(Error::NotReplica { .. })), "{err:?}");
    // Removing and adding again works; doing what is already done writes nothing.
    block_on(views[victim].set_in_sync(*p, replica, false, *epoch)).unwrap();
    block_on(views[victim].set_in_sync(*p, replica, true, *epoch)).unwrap();
    let admin = admin(&etcd, "failover");
    let revision = admin.status().unwrap().revision;
    block_on(views[victim].set_in_sync(*p, replica, true, *epoch)).unwrap();
    assert_eq!(
        admin.status().unwrap().revision,
        revision,
        "a no-op writes nothing"
    );
    wait_until(CONVERGE, "every copy shows the in-sync replicas", || {
        converged(&all)
            && views[victim]
                .map()
                .assignments
                .iter()
                .enumerate()
                .all(|(q, a)| a.in_sync.len() == usize::from(!unseeded.contains(&(q as u32))))
    });
    // The view's side of it.
    let replica_view = &views[replica.as_str()];
    let (owner, at) = replica_view.replica_of(*p).expect("a replica of p");
    assert_eq!((owner.node.as_str(), at), (victim, *epoch));
    assert_eq!(owner.internal, views[victim].map().nodes[victim].internal);
    assert!(views[victim].replica_of(*p).is_none());
    let listed = views[victim].replicas(*p);
    assert_eq!(listed.len(), 1);
    assert!(listed[0].in_sync && listed[0].node == *replica && !listed[0].internal.is_empty());
    let status = admin.status().unwrap();
    let text = status.to_string();
    assert!(
        text.contains(&format!(
            "partition {p} owner {victim} epoch {epoch} active replica {replica}(in-sync)"
        )),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_str(&status.to_json()).unwrap();
    assert_eq!(
        json["partitions"][*p as usize]["replicas"][0]["in_sync"],
        true
    );

    let mut subscriptions: BTreeMap<&str, ringmail_cluster::Subscription> = survivors
        .iter()
        .map(|n| (*n, views[n].subscribe()))
        .collect();
    let crashed = views[survivors[0]].map();
    // Crash: stop without revoking the lease, as kill -9 would.
    drop(nodes.remove(victim));
    let died = Instant::now();
    let watcher = views[survivors[0]].clone();
    // Sampled every millisecond (wait_until's 20 ms would hide the gap between the two).
    let sample = |what: &str, done: &dyn Fn() -> bool| {
        while !done() {
            assert!(died.elapsed() < Duration::from_secs(15), "{what}");
            std::thread::sleep(Duration::from_millis(1));
        }
        died.elapsed()
    };
    let expired = sample("lease expiry seen", &|| !watcher.map().alive(victim));
    let total = sample("in-sync replicas promoted", &|| {
        let map = watcher.map();
        of_victim.iter().all(|(q, (epoch, replica))| {
            let a = map.assignment(*q);
            unseeded.contains(q) || (a.owned_by(replica) && a.epoch == epoch + 1)
        })
    });
    let promoted = total - expired;
    eprintln!(
        "failover (lease_secs = 5, the balancer's node killed): lease expiry seen {expired:?} \
         after the crash, in-sync replicas promoted {promoted:?} after that ({total:?} in all)"
    );
    assert!(
        total <= Duration::from_secs(6),
        "promoted {total:?} after the crash: more than the lease + 1 s"
    );
    let map = watcher.map();
    let mut promoted_to: BTreeMap<&str, Vec<(u32, u64)>> = BTreeMap::new();
    for (q, (epoch, replica)) in &of_victim {
        let a = map.assignment(*q);
        if unseeded.contains(q) {
            // No in-sync replica: it waits for its owner, at the same epoch.
            assert!(a.owned_by(victim) && a.epoch == *epoch, "{q}: {a:?}");
            continue;
        }
        assert!(
            !a.replicated_on(replica) && !a.replicated_on(victim),
            "{a:?}"
        );
        promoted_to
            .entry(replica.as_str())
            .or_default()
            .push((*q, epoch + 1));
    }
    // Each new owner is told through its subscription, at the new epoch.
    let mut replica_changes: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for (node, mut expected) in promoted_to {
        let mut gained = Vec::new();
        wait_until(CONVERGE, "the new owner is told", || {
            while let Some(changes) = subscriptions.get_mut(node).unwrap().poll() {
                gained.extend(changes.gained);
                replica_changes
                    .entry(node)
                    .or_default()
                    .extend(changes.replicas);
            }
            gained.len() >= expected.len()
        });
        gained.sort_unstable();
        expected.sort_unstable();
        assert_eq!(gained, expected, "{node}");
        assert!(expected
            .iter()
            .all(|(q, e)| views[node].is_owner(*q) == Some(*e)));
    }
    // Counted when the balancer reads etcd's answer, which can come after the watch event.
    let failovers = || -> u64 { survivors.iter().map(|n| views[n].metrics().failovers).sum() };
    let promotions = (of_victim.len() - unseeded.len()) as u64;
    wait_until(CONVERGE, "failovers counted", || failovers() >= promotions);
    assert_eq!(failovers(), promotions);

    // Back to one replica each where the survivors can: the dead node's replica copies are
    // replaced, the promoted partitions get a new one; the waiting ones keep theirs.
    wait_until(CONVERGE, "replicas replaced", || {
        let map = watcher.map();
        map.assignments.iter().enumerate().all(|(q, a)| {
            if unseeded.contains(&(q as u32)) {
                a.owned_by(victim) && a.replicas.len() == 1
            } else {
                a.replicas.len() == 1 && !a.replicated_on(victim) && !a.owned_by(&a.replicas[0])
            }
        })
    });
    let survivor_views: Vec<ClusterView> = survivors.iter().map(|n| views[n].clone()).collect();
    wait_until(CONVERGE, "survivors agree", || converged(&survivor_views));
    // The survivors were told of the changes to the replicas of their partitions (their
    // copies of the dead node's partitions promoted, the dead node's copies replaced).
    for node in &survivors {
        let after = views[node].map();
        let changed: Vec<u32> = (0..P)
            .filter(|q| {
                let (was, is) = (crashed.assignment(*q), after.assignment(*q));
                let holds =
                    |a: &ringmail_cluster::Assignment| a.owned_by(node) || a.replicated_on(node);
                (holds(was) || holds(is))
                    && (was.replicas != is.replicas || was.in_sync != is.in_sync)
            })
            .collect();
        assert!(!changed.is_empty());
        let told = replica_changes.entry(node).or_default();
        wait_until(CONVERGE, "told of every replica change", || {
            while let Some(changes) = subscriptions.get_mut(node).unwrap().poll() {
                told.extend(changes.replicas);
            }
            changed.iter().all(|q| told.contains(q))
        });
    }

    // The dead node comes back (same id): it owns what waited for it, nothing it was failed
    // over from. Its replicas there are seeded and marked; then it leaves with SIGTERM
    // (revoking its lease) and those fail over at once.
    let back = harness::node(&etcd, "failover", victim, P);
    let back_view = back.view();
    wait_until(CONVERGE, "the returned node's copy is current", || {
        !back_view.fenced() && converged(&[back_view.clone(), watcher.clone()])
    });
    let mine: Vec<u32> = (0..P)
        .filter(|q| back_view.is_owner(*q).is_some())
        .collect();
    assert_eq!(mine, unseeded, "it owns exactly what waited for it");
    for q in &unseeded {
        let (epoch, replica) = &of_victim[q];
        assert_eq!(back_view.is_owner(*q), Some(*epoch));
        block_on(back_view.set_in_sync(*q, replica, true, *epoch)).expect("marks");
    }
    wait_until(CONVERGE, "the survivors see them in sync", || {
        let map = watcher.map();
        unseeded
            .iter()
            .all(|q| map.assignment(*q).in_sync.len() == 1)
    });
    back.shutdown();
    let left = Instant::now();
    wait_until(CONVERGE, "promoted after the lease was revoked", || {
        let map = watcher.map();
        unseeded.iter().all(|q| {
            let (epoch, replica) = &of_victim[q];
            let a = map.assignment(*q);
            a.owned_by(replica) && a.epoch == epoch + 1
        })
    });
    eprintln!(
        "failover after a revoked lease (SIGTERM): promoted {:?} after the revoke",
        left.elapsed()
    );
}

#[test]
fn a_stale_replica_copy_may_go_only_while_etcd_shows_its_partition_complete() {
    let _serial = serial();
    let Some(etcd) = Etcd::start(3) else { return };
    const P: u32 = 6;
    let names = ["a", "b", "c"];
    let mut nodes: BTreeMap<&str, ControlPlane> = names
        .into_iter()
        .map(|n| (n, harness::node(&etcd, "stale", n, P)))
        .collect();
    let views: BTreeMap<&str, ClusterView> = nodes.iter().map(|(n, c)| (*n, c.view())).collect();
    wait_until(CONVERGE, "every partition owned and replicated", || {
        let map = views["a"].map();
        balanced(&views["a"], &names) && map.assignments.iter().all(|a| a.replicas.len() == 1)
    });
    let map = views["a"].map();
    // Two partitions of one owner: q gets an in-sync replica, q2 does not.
    let owner = map.assignment(0).owner.clone().unwrap();
    let mine = replicated(&views[owner.as_str()], &owner);
    let mut of_owner = mine.iter();
    let (&q, (epoch, replica)) = of_owner.next().expect("a partition");
    let (&q2, (_, replica2)) = of_owner.next().expect("a second partition");
    let outsider = |replica: &str| {
        *names
            .iter()
            .find(|n| **n != owner && **n != replica)
            .unwrap()
    };
    let judge = |node: &str, p: u32| {
        block_on(views[node].stale_copy(p, CopyKind::Replica)).expect("etcd answers")
    };
    // Listed for the partition in any way: its copy stays.
    assert_eq!(
        judge(&owner, q),
        Some("this node owns the partition"),
        "the owner"
    );
    assert_eq!(
        judge(replica, q),
        Some("this node holds one of its replicas")
    );
    // Not listed, but the replica is still being seeded: the copy stays.
    assert_eq!(
        judge(outsider(replica), q),
        Some("not every replica of it is alive and in sync")
    );
    // In sync: read from etcd at once (no wait for the local copies), the copy may go.
    block_on(views[owner.as_str()].set_in_sync(q, replica, true, *epoch)).expect("owner marks");
    assert_eq!(judge(outsider(replica), q), None);
    // The owner dies: a partition without an in-sync replica waits for it, and a copy
    // elsewhere could be the only up-to-date one: it stays.
    drop(nodes.remove(owner.as_str()));
    let witness = outsider(replica2);
    wait_until(CONVERGE * 2, "the owner's lease has expired", || {
        !views[witness].map().alive(&owner)
    });
    assert_eq!(judge(witness, q2), Some("its owner is not alive"));
    let err = block_on(views[witness].stale_copy(P, CopyKind::Replica));
    assert!(matches!(err, Err(Error::NoSuchPartition { .. })), "{err:?}");
}
