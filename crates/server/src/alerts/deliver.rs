//! Delivering notifications to webhooks, off the decision path.
//!
//! Each webhook has its own worker task and bounded queue: a notification that does not fit
//! is dropped and counted, never waited for, and a webhook that hangs holds up only its own
//! queue, at most `timeout × attempts` plus the backoff between them per notification. One
//! worker per webhook also keeps a rule's "firing" ahead of its "resolved".

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use serde::Serialize;
use tokio::runtime::Handle;
use tokio::sync::mpsc::{self, error::TrySendError};

use super::config::{Webhook, WebhookFormat};
use super::metrics::{AlertMetrics, Outcome};

/// Notifications waiting per webhook; more are dropped.
pub const QUEUE_PER_WEBHOOK: usize = 64;
/// The longest a `429`'s `Retry-After` is waited for; a longer one is cut to this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// The longest backoff between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Whether an alert started or stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    /// The condition has held for the rule's `for`.
    Firing,
    /// The condition no longer holds (or the rule or its subject is gone).
    Resolved,
}

/// One notification, as the generic `json` body carries it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notification {
    /// The rule's name.
    pub rule: String,
    /// The rule's kind.
    pub kind: &'static str,
    /// What it is about: a policy, queue or controller name, `store`, or `*`.
    pub subject: String,
    /// Firing or resolved.
    pub state: AlertState,
    /// What happened, for a person.
    pub message: String,
    /// When the condition began to hold, ms since the epoch.
    pub since_ms: u64,
    /// When this notification was made, ms since the epoch.
    pub at_ms: u64,
    /// The value measured.
    pub value: f64,
    /// The rule's threshold.
    pub threshold: f64,
    /// The server that sends it.
    pub server: String,
}

impl Notification {
    /// The one line a Slack-compatible body carries.
    pub fn text(&self) -> String {
        let (mark, state) = match self.state {
            AlertState::Firing => (":rotating_light:", "FIRING"),
            AlertState::Resolved => (":white_check_mark:", "RESOLVED"),
        };
        format!(
            "{mark} [{state}] {} ({}) on {}: {}",
            self.rule, self.kind, self.server, self.message
        )
    }

    /// The request body for a webhook of `format`.
    pub fn body(&self, format: WebhookFormat) -> serde_json::Value {
        match format {
            WebhookFormat::Slack => serde_json::json!({ "text": self.text() }),
            WebhookFormat::Json => serde_json::to_value(self).unwrap_or_default(),
        }
    }
}

/// A notification for one webhook.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub notification: Arc<Notification>,
    pub webhook: Arc<Webhook>,
}

/// Where notifications go: webhooks, or (in unit tests) a channel to look at.
pub(crate) enum Sink {
    Webhooks(Webhooks),
    #[cfg(test)]
    Channel(mpsc::Sender<Job>),
}

impl Sink {
    /// Hands a job on without waiting; a full queue drops it.
    pub fn send(&self, job: Job, metrics: &AlertMetrics) {
        match self {
            Sink::Webhooks(w) => w.send(job, metrics),
            #[cfg(test)]
            Sink::Channel(tx) => {
                if tx.try_send(job.clone()).is_err() {
                    metrics.notification(&job.webhook.name, Outcome::Dropped);
                }
            }
        }
    }
}

/// The webhook workers, started on first use.
pub(crate) struct Webhooks {
    runtime: Option<Handle>,
    client: Option<reqwest::Client>,
    queues: Mutex<HashMap<String, mpsc::Sender<Job>>>,
}

impl Webhooks {
    /// Workers on the current Tokio runtime, if there is one (else the one `send` runs on).
    pub fn new() -> Webhooks {
        let client = reqwest::Client::builder()
            .user_agent(concat!("tollgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| tracing::error!(error = %e, "alerts: cannot build the HTTP client"))
            .ok();
        Webhooks {
            runtime: Handle::try_current().ok(),
            client,
            queues: Mutex::new(HashMap::new()),
        }
    }

    fn send(&self, job: Job, metrics: &AlertMetrics) {
        let name = job.webhook.name.clone();
        let Ok(mut queues) = self.queues.lock() else {
            metrics.notification(&name, Outcome::Dropped);
            return;
        };
        let job = match queues.get(&name) {
            Some(tx) => match tx.try_send(job) {
                Ok(()) => return,
                Err(TrySendError::Full(_)) => {
                    tracing::warn!(webhook = %name, "alerts: webhook queue full, notification dropped");
                    metrics.notification(&name, Outcome::Dropped);
                    return;
                }
                // The worker is gone (its runtime stopped): start another.
                Err(TrySendError::Closed(job)) => job,
            },
            None => job,
        };
        let (Some(runtime), Some(client)) = (
            self.runtime.clone().or_else(|| Handle::try_current().ok()),
            self.client.clone(),
        ) else {
            tracing::warn!(webhook = %name, "alerts: no runtime or HTTP client, notification dropped");
            metrics.notification(&name, Outcome::Dropped);
            return;
        };
        let (tx, rx) = mpsc::channel(QUEUE_PER_WEBHOOK);
        // A new channel has room for one.
        let _ = tx.try_send(job);
        runtime.spawn(worker(rx, client, metrics.clone()));
        queues.insert(name, tx);
    }
}

async fn worker(mut rx: mpsc::Receiver<Job>, client: reqwest::Client, metrics: AlertMetrics) {
    while let Some(job) = rx.recv().await {
        let outcome = deliver(&client, &job, &metrics).await;
        metrics.notification(&job.webhook.name, outcome);
    }
}

/// Posts one notification, retrying network errors, timeouts, 408, 429 and 5xx with
/// exponential backoff (a 429's `Retry-After` in seconds is honoured up to
/// [`MAX_RETRY_AFTER`]), at most `attempts` times.
pub(crate) async fn deliver(
    client: &reqwest::Client,
    job: &Job,
    metrics: &AlertMetrics,
) -> Outcome {
    let w = &job.webhook;
    let body = job.notification.body(w.format);
    let mut backoff = ExponentialBuilder::default()
        .with_min_delay(w.backoff)
        .with_max_delay(MAX_BACKOFF)
        .with_max_times(usize::try_from(w.attempts).unwrap_or(1))
        .with_jitter()
        .build();
    for attempt in 1..=w.attempts {
        metrics.attempt(&w.name);
        let mut request = client.post(w.url.clone()).timeout(w.timeout).json(&body);
        for (name, value) in &w.headers {
            request = request.header(name.clone(), value.clone());
        }
        let (why, retry_after) = match request.send().await {
            Ok(resp) if resp.status().is_success() => return Outcome::Sent,
            Ok(resp) => {
                let status = resp.status();
                if !(status.is_server_error() || matches!(status.as_u16(), 408 | 429)) {
                    tracing::warn!(webhook = %w.name, %status, "alerts: webhook refused the notification");
                    return Outcome::Failed;
                }
                let retry_after = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
                    .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER));
                (status.to_string(), retry_after)
            }
            Err(e) if e.is_timeout() => (format!("no answer within {:?}", w.timeout), None),
            Err(e) => (e.to_string(), None),
        };
        if attempt == w.attempts {
            tracing::warn!(webhook = %w.name, attempts = w.attempts, error = %why, "alerts: notification failed");
            break;
        }
        let delay = retry_after.or_else(|| backoff.next()).unwrap_or(w.backoff);
        tracing::debug!(webhook = %w.name, attempt, error = %why, ?delay, "alerts: retrying");
        tokio::time::sleep(delay).await;
    }
    Outcome::Failed
}
