//! How the IMAP layer words a store failure: the response code a tagged NO carries.
//!
//! The store only says what went wrong (its [`StoreError`] kinds); which IMAP response code
//! tells a client that is the protocol's business, as Dovecot's mail errors are turned into
//! IMAP codes by its imap layer, not by its storage.

use ringmail_store::StoreError;

/// The IMAP response code a failed command should carry (RFC 9051 section 7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseCode {
    /// `[OVERQUOTA]`
    OverQuota,
    /// `[NONEXISTENT]`
    NonExistent,
    /// `[ALREADYEXISTS]`
    AlreadyExists,
    /// `[CANNOT]`
    Cannot,
    /// `[TOOBIG]` (RFC 4469 / 7889)
    TooBig,
    /// `[UNAVAILABLE]`: temporary failure, the client may retry later (full disk, I/O).
    Unavailable,
    /// `[SERVERBUG]`: the server's data is damaged.
    ServerBug,
}

impl ResponseCode {
    /// The code as written inside the brackets of a tagged NO.
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseCode::OverQuota => "OVERQUOTA",
            ResponseCode::NonExistent => "NONEXISTENT",
            ResponseCode::AlreadyExists => "ALREADYEXISTS",
            ResponseCode::Cannot => "CANNOT",
            ResponseCode::TooBig => "TOOBIG",
            ResponseCode::Unavailable => "UNAVAILABLE",
            ResponseCode::ServerBug => "SERVERBUG",
        }
    }
}

/// The response code the IMAP layer sends with `NO` for a store error.
pub fn response_code(e: &StoreError) -> ResponseCode {
    match e {
        StoreError::Io(_) => ResponseCode::Unavailable,
        StoreError::OverQuota => ResponseCode::OverQuota,
        StoreError::NoSuchMailbox | StoreError::NoSuchMessage | StoreError::NoSuchScript => {
            ResponseCode::NonExistent
        }
        StoreError::AlreadyExists => ResponseCode::AlreadyExists,
        StoreError::InvalidName | StoreError::NotPermitted(_) | StoreError::ScriptActive => {
            ResponseCode::Cannot
        }
        StoreError::TooLarge => ResponseCode::TooBig,
        StoreError::Corrupt(_) => ResponseCode::ServerBug,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::reply::Reply;
    use std::io;
    use std::sync::Arc;

    /// Every store error kind gives the tagged NO it gave when the store chose the code.
    #[test]
    fn each_store_error_gets_its_tagged_no() {
        let cases = [
            (
                StoreError::Io(Arc::new(io::Error::other("disk gone"))),
                "[UNAVAILABLE] APPEND failed: storage I/O error: disk gone",
            ),
            (
                StoreError::OverQuota,
                "[OVERQUOTA] APPEND failed: quota exceeded",
            ),
            (
                StoreError::NoSuchMailbox,
                "[NONEXISTENT] APPEND failed: no such mailbox",
            ),
            (
                StoreError::NoSuchMessage,
                "[NONEXISTENT] APPEND failed: no such message",
            ),
            (
                StoreError::AlreadyExists,
                "[ALREADYEXISTS] APPEND failed: mailbox already exists",
            ),
            (
                StoreError::InvalidName,
                "[CANNOT] APPEND failed: invalid mailbox name",
            ),
            (
                StoreError::NotPermitted("INBOX cannot be deleted"),
                "[CANNOT] APPEND failed: operation not permitted: INBOX cannot be deleted",
            ),
            (
                StoreError::TooLarge,
                "[TOOBIG] APPEND failed: message too large",
            ),
            (
                StoreError::Corrupt("bad frame".into()),
                "[SERVERBUG] APPEND failed: corrupt store: bad frame (run `ringmail check --repair`)",
            ),
        ];
        for (e, want) in cases {
            let reply = Reply::store_error("APPEND failed", &e);
            assert_eq!((reply.status, reply.text.as_str()), ("NO", want), "{e:?}");
        }
    }
}
