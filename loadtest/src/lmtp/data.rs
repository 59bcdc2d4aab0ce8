//! The DATA the lmtp profile sends: the generator's messages, dot-stuffed once at start.
//!
//! RFC 5321 4.5.2: every line that starts with `.` gets one more `.`, and the message ends
//! with `CRLF.CRLF`. Line ends are made CRLF on the way (a bare LF or CR inside a message is
//! not allowed on the wire), and a message whose last line lacks its line end gets one, so
//! the terminator is always a line of its own.

use std::sync::Arc;

use rand::Rng;

use crate::message::MessagePool;

/// A message ready to write after the server's 354.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stuffed {
    /// Dot-stuffed bytes, terminator included.
    pub wire: Vec<u8>,
    /// Size of the message the server decodes from `wire` (for `MAIL FROM ... SIZE=`):
    /// the message with its line ends made CRLF.
    pub size: usize,
}

/// The message pool, stuffed once so sessions only write.
#[derive(Debug, Clone)]
pub struct DataPool {
    messages: Arc<Vec<Stuffed>>,
}

impl DataPool {
    /// Stuffs every message of `pool`.
    pub fn new(pool: &MessagePool) -> DataPool {
        DataPool {
            messages: Arc::new(pool.iter().map(dot_stuff).collect()),
        }
    }

    /// A message chosen with `rng`, or `None` when the pool is empty (it never is).
    pub fn pick(&self, rng: &mut impl Rng) -> Option<&Stuffed> {
        let i = rng.gen_range(0..self.messages.len().max(1));
        self.messages.get(i)
    }
}

/// `message` as DATA on the wire: line ends CRLF, leading dots doubled, `.CRLF` at the end.
pub fn dot_stuff(message: &[u8]) -> Stuffed {
    let mut wire = Vec::with_capacity(message.len() + message.len() / 64 + 8);
    let mut line_start = true;
    let mut added_dots = 0;
    let mut bytes = message.iter().copied().peekable();
    while let Some(b) = bytes.next() {
        match b {
            b'\r' => {
                // CR LF, or a lone CR made into a line end.
                if bytes.peek() == Some(&b'\n') {
                    bytes.next();
                }
                wire.extend_from_slice(b"\r\n");
                line_start = true;
            }
            b'\n' => {
                wire.extend_from_slice(b"\r\n");
                line_start = true;
            }
            _ => {
                if line_start && b == b'.' {
                    wire.push(b'.');
                    added_dots += 1;
                }
                wire.push(b);
                line_start = false;
            }
        }
    }
    if !line_start || wire.is_empty() {
        wire.extend_from_slice(b"\r\n");
    }
    let size = wire.len() - added_dots;
    wire.extend_from_slice(b".\r\n");
    Stuffed { wire, size }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(m: &[u8]) -> Vec<u8> {
        dot_stuff(m).wire
    }

    #[test]
    fn leading_dots_are_doubled_and_the_terminator_added() {
        assert_eq!(
            wire(b".first\r\nmid.dle\r\n.\r\n..two\r\n"),
            b"..first\r\nmid.dle\r\n..\r\n...two\r\n.\r\n"
        );
    }

    #[test]
    fn missing_or_bare_line_ends_are_made_crlf() {
        assert_eq!(wire(b"a\nb"), b"a\r\nb\r\n.\r\n");
        assert_eq!(wire(b"a\rb\r"), b"a\r\nb\r\n.\r\n");
        assert_eq!(wire(b"no end"), b"no end\r\n.\r\n");
        // An empty message is one empty line, so the terminator is still CRLF.CRLF.
        assert_eq!(wire(b""), b"\r\n.\r\n");
    }

    #[test]
    fn decoding_the_wire_gives_the_message_back() {
        // What a server does with DATA: strip the terminator, undouble leading dots.
        let message = b"Subject: x\r\n\r\n.\r\n.. two\r\nplain\r\n";
        let w = wire(message);
        let body = w.strip_suffix(b".\r\n").unwrap();
        let decoded: Vec<u8> = body
            .split_inclusive(|&b| b == b'\n')
            .flat_map(|l| l.strip_prefix(b".").unwrap_or(l).to_vec())
            .collect();
        assert_eq!(decoded, message);
        assert_eq!(dot_stuff(message).size, message.len());
        // A missing final line end is added, and counted in the size.
        assert_eq!(dot_stuff(b".a").size, 4);
    }

    #[test]
    fn generated_pool_is_stuffed_whole() {
        let pool = MessagePool::generate(3, 50_000);
        let data = DataPool::new(&pool);
        assert_eq!(data.messages.len(), pool.len());
        for s in data.messages.iter() {
            assert!(s.wire.ends_with(b"\r\n.\r\n"));
            // No line of the body is a lone dot before the terminator.
            let body = &s.wire[..s.wire.len() - 3];
            assert!(memchr::memmem::find(body, b"\r\n.\r\n").is_none());
        }
    }
}
