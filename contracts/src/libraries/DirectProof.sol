// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

import {Challenges} from "./Challenges.sol";
import {TreeHash} from "./TreeHash.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

/// @title Verifier of direct storage proofs
/// @notice A direct proof is `cells ‖ siblings`: the challenged 256-byte cells in ascending index
/// order (duplicates removed), then the 32-byte sibling hashes the multiproof needs, in the order
/// the verifier consumes them. Nodes that two samples share are computed, not sent.
/// @dev Mirrors the prover crate's algorithm exactly (docs/protocol.md, "Wire form" and "Verification"):
/// level by level, a known node at an even index merges with a known right neighbour, otherwise
/// it takes its sibling from the proof. The proof is valid iff the walk ends in the slot root and
/// consumes every byte.
library DirectProof {
    /// @notice Depth of the slot tree: ceil(log2(cellCount)).
    function depth(uint256 cellCount) internal pure returns (uint256) {
        return Math.log2(cellCount, Math.Rounding.Ceil);
    }

    /// @notice Whether `proof` answers the challenge `seed` sets for slot `slotId`: derives the
    /// sample indices (docs/protocol.md §5), sorts and dedups them, and verifies.
    function verifyChallenge(
        bytes32 root,
        uint256 cellCount,
        bytes32 seed,
        bytes32 slotId,
        uint256 samples,
        bytes calldata proof
    ) internal view returns (bool) {
        uint256[] memory indices =
            Challenges.sortUnique(Challenges.sampleIndices(seed, slotId, samples, cellCount));
        return verify(root, cellCount, indices, proof);
    }

    /// @notice Whether `proof` shows the cells at `indices` under `root`.
    /// @param root the slot root.
    /// @param cellCount real cells in the slot (the tree is padded to the next power of two).
    /// @param indices sample indices, sorted ascending without duplicates, each below cellCount.
    /// Overwritten (used as the work list).
    /// @param proof `cells ‖ siblings`.
    function verify(bytes32 root, uint256 cellCount, uint256[] memory indices, bytes calldata proof)
        internal
        view
        returns (bool)
    {
        uint256 n = indices.length;
        uint256 next = n * TreeHash.CELL_SIZE; // offset of the next sibling in `proof`
        if (n == 0 || proof.length < next || (proof.length - next) % 32 != 0) return false;

        bytes32[] memory hashes = new bytes32[](n);
        for (uint256 i; i < n; ++i) {
            hashes[i] = TreeHash.leaf(proof, i * TreeHash.CELL_SIZE);
        }
        for (uint256 level = depth(cellCount); level > 0; --level) {
            (n, next) = _climb(indices, hashes, n, proof, next);
            if (n == 0) return false;
        }
        return n == 1 && indices[0] == 0 && hashes[0] == root && next == proof.length;
    }

    /// @dev Replaces the `n` known nodes of one level by their parents, in place. Returns the number
    /// of parents and the new sibling offset, or n = 0 when the proof runs out of siblings.
    /// Assembly because it is the hot loop of every proof (about 300 nodes for 16 samples of a
    /// 1 GiB slot). docs/protocol.md ("Verification") is the specification it follows.
    function _climb(
        uint256[] memory indices,
        bytes32[] memory hashes,
        uint256 n,
        bytes calldata proof,
        uint256 next
    ) private view returns (uint256 k, uint256) {
        assembly ("memory-safe") {
            let idx := add(indices, 0x20)
            let hs := add(hashes, 0x20)
            // Scratch past the free memory pointer: 0x01 ‖ left ‖ right.
            let p := mload(0x40)
            mstore8(p, 0x01)
            let i := 0
            for {} lt(i, n) {} {
                let index := mload(add(idx, shl(5, i)))
                let step := 1
                switch and(index, 1)
                case 0 {
                    mstore(add(p, 0x01), mload(add(hs, shl(5, i))))
                    // A known right neighbour: the parent needs no sibling from the proof.
                    switch and(lt(add(i, 1), n), eq(mload(add(idx, shl(5, add(i, 1)))), add(index, 1)))
                    case 1 {
                        mstore(add(p, 0x21), mload(add(hs, shl(5, add(i, 1)))))
                        step := 2
                    }
                    default {
                        if eq(next, proof.length) {
                            k := 0
                            break
                        }
                        mstore(add(p, 0x21), calldataload(add(proof.offset, next)))
                        next := add(next, 0x20)
                    }
                }
                default {
                    if eq(next, proof.length) {
                        k := 0
                        break
                    }
                    mstore(add(p, 0x21), mload(add(hs, shl(5, i))))
                    mstore(add(p, 0x01), calldataload(add(proof.offset, next)))
                    next := add(next, 0x20)
                }
                // k <= i: the parent overwrites an entry already read.
                if iszero(staticcall(gas(), 0x02, p, 0x41, add(hs, shl(5, k)), 0x20)) {
                    revert(0x00, 0x00)
                }
                mstore(add(idx, shl(5, k)), shr(1, index))
                k := add(k, 1)
                i := add(i, step)
            }
        }
        return (k, next);
    }
}
