//! The host role: pick slots that match the offer, fetch them, store them crash-safely and fill
//! them on chain (`fill`, `repair`); prove them every period (`prove`: the scheduler and the
//! proof builder); withdraw pay and collateral when requests end and keep the gauges (`payout`);
//! re-check local data after a restart (`check`); repair damaged blocks from the other slots'
//! hosts (`heal`, writing them back through `journal`); the compact scheme's keys, Poseidon check
//! of a fill and batch proofs (`compact`).
//!
//! ```text
//!  events (StorageRequested, SlotFreed) / rescan every 30 s
//!      ─▶ Host::run: one fill task per request (owned, at most one slot per request)
//!           ─▶ decide (offer_mismatch, preference) ─▶ fill::fill ─▶ fillSlot
//!  head ─▶ prove::run: proof tasks (owned, `prove_parallelism` at once) ─▶ submitProof
//!  head ─▶ compact::run: compact slots due, in batches, one proof at a time ─▶ submitCompactProof
//!  payout::gauges, check::verify_local          HostHandle (API): offer, status, withdraw
//!  scrub::run (paced re-read of every block) ┐
//!  check / prove / serve ─────────────────────┴▶ Damage::report ─▶ heal::run (one repair at a
//!                                                time) ─▶ journal (blocks in place) or a rebuild
//! ```
//!
//! **Who fills which slot.** Hosts do not race for the same slot: for each request every host
//! ranks the announced hosts (minus the renter) by `keccak(requestId ‖ host)`; the host at
//! position `p` tries slot `p mod slots` at once, and slot `(p + d) mod slots` only after
//! `d × fill_backoff`, checking the slot is still free before downloading. With as many hosts
//! as slots each gets its own; a host that is offline or not interested leaves its slot to the
//! next one after a short wait. The ranking is made again at every step, so hosts that saw the
//! request before each other's announcements stop racing after the first step. A host fills at
//! most one slot per request (slots of one request on one machine would fail together).
//!
//! The role runs whenever the node holds slots; with `host.enabled` off it takes no new slots
//! but keeps proving and withdrawing what it holds.

mod check;
mod compact;
mod fill;
mod heal;
mod journal;
mod payout;
mod prove;
mod repair;
mod scrub;

use std::{collections::HashSet, sync::Arc, time::Duration};

use alloy::primitives::{Address, U256, keccak256};
use hoard_api::{HostStatus, Offer};
use hoard_chain::{ChainError, MarketEvent, RequestState, SlotState};
use hoard_prover::{RequestId, SlotIndex};
use tokio::{
    sync::{Notify, broadcast::error::RecvError, watch},
    task::JoinSet,
};
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

pub use self::compact::CompactKeyError;
pub(crate) use self::compact::{COMPACT_SCHEME, Prover as CompactProver, start as start_compact};
pub(crate) use self::fill::FillError;
pub(crate) use self::heal::Damage;
use crate::{
    ctx::Ctx,
    local_slots::LocalSlots,
    store::{HostSlotState, RequestRecord, StoreError},
};

/// What every task of the host role shares.
#[derive(Debug)]
struct Host {
    ctx: Arc<Ctx>,
    slots: LocalSlots,
    /// The offer (config, replaced at run time by `hoard host offer`, kept in the store).
    offer: watch::Sender<Offer>,
    /// Told when the host's slots, collateral or earnings changed (`payout::gauges` refreshes).
    gauges_stale: Notify,
    /// The compact scheme's prover; `None` when the deployment has no compact verifiers.
    compact: Option<Arc<compact::Prover>>,
    /// Damage found in hosted slots and not yet repaired (shared with serving).
    damage: Arc<Damage>,
    /// Where the scrub is (`hoard host status`).
    scrub: watch::Sender<scrub::ScrubView>,
    /// Told when a slot is filled (an idle scrub starts).
    scrub_wake: Notify,
}

/// Reaches the host role from the API. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct HostHandle {
    host: Arc<Host>,
}

impl HostHandle {
    /// Replaces the offer and keeps it across restarts.
    pub(crate) fn set_offer(&self, offer: Offer) -> Result<(), StoreError> {
        self.host.ctx.store.set_offer(&offer)?;
        self.host.offer.send_replace(offer);
        Ok(())
    }

    /// Slots held, proofs, collateral at risk and earnings.
    pub(crate) async fn status(&self) -> Result<HostStatus, HostError> {
        payout::status(&self.host).await
    }

    /// Withdraws pay and collateral of every slot whose request has ended.
    pub(crate) async fn withdraw(&self) {
        payout::withdraw_ended(&self.host).await;
    }

    /// Where damage found outside the role (serving) is reported.
    pub(crate) fn damage(&self) -> Arc<Damage> {
        Arc::clone(&self.host.damage)
    }
}

/// Why a host call failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HostError {
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Starts the host role's tasks in `tasks`; returns its handle.
pub(crate) fn spawn(
    ctx: Arc<Ctx>,
    slots: LocalSlots,
    tasks: &TaskTracker,
    compact: Option<Arc<CompactProver>>,
) -> Result<HostHandle, StoreError> {
    let offer = ctx
        .store
        .offer()?
        .unwrap_or_else(|| ctx.config.host.offer.clone());
    let host = Arc::new(Host {
        ctx,
        slots,
        offer: watch::channel(offer).0,
        gauges_stale: Notify::new(),
        compact,
        damage: Arc::default(),
        scrub: watch::channel(scrub::ScrubView::default()).0,
        scrub_wake: Notify::new(),
    });
    let span = |task| tracing::info_span!("host", task);
    tasks.spawn(Arc::clone(&host).run().instrument(span("fill")));
    tasks.spawn(prove::run(Arc::clone(&host)).instrument(span("prove")));
    tasks.spawn(compact::run(Arc::clone(&host)).instrument(span("compact")));
    tasks.spawn(payout::gauges(Arc::clone(&host)).instrument(span("gauges")));
    tasks.spawn(check::verify_local(Arc::clone(&host)).instrument(span("check")));
    if host.ctx.config.host.self_repair {
        tasks.spawn(heal::run(Arc::clone(&host)).instrument(span("heal")));
    }
    tasks.spawn(scrub::run(Arc::clone(&host)).instrument(span("scrub")));
    Ok(HostHandle { host })
}

impl Host {
    /// The role's main loop: considers new and freed requests, settles interrupted fills,
    /// withdraws what ended. Each request it considers gets one fill task, owned here.
    async fn run(self: Arc<Self>) {
        let ctx = &self.ctx;
        let mut events = ctx.events.subscribe();
        let mut rescan = tokio::time::interval(Duration::from_secs(30));
        // Requests a fill task is working on, and those tasks.
        let mut considering: HashSet<RequestId> = HashSet::new();
        let mut fills: JoinSet<RequestId> = JoinSet::new();
        loop {
            let mut consider = Vec::new();
            tokio::select! {
                _ = ctx.cancel.cancelled() => break,
                Some(done) = fills.join_next() => {
                    if let Ok(request) = done {
                        considering.remove(&request);
                    }
                }
                _ = rescan.tick() => {
                    fill::settle_filling(&self, &considering).await;
                    if let Ok(requests) = ctx.store.requests() {
                        consider.extend(requests.into_iter().map(|r| r.id));
                    }
                    payout::withdraw_ended(&self).await;
                }
                e = events.recv() => match e {
                    Ok(MarketEvent::StorageRequested { request_id, .. })
                    | Ok(MarketEvent::SlotFreed { request_id, .. }) => consider.push(request_id),
                    Ok(_) => {}
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "host role fell behind the event stream; rescanning");
                        rescan.reset_immediately();
                    }
                    Err(RecvError::Closed) => break,
                }
            }
            if !ctx.config.host.enabled {
                continue;
            }
            for request in consider {
                if considering.insert(request) {
                    let host = Arc::clone(&self);
                    let span = tracing::info_span!("request", id = %request.short());
                    fills.spawn(
                        async move {
                            if let Err(e) = host.try_fill(request).await {
                                tracing::warn!(err = %e, "could not fill a slot");
                            }
                            request
                        }
                        .instrument(span),
                    );
                }
            }
        }
        // Stopping: fills notice the cancellation at their next step; wait for them, so the
        // store's records of fills in flight are written before the node closes it.
        while fills.join_next().await.is_some() {}
    }

    /// Fills one slot of `request` if the offer matches, trying the slots in this host's order.
    async fn try_fill(&self, request: RequestId) -> Result<(), FillError> {
        let ctx = &self.ctx;
        let Some(r) = ctx.store.request(&request)? else {
            return Ok(());
        };
        if r.renter == ctx.address() {
            return Ok(());
        }
        let mine = ctx.store.host_slots()?;
        if mine.iter().any(|s| {
            s.request_id == request
                && s.state != HostSlotState::Done
                && s.state != HostSlotState::Evicted
        }) {
            return Ok(());
        }
        let state = ctx.chain.request_state(request).await?;
        if !matches!(state, RequestState::New | RequestState::Started) {
            return Ok(());
        }
        let used: u64 = mine
            .iter()
            .filter(|s| matches!(s.state, HostSlotState::Filled | HostSlotState::Filling))
            .filter_map(|s| ctx.store.request(&s.request_id).ok().flatten())
            .map(|r| r.slot_size)
            .sum();
        let offer = self.offer.borrow().clone();
        if let Some(why) = offer_mismatch(&offer, &r, used, ctx.store.free_bytes()) {
            tracing::info!(%why, "passing on a request");
            return Ok(());
        }
        let backoff = Duration::from_secs(ctx.config.host.fill_backoff_secs);
        for d in 0..usize::from(r.slots) {
            if d > 0 {
                tokio::select! {
                    _ = ctx.cancel.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(backoff) => {}
                }
            }
            // Ranked again at every step, not once: hosts that see a request before they know
            // each other (all started after it was posted) each rank themselves first and would
            // race for the same slot at every step, each race a wasted download and a reverted
            // fill. By the next step their announcements are in, and the order is the agreed one.
            let hosts: Vec<Address> = ctx
                .store
                .hosts()
                .unwrap_or_default()
                .into_iter()
                .map(|(a, _)| a)
                .collect();
            let Some(&index) = preference(ctx.address(), &hosts, &r).get(d) else {
                break;
            };
            let slot_id = hoard_prover::slot_id(&request, index);
            let st = ctx.chain.slot_state(slot_id).await?;
            if !matches!(st, SlotState::Free | SlotState::Repair) {
                continue;
            }
            // A stopping node drops a fill wherever it is: what is on disk and on chain is
            // settled at the next start (fill::settle_filling), as after a crash.
            let filled = tokio::select! {
                _ = ctx.cancel.cancelled() => return Ok(()),
                r = fill::fill(self, &r, index, st == SlotState::Repair) => r,
            };
            match filled {
                Ok(()) => return Ok(()),
                Err(e) => {
                    tracing::warn!(slot = index.0, err = %e, "fill failed; trying the next slot");
                }
            }
        }
        Ok(())
    }
}

/// Why this host passes on a request (logged, so operators see why they get no work).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Mismatch {
    /// The price is below the offer's minimum.
    #[error("price {price} below the offer's minimum {min}")]
    Price {
        /// The request's price per byte per second.
        price: U256,
        /// The offer's minimum.
        min: U256,
    },
    /// The collateral of one slot is above the offer's maximum.
    #[error("collateral {collateral} above the offer's maximum {max}")]
    Collateral {
        /// One slot's collateral.
        collateral: U256,
        /// The offer's maximum.
        max: U256,
    },
    /// The slot does not fit in the capacity left.
    #[error("slot of {slot} bytes does not fit (capacity {capacity}, used {used})")]
    Capacity {
        /// The slot's size.
        slot: u64,
        /// The offer's capacity.
        capacity: u64,
        /// Bytes of slots held or being filled.
        used: u64,
    },
    /// Less free disk than twice the slot (the download and the slot's folder).
    #[error("not enough free disk space ({free} bytes free, a {slot}-byte slot needs twice that)")]
    Disk {
        /// The slot's size.
        slot: u64,
        /// Free bytes over the volumes.
        free: u64,
    },
}

/// Whether `r` fits `offer` for a host that holds `used` bytes of slots and has `free` bytes of
/// disk; `None` if it does.
pub(crate) fn offer_mismatch(
    offer: &Offer,
    r: &RequestRecord,
    used: u64,
    free: u64,
) -> Option<Mismatch> {
    if r.price_per_byte_per_second < offer.min_price_per_byte_per_second {
        return Some(Mismatch::Price {
            price: r.price_per_byte_per_second,
            min: offer.min_price_per_byte_per_second,
        });
    }
    let collateral = r
        .collateral_per_byte
        .saturating_mul(U256::from(r.slot_size));
    if collateral > offer.max_collateral_per_slot {
        return Some(Mismatch::Collateral {
            collateral,
            max: offer.max_collateral_per_slot,
        });
    }
    if used.saturating_add(r.slot_size) > offer.capacity_bytes {
        return Some(Mismatch::Capacity {
            slot: r.slot_size,
            capacity: offer.capacity_bytes,
            used,
        });
    }
    if free < r.slot_size.saturating_mul(2) {
        return Some(Mismatch::Disk {
            slot: r.slot_size,
            free,
        });
    }
    None
}

/// Host `me`'s order of slots for request `r`, given the announced `hosts` (see the module doc).
pub(crate) fn preference(me: Address, hosts: &[Address], r: &RequestRecord) -> Vec<SlotIndex> {
    let mut ranked: Vec<Address> = hosts.iter().copied().filter(|a| *a != r.renter).collect();
    if !ranked.contains(&me) {
        ranked.push(me);
    }
    ranked.sort_by_key(|h| keccak256([r.id.as_bytes().as_slice(), h.as_slice()].concat()));
    ranked.dedup();
    let p = ranked.iter().position(|h| *h == me).unwrap_or(0);
    (0..r.slots)
        .map(|d| SlotIndex(((p + usize::from(d)) % usize::from(r.slots)) as u16))
        .collect()
}

#[cfg(test)]
mod tests {
    use hoard_prover::{DatasetId, Hash};

    use super::*;

    fn request(slots: u16) -> RequestRecord {
        RequestRecord {
            id: RequestId([1; 32]),
            renter: Address::repeat_byte(0xee),
            manifest_id: DatasetId([2; 32]),
            dataset_root: Hash([3; 32]),
            slots,
            max_slot_loss: 2,
            slot_size: 1 << 20,
            cell_count: 4096,
            samples: 16,
            proof_probability: 1,
            price_per_byte_per_second: U256::from(10),
            collateral_per_byte: U256::from(100),
            expires_at: 0,
            ends_at: 0,
        }
    }

    fn offer() -> Offer {
        Offer {
            capacity_bytes: 4 << 20,
            min_price_per_byte_per_second: U256::from(10),
            max_collateral_per_slot: U256::from(100u64 << 20),
        }
    }

    #[test]
    fn offers_take_requests_up_to_each_limit_and_say_which_one_fails() {
        let r = request(6);
        let free = 1 << 30;
        assert_eq!(offer_mismatch(&offer(), &r, 0, free), None);
        // Exactly at each limit is still a match.
        assert_eq!(offer_mismatch(&offer(), &r, 3 << 20, 2 << 20), None);

        let cheap = RequestRecord {
            price_per_byte_per_second: U256::from(9),
            ..r.clone()
        };
        assert!(matches!(
            offer_mismatch(&offer(), &cheap, 0, free),
            Some(Mismatch::Price { .. })
        ));
        let risky = RequestRecord {
            collateral_per_byte: U256::from(101),
            ..r.clone()
        };
        assert!(matches!(
            offer_mismatch(&offer(), &risky, 0, free),
            Some(Mismatch::Collateral { .. })
        ));
        assert_eq!(
            offer_mismatch(&offer(), &r, (3 << 20) + 1, free),
            Some(Mismatch::Capacity {
                slot: 1 << 20,
                capacity: 4 << 20,
                used: (3 << 20) + 1
            })
        );
        assert!(matches!(
            offer_mismatch(&offer(), &r, 0, (2 << 20) - 1),
            Some(Mismatch::Disk { .. })
        ));
        // Collateral that would overflow is "too much", not a panic.
        let huge = RequestRecord {
            collateral_per_byte: U256::MAX,
            ..r
        };
        assert!(matches!(
            offer_mismatch(&offer(), &huge, 0, free),
            Some(Mismatch::Collateral { .. })
        ));
    }

    #[test]
    fn hosts_agree_on_one_slot_each_and_the_renter_takes_none() {
        let r = request(6);
        let hosts: Vec<Address> = (1..=6).map(Address::repeat_byte).collect();
        let mut everyone = hosts.clone();
        everyone.push(r.renter);
        let firsts: HashSet<SlotIndex> = hosts
            .iter()
            .map(|h| preference(*h, &everyone, &r)[0])
            .collect();
        assert_eq!(firsts.len(), 6, "six hosts, six different first slots");
        for h in &hosts {
            let order = preference(*h, &everyone, &r);
            // Every slot once, each step the next slot round the ring.
            let set: HashSet<_> = order.iter().collect();
            assert_eq!(set.len(), 6);
            for w in order.windows(2) {
                assert_eq!(w[1].0, (w[0].0 + 1) % 6);
            }
        }
        // A host that has not seen its own announcement yet ranks itself as if it had.
        let me = Address::repeat_byte(3);
        let without_me: Vec<Address> = everyone.iter().copied().filter(|a| *a != me).collect();
        assert_eq!(
            preference(me, &without_me, &r),
            preference(me, &everyone, &r)
        );
    }

    #[test]
    fn the_order_depends_on_the_request() {
        let hosts: Vec<Address> = (1..=6).map(Address::repeat_byte).collect();
        let a = request(6);
        let b = RequestRecord {
            id: RequestId([9; 32]),
            ..a.clone()
        };
        let firsts = |r: &RequestRecord| -> Vec<SlotIndex> {
            hosts.iter().map(|h| preference(*h, &hosts, r)[0]).collect()
        };
        assert_ne!(firsts(&a), firsts(&b), "hosts rotate over requests");
    }
}
