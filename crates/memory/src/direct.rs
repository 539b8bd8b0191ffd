//! A limiter for one key: no hashing, no map; GCRA is one atomic compare-and-swap.

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::Padded;
use tollgate_core::{
    Admission, CapacityExceeded, Clock, Decision, Error, FixedWindow, Limit, LimitState,
    SlidingLog, SystemClock, gcra::Step,
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
/// // The verdict alone, for hot loops: 6 more fit, the 7th is told to wait (T = 100 ms).
/// for _ in 0..6 {
///     assert!(limiter.admit(1)?.is_admitted());
/// }
/// let denied = limiter.admit(1)?;
/// assert!(!denied.is_admitted() && denied.retry_after_ms() <= 100);
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
    // `check` and `admit` are inlined into the caller with the GCRA path only: the window
    // algorithms' locked paths stay out of line, so the common case pays no call, no saved
    // registers and no stack frame (about 20 of its 145 instructions before). `#[inline]` alone
    // left them out of line in the benchmarks, hence `always`.
    #[inline(always)]
    pub fn check(&self, cost: u64) -> Result<Decision, Error> {
        let State::Gcra(tat) = &self.state else {
            return self.check_locked(cost);
        };
        self.limit.check_cost("(direct)", cost)?;
        Ok(self.check_gcra(&tat.0, cost))
    }

    #[inline(always)]
    fn check_gcra(&self, tat: &AtomicU64, cost: u64) -> Decision {
        self.step_gcra(tat, cost).decision(&self.limit)
    }

    /// Admits `cost` when the limit allows (and consumes it), or says how long until it would
    /// (nothing consumed). The same rule as [`check`](Self::check) without the decision's
    /// other fields, for hot loops that only need the verdict: what governor's `check` gives.
    /// The only error, a cost over the capacity, is a small `Copy` value (`?` makes it an
    /// [`Error`]).
    #[inline(always)]
    pub fn admit(&self, cost: u64) -> Result<Admission, CapacityExceeded> {
        let capacity = self.limit.capacity();
        if cost > capacity {
            return Err(CapacityExceeded { cost, capacity });
        }
        Ok(match &self.state {
            State::Gcra(tat) => self.step_gcra(&tat.0, cost).admission(),
            _ => Admission::from(&self.apply_locked(cost)),
        })
    }

    /// Applies GCRA to the atomic TAT (a peek stores nothing) and returns the step that won.
    #[inline(always)]
    fn step_gcra(&self, tat: &AtomicU64, cost: u64) -> Step {
        // The time is read once: a retry after a lost race decides at the same instant, which
        // GCRA tolerates (it takes max(TAT, now)) and which keeps the guarantee.
        let now = self.clock.now();
        let mut current = tat.load(Ordering::Acquire);
        loop {
            // `check` and `admit` checked the cost against the capacity.
            let step = Step::within_capacity(current, &self.limit, now, cost);
            if !step.allowed() || cost == 0 {
                return step;
            }
            match tat.compare_exchange_weak(current, step.next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return step,
                Err(actual) => current = actual,
            }
        }
    }

    /// The window algorithms, under their lock; out of line to keep `check` small.
    #[inline(never)]
    fn check_locked(&self, cost: u64) -> Result<Decision, Error> {
        self.limit.check_cost("(direct)", cost)?;
        Ok(self.apply_locked(cost))
    }

    /// [`check_locked`](Self::check_locked) for a cost already checked.
    #[inline(never)]
    fn apply_locked(&self, cost: u64) -> Decision {
        match &self.state {
            State::Gcra(tat) => self.check_gcra(&tat.0, cost),
            State::Sliding(log) => log.lock().apply(&self.limit, self.clock.now(), cost),
            State::Fixed(window) => window.lock().apply(&self.limit, self.clock.now(), cost),
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tollgate_core::{Algorithm, FakeClock, Gcra};

    use super::*;

    /// The lock-free path must give exactly the decision (every CONTRACT §4 field) of the
    /// core's GCRA state applied step by step, allowing, denying and peeking.
    #[test]
    fn direct_gcra_decisions_equal_the_core_state() {
        for (rate, algorithm, burst) in [
            ("5/s", Algorithm::Gcra, Some(3)),
            ("7/1100ms", Algorithm::Gcra, None),
            ("4/s", Algorithm::Strict, None),
            ("1000000000/s", Algorithm::Gcra, None),
        ] {
            let limit = Limit::new(rate.parse().expect("rate"), algorithm, burst).expect("limit");
            let clock = FakeClock::at_millis(1_700_000_000_000);
            let direct = DirectLimiter::with_clock(limit, clock.clone());
            let mut reference = Gcra::default();
            let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
            let (mut allowed, mut denied) = (0, 0);
            for step in 0..5000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                clock.advance(Duration::from_micros(x % 150_000));
                let cost = (x >> 8) % (limit.capacity().min(4) + 1);
                let expected = reference.apply(&limit, clock.now(), cost);
                let got = direct.check(cost).expect("cost within capacity");
                assert_eq!(got, expected, "{limit} step {step} cost {cost}");
                if got.allowed {
                    allowed += 1;
                } else {
                    denied += 1;
                }
            }
            assert!(allowed > 0, "{limit}: the trace should admit some");
            if limit.capacity() < 1000 {
                assert!(denied > 0, "{limit}: the trace should deny some");
            }
        }
    }

    #[test]
    fn a_cost_over_capacity_is_an_error_on_every_path() {
        let limit =
            Limit::new("10/s".parse().expect("rate"), Algorithm::Gcra, Some(4)).expect("limit");
        let direct = DirectLimiter::with_clock(limit, FakeClock::at_millis(1_000));
        let err = direct.check(5).expect_err("over capacity");
        assert_eq!(err.code(), "cost_exceeds_limit");
        let err = direct.admit(5).expect_err("over capacity");
        assert_eq!(
            err,
            CapacityExceeded {
                cost: 5,
                capacity: 4
            }
        );
        assert_eq!(Error::from(err).code(), "cost_exceeds_limit");
        assert_eq!(
            direct.check(0).map(|d| d.remaining),
            Ok(4),
            "nothing consumed"
        );
    }
}
