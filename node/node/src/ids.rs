//! Conversions between the prover's 32-byte ids and alloy's `B256`.

use alloy::primitives::B256;
use hoard_prover::{Hash, RequestId, SlotIndex};

/// `slotId = keccak256(abi.encode(requestId, slotIndex))`.
pub(crate) fn slot_id(request: &B256, index: u16) -> B256 {
    B256::from(hoard_prover::slot_id(&RequestId(request.0), SlotIndex(index)).0)
}

/// A prover hash as `B256`.
pub(crate) fn b256(h: &Hash) -> B256 {
    B256::from(h.0)
}
