// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

/// @title Slot ids and per-period challenges
/// @notice All keccak256 over 32-byte words (abi.encode), exactly as the prover crate computes them:
/// - slotId   = keccak256(abi.encode(requestId, slotIndex))
/// - required = keccak256(abi.encode(seed, slotId)) % proofProbability == 0
/// - sample j = keccak256(abi.encode(seed, slotId, j)) % cellCount, j = 0 .. samples-1
library Challenges {
    function slotId(bytes32 requestId, uint256 slotIndex) internal pure returns (bytes32 id) {
        assembly ("memory-safe") {
            mstore(0x00, requestId)
            mstore(0x20, slotIndex)
            id := keccak256(0x00, 0x40)
        }
    }

    /// @notice Whether a proof is required of `slot` in the period whose seed is `seed`.
    function isRequired(bytes32 seed, bytes32 slot, uint256 proofProbability) internal pure returns (bool) {
        bytes32 h;
        assembly ("memory-safe") {
            mstore(0x00, seed)
            mstore(0x20, slot)
            h := keccak256(0x00, 0x40)
        }
        return uint256(h) % proofProbability == 0;
    }

    /// @notice The sample indices in `j` order, duplicates kept.
    function sampleIndices(bytes32 seed, bytes32 slot, uint256 samples, uint256 cellCount)
        internal
        pure
        returns (uint256[] memory indices)
    {
        indices = new uint256[](samples);
        for (uint256 j; j < samples; ++j) {
            bytes32 h;
            assembly ("memory-safe") {
                let p := mload(0x40)
                mstore(p, seed)
                mstore(add(p, 0x20), slot)
                mstore(add(p, 0x40), j)
                h := keccak256(p, 0x60)
            }
            indices[j] = uint256(h) % cellCount;
        }
    }

    /// @notice Sorts `indices` ascending in place and drops duplicates (shortening the array).
    function sortUnique(uint256[] memory indices) internal pure returns (uint256[] memory) {
        uint256 n = indices.length;
        // Insertion sort: at most a few hundred entries.
        for (uint256 i = 1; i < n; ++i) {
            uint256 v = indices[i];
            uint256 j = i;
            while (j > 0 && indices[j - 1] > v) {
                indices[j] = indices[j - 1];
                --j;
            }
            indices[j] = v;
        }
        uint256 u = n == 0 ? 0 : 1;
        for (uint256 i = 1; i < n; ++i) {
            if (indices[i] != indices[u - 1]) indices[u++] = indices[i];
        }
        assembly ("memory-safe") {
            mstore(indices, u)
        }
        return indices;
    }
}
