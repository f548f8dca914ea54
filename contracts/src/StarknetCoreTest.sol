// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

import "./MockGpsVerifier.sol";

/// @notice A test Starknet core contract: the state-update half of StarkWare's core contract
/// (no messaging, no governance), written for this project's Anvil tests.
///
/// Program output layout (Starknet OS / aggregator output with KZG DA):
///   [0] previous state root   [1] new state root
///   [2] previous block number [3] new block number
///   [4] previous block hash   [5] new block hash
///   [6] OS program hash       [7] OS config hash
///   [8] use_kzg_da            [9] full_output
///   [10] x0, the KZG evaluation point   [11] n_blobs
///   then n_blobs commitments as (low, high) 192-bit halves (commitment = high || low),
///   then n_blobs evaluations y as (low, high) 128-bit halves, then the message segments.
contract StarknetCoreTest {
    uint256 internal constant PREV_ROOT_OFFSET = 0;
    uint256 internal constant NEW_ROOT_OFFSET = 1;
    uint256 internal constant PREV_BLOCK_NUMBER_OFFSET = 2;
    uint256 internal constant NEW_BLOCK_NUMBER_OFFSET = 3;
    uint256 internal constant NEW_BLOCK_HASH_OFFSET = 5;
    uint256 internal constant USE_KZG_DA_OFFSET = 8;
    uint256 internal constant HEADER_SIZE = 10;
    uint256 internal constant KZG_X0_OFFSET = 10;
    uint256 internal constant KZG_N_BLOBS_OFFSET = 11;
    uint256 internal constant KZG_COMMITMENTS_OFFSET = 12;
    uint256 internal constant MAX_BLOBS = 6;

    address internal constant POINT_EVALUATION_PRECOMPILE = address(0x0a);
    uint256 internal constant FIELD_ELEMENTS_PER_BLOB = 4096;
    uint256 internal constant BLS_MODULUS =
        52435875175126190479447740508185965837690552500527637822603658699938581184513;
    /// Felt -1 (the Starknet prime minus one): the OS's "previous block" of the first block.
    uint256 internal constant FELT_MINUS_ONE =
        0x800000000000011000000000000000000000000000000000000000000000000;

    /// Last settled block, -1 before the first update.
    int256 public stateBlockNumber;
    /// State root after the last settled block.
    uint256 public stateRoot;
    /// Block hash of the last settled block.
    uint256 public stateBlockHash;
    /// Hash of the program whose runs may update the state (the fact's first half).
    uint256 public programHash;
    /// Whether an update must start at the current root and block (the real contract's rule).
    bool public strictContinuity;
    IFactRegistry public verifier;

    event LogStateUpdate(uint256 globalRoot, int256 blockNumber, uint256 blockHash);

    constructor(
        uint256 programHash_,
        address verifier_,
        uint256 initialRoot,
        int256 initialBlockNumber,
        bool strictContinuity_
    ) {
        programHash = programHash_;
        verifier = IFactRegistry(verifier_);
        stateRoot = initialRoot;
        stateBlockNumber = initialBlockNumber;
        strictContinuity = strictContinuity_;
    }

    /// @notice State update whose data is in the transaction's blobs: one 48-byte KZG proof per
    /// blob, proving that blob i evaluates at x0 to the y_i of the program output.
    function updateStateKzgDA(uint256[] calldata programOutput, bytes[] calldata kzgProofs) external {
        require(programOutput.length > KZG_N_BLOBS_OFFSET, "PROGRAM_OUTPUT_TOO_SHORT");
        require(programOutput[USE_KZG_DA_OFFSET] == 1, "KZG_DA_NOT_USED");
        uint256 nBlobs = programOutput[KZG_N_BLOBS_OFFSET];
        require(nBlobs > 0 && nBlobs <= MAX_BLOBS, "INVALID_NUMBER_OF_BLOBS");
        require(programOutput.length >= KZG_COMMITMENTS_OFFSET + 4 * nBlobs, "PROGRAM_OUTPUT_TOO_SHORT");
        require(kzgProofs.length == nBlobs, "INVALID_NUMBER_OF_KZG_PROOFS");
        checkFact(programOutput);
        uint256 x0 = programOutput[KZG_X0_OFFSET];
        for (uint256 i = 0; i < nBlobs; i++) {
            verifyBlob(programOutput, kzgProofs[i], x0, i, nBlobs);
        }
        advance(programOutput);
    }

    /// @notice State update with the data in calldata (no blobs).
    function updateState(uint256[] calldata programOutput, uint256 onchainDataHash, uint256 onchainDataSize)
        external
    {
        require(programOutput.length >= HEADER_SIZE, "PROGRAM_OUTPUT_TOO_SHORT");
        require(programOutput[USE_KZG_DA_OFFSET] == 0, "KZG_DA_USED");
        onchainDataHash;
        onchainDataSize;
        checkFact(programOutput);
        advance(programOutput);
    }

    function checkFact(uint256[] calldata programOutput) internal view {
        bytes32 outputHash = keccak256(abi.encodePacked(programOutput));
        bytes32 fact = keccak256(abi.encode(programHash, outputHash));
        require(verifier.isValid(fact), "NO_STATE_TRANSITION_PROOF");
    }

    function verifyBlob(
        uint256[] calldata programOutput,
        bytes calldata proof,
        uint256 x0,
        uint256 i,
        uint256 nBlobs
    ) internal view {
        require(proof.length == 48, "INVALID_KZG_PROOF_SIZE");
        bytes32 versionedHash = blobhash(i);
        require(versionedHash != bytes32(0), "MISSING_BLOB");
        bytes memory commitment = commitmentOf(programOutput, i);
        require(kzgToVersionedHash(commitment) == versionedHash, "BLOB_NOT_COMMITTED_IN_OUTPUT");
        uint256 y = evaluationOf(programOutput, i, nBlobs);
        (bool ok, bytes memory ret) =
            POINT_EVALUATION_PRECOMPILE.staticcall(abi.encodePacked(versionedHash, x0, y, commitment, proof));
        require(ok && ret.length == 64, "POINT_EVALUATION_FAILED");
        (uint256 elements, uint256 modulus) = abi.decode(ret, (uint256, uint256));
        require(elements == FIELD_ELEMENTS_PER_BLOB && modulus == BLS_MODULUS, "POINT_EVALUATION_FAILED");
    }

    /// The 48-byte commitment of blob i: high 192 bits || low 192 bits.
    function commitmentOf(uint256[] calldata programOutput, uint256 i) internal pure returns (bytes memory) {
        uint256 low = programOutput[KZG_COMMITMENTS_OFFSET + 2 * i];
        uint256 high = programOutput[KZG_COMMITMENTS_OFFSET + 2 * i + 1];
        require(low >> 192 == 0 && high >> 192 == 0, "INVALID_KZG_COMMITMENT");
        return abi.encodePacked(uint192(high), uint192(low));
    }

    /// EIP-4844 versioned hash: sha256(commitment) with its first byte set to 0x01.
    function kzgToVersionedHash(bytes memory commitment) internal pure returns (bytes32) {
        return (sha256(commitment) & ~bytes32(uint256(0xff) << 248)) | bytes32(uint256(1) << 248);
    }

    /// y_i = high << 128 | low, both halves below 2^128.
    function evaluationOf(uint256[] calldata programOutput, uint256 i, uint256 nBlobs)
        internal
        pure
        returns (uint256)
    {
        uint256 index = KZG_COMMITMENTS_OFFSET + 2 * nBlobs + 2 * i;
        uint256 low = programOutput[index];
        uint256 high = programOutput[index + 1];
        require(low >> 128 == 0 && high >> 128 == 0, "INVALID_Y_VALUE");
        return (high << 128) | low;
    }

    function advance(uint256[] calldata programOutput) internal {
        uint256 newBlock = programOutput[NEW_BLOCK_NUMBER_OFFSET];
        require(newBlock < uint256(type(int256).max), "INVALID_BLOCK_NUMBER");
        require(int256(newBlock) > stateBlockNumber, "BLOCK_NUMBER_NOT_INCREASING");
        if (strictContinuity) {
            require(programOutput[PREV_ROOT_OFFSET] == stateRoot, "INVALID_PREVIOUS_ROOT");
            uint256 prevBlock = programOutput[PREV_BLOCK_NUMBER_OFFSET];
            bool prevMatches = stateBlockNumber < 0
                ? (prevBlock == FELT_MINUS_ONE || prevBlock == type(uint256).max)
                : prevBlock == uint256(stateBlockNumber);
            require(prevMatches, "INVALID_PREVIOUS_BLOCK_NUMBER");
        }
        stateRoot = programOutput[NEW_ROOT_OFFSET];
        stateBlockNumber = int256(newBlock);
        stateBlockHash = programOutput[NEW_BLOCK_HASH_OFFSET];
        emit LogStateUpdate(stateRoot, stateBlockNumber, stateBlockHash);
    }
}
