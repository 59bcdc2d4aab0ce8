//! Compile-time and run-time errors. Both say where (line and column of the script) and
//! why, in words a ManageSieve client can show to the user as they are.

use std::fmt;

/// A place in a script: 1-based line and column (the column counts bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// Why a script was refused at upload (or on load from its serialized form).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pos}: {message}")]
pub struct CompileError {
    pub pos: Pos,
    pub message: String,
}

impl CompileError {
    pub(crate) fn new(pos: Pos, message: impl Into<String>) -> Self {
        CompileError {
            pos,
            message: message.into(),
        }
    }
}

/// Why evaluation went wrong. The outcome then falls back to keep (RFC 5228 §2.10.6) and
/// carries this for the user's log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct RuntimeError {
    /// The included script it happened in (as "personal:name" or "global:name"), or None
    /// for the main script.
    pub script: Option<String>,
    pub line: u32,
    pub message: String,
}

impl fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(s) = &self.script {
            write!(f, "{s}: ")?;
        }
        write!(f, "line {}: {}", self.line, self.message)
    }
}
