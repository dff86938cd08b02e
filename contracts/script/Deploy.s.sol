// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

import {Marketplace} from "../src/Marketplace.sol";
import {MarketplaceConfig} from "../src/MarketplaceTypes.sol";
import {vm} from "../test/utils/Vm.sol";

/// @notice Deploys the randomness source, the test token (unless TOKEN names an existing ERC-20),
/// the compact proof verifiers (unless COMPACT=false) and the Marketplace, and writes their
/// addresses and the configuration to a JSON file the node reads. Prefer script/deploy.sh, which
/// also records the exact deployment block.
///
/// The verifiers are the committed `src/verifiers/CompactVerifier{4,32}.sol`, generated from the
/// devnet set-up: anyone who knows its published seed can forge compact proofs, so a deployment
/// where money is at stake sets COMPACT=false or replaces them with a ceremony's verifiers
/// (docs/protocol.md §9.5).
///
///   forge script script/Deploy.s.sol --rpc-url $RPC_URL --private-key $KEY --broadcast
///
/// Settings (environment, with defaults): PERIOD_LENGTH=64 GRACE_BLOCKS=64 MAX_MISSED=3
/// SLASH_BPS=1000 REPORTER_REWARD_BPS=2500 REPAIR_REWARD_BPS=1000 TOKEN=<deploy a test token>
/// COMPACT=true DEPLOYMENT_FILE=deployments/<chain id>.json (must lie under deployments/).
contract Deploy {
    struct Deployment {
        address token;
        address randomness;
        address marketplace;
        MarketplaceConfig config;
    }

    function settings() public view returns (MarketplaceConfig memory cfg) {
        cfg.token = vm.envOr("TOKEN", address(0));
        cfg.periodLength = uint64(vm.envOr("PERIOD_LENGTH", uint256(64)));
        cfg.graceBlocks = uint64(vm.envOr("GRACE_BLOCKS", uint256(64)));
        cfg.maxMissed = uint8(vm.envOr("MAX_MISSED", uint256(3)));
        cfg.slashBps = uint16(vm.envOr("SLASH_BPS", uint256(1000)));
        cfg.reporterRewardBps = uint16(vm.envOr("REPORTER_REWARD_BPS", uint256(2500)));
        cfg.repairRewardBps = uint16(vm.envOr("REPAIR_REWARD_BPS", uint256(1000)));
    }

    /// @notice Deploys with `cfg` (a zero token deploys the test token; the randomness is always new;
    /// with no compact verifier given, the devnet's two are deployed unless COMPACT=false).
    /// Deploys from the compiled artifacts (vm.deployCode), so this script carries no bytecode itself.
    function deploy(MarketplaceConfig memory cfg) public returns (Deployment memory d) {
        if (cfg.token == address(0)) cfg.token = vm.deployCode("HoardTestToken.sol:HoardTestToken");
        cfg.randomness = vm.deployCode("BlockHashRandomness.sol:BlockHashRandomness");
        if (
            cfg.compactVerifierSmall == address(0) && cfg.compactVerifierLarge == address(0)
                && vm.envOr("COMPACT", true)
        ) {
            cfg.compactVerifierSmall = vm.deployCode("CompactVerifier4.sol:CompactVerifier4");
            cfg.compactVerifierLarge = vm.deployCode("CompactVerifier32.sol:CompactVerifier32");
        }
        d.marketplace = vm.deployCode("Marketplace.sol:Marketplace", abi.encode(cfg));
        d.token = cfg.token;
        d.randomness = cfg.randomness;
        d.config = cfg;
    }

    function run() external returns (Deployment memory d) {
        MarketplaceConfig memory cfg = settings();
        vm.startBroadcast();
        d = deploy(cfg);
        vm.stopBroadcast();
        string memory path =
            vm.envOr("DEPLOYMENT_FILE", string.concat("deployments/", vm.toString(block.chainid), ".json"));
        write(d, Marketplace(d.marketplace).deploymentBlock(), path);
    }

    /// @notice Writes the deployment JSON (see docs/contracts.md, "Deployment file").
    function write(Deployment memory d, uint256 deploymentBlock, string memory path) public {
        string memory o = "deployment";
        vm.serializeUint(o, "chainId", block.chainid);
        vm.serializeAddress(o, "marketplace", d.marketplace);
        vm.serializeAddress(o, "token", d.token);
        vm.serializeAddress(o, "randomness", d.randomness);
        vm.serializeAddress(o, "compactVerifierSmall", d.config.compactVerifierSmall);
        vm.serializeAddress(o, "compactVerifierLarge", d.config.compactVerifierLarge);
        vm.serializeUint(o, "deploymentBlock", deploymentBlock);
        vm.serializeUint(o, "periodLength", d.config.periodLength);
        vm.serializeUint(o, "graceBlocks", d.config.graceBlocks);
        vm.serializeUint(o, "maxMissed", d.config.maxMissed);
        vm.serializeUint(o, "slashBps", d.config.slashBps);
        vm.serializeUint(o, "reporterRewardBps", d.config.reporterRewardBps);
        string memory json = vm.serializeUint(o, "repairRewardBps", d.config.repairRewardBps);
        vm.createDir("deployments", true);
        vm.writeJson(json, path);
    }
}
