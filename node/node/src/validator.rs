//! The validator role: after each period ends, find the required proofs that did not arrive and
//! mark them missing (the reporter earns a share of each slash). Switched on by config,
//! `--validate`, or `hoard validate` at run time.

use std::{num::NonZeroU64, sync::Arc};

use hoard_prover::{Seed, SlotId, proof_required};

use hoard_chain::{ProofStatus, RequestState, SlotState};

use crate::{node::Ctx, sync::short};

pub(crate) async fn run(ctx: Arc<Ctx>) {
    let mut head = ctx.head.clone();
    let mut on = ctx.validator_on.subscribe();
    let mut last_period = None;
    loop {
        tokio::select! {
            _ = ctx.cancel.cancelled() => return,
            c = head.changed() => if c.is_err() { return },
            c = on.changed() => if c.is_err() { return },
        }
        if !*on.borrow() {
            continue;
        }
        let now = *head.borrow_and_update();
        if last_period == Some(now.period) {
            continue;
        }
        last_period = Some(now.period);
        // Every ended period whose grace window is still open: a mark that failed (RPC down,
        // a race with another validator) is tried again at the next period change.
        let d = ctx.chain.deployment();
        let window = d.grace_blocks.div_ceil(d.period_length.max(1));
        for ended in now.period.saturating_sub(window)..now.period {
            let grace_end = (ended + 1) * d.period_length + d.grace_blocks;
            if now.block >= grace_end {
                continue;
            }
            match check_period(&ctx, ended).await {
                Ok(0) => {}
                Ok(marked) => tracing::info!(period = ended, marked, "marked missed proofs"),
                Err(e) => {
                    tracing::warn!(period = ended, err = %e, "validating a period failed; will retry")
                }
            }
        }
    }
}

/// Marks every missing required proof of `period`; returns how many were marked.
async fn check_period(ctx: &Arc<Ctx>, period: u64) -> anyhow::Result<u64> {
    let seed = ctx.chain.period_seed(period).await?;
    let mut marked = 0;
    for r in ctx.store.requests()? {
        let state = ctx.chain.request_state(r.id).await?;
        if !matches!(state, RequestState::New | RequestState::Started) {
            continue;
        }
        let Some(prob) = NonZeroU64::new(r.proof_probability) else {
            continue;
        };
        for i in 0..r.slots {
            let slot_id = hoard_chain::slot_id(r.id, u64::from(i));
            if !proof_required(&Seed(seed.0), &SlotId(slot_id.0), prob) {
                continue;
            }
            let slot = ctx.chain.get_slot(slot_id).await?;
            // Only slots held since before the period (the fill's proof counts for its own
            // period), and never our own (self-reporting loses money by design).
            if slot.state != u8::from(SlotState::Filled)
                || slot.filledPeriod >= period
                || slot.host == ctx.address()
            {
                continue;
            }
            if ctx.chain.proof_status(slot_id, period).await? != ProofStatus::None {
                continue;
            }
            match ctx.chain.mark_proof_missing(slot_id, period).await {
                Ok(_) => {
                    marked += 1;
                    ctx.metrics.validator_marks.inc();
                    tracing::warn!(slot = %short(&slot_id), host = %slot.host, period, "proof missing: marked");
                }
                // Another validator may have been first: not an error worth more than a note.
                Err(e) => {
                    tracing::info!(slot = %short(&slot_id), period, err = %e, "could not mark a missed proof")
                }
            }
        }
    }
    Ok(marked)
}
