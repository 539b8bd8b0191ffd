//! The rate grammar: `COUNT "/" PERIOD`, for example `100/60s`, `20/min` or `10/500ms`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::error::Error;

/// The largest COUNT a rate may have.
pub const MAX_COUNT: u64 = 1_000_000_000_000;

const NANOS_PER_MS: u64 = 1_000_000;

/// What a rate looks like, for error messages.
const EXPECTED: &str = "COUNT/PERIOD, COUNT a whole number 1..=10^12 and PERIOD an optional \
     positive whole number followed by ms, s, sec, second, seconds, m, min, minute, minutes, \
     h, hr, hour, hours, d, day or days (for example 100/60s, 20/min, 10/500ms)";

/// The unit of a rate's period, as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unit {
    /// Milliseconds (`ms`).
    Millisecond,
    /// Seconds (`s`, `sec`, `second`, `seconds`).
    Second,
    /// Minutes (`m`, `min`, `minute`, `minutes`).
    Minute,
    /// Hours (`h`, `hr`, `hour`, `hours`).
    Hour,
    /// Days (`d`, `day`, `days`).
    Day,
}

impl Unit {
    /// The unit a spelling names (`ms`, `s`, `sec`, `min`, `h`, `days`, …), as in the grammar.
    pub fn from_symbol(s: &str) -> Option<Unit> {
        Some(match s {
            "ms" => Unit::Millisecond,
            "s" | "sec" | "second" | "seconds" => Unit::Second,
            "m" | "min" | "minute" | "minutes" => Unit::Minute,
            "h" | "hr" | "hour" | "hours" => Unit::Hour,
            "d" | "day" | "days" => Unit::Day,
            _ => return None,
        })
    }

    /// The unit's length in milliseconds.
    pub fn millis(self) -> u64 {
        match self {
            Unit::Millisecond => 1,
            Unit::Second => 1_000,
            Unit::Minute => 60_000,
            Unit::Hour => 3_600_000,
            Unit::Day => 86_400_000,
        }
    }

    /// The canonical spelling used by `Display`.
    pub fn symbol(self) -> &'static str {
        match self {
            Unit::Millisecond => "ms",
            Unit::Second => "s",
            Unit::Minute => "min",
            Unit::Hour => "h",
            Unit::Day => "d",
        }
    }
}

/// A rate: at most `count` per `period`.
///
/// Two rates are equal when their count and period are equal, however they were written
/// (`20/min` equals `20/60s`). `Display` keeps the unit the rate was written in, in its
/// canonical spelling, so `parse(r.to_string()) == r` for every rate.
///
/// ```
/// use tollgate_core::Rate;
/// let rate: Rate = "100/60s".parse()?;
/// assert_eq!(rate.count(), 100);
/// assert_eq!(rate.period(), std::time::Duration::from_secs(60));
/// assert_eq!(rate.to_string(), "100/60s");
/// assert_eq!("3/second".parse::<Rate>()?.to_string(), "3/s");
/// assert!("0/1s".parse::<Rate>().is_err());
/// # Ok::<(), tollgate_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    count: u64,
    number: u64,
    unit: Unit,
    period_ns: u64,
}

impl Rate {
    /// Builds a rate of `count` per `number` `unit`s, with the grammar's bounds.
    pub fn new(count: u64, number: u64, unit: Unit) -> Result<Rate, Error> {
        let input = format!("{count}/{number}{}", unit.symbol());
        Self::build(&input, count, number, unit)
    }

    fn build(input: &str, count: u64, number: u64, unit: Unit) -> Result<Rate, Error> {
        if count == 0 || count > MAX_COUNT {
            return Err(invalid(
                input,
                "COUNT must be a whole number from 1 to 10^12",
            ));
        }
        if number == 0 {
            return Err(invalid(input, "the PERIOD's number must be positive"));
        }
        let period_ns = number
            .checked_mul(unit.millis())
            .and_then(|ms| ms.checked_mul(NANOS_PER_MS))
            .ok_or_else(|| invalid(input, "the PERIOD is too long (at most about 584 years)"))?;
        Ok(Rate {
            count,
            number,
            unit,
            period_ns,
        })
    }

    /// The same period with another count (`20/min` → `38/min`).
    pub fn with_count(&self, count: u64) -> Result<Rate, Error> {
        Rate::new(count, self.number, self.unit)
    }

    /// How many are allowed per period.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The period.
    pub fn period(&self) -> Duration {
        Duration::from_nanos(self.period_ns)
    }

    /// The period in nanoseconds.
    pub fn period_ns(&self) -> u64 {
        self.period_ns
    }

    /// The emission interval T = PERIOD / COUNT in nanoseconds, rounded up so that a limit
    /// built on it never admits more than the rate (at least 1 ns).
    pub fn interval_ns(&self) -> u64 {
        self.period_ns.div_ceil(self.count).max(1)
    }
}

fn invalid(input: &str, reason: &str) -> Error {
    Error::InvalidRate {
        input: input.to_string(),
        reason: reason.to_string(),
    }
}

/// Parses a whole number made only of ASCII digits; `None` on overflow or other characters.
fn parse_digits(s: &str) -> Option<Result<u64, ()>> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.parse::<u64>().map_err(|_| ()))
}

impl FromStr for Rate {
    type Err = Error;

    fn from_str(input: &str) -> Result<Rate, Error> {
        let expected = |what: &str| invalid(input, &format!("{what}; expected {EXPECTED}"));
        let Some((count_text, period_text)) = input.split_once('/') else {
            return Err(expected("no '/' between COUNT and PERIOD"));
        };
        let count = match parse_digits(count_text) {
            None => {
                return Err(expected(&format!(
                    "COUNT {count_text:?} is not a whole number"
                )));
            }
            Some(Err(())) => return Err(invalid(input, "COUNT is larger than 10^12")),
            Some(Ok(n)) => n,
        };
        let split = period_text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(period_text.len());
        let (number_text, unit_text) = period_text.split_at(split);
        let number = if number_text.is_empty() {
            1
        } else {
            match parse_digits(number_text) {
                Some(Ok(n)) => n,
                _ => {
                    return Err(invalid(
                        input,
                        "the PERIOD is too long (at most about 584 years)",
                    ));
                }
            }
        };
        let Some(unit) = Unit::from_symbol(unit_text) else {
            let what = if unit_text.is_empty() {
                "PERIOD has no unit".to_string()
            } else {
                format!("unknown unit {unit_text:?}")
            };
            return Err(expected(&what));
        };
        Self::build(input, count, number, unit)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.number == 1 {
            write!(f, "{}/{}", self.count, self.unit.symbol())
        } else {
            write!(f, "{}/{}{}", self.count, self.number, self.unit.symbol())
        }
    }
}

impl PartialEq for Rate {
    fn eq(&self, other: &Rate) -> bool {
        self.count == other.count && self.period_ns == other.period_ns
    }
}

impl Eq for Rate {}

impl std::hash::Hash for Rate {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.count.hash(state);
        self.period_ns.hash(state);
    }
}

impl serde::Serialize for Rate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Rate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Rate, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(s: &str) -> Rate {
        match s.parse() {
            Ok(r) => r,
            Err(e) => panic!("{s} should parse: {e}"),
        }
    }

    #[test]
    fn contract_examples_parse() {
        let cases = [
            ("5/60s", 5, 60_000),
            ("1/3600s", 1, 3_600_000),
            ("100/10s", 100, 10_000),
            ("20/min", 20, 60_000),
            ("1000/1h", 1000, 3_600_000),
            ("10/500ms", 10, 500),
            ("3/second", 3, 1_000),
            ("7/2days", 7, 172_800_000),
            ("1/hr", 1, 3_600_000),
            ("1000000000000/d", MAX_COUNT, 86_400_000),
        ];
        for (text, count, ms) in cases {
            let r = rate(text);
            assert_eq!(r.count(), count, "{text}");
            assert_eq!(r.period(), Duration::from_millis(ms), "{text}");
        }
    }

    #[test]
    fn rejected_forms_quote_the_input() {
        for bad in [
            "0/1s",
            "5/0s",
            "-1/s",
            "5/",
            "5/60x",
            "abc",
            "",
            "/s",
            "5",
            "5/s/",
            "1e3/s",
            "+5/s",
            " 5/s",
            "5/s ",
            "5 /s",
            "5/S",
            "5/-1s",
            "5/1.5s",
            "1000000000001/s",
            "99999999999999999999999/s",
            "5/99999999999999999999999s",
            "5/999999999999d",
        ] {
            let err = bad.parse::<Rate>().expect_err(bad);
            let text = err.to_string();
            assert!(text.contains(&format!("{bad:?}")), "{bad}: {text}");
            assert_eq!(err.code(), "invalid_rate");
        }
    }

    #[test]
    fn display_is_canonical_and_round_trips() {
        assert_eq!(rate("3/second").to_string(), "3/s");
        assert_eq!(rate("20/minutes").to_string(), "20/min");
        assert_eq!(rate("5/60s").to_string(), "5/60s");
        assert_eq!(rate("5/1s").to_string(), "5/s");
        assert_eq!(rate("20/min"), rate("20/60s"));
        assert_ne!(rate("20/min"), rate("21/60s"));
    }

    #[test]
    fn interval_rounds_up() {
        assert_eq!(rate("3/s").interval_ns(), 333_333_334);
        assert_eq!(rate("100/60s").interval_ns(), 600_000_000);
        assert_eq!(rate("1000000000000/ms").interval_ns(), 1);
    }
}
