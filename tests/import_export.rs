//! End-to-end import and export with the real binary: a Maildir++ tree with Dovecot's
//! keywords and uidlist, an mbox, bad input, re-import, and export → import round trips
//! checked byte for byte over IMAP.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, UNIX_EPOCH};

use common::{tree, Client, Server};

const USERS: &str = "alice:{PLAIN}pw\nbob:{PLAIN}pw\n";

fn ringmail(data: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ringmail"))
        .args(args)
        .arg("--data")
        .arg(data)
        .output()
        .expect("run ringmail");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// `ringmail VERB --user USER KIND PATH` (import or export; KIND maildir or mbox).
fn tool(data: &Path, verb: &str, user: &str, kind: &str, path: &Path) -> (bool, String) {
    ringmail(
        data,
        &[
            verb,
            "--user",
            user,
            kind,
            path.to_str().expect("UTF-8 path"),
        ],
    )
}

fn write_msg(path: &Path, text: &str, mtime: u64) {
    std::fs::write(path, text).unwrap();
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(UNIX_EPOCH + Duration::from_secs(mtime))
        .unwrap();
}

/// A Maildir++ tree: INBOX (with uidlist and keywords), .Sent, .Work.Projects, a folder
/// whose name is not valid modified UTF-7, and a file that is not mail.
fn make_maildir(root: &Path) {
    for dir in ["", ".Sent", ".Work.Projects", ".bad&name"] {
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(root.join(dir).join(sub)).unwrap();
        }
    }
    std::fs::write(root.join("dovecot-keywords"), "0 $Label1\n1 Work\n").unwrap();
    std::fs::write(
        root.join("dovecot-uidlist"),
        "3 V1500000000 N10\n7 :1000.M1.host\n3 :2000.M2.host\n",
    )
    .unwrap();
    // UID 3 sorts first although its name sorts last.
    write_msg(
        &root.join("cur/2000.M2.host:2,FSb"),
        "Subject: second\n\nuid three\n",
        1_600_000_000,
    );
    write_msg(
        &root.join("cur/1000.M1.host:2,Ra"),
        "Subject: first\n\nuid seven\n",
        1_600_000_100,
    );
    write_msg(
        &root.join("new/3000.M3.host"),
        "Subject: new\r\n\r\nunseen\r\n",
        1_600_000_200,
    );
    write_msg(
        &root.join("cur/4000.M4.host:2,S"),
        "\x7fELF binary junk",
        1_600_000_300,
    );
    write_msg(
        &root.join(".Sent/cur/5000.M5.host:2,S"),
        "Subject: sent\n\nbye\n",
        1_600_000_400,
    );
    write_msg(
        &root.join(".Work.Projects/cur/6000.M6.host:2,T"),
        "Subject: proj\n\nx\n",
        1_600_000_500,
    );
    write_msg(
        &root.join(".bad&name/cur/7000.M7.host:2,"),
        "Subject: lost\n\nx\n",
        1_600_000_600,
    );
}

fn login(server: &Server, user: &str) -> Client {
    let mut c = server.connect();
    let ok = c.command("l", &format!("LOGIN {user} pw"));
    assert!(ok.last().unwrap().starts_with("l OK"), "{ok:?}");
    c
}

/// Every mailbox of the logged-in user with each message's flags, internal date and bytes,
/// in UID order.
fn snapshot(c: &mut Client) -> Vec<(String, Vec<String>)> {
    let list = c.command("a", "LIST \"\" *");
    let mut names: Vec<String> = list
        .iter()
        .filter(|l| {
            l.starts_with("* LIST") && !l.contains("\\NonExistent") && !l.contains("\\Noselect")
        })
        .map(|l| l.rsplit(' ').next().unwrap().trim_matches('"').to_string())
        .collect();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let sel = c.command("s", &format!("EXAMINE \"{name}\""));
        assert!(sel.last().unwrap().starts_with("s OK"), "{sel:?}");
        let fetched = c.command("f", "FETCH 1:* (FLAGS INTERNALDATE BODY.PEEK[])");
        let fetched = if fetched.last().unwrap().starts_with("f OK") {
            fetched
        } else {
            Vec::new()
        };
        out.push((
            name,
            fetched
                .into_iter()
                .filter(|l| !l.starts_with("f OK"))
                // \Recent belongs to the session that claimed it, not to the mailbox's
                // exported state.
                .map(|l| {
                    l.replace(" \\Recent", "")
                        .replace("(\\Recent ", "(")
                        .replace("(\\Recent)", "()")
                })
                .collect(),
        ));
    }
    out
}

/// The UIDs of the selected mailbox, from `UID FETCH 1:* (UID)`.
fn uids(c: &mut Client) -> Vec<u32> {
    c.command("u", "UID FETCH 1:* (UID)")
        .iter()
        .filter(|l| l.starts_with("* "))
        .filter_map(|l| l.split_once("UID ")?.1.split(')').next()?.parse().ok())
        .collect()
}

/// UIDVALIDITY of `mailbox`, from SELECT's response code.
fn uidvalidity(c: &mut Client, mailbox: &str) -> u32 {
    c.command("s", &format!("SELECT \"{mailbox}\""))
        .iter()
        .find_map(|l| {
            l.split_once("[UIDVALIDITY ")?
                .1
                .split(']')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no UIDVALIDITY for {mailbox}"))
}

fn messages_in(snap: &[(String, Vec<String>)], name: &str) -> usize {
    snap.iter()
        .find(|(n, _)| n == name)
        .map_or(0, |(_, lines)| {
            lines
                .iter()
                .filter(|l| l.starts_with("* ") && l.contains(" FETCH "))
                .count()
        })
}

#[test]
fn maildir_import_reimport_and_round_trip() {
    let mut server = Server::start(2, "", "", USERS);
    let data = server.dir.path().to_owned();
    let src = tempfile::tempdir().unwrap();
    make_maildir(src.path());

    let import_alice = || tool(&data, "import", "alice", "maildir", src.path());
    // The server runs: the import goes through its admin socket, and says so.
    let (ok, text) = import_alice();
    assert!(!ok, "bad input must fail the command: {text}");
    assert!(
        text.contains("imported 5 messages into the running server"),
        "{text}"
    );
    assert!(text.contains("not a mail message"), "{text}");
    assert!(
        text.contains("bad&name") && text.contains("2 problems"),
        "{text}"
    );
    // Again, online: nothing new.
    let (_, text) = import_alice();
    assert!(
        text.contains("imported 0 messages") && text.contains("5 already present"),
        "{text}"
    );
    // And offline, into the stopped data dir: the same answer, so both paths store alike.
    server.terminate();
    let (_, text) = import_alice();
    assert!(
        text.contains("imported 0 messages into the stopped data dir")
            && text.contains("5 already present"),
        "{text}"
    );

    server.restart();
    let mut c = login(&server, "alice");
    let sel = c.command("s", "SELECT INBOX");
    assert!(sel.contains(&"* 3 EXISTS".to_string()), "{sel:?}");
    // Dovecot's UIDVALIDITY and UIDs are kept, and its UIDNEXT (10): the unlisted new
    // message gets UID 10, never 8 or 9, which Dovecot gave to messages since expunged.
    assert!(
        sel.iter().any(|l| l.contains("[UIDVALIDITY 1500000000]")),
        "{sel:?}"
    );
    assert!(sel.iter().any(|l| l.contains("[UIDNEXT 11]")), "{sel:?}");
    assert_eq!(uids(&mut c), [3, 7, 10]);
    let f = c.command(
        "f",
        "FETCH 1:3 (FLAGS INTERNALDATE BODY.PEEK[HEADER.FIELDS (SUBJECT)])",
    );
    // Dovecot's UID order, flags from the file name, keywords from dovecot-keywords.
    assert!(
        f[0].contains("FLAGS (\\Flagged \\Seen Work)")
            && f[0].contains("13-Sep-2020 12:26:40 +0000"),
        "{f:?}"
    );
    assert!(f[1].contains("Subject: second"), "{f:?}");
    assert!(f[4].contains("FLAGS (\\Answered $Label1)"), "{f:?}");
    assert!(f[5].contains("Subject: first"), "{f:?}");
    assert!(f[8].contains("FLAGS ()"), "{f:?}");
    let before = snapshot(&mut c);
    assert_eq!(messages_in(&before, "Sent"), 1);
    assert_eq!(messages_in(&before, "Work/Projects"), 1);
    drop(c);

    // Export, import the export for another user: same mailboxes, bytes, flags and dates.
    server.terminate();
    let out = tempfile::tempdir().unwrap();
    let tree = out.path().join("alice");
    let (ok, text) = tool(&data, "export", "alice", "maildir", &tree);
    assert!(ok, "{text}");
    assert!(tree.join(".Work.Projects/dovecot-uidlist").is_file());
    let (ok, text) = tool(&data, "import", "bob", "maildir", &tree);
    assert!(ok && text.contains("imported 5 messages"), "{text}");
    // mbox round trip of INBOX too.
    let mbox = out.path().join("inbox.mbox");
    let (ok, text) = tool(&data, "export", "alice", "mbox", &mbox);
    assert!(ok, "{text}");
    let (ok, text) = ringmail(
        &data,
        &[
            "import",
            "--user",
            "bob",
            "mbox",
            mbox.to_str().unwrap(),
            "--mailbox",
            "FromMbox",
        ],
    );
    assert!(ok && text.contains("imported 3 messages"), "{text}");

    server.restart();
    let mut c = login(&server, "bob");
    let mut after = snapshot(&mut c);
    let from_mbox = after
        .iter()
        .position(|(n, _)| n == "FromMbox")
        .expect("FromMbox");
    let (_, mbox_lines) = after.remove(from_mbox);
    assert_eq!(after, before, "maildir round trip differs");
    // The export's uidlists carry alice's UIDVALIDITY and UIDs over to bob.
    assert_eq!(uidvalidity(&mut c, "INBOX"), 1_500_000_000);
    assert_eq!(uids(&mut c), [3, 7, 10]);
    let mut c_alice = login(&server, "alice");
    let sent = uidvalidity(&mut c_alice, "Sent");
    assert_eq!(uidvalidity(&mut c, "Sent"), sent);
    assert_eq!(uids(&mut c), uids(&mut c_alice));
    let inbox = &before.iter().find(|(n, _)| n == "INBOX").unwrap().1;
    assert_eq!(&mbox_lines, inbox, "mbox round trip differs");
}

#[test]
fn mbox_import_with_truncated_tail() {
    let mut server = Server::start(1, "", "", USERS);
    let data = server.dir.path().to_owned();
    server.terminate();
    let src = tempfile::tempdir().unwrap();
    let file = src.path().join("old.mbox");
    std::fs::write(
        &file,
        "From someone@example.com Sat Jan  3 01:05:34 1996\nStatus: RO\nSubject: one\n\n>From the top\n\nFrom x Sun Jan  4 00:00:00 1996\nSubject: two\n\ncut in the mid",
    )
    .unwrap();
    let (ok, text) = tool(&data, "import", "alice", "mbox", &file);
    assert!(
        !ok && text.contains("truncated") && text.contains("imported 1 messages"),
        "{text}"
    );
    let (_, text) = tool(&data, "import", "alice", "mbox", &file);
    assert!(
        text.contains("imported 0 messages") && text.contains("1 already present"),
        "{text}"
    );
    let (ok, text) = tool(&data, "import", "nobody", "mbox", &file);
    assert!(!ok && text.contains("no user nobody"), "{text}");

    server.restart();
    let mut c = login(&server, "alice");
    c.command("s", "SELECT INBOX");
    let f = c.command("f", "FETCH 1:* (FLAGS INTERNALDATE BODY.PEEK[])");
    assert!(
        f[0].contains("FLAGS (\\Seen)") && f[0].contains("03-Jan-1996 01:05:34 +0000"),
        "{f:?}"
    );
    assert_eq!(f[1], "Subject: one");
    assert_eq!(f[3], "From the top");
    assert!(
        f.last().unwrap().starts_with("f OK") && f.len() == 6,
        "{f:?}"
    );
}

#[test]
fn existing_mailbox_gets_new_uids_and_says_so() {
    let mut server = Server::start(1, "", "", USERS);
    let data = server.dir.path().to_owned();
    let mut c = login(&server, "bob");
    let before = uidvalidity(&mut c, "INBOX");
    drop(c);
    server.terminate();
    let src = tempfile::tempdir().unwrap();
    make_maildir(src.path());
    let (_, text) = tool(&data, "import", "bob", "maildir", src.path());
    assert!(
        text.contains("imported 5 messages") && text.contains("INBOX: exists with UIDVALIDITY"),
        "{text}"
    );
    server.restart();
    let mut c = login(&server, "bob");
    assert_eq!(uidvalidity(&mut c, "INBOX"), before);
    assert_eq!(uids(&mut c), [1, 2, 3]);
}

/// Online import on a server with several executors, for a user owned by an executor other
/// than the one serving the admin socket: the user's IDLE session sees the messages arrive.
#[test]
fn online_import_reaches_an_idle_session() {
    use ringmail::server::partition::{executor_of, partition_of};
    const EXECUTORS: usize = 4;
    let user = (0..)
        .map(|i| format!("user{i}"))
        .find(|u| executor_of(partition_of(u, 256), EXECUTORS) != 0)
        .unwrap();
    let server = Server::start(EXECUTORS, "", "", &format!("{user}:{{PLAIN}}pw\n"));
    let data = server.dir.path().to_owned();
    let mut c = login(&server, &user);
    let sel = c.command("s", "SELECT INBOX");
    assert!(sel.contains(&"* 0 EXISTS".to_string()), "{sel:?}");
    c.send("i IDLE\r\n");
    assert!(c.line().starts_with("+ "));

    let src = tempfile::tempdir().unwrap();
    let mbox = src.path().join("in.mbox");
    std::fs::write(
        &mbox,
        "From a@example.org Sat Jan  3 01:05:34 2015\nSubject: one\n\nbody one\n\n\
         From b@example.org Sat Jan  3 02:05:34 2015\nSubject: two\n\nbody two\n",
    )
    .unwrap();
    let (ok, text) = tool(&data, "import", &user, "mbox", &mbox);
    assert!(ok, "{text}");
    let owner = executor_of(partition_of(&user, 256), EXECUTORS);
    assert!(
        text.contains("imported 2 messages into the running server")
            && text.contains(&format!("executor {owner} (the owner of {user})")),
        "{text}"
    );
    // Both may come in one EXISTS or two; the last one counts 2.
    loop {
        let line = c.line();
        if line == "* 2 EXISTS" {
            break;
        }
        assert!(
            line.ends_with(" EXISTS") || line.contains("RECENT"),
            "{line}"
        );
    }
    c.send("DONE\r\n");
    // The RECENT that goes with the last EXISTS may still be on its way.
    let done = c.until_tagged("i");
    assert!(done.last().unwrap().starts_with("i OK"), "{done:?}");
    assert!(
        done[..done.len() - 1]
            .iter()
            .all(|l| l.ends_with(" RECENT")),
        "{done:?}"
    );
    let f = c.command("f", "FETCH 1:2 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])");
    assert!(f.iter().any(|l| l == "Subject: one"), "{f:?}");
    assert!(f.iter().any(|l| l == "Subject: two"), "{f:?}");
}

#[test]
fn online_import_without_admin_socket_is_explained() {
    let server = Server::start(1, "", "[admin]\nsocket = \"\"\n", USERS);
    let src = tempfile::tempdir().unwrap();
    make_maildir(src.path());
    let (ok, text) = tool(server.dir.path(), "import", "alice", "maildir", src.path());
    assert!(!ok && text.contains("admin socket is off"), "{text}");
    assert!(!server.dir.path().join("admin.sock").exists());
}

/// Bad frames on the admin socket get a clear refusal and leave the server serving.
#[test]
fn admin_socket_refuses_bad_frames() {
    use ringmail::admin::protocol::{Reply, Request};
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    let server = Server::start(2, "", "", USERS);
    let socket = server.dir.path().join("admin.sock");
    // The IMAP listeners answer once any executor has bound them; executor 0 binds the
    // admin socket on its own schedule.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !socket.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let refusal = |bytes: &[u8]| {
        let mut s = UnixStream::connect(&socket).expect("connect admin.sock");
        s.write_all(bytes).unwrap();
        let mut header = [0u8; 4];
        s.read_exact(&mut header).unwrap();
        let mut frame = vec![0u8; u32::from_le_bytes(header) as usize];
        s.read_exact(&mut frame).unwrap();
        match Reply::decode(&frame).unwrap() {
            Reply::Error(why) => why,
            other => panic!("expected a refusal, got {other:?}"),
        }
    };
    let why = refusal(&u32::MAX.to_le_bytes());
    assert!(why.contains("over the limit"), "{why}");
    let why = refusal(
        &Request::Hello {
            version: 99,
            user: "alice".into(),
        }
        .encode(),
    );
    assert!(why.contains("protocol 99"), "{why}");
    let why = refusal(&Request::End.encode());
    assert!(why.contains("expected a hello"), "{why}");
    let mut garbage = 3u32.to_le_bytes().to_vec();
    garbage.extend_from_slice(b"???");
    let why = refusal(&garbage);
    assert!(why.contains("unknown request"), "{why}");

    // Connections are capped: with 8 open (silent) ones the next is refused with a reason.
    let open: Vec<UnixStream> = (0..8)
        .map(|_| UnixStream::connect(&socket).unwrap())
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let mut ninth = UnixStream::connect(&socket).unwrap();
    let mut header = [0u8; 4];
    ninth.read_exact(&mut header).unwrap();
    let mut frame = vec![0u8; u32::from_le_bytes(header) as usize];
    ninth.read_exact(&mut frame).unwrap();
    match Reply::decode(&frame).unwrap() {
        Reply::Error(why) => assert!(why.contains("admin connections are open"), "{why}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    drop(open);
    std::thread::sleep(std::time::Duration::from_millis(200));

    // The server still imports and serves.
    let src = tempfile::tempdir().unwrap();
    make_maildir(src.path());
    let (_, text) = tool(server.dir.path(), "import", "alice", "maildir", src.path());
    assert!(
        text.contains("imported 5 messages into the running server"),
        "{text}"
    );
    let mut c = login(&server, "alice");
    let sel = c.command("s", "SELECT INBOX");
    assert!(sel.contains(&"* 3 EXISTS".to_string()), "{sel:?}");
}

/// Export from a running server (through the admin socket) writes exactly what the offline
/// export of the same data dir writes.
#[test]
fn online_export_matches_offline_export() {
    let mut server = Server::start(2, "", "", USERS);
    let data = server.dir.path().to_owned();
    let src = tempfile::tempdir().unwrap();
    make_maildir(src.path());
    let (_, text) = tool(&data, "import", "alice", "maildir", src.path());
    assert!(
        text.contains("imported 5 messages into the running server"),
        "{text}"
    );
    let out = tempfile::tempdir().unwrap();
    let export = |dir: &str| {
        let target = out.path().join(dir);
        let (ok, text) = tool(&data, "export", "alice", "maildir", &target);
        assert!(ok, "{text}");
        (tree(&target), text)
    };
    let (online, text) = export("online");
    assert!(
        text.contains("exported 5 messages in 7 mailboxes from the running server"),
        "{text}"
    );
    let mbox = out.path().join("inbox-online.mbox");
    let (ok, text) = tool(&data, "export", "alice", "mbox", &mbox);
    assert!(ok && text.contains("exported 3 messages"), "{text}");
    server.terminate();
    let (offline, text) = export("offline");
    assert!(text.contains("from the stopped data dir"), "{text}");
    assert_eq!(
        online.keys().collect::<Vec<_>>(),
        offline.keys().collect::<Vec<_>>()
    );
    assert_eq!(online, offline, "online and offline exports differ");
    assert!(online.keys().any(|k| k.ends_with("dovecot-uidlist")));
    let mbox_offline = out.path().join("inbox-offline.mbox");
    let (ok, text) = tool(&data, "export", "alice", "mbox", &mbox_offline);
    assert!(ok, "{text}");
    assert_eq!(
        std::fs::read(&mbox).unwrap(),
        std::fs::read(&mbox_offline).unwrap()
    );
}
