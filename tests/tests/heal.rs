//! A host that heals itself, end to end on a real anvil with real nodes: bytes flipped in three
//! blocks of a hosted slot are found by the scrub and rebuilt from the other hosts within one
//! period, with no missed proof; a slot file deleted under a host is rebuilt whole while the
//! proof that needs it waits, and the proof is still sent in its period.

use std::{os::unix::fs::FileExt as _, path::PathBuf, time::Duration};

use hoard_api::SlotStatus;
use hoard_chain::ProofStatus;
use hoard_prover::{BLOCK_SIZE, SlotId};
use hoard_tests::{Network, Stored, TestNode, eventually, init_logs, params, put, stop_all};

/// Blocks per period (1 s blocks).
const PERIOD: u64 = 8;

async fn slot0(renter: &TestNode, s: &Stored) -> anyhow::Result<SlotStatus> {
    let status = renter.api().dataset_status(s.dataset).await?;
    status
        .into_iter()
        .next()
        .and_then(|r| r.slots.into_iter().next())
        .ok_or_else(|| anyhow::anyhow!("no slot 0"))
}

fn slot_file(host: &TestNode, slot: &SlotId) -> PathBuf {
    host.config
        .data_dir
        .join("data/slots")
        .join(slot.to_string().trim_start_matches("0x"))
        .join("slot-000.bin")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_flipped_bytes_are_repaired_within_a_period_with_no_missed_proof()
-> anyhow::Result<()> {
    init_logs();
    let mut net = Network::start(PERIOD).await?;
    let chain = net.observer().await?;
    // A scrub pass every few seconds (the slots are 12 blocks).
    let (mut renter, mut hosts) = net
        .renter_and_hosts_with(6, |c| c.host.scrub.interval_secs = 4)
        .await?;
    let stored = put(&renter, net.dir.path(), 3 << 20, &params(300, 60), true).await?;
    let slot = slot0(&renter, &stored).await?;
    let host = hosts
        .iter()
        .find(|h| Some(h.address()) == slot.host)
        .expect("slot 0's host is one of ours");
    let file = slot_file(host, &slot.slot_id);
    let original = std::fs::read(&file)?;
    anyhow::ensure!(original.len() >= 10 * BLOCK_SIZE, "slot too small");

    // One flipped byte in each of blocks 1, 5 and 9.
    let f = std::fs::OpenOptions::new().write(true).open(&file)?;
    for b in [1usize, 5, 9] {
        let at = b * BLOCK_SIZE + 777;
        f.write_all_at(&[original[at] ^ 0x20], at as u64)?;
    }
    drop(f);
    let flipped_at = chain.head_block().await?;
    let proofs_before = host.metric("hoard_proofs_submitted_total").await?;

    eventually(
        Duration::from_secs(60),
        "the three blocks to be repaired",
        || async {
            Ok((host.metric("hoard_self_repair_blocks_total").await? >= 3.0).then_some(()))
        },
    )
    .await?;
    let repaired_at = chain.head_block().await?;
    assert!(
        repaired_at - flipped_at <= PERIOD,
        "repaired {} blocks after the flips, more than a period",
        repaired_at - flipped_at
    );
    assert!(
        std::fs::read(&file)? == original,
        "the slot's bytes are not the original ones"
    );
    assert_eq!(host.metric("hoard_self_repair_blocks_total").await?, 3.0);
    assert_eq!(host.metric("hoard_scrub_corrupt_blocks_total").await?, 3.0);
    assert_eq!(
        host.metric("hoard_self_repair_failures_total{reason=\"sources\"}")
            .await?,
        0.0
    );
    let status = host.api().host_status().await?;
    assert_eq!(status.health.repaired_blocks, 3);
    assert!(
        status.health.damaged.is_empty(),
        "{:?}",
        status.health.damaged
    );

    // Two more whole periods: every required proof of the slot is on chain, none marked missing.
    let first = net.deployment.periods().period_of(flipped_at);
    let last = first + 2;
    eventually(
        Duration::from_secs(4 * PERIOD),
        "two more periods",
        || async {
            let head = chain.head_block().await?;
            Ok((net.deployment.periods().period_of(head) > last).then_some(()))
        },
    )
    .await?;
    for period in first..=last {
        let filled = chain.get_slot(slot.slot_id).await?.filled_period;
        if period > filled {
            assert_eq!(
                chain.proof_status(slot.slot_id, period).await?,
                ProofStatus::Submitted,
                "period {period}"
            );
        }
    }
    assert_eq!(chain.get_slot(slot.slot_id).await?.missed_proofs, 0);
    assert!(host.metric("hoard_proofs_submitted_total").await? > proofs_before);
    renter.stop().await;
    stop_all(&mut hosts).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deleted_slot_is_rebuilt_whole_while_its_due_proof_waits() -> anyhow::Result<()> {
    init_logs();
    let mut net = Network::start(PERIOD).await?;
    let chain = net.observer().await?;
    // No scrub: the proof scheduler is the one to find out.
    let (mut renter, mut hosts) = net
        .renter_and_hosts_with(6, |c| c.host.scrub.interval_secs = 0)
        .await?;
    let stored = put(&renter, net.dir.path(), 3 << 20, &params(300, 60), true).await?;
    let slot = slot0(&renter, &stored).await?;
    let host = hosts
        .iter()
        .find(|h| Some(h.address()) == slot.host)
        .expect("slot 0's host is one of ours");
    let file = slot_file(host, &slot.slot_id);
    let original = std::fs::read(&file)?;
    std::fs::remove_file(&file)?;
    let deleted_at = chain.head_block().await?;

    eventually(
        Duration::from_secs(60),
        "the slot to be rebuilt",
        || async { Ok((host.metric("hoard_self_repair_slots_total").await? >= 1.0).then_some(())) },
    )
    .await?;
    assert!(
        std::fs::read(&file)? == original,
        "the rebuilt slot differs"
    );
    assert!(
        host.metric("hoard_proofs_failed_total{reason=\"local_verify\"}")
            .await?
            >= 1.0,
        "the proof scheduler found the damage"
    );

    // The proof of the period it was found in went out after the rebuild, and none is missed.
    let periods = net.deployment.periods();
    let first = periods.period_of(deleted_at);
    eventually(
        Duration::from_secs(4 * PERIOD),
        "two more periods",
        || async { Ok((periods.period_of(chain.head_block().await?) > first + 2).then_some(())) },
    )
    .await?;
    for period in first + 1..=first + 2 {
        assert_eq!(
            chain.proof_status(slot.slot_id, period).await?,
            ProofStatus::Submitted,
            "period {period}"
        );
    }
    assert_eq!(chain.get_slot(slot.slot_id).await?.missed_proofs, 0);
    renter.stop().await;
    stop_all(&mut hosts).await;
    Ok(())
}
