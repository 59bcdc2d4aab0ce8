//! Membership: a node is a member while its lease lives. It registers `nodes/<id>` bound to a
//! lease of `lease_secs`, renews the lease every quarter of that from the control thread, and
//! is dead for everyone else once the lease expires (etcd deletes the key, every watcher sees
//! the delete).
//!
//! Fencing: a renewal sent at T that etcd confirms means etcd will not expire the lease before
//! T + TTL (etcd counts from when it received the renewal, which is after T). So until
//! T + TTL - margin this node may act as owner of its partitions; after that it is fenced,
//! and by the time the balancer can reassign its partitions (after etcd expired the lease) it
//! has stopped. Only clock rates matter here, not clocks agreeing.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Compare, CompareOp, LeaseKeepAliveStream, LeaseKeeper, PutOptions, Txn, TxnOp};

use crate::control::Ctx;
use crate::Error;

/// Kept off the end of a confirmed lease, for a write that started just before it.
fn margin(ttl: Duration) -> Duration {
    (ttl / 10).min(Duration::from_millis(500))
}

/// Grants a lease and creates `nodes/<id>` bound to it, only if no such key exists: another
/// live process with the same id is refused. A key left by a crashed process of this node
/// disappears within one TTL, so registration keeps trying that long.
pub(crate) async fn register(ctx: &Ctx) -> Result<i64, Error> {
    let ttl = Duration::from_secs(ctx.lease_secs);
    let deadline = Instant::now() + ttl + Duration::from_secs(1);
    let key = ctx.keys.node(&ctx.info.id);
    let value = serde_json::to_vec(&ctx.info).expect("plain struct");
    loop {
        let sent = Instant::now();
        let grant = ctx.etcd.grant(ctx.lease_secs as i64).await?;
        let id = grant.id();
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                key.clone(),
                value.clone(),
                Some(PutOptions::new().with_lease(id)),
            )]);
        let resp = ctx.etcd.txn(txn).await?;
        if resp.succeeded() {
            let revision = resp.header().map_or(0, |h| h.revision());
            let granted = Duration::from_secs(grant.ttl().max(0) as u64);
            ctx.shared
                .registered(id, revision, sent + granted - margin(ttl));
            tracing::info!(node = %ctx.info.id, lease = id, "registered in the cluster");
            return Ok(id);
        }
        // Do not leave the unused lease behind (it would expire anyway).
        let _ = ctx.etcd.revoke(id).await;
        if Instant::now() >= deadline {
            return Err(Error::AlreadyRegistered {
                cluster: ctx.cluster.clone(),
                node: ctx.info.id.clone(),
                lease_secs: ctx.lease_secs,
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// How often the lease is renewed: a quarter of it, so that about three renewals fit before
/// the node fences itself (at the lease less [`margin`] after the last confirmed one), and
/// an etcd leader election (up to about 2 s) costs no fencing with the default 4 s lease. A
/// crashed node's lease still expires at most `lease_secs` after the crash.
fn renewal_interval(ctx: &Ctx) -> Duration {
    Duration::from_secs(ctx.lease_secs) / 4
}

/// How long one renewal may take, failing over between members included: the interval
/// between renewals.
fn renewal_budget(ctx: &Ctx) -> Duration {
    renewal_interval(ctx)
}

/// After a failed renewal, the next try comes this soon (or at the interval, if shorter): a
/// renewal goes through as soon as etcd has elected a new leader.
const RETRY_RENEWAL: Duration = Duration::from_millis(200);

/// Outcome of one renewal.
enum Renewal {
    /// etcd confirmed; the lease lives `ttl` from when it was sent.
    Renewed(Duration),
    /// The lease is gone: it expired before a renewal got through.
    Expired,
}

/// Renews the lease for as long as the control thread runs; re-registers with a new lease
/// if the old one expired (the node was dead for a while and its partitions were, or will
/// be, reassigned; it rejoins as a new member).
pub(crate) async fn keep_alive(ctx: Arc<Ctx>) {
    let ttl = Duration::from_secs(ctx.lease_secs);
    let interval = renewal_interval(&ctx);
    let retry = interval.min(RETRY_RENEWAL);
    let mut channel: Option<(LeaseKeeper, LeaseKeepAliveStream)> = None;
    let mut wait = interval;
    loop {
        tokio::time::sleep(wait).await;
        let sent = Instant::now();
        let lease = ctx.shared.lease_id.load(Ordering::Relaxed);
        let outcome =
            tokio::time::timeout(renewal_budget(&ctx), renew(&ctx, &mut channel, lease)).await;
        let metrics = &ctx.shared.metrics;
        wait = interval;
        match outcome {
            Ok(Ok(Renewal::Renewed(granted))) => {
                metrics.lease_renewals.fetch_add(1, Ordering::Relaxed);
                ctx.shared.set_valid_until(sent + granted - margin(ttl));
            }
            Ok(Ok(Renewal::Expired)) => {
                metrics.lease_expiries.fetch_add(1, Ordering::Relaxed);
                channel = None;
                tracing::error!(node = %ctx.info.id, "cluster lease expired: re-registering");
                if let Err(e) = register(&ctx).await {
                    tracing::warn!("re-registering in the cluster: {e}");
                    wait = retry;
                }
            }
            Ok(Err(e)) => {
                metrics.lease_failures.fetch_add(1, Ordering::Relaxed);
                channel = None;
                tracing::warn!("renewing the cluster lease: {e}");
                wait = retry;
            }
            Err(_) => {
                metrics.lease_failures.fetch_add(1, Ordering::Relaxed);
                channel = None;
                tracing::warn!("renewing the cluster lease: no answer within {interval:?}");
                wait = retry;
            }
        }
    }
}

/// One renewal: over the open keep-alive stream if there is one, else (or when its member
/// does not answer quickly) by opening a stream on the next member, which renews too.
async fn renew(
    ctx: &Ctx,
    channel: &mut Option<(LeaseKeeper, LeaseKeepAliveStream)>,
    lease: i64,
) -> Result<Renewal, Error> {
    let budget = renewal_budget(ctx);
    let started = Instant::now();
    if let Some((keeper, stream)) = channel {
        // A healthy member answers in milliseconds; a silent one (cut off, frozen) must leave
        // time to renew through another.
        match tokio::time::timeout(budget / 3, over_stream(ctx, keeper, stream)).await {
            Ok(Ok(renewal)) => return Ok(renewal),
            Ok(Err(e)) => tracing::debug!("cluster lease keep-alive stream: {e}"),
            Err(_) => tracing::debug!("cluster lease keep-alive stream: no answer"),
        }
        *channel = None;
        ctx.etcd.skip_pinned();
    }
    let left = budget.saturating_sub(started.elapsed());
    match ctx.etcd.keep_alive(lease, left).await {
        Ok(opened) => {
            *channel = Some(opened);
            Ok(Renewal::Renewed(Duration::from_secs(ctx.lease_secs)))
        }
        Err(Error::Etcd { cause, .. }) if cause.contains("lease not found") => Ok(Renewal::Expired),
        Err(e) => Err(e),
    }
}

async fn over_stream(
    ctx: &Ctx,
    keeper: &mut LeaseKeeper,
    stream: &mut LeaseKeepAliveStream,
) -> Result<Renewal, Error> {
    keeper.keep_alive().await.map_err(|e| ctx.etcd.error(e))?;
    match stream.message().await.map_err(|e| ctx.etcd.error(e))? {
        Some(resp) if resp.ttl() > 0 => {
            Ok(Renewal::Renewed(Duration::from_secs(resp.ttl() as u64)))
        }
        Some(_) => Ok(Renewal::Expired),
        None => Err(Error::Etcd {
            endpoints: ctx.etcd.endpoints.clone(),
            cause: "keep-alive stream closed".into(),
        }),
    }
}

/// Tells subscribers when the node becomes fenced (no renewal in time) and when it is no
/// longer, since nothing else would wake them at that moment.
pub(crate) async fn watch_fence(ctx: Arc<Ctx>) {
    let shared = &ctx.shared;
    let mut fenced = shared.fenced();
    loop {
        match shared.valid_until() {
            Some(until) if !fenced => {
                tokio::time::sleep_until(until.into()).await;
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
        let now = shared.fenced();
        if now != fenced {
            fenced = now;
            if now {
                tracing::error!(
                    node = %shared.node,
                    "cluster lease not renewed in time: this node stops acting as owner"
                );
            } else {
                tracing::info!(node = %shared.node, "cluster lease renewed: no longer fenced");
            }
            shared.notifier.notify();
        }
    }
}
