// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

import {Deploy} from "../script/Deploy.s.sol";
import {Marketplace} from "../src/Marketplace.sol";
import {MarketplaceConfig} from "../src/MarketplaceTypes.sol";
import {HoardTestToken} from "../src/token/HoardTestToken.sol";
import {ICompactVerifier} from "../src/verifiers/ICompactVerifier.sol";
import {vm} from "./utils/Vm.sol";

contract DeployTest {
    Deploy internal script;

    function setUp() public {
        script = new Deploy();
    }

    function test_Deploy_DefaultsDeployEverything() public {
        Deploy.Deployment memory d = script.deploy(script.settings());
        MarketplaceConfig memory c = Marketplace(d.marketplace).config();
        vm.assertEq(c.token, d.token);
        vm.assertEq(c.randomness, d.randomness);
        vm.assertEq(c.periodLength, 64);
        vm.assertEq(c.graceBlocks, 64);
        vm.assertEq(c.maxMissed, 3);
        vm.assertEq(HoardTestToken(d.token).FAUCET_LIMIT(), 1_000_000 ether);
        // The devnet's compact verifiers, small and large, so compact requests are accepted.
        vm.assertEq(ICompactVerifier(c.compactVerifierSmall).slots(), 4);
        vm.assertEq(ICompactVerifier(c.compactVerifierLarge).slots(), 32);
        vm.assertEq(ICompactVerifier(c.compactVerifierLarge).samples(), 5);
        vm.assertEq(c.compactVerifierSmall, d.config.compactVerifierSmall);
    }

    function test_Deploy_KeepsGivenVerifiers() public {
        MarketplaceConfig memory cfg = script.settings();
        cfg.compactVerifierSmall = vm.deployCode("CompactVerifier4.sol:CompactVerifier4");
        Deploy.Deployment memory d = script.deploy(cfg);
        MarketplaceConfig memory c = Marketplace(d.marketplace).config();
        vm.assertEq(c.compactVerifierSmall, cfg.compactVerifierSmall);
        vm.assertEq(c.compactVerifierLarge, address(0));
    }

    function test_Deploy_ReusesGivenToken() public {
        MarketplaceConfig memory cfg = script.settings();
        cfg.token = address(new HoardTestToken());
        Deploy.Deployment memory d = script.deploy(cfg);
        vm.assertEq(d.token, cfg.token);
    }

    function test_Deploy_WritesDeploymentFile() public {
        Deploy.Deployment memory d = script.deploy(script.settings());
        string memory path = "deployments/test.local.json";
        script.write(d, 42, path);
        string memory json = vm.readFile(path);
        vm.assertEq(vm.parseJsonUint(json, ".chainId"), block.chainid);
        vm.assertEq(vm.parseJsonUint(json, ".deploymentBlock"), 42);
        vm.assertEq(vm.parseJsonUint(json, ".periodLength"), 64);
        vm.assertEq(vm.parseJsonAddress(json, ".marketplace"), d.marketplace);
        vm.assertEq(vm.parseJsonAddress(json, ".compactVerifierSmall"), d.config.compactVerifierSmall);
        vm.assertEq(vm.parseJsonAddress(json, ".compactVerifierLarge"), d.config.compactVerifierLarge);
    }
}
