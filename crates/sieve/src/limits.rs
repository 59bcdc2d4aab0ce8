//! Every bound on what a script may cost, at compile time and when it runs. A script that
//! hits one is refused (compile) or stopped (run) with an error naming the limit.

/// Limits on scripts. `Limits::default()` is meant for a multi-user server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of script source.
    pub max_script_size: usize,
    /// Blocks and tests nested within each other (`if` inside `if`, `not`/`anyof`/`allof`).
    pub max_nesting: usize,
    /// Strings in one string list.
    pub max_string_list: usize,
    /// Bytes of one string in the script.
    pub max_string_size: usize,
    /// Instructions plus comparisons (a comparison of a long value costs more) per run.
    pub max_steps: u64,
    /// Actions one run may take (keep, fileinto, redirect, ...), implicit keep excluded.
    pub max_actions: usize,
    /// `redirect` actions one run may take.
    pub max_redirects: usize,
    /// Bytes of one regular expression pattern.
    pub max_regex_pattern: usize,
    /// Bytes the regex engine may use for one compiled pattern.
    pub max_regex_compiled: usize,
    /// Scripts `include`d within each other.
    pub max_include_depth: usize,
    /// Scripts one run may include in all (with repeats).
    pub max_includes: usize,
    /// Bytes of a vacation reason.
    pub max_vacation_reason: usize,
    /// Bytes of a header field name added by `addheader`.
    pub max_header_name: usize,
    /// Bytes of a header field value added by `addheader`.
    pub max_header_value: usize,
    /// Bytes of one variable's value; longer values are cut (on a character boundary), as
    /// RFC 5229 §6 allows.
    pub max_variable_size: usize,
    /// Distinct variables one script may name.
    pub max_variables: usize,
    /// Smallest `:days` / `:seconds` period a vacation may use (RFC 5230 §4.1, RFC 6131).
    pub min_vacation_period: u64,
    /// Largest vacation period.
    pub max_vacation_period: u64,
    /// Period when the script gives none (seconds).
    pub default_vacation_period: u64,
    /// Largest `:seconds` for `duplicate`.
    pub max_duplicate_period: u64,
    /// Bytes of the message the `body` test looks at, from its start: a part (or, with
    /// `:raw`, body text) past them is not seen, so one test on a 50 MB message costs what
    /// one on this many bytes does. The other tests see the whole header.
    pub max_body_test_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_script_size: 1 << 20,
            max_nesting: 32,
            max_string_list: 1024,
            max_string_size: 64 << 10,
            max_steps: 1_000_000,
            max_actions: 32,
            max_redirects: 4,
            max_regex_pattern: 4 << 10,
            max_regex_compiled: 1 << 20,
            max_include_depth: 10,
            max_includes: 100,
            max_vacation_reason: 64 << 10,
            max_header_name: 128,
            max_header_value: 4 << 10,
            max_variable_size: 4 << 10,
            max_variables: 255,
            min_vacation_period: 24 * 3600,
            max_vacation_period: 90 * 24 * 3600,
            default_vacation_period: 7 * 24 * 3600,
            max_duplicate_period: 7 * 24 * 3600,
            max_body_test_size: 1 << 20,
        }
    }
}
