//! The outcome of a mailbox command, written as its tagged response after the untagged
//! updates the command boundary allows.

use crate::store_error::response_code;
use ringmail_store::StoreError;

/// A tagged response waiting to be written.
#[derive(Debug)]
pub struct Reply {
    /// "OK", "NO" or "BAD".
    pub status: &'static str,
    /// Text after the status, response code included.
    pub text: String,
}

impl Reply {
    /// `OK text`
    pub fn ok(text: impl Into<String>) -> Reply {
        Reply {
            status: "OK",
            text: text.into(),
        }
    }

    /// `NO text`
    pub fn no(text: impl Into<String>) -> Reply {
        Reply {
            status: "NO",
            text: text.into(),
        }
    }

    /// `BAD text`
    pub fn bad(text: impl Into<String>) -> Reply {
        Reply {
            status: "BAD",
            text: text.into(),
        }
    }

    /// `OK text`, with RFC 5530's `[EXPUNGEISSUED]` in front when `expunged`: the answer
    /// leaves out messages another session expunged (before this session was told, or while
    /// the command ran), so the client may want a NOOP. As Dovecot answers FETCH, SEARCH
    /// and SORT.
    pub fn ok_noting_expunges(expunged: bool, text: &str) -> Reply {
        Reply::ok(if expunged {
            format!("[EXPUNGEISSUED] {text}")
        } else {
            text.to_string()
        })
    }

    /// `NO [EXPUNGEISSUED]` for a COPY or MOVE that named a message another session
    /// expunged: nothing was copied (RFC 3501 section 6.4.7: a failed COPY leaves the
    /// destination as it was; RFC 2180 section 4.4), Dovecot's answer.
    pub fn expunge_issued() -> Reply {
        Reply::no("[EXPUNGEISSUED] Some of the requested messages no longer exist.")
    }

    /// `NO [CODE] what failed: why` for a store error. I/O errors are logged: an operator must
    /// see them, a client only learns to retry.
    pub fn store_error(what: &str, e: &StoreError) -> Reply {
        if matches!(e, StoreError::Io(_) | StoreError::Corrupt(_)) {
            tracing::error!("{what}: {e}");
        }
        Reply::no(format!("[{}] {what}: {e}", response_code(e).as_str()))
    }
}
