//! Talking to etcd: one client per member with failover, every call bounded in time, and the
//! reads and transactions that more than one module needs.
//!
//! etcd-client's own multi-endpoint channel hands a dead member's connection errors to the
//! caller instead of trying another member (its issues #12 and #39), so, like etcd's Go
//! client, we pin one member and move to the next when it cannot be reached.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, GetResponse, LeaseGrantResponse,
    LeaseKeepAliveStream, LeaseKeeper, Txn, TxnOp, TxnOpResponse, TxnResponse, WatchOptions,
    WatchStream,
};

use crate::keys::Keys;
use crate::map::{Meta, PartitionMap};
use crate::{Error, MAX_PARTITIONS};

/// How long one etcd operation may take, failover included, before the caller hears of it.
/// The CLI tools give up after this; the control thread retries.
pub const ETCD_TIMEOUT: Duration = Duration::from_secs(3);

/// How long one member gets before the next is tried, when there are several: a member that
/// accepts connections but does not answer (cut off, overloaded) must not use up the budget.
const ATTEMPT: Duration = Duration::from_secs(1);

/// The largest response accepted: a full read of a 65,536-partition map is about 6 MB, over
/// tonic's default limit of 4 MB.
const MAX_MESSAGE: usize = 64 << 20;

/// Clients for the members, the one in use, and the endpoints (every error names them).
#[derive(Clone)]
pub(crate) struct Etcd {
    members: Arc<Vec<(String, Client)>>,
    pinned: Arc<AtomicUsize>,
    pub(crate) endpoints: String,
}

impl Etcd {
    /// Makes the clients. Connections are opened lazily, so this fails only for malformed
    /// endpoints; an unreachable etcd shows up as the first call failing.
    pub(crate) async fn connect(endpoints: &[String]) -> Result<Etcd, Error> {
        let joined = endpoints.join(", ");
        let options = ConnectOptions::new()
            .with_connect_timeout(ATTEMPT)
            // HTTP/2 pings find a member that died without closing its connections, so
            // streams (watch, keep-alive) fail instead of hanging.
            .with_keep_alive(Duration::from_secs(1), Duration::from_secs(2))
            .with_keep_alive_while_idle(true)
            // A member cut off from its quorum refuses requests and ends watches rather than
            // serving stale data; we then move to another member.
            .with_require_leader(true);
        let mut members = Vec::with_capacity(endpoints.len());
        for endpoint in endpoints {
            let client = Client::connect([endpoint], Some(options.clone()))
                .await
                .map_err(|e| Error::Etcd {
                    endpoints: joined.clone(),
                    cause: e.to_string(),
                })?;
            members.push((endpoint.clone(), client));
        }
        Ok(Etcd {
            members: Arc::new(members),
            pinned: Arc::new(AtomicUsize::new(0)),
            endpoints: joined,
        })
    }

    /// Runs `op` against the pinned member; when that member cannot be reached, against the
    /// next, and so on, until it succeeds, fails for a reason another member would not change,
    /// or [`ETCD_TIMEOUT`] has passed.
    ///
    /// A write whose answer was lost may be sent twice; every write here is a compare-and-set,
    /// so the second copy fails its compare and the caller re-reads the map.
    pub(crate) async fn call<T, F, Fut>(&self, op: F) -> Result<T, Error>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        self.call_within(ETCD_TIMEOUT, op).await
    }

    /// [`Etcd::call`] with a budget of `total` instead of [`ETCD_TIMEOUT`], shared among the
    /// members so each gets a turn within it.
    pub(crate) async fn call_within<T, F, Fut>(
        &self,
        total: Duration,
        mut op: F,
    ) -> Result<T, Error>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let deadline = Instant::now() + total;
        let n = self.members.len();
        let attempt = ATTEMPT.min(total / n as u32);
        let mut last = String::from("no member tried");
        let mut first = self.pinned.load(Ordering::Relaxed);
        loop {
            for k in 0..n {
                let i = (first + k) % n;
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                let budget = if n == 1 { left } else { left.min(attempt) };
                let (endpoint, client) = &self.members[i];
                match tokio::time::timeout(budget, op(client.clone())).await {
                    Ok(Ok(value)) => {
                        self.pinned.store(i, Ordering::Relaxed);
                        return Ok(value);
                    }
                    Ok(Err(e)) if !unreachable(&e) => return Err(self.error(e)),
                    Ok(Err(e)) => last = format!("{endpoint}: {}", describe(&e)),
                    Err(_) => {
                        last = format!("{endpoint}: no answer within {} ms", budget.as_millis())
                    }
                }
                // The next call starts at the next member, even if this one is abandoned by
                // its caller before it gets there.
                let _ = self.pinned.compare_exchange(
                    i,
                    (i + 1) % n,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Etcd {
                    endpoints: self.endpoints.clone(),
                    cause: format!(
                        "no member answered within {} s (is etcd running and reachable?); \
                         last: {last}",
                        ETCD_TIMEOUT.as_secs()
                    ),
                });
            }
            // Every member failed fast (refused, no leader during an election): pause briefly.
            tokio::time::sleep(left.min(Duration::from_millis(100))).await;
            first = self.pinned.load(Ordering::Relaxed);
        }
    }

    /// Moves on from the pinned member (its stream failed), so the next call tries another.
    pub(crate) fn skip_pinned(&self) {
        let n = self.members.len();
        let _ = self
            .pinned
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |i| Some((i + 1) % n));
    }

    /// Turns an etcd error into ours.
    pub(crate) fn error(&self, e: etcd_client::Error) -> Error {
        Error::Etcd {
            endpoints: self.endpoints.clone(),
            cause: describe(&e),
        }
    }

    pub(crate) async fn get(
        &self,
        key: &str,
        options: Option<GetOptions>,
    ) -> Result<GetResponse, Error> {
        self.call(|client| {
            let (key, options) = (key.to_string(), options.clone());
            async move {
                let mut kv = client.kv_client().max_decoding_message_size(MAX_MESSAGE);
                kv.get(key, options).await
            }
        })
        .await
    }

    pub(crate) async fn txn(&self, txn: Txn) -> Result<TxnResponse, Error> {
        self.call(|mut client| {
            let txn = txn.clone();
            async move { client.txn(txn).await }
        })
        .await
    }

    pub(crate) async fn put(&self, key: &str, value: &[u8]) -> Result<(), Error> {
        self.call(|mut client| {
            let (key, value) = (key.to_string(), value.to_vec());
            async move { client.put(key, value, None).await }
        })
        .await
        .map(drop)
    }

    pub(crate) async fn delete(&self, key: &str) -> Result<(), Error> {
        self.call(|mut client| {
            let key = key.to_string();
            async move { client.delete(key, None).await }
        })
        .await
        .map(drop)
    }

    pub(crate) async fn grant(&self, ttl: i64) -> Result<LeaseGrantResponse, Error> {
        self.call(|mut client| async move { client.lease_grant(ttl, None).await })
            .await
    }

    pub(crate) async fn revoke(&self, lease: i64) -> Result<(), Error> {
        self.call(|mut client| async move { client.lease_revoke(lease).await })
            .await
            .map(drop)
    }

    /// Opens a keep-alive stream for `lease` within `total`; opening it renews the lease once.
    pub(crate) async fn keep_alive(
        &self,
        lease: i64,
        total: Duration,
    ) -> Result<(LeaseKeeper, LeaseKeepAliveStream), Error> {
        self.call_within(total, |mut client| async move {
            client.lease_keep_alive(lease).await
        })
        .await
    }

    pub(crate) async fn watch(
        &self,
        key: &str,
        options: WatchOptions,
    ) -> Result<WatchStream, Error> {
        self.call(|client| {
            let (key, options) = (key.to_string(), options.clone());
            async move {
                let mut watch = client.watch_client().max_decoding_message_size(MAX_MESSAGE);
                watch.watch(key, Some(options)).await
            }
        })
        .await
    }

    /// Reads the whole cluster in one request, so the copy is consistent at one revision.
    pub(crate) async fn load_map(&self, keys: &Keys, cluster: &str) -> Result<PartitionMap, Error> {
        let resp = self
            .get(keys.prefix(), Some(GetOptions::new().with_prefix()))
            .await?;
        let revision = resp.header().map_or(0, |h| h.revision());
        let meta_key = keys.meta();
        let meta = resp
            .kvs()
            .iter()
            .find(|kv| kv.key() == meta_key.as_bytes())
            .ok_or_else(|| Error::NoMap(cluster.to_string()))?;
        let meta = parse_meta(&meta_key, meta.value())?;
        let mut map = PartitionMap::new(cluster, meta.partitions);
        for kv in resp.kvs() {
            // One bad value (written by hand?) must not hide the rest of the map.
            if let Err(e) = map.apply_put(keys, kv.key(), kv.value(), kv.mod_revision()) {
                tracing::error!("cluster map: {e}; ignoring it");
            }
        }
        map.revision = revision;
        Ok(map)
    }

    /// Creates the cluster's meta key with `partitions` if it does not exist (a transaction
    /// that only creates, so two first nodes cannot both write it), then checks that the
    /// cluster's P is ours.
    pub(crate) async fn ensure_meta(
        &self,
        keys: &Keys,
        cluster: &str,
        partitions: u32,
    ) -> Result<(), Error> {
        if partitions == 0 || partitions > MAX_PARTITIONS {
            return Err(Error::PartitionCount(partitions));
        }
        let meta_key = keys.meta();
        let meta = Meta {
            partitions,
            created: unix_now(),
        };
        let txn = Txn::new()
            .when([Compare::create_revision(
                meta_key.clone(),
                CompareOp::Equal,
                0,
            )])
            .and_then([TxnOp::put(
                meta_key.clone(),
                serde_json::to_vec(&meta).expect("plain struct"),
                None,
            )])
            .or_else([TxnOp::get(meta_key.clone(), None)]);
        let resp = self.txn(txn).await?;
        if resp.succeeded() {
            tracing::info!(cluster, partitions, "created the cluster's partition map");
            return Ok(());
        }
        let existing = resp
            .op_responses()
            .into_iter()
            .find_map(|op| match op {
                TxnOpResponse::Get(get) => get.kvs().first().map(|kv| kv.value().to_vec()),
                _ => None,
            })
            .ok_or_else(|| Error::NoMap(cluster.to_string()))?;
        let existing = parse_meta(&meta_key, &existing)?;
        if existing.partitions != partitions {
            return Err(Error::PartitionMismatch {
                cluster: cluster.to_string(),
                existing: existing.partitions,
                ours: partitions,
            });
        }
        Ok(())
    }
}

/// Whether `e` says this member could not be reached or could not serve (no leader, leader
/// changed, shutting down), so another member may succeed; other errors are answers.
fn unreachable(e: &etcd_client::Error) -> bool {
    use tonic::Code;
    match e {
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        etcd_client::Error::GRpcStatus(status) => matches!(
            status.code(),
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown
        ),
        _ => false,
    }
}

/// A short text for `e`: a gRPC status's message and its root cause ("tcp connect error:
/// Connection refused"), not the nested debug output of the transport's error types.
fn describe(e: &etcd_client::Error) -> String {
    let etcd_client::Error::GRpcStatus(status) = e else {
        return e.to_string();
    };
    let mut root = None;
    let mut source = std::error::Error::source(status);
    while let Some(cause) = source {
        root = Some(cause);
        source = cause.source();
    }
    match root {
        Some(root) => format!("{}: {root}", status.message()),
        None => status.message().to_string(),
    }
}

fn parse_meta(key: &str, value: &[u8]) -> Result<Meta, Error> {
    let meta: Meta = serde_json::from_slice(value).map_err(|e| Error::Corrupt {
        key: key.to_string(),
        detail: e.to_string(),
    })?;
    if meta.partitions == 0 {
        return Err(Error::Corrupt {
            key: key.to_string(),
            detail: "partitions is 0".into(),
        });
    }
    Ok(meta)
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
