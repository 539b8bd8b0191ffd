//! Each algorithm's decisions on a real Redis, hand-checked and compared field by field with
//! the core algorithm run at the times Redis reports; peeks, costs over capacity, keys and
//! their expiry, and the scripts' own failure modes.

mod common;

use std::time::Duration;

use common::{Model, cmd, limit, raw, started};
use tollgate_core::{Algorithm, Decision, Limit};
use tollgate_redis::{RedisStore, TimedDecision};

/// Runs `steps` of (sleep before, cost) on one key; asserts that every Redis decision equals
/// the core algorithm's at Redis's time, and returns the decisions.
async fn run(store: &RedisStore, key: &str, l: &Limit, steps: &[(u64, u64)]) -> Vec<Decision> {
    let mut model = Model::of(l);
    let mut out = Vec::new();
    for (i, &(sleep_ms, cost)) in steps.iter().enumerate() {
        tokio::time::sleep(Duration::from_millis(sleep_ms)).await;
        let TimedDecision { decision, at_us } =
            store.check_timed(key, l, cost).await.expect("decides");
        let expected = model.apply(l, at_us, cost);
        assert_eq!(
            decision, expected,
            "{l} step {i} (cost {cost}) at {at_us} µs"
        );
        out.push(decision);
    }
    out
}

fn summary(d: &[Decision]) -> Vec<(bool, u64)> {
    d.iter().map(|d| (d.allowed, d.remaining)).collect()
}

#[tokio::test]
async fn gcra_burst_then_one_per_interval() {
    let (_server, store) = started().await;
    // Periods of seconds, not ms, so that a busy machine's pauses do not change the answers.
    let l = limit("5/5s", Algorithm::Gcra, Some(3));
    let d = run(
        &store,
        "k",
        &l,
        &[
            (0, 1),
            (0, 1),
            (0, 1),
            (0, 1),
            (0, 0),
            (0, 2),
            (1100, 1),
            (0, 1),
        ],
    )
    .await;
    assert_eq!(
        summary(&d),
        [
            (true, 2),
            (true, 1),
            (true, 0),
            (false, 0),
            (true, 0),
            (false, 0),
            (true, 0),
            (false, 0)
        ]
    );
    // The 4th needs one interval (1 s) minus the time since the first.
    assert!((1..=1000).contains(&d[3].retry_after_ms), "{:?}", d[3]);
    assert!((2000..=3000).contains(&d[3].reset_after_ms), "{:?}", d[3]);
    assert_eq!(d[0].limit, 3);
}

#[tokio::test]
async fn strict_spaces_evenly_and_shares_the_gcra_bucket() {
    let (_server, store) = started().await;
    let strict = limit("2/s", Algorithm::Strict, None);
    let d = run(&store, "k", &strict, &[(0, 1), (0, 1), (550, 1), (0, 1)]).await;
    assert_eq!(summary(&d), [(true, 0), (false, 0), (true, 0), (false, 0)]);
    assert!((1..=500).contains(&d[1].retry_after_ms), "{:?}", d[1]);
    let gcra = limit("2/s", Algorithm::Gcra, None);
    let shared = store.check("k", &gcra, 0).await.expect("peek");
    assert!(
        shared.remaining < 2,
        "gcra sees strict's admissions: {shared:?}"
    );
}

#[tokio::test]
async fn sliding_window_counts_the_last_period() {
    let (_server, store) = started().await;
    let l = limit("3/1s", Algorithm::SlidingWindow, None);
    let d = run(
        &store,
        "k",
        &l,
        &[
            (0, 1),
            (250, 2),
            (0, 1),
            (0, 0),
            (600, 1),
            (200, 1),
            (0, 2),
            (1250, 3),
        ],
    )
    .await;
    assert_eq!(d[0].remaining, 2);
    assert_eq!(summary(&d[1..4]), [(true, 0), (false, 0), (true, 0)]);
    // The first admission leaves the window 1 s after it was made.
    assert!((1..=750).contains(&d[2].retry_after_ms), "{:?}", d[2]);
    assert_eq!(
        d[7],
        Decision {
            allowed: true,
            limit: 3,
            remaining: 0,
            retry_after_ms: 0,
            reset_after_ms: 1000
        }
    );
}

#[tokio::test]
async fn fixed_window_aligns_to_the_epoch() {
    let (server, store) = started().await;
    let l = limit("2/1s", Algorithm::FixedWindow, None);
    // Start 50 ms into a window, so that the first steps share it.
    let into = common::redis_time(&mut raw(&server).await).await % 1_000_000;
    tokio::time::sleep(Duration::from_micros(1_050_000 - into)).await;
    let d = run(
        &store,
        "k",
        &l,
        &[(0, 2), (0, 1), (0, 0), (1100, 1), (0, 1), (0, 1), (1000, 2)],
    )
    .await;
    assert_eq!(summary(&d[..3]), [(true, 0), (false, 0), (true, 0)]);
    assert!(d[1].retry_after_ms <= 1000 && d[1].retry_after_ms == d[1].reset_after_ms);
    assert!(d[6].allowed, "a new window: {:?}", d[6]);
}

#[tokio::test]
async fn a_peek_reports_and_creates_nothing() {
    let (server, store) = started().await;
    let mut conn = raw(&server).await;
    for algorithm in Algorithm::ALL {
        let l = limit("5/s", algorithm, None);
        let d = store.check("fresh", &l, 0).await.expect("peek");
        let full = l.capacity();
        assert_eq!(
            d,
            Decision {
                allowed: true,
                limit: full,
                remaining: full,
                retry_after_ms: 0,
                reset_after_ms: 0
            },
            "{algorithm}"
        );
    }
    let keys: Vec<String> = cmd(&mut conn, &["KEYS", "*"]).await.expect("KEYS");
    assert!(keys.is_empty(), "peeks wrote {keys:?}");
}

#[tokio::test]
async fn bad_input_is_refused_before_any_round_trip() {
    let (mut server, store) = started().await;
    // With Redis gone, only a check that never reaches it can answer with its own error.
    server.kill();
    let l = limit("5/s", Algorithm::Gcra, Some(2));
    let err = store.check("k", &l, 3).await.expect_err("3 > burst 2");
    assert_eq!(err.code(), "cost_exceeds_limit");
    let err = store.check("", &l, 1).await.expect_err("empty key");
    assert_eq!(err.code(), "invalid_key");
    let long = "k".repeat(1025);
    assert_eq!(
        store.reset(&long).await.map_err(|e| e.code()),
        Err("invalid_key")
    );
    let huge = limit("1/d", Algorithm::Gcra, Some(53_000));
    assert_eq!(
        store.check("k", &huge, 1).await.map_err(|e| e.code()),
        Err("invalid_burst"),
        "a span Lua cannot count exactly"
    );
    let w = limit("5/s", Algorithm::SlidingWindow, None);
    let err = store
        .check_all(&[
            tollgate_core::Check::new("ok", w, 1),
            tollgate_core::Check::new("big", w, 6),
        ])
        .await
        .expect_err("cost 6 > 5");
    assert!(err.to_string().contains("\"big\""), "{err}");
}

#[tokio::test]
async fn every_key_expires_once_back_to_full_capacity() {
    let (server, store) = started().await;
    let mut conn = raw(&server).await;
    for (algorithm, suffix) in [
        (Algorithm::Gcra, "g"),
        (Algorithm::SlidingWindow, "s"),
        (Algorithm::FixedWindow, "f"),
    ] {
        let l = limit("10/min", algorithm, None);
        let d = store.check("user:1", &l, 4).await.expect("admitted");
        let key = format!("tollgate:{{user:1}}:{suffix}");
        let pttl: i64 = cmd(&mut conn, &["PTTL", &key]).await.expect("PTTL");
        // Expiry is set at the millisecond after the state is back to full capacity, on
        // Redis's clock; read within the same millisecond it can be 1 ms past reset_after.
        assert!(pttl > 0, "{key} has no expiry: {pttl}");
        assert!(pttl as u64 <= d.reset_after_ms + 1, "{key}: {pttl} > {d:?}");
        assert!(
            pttl as u64 + 1000 >= d.reset_after_ms,
            "{key}: {pttl} far below {d:?}"
        );
    }
    let keys: Vec<String> = cmd(&mut conn, &["KEYS", "*"]).await.expect("KEYS");
    assert_eq!(keys.len(), 3, "one key per family: {keys:?}");

    // And they do expire: a short limit's key is gone once it is back to full capacity.
    let l = limit("10/50ms", Algorithm::SlidingWindow, None);
    store.check("brief", &l, 1).await.expect("admitted");
    tokio::time::sleep(Duration::from_millis(120)).await;
    let exists: u64 = cmd(&mut conn, &["EXISTS", "tollgate:{brief}:s"])
        .await
        .expect("EXISTS");
    assert_eq!(exists, 0);
}

#[tokio::test]
async fn reset_forgets_every_family() {
    let (server, store) = started().await;
    let mut conn = raw(&server).await;
    let gcra = limit("1/h", Algorithm::Gcra, None);
    let window = limit("1/h", Algorithm::SlidingWindow, None);
    let fixed = limit("1/h", Algorithm::FixedWindow, None);
    for l in [&gcra, &window, &fixed] {
        assert!(store.check("k", l, 1).await.expect("ok").allowed);
        assert!(!store.check("k", l, 1).await.expect("ok").allowed);
    }
    assert!(store.reset("k").await.expect("reset"));
    let exists: u64 = cmd(
        &mut conn,
        &[
            "EXISTS",
            "tollgate:{k}:g",
            "tollgate:{k}:s",
            "tollgate:{k}:f",
        ],
    )
    .await
    .expect("EXISTS");
    assert_eq!(exists, 0);
    assert!(!store.reset("k").await.expect("reset"), "nothing left");
    for l in [&gcra, &window, &fixed] {
        assert!(store.check("k", l, 1).await.expect("ok").allowed);
    }
}

#[tokio::test]
async fn scripts_reload_after_script_flush() {
    let (server, store) = started().await;
    let mut conn = raw(&server).await;
    let l = limit("5/min", Algorithm::Gcra, None);
    assert!(store.check("k", &l, 1).await.expect("ok").allowed);
    let _: String = cmd(&mut conn, &["SCRIPT", "FLUSH"]).await.expect("flush");
    assert_eq!(store.check("k", &l, 1).await.expect("reloads").remaining, 3);
    let _: String = cmd(&mut conn, &["SCRIPT", "FLUSH"]).await.expect("flush");
    let batch = [tollgate_core::Check::new("k", l, 1)];
    assert!(store.check_all(&batch).await.expect("reloads").allowed);
    let _: String = cmd(&mut conn, &["SCRIPT", "FLUSH"]).await.expect("flush");
    assert!(store.reset("k").await.expect("reloads"));
}

#[tokio::test]
async fn a_key_of_the_wrong_type_is_a_clear_error() {
    let (server, store) = started().await;
    let mut conn = raw(&server).await;
    let _: String = cmd(&mut conn, &["SET", "tollgate:{k}:s", "foo"])
        .await
        .expect("SET");
    let _: String = cmd(&mut conn, &["SET", "tollgate:{k}:g", "not a time"])
        .await
        .expect("SET");
    let _: u64 = cmd(&mut conn, &["LPUSH", "tollgate:{k}:f", "x"])
        .await
        .expect("LPUSH");
    for (algorithm, says) in [
        (
            Algorithm::SlidingWindow,
            "tollgate:{k}:s does not hold a sliding-window log",
        ),
        (
            Algorithm::Gcra,
            "tollgate:{k}:g does not hold a GCRA arrival time",
        ),
        (
            Algorithm::FixedWindow,
            "tollgate:{k}:f does not hold a fixed-window count",
        ),
    ] {
        let l = limit("5/s", algorithm, None);
        let err = store.check("k", &l, 1).await.expect_err("wrong type");
        assert_eq!(err.code(), "store_unavailable", "{algorithm}");
        assert!(!err.is_transient(), "{algorithm}: {err}");
        let text = err.to_string();
        assert!(text.contains(says), "{algorithm}: {text}");
        let err = store
            .check_all(&[tollgate_core::Check::new("k", l, 1)])
            .await
            .expect_err("wrong type");
        assert!(!err.is_transient());
    }
    // Other keys are unaffected.
    let l = limit("5/s", Algorithm::SlidingWindow, None);
    assert!(store.check("other", &l, 1).await.expect("ok").allowed);
    store.ping().await.expect("still serving");
}
