//! Where a user's scripts live. The server implements [`ScriptStore`] over the user's
//! store partition; [`MemoryScripts`] is the reference implementation, for tests.

use std::collections::BTreeMap;
use std::sync::Mutex;

use ringmail_sieve::Script;

/// One of a user's scripts, as LISTSCRIPTS shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptInfo {
    pub name: String,
    pub active: bool,
}

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// No script has that name.
    NotFound,
    /// The new name of a rename is taken (also when it is the old name).
    AlreadyExists,
    /// The script to delete is the active one.
    Active,
    /// A new script would exceed the user's number of scripts.
    TooManyScripts,
    /// The script is larger than the store accepts.
    TooLarge,
    /// A temporary failure (the partition is moving, a disk error); the text is for the
    /// user and should say whether to retry.
    Unavailable(String),
}

/// A user's scripts. Each operation must be atomic: two sessions of one user may race.
/// The rules the session relies on are spelled out per method; [`MemoryScripts`] follows
/// them and `contract` checks an implementation against them.
#[allow(async_fn_in_trait)]
pub trait ScriptStore {
    /// All of the user's scripts, in any order, at most one of them active.
    async fn list(&self, user: &str) -> Result<Vec<ScriptInfo>, StoreError>;
    /// A script's source. `NotFound` when there is none by that name.
    async fn get(&self, user: &str, name: &str) -> Result<String, StoreError>;
    /// Stores `script` (its source is `script.source()`; the compiled form may be cached)
    /// under `name`, replacing a script of that name, which stays active if it was.
    async fn put(&self, user: &str, name: &str, script: &Script) -> Result<(), StoreError>;
    /// Deletes a script: `NotFound`, or `Active` when it is the active one.
    async fn delete(&self, user: &str, name: &str) -> Result<(), StoreError>;
    /// Renames a script, which stays active if it was: `NotFound` when `old` does not
    /// exist, `AlreadyExists` when `new` does.
    async fn rename(&self, user: &str, old: &str, new: &str) -> Result<(), StoreError>;
    /// Makes `name` the active script, or none with `None`: `NotFound` when it does not
    /// exist.
    async fn set_active(&self, user: &str, name: Option<&str>) -> Result<(), StoreError>;
    /// The active script's name, if any (what delivery runs).
    async fn get_active(&self, user: &str) -> Result<Option<String>, StoreError>;
}

#[derive(Debug, Default)]
struct UserScripts {
    scripts: BTreeMap<String, String>,
    active: Option<String>,
}

/// Scripts in memory, for tests. Shared between threads.
#[derive(Debug, Default)]
pub struct MemoryScripts {
    users: Mutex<BTreeMap<String, UserScripts>>,
}

impl MemoryScripts {
    pub fn new() -> MemoryScripts {
        MemoryScripts::default()
    }

    fn with<T>(&self, user: &str, f: impl FnOnce(&mut UserScripts) -> T) -> T {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        f(users.entry(user.to_string()).or_default())
    }
}

impl ScriptStore for MemoryScripts {
    async fn list(&self, user: &str) -> Result<Vec<ScriptInfo>, StoreError> {
        Ok(self.with(user, |u| {
            u.scripts
                .keys()
                .map(|name| ScriptInfo {
                    name: name.clone(),
                    active: u.active.as_ref() == Some(name),
                })
                .collect()
        }))
    }

    async fn get(&self, user: &str, name: &str) -> Result<String, StoreError> {
        self.with(user, |u| u.scripts.get(name).cloned())
            .ok_or(StoreError::NotFound)
    }

    async fn put(&self, user: &str, name: &str, script: &Script) -> Result<(), StoreError> {
        self.with(user, |u| {
            u.scripts
                .insert(name.to_string(), script.source().to_string());
        });
        Ok(())
    }

    async fn delete(&self, user: &str, name: &str) -> Result<(), StoreError> {
        self.with(user, |u| {
            if u.active.as_deref() == Some(name) {
                return Err(StoreError::Active);
            }
            u.scripts.remove(name).map(drop).ok_or(StoreError::NotFound)
        })
    }

    async fn rename(&self, user: &str, old: &str, new: &str) -> Result<(), StoreError> {
        self.with(user, |u| {
            if !u.scripts.contains_key(old) {
                return Err(StoreError::NotFound);
            }
            if u.scripts.contains_key(new) {
                return Err(StoreError::AlreadyExists);
            }
            let source = u.scripts.remove(old).unwrap_or_default();
            u.scripts.insert(new.to_string(), source);
            if u.active.as_deref() == Some(old) {
                u.active = Some(new.to_string());
            }
            Ok(())
        })
    }

    async fn set_active(&self, user: &str, name: Option<&str>) -> Result<(), StoreError> {
        self.with(user, |u| {
            match name {
                Some(n) if !u.scripts.contains_key(n) => return Err(StoreError::NotFound),
                _ => u.active = name.map(str::to_string),
            }
            Ok(())
        })
    }

    async fn get_active(&self, user: &str) -> Result<Option<String>, StoreError> {
        Ok(self.with(user, |u| u.active.clone()))
    }
}

/// Checks a store against the rules of [`ScriptStore`], with a fresh user `user`: for the
/// tests of an implementation. Panics with the rule that was broken.
pub async fn contract<S: ScriptStore>(store: &S, user: &str) {
    let limits = ringmail_sieve::Limits::default();
    let one = Script::compile("keep;", &limits).expect("compiles");
    let two = Script::compile("discard;", &limits).expect("compiles");
    let names = |list: Vec<ScriptInfo>| {
        let mut v: Vec<(String, bool)> = list.into_iter().map(|s| (s.name, s.active)).collect();
        v.sort();
        v
    };
    assert_eq!(
        store.list(user).await,
        Ok(vec![]),
        "a new user has no scripts"
    );
    assert_eq!(store.get_active(user).await, Ok(None));
    assert_eq!(store.get(user, "a").await, Err(StoreError::NotFound));
    store.put(user, "a", &one).await.expect("put");
    assert_eq!(store.get(user, "a").await, Ok("keep;".into()));
    assert_eq!(
        store.set_active(user, Some("b")).await,
        Err(StoreError::NotFound)
    );
    store.set_active(user, Some("a")).await.expect("set_active");
    store.put(user, "a", &two).await.expect("replace");
    assert_eq!(store.get(user, "a").await, Ok("discard;".into()));
    assert_eq!(
        store.get_active(user).await,
        Ok(Some("a".into())),
        "replacing the active script keeps it active"
    );
    assert_eq!(store.delete(user, "a").await, Err(StoreError::Active));
    store.put(user, "b", &one).await.expect("put");
    assert_eq!(
        store.rename(user, "a", "b").await,
        Err(StoreError::AlreadyExists)
    );
    assert_eq!(
        store.rename(user, "a", "a").await,
        Err(StoreError::AlreadyExists)
    );
    assert_eq!(
        store.rename(user, "x", "y").await,
        Err(StoreError::NotFound)
    );
    store.rename(user, "a", "c").await.expect("rename");
    assert_eq!(
        names(store.list(user).await.expect("list")),
        vec![("b".into(), false), ("c".into(), true)],
        "the renamed script stays active"
    );
    store.set_active(user, None).await.expect("deactivate");
    assert_eq!(store.get_active(user).await, Ok(None));
    store.delete(user, "c").await.expect("delete");
    assert_eq!(store.delete(user, "c").await, Err(StoreError::NotFound));
    assert_eq!(
        names(store.list(user).await.expect("list")),
        vec![("b".into(), false)]
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_scripts_keep_the_contract() {
        let store = MemoryScripts::new();
        futures_lite::future::block_on(contract(&store, "alice"));
        // Users are apart.
        futures_lite::future::block_on(contract(&store, "bob"));
    }
}
