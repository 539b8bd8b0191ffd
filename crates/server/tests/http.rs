//! The HTTP API through a real socket: every endpoint, every error, the decision fields and
//! the RateLimit headers, metrics and the OpenAPI document.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Router;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use tollgate_core::{Check, Decision, Error, Limit, MultiDecision, Store};
use tollgate_memory::MemoryStore;
use tollgate_server::http::app;
use tollgate_server::{Config, Overrides, Service};

const CONFIG: &str = "
policies:
  basic: {rate: 100/min, burst: 20, description: the free tier}
  login: {rate: 5/min, algorithm: sliding-window}
limits: {max_checks: 3, max_body_bytes: 2048}
";

fn service(yaml: &str) -> Arc<Service> {
    let config = Config::parse(yaml, "test").expect("valid test config");
    Arc::new(Service::new(Arc::new(MemoryStore::new()), config))
}

/// Serves `router` on a free port; returns its base URL.
async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

struct Server {
    base: String,
    client: Client,
}

impl Server {
    async fn start(yaml: &str) -> Server {
        Server::with(app(service(yaml))).await
    }

    async fn with(router: Router) -> Server {
        Server {
            base: serve(router).await,
            client: Client::new(),
        }
    }

    async fn post(&self, path: &str, body: Value) -> Response {
        self.client
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .expect("send")
    }

    async fn post_raw(&self, path: &str, content_type: Option<&str>, body: &str) -> Response {
        let mut req = self
            .client
            .post(format!("{}{path}", self.base))
            .body(body.to_string());
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        req.send().await.expect("send")
    }

    async fn get(&self, path: &str) -> Response {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("send")
    }

    /// POSTs a check; returns (status, headers, body).
    async fn check(&self, body: Value) -> (StatusCode, HeaderMap, Value) {
        parts(self.post("/v1/check", body).await).await
    }
}

async fn parts(resp: Response) -> (StatusCode, HeaderMap, Value) {
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.json::<Value>().await.expect("a JSON body");
    (status, headers, body)
}

/// Asserts an error response: its status, code, and that its message contains `needle`.
async fn assert_error(resp: Response, status: StatusCode, code: &str, needle: &str) {
    let (got, _, body) = parts(resp).await;
    assert_eq!(got, status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str().expect("a message");
    assert!(message.contains(needle), "{needle:?} not in {message:?}");
    assert_eq!(body.as_object().map(|o| o.len()), Some(1), "{body}");
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().expect("ASCII header"))
}

/// Parses `"name";a=1;b=2, "other";a=3` into (name, [(param, value)]) per list member.
fn structured(value: &str) -> Vec<(String, Vec<(String, u64)>)> {
    value
        .split(", ")
        .map(|member| {
            let mut items = member.split(';');
            let name = items.next().expect("name").trim_matches('"').to_string();
            let params = items
                .map(|p| {
                    let (k, v) = p.split_once('=').expect("param");
                    (k.to_string(), v.parse().expect("integer param"))
                })
                .collect();
            (name, params)
        })
        .collect()
}

fn decision(body: &Value) -> (bool, u64, u64, u64, u64) {
    let n = |f: &str| body[f].as_u64().unwrap_or_else(|| panic!("{f} in {body}"));
    (
        body["allowed"].as_bool().expect("allowed"),
        n("limit"),
        n("remaining"),
        n("retry_after_ms"),
        n("reset_after_ms"),
    )
}

#[tokio::test]
async fn an_inline_check_answers_the_decision_and_its_headers() {
    let s = Server::start(CONFIG).await;
    let req = json!({"key": "user:1", "rate": "2/10s"});

    let (status, headers, body) = s.check(req.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["policy"], "inline");
    let (allowed, limit, remaining, retry, reset) = decision(&body);
    assert_eq!((allowed, limit, remaining, retry), (true, 2, 1, 0));
    assert!((4_900..=5_000).contains(&reset), "{reset}");
    assert_eq!(
        structured(header(&headers, "ratelimit-policy").expect("policy header")),
        [(
            "inline".to_string(),
            vec![("q".into(), 2), ("w".into(), 10)]
        )]
    );
    assert_eq!(
        structured(header(&headers, "ratelimit").expect("ratelimit header")),
        [("inline".to_string(), vec![("r".into(), 1), ("t".into(), 5)])]
    );
    assert!(headers.get(RETRY_AFTER).is_none());

    s.check(req.clone()).await;
    let (status, headers, body) = s.check(req).await;
    assert_eq!(status, StatusCode::OK, "a denial is a 200");
    let (allowed, _, remaining, retry, reset) = decision(&body);
    assert!(!allowed);
    assert_eq!(remaining, 0);
    // 5 s less the time the three checks took, which a busy machine may stretch.
    assert!((4_001..=5_000).contains(&retry), "{retry}");
    assert!(reset >= retry);
    assert_eq!(header(&headers, "retry-after"), Some("5"));
    let state = structured(header(&headers, "ratelimit").expect("ratelimit header"));
    assert_eq!(state[0].1[0], ("r".to_string(), 0));
}

#[tokio::test]
async fn a_policy_check_uses_the_policy() {
    let s = Server::start(CONFIG).await;
    let (status, headers, body) = s
        .check(json!({"key": "user:1", "policy": "basic", "cost": 5}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["policy"], "basic");
    assert_eq!(body["allowed"], true);
    assert_eq!(
        (body["limit"].as_u64(), body["remaining"].as_u64()),
        (Some(20), Some(15))
    );
    // 20 × (60 s / 100) = 12 s to refill the bucket.
    assert_eq!(
        header(&headers, "ratelimit-policy"),
        Some("\"basic\";q=20;w=12")
    );
    assert_eq!(header(&headers, "ratelimit"), Some("\"basic\";r=15;t=3"));

    // Cost 0 peeks: nothing consumed (one unit may have come back after 600 ms).
    let (_, _, body) = s
        .check(json!({"key": "user:1", "policy": "basic", "cost": 0}))
        .await;
    let remaining = body["remaining"].as_u64().expect("remaining");
    assert!((15..=16).contains(&remaining), "{body}");

    let (_, headers, body) = s.check(json!({"key": "u", "policy": "login"})).await;
    assert_eq!(
        (body["limit"].as_u64(), body["remaining"].as_u64()),
        (Some(5), Some(4))
    );
    assert_eq!(
        header(&headers, "ratelimit-policy"),
        Some("\"login\";q=5;w=60")
    );
}

#[tokio::test]
async fn a_key_of_1024_bytes_is_fine() {
    let s = Server::start(CONFIG).await;
    let (status, _, body) = s
        .check(json!({"key": "k".repeat(1024), "rate": "1/s"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Every code an error test below expects; each must be documented in /openapi.json.
const TESTED_CODES: &[&str] = &[
    "invalid_request",
    "invalid_rate",
    "unknown_algorithm",
    "invalid_burst",
    "cost_exceeds_limit",
    "invalid_key",
    "unknown_policy",
    "unauthorized",
    "payload_too_large",
    "unsupported_media_type",
    "not_found",
    "method_not_allowed",
    "reload_unavailable",
    "invalid_config",
    "store_unavailable",
];

#[tokio::test]
async fn bad_checks_are_json_errors() {
    let s = Server::start(CONFIG).await;
    let long_key = "k".repeat(1025);
    let cases: Vec<(Value, StatusCode, &str, &str)> = vec![
        (
            json!({"key": "a", "policy": "gold"}),
            StatusCode::NOT_FOUND,
            "unknown_policy",
            "\"gold\"",
        ),
        (
            json!({"key": "a", "rate": "5/60x"}),
            StatusCode::BAD_REQUEST,
            "invalid_rate",
            "\"5/60x\"",
        ),
        (
            json!({"key": "a", "rate": "0/1s"}),
            StatusCode::BAD_REQUEST,
            "invalid_rate",
            "\"0/1s\"",
        ),
        (
            json!({"key": "a", "rate": "5/s", "cost": 6}),
            StatusCode::BAD_REQUEST,
            "cost_exceeds_limit",
            "cost 6",
        ),
        (
            json!({"key": "a", "policy": "basic", "cost": 21}),
            StatusCode::BAD_REQUEST,
            "cost_exceeds_limit",
            "capacity 20",
        ),
        (
            json!({"key": "", "rate": "5/s"}),
            StatusCode::BAD_REQUEST,
            "invalid_key",
            "empty",
        ),
        (
            json!({"key": long_key, "rate": "5/s"}),
            StatusCode::BAD_REQUEST,
            "invalid_key",
            "1024",
        ),
        (
            json!({"key": "a", "rate": "5/s", "policy": "basic"}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "not both",
        ),
        (
            json!({"key": "a"}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "give a policy",
        ),
        (
            json!({"key": "a", "policy": "basic", "burst": 3}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "from the policy",
        ),
        (
            json!({"key": "a", "rate": "5/s", "algorithm": "leaky"}),
            StatusCode::BAD_REQUEST,
            "unknown_algorithm",
            "\"leaky\"",
        ),
        (
            json!({"key": "a", "rate": "5/s", "algorithm": "fixed-window", "burst": 2}),
            StatusCode::BAD_REQUEST,
            "invalid_burst",
            "burst 2",
        ),
        (
            json!({"key": "a", "rate": "5/s", "colour": "red"}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "unknown field `colour`",
        ),
        (
            json!({"key": "a", "rate": "5/s", "cost": "1"}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "invalid type: string \"1\", expected u64",
        ),
        (
            json!({"key": "a", "rate": "5/s", "cost": -1}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "invalid value",
        ),
        (
            json!({"key": 7, "rate": "5/s"}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "invalid type: integer `7`",
        ),
        (
            json!({"rate": "5/s"}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "missing field `key`",
        ),
        (
            json!(["a", null, "5/s"]),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "must be a JSON object",
        ),
        (
            json!(null),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "must be a JSON object",
        ),
    ];
    for (body, status, code, needle) in cases {
        let resp = s.post("/v1/check", body.clone()).await;
        assert_eq!(resp.status(), status, "{body}");
        assert_error(resp, status, code, needle).await;
    }

    let raw: [(Option<&str>, &str, StatusCode, &str, &str); 5] = [
        (
            Some("application/json"),
            "{\"key\":",
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "EOF",
        ),
        (
            Some("application/json"),
            "{\"key\":'a'}",
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "line 1 column",
        ),
        (
            Some("application/json"),
            "",
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "empty",
        ),
        (
            Some("text/plain"),
            "{\"key\":\"a\",\"rate\":\"1/s\"}",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "application/json",
        ),
        (
            None,
            "{\"key\":\"a\",\"rate\":\"1/s\"}",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "application/json",
        ),
    ];
    for (content_type, body, status, code, needle) in raw {
        let resp = s.post_raw("/v1/check", content_type, body).await;
        assert_error(resp, status, code, needle).await;
    }
    // A JSON type with parameters, or a +json type, is JSON.
    let resp = s
        .post_raw(
            "/v1/check",
            Some("application/json; charset=utf-8"),
            "{\"key\":\"a\",\"rate\":\"1/s\"}",
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let s = Server::start(CONFIG).await;
    let big = json!({"key": "a", "rate": "1/s", "pad": "x".repeat(3000)});
    let resp = s.post("/v1/check", big).await;
    assert_error(
        resp,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "2048 bytes",
    )
    .await;

    // Without a Content-Length (chunked), the limit holds while reading.
    let host = s.base.trim_start_matches("http://");
    let chunk = "x".repeat(3000);
    let request = format!(
        "POST /v1/check HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len()
    );
    let response = raw_http(host, &request).await;
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(response.contains("\"payload_too_large\""), "{response}");
}

async fn raw_http(host: &str, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(host).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    // The server may answer before reading everything and close; what it said is enough.
    let _ = stream.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn multi_is_all_or_nothing() {
    let s = Server::start(CONFIG).await;
    let batch = json!({"checks": [
        {"key": "shared", "rate": "5/min"},
        {"key": "scarce", "rate": "1/min", "algorithm": "sliding-window"},
    ]});
    let (status, headers, body) = parts(s.post("/v1/check/multi", batch.clone()).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["allowed"], true);
    assert_eq!(body["retry_after_ms"], 0);
    let decisions = body["decisions"].as_array().expect("decisions");
    assert_eq!(decisions.len(), 2);
    assert_eq!(decision(&decisions[0]).2, 4);
    assert_eq!(decisions[1]["policy"], "inline");
    assert_eq!(
        header(&headers, "ratelimit-policy"),
        Some("\"inline\";q=5;w=60, \"inline\";q=1;w=60")
    );
    assert_eq!(
        structured(header(&headers, "ratelimit").expect("header")).len(),
        2
    );
    assert!(headers.get(RETRY_AFTER).is_none());

    // "scarce" is spent, so the batch is denied and "shared" keeps its 4.
    let (status, headers, body) = parts(s.post("/v1/check/multi", batch).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["allowed"], false);
    let retry = body["retry_after_ms"].as_u64().expect("retry");
    assert!(retry > 59_000, "{retry}");
    assert_eq!(
        body["decisions"][0]["allowed"], true,
        "shared alone had room"
    );
    assert_eq!(body["decisions"][1]["allowed"], false);
    assert_eq!(header(&headers, "retry-after"), Some("60"));
    let (_, _, peek) = s
        .check(json!({"key": "shared", "rate": "5/min", "cost": 0}))
        .await;
    assert_eq!(peek["remaining"], 4, "a denied batch consumed nothing");
}

#[tokio::test]
async fn bad_batches_are_400() {
    let s = Server::start(CONFIG).await;
    let one = json!({"key": "a", "rate": "1/s"});
    let four = json!({"checks": [one, one, one, one]});
    let resp = s.post("/v1/check/multi", four).await;
    assert_error(
        resp,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "1 to 3 checks",
    )
    .await;
    let resp = s.post("/v1/check/multi", json!({"checks": []})).await;
    assert_error(resp, StatusCode::BAD_REQUEST, "invalid_request", "has 0").await;
    let resp = s.post("/v1/check/multi", json!({"check": [one]})).await;
    assert_error(
        resp,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "unknown field `check`",
    )
    .await;
    let items: [(Value, &str); 4] = [
        (
            json!(["b", null, "1/s"]),
            "invalid type: sequence, expected a map at line 1 column",
        ),
        (
            json!({"key": "b", "rate": "1/s", "cots": 1}),
            "checks[1]: unknown field `cots`",
        ),
        (
            json!({"key": "b", "rate": 5}),
            "checks[1]: invalid type: integer `5`, expected",
        ),
        (json!(7), "invalid type: integer `7`, expected a map"),
    ];
    for (item, needle) in items {
        let resp = s
            .post("/v1/check/multi", json!({"checks": [one, item]}))
            .await;
        assert_error(resp, StatusCode::BAD_REQUEST, "invalid_request", needle).await;
    }
    let bad = json!({"checks": [one, {"key": "b", "rate": "1/x"}]});
    let resp = s.post("/v1/check/multi", bad).await;
    assert_error(resp, StatusCode::BAD_REQUEST, "invalid_rate", "checks[1]").await;
    let bad = json!({"checks": [one, {"key": "b", "policy": "gold"}]});
    let resp = s.post("/v1/check/multi", bad).await;
    assert_error(resp, StatusCode::NOT_FOUND, "unknown_policy", "checks[1]").await;
}

#[tokio::test]
async fn reset_is_open_without_a_token() {
    let s = Server::start(CONFIG).await;
    let req = json!({"key": "k", "rate": "1/min"});
    s.check(req.clone()).await;
    assert_eq!(s.check(req.clone()).await.2["allowed"], false);
    let (status, _, body) = parts(s.post("/v1/reset", json!({"key": "k"})).await).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"reset": true})));
    assert_eq!(
        s.check(req).await.2["allowed"],
        true,
        "reset restores capacity"
    );

    let resp = s.post("/v1/reset", json!({"key": ""})).await;
    assert_error(resp, StatusCode::BAD_REQUEST, "invalid_key", "empty").await;
    let resp = s.post("/v1/reset", json!({"key": "k", "all": true})).await;
    assert_error(
        resp,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "unknown field `all`",
    )
    .await;
}

#[tokio::test]
async fn admin_endpoints_need_the_token_when_one_is_set() {
    let s = Server::start(&format!("admin_token: s3cret\n{CONFIG}")).await;
    let url = format!("{}/v1/reset", s.base);
    let send = |auth: Option<&'static str>, body: Value| {
        let mut req = s.client.post(&url).json(&body);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        req.send()
    };
    let key = json!({"key": "k"});

    let resp = send(None, key.clone()).await.expect("send");
    assert_eq!(header(resp.headers(), "www-authenticate"), Some("Bearer"));
    assert_error(resp, StatusCode::UNAUTHORIZED, "unauthorized", "Bearer").await;
    for wrong in ["Bearer s3cre", "Bearer s3cret!", "Basic s3cret", "s3cret"] {
        let resp = send(Some(wrong), key.clone()).await.expect("send");
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{wrong}");
        assert_error(resp, StatusCode::UNAUTHORIZED, "unauthorized", "").await;
    }
    // Authorization comes before the body: a stranger learns nothing from body errors.
    let resp = send(None, json!({"nonsense": 1})).await.expect("send");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    let resp = send(Some("Bearer s3cret"), key.clone())
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = send(Some("bearer s3cret"), key).await.expect("send");
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "the scheme is case-insensitive"
    );

    let resp = s.post("/v1/reload", json!({})).await;
    assert_error(resp, StatusCode::UNAUTHORIZED, "unauthorized", "").await;
    let resp = s
        .client
        .post(format!("{}/v1/reload", s.base))
        .header("authorization", "Bearer s3cret")
        .send()
        .await
        .expect("send");
    assert_error(
        resp,
        StatusCode::NOT_FOUND,
        "reload_unavailable",
        "config file",
    )
    .await;
}

#[tokio::test]
async fn reload_rereads_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tollgate.yaml");
    std::fs::write(&path, CONFIG).expect("write");
    let svc = Service::new(
        Arc::new(MemoryStore::new()),
        Config::load(&path).expect("valid"),
    )
    .with_config_file(path.clone(), Overrides::default());
    let s = Server::with(app(Arc::new(svc))).await;

    let names = |body: Value| -> Vec<String> {
        body["policies"]
            .as_array()
            .expect("policies")
            .iter()
            .map(|p| p["name"].as_str().expect("name").to_string())
            .collect()
    };
    let (_, _, body) = parts(s.get("/v1/policies").await).await;
    assert_eq!(names(body), ["basic", "login"]);

    std::fs::write(
        &path,
        format!("{CONFIG}\nhttp: 127.0.0.1:1\n")
            .replace("policies:\n", "policies:\n  pro: {rate: 1000/h}\n"),
    )
    .expect("write");
    let (status, _, body) = parts(s.post_raw("/v1/reload", None, "").await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["reloaded"], true);
    let notes = body["notes"].as_array().expect("notes");
    assert!(
        notes
            .iter()
            .any(|n| n.as_str().is_some_and(|n| n.starts_with("http"))),
        "{body}"
    );
    let (_, _, body) = parts(s.get("/v1/policies").await).await;
    assert_eq!(names(body), ["basic", "login", "pro"]);
    let (status, _, _) = s.check(json!({"key": "a", "policy": "pro"})).await;
    assert_eq!(status, StatusCode::OK);

    std::fs::write(&path, "policies: {bad: {rate: 1/x}}\n").expect("write");
    let resp = s.post_raw("/v1/reload", None, "").await;
    assert_error(
        resp,
        StatusCode::BAD_REQUEST,
        "invalid_config",
        "policies.bad",
    )
    .await;
    let (_, _, body) = parts(s.get("/v1/policies").await).await;
    assert_eq!(
        names(body),
        ["basic", "login", "pro"],
        "a bad file changes nothing"
    );

    // Limits take effect at once, the body limit included.
    std::fs::write(&path, "limits: {max_body_bytes: 1024}\n").expect("write");
    assert_eq!(
        s.post_raw("/v1/reload", None, "").await.status(),
        StatusCode::OK
    );
    let resp = s
        .post(
            "/v1/check",
            json!({"key": "a", "rate": "1/s", "pad": "x".repeat(1500)}),
        )
        .await;
    assert_error(
        resp,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "1024",
    )
    .await;
}

#[tokio::test]
async fn policies_are_listed() {
    let s = Server::start(CONFIG).await;
    let (status, _, body) = parts(s.get("/v1/policies").await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"policies": [
            {"name": "basic", "rate": "100/min", "algorithm": "gcra", "burst": 20, "limit": 20,
             "description": "the free tier"},
            {"name": "login", "rate": "5/min", "algorithm": "sliding-window", "burst": null,
             "limit": 5, "description": null},
        ]})
    );
}

#[tokio::test]
async fn health_and_readiness() {
    let s = Server::start(CONFIG).await;
    let (status, _, body) = parts(s.get("/healthz").await).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
    let (status, _, body) = parts(s.get("/readyz").await).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ready"})));
}

/// A store that cannot answer.
struct Down;

fn down() -> Error {
    Error::Store {
        message: "connection refused".to_string(),
        transient: true,
    }
}

impl Store for Down {
    async fn check(&self, _: &str, _: &Limit, _: u64) -> Result<Decision, Error> {
        Err(down())
    }
    async fn check_all(&self, _: &[Check<'_>]) -> Result<MultiDecision, Error> {
        Err(down())
    }
    async fn reset(&self, _: &str) -> Result<(), Error> {
        Err(down())
    }
    async fn ping(&self) -> Result<(), Error> {
        Err(down())
    }
}

#[tokio::test]
async fn a_store_that_cannot_answer_is_503() {
    let config = Config::parse(CONFIG, "test").expect("valid");
    let s = Server::with(app(Arc::new(Service::new(Arc::new(Down), config)))).await;
    let (status, _, body) = parts(s.get("/healthz").await).await;
    assert_eq!(status, StatusCode::OK, "alive even when not ready: {body}");
    let resp = s.get("/readyz").await;
    assert_error(
        resp,
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        "refused",
    )
    .await;
    let resp = s
        .post("/v1/check", json!({"key": "a", "policy": "basic"}))
        .await;
    assert_error(
        resp,
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        "refused",
    )
    .await;
    let batch = json!({"checks": [{"key": "a", "policy": "basic"}]});
    let resp = s.post("/v1/check/multi", batch).await;
    assert_error(
        resp,
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        "refused",
    )
    .await;
    let resp = s.post("/v1/reset", json!({"key": "a"})).await;
    assert_error(
        resp,
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        "refused",
    )
    .await;
}

#[tokio::test]
async fn unknown_routes_and_methods_are_json_errors() {
    let s = Server::start(CONFIG).await;
    let resp = s.get("/v2/check").await;
    assert_error(resp, StatusCode::NOT_FOUND, "not_found", "GET /v2/check").await;
    let resp = s.get("/v1/check").await;
    let allow = header(resp.headers(), "allow").map(str::to_string);
    assert_eq!(allow.as_deref(), Some("POST"));
    assert_error(
        resp,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "GET",
    )
    .await;
    let resp = s.post("/healthz", json!({})).await;
    assert_error(
        resp,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "POST",
    )
    .await;
}

/// The value of the sample `name{labels}` in Prometheus text.
fn sample(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name_and_labels)?.strip_prefix(' '))
        .map(|v| v.parse().expect("a number"))
}

#[tokio::test]
async fn metrics_count_decisions() {
    let s = Server::start(CONFIG).await;
    for _ in 0..7 {
        s.check(json!({"key": "m", "policy": "login"})).await;
    }
    s.check(json!({"key": "m", "rate": "1/min"})).await;
    s.post(
        "/v1/check/multi",
        json!({"checks": [{"key": "n", "policy": "basic"}]}),
    )
    .await;

    let resp = s.get("/metrics").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let content_type = header(resp.headers(), "content-type").map(str::to_string);
    assert_eq!(
        content_type.as_deref(),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    let text = resp.text().await.expect("text");
    assert!(text.ends_with("# EOF\n"), "{text}");
    let decisions = |policy: &str, outcome: &str| {
        sample(
            &text,
            &format!("tollgate_decisions_total{{policy=\"{policy}\",outcome=\"{outcome}\"}}"),
        )
    };
    assert_eq!(decisions("login", "allowed"), Some(5.0), "{text}");
    assert_eq!(decisions("login", "denied"), Some(2.0), "{text}");
    assert_eq!(decisions("inline", "allowed"), Some(1.0), "{text}");
    assert_eq!(decisions("basic", "allowed"), Some(1.0), "{text}");
    assert_eq!(decisions("basic", "denied"), None, "{text}");
    assert_eq!(
        sample(&text, "tollgate_check_duration_seconds_count{api=\"http\"}"),
        Some(9.0),
        "{text}"
    );
    // One state per (algorithm family, key): "m" twice (window and bucket), and "n".
    assert_eq!(sample(&text, "tollgate_tracked_keys"), Some(3.0), "{text}");
}

#[tokio::test]
async fn openapi_documents_every_route_and_code() {
    let s = Server::start(CONFIG).await;
    let resp = s.get("/openapi.json").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        header(resp.headers(), "content-type"),
        Some("application/json")
    );
    let doc: Value = resp.json().await.expect("valid JSON");
    assert_eq!(doc["openapi"], "3.1.0");

    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    let served: BTreeSet<(String, String)> = [
        ("POST", "/v1/check"),
        ("POST", "/v1/check/multi"),
        ("POST", "/v1/reset"),
        ("POST", "/v1/reload"),
        ("GET", "/v1/policies"),
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
        // The stats and controller reports (tests/stats.rs tests them).
        ("GET", "/v1/stats"),
        ("POST", "/v1/controllers/{name}"),
        // The web dashboard (tests/dashboard.rs tests it).
        ("GET", "/"),
        ("GET", "/dashboard/app.js"),
        ("GET", "/dashboard/style.css"),
        // The queue routes (tests/queues_http.rs tests them).
        ("GET", "/v1/queues"),
        ("POST", "/v1/queues"),
        ("GET", "/v1/queues/{name}"),
        ("PATCH", "/v1/queues/{name}"),
        ("DELETE", "/v1/queues/{name}"),
        ("POST", "/v1/queues/{name}/clear"),
        ("POST", "/v1/queues/{name}/tasks"),
        ("POST", "/v1/queues/{name}/reserve"),
        ("POST", "/v1/queues/{name}/ack"),
        ("POST", "/v1/queues/{name}/heartbeat"),
        ("POST", "/v1/queues/{name}/fail"),
        ("GET", "/v1/queues/{name}/dead"),
        ("DELETE", "/v1/queues/{name}/dead"),
        ("POST", "/v1/queues/{name}/dead/retry"),
        ("POST", "/v1/queues/{name}/workers"),
    ]
    .iter()
    .map(|(m, p)| (m.to_string(), p.to_string()))
    .collect();
    assert_eq!(documented, served);

    // Every documented route is really served: neither 404 not_found nor 405.
    for (method, path) in &documented {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let resp = s
            .client
            .request(method.clone(), format!("{}{path}", s.base))
            .send()
            .await
            .expect("send");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        let code = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_string));
        assert!(
            status != StatusCode::METHOD_NOT_ALLOWED && code.as_deref() != Some("not_found"),
            "{method} {path}: {status} {text}"
        );
    }

    // Every $ref resolves.
    let text = doc.to_string();
    for piece in text.split("\"$ref\":\"#/").skip(1) {
        let pointer = format!("/{}", piece.split('"').next().expect("ref"));
        assert!(doc.pointer(&pointer).is_some(), "dangling $ref {pointer}");
    }

    let codes: Vec<&str> = doc
        .pointer("/components/schemas/Error/properties/error/properties/code/enum")
        .and_then(Value::as_array)
        .expect("error codes")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for code in TESTED_CODES {
        assert!(codes.contains(code), "{code} is not documented");
    }
}
