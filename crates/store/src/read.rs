//! Positioned reads of stored bytes straight into a caller's buffer.
//!
//! FETCH sends message bytes and metadata blobs that are almost always in the page cache
//! (they were written or read moments ago). For those, one `preadv2(RWF_NOWAIT)` copies the
//! bytes from the page cache into the response buffer itself: no buffer allocated per read,
//! no second copy into the response, no trip through the ring and the scheduler. The flag
//! makes the kernel return what it has cached instead of waiting for the disk, so the
//! executor never blocks; whatever was not cached is then read through glommio's io_uring
//! path, as every read was before.

use std::io;
use std::os::fd::AsRawFd;

use glommio::io::BufferedFile;

use super::StoreError;

/// Appends the `len` bytes at `pos` of `file` to `out`. Returns an error (with `out` as it
/// was) when the file ends before `len` bytes.
pub(crate) async fn read_into(
    file: &BufferedFile,
    pos: u64,
    len: usize,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    if len == 0 {
        return Ok(());
    }
    let start = out.len();
    let cached = cached_read(file, pos, len, out);
    if cached == len {
        return Ok(());
    }
    let rest = len - cached;
    let more = file.read_at(pos + cached as u64, rest).await;
    match more {
        Ok(more) if more.len() == rest => {
            out.extend_from_slice(&more);
            Ok(())
        }
        Ok(_) => {
            out.truncate(start);
            Err(io::Error::new(io::ErrorKind::UnexpectedEof, "short read"))
        }
        Err(e) => {
            out.truncate(start);
            Err(e.into())
        }
    }
}

/// The store's error for a failed [`read_into`] of `segment`: a segment shorter than the
/// index says is damage, anything else an I/O error.
pub(crate) fn store_error(err: io::Error, segment: u32) -> StoreError {
    if err.kind() == io::ErrorKind::UnexpectedEof {
        StoreError::Corrupt(format!("short read in segment {segment}"))
    } else {
        StoreError::from(err)
    }
}

/// Appends to `out` as much of `pos..pos + len` as the page cache holds right now, without
/// waiting for the disk; returns how many bytes that was (0 on any error: the caller falls
/// back to a read that waits).
fn cached_read(file: &BufferedFile, pos: u64, len: usize, out: &mut Vec<u8>) -> usize {
    let Ok(offset) = libc::off_t::try_from(pos) else {
        return 0;
    };
    out.reserve(len);
    let spare = &mut out.spare_capacity_mut()[..len];
    let iov = libc::iovec {
        iov_base: spare.as_mut_ptr().cast(),
        iov_len: spare.len(),
    };
    let n = loop {
        // SAFETY: `iov` describes `len` bytes of `out`'s spare capacity, which `out` owns and
        // which nothing else references during the call; the descriptor belongs to `file`,
        // which outlives the call. RWF_NOWAIT only changes whether the kernel may wait.
        let n = unsafe { libc::preadv2(file.as_raw_fd(), &iov, 1, offset, libc::RWF_NOWAIT) };
        if n >= 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            break n;
        }
    };
    let Ok(n) = usize::try_from(n) else {
        return 0; // EAGAIN (not cached), EOPNOTSUPP (no RWF_NOWAIT here), ...
    };
    let n = n.min(len);
    // SAFETY: the kernel wrote the first `n` bytes of the spare capacity (`n` is what
    // preadv2 returned, at most `len`), so they are initialized.
    unsafe { out.set_len(out.len() + n) };
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_exact_ranges_and_refuses_reads_past_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        glommio::LocalExecutorBuilder::default()
            .spawn(move || async move {
                let file = BufferedFile::open(&path).await.unwrap();
                let mut out = b"head".to_vec();
                read_into(&file, 5, 10_000, &mut out).await.unwrap();
                assert_eq!(&out[..4], b"head");
                assert_eq!(&out[4..], &data[5..10_005]);
                read_into(&file, 19_990, 0, &mut out).await.unwrap();
                assert_eq!(out.len(), 10_004);
                // Past the end of the file: an error, and the buffer is as it was.
                let err = read_into(&file, 19_990, 100, &mut out).await.unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
                assert_eq!(out.len(), 10_004);
                file.close().await.unwrap();
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
