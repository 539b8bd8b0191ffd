//! The engine against hand-built reports, with notifications caught on a channel.

use tokio::sync::mpsc;

use super::config::Glob;
use super::deliver::{Job, Sink};
use super::*;
use crate::Config;
use crate::stats::*;

fn rules(yaml: &str) -> AlertRules {
    let text = format!(
        "alerts:\n  server: test\n  webhooks:\n    - {{name: ops, url: 'http://127.0.0.1:9/hook'}}\n    - {{name: chat, url: 'http://127.0.0.1:9/slack', format: slack}}\n  rules:\n{yaml}"
    );
    Config::parse(&text, "t").expect("valid alerts").alerts
}

fn engine() -> (Alerts, mpsc::Receiver<Job>, AlertMetrics) {
    let metrics = AlertMetrics::default();
    let (tx, rx) = mpsc::channel(16);
    (
        Alerts::with_sink(metrics.clone(), Sink::Channel(tx)),
        rx,
        metrics,
    )
}

fn drain(rx: &mut mpsc::Receiver<Job>) -> Vec<(String, String, AlertState, String)> {
    std::iter::from_fn(|| rx.try_recv().ok())
        .map(|j| {
            let n = &j.notification;
            (
                j.webhook.name.clone(),
                n.subject.clone(),
                n.state,
                n.message.clone(),
            )
        })
        .collect()
}

fn rates(allowed: f64, denied: f64) -> DecisionRates {
    DecisionRates {
        allowed_per_s: allowed,
        denied_per_s: denied,
        denied_percent: if allowed + denied > 0.0 {
            100.0 * denied / (allowed + denied)
        } else {
            0.0
        },
        ..DecisionRates::default()
    }
}

fn report(now_ms: u64) -> StatsReport {
    StatsReport {
        version: "test".into(),
        now_ms,
        uptime_s: 1,
        store: StoreReport {
            kind: "redis".into(),
            ready: true,
            breaker: Some("closed".into()),
            ..StoreReport::default()
        },
        decisions: rates(0.0, 0.0),
        ..StatsReport::default()
    }
}

fn policy(name: &str, allowed: f64, denied: f64) -> PolicyReport {
    PolicyReport {
        name: name.into(),
        rate: None,
        algorithm: None,
        decisions: rates(allowed, denied),
        top_denied: Vec::new(),
    }
}

fn queue(name: &str, dead: u64) -> QueueReport {
    let json = serde_json::json!({
        "name": name, "rate": "10/s", "burst": null, "active": true, "max_attempts": 3,
        "visibility_timeout_ms": 1000, "idle_expiry_ms": 0, "backoff_base_ms": 10,
        "backoff_max_ms": 100, "created_ms": 0, "deadline_ms": null, "waiting": 5,
        "waiting_by_priority": [], "in_flight": 0, "delayed": 0, "dead": dead, "pushed": 0,
        "started": 0, "completed": 0, "failed": 0, "lost": 0, "next_token_ms": 0,
        "throughput_per_s": 0.0, "now_ms": 0,
    });
    QueueReport {
        stats: serde_json::from_value(json).expect("queue stats"),
        completed_per_s: 0.0,
        started_per_s: 0.0,
        projected_finish_ms: None,
        deadline_at_risk: None,
    }
}

#[test]
fn denial_rate_fires_after_for_once_then_resolves_once() {
    let rules =
        rules("    - {name: free-denials, kind: denial_rate, policy: free, above: 20%, for: 3s}\n");
    let (alerts, mut rx, metrics) = engine();
    let at = |t: u64, denied: f64| {
        let mut r = report(t);
        r.policies = vec![policy("free", 10.0, denied), policy("pro", 1.0, 100.0)];
        alerts.evaluate(&rules, &r);
    };
    at(1_000, 5.0); // 33%: pending
    at(2_000, 5.0);
    at(3_000, 5.0);
    assert!(drain(&mut rx).is_empty(), "fired before `for`");
    at(4_000, 5.0); // held 3 s: fires, to both webhooks
    let sent = drain(&mut rx);
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(
        (sent[0].1.as_str(), sent[0].2),
        ("free", AlertState::Firing)
    );
    assert!(
        sent[0].3.contains("33.3% of 15.0 decisions/s denied"),
        "{}",
        sent[0].3
    );
    assert_eq!(metrics.firing("free-denials"), 1);
    let firing = alerts.firing();
    assert_eq!(firing.len(), 1);
    assert_eq!(
        (firing[0].rule.as_str(), firing[0].since_ms),
        ("free-denials", 1_000)
    );
    for t in 5..20 {
        at(t * 1_000, 6.0);
    }
    assert!(drain(&mut rx).is_empty(), "repeated while firing");
    at(20_000, 1.0); // 9%: resolves
    let sent = drain(&mut rx);
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(sent[0].2, AlertState::Resolved);
    assert!(sent[0].3.starts_with("resolved after 19s"), "{}", sent[0].3);
    at(21_000, 1.0);
    assert!(drain(&mut rx).is_empty());
    assert_eq!(metrics.firing("free-denials"), 0);
    assert!(alerts.firing().is_empty());
}

#[test]
fn a_blip_shorter_than_for_never_fires() {
    let rules =
        rules("    - {name: all, kind: denial_rate, above: 50, for: 5s, webhooks: [ops]}\n");
    let (alerts, mut rx, _) = engine();
    for (t, denied) in [
        (0, 9.0),
        (2_000, 9.0),
        (4_000, 0.0),
        (6_000, 9.0),
        (10_000, 9.0),
    ] {
        let mut r = report(t);
        r.decisions = rates(1.0, denied);
        alerts.evaluate(&rules, &r);
    }
    assert!(drain(&mut rx).is_empty());
    let mut r = report(11_000);
    r.decisions = rates(1.0, 9.0);
    alerts.evaluate(&rules, &r);
    let sent = drain(&mut rx);
    assert_eq!(sent.len(), 1, "only the rule's webhook: {sent:?}");
    assert_eq!((sent[0].0.as_str(), sent[0].1.as_str()), ("ops", "*"));
}

#[test]
fn min_rate_ignores_little_traffic() {
    let rules = rules("    - {name: all, kind: denial_rate, above: 20%, min_rate: 5}\n");
    let (alerts, mut rx, _) = engine();
    let mut r = report(0);
    r.decisions = rates(1.0, 1.0); // 50% of 2/s
    alerts.evaluate(&rules, &r);
    assert!(drain(&mut rx).is_empty());
    r.now_ms = 1_000;
    r.decisions = rates(5.0, 5.0);
    alerts.evaluate(&rules, &r);
    assert_eq!(drain(&mut rx).len(), 2);
}

#[test]
fn store_down_and_breaker_open() {
    let rules = rules(
        "    - {name: redis, kind: store_down, webhooks: [ops]}\n    - {name: breaker, kind: breaker_open, webhooks: [ops]}\n",
    );
    let (alerts, mut rx, _) = engine();
    let mut r = report(0);
    r.store.ready = false;
    r.store.error = Some("connection refused".into());
    alerts.evaluate(&rules, &r);
    let sent = drain(&mut rx);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(
        sent[0].3.contains("not ready: connection refused"),
        "{}",
        sent[0].3
    );
    r.now_ms = 1_000;
    r.store.breaker = Some("open".into());
    alerts.evaluate(&rules, &r);
    let sent = drain(&mut rx);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(
        sent[0].3.contains("circuit breaker is open"),
        "{}",
        sent[0].3
    );
    r.now_ms = 2_000;
    r.store = report(0).store;
    r.store.open_slots = 3;
    alerts.evaluate(&rules, &r);
    let sent = drain(&mut rx);
    assert_eq!(
        sent.len(),
        1,
        "store_down resolves, breaker_open stays: {sent:?}"
    );
    assert_eq!(sent[0].2, AlertState::Resolved);
    assert_eq!(
        alerts.firing()[0].message,
        "3 Redis Cluster slot(s) have open circuit breakers"
    );
}

#[test]
fn queue_rules_follow_globs_and_dead_letter_windows() {
    let rules = rules(
        "    - {name: late, kind: queue_deadline_at_risk, queue: 'batch_*', webhooks: [ops]}\n    - {name: dead, kind: dead_letter_growth, above: 2, within: 10s, webhooks: [ops]}\n",
    );
    let (alerts, mut rx, _) = engine();
    let at = |t: u64, dead: u64, risk: bool| {
        let mut r = report(t);
        let mut a = queue("batch_1", dead);
        a.deadline_at_risk = Some(risk);
        let mut b = queue("emails", 0);
        b.deadline_at_risk = Some(true); // not matched by batch_*
        r.queues = vec![a, b];
        alerts.evaluate(&rules, &r);
    };
    at(0, 100, true);
    let sent = drain(&mut rx);
    assert_eq!(sent.len(), 1, "dead count at start is no growth: {sent:?}");
    assert_eq!(sent[0].1, "batch_1");
    at(1_000, 102, true); // rose by 2: not above 2
    assert!(drain(&mut rx).is_empty());
    at(2_000, 103, true); // rose by 3 within 10 s
    let sent = drain(&mut rx);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(
        sent[0].3.contains("3 task(s) dead-lettered within 10s"),
        "{}",
        sent[0].3
    );
    at(11_500, 103, true); // the 100 has left the window: 102 → 103 is 1
    let sent = drain(&mut rx);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        (sent[0].1.as_str(), sent[0].2),
        ("batch_1", AlertState::Resolved)
    );
    // Queues unreadable: nothing resolves.
    let mut r = report(12_500);
    r.queues_error = Some("redis down".into());
    alerts.evaluate(&rules, &r);
    assert!(drain(&mut rx).is_empty());
    assert_eq!(alerts.firing().len(), 1);
    // The queue is gone: resolves.
    alerts.evaluate(&rules, &report(13_500));
    let sent = drain(&mut rx);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(
        sent[0].3.contains("batch_1 is no longer reported"),
        "{}",
        sent[0].3
    );
}

#[test]
fn usage_of_controllers_and_queues() {
    let rules = rules(
        "    - {name: quota, kind: usage, controller: bot, above: 90%, webhooks: [ops]}\n    - {name: busy, kind: usage, queue: '*', above: 80, webhooks: [ops]}\n",
    );
    let (alerts, mut rx, _) = engine();
    let controller = |name: &str, percent: f64, stale: bool| ControllerReport {
        name: name.into(),
        received_ms: 0,
        stale,
        usage: ControllerUsage {
            capacity: 100,
            window_ms: 1000,
            usage: percent as u64,
            usage_percent: percent,
            tier: "heavy".into(),
            waiting: 0,
            granted: 0,
            sla_violations: 0,
            interval_ms: 1000,
        },
    };
    let mut r = report(0);
    r.controllers = vec![
        controller("bot", 95.0, false),
        controller("web", 99.0, false),
    ];
    let mut q = queue("mail", 0);
    q.started_per_s = 9.0; // of 10/s
    r.queues = vec![q];
    alerts.evaluate(&rules, &r);
    let mut sent = drain(&mut rx);
    sent.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(
        sent[0].3.contains("controller bot: usage 95.0%"),
        "{}",
        sent[0].3
    );
    assert!(
        sent[1]
            .3
            .contains("queue mail: starting 9.00/s, 90.0% of its rate 10/s"),
        "{}",
        sent[1].3
    );
    r.now_ms = 1_000;
    r.controllers = vec![controller("bot", 95.0, true)];
    alerts.evaluate(&rules, &r);
    let sent = drain(&mut rx);
    assert_eq!(sent.len(), 1, "a stale report resolves: {sent:?}");
    assert_eq!(
        (sent[0].1.as_str(), sent[0].2),
        ("bot", AlertState::Resolved)
    );
}

#[test]
fn a_rule_removed_by_a_reload_resolves_with_a_message() {
    let before = rules("    - {name: redis, kind: store_down}\n");
    let after = rules("    - {name: breaker, kind: breaker_open}\n");
    let (alerts, mut rx, metrics) = engine();
    let mut r = report(0);
    r.store.ready = false;
    alerts.evaluate(&before, &r);
    assert_eq!(drain(&mut rx).len(), 2);
    assert_eq!(metrics.firing("redis"), 1);
    r.now_ms = 1_000;
    alerts.evaluate(&after, &r);
    let sent = drain(&mut rx);
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(sent[0].2, AlertState::Resolved);
    assert!(
        sent[0].3.contains("the rule was removed from the config"),
        "{}",
        sent[0].3
    );
    assert_eq!(metrics.firing("redis"), 0);
}

#[test]
fn evaluations_closer_than_evaluate_every_are_skipped() {
    let text = "alerts:\n  evaluate_every: 10s\n  webhooks: [{name: ops, url: 'http://h/'}]\n  rules: [{name: r, kind: store_down}]\n";
    let rules = Config::parse(text, "t").expect("valid").alerts;
    let (alerts, mut rx, _) = engine();
    alerts.evaluate(&rules, &report(0));
    let mut r = report(5_000);
    r.store.ready = false;
    alerts.evaluate(&rules, &r);
    assert!(drain(&mut rx).is_empty());
    r.now_ms = 10_000;
    alerts.evaluate(&rules, &r);
    assert_eq!(drain(&mut rx).len(), 1);
}

#[test]
fn a_full_queue_drops_and_counts() {
    let rules =
        rules("    - {name: p, kind: denial_rate, policy: '*', above: 1%, webhooks: [ops]}\n");
    let (alerts, _rx, metrics) = engine();
    let mut r = report(0);
    r.policies = (0..20)
        .map(|i| policy(&format!("p{i}"), 1.0, 1.0))
        .collect();
    alerts.evaluate(&rules, &r);
    assert_eq!(
        metrics.notifications("ops", Outcome::Dropped),
        4,
        "16 fit the channel"
    );
    assert_eq!(alerts.firing().len(), 20);
}

#[test]
fn globs() {
    for (pattern, name, matches) in [
        ("*", "", true),
        ("*", "anything", true),
        ("batch_*", "batch_1", true),
        ("batch_*", "batch_", true),
        ("batch_*", "xbatch_1", false),
        ("b?t*_*2", "bat_x_y2", true),
        ("free", "free", true),
        ("free", "freebie", false),
        ("*-eu", "api-eu", true),
        ("*-eu", "api-us", false),
    ] {
        assert_eq!(
            Glob::new(pattern).matches(name),
            matches,
            "{pattern} on {name}"
        );
    }
}

#[test]
fn bad_config_says_what_and_where() {
    let text = r#"
alerts:
  evaluate_every: soon
  webhooks:
    - {name: ops, url: 'ftp://x', format: teams, timeout: 0s, attempts: 0}
    - {name: ops, url: 'http://h', headers: {"bad header": x}}
  rules:
    - {name: a, kind: denial_rate, above: "120%"}
    - {name: a, kind: store_down, above: 5, queue: q}
    - {name: c, kind: usage, above: 90%, queue: q, controller: c}
    - {name: d, kind: dead_letter_growth, above: "10%", within: 0s}
    - {name: e, kind: deadline, webhooks: [nobody]}
    - {name: f, kind: denial_rate, for: later}
"#;
    let err = Config::parse(text, "t.yaml").expect_err("invalid");
    let all = err.to_string();
    for needle in [
        "alerts.evaluate_every: \"soon\" is not a duration",
        "alerts.webhooks[0].url: \"ftp://x\" is not an http:// or https:// URL",
        "alerts.webhooks[0].format: \"teams\" is not slack or json",
        "alerts.webhooks[0].timeout: must be from 1ms to 60s",
        "alerts.webhooks[0].attempts: 0 is not from 1 to 10",
        "alerts.webhooks[1].name: \"ops\" is used twice",
        "alerts.webhooks[1].headers: \"bad header\" is not a valid header name",
        "alerts.rules[0].above: \"120%\" is not a percentage from 0 to 100",
        "alerts.rules[1].name: \"a\" is used twice",
        "alerts.rules[1].queue: is not used by kind store_down",
        "alerts.rules[1].above: is not used by kind store_down",
        "alerts.rules[2]: give controller or queue, not both",
        "alerts.rules[3].above: \"10%\" is not a whole number of tasks",
        "alerts.rules[3].within: must be from 1ms to 24h",
        "alerts.rules[4].kind: \"deadline\" is not denial_rate, store_down",
        "alerts.rules[4].webhooks: \"nobody\" is not a webhook in alerts.webhooks",
        "alerts.rules[5].for: \"later\" is not a duration",
        "alerts.rules[5].above: is required, a percentage like 90%",
    ] {
        assert!(all.contains(needle), "{needle} missing from:\n{all}");
    }
    assert_eq!(err.problems.len(), 18, "{all}");
    let err = Config::parse(
        "alerts: {rules: [{name: x, kind: store_down, fro: 1s}]}\n",
        "t",
    )
    .expect_err("typo");
    assert!(err.to_string().contains("fro"), "{err}");
}

#[test]
fn notification_bodies() {
    let n = Notification {
        rule: "free-denials".into(),
        kind: "denial_rate",
        subject: "free".into(),
        state: AlertState::Firing,
        message: "policy free: 40.0% denied".into(),
        since_ms: 1,
        at_ms: 2,
        value: 40.0,
        threshold: 20.0,
        server: "edge-1".into(),
    };
    assert_eq!(
        n.body(WebhookFormat::Slack),
        serde_json::json!({"text": ":rotating_light: [FIRING] free-denials (denial_rate) on edge-1: policy free: 40.0% denied"})
    );
    let json = n.body(WebhookFormat::Json);
    assert_eq!(json["state"], "firing");
    assert_eq!(json["threshold"], 20.0);
    assert_eq!(json["server"], "edge-1");
    assert_eq!(json["subject"], "free");
}
