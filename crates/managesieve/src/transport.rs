//! The connection a session talks over. The runtime's connection type implements
//! [`Transport`] directly; anything with `futures_io` `AsyncRead + AsyncWrite` (a test
//! socket, an async-io stream) fits through [`FuturesIo`].

use std::io;

use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// A byte stream to the client. The futures need not be `Send`: a session runs on one
/// executor thread.
#[allow(async_fn_in_trait)]
pub trait Transport {
    /// Reads some bytes into `buf`; 0 means the client closed the connection.
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// Writes all of `data` and sends it on (flushed): the client waits for it.
    async fn write_all(&mut self, data: &[u8]) -> io::Result<()>;
    /// A command named `name` was read and starts running (for metrics; nothing by
    /// default).
    fn command_started(&mut self, _name: &'static str) {}
    /// The running command's final response went out with `status` (`OK`, `NO`, `BYE`).
    fn command_ended(&mut self, _status: &'static str) {}
}

/// Adapts a `futures_io` stream.
#[derive(Debug)]
pub struct FuturesIo<S>(pub S);

impl<S: AsyncRead + AsyncWrite + Unpin> Transport for FuturesIo<S> {
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        AsyncReadExt::read(&mut self.0, buf).await
    }

    async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        AsyncWriteExt::write_all(&mut self.0, data).await?;
        self.0.flush().await
    }
}
