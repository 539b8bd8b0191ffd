//! [`Guarded`]: a store wrapped in a timeout, a circuit breaker and a failure policy.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tollgate_core::{
    Check, Clock, Decision, Error, Limit, MultiDecision, Store, SystemClock, validate_key,
};
use tollgate_memory::MemoryStore;

use super::breaker::{CircuitBreaker, Transition};
use super::config::{GuardConfig, Source, StoreHealth};
use super::fallback::{Fallback, retry_ms};
use super::slots::SlotBreakers;

#[cfg(test)]
mod tests;

/// A [`Store`] that never waits on its inner store longer than `call_timeout` and answers
/// with the configured [`OnStoreFailure`] policy while that store fails; see the
/// [module docs](super) for every decision it makes.
///
/// [`OnStoreFailure`]: super::OnStoreFailure
///
/// ```
/// use tollgate_core::{Limit, Store};
/// use tollgate_memory::MemoryStore;
/// use tollgate_redis::guard::{GuardConfig, Guarded};
/// # tokio::runtime::Builder::new_current_thread().enable_time().build()?.block_on(async {
/// let store = Guarded::new(MemoryStore::new(), GuardConfig::default());
/// let limit = Limit::gcra("1/min".parse()?);
/// assert!(store.check("user:1", &limit, 1).await?.allowed);
/// assert!(!store.check("user:1", &limit, 1).await?.allowed);
/// assert_eq!(store.health().failures_total, 0);
/// # Ok::<(), tollgate_core::Error>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Guarded<S, C: Clock = SystemClock> {
    inner: S,
    config: GuardConfig,
    breaker: CircuitBreaker<C>,
    /// With `breaker_per_slot`: the keys' breakers (`breaker` then guards `ping` only).
    slots: Option<SlotBreakers<C>>,
    fallback: Fallback<C>,
    failures_total: AtomicU64,
    fallback_total: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// Why the store did not decide.
struct Failed {
    /// How long until the store is tried again.
    retry_after: Duration,
    /// The store's error, or one describing the open breaker.
    error: Error,
}

impl<S: Store> Guarded<S, SystemClock> {
    /// Wraps `inner`, on the system clock.
    pub fn new(inner: S, config: GuardConfig) -> Self {
        Guarded::with_clock(inner, config, SystemClock::new())
    }
}

impl<S: Store, C: Clock + Clone> Guarded<S, C> {
    /// Wraps `inner`; the breaker and the local fallback store read `clock`. Call timeouts
    /// use tokio's timer (so tests pause it with `tokio::time::pause`).
    pub fn with_clock(inner: S, config: GuardConfig, clock: C) -> Self {
        Guarded {
            fallback: Fallback::new(&config, clock.clone()),
            slots: config
                .breaker_per_slot
                .then(|| SlotBreakers::new(config.breaker, clock.clone())),
            breaker: CircuitBreaker::with_clock(config.breaker, clock),
            inner,
            config,
            failures_total: AtomicU64::new(0),
            fallback_total: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The configuration.
    pub fn config(&self) -> &GuardConfig {
        &self.config
    }

    /// The store's circuit breaker (with `breaker_per_slot`, the one that guards `ping`).
    pub fn breaker(&self) -> &CircuitBreaker<C> {
        &self.breaker
    }

    /// The breaker that guards calls on `key`.
    fn breaker_for(&self, key: &str) -> &CircuitBreaker<C> {
        match &self.slots {
            Some(slots) => slots.of(key),
            None => &self.breaker,
        }
    }

    /// The local fallback store (under `OnStoreFailure::Local` only).
    pub fn local_store(&self) -> Option<&MemoryStore<C>> {
        self.fallback.local()
    }

    /// A snapshot of the store's health and the policy's counters.
    pub fn health(&self) -> StoreHealth {
        StoreHealth {
            breaker: self.breaker.state(),
            last_error: self.last_error().clone(),
            failures_total: self.failures_total.load(Ordering::Relaxed),
            fallback_decisions_total: self.fallback_total.load(Ordering::Relaxed),
            opened_total: self.breaker.opened_total()
                + self.slots.as_ref().map_or(0, SlotBreakers::opened_total),
            rejected_total: self.breaker.rejected_total()
                + self.slots.as_ref().map_or(0, SlotBreakers::rejected_total),
            open_slots: self.slots.as_ref().map_or(0, SlotBreakers::open),
            over_limit_cache_hits: 0,
        }
    }

    /// [`Store::check`], also saying who decided.
    pub async fn check_with_source(
        &self,
        key: &str,
        limit: &Limit,
        cost: u64,
    ) -> Result<(Decision, Source), Error> {
        validate_key(key)?;
        limit.check_cost(key, cost)?;
        let breaker = self.breaker_for(key);
        let failed = match self
            .call(breaker, || self.inner.check(key, limit, cost))
            .await
        {
            Ok(answer) => return answer.map(|d| (d, Source::Store)),
            Err(failed) => failed,
        };
        self.fallback_total.fetch_add(1, Ordering::Relaxed);
        let decision = self.fallback.check(key, limit, cost, failed.retry_after)?;
        Ok((decision, Source::Fallback(self.config.on_failure)))
    }

    /// [`Store::check_all`], also saying who decided.
    pub async fn check_all_with_source(
        &self,
        checks: &[Check<'_>],
    ) -> Result<(MultiDecision, Source), Error> {
        for check in checks {
            validate_key(check.key)?;
            check.limit.check_cost(check.key, check.cost)?;
        }
        // On a cluster a batch is one slot (the store refuses others as bad input).
        let breaker = checks
            .first()
            .map_or(&self.breaker, |c| self.breaker_for(c.key));
        let failed = match self.call(breaker, || self.inner.check_all(checks)).await {
            Ok(answer) => return answer.map(|d| (d, Source::Store)),
            Err(failed) => failed,
        };
        self.fallback_total.fetch_add(1, Ordering::Relaxed);
        let multi = self.fallback.check_all(checks, failed.retry_after)?;
        Ok((multi, Source::Fallback(self.config.on_failure)))
    }

    /// Calls the inner store through the breaker, within `call_timeout`. `Ok` holds the
    /// store's own answer (a value, or an error that is not a store failure); `Err` says the
    /// store failed, timed out or was not called.
    async fn call<T, F>(
        &self,
        breaker: &CircuitBreaker<C>,
        call: impl FnOnce() -> F,
    ) -> Result<Result<T, Error>, Failed>
    where
        F: Future<Output = Result<T, Error>>,
    {
        let permit = match breaker.try_acquire() {
            Ok(permit) => permit,
            Err(rejected) => {
                return Err(Failed {
                    retry_after: rejected.retry_after,
                    error: self.open_error(breaker, rejected.retry_after),
                });
            }
        };
        let error = match tokio::time::timeout(self.config.call_timeout, call()).await {
            Ok(Ok(value)) => {
                if permit.success() == Some(Transition::Closed) {
                    self.recovered();
                }
                return Ok(Ok(value));
            }
            Ok(Err(error)) if !is_store_failure(&error) => {
                permit.release();
                return Ok(Err(error));
            }
            Ok(Err(error)) => error,
            Err(_elapsed) => Error::Store {
                message: format!(
                    "the store did not answer within {} ms",
                    self.config.call_timeout.as_millis()
                ),
                transient: true,
            },
        };
        self.failures_total.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(code = error.code(), %error, "store call failed");
        *self.last_error() = Some(error.to_string());
        permit.failure(&error);
        Err(Failed {
            retry_after: breaker.retry_in(),
            error,
        })
    }

    /// The breaker closed: forget the outage.
    fn recovered(&self) {
        *self.last_error() = None;
        if let Some(local) = self.local_store() {
            local.sweep();
        }
    }

    fn open_error(&self, breaker: &CircuitBreaker<C>, retry_after: Duration) -> Error {
        let last = self.last_error().clone();
        Error::Store {
            message: format!(
                "the store is failing (circuit breaker {}, next try in {} ms); last error: {}",
                breaker.state(),
                retry_ms(retry_after),
                last.as_deref().unwrap_or("none"),
            ),
            transient: true,
        }
    }

    fn last_error(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether an error says the store could not answer (and the policy should): a transient
/// store error. Bad input, a full store and permanent store errors are answers.
fn is_store_failure(error: &Error) -> bool {
    matches!(
        error,
        Error::Store {
            transient: true,
            ..
        }
    )
}

impl<S: Store, C: Clock + Clone> Store for Guarded<S, C> {
    async fn check(&self, key: &str, limit: &Limit, cost: u64) -> Result<Decision, Error> {
        self.check_with_source(key, limit, cost)
            .await
            .map(|(decision, _)| decision)
    }

    async fn check_all(&self, checks: &[Check<'_>]) -> Result<MultiDecision, Error> {
        self.check_all_with_source(checks)
            .await
            .map(|(multi, _)| multi)
    }

    /// Resets the key in the local fallback store (if any), then in the store; a store
    /// failure is an error, not a policy answer.
    async fn reset(&self, key: &str) -> Result<(), Error> {
        validate_key(key)?;
        if let Some(local) = self.local_store() {
            local.reset(key)?;
        }
        match self
            .call(self.breaker_for(key), || self.inner.reset(key))
            .await
        {
            Ok(answer) => answer,
            Err(failed) => Err(failed.error),
        }
    }

    /// Pings the store through the breaker: an open breaker answers an error without
    /// touching it, and once `open_for` has passed the ping is a probe that can close it.
    async fn ping(&self) -> Result<(), Error> {
        match self.call(&self.breaker, || self.inner.ping()).await {
            Ok(answer) => answer,
            Err(failed) => Err(failed.error),
        }
    }

    fn tracked_keys(&self) -> Option<u64> {
        self.inner.tracked_keys()
    }
}
