//! Many threads on few keys, on the real clock: the independent checker looks at the time of
//! every admission (the store's own time, read under the shard lock) and finds no interval
//! that breaks a CONTRACT §3 guarantee.

use std::collections::HashMap;
use std::sync::{Arc, Barrier};

use tollgate_core::{Algorithm, Check, Limit};
use tollgate_memory::{DirectLimiter, MemoryStore};
use tollgate_testkit::{Admission, RecordingClock, check, last_now};

const THREADS: usize = 8;
const CHECKS_PER_THREAD: usize = 100_000;
const KEYS: [&str; 3] = ["alpha", "beta", "gamma"];

fn limit(rate: &str, algorithm: Algorithm, burst: Option<u64>) -> Limit {
    Limit::new(rate.parse().expect("rate"), algorithm, burst).expect("limit")
}

/// Runs `THREADS` threads of `CHECKS_PER_THREAD` checks; returns admissions per key.
fn hammer(
    store: &Arc<MemoryStore<RecordingClock>>,
    limit: Limit,
) -> HashMap<&'static str, Vec<Admission>> {
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|thread| {
            let store = Arc::clone(store);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                let mut admitted: Vec<(&'static str, Admission)> = Vec::new();
                for i in 0..CHECKS_PER_THREAD {
                    let key = KEYS[(i + thread) % KEYS.len()];
                    let cost = (1 + (i % 3 == 0) as u64).min(limit.capacity());
                    let d = store.check(key, &limit, cost).expect("valid check");
                    if d.allowed {
                        admitted.push((
                            key,
                            Admission {
                                t: last_now(),
                                cost,
                            },
                        ));
                    }
                }
                admitted
            })
        })
        .collect();
    let mut by_key: HashMap<&'static str, Vec<Admission>> = HashMap::new();
    for handle in handles {
        for (key, a) in handle.join().expect("thread") {
            by_key.entry(key).or_default().push(a);
        }
    }
    by_key
}

#[test]
fn eight_threads_never_break_any_guarantee() {
    let cases = [
        limit("2000/100ms", Algorithm::Gcra, Some(50)),
        limit("1000/50ms", Algorithm::Strict, None),
        limit("500/20ms", Algorithm::SlidingWindow, None),
        limit("500/20ms", Algorithm::FixedWindow, None),
    ];
    for limit in cases {
        let store = Arc::new(
            MemoryStore::builder()
                .clock(RecordingClock::default())
                .build(),
        );
        let by_key = hammer(&store, limit);
        let mut total = 0;
        for (key, admissions) in &by_key {
            total += admissions.len();
            if let Err(v) = check(&limit, admissions) {
                panic!("{limit} on {key}: {v}");
            }
        }
        // The limit must have been reached, or the test proves nothing.
        assert!(total > 0, "{limit}: nothing admitted");
        assert!(
            total < THREADS * CHECKS_PER_THREAD,
            "{limit}: nothing denied, the test did not stress the limit"
        );
    }
}

#[test]
fn concurrent_batches_are_atomic_across_shards() {
    // Each batch takes 1 from a shared global key and 1 from one of several user keys.
    let global = limit("3000/100ms", Algorithm::Gcra, Some(100));
    let user = limit("400/100ms", Algorithm::SlidingWindow, None);
    let store = Arc::new(
        MemoryStore::builder()
            .clock(RecordingClock::default())
            .build(),
    );
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|thread| {
            let store = Arc::clone(&store);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                let mut admitted = Vec::new();
                for i in 0..20_000 {
                    let user_key = ["u1", "u2", "u3", "u4"][(i + thread) % 4];
                    let batch = [
                        Check::new("global", global, 1),
                        Check::new(user_key, user, 1),
                    ];
                    let d = store.check_all(&batch).expect("valid batch");
                    assert_eq!(d.allowed, d.decisions.iter().all(|x| x.allowed));
                    if d.allowed {
                        admitted.push((user_key, last_now()));
                    }
                }
                admitted
            })
        })
        .collect();
    let mut global_admissions = Vec::new();
    let mut users: HashMap<&str, Vec<Admission>> = HashMap::new();
    for handle in handles {
        for (key, t) in handle.join().expect("thread") {
            global_admissions.push(Admission { t, cost: 1 });
            users.entry(key).or_default().push(Admission { t, cost: 1 });
        }
    }
    assert!(!global_admissions.is_empty());
    check(&global, &global_admissions).unwrap_or_else(|v| panic!("global: {v}"));
    for (key, admissions) in users {
        check(&user, &admissions).unwrap_or_else(|v| panic!("{key}: {v}"));
    }
}

#[test]
fn the_direct_limiter_holds_under_contention() {
    for limit in [
        limit("5000/100ms", Algorithm::Gcra, Some(200)),
        limit("1000/10ms", Algorithm::Strict, None),
        limit("300/10ms", Algorithm::SlidingWindow, None),
        limit("300/10ms", Algorithm::FixedWindow, None),
    ] {
        let limiter = Arc::new(DirectLimiter::with_clock(limit, RecordingClock::default()));
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let limiter = Arc::clone(&limiter);
                std::thread::spawn(move || {
                    let mut admitted = Vec::new();
                    for i in 0..50_000u64 {
                        let cost = (1 + (i % 2)).min(limit.capacity());
                        if limiter.check(cost).expect("valid").allowed {
                            admitted.push(Admission {
                                t: last_now(),
                                cost,
                            });
                        }
                    }
                    admitted
                })
            })
            .collect();
        let admissions: Vec<Admission> = handles
            .into_iter()
            .flat_map(|h| h.join().expect("thread"))
            .collect();
        assert!(
            !admissions.is_empty() && admissions.len() < THREADS * 50_000,
            "{limit}"
        );
        check(&limit, &admissions).unwrap_or_else(|v| panic!("{limit}: {v}"));
    }
}
