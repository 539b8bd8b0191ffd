//! A limiter for one key: no hashing, no map; GCRA is one atomic compare-and-swap.

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::Padded;
use tollgate_core::{
    Clock, Decision, Error, FixedWindow, Limit, LimitState, SlidingLog, SystemClock, gcra,
};

enum State {
    /// The theoretical arrival time, updated lock-free, on a cache line of its own so that
    /// threads racing on it do not also evict the read-only limit and clock.
    Gcra(Padded<AtomicU64>),
    Sliding(Mutex<SlidingLog>),
    Fixed(Mutex<FixedWindow>),
}

/// One limit on one thing (a whole process's calls to an API, say), shared by all threads.
///
/// ```
/// use tollgate_memory::DirectLimiter;
/// use tollgate_core::Limit;
/// let limiter = DirectLimiter::new(Limit::gcra("10/s".parse()?));
/// assert!(limiter.check(4)?.allowed);
/// assert_eq!(limiter.check(0)?.remaining, 6);
/// # Ok::<(), tollgate_core::Error>(())
/// ```
pub struct DirectLimiter<C: Clock = SystemClock> {
    limit: Limit,
    state: State,
    clock: C,
}

impl DirectLimiter<SystemClock> {
    /// A limiter on the system clock.
    pub fn new(limit: Limit) -> Self {
        Self::with_clock(limit, SystemClock::new())
    }
}

impl<C: Clock> DirectLimiter<C> {
    /// A limiter on the given clock.
    pub fn with_clock(limit: Limit, clock: C) -> Self {
        let state = match limit.algorithm().family() {
            tollgate_core::Family::Gcra => State::Gcra(Padded(AtomicU64::new(0))),
            tollgate_core::Family::SlidingWindow => State::Sliding(Mutex::default()),
            tollgate_core::Family::FixedWindow => State::Fixed(Mutex::default()),
        };
        DirectLimiter {
            limit,
            state,
            clock,
        }
    }

    /// The limit enforced.
    pub fn limit(&self) -> &Limit {
        &self.limit
    }

    /// Decides a request of `cost`; cost 0 peeks.
    pub fn check(&self, cost: u64) -> Result<Decision, Error> {
        self.limit.check_cost("(direct)", cost)?;
        match &self.state {
            State::Gcra(tat) => Ok(self.check_gcra(&tat.0, cost)),
            State::Sliding(log) => {
                let mut log = log.lock();
                Ok(log.apply(&self.limit, self.clock.now(), cost))
            }
            State::Fixed(window) => {
                let mut window = window.lock();
                Ok(window.apply(&self.limit, self.clock.now(), cost))
            }
        }
    }

    /// Admits `cost` when the limit allows: `Ok(true)` admitted (and consumed), `Ok(false)`
    /// denied (nothing consumed). The same rule as [`check`](Self::check) without the
    /// decision's other fields, for hot loops that only need the verdict.
    #[inline]
    pub fn admit(&self, cost: u64) -> Result<bool, Error> {
        let State::Gcra(tat) = &self.state else {
            return self.check(cost).map(|d| d.allowed);
        };
        self.limit.check_cost("(direct)", cost)?;
        let now = self.clock.now();
        let tat = &tat.0;
        let mut current = tat.load(Ordering::Acquire);
        loop {
            let Some(next) = gcra::admit(current, &self.limit, now, cost) else {
                return Ok(false);
            };
            if cost == 0 {
                return Ok(true);
            }
            match tat.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(true),
                Err(actual) => current = actual,
            }
        }
    }

    #[inline]
    fn check_gcra(&self, tat: &AtomicU64, cost: u64) -> Decision {
        // The time is read once: a retry after a lost race decides at the same instant, which
        // GCRA tolerates (it takes max(TAT, now)) and which keeps the guarantee.
        let now = self.clock.now();
        let mut current = tat.load(Ordering::Acquire);
        loop {
            let (decision, next) = gcra::decide(current, &self.limit, now, cost, 0);
            let Some(next) = next else { return decision };
            match tat.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return decision,
                Err(actual) => current = actual,
            }
        }
    }

    /// Back to full capacity.
    pub fn reset(&self) {
        match &self.state {
            State::Gcra(tat) => tat.0.store(0, Ordering::Release),
            State::Sliding(log) => *log.lock() = SlidingLog::default(),
            State::Fixed(window) => *window.lock() = FixedWindow::default(),
        }
    }
}
