//! An axum app rate-limited by `tollgate-tower`, in memory.
//!
//! - `GET /`: 30 requests a minute per client IP, in bursts of up to 5 (policy `per-ip`).
//! - `GET /search?q=…`: 10 a minute per API key (`x-api-key` header), in bursts of up to 2
//!   (policy `search`); a request without the header is answered 400.
//!
//! Try it:
//!
//! ```text
//! cargo run -p tollgate-example-axum            # or: -- --addr 127.0.0.1:8080
//! curl -i http://127.0.0.1:3000/                 # RateLimit-Policy: "per-ip";q=5;w=10
//! for i in $(seq 6); do curl -s -o /dev/null -w '%{http_code}\n' http://127.0.0.1:3000/; done
//! curl -i -H 'x-api-key: k1' 'http://127.0.0.1:3000/search?q=rust'
//! curl -i -H 'x-api-key: k1' 'http://127.0.0.1:3000/search?q=rust'
//! curl -i -H 'x-api-key: k1' 'http://127.0.0.1:3000/search?q=rust'   # 429, Retry-After: 6
//! curl -i 'http://127.0.0.1:3000/search?q=rust'                       # 400: no API key
//! ```
//!
//! The address can also come from `TOLLGATE_EXAMPLE_ADDR`.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use axum::extract::{ConnectInfo, Query};
use axum::routing::get;
use clap::Parser;
use tollgate_core::{Algorithm, DynStore, Limit};
use tollgate_memory::MemoryStore;
use tollgate_tower::RateLimitLayer;

/// An axum app rate-limited by tollgate.
#[derive(Parser, Debug)]
struct Args {
    /// The address to listen on.
    #[arg(long, env = "TOLLGATE_EXAMPLE_ADDR", default_value = "127.0.0.1:3000")]
    addr: SocketAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let store: Arc<dyn DynStore> = Arc::new(MemoryStore::new());
    let app = app(store)?;
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    println!("listening on http://{}", listener.local_addr()?);
    // Connect info gives the layer each client's address (`key_by_client_ip`).
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        // If the signal cannot be installed, run until killed.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    })
    .await
    .context("server failed")
}

/// The app: each route group has its own layer because each is keyed differently;
/// `route_layer` keeps unknown paths (404) out of the limits.
fn app(store: Arc<dyn DynStore>) -> Result<Router, tollgate_core::Error> {
    let per_ip = RateLimitLayer::new(
        store.clone(),
        Limit::new("30/min".parse()?, Algorithm::Gcra, Some(5))?,
    )
    .policy_name("per-ip")
    .key_by_client_ip();
    let per_key = RateLimitLayer::new(
        store,
        Limit::new("10/min".parse()?, Algorithm::Gcra, Some(2))?,
    )
    .policy_name("search")
    .key_by_header("x-api-key");

    let root = Router::new().route("/", get(hello)).route_layer(per_ip);
    let search = Router::new()
        .route("/search", get(search))
        .route_layer(per_key);
    Ok(root.merge(search))
}

async fn hello(ConnectInfo(peer): ConnectInfo<SocketAddr>) -> String {
    format!("hello, {}\n", peer.ip())
}

#[derive(serde::Deserialize)]
struct SearchQuery {
    #[serde(default)]
    q: String,
}

async fn search(Query(query): Query<SearchQuery>) -> String {
    format!("no results for {:?} (this is an example)\n", query.q)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use http::Request;
    use tollgate_core::FakeClock;
    use tower::ServiceExt;

    fn fixture() -> Router {
        let clock = FakeClock::at_millis(1_700_000_000_000);
        let store: Arc<dyn DynStore> = Arc::new(MemoryStore::builder().clock(clock).build());
        app(store).expect("valid limits")
    }

    async fn status(app: &Router, request: Request<Body>) -> u16 {
        let response = app.clone().oneshot(request).await.expect("infallible");
        response.status().as_u16()
    }

    fn from(path: &str, peer: &str, api_key: Option<&str>) -> Request<Body> {
        let mut builder = Request::get(path);
        if let Some(key) = api_key {
            builder = builder.header("x-api-key", key);
        }
        let mut request = builder.body(Body::empty()).expect("request");
        let peer: SocketAddr = peer.parse().expect("peer");
        request.extensions_mut().insert(ConnectInfo(peer));
        request
    }

    #[tokio::test]
    async fn root_is_limited_per_ip() {
        let app = fixture();
        for _ in 0..5 {
            assert_eq!(status(&app, from("/", "192.0.2.1:1", None)).await, 200);
        }
        assert_eq!(status(&app, from("/", "192.0.2.1:2", None)).await, 429);
        assert_eq!(status(&app, from("/", "192.0.2.2:1", None)).await, 200);
        assert_eq!(
            status(&app, from("/nowhere", "192.0.2.1:1", None)).await,
            404
        );
    }

    #[tokio::test]
    async fn search_is_limited_per_api_key() {
        let app = fixture();
        let search = |key| from("/search?q=x", "192.0.2.1:1", key);
        assert_eq!(status(&app, search(Some("k1"))).await, 200);
        assert_eq!(status(&app, search(Some("k1"))).await, 200);
        assert_eq!(status(&app, search(Some("k1"))).await, 429);
        assert_eq!(status(&app, search(Some("k2"))).await, 200);
        assert_eq!(status(&app, search(None)).await, 400);
        // The per-IP policy is separate: this client can still use `/`.
        assert_eq!(status(&app, from("/", "192.0.2.1:1", None)).await, 200);
    }
}
