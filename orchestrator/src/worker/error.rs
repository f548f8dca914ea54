//! Errors of the job engine.

use uuid::Uuid;

use crate::{
    core::client::{DatabaseError, QueueError},
    types::jobs::{JobStatus, JobType},
    worker::event_handler::jobs::JobError,
};

/// Why the engine could not apply a job operation.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// No job has this id.
    #[error("no job with id {0}")]
    JobNotFound(Uuid),
    /// This build has no handler for the job type.
    #[error("no handler for {0} jobs in this build or layer")]
    NoHandler(JobType),
    /// The operation is not allowed in the job's status.
    #[error("job {id} is {status}; {action} needs {expected}")]
    InvalidStatus {
        /// The job.
        id: Uuid,
        /// Its status.
        status: JobStatus,
        /// What was asked.
        action: &'static str,
        /// The statuses that would allow it.
        expected: &'static str,
    },
    /// The message body is not what the queue carries.
    #[error("malformed message: {0}")]
    MalformedMessage(String),
    /// A job already exists for this type and internal id.
    #[error("a {job_type} job for {internal_id} already exists")]
    AlreadyExists {
        /// Job type.
        job_type: JobType,
        /// Internal id.
        internal_id: u64,
    },
    /// The handler failed.
    #[error("{job_type} job {id}: {source}")]
    Handler {
        /// The job.
        id: Uuid,
        /// Its type.
        job_type: JobType,
        /// The handler's error.
        #[source]
        source: JobError,
    },
    /// The handler panicked.
    #[error("{job_type} job {id}: handler panicked: {message}")]
    Panicked {
        /// The job.
        id: Uuid,
        /// Its type.
        job_type: JobType,
        /// The panic message.
        message: String,
    },
    /// The database failed.
    #[error(transparent)]
    Database(#[from] DatabaseError),
    /// The queue failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
}

impl EngineError {
    /// Whether delivering the same message again later may succeed. Non-retryable errors send
    /// the message to the dead-letter queue at once.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Handler { source, .. } => source.is_retryable(),
            Self::Panicked { .. } => true,
            Self::Database(e) => e.is_retryable(),
            Self::Queue(e) => e.is_retryable(),
            Self::JobNotFound(_)
            | Self::NoHandler(_)
            | Self::InvalidStatus { .. }
            | Self::MalformedMessage(_)
            | Self::AlreadyExists { .. } => false,
        }
    }
}
