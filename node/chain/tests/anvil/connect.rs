//! Connecting (and refusing to), and a request round trip.

use alloy::primitives::{Address, U256};
use hoard_chain::{B256Ext as _, Chain, ChainError, RequestState};

use crate::common::{Env, params, tokens};

#[tokio::test]
async fn connect_refuses_wrong_url_chain_and_addresses() {
    let env = Env::start().await;
    // One registry for every attempt: a failed connect registers nothing, so a retry can.
    let registry = prometheus::Registry::new();

    let mut config = env.config(1);
    config.rpc_url = "http://127.0.0.1:1".parse().expect("url");
    let e = Chain::connect(config, &registry)
        .await
        .expect_err("wrong url");
    assert!(matches!(e, ChainError::Rpc { .. }), "{e:?}");
    assert!(e.is_transient());
    assert!(e.to_string().contains("check --rpc-url"), "{e}");

    let mut config = env.config(1);
    config.deployment.chain_id = 1;
    let e = Chain::connect(config, &registry)
        .await
        .expect_err("wrong chain");
    assert!(
        matches!(
            e,
            ChainError::WrongChain {
                expected: 1,
                got: 31337
            }
        ),
        "{e:?}"
    );

    let mut config = env.config(1);
    config.deployment.marketplace = Address::repeat_byte(0x42);
    let e = Chain::connect(config, &registry)
        .await
        .expect_err("no contract");
    assert!(
        matches!(e, ChainError::NoContract { address, .. } if address == Address::repeat_byte(0x42)),
        "{e:?}"
    );
    assert!(e.to_string().contains("deploy first"), "{e}");

    let mut config = env.config(1);
    config.deployment.period_length += 1;
    let e = Chain::connect(config, &registry)
        .await
        .expect_err("mismatch");
    assert!(
        matches!(e, ChainError::ConfigMismatch(ref m) if m.contains("periodLength")),
        "{e:?}"
    );

    // The real deployment connects, and reads back what the file says.
    let chain = Chain::connect(env.config(1), &registry)
        .await
        .expect("connect");
    assert!(
        registry
            .gather()
            .iter()
            .any(|f| f.name() == "hoard_rpc_requests_total")
    );
    assert_eq!(chain.address(), Some(env.keys[1].address()));
    assert_eq!(chain.token_decimals().await.expect("decimals"), 18);
    assert!(chain.head_block().await.expect("head") >= env.deployment.deployment_block);
}

#[tokio::test]
async fn request_storage_returns_the_predicted_id_and_escrows() {
    let env = Env::start().await;
    let registry = prometheus::Registry::new();
    let renter = Chain::connect(env.config(1), &registry)
        .await
        .expect("connect");
    let me = renter.address().expect("signer");
    renter.faucet(tokens(10)).await.expect("faucet");
    let before = renter.token_balance(me).await.expect("balance");
    assert_eq!(before, tokens(10));

    let predicted = renter.next_request_id(me).await.expect("nextRequestId");
    let p = params(1);
    let escrow = renter.escrow_for(&p).await.expect("escrowFor");
    assert_eq!(escrow, U256::from(256u64 * 256 * 3600));
    let (id, outcome) = renter
        .request_storage(p.clone())
        .await
        .expect("requestStorage");
    assert_eq!(id, predicted);
    assert!(outcome.gas_used > 0 && outcome.block > env.deployment.deployment_block);

    let info = renter.get_request(id).await.expect("getRequest");
    assert_eq!(info.renter, me);
    assert_eq!(info.params, p);
    assert_eq!(
        RequestState::try_from(info.state).expect("state"),
        RequestState::New
    );
    assert_eq!(
        renter.request_state(id).await.expect("state"),
        RequestState::New
    );
    assert_eq!(
        renter.token_balance(me).await.expect("balance"),
        before - escrow
    );
    // Approved exactly the escrow, and requestStorage spent it.
    let spender = env.deployment.marketplace;
    assert_eq!(
        renter
            .token_allowance(me, spender)
            .await
            .expect("allowance"),
        U256::ZERO
    );
    assert_eq!(
        renter.renter_requests(me).await.expect("renterRequests"),
        vec![id]
    );
    let slot = hoard_prover::slot_id(&id, hoard_prover::SlotIndex(0));
    assert_eq!(renter.get_slot(slot).await.expect("getSlot").request_id, id);
    let on_chain = renter
        .marketplace()
        .slotId(id.to_b256(), U256::ZERO)
        .call()
        .await
        .expect("slotId");
    assert_eq!(slot.to_b256(), on_chain);
    assert_eq!(
        renter.slot_collateral(id).await.expect("collateral"),
        U256::from(256u64 * 256)
    );

    let metrics = renter.metrics();
    assert_eq!(metrics.tx_sent.with_label_values(&["approve"]).get(), 1);
    assert_eq!(
        metrics.tx_sent.with_label_values(&["requestStorage"]).get(),
        1
    );
    assert!(
        metrics
            .tx_gas_used
            .with_label_values(&["requestStorage"])
            .get()
            >= outcome.gas_used
    );
    assert!(metrics.rpc_requests.get() > 0);
    assert!(
        registry
            .gather()
            .iter()
            .any(|f| f.name() == "hoard_chain_head_block"),
        "metrics registered in the given registry"
    );
}
