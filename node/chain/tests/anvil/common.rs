//! Shared fixtures: an anvil with the contracts deployed, request parameters, polling helpers.

use std::time::Duration;

use alloy::primitives::{B256, U256};
use alloy::signers::local::PrivateKeySigner;
use hoard_chain::{
    Chain, ChainConfig, ChainEvent, Cursor, DeploySettings, Deployment, EventFollower, LocalChain,
    MarketEvent, Poll, RequestParams, deploy,
};
use hoard_prover::RequestId;
use tokio::time::Instant;

/// Longest any wait for the chain may take in these tests.
pub(crate) const DEADLINE: Duration = Duration::from_secs(20);

pub(crate) struct Env {
    pub(crate) anvil: LocalChain,
    pub(crate) deployment: Deployment,
    pub(crate) keys: Vec<PrivateKeySigner>,
}

impl Env {
    pub(crate) async fn start() -> Self {
        Self::start_with(DeploySettings::default()).await
    }

    pub(crate) async fn start_with(settings: DeploySettings) -> Self {
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

    pub(crate) fn config(&self, key: usize) -> ChainConfig {
        let mut config = ChainConfig::new(self.anvil.rpc_url(), self.deployment);
        config.signer = Some(self.keys[key].clone());
        config.receipt_timeout = Duration::from_secs(10);
        config
    }

    pub(crate) async fn chain(&self, key: usize) -> Chain {
        Chain::connect(self.config(key), &prometheus::Registry::new())
            .await
            .expect("connect")
    }
}

pub(crate) fn params(seed: u8) -> RequestParams {
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
        compactRoot: B256::ZERO,
    }
}

pub(crate) fn tokens(n: u64) -> U256 {
    U256::from(n) * U256::from(10).pow(U256::from(18))
}

/// Polls until `done` says so or the deadline passes; returns every poll.
pub(crate) async fn poll_until(
    follower: &mut EventFollower,
    chain: &Chain,
    cursor: &mut Option<Cursor>,
    mut done: impl FnMut(&Poll) -> bool,
) -> Vec<Poll> {
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

pub(crate) fn requested(events: &[ChainEvent]) -> Vec<RequestId> {
    events
        .iter()
        .filter_map(|e| match e.event {
            MarketEvent::StorageRequested { request_id, .. } => Some(request_id),
            _ => None,
        })
        .collect()
}
