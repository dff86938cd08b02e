// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

import {CompactFixture} from "../utils/CompactFixture.sol";
import {vm} from "../utils/Vm.sol";

/// @notice Execution gas of compact proofs of the 4-slot circuit and of a compact fill, against the
/// targets (whole transactions on anvil: script/gas-anvil.sh; the 32-slot figures:
/// docs/performance.md).
contract CompactGasTest is CompactFixture {
    event log_named_uint(string key, uint256 val);

    function _measure(address host, bytes32[] memory slots, uint256[8] memory proof)
        internal
        returns (uint256)
    {
        uint256 period = market.currentPeriod();
        vm.prank(host);
        uint256 before = gasleft();
        market.submitCompactProof(period, slots, proof);
        return before - gasleft();
    }

    /// The first proof of a slot writes a fresh marks word (20k gas per slot, once in 128 periods).
    function test_Gas_SubmitCompactProof_4Slots_First() public {
        Batch memory b = batch("valid, 4 slots");
        uint256 used = _measure(host1, ids(b), b.proof);
        emit log_named_uint("submitCompactProof (4 slots, first proof of each) execution gas", used);
        vm.assertLe(used, 360_000);
    }

    /// Steady state: the slots were proven the period before.
    function test_Gas_SubmitCompactProof_3Slots() public {
        Batch memory b = batch("valid, 3 slots");
        _measure(host1, ids(b), b.proof);
        vm.roll((block.number / PERIOD + 1) * PERIOD);
        randomness.setSeed(_b32(".nextSeed"));
        uint256 used = _measure(host1, ids(b), batch("another period's seed").proof);
        emit log_named_uint("submitCompactProof (3 slots, steady state) execution gas", used);
        // Verifier ~189k + 3 x 6.6k per input, plus ~8k of reads, checks and marks per slot.
        vm.assertLe(used, 250_000);
    }

    /// The verifier contract alone, called as the Marketplace calls it. With the valid batch's
    /// inputs (the host's seed input and one per slot: 4 nonzero of the circuit's 5), then with
    /// only the first input left nonzero: a zero input skips its scalar multiplication and the
    /// pairing costs the same whether it holds or not, so that is the verifier of a one-input
    /// circuit (the single hashed input of the stretch target).
    function test_Gas_Verifier() public {
        Batch memory b = batch("valid, 3 slots");
        vm.assertEq(vm.parseJsonString(json, string.concat(K, ".batches[0].name")), b.name);
        bytes32[] memory words = vm.parseJsonBytes32Array(json, string.concat(K, ".batches[0].inputs"));
        uint256[] memory input = new uint256[](words.length);
        for (uint256 i; i < words.length; ++i) {
            input[i] = uint256(words[i]);
        }
        uint256 before = gasleft();
        bool valid = verifier.verifyProof(b.proof, input);
        uint256 all = before - gasleft();
        vm.assertTrue(valid, "the vectors' batch verifies");
        emit log_named_uint("verifyProof (5 inputs, 4 nonzero) gas, call included", all);
        for (uint256 i = 1; i < input.length; ++i) {
            input[i] = 0;
        }
        before = gasleft();
        valid = verifier.verifyProof(b.proof, input);
        uint256 one = before - gasleft();
        vm.assertFalse(valid, "another statement");
        emit log_named_uint("verifyProof (one nonzero input) gas, call included", one);
        vm.assertLe(one, 195_000);
    }

    function test_Gas_FillCompactSlot_Repair() public {
        for (uint256 m; m < 3; ++m) {
            uint256 period = market.currentPeriod();
            vm.roll((period + 1) * PERIOD);
            bytes32 id = slotId(0, 3);
            vm.prank(reporter);
            market.markProofMissing(id, period);
        }
        randomness.setSeed(_b32(".fillSeed"));
        bytes32 root = _b32(_at(".dataset.slotRoots", 3));
        bytes32[] memory rootPath =
            vm.parseJsonBytes32Array(json, string.concat(K, _at(".dataset.rootPaths", 3)));
        bytes memory proof = vm.parseJsonBytes(json, string.concat(K, ".requests[0]", _at(".fillProofs", 3)));
        bytes32 c = _b32(_at(".dataset.commitments", 3));
        bytes32[] memory cPath =
            vm.parseJsonBytes32Array(json, string.concat(K, _at(".dataset.commitmentPaths", 3)));
        bytes32 rid = requestIds[0];
        vm.prank(address(0xB0B3));
        uint256 before = gasleft();
        market.fillCompactSlot(rid, 3, root, rootPath, proof, c, cPath);
        uint256 used = before - gasleft();
        emit log_named_uint("fillCompactSlot (repair, 5 samples) execution gas", used);
        vm.assertLe(used, 300_000);
    }
}
