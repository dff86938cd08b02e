//! Reverts, funds, nonces, and extending a request.

use std::collections::BTreeSet;

use alloy::{
    primitives::{B256, Bytes, U256},
    providers::Provider,
    signers::local::PrivateKeySigner,
};
use hoard_chain::{
    Chain, ChainConfig, ChainError, EventFollower, Extension, MarketEvent, MarketplaceErrors, fund,
};
use hoard_prover::{Hash, RequestId, SlotIndex};

use crate::common::{Env, params, poll_until, tokens};

#[tokio::test]
async fn reverts_come_back_decoded_and_cost_no_nonce() {
    let env = Env::start().await;
    let chain = env.chain(1).await;
    let me = chain.address().expect("signer");
    chain.faucet(tokens(1)).await.expect("faucet");

    // Zero price: escrow 0, so no approval; the simulation reverts with the custom error.
    let mut p = params(2);
    p.pricePerBytePerSecond = U256::ZERO;
    let e = chain.request_storage(p).await.expect_err("zero price");
    assert_eq!(reason(&e).as_deref(), Some("ZeroPrice"), "{e:?}");
    assert!(
        e.to_string().contains("requestStorage reverted: ZeroPrice"),
        "{e}"
    );
    assert!(!e.is_transient());

    // Custom errors with arguments.
    let mut p = params(3);
    p.slots = 300;
    let e = chain.request_storage(p).await.expect_err("too many slots");
    assert_eq!(
        reason(&e).as_deref(),
        Some("TooManySlots { slots: 300, max: 256 }"),
        "{e:?}"
    );

    // A fill with a proof that is not one.
    let (id, _) = chain
        .request_storage(params(4))
        .await
        .expect("requestStorage");
    let e = chain
        .fill_slot(
            id,
            SlotIndex(0),
            Hash([4; 32]),
            &[],
            Bytes::from(vec![0u8; 512]),
        )
        .await
        .expect_err("bad proof");
    assert!(
        matches!(
            e.marketplace(),
            Some(MarketplaceErrors::InvalidProof(_) | MarketplaceErrors::InvalidSlotRootPath(_))
        ),
        "{e}"
    );

    let e = chain
        .withdraw_reward()
        .await
        .expect_err("nothing to withdraw");
    assert_eq!(reason(&e).as_deref(), Some("NothingToWithdraw"), "{e:?}");

    // None of those used a nonce: the next transaction goes through at once.
    let nonce_before = chain
        .provider()
        .get_transaction_count(me)
        .await
        .expect("nonce");
    chain.faucet(tokens(1)).await.expect("faucet after reverts");
    let nonce_after = chain
        .provider()
        .get_transaction_count(me)
        .await
        .expect("nonce");
    assert_eq!(nonce_after, nonce_before + 1);

    let m = chain.metrics();
    assert_eq!(
        m.tx_reverted.with_label_values(&["requestStorage"]).get(),
        2
    );
    assert_eq!(
        m.tx_reverted.with_label_values(&["withdrawReward"]).get(),
        1
    );
    assert_eq!(m.tx_sent.with_label_values(&["withdrawReward"]).get(), 0);

    // An account without ether is told so.
    let mut config = env.config(1);
    config.signer = Some(PrivateKeySigner::random());
    let broke = Chain::connect(config, &prometheus::Registry::new())
        .await
        .expect("connect");
    let e = broke.faucet(tokens(1)).await.expect_err("no gas money");
    assert!(matches!(e, ChainError::InsufficientFunds { .. }), "{e:?}");
    assert!(e.to_string().contains("fund the account"), "{e}");
    // It used no nonce either: once funded, its first transaction has nonce 0.
    chain
        .transfer_eth(broke.address().expect("signer"), tokens(1))
        .await
        .expect("eth");
    broke.faucet(tokens(1)).await.expect("faucet once funded");

    // Without a key, views work and transactions say what is missing.
    let viewer = Chain::connect(
        ChainConfig::new(env.anvil.rpc_url(), env.deployment),
        &prometheus::Registry::new(),
    )
    .await
    .expect("connect without signer");
    assert_eq!(viewer.address(), None);
    assert!(matches!(
        viewer.withdraw_reward().await,
        Err(ChainError::NoSigner)
    ));
}

#[tokio::test]
async fn concurrent_transactions_get_consecutive_nonces() {
    let env = Env::start().await;
    let chain = env.chain(1).await;
    let me = chain.address().expect("signer");
    let first_nonce = chain
        .provider()
        .get_transaction_count(me)
        .await
        .expect("nonce");

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..24u64 {
        let chain = chain.clone();
        tasks.spawn(async move {
            if i % 6 == 5 {
                // Interleaved reverts must not disturb the sequence.
                chain
                    .withdraw_reward()
                    .await
                    .err()
                    .map(|e| e.to_string())
                    .ok_or(i)
            } else {
                chain
                    .faucet(U256::from(i + 1))
                    .await
                    .map(|o| o.hash.to_string())
                    .map_err(|_| i)
            }
        });
    }
    let mut hashes = Vec::new();
    while let Some(done) = tasks.join_next().await {
        match done.expect("task") {
            Ok(text) if text.contains("NothingToWithdraw") => {}
            Ok(hash) => hashes.push(hash.parse::<B256>().expect("hash")),
            Err(i) => panic!("transaction {i} failed"),
        }
    }
    assert_eq!(hashes.len(), 20);
    let mut nonces = BTreeSet::new();
    for hash in &hashes {
        let tx = chain
            .provider()
            .get_transaction_by_hash(*hash)
            .await
            .expect("lookup")
            .expect("mined transaction");
        nonces.insert(alloy::consensus::Transaction::nonce(&tx));
    }
    let expected: BTreeSet<u64> = (first_nonce..first_nonce + 20).collect();
    assert_eq!(nonces, expected);
    let minted: u64 = (0..24u64).filter(|i| i % 6 != 5).map(|i| i + 1).sum();
    assert_eq!(
        chain.token_balance(me).await.expect("balance"),
        U256::from(minted)
    );

    // Another program sends with the same key: our remembered nonce is stale, the sender
    // notices ("nonce too low"), re-reads it and goes on.
    let other = env.chain(1).await;
    other.faucet(U256::from(1)).await.expect("other sender");
    other
        .faucet(U256::from(1))
        .await
        .expect("other sender again");
    chain
        .faucet(U256::from(1))
        .await
        .expect("after a foreign transaction");
    assert_eq!(
        chain
            .provider()
            .get_transaction_count(me)
            .await
            .expect("nonce"),
        first_nonce + 23
    );
}

#[tokio::test]
async fn the_renter_extends_a_running_request_and_pays_for_it() {
    let env = Env::start().await;
    let renter = env.chain(1).await;
    let other = env.chain(2).await;
    let me = renter.address().expect("signer");
    fund(&renter, &[me, other.address().expect("signer")], tokens(10))
        .await
        .expect("fund");
    let p = params(20); // one 64-KiB slot at 1 unit/B/s: P = 65,536 per second
    let per_second = U256::from(65_536u64);
    let (id, _) = renter.request_storage(p.clone()).await.expect("request");
    let before = renter.get_request(id).await.expect("request info");
    let balance = renter.token_balance(me).await.expect("balance");

    assert_eq!(
        renter.extension_cost(id, 600).await.expect("cost"),
        per_second * U256::from(600)
    );
    let (extension, outcome) = renter.extend_request(id, 600).await.expect("extend");
    assert_eq!(
        extension,
        Extension {
            ends_at: before.endsAt + 600,
            payment: per_second * U256::from(600),
        }
    );
    let after = renter.get_request(id).await.expect("request info");
    assert_eq!(after.endsAt, before.endsAt + 600);
    assert_eq!(after.params.duration, p.duration + 600);
    assert_eq!(
        (after.createdAt, after.expiresAt),
        (before.createdAt, before.expiresAt)
    );
    assert_eq!(
        renter.token_balance(me).await.expect("balance"),
        balance - extension.payment
    );
    // The approval was for exactly the payment.
    assert_eq!(
        renter
            .token_allowance(me, env.deployment.marketplace)
            .await
            .expect("allowance"),
        U256::ZERO
    );

    // The event follower hands the extension to the node.
    let mut follower = EventFollower::new(0);
    let mut cursor = None;
    let polls = poll_until(&mut follower, &renter, &mut cursor, |p| {
        p.caught_up && p.cursor.block >= outcome.block
    })
    .await;
    let extended: Vec<MarketEvent> = polls
        .into_iter()
        .flat_map(|p| p.events)
        .map(|e| e.event)
        .filter(|e| matches!(e, MarketEvent::RequestExtended { .. }))
        .collect();
    assert_eq!(
        extended,
        vec![MarketEvent::RequestExtended {
            request_id: id,
            extra_seconds: 600,
            ends_at: before.endsAt + 600,
            payment: extension.payment,
        }]
    );

    // Refusals, decoded, and none of them approves or spends anything.
    let e = other
        .extend_request(id, 60)
        .await
        .expect_err("not the renter");
    assert_eq!(
        reason(&e).as_deref(),
        Some(
            format!(
                "NotRenter {{ caller: {:?}, renter: {me:?} }}",
                other.address().expect("signer")
            )
            .as_str()
        ),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .starts_with("extendRequest reverted: NotRenter"),
        "{e}"
    );
    let e = renter.extend_request(id, 0).await.expect_err("zero");
    assert!(
        reason(&e).is_some_and(|r| r.starts_with("InvalidExtension { extraSeconds: 0,")),
        "{e:?}"
    );
    let e = renter
        .extend_request(RequestId([9; 32]), 60)
        .await
        .expect_err("unknown");
    assert!(
        reason(&e).is_some_and(|r| r.starts_with("UnknownRequest")),
        "{e:?}"
    );
    assert_eq!(
        other
            .token_allowance(other.address().expect("signer"), env.deployment.marketplace)
            .await
            .expect("allowance"),
        U256::ZERO
    );

    // Unfilled past its expiry, the request is Cancelled: too late to extend.
    let provider = renter.provider();
    provider
        .raw_request::<_, i64>(
            "evm_increaseTime".into(),
            serde_json::json!([before.expiresAt - before.createdAt + 1]),
        )
        .await
        .expect("increase time");
    provider
        .raw_request::<_, String>("evm_mine".into(), serde_json::json!([]))
        .await
        .expect("mine");
    let e = renter.extend_request(id, 60).await.expect_err("cancelled");
    assert!(
        reason(&e).is_some_and(|r| r.starts_with("RequestNotActive") && r.ends_with("state: 3 }")),
        "{e:?}"
    );
    // Each refusal counts as a reverted extendRequest of the client that tried it.
    let reverted = |c: &Chain| {
        c.metrics()
            .tx_reverted
            .with_label_values(&["extendRequest"])
            .get()
    };
    assert_eq!((reverted(&renter), reverted(&other)), (3, 1));
    assert_eq!(
        renter
            .metrics()
            .tx_sent
            .with_label_values(&["extendRequest"])
            .get(),
        1
    );
}

/// Transactions that spend allowance go out together when the allowance covers all of them (a
/// host filling many slots at once), and still all land, each approving exactly its amount,
/// when there is none.
#[tokio::test]
async fn spenders_share_an_ample_allowance_and_approve_when_short() {
    let env = Env::start().await;
    let chain = env.chain(1).await;
    let market = chain.deployment().marketplace;
    chain.faucet(tokens(1)).await.expect("faucet");
    chain
        .token_approve(market, U256::MAX)
        .await
        .expect("approve");

    let spend_all = |seeds: std::ops::Range<u8>| {
        let mut tasks = tokio::task::JoinSet::new();
        for seed in seeds {
            let chain = chain.clone();
            tasks.spawn(async move { chain.request_storage(params(seed)).await });
        }
        async move {
            let mut blocks = BTreeSet::new();
            while let Some(done) = tasks.join_next().await {
                let (_, outcome) = done.expect("task").expect("requestStorage");
                blocks.insert(outcome.block);
            }
            blocks
        }
    };
    // One after another (each waiting for the one before) would take eight blocks.
    let blocks = spend_all(10..18).await;
    assert!(
        blocks.len() <= 3,
        "8 requests were mined in blocks {blocks:?}"
    );

    chain
        .token_approve(market, U256::ZERO)
        .await
        .expect("reset");
    let blocks = spend_all(20..23).await;
    assert_eq!(blocks.len(), 3, "each waits for its own approval");
    let me = chain.address().expect("signer");
    assert_eq!(
        chain.token_allowance(me, market).await.expect("allowance"),
        U256::ZERO,
        "each approved exactly its escrow"
    );
}

/// The decoded revert as people read it (`TooManySlots { slots: 300, max: 256 }`): these tests
/// check the wording too.
fn reason(e: &ChainError) -> Option<String> {
    e.revert_reason().map(ToString::to_string)
}
