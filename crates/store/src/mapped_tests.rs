//! Records read in place (`Partition::record_reader`, `store::mapped`): the same bytes as the
//! reads, in the active segment as it grows and after it is sealed, from a segment that
//! compaction retired and removed while a search still held it, and never from pages the
//! page cache does not hold (the executor would wait for the disk).

use std::os::fd::AsRawFd;
use std::path::Path;

use super::segment::{list_segments, segment_path};
use super::test_support::{run, tmp_partition};
use super::{MessageEntry, NewMessage, Options, Partition};

fn body(i: usize) -> Vec<u8> {
    format!("Subject: m{i}\r\n\r\n{}\r\n", "word ".repeat(30 + i % 11)).into_bytes()
}

fn text(i: usize) -> Vec<u8> {
    format!("text {i} ").repeat(1 + i % 4).into_bytes()
}

async fn open(dir: &Path) -> Partition {
    let opts = Options {
        segment_size: 8 << 10,
        checkpoint_every: u64::MAX,
        ..Options::default()
    };
    Partition::open(dir, opts).await.unwrap()
}

async fn append(p: &Partition, i: usize) -> u32 {
    let (b, t) = (body(i), text(i));
    let msg = NewMessage {
        text: &t,
        ..NewMessage::plain(&b)
    };
    p.append("u", "INBOX", &[msg]).await.unwrap().uids[0]
}

fn entry(p: &Partition, uid: u32) -> MessageEntry {
    p.with_mailbox("u", "INBOX", |v| v.message(uid))
        .unwrap()
        .unwrap()
}

fn active_segment(p: &Partition) -> u32 {
    p.inner.log.borrow().active_id
}

/// Every message `uid` is message `i` (`uids[i]`), read in place with one reader.
fn all_in_place(p: &Partition, uids: &[u32]) {
    let mut reader = p.record_reader();
    for (i, &uid) in uids.iter().enumerate() {
        let e = entry(p, uid);
        let record = reader
            .read(&e)
            .unwrap_or_else(|| panic!("message {i} not read in place"));
        assert_eq!(record.message, body(i), "message {i}");
        assert_eq!(record.text, Some(&text(i)[..]), "text of message {i}");
    }
}

/// One reader keeps the map of the active segment it made first: records appended after it
/// (past the map's end) and the same segment once sealed (its map was made when it was
/// shorter) are still read in place, whole.
#[test]
fn follows_the_active_segment_as_it_grows_and_is_sealed() {
    let (_tmp, dir) = tmp_partition();
    run(move || async move {
        let p = open(&dir).await;
        p.ensure_user("u").await.unwrap();
        let mut uids = vec![append(&p, 0).await];
        let first_segment = active_segment(&p);
        let mut reader = p.record_reader();
        assert_eq!(reader.read(&entry(&p, uids[0])).unwrap().message, body(0));
        let mut i = 1;
        while active_segment(&p) == first_segment {
            uids.push(append(&p, i).await);
            // Each new record lies past what the map covered when it was made.
            let e = entry(&p, uids[i]);
            if e.segment == first_segment {
                let record = reader.read(&e).expect("an appended record in place");
                assert_eq!(record.message, body(i));
                assert_eq!(record.text, Some(&text(i)[..]));
            }
            i += 1;
        }
        assert!(i > 3, "the segment held several messages");
        // The first segment is sealed now; the reader's map of it was made while it was
        // active: its records, up to the last one, are read whole.
        for (i, &uid) in uids.iter().enumerate() {
            let record = reader.read(&entry(&p, uid)).unwrap();
            assert_eq!(record.message, body(i), "message {i} after the seal");
            assert_eq!(record.text, Some(&text(i)[..]));
        }
        drop(reader);
        all_in_place(&p, &uids);
        p.close().await.unwrap();
    });
}

/// Bytes handed out by a reader stay readable after compaction moved the messages, retired
/// their segment and removed its file; later reads come from the new segment, and the
/// retired segment's map is dropped (it would keep the removed file's blocks allocated).
#[test]
fn a_removed_segment_stays_readable_while_held_and_its_map_goes() {
    let (_tmp, dir) = tmp_partition();
    run(move || async move {
        let p = open(&dir).await;
        p.ensure_user("u").await.unwrap();
        let mut uids = Vec::new();
        for i in 0..40 {
            uids.push(append(&p, i).await);
        }
        // Three in four of the first segment's messages go, so that compaction rewrites it.
        let first = entry(&p, uids[0]).segment;
        let doomed: Vec<u32> = uids
            .iter()
            .copied()
            .filter(|&u| entry(&p, u).segment == first && u % 4 != 1)
            .collect();
        assert!(!doomed.is_empty());
        let kept = uids
            .iter()
            .position(|&u| entry(&p, u).segment == first && u % 4 == 1)
            .unwrap();
        p.expunge("u", "INBOX", &super::to_ranges(doomed.iter().copied()))
            .await
            .unwrap();
        p.checkpoint().await.unwrap();

        let old = entry(&p, uids[kept]);
        let mut reader = p.record_reader();
        let held = reader.read(&old).unwrap();
        assert_eq!(held.message, body(kept));
        assert!(p.compact().await.unwrap() > 0, "nothing compacted");
        // Enough checkpoints for the retired segment's file to be removed.
        for _ in 0..4 {
            p.checkpoint().await.unwrap();
        }
        assert!(
            !segment_path(&dir, first).exists(),
            "segment {first} was not removed"
        );
        assert!(!list_segments(&dir).unwrap().contains(&first));
        assert_eq!(held.message, body(kept), "the held bytes of a removed file");
        assert_eq!(held.text, Some(&text(kept)[..]));

        let moved = entry(&p, uids[kept]);
        assert_ne!(moved.segment, first, "the message moved");
        assert!(!p.inner.maps.contains(first), "the retired map was kept");
        let live: Vec<u32> = uids
            .iter()
            .copied()
            .filter(|u| !doomed.contains(u))
            .collect();
        let mut reader = p.record_reader();
        for &uid in &live {
            let i = uids.iter().position(|&u| u == uid).unwrap();
            let record = reader.read(&entry(&p, uid)).unwrap();
            assert_eq!(record.message, body(i), "message {i} after compaction");
            assert_eq!(record.text, Some(&text(i)[..]));
        }
        p.close().await.unwrap();
    });
}

/// Evicts a file's clean pages from the page cache (as memory pressure would).
fn evict(path: &Path) {
    let f = std::fs::File::open(path).unwrap();
    // SAFETY: posix_fadvise only reads its arguments; the descriptor is open for the call.
    let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(rc, 0);
}

/// A record whose pages are not in the page cache is not read in place (the executor would
/// wait for the disk on a page fault); the caller's asynchronous read brings it back, and
/// then it is. After a restart (a fresh partition, no maps yet) the same holds.
#[test]
fn a_record_not_in_the_page_cache_is_left_to_reads() {
    let (_tmp, dir) = tmp_partition();
    let d = dir.clone();
    run(move || async move {
        let p = open(&d).await;
        p.ensure_user("u").await.unwrap();
        for i in 0..30 {
            append(&p, i).await;
        }
        p.close().await.unwrap();
    });
    run(move || async move {
        let p = open(&dir).await;
        let uids: Vec<u32> = p
            .with_mailbox("u", "INBOX", |v| {
                v.messages().iter().map(|m| m.uid).collect()
            })
            .unwrap();
        let first = entry(&p, uids[0]).segment;
        assert_ne!(first, active_segment(&p), "the first segment is sealed");
        evict(&segment_path(&dir, first));
        let mut reader = p.record_reader();
        assert!(
            reader.read(&entry(&p, uids[0])).is_none(),
            "an evicted record was read in place"
        );
        // The read path still answers, and reads the pages back in.
        let mut t = Vec::new();
        assert!(p
            .read_search_text_into("u", "INBOX", uids[0], &mut t)
            .await
            .unwrap());
        assert_eq!(t, text(0));
        let m = p.read_message("u", "INBOX", uids[0], None).await.unwrap();
        assert_eq!(&m[..], &body(0)[..]);
        drop(reader);
        // Read back in whole, all of them are read in place.
        for &uid in &uids {
            p.read_message("u", "INBOX", uid, None).await.unwrap();
            p.read_search_text_into("u", "INBOX", uid, &mut t)
                .await
                .unwrap();
        }
        all_in_place(&p, &uids);
        p.close().await.unwrap();
    });
}
