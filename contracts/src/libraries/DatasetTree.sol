// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

import {TreeHash} from "./TreeHash.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

/// @title Paths from a slot root to the dataset root
/// @notice The dataset tree's leaves are the k+m slot roots themselves, padded with bytes32(0) to
/// the next power of two; inner nodes use `TreeHash.node`. A path lists siblings bottom up; at
/// level l the running node is the left child iff bit l of the slot index is 0.
library DatasetTree {
    /// @notice Whether `path` leads from `slotRoot`, leaf `slotIndex` of a tree over `slots`
    /// leaves, to `datasetRoot`. The path must have exactly ceil(log2(slots)) entries.
    function verify(
        bytes32 datasetRoot,
        uint256 slots,
        uint256 slotIndex,
        bytes32 slotRoot,
        bytes32[] calldata path
    ) internal view returns (bool) {
        if (slotIndex >= slots || path.length != Math.log2(slots, Math.Rounding.Ceil)) {
            return false;
        }
        bytes32 h = slotRoot;
        for (uint256 level; level < path.length; ++level) {
            h = (slotIndex >> level) & 1 == 0 ? TreeHash.node(h, path[level]) : TreeHash.node(path[level], h);
        }
        return h == datasetRoot;
    }
}
