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

pub(crate) async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    match state.service.ready().await {
        Ok(()) => Ok(Json(json!({ "status": "ready" }))),
        // Whatever the store said, not being ready is the server's state, not the caller's
        // mistake: load balancers expect 503.
        Err(e) => Err(ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE.as_u16(),
            ..e
        }),
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
