//! The IMAP command parser: a sans-io, streaming, zero-copy reader of client commands.
//!
//! The session feeds socket bytes to a [`CommandReader`] and asks it for the [`Next`] thing
//! to do: run a [`Command`], read more, send a `+` continuation for a synchronizing literal,
//! or send a [`Rejection`]. Commands borrow the reader's buffer until the next call.
//!
//! Grammar: RFC 9051 and RFC 3501, plus IDLE, NAMESPACE, UIDPLUS, MOVE, UNSELECT, ENABLE,
//! ID, SASL-IR, LITERAL+/LITERAL-, SPECIAL-USE/CREATE-SPECIAL-USE, LIST-EXTENDED,
//! LIST-STATUS, STATUS=SIZE, CONDSTORE, QRESYNC, BINARY, MULTIAPPEND, OBJECTID, PREVIEW,
//! SAVEDATE, UTF8=ACCEPT, QUOTA, ESEARCH, SEARCHRES, WITHIN, SORT (+DISPLAY), ESORT, THREAD.
//!
//! Values in the tree ([`ast`]):
//! - strings ([`AString`]) are `Cow<[u8]>`: borrowed for atoms, literals and quoted strings
//!   without escapes, owned only when a quoted string had `\"` or `\\`;
//! - mailbox names ([`Mailbox`]) are raw bytes (modified UTF-7 or UTF-8), `INBOX` in any
//!   case normalised to `INBOX`; decode them with [`mutf7::decode_mutf7`];
//! - sequence sets ([`SequenceSet`]) are validated slices, iterated with `ranges()`;
//! - APPEND data is the literal's payload, borrowed;
//! - AUTHENTICATE's SASL-IR initial response is already base64-decoded.
//!
//! Limits ([`Limits`]) are enforced by the framing before any byte is stored:
//! - `max_line`: command text of one command, line ends included, literal payloads not;
//! - `max_literal`: the total payload of all literals of one command (so MULTIAPPEND's
//!   messages together must fit it: the reader never buffers more than one command);
//! - `max_depth`: nesting of parentheses and of NOT / OR in search keys;
//! - `max_literals`: number of literals in one command.
//!
//! Syntax errors are `BAD` without a response code (RFC 9051 has none for them); limits are
//! `BAD [LIMIT]`; an oversized APPEND literal is `NO [TOOBIG]`; a LITERAL- violation is
//! `BAD [TOOBIG]`.

pub mod ast;
mod command;
mod cursor;
mod fetch;
pub mod mutf7;
mod reader;
mod search;

#[cfg(test)]
mod tests;

pub use ast::*;
pub use mutf7::{decode_mutf7, encode_mutf7};
pub use reader::{CommandReader, LineTooLong};

use crate::response::Code;

/// Resource limits for one connection's commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest command text (literal payloads excluded), in bytes.
    pub max_line: usize,
    /// Largest total of literal payloads in one command (APPENDLIMIT), in bytes.
    pub max_literal: u64,
    /// Deepest nesting of parentheses and search operators.
    pub max_depth: usize,
    /// Most literals in one command.
    pub max_literals: usize,
}

impl Default for Limits {
    /// 64 KiB lines, 64 MiB literals, depth 32, 1024 literals.
    fn default() -> Self {
        Limits {
            max_line: 64 * 1024,
            max_literal: 64 * 1024 * 1024,
            max_depth: 32,
            max_literals: 1024,
        }
    }
}

/// What the session must do next.
#[derive(Debug)]
pub enum Next<'a> {
    /// A complete command, borrowing the reader's buffer.
    Command(Command<'a>),
    /// Read more bytes from the socket.
    NeedMore,
    /// A synchronizing literal was accepted: send `+ Ready for literal data\r\n` (returned
    /// exactly once per literal), then read more.
    Continue,
    /// Send `tag BAD/NO [CODE] text` (`* BAD ...` without a tag). The reader has already
    /// skipped the command, or drops its remaining bytes as they arrive.
    Reject(Rejection),
}

/// A command refused by the reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The command's tag, when one could be read.
    pub tag: Option<String>,
    /// `BAD` or `NO`.
    pub kind: RejectKind,
    /// The response code (`LIMIT`, `TOOBIG`), if any.
    pub code: Option<Code>,
    /// Human-readable reason.
    pub text: String,
    /// The limit the input went over, when that is why it was refused.
    pub limit: Option<Limit>,
}

/// The client-controlled size a rejection enforces (the `limit` label of the metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `[limits] max_line`.
    LineLength,
    /// `[limits] max_literal` (and LITERAL-'s 4096 bytes).
    LiteralSize,
    /// `[limits] max_literals`.
    LiteralCount,
    /// Another limit (nesting depth).
    Other,
}

/// The status of a rejection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectKind {
    /// `BAD`: the command was malformed or over a limit.
    Bad,
    /// `NO`: well-formed but refused (APPEND too large).
    No,
}
