//! Errors of the job engine: [`EngineError`] (a job operation), [`JobError`] (a job handler)
//! and [`TriggerError`] (a worker trigger).
//!
//! A client error keeps its place in the chain (`source()`) and its [`Retryable`] answer is
//! taken once, when it becomes a `JobError` or `TriggerError` (`?`, or [`JobError::client`]
//! with context). There is no conversion from an untyped error: a handler says what its own
//! failures are with [`JobError::retryable`] or [`JobError::fatal`] (and `_with` a cause).
//! `Display` shows the context followed by the cause's message, so `{e}` in a log or a failure
//! reason carries the whole story.

use std::{error::Error as StdError, fmt};

use orchestrator_utils::{OperatorAction, Retryable};
use uuid::Uuid;

use crate::{
    core::client::{BoxError, DatabaseError, QueueError},
    types::jobs::{JobStatus, JobType},
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
    /// The error of a job whose handler was cut off because the orchestrator is stopping.
    pub fn interrupted(id: Uuid, job_type: JobType) -> Self {
        Self::Handler { id, job_type, source: JobError::Interrupted }
    }

    /// Whether the handler was cut off because the orchestrator is stopping: the job was
    /// handed back and its message must be made visible again at once.
    pub fn is_interrupted(&self) -> bool {
        matches!(self, Self::Handler { source: JobError::Interrupted, .. })
    }
}

impl Retryable for EngineError {
    /// Whether delivering the same message again later may succeed. Non-retryable errors send
    /// the message to the dead-letter queue at once.
    fn is_retryable(&self) -> bool {
        match self {
            Self::Handler { source, .. } => source.is_retryable(),
            Self::Panicked { .. } => true,
            Self::Database(e) => Retryable::is_retryable(e),
            Self::Queue(e) => Retryable::is_retryable(e),
            Self::JobNotFound(_)
            | Self::NoHandler(_)
            | Self::InvalidStatus { .. }
            | Self::MalformedMessage(_)
            | Self::AlreadyExists { .. } => false,
        }
    }
}

/// Why a handler could not do its work.
///
/// Whether the job is tried again is decided when the error is made: a client error converted
/// with `?` or [`JobError::client`] carries its client's [`Retryable`] answer; the handler's
/// own findings say it with [`JobError::retryable`] / [`JobError::fatal`] (or their `_with`
/// forms, which keep a cause).
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Something that may work later (an RPC or prover outage, a busy database): the job goes
    /// back to its previous status and the message is delivered again after a backoff.
    #[error("{}", Caused(.message, .source.as_deref()))]
    Retryable {
        /// What failed (the handler's context); empty when the cause says it all.
        message: String,
        /// The client error (or other cause) behind it.
        #[source]
        source: Option<BoxError>,
    },
    /// Something that will not fix itself (bad input, a deterministic failure): the job is
    /// marked `Failed` and an operator is alerted.
    #[error("{}", Caused(.message, .source.as_deref()))]
    Fatal {
        /// What failed (the handler's context); empty when the cause says it all.
        message: String,
        /// The client error (or other cause) behind it.
        #[source]
        source: Option<BoxError>,
    },
    /// Something neither retrying nor the orchestrator can fix, but an operator can outside it
    /// (the prover account has no credits left): the job is marked `Failed` and the action's
    /// own alert is sent (its kind, title and what to do) instead of the generic one.
    #[error("{}", Caused(.message, .source.as_deref()))]
    NeedsOperator {
        /// What the operator must do, and the alert it raises.
        action: OperatorAction,
        /// What failed (the handler's context); empty when the cause says it all.
        message: String,
        /// The client error behind it.
        #[source]
        source: Option<BoxError>,
    },
    /// The orchestrator is stopping and cut the handler off: the job is handed back
    /// (processing) or left as it was (verification), and its message is made visible again at
    /// once so another instance, or this one restarted, takes it without waiting for the lock
    /// timeout. Made by the engine only.
    #[error("interrupted because the orchestrator is stopping")]
    Interrupted,
    /// The handler rejected the metadata it was created with.
    #[error("invalid metadata for {job_type} job {internal_id}: {reason}")]
    InvalidMetadata {
        /// Job type.
        job_type: JobType,
        /// Internal id.
        internal_id: u64,
        /// What is wrong.
        reason: String,
    },
}

impl JobError {
    /// A failure of the handler's own that may go away later (no client error behind it).
    pub fn retryable(message: impl fmt::Display) -> Self {
        Self::Retryable { message: message.to_string(), source: None }
    }

    /// A failure of the handler's own that will not go away.
    pub fn fatal(message: impl fmt::Display) -> Self {
        Self::Fatal { message: message.to_string(), source: None }
    }

    /// A retryable failure caused by `source`, by the handler's decision (the cause is not a
    /// client error, or the handler knows better than its answer).
    pub fn retryable_with<E>(message: impl fmt::Display, source: E) -> Self
    where
        E: StdError + Send + Sync + 'static,
    {
        Self::Retryable { message: message.to_string(), source: Some(Box::new(source)) }
    }

    /// A fatal failure caused by `source`, by the handler's decision.
    pub fn fatal_with<E>(message: impl fmt::Display, source: E) -> Self
    where
        E: StdError + Send + Sync + 'static,
    {
        Self::Fatal { message: message.to_string(), source: Some(Box::new(source)) }
    }

    /// A client error with what the handler was doing: retryable when the client says so,
    /// [`JobError::NeedsOperator`] when it names an [`OperatorAction`].
    pub fn client<E>(context: impl fmt::Display, source: E) -> Self
    where
        E: Retryable + StdError + Send + Sync + 'static,
    {
        if let Some(action) = source.operator_action() {
            Self::NeedsOperator {
                action,
                message: context.to_string(),
                source: Some(Box::new(source)),
            }
        } else if source.is_retryable() {
            Self::retryable_with(context, source)
        } else {
            Self::fatal_with(context, source)
        }
    }

    /// Whether trying again later may succeed (decided when the error was made).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable { .. } | Self::Interrupted)
    }

    /// What an operator must do, for a [`JobError::NeedsOperator`].
    pub fn operator_action(&self) -> Option<OperatorAction> {
        match self {
            Self::NeedsOperator { action, .. } => Some(*action),
            _ => None,
        }
    }
}

/// `?` on a client error: its message, its place in the chain and its [`Retryable`] answer.
impl<E> From<E> for JobError
where
    E: Retryable + StdError + Send + Sync + 'static,
{
    fn from(source: E) -> Self {
        Self::client("", source)
    }
}

/// Why a trigger run failed. Triggers are re-run by the next cron tick or chained event
/// whatever the error; [`TriggerError::is_retryable`] says whether the failure is expected to
/// clear by itself (a client outage) or needs an operator.
#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    /// A client failed (database, storage, lock, node, prover, the engine creating a job).
    #[error("{}", Caused(.context, Some(&**.source)))]
    Client {
        /// What the trigger was doing; empty when the cause says it all.
        context: String,
        /// The client's [`Retryable`] answer, taken at conversion.
        retryable: bool,
        /// The client error.
        #[source]
        source: BoxError,
    },
    /// The trigger's own work failed (encoding a diff, decoding a stored record), with the
    /// cause.
    #[error("{}", Caused(.context, Some(&**.source)))]
    Failed {
        /// What the trigger was doing.
        context: String,
        /// Why it failed.
        #[source]
        source: BoxError,
    },
    /// The trigger found something wrong, with context.
    #[error("{0}")]
    Other(String),
}

impl TriggerError {
    /// A client error with what the trigger was doing.
    pub fn client<E>(context: impl fmt::Display, source: E) -> Self
    where
        E: Retryable + StdError + Send + Sync + 'static,
    {
        Self::Client {
            context: context.to_string(),
            retryable: source.is_retryable(),
            source: Box::new(source),
        }
    }

    /// The trigger's own work failed because of `source`.
    pub fn failed<E>(context: impl fmt::Display, source: E) -> Self
    where
        E: StdError + Send + Sync + 'static,
    {
        Self::Failed { context: context.to_string(), source: Box::new(source) }
    }

    /// Whether the failure may clear by itself: a client error its client calls retryable.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Client { retryable: true, .. })
    }
}

/// `?` on a client error: its message, its place in the chain and its [`Retryable`] answer.
impl<E> From<E> for TriggerError
where
    E: Retryable + StdError + Send + Sync + 'static,
{
    fn from(source: E) -> Self {
        Self::client("", source)
    }
}

/// `context: cause`, or whichever of the two there is.
struct Caused<'a>(&'a str, Option<&'a (dyn StdError + Send + Sync + 'static)>);

impl fmt::Display for Caused<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.0, self.1) {
            (context, None) => f.write_str(context),
            ("", Some(cause)) => write!(f, "{cause}"),
            (context, Some(cause)) => write!(f, "{context}: {cause}"),
        }
    }
}
