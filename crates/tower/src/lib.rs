//! tollgate for tower and axum: a rate-limiting middleware ([`RateLimitLayer`]) and the
//! IETF RateLimit header fields ([`headers`]).
//!
//! The layer decides in any tollgate store (`Arc<dyn DynStore>`): the in-process
//! `tollgate_memory::MemoryStore` for one instance, a shared store for many. Allowed
//! responses carry `RateLimit-Policy` and `RateLimit`; denied requests get `429` with
//! `Retry-After` and an RFC 9457 `application/problem+json` body, and never reach the
//! service.
//!
//! ```
//! use std::sync::Arc;
//! use axum::{Router, body::Body, routing::get};
//! use http::Request;
//! use tollgate_core::{Algorithm, Limit};
//! use tollgate_memory::MemoryStore;
//! use tollgate_tower::RateLimitLayer;
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = Arc::new(MemoryStore::new());
//! // 2 requests per second per API key; searches are stricter: 1 per second.
//! let layer = RateLimitLayer::new(store, Limit::gcra("2/s".parse()?))
//!     .policy_name("api")
//!     .key_by_header("x-api-key")
//!     .route_limit("/search", Limit::new("1/s".parse()?, Algorithm::Strict, None)?);
//! let app = Router::new()
//!     .route("/", get(|| async { "hello" }))
//!     .route("/search", get(|| async { "results" }))
//!     .layer(layer);
//!
//! let get = |path: &str| Request::get(path).header("x-api-key", "k1").body(Body::empty());
//! let ok = app.clone().oneshot(get("/")?).await?;
//! assert_eq!(ok.status(), 200);
//! assert_eq!(ok.headers()["ratelimit-policy"], r#""api";q=2;w=1"#);
//! assert_eq!(ok.headers()["ratelimit"], r#""api";r=1;t=1"#);
//!
//! assert_eq!(app.clone().oneshot(get("/search")?).await?.status(), 200);
//! let denied = app.clone().oneshot(get("/search")?).await?;
//! assert_eq!(denied.status(), 429);
//! assert_eq!(denied.headers()["retry-after"], "1");
//! assert_eq!(denied.headers()["content-type"], "application/problem+json");
//!
//! // Without the header there is nothing to limit by: 400, not a free pass.
//! let anonymous = app.oneshot(Request::get("/").body(Body::empty())?).await?;
//! assert_eq!(anonymous.status(), 400);
//! # Ok(())
//! # }
//! ```
//!
//! To key by client address instead, keep the default [`key_by_client_ip`] and serve with
//! `app.into_make_service_with_connect_info::<SocketAddr>()`.
//!
//! [`key_by_client_ip`]: RateLimitLayer::key_by_client_ip
#![deny(missing_docs)]

mod config;
pub mod headers;
mod key;
mod layer;
mod response;
mod service;

pub use config::OnStoreError;
pub use key::MissingKey;
pub use layer::RateLimitLayer;
pub use response::PROBLEM_JSON;
pub use service::{RateLimit, ResponseFuture};
