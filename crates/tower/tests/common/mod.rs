//! Shared test helpers: a Router whose handlers count their calls, requests with a client
//! address, and a MemoryStore on a fake clock.
#![allow(dead_code)] // Each test binary uses its own subset.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::get;
use http::{Request, Response};
use serde_json::Value;
use tollgate_core::{Algorithm, DynStore, FakeClock, Limit};
use tollgate_memory::MemoryStore;
use tower::ServiceExt;

/// A store on a clock that moves only when told to.
pub struct Fixture {
    pub clock: FakeClock,
    pub memory: Arc<MemoryStore<FakeClock>>,
    pub store: Arc<dyn DynStore>,
    pub calls: Arc<AtomicUsize>,
}

impl Fixture {
    pub fn new() -> Fixture {
        let clock = FakeClock::at_millis(1_700_000_000_000);
        let memory = Arc::new(MemoryStore::builder().clock(clock.clone()).build());
        let store: Arc<dyn DynStore> = memory.clone();
        Fixture {
            clock,
            memory,
            store,
            calls: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// How many times a handler ran.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// `/`, `/search` and `/users/{id}`, each answering "ok" and counting the call.
    pub fn router(&self) -> Router {
        let calls = self.calls.clone();
        let handler = move || {
            let calls = calls.clone();
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                "ok"
            }
        };
        Router::new()
            .route("/", get(handler.clone()))
            .route("/search", get(handler.clone()))
            .route("/users/{id}", get(handler))
    }

    pub fn advance_ms(&self, ms: u64) {
        self.clock.advance(std::time::Duration::from_millis(ms));
    }
}

pub fn limit(rate: &str) -> Limit {
    Limit::gcra(rate.parse().expect("rate"))
}

pub fn strict(rate: &str) -> Limit {
    Limit::new(rate.parse().expect("rate"), Algorithm::Strict, None).expect("limit")
}

/// A GET from `peer` (as axum's `ConnectInfo` would insert it) with extra headers.
pub fn get_from(path: &str, peer: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut request = get_no_peer(path, headers);
    let peer: SocketAddr = peer.parse().expect("peer address");
    request.extensions_mut().insert(ConnectInfo(peer));
    request
}

/// A GET without any client address.
pub fn get_no_peer(path: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut builder = Request::get(path);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Body::empty()).expect("request")
}

pub async fn send(app: &Router, request: Request<Body>) -> Response<Body> {
    app.clone().oneshot(request).await.expect("infallible")
}

/// The status of a response to `request`.
pub async fn status(app: &Router, request: Request<Body>) -> u16 {
    send(app, request).await.status().as_u16()
}

pub fn header<'a>(response: &'a Response<Body>, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

/// A problem+json body, after checking the media type and the RFC 9457 members.
pub async fn problem(response: Response<Body>) -> Value {
    assert_eq!(
        header(&response, "content-type"),
        Some("application/problem+json")
    );
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .expect("body");
    let body: Value = serde_json::from_slice(&bytes).expect("json body");
    assert_eq!(body["type"], "about:blank");
    assert_eq!(body["status"], status);
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "{body}"
    );
    body
}
