//! Command-line options and their validation.
//!
//! Validation refuses what would make a run unbounded or aimed somewhere it should not be:
//! every run has a duration, and only loopback targets are accepted without `--allow-remote`.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// What each session does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// LOGIN and LOGOUT only, one connection per login.
    Logins,
    /// Durable APPEND throughput into each user's mailbox.
    Append,
    /// The classic imaptest mix (LIST, STATUS, SELECT, FETCH, STORE, EXPUNGE, APPEND...).
    Mix,
    /// SEARCH BODY, FROM, SUBJECT and flag searches over large mailboxes.
    Search,
    /// Thunderbird-like first sync, then CONDSTORE/QRESYNC resyncs.
    Sync,
    /// Many IDLE sessions; mail is appended to them and the notification delay measured.
    Idle,
    /// LMTP deliveries, as an MTA makes them: LHLO once per connection, then MAIL FROM,
    /// RCPT TO and DATA in a loop.
    Lmtp,
}

impl Profile {
    /// Messages each mailbox is kept near when `--messages` is not given.
    pub fn default_messages(self) -> u32 {
        match self {
            Profile::Logins | Profile::Idle | Profile::Lmtp => 0,
            Profile::Mix => 30,
            Profile::Append => 1000,
            Profile::Search | Profile::Sync => 1000,
        }
    }

    /// Concurrent sessions when `--clients` is not given: an MTA's usual LMTP connection
    /// count for lmtp (Postfix's default process limit per transport is 100, but 16 or so
    /// concurrent deliveries per mail store is the common setting), 10 otherwise.
    pub fn default_clients(self) -> u32 {
        match self {
            Profile::Lmtp => 16,
            _ => 10,
        }
    }

    /// Port when `--port` is not given.
    pub fn default_port(self, tls: bool) -> u16 {
        match (self, tls) {
            // ringmail's LMTP default (Dovecot's is 24).
            (Profile::Lmtp, _) => 2424,
            (_, true) => 993,
            (_, false) => 143,
        }
    }
}

/// How sessions log in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMechanism {
    /// LOGIN with the user's password.
    Login,
    /// AUTHENTICATE OAUTHBEARER (RFC 7628) with a signed JWT, as the SASL initial response.
    Oauthbearer,
    /// AUTHENTICATE XOAUTH2 with a signed JWT, as the SASL initial response.
    Xoauth2,
}

/// ringmail-load: drives an IMAP server (ringmail, Dovecot, any IMAP4rev1/rev2 server) with
/// many sessions and reports throughput, latency percentiles, errors and server cost.
#[derive(Debug, Clone, Parser)]
#[command(name = "ringmail-load", version, about)]
pub struct Options {
    /// What each session does.
    #[arg(value_enum)]
    pub profile: Profile,
    /// Server host name or address.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Server port (default 143, or 993 with --tls; lmtp: 2424).
    #[arg(long)]
    pub port: Option<u16>,
    /// Implicit TLS (IMAPS). Certificates are not verified: this is a load generator.
    #[arg(long, conflicts_with = "starttls")]
    pub tls: bool,
    /// STARTTLS after the greeting.
    #[arg(long)]
    pub starttls: bool,
    /// Accept a target that is not a loopback address.
    #[arg(long)]
    pub allow_remote: bool,
    /// Concurrent sessions (for `idle`: sessions held in IDLE; for `lmtp`: connections),
    /// default 10 (lmtp: 16). See [`Options::clients`].
    #[arg(short, long)]
    pub clients: Option<u32>,
    /// Seconds to measure, after the warm-up.
    #[arg(short, long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds to run before measuring (not counted in the summary).
    #[arg(long, default_value_t = 0.0)]
    pub warmup: f64,
    /// Most iterations per session (0: until the duration ends).
    #[arg(long, default_value_t = 0)]
    pub iterations: u64,
    /// Number of users; user names come from --user-pattern with %d = 1..=users.
    #[arg(short, long, default_value_t = 100)]
    pub users: u32,
    /// User name pattern; %d is replaced by the user number.
    #[arg(long, default_value = "user%d")]
    pub user_pattern: String,
    /// Password pattern; %d is replaced by the user number.
    #[arg(long, default_value = "pass")]
    pub password: String,
    /// How sessions log in: `login` (password), or `oauthbearer`/`xoauth2` with a JWT per
    /// user, signed with --oauth-key before the run starts.
    #[arg(long, value_enum, default_value = "login")]
    pub auth: AuthMechanism,
    /// PEM private key the tokens are signed with: EC P-256 (ES256) or RSA (RS256).
    #[arg(long)]
    pub oauth_key: Option<PathBuf>,
    /// The tokens' `iss` (the server's `[oauth] issuer`).
    #[arg(long)]
    pub oauth_issuer: Option<String>,
    /// The tokens' `aud` (the server's `[oauth] audience`).
    #[arg(long)]
    pub oauth_audience: Option<String>,
    /// The claim that names the user (the server's `[oauth] user_claim`).
    #[arg(long, default_value = "email")]
    pub oauth_claim: String,
    /// Key id in the tokens' header and in the JWK Set.
    #[arg(long, default_value = "loadtest")]
    pub oauth_kid: String,
    /// Writes the public JWK Set of --oauth-key here (the server's `[oauth] jwks_file`) and
    /// exits without a run.
    #[arg(long)]
    pub oauth_jwks_out: Option<PathBuf>,
    /// First user number.
    #[arg(long, default_value_t = 1)]
    pub first_user: u32,
    /// Mailbox the profiles work in.
    #[arg(long, default_value = "INBOX")]
    pub mailbox: String,
    /// Messages to keep each mailbox near (mix 30; append cleans up past it, default 1000;
    /// search and sync fill mailboxes to it first, default 1000).
    #[arg(long)]
    pub messages: Option<u32>,
    /// Messages to APPEND from: an mbox file (default: generated MIME messages).
    #[arg(long)]
    pub mbox: Option<PathBuf>,
    /// Largest generated message in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_message_size: usize,
    /// Seed for every random choice (message contents and each session's decisions).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Worker threads, each with its own single-threaded executor (default: CPU count).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Seconds a command may take before it counts as a timeout error.
    #[arg(long, default_value_t = 30.0)]
    pub timeout: f64,
    /// New connections per second while sessions start (0: as fast as possible).
    #[arg(long)]
    pub connect_rate: Option<u32>,
    /// Local addresses to connect from, round robin in blocks of 20000 sessions (several
    /// processes against one port each need their own: 127.0.0.2, 127.0.0.3, ...).
    #[arg(long, value_delimiter = ',')]
    pub source_addrs: Vec<IpAddr>,
    /// idle: messages appended per second, spread over the idling users.
    #[arg(long, default_value_t = 50)]
    pub deliver_rate: u32,
    /// idle: sessions that deliver (each APPEND needs its own login as the target user).
    #[arg(long, default_value_t = 4)]
    pub senders: u32,
    /// lmtp: recipients per message, distinct bench users drawn at random.
    #[arg(long, default_value_t = 1)]
    pub recipients: u32,
    /// lmtp: domain of the recipient addresses (`user%d@DOMAIN`), unless the user pattern
    /// has one.
    #[arg(long, default_value = "example.com")]
    pub rcpt_domain: String,
    /// lmtp: the envelope sender.
    #[arg(long, default_value = "loadtest@example.org")]
    pub sender: String,
    /// Server PID: its CPU time per 1000 commands and RSS are reported (children included).
    #[arg(long)]
    pub pid: Option<u32>,
    /// Write the summary as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// No per-second lines.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Why the options cannot run.
#[derive(Debug, thiserror::Error)]
pub enum OptionsError {
    /// Host did not resolve.
    #[error("cannot resolve {host}: {reason}")]
    Resolve {
        /// The host.
        host: String,
        /// Resolver message.
        reason: String,
    },
    /// Target is not loopback.
    #[error("{0} is not a loopback address; pass --allow-remote to load a remote server")]
    Remote(IpAddr),
    /// Any other invalid value.
    #[error("{0}")]
    Invalid(String),
}

/// Open files each process may use for sessions, below the hard limit of this machine class
/// (20000) with room for the runtime's own descriptors.
pub const SESSIONS_PER_PROCESS: u32 = 19_000;

/// Sessions per source address before the next one is used: below the 28231 ephemeral ports
/// of Linux's default range, so a source address never runs out.
pub const SESSIONS_PER_SOURCE: u32 = 20_000;

/// Longest run accepted, so that no run is unbounded by mistake.
const MAX_SECONDS: f64 = 7.0 * 24.0 * 3600.0;

impl Options {
    /// The server address the sessions connect to, after the loopback check.
    pub fn target(&self) -> Result<SocketAddr, OptionsError> {
        let port = self
            .port
            .unwrap_or_else(|| self.profile.default_port(self.tls));
        let addrs: Vec<SocketAddr> = (self.host.as_str(), port)
            .to_socket_addrs()
            .map_err(|e| OptionsError::Resolve {
                host: self.host.clone(),
                reason: e.to_string(),
            })?
            .collect();
        let addr = *addrs.first().ok_or_else(|| OptionsError::Resolve {
            host: self.host.clone(),
            reason: "no addresses".into(),
        })?;
        if !self.allow_remote {
            if let Some(remote) = addrs.iter().find(|a| !a.ip().is_loopback()) {
                return Err(OptionsError::Remote(remote.ip()));
            }
        }
        Ok(addr)
    }

    /// Checks every bound and combination; returns the target address.
    pub fn validate(&self) -> Result<SocketAddr, OptionsError> {
        let invalid = |m: &str| Err(OptionsError::Invalid(m.to_string()));
        if self.clients() == 0 {
            return invalid("--clients must be at least 1");
        }
        if self.users == 0 {
            return invalid("--users must be at least 1");
        }
        if !(self.duration > 0.0 && self.duration <= MAX_SECONDS) {
            return invalid("--duration must be more than 0 and at most a week");
        }
        if !(self.warmup >= 0.0 && self.warmup <= MAX_SECONDS) {
            return invalid("--warmup must be between 0 and a week");
        }
        if !(self.timeout > 0.0 && self.timeout <= 3600.0) {
            return invalid("--timeout must be more than 0 and at most 3600 seconds");
        }
        if self.threads == Some(0) {
            return invalid("--threads must be at least 1");
        }
        if self.max_message_size < 1024 {
            return invalid("--max-message-size must be at least 1024");
        }
        if self.mailbox.is_empty() || self.mailbox.contains(['"', '\\', '\r', '\n']) {
            return invalid(
                "--mailbox must be non-empty and not contain quotes, backslashes or line breaks",
            );
        }
        for (name, value) in [
            ("--user-pattern", &self.user_pattern),
            ("--password", &self.password),
        ] {
            if value.is_empty() || value.contains(['"', '\\', '\r', '\n', '\0']) {
                return Err(OptionsError::Invalid(format!(
                    "{name} must be non-empty and not contain quotes, backslashes or line breaks"
                )));
            }
        }
        if self.auth != AuthMechanism::Login {
            if self.profile == Profile::Lmtp {
                return invalid("lmtp does not log in: drop --auth");
            }
            if self.oauth_key.is_none()
                || self.oauth_issuer.is_none()
                || self.oauth_audience.is_none()
            {
                return invalid(
                    "--auth with tokens needs --oauth-key, --oauth-issuer and --oauth-audience",
                );
            }
        }
        if self.first_user.checked_add(self.users).is_none() {
            return invalid("--first-user + --users overflows");
        }
        if self.profile == Profile::Lmtp {
            if self.tls || self.starttls {
                return invalid("lmtp runs over plain TCP: drop --tls/--starttls");
            }
            if self.recipients == 0 || self.recipients > self.users {
                return invalid("lmtp needs 1 <= --recipients <= --users");
            }
            for (name, value) in [
                ("--rcpt-domain", &self.rcpt_domain),
                ("--sender", &self.sender),
            ] {
                if value.is_empty()
                    || value
                        .bytes()
                        .any(|b| b.is_ascii_control() || b" <>\"".contains(&b))
                {
                    return Err(OptionsError::Invalid(format!(
                        "{name} must be non-empty, without spaces, angle brackets, quotes or control characters"
                    )));
                }
            }
        }
        if self.profile == Profile::Idle {
            if self.users < self.clients() {
                return invalid("idle needs a user per idling session: --users >= --clients");
            }
            if self.senders == 0 || self.deliver_rate == 0 {
                return invalid("idle needs --senders and --deliver-rate of at least 1");
            }
        }
        let sessions = self.clients()
            + if self.profile == Profile::Idle {
                self.senders
            } else {
                0
            };
        if sessions > SESSIONS_PER_PROCESS {
            let processes = sessions.div_ceil(SESSIONS_PER_PROCESS);
            return Err(OptionsError::Invalid(format!(
                "{sessions} sessions need more open files than one process may have here; \
                 run {processes} processes, process k (1..={processes}) with --clients {per} \
                 --first-user {first}+(k-1)*{per} --source-addrs 127.0.0.k \
                 (see docs/loadtest.md, \"More than 19000 sessions\")",
                per = self.clients().div_ceil(processes),
                first = self.first_user
            )));
        }
        self.target()
    }

    /// Concurrent sessions: `--clients`, or the profile's default.
    pub fn clients(&self) -> u32 {
        self.clients
            .unwrap_or_else(|| self.profile.default_clients())
    }

    /// Duration of the measured part.
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.duration)
    }

    /// Duration of the warm-up.
    pub fn warmup(&self) -> Duration {
        Duration::from_secs_f64(self.warmup)
    }

    /// Per-command timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout)
    }

    /// Messages to keep each mailbox near.
    pub fn messages(&self) -> u32 {
        self.messages.unwrap_or(self.profile.default_messages())
    }

    /// User name of user number `n` (0-based index into the user range).
    pub fn user_name(&self, index: u32) -> String {
        let n = self.first_user.saturating_add(index).to_string();
        self.user_pattern.replace("%d", &n)
    }

    /// Password of user number `n` (0-based index into the user range).
    pub fn user_password(&self, index: u32) -> String {
        let n = self.first_user.saturating_add(index).to_string();
        self.password.replace("%d", &n)
    }

    /// Local address for session `index`: `--source-addrs` round robin in blocks of
    /// [`SESSIONS_PER_SOURCE`] sessions, or the kernel's choice.
    pub fn source_for(&self, index: u32) -> Option<IpAddr> {
        if self.source_addrs.is_empty() {
            return None;
        }
        let block = (index / SESSIONS_PER_SOURCE) as usize;
        self.source_addrs
            .get(block % self.source_addrs.len())
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(args: &[&str]) -> Options {
        let mut all = vec!["ringmail-load"];
        all.extend_from_slice(args);
        Options::try_parse_from(all).expect("arguments parse")
    }

    #[test]
    fn loopback_is_accepted() {
        let o = opts(&["logins", "--host", "127.0.0.1", "--port", "1143"]);
        assert_eq!(o.validate().unwrap(), "127.0.0.1:1143".parse().unwrap());
        let o = opts(&["logins", "--host", "::1"]);
        assert_eq!(o.validate().unwrap().port(), 143);
        assert_eq!(opts(&["logins", "--tls"]).validate().unwrap().port(), 993);
        assert_eq!(opts(&["lmtp"]).validate().unwrap().port(), 2424);
    }

    #[test]
    fn lmtp_defaults_and_limits() {
        assert_eq!(opts(&["lmtp"]).clients(), 16);
        assert_eq!(opts(&["mix"]).clients(), 10);
        assert_eq!(opts(&["lmtp", "--clients", "3"]).clients(), 3);
        for args in [
            &["lmtp", "--tls"][..],
            &["lmtp", "--recipients", "0"],
            &["lmtp", "--recipients", "5", "--users", "4"],
            &["lmtp", "--rcpt-domain", "a>b"],
            &["lmtp", "--sender", "a b@c"],
            &["lmtp", "--sender", "a\r\n@c"],
        ] {
            assert!(
                matches!(opts(args).validate(), Err(OptionsError::Invalid(_))),
                "{args:?}"
            );
        }
        assert!(opts(&["lmtp", "--recipients", "4", "--users", "4"])
            .validate()
            .is_ok());
    }

    #[test]
    fn remote_is_refused_unless_allowed() {
        let o = opts(&["logins", "--host", "192.0.2.7"]);
        assert!(matches!(o.validate(), Err(OptionsError::Remote(_))));
        let o = opts(&["logins", "--host", "192.0.2.7", "--allow-remote"]);
        assert!(o.validate().is_ok());
    }

    #[test]
    fn unbounded_or_empty_runs_are_refused() {
        for args in [
            &["logins", "--duration", "0"][..],
            &["logins", "--duration=-1"],
            &["logins", "--duration", "NaN"],
            &["logins", "--clients", "0"],
            &["logins", "--users", "0"],
            &["logins", "--timeout", "0"],
            &["logins", "--threads", "0"],
            &["mix", "--mailbox", "a\"b"],
            &["logins", "--password", "a\r\nb"],
            &["idle", "--clients", "50", "--users", "10"],
            &["logins", "--auth", "oauthbearer", "--oauth-key", "k.pem"],
            &[
                "lmtp",
                "--auth",
                "xoauth2",
                "--oauth-key",
                "k",
                "--oauth-issuer",
                "i",
                "--oauth-audience",
                "a",
            ],
        ] {
            assert!(
                matches!(opts(args).validate(), Err(OptionsError::Invalid(_))),
                "{args:?}"
            );
        }
    }

    #[test]
    fn too_many_sessions_for_one_process_names_the_split() {
        let err = opts(&["idle", "--clients", "100000", "--users", "100000"])
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains("run 6 processes"), "{err}");
    }

    #[test]
    fn tls_and_starttls_conflict() {
        assert!(Options::try_parse_from(["x", "logins", "--tls", "--starttls"]).is_err());
    }

    #[test]
    fn users_and_sources() {
        let o = opts(&[
            "logins",
            "--user-pattern",
            "u%d@x",
            "--password",
            "p%d",
            "--first-user",
            "5",
        ]);
        assert_eq!(o.user_name(0), "u5@x");
        assert_eq!(o.user_password(2), "p7");
        assert_eq!(o.source_for(0), None);
        let o = opts(&[
            "idle",
            "--users",
            "50",
            "--source-addrs",
            "127.0.0.2,127.0.0.3",
        ]);
        assert_eq!(o.source_for(0), Some(IpAddr::from([127, 0, 0, 2])));
        assert_eq!(o.source_for(19_999), Some(IpAddr::from([127, 0, 0, 2])));
        assert_eq!(o.source_for(20_000), Some(IpAddr::from([127, 0, 0, 3])));
        assert_eq!(o.source_for(40_000), Some(IpAddr::from([127, 0, 0, 2])));
    }
}
