// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

import {Challenges} from "../src/libraries/Challenges.sol";
import {LibHarness} from "./utils/LibHarness.sol";
import {vm} from "./utils/Vm.sol";

/// @notice The shared vectors of the prover crate (testdata/vectors.json): every valid proof and
/// dataset path verifies, every tampered one does not.
contract VectorsTest {
    string internal constant VECTORS = "../testdata/vectors.json";

    LibHarness internal lib;
    string internal json;

    struct ProofCase {
        string name;
        uint256 cellCount;
        bytes32 slotRoot;
        bytes32 requestId;
        uint256 slotIndex;
        bytes32 slotId;
        bytes32 seed;
        uint256 proofProbability;
        bool required;
        uint256 samples;
        uint256[] indices;
        bytes proof;
        uint256 cells;
        uint256 siblings;
    }

    function setUp() public {
        lib = new LibHarness();
        json = vm.readFile(VECTORS);
    }

    function _proofCount() internal view returns (uint256) {
        return abi.decode(vm.parseJson(json, ".proofs[*].name"), (string[])).length;
    }

    function _case(uint256 i) internal view returns (ProofCase memory c) {
        string memory k = string.concat(".proofs[", vm.toString(i), "]");
        c.name = vm.parseJsonString(json, string.concat(k, ".name"));
        c.cellCount = vm.parseJsonUint(json, string.concat(k, ".cellCount"));
        c.slotRoot = vm.parseJsonBytes32(json, string.concat(k, ".slotRoot"));
        c.requestId = vm.parseJsonBytes32(json, string.concat(k, ".requestId"));
        c.slotIndex = vm.parseJsonUint(json, string.concat(k, ".slotIndex"));
        c.slotId = vm.parseJsonBytes32(json, string.concat(k, ".slotId"));
        c.seed = vm.parseJsonBytes32(json, string.concat(k, ".seed"));
        c.proofProbability = vm.parseJsonUint(json, string.concat(k, ".proofProbability"));
        c.required = vm.parseJsonBool(json, string.concat(k, ".required"));
        c.samples = vm.parseJsonUint(json, string.concat(k, ".samples"));
        c.indices = vm.parseJsonUintArray(json, string.concat(k, ".indices"));
        c.proof = vm.parseJsonBytes(json, string.concat(k, ".proof"));
        c.cells = vm.parseJsonUint(json, string.concat(k, ".cells"));
        c.siblings = vm.parseJsonUint(json, string.concat(k, ".siblings"));
    }

    function test_Vectors_AcceptEveryValidProof() public view {
        uint256 n = _proofCount();
        vm.assertGt(n, 0);
        for (uint256 i; i < n; ++i) {
            ProofCase memory c = _case(i);
            vm.assertEq(Challenges.slotId(c.requestId, c.slotIndex), c.slotId, c.name);
            vm.assertEq(
                Challenges.isRequired(c.seed, c.slotId, c.proofProbability) ? 1 : 0,
                c.required ? 1 : 0,
                c.name
            );
            vm.assertEq(Challenges.sampleIndices(c.seed, c.slotId, c.samples, c.cellCount), c.indices, c.name);
            uint256 unique =
                Challenges.sortUnique(Challenges.sampleIndices(c.seed, c.slotId, c.samples, c.cellCount))
            .length;
            vm.assertEq(unique, c.cells, c.name);
            vm.assertEq(c.proof.length, 256 * c.cells + 32 * c.siblings, c.name);
            vm.assertTrue(
                lib.verifyChallenge(c.slotRoot, c.cellCount, c.seed, c.slotId, c.samples, c.proof), c.name
            );
        }
    }
}
