//! Property tests: each algorithm against a small reference model on random traces with a
//! fake clock, and every admission checked by the independent guarantee checker.

use proptest::prelude::*;
use tollgate_core::{
    Algorithm, Decision, FixedWindow, Gcra, Limit, LimitState, Nanos, Rate, SlidingLog, Unit,
    ceil_ms,
};
use tollgate_testkit::{Admission, check, check_brute_force};

const MS: u64 = 1_000_000;
/// Traces start here, so fixed windows are not all aligned at 0.
const T0: Nanos = 1_700_000_000_123 * MS;

/// A reference token bucket (the textbook form of GCRA): a level of credit in nanoseconds,
/// refilled by elapsed time, capped at BURST × T.
struct BucketModel {
    level: u64,
    last: Option<Nanos>,
}

impl BucketModel {
    fn decide(&mut self, limit: &Limit, now: Nanos, cost: u64) -> Decision {
        let t = limit.interval_ns();
        let cap = limit.burst() * t;
        let level = match self.last {
            Some(last) => (self.level + (now - last)).min(cap),
            None => cap,
        };
        self.last = Some(now);
        let need = cost * t;
        let allowed = level >= need;
        let after = if allowed { level - need } else { level };
        self.level = after;
        Decision {
            allowed,
            limit: limit.burst(),
            remaining: after / t,
            retry_after_ms: if allowed { 0 } else { ceil_ms(need - level) },
            reset_after_ms: ceil_ms(cap - after),
        }
    }
}

/// A reference sliding window: every admission ever, summed over (now - PERIOD, now].
#[derive(Default)]
struct LogModel {
    all: Vec<(Nanos, u64)>,
}

impl LogModel {
    fn used_at(&self, period: u64, at: Nanos) -> u64 {
        self.all
            .iter()
            .filter(|&&(t, _)| t + period > at)
            .map(|&(_, c)| c)
            .sum()
    }

    fn decide(&mut self, limit: &Limit, now: Nanos, cost: u64) -> Decision {
        let (count, period) = (limit.rate().count(), limit.rate().period_ns());
        let used = self.used_at(period, now);
        let allowed = used + cost <= count;
        if allowed && cost > 0 {
            self.all.push((now, cost));
        }
        let used_after = self.used_at(period, now);
        // The first moment (an admission's expiry) at which the request would fit.
        let retry_after_ms = if allowed {
            0
        } else {
            let fits = self
                .all
                .iter()
                .map(|&(t, _)| t + period)
                .filter(|&at| at > now && self.used_at(period, at) + cost <= count)
                .min()
                .unwrap_or(now);
            ceil_ms(fits - now)
        };
        let newest = self
            .all
            .iter()
            .filter(|&&(t, _)| t + period > now)
            .map(|&(t, _)| t + period)
            .max();
        Decision {
            allowed,
            limit: count,
            remaining: count - used_after,
            retry_after_ms,
            reset_after_ms: newest.map_or(0, |end| ceil_ms(end - now)),
        }
    }
}

/// A reference fixed window: a count per window number.
#[derive(Default)]
struct WindowModel {
    counts: std::collections::HashMap<u64, u64>,
}

impl WindowModel {
    fn decide(&mut self, limit: &Limit, now: Nanos, cost: u64) -> Decision {
        let (count, period) = (limit.rate().count(), limit.rate().period_ns());
        let window = now / period;
        let used = self.counts.get(&window).copied().unwrap_or(0);
        let allowed = used + cost <= count;
        let used_after = if allowed { used + cost } else { used };
        self.counts.insert(window, used_after);
        let to_end = ceil_ms((window + 1) * period - now);
        Decision {
            allowed,
            limit: count,
            remaining: count - used_after,
            retry_after_ms: if allowed { 0 } else { to_end },
            reset_after_ms: if used_after > 0 { to_end } else { 0 },
        }
    }
}

fn arb_limit() -> impl Strategy<Value = Limit> {
    let units = prop_oneof![Just(Unit::Millisecond), Just(Unit::Second)];
    (
        1u64..=12,
        1u64..=1500,
        units,
        0usize..4,
        proptest::option::of(1u64..=20),
    )
        .prop_filter_map("valid limit", |(count, number, unit, algorithm, burst)| {
            let rate = Rate::new(count, number, unit).ok()?;
            let algorithm = Algorithm::ALL[algorithm];
            let burst = if algorithm == Algorithm::Gcra {
                burst
            } else {
                None
            };
            Limit::new(rate, algorithm, burst).ok()
        })
}

/// Steps of (nanoseconds to wait, cost); waits are often 0 or tiny to hit the edges.
fn arb_steps() -> impl Strategy<Value = Vec<(u64, u64)>> {
    let wait = prop_oneof![
        3 => Just(0u64),
        3 => 0u64..2 * MS,
        3 => 0u64..400 * MS,
        1 => 0u64..3_000 * MS,
    ];
    proptest::collection::vec((wait, 0u64..=4), 1..160)
}

/// Runs a trace through an algorithm's state; returns decisions and admissions.
fn run<S: LimitState>(
    limit: &Limit,
    steps: &[(u64, u64)],
) -> (Vec<(Nanos, u64, Decision)>, Vec<Admission>) {
    let mut state = S::default();
    let mut now = T0;
    let mut out = Vec::new();
    let mut admitted = Vec::new();
    for &(wait, cost) in steps {
        now += wait;
        let cost = cost.min(limit.capacity());
        let d = state.apply(limit, now, cost);
        if d.allowed && cost > 0 {
            admitted.push(Admission { t: now, cost });
        }
        out.push((now, cost, d));
    }
    (out, admitted)
}

fn run_any(limit: &Limit, steps: &[(u64, u64)]) -> (Vec<(Nanos, u64, Decision)>, Vec<Admission>) {
    match limit.algorithm() {
        Algorithm::Gcra | Algorithm::Strict => run::<Gcra>(limit, steps),
        Algorithm::SlidingWindow => run::<SlidingLog>(limit, steps),
        Algorithm::FixedWindow => run::<FixedWindow>(limit, steps),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    /// Every decision equals the reference model's, field by field.
    #[test]
    fn decisions_match_the_reference_models(limit in arb_limit(), steps in arb_steps()) {
        let (decisions, _) = run_any(&limit, &steps);
        let mut bucket = BucketModel { level: 0, last: None };
        let mut log = LogModel::default();
        let mut windows = WindowModel::default();
        for (i, &(now, cost, got)) in decisions.iter().enumerate() {
            let want = match limit.algorithm() {
                Algorithm::Gcra | Algorithm::Strict => bucket.decide(&limit, now, cost),
                Algorithm::SlidingWindow => log.decide(&limit, now, cost),
                Algorithm::FixedWindow => windows.decide(&limit, now, cost),
            };
            prop_assert_eq!(got, want, "step {} of {} (now {}, cost {})", i, limit, now, cost);
        }
    }

    /// No interval of admissions breaks the algorithm's guarantee (both checkers).
    #[test]
    fn admissions_keep_the_guarantee(limit in arb_limit(), steps in arb_steps()) {
        let (_, admitted) = run_any(&limit, &steps);
        if let Err(v) = check(&limit, &admitted) {
            prop_assert!(false, "{} broke: {}", limit, v);
        }
        if let Err(v) = check_brute_force(&limit, &admitted) {
            prop_assert!(false, "{} broke (brute force): {}", limit, v);
        }
    }

    /// Waiting `retry_after_ms` is enough, and a millisecond less is not; a denial consumes
    /// nothing.
    #[test]
    fn retry_after_is_exact_and_denials_consume_nothing(limit in arb_limit(), steps in arb_steps()) {
        let (decisions, _) = run_any(&limit, &steps);
        let Some(&(now, cost, last)) = decisions.last() else { return Ok(()) };
        if last.allowed || cost == 0 {
            return Ok(());
        }
        // Replay the trace without its last step, then probe the future.
        let prefix = &steps[..steps.len() - 1];
        let probe = |at: Nanos| -> Decision {
            let mut extra = prefix.to_vec();
            extra.push((at - (now - steps[steps.len() - 1].0), cost));
            // `now` of the last step is `at` instead.
            let (d, _) = run_any(&limit, &extra);
            d[d.len() - 1].2
        };
        prop_assert!(!probe(now).allowed);
        prop_assert!(probe(now + last.retry_after_ms * MS).allowed, "retry_after {} too short", last.retry_after_ms);
        if last.retry_after_ms > 1 {
            prop_assert!(!probe(now + (last.retry_after_ms - 1) * MS).allowed, "retry_after {} too long", last.retry_after_ms);
        }
    }

    /// After `reset_after_ms` with no traffic the key is back to full capacity.
    #[test]
    fn reset_after_restores_full_capacity(limit in arb_limit(), steps in arb_steps()) {
        let (decisions, _) = run_any(&limit, &steps);
        let Some(&(_, _, last)) = decisions.last() else { return Ok(()) };
        let mut extended = steps.clone();
        extended.push((last.reset_after_ms * MS, 0));
        let (d, _) = run_any(&limit, &extended);
        let peek = d[d.len() - 1].2;
        prop_assert_eq!(peek.remaining, limit.capacity());
    }
}

#[test]
fn clock_stepping_back_never_admits_more() {
    for algorithm in Algorithm::ALL {
        let limit = Limit::new("3/s".parse().expect("rate"), algorithm, None).expect("limit");
        let mut admitted = 0;
        match algorithm.family() {
            tollgate_core::Family::Gcra => {
                let mut s = Gcra::default();
                for now in [T0, T0 - 900 * MS, T0 - 1800 * MS, T0] {
                    admitted += u64::from(s.apply(&limit, now, 1).allowed);
                }
            }
            tollgate_core::Family::SlidingWindow => {
                let mut s = SlidingLog::default();
                for now in [T0, T0 - 900 * MS, T0 - 1800 * MS, T0] {
                    admitted += u64::from(s.apply(&limit, now, 1).allowed);
                }
            }
            tollgate_core::Family::FixedWindow => {
                let mut s = FixedWindow::default();
                for now in [T0, T0 - 900 * MS, T0 - 1800 * MS, T0] {
                    admitted += u64::from(s.apply(&limit, now, 1).allowed);
                }
            }
        }
        assert!(
            admitted <= limit.capacity(),
            "{algorithm}: {admitted} admitted"
        );
    }
}

proptest! {
    /// The division by multiplication GCRA uses is exact for every divisor and numerator.
    #[test]
    fn intervals_in_divides_exactly(t in 1u64..=u64::MAX / 4, x in any::<u64>(), small in 0u64..1 << 20) {
        let count = 1u64;
        let Ok(rate) = Rate::new(count, t.div_ceil(1_000_000).clamp(1, 1 << 40), Unit::Millisecond) else { return Ok(()) };
        let limit = Limit::gcra(rate);
        let d = limit.interval_ns();
        prop_assert_eq!(limit.intervals_in(x), x / d);
        prop_assert_eq!(limit.intervals_in(small), small / d);
        prop_assert_eq!(limit.intervals_in(x >> 1), (x >> 1) / d);
    }
}
