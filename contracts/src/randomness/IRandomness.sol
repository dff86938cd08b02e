// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

/// @title Source of period seeds
/// @notice The Marketplace asks for the randomness fixed by one past block. A chain with a better
/// beacon implements this interface and is passed to the Marketplace at deployment.
interface IRandomness {
    /// @notice The randomness is not (or no longer) readable for `blockNumber`.
    error SeedUnavailable(uint256 blockNumber);

    /// @notice The seed fixed by block `blockNumber`. Reverts with `SeedUnavailable` unless the block
    /// is in the past and at most `horizon()` blocks old.
    function seedAt(uint256 blockNumber) external view returns (bytes32);

    /// @notice How many blocks back `seedAt` reaches from the current block.
    function horizon() external view returns (uint256);
}
