//! Compaction: dead bytes are reclaimed, live messages (and copies sharing a body) stay
//! byte-identical, and the result survives crashes and checkpoint fallback.

use std::path::{Path, PathBuf};

use ringmail::store::{check, NewMessage, Options, Partition};

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

fn logs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    v.sort();
    v
}

fn total_size(dir: &Path) -> u64 {
    logs(dir)
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum()
}

fn body(i: u32) -> Vec<u8> {
    format!(
        "Subject: {i}\r\n\r\n{}",
        "abcdefghij".repeat(50 + i as usize % 40)
    )
    .into_bytes()
}

async fn contents(p: &Partition) -> Vec<(String, u32, Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    for l in p.list_mailboxes("fred") {
        let uids = p
            .with_mailbox("fred", l.id, |v| {
                v.messages().iter().map(|m| m.uid).collect::<Vec<_>>()
            })
            .unwrap();
        for uid in uids {
            let b = p
                .read_message("fred", l.id, uid, None)
                .await
                .unwrap()
                .to_vec();
            let m = p.read_meta("fred", l.id, uid).await.unwrap().to_vec();
            out.push((l.name.clone(), uid, b, m));
        }
    }
    out
}

#[test]
fn compaction_reclaims_dead_bytes_and_keeps_live_messages() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p-0000");
    let opts = Options {
        segment_size: 16 << 10,
        checkpoint_every: u64::MAX,
        compact_bytes_per_tick: 4096,
        ..Options::default()
    };
    let d = dir.clone();
    let (before_size, want) = run(move || async move {
        let p = Partition::open(&d, opts).await.unwrap();
        p.ensure_user("fred").await.unwrap();
        p.create_mailbox("fred", "Keep", 0).await.unwrap();
        for i in 0..200 {
            let b = body(i);
            let meta = format!("meta-{i}");
            let m = NewMessage {
                body: &b,
                flags: 0,
                keywords: &[],
                internal_date: 0,
                meta: meta.as_bytes(),
                search: None,
                text: &[],
            };
            p.append("fred", "INBOX", &[m]).await.unwrap();
        }
        // Copies share bodies with the originals; then most of INBOX goes.
        p.copy("fred", "INBOX", &[(10, 12), (100, 101)], "Keep")
            .await
            .unwrap();
        p.expunge("fred", "INBOX", &[(1, 180)]).await.unwrap();
        p.checkpoint().await.unwrap();
        // Roll the log past the checkpointed segments so they are sealed and covered.
        for i in 0..40 {
            let b = body(1000 + i);
            let m = NewMessage {
                body: &b,
                flags: 0,
                keywords: &[],
                internal_date: 0,
                meta: b"",
                search: None,
                text: &[],
            };
            p.append("fred", "Keep", &[m]).await.unwrap();
        }
        let before = total_size(&d);
        let want = contents(&p).await;
        let n = p.compact().await.unwrap();
        assert!(n > 0, "nothing compacted");
        assert_eq!(contents(&p).await, want, "contents changed by compaction");
        // Further checkpoints let the replaced segments go.
        for _ in 0..3 {
            p.checkpoint().await.unwrap();
        }
        p.crash().await; // crash
        (before, want)
    });
    let after_size = total_size(&dir);
    assert!(
        after_size * 2 < before_size,
        "log not smaller: {before_size} -> {after_size}"
    );
    let d = dir.clone();
    let got = run(move || async move {
        let p = Partition::open(&d, Options::default()).await.unwrap();
        contents(&p).await
    });
    assert_eq!(got, want, "after crash and recovery");
    assert!(check(&dir, false).unwrap().is_clean());
}

#[test]
fn crash_right_after_compaction_falls_back_safely() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p-0001");
    let opts = Options {
        segment_size: 8 << 10,
        checkpoint_every: u64::MAX,
        ..Options::default()
    };
    let d = dir.clone();
    let want = run(move || async move {
        let p = Partition::open(&d, opts).await.unwrap();
        p.ensure_user("fred").await.unwrap();
        for i in 0..80 {
            let b = body(i);
            let m = NewMessage {
                body: &b,
                flags: 0,
                keywords: &[],
                internal_date: 0,
                meta: b"x",
                search: None,
                text: &[],
            };
            p.append("fred", "INBOX", &[m]).await.unwrap();
        }
        p.expunge("fred", "INBOX", &[(1, 70)]).await.unwrap();
        p.checkpoint().await.unwrap();
        for i in 0..20 {
            let b = body(500 + i);
            let m = NewMessage {
                body: &b,
                flags: 0,
                keywords: &[],
                internal_date: 0,
                meta: b"y",
                search: None,
                text: &[],
            };
            p.append("fred", "INBOX", &[m]).await.unwrap();
        }
        assert!(p.compact().await.unwrap() > 0);
        let want = contents(&p).await;
        p.crash().await; // crash before the replaced segments may be removed
        want
    });
    // Lose the newest checkpoint (the one naming the compacted segment): the older one
    // still refers to the original segments, which must still be there.
    let mut ckpts: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "ckpt"))
        .collect();
    ckpts.sort();
    std::fs::write(ckpts.last().unwrap(), b"torn").unwrap();
    let d = dir.clone();
    let got = run(move || async move {
        let p = Partition::open(&d, Options::default()).await.unwrap();
        contents(&p).await
    });
    assert_eq!(got, want);
}
