//! The store partitions one executor owns, opened on first use.
//!
//! A partition is opened (checkpoint load plus log replay) by the executor that owns it the
//! first time one of its users logs in, or at start when its directory already exists, so a
//! damaged partition is reported at start rather than at some user's login. Two sessions that
//! need the same partition at once wait on one open.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use glommio::sync::Semaphore;

use ringmail_config::Config;
use ringmail_store::{special_use, Options, Partition, StoreError};

/// One executor's partitions.
pub struct Partitions {
    root: PathBuf,
    options: Options,
    slots: RefCell<HashMap<u32, Rc<Slot>>>,
    hooks: RefCell<Option<Rc<dyn OpenHooks>>>,
}

/// What a cluster node does around opening a partition (replication: a replica copy
/// becomes the partition, and every batch is shipped from the first one on).
pub trait OpenHooks {
    /// Before partition `p` is opened from `dir`; an error fails the open.
    fn before_open(&self, p: u32, dir: &Path) -> Result<(), StoreError>;
    /// Right after it was opened, before anything uses it.
    fn opened(&self, p: u32, partition: &Rc<Partition>);
}

struct Slot {
    /// One opener at a time.
    lock: Semaphore,
    partition: RefCell<Option<Rc<Partition>>>,
}

impl Partitions {
    /// Partitions under `root` (the data dir), opened with `options`.
    pub fn new(root: &Path, options: Options) -> Partitions {
        Partitions {
            root: root.to_owned(),
            options,
            slots: RefCell::new(HashMap::new()),
            hooks: RefCell::new(None),
        }
    }

    /// Sets what runs around every later open.
    pub fn set_hooks(&self, hooks: Rc<dyn OpenHooks>) {
        *self.hooks.borrow_mut() = Some(hooks);
    }

    /// The directory of partition `p`.
    pub fn dir(root: &Path, p: u32) -> PathBuf {
        root.join(format!("p-{p:04}"))
    }

    /// Opens every partition among `owned` whose directory exists; the first error stops.
    pub async fn open_existing(&self, owned: impl Iterator<Item = u32>) -> Result<usize, String> {
        let mut opened = 0;
        for p in owned {
            if Self::dir(&self.root, p).is_dir() {
                self.get(p)
                    .await
                    .map_err(|e| format!("partition {p}: {e}"))?;
                opened += 1;
            }
        }
        Ok(opened)
    }

    /// The partitions open now, with their numbers (a copy of the list, so callers may
    /// await while iterating).
    pub fn open_partitions(&self) -> impl Iterator<Item = (u32, Rc<Partition>)> {
        let open: Vec<(u32, Rc<Partition>)> = self
            .slots
            .borrow()
            .iter()
            .filter_map(|(p, slot)| Some((*p, slot.partition.borrow().clone()?)))
            .collect();
        open.into_iter()
    }

    /// Partition `p` if it is open, without opening it.
    pub fn opened(&self, p: u32) -> Option<Rc<Partition>> {
        self.slots.borrow().get(&p)?.partition.borrow().clone()
    }

    /// The options partitions are opened with.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Drops this executor's handle on `p` (it was handed to another node): the next `get`
    /// opens its directory again, which a moved copy refuses. Sessions that still hold it
    /// keep it until they end.
    pub fn forget(&self, p: u32) {
        self.slots.borrow_mut().remove(&p);
    }

    /// Partition `p`, opening it if needed.
    pub async fn get(&self, p: u32) -> Result<Rc<Partition>, StoreError> {
        let slot = self
            .slots
            .borrow_mut()
            .entry(p)
            .or_insert_with(|| {
                Rc::new(Slot {
                    lock: Semaphore::new(1),
                    partition: RefCell::new(None),
                })
            })
            .clone();
        if let Some(partition) = slot.partition.borrow().as_ref() {
            return Ok(partition.clone());
        }
        let _permit = slot
            .lock
            .acquire_permit(1)
            .await
            .map_err(|_| StoreError::NotPermitted("shutting down"))?;
        if let Some(partition) = slot.partition.borrow().as_ref() {
            return Ok(partition.clone());
        }
        let dir = Self::dir(&self.root, p);
        let hooks = self.hooks.borrow().clone();
        if let Some(hooks) = &hooks {
            hooks.before_open(p, &dir)?;
        }
        let partition = Rc::new(Partition::open(dir, self.options.clone()).await?);
        if let Some(hooks) = &hooks {
            hooks.opened(p, &partition);
        }
        *slot.partition.borrow_mut() = Some(partition.clone());
        Ok(partition)
    }

    /// The partition `p` holding `user`, with the user set up on first use: INBOX and the
    /// special-use folders of `[mailboxes]`, all subscribed. IMAP login, LMTP delivery and
    /// import all go through here, so a user looks the same however their mail first came.
    /// `storage_quota` is the limit the user's directory entry names (LDAP's quota
    /// attribute), which then replaces the configured one; see [`apply_storage_quota`].
    pub async fn user(
        &self,
        p: u32,
        user: &str,
        config: &Config,
        storage_quota: Option<u64>,
    ) -> Result<Rc<Partition>, StoreError> {
        let mail = self.get(p).await?;
        setup_user(&mail, user, config, &|_| None).await?;
        if let Some(bytes) = storage_quota {
            apply_storage_quota(&mail, user, bytes).await?;
        }
        Ok(mail)
    }

    /// Clean shutdown: checkpoints and closes every open partition. Sessions must be gone.
    pub async fn close_all(&self) {
        let slots: Vec<(u32, Rc<Slot>)> = self.slots.borrow_mut().drain().collect();
        for (p, slot) in slots {
            let Some(partition) = slot.partition.borrow_mut().take() else {
                continue;
            };
            match Rc::try_unwrap(partition) {
                Ok(partition) => {
                    if let Err(e) = partition.close().await {
                        tracing::error!(partition = p, "closing the partition failed: {e}");
                    }
                }
                Err(partition) => {
                    // A session still holds it (grace period ran out): flush what is pending;
                    // recovery replays from the last checkpoint.
                    partition.flush().await;
                    tracing::warn!(partition = p, "closed without a final checkpoint");
                }
            }
        }
    }
}

/// Creates `user`'s INBOX and special-use folders (subscribed) when the user has no mailbox
/// yet, with the configured quota; true when the user was new. `uidvalidity` may choose a
/// folder's UIDVALIDITY (an import keeping Dovecot's UIDs); a mailbox cannot change it later.
pub async fn setup_user(
    mail: &Partition,
    user: &str,
    config: &Config,
    uidvalidity: &dyn Fn(&str) -> Option<u32>,
) -> Result<bool, StoreError> {
    // The common case, an existing user, costs one index lookup.
    if mail.with_mailbox(user, "INBOX", |_| ()).is_ok() || !mail.list_mailboxes(user).is_empty() {
        return Ok(false);
    }
    let names = &config.mailboxes;
    for (name, attr) in [
        ("INBOX", 0),
        (names.drafts.as_str(), special_use::DRAFTS),
        (names.sent.as_str(), special_use::SENT),
        (names.trash.as_str(), special_use::TRASH),
        (names.junk.as_str(), special_use::JUNK),
        (names.archive.as_str(), special_use::ARCHIVE),
    ] {
        if name.is_empty() {
            continue;
        }
        let made = match uidvalidity(name) {
            Some(uv) => {
                mail.create_mailbox_with_uidvalidity(user, name, attr, uv)
                    .await
            }
            None => mail.create_mailbox(user, name, attr).await,
        };
        match made {
            Ok(_) | Err(StoreError::AlreadyExists) => {}
            Err(e) => return Err(e),
        }
        mail.subscribe(user, name, true).await?;
    }
    // A new user starts with the configured limits; a quota set for one user later is theirs
    // to keep.
    mail.set_quota(user, config.quota.limits()).await?;
    Ok(true)
}

/// Makes `bytes` (0 = unlimited, as in `[quota]`) the storage limit the store enforces for
/// `user`, keeping the message limit. The directory owns a directory user's quota, so its
/// value wins over the configured one and over an earlier value; the record is written only
/// when the limit changes, so a login or delivery with the same quota costs one index read.
pub async fn apply_storage_quota(
    mail: &Partition,
    user: &str,
    bytes: u64,
) -> Result<(), StoreError> {
    let max_bytes = if bytes == 0 { u64::MAX } else { bytes };
    let limit = mail.quota(user).limit;
    if limit.max_bytes == max_bytes {
        return Ok(());
    }
    mail.set_quota(user, ringmail_store::Quota { max_bytes, ..limit })
        .await
}
