//! [`Ctx`]: what every role of a node shares. Only shared services and read-only settings live
//! here; a role's own state lives in the role (host offer, fills in flight, validator switch…).

use std::time::Duration;

use alloy::primitives::Address;
use hoard_chain::{Chain, ChainError, MarketEvent, Periods};
use hoard_p2p::NetworkHandle;
use prometheus::Registry;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::{
    config::{NodeConfig, Secret},
    metrics::NodeMetrics,
    store::Store,
};

/// The shared services of one node.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub(crate) config: NodeConfig,
    pub(crate) store: Store,
    pub(crate) chain: Chain,
    pub(crate) net: NetworkHandle,
    pub(crate) metrics: NodeMetrics,
    pub(crate) registry: Registry,
    /// The API token for calls that change things.
    pub(crate) token: Secret,
    /// Cancelled when the node stops; every task watches it.
    pub(crate) cancel: CancellationToken,
    /// The chain head as the sync task last saw it.
    pub(crate) head: watch::Receiver<Head>,
    /// The last block whose events the sync task has applied to the store.
    pub(crate) synced: watch::Receiver<u64>,
    /// Marketplace events, as the sync task applied them (roles subscribe).
    pub(crate) events: broadcast::Sender<MarketEvent>,
}

impl Ctx {
    /// This node's chain account. Every node has one: it signs fills, proofs and requests.
    pub(crate) fn address(&self) -> Address {
        self.chain.address().unwrap_or_default()
    }

    /// Current head and period.
    pub(crate) fn head(&self) -> Head {
        *self.head.borrow()
    }

    /// The deployment's period arithmetic.
    pub(crate) fn periods(&self) -> Periods {
        self.chain.deployment().periods()
    }

    /// Waits until the node has applied the events up to the head it saw when called (a freshly
    /// started node backfills from the deployment block first).
    pub(crate) async fn wait_synced(&self, timeout: Duration) -> Result<(), NotSynced> {
        let target = self
            .head()
            .block
            .saturating_sub(self.config.chain.confirmations);
        let mut synced = self.synced.clone();
        let caught_up = tokio::time::timeout(timeout, synced.wait_for(|b| *b >= target)).await;
        match caught_up {
            Ok(Ok(_)) => Ok(()),
            _ => Err(NotSynced {
                synced: *self.synced.borrow(),
                target,
            }),
        }
    }
}

/// The node has not applied the chain's events up to the head yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the node has not caught up with the chain yet (synced to block {synced} of {target}); try \
     again shortly"
)]
pub struct NotSynced {
    /// The last block applied.
    pub synced: u64,
    /// The block waited for.
    pub target: u64,
}

/// The chain head as of the last poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Head {
    /// Block number.
    pub(crate) block: u64,
    /// Its timestamp (unix seconds).
    pub(crate) timestamp: u64,
    /// The period the block is in.
    pub(crate) period: u64,
    /// Blocks left in the period after this one.
    pub(crate) blocks_left: u64,
}

impl Head {
    /// The head at `block` (mined at `timestamp`).
    pub(crate) fn at(block: u64, timestamp: u64, periods: Periods) -> Self {
        Self {
            block,
            timestamp,
            period: periods.period_of(block),
            blocks_left: periods.blocks_left(block),
        }
    }

    /// Reads the head once (at start, so the node fails early on a bad RPC).
    pub(crate) async fn read(chain: &Chain) -> Result<Self, ChainError> {
        let (block, timestamp) = chain.head().await?;
        Ok(Self::at(block, timestamp, chain.deployment().periods()))
    }
}
