//! The one error type of the auth module: everything an operator can get wrong in the users
//! file, on the `ringmail user ...` command line, or in the backends' configuration.

use std::path::PathBuf;

/// What went wrong while reading, changing or writing the users file.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The users file (or its temporary sibling, or its directory) could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory the operation was on.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A line of the users file is malformed; `line` counts from 1.
    #[error("{path}:{line}: {reason}")]
    Parse {
        /// The users file.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// What is wrong with the line.
        reason: String,
    },
    /// A user name that cannot be stored in a passwd-file or used to log in.
    #[error("invalid user name {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A stored password hash that ringmail cannot verify.
    #[error("{0}")]
    BadHash(String),
    /// `user add` for a name that is already in the file.
    #[error("user {0:?} already exists")]
    UserExists(String),
    /// `user passwd` / `user del` for a name that is not in the file.
    #[error("no such user {0:?}")]
    NoSuchUser(String),
    /// Computing a new hash failed (bad cost parameters, no randomness).
    #[error("cannot hash password: {0}")]
    Hashing(String),
    /// `[auth]`, `[ldap]` or `[oauth]` is inconsistent (the text names the key).
    #[error("{0}")]
    Config(String),
    /// A backend cannot be set up (unreadable key set, no CA certificates).
    #[error("{0}")]
    Backend(String),
}
