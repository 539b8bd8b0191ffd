//! The validated alert rules ([`AlertRules`]) that the engine reads; `config` builds them
//! from the file.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue};

use super::config::DEFAULT_EVALUATE_EVERY;

/// A `*` and `?` pattern over a name (`batch_*`); `*` matches everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob(String);

impl Glob {
    /// A pattern.
    pub fn new(pattern: &str) -> Glob {
        Glob(pattern.to_string())
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        let (p, n): (Vec<char>, Vec<char>) = (self.0.chars().collect(), name.chars().collect());
        // Greedy matching with one backtrack point, linear in practice.
        let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
        while ni < n.len() {
            if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
                pi += 1;
                ni += 1;
            } else if pi < p.len() && p[pi] == '*' {
                star = Some(pi);
                mark = ni;
                pi += 1;
            } else if let Some(s) = star {
                pi = s + 1;
                mark += 1;
                ni = mark;
            } else {
                return false;
            }
        }
        p[pi..].iter().all(|&c| c == '*')
    }
}

/// How a webhook's body is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookFormat {
    /// `{"text": "…"}`, for Slack and the many tools that take its incoming webhooks.
    Slack,
    /// A generic JSON object with every field of the notification.
    Json,
}

/// A validated webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// Its name.
    pub name: String,
    /// Where it posts.
    pub url: reqwest::Url,
    /// Its body.
    pub format: WebhookFormat,
    /// The most one attempt may take.
    pub timeout: Duration,
    /// Attempts per notification (at least 1).
    pub attempts: u32,
    /// The first retry's delay.
    pub backoff: Duration,
    /// Extra request headers.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// What a rule watches, with its settings.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleKind {
    /// Denied decisions in percent of all, for matching policies or all decisions.
    DenialRate {
        /// The policies (`None`: all decisions as one subject).
        policy: Option<Glob>,
        /// Fires at or above this percentage.
        above: f64,
        /// Fewer decisions per second than this are not judged.
        min_rate: f64,
    },
    /// The store not ready, or its breaker not closed.
    StoreDown,
    /// The store's circuit breaker (or a Redis Cluster slot's) not closed.
    BreakerOpen,
    /// A queue projected to finish after its deadline.
    QueueDeadlineAtRisk {
        /// The queues.
        queue: Glob,
    },
    /// A queue's dead-letter count rising by more than `above` within `within`.
    DeadLetterGrowth {
        /// The queues.
        queue: Glob,
        /// Fires when the rise is greater than this.
        above: u64,
        /// The window.
        within: Duration,
    },
    /// A unified controller's usage in percent of its capacity.
    ControllerUsage {
        /// The controllers.
        controller: Glob,
        /// Fires at or above this percentage.
        above: f64,
    },
    /// A queue's starts per second in percent of its rate.
    QueueUsage {
        /// The queues.
        queue: Glob,
        /// Fires at or above this percentage.
        above: f64,
    },
}

impl RuleKind {
    /// The kind as written in the config.
    pub fn name(&self) -> &'static str {
        match self {
            RuleKind::DenialRate { .. } => "denial_rate",
            RuleKind::StoreDown => "store_down",
            RuleKind::BreakerOpen => "breaker_open",
            RuleKind::QueueDeadlineAtRisk { .. } => "queue_deadline_at_risk",
            RuleKind::DeadLetterGrowth { .. } => "dead_letter_growth",
            RuleKind::ControllerUsage { .. } | RuleKind::QueueUsage { .. } => "usage",
        }
    }
}

/// A validated rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Its name.
    pub name: String,
    /// What it watches.
    pub kind: RuleKind,
    /// How long the condition must hold before it fires.
    pub hold: Duration,
    /// Where its notifications go.
    pub webhooks: Vec<Arc<Webhook>>,
}

/// The validated `alerts:` section; empty when the file has none.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRules {
    /// The webhooks.
    pub webhooks: Vec<Arc<Webhook>>,
    /// The rules, in file order.
    pub rules: Vec<Rule>,
    /// The least time between two evaluations.
    pub evaluate_every: Duration,
    /// The name notifications give this server, when the file sets one.
    pub server: Option<String>,
}

impl Default for AlertRules {
    fn default() -> Self {
        AlertRules {
            webhooks: Vec::new(),
            rules: Vec::new(),
            evaluate_every: DEFAULT_EVALUATE_EVERY,
            server: None,
        }
    }
}
