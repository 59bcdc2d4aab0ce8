//! The command line parser (RFC 5804 §4): a line of arguments, each an atom, a quoted
//! string or a literal, fed in whatever pieces the connection delivers.
//!
//! Literals come as `{n+}` (RFC 5804's literal-c2s) or `{n}`. ManageSieve has no
//! continuation response, so both forms are read the same way: the data follows the CRLF
//! at once (Dovecot accepts both likewise; older clients send `{n}`).
//!
//! After an error the rest of the line is skipped, including a literal announced at the
//! end of a line, so that a script's text is never read as commands.

/// One argument of a command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    /// An unquoted word: command names and numbers.
    Atom(String),
    /// A quoted string (unescaped, valid UTF-8) or a literal's bytes.
    String(Vec<u8>),
    /// A literal longer than `ParserLimits::max_literal`, of this many bytes, which were
    /// read and dropped (PUTSCRIPT answers it with NO (QUOTA/MAXSIZE)).
    Oversized(u64),
}

/// Bounds on one command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParserLimits {
    /// Bytes of a line outside its literals.
    pub max_line: usize,
    /// Bytes of one literal (the script size limit); longer ones are dropped.
    pub max_literal: usize,
    /// Arguments on a line, the command name included.
    pub max_args: usize,
}

impl Default for ParserLimits {
    fn default() -> Self {
        ParserLimits {
            max_line: 8 << 10,
            max_literal: 1 << 20,
            max_args: 8,
        }
    }
}

/// Why a line could not be parsed; the text is fit for the NO response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseError(pub &'static str);

/// A complete line: its arguments, or why it was refused.
pub type Line = Result<Vec<Arg>, ParseError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before an argument or the end of the line.
    Between,
    Atom,
    Quoted,
    QuotedEscape,
    LiteralSize {
        size: u64,
        plus: bool,
        digits: bool,
    },
    /// After `}`: CR LF (or a bare LF) must follow.
    LiteralCr {
        size: u64,
    },
    LiteralLf {
        size: u64,
    },
    LiteralData {
        size: u64,
        remaining: u64,
        keep: bool,
    },
    /// After a quoted string or literal: a space or the end of the line.
    AfterArg,
    /// CR at the end of the line: LF must follow.
    Cr,
    /// After an error, up to the end of the line.
    Skip,
    SkipLiteral {
        remaining: u64,
    },
}

/// How many bytes of a skipped line are remembered to spot a literal announced at its end.
const SKIP_TAIL: usize = 24;

/// An incremental parser of command lines.
#[derive(Debug)]
pub struct Parser {
    limits: ParserLimits,
    state: State,
    args: Vec<Arg>,
    /// The argument being read.
    cur: Vec<u8>,
    /// Bytes of this line so far, outside literals.
    line_len: usize,
    error: Option<ParseError>,
    /// The last bytes of a line being skipped.
    tail: Vec<u8>,
}

impl Parser {
    pub fn new(limits: ParserLimits) -> Parser {
        Parser {
            limits,
            state: State::Between,
            args: Vec::new(),
            cur: Vec::new(),
            line_len: 0,
            error: None,
            tail: Vec::new(),
        }
    }

    /// Forgets a partly read line (after STARTTLS, whatever was sent before the handshake
    /// is not to be trusted).
    pub fn reset(&mut self) {
        *self = Parser::new(self.limits);
    }

    /// Whether a line has been started and not finished.
    pub fn in_line(&self) -> bool {
        self.state != State::Between || !self.args.is_empty() || self.line_len > 0
    }

    /// Reads `input` up to the end of one line. Returns how many bytes were consumed and
    /// the line when it ended within them; the rest of `input` belongs to the next line.
    pub fn feed(&mut self, input: &[u8]) -> (usize, Option<Line>) {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                State::LiteralData {
                    size,
                    remaining,
                    keep,
                } => {
                    let n = (input.len() - i).min(usize::try_from(remaining).unwrap_or(usize::MAX));
                    if keep {
                        self.cur.extend_from_slice(&input[i..i + n]);
                    }
                    i += n;
                    let remaining = remaining - n as u64;
                    self.state = if remaining > 0 {
                        State::LiteralData {
                            size,
                            remaining,
                            keep,
                        }
                    } else {
                        let arg = if keep {
                            Arg::String(std::mem::take(&mut self.cur))
                        } else {
                            Arg::Oversized(size)
                        };
                        self.args.push(arg);
                        State::AfterArg
                    };
                }
                State::SkipLiteral { remaining } => {
                    let n = (input.len() - i).min(usize::try_from(remaining).unwrap_or(usize::MAX));
                    i += n;
                    let remaining = remaining - n as u64;
                    self.state = if remaining > 0 {
                        State::SkipLiteral { remaining }
                    } else {
                        State::Skip
                    };
                }
                _ => {
                    let b = input[i];
                    i += 1;
                    if let Some(line) = self.byte(b) {
                        return (i, Some(line));
                    }
                }
            }
        }
        (i, None)
    }

    fn byte(&mut self, b: u8) -> Option<Line> {
        if self.state == State::Skip {
            return self.skip(b);
        }
        self.line_len += 1;
        if self.line_len > self.limits.max_line {
            return self.fail("line too long", b);
        }
        match self.state {
            State::Between => match b {
                b' ' => None,
                b'\r' => {
                    self.state = State::Cr;
                    None
                }
                b'\n' => Some(self.finish()),
                _ if self.args.len() >= self.limits.max_args => self.fail("too many arguments", b),
                b'"' => {
                    self.state = State::Quoted;
                    None
                }
                b'{' => {
                    self.state = State::LiteralSize {
                        size: 0,
                        plus: false,
                        digits: false,
                    };
                    None
                }
                _ if is_atom_char(b) => {
                    self.cur.push(b);
                    self.state = State::Atom;
                    None
                }
                _ => self.fail("invalid character", b),
            },
            State::Atom => match b {
                b' ' | b'\r' | b'\n' => {
                    // Atom characters are ASCII.
                    let atom = String::from_utf8_lossy(&self.cur).into_owned();
                    self.cur.clear();
                    self.args.push(Arg::Atom(atom));
                    self.end_of_arg(b)
                }
                _ if is_atom_char(b) => {
                    self.cur.push(b);
                    None
                }
                _ => self.fail("invalid character in atom", b),
            },
            State::Quoted => match b {
                b'"' => match String::from_utf8(std::mem::take(&mut self.cur)) {
                    Ok(s) => {
                        self.args.push(Arg::String(s.into_bytes()));
                        self.state = State::AfterArg;
                        None
                    }
                    Err(_) => self.fail("invalid UTF-8 in quoted string", b),
                },
                b'\\' => {
                    self.state = State::QuotedEscape;
                    None
                }
                b'\r' | b'\n' => self.fail("unterminated quoted string", b),
                0 => self.fail("NUL in quoted string", b),
                _ => {
                    self.cur.push(b);
                    None
                }
            },
            State::QuotedEscape => match b {
                b'"' | b'\\' => {
                    self.cur.push(b);
                    self.state = State::Quoted;
                    None
                }
                _ => self.fail("only \\\" and \\\\ may be escaped in a quoted string", b),
            },
            State::LiteralSize { size, plus, digits } => match b {
                b'0'..=b'9' if !plus => {
                    // RFC 5804's number is below 2^32.
                    let size = size * 10 + u64::from(b - b'0');
                    if size > u64::from(u32::MAX) {
                        return self.fail("literal size too large", b);
                    }
                    self.state = State::LiteralSize {
                        size,
                        plus,
                        digits: true,
                    };
                    None
                }
                b'+' if digits && !plus => {
                    self.state = State::LiteralSize {
                        size,
                        plus: true,
                        digits,
                    };
                    None
                }
                b'}' if digits => {
                    self.state = State::LiteralCr { size };
                    None
                }
                _ => self.fail("invalid literal size", b),
            },
            State::LiteralCr { size } => match b {
                b'\r' => {
                    self.state = State::LiteralLf { size };
                    None
                }
                b'\n' => self.start_literal(size),
                _ => self.fail("a literal's size must end the line", b),
            },
            State::LiteralLf { size } => match b {
                b'\n' => self.start_literal(size),
                _ => self.fail("a literal's size must end the line", b),
            },
            State::AfterArg => match b {
                b' ' => {
                    self.state = State::Between;
                    None
                }
                b'\r' => {
                    self.state = State::Cr;
                    None
                }
                b'\n' => Some(self.finish()),
                _ => self.fail("expected a space or the end of the line", b),
            },
            State::Cr => match b {
                b'\n' => Some(self.finish()),
                _ => self.fail("CR without LF", b),
            },
            State::LiteralData { .. } | State::Skip | State::SkipLiteral { .. } => {
                unreachable!("handled by feed")
            }
        }
    }

    fn end_of_arg(&mut self, b: u8) -> Option<Line> {
        match b {
            b'\r' => {
                self.state = State::Cr;
                None
            }
            b'\n' => Some(self.finish()),
            _ => {
                self.state = State::Between;
                None
            }
        }
    }

    fn start_literal(&mut self, size: u64) -> Option<Line> {
        // The line may continue after the literal; its data does not count toward the
        // line's length but the CRLF after the size did.
        let keep = size <= self.limits.max_literal as u64;
        self.cur.clear();
        if size == 0 {
            self.args.push(Arg::String(Vec::new()));
            self.state = State::AfterArg;
        } else {
            // Reserve only a little: the size is the client's word, not yet its data.
            if keep {
                self.cur.reserve(size.min(64 << 10) as usize);
            }
            self.state = State::LiteralData {
                size,
                remaining: size,
                keep,
            };
        }
        None
    }

    /// Marks the line as refused and skips the rest of it; `b` is the offending byte.
    fn fail(&mut self, message: &'static str, b: u8) -> Option<Line> {
        self.error = Some(ParseError(message));
        self.args.clear();
        self.cur = Vec::new();
        self.tail.clear();
        self.state = State::Skip;
        self.skip(b)
    }

    fn skip(&mut self, b: u8) -> Option<Line> {
        if b != b'\n' {
            if self.tail.len() == SKIP_TAIL {
                self.tail.remove(0);
            }
            self.tail.push(b);
            return None;
        }
        let line = self.tail.strip_suffix(b"\r").unwrap_or(&self.tail);
        match announced_literal(line) {
            Some(remaining) if remaining > 0 => {
                self.tail.clear();
                self.state = State::SkipLiteral { remaining };
                None
            }
            Some(_) => {
                self.tail.clear();
                None
            }
            None => Some(self.finish()),
        }
    }

    fn finish(&mut self) -> Line {
        let args = std::mem::take(&mut self.args);
        let error = self.error.take();
        self.cur.clear();
        self.tail.clear();
        self.line_len = 0;
        self.state = State::Between;
        match error {
            Some(e) => Err(e),
            None => Ok(args),
        }
    }
}

/// The size of a literal announced at the end of `line` (`{n}` or `{n+}`), if any.
fn announced_literal(line: &[u8]) -> Option<u64> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let digits = &inner[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || digits.len() > 10 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// ATOM-CHAR: printable ASCII except the atom-specials (as Dovecot's parser takes them).
fn is_atom_char(b: u8) -> bool {
    b.is_ascii_graphic() && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ParserLimits {
        ParserLimits {
            max_line: 64,
            max_literal: 16,
            max_args: 4,
        }
    }

    /// Feeds `input` whole and then byte by byte; both must give the same lines and leave
    /// nothing unconsumed.
    fn lines(input: &[u8]) -> Vec<Line> {
        let whole = {
            let mut p = Parser::new(limits());
            let mut out = Vec::new();
            let mut rest = input;
            while !rest.is_empty() {
                let (n, line) = p.feed(rest);
                rest = &rest[n..];
                out.extend(line);
            }
            assert!(!p.in_line(), "unfinished line after {input:?}");
            out
        };
        let mut p = Parser::new(limits());
        let mut bytewise = Vec::new();
        for b in input {
            let (n, line) = p.feed(std::slice::from_ref(b));
            assert_eq!(n, 1);
            bytewise.extend(line);
        }
        assert_eq!(
            whole, bytewise,
            "byte-by-byte feeding differs for {input:?}"
        );
        whole
    }

    fn one(input: &[u8]) -> Line {
        let mut l = lines(input);
        assert_eq!(l.len(), 1, "{input:?} gave {l:?}");
        l.remove(0)
    }

    fn atom(s: &str) -> Arg {
        Arg::Atom(s.into())
    }

    fn string(s: &str) -> Arg {
        Arg::String(s.as_bytes().to_vec())
    }

    #[test]
    fn every_command_shape() {
        let cases: &[(&[u8], Vec<Arg>)] = &[
            (b"CAPABILITY\r\n", vec![atom("CAPABILITY")]),
            (b"logout\r\n", vec![atom("logout")]),
            (
                b"AUTHENTICATE \"PLAIN\" \"AGEAYg==\"\r\n",
                vec![atom("AUTHENTICATE"), string("PLAIN"), string("AGEAYg==")],
            ),
            (
                b"HAVESPACE \"s\" 1234\r\n",
                vec![atom("HAVESPACE"), string("s"), atom("1234")],
            ),
            (
                b"PUTSCRIPT \"s\" {5+}\r\nkeep;\r\n",
                vec![atom("PUTSCRIPT"), string("s"), string("keep;")],
            ),
            (
                b"PUTSCRIPT {1+}\r\ns {5}\r\nkeep;\r\n",
                vec![atom("PUTSCRIPT"), string("s"), string("keep;")],
            ),
            (
                b"RENAMESCRIPT \"a\" \"b\"\r\n",
                vec![atom("RENAMESCRIPT"), string("a"), string("b")],
            ),
            (b"SETACTIVE \"\"\r\n", vec![atom("SETACTIVE"), string("")]),
            (
                b"CHECKSCRIPT {0+}\r\n\r\n",
                vec![atom("CHECKSCRIPT"), string("")],
            ),
            (
                b"NOOP \"a\\\"b\\\\c\"\r\n",
                vec![atom("NOOP"), string("a\"b\\c")],
            ),
            (
                b"NOOP \"\xc3\xa9t\xc3\xa9\"\r\n",
                vec![atom("NOOP"), string("été")],
            ),
            // Bare LF and extra spaces, as Dovecot takes them.
            (b"NOOP  \"x\" \n", vec![atom("NOOP"), string("x")]),
            (b"\r\n", vec![]),
        ];
        for (input, want) in cases {
            assert_eq!(one(input), Ok(want.clone()), "{input:?}");
        }
    }

    #[test]
    fn literal_keeps_any_bytes() {
        let input = b"PUTSCRIPT \"s\" {12+}\r\na\r\n\"b\" {3}\r\n\r\n";
        assert_eq!(
            one(input),
            Ok(vec![
                atom("PUTSCRIPT"),
                string("s"),
                Arg::String(b"a\r\n\"b\" {3}\r\n".to_vec())
            ])
        );
    }

    #[test]
    fn pipelined_lines_come_one_at_a_time() {
        let mut p = Parser::new(limits());
        let input = b"NOOP\r\nLISTSCRIPTS\r\nLOG";
        let (n, line) = p.feed(input);
        assert_eq!(n, 6);
        assert_eq!(line, Some(Ok(vec![atom("NOOP")])));
        let (m, line) = p.feed(&input[n..]);
        assert_eq!(line, Some(Ok(vec![atom("LISTSCRIPTS")])));
        let (k, line) = p.feed(&input[n + m..]);
        assert_eq!((k, line), (3, None));
        assert!(p.in_line());
        assert_eq!(p.feed(b"OUT\r\n").1, Some(Ok(vec![atom("LOGOUT")])));
    }

    #[test]
    fn oversized_literal_is_dropped_and_the_line_goes_on() {
        let big = [b'x'; 40];
        let mut input = b"PUTSCRIPT \"s\" {40+}\r\n".to_vec();
        input.extend_from_slice(&big);
        input.extend_from_slice(b"\r\nNOOP\r\n");
        let got = lines(&input);
        assert_eq!(
            got,
            vec![
                Ok(vec![atom("PUTSCRIPT"), string("s"), Arg::Oversized(40)]),
                Ok(vec![atom("NOOP")])
            ]
        );
    }

    #[test]
    fn limits_refuse_the_line() {
        let long = [b"NOOP \"".as_slice(), &[b'a'; 70], b"\"\r\nNOOP\r\n"].concat();
        assert_eq!(
            lines(&long),
            vec![Err(ParseError("line too long")), Ok(vec![atom("NOOP")])]
        );
        assert_eq!(one(b"A B C D E\r\n"), Err(ParseError("too many arguments")));
        assert_eq!(
            one(b"A {99999999999+}\r\n"),
            Err(ParseError("literal size too large"))
        );
    }

    #[test]
    fn syntax_errors() {
        let cases: &[(&[u8], &str)] = &[
            (b"NOOP \"abc\r\n", "unterminated quoted string"),
            (
                b"NOOP \"a\\nb\"\r\n",
                "only \\\" and \\\\ may be escaped in a quoted string",
            ),
            (b"NOOP \"\xff\"\r\n", "invalid UTF-8 in quoted string"),
            (
                b"NOOP \"x\"y\r\n",
                "expected a space or the end of the line",
            ),
            (b"NOOP {3++}\r\n", "invalid literal size"),
            (b"NOOP {+}\r\n", "invalid literal size"),
            (b"NOOP {3} x\r\n", "a literal's size must end the line"),
            (b"NO(OP\r\n", "invalid character in atom"),
            (b"NOOP \x01\r\n", "invalid character"),
            (b"NOOP\rX\r\n", "CR without LF"),
        ];
        for (input, want) in cases {
            assert_eq!(one(input), Err(ParseError(want)), "{input:?}");
        }
    }

    #[test]
    fn a_refused_line_skips_its_literals() {
        // The literal's text is not read as commands, whichever way the line was bad.
        let input = b"PUTSCRIPT \"a\" x y {14+}\r\nLOGOUT\r\nNOOP\r\n\r\nNOOP \"y\"\r\n";
        assert_eq!(
            lines(input),
            vec![
                Err(ParseError("too many arguments")),
                Ok(vec![atom("NOOP"), string("y")])
            ]
        );
        let input = b"PUT(SCRIPT \"a\" {8}\r\nLOGOUT\r\n\r\nNOOP\r\n";
        assert_eq!(
            lines(input),
            vec![
                Err(ParseError("invalid character in atom")),
                Ok(vec![atom("NOOP")])
            ]
        );
        // A literal announced on a bad line whose data is empty.
        assert_eq!(
            lines(b"(( {0}\r\n\r\nNOOP\r\n"),
            vec![Err(ParseError("invalid character")), Ok(vec![atom("NOOP")])]
        );
    }

    #[test]
    fn reset_forgets_a_partial_line() {
        let mut p = Parser::new(limits());
        p.feed(b"PUTSCRIPT \"a\" {10+}\r\nkee");
        assert!(p.in_line());
        p.reset();
        assert!(!p.in_line());
        assert_eq!(p.feed(b"NOOP\r\n").1, Some(Ok(vec![atom("NOOP")])));
    }
}
