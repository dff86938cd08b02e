//! Views: blocks, periods and proofs, requests and slots, hosts, the token. Each is one contract
//! call (or a few, for paged lists) through the counting and classifying RPC wrapper.

use alloy::{
    eips::BlockNumberOrTag,
    primitives::{Address, B256, U256},
    providers::Provider,
};

use hoard_prover::{Hash, RequestId, Seed, SlotId, SlotIndex};

use super::{Chain, CompactVerifierInfo, HostInfo, PAGE, Slot, to_u64};
use crate::{
    B256Ext as _,
    bindings::{
        CompactVerifier4,
        Marketplace::{RequestInfo, RequestParams},
    },
    error::ChainError,
    state::{ProofStatus, RequestState, SlotState},
};

impl Chain {
    // ------------------------------------------------------------------ blocks

    /// Number of the latest block. Also updates the head and head-lag gauges.
    pub async fn head_block(&self) -> Result<u64, ChainError> {
        Ok(self.head().await?.0)
    }

    /// Number and unix timestamp of the latest block, in one call. Also updates the head and
    /// head-lag gauges.
    pub async fn head(&self) -> Result<(u64, u64), ChainError> {
        let provider = &self.inner.rpc.provider;
        let latest = provider.get_block_by_number(BlockNumberOrTag::Latest);
        let block = self
            .rpc("eth_getBlockByNumber", latest.into_future())
            .await?
            .ok_or_else(|| ChainError::Other("the node has no latest block".to_owned()))?;
        let (number, timestamp) = (block.header.number, block.header.timestamp);
        let metrics = &self.inner.rpc.metrics;
        metrics
            .head_block
            .set(i64::try_from(number).unwrap_or(i64::MAX));
        metrics.head_lag_seconds.saw(timestamp);
        Ok((number, timestamp))
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
    pub async fn period_seed(&self, period: u64) -> Result<Seed, ChainError> {
        let seed = self
            .view("periodSeed", async {
                self.inner
                    .market
                    .periodSeed(U256::from(period))
                    .call()
                    .await
            })
            .await?;
        Ok(Seed(seed.0))
    }

    /// The challenge of `slot_id` in `period`: its seed, whether the period's coin says a proof
    /// is required (whatever the slot's state), and the sample cell indices in `j` order
    /// (duplicates kept).
    pub async fn challenge(
        &self,
        slot_id: SlotId,
        period: u64,
    ) -> Result<(Seed, bool, Vec<u64>), ChainError> {
        let c = self
            .view("challenge", async {
                self.inner
                    .market
                    .challenge(slot_id.to_b256(), U256::from(period))
                    .call()
                    .await
            })
            .await?;
        let indices = c
            .indices
            .into_iter()
            .map(|i| to_u64("challenge", i))
            .collect::<Result<_, _>>()?;
        Ok((Seed(c.seed.0), c.required, indices))
    }

    /// Whether the host of `slot_id` must still submit a proof in the current period.
    pub async fn is_proof_required(&self, slot_id: SlotId) -> Result<bool, ChainError> {
        self.view("isProofRequired", async {
            self.inner
                .market
                .isProofRequired(slot_id.to_b256())
                .call()
                .await
        })
        .await
    }

    /// Whether the proof of `slot_id` for `period` was submitted or marked missing.
    pub async fn proof_status(
        &self,
        slot_id: SlotId,
        period: u64,
    ) -> Result<ProofStatus, ChainError> {
        let s = self
            .view("proofStatus", async {
                self.inner
                    .market
                    .proofStatus(slot_id.to_b256(), U256::from(period))
                    .call()
                    .await
            })
            .await?;
        ProofStatus::try_from(s)
    }

    /// What the compact verifier at `address` says about itself: its shape and its verifying
    /// key's hash (a node compares that with its own key before it proves).
    pub async fn compact_verifier(
        &self,
        address: Address,
    ) -> Result<CompactVerifierInfo, ChainError> {
        let v = CompactVerifier4::new(address, self.inner.rpc.provider.clone());
        let slots = self.view("slots", async { v.slots().call().await }).await?;
        let samples = self
            .view("samples", async { v.samples().call().await })
            .await?;
        let verifying_key_hash = self
            .view("verifyingKeyHash", async {
                v.verifyingKeyHash().call().await
            })
            .await?;
        Ok(CompactVerifierInfo {
            address,
            slots: to_u64("slots", slots)?,
            samples: to_u64("samples", samples)?,
            verifying_key_hash,
        })
    }

    // ------------------------------------------------------------------ requests and slots

    /// A request; `state` is `None` (0) for an unknown id.
    pub async fn get_request(&self, request_id: RequestId) -> Result<RequestInfo, ChainError> {
        self.view("getRequest", async {
            self.inner
                .market
                .getRequest(request_id.to_b256())
                .call()
                .await
        })
        .await
    }

    /// A slot; `state` is `None` for an unknown id.
    pub async fn get_slot(&self, slot_id: SlotId) -> Result<Slot, ChainError> {
        let s = self
            .view("getSlot", async {
                self.inner.market.getSlot(slot_id.to_b256()).call().await
            })
            .await?;
        Ok(Slot {
            request_id: RequestId(s.requestId.0),
            index: SlotIndex(u16::try_from(s.slotIndex).map_err(|_| {
                ChainError::Other(format!("getSlot: slot index {} is not a u16", s.slotIndex))
            })?),
            state: SlotState::try_from(s.state)?,
            host: s.host,
            filled_at: s.filledAt,
            filled_period: s.filledPeriod,
            missed_proofs: u64::from(s.missedProofs),
            slot_root: Hash(s.slotRoot.0),
            commitment: Hash(s.commitment.0),
        })
    }

    /// A request's state, with Cancelled and Finished applied as soon as time says so.
    pub async fn request_state(&self, request_id: RequestId) -> Result<RequestState, ChainError> {
        let s = self
            .view("requestState", async {
                self.inner
                    .market
                    .requestState(request_id.to_b256())
                    .call()
                    .await
            })
            .await?;
        RequestState::try_from(s)
    }

    /// A slot's state, with the request's end state applied.
    pub async fn slot_state(&self, slot_id: SlotId) -> Result<SlotState, ChainError> {
        let s = self
            .view("slotState", async {
                self.inner.market.slotState(slot_id.to_b256()).call().await
            })
            .await?;
        SlotState::try_from(s)
    }

    /// What the slot's current host earned so far and the collateral it would get back.
    pub async fn slot_payout(&self, slot_id: SlotId) -> Result<(U256, U256), ChainError> {
        let p = self
            .view("slotPayout", async {
                self.inner.market.slotPayout(slot_id.to_b256()).call().await
            })
            .await?;
        Ok((p.earned, p.collateral))
    }

    /// What `withdrawRequest` would pay the renter.
    pub async fn renter_refund(&self, request_id: RequestId) -> Result<U256, ChainError> {
        self.view("renterRefund", async {
            self.inner
                .market
                .renterRefund(request_id.to_b256())
                .call()
                .await
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
    pub async fn slot_collateral(&self, request_id: RequestId) -> Result<U256, ChainError> {
        self.view("slotCollateral", async {
            self.inner
                .market
                .slotCollateral(request_id.to_b256())
                .call()
                .await
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

    /// What `extendRequest(request_id, extra_seconds)` pulls from the renter:
    /// price · slotSize · slots · extra_seconds. Reverts (`UnknownRequest`, `RequestNotActive`,
    /// `InvalidExtension`, `PriceOverflow`) as the extension itself would, whoever asks.
    pub async fn extension_cost(
        &self,
        request_id: RequestId,
        extra_seconds: u64,
    ) -> Result<U256, ChainError> {
        self.view("extensionCost", async {
            self.inner
                .market
                .extensionCost(request_id.to_b256(), U256::from(extra_seconds))
                .call()
                .await
        })
        .await
    }

    /// The id the next request of `renter` will get.
    pub async fn next_request_id(&self, renter: Address) -> Result<RequestId, ChainError> {
        let id = self
            .view("nextRequestId", async {
                self.inner.market.nextRequestId(renter).call().await
            })
            .await?;
        Ok(RequestId(id.0))
    }

    /// Every slot `host` ever filled, oldest first (a refilled slot appears again).
    pub async fn host_slots(&self, host: Address) -> Result<Vec<SlotId>, ChainError> {
        let m = &self.inner.market;
        let count = self
            .view("hostSlotCount", async {
                m.hostSlotCount(host).call().await
            })
            .await?;
        let ids = self
            .pages("hostSlots", count, |offset, limit| async move {
                m.hostSlots(host, offset, limit).call().await
            })
            .await?;
        Ok(ids.into_iter().map(|id| SlotId(id.0)).collect())
    }

    /// Every request of `renter`, oldest first.
    pub async fn renter_requests(&self, renter: Address) -> Result<Vec<RequestId>, ChainError> {
        let m = &self.inner.market;
        let count = self
            .view("renterRequestCount", async {
                m.renterRequestCount(renter).call().await
            })
            .await?;
        let ids = self
            .pages("renterRequests", count, |offset, limit| async move {
                m.renterRequests(renter, offset, limit).call().await
            })
            .await?;
        Ok(ids.into_iter().map(|id| RequestId(id.0)).collect())
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
}
