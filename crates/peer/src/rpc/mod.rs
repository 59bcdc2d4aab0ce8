//! Request/response frames on an authenticated connection, for jobs that run on the owner node
//! (LMTP deliveries first). Several requests are in flight on one connection and answered in
//! any order; the payloads' encoding is the caller's.
//!
//! ```text
//! request: len u32 | request id u64 | kind u16   | payload (len - 10 bytes)
//! answer:  len u32 | request id u64 | status u16 | payload (len - 10 bytes)
//! ```

mod client;
mod server;

use std::io;

use futures_lite::{AsyncRead, AsyncWrite, AsyncWriteExt};

pub use client::RpcPool;
pub use server::RpcServer;

use crate::wire::{read_body, read_head, Decoder, RPC_HEADER_LEN, RPC_LEN_EXTRA};

/// A request as the owner's handler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// What to do, in the caller's numbering.
    pub kind: u16,
    /// The caller's encoding.
    pub payload: Vec<u8>,
}

/// The owner's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The caller's numbering, except the values from [`STATUS_RESERVED`] up, which the link
    /// itself uses.
    pub status: u16,
    /// The caller's encoding.
    pub payload: Vec<u8>,
}

/// Statuses from here up are the link's own; handlers must not use them.
pub const STATUS_RESERVED: u16 = 0xff00;
/// The handler panicked; nothing is known about what it did.
pub const STATUS_HANDLER_PANICKED: u16 = 0xfffe;
/// The handler's answer was larger than the listener's `max_frame`, so it was not sent.
pub const STATUS_ANSWER_TOO_LARGE: u16 = 0xffff;

/// Payloads up to this size go out in one write together with their header.
const COALESCE: usize = 16 * 1024;

/// Why a frame could not be read.
#[derive(Debug)]
pub(crate) enum FrameError {
    Io(io::Error),
    /// The frame claims more than the limit: refused before anything was allocated for it.
    TooLarge(u64),
    /// A length too short to hold the id and kind.
    Malformed,
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Io(e) => write!(f, "{e}"),
            FrameError::TooLarge(claimed) => {
                write!(f, "a frame claims {claimed} bytes, over max_frame")
            }
            FrameError::Malformed => write!(f, "a frame too short for its header"),
        }
    }
}

/// Writes one frame: `code` is the kind of a request or the status of an answer.
pub(crate) async fn write_frame<W: AsyncWrite + Unpin>(
    writer: &mut W,
    id: u64,
    code: u16,
    payload: &[u8],
) -> io::Result<()> {
    let len = u32::try_from(RPC_LEN_EXTRA + payload.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "payload over 4 GiB"))?;
    let mut head = [0u8; RPC_HEADER_LEN];
    head[..4].copy_from_slice(&len.to_be_bytes());
    head[4..12].copy_from_slice(&id.to_be_bytes());
    head[12..].copy_from_slice(&code.to_be_bytes());
    if payload.len() <= COALESCE {
        let mut frame = Vec::with_capacity(RPC_HEADER_LEN + payload.len());
        frame.extend_from_slice(&head);
        frame.extend_from_slice(payload);
        writer.write_all(&frame).await?;
    } else {
        writer.write_all(&head).await?;
        writer.write_all(payload).await?;
    }
    writer.flush().await
}

/// Reads one frame: `Ok(None)` when the peer closed cleanly between frames. A claimed length
/// over `limit` is refused from the header alone.
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    limit: usize,
) -> Result<Option<(u64, u16, Vec<u8>)>, FrameError> {
    let Some(head) = read_head::<_, RPC_HEADER_LEN>(reader)
        .await
        .map_err(FrameError::Io)?
    else {
        return Ok(None);
    };
    let mut d = Decoder::new(&head);
    let (Some(len), Some(id), Some(code)) = (d.u32(), d.u64(), d.u16()) else {
        return Err(FrameError::Malformed);
    };
    let Some(payload_len) = (len as usize).checked_sub(RPC_LEN_EXTRA) else {
        return Err(FrameError::Malformed);
    };
    if payload_len > limit {
        return Err(FrameError::TooLarge(payload_len as u64));
    }
    let payload = read_body(reader, payload_len)
        .await
        .map_err(FrameError::Io)?;
    Ok(Some((id, code, payload)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_lengths_are_checked_first() {
        futures_lite::future::block_on(async {
            let mut wire = Vec::new();
            write_frame(&mut wire, 7, 3, b"small").await.unwrap();
            let big = vec![9u8; COALESCE + 1];
            write_frame(&mut wire, u64::MAX, 0xfffe, &big)
                .await
                .unwrap();
            let mut reader = &wire[..];
            assert_eq!(
                read_frame(&mut reader, 1 << 20).await.unwrap(),
                Some((7, 3, b"small".to_vec()))
            );
            assert_eq!(
                read_frame(&mut reader, 1 << 20).await.unwrap(),
                Some((u64::MAX, 0xfffe, big))
            );
            assert_eq!(read_frame(&mut reader, 1 << 20).await.unwrap(), None);

            // Over the limit: refused from the header, the payload is never read.
            let mut reader = &wire[..];
            match read_frame(&mut reader, 4).await {
                Err(FrameError::TooLarge(5)) => {}
                other => panic!("{other:?}"),
            }
            assert_eq!(reader.len(), wire.len() - RPC_HEADER_LEN);
            // A length that cannot even hold the id and kind.
            let mut short = &[0u8, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0][..];
            assert!(matches!(
                read_frame(&mut short, 100).await,
                Err(FrameError::Malformed)
            ));
        });
    }
}
