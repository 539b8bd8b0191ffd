//! The alert engine: the state of each (rule, subject), moved by each report.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use super::config::{AlertRules, RuleKind, Webhook};
use super::deliver::{AlertState, Job, Notification, Sink, Webhooks};
use super::metrics::AlertMetrics;
use super::rules::{DeadLetters, Observation, human_ms, observe};
use crate::stats::{AlertReport, StatsReport};

/// Alert rules' state, evaluated against each [`StatsReport`].
///
/// A (rule, subject) whose condition holds is *pending*; once it has held for the rule's
/// `for` it is *firing*, and its webhooks get one "firing" notification. Nothing more is sent
/// while it lasts. When the condition stops holding, or the subject is no longer reported, or
/// a reload removes the rule, it resolves and its webhooks get one "resolved" notification.
pub struct Alerts {
    metrics: AlertMetrics,
    sink: Sink,
    host: String,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    last_ms: Option<u64>,
    /// By (rule, subject).
    alerts: BTreeMap<(String, String), Alert>,
    dead: DeadLetters,
    /// Rules with a `tollgate_alerts_firing` series.
    known_rules: HashSet<String>,
}

struct Alert {
    kind: &'static str,
    since_ms: u64,
    firing: bool,
    last: Observation,
    /// Where its notifications went when it fired, so its "resolved" goes there too.
    webhooks: Vec<Arc<Webhook>>,
}

impl Alerts {
    /// An engine delivering to webhooks on the current Tokio runtime, counting in `metrics`.
    pub fn new(metrics: AlertMetrics) -> Alerts {
        Alerts::with_sink(metrics, Sink::Webhooks(Webhooks::new()))
    }

    pub(crate) fn with_sink(metrics: AlertMetrics, sink: Sink) -> Alerts {
        Alerts {
            metrics,
            sink,
            host: host_name(),
            state: Mutex::new(State::default()),
        }
    }

    /// Moves every rule's state by `report` (whose `now_ms` is the clock), and hands the
    /// notifications due to the delivery tasks without waiting for them. A report less than
    /// 90% of `evaluate_every` after the last evaluated one is skipped.
    pub fn evaluate(&self, rules: &AlertRules, report: &StatsReport) {
        let now = report.now_ms;
        let mut due = Vec::new();
        {
            let Ok(mut guard) = self.state.lock() else {
                return;
            };
            let state = &mut *guard;
            let every = u64::try_from(rules.evaluate_every.as_millis()).unwrap_or(u64::MAX);
            if let Some(last) = state.last_ms
                && now >= last
                && now - last < every / 10 * 9
            {
                return;
            }
            state.last_ms = Some(now);
            let server = rules.server.clone().unwrap_or_else(|| self.host.clone());
            let mut seen: HashSet<(String, String)> = HashSet::new();
            for rule in &rules.rules {
                let Some(observations) = observe(rule, report, &mut state.dead) else {
                    // The report cannot tell (queues unreadable): leave the rule's alerts be.
                    seen.extend(
                        state
                            .alerts
                            .keys()
                            .filter(|(r, _)| r == &rule.name)
                            .cloned(),
                    );
                    continue;
                };
                for o in observations {
                    let key = (rule.name.clone(), o.subject.clone());
                    seen.insert(key.clone());
                    if !o.active {
                        if let Some(alert) = state.alerts.remove(&key)
                            && alert.firing
                        {
                            let message = format!(
                                "resolved after {}: {}",
                                human_ms(now.saturating_sub(alert.since_ms)),
                                o.message
                            );
                            due.push(notification(
                                &rule.name,
                                &alert,
                                AlertState::Resolved,
                                message,
                                &o,
                                now,
                                &server,
                            ));
                        }
                        continue;
                    }
                    let alert = state.alerts.entry(key).or_insert_with(|| Alert {
                        kind: rule.kind.name(),
                        since_ms: now,
                        firing: false,
                        last: o.clone(),
                        webhooks: Vec::new(),
                    });
                    alert.last = o.clone();
                    let held = now.saturating_sub(alert.since_ms);
                    if !alert.firing && u128::from(held) >= rule.hold.as_millis() {
                        alert.firing = true;
                        alert.webhooks = rule.webhooks.clone();
                        let message = if rule.hold.is_zero() {
                            o.message.clone()
                        } else {
                            format!("{} for {}", o.message, human_ms(held))
                        };
                        due.push(notification(
                            &rule.name,
                            alert,
                            AlertState::Firing,
                            message,
                            &o,
                            now,
                            &server,
                        ));
                    }
                }
            }
            let configured: HashSet<&str> = rules.rules.iter().map(|r| r.name.as_str()).collect();
            let gone: Vec<_> = state
                .alerts
                .keys()
                .filter(|k| !seen.contains(*k))
                .cloned()
                .collect();
            for key in gone {
                let Some(alert) = state.alerts.remove(&key) else {
                    continue;
                };
                if alert.firing {
                    let why = if configured.contains(key.0.as_str()) {
                        format!("{} is no longer reported", key.1)
                    } else {
                        "the rule was removed from the config".to_string()
                    };
                    let message = format!("resolved: {why} (last: {})", alert.last.message);
                    let last = alert.last.clone();
                    due.push(notification(
                        &key.0,
                        &alert,
                        AlertState::Resolved,
                        message,
                        &last,
                        now,
                        &server,
                    ));
                }
            }
            let keep_dead: HashSet<&str> = rules
                .rules
                .iter()
                .filter(|r| matches!(r.kind, RuleKind::DeadLetterGrowth { .. }))
                .map(|r| r.name.as_str())
                .collect();
            state.dead.retain(|rule, _| keep_dead.contains(rule));
            for rule in &rules.rules {
                let firing = state
                    .alerts
                    .iter()
                    .filter(|((r, _), a)| r == &rule.name && a.firing)
                    .count();
                self.metrics.set_firing(&rule.name, firing);
                state.known_rules.insert(rule.name.clone());
            }
            state.known_rules.retain(|rule| {
                let keep = configured.contains(rule.as_str());
                if !keep {
                    self.metrics.remove_rule(rule);
                }
                keep
            });
        }
        for (notification, webhooks) in due {
            let notification = Arc::new(notification);
            for webhook in webhooks {
                let job = Job {
                    notification: notification.clone(),
                    webhook,
                };
                self.sink.send(job, &self.metrics);
            }
        }
    }

    /// The alerts firing now, by rule then subject.
    pub fn firing(&self) -> Vec<AlertReport> {
        let Ok(state) = self.state.lock() else {
            return Vec::new();
        };
        state
            .alerts
            .iter()
            .filter(|(_, a)| a.firing)
            .map(|((rule, _), a)| AlertReport {
                rule: rule.clone(),
                kind: a.kind.to_string(),
                message: a.last.message.clone(),
                since_ms: a.since_ms,
            })
            .collect()
    }
}

fn notification(
    rule: &str,
    alert: &Alert,
    state: AlertState,
    message: String,
    o: &Observation,
    now: u64,
    server: &str,
) -> (Notification, Vec<Arc<Webhook>>) {
    let n = Notification {
        rule: rule.to_string(),
        kind: alert.kind,
        subject: o.subject.clone(),
        state,
        message,
        since_ms: alert.since_ms,
        at_ms: now,
        value: o.value,
        threshold: o.threshold,
        server: server.to_string(),
    };
    (n, alert.webhooks.clone())
}

/// This machine's name, for notifications; `tollgate` when it cannot be read.
fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| {
            let name = std::fs::read_to_string(p).ok()?;
            let name = name.trim();
            (!name.is_empty()).then(|| name.to_string())
        })
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| "tollgate".to_string())
}
