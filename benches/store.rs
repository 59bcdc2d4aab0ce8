//! Store benchmarks: append throughput (group commit vs one fdatasync per append), start-up
//! time of a large partition from its checkpoint, and index bytes per message.
//!
//! `cargo bench --bench store`. `RINGMAIL_BENCH_MESSAGES` sets the start-up partition's
//! size (default 1,000,000).

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ringmail::store::{MessageEntry, NewMessage, Options, Partition, SearchFields};
use ringmail_mime::{analyze_for_store, SearchValues};

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

/// Appends `total` messages of `size` bytes from `appenders` concurrent tasks; returns the
/// time from the first append to the last acknowledgement.
fn appends(dir: PathBuf, size: usize, appenders: u64, total: u64, group_commit: bool) -> Duration {
    run(move || async move {
        let opts = Options {
            group_commit,
            checkpoint_every: u64::MAX,
            ..Options::default()
        };
        let p = Rc::new(Partition::open(&dir, opts).await.unwrap());
        p.ensure_user("bench").await.unwrap();
        let body = Rc::new(message(size));
        let start = Instant::now();
        let tasks: Vec<_> = (0..appenders)
            .map(|t| {
                let (p, body) = (p.clone(), body.clone());
                let n = total / appenders + u64::from(t < total % appenders);
                glommio::spawn_local(async move {
                    for _ in 0..n {
                        // What IMAP APPEND and LMTP do on the session's task before the
                        // store: analyse the message.
                        let a = analyze_for_store(&body);
                        let m = NewMessage {
                            meta: &a.meta,
                            search: Some(&a.search),
                            text: &a.text,
                            ..NewMessage::plain(&body)
                        };
                        p.append("bench", "INBOX", &[m]).await.unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await;
        }
        start.elapsed()
    })
}

/// A message of `size` bytes with a realistic header (encoded words, several addresses),
/// so that the header-search values the store extracts at append cost what they would.
fn message(size: usize) -> Vec<u8> {
    let mut m = b"Return-Path: <bounce@lists.example.org>\r\n\
        Received: from mx.example.org (mx.example.org [192.0.2.7]) by mail.example.net\r\n\
        \twith ESMTPS id 4Fx; Fri, 4 Dec 2026 10:00:00 +0000\r\n\
        From: =?utf-8?q?J=C3=B6rg_M=C3=BCller?= <joerg.mueller@example.org>\r\n\
        To: Ann Smith <ann@example.net>, \"Bob (work)\" <bob@example.net>,\r\n\
        \tcarol@example.net\r\n\
        Cc: team: dave@example.net, erin@example.net;\r\n\
        Subject: =?iso-8859-1?q?R=E9union_de_lundi?= and the quarterly numbers\r\n\
        Date: Fri, 4 Dec 2026 10:00:00 +0000\r\n\
        Message-ID: <abc123@example.org>\r\n\
        MIME-Version: 1.0\r\n\
        Content-Type: text/plain; charset=utf-8\r\n\r\n"
        .to_vec();
    m.resize(size.max(m.len()), b'x');
    m
}

fn bench_appends(c: &mut Criterion) {
    let mut g = c.benchmark_group("append");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    for size in [4usize << 10, 64 << 10] {
        for appenders in [1u64, 16, 256] {
            for group in [true, false] {
                let mode = if group {
                    "group-commit"
                } else {
                    "sync-per-append"
                };
                let id = BenchmarkId::new(
                    format!("{}KiB/{mode}", size >> 10),
                    format!("{appenders}-appenders"),
                );
                g.throughput(Throughput::Elements(1));
                g.bench_function(id, |b| {
                    b.iter_custom(|iters| {
                        let tmp = tempfile::tempdir().unwrap();
                        appends(tmp.path().join("p-0000"), size, appenders, iters, group)
                    })
                });
            }
        }
    }
    g.finish();
}

/// Builds a partition of `n` small messages and closes it cleanly (checkpoint written).
fn build_large(dir: &Path, n: u64) {
    let dir = dir.to_path_buf();
    run(move || async move {
        let opts = Options {
            durability: ringmail::store::Durability::Relaxed,
            checkpoint_every: u64::MAX,
            ..Options::default()
        };
        let p = Partition::open(&dir, opts).await.unwrap();
        p.ensure_user("big").await.unwrap();
        let body = b"Subject: hi\r\n\r\nhello\r\n";
        let batch: Vec<NewMessage> = (0..1000)
            .map(|_| NewMessage {
                body,
                flags: 0,
                keywords: &[],
                internal_date: 0,
                meta: &[],
                search: None,
                text: &[],
            })
            .collect();
        for i in 0..n.div_ceil(1000) {
            let k = (n - i * 1000).min(1000) as usize;
            p.append("big", "INBOX", &batch[..k]).await.unwrap();
        }
        p.close().await.unwrap();
    });
}

fn bench_startup(c: &mut Criterion) {
    let n: u64 = std::env::var("RINGMAIL_BENCH_MESSAGES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p-0000");
    let t = Instant::now();
    build_large(&dir, n);
    let ckpt: u64 = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "ckpt"))
        .map(|e| e.metadata().unwrap().len())
        .max()
        .unwrap_or(0);
    println!(
        "startup partition: {n} messages built in {:.1?}; index entry {} bytes/message; \
         checkpoint {} bytes ({:.1} bytes/message)",
        t.elapsed(),
        std::mem::size_of::<MessageEntry>(),
        ckpt,
        ckpt as f64 / n as f64
    );
    let mut g = c.benchmark_group("startup");
    g.sample_size(10).warm_up_time(Duration::from_millis(100));
    g.bench_function(BenchmarkId::new("open-from-checkpoint", n), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let d = dir.clone();
                total += run(move || async move {
                    let start = Instant::now();
                    let p = Partition::open(&d, Options::default()).await.unwrap();
                    let took = start.elapsed();
                    assert_eq!(p.status("big", "INBOX").unwrap().messages as u64, n);
                    took
                });
            }
            total
        })
    });
    g.finish();
}

/// The parts of an append's CPU cost that the header-search values touch: the analysis on
/// the session's task (`analyze`: metadata only, as before the values existed;
/// `analyze-for-store`: metadata and values from one walk), the store's own extraction
/// when a caller brings no values (`of-message`, also what replay does), and the copy into
/// the arenas when the record is applied (`push-values`).
fn bench_search_values(c: &mut Criterion) {
    let m = message(4 << 10);
    let mut g = c.benchmark_group("search-values");
    g.throughput(Throughput::Elements(1));
    g.bench_function("analyze", |b| {
        b.iter(|| ringmail_mime::analyze(std::hint::black_box(&m)).to_bytes())
    });
    g.bench_function("analyze-for-store", |b| {
        b.iter(|| analyze_for_store(std::hint::black_box(&m)))
    });
    g.bench_function("of-message", |b| {
        b.iter(|| SearchValues::of_message(std::hint::black_box(&m)))
    });
    let values = SearchValues::of_message(&m);
    g.bench_function("push-values", |b| {
        b.iter_batched_ref(
            SearchFields::new,
            |f| f.push_values(std::hint::black_box(&values)),
            criterion::BatchSize::SmallInput,
        )
    });
    g.finish();
    let mut f = SearchFields::new();
    for _ in 0..1000 {
        f.push_message(&m);
    }
    eprintln!(
        "search-values: {} bytes in memory per message of this header",
        f.heap_bytes() / 1000
    );
}

criterion_group!(benches, bench_appends, bench_startup, bench_search_values);
criterion_main!(benches);
