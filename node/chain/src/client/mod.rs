//! [`Chain`]: the Marketplace and its token as one cheap-to-clone handle — views straight to the
//! node (`views.rs`), transactions through the signer's `TxSender` task (`transactions.rs`).

mod transactions;
mod views;

use std::{fmt, sync::Arc, time::Duration};

use alloy::{
    primitives::{Address, B256, U256},
    providers::{DynProvider, Provider, ProviderBuilder},
    rpc::types::TransactionReceipt,
    signers::local::PrivateKeySigner,
    sol_types::SolCall,
};
use url::Url;

use crate::{
    bindings::{
        HoardTestToken::{self, HoardTestTokenInstance},
        Marketplace::{self, MarketplaceInstance},
    },
    deployment::Deployment,
    error::ChainError,
    metrics::ChainMetrics,
    rpc::Rpc,
    tx::{TxSender, TxSettings},
};

/// Entries fetched per call when paging through a list view.
const PAGE: u64 = 256;

/// How to reach the chain and which contracts to use.
#[derive(Clone)]
pub struct ChainConfig {
    /// JSON-RPC endpoint (HTTP).
    pub rpc_url: Url,
    /// The contracts and their settings.
    pub deployment: Deployment,
    /// Key for transactions; without one, only views work.
    pub signer: Option<PrivateKeySigner>,
    /// How long to wait for a transaction's receipt before looking it up and re-broadcasting it;
    /// after two re-broadcasts (three timeouts in all) the call fails with
    /// [`ChainError::ReceiptTimeout`].
    pub receipt_timeout: Duration,
    /// Gas limit = estimate + this many percent.
    pub gas_margin_percent: u64,
}

impl ChainConfig {
    /// Default receipt timeout: five 12-second blocks.
    pub const DEFAULT_RECEIPT_TIMEOUT: Duration = Duration::from_secs(60);
    /// Default gas margin.
    pub const DEFAULT_GAS_MARGIN_PERCENT: u64 = 20;

    /// A configuration without a signer and with default timeouts.
    pub fn new(rpc_url: Url, deployment: Deployment) -> Self {
        Self {
            rpc_url,
            deployment,
            signer: None,
            receipt_timeout: Self::DEFAULT_RECEIPT_TIMEOUT,
            gas_margin_percent: Self::DEFAULT_GAS_MARGIN_PERCENT,
        }
    }

    /// Sets the signing key.
    pub fn with_signer(mut self, signer: PrivateKeySigner) -> Self {
        self.signer = Some(signer);
        self
    }
}

impl fmt::Debug for ChainConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the key; its address is enough to tell signers apart.
        f.debug_struct("ChainConfig")
            .field("rpc_url", &self.rpc_url.as_str())
            .field("deployment", &self.deployment)
            .field("signer", &self.signer.as_ref().map(|s| s.address()))
            .field("receipt_timeout", &self.receipt_timeout)
            .field("gas_margin_percent", &self.gas_margin_percent)
            .finish()
    }
}

/// A mined transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxOutcome {
    /// Transaction hash.
    pub hash: B256,
    /// Block it was mined in.
    pub block: u64,
    /// Gas it used.
    pub gas_used: u64,
}

impl TxOutcome {
    fn of(receipt: &TransactionReceipt) -> Self {
        Self {
            hash: receipt.transaction_hash,
            block: receipt.block_number.unwrap_or_default(),
            gas_used: receipt.gas_used,
        }
    }
}

/// What an `extendRequest` did (its `RequestExtended` event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extension {
    /// The request's new end, unix seconds.
    pub ends_at: u64,
    /// Tokens pulled from the renter for the extra time.
    pub payment: U256,
}

/// A slot as `getSlot` reports it, in hoard's types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// The request it belongs to.
    pub request_id: hoard_prover::RequestId,
    /// Its index in the request.
    pub index: hoard_prover::SlotIndex,
    /// Its state (`None` for an unknown id).
    pub state: crate::SlotState,
    /// Current (or, once Paid, last) host; zero while Free or in Repair.
    pub host: Address,
    /// When the current host filled it (unix seconds).
    pub filled_at: u64,
    /// Period in which the current host filled it; the fill's proof counts for this period.
    pub filled_period: u64,
    /// Missed proofs marked against the current host.
    pub missed_proofs: u64,
    /// Root of the slot tree the current host committed to.
    pub slot_root: hoard_prover::Hash,
    /// Compact scheme: the slot's Poseidon commitment bound at fill time (a big-endian field
    /// element); zero for the direct scheme.
    pub commitment: hoard_prover::Hash,
}

/// What a deployed compact verifier says about itself (`ICompactVerifier`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactVerifierInfo {
    /// Its address.
    pub address: Address,
    /// Slots per proof (S).
    pub slots: u64,
    /// Samples per slot (s).
    pub samples: u64,
    /// SHA-256 of its verifying key's EVM words (`hoard_compact::verifying_key_hash`).
    pub verifying_key_hash: B256,
}

impl Slot {
    /// Whether `host` holds it now.
    pub fn is_filled_by(&self, host: Address) -> bool {
        self.state == crate::SlotState::Filled && self.host == host
    }
}

/// A host's announcement (`hostInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostInfo {
    /// libp2p peer id, binary (`PeerId::to_bytes`).
    pub peer_id: Vec<u8>,
    /// Binary multiaddrs (`Multiaddr::to_vec`).
    pub addrs: Vec<Vec<u8>>,
    /// Unix time of the announcement.
    pub updated_at: u64,
}

/// Handle to the chain. Cheap to clone; clones share the connection, the metrics and the
/// transaction sender (so their transactions never collide on a nonce).
#[derive(Clone)]
pub struct Chain {
    inner: Arc<Inner>,
}

struct Inner {
    rpc: Rpc,
    deployment: Deployment,
    market: MarketplaceInstance<DynProvider>,
    token: HoardTestTokenInstance<DynProvider>,
    sender: Option<TxSender>,
}

impl fmt::Debug for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chain")
            .field("rpc_url", &self.rpc_url().as_str())
            .field("chain_id", &self.inner.deployment.chain_id)
            .field("marketplace", &self.inner.deployment.marketplace)
            .field("address", &self.address())
            .finish()
    }
}

impl Chain {
    /// Connects and checks that the node serves the deployment's chain, that both contracts have
    /// code, and that the Marketplace's `config()` matches the deployment file. Registers the
    /// client's metrics into `registry`.
    pub async fn connect(
        config: ChainConfig,
        registry: &prometheus::Registry,
    ) -> Result<Self, ChainError> {
        let metrics = ChainMetrics::unregistered();
        let chain = Self::connect_unchecked(config, metrics.clone());
        chain.check_deployment().await?;
        // Only now: a caller retrying a failed connect with the same registry must not collide
        // with the metrics of its own earlier attempt.
        metrics.register(registry)?;
        Ok(chain)
    }

    /// Builds the handle without talking to the node.
    pub(crate) fn connect_unchecked(config: ChainConfig, metrics: ChainMetrics) -> Self {
        let rpc = Rpc {
            provider: plain_provider(&config.rpc_url),
            url: config.rpc_url,
            metrics,
        };
        let d = config.deployment;
        let sender = config.signer.map(|signer| {
            TxSender::spawn(
                rpc.clone(),
                signer,
                TxSettings {
                    chain_id: d.chain_id,
                    receipt_timeout: config.receipt_timeout,
                    gas_margin_percent: config.gas_margin_percent,
                },
            )
        });
        let market = Marketplace::new(d.marketplace, rpc.provider.clone());
        let token = HoardTestToken::new(d.token, rpc.provider.clone());
        Self {
            inner: Arc::new(Inner {
                rpc,
                deployment: d,
                market,
                token,
                sender,
            }),
        }
    }

    async fn check_deployment(&self) -> Result<(), ChainError> {
        let d = &self.inner.deployment;
        let provider = &self.inner.rpc.provider;
        let got = self
            .rpc("eth_chainId", provider.get_chain_id().into_future())
            .await?;
        if got != d.chain_id {
            return Err(ChainError::WrongChain {
                expected: d.chain_id,
                got,
            });
        }
        for (address, what) in [(d.marketplace, "Marketplace"), (d.token, "token")] {
            let code = self
                .rpc("eth_getCode", provider.get_code_at(address).into_future())
                .await?;
            if code.is_empty() {
                return Err(ChainError::NoContract { address, what });
            }
        }
        let config = self
            .view("config", async { self.inner.market.config().call().await })
            .await?;
        d.check_config(&config)?;
        let block = self
            .view("deploymentBlock", async {
                self.inner.market.deploymentBlock().call().await
            })
            .await?;
        if block != U256::from(d.deployment_block) {
            return Err(ChainError::ConfigMismatch(format!(
                "deploymentBlock is {} in the file but {block} on chain",
                d.deployment_block
            )));
        }
        Ok(())
    }

    // ------------------------------------------------------------------ accessors

    /// The signer's address, if a key was configured.
    pub fn address(&self) -> Option<Address> {
        self.inner.sender.as_ref().map(TxSender::address)
    }

    /// The deployment this client talks to.
    pub fn deployment(&self) -> &Deployment {
        &self.inner.deployment
    }

    /// The RPC endpoint.
    pub fn rpc_url(&self) -> &Url {
        &self.inner.rpc.url
    }

    /// The client's metrics.
    pub fn metrics(&self) -> &ChainMetrics {
        &self.inner.rpc.metrics
    }

    /// The provider underneath, for calls this client does not wrap (tests, devnet tooling).
    /// Calls made through it are not counted in the metrics.
    pub fn provider(&self) -> &DynProvider {
        &self.inner.rpc.provider
    }

    /// The Marketplace binding on this client's provider.
    pub fn marketplace(&self) -> &MarketplaceInstance<DynProvider> {
        &self.inner.market
    }

    /// A provider call for `method`, through the counting and classifying wrapper.
    pub(crate) async fn rpc<T>(
        &self,
        method: &str,
        fut: impl Future<Output = Result<T, alloy::transports::TransportError>>,
    ) -> Result<T, ChainError> {
        self.inner.rpc.call(method, fut).await
    }

    /// A contract view `method`, through the counting and classifying wrapper.
    async fn view<T>(
        &self,
        method: &str,
        fut: impl Future<Output = Result<T, alloy::contract::Error>>,
    ) -> Result<T, ChainError> {
        self.inner.rpc.call(method, fut).await
    }
}

/// A provider with no fillers: the sender task fills nonce, gas, fees and chain id itself.
pub(crate) fn plain_provider(url: &Url) -> DynProvider {
    ProviderBuilder::new()
        .disable_recommended_fillers()
        .connect_http(url.clone())
        .erased()
}

/// `"fillSlot"` from `fillSlot(bytes32,uint256,…)`: the metrics label and the name in errors.
fn method_name<C: SolCall>() -> &'static str {
    C::SIGNATURE.split('(').next().unwrap_or(C::SIGNATURE)
}

/// Chain numbers that must fit in 64 bits (periods, block numbers, cell indices, list lengths).
fn to_u64(method: &str, value: U256) -> Result<u64, ChainError> {
    u64::try_from(value)
        .map_err(|_| ChainError::Other(format!("{method} returned {value}, which exceeds 64 bits")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_names_come_from_the_abi_signature() {
        assert_eq!(method_name::<Marketplace::fillSlotCall>(), "fillSlot");
        assert_eq!(
            method_name::<Marketplace::withdrawRewardCall>(),
            "withdrawReward"
        );
        assert_eq!(method_name::<HoardTestToken::approveCall>(), "approve");
    }

    #[test]
    fn config_debug_hides_the_key() {
        let signer = PrivateKeySigner::random();
        let deployment = Deployment {
            chain_id: 31337,
            marketplace: Address::ZERO,
            token: Address::ZERO,
            randomness: Address::ZERO,
            compact_verifier_small: Address::ZERO,
            compact_verifier_large: Address::ZERO,
            deployment_block: 1,
            period_length: 64,
            grace_blocks: 64,
            max_missed: 3,
            slash_bps: 1000,
            reporter_reward_bps: 2500,
            repair_reward_bps: 1000,
        };
        let url: Url = "http://127.0.0.1:8545".parse().expect("static url");
        let config = ChainConfig::new(url, deployment).with_signer(signer.clone());
        let text = format!("{config:?}");
        let key = alloy::hex::encode(signer.to_bytes());
        assert!(!text.contains(&key));
        assert!(text.contains(&format!("{:?}", signer.address())));
    }
}
