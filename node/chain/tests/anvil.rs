//! The chain client against a real anvil (1-second blocks) with the contracts deployed from the
//! committed artifacts. Every test starts its own anvil, so they run in parallel.

use std::{
    collections::{BTreeSet, HashSet},
    num::NonZeroU64,
    time::Duration,
};

use alloy::{
    primitives::{Address, B256, Bytes, U256},
    providers::Provider,
    signers::local::PrivateKeySigner,
};
use hoard_chain::{
    B256Ext, Chain, ChainConfig, ChainError, ChainEvent, Cursor, DeploySettings, Deployment,
    EventFollower, LocalChain, MarketEvent, ProofStatus, RequestParams, RequestState, SlotState,
    deploy, fund,
};
use hoard_prover::{
    BLOCK_SIZE, Challenge, DatasetTree, DirectProof, Seed, SlotId, SlotTree, block_root,
};
use tokio::time::Instant;

/// Longest any wait for the chain may take in these tests.
const DEADLINE: Duration = Duration::from_secs(20);

struct Env {
    anvil: LocalChain,
    deployment: Deployment,
    keys: Vec<PrivateKeySigner>,
}

impl Env {
    async fn start() -> Self {
        Self::start_with(DeploySettings::default()).await
    }

    async fn start_with(settings: DeploySettings) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let anvil = LocalChain::start(1, None).expect("start anvil (run scripts/contracts first)");
        let keys = anvil.keys();
        let deployment = deploy(&anvil.rpc_url(), keys[0].clone(), settings)
            .await
            .expect("deploy the contracts");
        Self {
            anvil,
            deployment,
            keys,
        }
    }

    fn config(&self, key: usize) -> ChainConfig {
        let mut config = ChainConfig::new(self.anvil.rpc_url(), self.deployment);
        config.signer = Some(self.keys[key].clone());
        config.receipt_timeout = Duration::from_secs(10);
        config
    }

    async fn chain(&self, key: usize) -> Chain {
        Chain::connect(self.config(key), &prometheus::Registry::new())
            .await
            .expect("connect")
    }
}

fn params(seed: u8) -> RequestParams {
    RequestParams {
        datasetRoot: B256::repeat_byte(seed),
        manifestId: B256::repeat_byte(seed.wrapping_add(1)),
        pricePerBytePerSecond: U256::from(1),
        collateralPerByte: U256::from(1),
        slotSize: 256 * 256,
        cellCount: 256,
        duration: 3600,
        expiry: 600,
        proofProbability: 1,
        slots: 1,
        maxSlotLoss: 0,
        samples: 1,
        scheme: 0,
    }
}

fn tokens(n: u64) -> U256 {
    U256::from(n) * U256::from(10).pow(U256::from(18))
}

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
    let slot = hoard_chain::slot_id(id, 0);
    assert_eq!(renter.get_slot(slot).await.expect("getSlot").requestId, id);
    let on_chain = renter
        .marketplace()
        .slotId(id, U256::ZERO)
        .call()
        .await
        .expect("slotId");
    assert_eq!(slot, on_chain);
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

/// Polls until `done` says so or the deadline passes; returns every poll.
async fn poll_until(
    follower: &mut EventFollower,
    chain: &Chain,
    cursor: &mut Option<Cursor>,
    mut done: impl FnMut(&hoard_chain::Poll) -> bool,
) -> Vec<hoard_chain::Poll> {
    let deadline = Instant::now() + DEADLINE;
    let mut polls = Vec::new();
    loop {
        let poll = follower.poll(chain, *cursor).await.expect("poll");
        *cursor = Some(poll.cursor);
        let stop = done(&poll);
        polls.push(poll);
        if stop {
            return polls;
        }
        assert!(
            Instant::now() < deadline,
            "condition not met before the deadline: {polls:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn requested(events: &[ChainEvent]) -> Vec<B256> {
    events
        .iter()
        .filter_map(|e| match e.event {
            MarketEvent::StorageRequested { request_id, .. } => Some(request_id),
            _ => None,
        })
        .collect()
}

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

/// Two slots of two 64-KiB blocks each, with their trees.
struct Dataset {
    blocks: Vec<Vec<Box<[u8; BLOCK_SIZE]>>>,
    trees: Vec<SlotTree>,
    dataset: DatasetTree,
}

impl Dataset {
    fn new() -> Self {
        let blocks: Vec<Vec<Box<[u8; BLOCK_SIZE]>>> = (0..2u8)
            .map(|slot| {
                (0..2u8)
                    .map(|b| {
                        let mut block = Box::new([0u8; BLOCK_SIZE]);
                        for (i, byte) in block.iter_mut().enumerate() {
                            *byte = (i as u8).wrapping_mul(31) ^ slot.wrapping_mul(7) ^ b;
                        }
                        block
                    })
                    .collect()
            })
            .collect();
        let trees: Vec<SlotTree> = blocks
            .iter()
            .map(|slot| {
                let roots: Vec<_> = slot.iter().map(|b| block_root(b)).collect();
                SlotTree::from_block_roots(&roots).expect("slot tree")
            })
            .collect();
        let roots: Vec<_> = trees.iter().map(SlotTree::root).collect();
        let dataset = DatasetTree::new(&roots).expect("dataset tree");
        Self {
            blocks,
            trees,
            dataset,
        }
    }

    fn params(&self) -> RequestParams {
        RequestParams {
            datasetRoot: self.dataset.root().to_b256(),
            manifestId: B256::repeat_byte(0x33),
            pricePerBytePerSecond: U256::from(1),
            collateralPerByte: U256::from(1),
            slotSize: 2 * BLOCK_SIZE as u64,
            cellCount: 512,
            duration: 3600,
            expiry: 600,
            proofProbability: 1,
            slots: 2,
            maxSlotLoss: 1,
            samples: 4,
            scheme: 0,
        }
    }

    /// The proof of `slot` for `period`, checked against the contract's view of the challenge.
    async fn proof(&self, chain: &Chain, slot_id: B256, slot: usize, period: u64) -> Bytes {
        let (seed, required, indices) = chain.challenge(slot_id, period).await.expect("challenge");
        assert!(required, "proofProbability 1: every period");
        let challenge = Challenge {
            seed: Seed::from_b256(seed),
            slot_id: SlotId::from_b256(slot_id),
            samples: 4,
            cell_count: NonZeroU64::new(512).expect("non-zero"),
        };
        let ours: Vec<u64> = challenge.indices().iter().map(|c| c.0).collect();
        assert_eq!(ours, indices, "prover and contract draw the same samples");
        let proof = DirectProof::create(&self.trees[slot], &challenge, |b, buf| {
            buf.copy_from_slice(&self.blocks[slot][b as usize][..]);
            Ok::<_, std::convert::Infallible>(())
        })
        .expect("prove");
        Bytes::from(proof.to_bytes())
    }
}

/// Runs `attempt` for the current period until it does not fail with `InvalidProof` (the period
/// turned between reading its seed and the transaction's simulation); returns the period used.
async fn in_one_period<F, Fut>(chain: &Chain, mut attempt: F) -> u64
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = Result<hoard_chain::TxOutcome, ChainError>>,
{
    for _ in 0..3 {
        let period = chain.current_period().await.expect("period");
        match attempt(period).await {
            Ok(_) => return period,
            Err(e) if e.revert_reason() == Some("InvalidProof") => continue,
            Err(e) => panic!("transaction failed: {e}"),
        }
    }
    panic!("the period kept turning")
}

async fn wait_for_period(chain: &Chain, period: u64) {
    let deadline = Instant::now() + DEADLINE;
    while chain.current_period().await.expect("period") < period {
        assert!(Instant::now() < deadline, "period {period} did not come");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn host_fills_proves_and_a_reporter_marks_a_missed_proof() {
    let env = Env::start_with(DeploySettings {
        period_length: 6,
        grace_blocks: 6,
        ..DeploySettings::default()
    })
    .await;
    let renter = env.chain(1).await;
    let host = env.chain(2).await;
    let reporter = env.chain(3).await;
    let host_address = host.address().expect("host");
    let reporter_address = reporter.address().expect("reporter");
    fund(
        &renter,
        &[renter.address().expect("renter"), host_address],
        tokens(10),
    )
    .await
    .expect("fund");

    let peer_id = vec![0x00, 0x24, 0x08, 0x01];
    let addr = vec![0x04, 127, 0, 0, 1, 0x06, 0x10, 0x92];
    host.announce_host(peer_id.clone(), vec![addr.clone()])
        .await
        .expect("announce");
    let hosts = renter.hosts().await.expect("hosts");
    assert_eq!(hosts.len(), 1);
    assert_eq!(hosts[0].0, host_address);
    assert_eq!(
        (&hosts[0].1.peer_id, &hosts[0].1.addrs),
        (&peer_id, &vec![addr])
    );

    let data = Dataset::new();
    let (request, _) = renter
        .request_storage(data.params())
        .await
        .expect("request");
    let collateral = host.slot_collateral(request).await.expect("collateral");
    host.token_approve(env.deployment.marketplace, collateral * U256::from(2))
        .await
        .expect("approve ahead");

    let slots = [
        hoard_chain::slot_id(request, 0),
        hoard_chain::slot_id(request, 1),
    ];
    let mut fill_periods = Vec::new();
    for (i, slot_id) in slots.into_iter().enumerate() {
        let root = data.trees[i].root().to_b256();
        let path: Vec<B256> = data
            .dataset
            .path(i)
            .expect("path")
            .iter()
            .map(|h| h.to_b256())
            .collect();
        let period = in_one_period(&host, |period| {
            let (host, data, path) = (&host, &data, path.clone());
            async move {
                let proof = data.proof(host, slot_id, i, period).await;
                host.fill_slot(request, i as u64, root, path, proof).await
            }
        })
        .await;
        fill_periods.push(period);
    }
    assert_eq!(
        host.request_state(request).await.expect("state"),
        RequestState::Started
    );
    assert_eq!(
        host.host_slots(host_address).await.expect("host slots"),
        slots
    );
    let info = host.get_slot(slots[0]).await.expect("slot");
    assert_eq!(
        (info.host, SlotState::try_from(info.state).expect("state")),
        (host_address, SlotState::Filled)
    );
    // Collateral went in, and the approval ahead covered both fills exactly.
    assert_eq!(
        host.token_allowance(host_address, env.deployment.marketplace)
            .await
            .expect("allowance"),
        U256::ZERO
    );

    // In the next period, slot 0 is proven and slot 1 is not.
    let p = fill_periods.iter().max().expect("two fills") + 1;
    wait_for_period(&host, p).await;
    assert!(host.is_proof_required(slots[0]).await.expect("required"));
    let proven_in = in_one_period(&host, |period| {
        let (host, data) = (&host, &data);
        async move {
            let proof = data.proof(host, slots[0], 0, period).await;
            host.submit_proof(slots[0], proof).await
        }
    })
    .await;
    assert!(
        !host.is_proof_required(slots[0]).await.expect("required")
            || host.current_period().await.expect("period") > proven_in
    );
    assert_eq!(
        host.proof_status(slots[0], proven_in)
            .await
            .expect("status"),
        ProofStatus::Submitted
    );

    // Once that period is over, anyone may mark slot 1's missing proof, and is paid for it.
    wait_for_period(&host, proven_in + 1).await;
    let e = reporter
        .mark_proof_missing(slots[0], proven_in)
        .await
        .expect_err("was proven");
    assert!(
        e.revert_reason()
            .is_some_and(|r| r.starts_with("ProofWasSubmitted")),
        "{e}"
    );
    reporter
        .mark_proof_missing(slots[1], proven_in)
        .await
        .expect("mark");
    assert_eq!(
        reporter
            .proof_status(slots[1], proven_in)
            .await
            .expect("status"),
        ProofStatus::Missed
    );
    let reward = reporter.reward_of(reporter_address).await.expect("reward");
    // W = C · slash · reporter / 10⁸.
    assert_eq!(
        reward,
        collateral * U256::from(1000 * 2500) / U256::from(100_000_000u64)
    );
    reporter.withdraw_reward().await.expect("withdraw reward");
    assert_eq!(
        reporter
            .token_balance(reporter_address)
            .await
            .expect("balance"),
        reward
    );

    host.remove_host().await.expect("remove");
    assert!(renter.hosts().await.expect("hosts").is_empty());

    // The event stream tells the same story.
    let mut follower = EventFollower::new(0);
    let mut cursor = None;
    let polls = poll_until(&mut follower, &renter, &mut cursor, |p| p.caught_up).await;
    let events: Vec<MarketEvent> = polls
        .into_iter()
        .flat_map(|p| p.events)
        .map(|e| e.event)
        .collect();
    let expected = [
        MarketEvent::HostAnnounced {
            host: host_address,
            peer_id: peer_id.clone(),
            addrs: vec![vec![0x04, 127, 0, 0, 1, 0x06, 0x10, 0x92]],
        },
        MarketEvent::SlotFilled {
            request_id: request,
            slot_id: slots[0],
            host: host_address,
            slot_index: 0,
            repair: false,
        },
        MarketEvent::SlotFilled {
            request_id: request,
            slot_id: slots[1],
            host: host_address,
            slot_index: 1,
            repair: false,
        },
        MarketEvent::RequestStarted {
            request_id: request,
        },
        MarketEvent::ProofSubmitted {
            slot_id: slots[0],
            host: host_address,
            period: proven_in,
        },
        MarketEvent::HostRemoved { host: host_address },
    ];
    for e in &expected {
        assert!(events.contains(e), "missing {e:?} in {events:#?}");
    }
    assert!(events.iter().any(|e| matches!(e,
        MarketEvent::ProofMissed { slot_id, period, reporter, reward: r, missed_proofs: 1, .. }
            if *slot_id == slots[1] && *period == proven_in && *reporter == reporter_address && *r == reward)));
    assert!(events.iter().any(|e| matches!(e,
        MarketEvent::Withdrawn { account, request_id, slot_id, amount }
            if *account == reporter_address && request_id.is_zero() && slot_id.is_zero() && *amount == reward)));
    assert!(events.iter().any(|e| matches!(e,
        MarketEvent::StorageRequested { request_id, .. } if *request_id == request)));
}
