// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

import {vm} from "./Vm.sol";

/// @notice Reads testdata/vectors.json (written by the prover crate; see the protocol brief).
library Vectors {
    string internal constant PATH = "../testdata/vectors.json";

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

    struct DatasetCase {
        string name;
        bytes32 datasetRoot;
        bytes32[] slotRoots;
        bytes32[][] paths;
    }

    function load() internal view returns (string memory) {
        return vm.readFile(PATH);
    }

    function proofCount(string memory json) internal pure returns (uint256) {
        return abi.decode(vm.parseJson(json, ".proofs[*].name"), (string[])).length;
    }

    function datasetCount(string memory json) internal pure returns (uint256) {
        return abi.decode(vm.parseJson(json, ".datasets[*].name"), (string[])).length;
    }

    function proofCase(string memory json, uint256 i) internal pure returns (ProofCase memory c) {
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

    /// @notice The proof case called `name`; reverts if there is none.
    function proofCaseNamed(string memory json, string memory name) internal pure returns (ProofCase memory) {
        uint256 n = proofCount(json);
        for (uint256 i; i < n; ++i) {
            string memory k = string.concat(".proofs[", vm.toString(i), "].name");
            if (keccak256(bytes(vm.parseJsonString(json, k))) == keccak256(bytes(name))) {
                return proofCase(json, i);
            }
        }
        revert(string.concat("no vector named ", name));
    }

    function datasetCase(string memory json, uint256 i) internal pure returns (DatasetCase memory c) {
        string memory k = string.concat(".datasets[", vm.toString(i), "]");
        c.name = vm.parseJsonString(json, string.concat(k, ".name"));
        c.datasetRoot = vm.parseJsonBytes32(json, string.concat(k, ".datasetRoot"));
        c.slotRoots = vm.parseJsonBytes32Array(json, string.concat(k, ".slotRoots"));
        c.paths = new bytes32[][](c.slotRoots.length);
        for (uint256 j; j < c.slotRoots.length; ++j) {
            c.paths[j] = vm.parseJsonBytes32Array(json, string.concat(k, ".paths[", vm.toString(j), "]"));
        }
    }
}
