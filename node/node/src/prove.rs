//! The proof scheduler: each period, for every filled slot, decide whether a proof is required
//! (locally, from the period's seed), build it on the blocking pool, check it, submit it, and
//! retry until the period ends. Warns before a deadline is missed.
//!
//! Idempotent across restarts: a proof is sent only while the chain still requires it
//! (`isProofRequired` turns false once one is mined), so a host killed between building and
//! sending simply proves again when it comes back within the period.

use std::{
    collections::HashSet,
    num::NonZeroU64,
    sync::Arc,
    time::{Duration, Instant},
};

use alloy::primitives::B256;
use hoard_dataset::PackedDataset;
use hoard_prover::{Seed, SlotId, SlotIndex, proof_required};
use tokio::sync::Semaphore;

use crate::{
    metrics::tokens,
    node::Ctx,
    store::{HostSlot, HostSlotState, ProofOutcome},
    sync::short,
};

pub(crate) async fn run(ctx: Arc<Ctx>) {
    let mut head = ctx.head.clone();
    let permits = Arc::new(Semaphore::new(ctx.config.host.prove_parallelism.max(1)));
    // Slots with a proof task running for the current period.
    let mut running: HashSet<(B256, u64)> = HashSet::new();
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<(B256, u64)>();
    // (slot, period) whose mined proof was checked against the chain near the deadline.
    let mut rechecked: HashSet<(B256, u64)> = HashSet::new();
    loop {
        tokio::select! {
            _ = ctx.cancel.cancelled() => return,
            changed = head.changed() => if changed.is_err() { return },
            Some(key) = done_rx.recv() => { running.remove(&key); continue; }
        }
        let now = *head.borrow_and_update();
        let Ok(slots) = ctx.store.host_slots() else {
            continue;
        };
        // Read every time: a reorg that replaces the block before the period changes its seed.
        let seed = match ctx.chain.period_seed(now.period).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(err = %e, period = now.period, "cannot read the period seed");
                continue;
            }
        };
        let mut at_risk = 0;
        for slot in slots
            .into_iter()
            .filter(|s| s.state == HostSlotState::Filled)
        {
            if slot.filled_period >= now.period {
                continue; // the fill's proof counts for its own period
            }
            let Ok(Some(r)) = ctx.store.request(&slot.request_id) else {
                continue;
            };
            if now.timestamp >= r.ends_at {
                continue;
            }
            let Some(prob) = NonZeroU64::new(r.proof_probability) else {
                continue;
            };
            if !proof_required(&Seed(seed.0), &SlotId(slot.slot_id.0), prob) {
                continue;
            }
            // Mined, or failed for good this period (a local proof that does not verify will
            // not verify on the next block either; the integrity alert is already raised).
            let key = (slot.slot_id, now.period);
            match ctx.store.proof(&slot.slot_id, now.period) {
                Ok(Some(ProofOutcome::Submitted { .. })) => {
                    // A reorg can drop a mined proof. Once per period, when the deadline nears,
                    // ask the chain whether the proof is still there; if not, prove again.
                    if now.blocks_left > ctx.config.host.deadline_margin_blocks
                        || !rechecked.insert(key)
                        || ctx
                            .chain
                            .proof_status(slot.slot_id, now.period)
                            .await
                            .map_or(true, |s| s == hoard_chain::ProofStatus::Submitted)
                    {
                        continue;
                    }
                    tracing::warn!(slot = %short(&slot.slot_id), period = now.period, "a mined proof is no longer on chain (reorg); proving again");
                    let _ = ctx.store.forget_proof(&slot.slot_id, now.period);
                }
                Ok(Some(ProofOutcome::Failed(_))) => continue,
                _ => {}
            }
            if now.blocks_left < ctx.config.host.deadline_margin_blocks {
                at_risk += 1;
            }
            if running.insert(key) {
                ctx.metrics.proofs_required.inc();
                let ctx = ctx.clone();
                let permits = permits.clone();
                let done_tx = done_tx.clone();
                tokio::spawn(async move {
                    prove_slot(&ctx, &slot, now.period, seed, &permits).await;
                    let _ = done_tx.send(key);
                });
            }
        }
        if at_risk > 0 {
            tracing::warn!(
                at_risk,
                blocks_left = now.blocks_left,
                period = now.period,
                "required proofs not yet mined close to the period's end"
            );
        }
        ctx.metrics.proofs_at_risk.set(at_risk);
        running.retain(|(_, p)| *p >= now.period);
        rechecked.retain(|(_, p)| *p >= now.period);
    }
}

/// Proves one slot for `period`, retrying until it is mined or the period is over. `seed` is the
/// period's seed as the scheduler read it; retries read it again (a reorg may have changed it).
async fn prove_slot(ctx: &Arc<Ctx>, slot: &HostSlot, period: u64, seed: B256, permits: &Semaphore) {
    let Ok(Some(r)) = ctx.store.request(&slot.request_id) else {
        return;
    };
    let dir = ctx.store.slot_dir(&slot.volume, &slot.slot_id);
    let mut delay = Duration::from_millis(500);
    let mut first = Some(seed);
    loop {
        if ctx.cancel.is_cancelled() || ctx.head().period != period {
            return;
        }
        match ctx.chain.is_proof_required(slot.slot_id).await {
            Ok(false) => {
                // Mined already (typically by an earlier run of this node, killed after its
                // transaction reached the pool but before it recorded the outcome) or not due.
                // A mined proof is recorded here: without a record the scheduler starts this
                // task again on every block, counts the proof as required each time, and warns
                // that it is at risk near the deadline. Its transaction is not known here: the
                // record carries the zero hash and the block the node is at.
                if let Ok(hoard_chain::ProofStatus::Submitted) =
                    ctx.chain.proof_status(slot.slot_id, period).await
                {
                    let mined = ProofOutcome::Submitted {
                        tx: B256::ZERO,
                        block: ctx.head().block,
                    };
                    let _ = ctx.store.put_proof(&slot.slot_id, period, &mined);
                    let _ = ctx.store.flush().await;
                    tracing::info!(slot = %short(&slot.slot_id), period, "proof already mined (by an earlier run)");
                }
                return;
            }
            Ok(true) => {}
            Err(e) => {
                tracing::warn!(err = %e, "cannot ask whether a proof is required; retrying");
                retry_sleep(ctx, &mut delay).await;
                continue;
            }
        }
        let seed = match first.take() {
            Some(s) => Ok(s),
            None => ctx.chain.period_seed(period).await,
        };
        let seed = match seed {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(err = %e, "cannot read the period seed; retrying");
                retry_sleep(ctx, &mut delay).await;
                continue;
            }
        };
        let started = Instant::now();
        let proof = {
            let Ok(_permit) = permits.acquire().await else {
                return;
            };
            let dir2 = dir.clone();
            let index = slot.index;
            let tree = tokio::task::spawn_blocking(move || {
                PackedDataset::open(&dir2)
                    .and_then(|p| p.slot_tree(SlotIndex(index)).map(|(_, t)| t))
            })
            .await;
            match tree {
                Ok(Ok(tree)) => {
                    crate::host::build_proof(&dir, slot.index, tree, seed, slot.slot_id, &r).await
                }
                Ok(Err(e)) => Err(e.into()),
                Err(e) => Err(e.into()),
            }
        };
        ctx.metrics
            .proof_build_seconds
            .observe(started.elapsed().as_secs_f64());
        let proof = match proof {
            Ok(p) => p,
            Err(e) => {
                // Local data does not prove: report loudly; retrying will not help this period.
                ctx.metrics
                    .proofs_failed
                    .with_label_values(&["local_verify"])
                    .inc();
                ctx.metrics.integrity_failures.inc();
                tracing::error!(slot = %short(&slot.slot_id), period, err = %e, "cannot build a valid proof from local data");
                let _ = ctx.store.put_proof(
                    &slot.slot_id,
                    period,
                    &ProofOutcome::Failed(e.to_string()),
                );
                return;
            }
        };
        match ctx.chain.submit_proof(slot.slot_id, proof.into()).await {
            Ok(outcome) => {
                ctx.metrics.proofs_submitted.inc();
                let start = period * ctx.chain.deployment().period_length;
                ctx.metrics
                    .proof_latency_blocks
                    .observe(outcome.block.saturating_sub(start) as f64);
                let _ = ctx.store.put_proof(
                    &slot.slot_id,
                    period,
                    &ProofOutcome::Submitted {
                        tx: outcome.hash,
                        block: outcome.block,
                    },
                );
                // Not flushed one by one (a thousand fsyncs a period): sled writes it out within
                // half a second, and a record lost in a crash only costs an isProofRequired call.
                tracing::info!(slot = %short(&slot.slot_id), period, block = outcome.block, "proof accepted");
                return;
            }
            Err(e) if e.is_transient() => {
                ctx.metrics.proofs_failed.with_label_values(&["io"]).inc();
                tracing::warn!(slot = %short(&slot.slot_id), period, err = %e, "sending a proof failed; retrying");
                retry_sleep(ctx, &mut delay).await;
            }
            Err(e) if e.to_string().contains("RequestNotActive") => {
                // The request ended (its last block fell after the period's head): nothing due.
                tracing::debug!(slot = %short(&slot.slot_id), period, "request ended; no proof due");
                return;
            }
            Err(e) if matches!(e.revert_reason(), Some(r) if r.starts_with("InvalidProof") || r.starts_with("ProofNotRequired")) =>
            {
                // It verified locally against the seed of `period`, so the chain judged it
                // against another seed: the period ended before the proof got in (the next loop
                // stops), or a reorg replaced the seed block (the next loop proves again with
                // the new seed). Counted apart from real rejections.
                ctx.metrics.proofs_failed.with_label_values(&["late"]).inc();
                tracing::warn!(slot = %short(&slot.slot_id), period, err = %e, "proof answered a seed that is no longer the period's (period over, or reorg)");
                let _ = ctx.store.put_proof(
                    &slot.slot_id,
                    period,
                    &ProofOutcome::Failed(e.to_string()),
                );
                retry_sleep(ctx, &mut delay).await;
            }
            Err(e) => {
                ctx.metrics
                    .proofs_failed
                    .with_label_values(&["revert"])
                    .inc();
                tracing::error!(slot = %short(&slot.slot_id), period, err = %e, "proof rejected by the chain");
                let _ = ctx.store.put_proof(
                    &slot.slot_id,
                    period,
                    &ProofOutcome::Failed(e.to_string()),
                );
                // The period may have turned while it was in flight; the next loop checks.
                retry_sleep(ctx, &mut delay).await;
            }
        }
    }
}

async fn retry_sleep(ctx: &Ctx, delay: &mut Duration) {
    tokio::select! {
        _ = ctx.cancel.cancelled() => {}
        _ = tokio::time::sleep(*delay) => {}
    }
    *delay = (*delay * 2).min(Duration::from_secs(10));
}

/// Withdraws pay and collateral of every slot whose request has ended.
pub(crate) async fn withdraw_ended(ctx: &Arc<Ctx>) {
    let Ok(slots) = ctx.store.host_slots() else {
        return;
    };
    for mut slot in slots
        .into_iter()
        .filter(|s| s.state == HostSlotState::Filled)
    {
        let Ok(state) = ctx.chain.slot_state(slot.slot_id).await else {
            continue;
        };
        if !state.has_ended() {
            continue;
        }
        if state != hoard_chain::SlotState::Paid {
            let payout = ctx.chain.slot_payout(slot.slot_id).await.ok();
            match ctx.chain.withdraw_slot(slot.slot_id).await {
                Ok(_) => {
                    if let Some((earned, collateral)) = payout {
                        ctx.metrics
                            .earnings_withdrawn
                            .inc_by(tokens(earned + collateral));
                    }
                    tracing::info!(slot = %short(&slot.slot_id), "withdrew pay and collateral");
                }
                Err(e) => {
                    tracing::warn!(slot = %short(&slot.slot_id), err = %e, "withdrawing a slot failed");
                    continue;
                }
            }
        }
        slot.state = HostSlotState::Done;
        let dir = ctx.store.slot_dir(&slot.volume, &slot.slot_id);
        ctx.serving.remove_dir(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        let _ = ctx.store.put_host_slot(&slot);
    }
    let _ = ctx.store.flush().await;
    ctx.gauges_stale.notify_one();
}

/// Keeps the host's gauges fresh: refreshes when told they are stale ([`Ctx::gauges_stale`]),
/// at most every [`GAUGES_MIN_INTERVAL`], and at least every minute. One refresh asks the chain
/// once per filled slot, so refreshing after every fill would cost a host of N slots N² calls.
pub(crate) async fn gauges(ctx: Arc<Ctx>) {
    loop {
        refresh_gauges(&ctx).await;
        tokio::select! {
            _ = ctx.cancel.cancelled() => return,
            _ = tokio::time::sleep(GAUGES_MIN_INTERVAL) => {}
        }
        tokio::select! {
            _ = ctx.cancel.cancelled() => return,
            _ = ctx.gauges_stale.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(60) - GAUGES_MIN_INTERVAL) => {}
        }
    }
}

/// The shortest time between two refreshes of the host's gauges.
const GAUGES_MIN_INTERVAL: Duration = Duration::from_secs(5);

/// Recomputes the host's gauges (slots, storage, collateral, earnings, balance) from the store
/// and the chain.
async fn refresh_gauges(ctx: &Arc<Ctx>) {
    let Ok(slots) = ctx.store.host_slots() else {
        return;
    };
    let m = &ctx.metrics;
    let (mut filled, mut finished, mut failed, mut used) = (0, 0, 0, 0u64);
    let mut locked = 0.0;
    let mut accrued = 0.0;
    for s in &slots {
        match s.state {
            HostSlotState::Filled => {
                filled += 1;
                if let Ok(Some(r)) = ctx.store.request(&s.request_id) {
                    used += r.slot_size;
                }
                if let Ok((earned, collateral)) = ctx.chain.slot_payout(s.slot_id).await {
                    accrued += tokens(earned);
                    locked += tokens(collateral);
                }
            }
            HostSlotState::Done => finished += 1,
            HostSlotState::Evicted => failed += 1,
            HostSlotState::Filling => {}
        }
    }
    m.slots.with_label_values(&["filled"]).set(filled);
    m.slots.with_label_values(&["finished"]).set(finished);
    m.slots.with_label_values(&["failed"]).set(failed);
    m.storage_used.set(used as i64);
    m.storage_free.set(ctx.store.free_bytes() as i64);
    m.storage_capacity.set(ctx.offer().capacity_bytes as i64);
    m.collateral_locked.set(locked);
    m.earnings_accrued.set(accrued);
    if let Ok(b) = ctx.chain.token_balance(ctx.address()).await {
        m.token_balance.set(tokens(b));
    }
}
