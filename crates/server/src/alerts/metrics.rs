//! The alerts' Prometheus metrics, registered in the server's registry (prefix `tollgate`):
//! `tollgate_alerts_firing{rule}`, `tollgate_alert_notifications_total{webhook,result}` and
//! `tollgate_alert_delivery_attempts_total{webhook}`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// `rule`: an alert rule's name.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabels {
    rule: String,
}

/// `webhook`: a webhook's name.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabels {
    webhook: String,
}

/// `webhook` and `result`: `sent`, `failed` or `dropped`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NotificationLabels {
    webhook: String,
    result: &'static str,
}

/// What became of a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The webhook answered 2xx.
    Sent,
    /// Every attempt failed, or the webhook refused it for good (a 4xx other than 408/429).
    Failed,
    /// The webhook's queue was full, so it was never tried.
    Dropped,
}

impl Outcome {
    /// The `result` label.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Sent => "sent",
            Outcome::Failed => "failed",
            Outcome::Dropped => "dropped",
        }
    }
}

/// The alerts' metrics; clones share the same series.
#[derive(Clone, Debug, Default)]
pub struct AlertMetrics {
    firing: Family<RuleLabels, Gauge>,
    notifications: Family<NotificationLabels, Counter>,
    attempts: Family<WebhookLabels, Counter>,
}

/// Registers the alerts' metrics in `registry` and answers a handle to them.
pub fn register(registry: &mut Registry) -> AlertMetrics {
    let metrics = AlertMetrics::default();
    registry.register(
        "alerts_firing",
        "Subjects (policies, queues, controllers, the store) each alert rule is firing for now",
        metrics.firing.clone(),
    );
    registry.register(
        "alert_notifications",
        "Alert notifications by webhook and result: sent, failed (after every attempt) or dropped (queue full)",
        metrics.notifications.clone(),
    );
    registry.register(
        "alert_delivery_attempts",
        "HTTP requests made to deliver alert notifications, by webhook",
        metrics.attempts.clone(),
    );
    metrics
}

impl AlertMetrics {
    /// Sets how many subjects `rule` is firing for.
    pub(crate) fn set_firing(&self, rule: &str, subjects: usize) {
        let labels = RuleLabels {
            rule: rule.to_string(),
        };
        self.firing
            .get_or_create(&labels)
            .set(i64::try_from(subjects).unwrap_or(i64::MAX));
    }

    /// Forgets a rule that left the config.
    pub(crate) fn remove_rule(&self, rule: &str) {
        self.firing.remove(&RuleLabels {
            rule: rule.to_string(),
        });
    }

    /// Counts a notification's outcome.
    pub(crate) fn notification(&self, webhook: &str, outcome: Outcome) {
        self.notifications
            .get_or_create(&NotificationLabels {
                webhook: webhook.to_string(),
                result: outcome.label(),
            })
            .inc();
    }

    /// Counts one HTTP request to a webhook.
    pub(crate) fn attempt(&self, webhook: &str) {
        self.attempts
            .get_or_create(&WebhookLabels {
                webhook: webhook.to_string(),
            })
            .inc();
    }

    /// Notifications to `webhook` with `outcome` so far.
    pub fn notifications(&self, webhook: &str, outcome: Outcome) -> u64 {
        self.notifications
            .get_or_create(&NotificationLabels {
                webhook: webhook.to_string(),
                result: outcome.label(),
            })
            .get()
    }

    /// HTTP requests made to `webhook` so far.
    pub fn attempts(&self, webhook: &str) -> u64 {
        self.attempts
            .get_or_create(&WebhookLabels {
                webhook: webhook.to_string(),
            })
            .get()
    }

    /// How many subjects `rule` fires for now (0 for an unknown rule).
    pub fn firing(&self, rule: &str) -> i64 {
        self.firing
            .get(&RuleLabels {
                rule: rule.to_string(),
            })
            .map_or(0, |g| g.get())
    }
}
