//! The state a key keeps under one algorithm family, and the pure functions over it.
//!
//! A store's whole job is to hold these and run [`LimitState::apply`] atomically per key:
//! the algorithms themselves never read a clock or touch I/O.

use crate::clock::Nanos;
use crate::decision::Decision;
use crate::limit::Limit;

/// The state of one key under one algorithm family.
///
/// Every method is a pure function of the state, the limit and `now`. The caller must have
/// validated the key and checked the cost against the limit's capacity.
pub trait LimitState: Default + Clone + Send + 'static {
    /// The decision a request of `cost` would get at `now`, as if `pending` more had just been
    /// admitted at `now` (an all-or-nothing batch uses this for earlier checks on the same
    /// key). Changes nothing.
    fn evaluate(&self, limit: &Limit, now: Nanos, cost: u64, pending: u64) -> Decision;

    /// Records an admission of `cost` at `now`, which [`evaluate`](Self::evaluate) allowed.
    fn commit(&mut self, limit: &Limit, now: Nanos, cost: u64);

    /// Forgets what no longer matters at `now` (expired log entries). Changes no decision.
    fn prune(&mut self, _limit: &Limit, _now: Nanos) {}

    /// When the key is back to full capacity, after which the state may be forgotten. A
    /// state answers from itself alone, so a store can sweep without knowing the limits.
    fn idle_at(&self) -> Nanos;

    /// Decides a request and records it when admitted: a denial consumes nothing.
    fn apply(&mut self, limit: &Limit, now: Nanos, cost: u64) -> Decision {
        self.prune(limit, now);
        let decision = self.evaluate(limit, now, cost, 0);
        if decision.allowed && cost > 0 {
            self.commit(limit, now, cost);
        }
        decision
    }
}
