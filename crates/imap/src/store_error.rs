//! How the IMAP layer words a store failure: the response code a tagged NO carries.
//!
//! The store only says what went wrong (its [`StoreError`] kinds); which IMAP response code
//! tells a client that is the protocol's business, as Dovecot's mail errors are turned into
//! IMAP codes by its imap layer, not by its storage.

use ringmail_proto::response::Code;
use ringmail_store::StoreError;

/// The response code of a failed command: ringmail-proto's [`Code`], under the name the
/// store's fault tests know it by.
pub use ringmail_proto::response::Code as ResponseCode;

/// The response code the IMAP layer sends with `NO` for a store error.
pub fn response_code(e: &StoreError) -> Code {
    match e {
        StoreError::Io(_) | StoreError::Moved => Code::Unavailable,
        StoreError::OverQuota => Code::OverQuota,
        StoreError::NoSuchMailbox | StoreError::NoSuchMessage | StoreError::NoSuchScript => {
            Code::NonExistent
        }
        StoreError::AlreadyExists => Code::AlreadyExists,
        StoreError::InvalidName | StoreError::NotPermitted(_) | StoreError::ScriptActive => {
            Code::Cannot
        }
        StoreError::TooLarge => Code::TooBig,
        StoreError::Corrupt(_) => Code::ServerBug,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::reply::store_error;
    use ringmail_proto::response::ResponseWriter;
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
            let mut out = Vec::new();
            store_error("APPEND failed", &e)
                .serialize("t", &mut ResponseWriter::new(&mut out, false));
            assert_eq!(out, format!("t NO {want}\r\n").into_bytes(), "{e:?}");
        }
    }
}
