//! What each kind of rule sees in a [`StatsReport`]: one [`Observation`] per subject (a
//! policy, a queue, a controller, the store), whether or not its condition holds.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use super::config::{Rule, RuleKind};
use crate::stats::{QueueReport, StatsReport};

/// The most dead-letter counts kept per (rule, queue); only changes are kept, so this bounds
/// memory for a queue whose dead count changes every second of a long window.
const MAX_DEAD_SAMPLES: usize = 4096;

/// One subject of a rule, as of one report.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// The policy, queue or controller name; `store`; or `*` for all decisions.
    pub subject: String,
    /// Whether the condition holds.
    pub active: bool,
    /// The measured value (a percentage, a count, 0/1).
    pub value: f64,
    /// The value the condition compares with.
    pub threshold: f64,
    /// The subject's state for a person, with the threshold.
    pub message: String,
}

/// Dead-letter counts seen lately, per (rule, queue): `(ms, dead)`, oldest first, one entry per
/// change (the entry's time is the last time that count was seen).
#[derive(Debug, Default)]
pub struct DeadLetters(HashMap<(String, String), VecDeque<(u64, u64)>>);

impl DeadLetters {
    /// Records `dead` at `now_ms` and answers how much it rose within `within`: now minus
    /// the least count seen in the window.
    fn rise(&mut self, rule: &str, queue: &str, now_ms: u64, dead: u64, within: Duration) -> u64 {
        let samples = self
            .0
            .entry((rule.to_string(), queue.to_string()))
            .or_default();
        let start = now_ms.saturating_sub(u64::try_from(within.as_millis()).unwrap_or(u64::MAX));
        while samples.front().is_some_and(|&(t, _)| t < start) {
            samples.pop_front();
        }
        match samples.back_mut() {
            Some(last) if last.1 == dead => last.0 = now_ms,
            _ => samples.push_back((now_ms, dead)),
        }
        if samples.len() > MAX_DEAD_SAMPLES {
            samples.pop_front();
        }
        let least = samples.iter().map(|&(_, d)| d).min().unwrap_or(dead);
        dead.saturating_sub(least)
    }

    /// Forgets every history not in `keep`.
    pub fn retain(&mut self, keep: impl Fn(&str, &str) -> bool) {
        self.0.retain(|(rule, queue), _| keep(rule, queue));
    }
}

/// The rule's subjects in `report`; `None` when the report cannot tell (queues unreadable),
/// so the rule's alerts stay as they are.
pub fn observe(
    rule: &Rule,
    report: &StatsReport,
    dead: &mut DeadLetters,
) -> Option<Vec<Observation>> {
    let queues = |glob: &super::config::Glob| -> Option<Vec<&QueueReport>> {
        if report.queues_error.is_some() {
            return None;
        }
        Some(
            report
                .queues
                .iter()
                .filter(|q| glob.matches(&q.stats.name))
                .collect(),
        )
    };
    let observations = match &rule.kind {
        RuleKind::DenialRate {
            policy,
            above,
            min_rate,
        } => {
            let judge = |subject: &str, who: &str, d: &crate::stats::DecisionRates| {
                let rate = d.allowed_per_s + d.denied_per_s;
                Observation {
                    subject: subject.to_string(),
                    active: rate >= *min_rate && rate > 0.0 && d.denied_percent >= *above,
                    value: d.denied_percent,
                    threshold: *above,
                    message: format!(
                        "{who}: {:.1}% of {rate:.1} decisions/s denied (alert at {above}%, from {min_rate} decisions/s)",
                        d.denied_percent
                    ),
                }
            };
            match policy {
                None => vec![judge("*", "all policies", &report.decisions)],
                Some(glob) => report
                    .policies
                    .iter()
                    .filter(|p| glob.matches(&p.name))
                    .map(|p| judge(&p.name, &format!("policy {}", p.name), &p.decisions))
                    .collect(),
            }
        }
        RuleKind::StoreDown => {
            let s = &report.store;
            let breaker = s.breaker.as_deref().filter(|b| *b != "closed");
            let active = !s.ready || breaker.is_some();
            let message = match (s.ready, breaker) {
                (false, _) => format!(
                    "{} store is not ready: {}",
                    s.kind,
                    s.error.as_deref().unwrap_or("no answer to its ping")
                ),
                (true, Some(b)) => format!("{} store's circuit breaker is {b}", s.kind),
                (true, None) => format!("{} store is ready", s.kind),
            };
            store_observation(active, message)
        }
        RuleKind::BreakerOpen => {
            let s = &report.store;
            let breaker = s.breaker.as_deref().filter(|b| *b != "closed");
            let active = breaker.is_some() || s.open_slots > 0;
            let message = match breaker {
                Some(b) => format!("{} store's circuit breaker is {b}", s.kind),
                None if s.open_slots > 0 => format!(
                    "{} Redis Cluster slot(s) have open circuit breakers",
                    s.open_slots
                ),
                None => format!("{} store's circuit breakers are closed", s.kind),
            };
            store_observation(active, message)
        }
        RuleKind::QueueDeadlineAtRisk { queue } => queues(queue)?
            .into_iter()
            .map(|q| {
                let active = q.deadline_at_risk == Some(true);
                let message = match (q.stats.deadline_ms, q.projected_finish_ms) {
                    (Some(deadline), Some(finish)) if finish > deadline => format!(
                        "queue {}: {} tasks left, projected to finish {} after its deadline",
                        q.stats.name,
                        q.stats.backlog(),
                        human_ms(finish - deadline)
                    ),
                    (Some(_), None) if active => format!(
                        "queue {}: {} tasks left and no progress to project a finish before its deadline",
                        q.stats.name,
                        q.stats.backlog()
                    ),
                    _ => format!("queue {}: on time", q.stats.name),
                };
                Observation {
                    subject: q.stats.name.clone(),
                    active,
                    value: f64::from(u8::from(active)),
                    threshold: 1.0,
                    message,
                }
            })
            .collect(),
        RuleKind::DeadLetterGrowth {
            queue,
            above,
            within,
        } => queues(queue)?
            .into_iter()
            .map(|q| {
                let rise = dead.rise(&rule.name, &q.stats.name, report.now_ms, q.stats.dead, *within);
                Observation {
                    subject: q.stats.name.clone(),
                    active: rise > *above,
                    value: rise as f64,
                    threshold: *above as f64,
                    message: format!(
                        "queue {}: {rise} task(s) dead-lettered within {} ({} dead now; alert above {above})",
                        q.stats.name,
                        human_ms(u64::try_from(within.as_millis()).unwrap_or(u64::MAX)),
                        q.stats.dead
                    ),
                }
            })
            .collect(),
        RuleKind::ControllerUsage { controller, above } => report
            .controllers
            .iter()
            .filter(|c| controller.matches(&c.name))
            .map(|c| Observation {
                subject: c.name.clone(),
                // A stale report says nothing about now.
                active: !c.stale && c.usage.usage_percent >= *above,
                value: c.usage.usage_percent,
                threshold: *above,
                message: format!(
                    "controller {}: usage {:.1}% of capacity, tier {}{} (alert at {above}%)",
                    c.name,
                    c.usage.usage_percent,
                    c.usage.tier,
                    if c.stale { ", stale" } else { "" }
                ),
            })
            .collect(),
        RuleKind::QueueUsage { queue, above } => queues(queue)?
            .into_iter()
            .map(|q| {
                let rate = &q.stats.rate;
                let per_s = rate.count() as f64 / rate.period().as_secs_f64().max(1e-9);
                let percent = 100.0 * q.started_per_s / per_s;
                Observation {
                    subject: q.stats.name.clone(),
                    active: percent >= *above,
                    value: percent,
                    threshold: *above,
                    message: format!(
                        "queue {}: starting {:.2}/s, {percent:.1}% of its rate {rate} (alert at {above}%)",
                        q.stats.name, q.started_per_s
                    ),
                }
            })
            .collect(),
    };
    Some(observations)
}

/// `3m 10s`, `250ms`, `2h 5m`: a wait for a person.
pub fn human_ms(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0 => format!("{ms}ms"),
        1..60 => format!("{s}s"),
        60..3600 if s.is_multiple_of(60) => format!("{}m", s / 60),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        _ if s % 3600 / 60 == 0 => format!("{}h", s / 3600),
        _ => format!("{}h {}m", s / 3600, s % 3600 / 60),
    }
}

/// The one observation a store rule makes: active or not (its value 1 or 0 against a
/// threshold of 1), and why.
fn store_observation(active: bool, message: String) -> Vec<Observation> {
    vec![Observation {
        subject: "store".to_string(),
        active,
        value: f64::from(u8::from(active)),
        threshold: 1.0,
        message,
    }]
}
