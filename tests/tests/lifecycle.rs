//! The whole life of a dataset on a real chain with real nodes: a renter puts it, six hosts fill
//! the 4+2 slots, proofs are accepted period after period, a fresh node fetches it back
//! byte-identical from the hosts alone, the request finishes, everyone withdraws, and every
//! balance matches the contract's formulas to the last token unit.

use std::time::Duration;

use alloy::primitives::U256;
use hoard_api::PutRequest;
use hoard_prover::{DatasetId, RequestId};
use hoard_tests::{Network, eventually, init_logs, succeeded, write_dataset};

/// Blocks per period (1 s blocks).
const PERIOD: u64 = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn put_fill_prove_get_finish_and_pay() -> anyhow::Result<()> {
    init_logs();
    let mut net = Network::start(PERIOD).await?;
    let observer = net.observer().await?;

    let mut renter = net.node("renter", false).await?;
    let mut hosts = Vec::new();
    for i in 0..6 {
        hosts.push(net.node(&format!("host-{i}"), true).await?);
    }
    let before = hoard_tests::Balances::of(&observer, &renter, &hosts).await?;

    // Every node announces itself; hosts rank each other from those announcements.
    eventually(
        Duration::from_secs(60),
        "every node to be announced on chain",
        || async { Ok((observer.hosts().await?.len() >= 7).then_some(())) },
    )
    .await?;

    let input = net.dir.path().join("input.bin");
    write_dataset(&input, 3 << 20)?;
    let price = U256::from(1000u64);
    let put = PutRequest {
        path: input.clone(),
        data_slots: 4,
        parity_slots: 2,
        duration: 75,
        expiry: 40,
        price_per_byte_per_second: price,
        collateral_per_byte: U256::from(100_000u64),
        proof_probability: 1,
        samples: 8,
        scheme: Default::default(),
        new_request: false,
    };
    let job = renter.api().put(&put).await?.job;
    let done = succeeded(
        renter
            .api()
            .wait_job(&job, Duration::from_secs(120))
            .await?,
    )?;
    let dataset: DatasetId = serde_json::from_value(done.result["dataset"].clone())?;
    let request: RequestId = serde_json::from_value(done.result["request"].clone())?;

    // All six slots filled, each by a different host.
    let status = renter.api().dataset_status(dataset).await?;
    let slots = &status[0].slots;
    assert_eq!(status[0].state, "started");
    assert!(slots.iter().all(|s| s.state == "filled"), "{slots:?}");
    let mut holders: Vec<_> = slots.iter().map(|s| s.host.expect("filled")).collect();
    holders.sort();
    holders.dedup();
    assert_eq!(holders.len(), 6, "each slot has its own host");

    // Proofs accepted in three consecutive periods after every fill.
    let last_fill = {
        let mut p = 0;
        for s in slots {
            p = p.max(observer.get_slot(s.slot_id).await?.filled_period);
        }
        p
    };
    eventually(
        Duration::from_secs(60),
        "three proof periods after the last fill",
        || async { Ok((observer.current_period().await? > last_fill + 3).then_some(())) },
    )
    .await?;
    for s in slots {
        let filled = observer.get_slot(s.slot_id).await?.filled_period;
        for p in filled + 1..=last_fill + 3 {
            assert_eq!(
                observer.proof_status(s.slot_id, p).await?,
                hoard_chain::ProofStatus::Submitted,
                "slot {} period {p}",
                s.index.0
            );
        }
    }
    let mut submitted = 0.0;
    for h in &hosts {
        submitted += h.metric("hoard_proofs_submitted_total").await?;
    }
    assert!(
        submitted >= 18.0,
        "{submitted} proofs counted by the hosts' metrics"
    );

    // A fresh node fetches the dataset from the hosts alone (the renter is gone).
    renter.stop().await;
    let mut reader = net.node("reader", false).await?;
    let out = net.dir.path().join("fetched.bin");
    reader.download(dataset, &out).await?;
    assert!(
        std::fs::read(&out)? == std::fs::read(&input)?,
        "fetched bytes differ"
    );
    reader.stop().await;

    // The request finishes; hosts withdraw pay and collateral, the renter its refund.
    let info = observer.get_request(request).await?;
    hoard_tests::until_state(
        &observer,
        request,
        hoard_chain::RequestState::Finished,
        Duration::from_secs(120),
    )
    .await?;
    let mut renter =
        hoard_tests::TestNode::start(renter.config.clone(), renter.key.clone()).await?;

    // Money: host i earns P·(end − filledAtᵢ); the renter pays exactly the sum.
    let p = price * U256::from(info.params.slotSize);
    hoard_tests::withdraw_and_check_pay(
        &observer,
        request,
        &renter,
        &hosts,
        slots,
        p,
        info.endsAt,
        &before,
    )
    .await?;

    renter.stop().await;
    for h in &mut hosts {
        h.stop().await;
    }
    Ok(())
}
