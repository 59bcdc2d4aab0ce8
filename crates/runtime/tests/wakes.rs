//! Cross-core wake-ups are never lost. An executor that runs out of work parks in the
//! kernel; work another thread hands it must wake it. ringmail builds glommio with its own
//! barrier for that hand-shake (vendor/README.md: a fence on each side instead of
//! `membarrier()`), so these tests drive the two ways work crosses threads, tens of
//! thousands of times each with the receiving executor idle in between: a lost wake-up
//! leaves the exchange stuck and the bounded wait fails (checked: with the notify's eventfd
//! write dropped, both tests fail at the limit). The reordering the fences forbid is a window
//! of a few instructions, so these runs make it likely to show, not certain.

use std::time::Duration;

use glommio::channels::shared_channel;
use glommio::{LocalExecutorBuilder, Placement};

/// Generous for a starved CI machine: each test takes well under a second when quiet.
const LIMIT: Duration = Duration::from_secs(60);

/// Runs `f` on a thread of its own and fails the test if it has not finished within LIMIT.
fn bounded(what: &str, f: impl FnOnce() + Send + 'static) {
    let (done, finished) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        f();
        let _ = done.send(());
    });
    finished
        .recv_timeout(LIMIT)
        .unwrap_or_else(|_| panic!("{what}: stuck for {LIMIT:?} (a wake-up was lost)"));
}

#[test]
fn ping_pong_between_two_executors_never_stalls() {
    const ROUNDS: u32 = 50_000;
    bounded("ping-pong over shared channels", || {
        // Capacity 1: a sender also waits for room, so both directions of the notify
        // (data for the receiver, room for the sender) are exercised.
        let (ping_tx, ping_rx) = shared_channel::new_bounded::<u32>(1);
        let (pong_tx, pong_rx) = shared_channel::new_bounded::<u32>(1);
        let a = LocalExecutorBuilder::new(Placement::Unbound)
            .name("wakes-a")
            .spawn(move || async move {
                let ping = ping_tx.connect().await;
                let pong = pong_rx.connect().await;
                for i in 0..ROUNDS {
                    ping.send(i).await.unwrap();
                    assert_eq!(pong.recv().await, Some(i + 1));
                }
            })
            .unwrap();
        let b = LocalExecutorBuilder::new(Placement::Unbound)
            .name("wakes-b")
            .spawn(move || async move {
                let ping = ping_rx.connect().await;
                let pong = pong_tx.connect().await;
                while let Some(i) = ping.recv().await {
                    pong.send(i + 1).await.unwrap();
                }
            })
            .unwrap();
        a.join().unwrap();
        b.join().unwrap();
    });
}

#[test]
fn wakes_from_a_plain_thread_reach_an_idle_executor() {
    const ROUNDS: usize = 50_000;
    bounded("oneshots completed by another thread", || {
        let (requests, incoming) =
            crossbeam_channel::unbounded::<futures_channel::oneshot::Sender<usize>>();
        let answerer = std::thread::spawn(move || {
            for (n, reply) in incoming.into_iter().enumerate() {
                let _ = reply.send(n);
            }
        });
        LocalExecutorBuilder::new(Placement::Unbound)
            .name("wakes-c")
            .spawn(move || async move {
                for i in 0..ROUNDS {
                    let (reply, answer) = futures_channel::oneshot::channel();
                    requests.send(reply).unwrap();
                    // The executor has nothing else to do: it parks until the other
                    // thread's send wakes this task.
                    assert_eq!(answer.await, Ok(i));
                }
            })
            .unwrap()
            .join()
            .unwrap();
        answerer.join().unwrap();
    });
}
