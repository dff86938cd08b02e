// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

import {IMarketplace} from "../src/IMarketplace.sol";
import {Marketplace} from "../src/Marketplace.sol";
import {
    MarketplaceConfig,
    ProofScheme,
    ProofStatus,
    RequestParams,
    SlotState
} from "../src/MarketplaceTypes.sol";
import {ICompactVerifier} from "../src/verifiers/ICompactVerifier.sol";
import {CompactFixture} from "./utils/CompactFixture.sol";
import {vm} from "./utils/Vm.sol";

/// @notice The compact scheme through the Marketplace against hoard-compact's vectors: valid
/// batches are accepted and recorded; proofs of a wrong cell, sibling or index bit, a swapped slot
/// order, another period's seed, another host's batch and a replay next period are rejected, as is
/// every kind of bad input, each with its named error and nothing recorded. Missed compact proofs
/// are marked, slashed and evicted like direct ones, and a repair refills with a commitment.
contract MarketplaceCompactTest is CompactFixture {
    event CompactProofSubmitted(address indexed host, uint256 indexed period, bytes32[] slotIds);

    function _status(uint256 r, uint256 i) internal view returns (ProofStatus) {
        return market.proofStatus(slotId(r, i), market.currentPeriod());
    }

    function _assertNothingRecorded() internal view {
        for (uint256 r; r < 2; ++r) {
            for (uint256 i; i < 4; ++i) {
                vm.assertTrue(_status(r, i) == ProofStatus.None, "nothing recorded");
            }
        }
    }

    // ------------------------------------------------------------------ set-up and fills

    function test_Compact_FillBindsTheCommitment() public view {
        for (uint256 i; i < 4; ++i) {
            vm.assertEq(market.getSlot(slotId(0, i)).commitment, _b32(_at(".dataset.commitments", i)));
            vm.assertEq(market.getSlot(slotId(1, i)).host, host2);
        }
        vm.assertTrue(market.getRequest(requestIds[0]).params.scheme == ProofScheme.Compact);
        vm.assertEq(market.getRequest(requestIds[0]).params.compactRoot, _b32(".dataset.compactRoot"));
        MarketplaceConfig memory cfg = market.config();
        vm.assertEq(cfg.compactVerifierSmall, address(verifier));
        vm.assertEq(verifier.verifyingKeyHash(), _b32(".verifyingKeyHash"));
        vm.assertEq(verifier.slots(), 4);
        vm.assertEq(verifier.samples(), 5);
    }

    function test_RevertWhen_FillSlotOnCompactRequest() public {
        bytes32 id = keccak256("third request");
        vm.prank(renter);
        market.requestStorageWithId(id, compactParams());
        bytes32[] memory path = new bytes32[](2);
        vm.expectRevert(abi.encodeWithSelector(IMarketplace.WrongScheme.selector, id, ProofScheme.Compact));
        vm.prank(host1);
        market.fillSlot(id, 0, bytes32(uint256(1)), path, "");
    }

    function test_RevertWhen_CommitmentPathIsWrong() public {
        // Request A's slot 1 freed by three missed proofs, then refilled with slot 2's commitment.
        _evict(0, 1);
        randomness.setSeed(_b32(".fillSeed"));
        string memory fillProof = string.concat(K, ".requests[0]", _at(".fillProofs", 1));
        bytes32[] memory rootPath =
            vm.parseJsonBytes32Array(json, string.concat(K, _at(".dataset.rootPaths", 1)));
        bytes32[] memory cPath =
            vm.parseJsonBytes32Array(json, string.concat(K, _at(".dataset.commitmentPaths", 1)));
        bytes32 wrong = _b32(_at(".dataset.commitments", 2));
        vm.expectRevert(abi.encodeWithSelector(IMarketplace.InvalidCommitmentPath.selector));
        vm.prank(address(0xB0B3));
        market.fillCompactSlot(
            requestIds[0],
            1,
            _b32(_at(".dataset.slotRoots", 1)),
            rootPath,
            vm.parseJsonBytes(json, fillProof),
            wrong,
            cPath
        );
        vm.expectRevert(abi.encodeWithSelector(IMarketplace.InvalidCommitment.selector));
        vm.prank(address(0xB0B3));
        market.fillCompactSlot(
            requestIds[0],
            1,
            _b32(_at(".dataset.slotRoots", 1)),
            rootPath,
            vm.parseJsonBytes(json, fillProof),
            bytes32(type(uint256).max),
            cPath
        );
        // The right commitment repairs the slot.
        vm.prank(address(0xB0B3));
        market.fillCompactSlot(
            requestIds[0],
            1,
            _b32(_at(".dataset.slotRoots", 1)),
            rootPath,
            vm.parseJsonBytes(json, fillProof),
            _b32(_at(".dataset.commitments", 1)),
            cPath
        );
        vm.assertEq(market.getSlot(slotId(0, 1)).host, address(0xB0B3));
        vm.assertEq(market.getRequest(requestIds[0]).repairs, 1);
    }

    // ------------------------------------------------------------------ valid proofs

    function test_Compact_ValidPartialBatchIsAccepted() public {
        Batch memory b = batch("valid, 3 slots");
        bytes32[] memory slots = ids(b);
        vm.expectEmit(address(market));
        emit CompactProofSubmitted(host1, market.currentPeriod(), slots);
        submit(host1, slots, b.proof);
        for (uint256 i; i < 3; ++i) {
            vm.assertTrue(_status(0, i) == ProofStatus.Submitted);
        }
        vm.assertTrue(_status(0, 3) == ProofStatus.None, "the slot outside the batch");
        vm.assertFalse(market.isProofRequired(slotId(0, 0)));
        vm.assertTrue(market.isProofRequired(slotId(0, 3)));
    }

    function test_Compact_ValidFullBatchIsAccepted() public {
        Batch memory b = batch("valid, 4 slots");
        submit(host1, ids(b), b.proof);
        for (uint256 i; i < 4; ++i) {
            vm.assertTrue(_status(0, i) == ProofStatus.Submitted);
        }
    }

    function test_Compact_EachHostProvesItsOwnBatch() public {
        Batch memory b = batch("host 2, 3 slots");
        submit(host2, ids(b), b.proof);
        vm.assertTrue(_status(1, 0) == ProofStatus.Submitted);
        vm.assertTrue(_status(0, 0) == ProofStatus.None);
    }

    // ------------------------------------------------------------------ wrong proofs

    function test_RevertWhen_CompactWrongCell() public {
        Batch memory b = batch("wrong cell");
        vm.assertFalse(b.valid);
        expectSubmitRevert(host1, ids(b), b.proof, invalidProof());
        _assertNothingRecorded();
    }

    function test_RevertWhen_CompactWrongSibling() public {
        Batch memory b = batch("wrong sibling");
        expectSubmitRevert(host1, ids(b), b.proof, invalidProof());
        _assertNothingRecorded();
    }

    function test_RevertWhen_CompactWrongIndexBit() public {
        Batch memory b = batch("wrong index bit");
        expectSubmitRevert(host1, ids(b), b.proof, invalidProof());
        _assertNothingRecorded();
    }

    function test_RevertWhen_CompactSwappedSlotOrder() public {
        Batch memory b = batch("valid, 3 slots");
        bytes32[] memory slots = ids(b);
        (slots[0], slots[1]) = (slots[1], slots[0]);
        expectSubmitRevert(host1, slots, b.proof, invalidProof());
        _assertNothingRecorded();
    }

    function test_RevertWhen_CompactAnotherPeriodsSeed() public {
        Batch memory b = batch("another period's seed");
        expectSubmitRevert(host1, ids(b), b.proof, invalidProof());
        _assertNothingRecorded();
    }

    function test_RevertWhen_CompactReplayNextPeriod() public {
        Batch memory b = batch("valid, 3 slots");
        submit(host1, ids(b), b.proof);
        vm.roll((block.number / PERIOD + 1) * PERIOD);
        randomness.setSeed(_b32(".nextSeed"));
        expectSubmitRevert(host1, ids(b), b.proof, invalidProof());
        // The proof made for this period's seed is accepted.
        submit(host1, ids(b), batch("another period's seed").proof);
        vm.assertTrue(_status(0, 0) == ProofStatus.Submitted);
    }

    function test_RevertWhen_CompactAnotherHostsBatch() public {
        Batch memory b = batch("valid, 3 slots");
        // Host 2 holds the same data in request B: host 1's proof is still not host 2's.
        bytes32[] memory theirs = ids(b);
        for (uint256 i; i < theirs.length; ++i) {
            theirs[i] = slotId(1, b.slots[i]);
        }
        expectSubmitRevert(host2, theirs, b.proof, invalidProof());
        expectSubmitRevert(
            host2, ids(b), b.proof, abi.encodeWithSelector(IMarketplace.NotSlotHost.selector, host2, host1)
        );
        _assertNothingRecorded();
    }

    // ------------------------------------------------------------------ bad input

    function test_RevertWhen_CompactDuplicateSlot() public {
        Batch memory b = batch("valid, 3 slots");
        bytes32[] memory slots = ids(b);
        slots[2] = slots[0];
        expectSubmitRevert(
            host1, slots, b.proof, abi.encodeWithSelector(IMarketplace.DuplicateSlot.selector, slots[0])
        );
        _assertNothingRecorded();
    }

    function test_RevertWhen_CompactBatchTooLarge() public {
        bytes32[] memory slots = new bytes32[](5);
        for (uint256 i; i < 5; ++i) {
            slots[i] = slotId(i % 2, i / 2);
        }
        expectSubmitRevert(
            host1,
            slots,
            batch("valid, 4 slots").proof,
            abi.encodeWithSelector(IMarketplace.BatchTooLarge.selector, 5, 4)
        );
        expectSubmitRevert(
            host1, new bytes32[](0), batch("valid, 4 slots").proof, errorOf(IMarketplace.EmptyBatch.selector)
        );
    }

    function test_RevertWhen_CompactDirectSchemeSlot() public {
        // A direct request whose slot 0 host 1 fills (its fill proof of one block, 1 sample).
        string memory v = ".proofs[0]";
        bytes32 rid = vm.parseJsonBytes32(json, string.concat(v, ".requestId"));
        bytes32 root = vm.parseJsonBytes32(json, string.concat(v, ".slotRoot"));
        bytes32 filler = keccak256("filler");
        RequestParams memory p = compactParams();
        p.scheme = ProofScheme.Direct;
        p.compactRoot = bytes32(0);
        p.cellCount = uint64(vm.parseJsonUint(json, string.concat(v, ".cellCount")));
        p.slotSize = p.cellCount * 256;
        p.samples = uint16(vm.parseJsonUint(json, string.concat(v, ".samples")));
        p.slots = 2;
        p.maxSlotLoss = 1;
        p.datasetRoot = sha256(abi.encodePacked(bytes1(0x01), root, filler));
        vm.prank(renter);
        market.requestStorageWithId(rid, p);
        randomness.setSeed(vm.parseJsonBytes32(json, string.concat(v, ".seed")));
        bytes32[] memory path = new bytes32[](1);
        path[0] = filler;
        vm.prank(host1);
        market.fillSlot(rid, 0, root, path, vm.parseJsonBytes(json, string.concat(v, ".proof")));
        vm.roll((block.number / PERIOD + 1) * PERIOD);
        bytes32[] memory slots = new bytes32[](1);
        slots[0] = market.slotId(rid, 0);
        expectSubmitRevert(
            host1,
            slots,
            batch("valid, 3 slots").proof,
            abi.encodeWithSelector(IMarketplace.NotCompact.selector, slots[0])
        );
        // And the direct scheme refuses the compact fill.
        vm.expectRevert(abi.encodeWithSelector(IMarketplace.WrongScheme.selector, rid, ProofScheme.Direct));
        vm.prank(host1);
        market.fillCompactSlot(rid, 1, root, path, "", bytes32(uint256(1)), path);
    }

    function test_RevertWhen_CompactMalformedProof() public {
        Batch memory b = batch("valid, 3 slots");
        uint256[8] memory bad = b.proof;
        (bad[0], bad[1]) = (1, 1); // not on y^2 = x^3 + 3
        expectSubmitRevert(host1, ids(b), bad, errorOf(IMarketplace.MalformedProof.selector));
        bad = b.proof;
        bad[7] = type(uint256).max; // not below the field modulus
        expectSubmitRevert(host1, ids(b), bad, errorOf(IMarketplace.MalformedProof.selector));
        bad = b.proof;
        bad[2] += 1; // B off the twist
        expectSubmitRevert(host1, ids(b), bad, errorOf(IMarketplace.MalformedProof.selector));
        _assertNothingRecorded();
    }

    function test_RevertWhen_CompactNotCurrentPeriod() public {
        Batch memory b = batch("valid, 3 slots");
        bytes32[] memory slots = ids(b);
        uint256 period = market.currentPeriod();
        vm.expectRevert(abi.encodeWithSelector(IMarketplace.NotCurrentPeriod.selector, period - 1, period));
        vm.prank(host1);
        market.submitCompactProof(period - 1, slots, b.proof);
        _assertNothingRecorded();
    }

    function test_RevertWhen_CompactAlreadyProven() public {
        Batch memory b = batch("valid, 3 slots");
        submit(host1, ids(b), b.proof);
        expectSubmitRevert(
            host1,
            ids(b),
            b.proof,
            abi.encodeWithSelector(
                IMarketplace.ProofAlreadySubmitted.selector, slotId(0, 0), market.currentPeriod()
            )
        );
    }

    function test_RevertWhen_CompactInTheFillPeriod() public {
        vm.roll(fillPeriod * PERIOD + 5);
        Batch memory b = batch("valid, 3 slots");
        expectSubmitRevert(
            host1,
            ids(b),
            b.proof,
            abi.encodeWithSelector(IMarketplace.ProofAlreadySubmitted.selector, slotId(0, 0), fillPeriod)
        );
    }

    // ------------------------------------------------------------------ missed proofs

    /// Three periods without host 1's proof of request A's slot `i`, each marked by the reporter.
    function _evict(uint256 r, uint256 i) internal {
        for (uint256 m; m < 3; ++m) {
            uint256 period = market.currentPeriod();
            vm.roll((period + 1) * PERIOD);
            bytes32 id = slotId(r, i);
            vm.prank(reporter);
            market.markProofMissing(id, period);
        }
    }

    function test_Compact_MissedProofsSlashAndEvict() public {
        Batch memory b = batch("valid, 3 slots");
        submit(host1, ids(b), b.proof);
        uint256 period = market.currentPeriod();
        vm.roll((period + 1) * PERIOD);
        // Slot 0 was proven, slot 3 was not.
        bytes32 proven = slotId(0, 0);
        vm.expectRevert(abi.encodeWithSelector(IMarketplace.ProofWasSubmitted.selector, proven, period));
        vm.prank(reporter);
        market.markProofMissing(proven, period);
        bytes32 missed = slotId(0, 3);
        vm.prank(reporter);
        market.markProofMissing(missed, period);
        vm.assertEq(market.getSlot(slotId(0, 3)).missedProofs, 1);
        for (uint256 m; m < 2; ++m) {
            period = market.currentPeriod();
            vm.roll((period + 1) * PERIOD);
            vm.prank(reporter);
            market.markProofMissing(missed, period);
        }
        vm.assertTrue(market.slotState(slotId(0, 3)) == SlotState.Repair, "evicted after three marks");
        vm.assertGt(market.rewardOf(reporter), 0);
    }

    // ------------------------------------------------------------------ the verifier alone

    function test_Verifier_AcceptsTheVectorsAndRejectsBadInputs() public view {
        Batch memory b = batch("valid, 3 slots");
        uint256[] memory input = new uint256[](5);
        bytes32[] memory words = vm.parseJsonBytes32Array(json, string.concat(K, ".batches[0].inputs"));
        for (uint256 i; i < 5; ++i) {
            input[i] = uint256(words[i]);
        }
        vm.assertTrue(verifier.verifyProof(b.proof, input));
        input[4] = input[1]; // padding replaced by a real commitment
        vm.assertFalse(verifier.verifyProof(b.proof, input));
    }

    function test_RevertWhen_VerifierGetsWrongInputs() public {
        Batch memory b = batch("valid, 3 slots");
        vm.expectRevert(abi.encodeWithSelector(ICompactVerifier.InputCount.selector, 4, 5));
        verifier.verifyProof(b.proof, new uint256[](4));
        uint256[] memory input = new uint256[](5);
        input[2] = type(uint256).max;
        vm.expectRevert(abi.encodeWithSelector(ICompactVerifier.InputNotInField.selector));
        verifier.verifyProof(b.proof, input);
    }

    function test_RevertWhen_CompactVerifiersDisagree() public {
        MarketplaceConfig memory cfg = market.config();
        cfg.compactVerifierLarge = address(verifier); // not larger than the small one
        vm.expectRevert(abi.encodeWithSelector(IMarketplace.InvalidCompactVerifiers.selector));
        new Marketplace(cfg);
    }
}
