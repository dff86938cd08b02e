// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

/// @title Proof periods
/// @notice Period p covers blocks [p·L, (p+1)·L). Its seed is fixed by block p·L − 1, the block
/// just before it starts, so nobody knows it before the period and no host can choose it.
/// Period 0 (only on fresh chains) uses the genesis block.
library Periods {
    function periodOf(uint256 blockNumber, uint256 length) internal pure returns (uint256) {
        return blockNumber / length;
    }

    /// @notice The block whose randomness seeds `period`.
    function seedBlock(uint256 period, uint256 length) internal pure returns (uint256) {
        return period == 0 ? 0 : period * length - 1;
    }

    /// @notice The last block of `period`.
    function lastBlock(uint256 period, uint256 length) internal pure returns (uint256) {
        return (period + 1) * length - 1;
    }
}
