//! Framing: cutting the byte stream into commands, with literals and limits.
//!
//! The reader owns the connection's read buffer. A command is framed line by line: a line
//! that ends in a literal announcement (`{n}`, `{n+}`, `~{n}`) is followed by `n` bytes of
//! payload and then more command text. Every limit is checked from the announcement or the
//! line length alone, before any byte of the payload is stored, and a rejected command is
//! skipped exactly (non-synchronizing payloads are dropped as they arrive, never buffered)
//! so the next command is read from the right place. Only once a whole command is in the
//! buffer does the grammar (in `command`) run over it; it never sees a partial command.

use super::command::parse_command;
use super::cursor::is_tag_char;
use super::{Limit, Limits, Next, RejectKind, Rejection};
use crate::response::Code;

/// The largest non-synchronizing literal a LITERAL- server accepts (RFC 7888 §5).
const LITERAL_MINUS_MAX: u64 = 4096;

/// How many trailing bytes of a skipped line are kept to spot a literal announcement
/// (`~{` + 20 digits + `+}` + CR fits).
const TAIL: usize = 32;
/// Most of an announced literal the reader makes room for before its bytes arrive.
const PREALLOCATE_LITERAL: usize = 2 << 20;

/// A raw line was longer than the limit; the reader drops it up to the next CRLF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineTooLong;

/// The sans-io command reader: see the module documentation of `parser`.
#[derive(Debug)]
pub struct CommandReader {
    limits: Limits,
    /// LITERAL- rather than LITERAL+ semantics for non-synchronizing literals.
    literal_minus: bool,
    /// Received bytes; `buf[start..]` is not consumed yet.
    buf: Vec<u8>,
    start: usize,
    /// Bytes of the command last returned (borrowed by it), consumed on the next call.
    pending: usize,
    frame: Frame,
    skip: Skip,
}

/// How far the command at `buf[start..]` has been framed (offsets relative to `start`).
#[derive(Debug, Default, Clone, Copy)]
struct Frame {
    /// End of the complete lines and literal payloads seen so far.
    framed: usize,
    /// Where the search for the next LF resumes (no byte is scanned twice).
    search_from: usize,
    /// Command text so far, literal payloads excluded.
    text_len: usize,
    /// Literals announced so far.
    literals: usize,
    /// Their total size.
    literal_bytes: u64,
    /// Payload size still expected after `framed`.
    awaiting: Option<usize>,
}

/// What is being thrown away after a rejection.
#[derive(Debug, Clone, Copy)]
enum Skip {
    /// Nothing: reading commands.
    None,
    /// `n` more bytes of a refused non-synchronizing literal.
    Bytes(u64),
    /// The rest of a line; `literals` says whether a literal announced at its end is
    /// followed by payload that must also go (command lines, not raw lines).
    Line {
        literals: bool,
        tail: [u8; TAIL],
        tail_len: usize,
    },
}

/// A literal announced at the end of a line.
#[derive(Debug, Clone, Copy)]
struct Announce {
    len: u64,
    sync: bool,
    /// `~{n}`: a BINARY literal8.
    binary: bool,
}

impl CommandReader {
    /// A reader with the given limits and no buffered bytes.
    pub fn new(limits: Limits) -> Self {
        CommandReader {
            limits,
            literal_minus: false,
            buf: Vec::new(),
            start: 0,
            pending: 0,
            frame: Frame::default(),
            skip: Skip::None,
        }
    }

    /// Changes the limits (e.g. APPENDLIMIT after login); applies to commands not yet framed.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Whether the server advertises LITERAL- (RFC 7888) instead of LITERAL+: then a
    /// non-synchronizing literal over 4096 bytes is refused with `BAD [TOOBIG]` and its
    /// payload skipped. Default: LITERAL+ (any size up to `max_literal`).
    pub fn set_literal_minus(&mut self, literal_minus: bool) {
        self.literal_minus = literal_minus;
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Appends bytes read from the socket. Bytes that a rejected command's payload or line
    /// still owes are dropped here without being stored.
    pub fn feed(&mut self, mut data: &[u8]) {
        self.consume_pending();
        if !matches!(self.skip, Skip::None) {
            self.skip_buffered();
            if self.unread() == 0 {
                let used = self.skip_in(data);
                data = data.get(used..).unwrap_or(b"");
            }
        }
        if data.is_empty() {
            return;
        }
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.reserve(data.len());
        self.buf.extend_from_slice(data);
    }

    /// The next thing the session must do. After [`Next::Continue`] or [`Next::NeedMore`],
    /// read from the socket, [`feed`](Self::feed), and call again.
    // Not `Iterator::next`: each item borrows the reader's buffer (a lending iterator,
    // which `Iterator` cannot express).
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Next<'_> {
        self.consume_pending();
        self.skip_buffered();
        if !matches!(self.skip, Skip::None) {
            self.release_if_drained();
            return Next::NeedMore;
        }
        match self.frame_command() {
            Framed::NeedMore => {
                self.release_if_drained();
                Next::NeedMore
            }
            Framed::Continue => Next::Continue,
            Framed::Reject(r) => {
                self.release_if_drained();
                Next::Reject(r)
            }
            Framed::Complete(len) => {
                self.pending = len;
                self.frame = Frame::default();
                let cmd = self.buf.get(self.start..self.start + len).unwrap_or(b"");
                match parse_command(cmd, self.limits.max_depth) {
                    Ok(command) => Next::Command(command),
                    Err((tag, e)) => Next::Reject(Rejection {
                        tag: tag.map(str::to_owned),
                        kind: RejectKind::Bad,
                        code: if e.limit { Some(Code::Limit) } else { None },
                        text: e.reason.to_owned(),
                        limit: e.limit.then_some(Limit::Other),
                    }),
                }
            }
        }
    }

    /// A raw CRLF-terminated line without its CRLF (AUTHENTICATE responses, IDLE's `DONE`).
    /// `None`: need more bytes. `Err`: the line is longer than `max_line`; the reader drops
    /// it up to the next CRLF. Call only between commands.
    pub fn next_line(&mut self) -> Option<Result<&[u8], LineTooLong>> {
        self.consume_pending();
        self.skip_buffered();
        if !matches!(self.skip, Skip::None) {
            self.release_if_drained();
            return None;
        }
        self.frame = Frame::default();
        let avail_len = self.unread();
        let found = memchr::memchr(b'\n', self.buf.get(self.start..).unwrap_or(b""));
        match found {
            Some(lf) if lf < self.limits.max_line => {
                self.pending = lf + 1;
                let line = self.buf.get(self.start..self.start + lf).unwrap_or(b"");
                Some(Ok(line.strip_suffix(b"\r").unwrap_or(line)))
            }
            Some(lf) => {
                self.pending = lf + 1;
                Some(Err(LineTooLong))
            }
            None if avail_len >= self.limits.max_line => {
                self.start = self.buf.len();
                self.skip = Skip::Line {
                    literals: false,
                    tail: [0; TAIL],
                    tail_len: 0,
                };
                self.release_if_drained();
                Some(Err(LineTooLong))
            }
            None => None,
        }
    }

    /// Takes every received but unconsumed byte (for handing the connection to another
    /// core); the reader is left empty. A command half-way through a rejection skip is
    /// handed over as raw bytes.
    pub fn take_unread(&mut self) -> Vec<u8> {
        self.consume_pending();
        let rest = self.buf.get(self.start..).unwrap_or(b"").to_vec();
        self.discard_unread();
        rest
    }

    /// Drops every unconsumed byte and any skip in progress (after STARTTLS, plaintext
    /// pipelined behind it must not be executed).
    pub fn discard_unread(&mut self) {
        self.buf = Vec::new();
        self.start = 0;
        self.pending = 0;
        self.frame = Frame::default();
        self.skip = Skip::None;
    }

    /// True when no unconsumed byte is held.
    pub fn is_empty(&self) -> bool {
        self.buf.len() <= self.start + self.pending
    }

    /// Bytes of heap the reader holds (its buffer's capacity), for tests and metrics.
    pub fn buffered_capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Grows the buffer for `more` bytes: doubling (amortised copies for big literals) but
    /// never past what one command may need, so capacity tracks the limits, not the
    /// allocator's rounding.
    fn reserve(&mut self, more: usize) {
        let needed = self.buf.len().saturating_add(more);
        if needed <= self.buf.capacity() {
            return;
        }
        let bound = self
            .limits
            .max_line
            .saturating_add(usize::try_from(self.limits.max_literal).unwrap_or(usize::MAX));
        let target = needed.max(self.buf.capacity().saturating_mul(2).min(bound));
        self.buf.reserve_exact(target - self.buf.len());
    }

    /// Unconsumed bytes in the buffer.
    fn unread(&self) -> usize {
        self.buf.len().saturating_sub(self.start)
    }

    /// Consumes the bytes of the command returned last.
    fn consume_pending(&mut self) {
        self.start = (self.start + self.pending).min(self.buf.len());
        self.pending = 0;
        self.release_if_drained();
    }

    /// Frees the buffer when everything is consumed: idle connections keep no read buffer.
    fn release_if_drained(&mut self) {
        if self.start >= self.buf.len() && self.buf.capacity() > 0 {
            self.buf = Vec::new();
            self.start = 0;
        }
    }

    /// Runs the skip state over the buffered bytes.
    fn skip_buffered(&mut self) {
        if matches!(self.skip, Skip::None) {
            return;
        }
        let avail = self.buf.get(self.start..).unwrap_or(b"");
        // Work on a copy of the (small, Copy) state so the buffer can stay borrowed.
        let mut skip = self.skip;
        let used = skip_over(&mut skip, avail);
        self.skip = skip;
        self.start += used;
    }

    /// Runs the skip state over incoming bytes; returns how many it swallowed.
    fn skip_in(&mut self, data: &[u8]) -> usize {
        skip_over(&mut self.skip, data)
    }

    /// Frames the command at `buf[start..]` as far as the buffered bytes allow.
    fn frame_command(&mut self) -> Framed {
        let limits = self.limits;
        let avail = self.buf.get(self.start..).unwrap_or(b"");
        // A Copy of the progress, written back on every exit that keeps the command.
        let mut f = self.frame;
        loop {
            if let Some(n) = f.awaiting {
                let have = avail.len().saturating_sub(f.framed);
                if have < n {
                    self.frame = f;
                    // The literal's size is announced (and within the limits): room for it
                    // now saves growing and copying the buffer again and again as an APPEND
                    // arrives. Bounded, so an announcement alone cannot make the server
                    // allocate much. Through `reserve`, which doubles: an exact reservation
                    // here would reallocate on every read of a literal over the bound.
                    self.reserve((n - have).min(PREALLOCATE_LITERAL));
                    return Framed::NeedMore;
                }
                f.framed += n;
                f.search_from = f.framed;
                f.awaiting = None;
            }
            let from = f.search_from.min(avail.len());
            let Some(i) = memchr::memchr(b'\n', avail.get(from..).unwrap_or(b"")) else {
                let partial = avail.len().saturating_sub(f.framed);
                if f.text_len + partial > limits.max_line {
                    // Too long and no end in sight: drop what we have and the rest of the line.
                    let rejection = reject_limit(avail, "command line too long", Limit::LineLength);
                    let tail = avail.get(f.framed..).unwrap_or(b"");
                    self.skip = skip_line_with_tail(tail);
                    self.frame = Frame::default();
                    self.start = self.buf.len();
                    return Framed::Reject(rejection);
                }
                f.search_from = avail.len();
                self.frame = f;
                return Framed::NeedMore;
            };
            let lf = from + i;
            let line = avail.get(f.framed..lf).unwrap_or(b"");
            f.text_len += lf + 1 - f.framed;
            f.framed = lf + 1;
            f.search_from = f.framed;
            let announce = announcement(line);
            if f.text_len > limits.max_line {
                let rejection = reject_limit(avail, "command line too long", Limit::LineLength);
                return self.reject_at_line_end(f.framed, rejection, announce);
            }
            let Some(lit) = announce else {
                return Framed::Complete(f.framed);
            };
            f.literals += 1;
            f.literal_bytes = f.literal_bytes.saturating_add(lit.len);
            let refusal = if f.literals > limits.max_literals {
                Some(reject_limit(
                    avail,
                    "too many literals in one command",
                    Limit::LiteralCount,
                ))
            } else if f.literal_bytes > limits.max_literal {
                Some(reject_too_big(avail, "literal too large"))
            } else if lit.binary && !is_append(avail) {
                // literal8 is only message data (RFC 3516): refuse before taking the bytes.
                Some(Rejection {
                    tag: read_tag(avail),
                    kind: RejectKind::Bad,
                    code: None,
                    text: "literal8 is only allowed for APPEND data".to_owned(),
                    limit: None,
                })
            } else if !lit.sync && self.literal_minus && lit.len > LITERAL_MINUS_MAX {
                Some(Rejection {
                    tag: read_tag(avail),
                    kind: RejectKind::Bad,
                    code: Some(Code::TooBig),
                    text: "non-synchronizing literal over 4096 bytes (LITERAL-)".to_owned(),
                    limit: Some(Limit::LiteralSize),
                })
            } else {
                None
            };
            if let Some(rejection) = refusal {
                return self.reject_at_line_end(f.framed, rejection, Some(lit));
            }
            // Checked above: the literal fits max_literal, which the caller sized for memory.
            let Ok(len) = usize::try_from(lit.len) else {
                let rejection = reject_limit(avail, "literal too large", Limit::LiteralSize);
                return self.reject_at_line_end(f.framed, rejection, Some(lit));
            };
            f.awaiting = Some(len);
            if lit.sync {
                self.frame = f;
                return Framed::Continue;
            }
        }
    }

    /// Rejects the command whose current line has just ended (at `framed`): its bytes
    /// are consumed; a non-synchronizing literal announced there is skipped as it arrives,
    /// then the rest of the command. After a synchronizing one the client sends nothing more.
    fn reject_at_line_end(
        &mut self,
        framed: usize,
        rejection: Rejection,
        announce: Option<Announce>,
    ) -> Framed {
        self.start = (self.start + framed).min(self.buf.len());
        self.frame = Frame::default();
        if let Some(lit) = announce.filter(|a| !a.sync) {
            self.skip = Skip::Bytes(lit.len);
        }
        Framed::Reject(rejection)
    }
}

/// Result of framing.
enum Framed {
    NeedMore,
    Continue,
    Reject(Rejection),
    /// A whole command of this many bytes is at `buf[start..]`.
    Complete(usize),
}

/// Skip::Line whose tail starts with `bytes` (the last TAIL of them).
fn skip_line_with_tail(bytes: &[u8]) -> Skip {
    let mut skip = Skip::Line {
        literals: true,
        tail: [0; TAIL],
        tail_len: 0,
    };
    push_tail(&mut skip, bytes);
    skip
}

/// Remembers the last bytes of a skipped line.
fn push_tail(skip: &mut Skip, bytes: &[u8]) {
    if let Skip::Line { tail, tail_len, .. } = skip {
        let keep = bytes.len().min(TAIL);
        let old_keep = (TAIL - keep).min(*tail_len);
        let mut next = [0u8; TAIL];
        if let (Some(dst), Some(src)) = (
            next.get_mut(..old_keep),
            tail.get(*tail_len - old_keep..*tail_len),
        ) {
            dst.copy_from_slice(src);
        }
        if let (Some(dst), Some(src)) = (
            next.get_mut(old_keep..old_keep + keep),
            bytes.get(bytes.len() - keep..),
        ) {
            dst.copy_from_slice(src);
        }
        *tail = next;
        *tail_len = old_keep + keep;
    }
}

/// Advances a skip state over `data`; returns how many bytes it swallowed.
fn skip_over(skip: &mut Skip, data: &[u8]) -> usize {
    let mut used = 0;
    loop {
        let rest = data.get(used..).unwrap_or(b"");
        match *skip {
            Skip::None => return used,
            Skip::Bytes(n) => {
                let take = usize::try_from(n).unwrap_or(usize::MAX).min(rest.len());
                used += take;
                let left = n - take as u64;
                if left > 0 {
                    *skip = Skip::Bytes(left);
                    return used;
                }
                *skip = skip_line_with_tail(b"");
            }
            Skip::Line { literals, .. } => match memchr::memchr(b'\n', rest) {
                None => {
                    push_tail(skip, rest);
                    return used + rest.len();
                }
                Some(lf) => {
                    push_tail(skip, rest.get(..lf).unwrap_or(b""));
                    used += lf + 1;
                    let announce = match skip {
                        Skip::Line { tail, tail_len, .. } if literals => {
                            announcement(tail.get(..*tail_len).unwrap_or(b""))
                        }
                        _ => None,
                    };
                    *skip = match announce {
                        Some(a) if !a.sync => Skip::Bytes(a.len),
                        _ => Skip::None,
                    };
                }
            },
        }
    }
}

/// The literal announced at the end of `line` (CRLF already removed or a trailing CR left),
/// if any. A size too large for u64 reads as u64::MAX, which every limit refuses.
fn announcement(line: &[u8]) -> Option<Announce> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let inner = line.strip_suffix(b"}")?;
    let (digits_end, sync) = match inner.strip_suffix(b"+") {
        Some(d) => (d, false),
        None => (inner, true),
    };
    let open = digits_end.iter().rposition(|&b| !b.is_ascii_digit())?;
    if digits_end.get(open) != Some(&b'{') {
        return None;
    }
    let digits = digits_end.get(open + 1..)?;
    if digits.is_empty() {
        return None;
    }
    let len = digits.iter().fold(0u64, |n, &d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    });
    let binary = digits_end
        .get(..open)
        .is_some_and(|head| head.ends_with(b"~"));
    Some(Announce { len, sync, binary })
}

/// The tag at the start of a command, if it has one.
fn read_tag(cmd: &[u8]) -> Option<String> {
    let n = cmd.iter().position(|&b| !is_tag_char(b))?;
    if n == 0 || cmd.get(n) != Some(&b' ') {
        return None;
    }
    cmd.get(..n)
        .and_then(|t| std::str::from_utf8(t).ok())
        .map(str::to_owned)
}

/// True when the command is an APPEND (its oversize literals get `NO [TOOBIG]`).
fn is_append(cmd: &[u8]) -> bool {
    let Some(sp) = cmd.iter().position(|&b| b == b' ') else {
        return false;
    };
    cmd.get(sp + 1..sp + 8)
        .is_some_and(|name| name.eq_ignore_ascii_case(b"APPEND "))
}

/// `BAD [LIMIT] reason`
fn reject_limit(cmd: &[u8], text: &str, limit: Limit) -> Rejection {
    Rejection {
        tag: read_tag(cmd),
        kind: RejectKind::Bad,
        code: Some(Code::Limit),
        text: text.to_owned(),
        limit: Some(limit),
    }
}

/// `NO [TOOBIG]` for APPEND, `BAD [LIMIT]` otherwise.
fn reject_too_big(cmd: &[u8], text: &str) -> Rejection {
    if is_append(cmd) {
        Rejection {
            tag: read_tag(cmd),
            kind: RejectKind::No,
            code: Some(Code::TooBig),
            text: "message too large".to_owned(),
            limit: Some(Limit::LiteralSize),
        }
    } else {
        reject_limit(cmd, text, Limit::LiteralSize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements() {
        let a = announcement(b"a LOGIN {5}").map(|a| (a.len, a.sync));
        assert_eq!(a, Some((5, true)));
        let a = announcement(b"a APPEND x ~{12+}\r").map(|a| (a.len, a.sync, a.binary));
        assert_eq!(a, Some((12, false, true)));
        assert!(announcement(b"a LOGIN {}").is_none());
        assert!(announcement(b"a LOGIN x}").is_none());
        assert!(announcement(b"}").is_none());
        let huge = announcement(b"{99999999999999999999999999}").map(|a| a.len);
        assert_eq!(huge, Some(u64::MAX));
    }

    #[test]
    fn tail_keeps_last_bytes() {
        let mut s = skip_line_with_tail(b"");
        push_tail(&mut s, &[b'x'; 100]);
        push_tail(&mut s, b" {7+}");
        if let Skip::Line { tail, tail_len, .. } = s {
            assert_eq!(tail_len, TAIL);
            assert!(tail[..tail_len].ends_with(b"x {7+}"));
        } else {
            panic!("not a line skip");
        }
    }
}
