//! Each policy's answers while the store fails. The store is `Switch` (see
//! `guard::testing`), not a stand-in for Redis.

use std::time::Duration;

use tollgate_core::{Check, Decision, Error, Store};

use crate::guard::testing::{FAIL, OK, OPEN_FOR, PERMANENT, check, guarded, limit};
use crate::guard::{BreakerState, OnStoreFailure, Source};

#[tokio::test]
async fn deny_answers_a_denial_until_the_next_probe() {
    let (g, clock) = guarded(OnStoreFailure::Deny);
    g.inner().set(FAIL);
    let (d, source) = check(&g, "10/min").await;
    assert_eq!(source, Source::Fallback(OnStoreFailure::Deny));
    let expected = Decision {
        allowed: false,
        limit: 10,
        remaining: 0,
        retry_after_ms: 1, // still closed: the next call tries the store
        reset_after_ms: 1,
    };
    assert_eq!(d, expected);
    check(&g, "10/min").await;
    let (d, _) = check(&g, "10/min").await; // the third failure opens the breaker
    assert_eq!((d.retry_after_ms, d.reset_after_ms), (1_000, 1_000));
    clock.advance(Duration::from_millis(400));
    assert_eq!(check(&g, "10/min").await.0.retry_after_ms, 600);
    let health = g.health();
    assert_eq!(health.breaker, BreakerState::Open);
    assert_eq!(
        (health.failures_total, health.fallback_decisions_total),
        (3, 4)
    );
    assert_eq!(
        health.last_error.as_deref(),
        Some("store error: connection refused")
    );
}

#[tokio::test]
async fn allow_admits_without_counting() {
    let (g, _) = guarded(OnStoreFailure::Allow);
    g.inner().set(FAIL);
    for _ in 0..5 {
        let (d, source) = check(&g, "2/min").await;
        assert_eq!(source, Source::Fallback(OnStoreFailure::Allow));
        let full = Decision {
            allowed: true,
            limit: 2,
            remaining: 2,
            retry_after_ms: 0,
            reset_after_ms: 0,
        };
        assert_eq!(d, full);
    }
    assert!(g.local_store().is_none());
}

#[tokio::test]
async fn local_keeps_limiting_while_failing() {
    let (g, _) = guarded(OnStoreFailure::Local);
    g.inner().set(FAIL);
    for n in 1..=5 {
        let (d, source) = check(&g, "5/min").await;
        assert_eq!(source, Source::Fallback(OnStoreFailure::Local));
        assert!(d.allowed, "request {n}");
        assert_eq!(d.remaining, 5 - n);
    }
    let (sixth, _) = check(&g, "5/min").await;
    assert!(!sixth.allowed);
    assert_eq!(sixth.retry_after_ms, 12_000);
    assert_eq!(g.inner().calls(), 3, "the breaker opened after 3 failures");
    assert_eq!(g.health().fallback_decisions_total, 6);
}

#[tokio::test]
async fn bad_input_and_permanent_errors_pass_through() {
    let (g, _) = guarded(OnStoreFailure::Allow);
    g.inner().set(PERMANENT);
    for _ in 0..5 {
        let err = g
            .check("k", &limit("5/min"), 1)
            .await
            .expect_err("wrongtype");
        assert_eq!(
            err,
            Error::Store {
                message: "WRONGTYPE".into(),
                transient: false
            }
        );
    }
    assert_eq!(g.health().breaker, BreakerState::Closed);
    assert_eq!(
        (
            g.health().failures_total,
            g.health().fallback_decisions_total
        ),
        (0, 0)
    );

    g.inner().set(FAIL);
    for _ in 0..3 {
        g.check("k", &limit("5/min"), 1).await.expect("allowed");
    }
    assert_eq!(g.health().breaker, BreakerState::Open);
    let calls = g.inner().calls();
    let err = g
        .check("", &limit("5/min"), 1)
        .await
        .expect_err("empty key");
    assert_eq!(err.code(), "invalid_key");
    let err = g
        .check("k", &limit("5/min"), 6)
        .await
        .expect_err("too costly");
    assert_eq!(err.code(), "cost_exceeds_limit");
    let batch = [
        Check::new("k", limit("5/min"), 1),
        Check::new("", limit("5/min"), 1),
    ];
    assert_eq!(
        g.check_all(&batch).await.map_err(|e| e.code()),
        Err("invalid_key")
    );
    assert_eq!(g.inner().calls(), calls);
    assert_eq!(g.health().fallback_decisions_total, 3);
}

fn batch() -> [Check<'static>; 2] {
    [
        Check::new("a", limit("5/min"), 1),
        Check::new("b", limit("1/min"), 1),
    ]
}

#[tokio::test]
async fn batches_follow_the_policy() {
    let (deny, _) = guarded(OnStoreFailure::Deny);
    deny.inner().set(FAIL);
    let (multi, source) = deny.check_all_with_source(&batch()).await.expect("decided");
    assert_eq!(source, Source::Fallback(OnStoreFailure::Deny));
    assert!(!multi.allowed && multi.retry_after_ms == 1);
    assert!(
        multi
            .decisions
            .iter()
            .all(|d| !d.allowed && d.remaining == 0)
    );
    assert_eq!(multi.decisions[1].limit, 1);

    let (allow, _) = guarded(OnStoreFailure::Allow);
    allow.inner().set(FAIL);
    let multi = allow.check_all(&batch()).await.expect("decided");
    assert!(multi.allowed && multi.decisions.iter().all(|d| d.allowed));

    let (local, _) = guarded(OnStoreFailure::Local);
    local.inner().set(FAIL);
    assert!(local.check_all(&batch()).await.expect("decided").allowed);
    let second = local.check_all(&batch()).await.expect("decided");
    assert!(!second.allowed, "b is spent on the local store");
    assert_eq!(
        second.decisions[0].remaining, 4,
        "all or nothing: a kept its token"
    );
}

#[tokio::test]
async fn local_state_is_abandoned_at_recovery_and_kept_for_the_next_outage() {
    let (g, clock) = guarded(OnStoreFailure::Local);
    g.inner().set(FAIL);
    for _ in 0..5 {
        assert!(check(&g, "5/d").await.0.allowed);
    }
    assert!(!check(&g, "5/d").await.0.allowed);
    g.inner().set(OK);
    clock.advance(OPEN_FOR);
    let (d, source) = check(&g, "5/d").await;
    assert_eq!((source, d.allowed, d.remaining), (Source::Store, true, 4));
    g.inner().set(FAIL);
    let (d, source) = check(&g, "5/d").await;
    assert_eq!(
        (source, d.allowed),
        (Source::Fallback(OnStoreFailure::Local), false)
    );
}

#[test]
fn policy_names_round_trip() {
    for p in OnStoreFailure::ALL {
        assert_eq!(p.name().parse::<OnStoreFailure>(), Ok(p));
    }
    let err = "open".parse::<OnStoreFailure>().expect_err("unknown");
    assert!(err.to_string().contains("\"open\""), "{err}");
}
