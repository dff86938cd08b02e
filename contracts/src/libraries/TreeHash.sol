// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.28;

/// @title SHA-256 tree hashing shared by the slot tree and the dataset tree
/// @notice leaf = SHA-256(0x00 ‖ cell), node = SHA-256(0x01 ‖ left ‖ right), through precompile 0x02
/// (RFC 6962-style domain separation; the prover crate owns this encoding).
library TreeHash {
    uint256 internal constant CELL_SIZE = 256;

    /// @notice SHA-256(0x01 ‖ left ‖ right).
    function node(bytes32 left, bytes32 right) internal view returns (bytes32 h) {
        assembly ("memory-safe") {
            // Scratch past the free memory pointer; nothing is allocated.
            let p := mload(0x40)
            mstore8(p, 0x01)
            mstore(add(p, 0x01), left)
            mstore(add(p, 0x21), right)
            if iszero(staticcall(gas(), 0x02, p, 0x41, 0x00, 0x20)) { revert(0x00, 0x00) }
            h := mload(0x00)
        }
    }

    /// @notice SHA-256(0x00 ‖ data[offset : offset + 256]) for a cell in calldata.
    /// @dev The caller checks that the cell lies inside `data`.
    function leaf(bytes calldata data, uint256 offset) internal view returns (bytes32 h) {
        assembly ("memory-safe") {
            let p := mload(0x40)
            mstore8(p, 0x00)
            calldatacopy(add(p, 0x01), add(data.offset, offset), 0x100)
            if iszero(staticcall(gas(), 0x02, p, 0x101, 0x00, 0x20)) { revert(0x00, 0x00) }
            h := mload(0x00)
        }
    }
}
