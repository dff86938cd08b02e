// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

import {DirectProof} from "./DirectProof.sol";

/// @title The direct proof check as a contract of its own
/// @notice Created by the Marketplace's constructor and called with `staticcall`, only to keep the
/// Marketplace under the 24,576-byte code limit (EIP-170): the check is pure, so moving it costs
/// the call (2.6k gas and a copy of the proof) and changes nothing else.
contract DirectVerifier {
    /// @notice `DirectProof.verifyChallenge`, see there.
    function verifyChallenge(
        bytes32 slotRoot,
        uint256 cellCount,
        bytes32 seed,
        bytes32 slotId,
        uint256 samples,
        bytes calldata proof
    ) external view returns (bool) {
        return DirectProof.verifyChallenge(slotRoot, cellCount, seed, slotId, samples, proof);
    }
}
