//! The sync task: follows the chain head and the Marketplace's events from a saved cursor.
//!
//! Each poll publishes the head (block, period) on a watch channel, asks the
//! [`EventFollower`](hoard_chain::EventFollower) for the events since the cursor, applies them to
//! the store (idempotent upserts, so a reorg's re-delivery is harmless), broadcasts them to the
//! roles, then saves the cursor and flushes. A crash between handling and saving only replays.

use std::{collections::HashMap, sync::Arc, time::Duration};

use hoard_chain::{ChainError, EventFollower, MarketEvent, SlotState};
use hoard_prover::{DatasetId, Hash, RequestId, SlotId, SlotIndex};
use tokio::sync::watch;

use crate::{
    ctx::{Ctx, Head},
    local_slots::LocalSlots,
    store::{HostEntry, HostSlotState, RequestRecord, StoreError},
};

/// Why one poll failed (the next one tries again).
#[derive(Debug, thiserror::Error)]
enum SyncError {
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The sync task's own state.
struct Sync {
    ctx: Arc<Ctx>,
    slots: LocalSlots,
    follower: EventFollower,
    head_tx: watch::Sender<Head>,
    synced_tx: watch::Sender<u64>,
    /// When each freed slot was freed (block time), to time its repair.
    freed_at: HashMap<SlotId, u64>,
}

/// Follows the chain until the node stops: publishes the head on `head_tx` and the last applied
/// block on `synced_tx`; drops evicted slots from `slots`.
pub(crate) async fn run(
    ctx: Arc<Ctx>,
    slots: LocalSlots,
    head_tx: watch::Sender<Head>,
    synced_tx: watch::Sender<u64>,
) {
    let mut sync = Sync {
        follower: EventFollower::new(ctx.config.chain.confirmations),
        ctx: ctx.clone(),
        slots,
        head_tx,
        synced_tx,
        freed_at: HashMap::new(),
    };
    let mut interval = tokio::time::interval(ctx.config.chain.poll_interval());
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing_since: Option<std::time::Instant> = None;
    loop {
        tokio::select! {
            _ = ctx.cancel.cancelled() => return,
            _ = interval.tick() => {}
        }
        match sync.poll_once().await {
            Ok(()) => {
                if let Some(since) = failing_since.take() {
                    tracing::info!(down_for = ?since.elapsed(), "chain reachable again");
                }
            }
            Err(e) => {
                // The RPC may be down for a while: keep going, the metric and log show it.
                if failing_since.is_none() {
                    failing_since = Some(std::time::Instant::now());
                }
                tracing::warn!(err = %e, "chain sync failed; retrying");
                tokio::select! {
                    _ = ctx.cancel.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
}

impl Sync {
    async fn poll_once(&mut self) -> Result<(), SyncError> {
        let ctx = self.ctx.clone();
        let (block, timestamp) = ctx.chain.head().await?;
        if block != self.head_tx.borrow().block {
            self.head_tx
                .send_replace(Head::at(block, timestamp, ctx.periods()));
        }
        let cursor = ctx.store.cursor()?;
        let poll = self.follower.poll(&ctx.chain, cursor).await?;
        if let Some(from) = poll.reorg {
            tracing::warn!(
                from_block = from,
                "chain reorganised; replaying events from there"
            );
        }
        for e in &poll.events {
            self.apply(&e.event).await?;
            let _ = ctx.events.send(e.event.clone());
        }
        ctx.store.set_cursor(&poll.cursor)?;
        ctx.store.flush().await?;
        ctx.metrics.synced_block.set(poll.cursor.block as i64);
        self.synced_tx.send_replace(poll.cursor.block);
        Ok(())
    }

    /// Applies one event to the store and the metrics. Must be idempotent (reorgs replay).
    async fn apply(&mut self, event: &MarketEvent) -> Result<(), SyncError> {
        let ctx = self.ctx.clone();
        let ctx = &ctx;
        match event {
            MarketEvent::StorageRequested {
                request_id,
                renter,
                params,
                expires_at,
                ends_at,
                ..
            } => {
                let record = RequestRecord {
                    id: *request_id,
                    renter: *renter,
                    manifest_id: DatasetId(params.manifestId.0),
                    dataset_root: Hash(params.datasetRoot.0),
                    slots: params.slots,
                    max_slot_loss: params.maxSlotLoss,
                    slot_size: params.slotSize,
                    cell_count: params.cellCount,
                    samples: params.samples,
                    proof_probability: params.proofProbability,
                    price_per_byte_per_second: params.pricePerBytePerSecond,
                    collateral_per_byte: params.collateralPerByte,
                    expires_at: *expires_at,
                    ends_at: *ends_at,
                };
                let label = request_id.short();
                ctx.metrics
                    .dataset_slots_needed
                    .with_label_values(&[&label])
                    .set(i64::from(record.slots - record.max_slot_loss));
                for state in ["filled", "repair"] {
                    ctx.metrics
                        .dataset_slots
                        .with_label_values(&[&label, state]);
                }
                ctx.metrics
                    .dataset_slots
                    .with_label_values(&[&label, "free"])
                    .set(i64::from(record.slots));
                for outcome in ["submitted", "missed"] {
                    ctx.metrics
                        .dataset_proofs
                        .with_label_values(&[&label, outcome]);
                }
                ctx.metrics.dataset_repairs.with_label_values(&[&label]);
                // Before the request itself: whoever sees the request sees its scheme.
                if params.scheme == crate::host::COMPACT_SCHEME {
                    ctx.store
                        .put_compact_root(request_id, &Hash(params.compactRoot.0))?;
                }
                ctx.store.put_request(&record)?;
            }
            MarketEvent::RequestExtended {
                request_id,
                extra_seconds,
                ends_at,
                ..
            } => {
                // Hosts prove until `ends_at` (prove.rs), so the new end must reach the store. Set, not
                // added: a replay after a reorg leaves the same value.
                if let Some(mut record) = ctx.store.request(request_id)?
                    && record.ends_at != *ends_at
                {
                    tracing::info!(request = %request_id.short(), extra_seconds, ends_at, "request extended");
                    record.ends_at = *ends_at;
                    ctx.store.put_request(&record)?;
                }
            }
            MarketEvent::SlotFilled { request_id, .. }
            | MarketEvent::SlotFreed { request_id, .. } => {
                refresh_dataset_slots(ctx, request_id).await;
                self.track_repairs(event, request_id);
                if let MarketEvent::SlotFreed { slot_id, host, .. } = event
                    && *host == ctx.address()
                    && let Some(mut slot) = ctx.store.host_slot(slot_id)?
                    && slot.state != HostSlotState::Evicted
                {
                    tracing::error!(slot = %slot_id.short(), "this host was evicted from a slot");
                    ctx.metrics.slots_evicted.inc();
                    slot.state = HostSlotState::Evicted;
                    ctx.store.put_host_slot(&slot)?;
                    let dir = ctx.store.slot_dir(&slot.volume, slot_id);
                    self.slots.remove_dir(&dir);
                    let _ = std::fs::remove_dir_all(dir);
                }
            }
            MarketEvent::ProofSubmitted { slot_id, .. } => {
                if let Some(label) = dataset_label(ctx, slot_id).await {
                    ctx.metrics
                        .dataset_proofs
                        .with_label_values(&[&label, "submitted"])
                        .inc();
                }
            }
            MarketEvent::ProofMissed {
                slot_id,
                host,
                reporter,
                slashed,
                reward,
                ..
            } => {
                if let Some(label) = dataset_label(ctx, slot_id).await {
                    ctx.metrics
                        .dataset_proofs
                        .with_label_values(&[&label, "missed"])
                        .inc();
                }
                if *host == ctx.address() {
                    tracing::error!(slot = %slot_id.short(), "a proof of this host was marked missing");
                    ctx.metrics.proofs_missed.inc();
                    ctx.metrics
                        .collateral_slashed
                        .inc_by(crate::metrics::tokens(*slashed));
                }
                if *reporter == ctx.address() {
                    ctx.metrics
                        .validator_rewards
                        .inc_by(crate::metrics::tokens(*reward));
                }
            }
            MarketEvent::HostAnnounced {
                host,
                peer_id,
                addrs,
            } => {
                let entry = HostEntry {
                    peer_id: peer_id.to_vec(),
                    addrs: addrs.iter().map(|a| a.to_vec()).collect(),
                };
                ctx.store.put_host(host, Some(&entry))?;
                if let Some((peer, addrs)) = crate::announce::decode_entry(&entry)
                    && peer != ctx.net.local_peer_id()
                {
                    ctx.net.add_peer_addrs(peer, addrs).await;
                }
            }
            MarketEvent::HostRemoved { host } => ctx.store.put_host(host, None)?,
            _ => {}
        }
        Ok(())
    }

    /// Counts repairs and times them from the slot's eviction (by block time) to its refill.
    fn track_repairs(&mut self, event: &MarketEvent, request_id: &RequestId) {
        let ctx = &self.ctx;
        let now = ctx.head().timestamp;
        let freed = &mut self.freed_at;
        match event {
            MarketEvent::SlotFreed { slot_id, .. } => {
                freed.entry(*slot_id).or_insert(now);
            }
            MarketEvent::SlotFilled {
                slot_id,
                repair: true,
                ..
            } => {
                ctx.metrics
                    .dataset_repairs
                    .with_label_values(&[&request_id.short()])
                    .inc();
                if let Some(at) = freed.remove(slot_id) {
                    ctx.metrics
                        .repair_duration
                        .observe(now.saturating_sub(at) as f64);
                }
            }
            _ => {}
        }
    }
}

/// Sets `hoard_dataset_slots` for a request from the chain's slot states.
async fn refresh_dataset_slots(ctx: &Ctx, request_id: &RequestId) {
    let Ok(Some(r)) = ctx.store.request(request_id) else {
        return;
    };
    let (mut free, mut filled, mut repair) = (0, 0, 0);
    for i in 0..r.slots {
        let id = hoard_prover::slot_id(request_id, SlotIndex(i));
        match ctx.chain.slot_state(id).await {
            Ok(SlotState::Free) => free += 1,
            Ok(SlotState::Filled) => filled += 1,
            Ok(SlotState::Repair) => repair += 1,
            _ => {}
        }
    }
    let label = request_id.short();
    for (state, n) in [("free", free), ("filled", filled), ("repair", repair)] {
        ctx.metrics
            .dataset_slots
            .with_label_values(&[&label, state])
            .set(n);
    }
}

/// The label of the request a slot belongs to: from the store (every request this node has seen
/// maps its slots), else from the chain (a store written before the map existed).
async fn dataset_label(ctx: &Ctx, slot_id: &SlotId) -> Option<String> {
    if let Ok(Some(request)) = ctx.store.request_of_slot(slot_id) {
        return Some(request.short());
    }
    let slot = ctx.chain.get_slot(*slot_id).await.ok()?;
    Some(slot.request_id.short())
}
