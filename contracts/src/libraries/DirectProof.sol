// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

import {TreeHash} from "./TreeHash.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

/// @title Verifier of direct storage proofs
/// @notice A direct proof is `cells ‖ siblings`: the challenged 256-byte cells in ascending index
/// order (duplicates removed), then the 32-byte sibling hashes the multiproof needs, in the order
/// the verifier consumes them. Nodes that two samples share are computed, not sent.
/// @dev Mirrors the prover crate's algorithm exactly (see /docs/contracts.md, "Direct proofs"):
/// level by level, a known node at an even index merges with a known right neighbour, otherwise
/// it takes its sibling from the proof. The proof is valid iff the walk ends in the slot root and
/// consumes every byte.
library DirectProof {
    /// @notice Depth of the slot tree: ceil(log2(cellCount)).
    function depth(uint256 cellCount) internal pure returns (uint256) {
        return Math.log2(cellCount, Math.Rounding.Ceil);
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
    function _climb(
        uint256[] memory indices,
        bytes32[] memory hashes,
        uint256 n,
        bytes calldata proof,
        uint256 next
    ) private view returns (uint256 k, uint256) {
        uint256 i;
        while (i < n) {
            uint256 index = indices[i];
            bytes32 parent;
            if (index & 1 == 0 && i + 1 < n && indices[i + 1] == index + 1) {
                parent = TreeHash.node(hashes[i], hashes[i + 1]);
                i += 2;
            } else {
                if (next == proof.length) return (0, next);
                bytes32 sibling = bytes32(proof[next:next + 32]);
                next += 32;
                parent =
                    index & 1 == 0 ? TreeHash.node(hashes[i], sibling) : TreeHash.node(sibling, hashes[i]);
                i += 1;
            }
            indices[k] = index >> 1;
            hashes[k] = parent;
            ++k;
        }
        return (k, next);
    }
}
