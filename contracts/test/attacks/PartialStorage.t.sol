// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

import {IMarketplace} from "../../src/IMarketplace.sol";
import {RequestParams, SlotState} from "../../src/MarketplaceTypes.sol";
import {SlotBuilder} from "../utils/SlotBuilder.sol";
import {vm} from "../utils/Vm.sol";
import {AttackTestBase} from "./AttackTestBase.sol";

/// @notice A host fills its slot honestly, then keeps only part of it: it drops every cell whose index
/// is a multiple of `dropEvery` (of 256 cells: 100 → 3 cells, f = 1.17 %; 10 → 26, f = 10.2 %;
/// 2 → 128, f = 50 %). Each period it proves when the challenge misses the dropped cells and is
/// marked when it does not (probability 1 − (1 − f)^s per proof). A reporter marks every miss; the
/// other hosts are honest. The attacker's net is written out against the most the attack can save:
/// the storage cost of the dropped fraction for the time it held the slot, counted at the full price
/// (a host's storage cost is below the price it accepts, so this overstates the saving).
/// docs/contracts.md ("Partial storage") has the table for the default deployment.
contract PartialStorageAttackTest is AttackTestBase {
    uint256 internal constant MAX_PERIODS = 400;
    uint256 internal constant CELLS = 256;

    struct Run {
        bytes32 id;
        bytes32 slot;
        uint256 dropEvery;
        uint16 samples;
        uint256 filledAt;
        uint256 fillPeriod;
        uint256 proofs;
        uint256 misses;
        uint256 periods;
        uint256 heldFor;
        bool evicted;
    }

    function _hitsDropped(uint256[] memory indices, uint256 dropEvery) internal pure returns (bool) {
        for (uint256 i; i < indices.length; ++i) {
            if (indices[i] % dropEvery == 0) return true;
        }
        return false;
    }

    /// Runs the attack until the cheater (host1, slot 0) is evicted or MAX_PERIODS pass.
    function _run(uint256 dropEvery, uint16 samples) internal returns (Run memory run) {
        RequestParams memory p = defaultParams();
        p.samples = samples;
        run.dropEvery = dropEvery;
        run.samples = samples;
        run.id = _request("partial", p);
        run.slot = market.slotId(run.id, 0);
        _fill(run.id, 0, host1);
        run.filledAt = block.timestamp;
        _fill(run.id, 1, host2);
        _fill(run.id, 2, host3);
        _fill(run.id, 3, host4);
        run.fillPeriod = market.currentPeriod();
        SlotBuilder.Slot memory tree = _slotTree(fixtures[run.id].tag, 0, p.cellCount);
        for (; run.periods < MAX_PERIODS && !run.evicted; ++run.periods) {
            _period(run, tree);
        }
    }

    /// One period: the cheater proves if the challenge misses its dropped cells, else it is marked
    /// right after the period.
    function _period(Run memory run, SlotBuilder.Slot memory tree) internal {
        uint256 period = market.currentPeriod();
        (bytes32 seed, bool required, uint256[] memory indices) = market.challenge(run.slot, period);
        bool due = required && period != run.fillPeriod;
        bool caught = due && _hitsDropped(indices, run.dropEvery);
        if (due && !caught) {
            bytes memory proof = SlotBuilder.proveChallenge(tree, seed, run.slot, run.samples);
            vm.prank(host1);
            market.submitProof(run.slot, proof);
            ++run.proofs;
        }
        _nextPeriod();
        if (caught) {
            vm.prank(reporter);
            market.markProofMissing(run.slot, period);
            ++run.misses;
            run.evicted = market.getSlot(run.slot).host == address(0);
            if (run.evicted) run.heldFor = block.timestamp - run.filledAt;
        }
    }

    /// The whole attack, with the money written out.
    function _attack(uint256 dropEvery, uint16 samples) internal {
        uint256 before = _wealth(_one(host1));
        uint256 honestBefore = _wealth(_one(host2));
        Run memory run = _run(dropEvery, samples);

        // Caught: evicted after maxMissed marks, long before the request ends.
        vm.assertTrue(run.evicted, "a partial host is evicted");
        vm.assertEq(run.misses, MAX_MISSED);

        _toEnd(run.id);
        vm.expectRevert(abi.encodeWithSelector(IMarketplace.NotSlotHost.selector, host1, address(0)));
        vm.prank(host1);
        market.withdrawSlot(run.slot);
        _withdrawSlot(run.id, 1, host2);

        // tokens out − tokens in: the cheater brought C and gets nothing back.
        int256 net = _net(_one(host1), before);
        vm.assertEq(net, -int256(_collateral(run.id)));
        // The most it saved: the dropped share of the storage, at the full price, while it held the slot.
        uint256 cellsDropped = (CELLS + dropEvery - 1) / dropEvery;
        uint256 saved = _perSecond(run.id) * run.heldFor * cellsDropped / CELLS;
        int256 attackerResult = net + int256(saved);
        // The same host, honest (host2 filled at the same time): P for every second to the end.
        int256 honestNet = _net(_one(host2), honestBefore);
        vm.assertEq(honestNet, int256(_perSecond(run.id) * (market.getRequest(run.id).endsAt - run.filledAt)));

        emit log_named_uint("cells dropped of 256", cellsDropped);
        emit log_named_uint("samples", samples);
        emit log_named_uint("proofs passed", run.proofs);
        emit log_named_uint("periods until eviction", run.periods);
        emit log_named_int("attacker net (tokens out - in)", net);
        emit log_named_uint("storage saved, at most", saved);
        emit log_named_int("attacker result (net + saved)", attackerResult);
        emit log_named_int("honest host net", honestNet);
        _assertNotPositive(attackerResult, "partial storage does not pay");
        vm.assertTrue(attackerResult < honestNet, "an honest host does better");
        vm.assertEq(uint256(market.slotState(run.slot)), uint256(SlotState.Finished));
    }

    function test_PartialStorage_1Percent_5Samples() public {
        _attack(100, 5);
    }

    function test_PartialStorage_1Percent_16Samples() public {
        _attack(100, 16);
    }

    function test_PartialStorage_10Percent_5Samples() public {
        _attack(10, 5);
    }

    function test_PartialStorage_10Percent_16Samples() public {
        _attack(10, 16);
    }

    function test_PartialStorage_50Percent_5Samples() public {
        _attack(2, 5);
    }

    function test_PartialStorage_50Percent_16Samples() public {
        _attack(2, 16);
    }

    /// The chain's challenges catch a host missing a fraction f of its cells in 1 − (1 − f)^s of the
    /// proofs: over 300 periods of f = 26/256, s = 5 (1 − (230/256)^5 = 41.5 %), the count of failed
    /// challenges is within 4 standard deviations of 300 · 41.5 %.
    function test_PartialStorage_DetectionRateMatchesFormula() public {
        bytes32 id = _request();
        bytes32 slot = market.slotId(id, 0);
        uint256 n = 300;
        uint256 caught;
        for (uint256 k; k < n; ++k) {
            (,, uint256[] memory indices) = market.challenge(slot, market.currentPeriod());
            if (_hitsDropped(indices, 10)) ++caught;
            _nextPeriod();
        }
        // (1 − f)^s in 1e18 fixed point.
        uint256 pass = 1e18;
        for (uint256 j; j < 5; ++j) {
            pass = pass * (CELLS - 26) / CELLS;
        }
        uint256 expected = n * (1e18 - pass); // 1e18 × the expected count
        uint256 sigma = _sqrt(n * (1e18 - pass) * pass); // 1e18 × sqrt(n·d·(1 − d))
        uint256 got = caught * 1e18;
        uint256 diff = got > expected ? got - expected : expected - got;
        emit log_named_uint("challenges failed of 300", caught);
        emit log_named_uint("expected x 1e18", expected);
        vm.assertLe(diff, 4 * sigma, "detection rate within 4 sigma of 1 - (1 - f)^s");
    }

    function _sqrt(uint256 x) internal pure returns (uint256 y) {
        y = x;
        uint256 z = (x + 1) / 2;
        while (z < y) {
            y = z;
            z = (x / z + z) / 2;
        }
    }
}
