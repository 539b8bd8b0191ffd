//! The Lua scripts, embedded at build time, and the numbers each limit hands them.
//!
//! Each operation is one file under `scripts/` with a `-- KEYS[..] ARGV[..]` header;
//! `base.lua` (the clock and exact integer helpers) and `common.lua` (the three algorithms)
//! are prepended to every check script, so a single check and a batch decide with the same
//! code. Scripts run by EVALSHA;
//! on NOSCRIPT (a restarted, flushed or newly promoted Redis) the same call is sent once more
//! as EVAL with the script's text, which runs it and caches it again. EVAL goes where the
//! EVALSHA went: on a cluster, to the node that owns the keys' slot, so a reload needs no
//! other node to be up (a `SCRIPT LOAD` would go to every node).

use std::sync::LazyLock;

use redis::aio::ConnectionLike;
use redis::{Cmd, FromRedisValue, RedisResult, Script, ToRedisArgs};
use tollgate_core::{Error, Family, Limit};

/// A script: its text and its SHA1.
pub(crate) struct Lua {
    source: &'static str,
    sha1: String,
}

impl Lua {
    pub(crate) fn new(source: &'static str) -> Lua {
        Lua {
            source,
            sha1: Script::new(source).get_hash().to_string(),
        }
    }

    /// `SCRIPT LOAD` of this script (on a cluster, redis-rs sends it to every primary).
    pub fn load_cmd(&self) -> Cmd {
        let mut cmd = redis::cmd("SCRIPT");
        cmd.arg("LOAD").arg(self.source);
        cmd
    }

    /// A call of this script, without keys or arguments yet.
    pub fn call(&self) -> Call<'_> {
        Call {
            lua: self,
            keys: Vec::new(),
            args: Vec::new(),
        }
    }
}

/// A script call being built: its keys and arguments.
pub(crate) struct Call<'a> {
    lua: &'a Lua,
    keys: Vec<String>,
    args: Vec<Vec<u8>>,
}

impl Call<'_> {
    /// Adds a key (`KEYS[n]`).
    pub fn key(&mut self, key: String) -> &mut Self {
        self.keys.push(key);
        self
    }

    /// Adds an argument (`ARGV[n]`).
    pub fn arg(&mut self, arg: impl ToRedisArgs) -> &mut Self {
        self.args.extend(arg.to_redis_args());
        self
    }

    /// The keys so far.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    fn command(&self, verb: &str, script: &str) -> Cmd {
        let mut cmd = redis::cmd(verb);
        cmd.arg(script)
            .arg(self.keys.len())
            .arg(&self.keys)
            .arg(&self.args);
        cmd
    }

    /// Runs the call by EVALSHA, and by EVAL if Redis does not have the script.
    pub async fn invoke<T: FromRedisValue>(
        &self,
        conn: &mut impl ConnectionLike,
    ) -> RedisResult<T> {
        match self
            .command("EVALSHA", &self.lua.sha1)
            .query_async(conn)
            .await
        {
            Err(e) if e.code() == Some("NOSCRIPT") => {
                self.command("EVAL", self.lua.source)
                    .query_async(conn)
                    .await
            }
            other => other,
        }
    }
}

/// The scripts, hashed once.
pub(crate) struct Scripts {
    pub gcra: Lua,
    pub sliding_window: Lua,
    pub fixed_window: Lua,
    pub check_all: Lua,
    pub reset: Lua,
}

macro_rules! with_common {
    ($file:literal) => {
        concat!(
            include_str!("scripts/base.lua"),
            "\n",
            include_str!("scripts/common.lua"),
            "\n",
            include_str!(concat!("scripts/", $file))
        )
    };
}

pub(crate) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    gcra: Lua::new(with_common!("gcra.lua")),
    sliding_window: Lua::new(with_common!("sliding_window.lua")),
    fixed_window: Lua::new(with_common!("fixed_window.lua")),
    check_all: Lua::new(with_common!("check_all.lua")),
    reset: Lua::new(include_str!("scripts/reset.lua")),
});

impl Scripts {
    /// The single-check script of a family.
    pub fn check(&self, family: Family) -> &Lua {
        match family {
            Family::Gcra => &self.gcra,
            Family::SlidingWindow => &self.sliding_window,
            Family::FixedWindow => &self.fixed_window,
        }
    }

    /// Every script, to load them all when a store connects.
    pub fn all(&self) -> [&Lua; 5] {
        [
            &self.gcra,
            &self.sliding_window,
            &self.fixed_window,
            &self.check_all,
            &self.reset,
        ]
    }

    /// Loads every script on `conn` (on a cluster, on every primary).
    pub async fn load_all(&self, conn: &mut impl ConnectionLike) -> RedisResult<()> {
        for lua in self.all() {
            let _: String = lua.load_cmd().query_async(conn).await?;
        }
        Ok(())
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
        let hashes: std::collections::HashSet<_> =
            SCRIPTS.all().iter().map(|s| s.sha1.clone()).collect();
        assert_eq!(hashes.len(), 5);
    }
}
