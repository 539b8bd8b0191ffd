//! The Redis store benchmark of `scripts/bench/redis.sh` (BENCHMARKS.md, "Redis store"):
//! closed-loop checks against a loopback Redis, from one process.
//!
//! `run --store tollgate`: `--concurrency` tokio tasks share one [`RedisStore`] (one
//! multiplexed connection, so the checks in flight are pipelined on it). Each task checks a
//! key drawn at random from `--keys` keys (`key:000000000042`, the form redis-benchmark's
//! `__rand_int__` gives), waits for the decision, records its latency and checks the next,
//! until `--duration` has passed. The limit is GCRA `--rate` with `--burst`.
//!
//! `run --store limitador` (with `--features limitador`): the same loop on limitador's
//! `AsyncRateLimiter` over its `AsyncRedisStorage`, with one limit of the same rate (limitador
//! counts fixed windows: `COUNT` per `PERIOD` seconds) whose variable is the key.
//!
//! `probe`: connects a store (which loads its scripts), watches one check with `MONITOR`, and
//! prints the exact `EVALSHA` the store sent (SHA, key and ARGV), so that redis-benchmark can
//! replay the same script with the same arguments. It also checks that the GCRA script's text,
//! `base.lua` + `common.lua` + `gcra.lua` as the store builds it, hashes to that SHA (`--script-out` writes
//! the text).
//!
//! Loopback only; every run is bounded (at most 600 s). Each command prints one JSON object.
#![deny(missing_docs)]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use clap::{Parser, Subcommand, ValueEnum};
use hdrhistogram::Histogram;
use tollgate_core::{Algorithm, Limit};
use tollgate_redis::{RedisConfig, RedisStore, Topology};

/// The longest run allowed, in seconds.
const MAX_DURATION_SECS: f64 = 600.0;
/// Latencies above this (in ns) are recorded as this.
const MAX_LATENCY_NS: u64 = 60_000_000_000;

/// The GCRA script exactly as tollgate-redis builds it (`scripts.rs`: base.lua, common.lua and
/// gcra.lua, joined by newlines).
const GCRA_SCRIPT: &str = concat!(
    include_str!("../../../crates/redis/src/scripts/base.lua"),
    "\n",
    include_str!("../../../crates/redis/src/scripts/common.lua"),
    "\n",
    include_str!("../../../crates/redis/src/scripts/gcra.lua")
);

/// Benchmarks Redis-backed rate limiting on a loopback Redis.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Prints the EVALSHA (SHA, key, ARGV) the store sends for one check.
    Probe(ProbeArgs),
    /// Runs closed-loop checks and prints throughput and latency.
    Run(RunArgs),
}

/// What both commands share.
#[derive(clap::Args, Debug)]
struct Common {
    /// The Redis to use, on a loopback address (`redis://127.0.0.1:PORT/0`).
    #[arg(long)]
    url: String,
    /// The limit's rate, in tollgate's grammar (COUNT/PERIOD).
    #[arg(long, default_value = "1000/min")]
    rate: String,
    /// The GCRA burst.
    #[arg(long, default_value_t = 200)]
    burst: u64,
}

#[derive(clap::Args, Debug)]
struct ProbeArgs {
    #[command(flatten)]
    common: Common,
    /// Also write the GCRA script's text here (what `SCRIPT LOAD` got).
    #[arg(long)]
    script_out: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Backend {
    /// tollgate's Redis store.
    Tollgate,
    /// limitador's AsyncRedisStorage (needs `--features limitador`).
    Limitador,
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    #[command(flatten)]
    common: Common,
    /// Whose Redis limiter to run.
    #[arg(long, value_enum, default_value_t = Backend::Tollgate)]
    store: Backend,
    /// Checks in flight at once (closed-loop tasks).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    concurrency: u32,
    /// How long to measure, in seconds (at most 600).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Unmeasured checks before, in seconds (at most 60).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// How many distinct keys to draw from.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    keys: u32,
    /// Tokio worker threads [default: the CPUs this process may use].
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
    workers: Option<u16>,
}

/// The Redis URL's address, refused unless it is loopback.
fn loopback(url: &str) -> anyhow::Result<RedisConfig> {
    let config = RedisConfig::parse(url).map_err(|e| anyhow!("--url: {e}"))?;
    let Topology::Standalone { node, .. } = config.url.topology() else {
        bail!("--url must name one Redis server");
    };
    let host = node.host.trim_start_matches('[').trim_end_matches(']');
    let is_loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !is_loopback || config.url.tls() {
        bail!("--url must be redis:// on a loopback address; this benchmark only targets loopback");
    }
    Ok(config)
}

fn gcra_limit(common: &Common) -> anyhow::Result<Limit> {
    let rate = common
        .rate
        .parse()
        .map_err(|e| anyhow!("--rate {}: {e}", common.rate))?;
    Limit::new(rate, Algorithm::Gcra, Some(common.burst)).map_err(|e| anyhow!("the limit: {e}"))
}

/// The i-th key, in the form redis-benchmark gives `key:__rand_int__` (12 digits).
fn key_name(i: u32) -> String {
    format!("key:{i:012}")
}

// --- probe ---------------------------------------------------------------------------------

/// The arguments of a `MONITOR` line: `1700000000.000000 [0 127.0.0.1:5555] "EVALSHA" "…"`.
fn monitor_args(line: &str) -> Option<Vec<String>> {
    let rest = &line[line.find("] ")? + 2..];
    let mut args = Vec::new();
    let mut chars = rest.chars();
    loop {
        match chars.next() {
            None => return Some(args),
            Some(' ') => continue,
            Some('"') => {}
            Some(_) => return None,
        }
        let mut arg = String::new();
        loop {
            match chars.next()? {
                '"' => break,
                '\\' => match chars.next()? {
                    'n' => arg.push('\n'),
                    'r' => arg.push('\r'),
                    't' => arg.push('\t'),
                    'x' => {
                        let hex: String = [chars.next()?, chars.next()?].iter().collect();
                        arg.push(char::from(u8::from_str_radix(&hex, 16).ok()?));
                    }
                    other => arg.push(other),
                },
                c => arg.push(c),
            }
        }
        args.push(arg);
    }
}

async fn probe(args: ProbeArgs) -> anyhow::Result<serde_json::Value> {
    let config = loopback(&args.common.url)?;
    let limit = gcra_limit(&args.common)?;
    let Topology::Standalone { node, .. } = config.url.topology() else {
        bail!("--url must name one Redis server");
    };
    let host = node.host.trim_start_matches('[').trim_end_matches(']');
    let addr: SocketAddr = (host, node.port)
        .to_socket_addrs()
        .context("the Redis address")?
        .next()
        .ok_or_else(|| anyhow!("{host} has no address"))?;
    let store = RedisStore::connect(&config)
        .await
        .context("cannot connect the store")?;

    // MONITOR on a connection of its own: it echoes every command the server runs.
    let mut monitor = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .with_context(|| format!("cannot connect to {addr}"))?;
    monitor.set_read_timeout(Some(Duration::from_secs(2)))?;
    monitor.write_all(b"MONITOR\r\n")?;
    let mut reader = BufReader::new(monitor.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    if !line.starts_with("+OK") {
        bail!("MONITOR answered {line:?}");
    }

    let key = key_name(42);
    let decision = store
        .check(&key, &limit, 1)
        .await
        .context("the probe check")?;

    let mut sent = None;
    for _ in 0..1000 {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        if line.contains("\"EVALSHA\"") || line.contains("\"evalsha\"") {
            sent = monitor_args(line.trim_end());
            break;
        }
    }
    drop(reader);
    drop(monitor);
    let sent = sent.ok_or_else(|| anyhow!("MONITOR showed no EVALSHA for the check"))?;
    let [verb, sha, numkeys, redis_key, argv @ ..] = sent.as_slice() else {
        bail!("unexpected EVALSHA: {sent:?}");
    };
    if !verb.eq_ignore_ascii_case("evalsha") || numkeys != "1" {
        bail!("unexpected EVALSHA: {sent:?}");
    }
    let text_sha = redis::Script::new(GCRA_SCRIPT).get_hash().to_string();
    if &text_sha != sha {
        bail!(
            "the store ran script {sha}, but base.lua + common.lua + gcra.lua hash to {text_sha}: the \
             script text here is out of date"
        );
    }
    if let Some(path) = &args.script_out {
        std::fs::write(path, GCRA_SCRIPT)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let key_pattern = redis_key.replace(&key, "key:__rand_int__");
    if key_pattern == *redis_key {
        bail!("the Redis key {redis_key:?} does not contain {key:?}");
    }
    Ok(serde_json::json!({
        "sha": sha,
        "numkeys": 1,
        "key": redis_key,
        "key_pattern": key_pattern,
        "argv": argv,
        "script_bytes": GCRA_SCRIPT.len(),
        "rate": args.common.rate,
        "burst": args.common.burst,
        "decision": {
            "allowed": decision.allowed,
            "limit": decision.limit,
            "remaining": decision.remaining,
            "retry_after_ms": decision.retry_after_ms,
            "reset_after_ms": decision.reset_after_ms,
        },
    }))
}

// --- run -----------------------------------------------------------------------------------

/// What a run checks with.
enum Limiter {
    Tollgate {
        store: RedisStore,
        limit: Limit,
    },
    #[cfg(feature = "limitador")]
    Limitador {
        limiter: limitador::AsyncRateLimiter,
        namespace: limitador::limit::Namespace,
    },
}

impl Limiter {
    async fn connect(args: &RunArgs) -> anyhow::Result<Limiter> {
        let config = loopback(&args.common.url)?;
        match args.store {
            Backend::Tollgate => Ok(Limiter::Tollgate {
                store: RedisStore::connect(&config)
                    .await
                    .context("cannot connect tollgate's store")?,
                limit: gcra_limit(&args.common)?,
            }),
            #[cfg(feature = "limitador")]
            Backend::Limitador => {
                use limitador::limit::{Expression, Predicate};
                let limit = gcra_limit(&args.common)?;
                let period_s = limit.rate().period_ns() / 1_000_000_000;
                if period_s == 0 || limit.rate().period_ns() % 1_000_000_000 != 0 {
                    bail!("limitador counts whole seconds: --rate needs a period of whole seconds");
                }
                let storage = limitador::storage::redis::AsyncRedisStorage::new(&args.common.url)
                    .await
                    .context("cannot connect limitador's storage")?;
                let limiter = limitador::AsyncRateLimiter::new_with_storage(Box::new(storage));
                let variable = Expression::try_from("key")
                    .map_err(|e| anyhow!("limitador's variable: {e:?}"))?;
                limiter.add_limit(limitador::limit::Limit::new(
                    "bench",
                    limit.rate().count(),
                    period_s,
                    Vec::<Predicate>::new(),
                    [variable],
                ));
                Ok(Limiter::Limitador {
                    limiter,
                    namespace: "bench".into(),
                })
            }
            #[cfg(not(feature = "limitador"))]
            Backend::Limitador => {
                bail!("this build has no limitador: build with --features limitador")
            }
        }
    }

    /// One check of cost 1: whether it was allowed.
    async fn check(&self, key: &str) -> Result<bool, String> {
        match self {
            Limiter::Tollgate { store, limit } => store
                .check(key, limit, 1)
                .await
                .map(|d| d.allowed)
                .map_err(|e| e.to_string()),
            #[cfg(feature = "limitador")]
            Limiter::Limitador { limiter, namespace } => {
                let values =
                    std::collections::HashMap::from([("key".to_string(), key.to_string())]);
                let ctx = limitador::limit::Context::from(values);
                limiter
                    .check_rate_limited_and_update(namespace, &ctx, 1)
                    .await
                    .map(|r| !r.limited)
                    .map_err(|e| e.to_string())
            }
        }
    }
}

/// What one task saw.
struct Tally {
    latency_ns: Histogram<u64>,
    allowed: u64,
    denied: u64,
    errors: u64,
    first_error: Option<String>,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            latency_ns: Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3)
                .expect("valid histogram bounds"),
            allowed: 0,
            denied: 0,
            errors: 0,
            first_error: None,
        }
    }

    fn merge(&mut self, other: Tally) {
        // Both histograms have the same bounds, so adding cannot fail; saturate if it did.
        if self.latency_ns.add(&other.latency_ns).is_err() {
            for v in other.latency_ns.iter_recorded() {
                self.latency_ns
                    .saturating_record_n(v.value_iterated_to(), v.count_at_value());
            }
        }
        self.allowed += other.allowed;
        self.denied += other.denied;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    fn checks(&self) -> u64 {
        self.allowed + self.denied + self.errors
    }
}

/// A small xorshift generator: enough to spread keys, no dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// One closed-loop task: check, wait, record, repeat until `deadline`.
async fn task(
    id: u32,
    limiter: Arc<Limiter>,
    keys: Arc<Vec<String>>,
    deadline: Instant,
    record: bool,
) -> Tally {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ (u64::from(id) + 1).wrapping_mul(0x2545_F491));
    let mut tally = Tally::new();
    let n = keys.len() as u64;
    while Instant::now() < deadline {
        // The remainder is below keys.len(), so it fits in usize.
        let key = &keys[usize::try_from(rng.next() % n).unwrap_or(0)];
        let start = Instant::now();
        let result = limiter.check(key).await;
        if record {
            let ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
            tally
                .latency_ns
                .saturating_record(ns.clamp(1, MAX_LATENCY_NS));
        }
        match result {
            Ok(true) => tally.allowed += 1,
            Ok(false) => tally.denied += 1,
            Err(e) => {
                tally.errors += 1;
                if tally.first_error.is_none() {
                    tally.first_error = Some(e);
                }
            }
        }
    }
    tally
}

/// Runs `concurrency` tasks until `secs` have passed; returns what they saw and how long.
async fn phase(
    args: &RunArgs,
    limiter: &Arc<Limiter>,
    keys: &Arc<Vec<String>>,
    secs: f64,
    record: bool,
) -> anyhow::Result<(Tally, f64)> {
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let mut tasks = tokio::task::JoinSet::new();
    for id in 0..args.concurrency {
        tasks.spawn(task(id, limiter.clone(), keys.clone(), deadline, record));
    }
    let mut total = Tally::new();
    while let Some(done) = tasks.join_next().await {
        total.merge(done.context("a task panicked")?);
    }
    Ok((total, start.elapsed().as_secs_f64()))
}

async fn run(args: RunArgs) -> anyhow::Result<serde_json::Value> {
    if !(args.duration > 0.0 && args.duration <= MAX_DURATION_SECS) {
        bail!("--duration must be more than 0 and at most {MAX_DURATION_SECS} seconds");
    }
    if !(0.0..=60.0).contains(&args.warmup) {
        bail!("--warmup must be 0 to 60 seconds");
    }
    let limiter = Arc::new(Limiter::connect(&args).await?);
    let keys: Arc<Vec<String>> = Arc::new((0..args.keys).map(key_name).collect());
    if args.warmup > 0.0 {
        phase(&args, &limiter, &keys, args.warmup, false).await?;
    }
    let (total, elapsed) = phase(&args, &limiter, &keys, args.duration, true).await?;
    let checks = total.checks();
    if checks > 0 && total.errors == checks {
        bail!(
            "every check failed ({checks}); the first error: {}",
            total.first_error.unwrap_or_default()
        );
    }
    let h = &total.latency_ns;
    let us = |ns: u64| (ns as f64 / 100.0).round() / 10.0;
    Ok(serde_json::json!({
        "store": match args.store {
            Backend::Tollgate => "tollgate",
            Backend::Limitador => "limitador",
        },
        "concurrency": args.concurrency,
        "keys": args.keys,
        "rate": args.common.rate,
        "burst": args.common.burst,
        "workers": tokio::runtime::Handle::current().metrics().num_workers(),
        "checks": checks,
        "allowed": total.allowed,
        "denied": total.denied,
        "errors": total.errors,
        "first_error": total.first_error,
        "elapsed_s": (elapsed * 1000.0).round() / 1000.0,
        "checks_per_sec": (checks as f64 / elapsed).round(),
        "latency_us": {
            "p50": us(h.value_at_quantile(0.50)),
            "p90": us(h.value_at_quantile(0.90)),
            "p99": us(h.value_at_quantile(0.99)),
            "p999": us(h.value_at_quantile(0.999)),
            "max": us(h.max()),
            "mean": (h.mean() / 100.0).round() / 10.0,
        },
    }))
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Command::Run(RunArgs {
        workers: Some(n), ..
    }) = &args.command
    {
        builder.worker_threads(usize::from(*n));
    }
    let outcome = builder
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .and_then(|runtime| {
            runtime.block_on(async {
                match args.command {
                    Command::Probe(a) => probe(a).await,
                    Command::Run(a) => run(a).await,
                }
            })
        });
    match outcome {
        Ok(report) => {
            println!("{report}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitor_lines_parse() {
        let line = r#"1700000000.123456 [0 127.0.0.1:5555] "EVALSHA" "abc" "1" "tollgate:{key:000000000042}:g" "60000" "200" "1""#;
        assert_eq!(
            monitor_args(line),
            Some(
                [
                    "EVALSHA",
                    "abc",
                    "1",
                    "tollgate:{key:000000000042}:g",
                    "60000",
                    "200",
                    "1"
                ]
                .map(String::from)
                .to_vec()
            )
        );
        assert_eq!(
            monitor_args(r#"1.0 [0 lua] "SET" "a\"b" "\x41""#),
            Some(["SET", "a\"b", "A"].map(String::from).to_vec())
        );
        assert_eq!(monitor_args("garbage"), None);
    }

    #[test]
    fn keys_look_like_redis_benchmarks() {
        assert_eq!(key_name(42), "key:000000000042");
    }

    #[test]
    fn only_loopback_urls() {
        assert!(loopback("redis://127.0.0.1:6379/0").is_ok());
        assert!(loopback("redis://localhost:6379").is_ok());
        assert!(loopback("redis://10.0.0.1:6379").is_err());
        assert!(loopback("rediss://127.0.0.1:6379").is_err());
    }
}
