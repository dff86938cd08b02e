// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

import {Marketplace} from "../../src/Marketplace.sol";
import {MarketplaceConfig, RequestParams} from "../../src/MarketplaceTypes.sol";

/// @notice The Marketplace plus one entry point that opens a request under a chosen id, so the
/// shared test vectors (whose slot ids derive from fixed request ids) can run through the real
/// fill and proof paths. Tests and gas measurements only; never deployed for users.
contract MarketplaceHarness is Marketplace {
    constructor(MarketplaceConfig memory cfg) Marketplace(cfg) {}

    function requestStorageWithId(bytes32 requestId, RequestParams calldata params) external {
        require(_requests[requestId].renter == address(0), "request id taken");
        _createRequest(requestId, params, _validate(params));
    }
}
