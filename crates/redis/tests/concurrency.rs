//! Many tasks on two stores (two connections, as two hosts would have) hammering a few keys
//! of one Redis: every admission, at the time Redis decided it, is checked against the
//! CONTRACT §3 guarantees by the independent checker. And two stores agree on one timeline,
//! Redis's, whatever the hosts' clocks say.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{limit, raw, redis_time, server, store};
use tollgate_core::{Algorithm, Check, Gcra, Limit, LimitState};
use tollgate_redis::RedisStore;
use tollgate_testkit::{Admission, check};

const TASKS_PER_STORE: usize = 8;
const RUN_FOR: Duration = Duration::from_millis(1200);

/// The keys under test and their limits; T of "3/100ms" is not a whole number of µs.
fn limits() -> Vec<(&'static str, Limit)> {
    vec![
        ("gcra", limit("50/s", Algorithm::Gcra, Some(10))),
        ("gcra-odd", limit("3/100ms", Algorithm::Gcra, Some(2))),
        ("strict", limit("100/s", Algorithm::Strict, None)),
        ("sliding", limit("20/100ms", Algorithm::SlidingWindow, None)),
        ("fixed", limit("10/50ms", Algorithm::FixedWindow, None)),
    ]
}

/// Admissions per key (index into `limits()`), and how many checks were denied.
#[derive(Default)]
struct Log {
    admitted: Vec<Vec<Admission>>,
    denied: usize,
}

async fn hammer(store: RedisStore, seed: usize, log: Arc<Mutex<Log>>) {
    let limits = limits();
    let deadline = Instant::now() + RUN_FOR;
    let mut i = seed;
    while Instant::now() < deadline {
        i = i
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let pick = (i >> 33) % limits.len();
        let (key, l) = limits[pick];
        let cost = 1 + (i >> 40) as u64 % l.capacity().min(3);
        if (i >> 50).is_multiple_of(4) {
            // A batch over two keys: all its costs count, or none.
            let other = (pick + 1) % limits.len();
            let (key2, l2) = limits[other];
            let batch = [Check::new(key, l, cost), Check::new(key2, l2, 1)];
            let t = store.check_all_timed(&batch).await.expect("decides");
            let mut log = log.lock().expect("log");
            if t.decision.allowed {
                let at = t.at_us * 1000;
                log.admitted[pick].push(Admission { t: at, cost });
                log.admitted[other].push(Admission { t: at, cost: 1 });
            } else {
                log.denied += 1;
            }
        } else {
            let t = store.check_timed(key, &l, cost).await.expect("decides");
            let mut log = log.lock().expect("log");
            if t.decision.allowed {
                log.admitted[pick].push(Admission {
                    t: t.at_us * 1000,
                    cost,
                });
            } else {
                log.denied += 1;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_on_two_stores_never_break_a_guarantee() {
    let server = server();
    let stores = [store(&server).await, store(&server).await];
    let log = Arc::new(Mutex::new(Log {
        admitted: vec![Vec::new(); limits().len()],
        denied: 0,
    }));
    let mut tasks = Vec::new();
    for n in 0..2 * TASKS_PER_STORE {
        let store = stores[n % 2].clone();
        tasks.push(tokio::spawn(hammer(store, n * 7919 + 1, log.clone())));
    }
    for task in tasks {
        task.await.expect("task");
    }
    let log = log.lock().expect("log");
    assert!(
        log.denied > 100,
        "the limits were not pressed: {} denied",
        log.denied
    );
    let seconds = RUN_FOR.as_secs_f64();
    for ((key, l), admitted) in limits().iter().zip(&log.admitted) {
        if let Err(v) = check(l, admitted) {
            panic!("{key} ({l}): {v}");
        }
        // The limits were used, not merely respected: at least half of what they allow.
        let total: u64 = admitted.iter().map(|a| a.cost).sum();
        let most = l.capacity() as f64
            + seconds * l.rate().count() as f64 / l.rate().period().as_secs_f64();
        assert!(
            total as f64 >= most / 2.0,
            "{key}: {total} of at most {most}"
        );
    }
}

#[tokio::test]
async fn two_stores_decide_on_redis_time_alone() {
    let server = server();
    let (a, b) = (store(&server).await, store(&server).await);
    let mut conn = raw(&server).await;
    let l = limit("20/s", Algorithm::Gcra, Some(4));
    // One timeline: the decisions of both stores, interleaved, are exactly what one GCRA
    // state gives at the times Redis reports, and those times are Redis's TIME.
    let mut model = Gcra::default();
    let mut last = 0;
    for step in 0..24 {
        if step % 6 == 5 {
            tokio::time::sleep(Duration::from_millis(60)).await;
        }
        let store = if step % 2 == 0 { &a } else { &b };
        let before = redis_time(&mut conn).await;
        let t = store.check_timed("shared", &l, 1).await.expect("decides");
        let after = redis_time(&mut conn).await;
        assert!(
            (before..=after).contains(&t.at_us),
            "{before} ≤ {} ≤ {after}",
            t.at_us
        );
        assert!(t.at_us >= last, "one clock never runs back");
        last = t.at_us;
        assert_eq!(
            t.decision,
            model.apply(&l, t.at_us * 1000, 1),
            "step {step}"
        );
    }
}
