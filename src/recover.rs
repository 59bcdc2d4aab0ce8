//! `ringmail cluster recover DIR`: the mail of an old owner's partition directory set aside
//! after a failover (`p-NNNN.old-owner-E`, src/replication/old_owner.rs) goes to the
//! partition's current owner, so acknowledged mail only that copy holds reaches its users.
//!
//! DIR is never written: it is copied into a private temporary data dir (as `p-NNNN`, opened
//! with the node's config less `[cluster]`, so the offline tools' store can read it; opening
//! the copy may cut a torn tail there, never in DIR), and the copy is removed at the end,
//! also on an error. For every user the copy's index holds, each mailbox is imported
//! through the running node's admin socket exactly as `ringmail import` does it (one admin
//! connection per mailbox, so the owner's report counts that mailbox alone): the node passes
//! it to the user's owner over the node link (crates/admin forward.rs), and the owner's
//! import sink skips every message the mailbox holds already (same internal date, size and
//! bytes). So a second run adds nothing, and a message counts as on the owner when it was
//! added or found there.
//!
//! The users are those of the copy's own index ([`ringmail_store::Partition::users`]), not
//! those of the node's users source whose partition is p: the index holds exactly the
//! partition's users, including any since removed from the users file, and an LDAP
//! directory cannot be listed.
//!
//! A message expunged on the new owner after the failover comes back (the old copy holds
//! it and the owner does not any more), and so does a mailbox deleted there: that is the
//! lesser evil next to losing mail a client was told was stored.

use std::path::Path;
use std::rc::Rc;

use ringmail_admin::client::AdminClient;
use ringmail_admin::tools::export::{Source, StoreSource};
use ringmail_admin::tools::import::{import_mailbox, Sink};
use ringmail_config::Config;
use ringmail_store::Partition;

/// The partition whose set-aside old owner's copy `dir` is, or why recover refuses it.
pub fn aside_partition_of(dir: &Path) -> Result<u32, String> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    use crate::replication::{aside_partition, copy_partition, partition_number};
    let Some(partition) = aside_partition(&name) else {
        let what = if copy_partition(&name).is_some() {
            "a replica copy (its owner holds everything it does)"
        } else if partition_number(&name).is_some() {
            "a partition directory a node serves or will serve"
        } else {
            "not a partition directory"
        };
        return Err(format!(
            "{}: {what}; recover reads only an old owner's copy set aside after a failover, \
             named p-NNNN.old-owner-E (`ringmail cluster status` lists them); nothing was done",
            dir.display()
        ));
    };
    if !dir.is_dir() {
        return Err(format!("{}: no such directory", dir.display()));
    }
    Ok(partition)
}

/// One mailbox of the copy, sent to its owner.
struct Mailbox {
    examined: u64,
    added: u64,
    present: u64,
    problems: Vec<String>,
}

impl Mailbox {
    /// Every message the copy holds is on the owner now.
    fn complete(&self) -> bool {
        self.problems.is_empty() && self.added + self.present == self.examined
    }
}

/// Sends `mailbox` of `user` from the copy to the user's owner through the admin socket,
/// on a connection of its own.
async fn send_mailbox(
    socket: &Path,
    source: &mut StoreSource,
    user: &str,
    mailbox: &str,
) -> Result<Mailbox, String> {
    let mut client = AdminClient::connect(socket, user)?;
    // As an import does: a user new to the owner gets INBOX and the special-use folders
    // first (nothing happens for a known one).
    client.set_up_user(&[]).await?;
    let read = import_mailbox(source, mailbox, &mut client).await?;
    let report = client.finish()?;
    let mut problems = report.problems;
    if read.sent < read.listed {
        problems.push(format!(
            "{} messages of the copy could not be read",
            read.listed - read.sent
        ));
    }
    Ok(Mailbox {
        examined: read.listed,
        added: report.imported,
        present: report.already_present,
        problems,
    })
}

/// Sends every mailbox of every user of `mail` (the copy) to its owner, printing a line
/// per mailbox and a total; how many mailboxes are not all on the owner.
async fn send_partition(mail: Rc<Partition>, socket: &Path) -> Result<u64, String> {
    let (mut users, mut mailboxes, mut incomplete) = (0u64, 0u64, 0u64);
    let (mut examined, mut added, mut present) = (0u64, 0u64, 0u64);
    for user in mail.users() {
        users += 1;
        let mut source = StoreSource::new(mail.clone(), &user);
        for name in source.mailboxes().await? {
            mailboxes += 1;
            let done = match send_mailbox(socket, &mut source, &user, &name).await {
                Ok(done) => done,
                Err(why) => {
                    println!("{user} {name}: not recovered: {why}");
                    incomplete += 1;
                    continue;
                }
            };
            println!(
                "{user} {name}: {} messages examined, {} added, {} already present",
                done.examined, done.added, done.present
            );
            for problem in &done.problems {
                println!("  problem: {problem}");
            }
            incomplete += u64::from(!done.complete());
            examined += done.examined;
            added += done.added;
            present += done.present;
        }
    }
    println!(
        "total: {users} users, {mailboxes} mailboxes, {examined} messages examined, {added} \
         added, {present} already present"
    );
    Ok(incomplete)
}

/// Copies the files of partition directory `from` into the new directory `to` (a
/// `MOVED` marker, which would keep the copy from opening, is left out).
fn copy_partition(from: &Path, to: &Path) -> std::io::Result<u64> {
    std::fs::create_dir(to)?;
    let mut bytes = 0;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if name == ringmail_store::MOVED_MARKER {
            continue;
        }
        let kind = entry.file_type()?;
        if kind.is_dir() {
            bytes += copy_partition(&entry.path(), &to.join(&name))?;
        } else if kind.is_file() {
            bytes += std::fs::copy(entry.path(), to.join(&name))?;
        }
    }
    Ok(bytes)
}

/// `ringmail cluster recover DIR [--remove]` on the node whose config is `config` and whose
/// admin socket is `socket` (the node must run). Prints a line per user and mailbox and a
/// total; `Err` unless every message of DIR is on the owner now.
pub fn command(config: &Config, socket: &Path, dir: &Path, remove: bool) -> Result<(), String> {
    let partition = aside_partition_of(dir)?;
    // Two runs at once could both find a message missing on the owner and both add it.
    let _running = match ringmail_runtime::lock::DirLock::try_acquire(dir) {
        Ok(Some(lock)) => lock,
        Ok(None) => {
            return Err(format!(
                "{}: another `cluster recover` of this directory is running; nothing was done",
                dir.display()
            ))
        }
        Err(e) => return Err(format!("cannot lock {}: {e}", dir.display())),
    };
    // The copy lives under $TMPDIR and goes when `scratch` is dropped, whatever happens.
    let scratch = tempfile::Builder::new()
        .prefix("ringmail-recover-")
        .tempdir()
        .map_err(|e| format!("cannot make a temporary directory (set TMPDIR): {e}"))?;
    let copy = ringmail_runtime::partitions::Partitions::dir(scratch.path(), partition);
    let bytes = copy_partition(dir, &copy).map_err(|e| {
        format!(
            "cannot copy {} into {}: {e} (it needs as much room as the directory: set TMPDIR \
             to a place that has it)",
            dir.display(),
            copy.display()
        )
    })?;
    println!(
        "recovering partition {partition} from {} ({bytes} bytes, read from a copy in {}) \
         through {}",
        dir.display(),
        scratch.path().display(),
        socket.display()
    );
    let mut local = config.clone();
    local.cluster = Default::default();
    let incomplete = ringmail_admin::tools::offline::run(
        &local,
        scratch.path(),
        "recover",
        |store| async move {
            let mail = store
                .partition(partition)
                .await
                .map_err(|e| format!("cannot open the copy of {}: {e}", dir.display()))?;
            send_partition(mail, socket).await
        },
    )?;
    drop(scratch);
    if incomplete > 0 {
        return Err(format!(
            "{incomplete} mailboxes are not all on the owner (problems above); {} stays: run the \
             command again once they are solved (it adds only what is missing)",
            dir.display()
        ));
    }
    if !remove {
        println!(
            "every message of {} is on the partition's owner now: the directory can be \
             removed (`ringmail cluster recover --remove`, or by hand)",
            dir.display()
        );
        return Ok(());
    }
    std::fs::remove_dir_all(dir).map_err(|e| format!("cannot remove {}: {e}", dir.display()))?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(|e| {
                format!(
                    "removed {}, but syncing {}: {e}",
                    dir.display(),
                    parent.display()
                )
            })?;
    }
    println!(
        "every message of {} is on the partition's owner now: removed it",
        dir.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_recover_of_one_directory_is_refused_while_the_first_runs() {
        let data = tempfile::tempdir().unwrap();
        let aside = data.path().join("p-0003.old-owner-7");
        std::fs::create_dir(&aside).unwrap();
        let first = ringmail_runtime::lock::DirLock::try_acquire(&aside).unwrap();
        assert!(first.is_some());
        // flock locks belong to the open file: a second open, as another process makes,
        // does not get it.
        let config = Config::default();
        let refused = command(&config, &data.path().join("admin.sock"), &aside, false).unwrap_err();
        assert!(refused.contains("another `cluster recover`"), "{refused}");
        drop(first);
        assert!(ringmail_runtime::lock::DirLock::try_acquire(&aside)
            .unwrap()
            .is_some());
    }

    #[test]
    fn only_an_old_owners_copy_set_aside_is_accepted() {
        let data = tempfile::tempdir().unwrap();
        let aside = data.path().join("p-0003.old-owner-7");
        std::fs::create_dir(&aside).unwrap();
        assert_eq!(aside_partition_of(&aside), Ok(3));
        let gone = data.path().join("p-0004.old-owner-7");
        assert!(aside_partition_of(&gone)
            .unwrap_err()
            .contains("no such directory"));
        for (name, why) in [
            ("p-0003", "a partition directory a node serves"),
            ("p-0003.replica", "a replica copy"),
            ("p-0003.old-owner-", "not a partition directory"),
            ("p-03.old-owner-2", "not a partition directory"),
            ("mail", "not a partition directory"),
        ] {
            let dir = data.path().join(name);
            std::fs::create_dir(&dir).unwrap();
            let refused = aside_partition_of(&dir).unwrap_err();
            assert!(refused.contains(why), "{name}: {refused}");
            assert!(refused.contains("p-NNNN.old-owner-E"), "{name}: {refused}");
        }
    }
}
