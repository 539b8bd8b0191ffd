//! `GET /v1/stats` and `POST /v1/controllers/{name}` on a real server: exact totals, the
//! heavy hitters, queue stats, rates and samples from the once-a-second beat, controllers
//! reporting from another "program", the queue and controller metrics, and the admin token.

mod common;

use std::time::Duration;

use common::Running;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tollgate_controller::{
    ControllerConfig, OperationCategory, Priority, ReportError, UnifiedRateController,
};
use tollgate_server::stats::StatsReport;

const CONFIG: &str = "
policies:
  free: {rate: 5/d, algorithm: fixed-window}
  pro: {rate: 1000/s}
";

async fn stats(server: &Running) -> StatsReport {
    let (status, text) = server.call("GET", "/v1/stats", None, None).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not a StatsReport ({e}): {text}"))
}

async fn check(server: &Running, key: &str, policy: &str) -> bool {
    let body = json!({"key": key, "policy": policy});
    let (status, value) = server.json("POST", "/v1/check", Some(&body)).await;
    assert_eq!(status, StatusCode::OK, "{value}");
    value["allowed"].as_bool().expect("allowed is a bool")
}

/// Polls the stats until `done` holds, for at most `secs` seconds.
async fn until(server: &Running, secs: u64, done: impl Fn(&StatsReport) -> bool) -> StatsReport {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let report = stats(server).await;
        if done(&report) || tokio::time::Instant::now() > deadline {
            return report;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_every_decision_and_name_the_keys_denied_most() {
    let server = Running::start(CONFIG, None).await;
    // Once the beat has taken its first point, every later decision lands in a sample.
    until(&server, 10, |r| !r.history.is_empty()).await;
    // `flood` is denied 45 times, `noisy` 15, `quiet` never; `pro` is never denied.
    let mut denied = 0;
    for _ in 0..50 {
        denied += u64::from(!check(&server, "flood", "free").await);
    }
    for _ in 0..20 {
        denied += u64::from(!check(&server, "noisy", "free").await);
    }
    for _ in 0..3 {
        assert!(check(&server, "quiet", "free").await);
    }
    for i in 0..30 {
        assert!(check(&server, &format!("user:{i}"), "pro").await);
    }
    assert_eq!(denied, 60);

    // The beat takes a point a second: after two, the rates are measured.
    // Reports are up to a second old: wait for one taken after the checks.
    let report = until(&server, 10, |r| {
        r.history.len() >= 2 && r.decisions.allowed_total + r.decisions.denied_total == 103
    })
    .await;
    assert!(report.history.len() >= 2, "no samples: {report:?}");
    let free = report
        .policies
        .iter()
        .find(|p| p.name == "free")
        .expect("free");
    assert_eq!(free.decisions.allowed_total, 13);
    assert_eq!(free.decisions.denied_total, 60);
    assert_eq!(free.rate.as_deref(), Some("5/d"));
    assert_eq!(free.algorithm.as_deref(), Some("fixed-window"));
    let top: Vec<(&str, u64)> = free
        .top_denied
        .iter()
        .map(|k| (k.key.as_str(), k.denied))
        .collect();
    assert_eq!(top, [("flood", 45), ("noisy", 15)]);
    let pro = report
        .policies
        .iter()
        .find(|p| p.name == "pro")
        .expect("pro");
    assert_eq!(
        (pro.decisions.allowed_total, pro.decisions.denied_total),
        (30, 0)
    );
    assert!(pro.top_denied.is_empty());
    assert_eq!(report.decisions.allowed_total, 43);
    assert_eq!(report.decisions.denied_total, 60);
    assert_eq!(report.store.kind, "memory");
    assert!(report.store.ready);
    assert_eq!(report.store.breaker, None);
    assert!(
        report.store.tracked_keys.is_some_and(|n| n >= 33),
        "{:?}",
        report.store
    );

    // New decisions show as rates and in the samples.
    for _ in 0..10 {
        assert!(!check(&server, "flood", "free").await);
    }
    let sampled = |r: &StatsReport| r.history.iter().map(|s| s.denied).sum::<u64>();
    let report = until(&server, 10, |r| sampled(r) >= 70).await;
    let free = report
        .policies
        .iter()
        .find(|p| p.name == "free")
        .expect("free");
    assert!(free.decisions.denied_per_s > 0.0, "{free:?}");
    // 70 denials and at most 13 admissions lately.
    assert!(
        free.decisions.denied_percent >= 70.0 * 100.0 / 83.0 - 1e-9,
        "{free:?}"
    );
    assert_eq!(sampled(&report), 70, "{:?}", report.history);
    assert!(
        report.latency.count >= 10 && report.latency.p99_ms > 0.0,
        "{:?}",
        report.latency
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_show_in_the_stats_and_the_metrics() {
    let server = Running::start(CONFIG, None).await;
    let spec = json!({"name": "emails", "rate": "2/1s", "deadline_ms": 1_000});
    let (status, body) = server.json("POST", "/v1/queues", Some(&spec)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let report = json!({"worker": "host-a/1", "slots": 3, "ttl_ms": 60_000});
    let (status, body) = server
        .json("POST", "/v1/queues/emails/workers", Some(&report))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for i in 0..5 {
        let task = json!({"payload": {"n": i}, "priority": i % 2});
        let (status, body) = server
            .json("POST", "/v1/queues/emails/tasks", Some(&task))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    // A report is up to a second old: wait for one taken after the pushes.
    let report = until(&server, 10, |r| {
        r.queues.iter().any(|q| q.stats.waiting == 5)
    })
    .await;
    assert_eq!(report.queues_error, None);
    let q = report
        .queues
        .iter()
        .find(|q| q.stats.name == "emails")
        .expect("emails");
    assert_eq!(q.stats.waiting, 5);
    let depths: Vec<(u32, u64)> = q
        .stats
        .waiting_by_priority
        .iter()
        .map(|d| (d.priority, d.waiting))
        .collect();
    assert_eq!(depths, [(1, 2), (0, 3)]);
    // A deadline in 1970 cannot be met.
    assert_eq!(q.deadline_at_risk, Some(true));
    assert!(q.projected_finish_ms.is_some_and(|f| f >= report.now_ms));

    let (status, metrics) = server.call("GET", "/metrics", None, None).await;
    assert_eq!(status, StatusCode::OK);
    for line in [
        r#"tollgate_queue_tasks{queue="emails",state="waiting"} 5"#,
        r#"tollgate_queue_tasks{queue="emails",state="dead"} 0"#,
        r#"tollgate_queue_started_total{queue="emails"} 0"#,
        r#"tollgate_queue_rate_per_second{queue="emails"} 2.0"#,
        r#"tollgate_queue_deadline_at_risk{queue="emails"} 1"#,
        r#"tollgate_queue_worker_processes{queue="emails"} 1"#,
        r#"tollgate_queue_worker_slots{queue="emails"} 3"#,
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no {line} in\n{metrics}"
        );
    }

    // A removed queue loses its series.
    let (status, body) = server.call("DELETE", "/v1/queues/emails", None, None).await;
    assert!(status.is_success(), "{body}");
    until(&server, 10, |r| r.queues.is_empty()).await;
    let (_, metrics) = server.call("GET", "/metrics", None, None).await;
    assert!(!metrics.contains(r#"queue="emails""#), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_reports_its_usage_to_the_server() {
    let server = Running::start(CONFIG, None).await;
    let controller = UnifiedRateController::new(ControllerConfig::default());
    for _ in 0..4 {
        let permit = controller
            .request_permit(
                100,
                Priority::High,
                OperationCategory::Trading,
                "order".into(),
            )
            .await
            .expect("permit");
        permit.complete(1).await;
    }
    let expected = controller.get_stats().await;
    controller
        .report_to(&server.base, "bot", Duration::from_millis(500), None)
        .expect("reporting starts");
    let report = until(&server, 10, |r| !r.controllers.is_empty()).await;
    let bot = report.controllers.first().expect("the controller reported");
    assert_eq!(bot.name, "bot");
    assert!(!bot.stale);
    assert_eq!(bot.usage.capacity, u64::from(expected.capacity));
    assert_eq!(bot.usage.usage, 400);
    assert_eq!(bot.usage.granted, 4);
    assert_eq!(
        bot.usage.tier,
        expected.throttle_state.name().to_ascii_lowercase()
    );
    assert!((bot.usage.usage_percent - expected.usage_percent).abs() < 1e-9);

    until(&server, 10, |_| true).await;
    let (_, metrics) = server.call("GET", "/metrics", None, None).await;
    let ratio = format!(
        r#"tollgate_controller_usage_ratio{{controller="bot"}} {}"#,
        expected.usage_percent / 100.0
    );
    assert!(
        metrics.lines().any(|l| l == ratio),
        "no {ratio} in\n{metrics}"
    );

    // Bad reporting settings are refused before anything is sent.
    assert_eq!(
        controller.report_to("ftp://x", "bot", Duration::from_secs(1), None),
        Err(ReportError::BadUrl {
            url: "ftp://x".into()
        })
    );
    assert!(matches!(
        controller.report_to(&server.base, "a b", Duration::from_secs(1), None),
        Err(ReportError::BadName { .. })
    ));
    assert!(matches!(
        controller.report_to(&server.base, "bot", Duration::from_millis(10), None),
        Err(ReportError::BadInterval { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_reports_and_missing_tokens_are_refused() {
    let server = Running::start("admin_token: s3cret\n", None).await;
    let (status, body) = server.call("GET", "/v1/stats", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, body) = server.call("GET", "/v1/stats", None, Some("s3cret")).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let good = json!({"capacity": 800, "window_ms": 30_000, "usage": 10, "usage_percent": 1.25,
        "tier": "normal", "waiting": 0, "granted": 2, "sla_violations": 0, "interval_ms": 2000});
    let post = |body: Value, token: Option<&'static str>| {
        let server = &server;
        async move {
            server
                .call("POST", "/v1/controllers/bot", Some(&body), token)
                .await
        }
    };
    assert_eq!(post(good.clone(), None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        post(good.clone(), Some("s3cret")).await.0,
        StatusCode::NO_CONTENT
    );
    let mut bad = good.clone();
    bad["tier"] = json!("calm");
    let (status, body) = post(bad, Some("s3cret")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("\\\"calm\\\""), "{body}");
    let mut missing = good;
    missing.as_object_mut().expect("object").remove("usage");
    let (status, body) = post(missing, Some("s3cret")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("usage"), "{body}");
}
