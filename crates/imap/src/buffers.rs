//! Response and read buffers reused by the sessions of one executor.
//!
//! A session holds no buffer while it waits for its client, so that a hundred thousand idle
//! connections cost little. Without reuse, every command would then grow its response
//! buffer from empty (a FETCH of message bodies reallocates and copies it again and again)
//! and every read from the client would allocate and zero a fresh buffer. Instead a
//! session borrows a buffer from its executor's pool when it has something to do and
//! gives it back before waiting again. The pools are per thread, as everything on an
//! executor is, and bounded in count and in the bytes they keep.

use std::cell::RefCell;

/// Size of the buffer one read from the client fills.
pub const READ_SIZE: usize = 16 * 1024;
/// Buffers kept per pool and thread: about the number of sessions of one executor that are
/// in the middle of a command at the same time.
const KEEP: usize = 64;
/// Bytes of response buffers kept per thread. A FETCH of large messages grows its buffer to
/// about the flush size plus one message (see `commands::fetch`), so this keeps a few
/// dozen of those.
const KEEP_BYTES: usize = 32 << 20;

/// Response buffers ready for reuse and their total capacity.
#[derive(Default)]
struct Responses {
    /// In ascending order of capacity: the largest is handed out first, so a small
    /// buffer left by a LOGIN does not have to grow again for the FETCH of a large message.
    free: Vec<Vec<u8>>,
    bytes: usize,
}

thread_local! {
    static RESPONSES: RefCell<Responses> = RefCell::new(Responses::default());
    static READS: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// An empty response buffer, with the capacity an earlier command left it when there is one.
pub fn take_response() -> Vec<u8> {
    RESPONSES.with_borrow_mut(|pool| {
        let buf = pool.free.pop().unwrap_or_default();
        pool.bytes -= buf.capacity();
        buf
    })
}

/// Returns a response buffer to the pool (its contents are dropped); freed instead when the
/// pool is full.
pub fn give_back_response(mut buf: Vec<u8>) {
    if buf.capacity() == 0 {
        return;
    }
    buf.clear();
    RESPONSES.with_borrow_mut(|pool| {
        if pool.free.len() < KEEP && pool.bytes + buf.capacity() <= KEEP_BYTES {
            pool.bytes += buf.capacity();
            let at = pool
                .free
                .partition_point(|b| b.capacity() <= buf.capacity());
            pool.free.insert(at, buf);
        }
    });
}

/// A buffer of [`READ_SIZE`] bytes to read into; its contents are stale bytes of earlier
/// reads, never zeroed again.
pub fn take_read() -> Vec<u8> {
    READS
        .with_borrow_mut(Vec::pop)
        .unwrap_or_else(|| vec![0; READ_SIZE])
}

/// Returns a buffer from [`take_read`].
pub fn give_back_read(buf: Vec<u8>) {
    if buf.len() != READ_SIZE {
        return;
    }
    READS.with_borrow_mut(|pool| {
        if pool.len() < KEEP {
            pool.push(buf);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_buffers_come_back_empty_with_their_capacity() {
        let mut buf = take_response();
        buf.extend_from_slice(&[7; 5000]);
        let cap = buf.capacity();
        give_back_response(buf);
        let again = take_response();
        assert!(again.is_empty());
        assert_eq!(again.capacity(), cap);
        // What would take the pool past its byte bound is freed, not kept.
        give_back_response(Vec::with_capacity(KEEP_BYTES + 1));
        assert_eq!(take_response().capacity(), 0);
    }

    #[test]
    fn the_largest_response_buffer_is_handed_out_first() {
        for cap in [100, 70_000, 5_000] {
            give_back_response(Vec::with_capacity(cap));
        }
        let caps: Vec<usize> = (0..3).map(|_| take_response().capacity()).collect();
        assert!(
            caps[0] >= 70_000 && caps[1] >= 5_000 && caps[1] < 70_000,
            "{caps:?}"
        );
        assert!(caps[2] < 5_000, "{caps:?}");
    }

    #[test]
    fn read_buffers_always_have_the_read_size() {
        let buf = take_read();
        assert_eq!(buf.len(), READ_SIZE);
        give_back_read(buf);
        give_back_read(vec![0; 10]);
        assert_eq!(take_read().len(), READ_SIZE);
        assert_eq!(take_read().len(), READ_SIZE);
    }
}
