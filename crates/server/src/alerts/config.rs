//! `alerts:` in the config file: webhooks and rules as written ([`AlertsSection`]), and
//! their validation into [`AlertRules`], reporting every problem with its path
//! (`alerts.rules[2].above: "120%" is not a percentage from 0 to 100`).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue};
use serde::Deserialize;
use tollgate_queue::parse_duration;

pub use super::model::{AlertRules, Glob, Rule, RuleKind, Webhook, WebhookFormat};

/// How often rules are evaluated when `evaluate_every` is not given.
pub const DEFAULT_EVALUATE_EVERY: Duration = Duration::from_secs(1);
/// A webhook's timeout per attempt when not given.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts per notification when not given (the first and three retries).
pub const DEFAULT_ATTEMPTS: u32 = 4;
/// The first retry's delay when not given; each further retry doubles it.
pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(1);
/// The window of `dead_letter_growth` when `within` is not given.
pub const DEFAULT_WITHIN: Duration = Duration::from_secs(300);
/// The longest `within`: the engine keeps that much dead-letter history.
pub const MAX_WITHIN: Duration = Duration::from_secs(24 * 3600);

/// `alerts:` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsSection {
    /// Where notifications go.
    #[serde(default)]
    pub webhooks: Vec<WebhookSpec>,
    /// The least time between two evaluations (default `1s`).
    pub evaluate_every: Option<String>,
    /// The name notifications give this server (default: the host name).
    pub server: Option<String>,
    /// The rules.
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
}

/// A webhook as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSpec {
    /// Its name, unique, used by rules and in metrics.
    pub name: String,
    /// An `http://` or `https://` URL.
    pub url: String,
    /// `slack` or `json` (default).
    pub format: Option<String>,
    /// The most one attempt may take (default `5s`).
    pub timeout: Option<String>,
    /// Attempts per notification, 1 to 10 (default 4).
    pub attempts: Option<u32>,
    /// The first retry's delay, doubling after (default `1s`).
    pub backoff: Option<String>,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// A number, or a text such as `20%`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Threshold {
    /// Written as a number.
    Number(f64),
    /// Written as text.
    Text(String),
}

/// A rule as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Its name, unique.
    pub name: String,
    /// What it watches: `denial_rate`, `store_down`, `breaker_open`,
    /// `queue_deadline_at_risk`, `dead_letter_growth` or `usage`.
    pub kind: String,
    /// `denial_rate`: a policy name or glob (absent: all decisions together).
    pub policy: Option<String>,
    /// A queue name or glob.
    pub queue: Option<String>,
    /// `usage`: a controller name or glob.
    pub controller: Option<String>,
    /// The threshold: a percentage, or a count for `dead_letter_growth`.
    pub above: Option<Threshold>,
    /// `denial_rate`: the fewest decisions per second worth judging (default 1).
    pub min_rate: Option<f64>,
    /// `dead_letter_growth`: the window (default `5m`).
    pub within: Option<String>,
    /// How long the condition must hold before the rule fires (default `0s`).
    #[serde(rename = "for")]
    pub hold: Option<String>,
    /// The webhooks to notify, by name (default: all).
    pub webhooks: Option<Vec<String>>,
}

const KINDS: &str =
    "denial_rate, store_down, breaker_open, queue_deadline_at_risk, dead_letter_growth or usage";

impl AlertRules {
    /// Validates the section, pushing each problem (with its path) onto `problems`.
    pub fn compile(section: &AlertsSection, problems: &mut Vec<String>) -> AlertRules {
        let duration =
            |path: &str, text: &Option<String>, default: Duration, p: &mut Vec<_>| match text
                .as_deref()
                .map(parse_duration)
            {
                None => default,
                Some(Ok(d)) => d,
                Some(Err(_)) => {
                    p.push(format!(
                        "{path}: {:?} is not a duration like 500ms, 10s or 5m",
                        text.as_deref().unwrap_or_default()
                    ));
                    default
                }
            };
        let evaluate_every = duration(
            "alerts.evaluate_every",
            &section.evaluate_every,
            DEFAULT_EVALUATE_EVERY,
            problems,
        );
        if evaluate_every.is_zero() {
            problems.push("alerts.evaluate_every: must be more than 0s".to_string());
        }
        if section
            .server
            .as_deref()
            .is_some_and(|s| s.trim().is_empty())
        {
            problems.push("alerts.server: is empty; remove it to use the host name".to_string());
        }
        let mut webhooks: Vec<Arc<Webhook>> = Vec::new();
        let mut webhook_names = HashSet::new();
        for (i, spec) in section.webhooks.iter().enumerate() {
            let path = format!("alerts.webhooks[{i}]");
            if !webhook_names.insert(spec.name.as_str()) {
                problems.push(format!("{path}.name: {:?} is used twice", spec.name));
            }
            if let Some(w) = webhook(&path, spec, problems, &duration) {
                webhooks.push(Arc::new(w));
            }
        }
        let mut names = HashSet::new();
        let mut rules = Vec::new();
        for (i, spec) in section.rules.iter().enumerate() {
            let path = format!("alerts.rules[{i}]");
            if !crate::config::valid_name(&spec.name) {
                problems.push(format!(
                    "{path}.name: {:?} is not 1 to 64 letters, digits, '_', '-' or '.'",
                    spec.name
                ));
            } else if !names.insert(spec.name.as_str()) {
                problems.push(format!("{path}.name: {:?} is used twice", spec.name));
            }
            let hold = duration(&format!("{path}.for"), &spec.hold, Duration::ZERO, problems);
            let targets = match &spec.webhooks {
                None => webhooks.clone(),
                Some(wanted) => wanted
                    .iter()
                    .filter_map(|name| {
                        let found = webhooks.iter().find(|w| &w.name == name).cloned();
                        if found.is_none() && section.webhooks.iter().all(|w| &w.name != name) {
                            problems.push(format!(
                                "{path}.webhooks: {name:?} is not a webhook in alerts.webhooks"
                            ));
                        }
                        found
                    })
                    .collect(),
            };
            if let Some(kind) = kind(&path, spec, problems, &duration) {
                rules.push(Rule {
                    name: spec.name.clone(),
                    kind,
                    hold,
                    webhooks: targets,
                });
            }
        }
        AlertRules {
            webhooks,
            rules,
            evaluate_every,
            server: section.server.clone(),
        }
    }
}

type DurationField<'a> = &'a dyn Fn(&str, &Option<String>, Duration, &mut Vec<String>) -> Duration;

fn webhook(
    path: &str,
    spec: &WebhookSpec,
    problems: &mut Vec<String>,
    duration: DurationField<'_>,
) -> Option<Webhook> {
    let before = problems.len();
    if !crate::config::valid_name(&spec.name) {
        problems.push(format!(
            "{path}.name: {:?} is not 1 to 64 letters, digits, '_', '-' or '.'",
            spec.name
        ));
    }
    let url = match reqwest::Url::parse(&spec.url) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => Some(url),
        _ => {
            problems.push(format!(
                "{path}.url: {:?} is not an http:// or https:// URL",
                spec.url
            ));
            None
        }
    };
    let format = match spec.format.as_deref() {
        None | Some("json") => WebhookFormat::Json,
        Some("slack") => WebhookFormat::Slack,
        Some(other) => {
            problems.push(format!("{path}.format: {other:?} is not slack or json"));
            WebhookFormat::Json
        }
    };
    let timeout = duration(
        &format!("{path}.timeout"),
        &spec.timeout,
        DEFAULT_TIMEOUT,
        problems,
    );
    if timeout.is_zero() || timeout > Duration::from_secs(60) {
        problems.push(format!("{path}.timeout: must be from 1ms to 60s"));
    }
    let attempts = spec.attempts.unwrap_or(DEFAULT_ATTEMPTS);
    if !(1..=10).contains(&attempts) {
        problems.push(format!("{path}.attempts: {attempts} is not from 1 to 10"));
    }
    let backoff = duration(
        &format!("{path}.backoff"),
        &spec.backoff,
        DEFAULT_BACKOFF,
        problems,
    );
    if backoff > Duration::from_secs(60) {
        problems.push(format!("{path}.backoff: must be at most 60s"));
    }
    let mut headers = Vec::new();
    for (name, value) in &spec.headers {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(n), Ok(v)) => headers.push((n, v)),
            (Err(_), _) => problems.push(format!(
                "{path}.headers: {name:?} is not a valid header name"
            )),
            (_, Err(_)) => problems.push(format!(
                "{path}.headers.{name}: the value is not a valid header value"
            )),
        }
    }
    if problems.len() != before {
        return None;
    }
    Some(Webhook {
        name: spec.name.clone(),
        url: url?,
        format,
        timeout,
        attempts,
        backoff,
        headers,
    })
}

/// Reads `above` as a percentage (`20%`, or a plain number from 0 to 100).
fn percent(path: &str, above: &Option<Threshold>, problems: &mut Vec<String>) -> Option<f64> {
    let value = match above {
        None => {
            problems.push(format!("{path}.above: is required, a percentage like 90%"));
            return None;
        }
        Some(Threshold::Number(n)) => Some(*n),
        Some(Threshold::Text(t)) => t
            .trim()
            .strip_suffix('%')
            .and_then(|n| n.trim().parse().ok()),
    };
    match value {
        Some(v) if (0.0..=100.0).contains(&v) => Some(v),
        _ => {
            let shown = match above {
                Some(Threshold::Text(t)) => format!("{t:?}"),
                Some(Threshold::Number(n)) => n.to_string(),
                None => String::new(),
            };
            problems.push(format!(
                "{path}.above: {shown} is not a percentage from 0 to 100"
            ));
            None
        }
    }
}

fn kind(
    path: &str,
    spec: &RuleSpec,
    problems: &mut Vec<String>,
    duration: DurationField<'_>,
) -> Option<RuleKind> {
    let glob = |text: &Option<String>| Glob::new(text.as_deref().unwrap_or("*"));
    // Settings a kind does not read are errors, so a misplaced one is never silently ignored.
    let unused = |field: &str, given: bool, problems: &mut Vec<String>| {
        if given {
            problems.push(format!("{path}.{field}: is not used by kind {}", spec.kind));
        }
    };
    let before = problems.len();
    let (policy, queue, controller) = (
        spec.policy.is_some(),
        spec.queue.is_some(),
        spec.controller.is_some(),
    );
    let (above, min_rate, within) = (
        spec.above.is_some(),
        spec.min_rate.is_some(),
        spec.within.is_some(),
    );
    let kind = match spec.kind.as_str() {
        "denial_rate" => {
            for (f, g) in [
                ("queue", queue),
                ("controller", controller),
                ("within", within),
            ] {
                unused(f, g, problems);
            }
            let min_rate = spec.min_rate.unwrap_or(1.0);
            if !(min_rate.is_finite() && min_rate >= 0.0) {
                problems.push(format!(
                    "{path}.min_rate: {min_rate} is not a rate of 0 or more decisions/s"
                ));
            }
            RuleKind::DenialRate {
                policy: spec.policy.as_deref().map(Glob::new),
                above: percent(path, &spec.above, problems).unwrap_or_default(),
                min_rate,
            }
        }
        "store_down" | "breaker_open" => {
            for (f, g) in [
                ("policy", policy),
                ("queue", queue),
                ("controller", controller),
                ("above", above),
                ("min_rate", min_rate),
                ("within", within),
            ] {
                unused(f, g, problems);
            }
            if spec.kind == "store_down" {
                RuleKind::StoreDown
            } else {
                RuleKind::BreakerOpen
            }
        }
        "queue_deadline_at_risk" => {
            for (f, g) in [
                ("policy", policy),
                ("controller", controller),
                ("above", above),
                ("min_rate", min_rate),
                ("within", within),
            ] {
                unused(f, g, problems);
            }
            RuleKind::QueueDeadlineAtRisk {
                queue: glob(&spec.queue),
            }
        }
        "dead_letter_growth" => {
            for (f, g) in [
                ("policy", policy),
                ("controller", controller),
                ("min_rate", min_rate),
            ] {
                unused(f, g, problems);
            }
            let above = match &spec.above {
                None => 0,
                Some(Threshold::Number(n)) if n.fract() == 0.0 && *n >= 0.0 => *n as u64,
                Some(other) => {
                    let shown = match other {
                        Threshold::Number(n) => n.to_string(),
                        Threshold::Text(t) => format!("{t:?}"),
                    };
                    problems.push(format!(
                        "{path}.above: {shown} is not a whole number of tasks"
                    ));
                    0
                }
            };
            let within = duration(
                &format!("{path}.within"),
                &spec.within,
                DEFAULT_WITHIN,
                problems,
            );
            if within.is_zero() || within > MAX_WITHIN {
                problems.push(format!("{path}.within: must be from 1ms to 24h"));
            }
            RuleKind::DeadLetterGrowth {
                queue: glob(&spec.queue),
                above,
                within,
            }
        }
        "usage" => {
            for (f, g) in [
                ("policy", policy),
                ("min_rate", min_rate),
                ("within", within),
            ] {
                unused(f, g, problems);
            }
            let above = percent(path, &spec.above, problems).unwrap_or_default();
            match (&spec.controller, &spec.queue) {
                (Some(_), Some(_)) => {
                    problems.push(format!("{path}: give controller or queue, not both"));
                    return None;
                }
                (_, Some(_)) => RuleKind::QueueUsage {
                    queue: glob(&spec.queue),
                    above,
                },
                _ => RuleKind::ControllerUsage {
                    controller: glob(&spec.controller),
                    above,
                },
            }
        }
        other => {
            problems.push(format!("{path}.kind: {other:?} is not {KINDS}"));
            return None;
        }
    };
    (problems.len() == before).then_some(kind)
}
