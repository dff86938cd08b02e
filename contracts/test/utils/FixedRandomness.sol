// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

import {IRandomness} from "../../src/randomness/IRandomness.sol";

/// @notice A randomness source that returns one settable seed for every past block. Lets the gas
/// measurement on anvil replay the seeds of testdata/vectors.json. Never deploy it for users.
contract FixedRandomness is IRandomness {
    bytes32 public seed;

    function setSeed(bytes32 newSeed) external {
        seed = newSeed;
    }

    function seedAt(uint256 blockNumber) external view returns (bytes32) {
        if (blockNumber >= block.number) revert SeedUnavailable(blockNumber);
        return seed;
    }

    function horizon() external pure returns (uint256) {
        return 256;
    }
}
