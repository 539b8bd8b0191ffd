//! The answers the middleware gives by itself, as RFC 9457 `application/problem+json`.
//!
//! Every problem has `type` `about:blank` (its meaning is the status code's: tollgate owns no
//! URI to document problem types at), `title` (the status phrase), `status`, `detail`, and a
//! stable `code`; a rate-limited answer adds `policy` and `retry_after_ms`.

use std::borrow::Cow;

use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};
use serde_json::{Map, Value, json};
use tollgate_core::{Decision, Error, Limit};

use crate::headers;
use crate::key::NoKey;

/// The media type of a problem body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Why the middleware answers instead of the service.
#[derive(Debug)]
pub(crate) enum Problem {
    /// Denied: 429 with `Retry-After` and the RateLimit headers.
    RateLimited {
        policy: Cow<'static, str>,
        limit: Limit,
        decision: Decision,
    },
    /// No key for the request (400, or 500 when the server hides the client address).
    MissingKey(NoKey),
    /// The key or cost cannot be checked (400): too long a key, a cost over the capacity.
    Invalid(Error),
    /// The store failed and the layer fails closed (503).
    StoreUnavailable,
}

impl Problem {
    /// The response, with any body type a `String` converts into (axum's `Body`, `String`,
    /// `Full<Bytes>`…).
    pub(crate) fn into_response<B: From<String>>(self) -> Response<B> {
        match self {
            Problem::RateLimited {
                policy,
                limit,
                decision,
            } => {
                let secs = decision.retry_after_ms.div_ceil(1000);
                let detail = format!(
                    "Rate limit \"{policy}\" exceeded; retry in {secs} s ({} ms).",
                    decision.retry_after_ms
                );
                let mut extra = Map::new();
                extra.insert("policy".into(), Value::from(policy.as_ref()));
                extra.insert(
                    "retry_after_ms".into(),
                    Value::from(decision.retry_after_ms),
                );
                let mut response = problem(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    &detail,
                    extra,
                );
                headers::insert(response.headers_mut(), &policy, &limit, &decision);
                response
            }
            Problem::MissingKey(NoKey::NoClientAddress) => problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "no_client_address",
                "The server cannot tell the client's address to rate-limit it by.",
                Map::new(),
            ),
            Problem::MissingKey(NoKey::NoHeader(name)) => problem(
                StatusCode::BAD_REQUEST,
                "missing_key",
                &format!("The request needs a non-empty `{name}` header to be rate-limited by."),
                Map::new(),
            ),
            Problem::MissingKey(NoKey::Closure) => problem(
                StatusCode::BAD_REQUEST,
                "missing_key",
                "The request carries nothing to rate-limit it by.",
                Map::new(),
            ),
            Problem::Invalid(error) => problem(
                StatusCode::BAD_REQUEST,
                error.code(),
                &format!("The request cannot be rate-limited: {error}."),
                Map::new(),
            ),
            // The store's own message may name hosts and addresses: it is logged, not sent.
            Problem::StoreUnavailable => problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "The rate limiter cannot decide right now; try again later.",
                Map::new(),
            ),
        }
    }
}

fn problem<B: From<String>>(
    status: StatusCode,
    code: &str,
    detail: &str,
    extra: Map<String, Value>,
) -> Response<B> {
    let mut body = json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
        "code": code,
    });
    if let Value::Object(fields) = &mut body {
        fields.extend(extra);
    }
    let mut response = Response::new(B::from(body.to_string()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limited_body() {
        let limit = Limit::gcra("2/s".parse().expect("rate"));
        let decision = Decision {
            allowed: false,
            limit: 2,
            remaining: 0,
            retry_after_ms: 1500,
            reset_after_ms: 1500,
        };
        let response: Response<String> = Problem::RateLimited {
            policy: "basic".into(),
            limit,
            decision,
        }
        .into_response();
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()[CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(response.headers()[http::header::RETRY_AFTER], "2");
        let body: Value = serde_json::from_str(response.body()).expect("json");
        assert_eq!(body["title"], "Too Many Requests");
        assert_eq!(body["status"], 429);
        assert_eq!(body["retry_after_ms"], 1500);
        assert!(body["detail"].as_str().is_some_and(|d| d.contains("2 s")));
    }
}
