//! One LMTP client connection: greeting, commands and their replies, DATA.
//!
//! Plain TCP only: LMTP runs between an MTA and the mail store on a trusted network, and
//! neither ringmail nor Dovecot offer TLS on it by default. Every wait is bounded by the
//! per-command timeout.

use std::net::IpAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

use super::reply::{frame_reply, Reply};
use crate::client::{connect_tcp, Endpoint, SessionError};

/// Read buffer growth step.
const READ_CHUNK: usize = 8 * 1024;

/// An LMTP connection after the server's 220 greeting.
pub struct LmtpConnection {
    stream: TcpStream,
    /// Bytes read and not yet consumed.
    buf: Vec<u8>,
    timeout: std::time::Duration,
    deadline: Instant,
}

impl LmtpConnection {
    /// Connects (from `source` when given) and reads the greeting, which must be 220.
    pub async fn connect(
        endpoint: &Endpoint,
        source: Option<IpAddr>,
    ) -> Result<LmtpConnection, SessionError> {
        let deadline = Instant::now() + endpoint.timeout;
        let stream = connect_tcp(endpoint, source, deadline).await?;
        let mut conn = LmtpConnection {
            stream,
            buf: Vec::with_capacity(READ_CHUNK),
            timeout: endpoint.timeout,
            deadline,
        };
        let greeting = conn.read_reply().await?;
        if greeting.code != 220 {
            return Err(SessionError::Refused(format!(
                "greeting: {}",
                greeting.summary()
            )));
        }
        Ok(conn)
    }

    /// Writes `bytes` (commands or DATA), bounded by a fresh command timeout.
    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), SessionError> {
        self.deadline = Instant::now() + self.timeout;
        timeout_at(self.deadline, self.stream.write_all(bytes))
            .await
            .map_err(|_| SessionError::Timeout("writing to the server".into()))?
            .map_err(|e| SessionError::Io(e.to_string()))
    }

    /// The next reply, within the deadline set by the last [`LmtpConnection::send`].
    pub async fn read_reply(&mut self) -> Result<Reply, SessionError> {
        // Each turn reads at least one byte or fails, and the deadline bounds the turns.
        loop {
            match frame_reply(&self.buf) {
                Ok(Some((reply, used))) => {
                    self.buf.drain(..used);
                    return Ok(reply);
                }
                Ok(None) => {}
                Err(e) => return Err(SessionError::Protocol(e.to_string())),
            }
            self.buf.reserve(READ_CHUNK);
            let read = timeout_at(self.deadline, self.stream.read_buf(&mut self.buf))
                .await
                .map_err(|_| SessionError::Timeout("waiting for a reply".into()))?
                .map_err(|e| SessionError::Io(e.to_string()))?;
            if read == 0 {
                return Err(SessionError::Io("server closed the connection".into()));
            }
        }
    }

    /// Sends one command line (CRLF added) and reads its reply.
    pub async fn command(&mut self, line: &str) -> Result<Reply, SessionError> {
        let mut out = Vec::with_capacity(line.len() + 2);
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
        self.send(&out).await?;
        self.read_reply().await
    }

    /// Whether the server sent bytes nobody asked for yet (a reply to a command not sent).
    pub fn has_unread(&self) -> bool {
        !self.buf.is_empty()
    }

    /// QUIT, best effort: the reply is read but not required.
    pub async fn quit(&mut self) {
        let _ = self.command("QUIT").await;
    }
}
