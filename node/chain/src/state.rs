//! The Marketplace's enums. The ABI carries them as `uint8`; these give them names and refuse
//! values the contract never returns.

use serde::{Deserialize, Serialize};

use crate::error::ChainError;

macro_rules! abi_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $value:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[repr(u8)]
        pub enum $name {
            $($(#[$vdoc])* $variant = $value,)+
        }

        impl TryFrom<u8> for $name {
            type Error = ChainError;

            fn try_from(value: u8) -> Result<Self, ChainError> {
                match value {
                    $($value => Ok(Self::$variant),)+
                    other => Err(ChainError::Other(format!(
                        "the contract returned {} {other}, which this client does not know — \
                         is the node older than the contract?",
                        stringify!($name)
                    ))),
                }
            }
        }

        impl From<$name> for u8 {
            fn from(value: $name) -> u8 {
                value as u8
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Debug::fmt(self, f)
            }
        }
    };
}

abi_enum!(
    /// Lifecycle of a storage request (`requestState`, `RequestInfo.state`).
    RequestState {
        /// Unknown request id.
        None = 0,
        /// Waiting for its slots to be filled.
        New = 1,
        /// Every slot was filled.
        Started = 2,
        /// Expired before every slot was filled.
        Cancelled = 3,
        /// Ran its duration.
        Finished = 4,
        /// Lost more than `maxSlotLoss` slots at once.
        Failed = 5,
    }
);

abi_enum!(
    /// Lifecycle of one slot (`slotState`, `SlotInfo.state`).
    SlotState {
        /// Unknown slot id.
        None = 0,
        /// Waiting for a host.
        Free = 1,
        /// Held by a host.
        Filled = 2,
        /// Its host was evicted; waiting for a new host.
        Repair = 3,
        /// The request finished.
        Finished = 4,
        /// The request failed.
        Failed = 5,
        /// The request was cancelled.
        Cancelled = 6,
        /// The host withdrew.
        Paid = 7,
    }
);

abi_enum!(
    /// Whether the proof of a slot for a period was submitted or marked missing (`proofStatus`).
    ProofStatus {
        /// Neither (yet).
        None = 0,
        /// The host proved the period.
        Submitted = 1,
        /// Somebody marked the proof missing.
        Missed = 2,
    }
);

impl RequestState {
    /// Whether the request has ended (withdrawals are open).
    pub fn has_ended(self) -> bool {
        matches!(self, Self::Cancelled | Self::Finished | Self::Failed)
    }
}

impl SlotState {
    /// Whether the slot's request has ended (its host may withdraw, or already did).
    pub fn has_ended(self) -> bool {
        matches!(
            self,
            Self::Finished | Self::Failed | Self::Cancelled | Self::Paid
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_match_the_contract_and_unknown_ones_are_refused() {
        assert_eq!(
            RequestState::try_from(2).expect("known"),
            RequestState::Started
        );
        assert_eq!(SlotState::try_from(7).expect("known"), SlotState::Paid);
        assert_eq!(
            ProofStatus::try_from(2).expect("known"),
            ProofStatus::Missed
        );
        assert_eq!(u8::from(SlotState::Repair), 3);
        assert!(RequestState::try_from(6).is_err());
        assert!(SlotState::try_from(8).is_err());
        assert!(ProofStatus::try_from(3).is_err());
        assert!(RequestState::Failed.has_ended() && !RequestState::Started.has_ended());
    }
}
