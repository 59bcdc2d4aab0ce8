//! The fake servers' shared part: a loopback listener whose connections each get a thread
//! running the test's `serve`, with what it saw counted in one shared `S`.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;

/// Listens on a free loopback port; each connection runs `serve` on its own thread.
pub fn spawn_fake<S: Default + Send + Sync + 'static>(
    serve: fn(TcpStream, &S),
) -> (SocketAddr, Arc<S>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(S::default());
    let for_thread = seen.clone();
    // The accept thread ends with the test process.
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let seen = for_thread.clone();
            std::thread::spawn(move || serve(stream, &seen));
        }
    });
    (addr, seen)
}

/// How many `command`s a run counted (0 when it never ran one).
pub fn count(summary: &ringmail_load::Summary, command: &str) -> u64 {
    summary
        .commands
        .iter()
        .find(|c| c.command == command)
        .map_or(0, |c| c.count)
}
