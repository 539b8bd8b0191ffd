//! The keyed store's behaviour: batches all-or-nothing, reset, idle eviction, the key cap, and
//! the `Store` trait.

use std::time::Duration;

use tollgate_core::{Admission, Algorithm, Check, Decision, DynStore, FakeClock, Limit, Store};
use tollgate_memory::{MemoryStore, WhenFull};
use tollgate_testkit::ready;

const T0_MS: u64 = 1_700_000_000_000;

fn limit(rate: &str, algorithm: Algorithm, burst: Option<u64>) -> Limit {
    Limit::new(rate.parse().expect("rate"), algorithm, burst).expect("limit")
}

fn store(clock: &FakeClock) -> MemoryStore<FakeClock> {
    MemoryStore::builder().clock(clock.clone()).build()
}

#[test]
fn a_denied_batch_consumes_nothing() {
    let clock = FakeClock::at_millis(T0_MS);
    let store = store(&clock);
    let global = limit("10000/min", Algorithm::Gcra, None);
    let user = limit("3/min", Algorithm::Gcra, None);
    let endpoint = limit("500/min", Algorithm::SlidingWindow, None);
    let batch = |cost| {
        [
            Check::new("global", global, cost),
            Check::new("user:1", user, cost),
            Check::new("endpoint:/search", endpoint, cost),
        ]
    };
    let first = store.check_all(&batch(2)).expect("valid");
    assert!(first.allowed);
    assert_eq!(
        first
            .decisions
            .iter()
            .map(|d| d.remaining)
            .collect::<Vec<_>>(),
        [9998, 1, 498]
    );

    let denied = store.check_all(&batch(2)).expect("valid");
    assert!(!denied.allowed);
    assert_eq!(
        denied
            .decisions
            .iter()
            .map(|d| d.allowed)
            .collect::<Vec<_>>(),
        [true, false, true]
    );
    assert_eq!(
        denied.retry_after_ms, 20_000,
        "the user key needs one more token: 20 s"
    );
    // Nothing was consumed: the remaining counts describe the keys as they are.
    assert_eq!(
        denied
            .decisions
            .iter()
            .map(|d| d.remaining)
            .collect::<Vec<_>>(),
        [9998, 1, 498]
    );
    assert_eq!(
        store.check("global", &global, 0).expect("peek").remaining,
        9998
    );
    assert_eq!(
        store
            .check("endpoint:/search", &endpoint, 0)
            .expect("peek")
            .remaining,
        498
    );

    clock.advance(Duration::from_millis(denied.retry_after_ms));
    assert!(store.check_all(&batch(2)).expect("valid").allowed);
}

#[test]
fn a_batch_counts_its_own_earlier_checks_on_a_key() {
    let clock = FakeClock::at_millis(T0_MS);
    let store = store(&clock);
    let l = limit("5/s", Algorithm::FixedWindow, None);
    let twice = [Check::new("k", l, 3), Check::new("k", l, 3)];
    let d = store.check_all(&twice).expect("valid");
    assert!(!d.allowed);
    assert_eq!(
        (d.decisions[0].allowed, d.decisions[1].allowed),
        (true, false)
    );
    assert_eq!(store.check("k", &l, 0).expect("peek").remaining, 5);
    let fits = [Check::new("k", l, 3), Check::new("k", l, 2)];
    let d = store.check_all(&fits).expect("valid");
    assert!(d.allowed);
    assert_eq!(d.decisions[1].remaining, 0);
}

#[test]
fn a_bad_check_in_a_batch_is_an_error_naming_it() {
    let store = MemoryStore::new();
    let l = limit("5/s", Algorithm::Gcra, None);
    let err = store
        .check_all(&[Check::new("ok", l, 1), Check::new("big", l, 6)])
        .expect_err("cost 6 > 5");
    assert_eq!(err.code(), "cost_exceeds_limit");
    assert!(err.to_string().contains("\"big\""), "{err}");
    assert_eq!(
        store.check("ok", &l, 0).expect("peek").remaining,
        5,
        "nothing consumed"
    );
    let err = store
        .check_all(&[Check::new("", l, 1)])
        .expect_err("empty key");
    assert_eq!(err.code(), "invalid_key");
}

#[test]
fn reset_forgets_a_key_under_every_algorithm() {
    let clock = FakeClock::at_millis(T0_MS);
    let store = store(&clock);
    let gcra = limit("1/h", Algorithm::Gcra, None);
    let window = limit("1/h", Algorithm::SlidingWindow, None);
    assert!(store.check("k", &gcra, 1).expect("ok").allowed);
    assert!(store.check("k", &window, 1).expect("ok").allowed);
    assert!(!store.check("k", &gcra, 1).expect("ok").allowed);
    assert_eq!(store.len(), 2);
    assert!(store.reset("k").expect("valid"));
    assert!(!store.reset("k").expect("valid"), "nothing left to reset");
    assert!(store.check("k", &gcra, 1).expect("ok").allowed);
    assert!(store.check("k", &window, 1).expect("ok").allowed);
    assert_eq!(store.reset("").map_err(|e| e.code()), Err("invalid_key"));
}

#[test]
fn gcra_and_strict_share_a_bucket() {
    let clock = FakeClock::at_millis(T0_MS);
    let store = store(&clock);
    let gcra = limit("2/s", Algorithm::Gcra, None);
    let strict = limit("2/s", Algorithm::Strict, None);
    assert!(store.check("k", &gcra, 2).expect("ok").allowed);
    assert!(!store.check("k", &strict, 1).expect("ok").allowed);
}

#[test]
fn peeks_and_denials_track_no_new_key() {
    let clock = FakeClock::at_millis(T0_MS);
    let store = store(&clock);
    let l = limit("2/s", Algorithm::Gcra, None);
    assert_eq!(store.check("peek", &l, 0).expect("ok").remaining, 2);
    assert!(store.is_empty());
}

#[test]
fn idle_keys_are_swept_once_back_to_full_capacity() {
    let clock = FakeClock::at_millis(T0_MS);
    let store = store(&clock);
    let l = limit("10/s", Algorithm::Gcra, None);
    for i in 0..1000 {
        store.check(&format!("user:{i}"), &l, 3).expect("ok");
    }
    assert_eq!(store.len(), 1000);
    clock.advance(Duration::from_millis(299));
    assert_eq!(store.sweep(), 0, "each key still has 1 ms to go");
    clock.advance(Duration::from_millis(1));
    assert_eq!(store.sweep(), 1000);
    assert!(store.is_empty());
}

#[test]
fn a_full_store_rejects_new_keys_and_keeps_limiting_old_ones() {
    let clock = FakeClock::at_millis(T0_MS);
    let store = MemoryStore::builder()
        .clock(clock.clone())
        .shards(1)
        .max_keys(100)
        .when_full(WhenFull::Reject)
        .build();
    let l = limit("1/min", Algorithm::Gcra, None);
    for i in 0..100 {
        assert!(store.check(&format!("k{i}"), &l, 1).expect("room").allowed);
    }
    let err = store.check("newcomer", &l, 1).expect_err("full");
    assert_eq!(err.code(), "store_full");
    assert!(err.is_transient());
    assert!(
        !store.check("k7", &l, 1).expect("tracked").allowed,
        "old keys keep their limits"
    );
    assert_eq!(
        store
            .check("newcomer", &l, 0)
            .expect("a peek needs no room")
            .remaining,
        1
    );
    // Once the tracked keys are back to full capacity, they make room.
    clock.advance(Duration::from_secs(60));
    assert!(store.check("newcomer", &l, 1).expect("swept").allowed);
    assert_eq!(store.len(), 1);
}

#[test]
fn a_full_store_can_evict_the_key_nearest_idle_instead() {
    let clock = FakeClock::at_millis(T0_MS);
    let store = MemoryStore::builder()
        .clock(clock.clone())
        .shards(1)
        .max_keys(50)
        .when_full(WhenFull::EvictNearestIdle)
        .build();
    let l = limit("1/min", Algorithm::Gcra, None);
    for i in 0..50 {
        store.check(&format!("k{i}"), &l, 1).expect("room");
        clock.advance(Duration::from_millis(10));
    }
    for i in 0..500 {
        assert!(
            store
                .check(&format!("new{i}"), &l, 1)
                .expect("evicts")
                .allowed
        );
        assert!(store.len() <= 50);
    }
}

#[test]
fn the_store_trait_and_its_object_safe_form_agree() {
    let clock = FakeClock::at_millis(T0_MS);
    let store = store(&clock);
    let l = limit("2/s", Algorithm::Gcra, None);
    assert!(ready(Store::check(&store, "k", &l, 1)).expect("ok").allowed);
    let dyn_store: &dyn DynStore = &store;
    assert_eq!(ready(dyn_store.check("k", &l, 0)).expect("ok").remaining, 1);
    assert!(
        ready(dyn_store.check_all(&[Check::new("k", l, 1)]))
            .expect("ok")
            .allowed
    );
    assert!(ready(dyn_store.ping()).is_ok());
    assert_eq!(dyn_store.tracked_keys(), Some(1));
    ready(dyn_store.reset("k")).expect("ok");
    assert_eq!(dyn_store.tracked_keys(), Some(0));
}

#[test]
fn admit_gives_the_same_verdicts_and_waits_as_check() {
    use tollgate_memory::DirectLimiter;
    for (rate, algorithm, burst) in [
        ("5/s", Algorithm::Gcra, Some(3)),
        ("4/s", Algorithm::Strict, None),
        ("3/s", Algorithm::SlidingWindow, None),
        ("3/s", Algorithm::FixedWindow, None),
    ] {
        let l = limit(rate, algorithm, burst);
        let clock = FakeClock::at_millis(T0_MS);
        let (by_check, by_admit) = (store(&clock), store(&clock));
        let direct = DirectLimiter::with_clock(l, clock.clone());
        let direct_checked = DirectLimiter::with_clock(l, clock.clone());
        // A deterministic, irregular trace over a few keys with weighted costs.
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        for step in 0..3000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            clock.advance(Duration::from_millis(x % 170));
            let key = ["a", "b", "c"][(x % 3) as usize];
            let cost = (x >> 8) % (l.capacity() + 1);
            // The verdict and the wait (which `admit` has to the ns, `check` rounded up).
            let verdict = |d: Decision| (d.allowed, d.retry_after_ms);
            let admitted = |a: Admission| (a.is_admitted(), a.retry_after_ms());
            let expected = verdict(by_check.check(key, &l, cost).expect("valid"));
            let got = admitted(by_admit.admit(key, &l, cost).expect("valid"));
            assert_eq!(got, expected, "{l} step {step}");
            let expected = verdict(direct_checked.check(cost).expect("valid"));
            let got = admitted(direct.admit(cost).expect("valid"));
            assert_eq!(got, expected, "{l} direct step {step}");
        }
        let err = by_admit
            .admit("a", &l, l.capacity() + 1)
            .expect_err("too much");
        assert_eq!(err.code(), "cost_exceeds_limit");
    }
}
