//! Checkpoints (load, fallback when damaged) and `check [--repair]`.

use std::path::{Path, PathBuf};

use ringmail::store::{check, flag, FlagMode, NewMessage, Options, Partition};

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

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    v
}

/// Builds a partition with some history; returns a description of its state.
fn build(dir: &Path, opts: Options, n: u32) -> String {
    let dir = dir.to_path_buf();
    run(move || async move {
        let p = Partition::open(&dir, opts).await.unwrap();
        p.ensure_user("erin").await.unwrap();
        p.create_mailbox("erin", "Archive", 0).await.unwrap();
        for i in 0..n {
            let body = format!("Subject: {i}\r\n\r\n{}", "x".repeat(i as usize * 13 % 900));
            p.append(
                "erin",
                "INBOX",
                &[NewMessage {
                    body: body.as_bytes(),
                    flags: 0,
                    keywords: &["k1"],
                    internal_date: i64::from(i),
                    meta: b"m",
                    search: None,
                    text: &[],
                }],
            )
            .await
            .unwrap();
            if i % 3 == 0 {
                p.store_flags(
                    "erin",
                    "INBOX",
                    &[(1, i + 1)],
                    FlagMode::Add,
                    flag::SEEN,
                    &[],
                    None,
                )
                .await
                .unwrap();
            }
            if i % 7 == 0 {
                p.copy("erin", "INBOX", &[(i + 1, i + 1)], "Archive")
                    .await
                    .unwrap();
                p.expunge("erin", "INBOX", &[(i, i)]).await.unwrap();
            }
        }
        let s = state(&p);
        p.close().await.unwrap();
        s
    })
}

fn state(p: &Partition) -> String {
    let mut s = String::new();
    for l in p.list_mailboxes("erin") {
        s += &format!("{:?}\n", p.status("erin", l.id).unwrap());
        p.with_mailbox("erin", l.id, |v| {
            for m in v.messages() {
                s += &format!("  {m:?}\n");
            }
        })
        .unwrap();
    }
    s
}

fn reopen(dir: &Path) -> String {
    let dir = dir.to_path_buf();
    run(move || async move {
        let p = Partition::open(&dir, Options::default()).await.unwrap();
        state(&p)
    })
}

#[test]
fn damaged_checkpoints_fall_back_to_older_ones_or_full_replay() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p-0000");
    let opts = Options {
        segment_size: 8 << 10,
        checkpoint_every: 20,
        ..Options::default()
    };
    let want = build(&dir, opts, 120);
    assert_eq!(reopen(&dir), want, "from the newest checkpoint");
    let ckpts = files(&dir, "ckpt");
    assert_eq!(ckpts.len(), 2, "keeps two checkpoints: {ckpts:?}");
    // Flip a byte inside the newest checkpoint's archive.
    let newest = ckpts.last().unwrap();
    let mut b = std::fs::read(newest).unwrap();
    let at = b.len() - 10;
    b[at] ^= 1;
    std::fs::write(newest, &b).unwrap();
    assert_eq!(reopen(&dir), want, "from the older checkpoint");
    // Garbage in both: full replay of the log.
    for c in files(&dir, "ckpt") {
        std::fs::write(&c, b"garbage").unwrap();
    }
    assert_eq!(reopen(&dir), want, "by full replay");
}

#[test]
fn check_reports_clean_store() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p-0001");
    build(
        &dir,
        Options {
            segment_size: 8 << 10,
            ..Options::default()
        },
        60,
    );
    let r = check(tmp.path(), false).unwrap();
    assert_eq!(r.partitions.len(), 1);
    assert!(r.is_clean(), "{r:#?}");
    let p = &r.partitions[0];
    assert!(p.segments.len() > 2);
    assert!(p.messages > 50, "{}", p.messages);
    assert!(p.checkpoint.is_some());
}

#[test]
fn check_repair_cuts_a_damaged_sealed_segment_and_saves_the_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p-0002");
    let opts = Options {
        segment_size: 8 << 10,
        checkpoint_every: u64::MAX,
        ..Options::default()
    };
    build(&dir, opts, 60);
    // No checkpoint, so recovery must replay the damaged segment.
    for c in files(&dir, "ckpt") {
        std::fs::remove_file(c).unwrap();
    }
    let segs = files(&dir, "log");
    let victim = &segs[1];
    let mut b = std::fs::read(victim).unwrap();
    let at = b.len() * 2 / 3;
    b[at] ^= 0xff;
    std::fs::write(victim, &b).unwrap();

    let d = dir.clone();
    let err = run(move || async move { Partition::open(&d, Options::default()).await.err() });
    assert!(err.unwrap().to_string().contains("check --repair"));

    let r = check(&dir, false).unwrap();
    assert!(!r.is_clean());
    let damaged: Vec<_> = r.partitions[0]
        .segments
        .iter()
        .filter(|s| s.damage.is_some())
        .collect();
    assert_eq!(damaged.len(), 1, "{r:#?}");
    let offset = damaged[0].damage.as_ref().unwrap().offset;
    assert!(offset <= at as u64);
    assert_eq!(
        std::fs::read(victim).unwrap(),
        b,
        "check without repair changes nothing"
    );

    let r = check(&dir, true).unwrap();
    assert!(!r.partitions[0].repairs.is_empty());
    let aside = PathBuf::from(format!("{}.damaged-{offset}", victim.display()));
    assert_eq!(std::fs::read(&aside).unwrap(), &b[offset as usize..]);
    assert_eq!(std::fs::metadata(victim).unwrap().len(), offset);

    assert!(check(&dir, false).unwrap().is_clean());
    let s = reopen(&dir);
    assert!(
        s.contains("uid: 1,"),
        "records before the damage are kept:\n{s}"
    );
}
