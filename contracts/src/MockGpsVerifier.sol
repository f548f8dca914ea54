// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

/// @notice What the core contract asks of a fact registry (SHARP's GPS verifier on mainnet).
interface IFactRegistry {
    function isValid(bytes32 fact) external view returns (bool);
}

/// @notice Test stand-in for the GPS verifier: anyone may register a fact, no proof is checked.
/// The mock prover registers the fact of a state transition here before it is settled.
contract MockGpsVerifier is IFactRegistry {
    mapping(bytes32 => bool) private registered;

    event LogFactRegistered(bytes32 fact);

    function registerFact(bytes32 fact) external {
        registered[fact] = true;
        emit LogFactRegistered(fact);
    }

    function isValid(bytes32 fact) external view override returns (bool) {
        return registered[fact];
    }
}
