//! Alert rules over the server's stats, delivered to webhooks.
//!
//! The rules live in the config file's `alerts:` section ([`AlertsSection`], validated into
//! [`AlertRules`], so a reload changes them). The server's sampler hands each fresh
//! [`StatsReport`](crate::stats::StatsReport) to [`Alerts::evaluate`], which moves the
//! state of every (rule, subject) and queues the notifications due; per-webhook tasks deliver
//! them with retries ([`deliver`]). `docs/alerts.md` is the user's reference.
//!
//! ```
//! use tollgate_server::alerts::{Alerts, metrics};
//! use tollgate_server::Config;
//!
//! let config = Config::parse(
//!     "alerts:\n  rules:\n    - {name: redis, kind: store_down, for: 10s}\n",
//!     "example",
//! )
//! .expect("valid");
//! let mut registry = prometheus_client::registry::Registry::default();
//! let alerts = Alerts::new(metrics::register(&mut registry));
//! assert_eq!(config.alerts.rules[0].name, "redis");
//! assert!(alerts.firing().is_empty());
//! ```

pub mod config;
pub mod deliver;
mod engine;
pub mod metrics;
pub mod model;
pub mod rules;

pub use config::{AlertRules, AlertsSection, Rule, RuleKind, Webhook, WebhookFormat};
pub use deliver::{AlertState, Notification};
pub use engine::Alerts;
pub use metrics::{AlertMetrics, Outcome};

#[cfg(test)]
mod tests;
