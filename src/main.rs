//! The `ringmail` command line: serve, user, check, import, export, backup, restore,
//! doctor, config-reference, cluster.

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use ringmail::config::Config;
use ringmail::server::datadir::{self, Layout};

/// ringmail: an IMAP server for large mail providers.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the data dir and config are; every subcommand takes these.
#[derive(Args, Clone)]
struct Location {
    /// Data directory (default ./ringmail-data, created on first start).
    #[arg(long, global = true, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Config file (default DATA/ringmail.toml).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (creates the data dir, config, certificate and a demo user on first start).
    Serve {
        #[command(flatten)]
        location: Location,
    },
    /// Import mail into a user's mailboxes, or a Dovecot sieve directory into the user's
    /// Sieve scripts: into a stopped data dir, or into the running server through its admin
    /// socket.
    Import {
        /// The user (must be in the users file).
        #[arg(long)]
        user: String,
        #[command(subcommand)]
        source: ImportSource,
        #[command(flatten)]
        location: Location,
    },
    /// Export a user's mail: from a stopped data dir, or from the running server through its
    /// admin socket.
    Export {
        /// The user.
        #[arg(long)]
        user: String,
        #[command(subcommand)]
        target: ExportTarget,
        #[command(flatten)]
        location: Location,
    },
    /// Verify every record's checksum and the index against the log (the server must be
    /// stopped); exit status 0 only when the data is clean.
    Check {
        /// Truncate each damaged log at its first bad record, after copying the damaged tail
        /// aside (`<segment>.damaged-<offset>`).
        #[arg(long)]
        repair: bool,
        #[command(flatten)]
        location: Location,
    },
    /// Copy the data dir of a running (or stopped) server into DIR, which must be new or
    /// empty: everything acknowledged before the backup began, without stopping service.
    Backup {
        /// Where the backup goes.
        dir: PathBuf,
        #[command(flatten)]
        location: Location,
    },
    /// Restore a backup made by `ringmail backup` into the data dir (`--data`), which must be
    /// new or empty; every file is verified against the backup's manifest.
    Restore {
        /// The backup.
        dir: PathBuf,
        #[command(flatten)]
        location: Location,
    },
    /// Manage users in the passwd-file.
    User {
        #[command(subcommand)]
        action: UserAction,
        #[command(flatten)]
        location: Location,
    },
    /// Check the setup (config, ports, certificate, limits, io_uring, data dir, users file)
    /// and say how to fix each problem; exits 0 only when every check passes.
    Doctor {
        #[command(flatten)]
        location: Location,
    },
    /// A user's Sieve state: `sieve log` shows the errors their script met at delivery,
    /// from the running server through its admin socket, or from a stopped data dir.
    Sieve {
        #[command(subcommand)]
        action: SieveAction,
        #[command(flatten)]
        location: Location,
    },
    /// Print the config reference (docs/config.md) generated from the defaults.
    ConfigReference,
    /// The cluster this node belongs to (`[cluster]` of the config): its nodes and partition
    /// map in etcd (docs/cluster.md).
    Cluster {
        #[command(subcommand)]
        action: ClusterAction,
        #[command(flatten)]
        location: Location,
    },
}

#[derive(Subcommand)]
enum SieveAction {
    /// The last run-time errors of the user's active script (at most 20 / 16 KiB), oldest
    /// first: date, script, line and reason. Activating a script clears them.
    Log {
        /// The user.
        #[arg(long)]
        user: String,
    },
}

#[derive(Subcommand)]
enum ClusterAction {
    /// Nodes (id, addresses, alive) and every partition's owner, epoch and state.
    Status {
        /// One JSON object: {"nodes": [...], "partitions": [...]}.
        #[arg(long)]
        json: bool,
    },
    /// A user's partition and its owner: `partition P owner NODE epoch E`.
    Locate {
        /// User name.
        user: String,
    },
    /// Move a partition to a node.
    Move {
        /// The partition.
        partition: u32,
        /// The node that is to serve it.
        node: String,
    },
    /// Move all of a node's partitions to the others (before maintenance).
    Drain {
        /// The node.
        node: String,
    },
    /// Let a drained node receive partitions again (after maintenance): the balancer gives it
    /// its share back by live moves.
    Undrain {
        /// The node.
        node: String,
    },
    /// Send the mail of an old owner's copy set aside after a failover to the partition's
    /// current owner (docs/cluster.md).
    ///
    /// DIR is `DATA/p-NNNN.old-owner-E`, listed by `cluster status`. Every message of every
    /// mailbox of every user of that copy goes, with its flags and internal date, through
    /// this node's admin socket (the node must run) to the user's owner, as `ringmail import`
    /// sends it; what the owner's mailbox holds already is skipped, so a second run adds
    /// nothing. DIR is only read (from a copy made under $TMPDIR, which needs as much room,
    /// removed at the end). Exit status 0 only when every message is on the owner.
    ///
    /// Caveat: a message expunged (or a mailbox deleted) on the new owner since the failover
    /// comes back, since the old copy still holds it: the lesser evil next to losing mail a
    /// client was told was stored.
    Recover {
        /// The set-aside directory, `p-NNNN.old-owner-E`.
        dir: PathBuf,
        /// Remove DIR once every message of it is on the owner.
        #[arg(long)]
        remove: bool,
    },
}

/// What an import reads.
#[derive(Subcommand)]
enum ImportSource {
    #[command(flatten)]
    Mail(MailSource),
    /// A Dovecot (Pigeonhole) sieve directory: `~/sieve/*.sieve`, the `~/.dovecot.sieve`
    /// link naming the active script. Give the home directory or the sieve directory.
    Sieve {
        /// The home directory or the sieve directory.
        dir: PathBuf,
    },
}

/// What an export writes.
#[derive(Subcommand)]
enum ExportTarget {
    #[command(flatten)]
    Mail(MailSource),
    /// The user's Sieve scripts as a Dovecot (Pigeonhole) home: `DIR/sieve/NAME.sieve` and
    /// the `DIR/.dovecot.sieve` link naming the active script, what `import sieve` reads.
    /// From a stopped data dir.
    Sieve {
        /// The home directory to write into (created when missing).
        dir: PathBuf,
    },
}

/// Where mail comes from or goes to.
#[derive(Subcommand)]
enum MailSource {
    /// A Maildir or Maildir++ tree (`.Sent`, `.Work.Projects`); all mailboxes.
    Maildir {
        /// The Maildir root.
        dir: PathBuf,
    },
    /// An mbox file; one mailbox.
    Mbox {
        /// The mbox file.
        file: PathBuf,
        /// The mailbox it fills or comes from.
        #[arg(long, default_value = "INBOX")]
        mailbox: String,
    },
}

#[derive(Subcommand)]
enum UserAction {
    /// Add a user; the password is read from a prompt, or from stdin when it is not a terminal.
    Add {
        /// User name.
        name: String,
    },
    /// Change a user's password.
    Passwd {
        /// User name.
        name: String,
    },
    /// Delete a user from the passwd-file (their mail stays in the store).
    Del {
        /// User name.
        name: String,
    },
    /// List users.
    List,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("ringmail: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Serve { location } => {
            let layout =
                datadir::resolve(location.data.as_deref(), location.config.as_deref(), true)?;
            ringmail::metrics::logging::init(&layout.config);
            datadir::first_start(&layout)?;
            let Layout {
                config,
                config_path,
                data_dir,
            } = layout;
            let mut services = ringmail::services::from_config(&config, &data_dir);
            let node = match ringmail::cluster::settings(&config, &data_dir)? {
                Some(settings) => {
                    ringmail::replication::set_sync(settings.sync);
                    ringmail::replication::set_replicas(settings.replicas);
                    ringmail::replication::set_stale_copy_grace(std::time::Duration::from_secs(
                        config.cluster.stale_copy_grace_secs,
                    ));
                    Some(ringmail::cluster::start(&config, settings)?)
                }
                None => None,
            };
            services.peer = node.as_ref().map(|n| n.peer.clone());
            if node.is_some() {
                services.tasks.push(ringmail::moves::task);
                services.tasks.push(ringmail::fencing::task);
                services.tasks.push(ringmail::replication::task);
                services.tasks.push(ringmail::replication::stale_task);
                services.open_hooks = Some(ringmail::replication::open_hooks);
            }
            let served = ringmail::server::runtime::serve(config, config_path, data_dir, services)
                .map_err(|e| e.to_string());
            // Leave the cluster at once, so the partitions are served elsewhere without
            // waiting for the lease to run out.
            if let Some(node) = node {
                node.control.shutdown();
            }
            served
        }
        Command::Cluster { action, location } => {
            let layout =
                datadir::resolve(location.data.as_deref(), location.config.as_deref(), false)?;
            let command = match action {
                ClusterAction::Status { json } => ringmail::cluster::Command::Status { json },
                ClusterAction::Locate { user } => ringmail::cluster::Command::Locate { user },
                ClusterAction::Move { partition, node } => {
                    ringmail::cluster::Command::Move { partition, node }
                }
                ClusterAction::Drain { node } => ringmail::cluster::Command::Drain { node },
                ClusterAction::Undrain { node } => ringmail::cluster::Command::Undrain { node },
                ClusterAction::Recover { dir, remove } => {
                    return recover_command(&layout, &dir, remove)
                }
            };
            let out = ringmail::cluster::command(&layout.config, &layout.data_dir, command)?;
            println!("{}", out.trim_end());
            Ok(())
        }
        Command::Import {
            user,
            source,
            location,
        } => {
            let layout =
                datadir::resolve(location.data.as_deref(), location.config.as_deref(), true)?;
            import_command(&layout, &user, source)
        }
        Command::Export {
            user,
            target,
            location,
        } => {
            let layout =
                datadir::resolve(location.data.as_deref(), location.config.as_deref(), false)?;
            match target {
                ExportTarget::Mail(target) => export_command(&layout, &user, target),
                ExportTarget::Sieve { dir } => export_sieve_command(&layout, &user, &dir),
            }
        }
        Command::Sieve { action, location } => {
            let layout =
                datadir::resolve(location.data.as_deref(), location.config.as_deref(), false)?;
            match action {
                SieveAction::Log { user } => sieve_log_command(&layout, &user),
            }
        }
        Command::Check { repair, location } => {
            let layout =
                datadir::resolve(location.data.as_deref(), location.config.as_deref(), false)?;
            check_command(&layout, repair)
        }
        Command::Backup { dir, location } => {
            let layout =
                datadir::resolve(location.data.as_deref(), location.config.as_deref(), false)?;
            backup_command(&layout, &dir)
        }
        Command::Restore { dir, location } => {
            let data = location
                .data
                .unwrap_or_else(|| PathBuf::from(datadir::DEFAULT_DATA_DIR));
            let report = ringmail::tools::backup::restore(&dir, &data)?;
            println!(
                "restored {} files ({} bytes, {} partitions) from {} into {}; start the server \
                 on it (a half-written last record, if any, is dropped at start)",
                report.files,
                report.bytes,
                report.partitions,
                dir.display(),
                data.display()
            );
            Ok(())
        }
        Command::User { action, location } => {
            let layout =
                datadir::resolve(location.data.as_deref(), location.config.as_deref(), true)?;
            user_command(&layout, action)
        }
        Command::Doctor { location } => {
            let report =
                ringmail::doctor::run(location.data.as_deref(), location.config.as_deref());
            print!("{report}");
            match report.failures() {
                0 => Ok(()),
                n => Err(format!("{n} check(s) failed; see FAIL lines above")),
            }
        }
        Command::ConfigReference => {
            print!("{}", ringmail::config::reference::markdown());
            Ok(())
        }
    }
}

fn user_command(layout: &Layout, action: UserAction) -> Result<(), String> {
    let path = Config::resolve(&layout.data_dir, &layout.config.auth.users_file);
    let mut users = ringmail::auth::UsersFile::load_or_empty(&path).map_err(|e| e.to_string())?;
    match action {
        UserAction::Add { name } => {
            if users.lookup(&name).is_some() {
                return Err(format!(
                    "user {name} exists already: use `ringmail user passwd {name}`"
                ));
            }
            let password = read_password(&name)?;
            users
                .add(&name, password.as_bytes())
                .map_err(|e| e.to_string())?;
            users.save().map_err(|e| e.to_string())?;
            println!("added user {name}");
        }
        UserAction::Passwd { name } => {
            if users.lookup(&name).is_none() {
                return Err(format!(
                    "no user {name}: add it with `ringmail user add {name}`"
                ));
            }
            let password = read_password(&name)?;
            users
                .set_password(&name, password.as_bytes())
                .map_err(|e| e.to_string())?;
            users.save().map_err(|e| e.to_string())?;
            println!("changed the password of {name}");
        }
        UserAction::Del { name } => {
            users.remove(&name).map_err(|e| e.to_string())?;
            users.save().map_err(|e| e.to_string())?;
            println!("deleted user {name}");
        }
        UserAction::List => {
            for name in users.names() {
                println!("{name}");
            }
        }
    }
    Ok(())
}

/// Reads a password: twice at a terminal prompt (not echoed), or one line from piped stdin.
fn read_password(name: &str) -> Result<String, String> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the password from stdin: {e}"))?;
        let password = line.trim_end_matches(['\r', '\n']).to_string();
        if password.is_empty() {
            return Err("empty password on stdin".into());
        }
        return Ok(password);
    }
    let first = prompt_hidden(&format!("password for {name}: "))?;
    let second = prompt_hidden("again: ")?;
    if first != second {
        return Err("the passwords differ".into());
    }
    if first.is_empty() {
        return Err("empty password".into());
    }
    Ok(first)
}

/// Prompts on the terminal with echo turned off.
fn prompt_hidden(prompt: &str) -> Result<String, String> {
    rpassword::prompt_password(prompt).map_err(|e| format!("cannot read the password: {e}"))
}

/// The store's name for `user`, who must be in the users file (else nobody could log in to
/// read what an import stores).
fn known_user(layout: &Layout, user: &str) -> Result<String, String> {
    let path = Config::resolve(&layout.data_dir, &layout.config.auth.users_file);
    let users = ringmail::auth::UsersFile::load_or_empty(&path).map_err(|e| e.to_string())?;
    if users.lookup(user).is_none() {
        return Err(format!(
            "no user {user} in {}: add it with `ringmail user add {user}`",
            path.display()
        ));
    }
    ringmail::auth::canonical_name(user).map_err(|e| e.to_string())
}

/// Whether a running server holds the data dir (then tools go through its admin socket).
fn server_running(layout: &Layout, what: &str) -> Result<bool, String> {
    ringmail::server::lock::DataDirLock::try_acquire(&layout.data_dir)
        .map(|lock| lock.is_none())
        .map_err(|e| format!("{what}: cannot lock {}: {e}", layout.data_dir.display()))
}

/// A connection to the running server's admin socket for `user`, and the socket's path.
fn connect_admin(
    layout: &Layout,
    user: &str,
    what: &str,
) -> Result<(ringmail::admin::client::AdminClient, std::path::PathBuf), String> {
    let data_dir = layout.data_dir.display();
    let Some(socket) = layout.config.admin_socket(&layout.data_dir) else {
        return Err(format!(
            "{what}: a server is running on {data_dir} and its admin socket is off \
             ([admin] socket = \"\"): turn it on, or stop the server"
        ));
    };
    let client = ringmail::admin::client::AdminClient::connect(&socket, user).map_err(|e| {
        format!(
            "{what}: {data_dir} is in use (by a running server, or by another tool, which \
                 has no admin socket), but {e}"
        )
    })?;
    Ok((client, socket))
}

/// `ringmail import`: into the stopped data dir directly, or into the running server through
/// its admin socket; the summary says which.
fn import_command(layout: &Layout, user: &str, source: ImportSource) -> Result<(), String> {
    use ringmail::tools::import::{import, Source};
    let user = known_user(layout, user)?;
    let source = match source {
        ImportSource::Sieve { dir } => return import_sieve_command(layout, &user, &dir),
        ImportSource::Mail(source) => source,
    };
    let source = match source {
        MailSource::Maildir { dir } => Source::Maildir(dir),
        MailSource::Mbox { file, mailbox } => Source::Mbox { file, mailbox },
    };
    let (report, place) = if server_running(layout, "import")? {
        import_online(layout, &user, &source)?
    } else {
        let report = ringmail::tools::offline::run(
            &layout.config,
            &layout.data_dir,
            "import",
            |store| async move { import(&store, &user, &source).await },
        )?;
        let place = format!("the stopped data dir {}", layout.data_dir.display());
        (report, place)
    };
    println!(
        "imported {} messages into {place} ({} already present, {} mailboxes created, {} kept their Dovecot UID)",
        report.imported,
        report.already_present,
        report.mailboxes_created,
        report.uids_kept
    );
    for note in &report.notes {
        println!("note: {note}");
    }
    problems(&report.problems)
}

/// `ringmail import sieve DIR`: a Dovecot sieve directory into the user's scripts, through
/// the running server's admin socket or into the stopped data dir.
fn import_sieve_command(layout: &Layout, user: &str, dir: &std::path::Path) -> Result<(), String> {
    use ringmail::tools::sieve::{import_sieve, PartitionSink};
    let config = &layout.config;
    let (report, place) = if server_running(layout, "import")? {
        let (mut client, socket) = connect_admin(layout, user, "import")?;
        let report = futures_lite::future::block_on(import_sieve(dir, config, &mut client))?;
        let place = format!(
            "the running server ({}) through {}",
            client.server(),
            socket.display()
        );
        client.finish()?;
        (report, place)
    } else {
        let report = ringmail::tools::offline::run(
            config,
            &layout.data_dir,
            "import",
            |store| async move {
                let mail = store.partition_of(user).await.map_err(|e| e.to_string())?;
                let mut sink = PartitionSink {
                    mail: &mail,
                    config,
                    user,
                };
                import_sieve(dir, config, &mut sink).await
            },
        )?;
        let place = format!("the stopped data dir {}", layout.data_dir.display());
        (report, place)
    };
    let active = match &report.active {
        Some(name) => format!("{name:?} active"),
        None => "none active".to_string(),
    };
    println!(
        "imported {} sieve scripts into {place} ({active})",
        report.imported
    );
    problems(&report.problems)
}

/// Import through the admin socket of the server that holds the data dir.
fn import_online(
    layout: &Layout,
    user: &str,
    source: &ringmail::tools::import::Source,
) -> Result<(ringmail::tools::import::ImportReport, String), String> {
    let (mut client, socket) = connect_admin(layout, user, "import")?;
    let stopped = |e: String| {
        format!("import stopped: {e} (what was stored is kept; run it again to finish)")
    };
    let mut report =
        futures_lite::future::block_on(ringmail::tools::import::read_source(source, &mut client))
            .map_err(stopped)?;
    let server = client.server().to_string();
    report.merge(client.finish().map_err(stopped)?);
    let place = format!("the running server ({server}) through {}", socket.display());
    Ok((report, place))
}

/// `ringmail cluster recover DIR`: refuses what is not a set-aside copy before anything
/// else, then needs the node running (the mail goes through its admin socket).
fn recover_command(layout: &Layout, dir: &Path, remove: bool) -> Result<(), String> {
    ringmail::recover::aside_partition_of(dir)?;
    if !server_running(layout, "recover")? {
        return Err(format!(
            "recover: no server runs on {}: start the node (recover sends the mail to the \
             partition's owner through its admin socket)",
            layout.data_dir.display()
        ));
    }
    let Some(socket) = layout.config.admin_socket(&layout.data_dir) else {
        return Err(format!(
            "recover: the admin socket of {} is off ([admin] socket = \"\"): turn it on",
            layout.data_dir.display()
        ));
    };
    ringmail::recover::command(&layout.config, &socket, dir, remove)
}

/// `ringmail export`: from the stopped data dir directly, or from the running server through
/// its admin socket; the summary says which.
fn export_command(layout: &Layout, user: &str, target: MailSource) -> Result<(), String> {
    use ringmail::tools::export::{write_maildir, write_mbox, ExportReport, Source};
    let user = known_user(layout, user)?;
    async fn write(
        source: &mut impl Source,
        user: &str,
        target: &MailSource,
    ) -> Result<ExportReport, String> {
        match target {
            MailSource::Maildir { dir } => write_maildir(source, user, dir).await,
            MailSource::Mbox { file, mailbox } => write_mbox(source, mailbox, file).await,
        }
    }
    let (report, place) = if server_running(layout, "export")? {
        let (mut client, socket) = connect_admin(layout, &user, "export")?;
        let report = futures_lite::future::block_on(write(&mut client, &user, &target))?;
        let place = format!(
            "the running server ({}) through {}",
            client.server(),
            socket.display()
        );
        (report, place)
    } else {
        let report = ringmail::tools::offline::run(
            &layout.config,
            &layout.data_dir,
            "export",
            |store| async move {
                let mail = store.partition_of(&user).await.map_err(|e| e.to_string())?;
                let mut source = ringmail::tools::export::StoreSource::new(mail, &user);
                write(&mut source, &user, &target).await
            },
        )?;
        let place = format!("the stopped data dir {}", layout.data_dir.display());
        (report, place)
    };
    println!(
        "exported {} messages in {} mailboxes from {place}",
        report.messages, report.mailboxes
    );
    if report.vanished > 0 {
        println!(
            "note: {} messages were expunged while the export ran and are not in it",
            report.vanished
        );
    }
    problems(&report.problems)
}

/// Reads something of `user`'s partition: from the running server through its admin
/// socket (`online`, answered by the user's owner), or from the stopped data dir
/// (`offline`); with the place it came from, for the summary.
fn read_user<T>(
    layout: &Layout,
    user: &str,
    what: &str,
    online: impl FnOnce(&mut ringmail::admin::client::AdminClient) -> Result<T, String>,
    offline: impl FnOnce(&ringmail::store::Partition) -> Result<T, String>,
) -> Result<(T, String), String> {
    if server_running(layout, what)? {
        let (mut client, socket) = connect_admin(layout, user, what)?;
        let value = online(&mut client)?;
        let place = format!(
            "the running server ({}) through {}",
            client.server(),
            socket.display()
        );
        return Ok((value, place));
    }
    let value = ringmail::tools::offline::run(
        &layout.config,
        &layout.data_dir,
        what,
        |store| async move {
            let mail = store.partition_of(user).await.map_err(|e| e.to_string())?;
            offline(&mail)
        },
    )?;
    Ok((
        value,
        format!("the stopped data dir {}", layout.data_dir.display()),
    ))
}

/// `ringmail export sieve DIR`: the user's scripts, from the running server or the stopped
/// data dir.
fn export_sieve_command(layout: &Layout, user: &str, dir: &std::path::Path) -> Result<(), String> {
    use ringmail::tools::sieve::{user_scripts, write_sieve_dir};
    let user = known_user(layout, user)?;
    let (scripts, place) = read_user(
        layout,
        &user,
        "export",
        |client| client.scripts(),
        |mail| user_scripts(mail, &user),
    )?;
    let report = write_sieve_dir(&scripts, dir)?;
    let active = match &report.active {
        Some(name) => format!("{name:?} active"),
        None => "none active".to_string(),
    };
    println!(
        "exported {} sieve scripts from {place} into {} ({active})",
        report.exported,
        dir.display()
    );
    problems(&report.problems)
}

/// `ringmail sieve log`: the user's Sieve error log, oldest first, from the running server
/// or the stopped data dir.
fn sieve_log_command(layout: &Layout, user: &str) -> Result<(), String> {
    let user = known_user(layout, user)?;
    let (entries, place) = read_user(
        layout,
        &user,
        "sieve log",
        |client| client.sieve_log(),
        |mail| Ok(mail.sieve_log(&user)),
    )?;
    for line in ringmail::tools::sieve::log_lines(&entries) {
        println!("{line}");
    }
    eprintln!(
        "{} Sieve errors of {user} logged in {place} (cleared when a script is activated)",
        entries.len()
    );
    Ok(())
}

/// `ringmail backup DIR`: copies the data dir; warns about files it needs that live outside.
fn backup_command(layout: &Layout, dir: &std::path::Path) -> Result<(), String> {
    let report = ringmail::tools::backup::backup(&layout.data_dir, dir)?;
    println!(
        "backed up {} files ({} bytes, {} partitions) of {} into {}",
        report.files,
        report.bytes,
        report.partitions,
        layout.data_dir.display(),
        dir.display()
    );
    let config = &layout.config;
    let outside = [
        layout.config_path.clone(),
        Config::resolve(&layout.data_dir, &config.auth.users_file),
        Config::resolve(&layout.data_dir, &config.tls.cert),
        Config::resolve(&layout.data_dir, &config.tls.key),
    ];
    for path in outside {
        let inside = std::fs::canonicalize(&path)
            .map(|p| p.starts_with(&layout.data_dir))
            .unwrap_or(true);
        if !inside {
            eprintln!(
                "note: {} is outside the data dir and not in the backup; back it up with the \
                 system's configuration",
                path.display()
            );
        }
    }
    Ok(())
}

/// Prints each problem; fails the command when there was any, so scripts notice.
fn problems(list: &[String]) -> Result<(), String> {
    if list.is_empty() {
        return Ok(());
    }
    for p in list {
        eprintln!("problem: {p}");
    }
    Err(format!(
        "{} problems (listed above); everything else was done",
        list.len()
    ))
}

/// What a directory `ringmail check` looked at is when it is not a partition this node
/// serves (docs/cluster.md, "Stale copies"); whether the map still lists this node for it
/// is etcd's, shown by `ringmail cluster status`.
fn copy_kind(dir: &Path) -> String {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if ringmail::replication::copy_partition(&name).is_some() {
        " (a replica copy)".into()
    } else if ringmail::replication::aside_partition(&name).is_some() {
        " (an old owner's copy set aside after a failover: never served, kept for the \
         operator)"
            .into()
    } else if ringmail::store::is_moved(dir) {
        let note =
            std::fs::read_to_string(dir.join(ringmail::store::MOVED_MARKER)).unwrap_or_default();
        format!(" (not served: {})", note.trim())
    } else {
        String::new()
    }
}

/// `ringmail check [--repair]`: one line per partition, then the damage found.
fn check_command(layout: &Layout, repair: bool) -> Result<(), String> {
    let _lock = ringmail::server::lock::DataDirLock::acquire(&layout.data_dir, "check")?;
    let report = ringmail::store::check(&layout.data_dir, repair)
        .map_err(|e| format!("cannot check {}: {e}", layout.data_dir.display()))?;
    for partition in &report.partitions {
        let records: u64 = partition.segments.iter().map(|s| s.records).sum();
        println!(
            "{}: {} segments, {records} records, {}{}",
            partition.dir.display(),
            partition.segments.len(),
            if partition.is_clean() {
                "clean"
            } else {
                "DAMAGED"
            },
            copy_kind(&partition.dir)
        );
        for segment in &partition.segments {
            if let Some(damage) = &segment.damage {
                println!(
                    "  {}: bad record at offset {}: {}",
                    segment.name, damage.offset, damage.reason
                );
            }
            if let Some(aside) = &segment.moved_aside {
                println!("  damaged tail copied to {}", aside.display());
            }
        }
        for bad in &partition.bad_checkpoints {
            println!("  checkpoint {bad} is not usable");
        }
        for problem in &partition.index_problems {
            println!("  index: {problem}");
        }
    }
    if report.is_clean() {
        println!("{} partitions clean", report.partitions.len());
        Ok(())
    } else if repair {
        println!("repaired: every partition now ends at its last good record");
        Ok(())
    } else {
        Err("damage found: run `ringmail check --repair` with the server stopped".into())
    }
}
