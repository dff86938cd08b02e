// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title Test token for devnets and testnets
/// @notice A plain 18-decimal ERC-20 anyone can mint from, up to `FAUCET_LIMIT` per call. It has
/// no value; never use it on a chain where real payments are meant.
contract HoardTestToken is ERC20 {
    /// @notice Most tokens one faucet call mints (1,000,000 tokens).
    uint256 public constant FAUCET_LIMIT = 1_000_000 ether;

    error FaucetLimitExceeded(uint256 amount, uint256 limit);
    error ZeroFaucetAmount();

    constructor() ERC20("hoard test token", "tHOARD") {}

    /// @notice Mints `amount` tokens to `to`.
    function faucet(address to, uint256 amount) external {
        if (amount == 0) revert ZeroFaucetAmount();
        if (amount > FAUCET_LIMIT) revert FaucetLimitExceeded(amount, FAUCET_LIMIT);
        _mint(to, amount);
    }
}
