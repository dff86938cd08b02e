// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.34;

import {CompactProofs} from "./CompactProofs.sol";
import {HostRegistry} from "./HostRegistry.sol";
import {IMarketplace} from "./IMarketplace.sol";
import {MarketplaceStorage} from "./MarketplaceStorage.sol";
import {
    MarketplaceConfig,
    ProofScheme,
    ProofStatus,
    RequestInfo,
    RequestParams,
    RequestState,
    SlotInfo,
    SlotState
} from "./MarketplaceTypes.sol";
import {Challenges} from "./libraries/Challenges.sol";
import {DatasetTree} from "./libraries/DatasetTree.sol";
import {DirectVerifier} from "./libraries/DirectVerifier.sol";
import {Periods} from "./libraries/Periods.sol";
import {IRandomness} from "./randomness/IRandomness.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

/// @title hoard Marketplace
/// @notice See `IMarketplace` for the interface and docs/contracts.md for the design.
/// @dev Money is never stored per request: escrow, forfeited collateral and every payout follow from
/// the request's parameters and a few counters (see `_renterRefund`), so each token the contract
/// holds is accounted for by construction. No owner, no admin, no upgrade path. Functions that move
/// tokens are `nonReentrant` and follow checks-effects-interactions; `submitProof` and
/// `markProofMissing` move none and call only the randomness source (a view).
contract Marketplace is MarketplaceStorage, HostRegistry, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    // ------------------------------------------------------------------ constants

    /// @notice Most slots (k + m) a request may have: the prover's maximum.
    uint256 public constant MAX_SLOTS = 256;
    /// @notice Most samples per proof.
    uint256 public constant MAX_SAMPLES = 128;
    /// @notice Most cells per slot (2^40 cells = 256 TiB).
    uint256 public constant MAX_CELL_COUNT = 1 << 40;
    /// @notice Longest request duration (100 years).
    uint256 public constant MAX_DURATION = 100 * 365 days;
    /// @notice Most collateral one slot may require, in token base units (2^96 - 1).
    uint256 public constant MAX_SLOT_COLLATERAL = type(uint96).max;
    /// @notice Bytes per cell.
    uint256 public constant CELL_SIZE = 256;
    /// @notice Cells per 64-KiB block; cellCount is a multiple of it.
    uint256 public constant CELLS_PER_BLOCK = 256;
    /// @notice Basis points in one.
    uint256 public constant BPS = 10_000;
    /// @notice Most cells a compact slot may have (2^22 = 1 GiB): the circuits' tree depth.
    uint256 public constant COMPACT_MAX_CELL_COUNT = 1 << 22;

    // ------------------------------------------------------------------ configuration

    IERC20 internal immutable _token;
    IRandomness internal immutable _randomness;
    uint64 internal immutable _periodLength;
    uint64 internal immutable _graceBlocks;
    uint8 internal immutable _maxMissed;
    uint16 internal immutable _slashBps;
    uint16 internal immutable _reporterRewardBps;
    uint16 internal immutable _repairRewardBps;
    uint256 internal immutable _deploymentBlock;
    /// The compact proof check, run by delegatecall: a contract of its own so that the Marketplace
    /// stays under the 24,576-byte code limit (EIP-170).
    CompactProofs internal immutable _compact;
    /// The direct proof check, a contract of its own for the same reason (see DirectVerifier).
    DirectVerifier internal immutable _direct;
    address internal immutable _verifierSmall;
    address internal immutable _verifierLarge;
    uint256 internal immutable _compactSamples;

    error ZeroAddress();
    error InvalidPeriodLength(uint256 periodLength);
    error InvalidGraceBlocks(uint256 graceBlocks, uint256 periodLength, uint256 horizon);
    error InvalidMaxMissed(uint256 maxMissed);
    error InvalidSlashing(uint256 slashBps, uint256 reporterRewardBps, uint256 repairRewardBps);

    // ------------------------------------------------------------------ state: see MarketplaceStorage

    /// @param cfg see `MarketplaceConfig`. The grace window must end while the period's seed is
    /// still readable: `periodLength + graceBlocks <= randomness.horizon()`.
    constructor(MarketplaceConfig memory cfg) {
        if (cfg.token == address(0) || cfg.randomness == address(0)) revert ZeroAddress();
        if (cfg.periodLength < 2) revert InvalidPeriodLength(cfg.periodLength);
        uint256 horizon = IRandomness(cfg.randomness).horizon();
        if (cfg.graceBlocks == 0 || uint256(cfg.periodLength) + cfg.graceBlocks > horizon) {
            revert InvalidGraceBlocks(cfg.graceBlocks, cfg.periodLength, horizon);
        }
        if (cfg.maxMissed == 0) revert InvalidMaxMissed(cfg.maxMissed);
        // The reporter gets less than the slash; the slashes before an eviction fit in the
        // collateral; each eviction forfeits at least one repair reward once the reporters are paid.
        if (
            cfg.slashBps == 0 || cfg.reporterRewardBps >= BPS || uint256(cfg.maxMissed) * cfg.slashBps > BPS
                || uint256(cfg.repairRewardBps) * BPS + uint256(cfg.maxMissed) * cfg.slashBps
                        * cfg.reporterRewardBps > BPS * BPS
        ) revert InvalidSlashing(cfg.slashBps, cfg.reporterRewardBps, cfg.repairRewardBps);

        _token = IERC20(cfg.token);
        _randomness = IRandomness(cfg.randomness);
        _periodLength = cfg.periodLength;
        _graceBlocks = cfg.graceBlocks;
        _maxMissed = cfg.maxMissed;
        _slashBps = cfg.slashBps;
        _reporterRewardBps = cfg.reporterRewardBps;
        _repairRewardBps = cfg.repairRewardBps;
        _deploymentBlock = block.number;

        _compact = new CompactProofs(cfg);
        _direct = new DirectVerifier();
        _verifierSmall = cfg.compactVerifierSmall;
        _verifierLarge = cfg.compactVerifierLarge;
        _compactSamples = _compact.samples();
    }

    // ================================================================== requests and proofs

    /// @inheritdoc IMarketplace
    function requestStorage(RequestParams calldata params) external nonReentrant returns (bytes32 requestId) {
        uint256 escrow = _validate(params);
        requestId = nextRequestId(msg.sender);
        _createRequest(requestId, params, escrow);
    }

    /// @inheritdoc IMarketplace
    function extendRequest(bytes32 requestId, uint256 extraSeconds) external nonReentrant {
        Request storage r = _requests[requestId];
        address renter = r.renter;
        if (renter == address(0)) revert UnknownRequest(requestId);
        if (msg.sender != renter) revert NotRenter(msg.sender, renter);
        uint256 payment = _extension(requestId, r, extraSeconds);

        // Both move by the same amount: createdAt (endsAt - duration) stays, and the escrow that
        // `_renterRefund` recomputes from the duration includes the payment.
        // forge-lint: disable-next-line(unsafe-typecast) _extension keeps the duration <= MAX_DURATION
        r.params.duration += uint64(extraSeconds);
        // forge-lint: disable-next-line(unsafe-typecast) createdAt + a duration <= MAX_DURATION fits 40 bits
        uint40 endsAt = r.endsAt + uint40(extraSeconds);
        r.endsAt = endsAt;
        emit RequestExtended(requestId, extraSeconds, endsAt, payment);

        _token.safeTransferFrom(msg.sender, address(this), payment);
    }

    /// @inheritdoc IMarketplace
    function fillSlot(
        bytes32 requestId,
        uint256 slotIndex,
        bytes32 slotRoot,
        bytes32[] calldata rootPath,
        bytes calldata proof
    ) external nonReentrant {
        (bytes32 id, uint256 period, bool repair) = _checkFill(
            requestId, slotIndex, slotRoot, rootPath, proof, ProofScheme.Direct
        );
        uint256 collateral = _occupy(requestId, id, slotRoot, period, repair);

        _token.safeTransferFrom(msg.sender, address(this), collateral);
    }

    /// @inheritdoc IMarketplace
    function fillCompactSlot(
        bytes32 requestId,
        uint256 slotIndex,
        bytes32 slotRoot,
        bytes32[] calldata rootPath,
        bytes calldata proof,
        bytes32 commitment,
        bytes32[] calldata commitmentPath
    ) external nonReentrant {
        (bytes32 id, uint256 period, bool repair) = _checkFill(
            requestId, slotIndex, slotRoot, rootPath, proof, ProofScheme.Compact
        );
        Request storage r = _requests[requestId];
        if (commitment == bytes32(0) || uint256(commitment) >= SNARK_FIELD) revert InvalidCommitment();
        if (!DatasetTree.verify(r.params.compactRoot, r.slots, slotIndex, commitment, commitmentPath)) {
            revert InvalidCommitmentPath();
        }
        _slots[id].commitment = uint256(commitment) | (r.proofProbability > 1 ? SAMPLED : 0);
        uint256 collateral = _occupy(requestId, id, slotRoot, period, repair);

        _token.safeTransferFrom(msg.sender, address(this), collateral);
    }

    /// @dev The checks of a fill, common to both schemes: returns the slot id, the current period
    /// and whether the slot was in Repair.
    function _checkFill(
        bytes32 requestId,
        uint256 slotIndex,
        bytes32 slotRoot,
        bytes32[] calldata rootPath,
        bytes calldata proof,
        ProofScheme scheme
    ) internal view returns (bytes32 id, uint256 period, bool repair) {
        Request storage r = _requests[requestId];
        if (r.renter == address(0)) revert UnknownRequest(requestId);
        if (r.scheme != scheme) revert WrongScheme(requestId, r.scheme);
        _requireActive(requestId, r);
        uint256 slots = r.slots;
        if (slotIndex >= slots) revert InvalidSlotIndex(slotIndex, slots);
        id = Challenges.slotId(requestId, slotIndex);
        SlotState previous = _slots[id].state;
        if (previous != SlotState.Free && previous != SlotState.Repair) revert SlotNotFree(id, previous);
        if (slotRoot == bytes32(0)) revert ZeroSlotRoot();
        if (!DatasetTree.verify(r.params.datasetRoot, slots, slotIndex, slotRoot, rootPath)) {
            revert InvalidSlotRootPath();
        }
        period = currentPeriod();
        if (!_direct.verifyChallenge(slotRoot, r.cellCount, _seed(period), id, r.samples, proof)) {
            revert InvalidProof();
        }
        repair = previous == SlotState.Repair;
    }

    /// @inheritdoc IMarketplace
    function submitProof(bytes32 id, bytes calldata proof) external {
        Slot storage s = _slots[id];
        _requireFilled(id, s.state);
        address host = s.host;
        if (msg.sender != host) revert NotSlotHost(msg.sender, host);
        bytes32 requestId = s.requestId;
        Request storage r = _requests[requestId];
        _requireActive(requestId, r);

        uint256 period = currentPeriod();
        // Marked before the checks below: a failed one reverts the mark with everything else.
        if (period == s.filledPeriod || !_markSubmitted(id, period)) {
            revert ProofAlreadySubmitted(id, period);
        }
        bytes32 seed = _seed(period);
        if (!Challenges.isRequired(seed, id, r.proofProbability)) revert ProofNotRequired(id, period);
        if (!_direct.verifyChallenge(s.slotRoot, r.cellCount, seed, id, r.samples, proof)) {
            revert InvalidProof();
        }
        emit ProofSubmitted(id, host, period);
    }

    /// @inheritdoc IMarketplace
    /// @dev Runs `CompactProofs.submitCompactProof` on this contract's storage (see there).
    function submitCompactProof(uint256, bytes32[] calldata, uint256[8] calldata) external {
        (bool ok, bytes memory ret) = address(_compact).delegatecall(msg.data);
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(ret, 0x20), mload(ret))
            }
        }
    }

    /// @inheritdoc IMarketplace
    function markProofMissing(bytes32 id, uint256 period) external {
        Slot storage s = _slots[id];
        _requireFilled(id, s.state);
        bytes32 requestId = s.requestId;
        Request storage r = _requests[requestId];
        RequestState state = _requireActive(requestId, r);
        _requireMissing(id, period, s.filledPeriod, r.proofProbability);

        _setProofStatus(id, period, ProofStatus.Missed);
        uint256 slash = _slash(r.slotCollateral);
        uint256 reward = _reporterReward(slash);
        uint256 missed = s.missedProofs + 1;
        // forge-lint: disable-next-line(unsafe-typecast) missed <= maxMissed (a uint8): eviction resets it
        s.missedProofs = uint8(missed);
        r.missedProofs += 1;
        _rewards[msg.sender] += reward;
        emit ProofMissed(id, s.host, period, msg.sender, slash, reward, missed);

        if (missed >= _maxMissed) _evict(requestId, id, state);
    }

    // ================================================================== withdrawals

    /// @inheritdoc IMarketplace
    function withdrawSlot(bytes32 id) external nonReentrant {
        Slot storage s = _slots[id];
        if (s.state == SlotState.None) revert UnknownSlot(id);
        if (msg.sender != s.host) revert NotSlotHost(msg.sender, s.host);
        if (s.state == SlotState.Paid) revert AlreadyWithdrawn();
        bytes32 requestId = s.requestId;
        Request storage r = _requests[requestId];
        uint256 end = _settle(requestId, r);

        uint256 amount = _earned(r, s.filledAt, end) + _remainingCollateral(r, s.missedProofs);
        s.state = SlotState.Paid;
        emit Withdrawn(msg.sender, requestId, id, amount);

        _token.safeTransfer(msg.sender, amount);
    }

    /// @inheritdoc IMarketplace
    function withdrawRequest(bytes32 requestId) external nonReentrant {
        Request storage r = _requests[requestId];
        address renter = r.renter;
        if (renter == address(0)) revert UnknownRequest(requestId);
        if (msg.sender != renter) revert NotRenter(msg.sender, renter);
        if (r.renterWithdrawn) revert AlreadyWithdrawn();
        uint256 end = _settle(requestId, r);

        uint256 amount = _renterRefund(r, end);
        r.renterWithdrawn = true;
        emit Withdrawn(msg.sender, requestId, bytes32(0), amount);

        if (amount != 0) _token.safeTransfer(msg.sender, amount);
    }

    /// @inheritdoc IMarketplace
    function withdrawReward() external nonReentrant {
        uint256 amount = _rewards[msg.sender];
        if (amount == 0) revert NothingToWithdraw();
        _rewards[msg.sender] = 0;
        emit Withdrawn(msg.sender, bytes32(0), bytes32(0), amount);

        _token.safeTransfer(msg.sender, amount);
    }

    // ================================================================== views

    /// @inheritdoc IMarketplace
    function config() external view returns (MarketplaceConfig memory) {
        return MarketplaceConfig({
            token: address(_token),
            randomness: address(_randomness),
            periodLength: _periodLength,
            graceBlocks: _graceBlocks,
            maxMissed: _maxMissed,
            slashBps: _slashBps,
            reporterRewardBps: _reporterRewardBps,
            repairRewardBps: _repairRewardBps,
            compactVerifierSmall: _verifierSmall,
            compactVerifierLarge: _verifierLarge
        });
    }

    /// @inheritdoc IMarketplace
    function deploymentBlock() external view returns (uint256) {
        return _deploymentBlock;
    }

    /// @inheritdoc IMarketplace
    function currentPeriod() public view returns (uint256) {
        return Periods.periodOf(block.number, _periodLength);
    }

    /// @inheritdoc IMarketplace
    function periodSeed(uint256 period) external view returns (bytes32) {
        uint256 current = currentPeriod();
        if (period > current) revert FuturePeriod(period, current);
        return _seed(period);
    }

    /// @inheritdoc IMarketplace
    function slotId(bytes32 requestId, uint256 slotIndex) external pure returns (bytes32) {
        return Challenges.slotId(requestId, slotIndex);
    }

    /// @inheritdoc IMarketplace
    function nextRequestId(address renter) public view returns (bytes32) {
        return keccak256(abi.encode(block.chainid, address(this), renter, _renterRequests[renter].length));
    }

    /// @inheritdoc IMarketplace
    function getRequest(bytes32 requestId) external view returns (RequestInfo memory info) {
        Request storage r = _requests[requestId];
        if (r.renter == address(0)) return info;
        (RequestState state, uint256 end) = _requestState(r);
        info.params = r.params;
        info.renter = r.renter;
        info.state = state;
        info.createdAt = r.endsAt - r.params.duration;
        info.expiresAt = r.expiresAt;
        info.endsAt = r.endsAt;
        // forge-lint: disable-next-line(unsafe-typecast) end is one of the request's uint40 times
        info.endedAt = uint64(end);
        info.filledSlots = r.filledSlots;
        info.missedProofs = r.missedProofs;
        info.evictions = r.evictions;
        info.repairs = r.repairs;
        info.renterWithdrawn = r.renterWithdrawn;
    }

    /// @inheritdoc IMarketplace
    function requestState(bytes32 requestId) external view returns (RequestState state) {
        Request storage r = _requests[requestId];
        if (r.renter != address(0)) (state,) = _requestState(r);
    }

    /// @inheritdoc IMarketplace
    function getSlot(bytes32 id) external view returns (SlotInfo memory info) {
        Slot storage s = _slots[id];
        if (s.state == SlotState.None) return info;
        info.requestId = s.requestId;
        info.slotIndex = s.index;
        info.state = _slotState(s);
        info.host = s.host;
        info.filledAt = s.filledAt;
        info.filledPeriod = s.filledPeriod;
        info.missedProofs = s.missedProofs;
        info.slotRoot = s.slotRoot;
        info.commitment = bytes32(s.commitment & ~SAMPLED);
    }

    /// @inheritdoc IMarketplace
    function slotState(bytes32 id) external view returns (SlotState) {
        return _slotState(_slots[id]);
    }

    /// @inheritdoc IMarketplace
    function isProofRequired(bytes32 id) external view returns (bool) {
        Slot storage s = _slots[id];
        if (_slotState(s) != SlotState.Filled) return false;
        uint256 period = currentPeriod();
        if (period == s.filledPeriod || _proofStatus(id, period) != ProofStatus.None) return false;
        return Challenges.isRequired(_seed(period), id, _requests[s.requestId].proofProbability);
    }

    /// @inheritdoc IMarketplace
    function challenge(bytes32 id, uint256 period)
        external
        view
        returns (bytes32 seed, bool required, uint256[] memory indices)
    {
        Slot storage s = _slots[id];
        if (s.state == SlotState.None) revert UnknownSlot(id);
        uint256 current = currentPeriod();
        if (period > current) revert FuturePeriod(period, current);
        Request storage r = _requests[s.requestId];
        seed = _seed(period);
        required = Challenges.isRequired(seed, id, r.proofProbability);
        indices = Challenges.sampleIndices(seed, id, r.samples, r.cellCount);
    }

    /// @inheritdoc IMarketplace
    function proofStatus(bytes32 id, uint256 period) external view returns (ProofStatus) {
        return _proofStatus(id, period);
    }

    /// @inheritdoc IMarketplace
    function renterRequests(address renter, uint256 offset, uint256 limit)
        external
        view
        returns (bytes32[] memory page)
    {
        bytes32[] storage list = _renterRequests[renter];
        (uint256 start, uint256 n) = _page(list.length, offset, limit);
        page = new bytes32[](n);
        for (uint256 i; i < n; ++i) {
            page[i] = list[start + i];
        }
    }

    /// @inheritdoc IMarketplace
    function renterRequestCount(address renter) external view returns (uint256) {
        return _renterRequests[renter].length;
    }

    /// @inheritdoc IMarketplace
    function escrowFor(RequestParams calldata params) external pure returns (uint256) {
        return _validate(params);
    }

    /// @inheritdoc IMarketplace
    function extensionCost(bytes32 requestId, uint256 extraSeconds) external view returns (uint256) {
        Request storage r = _requests[requestId];
        if (r.renter == address(0)) revert UnknownRequest(requestId);
        return _extension(requestId, r, extraSeconds);
    }

    /// @inheritdoc IMarketplace
    function slotCollateral(bytes32 requestId) external view returns (uint256) {
        return _requests[requestId].slotCollateral;
    }

    /// @inheritdoc IMarketplace
    function slotPayout(bytes32 id) external view returns (uint256 earned, uint256 collateral) {
        Slot storage s = _slots[id];
        if (s.state != SlotState.Filled) return (0, 0);
        Request storage r = _requests[s.requestId];
        (RequestState state, uint256 end) = _requestState(r);
        if (state == RequestState.New || state == RequestState.Started) end = block.timestamp;
        return (_earned(r, s.filledAt, end), _remainingCollateral(r, s.missedProofs));
    }

    /// @inheritdoc IMarketplace
    function renterRefund(bytes32 requestId) external view returns (uint256) {
        Request storage r = _requests[requestId];
        if (r.renter == address(0) || r.renterWithdrawn) return 0;
        (RequestState state, uint256 end) = _requestState(r);
        if (state == RequestState.New || state == RequestState.Started) return 0;
        return _renterRefund(r, end);
    }

    /// @inheritdoc IMarketplace
    function rewardOf(address account) external view returns (uint256) {
        return _rewards[account];
    }

    // ================================================================== internals: requests

    /// @dev Checks every parameter and returns the escrow.
    function _validate(RequestParams calldata p) internal pure returns (uint256 escrow) {
        if (p.slots == 0) revert ZeroSlots();
        if (p.slots > MAX_SLOTS) revert TooManySlots(p.slots, MAX_SLOTS);
        if (p.maxSlotLoss >= p.slots) revert InvalidMaxSlotLoss(p.maxSlotLoss, p.slots);
        if (p.cellCount == 0 || p.cellCount % CELLS_PER_BLOCK != 0 || p.cellCount > MAX_CELL_COUNT) {
            revert InvalidCellCount(p.cellCount);
        }
        if (p.slotSize != uint256(p.cellCount) * CELL_SIZE) revert SlotSizeMismatch(p.slotSize, p.cellCount);
        if (p.duration == 0 || p.duration > MAX_DURATION) revert InvalidDuration(p.duration);
        if (p.expiry == 0 || p.expiry >= p.duration) revert InvalidExpiry(p.expiry, p.duration);
        if (p.pricePerBytePerSecond == 0) revert ZeroPrice();
        if (p.collateralPerByte == 0) revert ZeroCollateral();
        if (p.proofProbability == 0) revert ZeroProofProbability();
        if (p.samples == 0 || p.samples > MAX_SAMPLES) revert InvalidSamples(p.samples, MAX_SAMPLES);
        if (p.scheme == ProofScheme.Compact) {
            if (p.cellCount > COMPACT_MAX_CELL_COUNT) revert InvalidCellCount(p.cellCount);
            if (p.compactRoot == bytes32(0)) revert InvalidCompactRoot();
        } else if (p.compactRoot != bytes32(0)) {
            revert InvalidCompactRoot();
        }
        if (p.datasetRoot == bytes32(0)) revert ZeroDatasetRoot();
        if (p.manifestId == bytes32(0)) revert ZeroManifestId();
        (bool ok, uint256 collateral) = Math.tryMul(p.collateralPerByte, p.slotSize);
        if (!ok || collateral > MAX_SLOT_COLLATERAL) revert CollateralOverflow();
        // Every later product (one host's pay, the sum of all pays) is bounded by the escrow.
        (bool ok1, uint256 perSecond) = Math.tryMul(p.pricePerBytePerSecond, p.slotSize);
        (bool ok2, uint256 total) = Math.tryMul(perSecond, uint256(p.slots) * p.duration);
        if (!ok1 || !ok2) revert PriceOverflow();
        return total;
    }

    /// @dev Checks that a known request runs and may grow by `extraSeconds` (the whole duration stays
    /// within MAX_DURATION, the whole escrow within 256 bits); returns what the extension costs.
    function _extension(bytes32 requestId, Request storage r, uint256 extraSeconds)
        internal
        view
        returns (uint256 payment)
    {
        _requireActive(requestId, r);
        RequestParams storage p = r.params;
        uint256 maxExtra = MAX_DURATION - p.duration;
        if (extraSeconds == 0 || extraSeconds > maxExtra) revert InvalidExtension(extraSeconds, maxExtra);
        // price * slotSize and each product with the old duration were checked by `_validate`.
        uint256 allSlotsPerSecond = p.pricePerBytePerSecond * p.slotSize * r.slots;
        (bool ok,) = Math.tryMul(allSlotsPerSecond, p.duration + extraSeconds);
        if (!ok) revert PriceOverflow();
        return allSlotsPerSecond * extraSeconds;
    }

    /// @dev Stores a validated request, creates its slots (Free) and pulls the escrow. Separate from
    /// `requestStorage` so a test harness can open a request under a chosen id.
    function _createRequest(bytes32 requestId, RequestParams calldata params, uint256 escrow) internal {
        if (params.scheme == ProofScheme.Compact) {
            // The verifiers fix the samples per slot; without them there is no compact scheme.
            if (_compactSamples == 0) revert SchemeNotSupported(params.scheme);
            if (params.samples != _compactSamples) revert InvalidSamples(params.samples, _compactSamples);
        }
        Request storage r = _requests[requestId];
        r.renter = msg.sender;
        r.state = RequestState.New;
        r.scheme = params.scheme;
        // forge-lint: disable-next-line(unsafe-typecast) unix seconds + a validated duration fit 40 bits
        r.expiresAt = uint40(block.timestamp + params.expiry);
        // forge-lint: disable-next-line(unsafe-typecast) unix seconds + a validated duration fit 40 bits
        r.endsAt = uint40(block.timestamp + params.duration);
        // forge-lint: disable-next-line(unsafe-typecast) validated <= MAX_SLOT_COLLATERAL = 2^96 - 1
        r.slotCollateral = uint96(uint256(params.collateralPerByte) * params.slotSize);
        r.cellCount = params.cellCount;
        r.proofProbability = params.proofProbability;
        r.samples = params.samples;
        r.slots = params.slots;
        r.params = params;
        for (uint256 i; i < params.slots; ++i) {
            Slot storage s = _slots[Challenges.slotId(requestId, i)];
            s.requestId = requestId;
            // forge-lint: disable-next-line(unsafe-typecast) i < slots <= MAX_SLOTS = 256
            s.index = uint8(i);
            s.state = SlotState.Free;
        }
        _renterRequests[msg.sender].push(requestId);
        emit StorageRequested(requestId, msg.sender, params, escrow, r.expiresAt, r.endsAt);

        _token.safeTransferFrom(msg.sender, address(this), escrow);
    }

    /// @dev Effects of a checked fill: the caller takes the slot. Returns the collateral to pull.
    function _occupy(bytes32 requestId, bytes32 id, bytes32 slotRoot, uint256 period, bool repair)
        internal
        returns (uint256 collateral)
    {
        Request storage r = _requests[requestId];
        Slot storage s = _slots[id];
        s.host = msg.sender;
        // forge-lint: disable-next-line(unsafe-typecast) unix seconds fit 40 bits until the year 36812
        s.filledAt = uint40(block.timestamp);
        s.filledPeriod = SafeCast.toUint32(period);
        s.state = SlotState.Filled;
        s.slotRoot = slotRoot;
        uint256 filled = r.filledSlots + 1;
        // forge-lint: disable-next-line(unsafe-typecast) filled <= slots <= MAX_SLOTS
        r.filledSlots = uint16(filled);
        // forge-lint: disable-next-line(unsafe-typecast) unix seconds fit 40 bits until the year 36812
        r.sumFilledAt += uint40(block.timestamp);
        collateral = r.slotCollateral;
        if (repair) {
            // The repair reward comes out of forfeited collateral: the host brings that much less and
            // gets the full collateral back at the end.
            r.repairs += 1;
            collateral -= _repairReward(collateral);
        }
        _recordSlot(msg.sender, id);
        emit SlotFilled(requestId, id, msg.sender, s.index, repair);
        if (r.state == RequestState.New && filled == r.slots) {
            r.state = RequestState.Started;
            emit RequestStarted(requestId);
        }
    }

    /// @dev Reverts unless the proof of `period` was required of the current host, is absent, and
    /// may still be marked.
    function _requireMissing(bytes32 id, uint256 period, uint256 filledPeriod, uint256 proofProbability)
        internal
        view
    {
        uint256 current = currentPeriod();
        if (period >= current) revert PeriodNotEnded(period, current);
        uint256 lastBlock = Periods.lastBlock(period, _periodLength) + _graceBlocks;
        if (block.number > lastBlock) revert MarkingWindowClosed(period, lastBlock);
        if (period < filledPeriod) revert PeriodBeforeFill(period, filledPeriod);
        ProofStatus status = _proofStatus(id, period);
        // The fill's proof counts for the fill period.
        if (period == filledPeriod || status == ProofStatus.Submitted) revert ProofWasSubmitted(id, period);
        if (status == ProofStatus.Missed) revert ProofAlreadyMarked(id, period);
        if (!Challenges.isRequired(_seed(period), id, proofProbability)) revert ProofNotRequired(id, period);
    }

    /// @dev Evicts the host of slot `id`: the slot goes to Repair, the host forfeits its pay and what
    /// is left of its collateral, and a started request fails if too many slots are empty.
    function _evict(bytes32 requestId, bytes32 id, RequestState state) internal {
        Request storage r = _requests[requestId];
        Slot storage s = _slots[id];
        address host = s.host;
        uint256 filled = r.filledSlots - 1;
        // forge-lint: disable-next-line(unsafe-typecast) filled < slots <= MAX_SLOTS
        r.filledSlots = uint16(filled);
        r.sumFilledAt -= s.filledAt;
        r.evictions += 1;
        s.host = address(0);
        s.filledAt = 0;
        s.filledPeriod = 0;
        s.missedProofs = 0;
        s.state = SlotState.Repair;
        emit SlotFreed(requestId, id, host, s.index);
        if (state == RequestState.Started && r.slots - filled > r.params.maxSlotLoss) {
            r.state = RequestState.Failed;
            // forge-lint: disable-next-line(unsafe-typecast) unix seconds fit 40 bits until the year 36812
            r.endedAt = uint40(block.timestamp);
            emit RequestFailed(requestId);
        }
    }

    /// @dev The request's state as of now, and when it ended (0 while it runs).
    function _requestState(Request storage r) internal view returns (RequestState state, uint256 end) {
        state = r.state;
        if (state == RequestState.New) {
            if (block.timestamp > r.expiresAt) return (RequestState.Cancelled, r.expiresAt);
        } else if (state == RequestState.Started) {
            if (block.timestamp >= r.endsAt) return (RequestState.Finished, r.endsAt);
        } else {
            end = r.endedAt; // Failed, or a settled Cancelled/Finished
        }
    }

    /// @dev Reverts unless the request runs; returns its state (New or Started).
    function _requireActive(bytes32 requestId, Request storage r) internal view returns (RequestState state) {
        (state,) = _requestState(r);
        if (state != RequestState.New && state != RequestState.Started) {
            revert RequestNotActive(requestId, state);
        }
    }

    /// @dev Reverts unless the request has ended; records a time-based end (Cancelled, Finished) the
    /// first time, with its event. Returns the end time.
    function _settle(bytes32 requestId, Request storage r) internal returns (uint256 end) {
        RequestState state;
        (state, end) = _requestState(r);
        if (state == RequestState.New || state == RequestState.Started) {
            revert RequestNotEnded(requestId, state);
        }
        if (state != r.state) {
            r.state = state;
            // forge-lint: disable-next-line(unsafe-typecast) end is expiresAt or endsAt (uint40)
            r.endedAt = uint40(end);
            if (state == RequestState.Cancelled) emit RequestCancelled(requestId);
            else emit RequestFinished(requestId);
        }
    }

    function _slotState(Slot storage s) internal view returns (SlotState state) {
        state = s.state;
        if (state == SlotState.None || state == SlotState.Paid) return state;
        (RequestState rs,) = _requestState(_requests[s.requestId]);
        if (rs == RequestState.Cancelled) return SlotState.Cancelled;
        if (rs == RequestState.Finished) return SlotState.Finished;
        if (rs == RequestState.Failed) return SlotState.Failed;
    }

    // ================================================================== internals: proofs

    function _seed(uint256 period) internal view returns (bytes32) {
        return _randomness.seedAt(Periods.seedBlock(period, _periodLength));
    }

    // ================================================================== internals: money

    function _slash(uint256 collateral) internal view returns (uint256) {
        return collateral * _slashBps / BPS;
    }

    function _reporterReward(uint256 slash) internal view returns (uint256) {
        return slash * _reporterRewardBps / BPS;
    }

    function _repairReward(uint256 collateral) internal view returns (uint256) {
        return collateral * _repairRewardBps / BPS;
    }

    /// @dev Collateral a host with `missed` marks gets back: collateral − missed·slash.
    function _remainingCollateral(Request storage r, uint256 missed) internal view returns (uint256) {
        uint256 collateral = r.slotCollateral;
        return collateral - missed * _slash(collateral);
    }

    /// @dev A host's pay: price · slotSize · (end − filledAt).
    function _earned(Request storage r, uint256 filledAt, uint256 end) internal view returns (uint256) {
        return r.params.pricePerBytePerSecond * r.params.slotSize * (end - filledAt);
    }

    /// @dev What the renter gets back once the request ended at `end`:
    ///   escrow − Σ pay of the hosts holding a slot at the end + forfeited collateral, where
    ///   forfeited = misses·(slash − reward) + evictions·(collateral − maxMissed·slash)
    ///             − repairs·repairReward.
    /// Evicted hosts hold no slot at the end, so the time they held is refunded too.
    function _renterRefund(Request storage r, uint256 end) internal view returns (uint256) {
        RequestParams storage p = r.params;
        uint256 perSecond = p.pricePerBytePerSecond * p.slotSize;
        uint256 escrow = perSecond * p.slots * p.duration;
        uint256 owed = perSecond * (r.filledSlots * end - r.sumFilledAt);
        uint256 collateral = r.slotCollateral;
        uint256 slash = _slash(collateral);
        uint256 forfeited = r.missedProofs * (slash - _reporterReward(slash)) + r.evictions
            * (collateral - _maxMissed * slash) - r.repairs * _repairReward(collateral);
        return escrow - owed + forfeited;
    }
}
