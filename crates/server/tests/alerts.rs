//! The alert engine delivering to a real webhook receiver (an axum server on a free port in
//! this process): Slack and JSON bodies, one firing and one resolved, retries, Retry-After,
//! a hanging webhook, a full queue, and the metrics that count them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use prometheus_client::registry::Registry;
use serde_json::Value;
use tollgate_server::Config;
use tollgate_server::alerts::{AlertMetrics, AlertRules, Alerts, Outcome, metrics};
use tollgate_server::stats::{DecisionRates, PolicyReport, StatsReport, StoreReport};

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    body: Value,
    auth: Option<String>,
    at: Instant,
}

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    calls: Arc<AtomicUsize>,
}

/// `/ok/*` answers 200; `/flaky/N` 500 for the first N calls overall, then 200; `/limited`
/// 429 with `Retry-After: 1` once, then 200; `/hang` never answers; `/gone` 404.
async fn hook(
    State(rx): State<Receiver>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let call = rx.calls.fetch_add(1, Ordering::SeqCst);
    let body = serde_json::from_str(&body).unwrap_or(Value::String(body));
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    rx.got.lock().expect("lock").push(Received {
        path: path.clone(),
        body,
        auth,
        at: Instant::now(),
    });
    match path.split('/').collect::<Vec<_>>().as_slice() {
        ["flaky", n] if call < n.parse().unwrap_or(0) => {
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
        ["limited"] if call == 0 => {
            (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")]).into_response()
        }
        ["hang"] => {
            tokio::time::sleep(Duration::from_secs(600)).await;
            StatusCode::OK.into_response()
        }
        ["gone"] => StatusCode::NOT_FOUND.into_response(),
        _ => StatusCode::OK.into_response(),
    }
}

impl Receiver {
    /// Serves on a free port; answers the receiver and its base URL.
    async fn start() -> (Receiver, String) {
        let rx = Receiver::default();
        let app = Router::new()
            .route("/{*path}", post(hook))
            .with_state(rx.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        (rx, base)
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().expect("lock").clone()
    }
}

/// Polls `done` every 20 ms for up to 30 s; the assertions after it say what was wrong.
async fn wait_until(mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() && start.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn rules(yaml: &str) -> AlertRules {
    Config::parse(yaml, "test").expect("valid config").alerts
}

fn engine() -> (Alerts, AlertMetrics, Registry) {
    let mut registry = Registry::with_prefix("tollgate");
    let metrics = metrics::register(&mut registry);
    (Alerts::new(metrics.clone()), metrics, registry)
}

fn report(now_ms: u64, store_ready: bool) -> StatsReport {
    StatsReport {
        version: "test".into(),
        now_ms,
        uptime_s: 1,
        store: StoreReport {
            kind: "redis".into(),
            ready: store_ready,
            error: (!store_ready).then(|| "connection refused".to_string()),
            breaker: Some("closed".into()),
            ..StoreReport::default()
        },
        ..StatsReport::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_and_json_bodies_one_firing_one_resolved() {
    let (rx, base) = Receiver::start().await;
    let rules = rules(&format!(
        "alerts:
  server: edge-1
  webhooks:
    - {{name: chat, url: '{base}/ok/slack', format: slack}}
    - {{name: ops, url: '{base}/ok/json', headers: {{Authorization: Bearer s3cret}}}}
  rules:
    - {{name: redis, kind: store_down, for: 2s}}
"
    ));
    let (alerts, metrics, registry) = engine();
    for t in 0..=10 {
        alerts.evaluate(&rules, &report(1_000_000 + t * 1_000, false));
    }
    alerts.evaluate(&rules, &report(1_011_000, true));
    alerts.evaluate(&rules, &report(1_012_000, true));
    wait_until(|| rx.got().len() >= 4).await;
    // Anything sent twice would have arrived by now too.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = rx.got();
    assert_eq!(got.len(), 4, "{got:#?}");
    let slack: Vec<_> = got.iter().filter(|r| r.path == "ok/slack").collect();
    let json: Vec<_> = got.iter().filter(|r| r.path == "ok/json").collect();
    assert_eq!(
        slack[0].body,
        serde_json::json!({"text": ":rotating_light: [FIRING] redis (store_down) on edge-1: redis store is not ready: connection refused for 2s"})
    );
    assert_eq!(
        slack[1].body["text"],
        ":white_check_mark: [RESOLVED] redis (store_down) on edge-1: resolved after 11s: redis store is ready"
    );
    assert_eq!(json[0].body["state"], "firing");
    assert_eq!(json[0].body["rule"], "redis");
    assert_eq!(json[0].body["kind"], "store_down");
    assert_eq!(json[0].body["subject"], "store");
    assert_eq!(json[0].body["since_ms"], 1_000_000);
    assert_eq!(json[0].body["at_ms"], 1_002_000);
    assert_eq!(json[0].body["server"], "edge-1");
    assert_eq!(json[0].body["value"], 1.0);
    assert_eq!(json[1].body["state"], "resolved");
    assert_eq!(json[1].body["at_ms"], 1_011_000);
    assert_eq!(json[0].auth.as_deref(), Some("Bearer s3cret"));
    assert_eq!(slack[0].auth, None);
    for webhook in ["chat", "ops"] {
        assert_eq!(
            metrics.notifications(webhook, Outcome::Sent),
            2,
            "{webhook}"
        );
        assert_eq!(metrics.attempts(webhook), 2, "{webhook}");
    }
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    assert!(
        text.contains("tollgate_alert_notifications_total{webhook=\"ops\",result=\"sent\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("tollgate_alerts_firing{rule=\"redis\"} 0"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_after_500s_then_succeeds() {
    let (rx, base) = Receiver::start().await;
    let rules = rules(&format!(
        "alerts:
  webhooks: [{{name: flaky, url: '{base}/flaky/2', attempts: 4, backoff: 50ms}}]
  rules: [{{name: redis, kind: store_down}}]
"
    ));
    let (alerts, metrics, _registry) = engine();
    alerts.evaluate(&rules, &report(0, false));
    assert_eq!(alerts.firing().len(), 1);
    wait_until(|| metrics.notifications("flaky", Outcome::Sent) == 1).await;
    assert_eq!(metrics.notifications("flaky", Outcome::Sent), 1);
    assert_eq!(metrics.notifications("flaky", Outcome::Failed), 0);
    assert_eq!(metrics.attempts("flaky"), 3, "two 500s, then 200");
    let got = rx.got();
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|r| r.body["state"] == "firing"), "{got:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_retry_after_is_honoured_and_a_404_is_not_retried() {
    let (rx, base) = Receiver::start().await;
    let rules = rules(&format!(
        "alerts:
  webhooks:
    - {{name: limited, url: '{base}/limited', attempts: 3, backoff: 10ms}}
  rules: [{{name: redis, kind: store_down}}]
"
    ));
    let (alerts, metrics, _registry) = engine();
    alerts.evaluate(&rules, &report(0, false));
    wait_until(|| metrics.notifications("limited", Outcome::Sent) == 1).await;
    let got = rx.got();
    assert_eq!(got.len(), 2, "{got:#?}");
    let waited = got[1].at - got[0].at;
    assert!(
        waited >= Duration::from_millis(990),
        "waited {waited:?}, not the 1 s Retry-After"
    );

    let (rx, base) = Receiver::start().await;
    let rules = self::rules(&format!(
        "alerts:
  webhooks: [{{name: gone, url: '{base}/gone', attempts: 5, backoff: 10ms}}]
  rules: [{{name: redis, kind: store_down}}]
"
    ));
    let (alerts, metrics, _registry) = engine();
    alerts.evaluate(&rules, &report(0, false));
    wait_until(|| metrics.notifications("gone", Outcome::Failed) == 1).await;
    assert_eq!(metrics.notifications("gone", Outcome::Failed), 1);
    assert_eq!(metrics.attempts("gone"), 1, "a 404 is final");
    assert_eq!(rx.got().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_webhook_fails_after_its_attempts_and_blocks_no_other() {
    let (rx, base) = Receiver::start().await;
    let rules = rules(&format!(
        "alerts:
  webhooks:
    - {{name: hang, url: '{base}/hang', timeout: 1s, attempts: 2, backoff: 10ms}}
    - {{name: ok, url: '{base}/ok/json'}}
  rules: [{{name: redis, kind: store_down}}]
"
    ));
    let (alerts, metrics, _registry) = engine();
    alerts.evaluate(&rules, &report(0, false));
    wait_until(|| metrics.notifications("ok", Outcome::Sent) == 1).await;
    assert_eq!(metrics.notifications("ok", Outcome::Sent), 1);
    assert_eq!(
        metrics.notifications("hang", Outcome::Failed),
        0,
        "the other webhook was served while this one hung"
    );
    wait_until(|| metrics.notifications("hang", Outcome::Failed) == 1).await;
    assert_eq!(metrics.notifications("hang", Outcome::Failed), 1);
    assert_eq!(metrics.attempts("hang"), 2, "bounded by attempts");
    let hangs: Vec<_> = rx.got().into_iter().filter(|r| r.path == "hang").collect();
    assert_eq!(hangs.len(), 2);
    assert!(
        hangs[1].at - hangs[0].at >= Duration::from_secs(1),
        "the timeout ran first"
    );
}

#[tokio::test]
async fn a_full_webhook_queue_drops_and_counts() {
    // One thread: the worker cannot take a job while `evaluate` runs, so exactly the queue's
    // 64 fit and the other 6 of 70 firing policies are dropped.
    let (_rx, base) = Receiver::start().await;
    let rules = rules(&format!(
        "alerts:
  webhooks: [{{name: hang, url: '{base}/hang', timeout: 1s, attempts: 1}}]
  rules: [{{name: denials, kind: denial_rate, policy: '*', above: 50%}}]
"
    ));
    let (alerts, metrics, _registry) = engine();
    let mut r = report(0, true);
    r.policies = (0..70)
        .map(|i| PolicyReport {
            name: format!("p{i}"),
            rate: None,
            algorithm: None,
            decisions: DecisionRates {
                allowed_per_s: 1.0,
                denied_per_s: 9.0,
                denied_percent: 90.0,
                ..DecisionRates::default()
            },
            top_denied: Vec::new(),
        })
        .collect();
    alerts.evaluate(&rules, &r);
    assert_eq!(metrics.notifications("hang", Outcome::Dropped), 6);
    assert_eq!(metrics.firing("denials"), 70);
    assert_eq!(alerts.firing().len(), 70);
}

/// The whole path: a real server with an alert rule, denials made over HTTP, the sampler
/// evaluating the rule, the webhooks receiving one firing each; then a reload without the
/// rule (or, if the 10 s rate window empties first, the denials stopping) resolves it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_server_alerts_on_denials_over_http_then_resolves() {
    let (rx, base) = Receiver::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("tollgate.yaml");
    let yaml = |rules: &str| {
        format!(
            "policies:
  free: {{rate: 2/min}}
alerts:
  server: e2e
  webhooks:
    - {{name: chat, url: '{base}/ok/slack', format: slack}}
    - {{name: ops, url: '{base}/ok/json'}}
  rules: [{rules}]
"
        )
    };
    let rule =
        "{name: free-denials, kind: denial_rate, policy: free, above: 20%, min_rate: 0, for: 1s}";
    std::fs::write(&path, yaml(rule)).expect("write config");
    let overrides = tollgate_server::Overrides {
        http: Some("127.0.0.1:0".parse().expect("address")),
        ..Default::default()
    };
    let config = overrides.apply(Config::load(&path).expect("valid config"));
    let source = tollgate_server::ConfigSource {
        path: Some(path.clone()),
        overrides,
    };
    let server = tollgate_server::Server::bind(config, source)
        .await
        .expect("server binds");
    let url = format!("http://{}", server.bound().http);
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));

    let http = reqwest::Client::new();
    let mut denied = 0;
    for _ in 0..10 {
        let decision: Value = http
            .post(format!("{url}/v1/check"))
            .json(&serde_json::json!({"key": "user:1", "policy": "free"}))
            .send()
            .await
            .expect("check")
            .json()
            .await
            .expect("decision");
        denied += usize::from(decision["allowed"] == false);
    }
    assert_eq!(denied, 8, "2/min admits 2 of 10");
    wait_until(|| rx.got().len() >= 2).await;
    let got = rx.got();
    assert_eq!(got.len(), 2, "{got:#?}");
    let slack = got
        .iter()
        .find(|r| r.path == "ok/slack")
        .expect("slack body");
    let json = got.iter().find(|r| r.path == "ok/json").expect("json body");
    let text = slack.body["text"].as_str().expect("text");
    assert!(
        text.starts_with(
            ":rotating_light: [FIRING] free-denials (denial_rate) on e2e: policy free: "
        ) && text.contains("% of ")
            && text.contains("decisions/s denied (alert at 20%, from 0 decisions/s) for "),
        "{text}"
    );
    assert_eq!(json.body["state"], "firing");
    assert_eq!(json.body["subject"], "free");
    // The server measures over its per-second samples, so the share is about 8 of 10.
    let value = json.body["value"].as_f64().expect("value");
    assert!((50.0..=100.0).contains(&value), "{value}");
    assert_eq!(json.body["threshold"], 20.0);

    let stats: Value = http
        .get(format!("{url}/v1/stats"))
        .send()
        .await
        .expect("stats")
        .json()
        .await
        .expect("stats JSON");
    assert_eq!(
        stats["alerts"][0]["rule"], "free-denials",
        "{}",
        stats["alerts"]
    );
    let metrics = http
        .get(format!("{url}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("tollgate_alerts_firing{rule=\"free-denials\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tollgate_alert_notifications_total{webhook=\"ops\",result=\"sent\"} 1"),
        "{metrics}"
    );

    std::fs::write(&path, yaml("")).expect("rewrite config");
    let reload = http
        .post(format!("{url}/v1/reload"))
        .send()
        .await
        .expect("reload");
    assert!(reload.status().is_success(), "{}", reload.status());
    wait_until(|| rx.got().len() >= 4).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let got = rx.got();
    assert_eq!(got.len(), 4, "one firing and one resolved each: {got:#?}");
    let resolved = got
        .iter()
        .find(|r| r.path == "ok/json" && r.body["state"] == "resolved");
    let message = resolved.expect("a resolved JSON body").body["message"]
        .as_str()
        .expect("message")
        .to_string();
    assert!(
        message.contains("the rule was removed from the config")
            || message.starts_with("resolved after"),
        "{message}"
    );
    let slack = got
        .iter()
        .filter(|r| r.path == "ok/slack")
        .nth(1)
        .expect("a resolved Slack body");
    assert!(
        slack.body["text"]
            .as_str()
            .is_some_and(|t| t.starts_with(":white_check_mark: [RESOLVED] free-denials")),
        "{}",
        slack.body
    );
}
