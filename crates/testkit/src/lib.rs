//! Test support shared by tollgate's test suites: an independent checker that looks at every
//! admission's time and cost and finds any interval that breaks a CONTRACT §3 guarantee.
//!
//! The checker uses only a limit's COUNT, PERIOD, algorithm and burst, with exact rational
//! arithmetic (T = PERIOD / COUNT is never rounded), so it does not share the algorithms'
//! arithmetic it is checking.
#![deny(missing_docs)]

pub mod redis;

use std::collections::BTreeMap;
use std::fmt;

pub mod clock;

use tollgate_core::{Algorithm, Limit, Nanos};

pub use clock::{RecordingClock, last_now, ready};

/// One admitted request: when the store decided it, and its cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Admission {
    /// The store's time of the decision, in nanoseconds.
    pub t: Nanos,
    /// The admitted cost.
    pub cost: u64,
}

/// An interval whose admitted cost breaks the guarantee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Start of the interval (ns).
    pub from: Nanos,
    /// End of the interval (ns).
    pub to: Nanos,
    /// Cost admitted in it.
    pub admitted: u64,
    /// The most the guarantee allows in it.
    pub allowed: u64,
    /// The algorithm whose guarantee broke.
    pub algorithm: Algorithm,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} admitted in [{}, {}] ns, at most {} allowed",
            self.algorithm, self.admitted, self.from, self.to, self.allowed
        )
    }
}

/// Checks every interval of a key's admissions against the guarantee of `limit`'s algorithm.
///
/// - `gcra` / `strict`: in any interval of length t, admitted ≤ BURST + floor(t / T). Since
///   admitted cost is whole, this holds for every interval exactly when the admissions
///   conform to a continuous token bucket of BURST tokens refilled at COUNT per PERIOD, which
///   is checked in one pass with integer arithmetic scaled by PERIOD.
/// - `sliding-window`: every half-open window `[a, a + PERIOD)` holds ≤ COUNT; the fullest
///   windows start at an admission, checked with two pointers.
/// - `fixed-window`: each window `[k·PERIOD, (k+1)·PERIOD)` holds ≤ COUNT.
pub fn check(limit: &Limit, admissions: &[Admission]) -> Result<(), Violation> {
    let mut sorted = admissions.to_vec();
    sorted.sort_unstable();
    let count = limit.rate().count();
    let period = limit.rate().period_ns();
    match limit.algorithm() {
        Algorithm::Gcra | Algorithm::Strict => check_bucket(limit, &sorted),
        Algorithm::SlidingWindow => {
            let mut start = 0;
            let mut sum: u64 = 0;
            for (end, a) in sorted.iter().enumerate() {
                sum += a.cost;
                while sorted[start].t.saturating_add(period) <= a.t {
                    sum -= sorted[start].cost;
                    start += 1;
                }
                if sum > count {
                    return Err(Violation {
                        from: sorted[start].t,
                        to: sorted[end].t,
                        admitted: sum,
                        allowed: count,
                        algorithm: limit.algorithm(),
                    });
                }
            }
            Ok(())
        }
        Algorithm::FixedWindow => {
            let mut windows: BTreeMap<u64, u64> = BTreeMap::new();
            for a in &sorted {
                *windows.entry(a.t / period).or_default() += a.cost;
            }
            match windows.into_iter().find(|&(_, sum)| sum > count) {
                Some((k, sum)) => Err(Violation {
                    from: k * period,
                    to: (k + 1) * period - 1,
                    admitted: sum,
                    allowed: count,
                    algorithm: limit.algorithm(),
                }),
                None => Ok(()),
            }
        }
    }
}

/// Token-bucket conformance with exact arithmetic: the level is kept in units of 1/PERIOD of
/// a token, so refilling `dt` ns adds `dt × COUNT` and a token costs `PERIOD`.
fn check_bucket(limit: &Limit, sorted: &[Admission]) -> Result<(), Violation> {
    let count = u128::from(limit.rate().count());
    let period = u128::from(limit.rate().period_ns());
    let burst = u128::from(limit.burst());
    let capacity = burst * period;
    let mut level = capacity;
    let mut last: Option<Nanos> = None;
    // The start of the run of admissions that emptied the bucket, for the report.
    let mut run_start = 0;
    let mut run_cost: u128 = 0;
    for a in sorted {
        if let Some(prev) = last {
            let refill = u128::from(a.t - prev) * count;
            if level + refill >= capacity {
                run_start = a.t;
                run_cost = 0;
            }
            level = (level + refill).min(capacity);
        } else {
            run_start = a.t;
        }
        last = Some(a.t);
        let need = u128::from(a.cost) * period;
        run_cost += u128::from(a.cost);
        if level < need {
            let t = a.t - run_start;
            let allowed = burst + u128::from(t) * count / period;
            return Err(Violation {
                from: run_start,
                to: a.t,
                admitted: u64::try_from(run_cost).unwrap_or(u64::MAX),
                allowed: u64::try_from(allowed).unwrap_or(u64::MAX),
                algorithm: limit.algorithm(),
            });
        }
        level -= need;
    }
    Ok(())
}

/// Every interval, by brute force: O(n²), for cross-checking [`check`] on small traces.
pub fn check_brute_force(limit: &Limit, admissions: &[Admission]) -> Result<(), Violation> {
    let mut sorted = admissions.to_vec();
    sorted.sort_unstable();
    let count = u128::from(limit.rate().count());
    let period = limit.rate().period_ns();
    for i in 0..sorted.len() {
        let mut sum: u64 = 0;
        for j in i..sorted.len() {
            sum += sorted[j].cost;
            let (from, to) = (sorted[i].t, sorted[j].t);
            let allowed = match limit.algorithm() {
                Algorithm::Gcra | Algorithm::Strict => {
                    u128::from(limit.burst()) + u128::from(to - from) * count / u128::from(period)
                }
                Algorithm::SlidingWindow if to - from < period => count,
                Algorithm::FixedWindow if from / period == to / period => count,
                _ => continue,
            };
            if u128::from(sum) > allowed {
                return Err(Violation {
                    from,
                    to,
                    admitted: sum,
                    allowed: u64::try_from(allowed).unwrap_or(u64::MAX),
                    algorithm: limit.algorithm(),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn limit(rate: &str, algorithm: Algorithm, burst: Option<u64>) -> Limit {
        Limit::new(rate.parse().expect("rate"), algorithm, burst).expect("limit")
    }

    fn at(times_ms: &[u64]) -> Vec<Admission> {
        times_ms
            .iter()
            .map(|&t| Admission { t: t * MS, cost: 1 })
            .collect()
    }

    #[test]
    fn the_checker_catches_violations() {
        let gcra = limit("2/s", Algorithm::Gcra, None);
        assert!(check(&gcra, &at(&[0, 0, 500, 1000])).is_ok());
        assert!(check(&gcra, &at(&[0, 0, 0])).is_err());
        assert!(check(&gcra, &at(&[0, 0, 499])).is_err());
        let strict = limit("4/s", Algorithm::Strict, None);
        assert!(check(&strict, &at(&[0, 250, 500])).is_ok());
        assert!(check(&strict, &at(&[0, 250, 499])).is_err());
        let sliding = limit("2/s", Algorithm::SlidingWindow, None);
        assert!(check(&sliding, &at(&[0, 999, 1000, 1999])).is_ok());
        assert!(check(&sliding, &at(&[0, 999, 998])).is_err());
        let fixed = limit("2/s", Algorithm::FixedWindow, None);
        assert!(check(&fixed, &at(&[999, 999, 1000, 1000])).is_ok());
        assert!(check(&fixed, &at(&[1000, 1500, 1999])).is_err());
    }

    #[test]
    fn fast_and_brute_force_checkers_agree() {
        // A deterministic spread of traces: every subset pattern of a few times.
        let times = [0u64, 100, 250, 499, 500, 700, 1000, 1001, 1500, 2100];
        for algorithm in Algorithm::ALL {
            let burst = (algorithm == Algorithm::Gcra).then_some(3);
            let l = limit("4/1s", algorithm, burst);
            for mask in 0u32..(1 << times.len()) {
                let mut trace = Vec::new();
                for (i, &t) in times.iter().enumerate() {
                    if mask & (1 << i) != 0 {
                        trace.push(Admission {
                            t: t * MS,
                            cost: 1 + u64::from(mask % 3 == 0 && i % 2 == 0),
                        });
                    }
                }
                assert_eq!(
                    check(&l, &trace).is_ok(),
                    check_brute_force(&l, &trace).is_ok(),
                    "{algorithm} {trace:?}"
                );
            }
        }
    }
}
