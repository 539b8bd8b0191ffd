//! What happens when a store fails: a timeout on every call, a circuit breaker, and a
//! policy that answers in the store's place. Generic over any [`Store`](tollgate_core::Store).
//!
//! [`Guarded::new(store, config)`](Guarded::new) wraps a store in three things:
//!
//! - **A timeout.** Every call to the store is bounded by `call_timeout`; a call that takes
//!   longer is abandoned and counts as a transient failure. So a check always answers within
//!   `call_timeout` (plus the fallback's own, in-process, time).
//! - **A [`CircuitBreaker`].** It opens after `failure_threshold` *consecutive* store failures
//!   (a transient [`Error::Store`](tollgate_core::Error::Store) or a timeout). While open,
//!   calls fail fast without touching the store. After `open_for` the next call is a probe
//!   (half-open: at most `half_open_probes` probes in flight; the other calls fail fast);
//!   `success_threshold` successful probes close it, one failed probe reopens it for another
//!   `open_for`. Consecutive failures, not a failure ratio: a store that is down fails every
//!   call, so the count trips as fast as a ratio would and needs no window to tune; a store
//!   that fails one call in ten is flaky, not down, and each of those failures is answered
//!   by the policy anyway.
//!
//!   With [`GuardConfig::breaker_per_slot`] (for a Redis Cluster) there is one such breaker
//!   per hash slot, chosen by the key ([`keys::slot`](crate::keys::slot); a batch by its
//!   first key, since a cluster batch is one slot): a master that is down opens the breakers
//!   of the slots it serves as their keys fail, and the other masters' keys go on being
//!   decided. The store-wide breaker then guards `ping` alone. Slot breakers log their
//!   transitions at `debug` (thousands may move at once); [`StoreHealth::open_slots`] counts
//!   those open.
//! - **An [`OnStoreFailure`] policy**, which answers a check that the store failed or the
//!   breaker kept from it.
//!
//! Bad input (`invalid_key`, `cost_exceeds_limit`) is validated before the store is asked
//! and passes through unchanged, even while the breaker is open; it never triggers the
//! policy. Errors that are answers rather than failures — a non-transient store error (a
//! Redis `WRONGTYPE`), `store_full` — pass through too and count neither way in the breaker.
//!
//! # What each policy answers
//!
//! A denial is a decision, not an error, so the policy answers with a [`Decision`]: the
//! HTTP API can then answer every request within the timeout, with the configured policy,
//! in the same shape as always. (Wrapped in `Guarded`, a store therefore never reports a
//! transient failure from `check`; a caller's own fail-open/fail-closed setting only sees
//! the errors that pass through.)
//!
//! - **`deny`** (fail closed, the default): `allowed: false`, `remaining: 0`,
//!   `limit` = the limit's capacity, `retry_after_ms` = `reset_after_ms` = the time until the
//!   breaker lets the next probe through, at least 1 (1 when the breaker is still closed or
//!   half-open: the store may answer the very next call). A cost-0 peek is denied too.
//! - **`allow`** (fail open): `allowed: true`, `remaining` = `limit` = the capacity,
//!   `retry_after_ms: 0`, `reset_after_ms: 0`: nothing was counted anywhere, so the decision
//!   describes a key at full capacity — it carries no information about the key.
//! - **`local`**: the same check on an in-process
//!   [`MemoryStore`](tollgate_memory::MemoryStore) with the same limit; its fields are that
//!   store's ordinary answer. The global guarantee is lost: each host enforces the limit
//!   separately, from a full bucket, so with N hosts up to N × (BURST + ⌊t/T⌋) may be
//!   admitted in an interval t of the outage; an interval that straddles the start or the
//!   end of the outage may add what the shared store admitted in it, up to (N + 1)×. When
//!   the store recovers, the local state is abandoned, not merged: the store resumes from
//!   the state it had before the outage and does not know what was admitted locally. The
//!   local store keeps what it still limits (swept at recovery of keys back to full
//!   capacity) and is used again in the next outage; it holds at most `local_max_keys`
//!   keys, forgetting the one nearest to full capacity beyond.
//!
//! A batch ([`check_all`](tollgate_core::Store::check_all)) is decided whole: under `local`
//! the whole batch on the local store, under `deny`/`allow` every decision as above (and
//! `allowed` false/true for the batch).
//!
//! Whether a decision came from the store or the policy is not in [`Decision`] (its fields
//! are fixed): [`Guarded::check_with_source`] returns it alongside, per call, and
//! [`Guarded::health`] counts `fallback_decisions_total`, `failures_total`, the breaker's
//! state and the last error, for metrics and `/readyz`.
//!
//! `reset` clears the key in the local store (if any) and then in the store; a store
//! failure there is an error, not a policy answer. `ping` goes through the breaker too: an
//! open breaker answers an error without touching the store, and once `open_for` has passed
//! a ping is a probe, so `/readyz` polling alone brings the breaker back. Transitions are
//! logged with `tracing`: `warn` when the breaker opens, `info` when it half-opens or
//! closes; each failure at `debug`.
//!
//! Call timeouts use Tokio's timer: a `Guarded` store runs inside a Tokio runtime with time
//! enabled. The breaker and the local store read the [`Clock`](tollgate_core::Clock) given to
//! [`Guarded::with_clock`] (the system clock for [`Guarded::new`]).
//!
//! [`Decision`]: tollgate_core::Decision
//!
//! ```
//! use std::time::Duration;
//! use tollgate_core::{Limit, Store};
//! use tollgate_memory::MemoryStore;
//! use tollgate_redis::guard::{BreakerState, GuardConfig, Guarded, OnStoreFailure};
//! # tokio::runtime::Builder::new_current_thread().enable_time().build()?.block_on(async {
//! let config = GuardConfig {
//!     on_failure: OnStoreFailure::Local,
//!     call_timeout: Duration::from_millis(20),
//!     ..GuardConfig::default()
//! };
//! let store = Guarded::new(MemoryStore::new(), config);
//! assert!(store.check("user:1", &Limit::gcra("5/min".parse()?), 1).await?.allowed);
//! assert_eq!(store.health().breaker, BreakerState::Closed);
//! # Ok::<(), tollgate_core::Error>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod breaker;
mod config;
mod fallback;
mod policy;
mod slots;
#[cfg(test)]
mod testing;

pub use breaker::{CircuitBreaker, Permit, Rejected, Transition};
pub use config::{
    BreakerConfig, BreakerState, GuardConfig, OnStoreFailure, Source, StoreHealth, UnknownPolicy,
};
pub use policy::Guarded;
