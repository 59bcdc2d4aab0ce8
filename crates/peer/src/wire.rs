//! Byte-level pieces shared by the handshake, the session header and the RPC frames: the
//! constants of the wire format, a bounds-checked decoder, and reading a body whose length
//! the peer claimed without trusting that claim with memory.
//!
//! All integers are big-endian.

use std::io;

use futures_lite::{AsyncRead, AsyncReadExt};

/// The first bytes of every connection, in both directions.
pub(crate) const MAGIC: [u8; 8] = *b"ringmail";
/// The protocol version both ends must speak.
pub(crate) const VERSION: u16 = 1;
/// Random bytes each side contributes to the handshake.
pub(crate) const NONCE_LEN: usize = 32;
/// An HMAC-SHA256 tag.
pub(crate) const PROOF_LEN: usize = 32;

/// What a connection is for, named by the dialer's first frame after its proof.
pub(crate) const USE_SESSION: u8 = 1;
pub(crate) const USE_RPC: u8 = 2;

/// An RPC frame's fixed part: length (u32), request id (u64), kind or status (u16).
pub(crate) const RPC_HEADER_LEN: usize = 4 + 8 + 2;
/// What the length of an RPC frame counts besides the payload: request id and kind/status.
pub(crate) const RPC_LEN_EXTRA: usize = 8 + 2;

/// A body is read in pieces that start at this size and double, so a peer that claims a
/// large length and then sends little holds only about twice what it really sent.
const FIRST_PIECE: usize = 64 * 1024;

/// Reads exactly `len` bytes. The caller has checked `len` against its limit; memory still
/// grows only as the bytes arrive (each byte zeroed and copied at most once more).
pub(crate) async fn read_body<R: AsyncRead + Unpin>(
    reader: &mut R,
    len: usize,
) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut filled = 0;
    while filled < len {
        if filled == body.len() {
            let grow = body.len().max(FIRST_PIECE).min(len - body.len());
            body.resize(body.len() + grow, 0);
        }
        let n = reader.read(&mut body[filled..]).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        filled += n;
    }
    Ok(body)
}

/// Reads a fixed-size piece; `Ok(None)` when the stream ends cleanly before its first byte
/// (the peer closed between frames), an error when it ends inside it.
pub(crate) async fn read_head<R: AsyncRead + Unpin, const N: usize>(
    reader: &mut R,
) -> io::Result<Option<[u8; N]>> {
    let mut head = [0u8; N];
    let mut filled = 0;
    while filled < N {
        let n = reader.read(&mut head[filled..]).await?;
        if n == 0 {
            if filled == 0 {
                return Ok(None);
            }
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        filled += n;
    }
    Ok(Some(head))
}

/// A decoder over a byte slice: every read checks the remaining length, so a truncated or
/// lying input gives `None`, never a panic.
pub(crate) struct Decoder<'a> {
    rest: &'a [u8],
}

impl<'a> Decoder<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Decoder { rest: bytes }
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.rest.len() < n {
            return None;
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Some(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.bytes(N)?.try_into().ok()
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        Some(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.array()?))
    }

    /// A byte string with a one-byte length.
    pub(crate) fn short(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.bytes(n as usize)
    }

    /// A byte string with a four-byte length.
    pub(crate) fn long(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()?;
        self.bytes(usize::try_from(n).ok()?)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }
}

/// Appends a byte string with a one-byte length; the caller guarantees it fits.
pub(crate) fn put_short(out: &mut Vec<u8>, bytes: &[u8]) {
    debug_assert!(bytes.len() <= 255);
    out.push(bytes.len() as u8);
    out.extend_from_slice(bytes);
}

/// Appends a byte string with a four-byte length; the caller guarantees it fits.
pub(crate) fn put_long(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoder_refuses_truncated_input() {
        let mut out = Vec::new();
        put_short(&mut out, b"abc");
        put_long(&mut out, b"defg");
        out.extend_from_slice(&7u64.to_be_bytes());
        for cut in 0..out.len() {
            let mut d = Decoder::new(&out[..cut]);
            let whole = d.short().is_some() && d.long().is_some() && d.u64().is_some();
            assert!(!whole, "a cut at {cut} decoded");
        }
        let mut d = Decoder::new(&out);
        assert_eq!(d.short(), Some(&b"abc"[..]));
        assert_eq!(d.long(), Some(&b"defg"[..]));
        assert_eq!(d.u64(), Some(7));
        assert!(d.is_empty());
    }

    #[test]
    fn a_long_length_beyond_the_input_is_refused() {
        let mut d = Decoder::new(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3]);
        assert_eq!(d.long(), None);
    }

    #[test]
    fn read_body_reads_exactly_and_fails_on_early_end() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        futures_lite::future::block_on(async {
            let mut reader = &data[..];
            let body = read_body(&mut reader, 200_000).await.unwrap();
            assert_eq!(body, data[..200_000]);
            assert_eq!(reader.len(), 100_000, "read past the body");
            let mut short = &data[..10];
            let err = read_body(&mut short, 11).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
            let mut empty: &[u8] = &[];
            assert!(read_head::<_, 4>(&mut empty).await.unwrap().is_none());
            let mut three: &[u8] = &[1, 2, 3];
            assert!(read_head::<_, 4>(&mut three).await.is_err());
        });
    }
}
