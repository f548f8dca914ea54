//! Test support shared by every crate of the workspace.
//!
//! [`vectors`] holds the real Starknet and Ethereum acceptance vectors (state updates, blobs,
//! KZG proofs, Cairo PIEs). They live inside this crate (`vectors/`, provenance in its README),
//! so a clone of the repository carries everything its tests read.
//!
//! The services the tests run against have one launcher each, used by the crates' tests, the
//! orchestrator's integration tests and the end-to-end harness alike:
//! - [`devnet`]: starknet-devnet (a process per test, on a free port, killed on drop);
//! - [`anvil`]: Anvil (the same);
//! - [`moto`]: the shared moto server's endpoint and fresh resource prefixes;
//! - [`postgres`]: the shared PostgreSQL server's URL and fresh database names;
//! - [`mongodb`]: the shared MongoDB-wire server's URL;
//! - [`localstack`]: the shared LocalStack's endpoint;
//! - [`proxy`]: a TCP proxy that cuts a service off and restores it.
//!
//! [`launch`] holds what they share: binary lookup in the tool cache, the skip variables, free
//! ports, the process guard, readiness polling and its errors.
//!
//! [`prometheus`] reads the text exposition of `/metrics` (samples by name and label set).
//!
//! [`repo`] and [`deps`] are the repository checks (no path outside the clone, no unused
//! dependency).

pub mod anvil;
pub mod deps;
pub mod devnet;
pub mod launch;
pub mod localstack;
pub mod mongodb;
pub mod moto;
pub mod postgres;
pub mod prometheus;
pub mod proxy;
pub mod repo;
pub mod vectors;
