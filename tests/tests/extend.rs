//! Extending a dataset's storage on a real chain with real nodes: a renter puts a dataset, six
//! hosts fill its 4+2 slots, the renter extends the request through its node's API, every node
//! learns the new end, the hosts go on proving past the original end, the request finishes at the
//! new end, and every balance matches the contract's formulas to the last token unit. Refusals
//! (not the renter, not enough tokens, ended) come back as clear API errors.

use std::time::Duration;

use alloy::primitives::U256;
use hoard_api::ExtendRequest;
use hoard_tests::{Network, eventually, init_logs, params, put};

/// Blocks per period (1 s blocks).
const PERIOD: u64 = 8;
/// Seconds the request is first bought for, and how many are added.
const DURATION: u64 = 100;
const EXTRA: u64 = 48;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn extended_request_is_proven_until_the_new_end_and_paid_exactly() -> anyhow::Result<()> {
    init_logs();
    let mut net = Network::start(PERIOD).await?;
    let observer = net.observer().await?;

    let mut renter = net.node("renter", false).await?;
    let mut hosts = Vec::new();
    for i in 0..6 {
        hosts.push(net.node(&format!("host-{i}"), true).await?);
    }
    eventually(
        Duration::from_secs(60),
        "every node to be announced on chain",
        || async { Ok((observer.hosts().await?.len() >= 7).then_some(())) },
    )
    .await?;
    let before = hoard_tests::Balances::of(&observer, &renter, &hosts).await?;

    let put_params = params(DURATION, 60);
    let stored = put(&renter, net.dir.path(), 2 << 20, &put_params, true).await?;
    let request = stored.request;
    let info = observer.get_request(request).await?;
    let old_end = info.endsAt;
    let body = ExtendRequest { duration: EXTRA };

    // Only the renter's node may extend; a host's node says so.
    let e = hosts[0]
        .api()
        .extend(stored.dataset, &body)
        .await
        .expect_err("a host is not the renter");
    assert_eq!(e.status(), Some(409), "{e}");
    assert!(
        e.to_string().contains("only its renter can extend it"),
        "{e}"
    );

    // Without the tokens for it, the renter's node refuses before sending anything.
    let renter_chain = net.client(renter.key.clone()).await?;
    let parked = observer.token_balance(renter.address()).await?;
    renter_chain
        .token_transfer(observer.address().expect("signer"), parked)
        .await?;
    let e = renter
        .api()
        .extend(stored.dataset, &body)
        .await
        .expect_err("no tokens");
    assert_eq!(e.status(), Some(409), "{e}");
    assert!(
        e.to_string().contains("holds 0: fund the account first"),
        "{e}"
    );
    observer.token_transfer(renter.address(), parked).await?;
    assert_eq!(observer.get_request(request).await?.endsAt, old_end);

    // The extension: the new end and exactly P · slots · EXTRA paid.
    let p = put_params.price_per_byte_per_second * U256::from(info.params.slotSize);
    let r = renter.api().extend(stored.dataset, &body).await?;
    assert_eq!(r.request, request);
    assert_eq!(r.dataset, stored.dataset);
    assert_eq!(r.extra_seconds, EXTRA);
    assert_eq!(r.previous_ends_at, old_end);
    assert_eq!(r.ends_at, old_end + EXTRA);
    assert_eq!(r.payment, p * U256::from(6 * EXTRA));
    let new_end = r.ends_at;
    let after = observer.get_request(request).await?;
    assert_eq!(after.endsAt, new_end);
    assert_eq!(after.params.duration, DURATION + EXTRA);

    // Every node learns the new end from the event (hosts prove until the end they stored).
    for node in hosts.iter().chain([&renter]) {
        eventually(
            Duration::from_secs(30),
            "the node to store the new end",
            || async {
                let s = node.api().dataset_status(stored.dataset).await?;
                Ok((s[0].ends_at == new_end).then_some(()))
            },
        )
        .await?;
    }

    // The first two periods that start after the old end: still running, every slot proven.
    let (head, head_time) = observer.head().await?;
    let old_end_block = head + old_end.saturating_sub(head_time);
    let first = old_end_block.div_ceil(PERIOD);
    eventually(
        Duration::from_secs(120),
        "two proof periods after the original end",
        || async { Ok((observer.current_period().await? > first + 1).then_some(())) },
    )
    .await?;
    assert!(
        observer.block_timestamp(first * PERIOD).await? >= old_end,
        "period {first} starts after the original end"
    );
    assert!(
        observer.block_timestamp((first + 2) * PERIOD - 1).await? < new_end,
        "periods {first} and {} end before the new end",
        first + 1
    );
    let status = renter.api().dataset_status(stored.dataset).await?;
    let slots = &status[0].slots;
    assert_eq!(slots.len(), 6);
    for s in slots {
        for period in [first, first + 1] {
            assert_eq!(
                observer.proof_status(s.slot_id, period).await?,
                hoard_chain::ProofStatus::Submitted,
                "slot {} period {period}, after the original end",
                s.index.0
            );
        }
    }

    // The request finishes at the new end, not before.
    hoard_tests::until_state(
        &observer,
        request,
        hoard_chain::RequestState::Finished,
        Duration::from_secs(120),
    )
    .await?;
    let (_, now) = observer.head().await?;
    assert!(
        now >= new_end,
        "finished at {now}, before the new end {new_end}"
    );
    let e = renter
        .api()
        .extend(stored.dataset, &body)
        .await
        .expect_err("ended");
    assert_eq!(e.status(), Some(409), "{e}");
    assert!(e.to_string().contains("has ended (finished)"), "{e}");

    // Everyone withdraws; host i earns P·(newEnd − filledAtᵢ), the renter pays exactly the sum.
    hoard_tests::withdraw_and_check_pay(
        &observer, request, &renter, &hosts, slots, p, new_end, &before,
    )
    .await?;

    renter.stop().await;
    for h in &mut hosts {
        h.stop().await;
    }
    Ok(())
}
