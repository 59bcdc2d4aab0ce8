//! Getting one recipient's copy into the store of the executor that owns the recipient.
//!
//! The session that received the message may run on any core. For a recipient owned by
//! another executor it sends an [`OwnerRequest`] on the mesh and waits for the answer, which
//! comes back on the mesh too (`crate::server::rpc`); the owner appends with the same store call IMAP APPEND uses and answers
//! only once the record is durable (the store resolves an append after its group commit's
//! fdatasync). Recipients owned by the session's own executor skip the mesh.

use std::rc::Rc;
use std::sync::Arc;

use tracing::debug;

use crate::server::mesh::MeshMessage;
use crate::server::partition::partition_of;
use crate::server::rpc::{self, Answer, ReplyTo};
use crate::server::runtime::Executor;
use crate::store::{NewMessage, StoreError};

/// One recipient's copy of a message.
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
}

/// Where a copy was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The mailbox it went into.
    pub mailbox: String,
    /// Its UID there.
    pub uid: u32,
}

/// A request for the executor that owns a user; answered to `reply`.
pub enum OwnerRequest {
    /// Can `user` take a message of `size` bytes now (quota)?
    CheckQuota {
        /// The canonical user name.
        user: String,
        /// The size announced in `MAIL FROM ... SIZE=` (0 when none).
        size: u64,
        /// Where the answer goes.
        reply: ReplyTo,
    },
    /// Store one copy.
    Deliver {
        /// The copy.
        delivery: Delivery,
        /// Answered once the copy is durable, or with why it is not.
        reply: ReplyTo,
    },
}

/// The owner's error when it went away before answering.
fn owner_gone() -> StoreError {
    StoreError::Io(Arc::new(std::io::Error::other(
        "the executor owning the recipient is shutting down",
    )))
}

/// Checks `user`'s quota for a message of `size` bytes, on whichever executor owns the user.
pub async fn check_quota(exec: &Rc<Executor>, user: &str, size: u64) -> Result<(), StoreError> {
    let owner = exec.owner_of(user);
    if owner == exec.id {
        return quota_here(exec, user, size).await;
    }
    let asked = rpc::ask(exec, owner, |reply| {
        MeshMessage::Lmtp(OwnerRequest::CheckQuota {
            user: user.to_string(),
            size,
            reply,
        })
    });
    match asked.await {
        Ok(Answer::Quota(result)) => result,
        _ => Err(owner_gone()),
    }
}

/// Stores one copy on whichever executor owns its user; resolves once it is durable.
pub async fn deliver(exec: Rc<Executor>, delivery: Delivery) -> Result<Delivered, StoreError> {
    let owner = exec.owner_of(&delivery.user);
    if owner == exec.id {
        return deliver_here(&exec, delivery).await;
    }
    let asked = rpc::ask(&exec, owner, |reply| {
        MeshMessage::Lmtp(OwnerRequest::Deliver { delivery, reply })
    });
    match asked.await {
        Ok(Answer::Delivered(result)) => result,
        _ => Err(owner_gone()),
    }
}

/// Serves a request that arrived on the mesh. The work runs inside the executor's session
/// gate, so shutdown waits for a delivery in flight before it closes the store; a request
/// that comes once the gate is closed is answered at once with a temporary failure.
pub fn handle(exec: Rc<Executor>, request: OwnerRequest) {
    // What to answer if the gate is closed; the error itself is built only then.
    let (reply, quota) = match &request {
        OwnerRequest::CheckQuota { reply, .. } => (*reply, true),
        OwnerRequest::Deliver { reply, .. } => (*reply, false),
    };
    let task = {
        let exec = exec.clone();
        async move {
            let (reply, answer) = match request {
                OwnerRequest::CheckQuota { user, size, reply } => {
                    (reply, Answer::Quota(quota_here(&exec, &user, size).await))
                }
                OwnerRequest::Deliver { delivery, reply } => (
                    reply,
                    Answer::Delivered(deliver_here(&exec, delivery).await),
                ),
            };
            rpc::answer(&exec, reply, answer).await;
        }
    };
    if !exec.spawn_task(task) {
        debug!("LMTP request refused: shutting down");
        let refusal = if quota {
            Answer::Quota(Err(owner_gone()))
        } else {
            Answer::Delivered(Err(owner_gone()))
        };
        rpc::answer_later(exec, reply, refusal);
    }
}

async fn quota_here(exec: &Executor, user: &str, size: u64) -> Result<(), StoreError> {
    let config = exec.config();
    let p = partition_of(user, config.storage.partitions);
    let mail = exec.store.get(p).await?;
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
    let mail = exec.store.user(p, &delivery.user, &config).await?;
    let mut message = Vec::with_capacity(delivery.headers.len() + delivery.body.len());
    message.extend_from_slice(&delivery.headers);
    message.extend_from_slice(&delivery.body);
    let meta = crate::mime::analyze(&message).to_bytes();
    let new = [NewMessage {
        body: &message,
        flags: 0,
        keywords: &[],
        internal_date: delivery.internal_date,
        meta: &meta,
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

fn delivered(mailbox: &str, done: &crate::store::AppendResult) -> Delivered {
    Delivered {
        mailbox: mailbox.to_string(),
        uid: done.uids.first().copied().unwrap_or(0),
    }
}
