//! `ringmail check [--repair]`.

use std::path::Path;

/// Result of checking one segment.
#[derive(Debug, Clone)]
pub struct SegmentReport {
    /// Segment file name.
    pub name: String,
}

/// Result of checking a partition directory.
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    /// Per segment.
    pub segments: Vec<SegmentReport>,
}

/// Checks a partition directory.
pub fn check(_dir: &Path, _repair: bool) -> CheckReport {
    CheckReport::default()
}
