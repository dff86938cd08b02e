// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

import {IMarketplace} from "../../src/IMarketplace.sol";
import {Marketplace} from "../../src/Marketplace.sol";
import {MarketplaceConfig, ProofStatus} from "../../src/MarketplaceTypes.sol";
import {Periods} from "../../src/libraries/Periods.sol";
import {IRandomness} from "../../src/randomness/IRandomness.sol";
import {vm} from "../utils/Vm.sol";
import {AttackTestBase} from "./AttackTestBase.sol";

/// @notice What happens when a period's seed block falls out of `blockhash`'s 256-block reach, on a
/// chain without EIP-2935 (horizon 256) and the longest window the constructor allows there:
/// L = 200, G = 56, L + G = 256 (257 is refused: `test_RevertWhen_GraceWindowBeyondBlockhash`). The
/// mark at the window's last block reads a seed exactly 256 blocks old; one block later the window
/// is closed, the seed is gone, and a missed proof of that period can no longer be punished: the
/// reporter must mark within the window. A host's own proof always reads a seed at most L blocks old.
contract SeedBeyondReachAttackTest is AttackTestBase {
    uint64 internal constant LONG_PERIOD = 200;
    uint64 internal constant LONG_GRACE = 56;

    bytes32 internal id;
    bytes32 internal slot0;
    uint256 internal missed;

    function _deploy(MarketplaceConfig memory cfg) internal override returns (Marketplace) {
        cfg.periodLength = LONG_PERIOD;
        cfg.graceBlocks = LONG_GRACE;
        return new Marketplace(cfg);
    }

    function _rollTo(uint256 blockNumber) internal {
        vm.warp(block.timestamp + (blockNumber - block.number) * BLOCK_TIME);
        vm.roll(blockNumber);
    }

    function setUp() public override {
        super.setUp();
        id = _request();
        _fillAll(id);
        slot0 = market.slotId(id, 0);
        missed = market.currentPeriod() + 1;
        _rollTo(missed * LONG_PERIOD); // host1 stays silent through period `missed`
    }

    function test_SeedBeyondReach_MarkAtTheWindowsLastBlockReadsA256BlockOldSeed() public {
        uint256 lastBlock = Periods.lastBlock(missed, LONG_PERIOD) + LONG_GRACE;
        _rollTo(lastBlock);
        vm.assertEq(block.number - Periods.seedBlock(missed, LONG_PERIOD), 256);
        vm.prank(reporter);
        market.markProofMissing(slot0, missed);
        vm.assertEq(uint256(market.proofStatus(slot0, missed)), uint256(ProofStatus.Missed));
        vm.assertEq(market.rewardOf(reporter), _rewardOf(id));
    }

    function test_SeedBeyondReach_OneBlockLaterTheMissIsUnpunishable() public {
        uint256 lastBlock = Periods.lastBlock(missed, LONG_PERIOD) + LONG_GRACE;
        uint256 seedBlock = Periods.seedBlock(missed, LONG_PERIOD);
        _rollTo(lastBlock + 1);
        (, uint256 collateralBefore) = market.slotPayout(slot0);
        vm.expectRevert(abi.encodeWithSelector(IMarketplace.MarkingWindowClosed.selector, missed, lastBlock));
        vm.prank(reporter);
        market.markProofMissing(slot0, missed);
        // The seed itself is out of reach now: nobody can even recompute that period's challenge.
        vm.expectRevert(abi.encodeWithSelector(IRandomness.SeedUnavailable.selector, seedBlock));
        market.periodSeed(missed);
        vm.expectRevert(abi.encodeWithSelector(IRandomness.SeedUnavailable.selector, seedBlock));
        market.challenge(slot0, missed);
        (, uint256 collateralAfter) = market.slotPayout(slot0);
        vm.assertEq(collateralAfter, collateralBefore, "the late report slashes nothing");
        vm.assertEq(market.rewardOf(reporter), 0);
        // The host's own proofs are unaffected: the current period's seed is at most L blocks old.
        _submit(id, 0, host1);
        vm.assertEq(
            uint256(market.proofStatus(slot0, market.currentPeriod())), uint256(ProofStatus.Submitted)
        );
    }
}
