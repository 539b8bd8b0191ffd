//! GCRA: the whole state of a key is its theoretical arrival time (TAT).
//!
//! With T = PERIOD / COUNT (rounded up to whole nanoseconds) and tolerance τ = BURST × T, a
//! request of cost c at `now` is admitted when `max(TAT, now) + c·T ≤ now + τ`, and then
//! `TAT := max(TAT, now) + c·T`. Over any interval of length t the admitted cost is at most
//! BURST + floor(t / T): the TAT rises by T per unit admitted and never runs more than τ
//! ahead of the clock.

use crate::clock::{Nanos, ceil_ms};
use crate::decision::{Admission, Decision};
use crate::limit::Limit;
use crate::state::LimitState;

/// A GCRA key's state: its theoretical arrival time, in nanoseconds since the epoch (0 for a
/// key never seen, which is the same as a full bucket).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gcra {
    /// The theoretical arrival time.
    pub tat: Nanos,
}

/// One GCRA step: the instants a decision is made of, computed once. The lock-free direct
/// limiter takes the verdict and the new TAT from it inside its compare-and-swap loop and
/// builds the [`Decision`] only after the race is settled, without redoing the arithmetic.
///
/// No sum below can wrap: τ < 2^62 (checked by [`Limit::new`]) and times are below 2^63
/// (the year 2262); saturation only makes an absurd `pending` or `cost` deny, as it must.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// When the decision is made.
    pub now: Nanos,
    /// `now + τ`: the latest the TAT may reach.
    pub horizon: Nanos,
    /// `max(TAT, now)` plus the cost of `pending`: where this request would start.
    pub base: Nanos,
    /// `base + cost·T`: the TAT if this request is admitted.
    pub next: Nanos,
}

// `always`: these are a few instructions each on the direct limiter's hot path, and LLVM
// otherwise kept `decision` out of line there (a call and a spill per check).
impl Step {
    /// Takes `cost` at `now` against a TAT, as if `pending` had just been admitted.
    #[inline(always)]
    pub fn new(tat: Nanos, limit: &Limit, now: Nanos, cost: u64, pending: u64) -> Step {
        let t = limit.interval_ns();
        let base = tat.max(now).saturating_add(t.saturating_mul(pending));
        Step {
            now,
            horizon: now.saturating_add(limit.tolerance_ns()),
            base,
            next: base.saturating_add(t.saturating_mul(cost)),
        }
    }

    /// [`Step::new`] with nothing pending, for a `cost` already checked against the limit's
    /// capacity ([`Limit::check_cost`]): then `cost·T ≤ τ < 2^62`, and with times below 2^63
    /// and a TAT at most τ ahead of the clock no sum can wrap, so plain arithmetic does
    /// (checked in debug builds), without the saturation `new` needs for any `pending`.
    #[inline(always)]
    pub fn within_capacity(tat: Nanos, limit: &Limit, now: Nanos, cost: u64) -> Step {
        let base = tat.max(now);
        Step {
            now,
            horizon: now + limit.tolerance_ns(),
            base,
            next: base + limit.interval_ns() * cost,
        }
    }

    /// Whether the request is admitted.
    #[inline(always)]
    pub fn allowed(&self) -> bool {
        self.next <= self.horizon
    }

    /// The verdict and, when denied, the wait: what [`Decision::retry_after_ms`] is before
    /// rounding.
    #[inline(always)]
    pub fn admission(&self) -> Admission {
        if self.allowed() {
            Admission::ADMITTED
        } else {
            Admission::denied(self.next - self.horizon)
        }
    }

    /// The decision (CONTRACT §4).
    #[inline(always)]
    pub fn decision(&self, limit: &Limit) -> Decision {
        if self.allowed() {
            Decision {
                allowed: true,
                limit: limit.capacity(),
                remaining: limit.intervals_in(self.horizon - self.next),
                retry_after_ms: 0,
                reset_after_ms: ceil_ms(self.next - self.now),
            }
        } else {
            Decision {
                allowed: false,
                limit: limit.capacity(),
                remaining: limit.intervals_in(self.horizon.saturating_sub(self.base)),
                retry_after_ms: ceil_ms(self.next - self.horizon),
                reset_after_ms: ceil_ms(self.base - self.now),
            }
        }
    }
}

/// Decides `cost` at `now` against a TAT, as if `pending` had just been admitted; returns the
/// decision and, when admitted, the new TAT (`None` for a peek, which changes nothing).
#[inline]
pub fn decide(
    tat: Nanos,
    limit: &Limit,
    now: Nanos,
    cost: u64,
    pending: u64,
) -> (Decision, Option<Nanos>) {
    let step = Step::new(tat, limit, now, cost, pending);
    let next = (step.allowed() && cost > 0).then_some(step.next);
    (step.decision(limit), next)
}

/// The verdict alone: `Ok(new TAT)` when `cost` is admitted at `now`, `Err(wait)` (ns, at
/// least 1) when denied. The same rule as [`decide`], without computing the decision's other
/// fields.
#[inline]
pub fn admit(tat: Nanos, limit: &Limit, now: Nanos, cost: u64) -> Result<Nanos, Nanos> {
    let step = Step::new(tat, limit, now, cost, 0);
    if step.allowed() {
        Ok(step.next)
    } else {
        Err(step.next - step.horizon)
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

    fn idle_at(&self) -> Nanos {
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

    /// `admit` agrees with `decide`: the same new TAT when admitted, and when denied the wait
    /// that `retry_after_ms` rounds up; `Step::admission` says the same.
    #[test]
    fn admit_is_decide_without_the_other_fields() {
        let l = limit("10/s", Algorithm::Gcra, Some(3));
        let mut tat = 0;
        let mut now = 100 * S;
        let (mut admitted, mut denied) = (0, 0);
        for step in 0u64..200 {
            now += (step * 7_919_000) % 90_000_000;
            let cost = step % 4;
            let (decision, next) = decide(tat, &l, now, cost, 0);
            let admission = Step::new(tat, &l, now, cost, 0).admission();
            match admit(tat, &l, now, cost) {
                Ok(new_tat) => {
                    assert!(decision.allowed && admission.is_admitted(), "step {step}");
                    assert_eq!(next.unwrap_or(tat), if cost > 0 { new_tat } else { tat });
                    tat = next.unwrap_or(tat);
                    admitted += 1;
                }
                Err(wait) => {
                    assert!(!decision.allowed && wait > 0, "step {step}");
                    assert_eq!(crate::ceil_ms(wait), decision.retry_after_ms);
                    assert_eq!(admission, Admission::denied(wait));
                    denied += 1;
                }
            }
        }
        assert!(
            admitted > 20 && denied > 20,
            "{admitted} admitted, {denied} denied"
        );
    }

    #[test]
    fn pending_counts_as_admitted() {
        let l = limit("10/s", Algorithm::Gcra, Some(5));
        let s = Gcra::default();
        assert!(s.evaluate(&l, S, 2, 3).allowed);
        assert!(!s.evaluate(&l, S, 3, 3).allowed);
    }
}
