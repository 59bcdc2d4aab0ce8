//! What the store's unit tests share: a partition directory in a temporary dir, an executor
//! to run a test's async body on, the partition opened with the default options, appends,
//! and the segments' record kinds.

use std::path::{Path, PathBuf};

use super::segment::{list_segments, read_header, segment_path, Scanned, Scanner, SegmentHeader};
use super::{NewMessage, Options, Partition};

/// Runs `f`'s future on a glommio executor of its own thread and returns its output.
pub(super) fn run<F, T>(f: impl FnOnce() -> F + Send + 'static) -> T
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

/// The partition at `dir`, opened (created if new) with the default options.
pub(super) async fn open(dir: &Path) -> Partition {
    Partition::open(dir, Options::default()).await.unwrap()
}

/// Creates user "u" (with its INBOX) and its mailbox "Copy", the target of the tests' COPY
/// and MOVE.
pub(super) async fn user_with_copy_mailbox(p: &Partition) {
    p.ensure_user("u").await.unwrap();
    p.create_mailbox("u", "Copy", 0).await.unwrap();
}

/// Appends `n` messages of 400-odd bytes to user "u"'s `mailbox`, one at a time; their UIDs.
pub(super) async fn append_n(p: &Partition, mailbox: &str, n: u32) -> Vec<u32> {
    let mut uids = Vec::new();
    for i in 0..n {
        let body = format!("Subject: {i}\r\n\r\n{}", "x".repeat(400)).into_bytes();
        uids.extend(
            p.append("u", mailbox, &[NewMessage::plain(&body)])
                .await
                .unwrap()
                .uids,
        );
    }
    uids
}

/// (segment header, kinds of its records) for every segment.
pub(super) fn segments(dir: &Path) -> Vec<(SegmentHeader, Vec<u8>)> {
    let mut out = Vec::new();
    for id in list_segments(dir).unwrap() {
        let path = segment_path(dir, id);
        let header = read_header(&path).unwrap().unwrap();
        let mut kinds = Vec::new();
        let mut scan = Scanner::open(&path, 0).unwrap();
        while let Scanned::Record { kind, .. } = scan.next_record().unwrap() {
            kinds.push(kind);
        }
        out.push((header, kinds));
    }
    out
}

/// A fresh partition directory (`p-0000`) inside a temporary dir kept alive by the guard.
pub(super) fn tmp_partition() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p-0000");
    (tmp, dir)
}
