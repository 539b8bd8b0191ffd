//! The JSON body extractor. axum's `Json` answers its rejections in plain text and takes its
//! size limit from a layer fixed when the router is built; this one answers in the API's
//! error shape and reads `limits.max_body_bytes` from the config in force, so a reload
//! changes it at once.

use std::convert::Infallible;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;
use tower::{Layer, ServiceExt, service_fn};

use super::AppState;
use super::error::{error, invalid_request};
use crate::ApiError;

/// A request body parsed as JSON into `T`.
pub(crate) struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be JSON, sent with Content-Type: application/json",
            ));
        }
        let limit = state.service.config().limits.max_body_bytes;
        let bytes = read_limited(req, limit).await?;
        // serde also reads a struct from an array of its fields in order; the API takes
        // objects only, so `["user:1"]` is not a check.
        match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            None => return Err(invalid_request("the body is empty; expected a JSON object")),
            Some(b'{') => {}
            Some(_) => return Err(invalid_request("the body must be a JSON object")),
        }
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| invalid_request(format!("invalid JSON body: {e}")))
    }
}

/// `application/json` or any `application/*+json`, parameters allowed.
pub(super) fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn too_large(limit: usize) -> ApiError {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the body is larger than the limit of {limit} bytes"),
    )
}

/// Reads the whole body, refusing more than `limit` bytes.
pub(super) async fn read_limited(req: Request, limit: usize) -> Result<Bytes, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large(limit));
    }
    // A chunked body has no length up front. `Bytes`' own extractor enforces the limit that
    // `DefaultBodyLimit` puts on the request and tells an overrun from a broken body.
    let read = DefaultBodyLimit::max(limit).layer(service_fn(|req: Request| async move {
        Ok::<_, Infallible>(Bytes::from_request(req, &()).await)
    }));
    match read.oneshot(req).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(rejection)) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Err(too_large(limit))
        }
        Ok(Err(rejection)) => Err(invalid_request(format!(
            "cannot read the body: {}",
            rejection.body_text()
        ))),
        Err(never) => match never {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types() {
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, header::HeaderValue::from_static(v));
            is_json(&h)
        };
        assert!(with("application/json"));
        assert!(with("Application/JSON; charset=utf-8"));
        assert!(with("application/merge-patch+json"));
        assert!(!with("text/plain"));
        assert!(!with("application/x-www-form-urlencoded"));
        assert!(!is_json(&HeaderMap::new()));
    }
}
