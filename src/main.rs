//! The `ringmail` command line: serve, user, doctor, config-reference.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
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
    /// Print the config reference (docs/config.md) generated from the defaults.
    ConfigReference,
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
            ringmail::server::runtime::serve(config, config_path, data_dir)
                .map_err(|e| e.to_string())
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
