//! The IETF RateLimit header fields (draft-ietf-httpapi-ratelimit-headers), as structured
//! fields, and `Retry-After`.
//!
//! - `RateLimit-Policy: "basic";q=20;w=12` — the policy: a quota `q` per window of `w`
//!   seconds. For `gcra`/`strict` the quota is the burst and the window the time to refill it
//!   (BURST × T), which states both the burst and the long-run rate; for the window
//!   algorithms it is COUNT per PERIOD.
//! - `RateLimit: "basic";r=7;t=3` — `r` quota units remaining now, `t` seconds until the
//!   key is back to full capacity.
//! - `Retry-After: 2` (seconds, rounded up) on a denial.

use http::{HeaderMap, HeaderName, HeaderValue};
use tollgate_core::{Algorithm, Decision, Limit};

/// `RateLimit-Policy`.
pub static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit`.
pub static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

const NS_PER_S: u64 = 1_000_000_000;

/// The window `w` of the policy, in whole seconds (at least 1).
pub fn window_secs(limit: &Limit) -> u64 {
    let ns = match limit.algorithm() {
        Algorithm::Gcra | Algorithm::Strict => limit.burst().saturating_mul(limit.interval_ns()),
        Algorithm::SlidingWindow | Algorithm::FixedWindow => limit.rate().period_ns(),
    };
    ns.div_ceil(NS_PER_S).max(1)
}

/// A policy name as a structured-field String: printable ASCII, `"` and `\` escaped.
fn sf_string(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('_'),
        }
    }
    out.push('"');
    out
}

/// The value of `RateLimit-Policy` for one policy.
pub fn policy_value(name: &str, limit: &Limit) -> String {
    format!(
        "{};q={};w={}",
        sf_string(name),
        limit.capacity(),
        window_secs(limit)
    )
}

/// The value of `RateLimit` for one decision.
pub fn ratelimit_value(name: &str, decision: &Decision) -> String {
    format!(
        "{};r={};t={}",
        sf_string(name),
        decision.remaining,
        decision.reset_after_ms.div_ceil(1000)
    )
}

/// Adds `RateLimit-Policy`, `RateLimit` and, when denied, `Retry-After` for a decision.
pub fn insert(headers: &mut HeaderMap, name: &str, limit: &Limit, decision: &Decision) {
    insert_all(
        headers,
        [(name, limit, decision)],
        !decision.allowed,
        decision.retry_after_ms,
    );
}

/// Adds the fields for several policies at once (one list member each), and `Retry-After`
/// when `denied`.
pub fn insert_all<'a>(
    headers: &mut HeaderMap,
    items: impl IntoIterator<Item = (&'a str, &'a Limit, &'a Decision)>,
    denied: bool,
    retry_after_ms: u64,
) {
    let (mut policies, mut states) = (Vec::new(), Vec::new());
    for (name, limit, decision) in items {
        policies.push(policy_value(name, limit));
        states.push(ratelimit_value(name, decision));
    }
    // Every character was made printable ASCII above, so these values are always valid.
    if let Ok(v) = HeaderValue::from_str(&policies.join(", ")) {
        headers.insert(RATELIMIT_POLICY.clone(), v);
    }
    if let Ok(v) = HeaderValue::from_str(&states.join(", ")) {
        headers.insert(RATELIMIT.clone(), v);
    }
    if denied {
        headers.insert(
            http::header::RETRY_AFTER,
            HeaderValue::from(retry_after_ms.div_ceil(1000)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(rate: &str, algorithm: Algorithm, burst: Option<u64>) -> Limit {
        Limit::new(rate.parse().expect("rate"), algorithm, burst).expect("limit")
    }

    #[test]
    fn values() {
        let basic = limit("100/min", Algorithm::Gcra, Some(20));
        assert_eq!(policy_value("basic", &basic), "\"basic\";q=20;w=12");
        let window = limit("5/10s", Algorithm::SlidingWindow, None);
        assert_eq!(policy_value("login", &window), "\"login\";q=5;w=10");
        let d = Decision {
            allowed: false,
            limit: 20,
            remaining: 0,
            retry_after_ms: 1500,
            reset_after_ms: 12_001,
        };
        assert_eq!(ratelimit_value("basic", &d), "\"basic\";r=0;t=13");
        let mut h = HeaderMap::new();
        insert(&mut h, "we\"ird\u{e9}", &basic, &d);
        assert_eq!(h[&RATELIMIT_POLICY], "\"we\\\"ird_\";q=20;w=12");
        assert_eq!(h[http::header::RETRY_AFTER], "2");
    }
}
