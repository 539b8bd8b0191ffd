//! `POST /v1/reset`, `POST /v1/reload` (admin: a bearer token when the config sets one) and
//! `GET /v1/policies`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::body::JsonBody;
use super::error::error;
use crate::ApiError;

/// Proof that the request may use the admin endpoints. As an extractor it runs before the
/// body is read, so an unauthorized caller learns nothing from body errors.
pub(crate) struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Admin, ApiError> {
        let config = state.service.config();
        let Some(token) = config.admin_token.as_deref() else {
            return Ok(Admin);
        };
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer);
        match presented {
            Some(p) if constant_time_eq(p.as_bytes(), token.as_bytes()) => Ok(Admin),
            Some(_) => Err(unauthorized("the bearer token is wrong")),
            None => Err(unauthorized(
                "this endpoint needs the admin token: send Authorization: Bearer <token>",
            )),
        }
    }
}

fn unauthorized(message: &str) -> ApiError {
    error(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

/// The credentials of `Bearer <token>`; the scheme is case-insensitive (RFC 9110 §11.1).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Equality whose time does not depend on where the inputs first differ, so the token cannot
/// be guessed byte by byte from response times. The length is not secret.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// The body of `POST /v1/reset`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResetRequest {
    key: String,
}

pub(crate) async fn reset(
    _: Admin,
    State(state): State<AppState>,
    JsonBody(req): JsonBody<ResetRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    state.service.reset(&req.key).await?;
    Ok(Json(serde_json::json!({ "reset": true })))
}

pub(crate) async fn reload(
    _: Admin,
    State(state): State<AppState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    // Reading the file blocks; keep it off the async workers.
    let service = Arc::clone(&state.service);
    let outcome = tokio::task::spawn_blocking(move || service.reload())
        .await
        .map_err(|e| {
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "reload_failed",
                format!("the reload did not finish: {e}"),
            )
        })?;
    match outcome {
        None => Err(error(
            StatusCode::NOT_FOUND,
            "reload_unavailable",
            "this server was started without a config file, so there is nothing to reload",
        )),
        Some(Ok(notes)) => {
            tracing::info!(?notes, "config reloaded by POST /v1/reload");
            Ok(Json(
                serde_json::json!({ "reloaded": true, "notes": notes }),
            ))
        }
        Some(Err(e)) => {
            tracing::warn!("config reload by POST /v1/reload rejected: {e}");
            Err(error(
                StatusCode::BAD_REQUEST,
                "invalid_config",
                format!("{e}\nthe config in force is unchanged"),
            ))
        }
    }
}

#[derive(Serialize)]
pub(crate) struct PolicyBody {
    name: String,
    rate: String,
    algorithm: &'static str,
    /// Only the bucket algorithms have a burst.
    burst: Option<u64>,
    limit: u64,
    description: Option<String>,
}

#[derive(Serialize)]
pub(crate) struct PoliciesBody {
    policies: Vec<PolicyBody>,
}

pub(crate) async fn policies(State(state): State<AppState>) -> Json<PoliciesBody> {
    use tollgate_core::Algorithm;
    let config = state.service.config();
    let policies = config
        .policies
        .values()
        .map(|p| PolicyBody {
            name: p.name.clone(),
            rate: p.limit.rate().to_string(),
            algorithm: p.limit.algorithm().name(),
            burst: matches!(p.limit.algorithm(), Algorithm::Gcra | Algorithm::Strict)
                .then(|| p.limit.burst()),
            limit: p.limit.capacity(),
            description: p.description.clone(),
        })
        .collect();
    Json(PoliciesBody { policies })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("Bearer"), None);
    }

    #[test]
    fn constant_time_equality() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret!"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
