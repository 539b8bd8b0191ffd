//! A limit: a rate, the algorithm that enforces it and (for GCRA) a burst.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;
use crate::rate::Rate;

/// How a rate is enforced. See CONTRACT §3 and the crate docs for each guarantee.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Algorithm {
    /// Generic cell rate algorithm (a token bucket): at most BURST + floor(t / T) in any
    /// interval of length t, with T = PERIOD / COUNT.
    #[default]
    Gcra,
    /// GCRA with a burst of 1: evenly spaced, at most 1 + floor(t / T) in any interval t.
    Strict,
    /// An exact log of admissions: at most COUNT in any window of length PERIOD.
    SlidingWindow,
    /// Windows aligned to multiples of PERIOD since the Unix epoch: at most COUNT in each.
    FixedWindow,
}

impl Algorithm {
    /// Every algorithm, in documentation order.
    pub const ALL: [Algorithm; 4] = [
        Algorithm::Gcra,
        Algorithm::Strict,
        Algorithm::SlidingWindow,
        Algorithm::FixedWindow,
    ];

    /// The name used in the CLI, the config and the HTTP API.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Gcra => "gcra",
            Algorithm::Strict => "strict",
            Algorithm::SlidingWindow => "sliding-window",
            Algorithm::FixedWindow => "fixed-window",
        }
    }

    /// Which kind of state the algorithm keeps. `gcra` and `strict` share one, so a key
    /// checked under both draws on the same bucket.
    pub fn family(self) -> Family {
        match self {
            Algorithm::Gcra | Algorithm::Strict => Family::Gcra,
            Algorithm::SlidingWindow => Family::SlidingWindow,
            Algorithm::FixedWindow => Family::FixedWindow,
        }
    }
}

impl FromStr for Algorithm {
    type Err = Error;
    fn from_str(s: &str) -> Result<Algorithm, Error> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| Error::UnknownAlgorithm {
                input: s.to_string(),
            })
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl serde::Serialize for Algorithm {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for Algorithm {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Algorithm, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The kind of state a key holds. A store keeps one state per (family, key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// A theoretical arrival time (`gcra`, `strict`).
    Gcra,
    /// A log of admissions (`sliding-window`).
    SlidingWindow,
    /// A window number and its count (`fixed-window`).
    FixedWindow,
}

impl Family {
    /// Every family.
    pub const ALL: [Family; 3] = [Family::Gcra, Family::SlidingWindow, Family::FixedWindow];
}

/// The longest a GCRA bucket may take to refill: BURST × T must stay under 2^62 ns (about
/// 146 years) so that time arithmetic cannot overflow.
const MAX_TOLERANCE_NS: u64 = 1 << 62;

/// A validated limit: rate, algorithm and burst, with the derived GCRA parameters.
///
/// ```
/// use tollgate_core::{Algorithm, Limit};
/// let limit = Limit::new("100/60s".parse()?, Algorithm::Gcra, Some(20))?;
/// assert_eq!(limit.capacity(), 20);
/// let strict = Limit::new("5/s".parse()?, Algorithm::Strict, None)?;
/// assert_eq!(strict.capacity(), 1);
/// # Ok::<(), tollgate_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Limit {
    rate: Rate,
    algorithm: Algorithm,
    burst: u64,
    interval_ns: u64,
    /// τ = BURST × T, the most a GCRA bucket's TAT may run ahead of the clock.
    tolerance_ns: u64,
    /// Divides by T with a multiplication (see [`Limit::intervals_in`]); derived from T, so
    /// equality and hashing stay consistent.
    divide: Reciprocal,
}

/// Exact division of numbers below 2^63 by a fixed divisor d, by a multiply-high and a shift
/// (Granlund and Montgomery, 1994, theorem 4.2): with l = ⌈log2 d⌉ and
/// m = ⌊2^(63+l) / d⌋ + 1, `x / d == (x·m) >> (63 + l)` for every x < 2^63, and m < 2^64.
/// The shift is done as `>> 63` (fixed, one instruction on the 128-bit product, which then
/// fits in 64 bits) followed by `>> l` on 64 bits, rather than one variable 128-bit shift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Reciprocal {
    multiplier: u64,
    /// l, below 64.
    shift: u32,
}

impl Reciprocal {
    fn new(divisor: u64) -> Reciprocal {
        let d = divisor.max(1);
        let l = 64 - (d - 1).leading_zeros(); // ⌈log2 d⌉, 0 for d = 1
        if l == 64 {
            // d > 2^63: every x below 2^63 divides to 0.
            return Reciprocal {
                multiplier: 0,
                shift: 0,
            };
        }
        let multiplier = ((1u128 << (63 + l)) / u128::from(d) + 1) as u64;
        Reciprocal {
            multiplier,
            shift: l,
        }
    }

    #[inline]
    fn divide(self, x: u64) -> u64 {
        // x·m < 2^127, so x·m >> 63 fits in 64 bits.
        let high = ((u128::from(x) * u128::from(self.multiplier)) >> 63) as u64;
        high >> self.shift
    }
}

impl Limit {
    /// Validates a limit. `burst` applies to `gcra` only (default COUNT); `strict` accepts
    /// only 1 (its meaning); the window algorithms accept none.
    pub fn new(rate: Rate, algorithm: Algorithm, burst: Option<u64>) -> Result<Limit, Error> {
        let bad = |burst: u64, reason: &str| Error::InvalidBurst {
            burst,
            reason: reason.to_string(),
        };
        let burst = match (algorithm, burst) {
            (Algorithm::Gcra, None) => rate.count(),
            (Algorithm::Gcra, Some(0)) => return Err(bad(0, "a burst must be at least 1")),
            (Algorithm::Gcra, Some(b)) => b,
            (Algorithm::Strict, None | Some(1)) => 1,
            (Algorithm::Strict, Some(b)) => {
                return Err(bad(
                    b,
                    "strict means a burst of 1; use gcra for another burst",
                ));
            }
            (_, None) => rate.count(),
            (_, Some(b)) => {
                return Err(bad(
                    b,
                    &format!("{algorithm} takes no burst (it admits COUNT per window)"),
                ));
            }
        };
        let interval_ns = rate.interval_ns();
        if algorithm.family() == Family::Gcra
            && burst
                .checked_mul(interval_ns)
                .is_none_or(|t| t > MAX_TOLERANCE_NS)
        {
            return Err(bad(
                burst,
                "BURST × PERIOD/COUNT must be under 146 years; lower the burst",
            ));
        }
        Ok(Limit {
            rate,
            algorithm,
            burst,
            interval_ns,
            tolerance_ns: burst.saturating_mul(interval_ns),
            divide: Reciprocal::new(interval_ns),
        })
    }

    /// A `gcra` limit with the default burst (COUNT).
    pub fn gcra(rate: Rate) -> Limit {
        // COUNT × ceil(PERIOD / COUNT) < PERIOD + COUNT, well under the tolerance bound.
        Limit {
            rate,
            algorithm: Algorithm::Gcra,
            burst: rate.count(),
            interval_ns: rate.interval_ns(),
            tolerance_ns: rate.count().saturating_mul(rate.interval_ns()),
            divide: Reciprocal::new(rate.interval_ns()),
        }
    }

    /// The rate.
    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The burst: the GCRA bucket's size; COUNT for the window algorithms.
    pub fn burst(&self) -> u64 {
        self.burst
    }

    /// The most that can be admitted at once (the `limit` field of a decision): BURST for
    /// `gcra` and `strict`, COUNT otherwise.
    pub fn capacity(&self) -> u64 {
        self.burst
    }

    /// The GCRA emission interval T in nanoseconds (see [`Rate::interval_ns`]).
    pub fn interval_ns(&self) -> u64 {
        self.interval_ns
    }

    /// τ = BURST × T in nanoseconds (GCRA's tolerance).
    #[inline]
    pub fn tolerance_ns(&self) -> u64 {
        self.tolerance_ns
    }

    /// How many whole intervals T fit in `ns`: exactly `ns / T`, by a multiplication. The
    /// GCRA spans it is used on are below τ < 2^62; beyond 2^63 it divides.
    #[inline]
    pub fn intervals_in(&self, ns: u64) -> u64 {
        if ns >> 63 == 0 {
            self.divide.divide(ns)
        } else {
            ns / self.interval_ns
        }
    }

    /// Checks that a cost can ever be admitted under this limit.
    #[inline]
    pub fn check_cost(&self, key: &str, cost: u64) -> Result<(), Error> {
        if cost > self.capacity() {
            return Err(cost_exceeds(key, cost, self.capacity()));
        }
        Ok(())
    }
}

// Out of line: building the error (it allocates) must not weigh on inlining the hot path.
#[cold]
#[inline(never)]
fn cost_exceeds(key: &str, cost: u64, capacity: u64) -> Error {
    Error::CostExceedsLimit {
        key: key.to_string(),
        cost,
        capacity,
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.rate, self.algorithm)?;
        if self.algorithm == Algorithm::Gcra && self.burst != self.rate.count() {
            write!(f, " burst {}", self.burst)?;
        }
        Ok(())
    }
}

/// The longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// Checks a key: not empty, at most [`MAX_KEY_BYTES`] bytes.
#[inline]
pub fn validate_key(key: &str) -> Result<(), Error> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(invalid_key(key));
    }
    Ok(())
}

#[cold]
fn invalid_key(key: &str) -> Error {
    let reason = if key.is_empty() {
        "the key is empty".to_string()
    } else {
        format!(
            "the key is {} bytes long; at most {MAX_KEY_BYTES} are allowed",
            key.len()
        )
    };
    Error::InvalidKey { reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(s: &str) -> Rate {
        s.parse().expect("valid rate")
    }

    #[test]
    fn burst_rules() {
        assert_eq!(
            Limit::new(rate("10/s"), Algorithm::Gcra, None).map(|l| l.capacity()),
            Ok(10)
        );
        assert_eq!(
            Limit::new(rate("10/s"), Algorithm::Gcra, Some(3)).map(|l| l.capacity()),
            Ok(3)
        );
        assert_eq!(
            Limit::new(rate("10/s"), Algorithm::Strict, Some(1)).map(|l| l.capacity()),
            Ok(1)
        );
        for (algorithm, burst) in [
            (Algorithm::Gcra, 0),
            (Algorithm::Strict, 2),
            (Algorithm::SlidingWindow, 5),
            (Algorithm::FixedWindow, 5),
        ] {
            let err = Limit::new(rate("10/s"), algorithm, Some(burst)).expect_err("rejected");
            assert_eq!(err.code(), "invalid_burst", "{algorithm} {burst}");
        }
        let err = Limit::new(rate("1/d"), Algorithm::Gcra, Some(u64::MAX / 2)).expect_err("huge");
        assert!(err.to_string().contains("146 years"), "{err}");
    }

    #[test]
    fn algorithm_names_round_trip() {
        for a in Algorithm::ALL {
            assert_eq!(a.name().parse::<Algorithm>(), Ok(a));
        }
        let err = "leaky".parse::<Algorithm>().expect_err("unknown");
        assert!(err.to_string().contains("\"leaky\""));
    }

    #[test]
    fn keys() {
        assert!(validate_key("user:1").is_ok());
        assert_eq!(validate_key("").map_err(|e| e.code()), Err("invalid_key"));
        assert!(validate_key(&"k".repeat(1024)).is_ok());
        let err = validate_key(&"k".repeat(1025)).expect_err("too long");
        assert!(err.to_string().contains("1025"), "{err}");
    }

    #[test]
    fn intervals_in_is_exact_division() {
        for rate in [
            "3/s",
            "7/1000ms",
            "1000000000000/ms",
            "1/d",
            "999983/1h",
            "10/500ms",
            "1/s",
            "1000000000000/1073741824ms",
            "3/7ms",
            "1/200000d",
        ] {
            let limit = Limit::gcra(rate.parse().expect("rate"));
            let t = limit.interval_ns();
            let mut probes = vec![
                0,
                1,
                t - 1,
                t,
                t + 1,
                t.saturating_mul(2) - 1,
                t.saturating_mul(2),
                u64::MAX / 2,
                (1 << 62) - 1,
                (1 << 63) - 1,
                1 << 63,
                u64::MAX,
            ];
            probes.extend((1..2000u64).map(|k| k.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 2));
            probes.extend(
                (1..500u64)
                    .filter_map(|k| k.checked_mul(t).filter(|kt| *kt < u64::MAX))
                    .flat_map(|kt| [kt - 1, kt, kt + 1]),
            );
            let top = ((1u64 << 63) - 1) / t;
            probes.extend((0..top.min(500)).flat_map(|k| [(top - k) * t, (top - k) * t - 1]));
            for ns in probes {
                assert_eq!(limit.intervals_in(ns), ns / t, "{rate}: {ns} / {t}");
            }
        }
    }

    #[test]
    fn cost_over_capacity_is_an_error() {
        let limit = Limit::new(rate("10/s"), Algorithm::Gcra, Some(4)).expect("valid");
        assert!(limit.check_cost("k", 4).is_ok());
        let err = limit.check_cost("k", 5).expect_err("too much");
        assert_eq!(err.code(), "cost_exceeds_limit");
    }
}
