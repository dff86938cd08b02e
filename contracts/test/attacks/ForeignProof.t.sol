// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

import {IMarketplace} from "../../src/IMarketplace.sol";
import {vm} from "../utils/Vm.sol";
import {AttackTestBase} from "./AttackTestBase.sol";

/// @notice A host that lost its slot answers with a proof that is valid for something else: another
/// slot of the request, the same slot of another request over the same dataset, another host's
/// submission, or another period. Samples are drawn from the slot id and the period's seed and
/// checked against the slot root the host committed to, so each is refused; the host stays
/// unproven and is marked (−S), and the helper gains nothing.
contract ForeignProofAttackTest is AttackTestBase {
    bytes32 internal id;
    bytes32 internal slot0;

    function setUp() public override {
        super.setUp();
        id = _request();
        _fillAll(id);
        slot0 = market.slotId(id, 0);
        _nextPeriod();
    }

    /// After the refused proof: the period ends, host1 is marked, and loses S of its collateral.
    function _markedAfter(uint256 period) internal {
        (, uint256 before) = market.slotPayout(slot0);
        _nextPeriod();
        vm.prank(reporter);
        market.markProofMissing(slot0, period);
        (, uint256 back) = market.slotPayout(slot0);
        int256 net = int256(back) - int256(before);
        vm.assertEq(net, -int256(_slashOf(id)));
        emit log_named_int("host net of the attempt (-S)", net);
    }

    function test_ForeignProof_OtherSlot() public {
        uint256 period = market.currentPeriod();
        bytes memory proofOfSlot1 = _currentProof(id, 1); // valid for slot 1 now
        vm.expectRevert(IMarketplace.InvalidProof.selector);
        vm.prank(host1);
        market.submitProof(slot0, proofOfSlot1);
        _markedAfter(period);
    }

    function test_ForeignProof_OtherRequest() public {
        // The renter stores the same dataset twice; host1 holds slot 0 of both. A proof for one
        // request does not answer the other's challenge: the slot ids, hence the samples, differ.
        bytes32 twin = _request("default", defaultParams());
        _fillAll(twin);
        _nextPeriod();
        uint256 period = market.currentPeriod();
        bytes memory proofOfTwin = _currentProof(twin, 0);
        vm.expectRevert(IMarketplace.InvalidProof.selector);
        vm.prank(host1);
        market.submitProof(slot0, proofOfTwin);
        _markedAfter(period);
    }

    function test_ForeignProof_OtherHost() public {
        // host2 holds slot 0's data too (say, for a repair); it cannot submit for host1's slot.
        uint256 period = market.currentPeriod();
        bytes memory proof = _currentProof(id, 0);
        vm.expectRevert(abi.encodeWithSelector(IMarketplace.NotSlotHost.selector, host2, host1));
        vm.prank(host2);
        market.submitProof(slot0, proof);
        _markedAfter(period);
    }

    function test_ForeignProof_OtherPeriod() public {
        uint256 earlier = market.currentPeriod();
        bytes memory old = _currentProof(id, 0);
        _submit(id, 0, host1); // host1 proves this period, keeps the proof, then drops the data
        vm.expectRevert(abi.encodeWithSelector(IMarketplace.ProofAlreadySubmitted.selector, slot0, earlier));
        vm.prank(host1);
        market.submitProof(slot0, old); // the same period again
        _nextPeriod();
        uint256 period = market.currentPeriod();
        vm.expectRevert(IMarketplace.InvalidProof.selector);
        vm.prank(host1);
        market.submitProof(slot0, old); // the next period: other seed, other samples
        _markedAfter(period);
    }
}
