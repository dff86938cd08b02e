//! The compact scheme end to end on a real anvil with real nodes: two compact requests (1 + 1
//! slots) stored on two hosts (each host holds one slot of each), every host proving both its
//! slots with one Groth16 proof per period; a flipped byte in a compact slot is repaired with no
//! proof missed; a host killed is marked missing and evicted from both; a spare host repairs both
//! slots with a Poseidon-checked rebuild and proves them in one proof; the datasets come back
//! byte for byte. The 4-slot circuit with 5 samples and two-block slots keep the proving small
//! (its keys are generated once, in `compact_keys_dir`); the periods are long because every host
//! of the test proves on the same two cores, often shared with other builds.

use std::{collections::BTreeMap, os::unix::fs::FileExt as _, time::Duration};

use alloy::primitives::{Address, B256};
use hoard_api::{PutRequest, Scheme, SlotStatus};
use hoard_chain::{
    Chain, EventFollower, MarketEvent, SlotState, devnet::DeploySettings, state::ProofStatus,
};
use hoard_tests::{Network, Stored, TestNode, eventually, init_logs, params, put, stop_all};

/// Blocks per period (1 s blocks): room for the hosts' 4-slot proofs, all on two busy cores.
const PERIOD: u64 = 60;

/// 1 + 1 compact slots of two blocks, a proof every period.
fn compact_params() -> PutRequest {
    PutRequest {
        data_slots: 1,
        parity_slots: 1,
        scheme: Scheme::Compact,
        ..params(900, 120)
    }
}

/// Every Marketplace event so far.
async fn events(chain: &Chain) -> anyhow::Result<Vec<MarketEvent>> {
    let mut follower = EventFollower::new(0);
    let mut cursor = None;
    let mut out = Vec::new();
    loop {
        let poll = follower.poll(chain, cursor).await?;
        out.extend(poll.events.into_iter().map(|e| e.event));
        cursor = Some(poll.cursor);
        if poll.caught_up {
            return Ok(out);
        }
    }
}

/// `(host, period) → slots proven` over every `CompactProofSubmitted`, and how many events each
/// `(host, period)` had.
async fn compact_proofs(
    chain: &Chain,
) -> anyhow::Result<BTreeMap<(Address, u64), (usize, Vec<B256>)>> {
    let mut out: BTreeMap<(Address, u64), (usize, Vec<B256>)> = BTreeMap::new();
    for e in events(chain).await? {
        if let MarketEvent::CompactProofSubmitted {
            host,
            period,
            slot_ids,
        } = e
        {
            let entry = out.entry((host, period)).or_default();
            entry.0 += 1;
            entry.1.extend(slot_ids);
        }
    }
    Ok(out)
}

async fn slots(renter: &TestNode, s: &Stored) -> anyhow::Result<Vec<SlotStatus>> {
    Ok(renter
        .api()
        .dataset_status(s.dataset)
        .await?
        .into_iter()
        .next()
        .map(|r| r.slots)
        .unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compact_slots_are_proven_in_one_batch_per_host_and_a_dead_host_is_replaced()
-> anyhow::Result<()> {
    init_logs();
    let mut net = Network::start_with(DeploySettings {
        period_length: PERIOD,
        grace_blocks: PERIOD,
        // One missed proof evicts: the test waits for one mark, not three.
        max_missed: 1,
        ..DeploySettings::default()
    })
    .await?;
    let chain = net.observer().await?;
    let (mut renter, mut hosts) = net.renter_and_hosts(2).await?;
    let a = put(&renter, net.dir.path(), 100 << 10, &compact_params(), true).await?;
    let b = put(&renter, net.dir.path(), 90 << 10, &compact_params(), true).await?;
    for s in [&a, &b] {
        let r = chain.get_request(s.request).await?;
        assert_eq!(r.params.scheme, 1, "a compact request");
        assert_eq!(r.params.samples, 5, "the circuits' samples");
        assert_ne!(r.params.compactRoot, B256::ZERO);
    }

    // Each host holds one slot of each request; its proof of a period covers both.
    let mut held: BTreeMap<Address, Vec<B256>> = BTreeMap::new();
    for s in [&a, &b] {
        for slot in slots(&renter, s).await? {
            let host = slot.host.expect("filled");
            let info = chain.get_slot(slot.slot_id).await?;
            assert_ne!(info.commitment.0, [0; 32], "the commitment bound at fill");
            held.entry(host)
                .or_default()
                .push(B256::from(slot.slot_id.0));
        }
    }
    assert_eq!(held.len(), 2);
    assert!(held.values().all(|s| s.len() == 2), "{held:?}");
    // The last fill's period is the first without a proof due: the next one is proven.
    let filled = chain.current_period().await?;
    eventually(
        Duration::from_secs(2 * PERIOD + 30),
        "a period proven by every host",
        || async {
            let proofs = compact_proofs(&chain).await?;
            let full = (filled + 1..=filled + 1).all(|p| {
                held.keys().all(|h| {
                    proofs
                        .get(&(*h, p))
                        .is_some_and(|(_, s)| s.len() == held[h].len())
                })
            });
            Ok(full.then_some(proofs))
        },
    )
    .await
    .map(|proofs| {
        for ((host, period), (events, ids)) in &proofs {
            assert_eq!(*events, 1, "one proof of {host} in period {period}");
            let mut ids = ids.clone();
            ids.sort();
            let mut mine = held[host].clone();
            mine.sort();
            assert_eq!(
                ids, mine,
                "{host}'s proof of period {period} covers both its slots"
            );
        }
    })?;
    for h in &hosts {
        assert_eq!(
            h.metric("hoard_proofs_failed_total{reason=\"revert\"}")
                .await?,
            0.0
        );
        // The chain shows the proof before the host has read its receipt.
        let proofs = eventually(
            Duration::from_secs(30),
            "the host to count its proof",
            || async {
                let n = h.metric("hoard_compact_proofs_submitted_total").await?;
                Ok((n >= 1.0).then_some(n))
            },
        )
        .await?;
        let slots = h.metric("hoard_compact_batch_slots_sum").await?;
        assert_eq!(slots, 2.0 * proofs, "two slots per proof");
    }

    // A flipped byte in a compact slot of the host that stays: its proofs go on, the block is
    // rebuilt from the other slot (by the proof's own witness check or the scrub, whichever
    // reads it first) and no proof of that slot is marked missing.
    let keeper = &hosts[0];
    let hurt = slots(&renter, &a)
        .await?
        .into_iter()
        .find(|s| s.host == Some(keeper.address()))
        .expect("the keeper holds a slot of a");
    let file = keeper
        .config
        .data_dir
        .join("data/slots")
        .join(hurt.slot_id.to_string().trim_start_matches("0x"))
        .join(format!("slot-{:03}.bin", hurt.index.0));
    let original = std::fs::read(&file)?;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)?
        .write_all_at(&[original[777] ^ 0x20], 777)?;
    let flipped = chain.current_period().await?;
    eventually(
        Duration::from_secs(2 * PERIOD + 30),
        "the keeper to repair the block and prove the next period",
        || async {
            let proofs = compact_proofs(&chain).await?;
            let proven = proofs
                .get(&(keeper.address(), flipped + 1))
                .is_some_and(|(_, ids)| ids.len() == 2);
            let repaired = keeper.metric("hoard_self_repair_blocks_total").await? >= 1.0;
            Ok((proven && repaired).then_some(()))
        },
    )
    .await?;
    assert!(
        std::fs::read(&file)? == original,
        "the repaired slot holds the original bytes"
    );
    for p in flipped..=flipped + 1 {
        assert_ne!(
            chain.proof_status(hurt.slot_id, p).await?,
            ProofStatus::Missed,
            "period {p}"
        );
    }

    // A spare host joins (it sees only the freed slots), then one host dies.
    let mut spare = net.node("spare", true).await?;
    let victim = hosts.pop().expect("two hosts");
    let victim_addr = victim.address();
    let victim_slots = held[&victim_addr].clone();
    let commitments = {
        let mut c = Vec::new();
        for id in &victim_slots {
            c.push(chain.get_slot(hoard_prover::SlotId(id.0)).await?.commitment);
        }
        c
    };
    let mut victim = victim;
    victim.stop().await;

    // Marked missing once (the validator is the renter's node), evicted, repaired by the spare
    // from the other slot of each request (k = 1), checked against the same commitment, and
    // proven by it.
    eventually(
        Duration::from_secs(3 * PERIOD + 60),
        "both of the dead host's slots to be repaired",
        || async {
            for id in &victim_slots {
                let s = chain.get_slot(hoard_prover::SlotId(id.0)).await?;
                if !(s.state == SlotState::Filled && s.host == spare.address()) {
                    return Ok(None);
                }
            }
            Ok(Some(()))
        },
    )
    .await?;
    for (id, c) in victim_slots.iter().zip(&commitments) {
        let info = chain.get_slot(hoard_prover::SlotId(id.0)).await?;
        assert_eq!(info.commitment, *c, "the repair bound the same commitment");
        let r = chain.get_request(info.request_id).await?;
        assert_eq!((r.evictions, r.repairs, r.missedProofs), (1, 1, 1));
    }
    let repaired = chain.current_period().await?;
    eventually(
        Duration::from_secs(2 * PERIOD + 30),
        "the spare to prove both repaired slots in one proof",
        || async {
            let proofs = compact_proofs(&chain).await?;
            Ok(proofs
                .iter()
                .any(|((h, p), (n, ids))| {
                    *h == spare.address()
                        && *p > repaired
                        && *n == 1
                        && victim_slots.iter().all(|v| ids.contains(v))
                })
                .then_some(()))
        },
    )
    .await?;
    // The slots' proofs of that period are on chain as compact ones.
    for id in &victim_slots {
        let status = chain
            .proof_status(
                hoard_prover::SlotId(id.0),
                chain.current_period().await? - 1,
            )
            .await?;
        assert_ne!(status, ProofStatus::Missed);
    }

    // Both datasets come back whole from the hosts alone.
    renter.stop().await;
    let mut reader = net.node("reader", false).await?;
    for (i, stored) in [&a, &b].into_iter().enumerate() {
        let out = net.dir.path().join(format!("fetched-{i}.bin"));
        reader.download(stored.dataset, &out).await?;
        assert!(
            std::fs::read(&out)? == std::fs::read(&stored.input)?,
            "fetched bytes of dataset {i} differ from the input"
        );
    }
    reader.stop().await;
    spare.stop().await;
    stop_all(&mut hosts).await;
    Ok(())
}
