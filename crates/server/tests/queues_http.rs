//! The job queues over HTTP, both sides at once: the real server (`Server::bind` on a free
//! port) answering `/v1/queues`, driven through `HttpQueues` (the client the CLI and workers
//! use), plus raw requests for what the client cannot send (a negative priority, a bad rate).

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tollgate_queue::{
    FailOutcome, HttpQueues, MAX_PAYLOAD_BYTES, MAX_PRIORITY, NewTask, QueueError, QueueSpec,
    QueueStore, QueueUpdate, Reservation,
};
use tollgate_testkit::redis::{RedisServer, free_port};

mod common;
use common::Running;

/// Asserts that a value matches a pattern, showing the value when it does not.
macro_rules! assert_matches {
    ($value:expr, $($pattern:tt)+) => {{
        let value = $value;
        assert!(matches!(&value, $($pattern)+), "{value:?}");
    }};
}

fn spec(rate: &str, name: &str) -> QueueSpec {
    QueueSpec::new(self::rate(rate)).name(name)
}

fn rate(text: &str) -> tollgate_core::Rate {
    text.parse().expect("rate")
}

fn task(json: &str) -> NewTask {
    NewTask::json(json).expect("valid payload")
}

/// A task whose payload the client does not check (as a caller could build one).
fn unchecked(payload: String) -> NewTask {
    NewTask {
        payload,
        priority: 0,
        delay_ms: 0,
    }
}

/// The field an `InvalidSpec` error names.
fn spec_field<T: std::fmt::Debug>(result: Result<T, QueueError>) -> Option<&'static str> {
    match result {
        Err(QueueError::InvalidSpec { field, .. }) => Some(field),
        other => panic!("expected an invalid_queue_spec error, got {other:?}"),
    }
}

/// The next task, waiting out the rate if need be.
async fn reserve_task(q: &HttpQueues, queue: &str) -> tollgate_queue::Lease {
    for _ in 0..100 {
        match q.reserve(queue, "w1").await.expect("reserve") {
            Reservation::Task(lease) => return lease,
            Reservation::RateLimited { wait_ms } => {
                tokio::time::sleep(Duration::from_millis(wait_ms.max(1))).await;
            }
            other => panic!("expected a task, got {other:?}"),
        }
    }
    panic!("no task after 100 tries")
}

/// Fails the next task until it is dead; answers its id and the attempts seen.
async fn die(q: &HttpQueues, queue: &str) -> (String, Vec<u32>) {
    let mut attempts = Vec::new();
    loop {
        let lease = reserve_task(q, queue).await;
        attempts.push(lease.attempt);
        match q.fail(&lease, "boom", None).await.expect("fail") {
            FailOutcome::Dead => return (lease.task, attempts),
            FailOutcome::Retry { delay_ms } => {
                tokio::time::sleep(Duration::from_millis(delay_ms + 2)).await;
            }
        }
    }
}

#[tokio::test]
async fn every_route_round_trips_through_the_client() {
    let s = Running::start("", None).await;
    let q = s.client();
    let ms = Duration::from_millis(1);
    let jobs = spec("1000/1s", "jobs")
        .burst(100)
        .max_attempts(2)
        .backoff(ms, ms);
    let made = q.create(jobs).await.expect("create");
    assert_eq!(
        (made.burst, made.max_attempts, made.rate),
        (Some(100), 2, rate("1000/1s"))
    );
    let err = q.create(spec("5/1s", "jobs")).await.expect_err("duplicate");
    assert_matches!(err, QueueError::QueueExists { name } if name == "jobs");
    let unnamed = q.create(QueueSpec::new(rate("5/1s"))).await;
    let unnamed = unnamed.expect("create unnamed").name;
    assert!(unnamed.starts_with("batch_"), "{unnamed}");
    let listed = q.list().await.expect("list");
    let names: Vec<&str> = listed.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, [unnamed.as_str(), "jobs"]);

    // Priorities, and a payload kept byte for byte (spacing, key order, number forms).
    let exact = r#"{ "b": [1, 2.50], "a" :"é\u00e9" }"#;
    let later = task("3").delay(Duration::from_secs(60));
    for t in [task(r#""low""#).priority(1), later] {
        q.push("jobs", t).await.expect("push");
    }
    let high = q.push("jobs", task(exact).priority(5)).await.expect("push");
    let stats = q.stats("jobs").await.expect("stats");
    assert_eq!((stats.waiting, stats.delayed, stats.pushed), (2, 1, 3));

    // Paused, then live again with a new rate and back to strict.
    let mut change = QueueUpdate {
        active: Some(false),
        ..QueueUpdate::default()
    };
    assert!(
        !q.update("jobs", change.clone())
            .await
            .expect("pause")
            .active
    );
    assert_eq!(
        q.reserve("jobs", "w1").await.expect("reserve"),
        Reservation::Paused
    );
    (change.active, change.rate, change.burst) = (Some(true), Some(rate("2000/1s")), Some(None));
    let updated = q.update("jobs", change).await.expect("update");
    assert_eq!(
        (updated.active, updated.burst, updated.rate),
        (true, None, rate("2000/1s"))
    );

    let lease = reserve_task(&q, "jobs").await;
    assert_eq!(
        [&lease.task, &lease.payload, &lease.queue],
        [&high, exact, "jobs"]
    );
    assert_eq!((lease.priority, lease.attempt), (5, 1));
    let renewed = q.heartbeat(&lease).await.expect("heartbeat");
    assert!(
        renewed >= lease.expires_ms,
        "{renewed} < {}",
        lease.expires_ms
    );
    q.ack(&lease).await.expect("ack");
    let err = q.ack(&lease).await.expect_err("acked twice");
    assert_matches!(err, QueueError::LeaseLost { queue, task, attempt: 1 } if queue == "jobs" && *task == high);

    // Fail → retry → fail → dead, with the last error kept.
    let low = reserve_task(&q, "jobs").await;
    assert_eq!(low.payload, r#""low""#);
    let outcome = q.fail(&low, "first", None).await.expect("fail");
    assert_matches!(outcome, FailOutcome::Retry { delay_ms: 0..=1 });
    tokio::time::sleep(Duration::from_millis(5)).await;
    let again = reserve_task(&q, "jobs").await;
    assert_eq!((again.task.as_str(), again.attempt), (low.task.as_str(), 2));
    let outcome = q.fail(&again, "second", Some(Duration::from_secs(9))).await;
    assert_eq!(outcome.expect("fail"), FailOutcome::Dead);
    let dead = q.dead("jobs", u64::MAX).await.expect("dead");
    assert_eq!(dead.len(), 1);
    let d = &dead[0];
    assert_eq!(
        [&d.id, &d.payload, &d.last_error],
        [&low.task, r#""low""#, "second"]
    );
    assert_eq!(d.attempts, 2);
    assert!(q.dead("jobs", 0).await.expect("dead, limit 0").is_empty());

    // Retried from the dead-letter queue with fresh attempts, then dead again and purged.
    let retried = q.retry_dead("jobs", std::slice::from_ref(&low.task)).await;
    assert_eq!(retried.expect("retry"), 1);
    assert_eq!(die(&q, "jobs").await, (low.task.clone(), vec![1, 2]));
    assert_eq!(q.retry_dead("jobs", &[]).await.expect("retry all"), 1);
    assert_eq!(die(&q, "jobs").await, (low.task.clone(), vec![1, 2]));
    assert_eq!(q.purge_dead("jobs").await.expect("purge"), 1);
    assert_eq!(q.stats("jobs").await.expect("stats").dead, 0);

    // Only the delayed task is left; an empty reservation says when it is due.
    match q.reserve("jobs", "w1").await.expect("reserve") {
        Reservation::Empty {
            next_due_ms: Some(ms),
        } => assert!(ms > 50_000, "{ms}"),
        other => panic!("expected empty, got {other:?}"),
    }
    // A worker process's report, and the fleet in the stats.
    let ttl = Duration::from_secs(10);
    let fleet = q
        .report_workers("jobs", "p1", 3, ttl)
        .await
        .expect("report");
    assert_eq!((fleet.processes, fleet.slots), (1, 3));
    assert_eq!(q.stats("jobs").await.expect("stats").workers, fleet);
    let gone = q
        .report_workers("jobs", "p1", 0, ttl)
        .await
        .expect("stopped");
    assert_eq!((gone.processes, gone.slots), (0, 0));

    assert_eq!(q.clear("jobs").await.expect("clear"), 1);
    assert!(q.remove("jobs").await.expect("remove"));
    assert!(!q.remove("jobs").await.expect("remove again"));
    let err = q.stats("jobs").await.expect_err("removed");
    assert_matches!(err, QueueError::UnknownQueue { name } if name == "jobs");
}

#[tokio::test]
async fn errors_come_back_as_queue_errors() {
    let s = Running::start("", None).await;
    let q = s.client();
    let lease = tollgate_queue::Lease {
        queue: "nope".into(),
        task: "0000000000000001".into(),
        attempt: 1,
        payload: "1".into(),
        priority: 0,
        started_ms: 0,
        started_us: 0,
        expires_ms: 0,
    };
    let unknown = [
        q.stats("nope").await.err(),
        q.update("nope", QueueUpdate::default()).await.err(),
        q.clear("nope").await.err(),
        q.push("nope", task("1")).await.err(),
        q.reserve("nope", "w").await.err(),
        q.ack(&lease).await.err(),
        q.heartbeat(&lease).await.err(),
        q.fail(&lease, "e", None).await.err(),
        q.dead("nope", 1).await.err(),
        q.retry_dead("nope", &[]).await.err(),
        q.purge_dead("nope").await.err(),
    ];
    for err in unknown {
        assert_matches!(err, Some(QueueError::UnknownQueue { name }) if name == "nope");
    }

    let err = q.create(spec("5/1s", "a").max_attempts(0)).await;
    assert_eq!(spec_field(err), Some("max_attempts"));
    let err = q
        .create(spec("5/1s", "a").burst(0))
        .await
        .expect_err("burst 0");
    assert_eq!(err.code(), "invalid_burst", "{err:?}");
    for bad in ["has space", "..", "."] {
        let err = q.create(spec("5/1s", bad)).await.expect_err(bad);
        assert_matches!(err, QueueError::InvalidName { .. });
    }
    let err = q.stats("..").await.expect_err("dot-dot");
    assert_matches!(err, QueueError::InvalidName { .. });

    q.create(spec("5/1s", "a")).await.expect("create");
    let err = q
        .push("a", unchecked("{nope".into()))
        .await
        .expect_err("not JSON");
    assert_matches!(err, QueueError::InvalidPayload { .. });
    // Just over the limit (the server's payload check) and far over it (its body limit).
    for size in [MAX_PAYLOAD_BYTES + 1, 2 * MAX_PAYLOAD_BYTES] {
        let big = unchecked(format!("\"{}\"", "x".repeat(size - 2)));
        let err = q.push("a", big).await.expect_err("over-size");
        assert_matches!(err, QueueError::InvalidPayload { reason } if reason.contains(&MAX_PAYLOAD_BYTES.to_string()));
    }
    let max = format!("\"{}\"", "x".repeat(MAX_PAYLOAD_BYTES - 2));
    q.push("a", task(&max))
        .await
        .expect("a payload of exactly the limit");
    let err = q.push("a", task("1").priority(MAX_PRIORITY + 1)).await;
    assert_eq!(spec_field(err), Some("priority"));
    assert_eq!(q.stats("a").await.expect("stats").pushed, 1);
}

/// Requests only a raw client can send, one a line:
/// `METHOD PATH | body (- for none) | status | code | text the message must contain`.
const BAD_REQUESTS: &str = r#"
POST /v1/queues | {"rate":"5/0s"} | 400 | invalid_rate | "5/0s"
POST /v1/queues | {"rate":"5/1s","max_attempts":-1} | 400 | invalid_queue_spec | max_attempts
POST /v1/queues | {"rate":"5/1s","colour":1} | 400 | invalid_request | colour
POST /v1/queues | {"rate":"5/1s","name":".."} | 400 | invalid_queue_name | URL path
POST /v1/queues | {"rate":"5/1s","name":"r"} | 409 | queue_exists | "r"
PATCH /v1/queues/r | {"burst":-2} | 400 | invalid_queue_spec | burst
PATCH /v1/queues/r | {"rate":"fast"} | 400 | invalid_rate | "fast"
POST /v1/queues/r/tasks | {"payload":1,"priority":-1} | 400 | invalid_queue_spec | priority
POST /v1/queues/r/tasks | {"payload":1,"delay_ms":-5} | 400 | invalid_queue_spec | delay_ms
POST /v1/queues/r/tasks | {"payload":1,"priority":1.5} | 400 | invalid_queue_spec | priority
POST /v1/queues/r/tasks | {"payload":{nope}} | 400 | invalid_request | invalid JSON
POST /v1/queues/r/tasks | {"priority":1} | 400 | invalid_request | payload
POST /v1/queues/r/tasks | [1] | 400 | invalid_request | object
POST /v1/queues/r/reserve | {"worker":""} | 400 | invalid_queue_spec | worker
POST /v1/queues/r/ack | {"task":"1","attempt":1} | 409 | lease_lost | attempt 1
POST /v1/queues/r/ack | {"task":"1","attempt":1,"queue":"s"} | 400 | invalid_request | "s"
POST /v1/queues/r/fail | {"lease":{"task":"1","attempt":-1},"error":"e"} | 400 | invalid_queue_spec | attempt
POST /v1/queues/r/workers | {"worker":"p","slots":-1,"ttl_ms":3000} | 400 | invalid_queue_spec | slots
POST /v1/queues/r/workers | {"worker":"p","slots":null,"ttl_ms":3000} | 400 | invalid_queue_spec | slots
POST /v1/queues/r/workers | {"worker":"p","slots":2} | 400 | invalid_request | ttl_ms
POST /v1/queues/r/workers | {"worker":"p","slots":2,"ttl_ms":3600001} | 400 | invalid_queue_spec | ttl_ms
POST /v1/queues/r/workers | {"worker":"","slots":2,"ttl_ms":3000} | 400 | invalid_queue_spec | worker
POST /v1/queues/ghost/workers | {"worker":"p","slots":2,"ttl_ms":3000} | 404 | unknown_queue | "ghost"
GET /v1/queues/r/dead?limit=-1 | - | 400 | invalid_request | limit
GET /v1/queues/r/dead?limit=x | - | 400 | invalid_request | limit
GET /v1/queues/ghost | - | 404 | unknown_queue | "ghost"
GET /v1/queues/bad%20name | - | 400 | invalid_queue_name | bad name
"#;

#[tokio::test]
async fn raw_requests_get_clear_errors() {
    let s = Running::start("", None).await;
    let (status, body) = s
        .raw("POST", "/v1/queues", Some(r#"{"rate":"5/1s","name":"r"}"#))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    for case in BAD_REQUESTS.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = case.split(" | ").map(str::trim).collect();
        let [request, body, status, code, needle] = fields[..] else {
            panic!("bad case {case}");
        };
        let (method, path) = request.split_once(' ').expect("METHOD PATH");
        let body = (body != "-").then_some(body);
        let (got, json) = s.raw(method, path, body).await;
        let what = format!("{case}: {got} {json}");
        assert_eq!(got.as_str(), status, "{what}");
        assert_eq!(json["error"]["code"], code, "{what}");
        let message = json["error"]["message"].as_str().expect("message");
        assert!(message.contains(needle), "{what}");
    }
    let (_, json) = s
        .raw(
            "POST",
            "/v1/queues/r/tasks",
            Some(r#"{"payload":1,"priority":-1}"#),
        )
        .await;
    assert_eq!(json["error"]["field"], "priority");

    // Over the route's body limit: a clear 413 naming the payload limit.
    let huge = format!(
        r#"{{"payload":"{}"}}"#,
        "x".repeat(MAX_PAYLOAD_BYTES + 100 * 1024)
    );
    let (status, json) = s.raw("POST", "/v1/queues/r/tasks", Some(&huge)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{json}");
    let message = json["error"]["message"].as_str().expect("message");
    assert!(
        message.contains(&MAX_PAYLOAD_BYTES.to_string()),
        "{message}"
    );
    // A payload is handed out as the JSON value it was, not as a string of it.
    let (status, _) = s
        .raw(
            "POST",
            "/v1/queues/r/tasks",
            Some(r#"{"payload":{"k":[1,true]}}"#),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, lease) = s
        .raw("POST", "/v1/queues/r/reserve", Some(r#"{"worker":"w"}"#))
        .await;
    assert_eq!(
        (lease["status"].clone(), lease["payload"].clone()),
        (json!("task"), json!({"k":[1,true]}))
    );
}

#[tokio::test]
async fn a_strict_queue_spaces_starts_over_http() {
    let s = Running::start("", None).await;
    let q = s.client();
    q.create(spec("10/1s", "strict")).await.expect("create");
    for i in 0..6 {
        q.push("strict", task(&i.to_string())).await.expect("push");
    }
    let (mut starts, mut limited) = (Vec::new(), 0);
    let deadline = Instant::now() + Duration::from_secs(5);
    while starts.len() < 6 && Instant::now() < deadline {
        match q.reserve("strict", "w1").await.expect("reserve") {
            Reservation::Task(lease) => {
                starts.push(lease.started_us);
                q.ack(&lease).await.expect("ack");
            }
            Reservation::RateLimited { wait_ms } => {
                limited += 1;
                tokio::time::sleep(Duration::from_millis(wait_ms.max(1))).await;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(starts.len(), 6, "only {} starts in 5 s", starts.len());
    assert!(limited > 0, "the rate never held a worker back");
    for pair in starts.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= 100_000,
            "starts {gap} µs apart under a strict 10/1s: {starts:?}"
        );
    }
}

#[tokio::test]
async fn an_unreachable_server_is_a_transient_error() {
    let port = free_port().expect("free port");
    let q = HttpQueues::new(&format!("http://127.0.0.1:{port}")).expect("URL");
    let err = q.list().await.expect_err("nothing listens");
    assert!(err.is_transient(), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("unreachable") && text.contains(&port.to_string()),
        "{text}"
    );
    assert!(
        text.contains("Is `tollgate serve` running there?"),
        "{text}"
    );

    // A server that accepts and never answers: the request timeout.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = silent.local_addr().expect("addr");
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let q = HttpQueues::new(&format!("http://{addr}/"))
        .expect("URL")
        .timeout(Duration::from_millis(200));
    let started = Instant::now();
    let err = q.stats("a").await.expect_err("no answer");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(
        err.is_transient() && err.to_string().contains("did not answer"),
        "{err}"
    );
    hold.abort();

    for bad in ["not a url", "ftp://h/", "http://h/?q=1", "/v1"] {
        let err = HttpQueues::new(bad).expect_err(bad);
        assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
    }
}

#[tokio::test]
async fn the_admin_token_guards_queue_routes() {
    let s = Running::start("admin_token: s3cret\n", None).await;
    let err = s.client().list().await.expect_err("no token");
    assert!(
        !err.is_transient() && err.to_string().contains("unauthorized"),
        "{err}"
    );
    let q = s.client().bearer_token("s3cret");
    q.create(spec("5/1s", "guarded"))
        .await
        .expect("create with the token");
    assert_eq!(q.list().await.expect("list").len(), 1);
}

#[tokio::test]
async fn queue_routes_wait_for_redis_then_use_it() {
    let mut redis = RedisServer::start().expect("redis-server starts");
    let url = redis.url();
    redis.kill();
    let s = Running::start("", Some(url)).await;
    let q = s.client();
    let err = q.list().await.expect_err("Redis is down");
    assert!(
        err.is_transient() && err.to_string().contains("not connected"),
        "{err}"
    );
    let (status, _) = s.raw("GET", "/v1/queues", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);

    redis.restart().expect("redis-server restarts");
    let deadline = Instant::now() + Duration::from_secs(10);
    while q.list().await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the queues never connected to Redis"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    q.create(spec("100/1s", "on-redis"))
        .await
        .expect("create on Redis");
    q.push("on-redis", task(r#"{"n": 1}"#)).await.expect("push");
    let lease = reserve_task(&q, "on-redis").await;
    assert_eq!(lease.payload, r#"{"n": 1}"#);
    q.ack(&lease).await.expect("ack");
    assert_eq!(q.stats("on-redis").await.expect("stats").completed, 1);
}

#[tokio::test]
async fn openapi_documents_the_queue_routes_and_codes() {
    let s = Running::start("", None).await;
    let (status, doc) = s.raw("GET", "/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    for (path, method) in [
        ("/v1/queues", "post"),
        ("/v1/queues/{name}", "patch"),
        ("/v1/queues/{name}/tasks", "post"),
        ("/v1/queues/{name}/dead/retry", "post"),
        ("/v1/queues/{name}/workers", "post"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path}");
    }
    let codes = doc
        .pointer("/components/schemas/Error/properties/error/properties/code/enum")
        .and_then(Value::as_array)
        .expect("codes");
    for code in [
        "unknown_queue",
        "queue_exists",
        "lease_lost",
        "invalid_queue_spec",
        "invalid_payload",
    ] {
        assert!(codes.contains(&json!(code)), "{code}");
    }
}
