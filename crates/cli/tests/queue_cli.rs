//! `tollgate queue` and `tollgate worker` against a real redis-server: every command, its
//! JSON, its errors and exit codes, and workers that run commands.

use assert_cmd::Command;
use serde_json::Value;
use tollgate_testkit::redis::RedisServer;

fn tollgate(store: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::cargo_bin("tollgate")
        .expect("binary")
        .args(args)
        .env("TOLLGATE_STORE", store)
        .env_remove("TOLLGATE_SERVER")
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .expect("run");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(store: &str, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let (code, out, err) = tollgate(store, &all);
    assert_eq!(code, 0, "{args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

#[test]
fn every_queue_command_round_trips() {
    let redis = RedisServer::start().expect("redis-server");
    let url = redis.url();
    let (code, name, err) = tollgate(&url, &["queue", "create", "5/60s"]);
    assert_eq!(code, 0, "{err}");
    assert!(name.trim().starts_with("batch_"), "{name}");
    let made = json(
        &url,
        &[
            "queue",
            "create",
            "2/1s",
            "--name",
            "jobs",
            "--burst",
            "2",
            "--max-attempts",
            "1",
        ],
    );
    assert_eq!(
        (made["name"].as_str(), made["burst"].as_u64()),
        (Some("jobs"), Some(2))
    );
    json(
        &url,
        &["queue", "push", "jobs", r#"{"a":1}"#, "--priority", "3"],
    );
    let pushed = json(&url, &["queue", "test", "jobs", "5"]);
    assert_eq!(pushed["pushed"], 5);
    let show = json(&url, &["queue", "show", "jobs"]);
    assert_eq!(
        (show["waiting"].as_u64(), show["delayed"].as_u64()),
        (Some(6), Some(0))
    );
    assert_eq!(show["waiting_by_priority"][0]["priority"], 3);
    assert!(show["projected_finish_ms"].as_u64().is_some(), "{show}");
    let (_, text, _) = tollgate(&url, &["queue", "show", "jobs"]);
    assert!(
        text.contains("priority       3: 1") && text.contains("burst 2"),
        "{text}"
    );
    let list = json(&url, &["queue", "list"]);
    assert_eq!(list["queues"].as_array().map(Vec::len), Some(2));
    let updated = json(&url, &["queue", "update", "jobs", "10/1s", "--strict"]);
    assert_eq!(
        (updated["rate"].as_str(), updated["burst"].is_null()),
        (Some("10/s"), true)
    );
    assert_eq!(
        json(&url, &["queue", "deactivate", "jobs"])["active"],
        false
    );
    assert_eq!(json(&url, &["queue", "activate", "jobs"])["active"], true);
    // A worker whose command fails: one attempt, so every task goes to the dead letters.
    let (code, out, err) = tollgate(
        &url,
        &[
            "worker",
            "jobs",
            "--exec",
            "exit 3",
            "--until-empty",
            "--json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let report: Value = serde_json::from_str(&out).expect("report");
    assert_eq!(report["dead"], 6, "{report}");
    // --until-empty waits for delayed tasks too; this one comes after the worker.
    json(&url, &["queue", "push", "jobs", "[1,2]", "--delay", "1h"]);
    let dead = json(&url, &["queue", "dead", "jobs"]);
    assert_eq!(dead["dead"].as_array().map(Vec::len), Some(6));
    assert!(
        dead["dead"][0]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("exit status: 3")),
        "{dead}"
    );
    assert_eq!(
        json(&url, &["queue", "dead", "jobs", "--retry"])["retried"],
        6
    );
    assert_eq!(json(&url, &["queue", "clear", "jobs"])["cleared"], 7);
    assert_eq!(
        json(&url, &["queue", "dead", "jobs", "--purge"])["purged"],
        0
    );
    assert_eq!(json(&url, &["queue", "remove", "jobs"])["removed"], "jobs");
}

#[test]
fn bad_input_exits_two_with_a_clear_message() {
    let redis = RedisServer::start().expect("redis-server");
    let url = redis.url();
    json(&url, &["queue", "create", "1/s", "--name", "q"]);
    let cases: &[(&[&str], &str)] = &[
        (&["queue", "create", "5/0s"], "\"5/0s\""),
        (
            &["queue", "create", "5/1s", "--name", "q"],
            "exists already",
        ),
        (
            &["queue", "create", "5/1s", "--visibility-timeout", "forever"],
            "\"forever\"",
        ),
        (&["queue", "show", "nope"], "unknown queue \"nope\""),
        (&["queue", "push", "q", "{not json"], "not JSON"),
        (
            &["queue", "push", "q", "1", "--priority", "-1"],
            "priority -1",
        ),
        (&["queue", "push", "q", "1", "--delay", "-5s"], "\"-5s\""),
        (&["queue", "push", "nope", "1"], "unknown queue"),
        (
            &["worker", "q", "--exec", "/no/such/program"],
            "does not exist",
        ),
        (&["worker", "nope", "--exec", "true"], "unknown queue"),
    ];
    for (args, want) in cases {
        let (code, _, err) = tollgate(&url, args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    let (code, _, err) = tollgate("memory", &["queue", "list"]);
    assert_eq!(code, 2);
    assert!(err.contains("--server"), "{err}");
}

#[test]
fn exec_workers_get_the_payload_on_stdin() {
    let redis = RedisServer::start().expect("redis-server");
    let url = redis.url();
    let dir = tempfile::tempdir().expect("dir");
    json(
        &url,
        &[
            "queue", "create", "100/1s", "--name", "work", "--burst", "10",
        ],
    );
    for n in 0..20 {
        json(&url, &["queue", "push", "work", &format!(r#"{{"n":{n}}}"#)]);
    }
    // One file a task, named by the task's id from the environment.
    let cmd = format!(
        "cat > {}/$TOLLGATE_TASK.$TOLLGATE_ATTEMPT",
        dir.path().display()
    );
    let report = json(
        &url,
        &[
            "worker",
            "work",
            "--exec",
            &cmd,
            "--concurrency",
            "3",
            "--until-empty",
        ],
    );
    assert_eq!(report["completed"], 20);
    let mut lines: Vec<String> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| std::fs::read_to_string(e.expect("entry").path()).expect("file"))
        .collect();
    lines.sort();
    let mut want: Vec<String> = (0..20).map(|n| format!(r#"{{"n":{n}}}"#)).collect();
    want.sort();
    assert_eq!(lines, want);
}

/// The same commands through a running `tollgate serve` on the embedded store (`--server`).
#[test]
fn queues_through_a_running_server_on_the_embedded_store() {
    let port = tollgate_testkit::redis::free_port().expect("port");
    let url = format!("http://127.0.0.1:{port}");
    let mut serve = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args([
            "serve",
            "--http",
            &format!("127.0.0.1:{port}"),
            "--log",
            "warn",
        ])
        .env_remove("TOLLGATE_STORE")
        .env_remove("TOLLGATE_CONFIG")
        .spawn()
        .expect("serve");
    let cli = |args: &[&str]| {
        let out = Command::cargo_bin("tollgate")
            .expect("binary")
            .args(args)
            .args(["--server", &url, "--json"])
            .env_remove("TOLLGATE_STORE")
            .timeout(std::time::Duration::from_secs(30))
            .output()
            .expect("run");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let started = std::time::Instant::now();
    while cli(&["queue", "list"]).0 != Some(0) {
        assert!(started.elapsed().as_secs() < 20, "server did not start");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let (code, _, err) = cli(&["queue", "create", "50/1s", "--name", "web"]);
    assert_eq!(code, Some(0), "{err}");
    for n in 0..5 {
        assert_eq!(
            cli(&["queue", "push", "web", &n.to_string(), "--priority", "2"]).0,
            Some(0)
        );
    }
    let (code, out, err) = cli(&[
        "worker",
        "web",
        "--exec",
        "cat > /dev/null",
        "--until-empty",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let report: Value = serde_json::from_str(&out).expect("report");
    assert_eq!(report["completed"], 5);
    let (_, out, _) = cli(&["queue", "show", "web"]);
    let show: Value = serde_json::from_str(&out).expect("show");
    assert_eq!(
        (show["completed"].as_u64(), show["waiting"].as_u64()),
        (Some(5), Some(0))
    );
    let (code, _, err) = cli(&["queue", "show", "nope"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("unknown queue"), "{err}");
    let _ = serve.kill();
    let _ = serve.wait();
}

/// `--webhook`: 2xx is done, 503 with Retry-After (seconds or an HTTP date) waits that long, a
/// receiver that hangs is cut off by `--timeout`, counted and retried, then dead-lettered.
#[test]
fn webhook_workers_honour_retry_after_and_time_out_hanging_receivers() {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    type Seen = Arc<Mutex<HashMap<String, Vec<Instant>>>>;
    let seen: Seen = Arc::default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let hook = format!("http://{}", listener.local_addr().expect("addr"));
    let state = seen.clone();
    let app = axum::Router::new()
        .route(
            "/flaky",
            axum::routing::post(move |headers: axum::http::HeaderMap| {
                let state = state.clone();
                async move {
                    let task = headers
                        .get("x-tollgate-task")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    let mut seen = state.lock().expect("lock");
                    // The first task's first answer gives an HTTP date 3 s ahead (a wait of
                    // 2 to 3 s: the date has whole seconds), the others 1 second.
                    let first_task = seen.is_empty();
                    let attempts = seen.entry(task).or_default();
                    attempts.push(Instant::now());
                    if attempts.len() == 1 {
                        let wait = if first_task {
                            httpdate::fmt_http_date(
                                std::time::SystemTime::now() + std::time::Duration::from_secs(3),
                            )
                        } else {
                            "1".to_string()
                        };
                        (
                            axum::http::StatusCode::SERVICE_UNAVAILABLE,
                            [("retry-after", wait)],
                        )
                            .into_response()
                    } else {
                        axum::http::StatusCode::OK.into_response()
                    }
                }
            }),
        )
        .route(
            "/hang",
            axum::routing::post(|| async {
                tokio::time::sleep(std::time::Duration::from_secs(30)).await;
                axum::http::StatusCode::OK
            }),
        );
    use axum::response::IntoResponse;
    runtime.spawn(async move { axum::serve(listener, app).await });

    let redis = RedisServer::start().expect("redis-server");
    let url = redis.url();
    json(
        &url,
        &[
            "queue",
            "create",
            "100/1s",
            "--name",
            "hooks",
            "--burst",
            "10",
            "--backoff",
            "10ms",
        ],
    );
    for n in 0..3 {
        json(
            &url,
            &["queue", "push", "hooks", &format!(r#"{{"n":{n}}}"#)],
        );
    }
    let report = json(
        &url,
        &[
            "worker",
            "hooks",
            "--webhook",
            &format!("{hook}/flaky"),
            "--concurrency",
            "3",
            "--until-empty",
        ],
    );
    assert_eq!(
        (report["completed"].as_u64(), report["retried"].as_u64()),
        (Some(3), Some(3))
    );
    let seen = seen.lock().expect("lock").clone();
    let mut waits: Vec<u128> = Vec::new();
    for (task, times) in &seen {
        assert_eq!(times.len(), 2, "{task}");
        waits.push((times[1] - times[0]).as_millis());
    }
    waits.sort_unstable();
    // The queue's backoff is 10 ms: each wait is the receiver's Retry-After.
    assert!(
        waits[0] >= 1000 && waits[2] >= 1900,
        "retried after {waits:?} ms, not after Retry-After: 1, 1 and an HTTP date 3 s ahead"
    );

    json(
        &url,
        &[
            "queue",
            "create",
            "100/1s",
            "--name",
            "stuck",
            "--max-attempts",
            "2",
            "--backoff",
            "10ms",
        ],
    );
    json(&url, &["queue", "push", "stuck", "{}"]);
    let started = Instant::now();
    let report = json(
        &url,
        &[
            "worker",
            "stuck",
            "--webhook",
            &format!("{hook}/hang"),
            "--timeout",
            "300ms",
            "--until-empty",
        ],
    );
    assert_eq!(
        (report["retried"].as_u64(), report["dead"].as_u64()),
        (Some(1), Some(1))
    );
    assert!(
        started.elapsed().as_secs() < 10,
        "a hanging receiver held the worker"
    );
    let dead = json(&url, &["queue", "dead", "stuck"]);
    let error = dead["dead"][0]["last_error"].as_str().unwrap_or("");
    assert!(error.contains("/hang"), "{error}");
}
