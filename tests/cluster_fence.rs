//! Fencing (docs/cluster.md, "Fencing"), on 3 etcd members and 2 nodes: a node whose etcd
//! lease may have run out acknowledges no write until the lease is renewed, and the writes
//! that waited then go through; a node that finds its partition given to another node while
//! it still served it (an operator's failover of a node etcd had declared dead) ends the
//! partition's sessions with `* BYE [UNAVAILABLE]`, marks its copy as moved and proxies new
//! logins to the new owner.

mod common;
#[path = "../crates/cluster/tests/harness/mod.rs"]
mod etcd;

use std::time::Duration;

use common::cluster::Node;
use common::Client;

const PARTITIONS: u32 = 4;
const USER: &str = "fenced@example.com";
/// The nodes' `lease_secs` (the default).
const LEASE: Duration = Duration::from_secs(4);

fn login(c: &mut Client) -> bool {
    c.command("L", &format!("LOGIN {USER} pass"))
        .last()
        .is_some_and(|l| l.starts_with("L OK"))
}

/// Sends an APPEND of `body` up to its literal; the caller reads the tagged reply.
fn start_append(c: &mut Client, tag: &str, body: &str) {
    c.send(&format!("{tag} APPEND INBOX {{{}}}\r\n", body.len()));
    let go = c.line();
    assert!(go.starts_with('+'), "{go}");
    c.send(&format!("{body}\r\n"));
}

/// Bodies of the user's INBOX, fetched through `node`.
fn bodies(node: &Node) -> Vec<String> {
    let mut c = node.connect("127.0.0.41");
    assert!(login(&mut c));
    c.command("S", "SELECT INBOX");
    let lines = c.command("F", "FETCH 1:* BODY.PEEK[TEXT]");
    c.command("Z", "LOGOUT");
    lines
        .iter()
        .filter(|l| l.starts_with("body "))
        .cloned()
        .collect()
}

#[test]
fn a_fenced_node_acknowledges_no_write_and_a_lost_partition_ends_its_sessions() {
    let Some(etcd) = etcd::Etcd::start(3) else {
        return;
    };
    let users = format!("{USER}:{{PLAIN}}pass\n");
    let nodes: Vec<Node> = ["f0", "f1"]
        .iter()
        // Without replicas: what this test checks is the owner's own fence and hand-over
        // (tests/cluster_replicas.rs covers a failover to a replica).
        .map(|id| {
            Node::start_with(
                "fence",
                id,
                &etcd.endpoints(),
                PARTITIONS,
                &users,
                "replicas = 0",
            )
        })
        .collect();
    for n in &nodes {
        n.wait_ready();
    }
    let p = ringmail::store::partition_of(USER, PARTITIONS);
    let mut owner = String::new();
    etcd::wait_until(
        Duration::from_secs(20),
        "the partition is assigned",
        || match nodes[0].status().0.get(&p) {
            Some((o, _)) => {
                owner = o.clone();
                true
            }
            None => false,
        },
    );
    let old = nodes.iter().position(|n| n.id == owner).unwrap();
    let new = 1 - old;

    // A session on the owner with one message written.
    let mut session = nodes[old].connect("127.0.0.40");
    assert!(login(&mut session));
    start_append(&mut session, "A1", "Subject: 1\r\n\r\nbody 1\r\n");
    assert!(session
        .until_tagged("A1")
        .last()
        .unwrap()
        .starts_with("A1 OK"));
    session.command("S", "SELECT INBOX");

    // etcd stops answering: once the lease may have run out, a write waits unacknowledged.
    etcd.freeze(true);
    std::thread::sleep(LEASE + Duration::from_millis(1500));
    start_append(&mut session, "A2", "Subject: 2\r\n\r\nbody 2\r\n");
    let silent = session.silent_for(Duration::from_secs(2));
    etcd.freeze(false);
    assert!(
        silent,
        "a write was answered while the node's lease may have run out"
    );
    // etcd is back: the lease is renewed (or the node registers again) and the write that
    // waited is written and acknowledged.
    let tagged = session.until_tagged("A2");
    assert!(tagged.last().unwrap().starts_with("A2 OK"), "{tagged:?}");
    etcd::wait_until(Duration::from_secs(20), "the owner serves again", || {
        bodies(&nodes[new]) == ["body 1", "body 2"]
    });

    // The owner's process stops past its lease; the operator fails its partition over to
    // the other node (which starts it empty: without replicas the mail is on the old disk).
    nodes[old].signal("-STOP");
    etcd::wait_until(LEASE * 4, "the stopped node is declared dead", || {
        nodes[new].status().1.get(&owner) == Some(&false)
    });
    let (ok, out, err) = nodes[new].cluster_command(&["move", &p.to_string(), &nodes[new].id]);
    assert!(ok, "cluster move: {out} {err}");
    etcd::wait_until(Duration::from_secs(10), "the new owner has it", || {
        nodes[new].status().0.get(&p).map(|(o, _)| o.as_str()) == Some(nodes[new].id.as_str())
    });
    nodes[old].signal("-CONT");

    // The session on the old owner ends rather than go on writing a copy nobody reads.
    let bye = session.line();
    assert!(bye.starts_with("* BYE [UNAVAILABLE]"), "{bye}");
    let dir = nodes[old].server.dir.path().join(format!("p-{p:04}"));
    etcd::wait_until(Duration::from_secs(5), "the old copy is marked", || {
        ringmail::store::is_moved(&dir)
    });
    // A login through the old node now reaches the new owner.
    let mut written = false;
    etcd::wait_until(
        Duration::from_secs(20),
        "the old node proxies logins",
        || {
            let mut c = nodes[old].connect("127.0.0.42");
            if !login(&mut c) {
                return false;
            }
            start_append(&mut c, "A3", "Subject: 3\r\n\r\nbody 3\r\n");
            written = c.until_tagged("A3").last().unwrap().starts_with("A3 OK");
            written
        },
    );
    assert_eq!(bodies(&nodes[new]), ["body 3"]);
    assert_eq!(bodies(&nodes[old]), ["body 3"]);
}
