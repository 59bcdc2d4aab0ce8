//! The second pass over a real partition: BODY and TEXT, alone and with a header key the
//! index cannot decide, answer alike for messages decided in place and messages read (those
//! stored without a searchable text, and those whose pages are not in the page cache), over
//! more messages than one in-place batch and many segments, and with messages expunged
//! behind the session's back.

use std::borrow::Cow;
use std::os::fd::AsRawFd;
use std::path::Path;

use base64::Engine as _;
use ringmail_proto::parser::SearchKey;
use ringmail_store::{NewMessage, Options, Partition};

use super::{compile, run, Collect, Found, Scope};
use crate::recent::RecentUids;
use crate::selected::View;

const MESSAGES: usize = 700;

/// Message `i`: "zebrafish" in the body of every 7th (inside base64 for every 3rd message,
/// so only the decoded text has it; after 600 KB in the large ones) and in the Subject of
/// every 11th; `X-Tag: t1` on the odd ones.
fn message(i: usize) -> Vec<u8> {
    let subject = if i.is_multiple_of(11) {
        "about Zebrafish".to_string()
    } else {
        format!("note {i}")
    };
    let mut body = format!("line one of {i}\r\nsome words here\r\n");
    let large = i % 100 == 50;
    if i.is_multiple_of(7) && !large {
        body.push_str("the ZebraFish swim\r\n");
    }
    // Every 100th is large (600 KB): a batch in place ends early after such messages.
    let filler = if large { 50_000 } else { i % 9 };
    body.push_str(&"filler text ".repeat(filler));
    if large && i.is_multiple_of(7) {
        body.push_str("\r\nzebrafish at the end\r\n");
    }
    let (encoding, body) = if i.is_multiple_of(3) {
        let b64 = base64::engine::general_purpose::STANDARD.encode(body.as_bytes());
        ("base64", b64)
    } else {
        ("7bit", body)
    };
    format!(
        "From: sender{i}@example.org\r\nSubject: {subject}\r\nX-Tag: t{}\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: {encoding}\r\n\
         \r\n{body}\r\n",
        i % 2
    )
    .into_bytes()
}

/// Messages expunged by "another session": still in the view, gone from the store.
fn expunged(i: usize) -> bool {
    i % 13 == 5
}

async fn fill(dir: &Path) {
    let p = Partition::open(dir, options()).await.unwrap();
    p.ensure_user("u").await.unwrap();
    let raws: Vec<Vec<u8>> = (0..MESSAGES).map(message).collect();
    let analyses: Vec<_> = raws
        .iter()
        .map(|r| ringmail_mime::analyze_for_store(r))
        .collect();
    // Batches of ten (one batch never spans segments: many segments in all); every 4th
    // message without a stored text, as an older ringmail stored them.
    for (chunk, (raws, analyses)) in raws.chunks(10).zip(analyses.chunks(10)).enumerate() {
        let msgs: Vec<NewMessage<'_>> = raws
            .iter()
            .zip(analyses)
            .enumerate()
            .map(|(k, (raw, a))| NewMessage {
                meta: &a.meta,
                search: Some(&a.search),
                text: if (chunk * 10 + k) % 4 == 0 {
                    &[]
                } else {
                    &a.text
                },
                ..NewMessage::plain(raw)
            })
            .collect();
        p.append("u", "INBOX", &msgs).await.unwrap();
    }
    p.close().await.unwrap();
}

fn options() -> Options {
    Options {
        segment_size: 16 << 10,
        checkpoint_every: u64::MAX,
        ..Options::default()
    }
}

/// Evicts the clean pages of every other segment file from the page cache.
fn evict_some(dir: &Path) {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    names.sort();
    assert!(names.len() > 10, "only {} segments", names.len());
    for path in names.iter().step_by(2) {
        let f = std::fs::File::open(path).unwrap();
        // SAFETY: posix_fadvise only reads its arguments; the descriptor is open for the call.
        let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        assert_eq!(rc, 0);
    }
}

async fn search(p: &Partition, view: &View, keys: &[SearchKey<'_>]) -> (Vec<u32>, bool) {
    let mailbox = p.with_mailbox("u", "INBOX", |v| v.id()).unwrap();
    let recent = RecentUids::default();
    let scope = Scope {
        mail: p,
        user: "u",
        mailbox,
        view,
        saved: &[],
        recent: &recent,
        abandon: &|| false,
    };
    let program = compile(&scope, keys).unwrap();
    let Found { hits, expunged, .. } = run(&scope, &program, Collect::Hits).await.unwrap();
    let uids: Vec<u32> = hits.iter().map(|h| h.uid).collect();
    // The form SEARCH keeps (UIDs only) decides the same messages.
    let found = run(&scope, &program, Collect::Uids).await.unwrap();
    assert_eq!(found.ids, uids);
    (uids, expunged)
}

fn word(s: &'static str) -> Cow<'static, [u8]> {
    Cow::Borrowed(s.as_bytes())
}

#[test]
fn in_place_and_read_messages_answer_alike() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p-0000");
    glommio::LocalExecutorBuilder::default()
        .spawn(move || async move {
            fill(&dir).await;
            let p = Partition::open(&dir, options()).await.unwrap();
            let uids: Vec<u32> = p
                .with_mailbox("u", "INBOX", |v| {
                    v.messages().iter().map(|m| m.uid).collect()
                })
                .unwrap();
            assert_eq!(uids.len(), MESSAGES);
            let doomed: Vec<u32> = (0..MESSAGES)
                .filter(|&i| expunged(i))
                .map(|i| uids[i])
                .collect();
            p.expunge("u", "INBOX", &ringmail_store::to_ranges(doomed))
                .await
                .unwrap();
            // The session has not heard of the expunges: its view still holds them.
            let view = View {
                uids: uids.clone(),
                gone: Vec::new(),
            };
            let want = |f: &dyn Fn(usize) -> bool| -> Vec<u32> {
                (0..MESSAGES)
                    .filter(|&i| !expunged(i) && f(i))
                    .map(|i| uids[i])
                    .collect()
            };
            let cases: Vec<(&str, Vec<SearchKey<'static>>, Vec<u32>)> = vec![
                (
                    "BODY",
                    vec![SearchKey::Body(word("zebrafish"))],
                    want(&|i| i % 7 == 0),
                ),
                (
                    "TEXT",
                    vec![SearchKey::Text(word("ZEBRAFISH"))],
                    want(&|i| i % 7 == 0 || i % 11 == 0),
                ),
                (
                    "NOT BODY",
                    vec![SearchKey::Not(Box::new(SearchKey::Body(word("zebrafish"))))],
                    want(&|i| i % 7 != 0),
                ),
                (
                    "HEADER X-Tag t1 BODY",
                    vec![
                        SearchKey::Header(word("X-Tag"), word("t1")),
                        SearchKey::Body(word("zebrafish")),
                    ],
                    want(&|i| i % 2 == 1 && i % 7 == 0),
                ),
            ];
            // First with every other segment out of the page cache (read, not in place),
            // then again once those reads brought them back.
            evict_some(&dir);
            for round in ["partly evicted", "all cached"] {
                for (name, keys, want) in &cases {
                    let (got, expunged) = search(&p, &view, keys).await;
                    assert_eq!(&got, want, "{name}, {round}");
                    assert!(expunged, "{name}, {round}: EXPUNGEISSUED");
                }
            }
            p.close().await.unwrap();
        })
        .unwrap()
        .join()
        .unwrap();
}
