//! Errors as HTTP responses: every one is `{"error":{"code":"…","message":"…"}}`, with the
//! status the [`ApiError`] carries.

use axum::Json;
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::ApiError;

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // Every status the service builds is valid; a bad one must still not become a 500.
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        let body = Json(Body {
            error: Inner {
                code: self.code,
                message: &self.message,
            },
        });
        let mut response = (status, body).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// An error with any status.
pub(crate) fn error(
    status: StatusCode,
    code: &'static str,
    message: impl Into<String>,
) -> ApiError {
    ApiError {
        status: status.as_u16(),
        code,
        message: message.into(),
    }
}

/// 400 `invalid_request`.
pub(crate) fn invalid_request(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_request", message)
}

/// The fallback for paths no route serves.
pub(crate) async fn not_found(method: Method, uri: Uri) -> ApiError {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        format!(
            "no route for {method} {}; GET /openapi.json lists them",
            uri.path()
        ),
    )
}

/// The fallback for a known path asked with a method it does not serve (axum adds `Allow`).
pub(crate) async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not serve {method}", uri.path()),
    )
}
