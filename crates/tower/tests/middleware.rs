//! The layer driven through an axum Router with `oneshot`, on a MemoryStore whose clock
//! moves only when the test says so.
// They need axum's ConnectInfo and MatchedPath, read only with the `axum` feature.
#![cfg(feature = "axum")]

mod common;

use common::{Fixture, get_from, get_no_peer, header, limit, problem, send, status, strict};
use std::sync::Arc;

use tollgate_core::{Check, Decision, DynStore, Error, Limit, MultiDecision, Store};
use tollgate_tower::{MissingKey, OnStoreError, RateLimitLayer};

const A: &str = "192.0.2.1:40000";
const B: &str = "192.0.2.2:40000";

#[tokio::test]
async fn allowed_then_denied_then_refilled() {
    let f = Fixture::new();
    let layer = RateLimitLayer::new(f.store.clone(), limit("2/10s")).policy_name("basic");
    let app = f.router().layer(layer);

    for remaining in [1, 0] {
        let ok = send(&app, get_from("/", A, &[])).await;
        assert_eq!(ok.status(), 200);
        assert_eq!(header(&ok, "ratelimit-policy"), Some(r#""basic";q=2;w=10"#));
        let state = format!(r#""basic";r={remaining};t={}"#, 5 * (2 - remaining));
        assert_eq!(header(&ok, "ratelimit"), Some(state.as_str()));
        assert_eq!(header(&ok, "retry-after"), None);
    }
    assert_eq!(f.calls(), 2);

    let denied = send(&app, get_from("/", A, &[])).await;
    assert_eq!(denied.status(), 429);
    assert_eq!(header(&denied, "retry-after"), Some("5"));
    assert_eq!(header(&denied, "ratelimit"), Some(r#""basic";r=0;t=10"#));
    assert_eq!(
        header(&denied, "ratelimit-policy"),
        Some(r#""basic";q=2;w=10"#)
    );
    let body = problem(denied).await;
    assert_eq!(body["title"], "Too Many Requests");
    assert_eq!(body["retry_after_ms"], 5000);
    assert_eq!(body["policy"], "basic");
    assert!(body["detail"].as_str().is_some_and(|d| d.contains("5 s")));
    assert_eq!(f.calls(), 2, "the service is not called when denied");

    f.advance_ms(4999);
    assert_eq!(status(&app, get_from("/", A, &[])).await, 429);
    f.advance_ms(1);
    assert_eq!(status(&app, get_from("/", A, &[])).await, 200);
    assert_eq!(f.calls(), 3);
}

#[tokio::test]
async fn client_ips_are_independent_and_ports_do_not_matter() {
    let f = Fixture::new();
    let app = f
        .router()
        .layer(RateLimitLayer::new(f.store.clone(), limit("1/s")).key_by_client_ip());
    assert_eq!(status(&app, get_from("/", A, &[])).await, 200);
    assert_eq!(
        status(&app, get_from("/", "192.0.2.1:40001", &[])).await,
        429
    );
    assert_eq!(status(&app, get_from("/", B, &[])).await, 200);
    // An IPv4-mapped IPv6 peer is the same client as its IPv4 form.
    assert_eq!(
        status(&app, get_from("/", "[::ffff:192.0.2.2]:1", &[])).await,
        429
    );
}

#[tokio::test]
async fn store_keys_are_namespaced() {
    let f = Fixture::new();
    let app = f
        .router()
        .layer(RateLimitLayer::new(f.store.clone(), limit("5/s")).policy_name("basic"));
    assert_eq!(status(&app, get_from("/", A, &[])).await, 200);
    let peek = |key: &str| f.memory.check(key, &limit("5/s"), 0).expect("peek");
    assert_eq!(peek("mw:basic:192.0.2.1").remaining, 4);
    assert_eq!(peek("192.0.2.1").remaining, 5, "the bare key is untouched");

    let custom = f.router().layer(
        RateLimitLayer::new(f.store.clone(), limit("5/s"))
            .policy_name("basic")
            .key_prefix("app2"),
    );
    assert_eq!(status(&custom, get_from("/", A, &[])).await, 200);
    assert_eq!(peek("app2:basic:192.0.2.1").remaining, 4);
    assert_eq!(peek("mw:basic:192.0.2.1").remaining, 4);
}

#[tokio::test]
async fn trusted_forwarded_for_separates_clients_behind_a_proxy() {
    let f = Fixture::new();
    let proxy = "10.0.0.1:5000";
    let xff = |ip| get_from("/", proxy, &[("x-forwarded-for", ip)]);
    let untrusted = f
        .router()
        .layer(RateLimitLayer::new(f.store.clone(), limit("1/s")).policy_name("u"));
    assert_eq!(status(&untrusted, xff("203.0.113.1")).await, 200);
    assert_eq!(
        status(&untrusted, xff("203.0.113.2")).await,
        429,
        "spoofable"
    );

    let trusted = f.router().layer(
        RateLimitLayer::new(f.store.clone(), limit("1/s"))
            .policy_name("t")
            .trust_forwarded_for(),
    );
    assert_eq!(status(&trusted, xff("203.0.113.1, 10.0.0.9")).await, 200);
    assert_eq!(status(&trusted, xff("203.0.113.2")).await, 200);
    assert_eq!(status(&trusted, xff("203.0.113.1")).await, 429);
    // No header: the peer (the proxy) is the key.
    assert_eq!(status(&trusted, get_from("/", proxy, &[])).await, 200);
    assert_eq!(status(&trusted, get_from("/", proxy, &[])).await, 429);
}

#[tokio::test]
async fn header_keys_are_independent_and_required() {
    let f = Fixture::new();
    let layer = RateLimitLayer::new(f.store.clone(), limit("1/s")).key_by_header("X-Api-Key");
    let app = f.router().layer(layer);
    let key = |k| get_from("/", A, &[("x-api-key", k)]);
    assert_eq!(status(&app, key("k1")).await, 200);
    assert_eq!(status(&app, key("k1")).await, 429);
    assert_eq!(status(&app, key("k2")).await, 200);

    for request in [get_from("/", A, &[]), key(""), key("  ")] {
        let missing = send(&app, request).await;
        assert_eq!(missing.status(), 400);
        let body = problem(missing).await;
        assert_eq!(body["code"], "missing_key");
        assert!(
            body["detail"]
                .as_str()
                .is_some_and(|d| d.contains("x-api-key"))
        );
    }
    assert_eq!(f.calls(), 2, "rejected requests never reach the service");

    // A key the store cannot hold is the request's fault, not the store's.
    let long = "k".repeat(2000);
    let too_long = send(&app, key(&long)).await;
    assert_eq!(too_long.status(), 400);
    assert_eq!(problem(too_long).await["code"], "invalid_key");
}

#[tokio::test]
async fn closure_keys_and_missing_key_choices() {
    let f = Fixture::new();
    let user = |parts: &http::request::Parts| {
        let query = parts.uri.query()?;
        query.strip_prefix("user=").map(str::to_string)
    };
    let layer = RateLimitLayer::new(f.store.clone(), limit("1/s")).key_by(user);
    let app = f.router().layer(layer.clone());
    assert_eq!(status(&app, get_no_peer("/?user=ann", &[])).await, 200);
    assert_eq!(status(&app, get_no_peer("/?user=ann", &[])).await, 429);
    assert_eq!(status(&app, get_no_peer("/?user=bob", &[])).await, 200);
    let missing = send(&app, get_no_peer("/", &[])).await;
    assert_eq!(missing.status(), 400);
    assert_eq!(problem(missing).await["code"], "missing_key");

    let allow = f
        .router()
        .layer(layer.clone().on_missing_key(MissingKey::Allow));
    for _ in 0..3 {
        let ok = send(&allow, get_no_peer("/", &[])).await;
        assert_eq!(ok.status(), 200);
        assert_eq!(header(&ok, "ratelimit"), None);
    }

    let shared = f
        .router()
        .layer(layer.on_missing_key(MissingKey::Shared("anonymous".into())));
    assert_eq!(status(&shared, get_no_peer("/", &[])).await, 200);
    assert_eq!(status(&shared, get_no_peer("/", &[])).await, 429);
    assert_eq!(status(&shared, get_no_peer("/?user=cat", &[])).await, 200);
}

#[tokio::test]
async fn no_client_address_is_a_server_error() {
    let f = Fixture::new();
    let app = f
        .router()
        .layer(RateLimitLayer::new(f.store.clone(), limit("1/s")));
    let response = send(&app, get_no_peer("/", &[])).await;
    assert_eq!(response.status(), 500);
    assert_eq!(problem(response).await["code"], "no_client_address");
    assert_eq!(f.calls(), 0);
}

#[tokio::test]
async fn route_limits_and_limit_by_pick_policies() {
    let f = Fixture::new();
    let layer = RateLimitLayer::new(f.store.clone(), limit("3/s"))
        .policy_name("basic")
        .route_limit("/search", strict("1/s"))
        .route_limit("/users/{id}", limit("2/s"))
        .limit_by(|parts| {
            let premium = parts.headers.get("x-plan").is_some_and(|v| v == "premium");
            premium.then(|| ("premium", limit("100/s")))
        });
    let app = f.router().layer(layer);

    let search = send(&app, get_from("/search", A, &[])).await;
    assert_eq!(
        header(&search, "ratelimit-policy"),
        Some(r#""/search";q=1;w=1"#)
    );
    assert_eq!(status(&app, get_from("/search", A, &[])).await, 429);
    // The other routes have their own buckets.
    let root = send(&app, get_from("/", A, &[])).await;
    assert_eq!(header(&root, "ratelimit"), Some(r#""basic";r=2;t=1"#));
    // Matched by route pattern: every user id shares the `/users/{id}` policy.
    let user = send(&app, get_from("/users/7", A, &[])).await;
    assert_eq!(
        header(&user, "ratelimit-policy"),
        Some(r#""/users/{id}";q=2;w=1"#)
    );
    assert_eq!(status(&app, get_from("/users/8", A, &[])).await, 200);
    assert_eq!(status(&app, get_from("/users/9", A, &[])).await, 429);
    // The closure wins over the route.
    let premium = send(&app, get_from("/search", A, &[("x-plan", "premium")])).await;
    assert_eq!(premium.status(), 200);
    assert_eq!(header(&premium, "ratelimit"), Some(r#""premium";r=99;t=1"#));
}

#[tokio::test]
async fn cost_by_prices_requests() {
    let f = Fixture::new();
    let layer = RateLimitLayer::new(f.store.clone(), limit("5/s")).cost_by(|parts| {
        parts
            .headers
            .get("x-cost")
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .unwrap_or(1)
    });
    let app = f.router().layer(layer);
    let cost = |c| get_from("/", A, &[("x-cost", c)]);
    let first = send(&app, cost("2")).await;
    assert_eq!(header(&first, "ratelimit"), Some(r#""default";r=3;t=1"#));
    assert_eq!(status(&app, cost("2")).await, 200);
    let denied = send(&app, cost("2")).await;
    assert_eq!(denied.status(), 429);
    assert_eq!(problem(denied).await["retry_after_ms"], 200);
    assert_eq!(
        status(&app, get_from("/", A, &[])).await,
        200,
        "cost 1 fits"
    );
    // A cost the policy can never admit: 400, not an endless 429.
    let never = send(&app, cost("6")).await;
    assert_eq!(never.status(), 400);
    assert_eq!(problem(never).await["code"], "cost_exceeds_limit");
    assert_eq!(f.calls(), 3);
}

#[tokio::test]
async fn route_layer_limits_only_matched_routes() {
    let f = Fixture::new();
    let app = f
        .router()
        .route_layer(RateLimitLayer::new(f.store.clone(), limit("1/s")));
    assert_eq!(status(&app, get_from("/", A, &[])).await, 200);
    assert_eq!(status(&app, get_from("/", A, &[])).await, 429);
    let missing = send(&app, get_from("/nowhere", A, &[])).await;
    assert_eq!(missing.status(), 404);
    assert_eq!(header(&missing, "ratelimit"), None);
}

/// A store that is always down: exercises the middleware's error path, not a store.
struct DownStore;

impl Store for DownStore {
    async fn check(&self, _: &str, _: &Limit, _: u64) -> Result<Decision, Error> {
        Err(down())
    }
    async fn check_all(&self, _: &[Check<'_>]) -> Result<MultiDecision, Error> {
        Err(down())
    }
    async fn reset(&self, _: &str) -> Result<(), Error> {
        Err(down())
    }
    async fn ping(&self) -> Result<(), Error> {
        Err(down())
    }
}

fn down() -> Error {
    Error::Store {
        message: "connection refused by 10.1.2.3:6379".into(),
        transient: true,
    }
}

#[tokio::test]
async fn store_errors_fail_closed_by_default_or_open_on_request() {
    let f = Fixture::new();
    let store: Arc<dyn DynStore> = Arc::new(DownStore);
    let layer = RateLimitLayer::new(store, limit("1/s"));
    let closed = f.router().layer(layer.clone());
    let response = send(&closed, get_from("/", A, &[])).await;
    assert_eq!(response.status(), 503);
    let body = problem(response).await;
    assert_eq!(body["code"], "store_unavailable");
    assert!(
        !body.to_string().contains("10.1.2.3"),
        "the store's message is logged, not sent: {body}"
    );
    assert_eq!(f.calls(), 0);

    let open = f
        .router()
        .layer(layer.on_store_error(OnStoreError::FailOpen));
    let response = send(&open, get_from("/", A, &[])).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "ratelimit"), None);
    assert_eq!(f.calls(), 1);
}
