// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

import {BlockHashRandomness} from "../src/randomness/BlockHashRandomness.sol";
import {IRandomness} from "../src/randomness/IRandomness.sol";
import {vm} from "./utils/Vm.sol";

/// @notice Answers like the EIP-2935 history contract: the 32-byte block number in, its hash out.
contract FakeHistory {
    fallback(bytes calldata input) external returns (bytes memory) {
        uint256 n = abi.decode(input, (uint256));
        if (n >= block.number || block.number - n > 8191) revert();
        return abi.encode(keccak256(abi.encode("history", n)));
    }
}

contract RandomnessTest {
    BlockHashRandomness internal randomness;
    address internal history;

    function setUp() public {
        randomness = new BlockHashRandomness();
        history = randomness.HISTORY();
        vm.roll(10_000);
    }

    function _installHistory() internal {
        vm.etch(history, address(new FakeHistory()).code);
    }

    function test_SeedAt_IsBlockHashWithin256Blocks() public {
        vm.setBlockhash(9_999, keccak256("a"));
        vm.setBlockhash(9_744, keccak256("b"));
        vm.assertEq(randomness.seedAt(9_999), keccak256("a"));
        vm.assertEq(randomness.seedAt(9_744), keccak256("b"));
    }

    function test_Horizon_Is256WithoutHistory() public view {
        vm.assertEq(randomness.horizon(), 256);
    }

    function test_Horizon_Is8191WithHistory() public {
        _installHistory();
        vm.assertEq(randomness.horizon(), 8191);
    }

    function test_SeedAt_UsesHistoryPast256Blocks() public {
        _installHistory();
        vm.assertEq(randomness.seedAt(10_000 - 257), keccak256(abi.encode("history", uint256(10_000 - 257))));
        vm.assertEq(
            randomness.seedAt(10_000 - 8191), keccak256(abi.encode("history", uint256(10_000 - 8191)))
        );
    }

    function test_RevertWhen_SeedOfCurrentBlock() public {
        vm.expectRevert(abi.encodeWithSelector(IRandomness.SeedUnavailable.selector, 10_000));
        randomness.seedAt(10_000);
    }

    function test_RevertWhen_SeedOfFutureBlock() public {
        vm.expectRevert(abi.encodeWithSelector(IRandomness.SeedUnavailable.selector, 10_001));
        randomness.seedAt(10_001);
    }

    function test_RevertWhen_SeedOlderThan256WithoutHistory() public {
        vm.expectRevert(abi.encodeWithSelector(IRandomness.SeedUnavailable.selector, 10_000 - 257));
        randomness.seedAt(10_000 - 257);
    }

    function test_RevertWhen_SeedOlderThanHistoryWindow() public {
        _installHistory();
        vm.expectRevert(abi.encodeWithSelector(IRandomness.SeedUnavailable.selector, 10_000 - 8192));
        randomness.seedAt(10_000 - 8192);
    }

    function test_RevertWhen_HistoryHasNoHash() public {
        // Blocks older than the chain's EIP-2935 activation read as zero.
        vm.etch(history, hex"60205ff3"); // PUSH1 32 PUSH0 RETURN: 32 zero bytes, like an unset entry
        vm.expectRevert(abi.encodeWithSelector(IRandomness.SeedUnavailable.selector, 10_000 - 300));
        randomness.seedAt(10_000 - 300);
    }
}
