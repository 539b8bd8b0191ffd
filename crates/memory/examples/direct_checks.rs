//! N direct checks with tollgate or with governor 0.10, for counting instructions per check
//! under callgrind (`scripts/bench/callgrind-direct.sh`), which stays repeatable on a busy
//! machine where wall-clock benchmarks do not.
//!
//! Usage: `direct_checks <tollgate_check|tollgate_admit|governor> <allow|deny> <N>`, or
//! `direct_checks time <allow|deny>`: the fastest of many short batches of each, interleaved,
//! in ns per check. A batch lasts tens of microseconds, so on a busy machine many batches
//! still run undisturbed, and the minimum is close to what a quiet machine measures.
//! The quotas are those of `benches/vs_governor.rs`: 10^9/s (every check admitted) or 1/h with
//! its single token spent first (every check denied). Run it with N and with 0 and divide the
//! difference in instructions by N: set-up and teardown cancel out.

use std::hint::black_box;
use std::num::NonZeroU32;
use std::process::ExitCode;
use std::time::Instant;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tollgate_core::{Limit, Rate};
use tollgate_memory::DirectLimiter;

fn usage(problem: &str) -> ExitCode {
    eprintln!(
        "{problem}\nusage: direct_checks <tollgate_check|tollgate_admit|governor> <allow|deny> <N>\n       \
         direct_checks time <allow|deny>"
    );
    ExitCode::from(2)
}

/// The same quota for both libraries: 10^9/s for `allow`, 1/h for `deny`.
fn quota(mode: &str) -> Option<(Limit, Quota)> {
    let (rate, per_second) = match mode {
        "allow" => ("1000000000/s", true),
        "deny" => ("1/h", false),
        _ => return None,
    };
    let rate: Rate = rate.parse().ok()?;
    let quota = if per_second {
        Quota::per_second(NonZeroU32::new(1_000_000_000)?)
    } else {
        Quota::per_hour(NonZeroU32::new(1)?)
    };
    Some((Limit::gcra(rate), quota))
}

/// Kept out of line so that callgrind can attribute the loop (`--toggle-collect`).
#[inline(never)]
fn run_tollgate_check(limiter: &DirectLimiter, n: u64) -> u64 {
    let mut allowed = 0;
    for _ in 0..n {
        if black_box(limiter.check(black_box(1))).is_ok_and(|d| d.allowed) {
            allowed += 1;
        }
    }
    allowed
}

#[inline(never)]
fn run_tollgate_admit(limiter: &DirectLimiter, n: u64) -> u64 {
    let mut allowed = 0;
    for _ in 0..n {
        if black_box(limiter.admit(black_box(1))).is_ok_and(|a| a.is_admitted()) {
            allowed += 1;
        }
    }
    allowed
}

#[inline(never)]
fn run_governor(limiter: &DefaultDirectRateLimiter, n: u64) -> u64 {
    let mut allowed = 0;
    for _ in 0..n {
        if black_box(limiter.check()).is_ok() {
            allowed += 1;
        }
    }
    allowed
}

/// Checks per timed batch, and batches per limiter.
const BATCH: u64 = 2_000;
const BATCHES: usize = 3_000;

/// Prints the fastest batch of each limiter, in ns per check.
fn time_all(limit: Limit, quota: Quota, deny: bool) -> ExitCode {
    let tollgate = DirectLimiter::new(limit);
    let governor: DefaultDirectRateLimiter = RateLimiter::direct(quota);
    if deny && !(tollgate.admit(1).is_ok_and(|a| a.is_admitted()) && governor.check().is_ok()) {
        return usage("the first check was not admitted");
    }
    let runs: [(&str, &dyn Fn() -> u64); 3] = [
        ("tollgate_check", &|| run_tollgate_check(&tollgate, BATCH)),
        ("tollgate_admit", &|| run_tollgate_admit(&tollgate, BATCH)),
        ("governor", &|| run_governor(&governor, BATCH)),
    ];
    let mut best = [f64::INFINITY; 3];
    for _ in 0..BATCHES {
        for ((_, run), best) in runs.iter().zip(&mut best) {
            let start = Instant::now();
            black_box(run());
            *best = best.min(start.elapsed().as_nanos() as f64 / BATCH as f64);
        }
    }
    for ((name, _), best) in runs.iter().zip(best) {
        println!("{name:<16} {best:6.2} ns/check (fastest of {BATCHES} batches of {BATCH})");
    }
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [time, mode] = args.as_slice()
        && time == "time"
    {
        let Some((limit, quota)) = quota(mode) else {
            return usage(&format!("the mode must be allow or deny, got {mode:?}"));
        };
        return time_all(limit, quota, mode == "deny");
    }
    let [which, mode, n] = args.as_slice() else {
        return usage("expected 3 arguments");
    };
    let Ok(n) = n.parse::<u64>() else {
        return usage(&format!("N must be a whole number, got {n:?}"));
    };
    let Some((limit, quota)) = quota(mode) else {
        return usage(&format!("the mode must be allow or deny, got {mode:?}"));
    };
    let deny = mode == "deny";
    let allowed = match which.as_str() {
        "tollgate_check" | "tollgate_admit" => {
            let limiter = DirectLimiter::new(limit);
            if deny && !limiter.admit(1).is_ok_and(|a| a.is_admitted()) {
                return usage("tollgate did not admit the first check");
            }
            if which == "tollgate_check" {
                run_tollgate_check(&limiter, n)
            } else {
                run_tollgate_admit(&limiter, n)
            }
        }
        "governor" => {
            let limiter: DefaultDirectRateLimiter = RateLimiter::direct(quota);
            if deny && limiter.check().is_err() {
                return usage("governor did not admit the first check");
            }
            run_governor(&limiter, n)
        }
        _ => return usage(&format!("unknown limiter {which:?}")),
    };
    let expected = if deny { 0 } else { n };
    if allowed != expected {
        eprintln!("{which} {mode}: {allowed} of {n} checks admitted, expected {expected}");
        return ExitCode::FAILURE;
    }
    println!("{which} {mode}: {allowed} of {n} admitted");
    ExitCode::SUCCESS
}
