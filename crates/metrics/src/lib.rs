//! Operations: counters and latency histograms per executor, the Prometheus / health endpoint,
//! logging setup and the per-user protocol trace.
//!
//! The hot path only touches its own executor's [`ExecutorMetrics`] (plain integers behind a
//! `RefCell`, no atomics). [`publish`] sends a copy to the metrics thread once a second; the
//! thread ([`endpoint`]) merges the latest copies when scraped. See docs/monitoring.md for the
//! metric names.

pub mod endpoint;
pub mod logging;
pub mod registry;
pub mod render;
pub mod session;
pub mod trace;

use std::future::Future;
use std::time::Duration;

use crossbeam_channel::Sender;
use futures_lite::future;

use ringmail_store::StoreStats;

pub use registry::{ExecutorMetrics, Listener, Outcome, SessionState, Snapshot};
pub use session::{MeterCarry, Registry, SessionMeter};

/// How often an executor reports to the metrics thread.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// Runs on an executor once its partitions are open and its listeners bound: reports
/// `registry`, with the store statistics `store` sums over its partitions, to the metrics thread now and every second until `stop` resolves, then once
/// more marked as stopping (so /readyz fails while sessions drain).
pub async fn publish(
    executor: usize,
    registry: Registry,
    store: impl Fn() -> StoreStats,
    to: Sender<Snapshot>,
    stop: impl Future<Output = ()>,
) {
    let send = |stopping: bool| {
        let mut metrics = registry.borrow().clone();
        metrics.store = store();
        let snapshot = Snapshot {
            executor,
            ready: true,
            stopping,
            metrics,
        };
        // Full only if the metrics thread is stuck; then this second's numbers are skipped.
        let _ = to.try_send(snapshot);
    };
    future::or(
        async {
            loop {
                send(false);
                glommio::timer::sleep(PUBLISH_EVERY).await;
            }
        },
        stop,
    )
    .await;
    send(true);
}
