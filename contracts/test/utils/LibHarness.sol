// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

import {Challenges} from "../../src/libraries/Challenges.sol";
import {DatasetTree} from "../../src/libraries/DatasetTree.sol";
import {DirectProof} from "../../src/libraries/DirectProof.sol";

/// @notice Exposes the proof libraries through external calls (calldata proofs, as on chain).
contract LibHarness {
    function verifyIndices(
        bytes32 root,
        uint256 cellCount,
        uint256[] memory sortedUnique,
        bytes calldata proof
    ) external view returns (bool) {
        return DirectProof.verify(root, cellCount, sortedUnique, proof);
    }

    function verifyChallenge(
        bytes32 root,
        uint256 cellCount,
        bytes32 seed,
        bytes32 slotId,
        uint256 samples,
        bytes calldata proof
    ) external view returns (bool) {
        return DirectProof.verifyChallenge(root, cellCount, seed, slotId, samples, proof);
    }

    function verifyPath(
        bytes32 datasetRoot,
        uint256 slots,
        uint256 slotIndex,
        bytes32 slotRoot,
        bytes32[] calldata path
    ) external view returns (bool) {
        return DatasetTree.verify(datasetRoot, slots, slotIndex, slotRoot, path);
    }
}
