//! Three ringmail nodes behind HAProxy, joined through a real 3-member etcd, behave as one
//! server (docs/cluster.md): whichever node a client lands on it sees its own mailbox, mail
//! delivered to any node reaches the owner, and losing a node only costs the sessions that
//! entered through it.
//!
//! One test walks through the phases on one cluster, since starting etcd, three nodes and
//! HAProxy is most of the cost.

mod common;
#[path = "../crates/cluster/tests/harness/mod.rs"]
mod etcd;
#[path = "../crates/auth/tests/support/slapd.rs"]
mod slapd;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::cluster::{self, Node};
use common::Client;

const PARTITIONS: u32 = 16;
const USERS: usize = 100;

fn user(i: usize) -> String {
    format!("u{i}@example.com")
}

fn login(c: &mut Client, user: &str) {
    let reply = c.command("L", &format!("LOGIN {user} pass"));
    assert!(
        reply.last().unwrap().starts_with("L OK"),
        "login {user}: {reply:?}"
    );
}

fn exists(lines: &[String]) -> Option<u32> {
    lines
        .iter()
        .find_map(|l| l.strip_prefix("* ")?.strip_suffix(" EXISTS")?.parse().ok())
}

/// Delivers one message by LMTP to `node` for `recipients`; returns the reply to each.
fn lmtp_deliver(node: &Node, recipients: &[String], body: &str) -> Vec<String> {
    let mut c = node.server.lmtp();
    c.send("MAIL FROM:<sender@example.org>\r\n");
    assert!(c.line().starts_with("250"));
    for r in recipients {
        c.send(&format!("RCPT TO:<{r}>\r\n"));
        let line = c.line();
        assert!(line.starts_with("250"), "RCPT {r}: {line}");
    }
    c.send("DATA\r\n");
    assert!(c.line().starts_with("354"));
    c.send(body);
    c.send(".\r\n");
    let replies = recipients.iter().map(|_| c.line()).collect();
    c.send("QUIT\r\n");
    replies
}

#[test]
fn three_nodes_behind_haproxy_serve_every_user_from_the_owner() {
    let Some(mut etcd) = etcd::Etcd::start(3) else {
        return;
    };
    let users: String = (0..USERS)
        .map(|i| format!("{}:{{PLAIN}}pass\n", user(i)))
        .collect();
    let started = Instant::now();
    let Some((mut nodes, haproxy)) = cluster::start_behind_haproxy(
        "e2e",
        &["n0", "n1", "n2"],
        &etcd.endpoints(),
        PARTITIONS,
        &users,
    ) else {
        return;
    };

    // Every partition gets a live owner (the balancer waits 2 s for nodes starting
    // together), spread evenly.
    let deadline = Instant::now() + Duration::from_secs(20);
    let owners = loop {
        let (partitions, alive) = nodes[0].status();
        let settled = partitions.len() == PARTITIONS as usize
            && alive.len() == 3
            && alive.values().all(|a| *a);
        if settled {
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            for (owner, _) in partitions.values() {
                *counts.entry(owner).or_default() += 1;
            }
            if counts.len() == 3 && counts.values().all(|&n| n == 5 || n == 6) {
                break partitions;
            }
        }
        assert!(
            Instant::now() < deadline,
            "partitions not assigned: {partitions:?} {alive:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let owner_of = |u: &str| -> String {
        let p = ringmail::store::partition_of(u, PARTITIONS);
        owners[&p].0.clone()
    };
    eprintln!("cluster settled after {:?}", started.elapsed());

    // `locate` agrees with the map, from every node's config.
    for (i, node) in nodes.iter().enumerate() {
        let u = user(i);
        let (ok, out, err) = node.cluster_command(&["locate", &u]);
        assert!(ok, "locate: {err}");
        let p = ringmail::store::partition_of(&u, PARTITIONS);
        let (owner, epoch) = &owners[&p];
        assert_eq!(
            out.trim(),
            format!("partition {p} owner {owner} epoch {epoch}")
        );
    }

    // One LMTP transaction to n0 for all 100 users, whose partitions are on all three
    // nodes: one reply per recipient, in RCPT order, each naming its recipient.
    let recipients: Vec<String> = (0..USERS).map(user).collect();
    let spread: std::collections::BTreeSet<String> =
        recipients.iter().map(|u| owner_of(u)).collect();
    assert_eq!(spread.len(), 3, "the users live on all three nodes");
    let t = Instant::now();
    let replies = lmtp_deliver(
        &nodes[0],
        &recipients,
        "From: sender@example.org\r\nSubject: hello all\r\n\r\nOne for everyone.\r\n",
    );
    eprintln!("100-recipient LMTP transaction: {:?}", t.elapsed());
    for (r, reply) in recipients.iter().zip(&replies) {
        assert!(
            reply.starts_with("250 ") && reply.contains(&format!("<{r}>")),
            "reply for {r}: {reply}"
        );
    }

    // 100 users log in through HAProxy (round robin: every node takes a third); each sees
    // its one message, addressed to itself, wherever it landed.
    let t = Instant::now();
    for (i, u) in recipients.iter().enumerate() {
        let mut c = haproxy.connect();
        login(&mut c, u);
        let select = c.command("S", "SELECT INBOX");
        assert_eq!(exists(&select), Some(1), "{u} (login {i}): {select:?}");
        let fetch = c.command("F", "FETCH 1 BODY.PEEK[HEADER.FIELDS (DELIVERED-TO)]");
        assert!(
            fetch.iter().any(|l| l == &format!("Delivered-To: {u}")),
            "{u}: {fetch:?}"
        );
        c.command("Z", "LOGOUT");
    }
    eprintln!("100 logins through haproxy: {:?}", t.elapsed());

    // A user of each node, seen through each node directly: the same mailbox.
    let of_node = |id: &str| -> String {
        recipients
            .iter()
            .find(|u| owner_of(u) == id)
            .expect("a user on every node")
            .clone()
    };
    for owner in ["n0", "n1", "n2"] {
        let u = of_node(owner);
        let mut seen = Vec::new();
        for node in &nodes {
            let mut c = node.connect("127.0.0.10");
            login(&mut c, &u);
            let select = c.command("S", "SELECT INBOX");
            let uidvalidity = select
                .iter()
                .find(|l| l.contains("UIDVALIDITY"))
                .cloned()
                .unwrap_or_default();
            seen.push((exists(&select), uidvalidity));
            c.command("Z", "LOGOUT");
        }
        assert!(seen.windows(2).all(|w| w[0] == w[1]), "{u}: {seen:?}");
    }

    // An APPEND over TLS through a node that does not own the user, FETCHed byte for byte
    // through the other non-owner.
    let u = of_node("n2");
    let mut body = b"From: a@example.org\r\nSubject: big\r\n\r\n".to_vec();
    for i in 0..3000u32 {
        let line = format!("line {i:05} \u{e9}t\u{e9} {}\r\n", "x".repeat(20));
        body.extend_from_slice(line.as_bytes());
    }
    let mut tls = nodes[0].connect_tls("127.0.0.11");
    let reply = tls.command("L", &format!("LOGIN {u} pass"));
    assert!(reply.last().unwrap().starts_with("L OK"), "{reply:?}");
    tls.send(&format!("A APPEND INBOX {{{}}}\r\n", body.len()));
    assert!(tls.line().starts_with("+"));
    tls.send_bytes(&body);
    tls.send("\r\n");
    let appended = tls.until_tagged("A");
    assert!(appended.last().unwrap().starts_with("A OK"), "{appended:?}");
    tls.command("Z", "LOGOUT");
    let mut c = nodes[1].connect("127.0.0.12");
    login(&mut c, &u);
    c.command("S", "SELECT INBOX");
    c.send("F FETCH 2 BODY.PEEK[]\r\n");
    let raw = c.until_tagged_bytes("F");
    let head = format!("{{{}}}\r\n", body.len());
    let start = raw
        .windows(head.len())
        .position(|w| w == head.as_bytes())
        .expect("a literal of the appended size")
        + head.len();
    assert_eq!(
        &raw[start..start + body.len()],
        &body[..],
        "fetched bytes differ"
    );
    c.command("Z", "LOGOUT");
    // And over TLS through that non-owner too: the owner's response, larger than one pump
    // chunk and one TLS record, crosses the proxy's pump and its TLS writer.
    let mut tls = nodes[1].connect_tls("127.0.0.12");
    let reply = tls.command("L", &format!("LOGIN {u} pass"));
    assert!(reply.last().unwrap().starts_with("L OK"), "{reply:?}");
    tls.command("S", "SELECT INBOX");
    tls.send("F FETCH 2 BODY.PEEK[]\r\n");
    let head = tls.line();
    assert!(head.ends_with(&format!("{{{}}}", body.len())), "{head}");
    assert_eq!(tls.bytes(body.len()), body, "bytes fetched over TLS differ");
    let tagged = tls.until_tagged("F");
    assert!(tagged.last().unwrap().starts_with("F OK"), "{tagged:?}");
    tls.command("Z", "LOGOUT");

    // `ringmail import` and `export` through the admin socket of nodes that do not own the
    // user: the owner stores and reads the mail, and the other nodes' data dirs get none of
    // it.
    let p = ringmail::store::partition_of(&u, PARTITIONS);
    let messages: Vec<String> = (0..3)
        .map(|i| {
            format!(
                "From: importer@example.org\nSubject: imported {i}\n\n{}",
                format!("imported line {i}\n").repeat(if i == 0 { 20_000 } else { 3 })
            )
        })
        .collect();
    let work = tempfile::tempdir().unwrap();
    let mbox = work.path().join("in.mbox");
    let text: String = messages
        .iter()
        .map(|m| format!("From importer@example.org Thu Dec  3 10:00:00 2026\n{m}\n"))
        .collect();
    std::fs::write(&mbox, text).unwrap();
    let tool = |node: &Node, args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringmail"))
            .args(args)
            .arg("--data")
            .arg(node.server.dir.path())
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run ringmail");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    };
    let (ok, text) = tool(
        &nodes[0],
        &[
            "import",
            "--user",
            &u,
            "mbox",
            mbox.to_str().unwrap(),
            "--mailbox",
            "Imported",
        ],
    );
    assert!(ok, "import through n0: {text}");
    let exported = work.path().join("out.mbox");
    let (ok, text) = tool(
        &nodes[1],
        &[
            "export",
            "--user",
            &u,
            "mbox",
            exported.to_str().unwrap(),
            "--mailbox",
            "Imported",
        ],
    );
    assert!(ok, "export through n1: {text}");
    let out = std::fs::read_to_string(&exported).unwrap();
    for m in &messages {
        let subject = m.lines().nth(1).unwrap();
        let body = &m[m.find("\n\n").unwrap() + 2..];
        assert!(
            out.contains(subject) && out.contains(body.trim_end()),
            "{subject} exported"
        );
    }
    let mut c = haproxy.connect();
    login(&mut c, &u);
    let status = c.command("S", "STATUS Imported (MESSAGES)");
    assert!(status[0].contains("(MESSAGES 3)"), "{status:?}");
    c.command("Z", "LOGOUT");
    for node in &nodes[..2] {
        let dir = node.server.dir.path().join(format!("p-{p:04}"));
        assert!(
            !dir.exists(),
            "{} opened partition {p}, which it does not own",
            node.id
        );
    }

    // IDLE through n0 for a user of n1; a delivery through n2 shows up within 100 ms.
    let u = of_node("n1");
    let mut idle = nodes[0].connect("127.0.0.13");
    login(&mut idle, &u);
    let select = idle.command("S", "SELECT INBOX");
    let before = exists(&select).unwrap();
    idle.send("I IDLE\r\n");
    assert!(idle.line().starts_with("+ "));
    let replies = lmtp_deliver(
        &nodes[2],
        std::slice::from_ref(&u),
        "Subject: while idling\r\n\r\nhi\r\n",
    );
    let delivered = Instant::now();
    assert!(replies[0].starts_with("250 "), "{replies:?}");
    let line = idle.line();
    let waited = delivered.elapsed();
    assert_eq!(line, format!("* {} EXISTS", before + 1));
    eprintln!("EXISTS through the proxy {waited:?} after the LMTP reply");
    assert!(
        waited < Duration::from_millis(100),
        "EXISTS after {waited:?}"
    );
    idle.send("DONE\r\n");
    assert!(idle.until_tagged("I").last().unwrap().starts_with("I OK"));

    // Losing one etcd member (the leader) changes nothing for clients: the data plane
    // routes by each node's copy of the map, and the CLI goes to another member.
    let leader = etcd.leader().expect("an etcd leader");
    etcd.kill(leader);
    let v = of_node("n0");
    let replies = lmtp_deliver(
        &nodes[1],
        std::slice::from_ref(&v),
        "Subject: no leader\r\n\r\nx\r\n",
    );
    assert!(replies[0].starts_with("250 "), "{replies:?}");
    let mut c = haproxy.connect();
    login(&mut c, &v);
    assert_eq!(exists(&c.command("S", "SELECT INBOX")), Some(2));
    c.command("Z", "LOGOUT");
    let (ok, out, err) = nodes[2].cluster_command(&["locate", &v]);
    assert!(ok && out.contains("owner n0"), "{out} {err}");

    // Killing n0, which owns nothing of this n1 user, drops only the session that entered
    // through n0; the one through n2 goes on, and new logins through HAProxy work.
    let mut through_n2 = nodes[2].connect("127.0.0.14");
    login(&mut through_n2, &u);
    through_n2.command("S", "SELECT INBOX");
    nodes[0].kill();
    assert!(idle.is_closed(), "the session through the dead node ends");
    // Until n0's lease runs out its users cannot be served: a clear temporary failure, not
    // an empty mailbox.
    let mut c = nodes[1].connect("127.0.0.15");
    let reply = c.command("L", &format!("LOGIN {v} pass"));
    assert!(
        reply.last().unwrap().starts_with("L NO [UNAVAILABLE]"),
        "{reply:?}"
    );
    let mut l = nodes[2].server.lmtp();
    l.send("MAIL FROM:<s@example.org>\r\n");
    assert!(l.line().starts_with("250"));
    l.send(&format!("RCPT TO:<{v}>\r\n"));
    let rcpt = l.line();
    assert!(rcpt.starts_with("451 4.3.0"), "{rcpt}");
    let noop = through_n2.command("N", "NOOP");
    assert!(noop.last().unwrap().starts_with("N OK"), "{noop:?}");
    for _ in 0..3 {
        let mut c = haproxy.connect();
        login(&mut c, &u);
        let select = c.command("S", "SELECT INBOX");
        assert_eq!(exists(&select), Some(before + 1), "{select:?}");
        c.command("Z", "LOGOUT");
    }
    through_n2.command("Z", "LOGOUT");

    // A stopped node's data dir is not written by a tool: which partitions are its own is
    // in etcd, and an import could write one another node serves.
    let (ok, text) = tool(
        &nodes[0],
        &["import", "--user", &v, "mbox", mbox.to_str().unwrap()],
    );
    assert!(!ok && text.contains("cluster"), "{text}");

    // Without etcd the CLI fails with a clear message.
    drop(etcd);
    let (ok, _, err) = nodes[1].cluster_command(&["status"]);
    assert!(!ok);
    assert!(err.contains("etcd") || err.contains("127.0.0.1"), "{err}");
    eprintln!("whole test: {:?}", started.elapsed());
}

/// The directory's quota in a cluster (docs/auth.md), on users whose partition the node
/// they reach does not hold. quinn's entry names 2 KiB: an RCPT of a 4 KiB message through
/// the other node is refused by the owner (the forwarded quota check carries the limit).
/// alice's names 1 GiB and she never got mail: her IMAP login, proxied to the owner, shows
/// that limit in GETQUOTAROOT (the session header carries it).
#[test]
fn the_directory_quota_is_applied_on_the_owner_node() {
    if !slapd::available() {
        return;
    }
    let Some(etcd) = etcd::Etcd::start(1) else {
        return;
    };
    let slapd = slapd::Slapd::start().expect("slapd");
    let secret = slapd.dir().join("search.secret");
    std::fs::write(&secret, format!("{}\n", slapd::SEARCH_PASSWORD)).unwrap();
    let config = format!(
        "[auth]\nbackends = [\"passwd-file\", \"ldap\"]\n\
         [ldap]\nuri = \"{uri}\"\nca_file = \"{ca}\"\nbase = \"{base}\"\n\
         bind_dn = \"{dn}\"\nbind_password_file = \"{secret}\"\n\
         attributes = {{ quota = \"mailQuota\" }}\n",
        uri = slapd.ldaps_uri(),
        ca = slapd.ca_file.display(),
        base = slapd::BASE,
        dn = slapd::SEARCH_DN,
        secret = secret.display(),
    );
    const PARTS: u32 = 4;
    let nodes: Vec<Node> = ["q0", "q1"]
        .iter()
        .map(|id| Node::start_with("quota", id, &etcd.endpoints(), PARTS, "", &config))
        .collect();
    for node in &nodes {
        node.wait_ready();
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let owners = loop {
        let (partitions, alive) = nodes[0].status();
        if partitions.len() == PARTS as usize && alive.len() == 2 && alive.values().all(|a| *a) {
            break partitions;
        }
        assert!(
            Instant::now() < deadline,
            "partitions not assigned: {partitions:?} {alive:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let not_owner = |user: &str| -> &Node {
        let owner = &owners[&ringmail::store::partition_of(user, PARTS)].0;
        nodes.iter().find(|n| &n.id != owner).expect("another node")
    };

    let other = not_owner("quinn");
    let mut lmtp = other.server.lmtp();
    lmtp.send("MAIL FROM:<s@example.net> SIZE=4096\r\n");
    assert!(lmtp.line().starts_with("250"));
    lmtp.send("RCPT TO:<quinn>\r\n");
    let reply = lmtp.line();
    assert!(
        reply.starts_with("552 5.2.2"),
        "RCPT through {}: {reply}",
        other.id
    );
    lmtp.send("QUIT\r\n");

    let other = not_owner("alice");
    let mut c = other.connect("127.0.0.1");
    let login = c.command("l", "LOGIN alice alice-pw");
    assert!(login.last().unwrap().starts_with("l OK"), "{login:?}");
    let quota = c.command("q", "GETQUOTAROOT INBOX");
    assert!(
        quota
            .iter()
            .any(|l| l == "* QUOTA \"\" (STORAGE 0 1048576)"),
        "proxied from {}: {quota:?}",
        other.id
    );
}
