//! FETCH benchmark (issue 4): `FETCH 1:1000 (BODY.PEEK[])` and `FETCH 1:1000 (BODYSTRUCTURE)`
//! from a warm mailbox of 1,000 realistic messages, through the FETCH command's own
//! per-message renderer. Reports output bytes per second and heap allocations per message.
//!
//! `cargo bench --bench fetch`. `RINGMAIL_BENCH_ROUNDS` sets the measured rounds (default 30);
//! the best and the median round are printed.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ringmail::imap::commands::fetch::{render_message, Message, Request};
use ringmail::imap::parser::{FetchAttr, Section};
use ringmail::store::{MessageEntry, NewMessage, Options, Partition};

/// Counts every allocation (and reallocation) the process makes.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// GlobalAlloc contract is upheld by `System`; the counter has no effect on the memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const MESSAGES: usize = 1000;
/// The session sends its output buffer once it passes this size (see `fetch.rs`).
const FLUSH_AT: usize = 256 * 1024;

/// Message `i`: a few KB of text, every third one multipart with an attachment, every
/// seventh one with a forwarded message inside.
fn message(i: usize) -> Vec<u8> {
    let mut m = format!(
        "Return-Path: <sender{i}@example.org>\r\n\
         Received: from mx{i}.example.org (mx{i}.example.org [192.0.2.{r}]) by mail.example.com\r\n\
         \twith ESMTPS id {i:08x}; Tue, 3 Mar 2026 10:{mm:02}:00 +0000\r\n\
         Date: Tue, 3 Mar 2026 10:{mm:02}:00 +0000\r\n\
         From: \"Sender {i}\" <sender{i}@example.org>\r\n\
         To: Alice <alice@example.com>, bob@example.com\r\n\
         Cc: \"Team\" <team@example.com>\r\n\
         Subject: =?UTF-8?Q?Quarterly_report_=E2=80=93_part_{i}?=\r\n\
         Message-ID: <{i}.report@example.org>\r\n\
         In-Reply-To: <{p}.report@example.org>\r\n\
         MIME-Version: 1.0\r\n",
        r = i % 250 + 1,
        mm = i % 60,
        p = i.saturating_sub(1),
    );
    let paragraph = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod \
                     tempor incididunt ut labore et dolore magna aliqua.\r\n";
    let text: String = paragraph.repeat(12 + i % 30);
    if i.is_multiple_of(3) {
        m.push_str("Content-Type: multipart/mixed; boundary=\"=_b\"\r\n\r\nThis is MIME.\r\n");
        m.push_str("--=_b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n");
        m.push_str(&text);
        m.push_str("--=_b\r\nContent-Type: application/pdf; name=\"report.pdf\"\r\n");
        m.push_str("Content-Disposition: attachment; filename=\"report.pdf\"\r\n");
        m.push_str("Content-Transfer-Encoding: base64\r\n\r\n");
        for _ in 0..20 {
            m.push_str(
                "JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFIvRmlsdGVyIC9GbGF0ZURlY29k\r\n",
            );
        }
        if i.is_multiple_of(7) {
            m.push_str("--=_b\r\nContent-Type: message/rfc822\r\n\r\n");
            m.push_str("From: x@example.net\r\nSubject: forwarded\r\n\r\nInner body.\r\n");
        }
        m.push_str("--=_b--\r\n");
    } else {
        m.push_str("Content-Type: text/plain; charset=utf-8\r\n\r\n");
        m.push_str(&text);
    }
    m.into_bytes()
}

struct Round {
    elapsed: Duration,
    bytes: usize,
    allocations: usize,
}

/// One `FETCH 1:1000 (attrs)`: every message rendered as the command does, the output
/// handed off (and dropped, as a flush does) once it passes the session's flush size.
async fn fetch_all(
    mail: &Partition,
    mailbox: u64,
    entries: &[MessageEntry],
    attrs: &[FetchAttr<'_>],
) -> Round {
    let req = Request {
        uid_mode: false,
        attrs,
        seen_set: false,
        condstore: false,
    };
    let mut out = Vec::new();
    // The FETCH command keeps one metadata buffer for all its messages.
    let mut scratch = Vec::new();
    let mut bytes = 0;
    let allocations = ALLOCATIONS.load(Ordering::Relaxed);
    let start = Instant::now();
    for (i, entry) in entries.iter().enumerate() {
        let msg = Message {
            mail,
            user: "bench",
            mailbox,
            msn: i as u32 + 1,
            entry,
        };
        render_message(&msg, &req, &mut out, &mut scratch)
            .await
            .expect("fetch renders");
        if out.len() > FLUSH_AT {
            bytes += std::mem::take(&mut out).len();
        }
    }
    bytes += out.len();
    drop(out);
    Round {
        elapsed: start.elapsed(),
        bytes,
        allocations: ALLOCATIONS.load(Ordering::Relaxed) - allocations,
    }
}

/// Which store read [`reads_only`] measures.
#[derive(Clone, Copy)]
enum Read {
    /// `read_message`: a buffer of the store's per read.
    Message,
    /// `read_meta`: likewise.
    Meta,
    /// `read_message_into` one reused buffer, as FETCH reads BODY[].
    MessageInto,
    /// `read_meta_into` one reused buffer, as FETCH reads the metadata.
    MetaInto,
}

/// The store's reads alone, one per message, with nothing rendered.
async fn reads_only(mail: &Partition, mailbox: u64, entries: &[MessageEntry], read: Read) -> usize {
    let mut buf = Vec::new();
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for entry in entries {
        buf.clear();
        match read {
            Read::Message => drop(
                mail.read_message("bench", mailbox, entry.uid, None)
                    .await
                    .expect("read"),
            ),
            Read::Meta => drop(
                mail.read_meta("bench", mailbox, entry.uid)
                    .await
                    .expect("read"),
            ),
            Read::MessageInto => drop(
                mail.read_message_into("bench", mailbox, entry.uid, None, &mut buf)
                    .await
                    .expect("read"),
            ),
            Read::MetaInto => drop(
                mail.read_meta_into("bench", mailbox, entry.uid, &mut buf)
                    .await
                    .expect("read"),
            ),
        }
    }
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument selects cases by name.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let rounds: usize = std::env::var("RINGMAIL_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30)
        .max(1);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().to_path_buf();
    glommio::LocalExecutorBuilder::default()
        .spawn(move || async move {
            let mail = Partition::open(&path, Options::default())
                .await
                .expect("open store");
            mail.ensure_user("bench").await.expect("user");
            let raws: Vec<Vec<u8>> = (0..MESSAGES).map(message).collect();
            let metas: Vec<Vec<u8>> = raws
                .iter()
                .map(|raw| ringmail::mime::analyze(raw).to_bytes())
                .collect();
            for chunk in raws.iter().zip(&metas).collect::<Vec<_>>().chunks(100) {
                let batch: Vec<NewMessage<'_>> = chunk
                    .iter()
                    .map(|(raw, meta)| NewMessage {
                        body: raw,
                        flags: 0,
                        keywords: &[],
                        internal_date: 1_772_000_000,
                        meta,
                        search: None,
                        text: &[],
                    })
                    .collect();
                mail.append("bench", "INBOX", &batch).await.expect("append");
            }
            let (mailbox, entries) = mail
                .with_mailbox("bench", "INBOX", |v| (v.id(), v.messages().to_vec()))
                .expect("mailbox");
            let stored: usize = raws.iter().map(Vec::len).sum();
            println!(
                "mailbox: {} messages, {:.1} KiB average",
                entries.len(),
                stored as f64 / entries.len() as f64 / 1024.0
            );
            let cases: [(&str, Vec<FetchAttr<'static>>); 2] = [
                (
                    "fetch_1000_body_peek",
                    vec![FetchAttr::BodySection {
                        peek: true,
                        section: Section {
                            part: Vec::new(),
                            text: None,
                        },
                        partial: None,
                    }],
                ),
                ("fetch_1000_bodystructure", vec![FetchAttr::BodyStructure]),
            ];
            for (name, attrs) in &cases {
                if filter.as_deref().is_some_and(|f| !name.contains(f)) {
                    continue;
                }
                // Warm: the page cache and the store's buffers hold the mailbox.
                fetch_all(&mail, mailbox, &entries, attrs).await;
                let mut results = Vec::with_capacity(rounds);
                for _ in 0..rounds {
                    results.push(fetch_all(&mail, mailbox, &entries, attrs).await);
                }
                results.sort_by_key(|r| r.elapsed);
                let best = &results[0];
                let median = &results[results.len() / 2];
                let rate = |r: &Round| r.bytes as f64 / r.elapsed.as_secs_f64() / (1 << 20) as f64;
                println!(
                    "{name}: {} bytes out; median {:.2} ms ({:.0} MiB/s, {:.0} msgs/s), \
                     best {:.2} ms ({:.0} MiB/s); {:.2} allocations/message",
                    median.bytes,
                    median.elapsed.as_secs_f64() * 1e3,
                    rate(median),
                    entries.len() as f64 / median.elapsed.as_secs_f64(),
                    best.elapsed.as_secs_f64() * 1e3,
                    rate(best),
                    median.allocations as f64 / entries.len() as f64,
                );
            }
            for (what, read) in [
                ("read_message", Read::Message),
                ("read_meta", Read::Meta),
                ("read_message_into", Read::MessageInto),
                ("read_meta_into", Read::MetaInto),
            ] {
                reads_only(&mail, mailbox, &entries, read).await;
                let n = reads_only(&mail, mailbox, &entries, read).await;
                println!(
                    "store {what} alone: {:.2} allocations/message",
                    n as f64 / entries.len() as f64
                );
            }
            mail.close().await.expect("close");
        })
        .expect("executor")
        .join()
        .expect("bench thread");
}
