//! tollgate's in-memory limiters against governor 0.10, side by side in one run.
//!
//! Every scenario is one criterion group holding a `tollgate` and a `governor` function, with
//! the same quota for both and `Throughput::Elements(1)`, so the report reads as ns/check and
//! checks/s. Both libraries use their default (quanta-based) clocks.
//!
//! Run: `cargo bench -p tollgate-memory --bench vs_governor`.

use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_main};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use tollgate_core::{Limit, Rate};
use tollgate_memory::{DirectLimiter, MemoryStore};

/// How many distinct keys the large keyed scenario cycles through.
const KEYS: usize = 100_000;

/// A quota so generous that every check in these benchmarks is admitted: 10^9 per second
/// (T = 1 ns, burst 10^9), the same for both libraries.
fn allow_quota() -> (Limit, Quota) {
    let rate: Rate = "1000000000/s".parse().expect("valid rate");
    let n = NonZeroU32::new(1_000_000_000).expect("non-zero");
    (Limit::gcra(rate), Quota::per_second(n))
}

/// A quota so tight that, once its single token is spent, every check is denied: 1 per hour.
fn deny_quota() -> (Limit, Quota) {
    let rate: Rate = "1/h".parse().expect("valid rate");
    let n = NonZeroU32::new(1).expect("non-zero");
    (Limit::gcra(rate), Quota::per_hour(n))
}

/// 1 per second with a burst of 100,000 (T = 1 s): never denies within a short run, and a key
/// revisited every few tens of milliseconds stays "limited" (its TAT runs ahead of the clock),
/// so tollgate keeps tracking all 100,000 keys instead of forgetting those back to full
/// capacity. This isolates the lookup cost from tollgate's forget-and-reinsert churn.
fn tracked_quota() -> (Limit, Quota) {
    let rate: Rate = "100000/100000s".parse().expect("valid rate");
    let quota = Quota::with_period(Duration::from_secs(1))
        .expect("non-zero period")
        .allow_burst(NonZeroU32::new(100_000).expect("non-zero"));
    (Limit::gcra(rate), quota)
}

fn keys() -> Vec<String> {
    (0..KEYS).map(|i| format!("user:{i}")).collect()
}

/// Scenario 1: a single check on a direct (unkeyed) limiter, allowed.
fn direct(c: &mut Criterion) {
    let (limit, quota) = allow_quota();
    let tollgate = DirectLimiter::new(limit);
    let governor: DefaultDirectRateLimiter = RateLimiter::direct(quota);
    let mut group = c.benchmark_group("direct");
    group.throughput(Throughput::Elements(1));
    group.bench_function("tollgate", |b| {
        b.iter(|| black_box(tollgate.check(black_box(1))))
    });
    // The verdict alone, as governor's `check` gives it.
    group.bench_function("tollgate_admit", |b| {
        b.iter(|| black_box(tollgate.admit(black_box(1))))
    });
    group.bench_function("governor", |b| b.iter(|| black_box(governor.check())));
    group.finish();
    assert!(
        tollgate.check(1).is_ok_and(|d| d.allowed),
        "tollgate should still admit"
    );
    assert!(governor.check().is_ok(), "governor should still admit");
}

/// Scenario 1, denying: the single token is spent before measuring, so every check is denied.
fn direct_denying(c: &mut Criterion) {
    let (limit, quota) = deny_quota();
    let tollgate = DirectLimiter::new(limit);
    let governor: DefaultDirectRateLimiter = RateLimiter::direct(quota);
    assert!(tollgate.check(1).is_ok_and(|d| d.allowed));
    assert!(governor.check().is_ok());
    let mut group = c.benchmark_group("direct_denying");
    group.throughput(Throughput::Elements(1));
    group.bench_function("tollgate", |b| {
        b.iter(|| black_box(tollgate.check(black_box(1))))
    });
    group.bench_function("tollgate_admit", |b| {
        b.iter(|| black_box(tollgate.admit(black_box(1))))
    });
    group.bench_function("governor", |b| b.iter(|| black_box(governor.check())));
    group.finish();
    assert!(
        tollgate.check(1).is_ok_and(|d| !d.allowed),
        "tollgate should deny"
    );
    assert!(governor.check().is_err(), "governor should deny");
}

/// Scenario 2: a keyed limiter, always the same key.
fn keyed_one_key(c: &mut Criterion) {
    let (limit, quota) = allow_quota();
    let store = MemoryStore::new();
    let governor: DefaultKeyedRateLimiter<String> = RateLimiter::keyed(quota);
    let key = String::from("key");
    assert!(store.check(&key, &limit, 1).is_ok_and(|d| d.allowed));
    assert!(governor.check_key(&key).is_ok());
    let mut group = c.benchmark_group("keyed_1_key");
    group.throughput(Throughput::Elements(1));
    group.bench_function("tollgate", |b| {
        b.iter(|| black_box(store.check(black_box(&key), &limit, 1)))
    });
    group.bench_function("governor", |b| {
        b.iter(|| black_box(governor.check_key(black_box(&key))))
    });
    group.finish();
}

/// Scenario 3: a keyed limiter over 100,000 distinct `String` keys, visited round-robin in the
/// same order by both; every key is checked once before measuring.
fn keyed_many_keys(c: &mut Criterion, name: &str, (limit, quota): (Limit, Quota)) {
    let keys = keys();
    let store = MemoryStore::new();
    let governor: DefaultKeyedRateLimiter<String> = RateLimiter::keyed(quota);
    for key in &keys {
        assert!(store.check(key, &limit, 1).is_ok_and(|d| d.allowed));
        assert!(governor.check_key(key).is_ok());
    }
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(1));
    let mut i = 0;
    group.bench_function("tollgate", |b| {
        b.iter(|| {
            let key = &keys[i];
            i = if i + 1 == KEYS { 0 } else { i + 1 };
            black_box(store.check(key, &limit, 1))
        })
    });
    let mut i = 0;
    group.bench_function("tollgate_admit", |b| {
        b.iter(|| {
            let key = &keys[i];
            i = if i + 1 == KEYS { 0 } else { i + 1 };
            black_box(store.admit(key, &limit, 1))
        })
    });
    let mut i = 0;
    group.bench_function("governor", |b| {
        b.iter(|| {
            let key = &keys[i];
            i = if i + 1 == KEYS { 0 } else { i + 1 };
            black_box(governor.check_key(key))
        })
    });
    group.finish();
    eprintln!(
        "{name}: tollgate tracks {} keys, governor {} keys after the run",
        store.len(),
        governor.len()
    );
}

fn keyed_100k_keys(c: &mut Criterion) {
    keyed_many_keys(c, "keyed_100k_keys", allow_quota());
}

fn keyed_100k_keys_tracked(c: &mut Criterion) {
    keyed_many_keys(c, "keyed_100k_keys_tracked", tracked_quota());
}

/// Runs `check` `iters` times on each of 2 threads released together by a barrier and
/// returns the wall time divided by 2: the time per check of the pair's combined throughput.
fn two_threads(iters: u64, check: &(dyn Fn() + Sync)) -> Duration {
    let barrier = Barrier::new(3);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    for _ in 0..iters {
                        check();
                    }
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        for w in workers {
            w.join().expect("worker thread panicked");
        }
        start.elapsed() / 2
    })
}

/// Scenario 4: 2 threads contending on one key of a keyed limiter.
fn contended_keyed(c: &mut Criterion) {
    let (limit, quota) = allow_quota();
    let store = MemoryStore::new();
    let governor: DefaultKeyedRateLimiter<String> = RateLimiter::keyed(quota);
    let key = String::from("key");
    assert!(store.check(&key, &limit, 1).is_ok_and(|d| d.allowed));
    assert!(governor.check_key(&key).is_ok());
    let mut group = c.benchmark_group("keyed_1_key_2_threads");
    group.throughput(Throughput::Elements(1));
    group.bench_function("tollgate", |b| {
        b.iter_custom(|iters| {
            two_threads(iters, &|| {
                black_box(store.check(black_box(&key), &limit, 1)).ok();
            })
        })
    });
    group.bench_function("governor", |b| {
        b.iter_custom(|iters| {
            two_threads(iters, &|| {
                black_box(governor.check_key(black_box(&key))).ok();
            })
        })
    });
    group.finish();
}

/// Scenario 4, direct: 2 threads contending on one direct limiter.
fn contended_direct(c: &mut Criterion) {
    let (limit, quota) = allow_quota();
    let tollgate = DirectLimiter::new(limit);
    let governor: DefaultDirectRateLimiter = RateLimiter::direct(quota);
    let mut group = c.benchmark_group("direct_2_threads");
    group.throughput(Throughput::Elements(1));
    group.bench_function("tollgate", |b| {
        b.iter_custom(|iters| {
            two_threads(iters, &|| {
                black_box(tollgate.check(black_box(1))).ok();
            })
        })
    });
    group.bench_function("governor", |b| {
        b.iter_custom(|iters| {
            two_threads(iters, &|| {
                black_box(governor.check()).ok();
            })
        })
    });
    group.finish();
}

/// The group definition; `criterion_group!` generates an undocumented `pub fn`.
#[allow(missing_docs)]
mod group {
    use super::*;
    use criterion::criterion_group;

    criterion_group! {
        name = benches;
        config = Criterion::default()
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2))
            .sample_size(30);
        targets = direct, direct_denying, keyed_one_key, keyed_100k_keys, keyed_100k_keys_tracked,
            contended_keyed, contended_direct
    }
}
criterion_main!(group::benches);
