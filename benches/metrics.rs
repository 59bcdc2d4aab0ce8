//! What the per-executor accounting costs on the command path: one `ExecutorMetrics::command`
//! (a map lookup by command name plus an hdrhistogram record), the per-session byte counts
//! and the once-a-second snapshot (clone) with the render the metrics thread does per scrape.
//! Compare the per-command number with the server CPU per command of `ringmail-load mix`
//! (docs/monitoring.md, "What metrics cost").

use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use ringmail::metrics::render::{render, ProcessInfo};
use ringmail::metrics::{ExecutorMetrics, Outcome, Snapshot};

const COMMANDS: [&str; 8] = [
    "LOGIN",
    "SELECT",
    "FETCH",
    "UID FETCH",
    "STORE",
    "EXPUNGE",
    "APPEND",
    "LOGOUT",
];

fn busy() -> ExecutorMetrics {
    let mut m = ExecutorMetrics::new();
    for (i, name) in COMMANDS.iter().enumerate() {
        for j in 0..1000u64 {
            m.command(
                name,
                Outcome::Ok,
                Duration::from_micros(50 + j * (i as u64 + 1)),
                true,
            );
        }
    }
    m
}

fn metrics(c: &mut Criterion) {
    let mut m = busy();
    let mut i = 0usize;
    c.bench_function("metrics/command", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            let name = COMMANDS[i % COMMANDS.len()];
            m.command(
                black_box(name),
                Outcome::Ok,
                black_box(Duration::from_micros(120)),
                true,
            );
        })
    });
    let m = busy();
    c.bench_function("metrics/snapshot_clone", |b| {
        b.iter(|| black_box(m.clone()))
    });
    let snapshots: Vec<Snapshot> = (0..4)
        .map(|executor| Snapshot {
            executor,
            ready: true,
            stopping: false,
            metrics: busy(),
        })
        .collect();
    let refs: Vec<&Snapshot> = snapshots.iter().collect();
    let info = ProcessInfo {
        executors: 4,
        start_time: 1,
    };
    c.bench_function("metrics/render_4_executors", |b| {
        b.iter(|| black_box(render(&refs, &info)))
    });
}

criterion_group!(benches, metrics);
criterion_main!(benches);
