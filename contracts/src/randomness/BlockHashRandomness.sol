// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

import {IRandomness} from "./IRandomness.sol";

/// @title Block hashes as period seeds
/// @notice Uses `blockhash` for the last 256 blocks and, where the chain has it, the EIP-2935 block
/// hash history contract for up to 8191 blocks, so periods plus grace windows may be longer than
/// 256 blocks on such chains.
/// @dev A block proposer can withhold its block to re-roll one seed at the cost of its reward;
/// see the threat model in docs/contracts.md.
contract BlockHashRandomness is IRandomness {
    /// @notice EIP-2935 history storage contract (same address on every chain that has it).
    address public constant HISTORY = 0x0000F90827F1C53a10cb7A02335B175320002935;
    /// @notice Blocks the EIP-2935 contract serves.
    uint256 public constant HISTORY_WINDOW = 8191;
    /// @notice Blocks `blockhash` serves.
    uint256 public constant BLOCKHASH_WINDOW = 256;

    /// @inheritdoc IRandomness
    function seedAt(uint256 blockNumber) external view returns (bytes32 seed) {
        if (blockNumber >= block.number) revert SeedUnavailable(blockNumber);
        uint256 age = block.number - blockNumber;
        if (age <= BLOCKHASH_WINDOW) {
            seed = blockhash(blockNumber);
        } else if (age <= HISTORY_WINDOW && HISTORY.code.length != 0) {
            (bool ok, bytes memory ret) = HISTORY.staticcall(abi.encode(blockNumber));
            if (ok && ret.length == 32) seed = abi.decode(ret, (bytes32));
        }
        // Zero: out of reach, or a block older than the chain's EIP-2935 activation.
        if (seed == bytes32(0)) revert SeedUnavailable(blockNumber);
    }

    /// @inheritdoc IRandomness
    function horizon() external view returns (uint256) {
        return HISTORY.code.length != 0 ? HISTORY_WINDOW : BLOCKHASH_WINDOW;
    }
}
