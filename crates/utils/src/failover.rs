//! Which endpoint to try first when a client has several endpoints of one service (the
//! settlement RPCs: `--ethereum-rpc-url a,b`, `--starknet-rpc-url a,b`).
//!
//! Requests go to one endpoint at a time, the active one, and move on to the next when it fails
//! at the transport level (the client decides what counts). The active endpoint is sticky: after
//! a failover, requests stay on the endpoint that answered, so consecutive reads come from one
//! node's view instead of alternating between nodes that may disagree about the latest block.
//! The primary (endpoint 0) is tried first again once `primary_retry_after` has passed since it
//! failed, and becomes active as soon as it answers.

use std::{
    sync::{Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

/// How long after a failure the primary endpoint is tried again, by default.
pub const PRIMARY_RETRY_AFTER: Duration = Duration::from_secs(15);

#[derive(Debug)]
struct State {
    active: usize,
    primary_failed_at: Option<Instant>,
    failovers: u64,
}

/// The endpoint choice (see the module docs).
#[derive(Debug)]
pub struct EndpointRotation {
    endpoints: usize,
    primary_retry_after: Duration,
    state: Mutex<State>,
}

impl EndpointRotation {
    /// A rotation over `endpoints` endpoints (at least one).
    pub fn new(endpoints: usize, primary_retry_after: Duration) -> Self {
        Self {
            endpoints: endpoints.max(1),
            primary_retry_after,
            state: Mutex::new(State { active: 0, primary_failed_at: None, failovers: 0 }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The order to try the endpoints in: the primary first when it is active or due for a
    /// retry, then the active one, then the others in their configured order.
    pub fn order(&self) -> Vec<usize> {
        let state = self.lock();
        let mut order = Vec::with_capacity(self.endpoints);
        let primary_due =
            state.primary_failed_at.is_none_or(|at| at.elapsed() >= self.primary_retry_after);
        if state.active != 0 && primary_due {
            order.push(0);
        }
        order.push(state.active);
        let rest: Vec<usize> = (0..self.endpoints).filter(|i| !order.contains(i)).collect();
        order.extend(rest);
        order
    }

    /// Endpoint `index` answered; returns whether requests now go to it first (a change).
    pub fn succeeded(&self, index: usize) -> bool {
        let mut state = self.lock();
        if index == 0 {
            state.primary_failed_at = None;
        }
        let changed = state.active != index;
        state.active = index;
        changed
    }

    /// Endpoint `index` failed at the transport level.
    pub fn failed(&self, index: usize) {
        let mut state = self.lock();
        if index == 0 {
            state.primary_failed_at = Some(Instant::now());
        }
        state.failovers += 1;
    }

    /// The endpoint requests go to first now.
    pub fn active(&self) -> usize {
        self.lock().active
    }

    /// Failures that moved a request on to another endpoint (or ended it) so far.
    pub fn failovers(&self) -> u64 {
        self.lock().failovers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_active_endpoint_is_sticky_and_the_primary_is_retried_after_a_while() {
        let r = EndpointRotation::new(3, Duration::from_millis(50));
        assert_eq!(r.order(), [0, 1, 2]);
        r.failed(0);
        assert!(r.succeeded(1));
        // Sticky on 1 while the primary is not due.
        assert_eq!((r.active(), r.order()), (1, vec![1, 0, 2]));
        assert!(!r.succeeded(1));
        std::thread::sleep(Duration::from_millis(60));
        // Due: the primary first, then the active one.
        assert_eq!(r.order(), [0, 1, 2]);
        assert!(r.succeeded(0));
        assert_eq!((r.active(), r.order()), (0, vec![0, 1, 2]));
        assert_eq!(r.failovers(), 1);
    }

    #[test]
    fn a_single_endpoint_is_always_first() {
        let r = EndpointRotation::new(1, Duration::ZERO);
        r.failed(0);
        assert_eq!(r.order(), [0]);
    }
}
