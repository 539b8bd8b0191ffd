//! `GET /healthz`, `/readyz`, `/metrics` and `/openapi.json`.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::AppState;
use crate::ApiError;

/// What `prometheus-client`'s text encoder writes: the OpenMetrics text format (it ends in
/// `# EOF`), which Prometheus negotiates and parses.
const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The hand-written OpenAPI 3.1 document; a test checks it lists every route.
const OPENAPI: &str = include_str!("../../openapi.json");

pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// 200 when the store answers, 503 otherwise; with a shared store, the body also shows its
/// health (breaker state, last error, failure and fallback counts).
pub(crate) async fn readyz(State(state): State<AppState>) -> axum::response::Response {
    let ready = state.service.ready().await;
    let store = state.service.store_health().map(|h| {
        json!({
            "breaker": h.breaker.name(),
            "last_error": h.last_error,
            "failures_total": h.failures_total,
            "fallback_decisions_total": h.fallback_decisions_total,
            "breaker_opened_total": h.opened_total,
        })
    });
    let with_store = |mut body: Value| {
        if let (Some(store), Some(map)) = (store.clone(), body.as_object_mut()) {
            map.insert("store".to_string(), store);
        }
        Json(body)
    };
    match ready {
        Ok(()) => with_store(json!({ "status": "ready" })).into_response(),
        // Whatever the store said, not being ready is the server's state, not the caller's
        // mistake: load balancers expect 503.
        Err(e) => {
            let e = ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE.as_u16(),
                ..e
            };
            let body = json!({ "error": { "code": e.code, "message": e.message } });
            (StatusCode::SERVICE_UNAVAILABLE, with_store(body)).into_response()
        }
    }
}

pub(crate) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        state.service.metrics_text(),
    )
}

pub(crate) async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}
