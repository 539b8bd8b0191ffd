//! The Lua scripts, embedded at build time, and the numbers each limit hands them.
//!
//! Each operation is one file under `scripts/` with a `-- KEYS[..] ARGV[..]` header;
//! `common.lua` (the three algorithms and exact integer helpers) is prepended to every check
//! script, so a single check and a batch decide with the same code. Scripts run by EVALSHA;
//! on NOSCRIPT (a restarted or flushed Redis) [`redis::Script`] loads the script and runs it
//! again.

use std::sync::LazyLock;

use redis::Script;
use tollgate_core::{Error, Family, Limit};

/// The scripts, hashed once.
pub(crate) struct Scripts {
    pub gcra: Script,
    pub sliding_window: Script,
    pub fixed_window: Script,
    pub check_all: Script,
    pub reset: Script,
}

macro_rules! with_common {
    ($file:literal) => {
        concat!(
            include_str!("scripts/common.lua"),
            "\n",
            include_str!(concat!("scripts/", $file))
        )
    };
}

pub(crate) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    gcra: Script::new(with_common!("gcra.lua")),
    sliding_window: Script::new(with_common!("sliding_window.lua")),
    fixed_window: Script::new(with_common!("fixed_window.lua")),
    check_all: Script::new(with_common!("check_all.lua")),
    reset: Script::new(include_str!("scripts/reset.lua")),
});

impl Scripts {
    /// The single-check script of a family.
    pub fn check(&self, family: Family) -> &Script {
        match family {
            Family::Gcra => &self.gcra,
            Family::SlidingWindow => &self.sliding_window,
            Family::FixedWindow => &self.fixed_window,
        }
    }

    /// Every script, to load them all when a store connects.
    pub fn all(&self) -> [&Script; 5] {
        [
            &self.gcra,
            &self.sliding_window,
            &self.fixed_window,
            &self.check_all,
            &self.reset,
        ]
    }
}

/// The longest span, in µs, a limit may need the scripts to add to the time: 2^52 µs, about
/// 142 years. With times below 2^52 µs (until the year 2112) every sum stays below 2^53, where
/// Lua's doubles count exactly.
pub const MAX_SPAN_US: u64 = 1 << 52;

/// What a script needs to know of a limit: its family's letter and two numbers, (T in µs,
/// BURST) for GCRA or (PERIOD in µs, COUNT) for the windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Params {
    pub family: Family,
    pub a: u64,
    pub b: u64,
}

impl Params {
    /// The letter `check_all.lua` dispatches on (the key suffix, too).
    pub fn letter(&self) -> &'static str {
        match self.family {
            Family::Gcra => "g",
            Family::SlidingWindow => "s",
            Family::FixedWindow => "f",
        }
    }
}

/// A limit's parameters at µs resolution. T is rounded up to whole microseconds (at least 1),
/// so the Redis store never admits more than the rate; a rate faster than one per µs is
/// enforced as one per µs.
pub(crate) fn params(limit: &Limit) -> Result<Params, Error> {
    let family = limit.algorithm().family();
    match family {
        Family::Gcra => {
            let t = limit.interval_ns().div_ceil(1000).max(1);
            let burst = limit.burst();
            if t.checked_mul(burst).is_none_or(|tau| tau > MAX_SPAN_US) {
                return Err(Error::InvalidBurst {
                    burst,
                    reason: format!(
                        "the Redis store needs BURST × PERIOD/COUNT (in whole µs) under 2^52 µs \
                         (about 142 years); {} allows {} µs",
                        limit.rate(),
                        t.saturating_mul(burst)
                    ),
                });
            }
            Ok(Params {
                family,
                a: t,
                b: burst,
            })
        }
        Family::SlidingWindow | Family::FixedWindow => {
            let period = limit.rate().period_ns().div_ceil(1000);
            if period > MAX_SPAN_US {
                return Err(Error::InvalidRate {
                    input: limit.rate().to_string(),
                    reason: "the Redis store needs a PERIOD under 2^52 µs (about 142 years)"
                        .to_string(),
                });
            }
            Ok(Params {
                family,
                a: period,
                b: limit.rate().count(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_core::Algorithm;

    fn limit(rate: &str, algorithm: Algorithm, burst: Option<u64>) -> Limit {
        Limit::new(rate.parse().expect("rate"), algorithm, burst).expect("limit")
    }

    #[test]
    fn interval_rounds_up_to_whole_microseconds() {
        let p = params(&limit("3/s", Algorithm::Gcra, None)).expect("fits");
        assert_eq!((p.a, p.b, p.letter()), (333_334, 3, "g"));
        let p = params(&limit("1000000000000/ms", Algorithm::Gcra, Some(5))).expect("fits");
        assert_eq!((p.a, p.b), (1, 5), "faster than 1/µs is enforced as 1/µs");
        let p = params(&limit("10/500ms", Algorithm::SlidingWindow, None)).expect("fits");
        assert_eq!((p.a, p.b, p.letter()), (500_000, 10, "s"));
        let p = params(&limit("7/2d", Algorithm::FixedWindow, None)).expect("fits");
        assert_eq!((p.a, p.b, p.letter()), (172_800_000_000, 7, "f"));
    }

    #[test]
    fn spans_beyond_exact_doubles_are_refused() {
        let err = params(&limit("1/d", Algorithm::Gcra, Some(53_000))).expect_err("over 142 years");
        assert_eq!(err.code(), "invalid_burst");
        assert!(err.to_string().contains("142 years"), "{err}");
        let err =
            params(&limit("1/60000d", Algorithm::SlidingWindow, None)).expect_err("over 142 years");
        assert_eq!(err.code(), "invalid_rate");
    }

    #[test]
    fn every_script_is_distinct() {
        let hashes: std::collections::HashSet<_> = SCRIPTS
            .all()
            .iter()
            .map(|s| s.get_hash().to_string())
            .collect();
        assert_eq!(hashes.len(), 5);
    }
}
