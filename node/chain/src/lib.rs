//! hoard's chain client: Marketplace bindings, transactions, event following. Every node role
//! (renter, host, auditor) talks to the chain through it.
//!
//! ```text
//!                    ┌──────────────── Chain (Clone; Arc inside) ────────────────┐
//!  node tasks ──────▶│ views: getRequest, challenge, hostSlots, balances, …      │──┐
//!                    │ txs:   requestStorage, extendRequest, fillSlot, …          │  │
//!                    └──────────────┬────────────────────────────────────────────┘  │
//!                                   │ Job (bounded mpsc, oneshot reply)               │
//!                                   ▼                                                 ▼
//!                    TxSender task (one per signer, owns the nonce)            Rpc wrapper:
//!                     approve if short → simulate → estimate+margin → sign     timeout, metrics,
//!                     → broadcast ─▶ receipt task (timeout, re-broadcast,      error decoding
//!                                      status check) ─▶ reply                        │
//!                                                                                    ▼
//!                                                                   provider (HTTP, no fillers)
//!
//!  EventFollower::poll(chain, Some(cursor)) ─▶ check cursor hash (reorg? walk back)
//!      ─▶ eth_getLogs in ranges up to head − confirmations ─▶ Poll { events, cursor, reorg }
//!      (the node applies events idempotently, stores the cursor, polls again)
//! ```
//!
//! - [`client`]: [`Chain`], [`ChainConfig`], views and transactions.
//! - `tx`: the per-signer transaction actor (nonce, simulation, receipts, re-broadcast).
//! - [`events`]: [`EventFollower`], [`MarketEvent`], [`Cursor`].
//! - [`error`]: [`ChainError`], with revert data decoded to the custom error's name.
//! - [`deployment`]: the deployment file `contracts/script/deploy.sh` writes.
//! - `devnet` (feature `devnet`): anvil for tests and `hoard devnet`, deployment from the
//!   artifacts, faucet.
//! - [`metrics`]: RPC and transaction metrics in the caller's registry.
//! - [`bindings`]: `sol!` bindings from `contracts/artifacts/`.
//!
//! Ids: the contract speaks `B256`; this crate's API speaks hoard's newtypes (`RequestId`,
//! `SlotId`, `Seed`, `DatasetId`, `Hash`, `SlotIndex`) and converts at its edge with [`B256Ext`].
//! [`Periods`] is the period arithmetic every role uses.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

pub mod bindings;
pub mod client;
pub mod deployment;
#[cfg(feature = "devnet")]
pub mod devnet;
pub mod error;
pub mod events;
pub mod metrics;
pub mod periods;
mod rpc;
pub mod state;
mod tx;

pub use alloy::primitives::{Address, B256, Bytes, U256};
pub use alloy::signers::local::PrivateKeySigner;
pub use bindings::Marketplace::MarketplaceErrors;
pub use bindings::Marketplace::{MarketplaceConfig, RequestInfo, RequestParams};
pub use client::{Chain, ChainConfig, CompactVerifierInfo, Extension, HostInfo, Slot, TxOutcome};
pub use deployment::Deployment;
#[cfg(feature = "devnet")]
pub use devnet::{DeploySettings, LocalChain, deploy, find_anvil, fund};
pub use error::{ChainError, NodeRejection, RevertReason};
pub use events::{ChainEvent, Cursor, EventFollower, MarketEvent, Poll};
pub use metrics::ChainMetrics;
pub use periods::Periods;
pub use state::{ProofStatus, RequestState, SlotState};

use hoard_prover::{DatasetId, Hash, RequestId, Seed, SlotId};

/// Conversions between the prover's 32-byte newtypes and alloy's `B256` (the orphan rule rules
/// out `From` impls between two foreign types).
pub trait B256Ext: Sized {
    /// As a `B256`.
    fn to_b256(&self) -> B256;
    /// From a `B256`.
    fn from_b256(value: B256) -> Self;
}

macro_rules! b256_ext {
    ($($t:ty),+) => {$(
        impl B256Ext for $t {
            fn to_b256(&self) -> B256 {
                B256::from(self.0)
            }

            fn from_b256(value: B256) -> Self {
                Self(value.0)
            }
        }
    )+};
}

b256_ext!(RequestId, SlotId, Seed, Hash, DatasetId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_slot_ids_match_the_contract() {
        use alloy::sol_types::SolValue;
        let request = RequestId([7; 32]);
        let b = request.to_b256();
        assert_eq!(b, B256::repeat_byte(7));
        assert_eq!(RequestId::from_b256(b), request);
        // The Marketplace's slotId: keccak256(abi.encode(requestId, uint256(slotIndex))).
        let contract = alloy::primitives::keccak256((b, U256::from(3)).abi_encode());
        let prover_slot = hoard_prover::slot_id(&request, hoard_prover::SlotIndex(3));
        assert_eq!(SlotId::from_b256(contract), prover_slot);
    }
}
