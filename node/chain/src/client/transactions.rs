//! Transactions: each goes through the signer's sender task (simulate, estimate, sign, send,
//! wait for the receipt); those that spend tokens name the allowance they need.

use std::future::IntoFuture as _;

use alloy::{
    eips::eip2930::AccessList,
    network::TransactionBuilder,
    primitives::{Address, Bytes, U256},
    providers::Provider as _,
    rpc::types::{TransactionReceipt, TransactionRequest},
    sol_types::{SolCall, SolEvent},
};

use hoard_prover::{Hash, RequestId, SlotId, SlotIndex};

use super::{Chain, Extension, TxOutcome, method_name};
use crate::{
    B256Ext as _,
    bindings::{
        HoardTestToken,
        Marketplace::{self, MarketplaceErrors, RequestParams},
    },
    error::{ChainError, RevertReason},
    tx::Allowance,
};

impl Chain {
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
    ) -> Result<(RequestId, TxOutcome), ChainError> {
        let d = &self.inner.deployment;
        // escrowFor validates the parameters: its revert is requestStorage's.
        let escrow = self
            .escrow_for(&params)
            .await
            .map_err(|e| self.revert_as::<Marketplace::requestStorageCall>(e))?;
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
            .map(|event| RequestId(event.requestId.0))
            .ok_or_else(|| {
                ChainError::Other(format!(
                    "requestStorage transaction {} emitted no StorageRequested event",
                    receipt.transaction_hash
                ))
            })?;
        Ok((request_id, TxOutcome::of(&receipt)))
    }

    /// Extends a running request of this account by `extra_seconds`; approves the token for
    /// exactly the extension's cost first if the allowance is short. Returns the new end and the
    /// payment (from its `RequestExtended` event).
    pub async fn extend_request(
        &self,
        request_id: RequestId,
        extra_seconds: u64,
    ) -> Result<(Extension, TxOutcome), ChainError> {
        let d = &self.inner.deployment;
        let me = self.address().ok_or(ChainError::NoSigner)?;
        // Only the renter may extend; say so before approving anything (an unknown request has
        // no renter and fails in extensionCost below).
        let renter = self.get_request(request_id).await?.renter;
        if renter != Address::ZERO && renter != me {
            let error = Marketplace::NotRenter { caller: me, renter };
            let revert = ChainError::Revert {
                method: String::new(),
                reason: RevertReason::Marketplace(Box::new(MarketplaceErrors::NotRenter(error))),
            };
            return Err(self.revert_as::<Marketplace::extendRequestCall>(revert));
        }
        // extensionCost checks the request and the extension: its revert is extendRequest's
        // (and nothing is approved for an extension that cannot happen).
        let cost = self
            .extension_cost(request_id, extra_seconds)
            .await
            .map_err(|e| self.revert_as::<Marketplace::extendRequestCall>(e))?;
        let allowance = Allowance {
            token: d.token,
            spender: d.marketplace,
            amount: cost,
        };
        let call = Marketplace::extendRequestCall {
            requestId: request_id.to_b256(),
            extraSeconds: U256::from(extra_seconds),
        };
        let receipt = self.transact(d.marketplace, call, Some(allowance)).await?;
        let extension = receipt
            .inner
            .logs()
            .iter()
            .filter(|log| log.address() == d.marketplace)
            .find_map(|log| Marketplace::RequestExtended::decode_log_data(log.data()).ok())
            .filter(|event| event.requestId == request_id.to_b256())
            .map(|event| Extension {
                ends_at: event.endsAt,
                payment: event.payment,
            })
            .ok_or_else(|| {
                ChainError::Other(format!(
                    "extendRequest transaction {} emitted no RequestExtended event",
                    receipt.transaction_hash
                ))
            })?;
        Ok((extension, TxOutcome::of(&receipt)))
    }

    /// A view's revert reported as the revert of transaction `C` it stands in for (and counted
    /// as one); other errors pass through.
    fn revert_as<C: SolCall>(&self, e: ChainError) -> ChainError {
        match e {
            ChainError::Revert { reason, .. } => {
                let method = method_name::<C>();
                self.metrics()
                    .tx_reverted
                    .with_label_values(&[method])
                    .inc();
                ChainError::Revert {
                    method: method.to_owned(),
                    reason,
                }
            }
            e => e,
        }
    }

    /// Fills slot `slot_index` of a request with its first proof; approves the slot's full
    /// collateral first if the allowance is short (a slot in Repair pulls less; the rest of the
    /// allowance stays unused).
    pub async fn fill_slot(
        &self,
        request_id: RequestId,
        slot_index: SlotIndex,
        slot_root: Hash,
        root_path: &[Hash],
        proof: Bytes,
    ) -> Result<TxOutcome, ChainError> {
        let d = &self.inner.deployment;
        let allowance = self.fill_allowance(request_id).await?;
        let call = Marketplace::fillSlotCall {
            requestId: request_id.to_b256(),
            slotIndex: U256::from(slot_index.0),
            slotRoot: slot_root.to_b256(),
            rootPath: root_path.iter().map(|h| h.to_b256()).collect(),
            proof,
        };
        let receipt = self.transact(d.marketplace, call, Some(allowance)).await?;
        Ok(TxOutcome::of(&receipt))
    }

    /// The allowance a fill of `request_id` needs: the slot's collateral, for the marketplace.
    async fn fill_allowance(&self, request_id: RequestId) -> Result<Allowance, ChainError> {
        let d = &self.inner.deployment;
        Ok(Allowance {
            token: d.token,
            spender: d.marketplace,
            amount: self.slot_collateral(request_id).await?,
        })
    }

    /// Fills slot `slot_index` of a compact request: as [`Chain::fill_slot`], and binds the
    /// slot's Poseidon `commitment` (a big-endian field element) by its `commitment_path` to the
    /// request's compact root.
    #[allow(clippy::too_many_arguments)]
    pub async fn fill_compact_slot(
        &self,
        request_id: RequestId,
        slot_index: SlotIndex,
        slot_root: Hash,
        root_path: &[Hash],
        proof: Bytes,
        commitment: Hash,
        commitment_path: &[Hash],
    ) -> Result<TxOutcome, ChainError> {
        let d = &self.inner.deployment;
        let allowance = self.fill_allowance(request_id).await?;
        let call = Marketplace::fillCompactSlotCall {
            requestId: request_id.to_b256(),
            slotIndex: U256::from(slot_index.0),
            slotRoot: slot_root.to_b256(),
            rootPath: root_path.iter().map(|h| h.to_b256()).collect(),
            proof,
            commitment: commitment.to_b256(),
            commitmentPath: commitment_path.iter().map(|h| h.to_b256()).collect(),
        };
        let receipt = self.transact(d.marketplace, call, Some(allowance)).await?;
        Ok(TxOutcome::of(&receipt))
    }

    /// Proves the compact slots `slot_ids` (all held by this account) for `period` with one
    /// Groth16 proof in its EVM encoding (`hoard_compact::Proof::to_evm`).
    pub async fn submit_compact_proof(
        &self,
        period: u64,
        slot_ids: &[SlotId],
        proof: [[u8; 32]; 8],
    ) -> Result<TxOutcome, ChainError> {
        // The Marketplace forwards the call unread, so its ABI names no parameters.
        let call = Marketplace::submitCompactProofCall {
            _0: U256::from(period),
            _1: slot_ids.iter().map(|s| s.to_b256()).collect(),
            _2: proof.map(U256::from_be_bytes),
        };
        let sender = self.inner.sender.as_ref().ok_or(ChainError::NoSigner)?;
        let to = self.inner.deployment.marketplace;
        let mut tx = TransactionRequest::default()
            .with_from(sender.address())
            .with_to(to)
            .with_input(call.abi_encode());
        // A batch reads three storage words per slot: prepaying them in an EIP-2930 access list
        // costs 100 gas less each than reading them cold, once the list pays for the
        // Marketplace's own entry. A list that fails to come (an RPC without
        // eth_createAccessList) or would not pay is left out; the proof goes either way.
        let listed = self
            .rpc(
                "eth_createAccessList",
                self.provider().create_access_list(&tx).into_future(),
            )
            .await;
        match listed {
            Ok(r) if r.error.is_none() && access_list_saving(&r.access_list, to) > 0 => {
                tx = tx.with_access_list(r.access_list);
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "no access list for the compact proof"),
        }
        let receipt = sender
            .send(
                method_name::<Marketplace::submitCompactProofCall>(),
                tx,
                None,
            )
            .await?;
        Ok(TxOutcome::of(&receipt))
    }

    /// Proves `slot_id` for the current period.
    pub async fn submit_proof(
        &self,
        slot_id: SlotId,
        proof: Bytes,
    ) -> Result<TxOutcome, ChainError> {
        self.transact_market(Marketplace::submitProofCall {
            id: slot_id.to_b256(),
            proof,
        })
        .await
    }

    /// Marks the missing proof of `slot_id` for `period`.
    pub async fn mark_proof_missing(
        &self,
        slot_id: SlotId,
        period: u64,
    ) -> Result<TxOutcome, ChainError> {
        self.transact_market(Marketplace::markProofMissingCall {
            id: slot_id.to_b256(),
            period: U256::from(period),
        })
        .await
    }

    /// Withdraws a host's pay and collateral after the request ended.
    pub async fn withdraw_slot(&self, slot_id: SlotId) -> Result<TxOutcome, ChainError> {
        self.transact_market(Marketplace::withdrawSlotCall {
            id: slot_id.to_b256(),
        })
        .await
    }

    /// Withdraws a renter's refund after the request ended.
    pub async fn withdraw_request(&self, request_id: RequestId) -> Result<TxOutcome, ChainError> {
        self.transact_market(Marketplace::withdrawRequestCall {
            requestId: request_id.to_b256(),
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

/// Gas an access list saves against the same transaction without it (EIP-2929 and EIP-2930
/// prices): a listed key costs 1,900 and then a warm read (100) instead of a cold one (2,100),
/// and a listed address 2,400 and then a warm access (100) instead of a cold one (2,600); both
/// save 100. Except `to`, which a transaction holds warm anyway: its entry (needed for its keys)
/// is 2,400 for nothing. The list is `eth_createAccessList`'s: only what the call touches. On
/// anvil this predicts the measured difference exactly: a 4-slot batch's list costs 800 gas
/// more, a 32-slot one saves 7,600 (`contracts/script/gas-anvil-compact.sh`).
fn access_list_saving(list: &AccessList, to: Address) -> i64 {
    list.iter()
        .map(|item| {
            let keys = item.storage_keys.len() as i64 * 100;
            if item.address == to {
                keys - 2_400
            } else {
                keys + 100
            }
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use alloy::{eips::eip2930::AccessListItem, primitives::B256};

    use super::*;

    fn item(address: Address, keys: usize) -> AccessListItem {
        AccessListItem {
            address,
            storage_keys: (0..keys).map(|k| B256::with_last_byte(k as u8)).collect(),
        }
    }

    #[test]
    fn an_access_list_pays_once_its_keys_outweigh_the_entry_of_to() {
        let (to, other) = (Address::with_last_byte(1), Address::with_last_byte(2));
        // A compact batch: three words per slot on the Marketplace, three contracts it calls
        // (one with a key). 4 slots: 800 gas more; 32 slots: 7,600 less.
        let batch = |slots: usize| {
            AccessList(vec![
                item(to, 3 * slots),
                item(other, 0),
                item(Address::with_last_byte(3), 0),
                item(Address::with_last_byte(4), 1),
            ])
        };
        assert_eq!(access_list_saving(&batch(4), to), -800);
        assert_eq!(access_list_saving(&batch(32), to), 7_600);
        assert_eq!(access_list_saving(&AccessList::default(), to), 0);
        assert_eq!(
            access_list_saving(&AccessList(vec![item(other, 2)]), to),
            300
        );
    }
}
