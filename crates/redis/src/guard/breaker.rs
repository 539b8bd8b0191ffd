//! A circuit breaker: after enough consecutive store failures, calls fail fast for a while
//! instead of waiting on a store that is down; then a few probes decide whether it is back.
//!
//! The state lives in one atomic word (state and epoch), so the closed path — every call
//! while the store is healthy — takes no lock. A small mutex is held only to change state
//! and to count probes, never across an `await`.

use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tollgate_core::{Clock, Nanos, SystemClock};

use super::config::{BreakerConfig, BreakerState};

mod permit;
#[cfg(test)]
mod tests;

pub use permit::{Permit, Rejected, Transition};

// The word: the state in the low two bits, the epoch (bumped at every transition) above.
const STATE_MASK: u64 = 0b11;
const CLOSED: u64 = 0;
const OPEN: u64 = 1;
const HALF_OPEN: u64 = 2;

fn pack(state: u64, epoch: u64) -> u64 {
    (epoch << 2) | state
}

fn epoch_of(word: u64) -> u64 {
    word >> 2
}

fn state_of(word: u64) -> BreakerState {
    match word & STATE_MASK {
        OPEN => BreakerState::Open,
        HALF_OPEN => BreakerState::HalfOpen,
        _ => BreakerState::Closed,
    }
}

/// The probes of a half-open breaker.
#[derive(Debug, Default)]
struct Probes {
    in_flight: u32,
    successes: u32,
}

/// A circuit breaker guarding a store; see the [`guard` module docs](super).
///
/// ```
/// use std::time::Duration;
/// use tollgate_core::FakeClock;
/// use tollgate_redis::guard::{BreakerConfig, BreakerState, CircuitBreaker};
/// let config = BreakerConfig { failure_threshold: 2, ..BreakerConfig::default() };
/// let breaker = CircuitBreaker::with_clock(config, FakeClock::at_millis(0));
/// for _ in 0..2 {
///     let permit = breaker.try_acquire().expect("closed");
///     permit.failure(&"connection refused");
/// }
/// assert_eq!(breaker.state(), BreakerState::Open);
/// assert_eq!(breaker.try_acquire().map(|_| ()).unwrap_err().retry_after, Duration::from_secs(1));
/// ```
#[derive(Debug)]
pub struct CircuitBreaker<C: Clock = SystemClock> {
    config: BreakerConfig,
    clock: C,
    /// State and epoch; written only under `probes`' lock, read without it.
    word: AtomicU64,
    /// Consecutive failures while closed.
    failures: AtomicU32,
    /// When an open breaker lets its first probe through; stored before `word` turns open.
    open_until: AtomicU64,
    probes: Mutex<Probes>,
    opened_total: AtomicU64,
    rejected_total: AtomicU64,
    /// The Redis Cluster slot it guards, if only one: its transitions are logged at debug,
    /// since thousands of slots may change state at once.
    slot: Option<u16>,
}

impl CircuitBreaker<SystemClock> {
    /// A closed breaker on the system clock.
    pub fn new(config: BreakerConfig) -> Self {
        CircuitBreaker::with_clock(config, SystemClock::new())
    }
}

impl<C: Clock> CircuitBreaker<C> {
    /// A closed breaker on `clock`.
    pub fn with_clock(config: BreakerConfig, clock: C) -> Self {
        let config = BreakerConfig {
            failure_threshold: config.failure_threshold.max(1),
            half_open_probes: config.half_open_probes.max(1),
            success_threshold: config.success_threshold.max(1),
            open_for: config.open_for,
        };
        CircuitBreaker {
            config,
            clock,
            word: AtomicU64::new(pack(CLOSED, 0)),
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            probes: Mutex::new(Probes::default()),
            opened_total: AtomicU64::new(0),
            rejected_total: AtomicU64::new(0),
            slot: None,
        }
    }

    /// A closed breaker for the keys of one Redis Cluster hash slot.
    pub(crate) fn for_slot(config: BreakerConfig, clock: C, slot: u16) -> Self {
        CircuitBreaker {
            slot: Some(slot),
            ..CircuitBreaker::with_clock(config, clock)
        }
    }

    /// The configuration, with zero thresholds raised to 1.
    pub fn config(&self) -> BreakerConfig {
        self.config
    }

    /// The current state. An open breaker whose `open_for` has passed reports `Open` until
    /// the next call turns it half-open.
    pub fn state(&self) -> BreakerState {
        state_of(self.word.load(Ordering::Acquire))
    }

    /// How many times the breaker has opened (from closed or from half-open).
    pub fn opened_total(&self) -> u64 {
        self.opened_total.load(Ordering::Relaxed)
    }

    /// How many calls it has refused (failed fast).
    pub fn rejected_total(&self) -> u64 {
        self.rejected_total.load(Ordering::Relaxed)
    }

    /// The consecutive failures counted while closed.
    pub fn consecutive_failures(&self) -> u32 {
        self.failures.load(Ordering::Relaxed)
    }

    /// How long until the store is tried again: the rest of `open_for` while open, zero
    /// otherwise.
    pub fn retry_in(&self) -> Duration {
        let word = self.word.load(Ordering::Acquire);
        if word & STATE_MASK != OPEN {
            return Duration::ZERO;
        }
        let until = self.open_until.load(Ordering::Acquire);
        Duration::from_nanos(until.saturating_sub(self.clock.now()))
    }

    /// Asks to call the store. A [`Permit`] must then be told how the call went; dropping it
    /// untold (a cancelled call) counts for nothing and frees its probe slot.
    pub fn try_acquire(&self) -> Result<Permit<'_, C>, Rejected> {
        let word = self.word.load(Ordering::Acquire);
        match word & STATE_MASK {
            CLOSED => Ok(self.permit(word, false)),
            OPEN => {
                let until = self.open_until.load(Ordering::Acquire);
                let now = self.clock.now();
                if now < until {
                    return Err(self.reject(until - now));
                }
                self.acquire_slow()
            }
            _ => self.acquire_slow(),
        }
    }

    fn acquire_slow(&self) -> Result<Permit<'_, C>, Rejected> {
        let mut probes = self.lock();
        let word = self.word.load(Ordering::Acquire);
        match word & STATE_MASK {
            CLOSED => Ok(self.permit(word, false)),
            OPEN => {
                let until = self.open_until.load(Ordering::Acquire);
                let now = self.clock.now();
                if now < until {
                    return Err(self.reject(until - now));
                }
                *probes = Probes {
                    in_flight: 1,
                    successes: 0,
                };
                let word = pack(HALF_OPEN, epoch_of(word) + 1);
                self.word.store(word, Ordering::Release);
                match self.slot {
                    Some(slot) => tracing::debug!(slot, "slot circuit breaker half-open"),
                    None => tracing::info!("store circuit breaker half-open: probing the store"),
                }
                Ok(self.permit(word, true))
            }
            _ if probes.in_flight < self.config.half_open_probes => {
                probes.in_flight += 1;
                Ok(self.permit(word, true))
            }
            _ => Err(self.reject(0)),
        }
    }

    fn permit(&self, word: u64, probe: bool) -> Permit<'_, C> {
        Permit::new(self, epoch_of(word), probe)
    }

    fn reject(&self, wait_ns: Nanos) -> Rejected {
        self.rejected_total.fetch_add(1, Ordering::Relaxed);
        Rejected {
            retry_after: Duration::from_nanos(wait_ns),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Probes> {
        // A panic elsewhere cannot leave `Probes` inconsistent enough to matter.
        self.probes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn on_success(&self, epoch: u64, probe: bool) -> Option<Transition> {
        if !probe {
            if self.word.load(Ordering::Acquire) == pack(CLOSED, epoch)
                && self.failures.load(Ordering::Relaxed) != 0
            {
                self.failures.store(0, Ordering::Relaxed);
            }
            return None;
        }
        let mut probes = self.lock();
        if self.word.load(Ordering::Acquire) != pack(HALF_OPEN, epoch) {
            return None;
        }
        probes.in_flight = probes.in_flight.saturating_sub(1);
        probes.successes += 1;
        if probes.successes < self.config.success_threshold {
            return None;
        }
        *probes = Probes::default();
        self.failures.store(0, Ordering::Relaxed);
        self.word.store(pack(CLOSED, epoch + 1), Ordering::Release);
        match self.slot {
            Some(slot) => tracing::debug!(slot, "slot circuit breaker closed"),
            None => tracing::info!("store circuit breaker closed: the store answers again"),
        }
        Some(Transition::Closed)
    }

    fn on_failure(&self, epoch: u64, probe: bool, cause: &dyn fmt::Display) -> Option<Transition> {
        if probe {
            let mut probes = self.lock();
            if self.word.load(Ordering::Acquire) != pack(HALF_OPEN, epoch) {
                return None;
            }
            *probes = Probes::default();
            self.open(epoch, "a half-open probe failed", cause);
            return Some(Transition::Opened);
        }
        if self.word.load(Ordering::Acquire) != pack(CLOSED, epoch) {
            return None;
        }
        let failures = self
            .failures
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        if failures < self.config.failure_threshold {
            return None;
        }
        let _probes = self.lock();
        if self.word.load(Ordering::Acquire) != pack(CLOSED, epoch) {
            return None;
        }
        self.open(epoch, &format!("{failures} consecutive failures"), cause);
        Some(Transition::Opened)
    }

    /// Opens the breaker; called with the lock held.
    fn open(&self, epoch: u64, why: &str, cause: &dyn fmt::Display) {
        let open_for = u64::try_from(self.config.open_for.as_nanos()).unwrap_or(u64::MAX);
        let until = self.clock.now().saturating_add(open_for);
        self.open_until.store(until, Ordering::Release);
        self.word.store(pack(OPEN, epoch + 1), Ordering::Release);
        self.opened_total.fetch_add(1, Ordering::Relaxed);
        let open_for_ms = self.config.open_for.as_millis() as u64;
        match self.slot {
            Some(slot) => {
                tracing::debug!(slot, why, open_for_ms, error = %cause, "slot circuit breaker opened")
            }
            None => tracing::warn!(
                why,
                open_for_ms,
                error = %cause,
                "store circuit breaker opened: calls fail fast",
            ),
        }
    }

    fn on_release(&self, epoch: u64, probe: bool) {
        if probe {
            let mut probes = self.lock();
            if self.word.load(Ordering::Acquire) == pack(HALF_OPEN, epoch) {
                probes.in_flight = probes.in_flight.saturating_sub(1);
            }
        }
    }
}
