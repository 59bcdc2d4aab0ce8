//! Crash safety: a child process appends and flags under load and prints each acknowledged
//! operation; it is SIGKILLed at random moments, and after each restart every acknowledged
//! message must be there byte for byte with its last acknowledged flags. Also: torn and
//! scribbled tails, and damage in a sealed segment.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use ringmail::store::{flag, FlagMode, NewMessage, Options, Partition, StoreError};

const CHILD_ENV: &str = "RINGMAIL_CRASH_CHILD_DIR";

fn run<F, T>(f: impl FnOnce() -> F + Send + 'static) -> T
where
    F: std::future::Future<Output = T> + 'static,
    T: Send + 'static,
{
    glommio::LocalExecutorBuilder::default()
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

/// A message body derived from a seed, so the parent can rebuild what the child wrote.
fn body(seed: u64) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(seed);
    let len = rng.gen_range(100..6000);
    let mut b = format!("Subject: message {seed}\r\n\r\n").into_bytes();
    b.extend((0..len).map(|_| rng.gen_range(b'a'..=b'z')));
    b
}

/// The child: appends and flags from 16 concurrent tasks until killed. Each line it prints
/// follows an acknowledged (durable) operation: `A uid seed` or `F uid flags`; `W uid flags`
/// announces a flag change before it is issued (it may or may not become durable).
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return; // Only does something when re-executed by `acknowledged_ops_survive_sigkill`.
    };
    run(move || async move {
        let p = Rc::new(Partition::open(&dir, Options::default()).await.unwrap());
        p.ensure_user("carol").await.unwrap();
        let base: u64 = rand::random::<u32>() as u64 * 1_000_000;
        let tasks: Vec<_> = (0..16u64)
            .map(|t| {
                let p = p.clone();
                glommio::spawn_local(async move {
                    let mut rng = StdRng::seed_from_u64(base + t);
                    for i in 0.. {
                        let seed = base + t * 10_000 + i;
                        let b = body(seed);
                        let r = p
                            .append(
                                "carol",
                                "INBOX",
                                &[NewMessage {
                                    body: &b,
                                    flags: 0,
                                    keywords: &[],
                                    internal_date: 0,
                                    meta: &[],
                                    search: None,
                                    text: &[],
                                }],
                            )
                            .await
                            .unwrap();
                        let uid = r.uids[0];
                        println!("A {uid} {seed}");
                        if rng.gen_bool(0.5) {
                            let f = rng.gen::<u8>() & flag::ALL;
                            println!("W {uid} {f}");
                            p.store_flags(
                                "carol",
                                "INBOX",
                                &[(uid, uid)],
                                FlagMode::Replace,
                                f,
                                &[],
                                None,
                            )
                            .await
                            .unwrap();
                            println!("F {uid} {f}");
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await;
        }
    });
}

#[test]
fn acknowledged_ops_survive_sigkill() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p-0001");
    let exe = std::env::current_exe().unwrap();
    let mut rng = StdRng::seed_from_u64(7);
    // uid -> (seed, acknowledged flags, flags of an unacknowledged change in flight)
    let mut acked: BTreeMap<u32, (u64, u8, Option<u8>)> = BTreeMap::new();
    for round in 0..5 {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.gen_range(300..1200)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let mut lines = 0;
        for line in out.lines().map_while(Result::ok) {
            let parts: Vec<&str> = line.split_whitespace().collect();
            match parts.as_slice() {
                ["A", uid, seed] => {
                    if let (Ok(u), Ok(s)) = (uid.parse(), seed.parse()) {
                        acked.insert(u, (s, 0, None));
                        lines += 1;
                    }
                }
                ["W", uid, f] => {
                    if let (Ok(u), Ok(f)) = (uid.parse::<u32>(), f.parse()) {
                        if let Some(e) = acked.get_mut(&u) {
                            e.2 = Some(f);
                        }
                    }
                }
                ["F", uid, f] => {
                    if let (Ok(u), Ok(f)) = (uid.parse::<u32>(), f.parse()) {
                        if let Some(e) = acked.get_mut(&u) {
                            e.1 = f;
                            e.2 = None;
                        }
                    }
                }
                _ => {} // test harness chatter, or a line cut by the kill
            }
        }
        assert!(lines > 0 || round > 0, "the child acknowledged nothing");
        let expect = acked.clone();
        let d = dir.clone();
        let settled = run(move || async move {
            let p = Partition::open(&d, Options::default())
                .await
                .expect("store must open cleanly after SIGKILL");
            let entries = p
                .with_mailbox("carol", "INBOX", |v| {
                    v.messages()
                        .iter()
                        .map(|m| (m.uid, m.flags))
                        .collect::<BTreeMap<_, _>>()
                })
                .unwrap();
            for (uid, (seed, flags, in_flight)) in &expect {
                let got = entries
                    .get(uid)
                    .unwrap_or_else(|| panic!("acknowledged uid {uid} lost"));
                assert!(
                    got == flags || Some(*got) == *in_flight,
                    "flags of uid {uid}: {got}, acknowledged {flags}, in flight {in_flight:?}"
                );
                let bytes = p.read_message("carol", "INBOX", *uid, None).await.unwrap();
                assert_eq!(&bytes[..], &body(*seed)[..], "bytes of uid {uid}");
            }
            entries
        });
        // What was in flight is now settled on disk; later rounds expect that.
        for (uid, e) in acked.iter_mut() {
            if let Some(f) = settled.get(uid) {
                e.1 = *f;
                e.2 = None;
            }
        }
    }
    assert!(
        acked.len() > 20,
        "too few operations to mean anything: {}",
        acked.len()
    );
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    v.sort();
    v
}

/// Appends `n` messages and crashes (no checkpoint). Returns each message's
/// (uid, segment, end of its record).
fn fill(dir: &Path, n: u32, segment_size: u64) -> Vec<(u32, u32, u64)> {
    let dir = dir.to_path_buf();
    run(move || async move {
        let opts = Options {
            segment_size,
            checkpoint_every: u64::MAX,
            ..Options::default()
        };
        let p = Partition::open(&dir, opts).await.unwrap();
        p.ensure_user("dave").await.unwrap();
        for i in 0..n {
            let b = body(u64::from(i));
            let m = NewMessage {
                body: &b,
                flags: flag::SEEN,
                keywords: &["k"],
                internal_date: 0,
                meta: b"meta",
                search: None,
                text: &[],
            };
            p.append("dave", "INBOX", &[m]).await.unwrap();
        }
        let v = p
            .with_mailbox("dave", "INBOX", |v| {
                v.messages()
                    .iter()
                    .map(|m| {
                        (
                            m.uid,
                            m.segment,
                            u64::from(m.offset) + u64::from(m.size) + u64::from(m.meta_len),
                        )
                    })
                    .collect()
            })
            .unwrap();
        p.crash().await; // crash: no clean shutdown, no checkpoint
        v
    })
}

fn surviving(dir: &Path) -> Result<Vec<u32>, StoreError> {
    let dir = dir.to_path_buf();
    run(move || async move {
        let p = Partition::open(&dir, Options::default()).await?;
        let uids = p.with_mailbox("dave", "INBOX", |v| {
            v.messages().iter().map(|m| m.uid).collect()
        })?;
        for &u in &uids {
            let b = p.read_message("dave", "INBOX", u, None).await?;
            assert_eq!(&b[..], &body(u64::from(u - 1))[..]);
        }
        Ok(uids)
    })
}

#[test]
fn torn_or_scribbled_tail_keeps_every_record_before_the_damage() {
    let mut rng = StdRng::seed_from_u64(11);
    for case in 0..12 {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("p-0002");
        let msgs = fill(&dir, 30, 1 << 30);
        let seg = segments(&dir).pop().unwrap();
        let len = std::fs::metadata(&seg).unwrap().len();
        // Damage somewhere after the mailbox-creation record.
        let first_end = msgs[0].2 - 1;
        let at = rng.gen_range(first_end..len);
        if case % 2 == 0 {
            std::fs::OpenOptions::new()
                .write(true)
                .open(&seg)
                .unwrap()
                .set_len(at)
                .unwrap();
        } else {
            let mut data = std::fs::read(&seg).unwrap();
            let n = rng.gen_range(1..64).min(data.len() - at as usize);
            for b in &mut data[at as usize..at as usize + n] {
                *b ^= rng.gen_range(1..=255u8);
            }
            std::fs::File::create(&seg)
                .unwrap()
                .write_all(&data)
                .unwrap();
        }
        let want: Vec<u32> = msgs.iter().filter(|m| m.2 <= at).map(|m| m.0).collect();
        let got = surviving(&dir).unwrap();
        assert_eq!(got, want, "case {case}: damage at {at} of {len}");
        // The repaired log accepts new appends after the kept records.
        let again = surviving(&dir).unwrap();
        assert_eq!(again, want);
    }
}

#[test]
fn damage_in_a_sealed_segment_stops_the_partition() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p-0003");
    fill(&dir, 40, 16 << 10);
    let segs = segments(&dir);
    assert!(
        segs.len() >= 3,
        "expected several segments, got {}",
        segs.len()
    );
    let mut data = std::fs::read(&segs[0]).unwrap();
    let at = data.len() / 2;
    data[at] ^= 0x40;
    std::fs::write(&segs[0], &data).unwrap();
    let err = surviving(&dir).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    assert!(err.to_string().contains("ringmail check --repair"), "{err}");
}
