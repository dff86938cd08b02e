//! The sync task: follows the chain head and the Marketplace's events from a saved cursor.
//!
//! Each poll publishes the head (block, period) on a watch channel, asks the
//! [`EventFollower`](hoard_chain::EventFollower) for the events since the cursor, applies them to
//! the store (idempotent upserts, so a reorg's re-delivery is harmless), broadcasts them to the
//! roles, then saves the cursor and flushes. A crash between handling and saving only replays.

use std::{sync::Arc, time::Duration};

use alloy::primitives::B256;
use hoard_chain::{Chain, ChainError, EventFollower, MarketEvent, SlotState};
use tokio::sync::watch;

use crate::{
    node::Ctx,
    store::{HostEntry, HostSlotState, RequestRecord},
};

/// The chain head as of the last poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Head {
    /// Block number.
    pub(crate) block: u64,
    /// Its timestamp (unix seconds).
    pub(crate) timestamp: u64,
    /// `block / periodLength`.
    pub(crate) period: u64,
    /// Blocks left in the period after this one.
    pub(crate) blocks_left: u64,
}

impl Head {
    fn at(block: u64, timestamp: u64, period_length: u64) -> Self {
        let period_length = period_length.max(1);
        Self {
            block,
            timestamp,
            period: block / period_length,
            blocks_left: period_length - 1 - block % period_length,
        }
    }
}

/// Reads the head once (at start, so the node fails early on a bad RPC).
pub(crate) async fn initial_head(chain: &Chain) -> Result<Head, ChainError> {
    let block = chain.head_block().await?;
    let ts = chain.block_timestamp(block).await?;
    Ok(Head::at(block, ts, chain.deployment().period_length))
}

pub(crate) async fn run(ctx: Arc<Ctx>, head_tx: watch::Sender<Head>) {
    let mut follower = EventFollower::new(ctx.config.chain.confirmations);
    let mut interval = tokio::time::interval(ctx.config.chain.poll_interval());
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing_since: Option<std::time::Instant> = None;
    loop {
        tokio::select! {
            _ = ctx.cancel.cancelled() => return,
            _ = interval.tick() => {}
        }
        match poll_once(&ctx, &mut follower, &head_tx).await {
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
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

async fn poll_once(
    ctx: &Arc<Ctx>,
    follower: &mut EventFollower,
    head_tx: &watch::Sender<Head>,
) -> anyhow::Result<()> {
    let block = ctx.chain.head_block().await?;
    if block != head_tx.borrow().block {
        let ts = ctx.chain.block_timestamp(block).await?;
        head_tx.send_replace(Head::at(block, ts, ctx.chain.deployment().period_length));
    }
    let cursor = ctx.store.cursor()?;
    let poll = follower.poll(&ctx.chain, cursor).await?;
    if let Some(from) = poll.reorg {
        tracing::warn!(
            from_block = from,
            "chain reorganised; replaying events from there"
        );
    }
    for e in &poll.events {
        apply(ctx, &e.event).await?;
        let _ = ctx.events.send(e.event.clone());
    }
    ctx.store.set_cursor(&poll.cursor)?;
    ctx.store.flush().await?;
    ctx.metrics.synced_block.set(poll.cursor.block as i64);
    Ok(())
}

/// Applies one event to the store and the metrics. Must be idempotent (reorgs replay).
async fn apply(ctx: &Arc<Ctx>, event: &MarketEvent) -> anyhow::Result<()> {
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
                manifest_id: params.manifestId,
                dataset_root: params.datasetRoot,
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
            let label = short(request_id);
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
                tracing::info!(request = %short(request_id), extra_seconds, ends_at, "request extended");
                record.ends_at = *ends_at;
                ctx.store.put_request(&record)?;
            }
        }
        MarketEvent::SlotFilled { request_id, .. } | MarketEvent::SlotFreed { request_id, .. } => {
            refresh_dataset_slots(ctx, request_id).await;
            track_repairs(ctx, event, request_id);
            if let MarketEvent::SlotFreed { slot_id, host, .. } = event
                && *host == ctx.address()
                && let Some(mut slot) = ctx.store.host_slot(slot_id)?
                && slot.state != HostSlotState::Evicted
            {
                tracing::error!(slot = %short(slot_id), "this host was evicted from a slot");
                ctx.metrics.slots_evicted.inc();
                slot.state = HostSlotState::Evicted;
                ctx.store.put_host_slot(&slot)?;
                let dir = ctx.store.slot_dir(&slot.volume, slot_id);
                ctx.serving.remove_dir(&dir);
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
                tracing::error!(slot = %short(slot_id), "a proof of this host was marked missing");
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

/// Waits until the node has handled the events up to the head it saw when called (a freshly
/// started node backfills from the deployment block first).
pub(crate) async fn wait_synced(ctx: &Ctx, timeout: Duration) -> anyhow::Result<()> {
    let target = ctx
        .head()
        .block
        .saturating_sub(ctx.config.chain.confirmations);
    let deadline = tokio::time::Instant::now() + timeout;
    while (ctx.metrics.synced_block.get() as u64) < target {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the node has not caught up with the chain yet (synced to block {} of {target}); try again shortly",
            ctx.metrics.synced_block.get()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Counts repairs and times them from the slot's eviction (by block time) to its refill.
fn track_repairs(ctx: &Ctx, event: &MarketEvent, request_id: &B256) {
    let now = ctx.head().timestamp;
    let mut freed = ctx.freed_at.lock().unwrap_or_else(|p| p.into_inner());
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
                .with_label_values(&[&short(request_id)])
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

/// Sets `hoard_dataset_slots` for a request from the chain's slot states.
async fn refresh_dataset_slots(ctx: &Arc<Ctx>, request_id: &B256) {
    let Ok(Some(r)) = ctx.store.request(request_id) else {
        return;
    };
    let (mut free, mut filled, mut repair) = (0, 0, 0);
    for i in 0..r.slots {
        let id = hoard_chain::slot_id(*request_id, u64::from(i));
        match ctx.chain.slot_state(id).await {
            Ok(SlotState::Free) => free += 1,
            Ok(SlotState::Filled) => filled += 1,
            Ok(SlotState::Repair) => repair += 1,
            _ => {}
        }
    }
    let label = short(request_id);
    for (state, n) in [("free", free), ("filled", filled), ("repair", repair)] {
        ctx.metrics
            .dataset_slots
            .with_label_values(&[&label, state])
            .set(n);
    }
}

/// The label of the request a slot belongs to: from the store (every request this node has seen
/// maps its slots), else from the chain (a store written before the map existed).
async fn dataset_label(ctx: &Arc<Ctx>, slot_id: &B256) -> Option<String> {
    if let Ok(Some(request)) = ctx.store.request_of_slot(slot_id) {
        return Some(short(&request));
    }
    let slot = ctx.chain.get_slot(*slot_id).await.ok()?;
    Some(short(&slot.requestId))
}

/// The short form of an id for logs and labels: the first 8 hex digits.
pub(crate) fn short(id: &B256) -> String {
    hex::encode(&id.as_slice()[..4])
}
