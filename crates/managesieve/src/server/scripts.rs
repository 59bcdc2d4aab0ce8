//! [`ScriptStore`] over the user's store partition. Every operation is an owner job
//! (`ringmail_runtime::route`): it runs on the executor that owns the user's partition,
//! wherever the session runs, and answers once a change is durable.

use std::rc::Rc;

use ringmail_runtime::partition::partition_of;
use ringmail_runtime::route::{self, OwnerJob};
use ringmail_runtime::runtime::Executor;
use ringmail_sieve::Script;
use ringmail_store::{Partition, StoreError as Store};

use crate::store::{ScriptInfo, ScriptStore, StoreError};

/// A user's scripts, for the sessions of one executor.
pub struct PartitionScripts {
    exec: Rc<Executor>,
    /// The configured scripts per user (`[sieve] max_scripts`), enforced again on the owner:
    /// the session's own count is read before its upload, and another session may upload
    /// in between.
    max_scripts: usize,
}

impl PartitionScripts {
    pub fn new(exec: Rc<Executor>, max_scripts: usize) -> PartitionScripts {
        PartitionScripts { exec, max_scripts }
    }

    async fn ask(&self, user: &str, op: Op) -> Result<Answer, StoreError> {
        let job = ScriptJob {
            user: user.to_string(),
            op,
            max_scripts: self.max_scripts,
        };
        route::ask(&self.exec, self.exec.owner_of(user), job)
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::Unavailable(
                    "The server is shutting down; try again in a moment.".into(),
                ))
            })
    }
}

/// One operation on a user's scripts.
enum Op {
    List,
    Get(String),
    Put { name: String, source: String },
    Delete(String),
    Rename { old: String, new: String },
    SetActive(Option<String>),
    GetActive,
}

enum Answer {
    List(Vec<ScriptInfo>),
    Source(String),
    Active(Option<String>),
    Done,
}

struct ScriptJob {
    user: String,
    op: Op,
    max_scripts: usize,
}

impl OwnerJob for ScriptJob {
    type Answer = Result<Answer, StoreError>;

    async fn run(self, exec: Rc<Executor>) -> Self::Answer {
        let partitions = exec.config().storage.partitions;
        let mail = exec
            .store
            .get(partition_of(&self.user, partitions))
            .await
            .map_err(store_error)?;
        run_here(&mail, &self.user, self.op, self.max_scripts).await
    }
}

async fn run_here(
    mail: &Partition,
    user: &str,
    op: Op,
    max_scripts: usize,
) -> Result<Answer, StoreError> {
    let e = store_error;
    Ok(match op {
        Op::List => Answer::List(
            mail.scripts(user)
                .map_err(e)?
                .into_iter()
                .map(|s| ScriptInfo {
                    name: s.name,
                    active: s.active,
                })
                .collect(),
        ),
        Op::Get(name) => Answer::Source(
            mail.script(user, &name)
                .map_err(e)?
                .ok_or(StoreError::NotFound)?,
        ),
        Op::Put { name, source } => {
            let scripts = mail.scripts(user).map_err(e)?;
            if !scripts.iter().any(|s| s.name == name) && scripts.len() >= max_scripts {
                return Err(StoreError::TooManyScripts);
            }
            mail.put_script(user, &name, &source).await.map_err(e)?;
            Answer::Done
        }
        Op::Delete(name) => {
            mail.delete_script(user, &name).await.map_err(e)?;
            Answer::Done
        }
        Op::Rename { old, new } => {
            mail.rename_script(user, &old, &new).await.map_err(e)?;
            Answer::Done
        }
        Op::SetActive(name) => {
            mail.activate_script(user, name.as_deref())
                .await
                .map_err(e)?;
            Answer::Done
        }
        Op::GetActive => Answer::Active(mail.active_script(user).map_err(e)?.map(|s| s.name)),
    })
}

/// The session's answer for a store error.
fn store_error(e: Store) -> StoreError {
    match e {
        Store::NoSuchScript => StoreError::NotFound,
        Store::AlreadyExists => StoreError::AlreadyExists,
        Store::ScriptActive => StoreError::Active,
        Store::TooLarge => StoreError::TooLarge,
        // The store's own backstop (more scripts than it keeps for anyone).
        Store::NotPermitted("too many scripts") => StoreError::TooManyScripts,
        e if e.is_disk_full() => {
            StoreError::Unavailable("The server is out of disk space; try again later.".into())
        }
        e => {
            tracing::warn!(error = %e, "ManageSieve: store operation failed");
            StoreError::Unavailable(format!("The script store failed ({e}); try again later."))
        }
    }
}

impl ScriptStore for PartitionScripts {
    async fn list(&self, user: &str) -> Result<Vec<ScriptInfo>, StoreError> {
        match self.ask(user, Op::List).await? {
            Answer::List(list) => Ok(list),
            _ => Err(mismatch()),
        }
    }

    async fn get(&self, user: &str, name: &str) -> Result<String, StoreError> {
        match self.ask(user, Op::Get(name.to_string())).await? {
            Answer::Source(source) => Ok(source),
            _ => Err(mismatch()),
        }
    }

    async fn put(&self, user: &str, name: &str, script: &Script) -> Result<(), StoreError> {
        let op = Op::Put {
            name: name.to_string(),
            source: script.source().to_string(),
        };
        self.ask(user, op).await.map(drop)
    }

    async fn delete(&self, user: &str, name: &str) -> Result<(), StoreError> {
        self.ask(user, Op::Delete(name.to_string())).await.map(drop)
    }

    async fn rename(&self, user: &str, old: &str, new: &str) -> Result<(), StoreError> {
        let op = Op::Rename {
            old: old.to_string(),
            new: new.to_string(),
        };
        self.ask(user, op).await.map(drop)
    }

    async fn set_active(&self, user: &str, name: Option<&str>) -> Result<(), StoreError> {
        let op = Op::SetActive(name.map(str::to_string));
        self.ask(user, op).await.map(drop)
    }

    async fn get_active(&self, user: &str) -> Result<Option<String>, StoreError> {
        match self.ask(user, Op::GetActive).await? {
            Answer::Active(name) => Ok(name),
            _ => Err(mismatch()),
        }
    }
}

/// An answer of the wrong kind: each operation's job answers with its own kind, so this
/// is a bug, reported as a failure rather than a panic.
fn mismatch() -> StoreError {
    StoreError::Unavailable("internal error: unexpected answer from the script store".into())
}
