//! Reverts, funds and nonces.

use std::collections::BTreeSet;

use alloy::{
    primitives::{B256, Bytes, U256},
    providers::Provider,
    signers::local::PrivateKeySigner,
};
use hoard_chain::{Chain, ChainConfig, ChainError};

use crate::common::{Env, params, tokens};

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
    assert_eq!(e.revert_reason(), Some("ZeroPrice"), "{e:?}");
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
        e.revert_reason(),
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
            0,
            B256::repeat_byte(4),
            vec![],
            Bytes::from(vec![0u8; 512]),
        )
        .await
        .expect_err("bad proof");
    let reason = e.revert_reason().expect("a revert");
    assert!(
        reason.starts_with("InvalidProof") || reason.starts_with("InvalidSlotRootPath"),
        "{e}"
    );

    let e = chain
        .withdraw_reward()
        .await
        .expect_err("nothing to withdraw");
    assert_eq!(e.revert_reason(), Some("NothingToWithdraw"), "{e:?}");

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
