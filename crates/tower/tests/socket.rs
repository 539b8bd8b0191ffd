//! The layer behind a real socket: `axum::serve` with connect info, and reqwest.
// They need axum's ConnectInfo and MatchedPath, read only with the `axum` feature.
#![cfg(feature = "axum")]

mod common;

use std::net::SocketAddr;

use common::{Fixture, limit};
use tollgate_tower::RateLimitLayer;

#[tokio::test]
async fn key_by_client_ip_works_over_a_real_socket() {
    let f = Fixture::new();
    let app = f.router().layer(
        RateLimitLayer::new(f.store.clone(), limit("2/min"))
            .policy_name("per-ip")
            .key_by_client_ip(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local address");
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });

    // No connection reuse: each request comes from a new port, yet from the same client.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let url = format!("http://{addr}/");
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let response = client.get(&url).send().await.expect("request");
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            assert_eq!(
                response.headers()["retry-after"].to_str().expect("ascii"),
                "30"
            );
            let body: serde_json::Value = response.json().await.expect("problem body");
            assert_eq!(body["retry_after_ms"], 30_000);
        } else {
            assert_eq!(
                response.headers()["ratelimit-policy"],
                r#""per-ip";q=2;w=60"#
            );
        }
    }
    assert_eq!(statuses, [200, 200, 429]);
    assert_eq!(f.calls(), 2);
    // The bucket is the loopback address's, under the policy's namespace.
    let peek = f
        .memory
        .check("mw:per-ip:127.0.0.1", &limit("2/min"), 0)
        .expect("peek");
    assert_eq!(peek.remaining, 0);
    server.abort();
}
