//! The store's error type: what went wrong, in the store's terms (the IMAP layer decides
//! how to say it to a client: crates/imap/src/store_error.rs).

use std::io;
use std::sync::Arc;

/// Everything a store operation can fail with.
///
/// Cloneable because one failed group commit fails every mutation in the batch.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// Writing or syncing the log failed (full disk, I/O error). Nothing of the failed
    /// batch was acknowledged or applied; the log was cut back to its last durable end.
    #[error("storage I/O error: {0}")]
    Io(Arc<io::Error>),
    /// The user's quota (bytes or messages) would be exceeded.
    #[error("quota exceeded")]
    OverQuota,
    /// No mailbox of that name (or id) exists for the user.
    #[error("no such mailbox")]
    NoSuchMailbox,
    /// A mailbox of that name already exists.
    #[error("mailbox already exists")]
    AlreadyExists,
    /// The mailbox name is not acceptable (empty, too long, bad hierarchy).
    #[error("invalid mailbox name")]
    InvalidName,
    /// The operation is not allowed on this mailbox (e.g. deleting INBOX).
    #[error("operation not permitted: {0}")]
    NotPermitted(&'static str),
    /// No message with that UID exists in the mailbox.
    #[error("no such message")]
    NoSuchMessage,
    /// A message or metadata blob is larger than the record format allows.
    #[error("message too large")]
    TooLarge,
    /// No Sieve script of that name exists for the user.
    #[error("no such script")]
    NoSuchScript,
    /// The Sieve script is the user's active one and cannot be deleted (RFC 5804 2.10).
    #[error("script is active")]
    ScriptActive,
    /// The partition was handed to another node by a live move (or its directory is the
    /// copy left behind by one): nothing is written here; the client should try again and
    /// will reach the new owner.
    #[error("partition moved to another node")]
    Moved,
    /// The on-disk data is damaged; the partition needs `ringmail check --repair`.
    #[error("corrupt store: {0} (run `ringmail check --repair`)")]
    Corrupt(String),
}

impl StoreError {
    /// True when the failure came from the disk being full.
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::Io(e) => {
                e.raw_os_error() == Some(libc::ENOSPC)
                    || e.raw_os_error() == Some(libc::EDQUOT)
                    || e.kind() == io::ErrorKind::StorageFull
                    || e.to_string().contains("No space left")
            }
            _ => false,
        }
    }
}

impl From<io::Error> for StoreError {
    fn from(e: io::Error) -> Self {
        StoreError::Io(Arc::new(e))
    }
}

impl<T> From<glommio::GlommioError<T>> for StoreError {
    fn from(e: glommio::GlommioError<T>) -> Self {
        StoreError::Io(Arc::new(io::Error::from(e)))
    }
}

/// Result with a [`StoreError`].
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
