//! `ringmail import sieve DIR`: a user's Dovecot (Pigeonhole) sieve directory into the
//! user's scripts.
//!
//! Pigeonhole's default layout is `~/sieve/NAME.sieve` for the scripts and the symlink
//! `~/.dovecot.sieve` pointing at the active one (`sieve = file:~/sieve;active=~/.dovecot.sieve`).
//! `DIR` may be the home directory (it has `sieve/` or `.dovecot.sieve`) or the sieve
//! directory itself (the link is then looked for beside it, in its parent). A
//! `.dovecot.sieve` that is a regular file rather than a link is a script of its own:
//! Pigeonhole moves it into the sieve directory as `dovecot.orig` and activates it when it
//! starts managing the directory; the import does the same.
//!
//! Each script is checked as ManageSieve's PUTSCRIPT checks it (`[sieve]` limits, and no
//! redirect or vacation without `[sieve] submission`); one that is refused is reported with
//! its line and skipped, and the rest are imported. The script the link names is activated
//! when it was imported. Like the mail import the work is split: the tool reads and checks
//! the files ([`read_dir`], [`import_sieve`]), and a [`ScriptSink`] stores them: the
//! partition itself offline, the admin socket against a running server, where the owner of
//! the user runs [`store_script`] as the offline path does. Running it again replaces the
//! scripts of the same names.
//!
//! `ringmail export sieve DIR` ([`write_sieve_dir`]) writes the same layout back, from the
//! scripts [`user_scripts`] reads on the owner (in the tool offline, through the admin
//! socket's `Scripts` request online). `ringmail sieve log` shows the user's Sieve error
//! log ([`log_lines`]) the same two ways.

use std::path::{Path, PathBuf};

use ringmail_config::Config;
use ringmail_managesieve::server::{limits, mail_policy};
use ringmail_managesieve::{check_name, check_script, Refusal, MIN_NAME_LIMIT};
use ringmail_store::{Partition, SieveLogEntry, StoreError};

use crate::client::{unexpected, AdminClient};
use crate::protocol::{Reply, Request};

/// Pigeonhole's name for a `.dovecot.sieve` that was a regular file.
const ORIGINAL: &str = "dovecot.orig";

/// The scripts of a sieve directory, as read.
#[derive(Debug, Default)]
pub struct SieveDir {
    /// Name and source of each `*.sieve` file, sorted by name.
    pub scripts: Vec<(String, Vec<u8>)>,
    /// The script `.dovecot.sieve` names, if any.
    pub active: Option<String>,
    /// Files that could not be read or named.
    pub problems: Vec<String>,
}

/// What a sieve import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SieveReport {
    /// Scripts stored.
    pub imported: u64,
    /// The script made active.
    pub active: Option<String>,
    /// One line per script that was skipped, and why.
    pub problems: Vec<String>,
}

/// Where the scripts are stored.
#[allow(async_fn_in_trait)]
pub trait ScriptSink {
    /// Stores a script (checked already), replacing one of the same name.
    async fn put_script(&mut self, name: &str, source: &str) -> Result<(), String>;
    /// Makes a stored script the active one.
    async fn activate_script(&mut self, name: &str) -> Result<(), String>;
}

/// The sieve directory and the active link for `dir` (see the module docs).
fn locate(dir: &Path) -> (PathBuf, PathBuf) {
    let link = dir.join(".dovecot.sieve");
    let sieve = dir.join("sieve");
    if sieve.is_dir() || std::fs::symlink_metadata(&link).is_ok() {
        return (sieve, link);
    }
    let beside = dir
        .parent()
        .map(|p| p.join(".dovecot.sieve"))
        .unwrap_or(link);
    (dir.to_path_buf(), beside)
}

/// Reads the scripts of `dir` and which one is active. Fails only when the directory
/// itself cannot be read.
pub fn read_dir(dir: &Path) -> Result<SieveDir, String> {
    let (scripts_dir, link) = locate(dir);
    let mut out = SieveDir::default();
    let entries =
        std::fs::read_dir(&scripts_dir).map_err(|e| format!("{}: {e}", scripts_dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", scripts_dir.display()))?;
        let path = entry.path();
        let file_name = entry.file_name();
        // Pigeonhole's compiled `.svbin` files, its `tmp/` and anything else are not scripts.
        let Some(name) = file_name.to_str().and_then(|n| n.strip_suffix(".sieve")) else {
            if file_name.to_str().is_none() && path.extension().is_some_and(|e| e == "sieve") {
                out.problems.push(format!(
                    "{}: the name is not UTF-8; skipped",
                    path.display()
                ));
            }
            continue;
        };
        if !path.is_file() {
            continue;
        }
        if let Err(why) = check_name(name.as_bytes(), MIN_NAME_LIMIT) {
            out.problems
                .push(format!("{}: {why}; skipped", path.display()));
            continue;
        }
        match std::fs::read(&path) {
            Ok(source) => out.scripts.push((name.to_string(), source)),
            Err(e) => out
                .problems
                .push(format!("{}: {e}; skipped", path.display())),
        }
    }
    match std::fs::symlink_metadata(&link) {
        Ok(meta) if meta.file_type().is_symlink() => {
            out.active = active_of(&link, &scripts_dir);
            if out.active.is_none() {
                out.problems.push(format!(
                    "{}: does not point at a script in {}; no script made active",
                    link.display(),
                    scripts_dir.display()
                ));
            }
        }
        Ok(meta) if meta.is_file() => match std::fs::read(&link) {
            Ok(source) => {
                out.scripts.retain(|(n, _)| n != ORIGINAL);
                out.scripts.push((ORIGINAL.to_string(), source));
                out.active = Some(ORIGINAL.to_string());
            }
            Err(e) => out.problems.push(format!("{}: {e}", link.display())),
        },
        _ => {}
    }
    out.scripts.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// The script a `.dovecot.sieve` link names, when it points at `NAME.sieve` in the
/// scripts directory (relative links are relative to the link's own directory).
fn active_of(link: &Path, scripts_dir: &Path) -> Option<String> {
    let target = std::fs::read_link(link).ok()?;
    let target = link.parent().unwrap_or(Path::new(".")).join(target);
    let name = target.file_name()?.to_str()?.strip_suffix(".sieve")?;
    let same_dir = match (target.parent()?.canonicalize(), scripts_dir.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    same_dir.then(|| name.to_string())
}

/// Checks the scripts of `dir` as ManageSieve would and hands the good ones to `sink`; the
/// one `.dovecot.sieve` names is activated if it was stored.
pub async fn import_sieve(
    dir: &Path,
    config: &Config,
    sink: &mut impl ScriptSink,
) -> Result<SieveReport, String> {
    let found = read_dir(dir)?;
    let mut report = SieveReport {
        problems: found.problems,
        ..SieveReport::default()
    };
    let (limits, policy) = (limits(config), mail_policy(config));
    let mut stored = Vec::new();
    for (name, source) in &found.scripts {
        let why = match check_script(source, &limits, policy) {
            Ok(script) => match sink.put_script(name, script.source()).await {
                Ok(()) => {
                    report.imported += 1;
                    stored.push(name.clone());
                    continue;
                }
                Err(why) => why,
            },
            Err(Refusal::TooLarge(why) | Refusal::Invalid(why)) => why,
        };
        report
            .problems
            .push(format!("script {name:?}: {why}; skipped"));
    }
    if let Some(active) = found.active {
        if stored.contains(&active) {
            sink.activate_script(&active).await?;
            report.active = Some(active);
        } else {
            report.problems.push(format!(
                "the active script {active:?} was not imported; no script made active"
            ));
        }
    }
    Ok(report)
}

/// Stores one script in `user`'s partition (on the executor that owns it), within
/// `[sieve] max_scripts` counting the scripts the user has already.
pub async fn store_script(
    mail: &Partition,
    config: &Config,
    user: &str,
    name: &str,
    source: &str,
) -> Result<(), String> {
    let max = config.sieve.max_scripts.min(ringmail_store::MAX_SCRIPTS);
    let scripts = mail.scripts(user).map_err(|e| e.to_string())?;
    if !scripts.iter().any(|s| s.name == name) && scripts.len() >= max {
        return Err(format!(
            "the user has {} scripts already, the most [sieve] max_scripts allows",
            scripts.len()
        ));
    }
    mail.put_script(user, name, source)
        .await
        .map_err(|e| e.to_string())
}

/// Makes `name` the user's active script.
pub async fn activate(mail: &Partition, user: &str, name: &str) -> Result<(), String> {
    mail.activate_script(user, Some(name))
        .await
        .map_err(|e: StoreError| format!("activating {name:?}: {e}"))
}

/// The offline sink: the partition opened by the tool.
pub struct PartitionSink<'a> {
    pub mail: &'a Partition,
    pub config: &'a Config,
    pub user: &'a str,
}

impl ScriptSink for PartitionSink<'_> {
    async fn put_script(&mut self, name: &str, source: &str) -> Result<(), String> {
        store_script(self.mail, self.config, self.user, name, source).await
    }

    async fn activate_script(&mut self, name: &str) -> Result<(), String> {
        activate(self.mail, self.user, name).await
    }
}

/// What a sieve export wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SieveExport {
    /// Script files written.
    pub exported: u64,
    /// The script `.dovecot.sieve` now names.
    pub active: Option<String>,
    /// One line per script that was not written, and why.
    pub problems: Vec<String>,
}

/// One of a user's scripts, as export writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredScript {
    pub name: String,
    pub active: bool,
    pub source: String,
}

/// Every script of the user with its source, read at once (on the executor that owns the
/// user), so that the set written is one state of the user's scripts.
pub fn user_scripts(mail: &Partition, user: &str) -> Result<Vec<StoredScript>, String> {
    let listed = mail.scripts(user).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(listed.len());
    for info in listed {
        if let Some(source) = mail.script(user, &info.name).map_err(|e| e.to_string())? {
            out.push(StoredScript {
                name: info.name,
                active: info.active,
                source,
            });
        }
    }
    Ok(out)
}

impl AdminClient {
    /// The user's scripts from the running server (see [`user_scripts`]).
    pub fn scripts(&mut self) -> Result<Vec<StoredScript>, String> {
        match self.ask(&Request::Scripts)? {
            Reply::Scripts(list) => Ok(list),
            other => Err(unexpected(&other)),
        }
    }

    /// The user's Sieve error log from the running server, oldest entry first.
    pub fn sieve_log(&mut self) -> Result<Vec<SieveLogEntry>, String> {
        match self.ask(&Request::SieveLog)? {
            Reply::SieveLog(list) => Ok(list),
            other => Err(unexpected(&other)),
        }
    }
}

/// The log as `ringmail sieve log` prints it, one line per entry, oldest first:
/// `DATE script "NAME" line N: REASON` (line 0: the error has no line).
pub fn log_lines(entries: &[SieveLogEntry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| {
            format!(
                "{} script {:?} line {}: {}",
                ringmail_proto::dates::imap_date_time(e.time),
                e.script,
                e.line,
                e.message
            )
        })
        .collect()
}

/// `ringmail export sieve DIR`: the user's scripts in Pigeonhole's home layout, the one
/// [`read_dir`] reads back: `DIR/sieve/NAME.sieve`, and the link `DIR/.dovecot.sieve` →
/// `sieve/ACTIVE.sieve` when a script is active. Files of the same names are replaced, an
/// old link too (a `.dovecot.sieve` that is a regular file is a script of its own and is
/// left alone, reported). Names that are no file name (a `/` in them) are reported and
/// skipped.
pub fn write_sieve_dir(scripts: &[StoredScript], dir: &Path) -> Result<SieveExport, String> {
    let scripts_dir = dir.join("sieve");
    std::fs::create_dir_all(&scripts_dir).map_err(|e| format!("{}: {e}", scripts_dir.display()))?;
    let mut report = SieveExport::default();
    for script in scripts {
        let name = &script.name;
        if name.contains('/') || name == "." || name == ".." {
            report.problems.push(format!(
                "script {name:?}: the name cannot be a file name; skipped"
            ));
            continue;
        }
        let path = scripts_dir.join(format!("{name}.sieve"));
        std::fs::write(&path, &script.source).map_err(|e| format!("{}: {e}", path.display()))?;
        report.exported += 1;
        if script.active {
            report.active = Some(name.clone());
        }
    }
    let link = dir.join(".dovecot.sieve");
    match std::fs::symlink_metadata(&link) {
        Ok(meta) if meta.file_type().is_symlink() => {
            std::fs::remove_file(&link).map_err(|e| format!("{}: {e}", link.display()))?
        }
        Ok(_) => {
            report.problems.push(format!(
                "{}: a file, not a link; left as it was, so it does not name the active script",
                link.display()
            ));
            return Ok(report);
        }
        Err(_) => {}
    }
    if let Some(active) = &report.active {
        // Relative, as Pigeonhole writes it, so the tree can be moved as a whole.
        std::os::unix::fs::symlink(format!("sieve/{active}.sieve"), &link)
            .map_err(|e| format!("{}: {e}", link.display()))?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_and_sieve_dir_layouts_name_the_active_script() {
        let home = tempfile::tempdir().unwrap();
        let sieve = home.path().join("sieve");
        std::fs::create_dir_all(sieve.join("tmp")).unwrap();
        std::fs::write(sieve.join("rules.sieve"), "keep;\n").unwrap();
        std::fs::write(sieve.join("other.sieve"), "discard;\n").unwrap();
        std::fs::write(sieve.join("rules.svbin"), [0u8, 1, 2]).unwrap();
        std::fs::write(sieve.join("notes.txt"), "x").unwrap();
        std::os::unix::fs::symlink("sieve/rules.sieve", home.path().join(".dovecot.sieve"))
            .unwrap();
        for dir in [home.path(), sieve.as_path()] {
            let found = read_dir(dir).unwrap();
            let names: Vec<&str> = found.scripts.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(names, ["other", "rules"], "{}", dir.display());
            assert_eq!(found.active.as_deref(), Some("rules"));
            assert!(found.problems.is_empty(), "{:?}", found.problems);
        }
        // A link to a file elsewhere names no script here.
        std::fs::remove_file(home.path().join(".dovecot.sieve")).unwrap();
        std::fs::write(home.path().join("elsewhere.sieve"), "keep;").unwrap();
        std::os::unix::fs::symlink("elsewhere.sieve", home.path().join(".dovecot.sieve")).unwrap();
        let found = read_dir(home.path()).unwrap();
        assert_eq!(found.active, None);
        assert_eq!(found.problems.len(), 1, "{:?}", found.problems);
        // A regular file is a script of its own, made active.
        std::fs::remove_file(home.path().join(".dovecot.sieve")).unwrap();
        std::fs::write(home.path().join(".dovecot.sieve"), "stop;").unwrap();
        let found = read_dir(home.path()).unwrap();
        assert_eq!(found.active.as_deref(), Some(ORIGINAL));
        assert!(found
            .scripts
            .iter()
            .any(|(n, s)| n == ORIGINAL && s == b"stop;"));
    }
}
