//! Tests of the [`Retryable`](orchestrator_utils::Retryable) answers the handlers and triggers
//! rely on when they turn errors into [`JobError`](crate::worker::handler::JobError)s and
//! [`TriggerError`](crate::worker::trigger::TriggerError)s.
//!
//! The client errors (database, queue, storage, alerts, locks, cron, the Madara node) implement
//! the trait beside their definitions in `core::client`; the DA pipeline's errors in
//! `orchestrator-protocol` (`retry.rs`): what failed while reading the node may work later, the
//! rest will not.

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use orchestrator_da_client_interface::DaError;
    use orchestrator_prover_client_interface::ProverError;
    use orchestrator_settlement_client_interface::SettlementError;
    use orchestrator_snos_runner::SnosRunnerError;
    use uuid::Uuid;

    use orchestrator_protocol::compression::{
        encode::EncodeError, squash::SquashError, PipelineError, StateReadError,
    };
    use orchestrator_utils::Retryable;

    use crate::{
        core::client::{madara::MadaraError, BoxError, DatabaseError, QueueError, StorageError},
        types::jobs::JobType,
        worker::{error::EngineError, handler::JobError, trigger::TriggerError},
    };

    fn failure(message: &str) -> std::io::Error {
        std::io::Error::other(message.to_owned())
    }

    fn io(message: &str) -> BoxError {
        Box::new(failure(message))
    }

    /// A handler error as the engine reports it.
    fn engine(source: JobError) -> EngineError {
        EngineError::Handler { id: Uuid::nil(), job_type: JobType::SnosRun, source }
    }

    /// Every message of the `source()` chain, outermost first.
    fn chain(e: &(dyn std::error::Error + 'static)) -> Vec<String> {
        std::iter::successors(Some(e), |&e| e.source()).map(ToString::to_string).collect()
    }

    fn load(e: DatabaseError) -> Result<(), JobError> {
        Err(e)?
    }

    #[test]
    fn a_retryable_client_error_stays_retryable_through_job_and_engine_errors() {
        let retryable: Vec<JobError> = vec![
            JobError::client("loading", DatabaseError::Unavailable(io("busy"))),
            JobError::client("reading", StorageError::Unavailable(io("timeout"))),
            JobError::client(
                "submitting",
                ProverError::Unavailable { operation: "submit".into(), reason: "reset".into() },
            ),
            JobError::client("settling", SettlementError::Rpc("down".into())),
            JobError::client("publishing", DaError::Rpc("down".into())),
            JobError::client("running", SnosRunnerError::Retryable("timeout".into())),
            JobError::client("reading the node", MadaraError::BlockNotFound { block: 3 }),
            load(DatabaseError::Unavailable(io("busy"))).unwrap_err(),
        ];
        for e in retryable {
            assert!(e.is_retryable(), "{e}");
            let e = engine(e);
            assert!(e.is_retryable(), "{e}");
            assert!(Retryable::is_retryable(&e), "{e}");
        }
    }

    #[test]
    fn a_fatal_client_error_goes_fatal() {
        let fatal: Vec<JobError> = vec![
            JobError::client("loading", DatabaseError::NotFound { what: "batch 3".into() }),
            JobError::client("reading", StorageError::NotFound("1/pie.zip".into())),
            JobError::client("submitting", ProverError::InvalidProof("not JSON".into())),
            JobError::client("settling", SettlementError::InvalidInput("short".into())),
            JobError::client("publishing", DaError::InvalidInput("7 blobs".into())),
            JobError::client("running", SnosRunnerError::Deterministic("bad OS".into())),
            JobError::client(
                "reading the node",
                MadaraError::Malformed { what: "block".into(), reason: "no hash".into() },
            ),
            load(DatabaseError::Corrupt { what: "job".into(), reason: "bad json".into() })
                .unwrap_err(),
        ];
        for e in fatal {
            assert!(!e.is_retryable(), "{e}");
            assert!(!engine(e).is_retryable());
        }
    }

    #[test]
    fn the_handler_says_what_its_own_failures_are() {
        assert!(JobError::retryable("not yet").is_retryable());
        assert!(!JobError::fatal("never").is_retryable());
        assert!(JobError::retryable_with("reading", StateReadError("x".into())).is_retryable());
        assert!(!JobError::fatal_with("decoding", failure("garbage")).is_retryable());
    }

    #[test]
    fn the_source_chain_is_kept_and_shown() {
        let e =
            JobError::client("cannot load SNOS batch 3", DatabaseError::Unavailable(io("busy")));
        assert_eq!(e.to_string(), "cannot load SNOS batch 3: database unavailable: busy");
        let db = e.source().expect("the database error").downcast_ref::<DatabaseError>();
        assert!(matches!(db, Some(DatabaseError::Unavailable(_))), "{db:?}");
        let e = engine(e);
        assert_eq!(
            chain(&e),
            [
                format!(
                    "SnosRun job {}: cannot load SNOS batch 3: database unavailable: busy",
                    Uuid::nil()
                ),
                "cannot load SNOS batch 3: database unavailable: busy".to_owned(),
                "database unavailable: busy".to_owned(),
                "busy".to_owned(),
            ]
        );

        // `?` without context shows the client's message alone.
        let e = load(DatabaseError::Unavailable(io("busy"))).unwrap_err();
        assert_eq!(e.to_string(), "database unavailable: busy");
        assert!(e.source().is_some());
        // A handler's own finding has no cause.
        assert!(JobError::fatal("bad input").source().is_none());
    }

    #[test]
    fn trigger_errors_keep_the_answer_and_the_chain() {
        let e = TriggerError::client("Madara node", MadaraError::RateLimited("getBlock".into()));
        assert!(e.is_retryable());
        assert_eq!(e.to_string(), "Madara node: node rate-limited getBlock");
        assert!(e.source().and_then(|s| s.downcast_ref::<MadaraError>()).is_some());

        let e: TriggerError = DatabaseError::Conflict("index 3".into()).into();
        assert!(!e.is_retryable());
        assert_eq!(e.to_string(), "conflicting batch: index 3");

        let e = TriggerError::failed("encoding the diff", failure("nonce too large"));
        assert!(!e.is_retryable());
        assert_eq!(chain(&e), ["encoding the diff: nonce too large", "nonce too large"]);
        assert!(!TriggerError::Other("no metadata".into()).is_retryable());
    }

    #[test]
    fn the_engine_errors_carry_the_client_answer() {
        assert!(EngineError::from(QueueError::Unavailable(io("throttled"))).is_retryable());
        assert!(!EngineError::from(QueueError::QueueNotFound("q".into())).is_retryable());
        let e = TriggerError::client(
            "creating a job",
            EngineError::from(DatabaseError::Unavailable(io("busy"))),
        );
        assert!(e.is_retryable(), "{e}");
    }

    #[test]
    fn the_da_pipeline_retries_node_reads_only() {
        let read = StateReadError("node down".into());
        assert!(PipelineError::from(EncodeError::State(read.clone())).is_retryable());
        assert!(PipelineError::from(SquashError::State { block: 1, source: read }).is_retryable());
        assert!(
            !PipelineError::from(EncodeError::ReaderLength { expected: 1, got: 2 }).is_retryable()
        );
    }
}
