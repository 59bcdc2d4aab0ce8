//! Socket options and checks glommio's `TcpStream` does not offer, through socket2 on the
//! stream's descriptor.

use std::mem::MaybeUninit;
use std::net::Shutdown;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};

/// Keep-alive probes find a peer that vanished without a FIN or RST (power loss, a cable,
/// a partition): an idle pooled connection, or a proxied session waiting in IDLE, is then
/// closed after about KEEPALIVE_IDLE + KEEPALIVE_COUNT × KEEPALIVE_INTERVAL (19 s), long
/// before the client's own timeouts.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(3);
const KEEPALIVE_COUNT: u32 = 3;

fn with_socket<T>(stream: &impl AsRawFd, f: impl FnOnce(SockRef<'_>) -> T) -> T {
    // SAFETY: the descriptor belongs to `stream`, which the caller borrows for the whole
    // call, so it stays open while the borrowed fd (and the SockRef made from it) lives.
    let fd = unsafe { BorrowedFd::borrow_raw(stream.as_raw_fd()) };
    f(SockRef::from(&fd))
}

/// Node-to-node sockets: no Nagle delay (small RPC frames and IMAP lines), keep-alive.
pub(crate) fn tune(stream: &impl AsRawFd) {
    with_socket(stream, |s| {
        let keepalive = TcpKeepalive::new()
            .with_time(KEEPALIVE_IDLE)
            .with_interval(KEEPALIVE_INTERVAL)
            .with_retries(KEEPALIVE_COUNT);
        if let Err(e) = s
            .set_nodelay(true)
            .and_then(|()| s.set_tcp_keepalive(&keepalive))
        {
            tracing::debug!("node link socket options: {e}");
        }
    });
}

/// Whether the peer has closed (or reset) the connection: a non-blocking peek. Used before
/// reusing an idle pooled connection, whose reader task may not have run since the FIN came.
pub(crate) fn peer_closed(stream: &impl AsRawFd) -> bool {
    with_socket(stream, |s| {
        let mut byte = [MaybeUninit::<u8>::uninit()];
        match s.recv_with_flags(&mut byte, libc::MSG_PEEK | libc::MSG_DONTWAIT) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
        }
    })
}

/// Shuts both directions down at once, so a task blocked reading the socket wakes with end
/// of stream (dropping our handle would not: another task still holds the socket).
pub(crate) fn shutdown(stream: &impl AsRawFd) {
    with_socket(stream, |s| {
        let _ = s.shutdown(Shutdown::Both);
    });
}
