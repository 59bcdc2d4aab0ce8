//! The tagged reply of a command is ringmail-proto's typed [`Reply`]: a status, an optional
//! [`Code`] and text, written by `Session::reply`. This module adds the replies the IMAP
//! layer words the same way in several commands.

use std::borrow::Cow;

use crate::store_error::response_code;
use ringmail_store::StoreError;

pub use ringmail_proto::response::{Code, Reply};

/// `OK text`, with RFC 5530's `[EXPUNGEISSUED]` when `expunged`: the answer leaves out
/// messages another session expunged (before this session was told, or while the command
/// ran), so the client may want a NOOP. As Dovecot answers FETCH, SEARCH and SORT.
pub fn ok_noting_expunges(expunged: bool, text: impl Into<Cow<'static, str>>) -> Reply {
    let reply = Reply::ok(text);
    if expunged {
        reply.with_code(Code::ExpungeIssued)
    } else {
        reply
    }
}

/// `NO [EXPUNGEISSUED]` for a COPY or MOVE that named a message another session expunged:
/// nothing was copied (RFC 3501 section 6.4.7: a failed COPY leaves the destination as it
/// was; RFC 2180 section 4.4), Dovecot's answer.
pub fn expunge_issued() -> Reply {
    Reply::no("Some of the requested messages no longer exist.").with_code(Code::ExpungeIssued)
}

/// `NO [CODE] what failed: why` for a store error. I/O errors are logged: an operator must
/// see them, a client only learns to retry.
pub fn store_error(what: &str, e: &StoreError) -> Reply {
    if matches!(e, StoreError::Io(_) | StoreError::Corrupt(_)) {
        tracing::error!("{what}: {e}");
    }
    Reply::no(format!("{what}: {e}")).with_code(response_code(e))
}
