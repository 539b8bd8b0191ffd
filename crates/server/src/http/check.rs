//! `POST /v1/check` and `POST /v1/check/multi`: parse, ask the service, answer the decision
//! with the RateLimit headers.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tollgate_core::Decision;
use tollgate_tower::headers;

use super::AppState;
use super::body::JsonBody;
use super::error::invalid_request;
use crate::{ApiError, CheckRequest};

/// The API label of the metrics.
const API: &str = "http";

/// The decision fields of CONTRACT §4, and the policy decided under.
#[derive(Serialize)]
pub(crate) struct DecisionBody<'a> {
    allowed: bool,
    limit: u64,
    remaining: u64,
    retry_after_ms: u64,
    reset_after_ms: u64,
    policy: &'a str,
}

impl<'a> DecisionBody<'a> {
    fn new(d: &Decision, policy: &'a str) -> DecisionBody<'a> {
        DecisionBody {
            allowed: d.allowed,
            limit: d.limit,
            remaining: d.remaining,
            retry_after_ms: d.retry_after_ms,
            reset_after_ms: d.reset_after_ms,
            policy,
        }
    }
}

pub(crate) async fn check(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<CheckRequest>,
) -> Result<Response, ApiError> {
    let checked = state.service.check(&req, API).await?;
    let mut headers = HeaderMap::new();
    headers::insert(
        &mut headers,
        &checked.policy,
        &checked.limit,
        &checked.decision,
    );
    let body = DecisionBody::new(&checked.decision, &checked.policy);
    Ok((headers, Json(body)).into_response())
}

/// The body of `POST /v1/check/multi`. Each check is read as an object first, so that an
/// array is refused (as for `/v1/check`) and an error can name the check's index.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MultiRequest {
    checks: Vec<Map<String, Value>>,
}

impl MultiRequest {
    fn into_checks(self) -> Result<Vec<CheckRequest>, ApiError> {
        self.checks
            .into_iter()
            .enumerate()
            .map(|(i, check)| {
                CheckRequest::deserialize(Value::Object(check))
                    .map_err(|e| invalid_request(format!("invalid JSON body: checks[{i}]: {e}")))
            })
            .collect()
    }
}

#[derive(Serialize)]
struct MultiBody<'a> {
    allowed: bool,
    retry_after_ms: u64,
    decisions: Vec<DecisionBody<'a>>,
}

pub(crate) async fn check_multi(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<MultiRequest>,
) -> Result<Response, ApiError> {
    let checks = req.into_checks()?;
    let batch = state.service.check_multi(&checks, API).await?;
    let multi = &batch.multi;
    let items = || {
        batch
            .applied
            .iter()
            .zip(&multi.decisions)
            .map(|((limit, policy), decision)| (policy.as_str(), limit, decision))
    };
    let mut headers = HeaderMap::new();
    headers::insert_all(&mut headers, items(), !multi.allowed, multi.retry_after_ms);
    let body = MultiBody {
        allowed: multi.allowed,
        retry_after_ms: multi.retry_after_ms,
        decisions: items()
            .map(|(policy, _, decision)| DecisionBody::new(decision, policy))
            .collect(),
    };
    Ok((headers, Json(body)).into_response())
}
