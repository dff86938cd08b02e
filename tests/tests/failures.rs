//! Failure scenarios end to end, each on its own anvil with real nodes: a dead host is slashed,
//! evicted and replaced by a repair; a slot corrupted on disk on a host with self-repair off is
//! noticed, costs its host on chain, and downloads route around it (self-repair:
//! `tests/tests/heal.rs`); losing more than `m` hosts fails the request and the
//! money splits exactly as the contract's formulas say; an unfilled request is refunded; a host
//! that restarts within a period misses nothing; nodes ride out an RPC outage and keep proving;
//! hosts wait for a renter that went offline before they could fetch, and fill when it is back.
//! (A host killed with SIGKILL mid-download or mid-proof: `node/hoard/tests/crash.rs`.)

use std::time::Duration;

use alloy::{
    primitives::{Address, U256},
    providers::Provider,
};
use hoard_api::SlotStatus;
use hoard_chain::{Chain, ProofStatus, SlotState};
use hoard_prover::SlotIndex;
use hoard_tests::{
    Network, RpcProxy, Stored, TestNode, eventually, fetch_and_compare, init_logs, params, put,
    stop_all,
};

/// Blocks per period (1 s blocks).
const PERIOD: u64 = 8;

/// Token units of one slot's collateral, slash and reporter reward under `net`'s deployment.
struct Money {
    price: U256,
    collateral: U256,
    slash: U256,
    reward: U256,
}

async fn money(net: &Network, chain: &Chain, s: &Stored) -> anyhow::Result<Money> {
    let info = chain.get_request(s.request).await?;
    let size = U256::from(info.params.slotSize);
    let collateral = info.params.collateralPerByte * size;
    let slash = collateral * U256::from(net.deployment.slash_bps) / U256::from(10_000);
    Ok(Money {
        price: info.params.pricePerBytePerSecond * size,
        collateral,
        slash,
        reward: slash * U256::from(net.deployment.reporter_reward_bps) / U256::from(10_000),
    })
}

async fn slots(renter: &TestNode, s: &Stored) -> anyhow::Result<Vec<SlotStatus>> {
    let status = renter.api().dataset_status(s.dataset).await?;
    Ok(status
        .into_iter()
        .next()
        .map(|r| r.slots)
        .unwrap_or_default())
}

fn host_of(hosts: &mut [TestNode], account: Option<Address>) -> &mut TestNode {
    hosts
        .iter_mut()
        .find(|h| Some(h.address()) == account)
        .expect("the slot's host is one of ours")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_host_is_slashed_evicted_and_its_slot_repaired() -> anyhow::Result<()> {
    init_logs();
    let mut net = Network::start(PERIOD).await?;
    let chain = net.observer().await?;
    // Seven hosts for six slots: one is left over to repair.
    let (mut renter, mut hosts) = net.renter_and_hosts(7).await?;
    let stored = put(&renter, net.dir.path(), 3 << 20, &params(300, 60), true).await?;
    let m = money(&net, &chain, &stored).await?;
    let victim_slot = slots(&renter, &stored).await?[1].clone();
    let victim = host_of(&mut hosts, victim_slot.host);
    let victim_addr = victim.address();
    victim.stop().await;

    // The validator (the renter's node) marks three missed proofs; the third evicts; the
    // spare host rebuilds the slot from four others and fills it.
    eventually(
        Duration::from_secs(240),
        "the slot to be repaired",
        || async {
            let r = chain.get_request(stored.request).await?;
            let s = chain.get_slot(victim_slot.slot_id).await?;
            Ok((r.repairs == 1 && s.state == SlotState::Filled).then_some(()))
        },
    )
    .await?;
    let r = chain.get_request(stored.request).await?;
    assert_eq!((r.evictions, r.missedProofs), (1, 3));
    let repaired = chain.get_slot(victim_slot.slot_id).await?;
    assert_ne!(repaired.host, victim_addr);
    assert_eq!(
        chain.reward_of(renter.address()).await?,
        m.reward * U256::from(3),
        "reporter reward"
    );
    assert_eq!(renter.metric("hoard_validator_marks_total").await?, 3.0);
    let label = stored.request.short();
    let series = format!("hoard_dataset_repairs_total{{dataset=\"{label}\"}}");
    eventually(
        Duration::from_secs(20),
        "the repair to be counted",
        || async { Ok((renter.metric(&series).await? == 1.0).then_some(())) },
    )
    .await?;
    assert!(m.reward < m.slash, "reporting yourself must not pay");

    // The dataset is still whole: fetched from the hosts alone.
    renter.stop().await;
    fetch_and_compare(&mut net, &stored).await?;
    stop_all(&mut hosts).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_corrupted_slot_is_noticed_and_downloads_route_around_it() -> anyhow::Result<()> {
    init_logs();
    let mut net = Network::start(PERIOD).await?;
    let chain = net.observer().await?;
    // Self-repair and the scrub off: what happens to a host that cannot heal.
    let (mut renter, mut hosts) = net
        .renter_and_hosts_with(6, |c| {
            c.host.self_repair = false;
            c.host.scrub.interval_secs = 0;
        })
        .await?;
    let stored = put(&renter, net.dir.path(), 3 << 20, &params(300, 60), true).await?;
    let slot0 = slots(&renter, &stored).await?[0].clone();
    let bad = host_of(&mut hosts, slot0.host);

    // Overwrite every block of slot 0 on the host's disk (same size, wrong bytes).
    let file = bad
        .config
        .data_dir
        .join("data/slots")
        .join(hex_id(&slot0.slot_id))
        .join("slot-000.bin");
    let len = std::fs::metadata(&file)?.len() as usize;
    std::fs::write(&file, vec![0x5a; len])?;

    // The host finds out when it next proves, counts it, and the validator marks the miss.
    eventually(Duration::from_secs(60), "the host to notice", || async {
        Ok((bad.metric("hoard_integrity_failures_total").await? >= 1.0).then_some(()))
    })
    .await?;
    assert!(
        bad.metric("hoard_proofs_failed_total{reason=\"local_verify\"}")
            .await?
            >= 1.0
    );
    eventually(
        Duration::from_secs(60),
        "the missed proof to be marked",
        || async { Ok((chain.get_slot(slot0.slot_id).await?.missed_proofs >= 1).then_some(())) },
    )
    .await?;

    // The host checks each block before serving it and refuses the damaged ones, so a reader
    // gets no garbage for slot 0 (nothing to reject) and rebuilds from the parity slots.
    renter.stop().await;
    let mut reader = net.node("reader", false).await?;
    let out = net.dir.path().join("fetched.bin");
    let job = reader.download(stored.dataset, &out).await?;
    assert!(
        std::fs::read(&out)? == std::fs::read(&stored.input)?,
        "fetched bytes differ"
    );
    assert_eq!(reader.metric("hoard_blocks_rejected_total").await?, 0.0);
    assert!(
        job.result["decoded_stripes"].as_u64().unwrap_or(0) > 0,
        "{:?}",
        job.result
    );
    reader.stop().await;
    for h in &mut hosts {
        h.stop().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn losing_more_than_m_hosts_fails_the_request_and_splits_the_money_exactly()
-> anyhow::Result<()> {
    init_logs();
    let mut net = Network::start(PERIOD).await?;
    let chain = net.observer().await?;
    let (mut renter, mut hosts) = net.renter_and_hosts(6).await?;
    let renter_before = chain.token_balance(renter.address()).await?;
    let mut before = Vec::new();
    for h in &hosts {
        before.push(chain.token_balance(h.address()).await?);
    }
    let stored = put(&renter, net.dir.path(), 3 << 20, &params(600, 60), true).await?;
    let m = money(&net, &chain, &stored).await?;
    let all = slots(&renter, &stored).await?;
    // m = 2: losing three slots fails the request.
    let victims: Vec<Address> = all[..3].iter().filter_map(|s| s.host).collect();
    for v in &victims {
        host_of(&mut hosts, Some(*v)).stop().await;
    }
    hoard_tests::until_state(
        &chain,
        stored.request,
        hoard_chain::RequestState::Failed,
        Duration::from_secs(240),
    )
    .await?;
    let info = chain.get_request(stored.request).await?;
    let end = info.endedAt;
    let mut filled_at = Vec::new();
    for s in &all {
        filled_at.push(chain.get_slot(s.slot_id).await?.filled_at);
    }
    for h in hosts.iter().filter(|h| h.node.is_some()) {
        h.api().host_withdraw().await?;
    }
    renter.api().request_withdraw(&stored.request).await?;

    let marks = U256::from(info.missedProofs);
    let evictions = U256::from(info.evictions);
    assert_eq!((info.missedProofs, info.evictions), (9, 3));
    let mut served = U256::ZERO;
    for (i, s) in all.iter().enumerate() {
        let h = hosts
            .iter()
            .position(|h| Some(h.address()) == s.host)
            .expect("ours");
        let now = chain.token_balance(hosts[h].address()).await?;
        if victims.contains(&hosts[h].address()) {
            // Evicted: the whole collateral is gone and no pay.
            assert_eq!(now, before[h] - m.collateral, "evicted host of slot {i}");
        } else {
            // Honest: paid for the time served although the request failed; collateral back.
            let pay = m.price * U256::from(end - filled_at[i]);
            served += pay;
            assert_eq!(now, before[h] + pay, "honest host of slot {i}");
        }
    }
    let forfeited =
        marks * (m.slash - m.reward) + evictions * (m.collateral - U256::from(3) * m.slash);
    assert_eq!(
        chain.token_balance(renter.address()).await?,
        renter_before - served + forfeited,
        "renter refund"
    );
    assert_eq!(
        chain.reward_of(renter.address()).await?,
        marks * m.reward,
        "reporter"
    );
    renter.stop().await;
    stop_all(&mut hosts).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_that_never_fills_is_cancelled_and_refunded() -> anyhow::Result<()> {
    init_logs();
    let mut net = Network::start(PERIOD).await?;
    let chain = net.observer().await?;
    let mut renter = net.node("renter", false).await?;
    let before = chain.token_balance(renter.address()).await?;
    let stored = put(&renter, net.dir.path(), 1 << 20, &params(60, 10), false).await?;
    assert!(
        chain.token_balance(renter.address()).await? < before,
        "escrow taken"
    );
    hoard_tests::until_state(
        &chain,
        stored.request,
        hoard_chain::RequestState::Cancelled,
        Duration::from_secs(60),
    )
    .await?;
    renter.api().request_withdraw(&stored.request).await?;
    assert_eq!(chain.token_balance(renter.address()).await?, before);
    renter.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_host_restarting_within_a_period_misses_no_proof() -> anyhow::Result<()> {
    init_logs();
    let mut net = Network::start(PERIOD).await?;
    let chain = net.observer().await?;
    let (mut renter, mut hosts) = net.renter_and_hosts(6).await?;
    let stored = put(&renter, net.dir.path(), 2 << 20, &params(300, 60), true).await?;
    let slot = slots(&renter, &stored).await?[2].clone();
    let filled = chain.get_slot(slot.slot_id).await?.filled_period;
    let host = host_of(&mut hosts, slot.host);
    // Restart right after a period starts, so it is back well before the deadline.
    wait_period_start(&chain, filled + 1).await?;
    host.stop().await;
    let restarted = TestNode::start(host.config.clone(), host.key.clone()).await?;
    *host = restarted;
    let target = filled + 4;
    eventually(Duration::from_secs(60), "three more periods", || async {
        Ok((chain.current_period().await? > target).then_some(()))
    })
    .await?;
    for p in filled + 1..=target {
        assert_eq!(
            chain.proof_status(slot.slot_id, p).await?,
            ProofStatus::Submitted,
            "period {p}"
        );
    }
    assert_eq!(chain.get_slot(slot.slot_id).await?.missed_proofs, 0);
    renter.stop().await;
    stop_all(&mut hosts).await;
    Ok(())
}

async fn wait_period_start(chain: &Chain, period: u64) -> anyhow::Result<()> {
    eventually(Duration::from_secs(60), "the period to start", || async {
        Ok((chain.current_period().await? >= period).then_some(()))
    })
    .await
}

/// Lower-case hex without `0x`: how the store names a slot's folder.
fn hex_id(id: &impl std::fmt::Display) -> String {
    id.to_string().trim_start_matches("0x").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_recover_from_a_reorg_without_losing_state() -> anyhow::Result<()> {
    init_logs();
    let mut net = Network::start(PERIOD).await?;
    let chain = net.observer().await?;
    let (mut renter, mut hosts) = net.renter_and_hosts(6).await?;
    let stored = put(&renter, net.dir.path(), 2 << 20, &params(300, 60), true).await?;
    let all = slots(&renter, &stored).await?;
    let mut filled = 0;
    for s in &all {
        filled = filled.max(chain.get_slot(s.slot_id).await?.filled_period);
    }
    // Reorganise the last 3 blocks in the middle of a period that has proofs in it.
    wait_period_start(&chain, filled + 1).await?;
    eventually(Duration::from_secs(30), "proofs of the period", || async {
        let mut n = 0;
        for s in &all {
            if chain.proof_status(s.slot_id, filled + 1).await? == ProofStatus::Submitted {
                n += 1;
            }
        }
        Ok((n > 0).then_some(()))
    })
    .await?;
    // A few blocks into the period, reorganise every block after its first: the proofs mined
    // there are dropped, the block before the period (its seed) stays, and the dropped proofs
    // must be replayed. (A reorg that replaces the seed block changes the challenge itself;
    // see docs/architecture.md.)
    let start = (filled + 1) * PERIOD;
    let head = eventually(
        Duration::from_secs(30),
        "three blocks into the period",
        || async {
            let head = chain.head_block().await?;
            Ok((head >= start + 3).then_some(head))
        },
    )
    .await?;
    chain
        .provider()
        .raw_request::<_, ()>("anvil_reorg".into(), serde_json::json!([head - start, []]))
        .await?;
    // Every slot is proven in every period after the fill, the reorged one included: proofs
    // dropped by the reorg are noticed and sent again before the deadline.
    let target = filled + 3;
    eventually(Duration::from_secs(60), "two more periods", || async {
        Ok((chain.current_period().await? > target).then_some(()))
    })
    .await?;
    for s in &all {
        for p in filled + 1..=target {
            assert_eq!(
                chain.proof_status(s.slot_id, p).await?,
                ProofStatus::Submitted,
                "slot {} period {p}",
                s.index
            );
        }
    }
    // The nodes' view survived: the renter still reports every slot filled.
    assert!(
        slots(&renter, &stored)
            .await?
            .iter()
            .all(|s| s.state == "filled")
    );
    renter.stop().await;
    stop_all(&mut hosts).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_ride_out_an_rpc_outage_and_keep_proving() -> anyhow::Result<()> {
    init_logs();
    let mut net = Network::start(PERIOD).await?;
    let chain = net.observer().await?;
    // Every node reaches anvil through the proxy; the test's own view does not.
    net.rpc_proxy = Some(RpcProxy::start(&net.chain.rpc_url()).await?);
    let (mut renter, mut hosts) = net.renter_and_hosts(6).await?;
    let stored = put(&renter, net.dir.path(), 2 << 20, &params(300, 60), true).await?;
    let all = slots(&renter, &stored).await?;
    let mut filled = 0;
    for s in &all {
        filled = filled.max(chain.get_slot(s.slot_id).await?.filled_period);
    }

    // Cut three blocks before a period starts and restore five blocks later (shorter than a
    // period): that period's proofs can only be made after the restore.
    let next_start = (filled + 2) * PERIOD;
    eventually(Duration::from_secs(60), "the cut's block", || async {
        Ok((chain.head_block().await? >= next_start - 3).then_some(()))
    })
    .await?;
    let nodes: Vec<&TestNode> = std::iter::once(&renter).chain(hosts.iter()).collect();
    let errors = "hoard_rpc_errors_total";
    let mut errors_before = Vec::new();
    for n in &nodes {
        errors_before.push(n.metric(errors).await?);
    }
    let proxy = net.rpc_proxy.as_ref().expect("set above");
    proxy.cut().await;
    let cut_head = chain.head_block().await?;
    eventually(
        Duration::from_secs(30),
        "every node to see RPC errors",
        || async {
            for (n, before) in nodes.iter().zip(&errors_before) {
                if n.metric(errors).await? <= *before {
                    return Ok(None);
                }
            }
            Ok(Some(()))
        },
    )
    .await?;
    eventually(
        Duration::from_secs(30),
        "five blocks without RPC",
        || async { Ok((chain.head_block().await? >= cut_head + 5).then_some(())) },
    )
    .await?;
    // Still up (the API answers), but blind: nobody has synced past the cut.
    for n in &nodes {
        let synced = n.metric("hoard_chain_synced_block").await?;
        assert!(
            synced <= cut_head as f64,
            "synced to {synced} through a cut proxy"
        );
    }
    proxy.restore().await?;
    let restored = chain.head_block().await?;

    // Every node catches up with the chain...
    eventually(
        Duration::from_secs(30),
        "every node to catch up with the chain",
        || async {
            for n in &nodes {
                let head = n.metric("hoard_chain_head_block").await?;
                let synced = n.metric("hoard_chain_synced_block").await?;
                if head < restored as f64 || synced < restored as f64 {
                    return Ok(None);
                }
            }
            Ok(Some(()))
        },
    )
    .await?;
    // ...and keeps proving: the period that began in the dark and the next one are proven for
    // every slot, and nothing is marked missing.
    let target = restored / PERIOD + 1;
    eventually(Duration::from_secs(60), "two more periods", || async {
        Ok((chain.current_period().await? > target).then_some(()))
    })
    .await?;
    for s in &all {
        for p in filled + 1..=target {
            assert_eq!(
                chain.proof_status(s.slot_id, p).await?,
                ProofStatus::Submitted,
                "slot {} period {p} (outage from block {cut_head} to {restored})",
                s.index
            );
        }
        assert_eq!(chain.get_slot(s.slot_id).await?.missed_proofs, 0);
    }
    renter.stop().await;
    stop_all(&mut hosts).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hosts_wait_for_a_renter_that_went_offline_and_fill_when_it_is_back() -> anyhow::Result<()>
{
    init_logs();
    let mut net = Network::start(PERIOD).await?;
    let chain = net.observer().await?;
    let mut renter = net.node("renter", false).await?;
    eventually(
        Duration::from_secs(60),
        "the renter to be announced",
        || async {
            let hosts = chain.hosts().await?;
            Ok(hosts
                .iter()
                .any(|(a, _)| *a == renter.address())
                .then_some(()))
        },
    )
    .await?;
    let stored = put(&renter, net.dir.path(), 2 << 20, &params(300, 180), false).await?;
    // The renter goes away as soon as its request is mined, before any host has started.
    renter.stop().await;
    let mut hosts = Vec::new();
    for i in 0..6 {
        hosts.push(net.node(&format!("host-{i}"), true).await?);
    }

    // Every host tries to fetch from the renter and cannot; no slot is filled.
    let failed =
        "hoard_p2p_requests_total{direction=\"outbound\",outcome=\"error\",protocol=\"block\"}";
    eventually(
        Duration::from_secs(60),
        "every host to fail to reach the renter",
        || async {
            for h in &hosts {
                if h.metric(failed).await? < 1.0 {
                    return Ok(None);
                }
            }
            Ok(Some(()))
        },
    )
    .await?;
    for i in 0..6 {
        let slot = hoard_prover::slot_id(&stored.request, SlotIndex(i));
        assert_eq!(chain.slot_state(slot).await?, SlotState::Free, "slot {i}");
    }

    // Back on the same data folder (new ports, announced again): it serves its dataset again
    // and the hosts, retrying, fill every slot before the request expires.
    renter = TestNode::start(renter.config.clone(), renter.key.clone()).await?;
    hoard_tests::until_state(
        &chain,
        stored.request,
        hoard_chain::RequestState::Started,
        Duration::from_secs(120),
    )
    .await?;
    // Having learnt of each other, the hosts took one slot each rather than racing for the
    // same one (a race costs a download and a reverted fill).
    for h in &hosts {
        let reverted = h
            .metric("hoard_tx_reverted_total{method=\"fillSlot\"}")
            .await?;
        assert_eq!(reverted, 0.0, "{} raced for a slot", h.address());
    }
    // The hosts hold the dataset: it comes back whole with the renter gone again.
    renter.stop().await;
    fetch_and_compare(&mut net, &stored).await?;
    stop_all(&mut hosts).await;
    Ok(())
}
