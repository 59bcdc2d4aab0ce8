//! Faults: a full disk fails appends with an I/O error (nothing acknowledged that is not
//! durable), reads keep working, and appends work again once space is freed. Quota
//! failures carry OVERQUOTA.

use std::path::{Path, PathBuf};
use std::process::Command;

use ringmail::imap::store_error::{response_code, ResponseCode};
use ringmail::store::{NewMessage, Options, Partition, Quota, StoreError};

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

/// A small tmpfs, unmounted on drop.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: &Path) -> Result<SmallDisk, String> {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(SmallDisk(at.to_path_buf()))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazy: glommio may still be closing its file descriptors in the background.
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn msg(i: u32) -> Vec<u8> {
    let mut b = format!("Subject: {i}\r\n\r\n").into_bytes();
    b.resize(8192, b'a' + (i % 26) as u8);
    b
}

fn new(b: &[u8]) -> NewMessage<'_> {
    NewMessage {
        body: b,
        flags: 0,
        keywords: &[],
        internal_date: 0,
        meta: b"",
        search: None,
        text: &[],
    }
}

#[test]
fn full_disk_fails_appends_keeps_reads_and_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    let disk = match SmallDisk::mount(tmp.path()) {
        Ok(d) => d,
        Err(why) => {
            println!("skipping full-disk test: cannot mount a tmpfs ({why})");
            return;
        }
    };
    let dir = disk.0.join("p-0000");
    let filler = disk.0.join("filler");
    std::fs::write(&filler, vec![0u8; 512 << 10]).unwrap();
    let opts = Options {
        checkpoint_every: u64::MAX,
        ..Options::default()
    };
    let d = dir.clone();
    let f = filler.clone();
    let acked = run(move || async move {
        let p = Partition::open(&d, opts).await.unwrap();
        p.ensure_user("gina").await.unwrap();
        let mut acked = Vec::new();
        let mut failure = None;
        for i in 0..1000 {
            let b = msg(i);
            match p.append("gina", "INBOX", &[new(&b)]).await {
                Ok(r) => acked.push((r.uids[0], i)),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let e = failure.expect("a 2 MiB disk must fill up");
        assert!(matches!(e, StoreError::Io(_)), "{e:?}");
        assert!(e.is_disk_full(), "{e:?}");
        assert_eq!(response_code(&e), ResponseCode::Unavailable);
        // Still full: fails again, and reads keep working.
        assert!(p.append("gina", "INBOX", &[new(&msg(9999))]).await.is_err());
        for &(uid, i) in &acked {
            let got = p.read_message("gina", "INBOX", uid, None).await.unwrap();
            assert_eq!(&got[..], &msg(i)[..]);
        }
        assert_eq!(
            p.status("gina", "INBOX").unwrap().messages as usize,
            acked.len()
        );
        // Space comes back: appends work again without a restart.
        std::fs::remove_file(&f).unwrap();
        let b = msg(5000);
        let r = p.append("gina", "INBOX", &[new(&b)]).await.unwrap();
        acked.push((r.uids[0], 5000));
        p.crash().await; // crash
        acked
    });
    let d = dir.clone();
    run(move || async move {
        let p = Partition::open(&d, Options::default()).await.unwrap();
        let uids = p
            .with_mailbox("gina", "INBOX", |v| {
                v.messages().iter().map(|m| m.uid).collect::<Vec<_>>()
            })
            .unwrap();
        let want: Vec<u32> = acked.iter().map(|a| a.0).collect();
        assert_eq!(
            uids, want,
            "exactly the acknowledged messages, none of the failed ones"
        );
        for (uid, i) in acked {
            let got = p.read_message("gina", "INBOX", uid, None).await.unwrap();
            assert_eq!(&got[..], &msg(i)[..]);
        }
    });
}

#[test]
fn quota_is_enforced_at_append_and_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p-0001");
    run(move || async move {
        let p = Partition::open(&dir, Options::default()).await.unwrap();
        p.ensure_user("hank").await.unwrap();
        p.create_mailbox("hank", "Copies", 0).await.unwrap();
        p.set_quota(
            "hank",
            Quota {
                max_bytes: 20_000,
                max_messages: 3,
            },
        )
        .await
        .unwrap();
        let b = msg(1);
        p.append("hank", "INBOX", &[new(&b), new(&b)])
            .await
            .unwrap();
        let e = p.append("hank", "INBOX", &[new(&b)]).await.unwrap_err();
        assert_eq!(response_code(&e), ResponseCode::OverQuota);
        let e = p
            .copy("hank", "INBOX", &[(1, 2)], "Copies")
            .await
            .unwrap_err();
        assert_eq!(response_code(&e), ResponseCode::OverQuota);
        // Moving does not add usage.
        p.move_messages("hank", "INBOX", &[(1, 2)], "Copies")
            .await
            .unwrap();
        let q = p.quota("hank");
        assert_eq!((q.used_messages, q.used_bytes), (2, 2 * 8192));
        // Other users are not affected.
        p.ensure_user("ivy").await.unwrap();
        p.append("ivy", "INBOX", &[new(&b), new(&b), new(&b)])
            .await
            .unwrap();
    });
}
