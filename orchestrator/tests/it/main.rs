//! Integration tests of the DA blob pipeline (one test binary).

mod blob_cli;
mod blob_pyref;
mod blob_vectors;
mod compression_pipeline;
