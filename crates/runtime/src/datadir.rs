//! Finding the config and data directory, and making a new data dir on first start.
//!
//! With no arguments ringmail uses `./ringmail-data/` and `./ringmail-data/ringmail.toml`.
//! `--config FILE` names the config (its `[server] data_dir`, or else its own folder, is the data
//! dir) and `--data DIR` names the data dir; `--data` wins over the config.

use std::path::{Path, PathBuf};

use ringmail_config::{Config, DEFAULT_TOML};

/// The default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "ringmail-data";
/// The config file's name inside a data dir.
pub const CONFIG_NAME: &str = "ringmail.toml";
/// Records the data-dir format and the partition count fixed at creation.
const FORMAT_NAME: &str = "ringmail.format";

/// A resolved config and data directory.
#[derive(Debug)]
pub struct Layout {
    /// The parsed config.
    pub config: Config,
    /// Where the config was read from.
    pub config_path: PathBuf,
    /// The data directory (absolute).
    pub data_dir: PathBuf,
}

/// Resolves `--config` / `--data`; with `create`, makes a missing data dir and its commented
/// config. Errors are one operator-facing line.
pub fn resolve(data: Option<&Path>, config: Option<&Path>, create: bool) -> Result<Layout, String> {
    let (config, config_path, data_dir) = match config {
        Some(path) => {
            let config = Config::load(path).map_err(|e| e.to_string())?;
            let data_dir = match data {
                Some(d) => d.to_owned(),
                None if !config.server.data_dir.as_os_str().is_empty() => {
                    let base = path.parent().unwrap_or(Path::new("."));
                    Config::resolve(base, &config.server.data_dir)
                }
                None => path.parent().unwrap_or(Path::new(".")).to_owned(),
            };
            (config, path.to_owned(), data_dir)
        }
        None => {
            let data_dir = data.map_or_else(|| PathBuf::from(DEFAULT_DATA_DIR), Path::to_owned);
            let config_path = data_dir.join(CONFIG_NAME);
            if !config_path.exists() {
                if !create {
                    return Err(format!(
                        "no config at {}: start `ringmail serve` once to create the data dir, or pass --config FILE",
                        config_path.display()
                    ));
                }
                create_dir_private(&data_dir)?;
                std::fs::write(&config_path, DEFAULT_TOML)
                    .map_err(|e| format!("cannot write {}: {e}", config_path.display()))?;
                tracing::info!("created {}", config_path.display());
            }
            let config = Config::load(&config_path).map_err(|e| e.to_string())?;
            (config, config_path, data_dir)
        }
    };
    if create {
        create_dir_private(&data_dir)?;
    }
    let data_dir = std::fs::canonicalize(&data_dir)
        .map_err(|e| format!("data dir {}: {e}", data_dir.display()))?;
    check_format(&data_dir, config.storage.partitions, create)?;
    Ok(Layout {
        config,
        config_path,
        data_dir,
    })
}

fn create_dir_private(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create data dir {}: {e}", dir.display()))
}

/// The partition count is fixed when the data dir is made: every user's mail lives in the
/// partition its name hashes to, so a different count would lose track of it.
fn check_format(data_dir: &Path, partitions: u32, create: bool) -> Result<(), String> {
    let path = data_dir.join(FORMAT_NAME);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let recorded = text
                .lines()
                .find_map(|l| l.strip_prefix("partitions = "))
                .and_then(|v| v.trim().parse::<u32>().ok())
                .ok_or_else(|| {
                    format!(
                        "{} is damaged: it must say `partitions = N`",
                        path.display()
                    )
                })?;
            if recorded != partitions {
                return Err(format!(
                    "[storage] partitions = {partitions} but this data dir was made with {recorded}: \
                     set partitions = {recorded} in the config (the count cannot change)"
                ));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
            std::fs::write(&path, format!("format = 1\npartitions = {partitions}\n"))
                .map_err(|e| format!("cannot write {}: {e}", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// First start: a self-signed certificate when none exists, and a `demo` user with a random
/// password when the users file has no user. The password is printed once, on stdout.
pub fn first_start(layout: &Layout) -> Result<(), String> {
    let cert = Config::resolve(&layout.data_dir, &layout.config.tls.cert);
    let key = Config::resolve(&layout.data_dir, &layout.config.tls.key);
    // Only inside the data dir: a certificate path the operator chose that does not exist is
    // a mistake to report, not a place to put a self-signed certificate.
    let ours = cert.starts_with(&layout.data_dir) && key.starts_with(&layout.data_dir);
    if ours && crate::tls::create_self_signed(&cert, &key).map_err(|e| e.to_string())? {
        tracing::info!("created a self-signed certificate {}", cert.display());
    }
    let users_path = Config::resolve(&layout.data_dir, &layout.config.auth.users_file);
    let mut users =
        ringmail_auth::UsersFile::load_or_empty(&users_path).map_err(|e| e.to_string())?;
    if users.is_empty() {
        let password = random_password();
        users
            .add("demo", password.as_bytes())
            .map_err(|e| e.to_string())?;
        users.save().map_err(|e| e.to_string())?;
        println!("created user `demo` with password `{password}` (shown once; change it with `ringmail user passwd demo`)");
    }
    Ok(())
}

/// 20 characters from an alphabet without look-alikes (about 115 bits).
fn random_password() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    (0..20)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
}
