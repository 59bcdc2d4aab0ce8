//! Recipients whose partition another node of the cluster serves (docs/cluster.md).
//!
//! The session decides per recipient, from this node's copy of the map: served here, the
//! quota check and the copy go to the owning executor as before ([`delivery`]); served by
//! another node, they go there as RPC requests over the node-to-node link, where the owner
//! runs the same [`delivery`] calls and answers once the copy is durable. The session replies
//! to each recipient in RCPT order from those answers, so a transaction whose recipients live
//! on three nodes still gets one reply per recipient, in order.
//!
//! A request that may or may not have run (the connection was lost, the answer timed out) is
//! answered 451: the MTA retries, and a duplicate is better than a lost message.

use std::rc::Rc;
use std::sync::Arc;

use ringmail_peer::{Request, Response};
use ringmail_runtime::nodes::{LocalResponse, Place, Remote};
use ringmail_runtime::runtime::Executor;
use ringmail_store::StoreError;
use tracing::warn;

use crate::delivery::{self, Delivered, Delivery};

/// RPC kind: may this user take a message of this size (quota)?
pub const KIND_CHECK_QUOTA: u16 = 0x0101;
/// RPC kind: store one recipient's copy.
pub const KIND_DELIVER: u16 = 0x0102;

/// Answer statuses.
const OK: u16 = 0;
const OVER_QUOTA: u16 = 1;
const TOO_LARGE: u16 = 2;
const DISK_FULL: u16 = 3;
const FAILED: u16 = 4;
const NOT_SERVED_HERE: u16 = 5;
const BAD_REQUEST: u16 = 6;

/// A partition changing hands answers "moved" for the moment between the epoch bump and this
/// node's copy of the map catching up (the old owner refuses, the new one is not known yet).
/// Such a request did not run, so it is sent again, to wherever the map points then.
const MOVED_TRIES: u32 = 5;
const MOVED_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);

/// Runs `attempt` again while it fails with `Moved`, at most [`MOVED_TRIES`] times.
async fn across_moves<T, F: std::future::Future<Output = Result<T, StoreError>>>(
    mut attempt: impl FnMut() -> F,
) -> Result<T, StoreError> {
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(StoreError::Moved) if tries < MOVED_TRIES => {
                tries += 1;
                glommio::timer::sleep(MOVED_PAUSE).await;
            }
            other => return other,
        }
    }
}

/// Checks `user`'s quota for a message of `size` bytes on whichever node and executor owns
/// the user, after making the directory's `storage_quota` (if any) the store's limit there:
/// the request to another node carries it.
pub async fn check_quota(
    exec: &Rc<Executor>,
    user: &str,
    size: u64,
    storage_quota: Option<u64>,
) -> Result<(), StoreError> {
    across_moves(|| check_quota_once(exec, user, size, storage_quota)).await
}

async fn check_quota_once(
    exec: &Rc<Executor>,
    user: &str,
    size: u64,
    storage_quota: Option<u64>,
) -> Result<(), StoreError> {
    match exec.place(user) {
        Place::Here => delivery::check_quota(exec, user, size, storage_quota).await,
        Place::Unserved => Err(unserved()),
        Place::Remote(to) => {
            let payload = encode_quota(user, size, storage_quota);
            let answer = call(exec, &to, KIND_CHECK_QUOTA, &payload).await?;
            status_to_result(answer.status, &answer.payload).map(drop)
        }
    }
}

/// Stores one copy on whichever node and executor owns its user; resolves once it is
/// durable there.
pub async fn deliver(exec: Rc<Executor>, copy: Delivery) -> Result<Delivered, StoreError> {
    across_moves(|| deliver_once(exec.clone(), copy.clone())).await
}

async fn deliver_once(exec: Rc<Executor>, copy: Delivery) -> Result<Delivered, StoreError> {
    match exec.place(&copy.user) {
        Place::Here => delivery::deliver(exec, copy).await,
        Place::Unserved => Err(unserved()),
        Place::Remote(to) => {
            let payload = encode_delivery(&copy);
            drop(copy);
            let answer = call(&exec, &to, KIND_DELIVER, &payload).await?;
            let payload = status_to_result(answer.status, &answer.payload)?;
            let mut r = Reader(&payload);
            let mailbox = r.string().ok_or_else(|| failed("a malformed answer"))?;
            let uid = r.u32().ok_or_else(|| failed("a malformed answer"))?;
            let rejected = match r.byte() {
                Some(0) => None,
                Some(1) => Some(r.string().ok_or_else(|| failed("a malformed answer"))?),
                _ => return Err(failed("a malformed answer")),
            };
            Ok(Delivered {
                mailbox,
                uid,
                rejected,
            })
        }
    }
}

/// On the owner: answers a quota check or delivery another node sent here.
pub fn serve(exec: Rc<Executor>, request: Request) -> LocalResponse {
    Box::pin(async move {
        let (status, payload) = match request.kind {
            KIND_CHECK_QUOTA => match decode_quota(&request.payload) {
                None => (BAD_REQUEST, Vec::new()),
                Some((user, ..)) if exec.place(&user) != Place::Here => {
                    (NOT_SERVED_HERE, Vec::new())
                }
                Some((user, size, storage_quota)) => result_to_status(
                    delivery::check_quota(&exec, &user, size, storage_quota).await,
                    |()| Vec::new(),
                ),
            },
            KIND_DELIVER => match decode_delivery(&request.payload) {
                None => (BAD_REQUEST, Vec::new()),
                Some(copy) if exec.place(&copy.user) != Place::Here => {
                    (NOT_SERVED_HERE, Vec::new())
                }
                Some(copy) => result_to_status(delivery::deliver(exec, copy).await, |done| {
                    let mut out = Vec::new();
                    put_bytes(&mut out, done.mailbox.as_bytes());
                    out.extend_from_slice(&done.uid.to_be_bytes());
                    match &done.rejected {
                        Some(reason) => {
                            out.push(1);
                            put_bytes(&mut out, reason.as_bytes());
                        }
                        None => out.push(0),
                    }
                    out
                }),
            },
            _ => (BAD_REQUEST, Vec::new()),
        };
        Response { status, payload }
    })
}

async fn call(
    exec: &Executor,
    to: &Remote,
    kind: u16,
    payload: &[u8],
) -> Result<Response, StoreError> {
    let Some(nodes) = &exec.nodes else {
        return Err(unserved());
    };
    nodes
        .pool
        .call(&to.node, &to.addr, kind, payload)
        .await
        .map_err(|e| {
            warn!(node = %to.node, "LMTP: the recipient's node did not answer: {e}");
            failed(&format!("node {} did not answer: {e}", to.node))
        })
}

fn unserved() -> StoreError {
    failed("no node serves the recipient's partition now")
}

fn failed(why: &str) -> StoreError {
    StoreError::Io(Arc::new(std::io::Error::other(why.to_string())))
}

fn result_to_status<T>(
    result: Result<T, StoreError>,
    encode: impl FnOnce(T) -> Vec<u8>,
) -> (u16, Vec<u8>) {
    match result {
        Ok(value) => (OK, encode(value)),
        Err(StoreError::OverQuota) => (OVER_QUOTA, Vec::new()),
        Err(StoreError::TooLarge) => (TOO_LARGE, Vec::new()),
        Err(e) if e.is_disk_full() => (DISK_FULL, Vec::new()),
        Err(e) => (FAILED, e.to_string().into_bytes()),
    }
}

fn status_to_result(status: u16, payload: &[u8]) -> Result<Vec<u8>, StoreError> {
    match status {
        OK => Ok(payload.to_vec()),
        OVER_QUOTA => Err(StoreError::OverQuota),
        TOO_LARGE => Err(StoreError::TooLarge),
        DISK_FULL => Err(StoreError::Io(Arc::new(std::io::Error::from_raw_os_error(
            libc::ENOSPC,
        )))),
        NOT_SERVED_HERE => Err(StoreError::Moved),
        FAILED => Err(failed(&String::from_utf8_lossy(payload))),
        other => Err(failed(&format!("the owner answered status {other}"))),
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn encode_delivery(copy: &Delivery) -> Vec<u8> {
    let mut out = Vec::with_capacity(copy.body.len() + copy.headers.len() + 256);
    put_bytes(&mut out, copy.user.as_bytes());
    match &copy.folder {
        Some(folder) => {
            out.push(1);
            put_bytes(&mut out, folder.as_bytes());
        }
        None => out.push(0),
    }
    put_bytes(&mut out, &copy.headers);
    out.extend_from_slice(&copy.internal_date.to_be_bytes());
    put_bytes(&mut out, copy.sender.as_bytes());
    put_bytes(&mut out, copy.recipient.as_bytes());
    put_bytes(&mut out, &copy.body);
    out
}

fn decode_delivery(payload: &[u8]) -> Option<Delivery> {
    let mut r = Reader(payload);
    let user = r.string()?;
    let folder = match r.byte()? {
        0 => None,
        1 => Some(r.string()?),
        _ => return None,
    };
    let headers = r.bytes()?.to_vec();
    let internal_date = i64::from_be_bytes(r.take(8)?.try_into().ok()?);
    let sender = r.string()?;
    let recipient = r.string()?;
    let body = r.bytes()?.to_vec();
    r.0.is_empty().then(|| Delivery {
        user,
        folder,
        headers,
        body: Arc::new(body),
        internal_date,
        sender,
        recipient,
    })
}

/// A quota check's request: the user, the message size, and the directory's storage quota
/// when the login or RCPT named one (left out otherwise, as before it was carried).
fn encode_quota(user: &str, size: u64, storage_quota: Option<u64>) -> Vec<u8> {
    let mut payload = Vec::new();
    put_bytes(&mut payload, user.as_bytes());
    payload.extend_from_slice(&size.to_be_bytes());
    if let Some(bytes) = storage_quota {
        payload.extend_from_slice(&bytes.to_be_bytes());
    }
    payload
}

/// (user, message size, the directory's storage quota when the asking node had one).
fn decode_quota(payload: &[u8]) -> Option<(String, u64, Option<u64>)> {
    let mut r = Reader(payload);
    let user = r.string()?;
    let size = r.u64()?;
    let storage_quota = if r.0.is_empty() { None } else { Some(r.u64()?) };
    r.0.is_empty().then_some((user, size, storage_quota))
}

/// Reads the fields of a payload; None when it is cut short.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn byte(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quota_check_carries_the_directory_quota() {
        for quota in [None, Some(0), Some(2048)] {
            let payload = encode_quota("quinn", 1234, quota);
            assert_eq!(
                decode_quota(&payload),
                Some(("quinn".to_string(), 1234, quota))
            );
            for cut in 0..payload.len() {
                let decoded = decode_quota(&payload[..cut]);
                // Cut right after the size, a request with a quota reads as one without.
                let without = quota.is_some() && cut == payload.len() - 8;
                assert_eq!(decoded.is_some(), without, "cut at {cut}");
            }
        }
    }

    #[test]
    fn a_delivery_survives_the_trip_and_truncations_are_refused() {
        let copy = Delivery {
            user: "alice@example.com".into(),
            folder: Some("Lists".into()),
            headers: b"Return-Path: <a@b>\r\n".to_vec(),
            body: Arc::new(b"Subject: x\r\n\r\nbody\r\n".to_vec()),
            internal_date: 1_767_225_600,
            sender: "a@b".into(),
            recipient: "alice+lists@example.com".into(),
        };
        let payload = encode_delivery(&copy);
        let back = decode_delivery(&payload).expect("decodes");
        assert_eq!(back.user, copy.user);
        assert_eq!(back.folder, copy.folder);
        assert_eq!(back.headers, copy.headers);
        assert_eq!(back.body, copy.body);
        assert_eq!(back.internal_date, copy.internal_date);
        assert_eq!(back.sender, copy.sender);
        assert_eq!(back.recipient, copy.recipient);
        for cut in 0..payload.len() {
            assert!(decode_delivery(&payload[..cut]).is_none(), "cut at {cut}");
        }
        let mut longer = payload.clone();
        longer.push(0);
        assert!(decode_delivery(&longer).is_none());
    }

    #[test]
    fn store_errors_keep_their_reply_class_across_nodes() {
        for error in [StoreError::OverQuota, StoreError::TooLarge] {
            let (status, payload) = result_to_status::<()>(Err(error.clone()), |()| Vec::new());
            let back = status_to_result(status, &payload).unwrap_err();
            assert_eq!(back.to_string(), error.to_string());
        }
        let full = StoreError::Io(Arc::new(std::io::Error::from_raw_os_error(libc::ENOSPC)));
        let (status, payload) = result_to_status::<()>(Err(full), |()| Vec::new());
        assert!(status_to_result(status, &payload)
            .unwrap_err()
            .is_disk_full());
    }
}
