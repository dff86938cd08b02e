//! Where a proof is built and sent. The proof scheduler: each period, for every filled slot,
//! decide whether a proof is due ([`proof_due`], locally, from the period's seed), build it on
//! the blocking pool and check it ([`build_proof`]), submit it, and retry until the period
//! ends. Warns before a deadline is missed. A proof that needs a damaged block reports the
//! damage to the heal task, waits for the repair, and proves once it is done (within the
//! period, or not at all).
//!
//! ```text
//!  head changes ─▶ seed of the period ─▶ for each Filled slot: proof_due? recorded already?
//!      ─▶ proof task (JoinSet, `prove_parallelism` building at once):
//!           isProofRequired ─▶ build_proof (blocking pool: slot tree, cells, local verify)
//!           (damaged: Damage::report ─▶ wait for the repair ─▶ build again)
//!           ─▶ submitProof ─▶ record Submitted (or Failed, with a retry while the period lasts)
//! ```
//!
//! Idempotent across restarts: a proof is sent only while the chain still requires it
//! (`isProofRequired` turns false once one is mined), so a host killed between building and
//! sending simply proves again when it comes back within the period.

use std::{
    collections::HashSet,
    num::NonZeroU64,
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use alloy::primitives::B256;
use hoard_chain::{MarketplaceErrors, ProofStatus};
use hoard_dataset::{DatasetError, PackedDataset, SlotProblem};
use hoard_prover::{Challenge, DirectProof, Seed, SlotId, SlotIndex, SlotTree, proof_required};
use tokio::{sync::Semaphore, task::JoinSet};
use tracing::Instrument as _;

use super::{
    Host,
    heal::{Hurt, damaged_blocks},
};
use crate::{
    ctx::{Ctx, Head},
    store::{HostSlot, HostSlotState, ProofOutcome, RequestRecord},
};

/// Why a proof could not be built from local data.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProveError {
    /// The request has no cells.
    #[error("the request has zero cells")]
    NoCells,
    /// The slot's files are damaged or missing.
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    /// A slot file cannot be read.
    #[error("the slot's files: {0}")]
    Slot(#[from] SlotProblem),
    /// The local data does not give a proof.
    #[error(transparent)]
    Prove(#[from] hoard_prover::ProveError<SlotProblem>),
    /// The proof built does not verify against the slot root: the data changed on disk.
    #[error("the proof built from local data does not verify: {0}")]
    Verify(#[from] hoard_prover::VerifyError),
    /// The proving task died.
    #[error("the proving task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Whether `slot` (of request `r`) owes a proof in the period `now` is in, whose seed is `seed`.
/// The fill's proof counts for its own period; an ended request owes nothing.
pub(crate) fn proof_due(slot: &HostSlot, r: &RequestRecord, now: &Head, seed: &Seed) -> bool {
    slot.state == HostSlotState::Filled
        && slot.filled_period < now.period
        && now.timestamp < r.ends_at
        && NonZeroU64::new(r.proof_probability)
            .is_some_and(|p| proof_required(seed, &slot.slot_id, p))
}

pub(super) async fn run(host: Arc<Host>) {
    let ctx = &host.ctx;
    let mut head = ctx.head.clone();
    let permits = Arc::new(Semaphore::new(ctx.config.host.prove_parallelism.max(1)));
    // Proof tasks of the current period, each returning its (slot, period).
    let mut tasks: JoinSet<(SlotId, u64)> = JoinSet::new();
    // Slots with a proof task running for the current period.
    let mut running: HashSet<(SlotId, u64)> = HashSet::new();
    // (slot, period) whose mined proof was checked against the chain near the deadline.
    let mut rechecked: HashSet<(SlotId, u64)> = HashSet::new();
    loop {
        tokio::select! {
            _ = ctx.cancel.cancelled() => return,
            changed = head.changed() => if changed.is_err() { return },
            Some(done) = tasks.join_next() => {
                if let Ok(key) = done {
                    running.remove(&key);
                }
                continue;
            }
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
        for slot in slots {
            let Ok(Some(r)) = ctx.store.request(&slot.request_id) else {
                continue;
            };
            if !proof_due(&slot, &r, &now, &seed) || super::compact::is_compact(ctx, &r) {
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
                            .map_or(true, |s| s == ProofStatus::Submitted)
                    {
                        continue;
                    }
                    tracing::warn!(slot = %slot.slot_id.short(), period = now.period, "a mined proof is no longer on chain (reorg); proving again");
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
                let (host, permits) = (Arc::clone(&host), permits.clone());
                let span =
                    tracing::info_span!("proof", slot = %slot.slot_id.short(), period = now.period);
                tasks.spawn(
                    async move {
                        prove_slot(&host, &slot, &r, now.period, seed, &permits).await;
                        key
                    }
                    .instrument(span),
                );
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
async fn prove_slot(
    host: &Host,
    slot: &HostSlot,
    r: &RequestRecord,
    period: u64,
    seed: Seed,
    permits: &Semaphore,
) {
    let ctx = &*host.ctx;
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
                if let Ok(ProofStatus::Submitted) =
                    ctx.chain.proof_status(slot.slot_id, period).await
                {
                    let mined = ProofOutcome::Submitted {
                        tx: B256::ZERO,
                        block: ctx.head().block,
                    };
                    let _ = ctx.store.put_proof(&slot.slot_id, period, &mined);
                    let _ = ctx.store.flush().await;
                    tracing::info!("proof already mined (by an earlier run)");
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
            Some(s) => s,
            None => match ctx.chain.period_seed(period).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(err = %e, "cannot read the period seed; retrying");
                    retry_sleep(ctx, &mut delay).await;
                    continue;
                }
            },
        };
        let started = Instant::now();
        let proof = {
            let Ok(_permit) = permits.acquire().await else {
                return;
            };
            match open_tree(&dir, slot.index).await {
                Ok(tree) => build_proof(&dir, slot.index, tree, seed, slot.slot_id, r).await,
                Err(e) => Err(e),
            }
        };
        ctx.metrics
            .proof_build_seconds
            .observe(started.elapsed().as_secs_f64());
        let proof = match proof {
            Ok(p) => p,
            Err(e) => {
                // Local data does not prove: report loudly, and have it repaired.
                ctx.metrics
                    .proofs_failed
                    .with_label_values(&["local_verify"])
                    .inc();
                ctx.metrics.integrity_failures.inc();
                tracing::error!(err = %e, "cannot build a valid proof from local data");
                if ctx.config.host.self_repair {
                    let hurt = damage_of(&e, &dir, slot, r, seed).await;
                    host.damage.report(slot.slot_id, hurt);
                    if wait_repaired(host, slot, period).await {
                        tracing::info!("the damaged blocks were repaired; proving again");
                        continue;
                    }
                    tracing::error!(
                        why = host.damage.failure(&slot.slot_id).unwrap_or_default(),
                        "the damaged blocks were not repaired within the period"
                    );
                }
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
                let start = ctx.periods().start(period).unwrap_or(0);
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
                tracing::info!(block = outcome.block, "proof accepted");
                return;
            }
            Err(e) if e.is_transient() => {
                ctx.metrics.proofs_failed.with_label_values(&["io"]).inc();
                tracing::warn!(err = %e, "sending a proof failed; retrying");
                retry_sleep(ctx, &mut delay).await;
            }
            Err(e)
                if matches!(
                    e.marketplace(),
                    Some(MarketplaceErrors::RequestNotActive(_))
                ) =>
            {
                // The request ended (its last block fell after the period's head): nothing due.
                tracing::debug!("request ended; no proof due");
                return;
            }
            Err(e)
                if matches!(
                    e.marketplace(),
                    Some(
                        MarketplaceErrors::InvalidProof(_) | MarketplaceErrors::ProofNotRequired(_)
                    )
                ) =>
            {
                // It verified locally against the seed of `period`, so the chain judged it
                // against another seed: the period ended before the proof got in (the next loop
                // stops), or a reorg replaced the seed block (the next loop proves again with
                // the new seed). Counted apart from real rejections.
                ctx.metrics.proofs_failed.with_label_values(&["late"]).inc();
                tracing::warn!(err = %e, "proof answered a seed that is no longer the period's (period over, or reorg)");
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
                tracing::error!(err = %e, "proof rejected by the chain");
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

/// What a failed proof says is damaged: every challenged block that does not match its root, or
/// the whole slot if its files or roots are unusable.
async fn damage_of(
    e: &ProveError,
    dir: &Path,
    slot: &HostSlot,
    r: &RequestRecord,
    seed: Seed,
) -> Hurt {
    let unusable = matches!(
        e,
        ProveError::Dataset(_) | ProveError::Slot(_) | ProveError::NoCells | ProveError::Join(_)
    );
    let Some(cells) = NonZeroU64::new(r.cell_count).filter(|_| !unusable) else {
        return Hurt::Whole;
    };
    let challenge = Challenge {
        seed,
        slot_id: slot.slot_id,
        samples: u32::from(r.samples),
        cell_count: cells,
    };
    let blocks: Vec<u64> = challenge
        .unique_indices()
        .iter()
        .map(|c| c.block())
        .collect();
    let (dir, index) = (dir.to_path_buf(), slot.index);
    let found = tokio::task::spawn_blocking(move || {
        let tree = PackedDataset::open(&dir)
            .and_then(|p| p.slot_tree(index).map(|(_, t)| t))
            .ok()?;
        Some(damaged_blocks(&dir, index, &tree, blocks))
    })
    .await;
    match found {
        Ok(Some(bad)) if !bad.is_empty() => Hurt::blocks(bad),
        // The blocks check out now, yet the proof failed: trust nothing of the slot.
        _ => Hurt::Whole,
    }
}

/// Waits until the damage of `slot` is repaired (true), or `period` ends or the node stops
/// (false). A failed repair is retried by the heal task meanwhile.
async fn wait_repaired(host: &Host, slot: &HostSlot, period: u64) -> bool {
    let ctx = &host.ctx;
    let mut changed = host.damage.subscribe();
    let mut head = ctx.head.clone();
    loop {
        if host.damage.is_clear(&slot.slot_id) {
            return true;
        }
        if ctx.cancel.is_cancelled() || head.borrow_and_update().period != period {
            return false;
        }
        tokio::select! {
            _ = ctx.cancel.cancelled() => return false,
            r = changed.changed() => if r.is_err() { return false },
            r = head.changed() => if r.is_err() { return false },
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

/// Opens slot `index` of the packed folder `dir` and rebuilds its tree from the roots file (every
/// root checked), on the blocking pool.
pub(super) async fn open_tree(dir: &Path, index: SlotIndex) -> Result<SlotTree, ProveError> {
    let dir = dir.to_path_buf();
    let tree = tokio::task::spawn_blocking(move || {
        PackedDataset::open(&dir).and_then(|p| p.slot_tree(index).map(|(_, t)| t))
    })
    .await??;
    Ok(tree)
}

/// Builds the direct proof of slot `index` (in the packed folder `dir`, with tree `tree`) for
/// `seed` on the blocking pool, and checks it against the slot root before it goes out.
pub(super) async fn build_proof(
    dir: &Path,
    index: SlotIndex,
    tree: SlotTree,
    seed: Seed,
    slot_id: SlotId,
    r: &RequestRecord,
) -> Result<Vec<u8>, ProveError> {
    let challenge = Challenge {
        seed,
        slot_id,
        samples: u32::from(r.samples),
        cell_count: NonZeroU64::new(r.cell_count).ok_or(ProveError::NoCells)?,
    };
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || -> Result<Vec<u8>, ProveError> {
        let packed = PackedDataset::open(&dir)?;
        let files = packed.open_slot(index)?;
        let proof = DirectProof::create(&tree, &challenge, |b, buf| files.read_blocks(b, buf))?;
        let bytes = proof.to_bytes();
        hoard_prover::verify(&tree.root(), &challenge, &bytes)?;
        Ok(bytes)
    })
    .await?
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use alloy::primitives::{Address, U256};
    use hoard_prover::{DatasetId, Hash, RequestId};

    use super::*;

    fn slot(state: HostSlotState, filled_period: u64) -> HostSlot {
        HostSlot {
            slot_id: SlotId([4; 32]),
            request_id: RequestId([1; 32]),
            index: SlotIndex(0),
            state,
            volume: PathBuf::new(),
            filled_period,
            collateral: U256::ZERO,
            repair: false,
        }
    }

    fn request(proof_probability: u64, ends_at: u64) -> RequestRecord {
        RequestRecord {
            id: RequestId([1; 32]),
            renter: Address::ZERO,
            manifest_id: DatasetId([2; 32]),
            dataset_root: Hash([3; 32]),
            slots: 2,
            max_slot_loss: 1,
            slot_size: 1 << 16,
            cell_count: 256,
            samples: 4,
            proof_probability,
            price_per_byte_per_second: U256::from(1),
            collateral_per_byte: U256::from(1),
            expires_at: 0,
            ends_at,
        }
    }

    fn head(period: u64, timestamp: u64) -> Head {
        Head {
            block: period * 8,
            timestamp,
            period,
            blocks_left: 7,
        }
    }

    #[test]
    fn a_filled_slot_owes_a_proof_each_period_after_its_fill_until_the_end() {
        let seed = Seed([7; 32]);
        let every = request(1, 1_000);
        assert!(proof_due(
            &slot(HostSlotState::Filled, 3),
            &every,
            &head(4, 10),
            &seed
        ));
        // The fill's proof counts for its own period.
        assert!(!proof_due(
            &slot(HostSlotState::Filled, 4),
            &every,
            &head(4, 10),
            &seed
        ));
        // Ended requests, slots not (or no longer) held, and probability 0 owe nothing.
        assert!(!proof_due(
            &slot(HostSlotState::Filled, 3),
            &every,
            &head(4, 1_000),
            &seed
        ));
        for state in [
            HostSlotState::Filling,
            HostSlotState::Done,
            HostSlotState::Evicted,
        ] {
            assert!(!proof_due(&slot(state, 3), &every, &head(4, 10), &seed));
        }
        assert!(!proof_due(
            &slot(HostSlotState::Filled, 3),
            &request(0, 1_000),
            &head(4, 10),
            &seed
        ));
    }

    #[test]
    fn with_probability_p_about_one_period_in_p_owes_a_proof() {
        let r = request(4, u64::MAX);
        let s = slot(HostSlotState::Filled, 0);
        let due = (0u8..=255)
            .filter(|b| proof_due(&s, &r, &head(1, 0), &Seed([*b; 32])))
            .count();
        // The same rule as the contract's (hoard_prover::proof_required, pinned by the shared
        // vectors); here only that roughly a quarter of seeds require a proof.
        assert!((32..=96).contains(&due), "{due} of 256 seeds");
        for b in 0u8..=255 {
            let seed = Seed([b; 32]);
            assert_eq!(
                proof_due(&s, &r, &head(1, 0), &seed),
                proof_required(&seed, &s.slot_id, NonZeroU64::new(4).expect("4"))
            );
        }
    }
}
