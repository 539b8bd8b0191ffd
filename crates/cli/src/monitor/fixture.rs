//! Reports for the tests: one busy server and one idle one.

use tollgate_queue::{PriorityDepth, QueueStats};
use tollgate_server::stats::{
    AlertReport, ControllerReport, ControllerUsage, DecisionRates, DeniedKey, LatencyReport,
    PolicyReport, QueueReport, Sample, StatsReport, StoreReport,
};

/// The server's clock in the fixtures.
pub const NOW_MS: u64 = 1_700_000_000_000;

fn rates(allowed_total: u64, denied_total: u64, allowed: f64, denied: f64) -> DecisionRates {
    let all = allowed + denied;
    DecisionRates {
        allowed_total,
        denied_total,
        allowed_per_s: allowed,
        denied_per_s: denied,
        denied_percent: if all > 0.0 { denied * 100.0 / all } else { 0.0 },
    }
}

fn denied_key(key: &str, denied: u64, error: u64) -> DeniedKey {
    DeniedKey {
        key: key.into(),
        denied,
        error,
    }
}

/// A queue's stats with nothing in it.
pub fn queue(name: &str, rate: &str) -> QueueStats {
    QueueStats {
        name: name.into(),
        rate: rate.parse().expect("fixture rate"),
        burst: None,
        active: true,
        max_attempts: 3,
        visibility_timeout_ms: 30_000,
        idle_expiry_ms: 3_600_000,
        backoff_base_ms: 1_000,
        backoff_max_ms: 300_000,
        created_ms: NOW_MS - 60_000,
        deadline_ms: None,
        waiting: 0,
        waiting_by_priority: Vec::new(),
        in_flight: 0,
        delayed: 0,
        dead: 0,
        pushed: 0,
        started: 0,
        completed: 0,
        failed: 0,
        lost: 0,
        next_token_ms: 0,
        throughput_per_s: 0.0,
        now_ms: NOW_MS,
        workers: Default::default(),
    }
}

fn emails() -> QueueReport {
    let mut stats = queue("emails", "5/60s");
    stats.deadline_ms = Some(NOW_MS + 120_000);
    stats.waiting = 40;
    stats.waiting_by_priority = vec![
        PriorityDepth {
            priority: 9,
            waiting: 15,
        },
        PriorityDepth {
            priority: 0,
            waiting: 25,
        },
    ];
    stats.in_flight = 2;
    stats.delayed = 3;
    stats.dead = 4;
    stats.pushed = 60;
    stats.started = 17;
    stats.completed = 11;
    stats.failed = 6;
    stats.next_token_ms = 7_000;
    stats.throughput_per_s = 0.08;
    QueueReport {
        stats,
        completed_per_s: 0.1,
        started_per_s: 0.2,
        projected_finish_ms: Some(NOW_MS + 540_000),
        deadline_at_risk: Some(true),
    }
}

fn reports() -> QueueReport {
    let mut stats = queue("reports", "100/1s");
    stats.deadline_ms = Some(NOW_MS + 600_000);
    stats.waiting = 5;
    stats.waiting_by_priority = vec![PriorityDepth {
        priority: 0,
        waiting: 5,
    }];
    stats.pushed = 905;
    stats.started = 900;
    stats.completed = 900;
    stats.throughput_per_s = 98.5;
    QueueReport {
        stats,
        completed_per_s: 97.0,
        started_per_s: 97.5,
        projected_finish_ms: Some(NOW_MS + 50),
        deadline_at_risk: Some(false),
    }
}

/// A server with traffic, denials, queues, a controller and an alert.
pub fn busy() -> StatsReport {
    let history = (0..120u64)
        .map(|i| Sample {
            t_ms: NOW_MS - (120 - i) * 1000,
            allowed: 100 + (i % 10) * 5,
            denied: if i > 100 { 30 } else { 2 },
            p50_ms: 0.05,
            p99_ms: 0.4,
            queue_waiting: 45,
            queue_completed: 97,
            store_down: 0,
        })
        .collect();
    StatsReport {
        version: "0.1.0".into(),
        now_ms: NOW_MS,
        uptime_s: 3_725,
        store: StoreReport {
            kind: "redis".into(),
            ready: true,
            error: None,
            tracked_keys: None,
            breaker: Some("half-open".into()),
            open_slots: 2,
            failures_total: 17,
            fallback_decisions_total: 5,
            breaker_opened_total: 3,
        },
        decisions: rates(123_456, 7_890, 142.5, 31.5),
        latency: LatencyReport {
            count: 131_346,
            p50_ms: 0.05,
            p99_ms: 0.42,
            max_ms: 3.2,
        },
        policies: vec![
            PolicyReport {
                name: "login".into(),
                rate: Some("5/60s".into()),
                algorithm: Some("sliding-window".into()),
                decisions: rates(3_000, 7_000, 2.5, 30.0),
                top_denied: vec![
                    denied_key("login:mallory", 4_200, 0),
                    denied_key("login:eve", 1_300, 12),
                    denied_key("login:trudy", 250, 12),
                ],
            },
            PolicyReport {
                name: "api".into(),
                rate: Some("100/10s".into()),
                algorithm: Some("gcra".into()),
                decisions: rates(120_000, 890, 140.0, 1.5),
                top_denied: vec![denied_key("user:42", 800, 0)],
            },
            PolicyReport {
                name: "inline".into(),
                rate: None,
                algorithm: None,
                decisions: rates(456, 0, 0.0, 0.0),
                top_denied: Vec::new(),
            },
        ],
        queues: vec![emails(), reports()],
        queues_error: None,
        controllers: vec![ControllerReport {
            name: "openai".into(),
            received_ms: NOW_MS - 1_000,
            stale: false,
            usage: ControllerUsage {
                capacity: 10_000,
                window_ms: 60_000,
                usage: 9_300,
                usage_percent: 93.0,
                tier: "heavy".into(),
                waiting: 12,
                granted: 55_000,
                sla_violations: 7,
                interval_ms: 1_000,
            },
        }],
        alerts: vec![AlertReport {
            rule: "login-abuse".into(),
            kind: "denial_rate".into(),
            message: "login denies 92.3% of decisions (over 50% for 1m)".into(),
            since_ms: NOW_MS - 90_000,
        }],
        history,
    }
}

/// A server just started on the embedded store: nothing decided, no queues.
pub fn idle() -> StatsReport {
    StatsReport {
        version: "0.1.0".into(),
        now_ms: NOW_MS,
        uptime_s: 4,
        store: StoreReport {
            kind: "memory".into(),
            ready: true,
            tracked_keys: Some(0),
            ..StoreReport::default()
        },
        ..StatsReport::default()
    }
}
