//! What the server configures for ManageSieve sessions.

use ringmail_sieve::Limits;

/// Whether scripts may use the commands that send mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailPolicy {
    /// An SMTP relay is configured: redirect and vacation (and reject notices) can go out.
    pub relay: bool,
    /// reject and ereject refuse the message in the LMTP reply, so they need no relay.
    pub reject_by_reply: bool,
}

/// Settings shared by all sessions of a listener.
#[derive(Debug, Clone)]
pub struct Options {
    /// The IMPLEMENTATION capability, also in the greeting.
    pub implementation: String,
    /// Offer STARTTLS (the server has a certificate).
    pub starttls: bool,
    /// The script limits: `max_script_size` bounds PUTSCRIPT and `max_redirects` is the
    /// MAXREDIRECTS capability.
    pub limits: Limits,
    /// Scripts one user may have (QUOTA/MAXSCRIPTS).
    pub max_scripts: usize,
    /// Characters of a script name; at least 128 (RFC 5804 §1.6).
    pub max_name_chars: usize,
    /// Bytes of a command line outside its literals.
    pub max_line: usize,
    /// Invalid commands after which the session ends with BYE.
    pub max_bad_commands: u32,
    pub mail: MailPolicy,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            implementation: "ringmail".into(),
            starttls: false,
            limits: Limits::default(),
            max_scripts: 50,
            max_name_chars: crate::name::MIN_NAME_LIMIT,
            max_line: 8 << 10,
            max_bad_commands: 10,
            mail: MailPolicy {
                relay: false,
                reject_by_reply: true,
            },
        }
    }
}
