// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

import {IMarketplace} from "../../src/IMarketplace.sol";
import {ProofStatus, RequestParams} from "../../src/MarketplaceTypes.sol";
import {Periods} from "../../src/libraries/Periods.sol";
import {SlotBuilder} from "../utils/SlotBuilder.sol";
import {vm} from "../utils/Vm.sol";
import {AttackTestBase} from "./AttackTestBase.sol";

/// @notice The limit of block-hash seeds, pinned by a test: a host that also produces the seed block
/// of a period (block p·L − 1) chooses that block's hash by varying what it hashes (extraData, the
/// order of transactions), as many times as it can hash headers. Here it keeps half of its cells
/// (s = 5: an honest seed catches it in 97 % of periods) and tries header variants until the
/// period's samples all fall in the half it kept (about (1 − f)^−s = 32 tries); it then proves the
/// period. With proofProbability 4 it can more cheaply pick a seed that requires no proof at all. It
/// controls only the periods whose seed block it produces; docs/contracts.md ("Randomness") has the
/// numbers per period and per request, and what a stronger beacon would take.
contract SeedGrindingAttackTest is AttackTestBase {
    uint256 internal constant MAX_TRIES = 256;

    function _grind(bytes32 slot, bool wantRequired, uint256 dropEvery) internal returns (uint256 tries) {
        uint256 period = market.currentPeriod();
        uint256 seedBlock = Periods.seedBlock(period, PERIOD);
        for (tries = 1; tries <= MAX_TRIES; ++tries) {
            vm.setBlockhash(seedBlock, keccak256(abi.encode("header variant", tries)));
            (, bool required, uint256[] memory indices) = market.challenge(slot, period);
            if (!wantRequired) {
                if (!required) return tries;
                continue;
            }
            bool kept = true;
            for (uint256 j; j < indices.length; ++j) {
                if (indices[j] % dropEvery == 0) kept = false;
            }
            if (kept) return tries;
        }
        revert("no header variant found");
    }

    function test_SeedGrinding_ProducerOfTheSeedBlockPassesWithHalfTheData() public {
        bytes32 id = _request();
        _fillAll(id);
        bytes32 slot = market.slotId(id, 0);
        _nextPeriod();
        uint256 tries = _grind(slot, true, 2); // host1 kept only the odd cells
        emit log_named_uint("header variants hashed", tries);
        vm.assertLe(tries, MAX_TRIES);
        SlotBuilder.Slot memory tree = _slotTree(fixtures[id].tag, 0, 256);
        bytes memory proof =
            SlotBuilder.proveChallenge(tree, market.periodSeed(market.currentPeriod()), slot, 5);
        vm.prank(host1);
        market.submitProof(slot, proof);
        vm.assertEq(uint256(market.proofStatus(slot, market.currentPeriod())), uint256(ProofStatus.Submitted));
    }

    function test_SeedGrinding_ProducerPicksAPeriodThatRequiresNoProof() public {
        RequestParams memory p = defaultParams();
        p.proofProbability = 4;
        bytes32 id = _request("sparse", p);
        _fillAll(id);
        bytes32 slot = market.slotId(id, 0);
        _nextPeriod();
        uint256 period = market.currentPeriod();
        uint256 tries = _grind(slot, false, 2);
        emit log_named_uint("header variants hashed", tries);
        _nextPeriod();
        vm.expectRevert(abi.encodeWithSelector(IMarketplace.ProofNotRequired.selector, slot, period));
        vm.prank(reporter);
        market.markProofMissing(slot, period);
    }
}
