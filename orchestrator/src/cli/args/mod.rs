//! Flag groups shared by `setup` and `run`, one help heading each.
//!
//! Every flag of the reference orchestrator exists here with the same long name, environment
//! variable and default (see `../reference_flags.txt`). The infrastructure groups are optional:
//! with none of `--aws-s3`, `--aws-sqs`, `--aws-sns`, `--mongodb`, `--postgres` the embedded
//! tier under `--data-dir` is used, per capability.

pub mod alert;
pub mod batching;
pub mod choices;
pub mod cron;
pub mod da;
pub mod database;
pub mod embedded;
pub mod infra;
pub mod madara;
pub mod otel;
pub mod prover;
pub mod provider;
pub mod queue;
pub mod server;
pub mod service;
pub mod settlement;
pub mod snos;
pub mod storage;
pub mod upstream;
pub mod usage;
