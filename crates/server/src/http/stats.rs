//! `GET /v1/stats` (the dashboard's and `tollgate monitor`'s data) and
//! `POST /v1/controllers/{name}` (where a unified controller reports its usage). Both need the
//! admin token when the config sets one: the stats name the keys denied most, which are often
//! users or addresses.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::admin::Admin;
use super::body::JsonBody;
use super::error::invalid_request;
use crate::ApiError;
use crate::stats::ControllerUsage;

/// The throttle tiers a controller may report.
const TIERS: [&str; 4] = ["normal", "moderate", "heavy", "emergency"];

pub(crate) async fn stats(_: Admin, State(state): State<AppState>) -> Response {
    let report = state.service.stats_report().await;
    Json(&*report).into_response()
}

pub(crate) async fn controller_report(
    _: Admin,
    State(state): State<AppState>,
    Path(name): Path<String>,
    JsonBody(usage): JsonBody<ControllerUsage>,
) -> Result<StatusCode, ApiError> {
    validate(&name, &usage)?;
    state.service.controller_report(&name, usage);
    Ok(StatusCode::NO_CONTENT)
}

fn validate(name: &str, usage: &ControllerUsage) -> Result<(), ApiError> {
    let name_ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b));
    if !name_ok {
        return Err(invalid_request(format!(
            "controller name {name:?}: use 1 to 64 letters, digits, '_', '-', '.' or ':'"
        )));
    }
    if !TIERS.contains(&usage.tier.as_str()) {
        return Err(invalid_request(format!(
            "tier {:?} is not one of {}",
            usage.tier,
            TIERS.join(", ")
        )));
    }
    if !usage.usage_percent.is_finite() || usage.usage_percent < 0.0 {
        return Err(invalid_request(format!(
            "usage_percent {} is not a percentage of 0 or more",
            usage.usage_percent
        )));
    }
    if usage.capacity == 0 || usage.window_ms == 0 || usage.interval_ms == 0 {
        return Err(invalid_request(
            "capacity, window_ms and interval_ms must be more than 0",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage() -> ControllerUsage {
        ControllerUsage {
            capacity: 1200,
            window_ms: 60_000,
            usage: 600,
            usage_percent: 50.0,
            tier: "moderate".into(),
            waiting: 3,
            granted: 10,
            sla_violations: 0,
            interval_ms: 2000,
        }
    }

    #[test]
    fn reports_are_checked_field_by_field() {
        assert!(validate("bot", &usage()).is_ok());
        let bad = |name: &str, u: ControllerUsage| validate(name, &u).err().map(|e| e.message);
        assert!(bad("", usage()).is_some_and(|m| m.contains("controller name")));
        assert!(bad("a b", usage()).is_some_and(|m| m.contains("\"a b\"")));
        let tier = ControllerUsage {
            tier: "calm".into(),
            ..usage()
        };
        assert!(bad("bot", tier).is_some_and(|m| m.contains("\"calm\"")));
        let nan = ControllerUsage {
            usage_percent: f64::NAN,
            ..usage()
        };
        assert!(bad("bot", nan).is_some_and(|m| m.contains("usage_percent")));
        let zero = ControllerUsage {
            interval_ms: 0,
            ..usage()
        };
        assert!(bad("bot", zero).is_some_and(|m| m.contains("interval_ms")));
    }
}
