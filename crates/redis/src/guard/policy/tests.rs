//! [`Guarded`]'s logic around the store: timeouts, the breaker, probes, ping and reset.
//! The store is `Switch` (see `guard::testing`), not a stand-in for Redis.

use std::time::Duration;

use tollgate_core::Store;

use crate::guard::testing::{FAIL, HANG, OK, OPEN_FOR, TIMEOUT, check, guarded, limit};
use crate::guard::{BreakerState, OnStoreFailure, Source};

#[tokio::test]
async fn a_healthy_store_decides() {
    let (g, _) = guarded(OnStoreFailure::Deny);
    let (d, source) = check(&g, "2/min").await;
    assert_eq!((d.allowed, d.remaining, source), (true, 1, Source::Store));
    assert_eq!(g.inner().calls(), 1);
    let health = g.health();
    assert_eq!(health.breaker, BreakerState::Closed);
    assert_eq!(
        (health.failures_total, health.fallback_decisions_total),
        (0, 0)
    );
    assert_eq!(health.last_error, None);
    assert!(g.ping().await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_hanging_store_is_answered_within_the_timeout() {
    let (g, _) = guarded(OnStoreFailure::Deny);
    g.inner().set(HANG);
    let started = tokio::time::Instant::now();
    let (d, source) = check(&g, "5/min").await;
    assert_eq!(started.elapsed(), TIMEOUT);
    assert!(!d.allowed);
    assert_eq!(source, Source::Fallback(OnStoreFailure::Deny));
    let health = g.health();
    assert_eq!(health.failures_total, 1);
    assert!(
        health
            .last_error
            .is_some_and(|e| e.contains("within 50 ms"))
    );
}

#[tokio::test(start_paused = true)]
async fn the_breaker_spares_the_store_then_probes_and_recovers() {
    let (g, clock) = guarded(OnStoreFailure::Local);
    g.inner().set(HANG);
    for _ in 0..3 {
        check(&g, "100/min").await;
    }
    let started = tokio::time::Instant::now();
    for _ in 0..10 {
        check(&g, "100/min").await;
    }
    assert_eq!(started.elapsed(), Duration::ZERO, "open: no waiting");
    assert_eq!(g.inner().calls(), 3);
    assert_eq!(g.health().rejected_total, 10);

    g.inner().set(OK);
    assert_eq!(
        check(&g, "100/min").await.1,
        Source::Fallback(OnStoreFailure::Local)
    );
    assert_eq!(g.inner().calls(), 3, "still open");
    clock.advance(OPEN_FOR);
    let (d, source) = check(&g, "100/min").await;
    assert_eq!(g.inner().calls(), 4, "the probe");
    assert_eq!((source, d.remaining), (Source::Store, 99));
    let health = g.health();
    assert_eq!(
        (health.breaker, health.last_error),
        (BreakerState::Closed, None)
    );
    assert_eq!(check(&g, "100/min").await.1, Source::Store);
    assert_eq!(g.inner().calls(), 5);
}

#[tokio::test]
async fn a_failed_probe_reopens() {
    let (g, clock) = guarded(OnStoreFailure::Deny);
    g.inner().set(FAIL);
    for _ in 0..3 {
        check(&g, "5/min").await;
    }
    clock.advance(OPEN_FOR);
    let (d, _) = check(&g, "5/min").await;
    assert_eq!(g.inner().calls(), 4);
    assert_eq!(d.retry_after_ms, 1_000);
    assert_eq!(
        (g.health().breaker, g.health().opened_total),
        (BreakerState::Open, 2)
    );
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_probe_does_not_wedge_the_breaker() {
    let (g, clock) = guarded(OnStoreFailure::Deny);
    g.inner().set(FAIL);
    for _ in 0..3 {
        check(&g, "5/min").await;
    }
    clock.advance(OPEN_FOR);
    g.inner().set(HANG);
    let short = tokio::time::timeout(Duration::from_millis(1), check(&g, "5/min")).await;
    assert!(short.is_err(), "the caller gave up on the probe");
    assert_eq!(g.health().breaker, BreakerState::HalfOpen);
    g.inner().set(OK);
    assert_eq!(check(&g, "5/min").await.1, Source::Store);
    assert_eq!(g.health().breaker, BreakerState::Closed);
}

#[tokio::test]
async fn ping_and_reset_report_failures_as_errors() {
    let (g, clock) = guarded(OnStoreFailure::Local);
    g.inner().set(FAIL);
    for _ in 0..5 {
        assert!(check(&g, "5/d").await.0.allowed);
    }
    let calls = g.inner().calls();
    let err = g.ping().await.expect_err("open");
    assert_eq!(err.code(), "store_unavailable");
    assert!(err.is_transient());
    assert!(err.to_string().contains("connection refused"), "{err}");
    assert_eq!(
        g.reset("k").await.map_err(|e| e.code()),
        Err("store_unavailable")
    );
    assert_eq!(
        g.inner().calls(),
        calls,
        "the open breaker kept them from the store"
    );
    assert!(check(&g, "5/d").await.0.allowed, "the local key was reset");
    assert_eq!(g.reset("").await.map_err(|e| e.code()), Err("invalid_key"));

    g.inner().set(OK);
    clock.advance(OPEN_FOR);
    assert!(g.ping().await.is_ok(), "the ping is the probe");
    assert_eq!(g.health().breaker, BreakerState::Closed);
    assert!(g.reset("k").await.is_ok());
    assert_eq!(g.tracked_keys(), None, "the inner store's answer");
}

#[tokio::test]
async fn it_is_usable_as_a_dyn_store() {
    let (g, _) = guarded(OnStoreFailure::Deny);
    let store: std::sync::Arc<dyn tollgate_core::DynStore> = std::sync::Arc::new(g);
    let handle = tokio::spawn(async move { store.check("k", &limit("1/s"), 1).await });
    assert!(handle.await.expect("joined").expect("decided").allowed);
}
