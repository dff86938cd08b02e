//! What a host earns: withdrawals when requests end, the figures `hoard host status` shows, and
//! the host's gauges (slots, storage, collateral, earnings, balance).

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use alloy::primitives::U256;
use hoard_api::{DamagedSlot, HostHealth, HostSlotView, HostStatus};
use hoard_chain::SlotState;

use super::{Host, HostError};
use crate::{
    metrics::tokens,
    store::{HostSlot, HostSlotState, ProofOutcome},
};

/// The shortest time between two refreshes of the host's gauges.
const GAUGES_MIN_INTERVAL: Duration = Duration::from_secs(5);

/// What the chain says a held slot is worth now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Payout {
    /// Pay earned so far (`slotPayout`).
    pub(crate) earned: U256,
    /// Collateral that would come back.
    pub(crate) collateral: U256,
    /// Proofs marked missing against this host.
    pub(crate) missed: u64,
}

/// One slot's line of `hoard host status`: `payout` is the chain's view of a Filled slot (`None`
/// for other states, or when the chain could not be asked).
pub(crate) fn slot_view(
    s: &HostSlot,
    proofs: &BTreeMap<u64, ProofOutcome>,
    payout: Option<Payout>,
) -> HostSlotView {
    let submitted = proofs
        .values()
        .filter(|p| matches!(p, ProofOutcome::Submitted { .. }))
        .count();
    let p = payout
        .filter(|_| s.state == HostSlotState::Filled)
        .unwrap_or_default();
    HostSlotView {
        slot_id: s.slot_id,
        request_id: s.request_id,
        index: s.index,
        state: format!("{:?}", s.state),
        filled_period: s.filled_period,
        proofs_submitted: submitted,
        proofs_failed: proofs.len() - submitted,
        missed_proofs: p.missed,
        earned: p.earned,
        collateral: p.collateral,
    }
}

/// `hoard host status`: every slot with its figures, and their sums over the held slots.
pub(super) async fn status(host: &Host) -> Result<HostStatus, HostError> {
    let ctx = &host.ctx;
    let mut slots = Vec::new();
    for s in ctx.store.host_slots()? {
        let proofs = ctx.store.proofs_of(&s.slot_id)?;
        let payout = if s.state == HostSlotState::Filled {
            payout(host, &s).await
        } else {
            None
        };
        slots.push(slot_view(&s, &proofs, payout));
    }
    let collateral_at_risk = slots
        .iter()
        .map(|s| s.collateral)
        .fold(U256::ZERO, |a, b| a + b);
    let earned = slots
        .iter()
        .map(|s| s.earned)
        .fold(U256::ZERO, |a, b| a + b);
    let balance = ctx.chain.token_balance(ctx.address()).await?;
    let offer = host.offer.borrow().clone();
    Ok(HostStatus {
        enabled: ctx.config.host.enabled,
        offer,
        slots,
        collateral_at_risk,
        earned,
        balance,
        health: health(host),
    })
}

/// The scrub's position and the self-repair counters.
fn health(host: &Host) -> HostHealth {
    let m = &host.ctx.metrics;
    let scrub = *host.scrub.borrow();
    HostHealth {
        scrub_enabled: scrub.enabled,
        scrub_pass_started: scrub.pass_started,
        scrub_last_full_pass: scrub.last_full_pass,
        scrub_pass_done_bytes: scrub.pass_done_bytes,
        scrub_pass_total_bytes: scrub.pass_total_bytes,
        scrub_bytes_per_sec: scrub.bytes_per_sec,
        scrub_corrupt_blocks: m.scrub_corrupt_blocks.get(),
        self_repair: host.ctx.config.host.self_repair,
        repaired_blocks: m.self_repair_blocks.get(),
        rebuilt_slots: m.self_repair_slots.get(),
        repair_failures: ["sources", "disk", "other"]
            .iter()
            .map(|r| m.self_repair_failures.with_label_values(&[r]).get())
            .sum(),
        damaged: host
            .damage
            .damaged()
            .into_iter()
            .map(|(slot_id, last_error)| DamagedSlot {
                slot_id,
                last_error,
            })
            .collect(),
    }
}

async fn payout(host: &Host, s: &HostSlot) -> Option<Payout> {
    let (earned, collateral) = host.ctx.chain.slot_payout(s.slot_id).await.ok()?;
    let missed = host
        .ctx
        .chain
        .get_slot(s.slot_id)
        .await
        .map(|i| i.missed_proofs)
        .unwrap_or(0);
    Some(Payout {
        earned,
        collateral,
        missed,
    })
}

/// Withdraws pay and collateral of every slot whose request has ended.
pub(super) async fn withdraw_ended(host: &Host) {
    let ctx = &host.ctx;
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
        if state != SlotState::Paid {
            let payout = ctx.chain.slot_payout(slot.slot_id).await.ok();
            match ctx.chain.withdraw_slot(slot.slot_id).await {
                Ok(_) => {
                    if let Some((earned, collateral)) = payout {
                        ctx.metrics
                            .earnings_withdrawn
                            .inc_by(tokens(earned.saturating_add(collateral)));
                    }
                    tracing::info!(slot = %slot.slot_id.short(), "withdrew pay and collateral");
                }
                Err(e) => {
                    tracing::warn!(slot = %slot.slot_id.short(), err = %e, "withdrawing a slot failed");
                    continue;
                }
            }
        }
        slot.state = HostSlotState::Done;
        let dir = ctx.store.slot_dir(&slot.volume, &slot.slot_id);
        host.slots.remove_dir(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        let _ = ctx.store.put_host_slot(&slot);
    }
    let _ = ctx.store.flush().await;
    host.gauges_stale.notify_one();
}

/// Keeps the host's gauges fresh: refreshes when told they are stale ([`Host::gauges_stale`]),
/// at most every [`GAUGES_MIN_INTERVAL`], and at least every minute. One refresh asks the chain
/// once per filled slot, so refreshing after every fill would cost a host of N slots N² calls.
pub(super) async fn gauges(host: Arc<Host>) {
    let cancel = host.ctx.cancel.clone();
    loop {
        refresh_gauges(&host).await;
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(GAUGES_MIN_INTERVAL) => {}
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = host.gauges_stale.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(60) - GAUGES_MIN_INTERVAL) => {}
        }
    }
}

/// Recomputes the host's gauges from the store and the chain.
async fn refresh_gauges(host: &Host) {
    let ctx = &host.ctx;
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
    m.storage_capacity
        .set(host.offer.borrow().capacity_bytes as i64);
    m.collateral_locked.set(locked);
    m.earnings_accrued.set(accrued);
    if let Ok(b) = ctx.chain.token_balance(ctx.address()).await {
        m.token_balance.set(tokens(b));
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use alloy::primitives::B256;
    use hoard_prover::{RequestId, SlotId, SlotIndex};

    use super::*;

    fn slot(state: HostSlotState) -> HostSlot {
        HostSlot {
            slot_id: SlotId([4; 32]),
            request_id: RequestId([1; 32]),
            index: SlotIndex(2),
            state,
            volume: PathBuf::new(),
            filled_period: 31,
            collateral: U256::from(1000),
            repair: false,
        }
    }

    #[test]
    fn a_held_slot_shows_the_chains_figures_and_its_proof_counts() {
        let proofs = BTreeMap::from([
            (
                32,
                ProofOutcome::Submitted {
                    tx: B256::ZERO,
                    block: 260,
                },
            ),
            (
                33,
                ProofOutcome::Submitted {
                    tx: B256::ZERO,
                    block: 270,
                },
            ),
            (34, ProofOutcome::Failed("late".into())),
        ]);
        let payout = Payout {
            earned: U256::from(120),
            collateral: U256::from(800),
            missed: 2,
        };
        let v = slot_view(&slot(HostSlotState::Filled), &proofs, Some(payout));
        assert_eq!((v.proofs_submitted, v.proofs_failed), (2, 1));
        assert_eq!(
            (v.earned, v.collateral, v.missed_proofs),
            (U256::from(120), U256::from(800), 2)
        );
        assert_eq!(
            (v.state.as_str(), v.index, v.filled_period),
            ("Filled", SlotIndex(2), 31)
        );
    }

    #[test]
    fn slots_no_longer_held_show_nothing_at_stake() {
        let payout = Some(Payout {
            earned: U256::from(5),
            collateral: U256::from(5),
            missed: 1,
        });
        for state in [
            HostSlotState::Done,
            HostSlotState::Evicted,
            HostSlotState::Filling,
        ] {
            let v = slot_view(&slot(state), &BTreeMap::new(), payout);
            assert_eq!(
                (v.earned, v.collateral, v.missed_proofs),
                (U256::ZERO, U256::ZERO, 0),
                "{state:?}"
            );
        }
    }
}
