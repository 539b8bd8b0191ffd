//! The HTTP JSON API (axum). [`app`] builds the router, so tests and `tollgate serve` serve
//! the same thing; `/openapi.json` documents every route below.
//!
//! | route | method | what |
//! |---|---|---|
//! | `/v1/check` | POST | one decision |
//! | `/v1/check/multi` | POST | a batch decided all-or-nothing |
//! | `/v1/reset` | POST | forget a key (admin) |
//! | `/v1/reload` | POST | re-read the config file (admin) |
//! | `/v1/policies` | GET | the configured policies |
//! | `/v1/stats` | GET | a snapshot for dashboards and `tollgate monitor` (admin) |
//! | `/v1/controllers/{name}` | POST | a unified controller reports its usage (admin) |
//! | `/v1/queues…` | * | the job queues (see `queues.rs`) |
//! | `/healthz`, `/readyz`, `/metrics`, `/openapi.json` | GET | operations |
//! | `/`, `/dashboard/app.js`, `/dashboard/style.css` | GET | the web dashboard (`dashboard.rs`) |
//!
//! Every error, including unknown routes and bad bodies, is
//! `{"error":{"code":"…","message":"…"}}`.

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use tower_http::trace::TraceLayer;

use crate::Service;

mod admin;
mod body;
mod check;
mod dashboard;
mod error;
mod ops;
mod queues;
mod stats;

/// What every handler shares.
#[derive(Clone)]
struct AppState {
    service: Arc<Service>,
}

/// The router of every HTTP endpoint. `POST /v1/reload` re-reads the service's config file
/// ([`Service::reload`]); a service without one answers it 404 `reload_unavailable`.
pub fn app(service: Arc<Service>) -> Router {
    let state = AppState { service };
    Router::new()
        .route("/v1/check", post(check::check))
        .route("/v1/check/multi", post(check::check_multi))
        .route("/v1/reset", post(admin::reset))
        .route("/v1/reload", post(admin::reload))
        .route("/v1/policies", get(admin::policies))
        .route("/v1/stats", get(stats::stats))
        .route("/v1/controllers/{name}", post(stats::controller_report))
        .route("/", get(dashboard::index))
        .route("/dashboard/app.js", get(dashboard::app_js))
        .route("/dashboard/style.css", get(dashboard::style_css))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
        .merge(queues::routes())
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        // A 5xx (say /readyz while the store is down, polled by a load balancer) is the
        // server's state, already logged where it changes; at ERROR it would flood the log.
        .layer(
            TraceLayer::new_for_http().on_failure(
                tower_http::trace::DefaultOnFailure::new().level(tracing::Level::DEBUG),
            ),
        )
        .with_state(state)
}
