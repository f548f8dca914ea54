//! [`Retryable`]: how an error says whether trying the same operation again later may succeed.
//!
//! Every client error of the workspace answers through this one trait: the prover, settlement
//! and DA clients, the SNOS runner, and the orchestrator's own clients (database, queue,
//! storage, alerts, locks, cron, the Madara node). The job engine takes the answer once, when
//! a client error becomes a job or trigger error, and retries (or fails the job) on it alone.

/// An error that knows whether the failed operation may succeed if tried again later.
///
/// Retryable: the path to the service failed or the service was not ready (a timeout, an
/// outage, a busy database, a block not there yet, a rate limit). Not retryable: trying again
/// gives the same answer (bad input, a missing resource, a deterministic failure, a revert).
pub trait Retryable {
    /// Whether trying the same operation again later may succeed.
    fn is_retryable(&self) -> bool;

    /// For a failure that neither retrying nor the orchestrator can fix, but an operator can
    /// outside it (the prover account ran out of credits): what to tell them. The job engine
    /// then fails the job with this dedicated alert instead of the generic "Job failed" one.
    /// `None` (the default) for every other error.
    fn operator_action(&self) -> Option<OperatorAction> {
        None
    }
}

/// A failure that needs an operator outside the orchestrator, and the alert it raises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OperatorAction {
    /// The alert's kind: the `kind` label of the `alerts_sent` metric, e.g.
    /// `prover_insufficient_credits`.
    pub alert: &'static str,
    /// The alert's title, e.g. "Prover account out of credits".
    pub title: &'static str,
    /// What the operator has to do, in one sentence.
    pub action: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outage(bool);

    impl Retryable for Outage {
        fn is_retryable(&self) -> bool {
            self.0
        }
    }

    fn answer(e: &dyn Retryable) -> bool {
        e.is_retryable()
    }

    #[test]
    fn answers_through_a_trait_object() {
        assert!(answer(&Outage(true)));
        assert!(!answer(&Outage(false)));
    }

    #[test]
    fn errors_need_no_operator_unless_they_say_so() {
        assert_eq!(Outage(false).operator_action(), None);
    }
}
