//! Talking to etcd: connecting, bounding every call in time, and the reads and transactions
//! that more than one module needs.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, Txn, TxnOp, TxnOpResponse,
};

use crate::keys::Keys;
use crate::map::{Meta, PartitionMap};
use crate::{Error, MAX_PARTITIONS};

/// How long one etcd request may take before the caller hears of it. The CLI tools give up
/// after this; the control thread retries.
pub const ETCD_TIMEOUT: Duration = Duration::from_secs(3);

/// The largest response accepted: a full read of a 65,536-partition map is about 5 MB, over
/// tonic's default limit of 4 MB.
const MAX_MESSAGE: usize = 64 << 20;

/// A client and the endpoints it was made for (every error names them).
#[derive(Clone)]
pub(crate) struct Etcd {
    pub(crate) client: Client,
    pub(crate) endpoints: String,
}

impl Etcd {
    /// Makes a client. Connections are opened lazily, so this fails only for malformed
    /// endpoints; an unreachable etcd shows up as the first request timing out.
    pub(crate) async fn connect(endpoints: &[String]) -> Result<Etcd, Error> {
        let joined = endpoints.join(", ");
        let options = ConnectOptions::new()
            .with_connect_timeout(ETCD_TIMEOUT)
            // HTTP/2 pings find a member that died without closing its connections, so
            // streams (watch, keep-alive) fail over instead of hanging.
            .with_keep_alive(Duration::from_secs(1), Duration::from_secs(2))
            .with_keep_alive_while_idle(true)
            // A member cut off from its quorum refuses requests and ends watches rather than
            // serving stale data.
            .with_require_leader(true);
        let client = within(&joined, Client::connect(endpoints, Some(options))).await?;
        Ok(Etcd {
            client,
            endpoints: joined,
        })
    }

    /// Turns an etcd error into ours.
    pub(crate) fn error(&self, e: etcd_client::Error) -> Error {
        Error::Etcd {
            endpoints: self.endpoints.clone(),
            cause: e.to_string(),
        }
    }

    /// Runs one request with [`ETCD_TIMEOUT`].
    pub(crate) async fn call<T>(
        &self,
        request: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, Error> {
        within(&self.endpoints, request).await
    }

    /// Reads the whole cluster in one request, so the copy is consistent at one revision.
    pub(crate) async fn load_map(&self, keys: &Keys, cluster: &str) -> Result<PartitionMap, Error> {
        let mut kv = self
            .client
            .kv_client()
            .max_decoding_message_size(MAX_MESSAGE);
        let options = GetOptions::new().with_prefix();
        let resp = self.call(kv.get(keys.prefix(), Some(options))).await?;
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
            map.apply_put(keys, kv.key(), kv.value(), kv.mod_revision())?;
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
        let mut kv = self.client.kv_client();
        let resp = self.call(kv.txn(txn)).await?;
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

/// Bounds `request` by [`ETCD_TIMEOUT`], naming `endpoints` in the error.
pub(crate) async fn within<T>(
    endpoints: &str,
    request: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, Error> {
    match tokio::time::timeout(ETCD_TIMEOUT, request).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(Error::Etcd {
            endpoints: endpoints.to_string(),
            cause: e.to_string(),
        }),
        Err(_) => Err(Error::Etcd {
            endpoints: endpoints.to_string(),
            cause: format!(
                "no answer within {} s (is etcd running and reachable?)",
                ETCD_TIMEOUT.as_secs()
            ),
        }),
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
