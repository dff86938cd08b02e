// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

import {HoardTestToken} from "../src/token/HoardTestToken.sol";
import {vm} from "./utils/Vm.sol";

contract HoardTestTokenTest {
    HoardTestToken internal token;

    function setUp() public {
        token = new HoardTestToken();
    }

    function test_Faucet_MintsToAnyone() public {
        token.faucet(address(0xB0B), 5 ether);
        vm.assertEq(token.balanceOf(address(0xB0B)), 5 ether);
        vm.assertEq(token.totalSupply(), 5 ether);
        vm.assertEq(token.decimals(), 18);
        vm.assertEq(token.symbol(), "tHOARD");
    }

    function test_Faucet_UpToLimit() public {
        token.faucet(address(1), token.FAUCET_LIMIT());
        vm.assertEq(token.balanceOf(address(1)), 1_000_000 ether);
    }

    function test_RevertWhen_FaucetAboveLimit() public {
        uint256 limit = token.FAUCET_LIMIT();
        vm.expectRevert(abi.encodeWithSelector(HoardTestToken.FaucetLimitExceeded.selector, limit + 1, limit));
        token.faucet(address(1), limit + 1);
    }

    function test_RevertWhen_FaucetZero() public {
        vm.expectRevert(abi.encodeWithSelector(HoardTestToken.ZeroFaucetAmount.selector));
        token.faucet(address(1), 0);
    }
}
