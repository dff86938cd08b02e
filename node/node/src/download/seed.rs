//! Seeding what was downloaded: every few seconds the reader cache's new blocks are made
//! durable (`ReaderCache::commit`), each dataset holding blocks is announced as provided in
//! Kademlia (and no longer once it is gone), and the cache gauges are set. At shutdown, one last
//! commit.

use std::{collections::HashSet, sync::Arc, time::Duration};

use hoard_prover::DatasetId;

use crate::{ctx::Ctx, local_slots::LocalSlots, reader_cache::ReaderCache};

/// How often the cache is committed and the provider records are checked.
const EVERY: Duration = Duration::from_secs(2);

/// Runs until the node stops.
pub(crate) async fn run(ctx: Arc<Ctx>, cache: ReaderCache, slots: LocalSlots) {
    let mut announced: HashSet<DatasetId> = HashSet::new();
    ctx.metrics
        .reader_cache_capacity
        .set(i64::try_from(cache.capacity_bytes()).unwrap_or(i64::MAX));
    loop {
        let stopping = tokio::select! {
            _ = ctx.cancel.cancelled() => true,
            _ = tokio::time::sleep(EVERY) => false,
        };
        let c = cache.clone();
        let held = tokio::task::spawn_blocking(move || {
            let committed = c.commit();
            (committed, c.nonempty())
        })
        .await;
        let Ok((committed, held)) = held else {
            return;
        };
        if let Err(e) = committed {
            tracing::warn!(err = %e, "reader cache commit failed");
        }
        ctx.metrics
            .reader_cache_bytes
            .set(i64::try_from(cache.used_bytes()).unwrap_or(i64::MAX));
        if stopping {
            return;
        }
        let held: HashSet<DatasetId> = held.into_iter().collect();
        for id in held.difference(&announced) {
            // A timeout still stores the record locally; Kademlia republishes it.
            let _ = ctx.net.start_providing(*id).await;
            tracing::debug!(dataset = %id.short(), "providing cached blocks");
        }
        for id in announced.difference(&held) {
            // Still provided as its renter or a host of a slot: keep the record.
            if slots.dir_of(id, None).is_none() {
                ctx.net.stop_providing(*id).await;
            }
        }
        announced = held;
        cache.set_announced(&announced);
    }
}
