//! The named choices of the configuration (prover, layouts, runners, …): plain enums, parsed and
//! printed through strum. The command line maps them to flag values in `cli::args::choices`;
//! nothing here depends on clap.

/// Which prover proves the batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[derive(strum::Display, strum::VariantArray, strum::EnumMessage)]
#[strum(serialize_all = "lowercase")]
pub enum ProverKind {
    /// StarkWare's SHARP gateway (L2 only).
    Sharp,
    /// Herodotus Atlantic.
    Atlantic,
    /// The mock prover (optionally registering facts in a mock GPS verifier).
    Mock,
}

/// Where proofs are verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[derive(strum::Display, strum::VariantArray, strum::EnumMessage)]
#[strum(serialize_all = "lowercase")]
pub enum ProofSettlementLayer {
    /// Facts registered on Ethereum.
    Ethereum,
    /// Facts registered on Starknet.
    Starknet,
}

/// Atlantic network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[derive(strum::Display, strum::VariantArray, strum::EnumMessage)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum AtlanticNetwork {
    /// `MAINNET`
    Mainnet,
    /// `TESTNET` (the only network the embedded mock Atlantic server serves).
    Testnet,
}

/// Cairo VM Atlantic runs the trace with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[derive(strum::Display, strum::VariantArray, strum::EnumMessage)]
#[strum(serialize_all = "lowercase")]
pub enum AtlanticCairoVm {
    /// `rust`
    Rust,
    /// `python`
    Python,
}

/// The last step an Atlantic query runs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[derive(strum::Display, strum::VariantArray, strum::EnumMessage)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum AtlanticQueryStep {
    /// `trace-generation`
    TraceGeneration,
    /// `proof-generation`
    ProofGeneration,
    /// `proof-verification`
    ProofVerification,
    /// `proof-verification-on-l1`
    ProofVerificationOnL1,
    /// `proof-verification-on-l2`
    ProofVerificationOnL2,
    /// `proof-generation-and-verification`
    ProofGenerationAndVerification,
    /// `fact-hash-registration`
    FactHashRegistration,
    /// `trace-and-metadata-generation`
    TraceAndMetadataGeneration,
}

/// The SHARP prover Atlantic uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[derive(strum::Display, strum::VariantArray, strum::EnumMessage)]
#[strum(serialize_all = "lowercase")]
pub enum AtlanticSharpProver {
    /// `stone`
    Stone,
    /// `stwo`
    Stwo,
}

/// A Cairo layout name, as accepted by cairo-vm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[derive(strum::Display, strum::EnumString, strum::VariantArray, strum::EnumMessage)]
#[strum(serialize_all = "snake_case")]
pub enum CairoLayout {
    /// `plain`
    Plain,
    /// `small`
    Small,
    /// `dex`
    Dex,
    /// `recursive`
    Recursive,
    /// `starknet`
    Starknet,
    /// `starknet_with_keccak`
    StarknetWithKeccak,
    /// `recursive_large_output`
    RecursiveLargeOutput,
    /// `recursive_with_poseidon`
    RecursiveWithPoseidon,
    /// `all_solidity`
    AllSolidity,
    /// `all_cairo`
    AllCairo,
    /// `dynamic`
    Dynamic,
}

/// Which [`SnosRunner`](orchestrator_snos_runner::SnosRunner) runs the Starknet OS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[derive(strum::Display, strum::VariantArray, strum::EnumMessage)]
#[strum(serialize_all = "kebab-case")]
pub enum SnosRunnerKind {
    /// A small Cairo 0 program of ours run with cairo-vm, writing an OS-shaped output for the
    /// batch. A STAND-IN: it proves nothing about the execution of the blocks.
    #[default]
    StandIn,
    /// The command of `--snos-command` (for example the snos project's `generate-pie`).
    External,
}

/// Which EventBridge API carries the worker triggers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[derive(strum::Display, strum::VariantArray, strum::EnumMessage)]
#[strum(serialize_all = "lowercase")]
pub enum EventBridgeType {
    /// EventBridge rules (use with LocalStack / moto).
    Rule,
    /// EventBridge Scheduler (use on AWS).
    Schedule,
}

/// Which failed jobs stop triggers from creating new jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[derive(strum::Display, strum::VariantArray, strum::EnumMessage)]
#[strum(serialize_all = "lowercase")]
pub enum FailedJobHalt {
    /// A `Failed`/`VerificationTimeout` job stops only the trigger creating jobs of its type;
    /// other stages go on (bounded by their buffers).
    #[default]
    Stage,
    /// Any `Failed`/`VerificationTimeout` job stops every trigger (the reference's behaviour).
    Global,
}
