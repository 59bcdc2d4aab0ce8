//! Keeps the local copy current: one watch on the whole cluster prefix, starting just after
//! the revision of the last full read. Each watch response becomes one new copy. When the
//! watch fails (member down, connection lost, history compacted past our revision) the whole
//! map is read again in one request, consistent at one revision, and watching resumes from
//! there; nothing in between can be missed because the new copy replaces the old one whole.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{EventType, WatchOptions};

use crate::control::Ctx;
use crate::map::PartitionMap;

const MAX_BACKOFF: Duration = Duration::from_secs(2);

pub(crate) async fn run(ctx: Arc<Ctx>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match follow(&ctx).await {
            Ok(()) => {}
            Err(e) => tracing::warn!("cluster map watch: {e}; reading the whole map again"),
        }
        loop {
            tokio::time::sleep(backoff).await;
            match ctx.etcd.load_map(&ctx.keys, &ctx.cluster).await {
                Ok(map) => {
                    ctx.shared
                        .metrics
                        .map_reloads
                        .fetch_add(1, Ordering::Relaxed);
                    ctx.shared.publish(map);
                    backoff = Duration::from_millis(100);
                    break;
                }
                Err(e) => {
                    tracing::warn!("reading the cluster map: {e}");
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

/// Applies watch events to the local copy until the watch ends.
async fn follow(ctx: &Ctx) -> Result<(), String> {
    let start = ctx.shared.map.load().revision + 1;
    let options = WatchOptions::new().with_prefix().with_start_revision(start);
    let mut stream = ctx
        .etcd
        .watch(ctx.keys.prefix(), options)
        .await
        .map_err(|e| e.to_string())?;
    loop {
        let Some(resp) = stream.message().await.map_err(|e| e.to_string())? else {
            return Err("the watch stream ended".into());
        };
        if resp.compact_revision() > 0 {
            return Err(format!(
                "history compacted up to revision {}",
                resp.compact_revision()
            ));
        }
        if resp.canceled() {
            return Err(format!("watch cancelled: {}", resp.cancel_reason()));
        }
        if resp.events().is_empty() {
            continue;
        }
        let mut next = PartitionMap::clone(&ctx.shared.map.load());
        for event in resp.events() {
            let Some(kv) = event.kv() else { continue };
            match event.event_type() {
                EventType::Put => {
                    if let Err(e) =
                        next.apply_put(&ctx.keys, kv.key(), kv.value(), kv.mod_revision())
                    {
                        tracing::error!("cluster map: {e}; ignoring it");
                    }
                }
                EventType::Delete => next.apply_delete(&ctx.keys, kv.key()),
            }
            next.revision = next.revision.max(kv.mod_revision());
        }
        ctx.shared
            .metrics
            .watch_events
            .fetch_add(resp.events().len() as u64, Ordering::Relaxed);
        ctx.shared.publish(next);
    }
}
