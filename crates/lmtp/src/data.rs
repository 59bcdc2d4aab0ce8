//! The DATA phase: a streaming decoder for the dot-terminated, dot-stuffed message text
//! (RFC 5321 4.5.2) with a size limit.
//!
//! It takes the bytes as they arrive, in chunks of any size, so a line need never be
//! complete in memory; past the limit it keeps scanning for the terminating dot but stores
//! nothing, so a client that sends far too much costs bandwidth, not memory, and the session
//! stays in step for its next command. Line ends are stored as CRLF whatever the client sent,
//! because IMAP clients expect CRLF.

/// Where the decoder is within the current line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a line.
    LineStart,
    /// A `.` at the start of a line was seen (dropped: stuffing or the terminator).
    Dot,
    /// `.` then CR at the start of a line.
    DotCr,
    /// Inside a line; `cr` when the last byte was CR.
    Mid { cr: bool },
    /// The terminating `.` line was seen.
    Done,
}

/// Decodes one message's DATA.
#[derive(Debug)]
pub struct DotDecoder {
    state: State,
    message: Vec<u8>,
    max: usize,
    /// Decoded bytes, stored or not.
    total: u64,
}

impl DotDecoder {
    /// A decoder that stores at most `max` bytes of message.
    pub fn new(max: usize) -> DotDecoder {
        DotDecoder {
            state: State::LineStart,
            message: Vec::new(),
            max,
            total: 0,
        }
    }

    /// Consumes bytes from `input`; returns how many it used. It uses all of them unless
    /// the terminator is among them: then the rest belongs to the next command.
    pub fn feed(&mut self, input: &[u8]) -> usize {
        let mut i = 0;
        while i < input.len() && self.state != State::Done {
            let b = input[i];
            match self.state {
                State::LineStart if b == b'.' => {
                    self.state = State::Dot;
                    i += 1;
                }
                State::LineStart => self.state = State::Mid { cr: false },
                State::Dot => match b {
                    b'\r' => {
                        self.state = State::DotCr;
                        i += 1;
                    }
                    b'\n' => {
                        self.state = State::Done;
                        i += 1;
                    }
                    // A stuffed dot: the line goes on without it.
                    _ => self.state = State::Mid { cr: false },
                },
                State::DotCr if b == b'\n' => {
                    self.state = State::Done;
                    i += 1;
                }
                State::DotCr => {
                    // ".\r" not followed by LF: a line that starts with CR after unstuffing.
                    self.push(b"\r");
                    self.state = State::Mid { cr: true };
                }
                State::Mid { cr } => {
                    // Copy up to the next LF in one go.
                    let rest = &input[i..];
                    match memchr::memchr(b'\n', rest) {
                        Some(n) => {
                            let line = &rest[..n];
                            let had_cr = line.last().map_or(cr, |&c| c == b'\r');
                            self.push(line);
                            self.push(if had_cr { b"\n" } else { b"\r\n" });
                            self.state = State::LineStart;
                            i += n + 1;
                        }
                        None => {
                            self.push(rest);
                            let cr = rest.last().map_or(cr, |&c| c == b'\r');
                            self.state = State::Mid { cr };
                            i = input.len();
                        }
                    }
                }
                State::Done => break,
            }
        }
        i
    }

    fn push(&mut self, bytes: &[u8]) {
        self.total += bytes.len() as u64;
        if self.total <= self.max as u64 {
            self.message.extend_from_slice(bytes);
        } else if !self.message.is_empty() {
            self.message = Vec::new();
        }
    }

    /// Whether the terminating dot has been seen.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Whether the message went past the limit (it is then not kept).
    pub fn is_too_large(&self) -> bool {
        self.total > self.max as u64
    }

    /// Bytes decoded so far, kept or not.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The decoded message (empty when it was too large).
    pub fn into_message(self) -> Vec<u8> {
        self.message
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_chunks(input: &[u8], chunk: usize, max: usize) -> (Vec<u8>, usize, bool) {
        let mut d = DotDecoder::new(max);
        let mut used = 0;
        for piece in input.chunks(chunk) {
            let n = d.feed(piece);
            used += n;
            if n < piece.len() {
                break;
            }
        }
        let too_large = d.is_too_large();
        assert!(d.is_done(), "terminator not found");
        (d.into_message(), used, too_large)
    }

    #[test]
    fn unstuffs_and_stops_at_the_terminator() {
        let input = b"Subject: x\r\n\r\n..leading dot\r\n.\r\nQUIT\r\n";
        for chunk in 1..input.len() {
            let (msg, used, big) = decode_in_chunks(input, chunk, 1000);
            assert_eq!(msg, b"Subject: x\r\n\r\n.leading dot\r\n");
            assert_eq!(&input[used..], b"QUIT\r\n");
            assert!(!big);
        }
    }

    #[test]
    fn bare_lf_becomes_crlf() {
        let (msg, _, _) = decode_in_chunks(b"a\nb\r\n.\n", 3, 100);
        assert_eq!(msg, b"a\r\nb\r\n");
    }

    #[test]
    fn dot_lines_inside_are_kept() {
        let (msg, _, _) = decode_in_chunks(b"a\r\n..\r\n.x\r\n.\r\n", 2, 100);
        assert_eq!(msg, b"a\r\n.\r\nx\r\n");
    }

    #[test]
    fn empty_message() {
        let (msg, used, _) = decode_in_chunks(b".\r\n", 1, 100);
        assert!(msg.is_empty());
        assert_eq!(used, 3);
    }

    #[test]
    fn too_large_is_scanned_but_not_kept() {
        let mut input = b"x".repeat(10_000);
        input.extend_from_slice(b"\r\n.\r\nNOOP\r\n");
        let (msg, used, big) = decode_in_chunks(&input, 4096, 100);
        assert!(big);
        assert!(msg.is_empty());
        assert_eq!(&input[used..], b"NOOP\r\n");
    }

    #[test]
    fn unterminated_is_not_done() {
        let mut d = DotDecoder::new(100);
        assert_eq!(d.feed(b"abc\r\n.x"), 7);
        assert!(!d.is_done());
    }
}
