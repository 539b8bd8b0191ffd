//! `tollgate serve` and `tollgate config` as a user runs them: the real binary, real sockets,
//! real signals.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use common::{Server, tollgate, wait_for};
use serde_json::Value;

/// How long a reload may take to show.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(20);

fn policy_rate(server: &Server, name: &str) -> Option<String> {
    let (_, body) = server.get("/v1/policies")?;
    let v: Value = serde_json::from_str(&body).ok()?;
    let policies = v.get("policies").unwrap_or(&v);
    let found = match policies {
        Value::Array(list) => list.iter().find(|p| p["name"] == name).cloned(),
        Value::Object(map) => map.get(name).cloned(),
        _ => None,
    }?;
    found["rate"].as_str().map(str::to_string)
}

fn write(path: &Path, text: &str) {
    // Write to a temporary name and rename, as editors and config managers do.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

#[test]
fn serves_decisions_on_the_embedded_store() {
    let server = Server::spawn(tollgate(), &[]);
    let d = server.check(r#"{"key":"user:1","rate":"2/min"}"#);
    assert_eq!(
        (
            d["allowed"].as_bool(),
            d["limit"].as_u64(),
            d["remaining"].as_u64()
        ),
        (Some(true), Some(2), Some(1))
    );
    server.check(r#"{"key":"user:1","rate":"2/min"}"#);
    let d = server.check(r#"{"key":"user:1","rate":"2/min"}"#);
    assert_eq!(d["allowed"], false);
    assert!(
        d["retry_after_ms"]
            .as_u64()
            .is_some_and(|ms| ms > 0 && ms <= 30_000),
        "{d}"
    );
    assert_eq!(server.get("/readyz").map(|(s, _)| s), Some(200));
}

#[test]
fn a_changed_config_file_is_reloaded_and_a_bad_one_rejected() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("tollgate.yaml");
    write(&path, "policies:\n  basic: {rate: 100/min, burst: 20}\n");
    let server = Server::start_with_file(&path, &[]);
    assert_eq!(policy_rate(&server, "basic").as_deref(), Some("100/min"));

    write(&path, "policies:\n  basic: {rate: 7/min}\n");
    let reloaded = wait_for(RELOAD_TIMEOUT, || {
        policy_rate(&server, "basic").as_deref() == Some("7/min")
    });
    assert!(reloaded.is_some(), "not reloaded:\n{}", server.stderr());

    // An invalid file changes nothing (once its reload has been tried and rejected).
    let reloads = |result: &str| {
        let (_, metrics) = server.get("/metrics").expect("metrics");
        metrics
            .lines()
            .find(|l| {
                l.starts_with("tollgate_config_reloads_total")
                    && l.contains(&format!("result=\"{result}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    write(&path, "policies:\n  basic: {rate: 7/fortnight}\n");
    let rejected = wait_for(RELOAD_TIMEOUT, || reloads("error") >= 1.0);
    assert!(rejected.is_some(), "never rejected:\n{}", server.stderr());
    assert_eq!(policy_rate(&server, "basic").as_deref(), Some("7/min"));
    let d = server.check(r#"{"key":"k","policy":"basic"}"#);
    assert_eq!(d["limit"], 7);
    assert!(reloads("ok") >= 1.0);
}

#[cfg(unix)]
#[test]
fn sighup_reloads_and_sigterm_exits_cleanly() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("tollgate.yaml");
    std::fs::write(&path, "policies:\n  p: {rate: 1/s}\n").expect("write");
    let mut server = Server::start_with_file(&path, &[]);
    // Change the file behind the watcher's back (same inode, in place), then ask for a reload.
    std::fs::write(&path, "policies:\n  p: {rate: 3/s}\n").expect("write");
    server.signal("-HUP");
    let reloaded = wait_for(RELOAD_TIMEOUT, || {
        policy_rate(&server, "p").as_deref() == Some("3/s")
    });
    assert!(reloaded.is_some(), "not reloaded:\n{}", server.stderr());
    server.signal("-TERM");
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("did not exit after SIGTERM");
    assert_eq!(status.code(), Some(0), "{}", server.stderr());
}

#[test]
fn bad_start_up_input_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, "policies:\n  basic: {rate: 0/s}\n").expect("write");
    let out = tollgate()
        .args([
            "serve",
            "--http",
            "127.0.0.1:0",
            "--config",
            path.to_str().expect("utf-8"),
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("policies.basic") && err.contains("\"0/s\""),
        "{err}"
    );

    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("address").to_string();
    let out = tollgate()
        .args(["serve", "--http", &addr])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("cannot listen on {addr}")));

    let out = tollgate()
        .args(["serve", "--http", "127.0.0.1:0", "--store", "mongodb://x"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"mongodb://x\""));
}

#[test]
fn config_check_explains_a_valid_file_and_lists_every_problem() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tollgate.example.yaml");
    let out = tollgate()
        .args(["config", "check"])
        .arg(&example)
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("policy \"basic\": 100/min gcra, burst 20"),
        "{text}"
    );

    let out = tollgate()
        .args(["config", "check", "--json"])
        .arg(&example)
        .output()
        .expect("run");
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["valid"], true);
    assert_eq!(v["policies"]["login"]["algorithm"], "sliding-window");

    let dir = tempfile::tempdir().expect("dir");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "http: nope\npolicies:\n  a: {rate: 1/x}\n  b: {rate: 1/s, burst: 0}\n",
    )
    .expect("write");
    let out = tollgate()
        .args(["config", "check", "--json"])
        .arg(&bad)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["valid"], false);
    assert_eq!(v["problems"].as_array().map(Vec::len), Some(3), "{v}");

    let out = tollgate()
        .args(["config", "example"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("policies:"));
}
