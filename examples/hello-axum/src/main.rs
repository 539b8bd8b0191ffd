//! The baseline of the HTTP benchmark (`scripts/bench/http.sh`): an axum hello-world that
//! does the HTTP work of `tollgate serve`'s `POST /v1/check` without the rate limiting.
//!
//! It is built like `tollgate serve`: the same workspace release profile, the same tokio
//! multi-thread runtime (`Builder::new_multi_thread().enable_all()`, one worker per CPU the
//! process may run on), `axum::serve` with connect info. `POST /v1/check` reads the body with
//! axum's `Json` extractor into a `serde_json::Value` and answers a fixed JSON object of
//! about the size of a tollgate decision. There is no tracing layer, no metrics and no
//! RateLimit headers: whatever tollgate spends on those counts as its overhead.
//!
//! ```text
//! cargo run --release -p tollgate-example-hello -- --addr 127.0.0.1:3001
//! curl -s -H 'content-type: application/json' -d '{"key":"user:1","policy":"enterprise"}' \
//!     http://127.0.0.1:3001/v1/check
//! ```
#![deny(missing_docs)]

use std::net::SocketAddr;

use anyhow::Context as _;
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::Parser;
use serde::Serialize;
use serde_json::Value;

/// An axum hello-world answering `POST /v1/check` (the HTTP benchmark's baseline).
#[derive(Parser, Debug)]
struct Args {
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:3001")]
    addr: SocketAddr,
}

/// The answer: the shape and about the size of tollgate's decision body.
#[derive(Serialize)]
struct Answer<'a> {
    allowed: bool,
    limit: u64,
    remaining: u64,
    retry_after_ms: u64,
    reset_after_ms: u64,
    policy: &'a str,
}

/// `POST /v1/check`: parse the JSON body, answer a fixed decision.
async fn check(Json(body): Json<Value>) -> Json<Answer<'static>> {
    // Look at the body, as a handler would, so the parse is not dead work.
    let has_key = body.get("key").is_some_and(Value::is_string);
    Json(Answer {
        allowed: has_key,
        limit: 200,
        remaining: 199,
        retry_after_ms: 0,
        reset_after_ms: 60,
        policy: "enterprise",
    })
}

/// `GET /healthz`, for the benchmark script to wait on.
async fn healthz() -> &'static str {
    "ok"
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let app = Router::new()
            .route("/v1/check", post(check))
            .route("/healthz", get(healthz));
        let listener = tokio::net::TcpListener::bind(args.addr)
            .await
            .with_context(|| format!("cannot listen on {}", args.addr))?;
        let addr = listener.local_addr().unwrap_or(args.addr);
        eprintln!("hello listening on {addr}");
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("serving")
    })
}
