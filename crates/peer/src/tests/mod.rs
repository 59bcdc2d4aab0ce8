//! Tests of the link over real loopback sockets, each node a glommio executor on a thread of
//! its own. Every wait is bounded.

mod handshake;
mod rpc;
mod session;

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use futures_channel::oneshot;
use futures_lite::{future, AsyncReadExt, AsyncWriteExt};
use glommio::sync::Semaphore;
use glommio::{ExecutorJoinHandle, LocalExecutorBuilder};

use crate::split::Half;
use crate::{
    Accepted, HandshakeError, IncomingSession, Link, LinkConfig, MetricsSnapshot, PeerListener,
    Request, Response, SessionHeader,
};

/// The secret of the test cluster.
pub(super) const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
pub(super) const CLUSTER: &str = "test";

/// The longest any test waits for something that should happen at once.
pub(super) const WAIT: Duration = Duration::from_secs(10);

/// The largest single allocation this test binary made: the oversized-frame tests show a
/// claimed length is never allocated.
pub(super) static LARGEST_ALLOCATION: AtomicUsize = AtomicUsize::new(0);

struct Counting;

// SAFETY: every call is passed unchanged to the system allocator, which upholds the
// GlobalAlloc contract; the only addition is an atomic maximum of the requested sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST_ALLOCATION.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's layout, as received.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST_ALLOCATION.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's layout, as received.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by System with `layout` (all allocations go there).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST_ALLOCATION.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: `ptr` was allocated by System with `layout`; the caller's new size.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// A node's settings in the test cluster, with short timeouts.
pub(super) fn config(node: &str) -> LinkConfig {
    let mut config = LinkConfig::new(CLUSTER, node, SECRET.to_vec());
    config.handshake_timeout = Duration::from_secs(2);
    config.rpc_timeout = Duration::from_secs(5);
    config
}

/// A header with recognisable values.
pub(super) fn header(pipelined: &[u8]) -> SessionHeader {
    SessionHeader {
        user: "alice@example.org".into(),
        client: "192.0.2.7:50123".parse().unwrap(),
        local: "10.0.0.1:993".parse().unwrap(),
        extensions: vec![1, 2, 3],
        tag: "a1".into(),
        pipelined: pipelined.to_vec(),
    }
}

/// Runs `f` on a new glommio executor thread.
pub(super) fn executor<G, F, T>(name: &str, f: G) -> ExecutorJoinHandle<T>
where
    G: FnOnce() -> F + Send + 'static,
    F: Future<Output = T> + 'static,
    T: Send + 'static,
{
    LocalExecutorBuilder::default()
        .name(name)
        .spawn(f)
        .expect("an executor starts")
}

/// What the owner does with a proxied session.
#[derive(Debug, Clone, Copy)]
pub(super) enum Owner {
    /// Writes the pipelined bytes back, then echoes everything until the end of the stream,
    /// then closes.
    Echo,
    /// Writes `* BYE` and closes its sending side first, then reads until the end.
    ByeFirst,
    /// Neither reads nor writes until the dialer goes away.
    Hold,
    /// Sends this many bytes of `pattern(2)` while reading as many of `pattern(1)` and
    /// checking them, then closes.
    Stream(usize),
}

/// An RPC handler that can run on the server's thread.
pub(super) type Handler =
    Arc<dyn Fn(Request) -> Pin<Box<dyn Future<Output = Response>>> + Send + Sync>;

/// What a test server saw.
#[derive(Debug)]
pub(super) enum Event {
    Session {
        peer: String,
        header: SessionHeader,
    },
    /// A session's owner finished; `read` is everything it read from the stream.
    SessionEnded {
        read: Vec<u8>,
    },
    Rpc {
        peer: String,
    },
    /// An RPC connection ended; `Err` holds the error's text.
    RpcEnded(Result<(), String>),
    Refused(HandshakeError),
}

/// A node listening on loopback in its own executor thread.
pub(super) struct Server {
    pub(super) addr: SocketAddr,
    pub(super) events: mpsc::Receiver<Event>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<ExecutorJoinHandle<MetricsSnapshot>>,
}

impl Server {
    /// Starts node `config.node` on `addr` (port 0 for any).
    pub(super) fn start(
        config: LinkConfig,
        addr: SocketAddr,
        owner: Owner,
        rpc: Handler,
    ) -> Server {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (events_tx, events) = mpsc::channel();
        let (stop, stop_rx) = oneshot::channel::<()>();
        let thread = executor("peer-server", move || async move {
            let link = Link::new(config).unwrap();
            let listener = match PeerListener::bind(link.clone(), addr) {
                Ok(listener) => listener,
                Err(e) => {
                    ready_tx.send(Err(e.to_string())).unwrap();
                    return link.metrics();
                }
            };
            ready_tx.send(Ok(listener.local_addr().unwrap())).unwrap();
            // Closed at stop: every connection's task ends and drops its socket.
            let stopping = Rc::new(Semaphore::new(0));
            let accepting = async {
                loop {
                    let Ok(incoming) = listener.accept().await else {
                        continue;
                    };
                    let work = serve(incoming, owner, rpc.clone(), events_tx.clone());
                    let stopping = stopping.clone();
                    glommio::spawn_local(async move {
                        future::or(work, async move {
                            let _ = stopping.acquire(1).await;
                        })
                        .await
                    })
                    .detach();
                }
            };
            future::or(accepting, async {
                let _ = stop_rx.await;
            })
            .await;
            drop(listener);
            stopping.close();
            glommio::timer::sleep(Duration::from_millis(20)).await;
            link.metrics()
        });
        let addr = match ready_rx.recv_timeout(WAIT).expect("the server starts") {
            Ok(addr) => addr,
            Err(e) => panic!("cannot listen on {addr}: {e}"),
        };
        Server {
            addr,
            events,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The next event, waiting at most [`WAIT`].
    pub(super) fn event(&self) -> Event {
        self.events.recv_timeout(WAIT).expect("the server reports")
    }

    /// Stops the node: its listener and every connection close. Returns its counters.
    pub(super) fn stop(mut self) -> MetricsSnapshot {
        self.halt().expect("the server stops")
    }

    fn halt(&mut self) -> Option<MetricsSnapshot> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.thread.take().and_then(|t| t.join().ok())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.halt();
    }
}

/// An echo handler: status = kind, payload returned as is.
pub(super) fn echo_handler() -> Handler {
    Arc::new(|request: Request| {
        Box::pin(async move {
            Response {
                status: request.kind,
                payload: request.payload,
            }
        })
    })
}

async fn serve(incoming: crate::Incoming, owner: Owner, rpc: Handler, events: mpsc::Sender<Event>) {
    match incoming.handshake().await {
        Err(e) => {
            let _ = events.send(Event::Refused(e));
        }
        Ok(Accepted::Rpc(server)) => {
            let _ = events.send(Event::Rpc {
                peer: server.peer().to_owned(),
            });
            let ended = server.serve(move |request| rpc(request)).await;
            let _ = events.send(Event::RpcEnded(ended.map_err(|e| e.to_string())));
        }
        Ok(Accepted::Session(session)) => {
            let _ = events.send(Event::Session {
                peer: session.peer.clone(),
                header: session.header.clone(),
            });
            let read = own(session, owner).await;
            let _ = events.send(Event::SessionEnded { read });
        }
    }
}

/// The owner's side of a proxied session in the tests.
async fn own(session: IncomingSession, owner: Owner) -> Vec<u8> {
    let IncomingSession {
        header, mut stream, ..
    } = session;
    let mut read = Vec::new();
    match owner {
        Owner::Echo => {
            let _ = stream.write_all(&header.pipelined).await;
            let mut buf = vec![0u8; 4096];
            while let Ok(n @ 1..) = stream.read(&mut buf).await {
                read.extend_from_slice(&buf[..n]);
                if stream.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            let _ = stream.close().await;
        }
        Owner::ByeFirst => {
            let _ = stream.write_all(b"* BYE shutting down\r\n").await;
            let _ = stream.close().await;
            let _ = stream.read_to_end(&mut read).await;
        }
        Owner::Hold => {
            let _ = stream.read_to_end(&mut read).await;
        }
        Owner::Stream(len) => {
            let (mut reader, mut writer) = Half::pair(stream);
            let (sent, checked) = future::zip(
                async {
                    let sent = send_pattern(&mut writer, 2, len).await;
                    let _ = writer.close().await;
                    sent
                },
                check_pattern(&mut reader, 1, len),
            )
            .await;
            assert!(sent.is_ok(), "the owner could not send: {sent:?}");
            read = checked.to_le_bytes().to_vec();
        }
    }
    read
}

/// A stream's content in the bulk tests: a pseudo-random block repeated. Its period (prime)
/// does not line up with any buffer size, so a lost, repeated or reordered chunk shows.
pub(super) fn pattern(seed: u64) -> Vec<u8> {
    const PERIOD: usize = 1_048_573;
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..PERIOD)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Writes `len` bytes of `pattern(seed)`.
pub(super) async fn send_pattern<W: futures_lite::AsyncWrite + Unpin>(
    writer: &mut W,
    seed: u64,
    len: usize,
) -> std::io::Result<()> {
    let block = pattern(seed);
    let mut sent = 0;
    while sent < len {
        let at = sent % block.len();
        let n = (block.len() - at).min(len - sent).min(256 * 1024);
        writer.write_all(&block[at..at + n]).await?;
        sent += n;
    }
    writer.flush().await
}

/// Reads until the end of the stream, checking the bytes against `pattern(seed)`; returns how
/// many matched, and panics at the first that does not or when more than `len` arrive.
pub(super) async fn check_pattern<R: futures_lite::AsyncRead + Unpin>(
    reader: &mut R,
    seed: u64,
    len: usize,
) -> u64 {
    let block = pattern(seed);
    let mut buf = vec![0u8; 128 * 1024];
    let mut got = 0usize;
    loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) => return got as u64,
            Ok(n) => n,
            Err(e) => panic!("reading the pattern after {got} bytes: {e}"),
        };
        assert!(got + n <= len, "more than {len} bytes arrived");
        let mut done = 0;
        while done < n {
            let at = (got + done) % block.len();
            let k = (block.len() - at).min(n - done);
            assert!(
                buf[done..done + k] == block[at..at + k],
                "the stream differs from what was sent near byte {}",
                got + done
            );
            done += k;
        }
        got += n;
    }
}
