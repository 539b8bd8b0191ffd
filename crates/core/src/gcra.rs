//! GCRA: the whole state of a key is its theoretical arrival time (TAT).
//!
//! With T = PERIOD / COUNT (rounded up to whole nanoseconds) and tolerance τ = BURST × T, a
//! request of cost c at `now` is admitted when `max(TAT, now) + c·T ≤ now + τ`, and then
//! `TAT := max(TAT, now) + c·T`. Over any interval of length t the admitted cost is at most
//! BURST + floor(t / T): the TAT rises by T per unit admitted and never runs more than τ
//! ahead of the clock.

use crate::clock::{Nanos, ceil_ms};
use crate::decision::Decision;
use crate::limit::Limit;
use crate::state::{LimitState, clamp};

/// A GCRA key's state: its theoretical arrival time, in nanoseconds since the epoch (0 for a
/// key never seen, which is the same as a full bucket).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gcra {
    /// The theoretical arrival time.
    pub tat: Nanos,
}

/// Decides `cost` at `now` against a TAT, as if `pending` had just been admitted; returns the
/// decision and, when admitted, the new TAT. The lock-free direct limiter calls this in a
/// compare-and-swap loop.
#[inline]
pub fn decide(
    tat: Nanos,
    limit: &Limit,
    now: Nanos,
    cost: u64,
    pending: u64,
) -> (Decision, Option<Nanos>) {
    let t = u128::from(limit.interval_ns());
    let now_w = u128::from(now);
    let horizon = now_w + t * u128::from(limit.burst()); // now + τ
    let base = u128::from(tat.max(now)) + t * u128::from(pending);
    let next = base + t * u128::from(cost);
    let remaining_at = |tat: u128| clamp(horizon.saturating_sub(tat) / t);
    if next <= horizon {
        let decision = Decision {
            allowed: true,
            limit: limit.capacity(),
            remaining: remaining_at(next),
            retry_after_ms: 0,
            reset_after_ms: ceil_ms(clamp(next - now_w)),
        };
        (decision, (cost > 0).then(|| clamp(next)))
    } else {
        let decision = Decision {
            allowed: false,
            limit: limit.capacity(),
            remaining: remaining_at(base),
            retry_after_ms: ceil_ms(clamp(next - horizon)),
            reset_after_ms: ceil_ms(clamp(base - now_w)),
        };
        (decision, None)
    }
}

impl LimitState for Gcra {
    fn evaluate(&self, limit: &Limit, now: Nanos, cost: u64, pending: u64) -> Decision {
        decide(self.tat, limit, now, cost, pending).0
    }

    fn commit(&mut self, limit: &Limit, now: Nanos, cost: u64) {
        self.tat = self
            .tat
            .max(now)
            .saturating_add(limit.interval_ns().saturating_mul(cost));
    }

    fn idle_at(&self, _limit: &Limit) -> Nanos {
        self.tat
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Algorithm;

    const S: u64 = 1_000_000_000;

    fn limit(rate: &str, algorithm: Algorithm, burst: Option<u64>) -> Limit {
        Limit::new(rate.parse().expect("rate"), algorithm, burst).expect("limit")
    }

    #[test]
    fn burst_then_one_per_interval() {
        let l = limit("10/s", Algorithm::Gcra, Some(3));
        let mut s = Gcra::default();
        let t0 = 100 * S;
        for left in [2, 1, 0] {
            let d = s.apply(&l, t0, 1);
            assert!(d.allowed);
            assert_eq!(d.remaining, left);
        }
        let d = s.apply(&l, t0, 1);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_ms, 100);
        assert_eq!(d.reset_after_ms, 300);
        assert_eq!(d.remaining, 0);
        assert!(!s.apply(&l, t0 + 99_999_999, 1).allowed);
        assert!(s.apply(&l, t0 + 100_000_000, 1).allowed);
    }

    #[test]
    fn weighted_cost_and_peek() {
        let l = limit("10/s", Algorithm::Gcra, None);
        let mut s = Gcra::default();
        let d = s.apply(&l, S, 7);
        assert_eq!((d.allowed, d.remaining, d.reset_after_ms), (true, 3, 700));
        let d = s.apply(&l, S, 4);
        assert_eq!((d.allowed, d.remaining, d.retry_after_ms), (false, 3, 100));
        let before = s;
        let d = s.apply(&l, S, 0);
        assert_eq!((d.allowed, d.remaining, d.retry_after_ms), (true, 3, 0));
        assert_eq!(s, before, "a peek consumes nothing");
    }

    #[test]
    fn strict_spaces_evenly() {
        let l = limit("4/s", Algorithm::Strict, None);
        let mut s = Gcra::default();
        assert!(s.apply(&l, S, 1).allowed);
        let d = s.apply(&l, S, 1);
        assert_eq!((d.allowed, d.retry_after_ms), (false, 250));
        assert!(s.apply(&l, S + 250_000_000, 1).allowed);
    }

    #[test]
    fn pending_counts_as_admitted() {
        let l = limit("10/s", Algorithm::Gcra, Some(5));
        let s = Gcra::default();
        assert!(s.evaluate(&l, S, 2, 3).allowed);
        assert!(!s.evaluate(&l, S, 3, 3).allowed);
    }
}
