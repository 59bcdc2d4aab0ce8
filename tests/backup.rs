//! `ringmail backup` of a running server under an APPEND load, `ringmail restore`, and a
//! byte-for-byte comparison: everything acknowledged before the backup began is restored,
//! and nothing half-written appears.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Client, Server};

const USERS: &str = "alice:{PLAIN}pw\n";
/// Small segments and frequent checkpoints, so that segments roll over and checkpoints
/// are written while the backup runs.
const STORAGE: &str = "[storage]\nsegment_size_mb = 1\ncheckpoint_every = 40\n";
const APPENDERS: usize = 4;

fn ringmail(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ringmail"))
        .args(args)
        .output()
        .expect("run ringmail");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn login(server: &Server) -> Client {
    let mut c = server.connect();
    let lines = c.command("l", "LOGIN alice pw");
    assert!(lines.last().unwrap().starts_with("l OK"), "{lines:?}");
    c
}

/// A distinct message of a few KiB (CRLF line ends, so IMAP returns it unchanged).
fn message(appender: usize, n: usize) -> String {
    let mut m = format!("Subject: m-{appender}-{n}\r\nFrom: load@example.com\r\n\r\n");
    for line in 0..(60 + (n * 7 + appender * 13) % 120) {
        m.push_str(&format!(
            "line {line} of message {appender}/{n} xxxxxxxxxxxxxxxxxxxxxxxx\r\n"
        ));
    }
    m
}

fn subject(msg: &str) -> &str {
    msg.lines()
        .next()
        .and_then(|l| l.strip_prefix("Subject: "))
        .unwrap_or_default()
}

/// Appends until `stop`; each acknowledged message is recorded once its tagged OK arrived.
fn appender(server: &Server, id: usize, acked: Arc<Mutex<Vec<String>>>, stop: Arc<AtomicBool>) {
    let mut c = login(server);
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let msg = message(id, n);
        c.send(&format!("a APPEND INBOX {{{}}}\r\n", msg.len()));
        let cont = c.line();
        assert!(cont.starts_with('+'), "{cont}");
        c.send(&msg);
        c.send("\r\n");
        let lines = c.until_tagged("a");
        assert!(lines.last().unwrap().starts_with("a OK"), "{lines:?}");
        acked.lock().unwrap().push(msg);
        n += 1;
    }
}

/// Every message of INBOX, by UID, read with `UID FETCH 1:* BODY.PEEK[]`.
fn inbox(c: &mut Client) -> Vec<(u32, String)> {
    let sel = c.command("s", "SELECT INBOX");
    assert!(sel.last().unwrap().starts_with("s OK"), "{sel:?}");
    c.send("f UID FETCH 1:* (UID BODY.PEEK[])\r\n");
    let mut out = Vec::new();
    loop {
        let line = c.line();
        if line.starts_with("f ") {
            assert!(line.starts_with("f OK"), "{line}");
            return out;
        }
        let uid: u32 = line
            .split_once("UID ")
            .and_then(|(_, r)| r.split(' ').next())
            .and_then(|u| u.parse().ok())
            .unwrap_or_else(|| panic!("no UID in {line}"));
        let len: usize = line
            .rsplit_once('{')
            .and_then(|(_, r)| r.strip_suffix('}'))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no literal in {line}"));
        let mut body = String::new();
        while body.len() < len {
            body.push_str(&c.line());
            body.push_str("\r\n");
        }
        assert_eq!(body.len(), len, "literal of UID {uid}");
        let close = c.line();
        assert!(close.starts_with(')'), "{close}");
        out.push((uid, body));
    }
}

#[test]
fn backup_during_append_load_restores_every_acknowledged_message() {
    let server = Arc::new(Server::start(2, "", STORAGE, USERS));
    let data = server.dir.path().to_owned();
    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));

    let threads: Vec<_> = (0..APPENDERS)
        .map(|id| {
            let (server, acked, stop) = (server.clone(), acked.clone(), stop.clone());
            std::thread::spawn(move || appender(&server, id, acked, stop))
        })
        .collect();
    // Enough load that the log spans two 1 MiB segments and several checkpoints.
    let start = Instant::now();
    let acked_bytes = || acked.lock().unwrap().iter().map(String::len).sum::<usize>();
    while acked_bytes() < 1_300_000 && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let before: Vec<String> = acked.lock().unwrap().clone();
    assert!(!before.is_empty(), "the load produced nothing");

    // The server keeps running and the appenders keep appending.
    let backup = tempfile::tempdir().unwrap();
    let backup_dir = backup.path().join("b");
    let (ok, text) = ringmail(&[
        "backup",
        backup_dir.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    assert!(text.contains("backed up"), "{text}");
    let during = acked.lock().unwrap().len();
    // The load rolled segments over and wrote checkpoints, which the backup holds.
    let files: Vec<String> = std::fs::read_dir(&backup_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .flat_map(|p| std::fs::read_dir(p).unwrap())
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let count = |suffix: &str| files.iter().filter(|f| f.ends_with(suffix)).count();
    assert!(count(".log") >= 2 && count(".ckpt") >= 1, "{files:?}");
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    assert!(
        acked.lock().unwrap().len() > during,
        "appends must go on while the backup runs"
    );
    // No staging links are left in the data dir.
    for e in std::fs::read_dir(&data).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        assert!(!name.starts_with(".ringmail-backup"), "left behind: {name}");
    }

    // Restore refuses a data dir that is not empty.
    let (ok, text) = ringmail(&[
        "restore",
        backup_dir.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ]);
    assert!(!ok && text.contains("not empty"), "{text}");

    let restored = tempfile::tempdir().unwrap();
    let (ok, text) = ringmail(&[
        "restore",
        backup_dir.to_str().unwrap(),
        "--data",
        restored.path().to_str().unwrap(),
    ]);
    assert!(ok, "{text}");

    // The restored server listens where the original did: stop the original first.
    let mut original = Arc::try_unwrap(server).ok().expect("appenders are done");
    original.terminate();
    let log = restored.path().join("server.log");
    let child = common::spawn(restored.path(), &log);
    let restored_server = Server {
        child,
        dir: restored,
        imap: original.imap,
        imaps: original.imaps,
        lmtp: original.lmtp,
        managesieve: original.managesieve,
        log,
    };
    restored_server.wait_ready();
    let mut c = login(&restored_server);
    let got = inbox(&mut c);

    let all: Vec<String> = acked.lock().unwrap().clone();
    let sent: HashMap<&str, &String> = all.iter().map(|m| (subject(m), m)).collect();
    let mut seen = HashSet::new();
    for (uid, body) in &got {
        let s = subject(body);
        let original = sent
            .get(s)
            .unwrap_or_else(|| panic!("UID {uid} is not a message that was sent: {body:?}"));
        assert_eq!(body, *original, "UID {uid} differs from what was appended");
        assert!(seen.insert(s.to_string()), "{s} restored twice");
    }
    for m in &before {
        assert!(
            seen.contains(subject(m)),
            "{} was acknowledged before the backup began but is missing ({} of {} restored)",
            subject(m),
            got.len(),
            before.len()
        );
    }
}

#[test]
fn restore_refuses_a_damaged_backup_and_leaves_nothing() {
    let server = Server::start(1, "", "", USERS);
    let mut c = login(&server);
    let msg = message(0, 0);
    c.send(&format!("a APPEND INBOX {{{}}}\r\n", msg.len()));
    assert!(c.line().starts_with('+'));
    c.send(&msg);
    c.send("\r\n");
    assert!(c.until_tagged("a").last().unwrap().starts_with("a OK"));

    let backup = tempfile::tempdir().unwrap();
    let dir = backup.path().join("b");
    let data = server.dir.path().to_str().unwrap();
    let (ok, text) = ringmail(&["backup", dir.to_str().unwrap(), "--data", data]);
    assert!(ok, "{text}");
    // A second backup into the same (now full) directory is refused.
    let (ok, text) = ringmail(&["backup", dir.to_str().unwrap(), "--data", data]);
    assert!(!ok && text.contains("not empty"), "{text}");

    let segment = find_segment(&dir).expect("a segment in the backup");
    let mut bytes = std::fs::read(&segment).unwrap();
    let last = bytes.len() - 3;
    bytes[last] ^= 0x55;
    std::fs::write(&segment, bytes).unwrap();
    let target = backup.path().join("restored");
    let (ok, text) = ringmail(&[
        "restore",
        dir.to_str().unwrap(),
        "--data",
        target.to_str().unwrap(),
    ]);
    assert!(!ok && text.contains("damaged"), "{text}");
    assert!(!target.exists(), "a failed restore leaves nothing behind");
}

/// The largest segment file under `dir`.
fn find_segment(dir: &Path) -> Option<std::path::PathBuf> {
    let mut best: Option<(u64, std::path::PathBuf)> = None;
    for p in std::fs::read_dir(dir).ok()? {
        let p = p.ok()?.path();
        if !p.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&p).ok()? {
            let f = f.ok()?.path();
            let len = f.metadata().ok()?.len();
            if f.to_string_lossy().ends_with(".log") && best.as_ref().is_none_or(|b| len > b.0) {
                best = Some((len, f));
            }
        }
    }
    best.map(|b| b.1)
}

fn store_body(seed: u64) -> Vec<u8> {
    let mut b = format!("Subject: s{seed}\r\n\r\n").into_bytes();
    b.resize(1500 + (seed as usize * 37) % 2500, b'a' + (seed % 26) as u8);
    b
}

/// Backups of a partition whose segments roll over, get compacted and deleted while the
/// backup links and copies them: each restored copy opens cleanly and holds every message
/// that was live (appended, not expunged) when that backup began.
#[test]
fn backup_while_compaction_deletes_segments() {
    use ringmail::store::{NewMessage, Options, Partition};

    let data = tempfile::tempdir().unwrap();
    let part = data.path().join("p-0000");
    let live: Arc<Mutex<Vec<(u32, u64)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let opts = Options {
        segment_size: 64 << 10,
        checkpoint_every: 16,
        compact_dead_share: 0.3,
        ..Options::default()
    };
    let writer = {
        let (part, live, stop, opts) = (part.clone(), live.clone(), stop.clone(), opts.clone());
        glommio::LocalExecutorBuilder::default()
            .spawn(move || async move {
                let p = Partition::open(&part, opts).await.unwrap();
                p.ensure_user("u").await.unwrap();
                let mut seed = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let body = store_body(seed);
                    let msg = NewMessage {
                        body: &body,
                        flags: 0,
                        keywords: &[],
                        internal_date: 0,
                        meta: &[],
                        search: None,
                        text: &[],
                    };
                    let uid = p.append("u", "INBOX", &[msg]).await.unwrap().uids[0];
                    live.lock().unwrap().push((uid, seed));
                    if seed % 3 == 2 {
                        // Expunge the two oldest: most of each sealed segment turns dead.
                        let gone: Vec<(u32, u64)> = live.lock().unwrap().drain(..2).collect();
                        let ranges: Vec<(u32, u32)> = gone.iter().map(|&(u, _)| (u, u)).collect();
                        p.expunge("u", "INBOX", &ranges).await.unwrap();
                    }
                    seed += 1;
                }
                p.close().await.unwrap();
            })
            .unwrap()
    };

    let start = Instant::now();
    // Every round's backup must hold the user: wait (bounded) for the first acknowledged
    // append, which comes after the user's creation is durable. On a loaded machine the
    // writer's executor can take longer than one round's pause to get there.
    while live.lock().unwrap().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the writer made no append in 60 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let rounds_start = Instant::now();
    let out = tempfile::tempdir().unwrap();
    for round in 0..6 {
        std::thread::sleep(Duration::from_millis(150));
        let before: Vec<(u32, u64)> = live.lock().unwrap().clone();
        let backup = out.path().join(format!("b{round}"));
        ringmail::tools::backup::backup(data.path(), &backup).unwrap();
        // A message expunged while the backup ran may or may not be in it (the expunge was
        // acknowledged too); one live from the start of the backup to its end must be there.
        let after: Vec<u32> = live.lock().unwrap().iter().map(|&(u, _)| u).collect();
        let before: Vec<(u32, u64)> = before
            .into_iter()
            .filter(|(uid, _)| after.contains(uid))
            .collect();
        let restored = out.path().join(format!("r{round}"));
        ringmail::tools::backup::restore(&backup, &restored).unwrap();
        let dir = restored.join("p-0000");
        let bodies = glommio::LocalExecutorBuilder::default()
            .spawn(move || async move {
                let p = Partition::open(&dir, Options::default()).await.unwrap();
                let uids: Vec<u32> = p
                    .with_mailbox("u", "INBOX", |v| {
                        v.messages().iter().map(|m| m.uid).collect()
                    })
                    .unwrap();
                let mut bodies = HashMap::new();
                for uid in uids {
                    let b = p.read_message("u", "INBOX", uid, None).await.unwrap();
                    bodies.insert(uid, b.to_vec());
                }
                p.close().await.unwrap();
                bodies
            })
            .unwrap()
            .join()
            .unwrap();
        for (uid, seed) in before {
            assert_eq!(
                bodies.get(&uid),
                Some(&store_body(seed)),
                "round {round}: UID {uid}, live while the whole backup ran"
            );
        }
        if rounds_start.elapsed() > Duration::from_secs(5) {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    // Compaction did delete segments during the run.
    assert!(
        !part.join("seg-00000001.log").exists(),
        "no segment was compacted away"
    );
}
