//! [`Chain`]: the Marketplace and its token as one cheap-to-clone handle — views straight to the
//! node, transactions through the signer's [`TxSender`] task.

use std::{fmt, sync::Arc, time::Duration};

use alloy::{
    eips::BlockNumberOrTag,
    network::TransactionBuilder,
    primitives::{Address, B256, Bytes, U256},
    providers::{DynProvider, Provider, ProviderBuilder},
    rpc::types::{TransactionReceipt, TransactionRequest},
    signers::local::PrivateKeySigner,
    sol_types::{SolCall, SolEvent},
};
use url::Url;

use crate::{
    bindings::{
        HoardTestToken::{self, HoardTestTokenInstance},
        Marketplace::{self, MarketplaceInstance, RequestInfo, RequestParams, SlotInfo},
    },
    deployment::Deployment,
    error::ChainError,
    metrics::ChainMetrics,
    rpc::Rpc,
    state::{ProofStatus, RequestState, SlotState},
    tx::{Allowance, TxSender, TxSettings},
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
        let chain = Self::connect_unchecked(config, metrics.clone())?;
        chain.check_deployment().await?;
        // Only now: a caller retrying a failed connect with the same registry must not collide
        // with the metrics of its own earlier attempt.
        metrics.register(registry)?;
        Ok(chain)
    }

    /// Builds the handle without talking to the node.
    pub(crate) fn connect_unchecked(
        config: ChainConfig,
        metrics: ChainMetrics,
    ) -> Result<Self, ChainError> {
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
        Ok(Self {
            inner: Arc::new(Inner {
                rpc,
                deployment: d,
                market,
                token,
                sender,
            }),
        })
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

    // ------------------------------------------------------------------ blocks

    /// Number of the latest block. Also updates the head and head-lag gauges.
    pub async fn head_block(&self) -> Result<u64, ChainError> {
        let provider = &self.inner.rpc.provider;
        let block = self
            .rpc(
                "eth_getBlockByNumber",
                provider
                    .get_block_by_number(BlockNumberOrTag::Latest)
                    .into_future(),
            )
            .await?
            .ok_or_else(|| ChainError::Other("the node has no latest block".to_owned()))?;
        let number = block.header.number;
        let metrics = &self.inner.rpc.metrics;
        metrics
            .head_block
            .set(i64::try_from(number).unwrap_or(i64::MAX));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let lag = i128::from(now) - i128::from(block.header.timestamp);
        metrics
            .head_lag_seconds
            .set(i64::try_from(lag).unwrap_or(i64::MAX));
        Ok(number)
    }

    /// Unix timestamp of block `number`.
    pub async fn block_timestamp(&self, number: u64) -> Result<u64, ChainError> {
        let provider = &self.inner.rpc.provider;
        let block = self
            .rpc(
                "eth_getBlockByNumber",
                provider.get_block_by_number(number.into()).into_future(),
            )
            .await?
            .ok_or_else(|| ChainError::Other(format!("block {number} does not exist yet")))?;
        Ok(block.header.timestamp)
    }

    /// Hash of block `number`, `None` if the node has no such block.
    pub async fn block_hash(&self, number: u64) -> Result<Option<B256>, ChainError> {
        let provider = &self.inner.rpc.provider;
        let block = self
            .rpc(
                "eth_getBlockByNumber",
                provider.get_block_by_number(number.into()).into_future(),
            )
            .await?;
        Ok(block.map(|b| b.header.hash))
    }

    /// Parent hash of block `number`, `None` if the node has no such block.
    pub(crate) async fn parent_hash(&self, number: u64) -> Result<Option<B256>, ChainError> {
        let provider = &self.inner.rpc.provider;
        let block = self
            .rpc(
                "eth_getBlockByNumber",
                provider.get_block_by_number(number.into()).into_future(),
            )
            .await?;
        Ok(block.map(|b| b.header.parent_hash))
    }

    // ------------------------------------------------------------------ periods and proofs

    /// `block.number / periodLength` of the latest block.
    pub async fn current_period(&self) -> Result<u64, ChainError> {
        let p = self
            .view("currentPeriod", async {
                self.inner.market.currentPeriod().call().await
            })
            .await?;
        to_u64("currentPeriod", p)
    }

    /// Seed of `period` (reverts `SeedUnavailable` before the period starts or once the seed
    /// block is older than the randomness horizon).
    pub async fn period_seed(&self, period: u64) -> Result<B256, ChainError> {
        self.view("periodSeed", async {
            self.inner
                .market
                .periodSeed(U256::from(period))
                .call()
                .await
        })
        .await
    }

    /// The challenge of `slot_id` in `period`: its seed, whether the period's coin says a proof
    /// is required (whatever the slot's state), and the sample cell indices in `j` order
    /// (duplicates kept).
    pub async fn challenge(
        &self,
        slot_id: B256,
        period: u64,
    ) -> Result<(B256, bool, Vec<u64>), ChainError> {
        let c = self
            .view("challenge", async {
                self.inner
                    .market
                    .challenge(slot_id, U256::from(period))
                    .call()
                    .await
            })
            .await?;
        let indices = c
            .indices
            .into_iter()
            .map(|i| to_u64("challenge", i))
            .collect::<Result<_, _>>()?;
        Ok((c.seed, c.required, indices))
    }

    /// Whether the host of `slot_id` must still submit a proof in the current period.
    pub async fn is_proof_required(&self, slot_id: B256) -> Result<bool, ChainError> {
        self.view("isProofRequired", async {
            self.inner.market.isProofRequired(slot_id).call().await
        })
        .await
    }

    /// Whether the proof of `slot_id` for `period` was submitted or marked missing.
    pub async fn proof_status(
        &self,
        slot_id: B256,
        period: u64,
    ) -> Result<ProofStatus, ChainError> {
        let s = self
            .view("proofStatus", async {
                self.inner
                    .market
                    .proofStatus(slot_id, U256::from(period))
                    .call()
                    .await
            })
            .await?;
        ProofStatus::try_from(s)
    }

    // ------------------------------------------------------------------ requests and slots

    /// A request; `state` is `None` (0) for an unknown id.
    pub async fn get_request(&self, request_id: B256) -> Result<RequestInfo, ChainError> {
        self.view("getRequest", async {
            self.inner.market.getRequest(request_id).call().await
        })
        .await
    }

    /// A slot; `state` is `None` (0) for an unknown id.
    pub async fn get_slot(&self, slot_id: B256) -> Result<SlotInfo, ChainError> {
        self.view("getSlot", async {
            self.inner.market.getSlot(slot_id).call().await
        })
        .await
    }

    /// A request's state, with Cancelled and Finished applied as soon as time says so.
    pub async fn request_state(&self, request_id: B256) -> Result<RequestState, ChainError> {
        let s = self
            .view("requestState", async {
                self.inner.market.requestState(request_id).call().await
            })
            .await?;
        RequestState::try_from(s)
    }

    /// A slot's state, with the request's end state applied.
    pub async fn slot_state(&self, slot_id: B256) -> Result<SlotState, ChainError> {
        let s = self
            .view("slotState", async {
                self.inner.market.slotState(slot_id).call().await
            })
            .await?;
        SlotState::try_from(s)
    }

    /// What the slot's current host earned so far and the collateral it would get back.
    pub async fn slot_payout(&self, slot_id: B256) -> Result<(U256, U256), ChainError> {
        let p = self
            .view("slotPayout", async {
                self.inner.market.slotPayout(slot_id).call().await
            })
            .await?;
        Ok((p.earned, p.collateral))
    }

    /// What `withdrawRequest` would pay the renter.
    pub async fn renter_refund(&self, request_id: B256) -> Result<U256, ChainError> {
        self.view("renterRefund", async {
            self.inner.market.renterRefund(request_id).call().await
        })
        .await
    }

    /// Reporter rewards `account` can withdraw.
    pub async fn reward_of(&self, account: Address) -> Result<U256, ChainError> {
        self.view("rewardOf", async {
            self.inner.market.rewardOf(account).call().await
        })
        .await
    }

    /// Full collateral of one slot of the request.
    pub async fn slot_collateral(&self, request_id: B256) -> Result<U256, ChainError> {
        self.view("slotCollateral", async {
            self.inner.market.slotCollateral(request_id).call().await
        })
        .await
    }

    /// The escrow `requestStorage(params)` pulls.
    pub async fn escrow_for(&self, params: &RequestParams) -> Result<U256, ChainError> {
        self.view("escrowFor", async {
            self.inner.market.escrowFor(params.clone()).call().await
        })
        .await
    }

    /// The id the next request of `renter` will get.
    pub async fn next_request_id(&self, renter: Address) -> Result<B256, ChainError> {
        self.view("nextRequestId", async {
            self.inner.market.nextRequestId(renter).call().await
        })
        .await
    }

    /// Every slot `host` ever filled, oldest first (a refilled slot appears again).
    pub async fn host_slots(&self, host: Address) -> Result<Vec<B256>, ChainError> {
        let m = &self.inner.market;
        let count = self
            .view("hostSlotCount", async {
                m.hostSlotCount(host).call().await
            })
            .await?;
        self.pages("hostSlots", count, |offset, limit| async move {
            m.hostSlots(host, offset, limit).call().await
        })
        .await
    }

    /// Every request of `renter`, oldest first.
    pub async fn renter_requests(&self, renter: Address) -> Result<Vec<B256>, ChainError> {
        let m = &self.inner.market;
        let count = self
            .view("renterRequestCount", async {
                m.renterRequestCount(renter).call().await
            })
            .await?;
        self.pages("renterRequests", count, |offset, limit| async move {
            m.renterRequests(renter, offset, limit).call().await
        })
        .await
    }

    /// Every announced host with its announcement.
    pub async fn hosts(&self) -> Result<Vec<(Address, HostInfo)>, ChainError> {
        let m = &self.inner.market;
        let count = self
            .view("hostCount", async { m.hostCount().call().await })
            .await?;
        let addresses = self
            .pages("hosts", count, |offset, limit| async move {
                m.hosts(offset, limit).call().await
            })
            .await?;
        let mut hosts = Vec::with_capacity(addresses.len());
        for host in addresses {
            hosts.push((host, self.host_info(host).await?));
        }
        Ok(hosts)
    }

    /// The announcement of `host` (empty if it never announced or was removed).
    pub async fn host_info(&self, host: Address) -> Result<HostInfo, ChainError> {
        let info = self
            .view("hostInfo", async {
                self.inner.market.hostInfo(host).call().await
            })
            .await?;
        Ok(HostInfo {
            peer_id: info._0.to_vec(),
            addrs: info._1.into_iter().map(|a| a.to_vec()).collect(),
            updated_at: info._2,
        })
    }

    /// Reads a list view of `count` entries in pages of [`PAGE`].
    async fn pages<T, F>(
        &self,
        method: &str,
        count: U256,
        page: impl Fn(U256, U256) -> F,
    ) -> Result<Vec<T>, ChainError>
    where
        F: Future<Output = Result<Vec<T>, alloy::contract::Error>>,
    {
        let count = to_u64(method, count)?;
        let mut all = Vec::new();
        let mut offset = 0u64;
        while offset < count {
            let got = self
                .view(method, page(U256::from(offset), U256::from(PAGE)))
                .await?;
            if got.is_empty() {
                break; // the list shrank (hosts) since we read its length
            }
            offset = offset.saturating_add(got.len() as u64);
            all.extend(got);
        }
        Ok(all)
    }

    // ------------------------------------------------------------------ token

    /// Token balance of `account`.
    pub async fn token_balance(&self, account: Address) -> Result<U256, ChainError> {
        self.view("balanceOf", async {
            self.inner.token.balanceOf(account).call().await
        })
        .await
    }

    /// Allowance `owner` gave `spender`.
    pub async fn token_allowance(
        &self,
        owner: Address,
        spender: Address,
    ) -> Result<U256, ChainError> {
        self.view("allowance", async {
            self.inner.token.allowance(owner, spender).call().await
        })
        .await
    }

    /// The token's decimals.
    pub async fn token_decimals(&self) -> Result<u8, ChainError> {
        self.view("decimals", async {
            self.inner.token.decimals().call().await
        })
        .await
    }

    /// Ether balance of `account` (gas money).
    pub async fn eth_balance(&self, account: Address) -> Result<U256, ChainError> {
        let provider = &self.inner.rpc.provider;
        self.rpc(
            "eth_getBalance",
            provider.get_balance(account).into_future(),
        )
        .await
    }

    // ------------------------------------------------------------------ transactions

    /// Sends a Marketplace or token call through the signer's sender task.
    async fn transact<C: SolCall>(
        &self,
        to: Address,
        call: C,
        allowance: Option<Allowance>,
    ) -> Result<TransactionReceipt, ChainError> {
        let sender = self.inner.sender.as_ref().ok_or(ChainError::NoSigner)?;
        let tx = TransactionRequest::default()
            .with_to(to)
            .with_input(call.abi_encode());
        sender.send(method_name::<C>(), tx, allowance).await
    }

    async fn transact_market<C: SolCall>(&self, call: C) -> Result<TxOutcome, ChainError> {
        let receipt = self
            .transact(self.inner.deployment.marketplace, call, None)
            .await?;
        Ok(TxOutcome::of(&receipt))
    }

    /// Opens a storage request; approves the token for exactly the escrow first if the allowance
    /// is short. Returns the new request's id (from its `StorageRequested` event).
    pub async fn request_storage(
        &self,
        params: RequestParams,
    ) -> Result<(B256, TxOutcome), ChainError> {
        let d = &self.inner.deployment;
        // escrowFor validates the parameters: its revert is requestStorage's.
        let escrow = self.escrow_for(&params).await.map_err(|e| match e {
            ChainError::Revert { error, .. } => {
                let method = method_name::<Marketplace::requestStorageCall>();
                self.metrics()
                    .tx_reverted
                    .with_label_values(&[method])
                    .inc();
                ChainError::Revert {
                    method: method.to_owned(),
                    error,
                }
            }
            e => e,
        })?;
        let allowance = Allowance {
            token: d.token,
            spender: d.marketplace,
            amount: escrow,
        };
        let call = Marketplace::requestStorageCall { params };
        let receipt = self.transact(d.marketplace, call, Some(allowance)).await?;
        let request_id = receipt
            .inner
            .logs()
            .iter()
            .filter(|log| log.address() == d.marketplace)
            .find_map(|log| Marketplace::StorageRequested::decode_log_data(log.data()).ok())
            .map(|event| event.requestId)
            .ok_or_else(|| {
                ChainError::Other(format!(
                    "requestStorage transaction {} emitted no StorageRequested event",
                    receipt.transaction_hash
                ))
            })?;
        Ok((request_id, TxOutcome::of(&receipt)))
    }

    /// Fills slot `slot_index` of a request with its first proof; approves the slot's full
    /// collateral first if the allowance is short (a slot in Repair pulls less; the rest of the
    /// allowance stays unused).
    pub async fn fill_slot(
        &self,
        request_id: B256,
        slot_index: u64,
        slot_root: B256,
        root_path: Vec<B256>,
        proof: Bytes,
    ) -> Result<TxOutcome, ChainError> {
        let d = &self.inner.deployment;
        let collateral = self.slot_collateral(request_id).await?;
        let allowance = Allowance {
            token: d.token,
            spender: d.marketplace,
            amount: collateral,
        };
        let call = Marketplace::fillSlotCall {
            requestId: request_id,
            slotIndex: U256::from(slot_index),
            slotRoot: slot_root,
            rootPath: root_path,
            proof,
        };
        let receipt = self.transact(d.marketplace, call, Some(allowance)).await?;
        Ok(TxOutcome::of(&receipt))
    }

    /// Proves `slot_id` for the current period.
    pub async fn submit_proof(&self, slot_id: B256, proof: Bytes) -> Result<TxOutcome, ChainError> {
        self.transact_market(Marketplace::submitProofCall { id: slot_id, proof })
            .await
    }

    /// Marks the missing proof of `slot_id` for `period`.
    pub async fn mark_proof_missing(
        &self,
        slot_id: B256,
        period: u64,
    ) -> Result<TxOutcome, ChainError> {
        self.transact_market(Marketplace::markProofMissingCall {
            id: slot_id,
            period: U256::from(period),
        })
        .await
    }

    /// Withdraws a host's pay and collateral after the request ended.
    pub async fn withdraw_slot(&self, slot_id: B256) -> Result<TxOutcome, ChainError> {
        self.transact_market(Marketplace::withdrawSlotCall { id: slot_id })
            .await
    }

    /// Withdraws a renter's refund after the request ended.
    pub async fn withdraw_request(&self, request_id: B256) -> Result<TxOutcome, ChainError> {
        self.transact_market(Marketplace::withdrawRequestCall {
            requestId: request_id,
        })
        .await
    }

    /// Withdraws the caller's reporter rewards.
    pub async fn withdraw_reward(&self) -> Result<TxOutcome, ChainError> {
        self.transact_market(Marketplace::withdrawRewardCall {})
            .await
    }

    /// Announces (or replaces) how to reach this host.
    pub async fn announce_host(
        &self,
        peer_id: Vec<u8>,
        addrs: Vec<Vec<u8>>,
    ) -> Result<TxOutcome, ChainError> {
        self.transact_market(Marketplace::announceHostCall {
            peerId: peer_id.into(),
            addrs: addrs.into_iter().map(Bytes::from).collect(),
        })
        .await
    }

    /// Removes this host's announcement.
    pub async fn remove_host(&self) -> Result<TxOutcome, ChainError> {
        self.transact_market(Marketplace::removeHostCall {}).await
    }

    /// Mints `amount` test tokens to this account (HoardTestToken only; at most
    /// `FAUCET_LIMIT` per call).
    pub async fn faucet(&self, amount: U256) -> Result<TxOutcome, ChainError> {
        let to = self.address().ok_or(ChainError::NoSigner)?;
        self.faucet_to(to, amount).await
    }

    /// Mints `amount` test tokens to `to` (HoardTestToken only).
    pub async fn faucet_to(&self, to: Address, amount: U256) -> Result<TxOutcome, ChainError> {
        let call = HoardTestToken::faucetCall { to, amount };
        let receipt = self
            .transact(self.inner.deployment.token, call, None)
            .await?;
        Ok(TxOutcome::of(&receipt))
    }

    /// Sets the allowance of `spender` to `amount` (e.g. collateral for several fills ahead, so
    /// a fill does not wait a block for its own approval and miss its proof's period).
    pub async fn token_approve(
        &self,
        spender: Address,
        amount: U256,
    ) -> Result<TxOutcome, ChainError> {
        let call = HoardTestToken::approveCall {
            spender,
            value: amount,
        };
        let receipt = self
            .transact(self.inner.deployment.token, call, None)
            .await?;
        Ok(TxOutcome::of(&receipt))
    }

    /// Sends `amount` tokens to `to`.
    pub async fn token_transfer(&self, to: Address, amount: U256) -> Result<TxOutcome, ChainError> {
        let call = HoardTestToken::transferCall { to, value: amount };
        let receipt = self
            .transact(self.inner.deployment.token, call, None)
            .await?;
        Ok(TxOutcome::of(&receipt))
    }

    /// Sends `amount` wei of ether to `to` (gas money for fresh accounts on a devnet).
    pub async fn transfer_eth(&self, to: Address, amount: U256) -> Result<TxOutcome, ChainError> {
        let sender = self.inner.sender.as_ref().ok_or(ChainError::NoSigner)?;
        let tx = TransactionRequest::default().with_to(to).with_value(amount);
        let receipt = sender.send("transferEth", tx, None).await?;
        Ok(TxOutcome::of(&receipt))
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
