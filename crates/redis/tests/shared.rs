//! One test body, two stores: every behaviour here is run against the in-memory store and
//! against Redis, so the two are proven alike (after limitador's
//! `test_with_all_storage_impls!`). Periods are long, so the real clocks both stores read
//! move too little during a test to change a decision.

mod common;

use common::limit;
use tollgate_core::{Algorithm, Check, Store};

/// Runs `$body(&store)` once with a `MemoryStore` and once with a `RedisStore` on its own
/// redis-server.
macro_rules! test_with_all_stores {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn memory() {
                super::$name(&tollgate_memory::MemoryStore::new()).await;
            }

            #[tokio::test]
            async fn redis() {
                let (_server, store) = super::common::started().await;
                super::$name(&store).await;
            }
        }
    )*};
}

test_with_all_stores!(
    a_denied_batch_consumes_nothing,
    a_batch_counts_its_own_earlier_checks_on_a_key,
    a_bad_check_in_a_batch_is_an_error_naming_it,
    reset_forgets_a_key_under_every_algorithm,
    gcra_and_strict_share_a_bucket,
    the_algorithms_keep_separate_state,
    weighted_costs_and_peeks,
    the_object_safe_store_agrees,
);

fn remaining(d: &tollgate_core::MultiDecision) -> Vec<u64> {
    d.decisions.iter().map(|d| d.remaining).collect()
}

async fn a_denied_batch_consumes_nothing(store: &impl Store) {
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
    let first = store.check_all(&batch(2)).await.expect("valid");
    assert!(first.allowed);
    assert_eq!(remaining(&first), [9998, 1, 498]);

    let denied = store.check_all(&batch(2)).await.expect("valid");
    assert!(!denied.allowed);
    let allowed: Vec<bool> = denied.decisions.iter().map(|d| d.allowed).collect();
    assert_eq!(allowed, [true, false, true]);
    // The user key needs one more token: 20 s, less the moment since the first batch.
    assert!(
        (19_000..=20_000).contains(&denied.retry_after_ms),
        "{denied:?}"
    );
    assert_eq!(remaining(&denied), [9998, 1, 498], "nothing consumed");
    let peek = store.check("global", &global, 0).await.expect("peek");
    assert_eq!(peek.remaining, 9998);
    let peek = store
        .check("endpoint:/search", &endpoint, 0)
        .await
        .expect("peek");
    assert_eq!(peek.remaining, 498);
}

async fn a_batch_counts_its_own_earlier_checks_on_a_key(store: &impl Store) {
    let l = limit("5/d", Algorithm::FixedWindow, None);
    let twice = [Check::new("k", l, 3), Check::new("k", l, 3)];
    let d = store.check_all(&twice).await.expect("valid");
    assert!(!d.allowed);
    let allowed: Vec<bool> = d.decisions.iter().map(|d| d.allowed).collect();
    assert_eq!(allowed, [true, false]);
    assert_eq!(store.check("k", &l, 0).await.expect("peek").remaining, 5);
    let fits = [Check::new("k", l, 3), Check::new("k", l, 2)];
    let d = store.check_all(&fits).await.expect("valid");
    assert!(d.allowed);
    assert_eq!(remaining(&d), [2, 0]);
    assert_eq!(store.check("k", &l, 0).await.expect("peek").remaining, 0);
}

async fn a_bad_check_in_a_batch_is_an_error_naming_it(store: &impl Store) {
    let l = limit("5/s", Algorithm::Gcra, None);
    let err = store
        .check_all(&[Check::new("ok", l, 1), Check::new("big", l, 6)])
        .await
        .expect_err("cost 6 > 5");
    assert_eq!(err.code(), "cost_exceeds_limit");
    assert!(err.to_string().contains("\"big\""), "{err}");
    let peek = store.check("ok", &l, 0).await.expect("peek");
    assert_eq!(peek.remaining, 5, "nothing consumed");
    let err = store
        .check_all(&[Check::new("", l, 1)])
        .await
        .expect_err("empty key");
    assert_eq!(err.code(), "invalid_key");
}

async fn reset_forgets_a_key_under_every_algorithm(store: &impl Store) {
    let gcra = limit("1/h", Algorithm::Gcra, None);
    let window = limit("1/h", Algorithm::SlidingWindow, None);
    assert!(store.check("k", &gcra, 1).await.expect("ok").allowed);
    assert!(store.check("k", &window, 1).await.expect("ok").allowed);
    assert!(!store.check("k", &gcra, 1).await.expect("ok").allowed);
    store.reset("k").await.expect("valid");
    assert!(store.check("k", &gcra, 1).await.expect("ok").allowed);
    assert!(store.check("k", &window, 1).await.expect("ok").allowed);
    let err = store.reset("").await.expect_err("empty key");
    assert_eq!(err.code(), "invalid_key");
}

async fn gcra_and_strict_share_a_bucket(store: &impl Store) {
    let gcra = limit("2/min", Algorithm::Gcra, None);
    let strict = limit("2/min", Algorithm::Strict, None);
    assert!(store.check("k", &gcra, 2).await.expect("ok").allowed);
    assert!(!store.check("k", &strict, 1).await.expect("ok").allowed);
}

async fn the_algorithms_keep_separate_state(store: &impl Store) {
    let gcra = limit("1/h", Algorithm::Gcra, None);
    let sliding = limit("1/h", Algorithm::SlidingWindow, None);
    let fixed = limit("1/d", Algorithm::FixedWindow, None);
    for l in [&gcra, &sliding, &fixed] {
        assert!(store.check("k", l, 1).await.expect("ok").allowed, "{l}");
    }
    for l in [&gcra, &sliding, &fixed] {
        assert!(!store.check("k", l, 1).await.expect("ok").allowed, "{l}");
    }
}

async fn weighted_costs_and_peeks(store: &impl Store) {
    for algorithm in [Algorithm::Gcra, Algorithm::SlidingWindow] {
        let l = limit("10/h", algorithm, None);
        let key = format!("weighted:{algorithm}");
        let d = store.check(&key, &l, 7).await.expect("ok");
        assert_eq!((d.allowed, d.remaining), (true, 3), "{algorithm}");
        let d = store.check(&key, &l, 4).await.expect("ok");
        assert_eq!((d.allowed, d.remaining), (false, 3), "{algorithm}");
        assert!(d.retry_after_ms > 0, "{algorithm}");
        let d = store.check(&key, &l, 0).await.expect("ok");
        assert_eq!(
            (d.allowed, d.remaining, d.retry_after_ms),
            (true, 3, 0),
            "{algorithm}"
        );
        let d = store.check(&key, &l, 3).await.expect("ok");
        assert_eq!((d.allowed, d.remaining), (true, 0), "{algorithm}");
    }
}

async fn the_object_safe_store_agrees(store: &impl Store) {
    use tollgate_core::DynStore;
    let l = limit("2/min", Algorithm::Gcra, None);
    assert!(Store::check(store, "k", &l, 1).await.expect("ok").allowed);
    let dyn_store: &dyn DynStore = store;
    assert_eq!(dyn_store.check("k", &l, 0).await.expect("ok").remaining, 1);
    let batch = [Check::new("k", l, 1)];
    assert!(dyn_store.check_all(&batch).await.expect("ok").allowed);
    dyn_store.ping().await.expect("ok");
    dyn_store.reset("k").await.expect("ok");
    assert_eq!(dyn_store.check("k", &l, 0).await.expect("ok").remaining, 2);
}
