// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

import {Challenges} from "../../src/libraries/Challenges.sol";
import {TreeHash} from "../../src/libraries/TreeHash.sol";

/// @notice A prover for tests: builds whole slot trees over deterministic cell contents and makes
/// direct proofs and dataset paths the way the prover crate does (see the protocol brief). Slow
/// (it hashes every cell), so tests use slots of a few blocks; the 1 GiB cases come from
/// testdata/vectors.json.
library SlotBuilder {
    uint256 internal constant CELL_SIZE = 256;

    struct Slot {
        bytes32 content; // seed of the cell contents
        uint256 cellCount;
        bytes32[][] levels; // levels[0] = leaves (padded to a power of two), last = [root]
    }

    /// @notice Cell `i` of a slot: 256 pseudo-random bytes; all zero past cellCount (padding).
    function cell(bytes32 content, uint256 cellCount, uint256 i) internal pure returns (bytes memory c) {
        c = new bytes(CELL_SIZE);
        if (i >= cellCount) return c;
        for (uint256 w; w < CELL_SIZE / 32; ++w) {
            bytes32 word = keccak256(abi.encode(content, i, w));
            assembly ("memory-safe") {
                mstore(add(add(c, 0x20), mul(w, 0x20)), word)
            }
        }
    }

    /// @notice SHA-256(0x00 ‖ cell i), computed in scratch memory (tree building is the slow part
    /// of the tests).
    function leafOf(bytes32 content, uint256 cellCount, uint256 i) internal view returns (bytes32 h) {
        if (i >= cellCount) return sha256(abi.encodePacked(bytes1(0x00), new bytes(CELL_SIZE)));
        assembly ("memory-safe") {
            let p := mload(0x40)
            let q := add(p, 0x120)
            mstore(q, content)
            mstore(add(q, 0x20), i)
            for { let w := 0 } lt(w, 8) { w := add(w, 1) } {
                mstore(add(q, 0x40), w)
                mstore(add(add(p, 0x01), mul(w, 0x20)), keccak256(q, 0x60))
            }
            mstore8(p, 0x00)
            if iszero(staticcall(gas(), 0x02, p, 0x101, 0x00, 0x20)) { revert(0x00, 0x00) }
            h := mload(0x00)
        }
    }

    function build(bytes32 content, uint256 cellCount) internal view returns (Slot memory slot) {
        slot.content = content;
        slot.cellCount = cellCount;
        uint256 width = 1;
        uint256 depth;
        while (width < cellCount) {
            width <<= 1;
            ++depth;
        }
        slot.levels = new bytes32[][](depth + 1);
        bytes32[] memory leaves = new bytes32[](width);
        bytes32 padding = leafOf(content, 0, 0);
        for (uint256 i; i < width; ++i) {
            leaves[i] = i < cellCount ? leafOf(content, cellCount, i) : padding;
        }
        slot.levels[0] = leaves;
        for (uint256 l = 1; l <= depth; ++l) {
            bytes32[] memory below = slot.levels[l - 1];
            bytes32[] memory level = new bytes32[](below.length / 2);
            for (uint256 i; i < level.length; ++i) {
                level[i] = TreeHash.node(below[2 * i], below[2 * i + 1]);
            }
            slot.levels[l] = level;
        }
    }

    function root(Slot memory slot) internal pure returns (bytes32) {
        return slot.levels[slot.levels.length - 1][0];
    }

    /// @notice The sorted, de-duplicated sample indices of a challenge.
    function uniqueSamples(bytes32 seed, bytes32 slotId, uint256 samples, uint256 cellCount)
        internal
        pure
        returns (uint256[] memory)
    {
        return Challenges.sortUnique(Challenges.sampleIndices(seed, slotId, samples, cellCount));
    }

    /// @notice The direct proof (`cells ‖ siblings`) of the cells at `indices` (sorted, unique).
    function prove(Slot memory slot, uint256[] memory indices) internal pure returns (bytes memory proof) {
        uint256 n = indices.length;
        for (uint256 i; i < n; ++i) {
            proof = bytes.concat(proof, cell(slot.content, slot.cellCount, indices[i]));
        }
        uint256[] memory known = new uint256[](n);
        for (uint256 i; i < n; ++i) {
            known[i] = indices[i];
        }
        for (uint256 level; level + 1 < slot.levels.length; ++level) {
            uint256 k;
            uint256 i;
            while (i < n) {
                uint256 idx = known[i];
                if (idx & 1 == 0 && i + 1 < n && known[i + 1] == idx + 1) {
                    i += 2;
                } else {
                    proof = bytes.concat(proof, slot.levels[level][idx ^ 1]);
                    i += 1;
                }
                known[k++] = idx >> 1;
            }
            n = k;
        }
    }

    /// @notice The proof a host sends for the challenge of `slotId` under `seed`.
    function proveChallenge(Slot memory slot, bytes32 seed, bytes32 slotId, uint256 samples)
        internal
        pure
        returns (bytes memory)
    {
        return prove(slot, uniqueSamples(seed, slotId, samples, slot.cellCount));
    }

    /// @notice Root of the dataset tree over `slotRoots` (padded with zero leaves).
    function datasetRoot(bytes32[] memory slotRoots) internal view returns (bytes32) {
        bytes32[] memory level = _padded(slotRoots);
        while (level.length > 1) {
            level = _up(level);
        }
        return level[0];
    }

    /// @notice Path of slot root `index` to the dataset root, bottom up.
    function datasetPath(bytes32[] memory slotRoots, uint256 index)
        internal
        view
        returns (bytes32[] memory path)
    {
        bytes32[] memory level = _padded(slotRoots);
        uint256 depth;
        while ((1 << depth) < level.length) ++depth;
        path = new bytes32[](depth);
        for (uint256 l; l < depth; ++l) {
            path[l] = level[index ^ 1];
            level = _up(level);
            index >>= 1;
        }
    }

    function _padded(bytes32[] memory leaves) private pure returns (bytes32[] memory level) {
        uint256 width = 1;
        while (width < leaves.length) width <<= 1;
        level = new bytes32[](width);
        for (uint256 i; i < leaves.length; ++i) {
            level[i] = leaves[i];
        }
    }

    function _up(bytes32[] memory below) private view returns (bytes32[] memory level) {
        level = new bytes32[](below.length / 2);
        for (uint256 i; i < level.length; ++i) {
            level[i] = TreeHash.node(below[2 * i], below[2 * i + 1]);
        }
    }
}
