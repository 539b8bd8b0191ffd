//! The Prometheus rules and the Grafana dashboard in `deploy/`: promtool accepts the rules
//! and passes their unit tests, the dashboard is valid JSON with its data source input, and
//! every metric name either uses exists in a live server's `/metrics` (a server running in
//! this process, with a queue, a controller report and some decisions).
//!
//! promtool is required: `scripts/test.sh` installs Debian's `prometheus` package, which
//! ships it. Without it these tests fail rather than skip.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::oneshot;
use tollgate_queue::{HttpQueues, QueueSpec, QueueStore};
use tollgate_server::{Config, ConfigSource, Overrides, Server};

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

fn promtool(args: &[&str], dir: &std::path::Path) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run promtool ({e}); install Debian's `prometheus` package (scripts/test.sh does)")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn promtool_checks_and_tests_the_rules() {
    let dir = repo("deploy/prometheus");
    let text = promtool(&["check", "rules", "tollgate-rules.yml"], &dir);
    assert!(text.contains("SUCCESS: 15 rules found"), "{text}");
    let text = promtool(&["test", "rules", "tollgate-rules.test.yml"], &dir);
    assert!(text.contains("SUCCESS"), "{text}");
}

/// Every `tollgate_…` metric name in `text` (recording rules' `tollgate:…` names excluded).
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut i = 0;
    while let Some(at) = text[i..].find("tollgate_") {
        let start = i + at;
        let mut end = start + "tollgate_".len();
        while end < bytes.len() && word(bytes[end]) {
            end += 1;
        }
        if start == 0 || !word(bytes[start - 1]) {
            names.insert(text[start..end].to_string());
        }
        i = end;
    }
    names
}

/// The names a scrape of `exposition` offers: each sample's, and each family's with the
/// suffixes of its type (a family with no series yet still has its `# TYPE` line).
fn exported(exposition: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in exposition.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            names.insert(name.to_string());
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                _ => &[],
            };
            names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
        } else if !line.starts_with('#') {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_string());
        }
    }
    names
}

fn dashboard() -> Value {
    let path = repo("deploy/grafana/tollgate-dashboard.json");
    let text = std::fs::read_to_string(&path).expect("read the dashboard");
    serde_json::from_str(&text).expect("the dashboard is JSON")
}

#[test]
fn the_dashboard_has_its_data_source_input_and_a_query_in_every_panel() {
    let d = dashboard();
    assert_eq!(d["__inputs"][0]["name"], "DS_PROMETHEUS");
    assert_eq!(d["__inputs"][0]["pluginId"], "prometheus");
    let panels = d["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    let mut graphs = 0;
    for p in panels {
        assert!(
            ids.insert(p["id"].as_u64().expect("id")),
            "duplicate id: {p}"
        );
        if p["type"] == "row" {
            continue;
        }
        graphs += 1;
        assert_eq!(p["datasource"]["uid"], "${DS_PROMETHEUS}", "{}", p["title"]);
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{}", p["title"]);
        for t in targets {
            let expr = t["expr"].as_str().expect("expr");
            assert!(expr.contains("tollgate_"), "{}: {expr}", p["title"]);
        }
    }
    assert!(graphs >= 15, "{graphs} panels");
    for wanted in [
        "Decisions/s by policy and outcome",
        "Denied % by policy",
        "Check latency (p50, p90, p99)",
        "Store errors/s by code",
        "Breaker state",
        "Tasks by queue and state",
        "tollgate alert rules firing",
    ] {
        assert!(
            panels.iter().any(|p| p["title"] == wanted),
            "no panel {wanted:?}"
        );
    }
}

/// A server running in this process until dropped.
struct Running {
    base: String,
    _stop: oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

/// Serves `yaml` from a file (so it can be reloaded) on a free port.
async fn start(yaml: &str) -> Running {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("tollgate.yaml");
    std::fs::write(&path, yaml).expect("write config");
    let overrides = Overrides {
        http: Some("127.0.0.1:0".parse().expect("address")),
        ..Overrides::default()
    };
    let config = overrides.apply(Config::load(&path).expect("valid test config"));
    let source = ConfigSource {
        path: Some(path),
        overrides,
    };
    let server = Server::bind(config, source).await.expect("server binds");
    let base = format!("http://{}", server.bound().http);
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    Running {
        base,
        _stop: stop,
        _dir: dir,
    }
}

async fn scrape(http: &reqwest::Client, base: &str) -> String {
    http.get(format!("{base}/metrics"))
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("body")
}

/// A family appears in `/metrics` only once it has a series, so the servers are made to
/// produce every one: decisions (some denied, firing an alert whose webhook refuses), a
/// queue, a controller's report, a reload; and, on a second server whose Redis is down,
/// store errors and the breaker's state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_in_the_rules_and_the_dashboard_is_exported() {
    let main = start(
        "
policies:
  free: {rate: 1/min}
alerts:
  webhooks: [{name: ops, url: 'http://127.0.0.1:9/refused', attempts: 1}]
  rules: [{name: free-denials, kind: denial_rate, policy: free, above: 20%, min_rate: 0}]
",
    )
    .await;
    let down = start(&format!(
        "
store: redis://127.0.0.1:{}
on_store_failure: allow
store_timeout_ms: 50
redis: {{connect_timeout_ms: 100}}
",
        tollgate_testkit::redis::free_port().expect("a free port")
    ))
    .await;
    let http = reqwest::Client::new();
    for (server, body) in [
        (&main, serde_json::json!({"key": "k", "policy": "free"})),
        (&down, serde_json::json!({"key": "k", "rate": "5/s"})),
    ] {
        for _ in 0..3 {
            let resp = http
                .post(format!("{}/v1/check", server.base))
                .json(&body)
                .send()
                .await
                .expect("check");
            assert_eq!(
                resp.status(),
                200,
                "{}",
                resp.text().await.unwrap_or_default()
            );
        }
    }
    HttpQueues::new(&main.base)
        .expect("client")
        .create(QueueSpec::new("5/s".parse().expect("rate")).name("batch_1"))
        .await
        .expect("create a queue");
    let controller = serde_json::json!({
        "capacity": 100, "window_ms": 1000, "usage": 95, "usage_percent": 95.0, "tier": "heavy",
        "waiting": 0, "granted": 10, "sla_violations": 0, "interval_ms": 1000,
    });
    for (path, body) in [
        ("/v1/controllers/bot", controller),
        ("/v1/reload", serde_json::json!({})),
    ] {
        let resp = http
            .post(format!("{}{path}", main.base))
            .json(&body)
            .send()
            .await
            .expect("post");
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
    }

    let mut wanted = metric_names(
        &std::fs::read_to_string(repo("deploy/prometheus/tollgate-rules.yml")).expect("rules"),
    );
    wanted.extend(metric_names(&dashboard().to_string()));
    assert!(wanted.len() >= 20, "{wanted:?}");
    for name in [
        "tollgate_decisions_total",
        "tollgate_queue_tasks",
        "tollgate_controller_usage_ratio",
        "tollgate_alert_notifications_total",
    ] {
        assert!(wanted.contains(name), "{name} unused");
    }
    // The sampler fills the queue, controller and alert series once a second: poll (30 s:
    // once, on a loaded machine, 15 s were not enough; which series was late went unrecorded,
    // the message below names it).
    let begin = Instant::now();
    let (missing, text) = loop {
        let text = scrape(&http, &main.base).await + &scrape(&http, &down.base).await;
        let have = exported(&text);
        let missing: Vec<_> = wanted.difference(&have).cloned().collect();
        if missing.is_empty() || begin.elapsed() > Duration::from_secs(30) {
            break (missing, text);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(missing.is_empty(), "not in /metrics: {missing:?}\n{text}");
}

#[test]
fn names_are_found_and_suffixed() {
    let names =
        metric_names("rate(tollgate_decisions_total[1m]) tollgate:x:y (xtollgate_no) tollgate_a");
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["tollgate_a", "tollgate_decisions_total"]
    );
    let have = exported(
        "# TYPE tollgate_x counter\n# TYPE tollgate_h histogram\ntollgate_g{a=\"b\"} 1\n# EOF\n",
    );
    for n in [
        "tollgate_x_total",
        "tollgate_h_bucket",
        "tollgate_h_count",
        "tollgate_g",
    ] {
        assert!(have.contains(n), "{n}: {have:?}");
    }
}
