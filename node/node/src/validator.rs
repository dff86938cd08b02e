//! The validator role: after each period ends, find the required proofs that did not arrive and
//! mark them missing (the reporter earns a share of each slash). Switched on by config,
//! `--validate`, or `hoard validate` at run time ([`ValidatorHandle::set_enabled`]).

use std::{num::NonZeroU64, sync::Arc};

use alloy::primitives::U256;
use hoard_chain::{ChainError, ProofStatus, RequestState, SlotState, TxOutcome};
use hoard_prover::{SlotIndex, proof_required};
use tokio::sync::watch;

use crate::{ctx::Ctx, store::StoreError};

/// Why the validator could not do something.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ValidatorError {
    /// Nothing earned yet.
    #[error("no reporter rewards to withdraw")]
    NothingToWithdraw,
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Reaches the validator role: its switch and its rewards. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct ValidatorHandle {
    ctx: Arc<Ctx>,
    on: Arc<watch::Sender<bool>>,
}

impl ValidatorHandle {
    /// Whether the validator runs now.
    pub(crate) fn enabled(&self) -> bool {
        *self.on.borrow()
    }

    /// Switches the validator on or off.
    pub(crate) fn set_enabled(&self, on: bool) {
        self.on.send_replace(on);
    }

    /// Missed proofs this node marked since it started.
    pub(crate) fn marks(&self) -> u64 {
        self.ctx.metrics.validator_marks.get()
    }

    /// Withdraws the reporter rewards earned so far; returns the amount and the transaction.
    pub(crate) async fn withdraw(&self) -> Result<(U256, TxOutcome), ValidatorError> {
        let reward = self.ctx.chain.reward_of(self.ctx.address()).await?;
        if reward.is_zero() {
            return Err(ValidatorError::NothingToWithdraw);
        }
        Ok((reward, self.ctx.chain.withdraw_reward().await?))
    }
}

/// Starts the validator role (off until switched on, unless the config says otherwise); the
/// returned future is its task.
pub(crate) fn spawn(ctx: Arc<Ctx>) -> (ValidatorHandle, impl Future<Output = ()>) {
    let (on, rx) = watch::channel(ctx.config.validator.enabled);
    let handle = ValidatorHandle {
        ctx: ctx.clone(),
        on: Arc::new(on),
    };
    (handle, run(ctx, rx))
}

async fn run(ctx: Arc<Ctx>, mut on: watch::Receiver<bool>) {
    let mut head = ctx.head.clone();
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
        for ended in ctx.periods().markable(now.block) {
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
async fn check_period(ctx: &Ctx, period: u64) -> Result<u64, ValidatorError> {
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
            let slot_id = hoard_prover::slot_id(&r.id, SlotIndex(i));
            if !proof_required(&seed, &slot_id, prob) {
                continue;
            }
            let slot = ctx.chain.get_slot(slot_id).await?;
            // Only slots held since before the period (the fill's proof counts for its own
            // period), and never our own (self-reporting loses money by design).
            if slot.state != SlotState::Filled
                || slot.filled_period >= period
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
                    tracing::warn!(slot = %slot_id.short(), host = %slot.host, period, "proof missing: marked");
                }
                // Another validator may have been first: not an error worth more than a note.
                Err(e) => {
                    tracing::info!(slot = %slot_id.short(), period, err = %e, "could not mark a missed proof")
                }
            }
        }
    }
    Ok(marked)
}
