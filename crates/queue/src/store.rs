//! The one trait every queue store implements: in memory (one process), on Redis (durable,
//! many hosts), and over HTTP (a client of `tollgate serve`).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::error::QueueError;
use crate::fleet::Fleet;
use crate::spec::QueueSpec;
use crate::task::{DeadTask, FailOutcome, Lease, NewTask, QueueStats, QueueUpdate, Reservation};

/// A boxed future: the trait is object-safe, so a program picks its store at run time.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A result of a queue operation.
pub type QueueResult<T> = Result<T, QueueError>;

/// Rate-limited queues kept somewhere. Every operation is atomic in the store: a
/// [`reserve`](QueueStore::reserve) takes a token, the highest-priority task and a lease in one
/// step, so workers on any number of hosts share one limit exactly.
pub trait QueueStore: Send + Sync + 'static {
    /// Creates a queue (validating `spec`); refuses a name in use.
    fn create(&self, spec: QueueSpec) -> BoxFuture<'_, QueueResult<QueueStats>>;
    /// Every queue, by name.
    fn list(&self) -> BoxFuture<'_, QueueResult<Vec<QueueStats>>>;
    /// One queue's settings and state.
    fn stats<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, QueueResult<QueueStats>>;
    /// Changes settings, live.
    fn update<'a>(
        &'a self,
        queue: &'a str,
        update: QueueUpdate,
    ) -> BoxFuture<'a, QueueResult<QueueStats>>;
    /// Deletes a queue and every task in it; false when there was none.
    fn remove<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, QueueResult<bool>>;
    /// Drops the tasks waiting and delayed (not those in flight, not the dead); returns how many.
    fn clear<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, QueueResult<u64>>;
    /// Adds a task; returns its id.
    fn push<'a>(&'a self, queue: &'a str, task: NewTask) -> BoxFuture<'a, QueueResult<String>>;
    /// Takes the highest-priority ready task if a token exists, leasing it to `worker`.
    fn reserve<'a>(
        &'a self,
        queue: &'a str,
        worker: &'a str,
    ) -> BoxFuture<'a, QueueResult<Reservation>>;
    /// Extends a lease by the visibility timeout; returns the new expiry (ms since epoch).
    fn heartbeat<'a>(&'a self, lease: &'a Lease) -> BoxFuture<'a, QueueResult<u64>>;
    /// Marks the task done.
    fn ack<'a>(&'a self, lease: &'a Lease) -> BoxFuture<'a, QueueResult<()>>;
    /// Marks the task done, then reserves the next task of the same queue (`lease.queue`) for
    /// `worker`: what a worker does between two tasks. `Ok(Some(_))`: acknowledged, and what
    /// the reserve found; `Ok(None)`: acknowledged, but the reserve failed (reserve again).
    /// An error is the ack's: nothing was done — or, for a transient error, as with
    /// [`ack`](QueueStore::ack), the call may still have run (a task it reserved is then
    /// leased to no one, and runs again when the lease expires). The Redis store does both in
    /// one script, one round trip, and runs the calls that several slots of a process make on
    /// one queue at once together, in one script; the default calls `ack` then
    /// [`reserve`](QueueStore::reserve).
    fn ack_and_reserve<'a>(
        &'a self,
        lease: &'a Lease,
        worker: &'a str,
    ) -> BoxFuture<'a, QueueResult<Option<Reservation>>> {
        Box::pin(async move {
            self.ack(lease).await?;
            Ok(self.reserve(&lease.queue, worker).await.ok())
        })
    }
    /// Records a failed attempt: retried after `retry_after` (or the queue's backoff), or
    /// dead-lettered after the last attempt.
    fn fail<'a>(
        &'a self,
        lease: &'a Lease,
        error: &'a str,
        retry_after: Option<Duration>,
    ) -> BoxFuture<'a, QueueResult<FailOutcome>>;
    /// The dead-letter queue, oldest first, at most `limit`.
    fn dead<'a>(&'a self, queue: &'a str, limit: u64) -> BoxFuture<'a, QueueResult<Vec<DeadTask>>>;
    /// Puts dead tasks back in the queue with fresh attempts (all when `ids` is empty).
    fn retry_dead<'a>(
        &'a self,
        queue: &'a str,
        ids: &'a [String],
    ) -> BoxFuture<'a, QueueResult<u64>>;
    /// Deletes the dead-letter queue's tasks; returns how many.
    fn purge_dead<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, QueueResult<u64>>;
    /// Reports that worker process `process` runs `slots` workers on `queue`, for the next
    /// `ttl` (0 slots: it stopped); answers the fleet, this report included. A report is not
    /// use of the queue: it does not keep an idle, empty queue from expiring.
    fn report_workers<'a>(
        &'a self,
        queue: &'a str,
        process: &'a str,
        slots: u32,
        ttl: Duration,
    ) -> BoxFuture<'a, QueueResult<Fleet>>;
}

/// The retry delay after failed attempt `attempt` (from 1): `base × 2^(attempt-1)`, at most
/// `max`, with "equal jitter": half of it fixed, half random (`jitter` in [0, 1)), so workers
/// that failed together do not retry together. The Redis store's `fail.lua` computes the same.
pub fn backoff_ms(base_ms: u64, max_ms: u64, attempt: u32, jitter: f64) -> u64 {
    let doubling = 1u64
        .checked_shl(attempt.saturating_sub(1))
        .unwrap_or(u64::MAX);
    let full = base_ms.saturating_mul(doubling).min(max_ms);
    let fixed = full / 2;
    let random = ((full - fixed) as f64 * jitter.clamp(0.0, 1.0)).floor() as u64;
    fixed + random.min(full - fixed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_bounds() {
        assert_eq!(backoff_ms(1000, 300_000, 1, 0.0), 500);
        assert_eq!(backoff_ms(1000, 300_000, 1, 0.999_999), 999);
        assert_eq!(backoff_ms(1000, 300_000, 3, 0.0), 2000);
        assert_eq!(backoff_ms(1000, 300_000, 30, 0.0), 150_000);
        assert_eq!(backoff_ms(1000, 300_000, 200, 1.0), 300_000);
        assert_eq!(backoff_ms(0, 0, 5, 0.5), 0);
    }
}
