//! The TOML configuration and its defaults.
//!
//! Every address, port, path, limit and timeout the server uses is a key here. Unknown keys are
//! an error (a typo must not silently fall back to a default). Relative paths are relative to the
//! data directory, so a data dir can be moved or backed up as one folder.
//!
//! `DEFAULT_TOML` is the commented file written on first start; a unit test checks that it parses
//! to exactly `Config::default()`, so the two cannot drift.

pub mod reference;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// The whole configuration file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Process-wide settings.
    pub server: ServerConfig,
    /// IMAP listeners and protocol options.
    pub imap: ImapConfig,
    /// Sizes a client controls.
    pub limits: LimitsConfig,
    /// TLS certificate and key.
    pub tls: TlsConfig,
    /// Where users come from (the backends in order), the auth cache, master users.
    pub auth: AuthConfig,
    /// The LDAP directory; used when `[auth] backends` lists "ldap".
    pub ldap: LdapConfig,
    /// OAuth 2.0 bearer tokens; used when `[auth] backends` lists "oauth".
    pub oauth: OauthConfig,
    /// PROXY protocol (HAProxy) trust.
    pub proxy: ProxyConfig,
    /// The mail store.
    pub storage: StorageConfig,
    /// Special-use mailboxes made at a user's first login.
    pub mailboxes: MailboxesConfig,
    /// Per-user quota.
    pub quota: QuotaConfig,
    /// LMTP delivery (from Postfix, Exim).
    pub lmtp: LmtpConfig,
    /// The Prometheus / health endpoint.
    pub metrics: MetricsConfig,
    /// The local socket operator tools use on a running server.
    pub admin: AdminConfig,
    /// Sieve filtering at delivery.
    pub sieve: SieveConfig,
    /// ManageSieve (RFC 5804), where clients manage their Sieve scripts.
    pub managesieve: ManageSieveConfig,
    /// Running as one node of a cluster (docs/cluster.md); off while `name` is empty.
    pub cluster: ClusterSection,
}

/// `[cluster]`: this node's part in a cluster of ringmail nodes (docs/cluster.md). Off while
/// `name` is empty: the server then runs alone. The control plane (`ringmail_cluster`) checks
/// the values in depth when the node starts; here only what makes the section usable at all.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSection {
    /// The cluster's name (its etcd keys live under `/ringmail/<name>/`); empty: no cluster.
    pub name: String,
    /// This node's id, unique in the cluster and stable across restarts.
    pub node: String,
    /// etcd client URLs of every member (`http://host:2379`).
    pub etcd: Vec<String>,
    /// Where this node accepts node-to-node connections (proxied sessions, LMTP forwarding).
    pub listen: SocketAddr,
    /// What the other nodes dial to reach `listen`; empty: `listen` itself.
    pub advertise: String,
    /// The secret all nodes share for node-to-node authentication (at least 32 bytes).
    pub secret_file: PathBuf,
    /// Seconds this node stays a member without renewing its etcd lease (2 to 60).
    pub lease_secs: u64,
    /// Copies of each partition on other nodes (0 to 4; 0: no replication).
    pub replicas: u32,
    /// Acknowledge a write only once every in-sync replica has it durable.
    pub sync: bool,
    /// This node's zone label (rack, data centre); empty: none.
    pub zone: String,
    /// Seconds a copy of a partition the map no longer lists this node for (a replica copy,
    /// an old owner's directory after a failover, a moved partition's old directory) is kept
    /// before it is removed (once the partition's owner and its in-sync replicas are alive),
    /// so that a replica placed here again soon is seeded with only what changed.
    pub stale_copy_grace_secs: u64,
    /// Replica moves the balancer runs at once towards one node (rebalancing after a node
    /// comes back or joins: each seeds a whole partition copy there).
    pub replica_moves_per_node: u32,
}

impl Default for ClusterSection {
    fn default() -> Self {
        Self {
            name: String::new(),
            node: String::new(),
            etcd: Vec::new(),
            listen: SocketAddr::from(([127, 0, 0, 1], 7143)),
            advertise: String::new(),
            secret_file: "cluster.secret".into(),
            lease_secs: 4,
            replicas: 1,
            sync: true,
            zone: String::new(),
            stale_copy_grace_secs: 600,
            replica_moves_per_node: 4,
        }
    }
}

impl ClusterSection {
    /// Whether this node is part of a cluster.
    pub fn enabled(&self) -> bool {
        !self.name.is_empty()
    }
}

/// `[sieve]`: users' Sieve scripts, run at LMTP delivery (docs/sieve.md).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SieveConfig {
    /// SMTP relay (`host:port`) for the mail scripts send: redirect, vacation replies and
    /// rejection notices. Empty: no relay, and scripts using those actions are refused at
    /// upload with a message that says so.
    pub submission: String,
    /// Largest script, in bytes.
    pub max_script_size: usize,
    /// Most scripts one user may keep.
    pub max_scripts: usize,
    /// Most redirects one message may cause.
    pub max_redirects: usize,
    /// Most actions one script run may take.
    pub max_actions: usize,
    /// Most steps (tests, commands, matched values) one script run may take.
    pub max_steps: u64,
    /// Seconds the relay may take to accept a message before the attempt is given up.
    pub submission_timeout_secs: u64,
    /// Bytes from the start of a message that the `body` test looks at.
    pub max_body_test_size: usize,
}

impl Default for SieveConfig {
    fn default() -> Self {
        Self {
            submission: String::new(),
            max_script_size: 1 << 20,
            max_scripts: 20,
            max_redirects: 4,
            max_actions: 32,
            max_steps: 1_000_000,
            submission_timeout_secs: 30,
            max_body_test_size: 1 << 20,
        }
    }
}

/// `[managesieve]`: the ManageSieve listener (RFC 5804).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ManageSieveConfig {
    /// Listeners (STARTTLS offered with the `[tls]` certificate); empty turns it off.
    pub listen: Vec<SocketAddr>,
    /// Seconds a client may stay silent before the connection is closed.
    pub idle_timeout_secs: u64,
}

impl Default for ManageSieveConfig {
    fn default() -> Self {
        Self {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 4190))],
            idle_timeout_secs: 600,
        }
    }
}

/// `[quota]`: the limits a new user starts with (0 = unlimited), set when the user's mailboxes
/// are first created (first login, delivery or import).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuotaConfig {
    /// Storage per user in MiB (the sum of message sizes, copies counted again).
    pub storage_mb: u64,
    /// Messages per user.
    pub messages: u64,
}

impl QuotaConfig {
    /// The store's form of these limits.
    pub fn limits(&self) -> ringmail_store::Quota {
        ringmail_store::Quota {
            max_bytes: match self.storage_mb {
                0 => u64::MAX,
                mb => mb.saturating_mul(1 << 20),
            },
            max_messages: match self.messages {
                0 => u64::MAX,
                n => n,
            },
        }
    }
}

/// `[lmtp]`: local delivery from the MTA (RFC 2033).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LmtpConfig {
    /// LMTP listeners; empty turns LMTP off.
    pub listen: Vec<SocketAddr>,
    /// Largest message accepted, in bytes (advertised as SIZE).
    pub max_message_size: u64,
    /// Most recipients in one transaction.
    pub max_recipients: usize,
    /// Deliver `user+detail@domain` into the folder `detail` when it exists (Dovecot's
    /// lmtp_save_to_detail_mailbox); otherwise, and when the folder is missing, into INBOX.
    pub save_to_detail_mailbox: bool,
    /// Separates the user from the detail in a recipient's local part; empty: no details.
    /// Sieve's `:user` / `:detail` split at it too.
    pub recipient_delimiter: String,
    /// Seconds the MTA may stay silent, in a command or in the middle of DATA.
    pub idle_timeout_secs: u64,
}

impl Default for LmtpConfig {
    fn default() -> Self {
        Self {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 2424))],
            max_message_size: 64 * 1024 * 1024,
            max_recipients: 1000,
            save_to_detail_mailbox: false,
            recipient_delimiter: "+".into(),
            idle_timeout_secs: 300,
        }
    }
}

/// `[metrics]`: the HTTP endpoint serving /metrics, /healthz and /readyz.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Addresses to serve on; an empty list turns the endpoint off.
    pub listen: Vec<SocketAddr>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 9143))],
        }
    }
}

/// `[admin]`: the Unix socket through which `ringmail import`, `export` and `sieve log` work on a running
/// server.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Socket path (relative to the data dir); empty turns it off. Made mode 0600, and only
    /// the server's OS user or root may connect.
    pub socket: PathBuf,
    /// Seconds an admin connection may wait between requests before it is closed.
    pub idle_timeout_secs: u64,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            socket: "admin.sock".into(),
            idle_timeout_secs: 300,
        }
    }
}

/// `[mailboxes]`: names of the special-use mailboxes (RFC 6154) created at first login.
/// An empty name skips that mailbox.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailboxesConfig {
    /// `\Drafts`
    pub drafts: String,
    /// `\Sent`
    pub sent: String,
    /// `\Trash`
    pub trash: String,
    /// `\Junk`
    pub junk: String,
    /// `\Archive`
    pub archive: String,
}

impl Default for MailboxesConfig {
    fn default() -> Self {
        Self {
            drafts: "Drafts".into(),
            sent: "Sent".into(),
            trash: "Trash".into(),
            junk: "Junk".into(),
            archive: "Archive".into(),
        }
    }
}

/// `[server]`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Data directory; `--data` overrides it. Empty means the directory holding this file.
    pub data_dir: PathBuf,
    /// Executors (one thread per core each); 0 means one per CPU the process may run on
    /// (its affinity: taskset, systemd CPUAffinity=, a cpuset), executor i pinned to the i-th.
    pub executors: usize,
    /// Log filter in `tracing_subscriber::EnvFilter` syntax, e.g. "info" or "ringmail=debug".
    pub log_level: String,
    /// "plain" or "json".
    pub log_format: LogFormat,
    /// Seconds to let sessions finish their current command after SIGTERM.
    pub shutdown_grace_secs: u64,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable single lines.
    Plain,
    /// One JSON object per line.
    Json,
}

/// `[imap]`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImapConfig {
    /// Plain IMAP listeners (STARTTLS offered).
    pub listen: Vec<SocketAddr>,
    /// Implicit-TLS listeners (IMAPS).
    pub listen_tls: Vec<SocketAddr>,
    /// Client networks whose plaintext connections count as secure for LOGIN (as Dovecot
    /// treats loopback). From anywhere else LOGIN and AUTHENTICATE PLAIN need TLS first and
    /// LOGINDISABLED is advertised.
    pub secure_networks: Vec<IpNet>,
    /// Failed logins on one connection before it is closed.
    pub max_login_failures: u32,
    /// First delay after a failed login, in milliseconds; it doubles per failure per address.
    pub login_failure_delay_ms: u64,
    /// Cap of the growing failed-login delay, in milliseconds.
    pub login_failure_delay_max_ms: u64,
    /// Seconds between `* OK Still here` lines during IDLE (NAT and mobile gateways drop a
    /// connection that is silent for minutes); each also restarts the autologout timer, as in
    /// Dovecot. 0 turns them off.
    pub idle_keepalive_secs: u64,
}

impl ImapConfig {
    /// Whether `ip` is in `secure_networks`.
    pub fn is_secure_network(&self, ip: std::net::IpAddr) -> bool {
        self.secure_networks.iter().any(|net| net.contains(&ip))
    }
}

/// `[limits]`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Longest command line in bytes, literals excluded.
    pub max_line: usize,
    /// Largest literal in bytes; also the APPENDLIMIT advertised.
    pub max_literal: u64,
    /// Deepest nesting of parentheses in a command.
    pub max_depth: usize,
    /// Most literals in one command.
    pub max_literals: usize,
    /// Connections from one client address that have not logged in yet, all executors
    /// together (see `server::admission`). Not applied to `[imap] secure_networks`.
    pub max_preauth_per_ip: usize,
    /// Concurrent sessions of one user from one client address after login (Dovecot's
    /// `mail_max_userip_connections`).
    pub max_sessions_per_user_ip: usize,
    /// Connections per process (enforced per executor as an equal share).
    pub max_connections: usize,
    /// Seconds a client may stay silent before logging in.
    pub idle_timeout_unauth_secs: u64,
    /// Seconds a logged-in client may stay silent (RFC 9051 asks for at least 30 minutes).
    pub idle_timeout_auth_secs: u64,
    /// The key `max_connections_per_ip` of earlier versions. It counted every connection of an
    /// address, so a NAT gateway's users were refused; it is kept only so that a config still
    /// setting it is refused with a message naming its replacements (see `validate`).
    #[serde(skip_serializing)]
    pub max_connections_per_ip: Option<toml::Value>,
}

/// `[tls]`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain (relative paths are under the data dir).
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// Oldest protocol version accepted: "1.2" or "1.3".
    pub min_version: String,
}

// `[auth]`, `[ldap]` and `[oauth]` are the auth crate's own structs (it validates them too), so
// the server and the auth crate cannot disagree about a key.
pub use ringmail_auth::config::{
    AuthConfig, BackendKind, LdapAttributes, LdapConfig, LdapVerify, OauthConfig,
};

/// `[proxy]`
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxyConfig {
    /// Networks allowed to send a PROXY protocol v1/v2 header (your load balancers).
    /// Connections from these networks must send one; from anywhere else one is refused.
    pub trusted_networks: Vec<IpNet>,
}

/// `[storage]`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Virtual partitions; fixed when the data dir is created (later changes are refused).
    pub partitions: u32,
    /// "always": nothing is acknowledged before fdatasync. "relaxed": acknowledged before the
    /// sync; a power loss or kernel crash can lose acknowledged mail (benchmarks only).
    pub durability: Durability,
    /// A log segment is sealed and a new one started at this size, in MiB.
    pub segment_size_mb: u64,
    /// A checkpoint of a partition's index is written after this many log records.
    pub checkpoint_every: u64,
}

/// When a mutation counts as done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Acknowledge after fdatasync.
    Always,
    /// Acknowledge before the sync (risks acknowledged mail on power loss).
    Relaxed,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::new(),
            executors: 0,
            log_level: "info".into(),
            log_format: LogFormat::Plain,
            shutdown_grace_secs: 5,
        }
    }
}

impl Default for ImapConfig {
    fn default() -> Self {
        Self {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 1143))],
            listen_tls: vec![SocketAddr::from(([127, 0, 0, 1], 1993))],
            secure_networks: vec![
                "127.0.0.0/8".parse().expect("valid literal"),
                "::1/128".parse().expect("valid literal"),
            ],
            max_login_failures: 3,
            login_failure_delay_ms: 1000,
            login_failure_delay_max_ms: 15000,
            idle_keepalive_secs: 120,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_line: 64 * 1024,
            max_literal: 64 * 1024 * 1024,
            max_depth: 32,
            max_literals: 1024,
            max_preauth_per_ip: 100,
            max_sessions_per_user_ip: 20,
            max_connections: 100_000,
            idle_timeout_unauth_secs: 60,
            idle_timeout_auth_secs: 30 * 60,
            max_connections_per_ip: None,
        }
    }
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            cert: "tls/cert.pem".into(),
            key: "tls/key.pem".into(),
            min_version: "1.2".into(),
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            partitions: 256,
            durability: Durability::Always,
            segment_size_mb: 256,
            checkpoint_every: 100_000,
        }
    }
}

/// Why a config could not be used. The message names the file, the key and the fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// TOML syntax, a wrong type or an unknown key.
    #[error("bad config {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What toml said, with line and column.
        message: String,
    },
    /// A value that parses but cannot work.
    #[error("bad config {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates config text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().replace('\n', " ").trim().to_string(),
        })?;
        config.validate().map_err(|message| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        })?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        if self.imap.listen.is_empty() && self.imap.listen_tls.is_empty() {
            return Err("[imap] listen and listen_tls are both empty: nothing to serve".into());
        }
        if !matches!(self.tls.min_version.as_str(), "1.2" | "1.3") {
            return Err(format!(
                "[tls] min_version = {:?}: use \"1.2\" or \"1.3\"",
                self.tls.min_version
            ));
        }
        if self.limits.max_line < 1024 {
            return Err("[limits] max_line must be at least 1024 bytes".into());
        }
        if self.limits.max_depth == 0 || self.limits.max_literals == 0 {
            return Err("[limits] max_depth and max_literals must be at least 1".into());
        }
        if self.storage.segment_size_mb == 0 || self.storage.segment_size_mb > 2048 {
            return Err("[storage] segment_size_mb must be between 1 and 2048".into());
        }
        if self.storage.partitions == 0 {
            return Err("[storage] partitions must be at least 1".into());
        }
        if self.lmtp.max_message_size == 0
            || self.lmtp.max_message_size > ringmail_store::MAX_MESSAGE_SIZE as u64
        {
            return Err(format!(
                "[lmtp] max_message_size must be between 1 and {} bytes (the store's limit)",
                ringmail_store::MAX_MESSAGE_SIZE
            ));
        }
        if self.lmtp.max_recipients == 0 {
            return Err("[lmtp] max_recipients must be at least 1".into());
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.server.log_level) {
            return Err(format!(
                "[server] log_level = {:?}: {e} (e.g. \"info\" or \"ringmail=debug,info\")",
                self.server.log_level
            ));
        }
        if self.admin.idle_timeout_secs == 0 {
            return Err("[admin] idle_timeout_secs must be at least 1".into());
        }
        if self.imap.max_login_failures == 0 {
            return Err("[imap] max_login_failures must be at least 1".into());
        }
        if self.limits.max_connections_per_ip.is_some() {
            return Err(
                "[limits] max_connections_per_ip was removed: use max_preauth_per_ip (connections \
                 from one address before login, default 100) and max_sessions_per_user_ip \
                 (sessions of one user from one address, default 20); see docs/tuning.md"
                    .into(),
            );
        }
        if !self.sieve.submission.is_empty() && self.sieve.submission.parse::<SocketAddr>().is_err()
        {
            return Err(format!(
                "[sieve] submission = {:?}: give the relay as ip:port (e.g. \"127.0.0.1:25\"), \
                 or \"\" for none",
                self.sieve.submission
            ));
        }
        if self.sieve.max_script_size == 0 || self.sieve.max_scripts == 0 {
            return Err("[sieve] max_script_size and max_scripts must be at least 1".into());
        }
        if self.managesieve.idle_timeout_secs == 0 || self.sieve.submission_timeout_secs == 0 {
            return Err(
                "[managesieve] idle_timeout_secs and [sieve] submission_timeout_secs must be at \
                 least 1"
                    .into(),
            );
        }
        if self.cluster.enabled() && (self.cluster.node.is_empty() || self.cluster.etcd.is_empty())
        {
            return Err(format!(
                "[cluster] name = {:?} turns clustering on, which needs node (this node's id) \
                 and etcd (the etcd endpoints) too; set name = \"\" to run alone",
                self.cluster.name
            ));
        }
        if self.limits.max_preauth_per_ip == 0
            || self.limits.max_sessions_per_user_ip == 0
            || self.limits.max_connections == 0
        {
            return Err("[limits] max_preauth_per_ip, max_sessions_per_user_ip and \
                        max_connections must be at least 1"
                .into());
        }
        self.validate_auth()
    }

    /// `[auth]`, `[ldap]` and `[oauth]` together. The sections always exist here (with their
    /// defaults, so the default file can document them); one that differs from its defaults
    /// while `backends` does not list it is a mistake worth stopping for.
    fn validate_auth(&self) -> Result<(), String> {
        if self.ldap_section().is_none() && self.ldap != LdapConfig::default() {
            return Err(
                "there are [ldap] settings but [auth] backends does not list \"ldap\": \
                        add it (e.g. backends = [\"passwd-file\", \"ldap\"]) or remove them"
                    .into(),
            );
        }
        if self.oauth_section().is_none() && self.oauth != OauthConfig::default() {
            return Err(
                "there are [oauth] settings but [auth] backends does not list \"oauth\": \
                        add it (e.g. backends = [\"passwd-file\", \"oauth\"]) or remove them"
                    .into(),
            );
        }
        ringmail_auth::config::validate(&self.auth, self.ldap_section(), self.oauth_section())
            .map_err(|e| e.0)
    }

    /// `[ldap]` when `[auth] backends` lists "ldap" (what the authenticator is built from).
    pub fn ldap_section(&self) -> Option<&LdapConfig> {
        self.auth
            .backends
            .contains(&BackendKind::Ldap)
            .then_some(&self.ldap)
    }

    /// `[oauth]` when `[auth] backends` lists "oauth".
    pub fn oauth_section(&self) -> Option<&OauthConfig> {
        self.auth
            .backends
            .contains(&BackendKind::Oauth)
            .then_some(&self.oauth)
    }

    /// `path` made absolute under `data_dir` when relative.
    pub fn resolve(data_dir: &Path, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_owned()
        } else {
            data_dir.join(path)
        }
    }

    /// The store's options from `[storage]`.
    pub fn store_options(&self) -> ringmail_store::Options {
        ringmail_store::Options {
            durability: match self.storage.durability {
                Durability::Always => ringmail_store::Durability::Always,
                Durability::Relaxed => ringmail_store::Durability::Relaxed,
            },
            segment_size: self.storage.segment_size_mb << 20,
            checkpoint_every: self.storage.checkpoint_every,
            ..ringmail_store::Options::default()
        }
    }

    /// Every TCP address the server is told to listen on (`[imap] listen`, `listen_tls`,
    /// `[lmtp] listen`), so the runtime can see at reload that they changed without naming
    /// the protocols.
    pub fn listen_addresses(&self) -> Vec<SocketAddr> {
        [
            &self.imap.listen,
            &self.imap.listen_tls,
            &self.lmtp.listen,
            &self.managesieve.listen,
        ]
        .into_iter()
        .flatten()
        .copied()
        .collect()
    }

    /// The admin socket's path, or None when it is turned off.
    pub fn admin_socket(&self, data_dir: &Path) -> Option<PathBuf> {
        (!self.admin.socket.as_os_str().is_empty())
            .then(|| Self::resolve(data_dir, &self.admin.socket))
    }

    /// Idle limit before login.
    pub fn idle_unauth(&self) -> Duration {
        Duration::from_secs(self.limits.idle_timeout_unauth_secs)
    }

    /// Idle limit after login.
    pub fn idle_auth(&self) -> Duration {
        Duration::from_secs(self.limits.idle_timeout_auth_secs)
    }
}

/// The commented config written into a new data dir. Must parse to `Config::default()`.
pub const DEFAULT_TOML: &str = r#"# ringmail configuration. Relative paths are relative to the data directory.
# Unknown keys are an error. SIGHUP re-reads this file, the TLS certificate and the users
# file; listen addresses, executors and partitions take effect at the next start.

[server]
# Data directory; empty = the directory holding this file. `--data DIR` overrides.
data_dir = ""
# Executors, one thread per core each; 0 = one per CPU the process may run on (its
# affinity: taskset, CPUAffinity=, a cpuset), executor i pinned to the i-th of them.
executors = 0
# Log filter: "info", "debug", "ringmail=debug,info", ...
log_level = "info"
# "plain" or "json"
log_format = "plain"
# Seconds sessions get to finish after SIGTERM before they are closed.
shutdown_grace_secs = 5

[imap]
# Plain IMAP listeners (STARTTLS offered).
listen = ["127.0.0.1:1143"]
# Implicit TLS listeners (IMAPS).
listen_tls = ["127.0.0.1:1993"]
# Plaintext connections from these networks may LOGIN without TLS (like Dovecot's loopback
# rule); from anywhere else LOGINDISABLED is advertised until STARTTLS.
secure_networks = ["127.0.0.0/8", "::1/128"]
# Failed logins on one connection before it is closed.
max_login_failures = 3
# Delay after a failed login (ms); doubles per failure from the same address, up to the max.
login_failure_delay_ms = 1000
login_failure_delay_max_ms = 15000
# Seconds between "* OK Still here" lines sent during IDLE, so NAT and mobile gateways keep
# the connection open (Dovecot sends them every 2 minutes too). A kept-alive IDLE is not
# logged out by idle_timeout_auth_secs; 0 = no keepalives, and IDLE ends after
# idle_timeout_auth_secs without client input (clients re-issue IDLE every 29 minutes).
idle_keepalive_secs = 120

[limits]
# Longest command line in bytes (literals excluded).
max_line = 65536
# Largest literal in bytes; also advertised as APPENDLIMIT.
max_literal = 67108864
# Deepest nesting of parentheses in one command.
max_depth = 32
# Most literals in one command.
max_literals = 1024
# Connections from one client address that have not logged in yet, all cores together: a
# flood guard. Not applied to secure_networks; behind a trusted balancer it counts the
# address its PROXY header names. The next connection gets "* BYE [UNAVAILABLE]".
max_preauth_per_ip = 100
# Concurrent sessions of one user from one address after login (Dovecot's
# mail_max_userip_connections); the next LOGIN gets "NO [LIMIT]". Sizing: docs/tuning.md.
max_sessions_per_user_ip = 20
# Connections per process, enforced per core as an equal share.
max_connections = 100000
# Seconds of silence allowed before and after login.
idle_timeout_unauth_secs = 60
idle_timeout_auth_secs = 1800

[tls]
# PEM files; a self-signed pair is generated on first start.
cert = "tls/cert.pem"
key = "tls/key.pem"
# "1.2" or "1.3"
min_version = "1.2"

[auth]
# Where users come from, asked in this order: "passwd-file" (users_file), "ldap" ([ldap]),
# "oauth" ([oauth]: OAUTHBEARER and XOAUTH2 bearer tokens). The first backend that knows a
# user decides; one that is down is passed over, and if no later one knows the user the
# login answers NO [UNAVAILABLE]. Every node of a cluster should list the same. docs/auth.md.
backends = ["passwd-file"]
# Dovecot-format passwd-file: name:{ARGON2ID}$argon2id$...
users_file = "users"
# Seconds a verified login is cached as a keyed hash (never the password), for every
# backend: a password changed or a user disabled in the directory takes effect after it;
# 0 = off.
cache_ttl_secs = 300
cache_size = 100000
# Users who may log in as any other user: "LOGIN alice*support <support's password>", or
# AUTHENTICATE PLAIN with alice as authorization identity. Logged as such.
masters = []
# What separates the user from the master in a LOGIN name (only when masters is not empty).
master_separator = "*"

[ldap]
# The directory (RFC 4511), used when [auth] backends lists "ldap": ldap://host[:port] or
# ldaps://host[:port] (TLS from the first byte). Keys unset by default, explained below:
# ca_file, bind_dn, bind_password_file. docs/auth.md has examples.
uri = "ldap://127.0.0.1"
# Upgrade an ldap:// connection with StartTLS before anything is sent. The directory's
# certificate is checked against ca_file = "ldap-ca.pem" when set, else the system's CAs.
starttls = false
# The search base, e.g. "ou=people,dc=example,dc=org" (required with "ldap").
base = ""
# The search filter: %u is the login name (lowercased), %n its part before '@', %d its part
# after; values are escaped (RFC 4515). The search binds as bind_dn = "cn=imap,dc=example,dc=org"
# with the password in bind_password_file = "ldap.secret" (one line), or is anonymous when
# neither is set.
user_filter = "(&(objectClass=inetOrgPerson)(uid=%u))"
# "bind": bind as the user's DN with the password (the directory checks it). "compare": read
# userPassword ({SSHA}, {CRYPT}, {ARGON2}, ...) and check it here; needs bind_dn.
verify = "bind"
# The longest a login waits for the directory, all steps together (ms); past it the login
# answers NO [UNAVAILABLE].
timeout_ms = 5000
# Connections kept to the directory; logins beyond this many at once wait for one.
pool_size = 8
# Attributes of the user's entry, each optional, e.g.
# { name = "mail", quota = "mailQuota", enabled = "mailEnabled" }: the canonical user name,
# the quota (bytes or 500M / 1G; it replaces [quota] storage_mb for that user, 0 = unlimited)
# and an LDAP Boolean; enabled = FALSE refuses the login.
attributes = {}

[oauth]
# OAuth 2.0 bearer tokens (OAUTHBEARER, XOAUTH2), used when [auth] backends lists "oauth";
# AUTH=OAUTHBEARER AUTH=XOAUTH2 are advertised only then. Tokens' iss must equal issuer and
# their aud contain audience (both required with "oauth"). Keys unset by default, explained
# below: jwks_file, jwks_url, introspection_url, introspection_client_id,
# introspection_secret_file, scope. docs/auth.md has examples.
issuer = ""
audience = ""
# The issuer's keys: jwks_file = "jwks.json" (read at start) or jwks_url = "https://..."
# (fetched at start, every jwks_refresh_secs, and when a token names an unknown key id, at
# most once per jwks_min_refresh_secs). Opaque tokens: introspection_url = "https://..."
# (RFC 7662), with introspection_client_id and introspection_secret_file.
jwks_refresh_secs = 3600
jwks_min_refresh_secs = 10
# The claim naming the user; strip_domain = true keeps only its part before the last '@'.
user_claim = "email"
strip_domain = false
# Seconds of clock skew allowed on exp and nbf.
leeway_secs = 30
# Longest wait for the JWKS URL or the introspection endpoint (ms). The scope sent in the
# RFC 7628 error challenge is scope = "..." (unset: none).
timeout_ms = 5000

[proxy]
# Load balancers allowed to send a PROXY v1/v2 header, e.g. ["10.0.0.0/24"].
# Connections from these networks must send one; from anywhere else it is refused.
trusted_networks = []

[storage]
# Virtual partitions, fixed when the data dir is created.
partitions = 256
# "always": reply only after fdatasync. "relaxed": reply before the sync; a power loss can
# lose acknowledged mail. Use "relaxed" for benchmarks only.
durability = "always"
# Log segments are sealed at this size (MiB); compaction works on sealed segments.
segment_size_mb = 256
# A checkpoint of a partition's index is written every this many log records.
checkpoint_every = 100000

[mailboxes]
# Special-use mailboxes created at a user's first login; "" skips one.
drafts = "Drafts"
sent = "Sent"
trash = "Trash"
junk = "Junk"
archive = "Archive"

[quota]
# Limits a new user starts with; 0 = unlimited. APPEND over the limit fails with
# NO [OVERQUOTA], LMTP delivery with 552 5.2.2.
storage_mb = 0
messages = 0

[lmtp]
# LMTP listeners for the MTA (Postfix: virtual_transport = lmtp:inet:127.0.0.1:2424);
# [] turns LMTP off.
listen = ["127.0.0.1:2424"]
# Largest message accepted (bytes), advertised as SIZE.
max_message_size = 67108864
# Most recipients in one transaction.
max_recipients = 1000
# Deliver user+detail@domain into the folder "detail" when it exists (else INBOX).
save_to_detail_mailbox = false
# Separates user and detail in the local part; "" = no details. Sieve's `:user` and
# `:detail` (RFC 5233) split addresses at the same delimiter.
recipient_delimiter = "+"
# Seconds the MTA may stay silent, also in the middle of DATA.
idle_timeout_secs = 300

[metrics]
# HTTP endpoint for Prometheus (/metrics) and health checks (/healthz, /readyz);
# [] turns it off. Keep it on a private address: it is not authenticated.
listen = ["127.0.0.1:9143"]

[admin]
# Unix socket through which `ringmail import`, `export` and `sieve log` work while the server runs;
# "" = off.
# Mode 0600: only the server's OS user (or root) may use it.
socket = "admin.sock"
# Seconds an admin connection may stay silent before it is closed.
idle_timeout_secs = 300

[sieve]
# SMTP relay (host:port) for the mail users' scripts send: redirect, vacation replies and
# rejection notices. "" = no relay: scripts using those actions are refused at upload.
submission = ""
# Seconds the relay may take to accept one message.
submission_timeout_secs = 30
# Largest script (bytes) and most scripts per user.
max_script_size = 1048576
max_scripts = 20
# Most redirects and most actions one message may cause.
max_redirects = 4
max_actions = 32
# Most steps (tests, commands, matched values) one script run may take.
max_steps = 1000000
# Bytes from the start of a message the body test looks at; text past them is not seen
# (the message is stored whole all the same).
max_body_test_size = 1048576

[managesieve]
# ManageSieve listeners (RFC 5804; STARTTLS with the [tls] certificate); [] turns it off.
listen = ["127.0.0.1:4190"]
# Seconds a client may stay silent before the connection is closed.
idle_timeout_secs = 600

[cluster]
# Run as one node of a cluster (docs/cluster.md): the cluster's name, under which its keys
# live in etcd. "" = no cluster: this server runs alone and the other keys are ignored.
name = ""
# This node's id: unique in the cluster, kept across restarts.
node = ""
# etcd client URLs of every member, e.g. ["http://10.0.0.5:2379", "http://10.0.0.6:2379"].
etcd = []
# Node-to-node listener (proxied IMAP sessions, forwarded LMTP deliveries). Keep it on a
# private network: the link is authenticated, not encrypted.
listen = "127.0.0.1:7143"
# What the other nodes dial to reach listen; "" = listen (which must then not be 0.0.0.0).
advertise = ""
# File holding the secret every node shares (at least 32 bytes), e.g. made with
# `head -c 32 /dev/urandom | base64`; the same file on every node.
secret_file = "cluster.secret"
# Seconds this node stays a member without renewing its etcd lease (2 to 60): also how long
# a crashed node's partitions stay unserved before an in-sync replica takes over (4: service
# back within 5 s of a crash; renewed every quarter, so two lost renewals are survived).
lease_secs = 4
# Copies of each partition kept on other nodes (0 to 4; 0 = no replication). When a node
# dies, an in-sync replica of each of its partitions takes over. Set the same on every node:
# the elected balancer places replicas by its own value.
replicas = 1
# true: a write (IMAP OK, LMTP 250, import) is acknowledged only once every in-sync replica
# has it on disk, so a failover loses nothing acknowledged. false: acknowledged after the
# local fsync and shipped after; a failover can lose the writes of the last moments.
sync = true
# This node's zone (rack, data centre: letters, digits, '-', '_', '.'); "" = none. A
# partition's copies are put in different zones when there are nodes to do so.
zone = ""
# Seconds a copy of a partition that the map no longer lists this node for is kept before
# it is removed: a replica copy (DATA/p-NNNN.replica; an old owner's p-NNNN after a failover
# becomes one), or a p-NNNN a completed move left (MOVED). A replica placed here again within
# that time is seeded with only what changed. A copy is removed only while the partition's
# owner and all its replicas are alive and in sync (replicas = 0: while its owner is alive
# at a later epoch), never when it could be the only up-to-date copy.
stale_copy_grace_secs = 600
# Replica moves the elected balancer runs at once towards one node (1 to 64) when it evens
# out the replicas per node, e.g. for a node that comes back after its partitions failed
# over: each seeds a whole partition copy there. Higher refills a returning node faster
# (docs/cluster.md, "Replicas and failover") at the cost of more disk and link load on it.
replica_moves_per_node = 4
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_file_matches_defaults() {
        let parsed = Config::parse(DEFAULT_TOML, Path::new("default")).expect("default parses");
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Config::parse("[imap]\nlisten_tsl = []\n", Path::new("x.toml")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("listen_tsl"), "{msg}");
        assert!(msg.contains("x.toml"), "{msg}");
    }

    #[test]
    fn invalid_value_is_refused() {
        let err = Config::parse("[tls]\nmin_version = \"1.1\"\n", Path::new("x")).unwrap_err();
        assert!(err.to_string().contains("min_version"));
    }

    #[test]
    fn removed_per_ip_key_names_its_replacements() {
        let err = Config::parse(
            "[limits]\nmax_connections_per_ip = 200\n",
            Path::new("x.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("x.toml"), "{err}");
        assert!(err.contains("max_connections_per_ip"), "{err}");
        assert!(err.contains("max_preauth_per_ip"), "{err}");
        assert!(err.contains("max_sessions_per_user_ip"), "{err}");
    }

    #[test]
    fn auth_sections_are_validated_with_the_backends() {
        let err = |text: &str| {
            Config::parse(text, Path::new("x.toml"))
                .unwrap_err()
                .to_string()
        };
        let e = err("[ldap]\nbase = \"dc=example,dc=org\"\n");
        assert!(e.contains("backends does not list \"ldap\""), "{e}");
        let e = err("[oauth]\nissuer = \"https://id\"\n");
        assert!(e.contains("backends does not list \"oauth\""), "{e}");
        let e = err("[auth]\nbackends = [\"passwd-file\", \"ldap\"]\n");
        assert!(e.contains("[ldap] base is empty"), "{e}");
        let e = err("[auth]\nbackends = [\"oauth\"]\n[oauth]\nissuer = \"i\"\naudience = \"a\"\n");
        assert!(e.contains("jwks_file or jwks_url"), "{e}");
        let e = err("[auth]\nbackends = [\"sql\"]\n");
        assert!(e.contains("sql"), "{e}");
        let ok = Config::parse(
            "[auth]\nbackends = [\"passwd-file\", \"ldap\", \"oauth\"]\nmasters = [\"support\"]\n\
             [ldap]\nuri = \"ldaps://ldap.example.org\"\nbase = \"ou=people,dc=example,dc=org\"\n\
             attributes = { name = \"mail\" }\n\
             [oauth]\nissuer = \"https://id\"\naudience = \"imap\"\njwks_file = \"jwks.json\"\n",
            Path::new("x.toml"),
        )
        .unwrap();
        assert_eq!(
            ok.ldap_section().map(|l| l.attributes.name.as_deref()),
            Some(Some("mail"))
        );
        assert!(ok.oauth_section().is_some());
        assert!(Config::default().ldap_section().is_none());
    }

    #[test]
    fn empty_file_is_defaults() {
        assert_eq!(
            Config::parse("", Path::new("x")).unwrap(),
            Config::default()
        );
    }
}
