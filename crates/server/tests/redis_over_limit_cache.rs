//! `redis.over_limit_cache` in the config file: validated, off by default, and on a real
//! redis-server it answers repeated denials without a round trip and counts them in
//! `/metrics`.

use reqwest::Client;
use serde_json::{Value, json};
use tollgate_server::{Config, ConfigSource, Server};
use tollgate_testkit::redis::RedisServer;
use tollgate_testkit::redis::resp::query;

#[test]
fn the_cache_is_off_by_default_and_its_size_is_validated() {
    let off = Config::parse("store: redis://127.0.0.1:6379/0\n", "test").expect("valid");
    assert_eq!(off.guard.over_limit_cache_keys, 0);
    let on = Config::parse(
        "store: redis://127.0.0.1:6379/0\nredis: {over_limit_cache: true}\n",
        "test",
    )
    .expect("valid");
    assert_eq!(on.guard.over_limit_cache_keys, 10_000);
    let sized = "redis: {over_limit_cache: true, over_limit_cache_keys: 50}\n";
    let sized = Config::parse(sized, "test").expect("valid");
    assert_eq!(sized.guard.over_limit_cache_keys, 50);
    let err = Config::parse(
        "redis: {over_limit_cache: true, over_limit_cache_keys: 0}\n",
        "test",
    )
    .expect_err("no room");
    assert!(
        err.to_string()
            .contains("redis.over_limit_cache_keys: must be at least 1"),
        "{err}"
    );
    let err = Config::parse("redis: {over_limit_cahce: true}\n", "test").expect_err("typo");
    assert!(err.to_string().contains("over_limit_cahce"), "{err}");
}

fn evalshas(redis: &RedisServer) -> u64 {
    let info = query(redis.port(), &["INFO", "commandstats"]).expect("INFO");
    info.text()
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_evalsha:calls="))
        .and_then(|rest| rest.split(',').next()?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn repeated_denials_are_answered_without_a_round_trip_and_counted() {
    let redis = RedisServer::start().expect("redis-server");
    let yaml = format!(
        "http: 127.0.0.1:0\nstore: {}\nstore_timeout_ms: 1000\n\
         redis: {{over_limit_cache: true, over_limit_cache_keys: 100}}\n",
        redis.url()
    );
    let config = Config::parse(&yaml, "test").expect("valid");
    let server = Server::bind(config, ConfigSource::default())
        .await
        .expect("binds");
    let base = format!("http://{}", server.bound().http);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));

    let client = Client::new();
    let check = || async {
        let answer = client
            .post(format!("{base}/v1/check"))
            .json(&json!({"key": "user:1", "rate": "1/min"}))
            .send()
            .await
            .expect("answered");
        assert_eq!(answer.status(), 200);
        answer.json::<Value>().await.expect("json")
    };
    assert_eq!(check().await["allowed"], true);
    let first = check().await;
    assert_eq!(first["allowed"], false);
    let calls = evalshas(&redis);
    for _ in 0..10 {
        let d = check().await;
        assert_eq!(
            (&d["allowed"], &d["limit"], &d["remaining"]),
            (&json!(false), &json!(1), &json!(0))
        );
        let retry = d["retry_after_ms"].as_u64().expect("a wait");
        assert!(retry > 0 && retry <= first["retry_after_ms"].as_u64().expect("a wait"));
    }
    assert_eq!(
        evalshas(&redis),
        calls,
        "no round trip for the cached denials"
    );

    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let value = |series: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    assert_eq!(
        value("tollgate_store_over_limit_cache_hits_total"),
        Some(10.0),
        "{metrics}"
    );
    assert_eq!(
        value(r#"tollgate_decisions_total{policy="inline",outcome="denied"}"#),
        Some(11.0),
        "{metrics}"
    );
    assert_eq!(value("tollgate_store_fallback_decisions_total"), Some(0.0));
    let _ = stop.send(());
    running.await.expect("task").expect("stops cleanly");
}
