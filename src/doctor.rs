//! `ringmail doctor`: checks what a new operator most often gets wrong, and says how to fix
//! each problem.
//!
//! Every check is independent and reports one line (`ok`, `warn` or `FAIL`) plus, when
//! something is wrong, one `fix:` line. Warnings are things that work but deserve a look
//! (a self-signed certificate, a server of this data dir that is not listening yet); only
//! failures make the exit status non-zero. Checks that need the config are skipped when the config is broken, since
//! their answers would be about defaults the operator does not use.

use std::fmt;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::server::datadir::{self, CONFIG_NAME, DEFAULT_DATA_DIR};
use crate::server::lock;
use crate::server::{limits, sockets};

/// Less free space than this on the data dir's filesystem fails the check.
const MIN_FREE_BYTES: u64 = 1 << 30;
/// A certificate expiring within this many days is a warning.
const CERT_WARN_DAYS: i64 = 21;
/// glommio needs io_uring features from this kernel on.
const MIN_KERNEL: (u32, u32) = (5, 8);

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Fine.
    Pass,
    /// Works, but look at it.
    Warn,
    /// Will not work; the exit status is non-zero.
    Fail,
    /// Not run because something it depends on failed.
    Skip,
}

/// One check's result.
#[derive(Debug, Clone)]
pub struct Check {
    /// Pass, warn, fail or skip.
    pub status: Status,
    /// What was checked ("config", "port", "tls", ...).
    pub area: &'static str,
    /// What was found.
    pub message: String,
    /// What to do about it (for warnings and failures).
    pub fix: Option<String>,
}

impl Check {
    fn pass(area: &'static str, message: impl Into<String>) -> Check {
        Check {
            status: Status::Pass,
            area,
            message: message.into(),
            fix: None,
        }
    }

    fn warn(area: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            status: Status::Warn,
            area,
            message: message.into(),
            fix: Some(fix.into()),
        }
    }

    fn fail(area: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            status: Status::Fail,
            area,
            message: message.into(),
            fix: Some(fix.into()),
        }
    }
}

/// Every check's result, in the order they ran.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The checks.
    pub checks: Vec<Check>,
}

impl Report {
    /// How many checks failed.
    pub fn failures(&self) -> usize {
        self.checks
            .iter()
            .filter(|c| c.status == Status::Fail)
            .count()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for check in &self.checks {
            let status = match check.status {
                Status::Pass => "ok",
                Status::Warn => "warn",
                Status::Fail => "FAIL",
                Status::Skip => "skip",
            };
            writeln!(f, "{status:<5} {:<9} {}", check.area, check.message)?;
            if let Some(fix) = &check.fix {
                writeln!(f, "{:<15} fix: {fix}", "")?;
            }
        }
        let failed = self.failures();
        if failed == 0 {
            writeln!(f, "all checks passed")
        } else {
            writeln!(f, "{failed} check(s) failed")
        }
    }
}

/// Runs every check for the data dir and config that `ringmail serve` would use with the same
/// `--data` / `--config` arguments. Creates nothing.
pub fn run(data: Option<&Path>, config: Option<&Path>) -> Report {
    let mut report = Report::default();
    let loaded = check_config(&config_file(data, config), &mut report);
    let layout = loaded.and_then(|_| match datadir::resolve(data, config, false) {
        Ok(layout) => Some(layout),
        Err(e) => {
            report.checks.push(Check::fail(
                "data dir",
                e,
                "start `ringmail serve` once to create the data dir, or point --data at it",
            ));
            None
        }
    });
    match &layout {
        Some(layout) => {
            let config = &layout.config;
            let ports = config
                .imap
                .listen
                .iter()
                .map(|a| (*a, "[imap] listen"))
                .chain(
                    config
                        .imap
                        .listen_tls
                        .iter()
                        .map(|a| (*a, "[imap] listen_tls")),
                )
                .chain(config.lmtp.listen.iter().map(|a| (*a, "[lmtp] listen")))
                .chain(
                    config
                        .managesieve
                        .listen
                        .iter()
                        .map(|a| (*a, "[managesieve] listen")),
                )
                .chain(
                    config
                        .metrics
                        .listen
                        .iter()
                        .map(|a| (*a, "[metrics] listen")),
                );
            // Read once, so every port is judged against the same answer.
            let server = lock::holder(&layout.data_dir);
            for (addr, key) in ports {
                report.checks.push(check_port(addr, key, server));
            }
            report.checks.extend(check_tls(&layout.data_dir, config));
            if config
                .auth
                .backends
                .contains(&crate::config::BackendKind::PasswdFile)
            {
                report.checks.push(check_users(&Config::resolve(
                    &layout.data_dir,
                    &config.auth.users_file,
                )));
            }
            report.checks.extend(check_auth(&layout.data_dir, config));
            report.checks.push(check_data_dir(&layout.data_dir));
        }
        None => report.checks.push(Check {
            status: Status::Skip,
            area: "setup",
            message: "ports, certificate, users file and data dir not checked".into(),
            fix: Some("fix the config first, then run `ringmail doctor` again".into()),
        }),
    }
    report.checks.push(check_memlock());
    report.checks.push(check_io_uring());
    report
}

fn check_config(path: &Path, report: &mut Report) -> Option<Config> {
    match Config::load(path) {
        Ok(config) => {
            report
                .checks
                .push(Check::pass("config", format!("{} parses", path.display())));
            Some(config)
        }
        Err(e) => {
            let fix = match &e {
                crate::config::ConfigError::Read { .. } => {
                    "start `ringmail serve` once to create a commented config in the data dir, \
                     or pass --config FILE"
                }
                crate::config::ConfigError::Parse { .. } => {
                    "correct the line named above; every key and its default is in \
                     docs/config.md (`ringmail config-reference`)"
                }
                crate::config::ConfigError::Invalid { .. } => {
                    "change the value as the message says"
                }
            };
            report
                .checks
                .push(Check::fail("config", e.to_string(), fix));
            None
        }
    }
}

/// Whether `addr` can be listened on, or who listens on it. `server` is the process holding
/// the data dir's lock (the running ringmail of this data dir), if any: every port of a
/// running server gets the same verdict, "served by" it.
///
/// The kernel's socket table decides whether something listens; a test bind alone cannot,
/// because the executors listen with SO_REUSEPORT and their accepted connections keep the
/// port bound after they are gone (see `server::sockets`). A plain bind (SO_REUSEADDR only)
/// fails on any listener, so when it succeeds the port is certainly free; when it fails but
/// the table shows no listener, the table is read again (it may have changed while being
/// read) before the failure is put down to connections left on the port.
fn check_port(addr: SocketAddr, key: &str, server: Option<lock::Holder>) -> Check {
    let mut found = sockets::listeners(addr);
    let mut plain = Ok(());
    if found.is_empty() {
        plain = std::net::TcpListener::bind(addr).map(drop);
        for _ in 0..3 {
            if !found.is_empty() || !is_in_use(&plain) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
            found = sockets::listeners(addr);
        }
    }
    if !found.is_empty() {
        let inodes: Vec<u64> = found.iter().map(|s| s.inode).collect();
        return listened_on(addr, key, sockets::owner(&inodes), server);
    }
    let bound = match plain {
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            // Nothing listens, yet the port is bound: connections of an earlier server are
            // still closing on it. ringmail's own bind (SO_REUSEPORT) works past them.
            reuseport_bind(addr).map(|()| true)
        }
        other => other.map(|()| false),
    };
    match (bound, server) {
        (Ok(_), Some(holder)) => Check::warn(
            "port",
            format!(
                "{addr} ({key}) is not listened on, though {} runs on this data dir",
                running(holder)
            ),
            "it is still starting (recovering partitions) or failed to bind (see its log); \
             a changed listen address takes effect at the next restart",
        ),
        (Ok(false), None) => Check::pass("port", format!("{addr} ({key}) is free")),
        (Ok(true), None) => Check::pass(
            "port",
            format!(
                "{addr} ({key}) is free (connections of an earlier server are still closing \
                 on it; ringmail can listen)"
            ),
        ),
        (Err(e), _) => {
            let fix = match e.kind() {
                std::io::ErrorKind::PermissionDenied => {
                    "ports below 1024 need root or CAP_NET_BIND_SERVICE: the systemd unit \
                     (dist/ringmail.service) grants it with AmbientCapabilities"
                        .to_string()
                }
                std::io::ErrorKind::AddrNotAvailable => {
                    format!("no interface of this machine has that address: fix {key}")
                }
                std::io::ErrorKind::AddrInUse => {
                    let holders: Vec<u64> = sockets::tcp_sockets()
                        .into_iter()
                        .filter(|s| s.overlaps(addr))
                        .map(|s| s.inode)
                        .collect();
                    match sockets::owner(&holders) {
                        Some((pid, name)) => {
                            format!("{name} (pid {pid}) holds it: stop it or change {key}")
                        }
                        None => format!(
                            "`sudo ss -tanp 'sport = :{}'` names its holder; stop it or change {key}",
                            addr.port()
                        ),
                    }
                }
                _ => format!("check {key} in the config"),
            };
            Check::fail("port", format!("{addr} ({key}): {e}"), fix)
        }
    }
}

/// The verdict on a port something listens on; `owner` is the listener's process when this
/// user may see it.
fn listened_on(
    addr: SocketAddr,
    key: &str,
    owner: Option<(u32, String)>,
    server: Option<lock::Holder>,
) -> Check {
    let server_pid = server.and_then(|h| h.pid);
    match (owner, server) {
        (Some((pid, _)), Some(_)) if Some(pid) == server_pid => Check::pass(
            "port",
            format!("{addr} ({key}) is served by the running ringmail (pid {pid})"),
        ),
        (Some((pid, name)), Some(holder)) => Check::fail(
            "port",
            format!(
                "{addr} ({key}) is taken by {name} (pid {pid}), not by {} of this data dir",
                running(holder)
            ),
            format!("stop {name}, or change {key} in the config and restart ringmail"),
        ),
        (Some((pid, name)), None) if name.starts_with("ringmail") => Check::fail(
            "port",
            format!("{addr} ({key}) is in use by a ringmail (pid {pid}) of another data dir"),
            format!("stop it, or change {key}: two servers must not share a port"),
        ),
        (Some((pid, name)), None) => Check::fail(
            "port",
            format!("{addr} ({key}) is taken by {name} (pid {pid})"),
            format!("stop {name}, or change {key} in the config"),
        ),
        (None, Some(holder)) => Check::warn(
            "port",
            format!(
                "{addr} ({key}) is in use, and {} runs on this data dir, but the listener's \
                 process is not visible to this user",
                running(holder)
            ),
            "run `ringmail doctor` as the server's user or root to confirm it is ringmail's",
        ),
        (None, None) => Check::fail(
            "port",
            format!("{addr} ({key}) is taken by a process of another user"),
            format!(
                "`sudo ss -ltnp 'sport = :{}'` names it; stop it or change {key}",
                addr.port()
            ),
        ),
    }
}

/// "ringmail (pid N)" for the data dir's lock holder.
fn running(holder: lock::Holder) -> String {
    match holder.pid {
        Some(pid) => format!("ringmail (pid {pid})"),
        None => "a ringmail server or tool".to_string(),
    }
}

fn is_in_use(result: &std::io::Result<()>) -> bool {
    matches!(result, Err(e) if e.kind() == std::io::ErrorKind::AddrInUse)
}

/// A bind with the options the executors use (SO_REUSEADDR and SO_REUSEPORT).
fn reuseport_bind(addr: SocketAddr) -> std::io::Result<()> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())
}

/// The certificate: readable, its names, days to expiry, and whether the key goes with it.
fn check_tls(data_dir: &Path, config: &Config) -> Vec<Check> {
    let cert = Config::resolve(data_dir, &config.tls.cert);
    let key = Config::resolve(data_dir, &config.tls.key);
    let mut checks = Vec::new();
    match describe_certificate(&cert) {
        Ok(info) => {
            let names = if info.names.is_empty() {
                "no DNS names".to_string()
            } else {
                info.names.join(", ")
            };
            let message = format!(
                "{}: {names}; expires in {} days",
                cert.display(),
                info.days_left
            );
            checks.push(if info.days_left < 0 {
                Check::fail(
                    "tls",
                    format!("{}: expired {} days ago", cert.display(), -info.days_left),
                    "renew it (e.g. `certbot renew`), then `systemctl reload ringmail`",
                )
            } else if info.days_left < CERT_WARN_DAYS {
                Check::warn(
                    "tls",
                    message,
                    "renew it soon; SIGHUP (`systemctl reload ringmail`) loads the new one",
                )
            } else if info.self_signed {
                Check::warn(
                    "tls",
                    format!("{message}; self-signed"),
                    "clients will warn about it: use a certificate from a CA (docs/tls.md)",
                )
            } else {
                Check::pass("tls", message)
            });
        }
        Err(e) => {
            checks.push(Check::fail(
                "tls",
                e,
                "set [tls] cert to a readable PEM chain (docs/tls.md); the server's user must \
                 be able to read it",
            ));
            return checks;
        }
    }
    if let Err(e) = crate::server::tls::load(&cert, &key, &config.tls.min_version) {
        checks.push(Check::fail(
            "tls",
            e.to_string(),
            "set [tls] key to the PEM private key of this certificate",
        ));
    }
    checks
}

struct CertificateInfo {
    names: Vec<String>,
    days_left: i64,
    self_signed: bool,
}

fn describe_certificate(path: &Path) -> Result<CertificateInfo, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let first = rustls_pemfile::certs(&mut pem.as_slice())
        .next()
        .ok_or_else(|| format!("{}: no PEM certificate in it", path.display()))?
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let (_, cert) = x509_parser::parse_x509_certificate(first.as_ref())
        .map_err(|e| format!("{}: not an X.509 certificate: {e}", path.display()))?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(dns) = name {
                names.push(dns.to_string());
            }
        }
    }
    if names.is_empty() {
        names.extend(
            cert.subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok())
                .map(|cn| format!("CN={cn}")),
        );
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let not_after = cert.validity().not_after.timestamp();
    Ok(CertificateInfo {
        names,
        days_left: (not_after - now).div_euclid(86_400),
        self_signed: cert.subject() == cert.issuer(),
    })
}

/// What can be checked of `[ldap]` and `[oauth]` without asking the directory or the issuer:
/// the uri's host and port, and that the files they name are there and readable.
fn check_auth(data_dir: &Path, config: &Config) -> Vec<Check> {
    let resolve = |p: &Path| Config::resolve(data_dir, p);
    let mut checks = Vec::new();
    if let Some(ldap) = config.ldap_section() {
        match ldap_host_port(&ldap.uri) {
            Ok((host, port)) => checks.push(Check::pass(
                "ldap",
                format!("uri {} names {host} port {port}", ldap.uri),
            )),
            Err(e) => checks.push(Check::fail(
                "ldap",
                format!("uri {:?}: {e}", ldap.uri),
                "give [ldap] uri as ldap://host[:port] or ldaps://host[:port]",
            )),
        }
        // Reads the bind password and CA files; connects to nothing.
        match crate::auth::LdapBackend::new(ldap, resolve) {
            Ok(_) => checks.push(Check::pass(
                "ldap",
                match &ldap.bind_password_file {
                    Some(f) => format!("bind password file {} is readable", resolve(f).display()),
                    None => "searches bind anonymously (no bind_dn)".into(),
                },
            )),
            Err(e) => checks.push(Check::fail(
                "ldap",
                e.to_string(),
                "check [ldap] bind_password_file and ca_file (relative paths are under the \
                 data dir)",
            )),
        }
    }
    if let Some(oauth) = config.oauth_section() {
        if let Some(file) = &oauth.jwks_file {
            match crate::auth::oauth::jwks::Keys::from_file(&resolve(file)) {
                Ok(keys) => checks.push(Check::pass(
                    "oauth",
                    format!(
                        "jwks_file {} has {} usable keys",
                        keys.describe(),
                        keys.current().0.len()
                    ),
                )),
                Err(e) => checks.push(Check::fail(
                    "oauth",
                    format!("[oauth] jwks_file: {e}"),
                    "export the issuer's key set (JWKS, RFC 7517) to that file, or use jwks_url",
                )),
            }
        }
        if let Some(file) = &oauth.introspection_secret_file {
            let path = resolve(file);
            match std::fs::read(&path) {
                Ok(_) => checks.push(Check::pass(
                    "oauth",
                    format!("introspection secret {} is readable", path.display()),
                )),
                Err(e) => checks.push(Check::fail(
                    "oauth",
                    format!("[oauth] introspection_secret_file {}: {e}", path.display()),
                    "put the client secret in that file, readable by the server's user",
                )),
            }
        }
    }
    checks
}

/// The host and port of an `ldap://` or `ldaps://` uri (389 and 636 by default).
fn ldap_host_port(uri: &str) -> Result<(String, u16), String> {
    let lower = uri.to_ascii_lowercase();
    let (rest, default_port) = if let Some(rest) = lower.strip_prefix("ldaps://") {
        (rest, 636)
    } else if let Some(rest) = lower.strip_prefix("ldap://") {
        (rest, 389)
    } else {
        return Err("not ldap:// or ldaps://".into());
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = match authority.strip_prefix('[') {
        // [IPv6]:port
        Some(v6) => match v6.split_once(']') {
            Some((host, "")) => (host, None),
            Some((host, port)) => (host, Some(port.strip_prefix(':').unwrap_or(port))),
            None => return Err("unclosed '[' in the host".into()),
        },
        None => match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    if host.is_empty() {
        return Err("no host".into());
    }
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("port {p:?} is not a port number"))?,
        None => default_port,
    };
    Ok((host.to_string(), port))
}

fn check_users(path: &Path) -> Check {
    match crate::auth::UsersFile::load(path) {
        Ok(users) if users.is_empty() => Check::warn(
            "users",
            format!("{}: no users", path.display()),
            "add one with `ringmail user add NAME`",
        ),
        Ok(users) => {
            let open = std::fs::metadata(path).is_ok_and(|m| m.mode() & 0o077 != 0);
            if open {
                Check::warn(
                    "users",
                    format!(
                        "{}: {} users, readable by other users",
                        path.display(),
                        users.len()
                    ),
                    format!("it holds password hashes: chmod 600 {}", path.display()),
                )
            } else {
                Check::pass("users", format!("{}: {} users", path.display(), users.len()))
            }
        }
        Err(e) => Check::fail(
            "users",
            e.to_string(),
            "each line is name:{SCHEME}hash (Dovecot passwd-file); `ringmail user add` writes valid ones",
        ),
    }
}

fn check_data_dir(dir: &Path) -> Check {
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) => {
            return Check::fail(
                "data dir",
                format!("{}: {e}", dir.display()),
                "create it, or start `ringmail serve` once",
            )
        }
    };
    if meta.mode() & 0o002 != 0 {
        return Check::fail(
            "data dir",
            format!("{} is writable by every user", dir.display()),
            format!("chmod 700 {}", dir.display()),
        );
    }
    let probe = dir.join(format!(".doctor-{}", std::process::id()));
    if let Err(e) = std::fs::write(&probe, b"") {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let uid = unsafe { libc::geteuid() };
        return Check::fail(
            "data dir",
            format!("{} is not writable by uid {uid}: {e}", dir.display()),
            format!(
                "run as the user that owns it, or `chown -R ringmail: {}`",
                dir.display()
            ),
        );
    }
    let _ = std::fs::remove_file(&probe);
    match free_space(dir) {
        Some((free, total)) => {
            let gib = free as f64 / f64::from(1u32 << 30);
            let percent = if total > 0 {
                free as f64 * 100.0 / total as f64
            } else {
                0.0
            };
            let message = format!("{}: {gib:.1} GiB free ({percent:.0}%)", dir.display());
            if free < MIN_FREE_BYTES {
                Check::fail(
                    "data dir",
                    message,
                    "free space or move the data dir: appends fail with [OVERQUOTA]/NO when the disk fills",
                )
            } else if percent < 10.0 {
                Check::warn("data dir", message, "the disk is almost full: add space")
            } else {
                Check::pass("data dir", message)
            }
        }
        None => Check::pass("data dir", format!("{} is writable", dir.display())),
    }
}

/// Free and total bytes of the filesystem holding `dir`.
fn free_space(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: an all-zero statvfs is a valid value of this plain C struct.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a NUL-terminated string and `stat` a valid struct to write into.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    let unit = stat.f_frsize as u64;
    Some((stat.f_bavail as u64 * unit, stat.f_blocks as u64 * unit))
}

fn check_memlock() -> Check {
    match limits::raise_memlock() {
        Ok(()) => {
            let mut limit = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: getrlimit writes into the struct we pass and reads nothing else.
            unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) };
            let shown = if limit.rlim_cur == libc::RLIM_INFINITY {
                "unlimited".to_string()
            } else {
                format!("{} KiB", limit.rlim_cur / 1024)
            };
            Check::pass(
                "memlock",
                format!(
                    "locked-memory limit {shown} (the systemd unit sets its own: LimitMEMLOCK)"
                ),
            )
        }
        Err(e) => Check::fail(
            "memlock",
            e,
            "under systemd set LimitMEMLOCK=infinity (dist/ringmail.service does)",
        ),
    }
}

/// Whether this process may set up an io_uring: kernel version, the io_uring_disabled sysctl,
/// and a real io_uring_setup call (which is what a seccomp filter would stop).
fn check_io_uring() -> Check {
    let release = kernel_release();
    if let Some((major, minor)) = release.as_deref().and_then(parse_release) {
        if (major, minor) < MIN_KERNEL {
            return Check::fail(
                "io_uring",
                format!("kernel {major}.{minor} is too old"),
                format!(
                    "ringmail needs Linux {}.{} or newer for io_uring",
                    MIN_KERNEL.0, MIN_KERNEL.1
                ),
            );
        }
    }
    let sysctl = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let kernel = release.unwrap_or_else(|| "?".into());
    match probe_io_uring() {
        Ok(()) => Check::pass("io_uring", format!("io_uring works (kernel {kernel})")),
        Err(errno) => {
            let seccomp = seccomp_mode();
            let (why, fix) = match errno {
                libc::ENOSYS => (
                    "io_uring_setup is not available",
                    "a seccomp filter blocks it (Docker's default profile, gVisor) or the kernel \
                     lacks CONFIG_IO_URING: allow io_uring_setup, io_uring_enter and \
                     io_uring_register in the container's seccomp profile",
                ),
                libc::EPERM if sysctl == "2" => (
                    "io_uring is disabled by sysctl kernel.io_uring_disabled=2",
                    "`sysctl -w kernel.io_uring_disabled=0` and set it in /etc/sysctl.d/",
                ),
                libc::EPERM if sysctl == "1" => (
                    "io_uring is limited to a group by sysctl kernel.io_uring_disabled=1",
                    "add the server's user to the group in kernel.io_uring_group, or set the \
                     sysctl to 0",
                ),
                libc::EPERM => (
                    "io_uring_setup is not permitted",
                    "a seccomp filter or LSM denies it: allow io_uring_* syscalls for ringmail",
                ),
                libc::ENOMEM => (
                    "io_uring_setup ran out of locked memory",
                    "raise the memlock limit (LimitMEMLOCK=infinity under systemd)",
                ),
                _ => ("io_uring_setup failed", "see the error above"),
            };
            Check::fail(
                "io_uring",
                format!(
                    "{why} ({}; kernel {kernel}, seccomp {seccomp})",
                    std::io::Error::from_raw_os_error(errno)
                ),
                fix,
            )
        }
    }
}

fn kernel_release() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .map(|s| s.trim().to_string())
}

/// "6.1.0-18-amd64" -> (6, 1)
fn parse_release(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

fn seccomp_mode() -> &'static str {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let mode = status
        .lines()
        .find_map(|l| l.strip_prefix("Seccomp:"))
        .map(str::trim);
    match mode {
        Some("0") => "off",
        Some("1") => "strict",
        Some("2") => "filtering",
        _ => "unknown",
    }
}

/// Sets up a tiny io_uring and closes it; the errno when that fails.
fn probe_io_uring() -> Result<(), i32> {
    // struct io_uring_params is 120 bytes of u32/u64 fields; all zero asks for defaults.
    let mut params = [0u64; 15];
    // SAFETY: io_uring_setup(entries, params) reads and writes only the 120-byte params block
    // we pass, which lives across the call.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 4u32, params.as_mut_ptr()) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    // SAFETY: `fd` is the descriptor io_uring_setup just returned; nothing else holds it.
    unsafe { libc::close(fd as i32) };
    Ok(())
}

/// The config `ringmail serve` would read with these arguments.
fn config_file(data: Option<&Path>, config: Option<&Path>) -> PathBuf {
    config.map_or_else(
        || {
            data.unwrap_or(Path::new(DEFAULT_DATA_DIR))
                .join(CONFIG_NAME)
        },
        Path::to_owned,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldap_uris() {
        let ok = |uri: &str| ldap_host_port(uri).unwrap();
        assert_eq!(
            ok("ldap://dir.example.org"),
            ("dir.example.org".into(), 389)
        );
        assert_eq!(
            ok("ldaps://dir.example.org"),
            ("dir.example.org".into(), 636)
        );
        assert_eq!(ok("ldap://127.0.0.1:3389/"), ("127.0.0.1".into(), 3389));
        assert_eq!(ok("ldaps://[::1]:6636"), ("::1".into(), 6636));
        assert!(ldap_host_port("ldap://:389").is_err());
        assert!(ldap_host_port("ldap://dir:port").is_err());
        assert!(ldap_host_port("ldap://dir:0").is_err());
        assert!(ldap_host_port("http://dir").is_err());
    }

    #[test]
    fn kernel_release_numbers() {
        assert_eq!(parse_release("6.1.0-18-amd64"), Some((6, 1)));
        assert_eq!(
            parse_release("5.15.153.1-microsoft-standard-WSL2"),
            Some((5, 15))
        );
        assert_eq!(parse_release("garbage"), None);
    }

    #[test]
    fn a_taken_port_names_its_owner() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let check = check_port(addr, "[imap] listen", None);
        // This test binary is called ringmail-HASH, so it counts as another data dir's server.
        assert_eq!(check.status, Status::Fail, "{check:?}");
        assert!(
            check
                .message
                .contains(&format!("pid {}", std::process::id())),
            "{check:?}"
        );
        // Held by the process that holds the data dir: served by it.
        let ours = Some(lock::Holder {
            pid: Some(std::process::id()),
        });
        let check = check_port(addr, "[imap] listen", ours);
        assert_eq!(check.status, Status::Pass, "{check:?}");
        assert!(
            check.message.contains("served by the running ringmail"),
            "{check:?}"
        );
        drop(listener);
        assert_eq!(check_port(addr, "[imap] listen", None).status, Status::Pass);
        // Free while the data dir's server runs: it is not listening (yet); said, not failed.
        assert_eq!(check_port(addr, "[imap] listen", ours).status, Status::Warn);
    }

    #[test]
    fn a_reuseport_listener_is_never_called_free() {
        // What the executors do: SO_REUSEPORT, under which a second such bind succeeds.
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.set_reuse_port(true).unwrap();
        socket
            .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        socket.listen(16).unwrap();
        let addr = socket.local_addr().unwrap().as_socket().unwrap();
        assert!(
            reuseport_bind(addr).is_ok(),
            "the bind test alone would say free"
        );
        let check = check_port(addr, "[imap] listen", None);
        assert_ne!(check.status, Status::Pass, "{check:?}");
        assert!(check.message.contains("pid"), "{check:?}");
    }
}
