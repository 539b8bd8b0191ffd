//! The over-limit cache on a real redis-server: it never denies where Redis would admit, its
//! fields are on the safe side of Redis's own, it saves the round trips (counted by Redis in
//! `INFO commandstats`), and it forgets on a reset, on a failed call, and beyond its cap.

mod common;

use std::time::{Duration, Instant};

use common::{config, limit, server, store};
use tollgate_core::{Algorithm, Check, Decision, Limit};
use tollgate_redis::{RedisConfig, RedisStore};
use tollgate_testkit::redis::RedisServer;
use tollgate_testkit::redis::resp::query;

/// A store with the cache (and the patient timeouts of `common::store`).
async fn cached(server: &RedisServer, max_keys: usize) -> RedisStore {
    let config = config(server)
        .connect_timeout(Duration::from_secs(5))
        .command_timeout(Duration::from_secs(2))
        .over_limit_cache(max_keys);
    RedisStore::connect(&config).await.expect("store connects")
}

/// How many EVALSHAs the server has run (`INFO commandstats`).
fn evalshas(server: &RedisServer) -> u64 {
    let info = query(server.port(), &["INFO", "commandstats"]).expect("INFO");
    let text = info.text().unwrap_or_default().to_string();
    text.lines()
        .find_map(|l| l.strip_prefix("cmdstat_evalsha:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().expect("a count"))
}

fn hits(store: &RedisStore) -> u64 {
    store.over_limit_cache_hits().expect("the cache is on")
}

/// Checks `key` through the cache as fast as it can for `run`, and each time the cache answers
/// compares with Redis just before (a peek: was there room?) and just after (the same check
/// in a batch that a spent key denies, so that it consumes nothing: Redis's own fields). Only
/// the cached store admits, and time only frees room, so room in the peek before means Redis
/// would have admitted the cached check.
async fn compare_with_redis(server: &RedisServer, l: Limit, costs: &[u64], run: Duration) {
    let (cache, plain) = (cached(server, 100).await, store(server).await);
    let key = format!("compare:{}", l.algorithm());
    let spent = limit("1/d", Algorithm::Gcra, None);
    let _ = plain
        .check("compare:spent", &spent, 1)
        .await
        .expect("spends it");
    let (mut answered, mut admitted) = (0, 0);
    // The longest round trip of a check the cache sent to Redis (and may have learned from).
    let mut longest = Duration::ZERO;
    let started = Instant::now();
    let mut i = 0usize;
    while started.elapsed() < run {
        i += 1;
        let cost = costs[i % costs.len()];
        let before = plain.check(&key, &l, 0).await.expect("peek");
        let hits_before = hits(&cache);
        let asked = Instant::now();
        let d = cache.check(&key, &l, cost).await.expect("decides");
        if hits(&cache) == hits_before {
            longest = longest.max(asked.elapsed());
            admitted += u64::from(d.allowed);
            continue;
        }
        answered += 1;
        assert!(!d.allowed, "the cache admitted: {d:?}");
        assert!(
            before.remaining < cost,
            "{l}: cached a denial of {cost} with room for {} in Redis: {d:?}",
            before.remaining
        );
        let batch = [
            Check::new(&key, l, cost),
            Check::new("compare:spent", spent, 1),
        ];
        let both = plain.check_all(&batch).await.expect("decides");
        assert!(!both.allowed, "the spent key denies every batch");
        let after = both.decisions[0];
        let gap = asked.elapsed().as_millis() as u64;
        if after.allowed {
            // Room by now: the cached denial had expired just in time.
            continue;
        }
        // Later, with nothing admitted since the cache's latest answer from Redis, Redis can
        // only report more room and shorter waits than the truth at the cached answer,
        // which the cache bounds.
        assert_eq!(d.limit, after.limit);
        assert!(d.remaining <= after.remaining, "{l}: {d:?} vs {after:?}");
        assert!(
            d.retry_after_ms >= after.retry_after_ms,
            "{l}: {d:?} vs {after:?}"
        );
        assert!(
            d.reset_after_ms >= after.reset_after_ms,
            "{l}: {d:?} vs {after:?}"
        );
        // And not much longer: the round trip it learned from, rounding, the time between.
        let slack = gap + longest.as_millis() as u64 + 3;
        assert!(
            d.retry_after_ms <= after.retry_after_ms + slack,
            "{l}: {d:?} vs {after:?} {gap} ms later"
        );
    }
    eprintln!("{l}: {i} checks, {answered} answered by the cache, {admitted} admitted");
    assert!(answered >= 20, "{l}: the cache answered only {answered}");
    assert!(admitted >= 3, "{l}: only {admitted} admitted");
}

#[tokio::test]
async fn a_cached_denial_is_never_given_where_redis_would_admit() {
    let server = server();
    let run = Duration::from_millis(1500);
    let cases = [
        (limit("10/s", Algorithm::Gcra, Some(3)), &[1, 2, 3, 1][..]),
        (limit("20/s", Algorithm::Strict, None), &[1]),
        (limit("5/300ms", Algorithm::SlidingWindow, None), &[1, 1, 2]),
        (limit("5/300ms", Algorithm::FixedWindow, None), &[1, 2, 1]),
    ];
    for (l, costs) in cases {
        compare_with_redis(&server, l, costs, run).await;
    }
}

#[tokio::test]
async fn the_cache_saves_round_trips_and_forwards_what_it_cannot_prove() {
    let server = server();
    let store = cached(&server, 100).await;
    // 5/min, burst 5: T = 12 s.
    let l = limit("5/min", Algorithm::Gcra, None);
    for remaining in [4, 3, 2] {
        assert_eq!(
            store.check("g", &l, 1).await.expect("ok").remaining,
            remaining
        );
    }
    let first = store.check("g", &l, 4).await.expect("denied");
    assert!(!first.allowed);
    let calls = evalshas(&server);
    for cost in [4, 5] {
        for _ in 0..50 {
            let d = store.check("g", &l, cost).await.expect("cached");
            assert!(!d.allowed);
            // 2 fit in Redis; the cache may say 1 (its lead is known to within 1 ms).
            assert_eq!(d.limit, 5);
            assert!((1..=2).contains(&d.remaining), "{d:?}");
            assert!(d.retry_after_ms <= first.retry_after_ms + 12_000 * (cost - 4));
            assert!(d.retry_after_ms + 1000 >= first.retry_after_ms + 12_000 * (cost - 4));
        }
    }
    assert_eq!(evalshas(&server), calls, "100 checks without a round trip");
    assert_eq!(hits(&store), 100);
    // Room for 2: the cache lets a check of 1 through to Redis, which admits it, and the
    // admission refreshes the entry (lead 48 s), which now proves that 2 do not fit.
    let d = store.check("g", &l, 1).await.expect("forwarded");
    assert!(d.allowed && d.remaining == 1, "{d:?}");
    assert!(!store.check("g", &l, 2).await.expect("cached").allowed);
    assert_eq!(evalshas(&server), calls + 1);
    assert!(store.check("g", &l, 1).await.expect("forwarded").allowed);
    assert!(!store.check("g", &l, 1).await.expect("cached").allowed);
    assert_eq!(evalshas(&server), calls + 2);
    assert_eq!(hits(&store), 102);

    // Windows: any cost over the remaining (fixed), the same cost (sliding).
    // A day's window: the test does not straddle two unless it runs at midnight UTC.
    let fixed = limit("3/d", Algorithm::FixedWindow, None);
    let sliding = limit("3/min", Algorithm::SlidingWindow, None);
    for l in [fixed, sliding] {
        for _ in 0..3 {
            assert!(store.check("w", &l, 1).await.expect("ok").allowed);
        }
        let first = store.check("w", &l, 1).await.expect("denied");
        assert!(!first.allowed);
        let calls = evalshas(&server);
        for _ in 0..20 {
            let d = store.check("w", &l, 1).await.expect("cached");
            assert_eq!((d.allowed, d.limit, d.remaining), (false, 3, 0));
            assert!(d.retry_after_ms <= first.retry_after_ms);
            assert!(d.reset_after_ms <= first.reset_after_ms);
        }
        assert_eq!(evalshas(&server), calls, "{l}");
        assert!(!store.check("w", &l, 2).await.expect("denied").allowed);
        let forwarded = match l.algorithm() {
            Algorithm::FixedWindow => 0,
            _ => 1,
        };
        assert_eq!(evalshas(&server), calls + forwarded, "{l}");
        assert!(store.check("w", &l, 0).await.expect("a peek").allowed);
        assert_eq!(
            evalshas(&server),
            calls + forwarded + 1,
            "a peek asks Redis"
        );
    }
}

#[tokio::test]
async fn a_reset_here_clears_the_cache_and_one_elsewhere_waits_for_the_retry_time() {
    let server = server();
    let (cache, plain) = (cached(&server, 100).await, store(&server).await);
    let l = limit("1/min", Algorithm::Gcra, None);
    assert!(cache.check("here", &l, 1).await.expect("ok").allowed);
    assert!(!cache.check("here", &l, 1).await.expect("denied").allowed);
    assert!(!cache.check("here", &l, 1).await.expect("cached").allowed);
    assert_eq!(hits(&cache), 1);
    assert!(cache.reset("here").await.expect("reset"));
    assert!(cache.check("here", &l, 1).await.expect("ok").allowed);
    assert_eq!(hits(&cache), 1);

    // A reset through another store: this one's cache denies until the retry time (the
    // documented limit), and not after it.
    let l = limit("1/s", Algorithm::Gcra, None);
    assert!(cache.check("there", &l, 1).await.expect("ok").allowed);
    let denied = cache.check("there", &l, 1).await.expect("denied");
    let learned = Instant::now();
    assert!(!denied.allowed);
    assert!(plain.reset("there").await.expect("reset"));
    assert_eq!(
        plain.check("there", &l, 0).await.expect("peek").remaining,
        1
    );
    let d = cache.check("there", &l, 1).await.expect("cached");
    assert!(!d.allowed && hits(&cache) == 2, "{d:?}");
    tokio::time::sleep_until((learned + Duration::from_millis(denied.retry_after_ms)).into()).await;
    assert!(cache.check("there", &l, 1).await.expect("ok").allowed);
}

#[tokio::test]
async fn a_failed_call_empties_the_cache() {
    let mut server = server();
    let config = config(&server).over_limit_cache(100);
    let store = RedisStore::connect(&config).await.expect("connects");
    let l = limit("1/min", Algorithm::Gcra, None);
    assert!(store.check("k", &l, 1).await.expect("ok").allowed);
    assert!(!store.check("k", &l, 1).await.expect("denied").allowed);
    server.kill();
    // A cached denial needs no Redis.
    assert!(!store.check("k", &l, 1).await.expect("cached").allowed);
    assert_eq!(store.over_limit_cache_entries(), Some(1));
    assert!(store.ping().await.expect_err("down").is_transient());
    assert_eq!(store.over_limit_cache_entries(), Some(0));
    // Redis comes back empty (no persistence): the key has room again.
    server.restart().expect("restarts");
    let deadline = Instant::now() + Duration::from_secs(10);
    let d: Decision = loop {
        match store.check("k", &l, 1).await {
            Ok(d) => break d,
            Err(e) if Instant::now() < deadline => assert!(e.is_transient(), "{e}"),
            Err(e) => panic!("Redis did not come back: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(d.allowed, "{d:?}");
}

#[tokio::test]
async fn the_cache_holds_at_most_its_cap() {
    let server = server();
    let store = cached(&server, 50).await;
    let l = limit("1/d", Algorithm::FixedWindow, None);
    for i in 0..400 {
        let key = format!("many:{i}");
        assert!(store.check(&key, &l, 1).await.expect("ok").allowed);
        assert!(!store.check(&key, &l, 1).await.expect("denied").allowed);
        let held = store.over_limit_cache_entries().expect("on");
        assert!((1..=50).contains(&held), "{held} entries");
    }
    // The latest denials are still answered locally.
    let calls = evalshas(&server);
    assert!(
        !store
            .check("many:399", &l, 1)
            .await
            .expect("cached")
            .allowed
    );
    assert_eq!(evalshas(&server), calls);
}

#[tokio::test]
async fn the_cache_is_off_unless_asked_for() {
    let server = server();
    let plain = store(&server).await;
    assert_eq!(plain.over_limit_cache_hits(), None);
    assert_eq!(
        RedisConfig::parse(&server.url())
            .expect("url")
            .over_limit_cache_keys,
        0
    );
    let l = limit("1/min", Algorithm::Gcra, None);
    assert!(plain.check("k", &l, 1).await.expect("ok").allowed);
    let calls = evalshas(&server);
    for _ in 0..5 {
        assert!(!plain.check("k", &l, 1).await.expect("denied").allowed);
    }
    assert_eq!(evalshas(&server), calls + 5);
}
