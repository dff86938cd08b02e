// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

import {Challenges} from "../src/libraries/Challenges.sol";
import {DirectProof} from "../src/libraries/DirectProof.sol";
import {LibHarness} from "./utils/LibHarness.sol";
import {SlotBuilder} from "./utils/SlotBuilder.sol";
import {vm} from "./utils/Vm.sol";

/// @notice The proof libraries against the test prover (SlotBuilder), on slots with and without
/// padding; the prover crate's own vectors are in Vectors.t.sol.
contract DirectProofTest {
    LibHarness internal lib;

    function setUp() public {
        lib = new LibHarness();
    }

    function _indices(bytes32 seed, uint256 n, uint256 cellCount) internal pure returns (uint256[] memory) {
        return Challenges.sortUnique(Challenges.sampleIndices(seed, "slot", n, cellCount));
    }

    function test_Depth_IsCeilLog2() public pure {
        vm.assertEq(DirectProof.depth(256), 8);
        vm.assertEq(DirectProof.depth(512), 9);
        vm.assertEq(DirectProof.depth(768), 10);
        vm.assertEq(DirectProof.depth(1280), 11);
        vm.assertEq(DirectProof.depth(4_194_304), 22);
    }

    function test_Verify_AdjacentCellsShareTheirParent() public view {
        SlotBuilder.Slot memory slot = SlotBuilder.build("adjacent", 256);
        uint256[] memory idx = new uint256[](2);
        idx[0] = 10;
        idx[1] = 11;
        bytes memory proof = SlotBuilder.prove(slot, idx);
        vm.assertEq(proof.length, 2 * 256 + 7 * 32); // no sibling at level 0
        vm.assertTrue(lib.verifyIndices(SlotBuilder.root(slot), 256, idx, proof));
    }

    function test_Verify_LastRealCellOfPaddedSlot() public view {
        SlotBuilder.Slot memory slot = SlotBuilder.build("padded", 768);
        uint256[] memory idx = new uint256[](1);
        idx[0] = 767;
        vm.assertTrue(lib.verifyIndices(SlotBuilder.root(slot), 768, idx, SlotBuilder.prove(slot, idx)));
    }

    function test_Verify_EveryCellOfSlot() public view {
        SlotBuilder.Slot memory slot = SlotBuilder.build("all", 256);
        uint256[] memory idx = new uint256[](256);
        for (uint256 i; i < 256; ++i) {
            idx[i] = i;
        }
        bytes memory proof = SlotBuilder.prove(slot, idx);
        vm.assertEq(proof.length, 256 * 256); // nothing but cells
        vm.assertTrue(lib.verifyIndices(SlotBuilder.root(slot), 256, idx, proof));
    }

    function testFuzz_Verify_AcceptsBuiltProofs(bytes32 seed, uint8 blocks, uint8 samples) public view {
        uint256 cellCount = (uint256(blocks) % 5 + 1) * 256; // 1..5 blocks: padded and unpadded
        uint256 n = uint256(samples) % 40 + 1;
        SlotBuilder.Slot memory slot = SlotBuilder.build(seed, cellCount);
        uint256[] memory idx = _indices(seed, n, cellCount);
        bytes memory proof = SlotBuilder.prove(slot, idx);
        vm.assertTrue(lib.verifyIndices(SlotBuilder.root(slot), cellCount, idx, proof));
        vm.assertTrue(lib.verifyChallenge(SlotBuilder.root(slot), cellCount, seed, "slot", n, proof));
    }

    function testFuzz_Verify_RejectsAnyFlippedBit(bytes32 seed, uint256 position, uint8 bit) public view {
        SlotBuilder.Slot memory slot = SlotBuilder.build(seed, 512);
        uint256[] memory idx = _indices(seed, 6, 512);
        bytes memory proof = SlotBuilder.prove(slot, idx);
        position %= proof.length;
        proof[position] ^= bytes1(uint8(1) << (bit % 8));
        vm.assertFalse(lib.verifyIndices(SlotBuilder.root(slot), 512, idx, proof));
    }

    function testFuzz_Verify_RejectsOtherIndices(bytes32 seed, uint256 other) public view {
        SlotBuilder.Slot memory slot = SlotBuilder.build(seed, 256);
        uint256[] memory idx = new uint256[](1);
        idx[0] = uint256(seed) % 256;
        bytes memory proof = SlotBuilder.prove(slot, idx);
        other %= 256;
        if (other == idx[0]) other = (other + 1) % 256;
        uint256[] memory claimed = new uint256[](1);
        claimed[0] = other;
        vm.assertFalse(lib.verifyIndices(SlotBuilder.root(slot), 256, claimed, proof));
    }

    function testFuzz_Verify_RejectsWrongLength(bytes32 seed, uint8 cut) public view {
        SlotBuilder.Slot memory slot = SlotBuilder.build(seed, 256);
        uint256[] memory idx = _indices(seed, 4, 256);
        bytes memory proof = SlotBuilder.prove(slot, idx);
        uint256 drop = uint256(cut) % 64 + 1;
        bytes memory shorter = new bytes(proof.length - drop);
        for (uint256 i; i < shorter.length; ++i) {
            shorter[i] = proof[i];
        }
        vm.assertFalse(lib.verifyIndices(SlotBuilder.root(slot), 256, _indices(seed, 4, 256), shorter));
        vm.assertFalse(
            lib.verifyIndices(
                SlotBuilder.root(slot), 256, _indices(seed, 4, 256), bytes.concat(proof, new bytes(drop))
            )
        );
    }

    function test_Verify_RejectsEmptyIndices() public view {
        vm.assertFalse(lib.verifyIndices(bytes32(0), 256, new uint256[](0), ""));
    }

    function testFuzz_SortUnique_SortsAndDeduplicates(uint8[] memory raw) public pure {
        uint256[] memory a = new uint256[](raw.length);
        bool[256] memory seen;
        uint256 distinct;
        for (uint256 i; i < raw.length; ++i) {
            a[i] = raw[i];
            if (!seen[raw[i]]) {
                seen[raw[i]] = true;
                ++distinct;
            }
        }
        uint256[] memory s = Challenges.sortUnique(a);
        vm.assertEq(s.length, distinct);
        for (uint256 i = 1; i < s.length; ++i) {
            vm.assertLt(s[i - 1], s[i]);
        }
        for (uint256 i; i < s.length; ++i) {
            vm.assertTrue(seen[s[i]]);
        }
    }

    function testFuzz_DatasetPath_AcceptsBuiltPaths(bytes32 seed, uint8 slotCount, uint8 index) public view {
        uint256 slots = uint256(slotCount) % 20 + 1;
        bytes32[] memory roots = new bytes32[](slots);
        for (uint256 i; i < slots; ++i) {
            roots[i] = keccak256(abi.encode(seed, i));
        }
        uint256 at = uint256(index) % slots;
        bytes32 root = SlotBuilder.datasetRoot(roots);
        bytes32[] memory path = SlotBuilder.datasetPath(roots, at);
        vm.assertTrue(lib.verifyPath(root, slots, at, roots[at], path));
        vm.assertFalse(lib.verifyPath(root, slots, at, keccak256("other"), path));
        if (slots > 1) {
            vm.assertFalse(lib.verifyPath(root, slots, (at + 1) % slots, roots[at], path));
        }
    }

    function test_DatasetPath_RejectsIndexOutOfRange() public view {
        bytes32[] memory roots = new bytes32[](3);
        roots[0] = "a";
        roots[1] = "b";
        roots[2] = "c";
        bytes32 root = SlotBuilder.datasetRoot(roots);
        // Index 3 is padding: its "root" is zero and its path is valid in the tree, but no slot.
        vm.assertFalse(lib.verifyPath(root, 3, 3, bytes32(0), SlotBuilder.datasetPath(roots, 3)));
    }
}
