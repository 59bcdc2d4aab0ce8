//! A stream shared by a reader task and writers on one executor.
//!
//! glommio's `TcpStream` keeps separate readiness sources for reading and writing, so a read
//! and a write may be pending at the same time; it only needs `&mut` for each poll. The
//! halves borrow the stream for the duration of one poll, never across an await, so the
//! `RefCell` can never be found borrowed (one thread, and polls do not nest).

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use futures_lite::{AsyncRead, AsyncWrite};

/// One handle on a shared stream; clone it for the other half.
pub(crate) struct Half<S> {
    stream: Rc<RefCell<S>>,
}

impl<S> Half<S> {
    /// Two handles on `stream`.
    pub(crate) fn pair(stream: S) -> (Half<S>, Half<S>) {
        let stream = Rc::new(RefCell::new(stream));
        (
            Half {
                stream: stream.clone(),
            },
            Half { stream },
        )
    }
}

impl<S> Clone for Half<S> {
    fn clone(&self) -> Self {
        Half {
            stream: self.stream.clone(),
        }
    }
}

impl<S: AsRawFd> AsRawFd for Half<S> {
    fn as_raw_fd(&self) -> RawFd {
        self.stream.borrow().as_raw_fd()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Half<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.stream.borrow_mut()).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Half<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.stream.borrow_mut()).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.stream.borrow_mut()).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.stream.borrow_mut()).poll_close(cx)
    }
}
