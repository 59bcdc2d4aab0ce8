//! Getting one recipient's copy into the store of the executor that owns the recipient.
//!
//! The session that received the message may run on any core. The quota check and the copy
//! are jobs run on the recipient's owner (`ringmail_runtime::route`), which appends with the
//! same store call IMAP APPEND uses and answers only once the record is durable (the store
//! resolves an append after its group commit's fdatasync). Recipients owned by the session's
//! own executor skip the mesh.

use std::rc::Rc;
use std::sync::Arc;

use ringmail_runtime::partition::partition_of;
use ringmail_runtime::route::{self, OwnerJob};
use ringmail_runtime::runtime::Executor;
use ringmail_store::{NewMessage, StoreError};

/// One recipient's copy of a message (cloned only to send it again after a partition move).
#[derive(Clone)]
pub struct Delivery {
    /// The canonical user name.
    pub user: String,
    /// The folder the `+detail` asked for; INBOX when it is None or does not exist.
    pub folder: Option<String>,
    /// Header lines for this recipient (`Return-Path`, `Delivered-To`), CRLF-terminated.
    pub headers: Vec<u8>,
    /// The message as received, shared by all recipients.
    pub body: Arc<Vec<u8>>,
    /// INTERNALDATE (seconds since the epoch).
    pub internal_date: i64,
    /// MAIL FROM, "" for `<>` (the Sieve envelope).
    pub sender: String,
    /// RCPT TO as given, `+detail` included (the Sieve envelope).
    pub recipient: String,
}

/// Where a copy was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The mailbox it went into.
    pub mailbox: String,
    /// Its UID there.
    pub uid: u32,
    /// Set when the recipient's Sieve script refused the message (reject / ereject): the
    /// reason for the recipient's 550; nothing was stored.
    pub rejected: Option<String>,
}

/// Can `user` take a message of `size` bytes now (quota)? `storage_quota` is the limit the
/// user's directory entry names; it becomes the store's limit first.
struct CheckQuota {
    user: String,
    size: u64,
    storage_quota: Option<u64>,
}

impl OwnerJob for CheckQuota {
    type Answer = Result<(), StoreError>;

    async fn run(self, exec: Rc<Executor>) -> Self::Answer {
        quota_here(&exec, &self.user, self.size, self.storage_quota).await
    }
}

impl OwnerJob for Delivery {
    type Answer = Result<Delivered, StoreError>;

    /// Stores the copy; answers once it is durable, or with why it is not.
    async fn run(self, exec: Rc<Executor>) -> Self::Answer {
        deliver_here(&exec, self).await
    }
}

/// The owner's error when it went away before answering.
fn owner_gone() -> StoreError {
    StoreError::Io(Arc::new(std::io::Error::other(
        "the executor owning the recipient is shutting down",
    )))
}

/// Checks `user`'s quota for a message of `size` bytes, on whichever executor owns the user,
/// after making `storage_quota` (the directory's, if it names one) the store's limit: the
/// copy is then delivered under the limit checked here.
pub async fn check_quota(
    exec: &Rc<Executor>,
    user: &str,
    size: u64,
    storage_quota: Option<u64>,
) -> Result<(), StoreError> {
    let owner = exec.owner_of(user);
    let job = CheckQuota {
        user: user.to_string(),
        size,
        storage_quota,
    };
    route::ask(exec, owner, job)
        .await
        .unwrap_or_else(|_| Err(owner_gone()))
}

/// Stores one copy on whichever executor owns its user; resolves once it is durable.
pub async fn deliver(exec: Rc<Executor>, delivery: Delivery) -> Result<Delivered, StoreError> {
    let owner = exec.owner_of(&delivery.user);
    route::ask(&exec, owner, delivery)
        .await
        .unwrap_or_else(|_| Err(owner_gone()))
}

async fn quota_here(
    exec: &Executor,
    user: &str,
    size: u64,
    storage_quota: Option<u64>,
) -> Result<(), StoreError> {
    let config = exec.config();
    let p = partition_of(user, config.storage.partitions);
    let mail = match storage_quota {
        // Set the user up now: a new user's setup writes the configured limit, which the
        // directory's must replace before the check.
        Some(_) => exec.store.user(p, user, &config, storage_quota).await?,
        None => exec.store.get(p).await?,
    };
    let quota = mail.quota(user);
    let fits = quota.used_bytes.saturating_add(size) <= quota.limit.max_bytes
        && quota.used_messages < quota.limit.max_messages;
    if fits {
        Ok(())
    } else {
        Err(StoreError::OverQuota)
    }
}

async fn deliver_here(exec: &Executor, delivery: Delivery) -> Result<Delivered, StoreError> {
    let config = exec.config();
    let p = partition_of(&delivery.user, config.storage.partitions);
    let mail = exec.store.user(p, &delivery.user, &config, None).await?;
    let mut message = Vec::with_capacity(delivery.headers.len() + delivery.body.len());
    message.extend_from_slice(&delivery.headers);
    message.extend_from_slice(&delivery.body);
    let limits = crate::sieve::limits(&config);
    if let Some(active) = crate::sieve::active_script(&mail, &delivery.user, &limits) {
        match &active.script {
            Ok(script) => {
                return sieve_delivery(&config, &mail, &active.name, script, &delivery, &message)
                    .await
            }
            // Delivered as without a script, and logged for the user once it is stored.
            Err(e) => {
                let (line, why) = (e.pos.line, e.message.clone());
                let done = deliver_plain(&mail, &delivery, &message).await?;
                crate::sieve::log_error(&mail, &delivery.user, &active.name, line, why).await;
                return Ok(done);
            }
        }
    }
    deliver_plain(&mail, &delivery, &message).await
}

/// The copy of a user without a script in force: the +detail folder if it exists, else
/// INBOX.
async fn deliver_plain(
    mail: &ringmail_store::Partition,
    delivery: &Delivery,
    message: &[u8],
) -> Result<Delivered, StoreError> {
    let analysis = ringmail_mime::analyze_for_store(message);
    let new = [NewMessage {
        body: message,
        flags: 0,
        keywords: &[],
        internal_date: delivery.internal_date,
        meta: &analysis.meta,
        search: Some(&analysis.search),
        text: &analysis.text,
    }];
    // The detail folder when it exists; a missing one is no error, the copy goes to INBOX.
    if let Some(folder) = &delivery.folder {
        match mail.append(&delivery.user, folder.as_str(), &new).await {
            Ok(done) => return Ok(delivered(folder, &done)),
            Err(StoreError::NoSuchMailbox | StoreError::InvalidName) => {}
            Err(e) => return Err(e),
        }
    }
    let done = mail.append(&delivery.user, "INBOX", &new).await?;
    Ok(delivered("INBOX", &done))
}

fn delivered(mailbox: &str, done: &ringmail_store::AppendResult) -> Delivered {
    Delivered {
        mailbox: mailbox.to_string(),
        uid: done.uids.first().copied().unwrap_or(0),
        rejected: None,
    }
}

/// The copy of a user with an active Sieve script: where the script says.
async fn sieve_delivery(
    config: &ringmail_config::Config,
    mail: &ringmail_store::Partition,
    name: &str,
    script: &ringmail_sieve::Script,
    delivery: &Delivery,
    message: &[u8],
) -> Result<Delivered, StoreError> {
    use crate::sieve::Verdict;
    // Implicit keep goes where it would without a script: the +detail folder if it exists.
    let default_mailbox = match &delivery.folder {
        Some(f) if mail.status(&delivery.user, f.as_str()).is_ok() => f.as_str(),
        _ => "INBOX",
    };
    let m = crate::sieve::Message {
        user: &delivery.user,
        sender: &delivery.sender,
        recipient: &delivery.recipient,
        default_mailbox,
        bytes: message,
        internal_date: delivery.internal_date,
    };
    Ok(
        match crate::sieve::deliver(config, mail, name, script, &m).await? {
            Verdict::Stored(copies) => Delivered {
                mailbox: copies
                    .iter()
                    .map(|(m, _)| m.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                uid: copies.first().map_or(0, |c| c.1),
                rejected: None,
            },
            Verdict::NotStored(why) => Delivered {
                mailbox: format!("no mailbox ({why} by Sieve)"),
                uid: 0,
                rejected: None,
            },
            Verdict::Rejected(reason) => Delivered {
                mailbox: String::new(),
                uid: 0,
                rejected: Some(reason),
            },
        },
    )
}
