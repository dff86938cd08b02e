//! The event follower: exactly-once delivery from a cursor, reorgs.

use std::{collections::HashSet, time::Duration};

use alloy::{primitives::B256, providers::Provider};
use hoard_chain::{Chain, ChainEvent, EventFollower, events::FALLBACK_DEPTH, fund};
use tokio::time::Instant;

use crate::common::{DEADLINE, Env, params, poll_until, requested, tokens};

#[tokio::test]
async fn follower_delivers_once_and_survives_a_reorg() {
    let env = Env::start().await;
    // anvil drops the transactions of reorged blocks: the sender finds the gap after a receipt
    // timeout and re-broadcasts them, so keep the timeout short.
    let mut config = env.config(1);
    config.receipt_timeout = Duration::from_secs(3);
    let chain = Chain::connect(config, &prometheus::Registry::new())
        .await
        .expect("connect");
    let me = chain.address().expect("signer");
    fund(&chain, &[me], tokens(10)).await.expect("fund");

    // Catch up from the deployment block.
    let mut follower = EventFollower::new(0);
    let mut cursor = None;
    poll_until(&mut follower, &chain, &mut cursor, |p| p.caught_up).await;
    let saved = cursor.expect("cursor");

    // A request is delivered exactly once, however often we poll.
    let (a, outcome_a) = chain.request_storage(params(10)).await.expect("request a");
    let polls = poll_until(&mut follower, &chain, &mut cursor, |p| {
        p.caught_up && p.cursor.block > outcome_a.block + 1
    })
    .await;
    let delivered: Vec<ChainEvent> = polls.iter().flat_map(|p| p.events.clone()).collect();
    assert_eq!(requested(&delivered), vec![a]);
    let event = delivered
        .iter()
        .find(|e| requested(std::slice::from_ref(e)) == [a])
        .expect("a");
    assert_eq!(event.block, outcome_a.block);
    assert_eq!(event.tx_hash, outcome_a.hash);
    assert!(polls.iter().all(|p| p.reorg.is_none()));

    // A fresh follower (a restarted node) from the saved cursor delivers it once too.
    let mut restarted = EventFollower::new(0).with_max_range(3);
    let mut from_saved = Some(saved);
    let polls = poll_until(&mut restarted, &chain, &mut from_saved, |p| p.caught_up).await;
    let again: Vec<ChainEvent> = polls.iter().flat_map(|p| p.events.clone()).collect();
    assert_eq!(requested(&again), vec![a]);

    // Request b, delivered; then a reorg replaces the blocks from b's on.
    let (b, outcome_b) = chain.request_storage(params(11)).await.expect("request b");
    let mut seen: Vec<ChainEvent> = delivered;
    let polls = poll_until(&mut follower, &chain, &mut cursor, |p| {
        p.cursor.block >= outcome_b.block
    })
    .await;
    seen.extend(polls.into_iter().flat_map(|p| p.events));
    assert!(requested(&seen).contains(&b));
    let b_hash = seen
        .iter()
        .find(|e| requested(std::slice::from_ref(e)) == [b])
        .map(|e| e.block_hash)
        .expect("b delivered");
    let stale = cursor.expect("cursor at or after b");
    // A block may be mined between reading the head and the reorg; then reorg again, deeper.
    let deadline = Instant::now() + DEADLINE;
    while chain.block_hash(outcome_b.block).await.expect("block") == Some(b_hash) {
        assert!(
            Instant::now() < deadline,
            "anvil_reorg did not replace block {}",
            outcome_b.block
        );
        let head = chain.head_block().await.expect("head");
        let depth = head - outcome_b.block + 1;
        chain
            .provider()
            .raw_request::<_, ()>("anvil_reorg".into(), serde_json::json!([depth, []]))
            .await
            .expect("anvil_reorg");
    }

    // A restarted follower knows no hashes of the old branch: it goes back a fixed depth.
    let mut restarted = EventFollower::new(0);
    let poll = restarted.poll(&chain, Some(stale)).await.expect("poll");
    let floor = env.deployment.deployment_block - 1;
    let expected = stale.block.saturating_sub(FALLBACK_DEPTH).max(floor) + 1;
    assert_eq!(poll.reorg, Some(expected));

    // The follower notices, reports where it replays from, and re-delivers.
    let (c, outcome_c) = chain.request_storage(params(12)).await.expect("request c");
    let mut reorg = None;
    let polls = poll_until(&mut follower, &chain, &mut cursor, |p| {
        reorg = reorg.or(p.reorg);
        p.caught_up && p.cursor.block >= outcome_c.block
    })
    .await;
    let first_replayed = reorg.expect("the follower reported the reorg");
    assert!(
        first_replayed <= outcome_b.block,
        "replays from {first_replayed}, b was in {}",
        outcome_b.block
    );
    assert!(
        first_replayed > outcome_a.block,
        "a's block was not reorged, no need to go back that far"
    );
    seen.extend(polls.into_iter().flat_map(|p| p.events));
    assert!(requested(&seen).contains(&c));

    // Nothing lost: every event of the canonical chain was delivered by the live follower.
    let mut full = EventFollower::new(0);
    let mut from_start = None;
    let polls = poll_until(&mut full, &chain, &mut from_start, |p| p.caught_up).await;
    let canonical: Vec<ChainEvent> = polls.into_iter().flat_map(|p| p.events).collect();
    let delivered: HashSet<(B256, u64)> =
        seen.iter().map(|e| (e.block_hash, e.log_index)).collect();
    for e in &canonical {
        assert!(
            delivered.contains(&(e.block_hash, e.log_index)),
            "lost {e:?}"
        );
    }
    // a was never reorged; b's transaction was dropped by the reorg and re-broadcast by the
    // sender (its nonce sat below c's), so it is on the chain again, in another block.
    for id in [a, b, c] {
        assert!(
            requested(&canonical).contains(&id),
            "{id} missing from the chain"
        );
    }
}
