//! `tollgate serve` and `tollgate config` as a user runs them: the real binary, real sockets,
//! real signals.

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use serde_json::Value;

fn free_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address")
}

struct Server {
    child: Child,
    http: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(args: &[&str]) -> Server {
    let http = free_port();
    let child = Command::cargo_bin("tollgate")
        .expect("binary")
        .arg("serve")
        .args(["--http", &http.to_string()])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let server = Server { child, http };
    wait_until(|| get(&server, "/healthz").is_some_and(|(s, _)| s == 200));
    server
}

fn wait_until(mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A minimal HTTP/1.1 exchange, so these tests need no async runtime.
fn request(addr: SocketAddr, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())?;
    Some((status, body))
}

fn get(server: &Server, path: &str) -> Option<(u16, String)> {
    request(server.http, "GET", path, "")
}

fn check(server: &Server, body: &str) -> Value {
    let (status, body) = request(server.http, "POST", "/v1/check", body).expect("answered");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("json")
}

fn policy_rate(server: &Server, name: &str) -> Option<String> {
    let (_, body) = get(server, "/v1/policies")?;
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

#[cfg(unix)]
fn signal(server: &Server, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &server.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

#[test]
fn serves_decisions_on_the_embedded_store() {
    let server = spawn(&[]);
    let d = check(&server, r#"{"key":"user:1","rate":"2/s"}"#);
    assert_eq!(
        (
            d["allowed"].as_bool(),
            d["limit"].as_u64(),
            d["remaining"].as_u64()
        ),
        (Some(true), Some(2), Some(1))
    );
    check(&server, r#"{"key":"user:1","rate":"2/s"}"#);
    let d = check(&server, r#"{"key":"user:1","rate":"2/s"}"#);
    assert_eq!(d["allowed"], false);
    assert!(
        d["retry_after_ms"]
            .as_u64()
            .is_some_and(|ms| ms > 0 && ms <= 500),
        "{d}"
    );
    assert_eq!(get(&server, "/readyz").map(|(s, _)| s), Some(200));
}

#[test]
fn a_changed_config_file_is_reloaded_and_a_bad_one_rejected() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("tollgate.yaml");
    write(&path, "policies:\n  basic: {rate: 100/min, burst: 20}\n");
    let server = spawn(&["--config", path.to_str().expect("utf-8")]);
    assert_eq!(policy_rate(&server, "basic").as_deref(), Some("100/min"));

    write(&path, "policies:\n  basic: {rate: 7/min}\n");
    wait_until(|| policy_rate(&server, "basic").as_deref() == Some("7/min"));

    // An invalid file changes nothing.
    write(&path, "policies:\n  basic: {rate: 7/fortnight}\n");
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(policy_rate(&server, "basic").as_deref(), Some("7/min"));
    let d = check(&server, r#"{"key":"k","policy":"basic"}"#);
    assert_eq!(d["limit"], 7);

    let (_, metrics) = get(&server, "/metrics").expect("metrics");
    let reloads = |result: &str| {
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
    assert!(reloads("ok") >= 1.0, "{metrics}");
    assert!(reloads("error") >= 1.0, "{metrics}");
}

#[cfg(unix)]
#[test]
fn sighup_reloads_and_sigterm_exits_cleanly() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("tollgate.yaml");
    std::fs::write(&path, "policies:\n  p: {rate: 1/s}\n").expect("write");
    let mut server = spawn(&["--config", path.to_str().expect("utf-8")]);
    // Change the file behind the watcher's back (same inode, in place), then ask for a reload.
    std::fs::write(&path, "policies:\n  p: {rate: 3/s}\n").expect("write");
    signal(&server, "-HUP");
    wait_until(|| policy_rate(&server, "p").as_deref() == Some("3/s"));
    signal(&server, "-TERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = server.child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
}

#[test]
fn bad_start_up_input_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, "policies:\n  basic: {rate: 0/s}\n").expect("write");
    let out = Command::cargo_bin("tollgate")
        .expect("binary")
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
    let out = Command::cargo_bin("tollgate")
        .expect("binary")
        .args(["serve", "--http", &addr])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("cannot listen on {addr}")));

    let out = Command::cargo_bin("tollgate")
        .expect("binary")
        .args(["serve", "--http", "127.0.0.1:0", "--store", "mongodb://x"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"mongodb://x\""));
}

#[test]
fn config_check_explains_a_valid_file_and_lists_every_problem() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tollgate.example.yaml");
    let out = Command::cargo_bin("tollgate")
        .expect("binary")
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

    let out = Command::cargo_bin("tollgate")
        .expect("binary")
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
    let out = Command::cargo_bin("tollgate")
        .expect("binary")
        .args(["config", "check", "--json"])
        .arg(&bad)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["valid"], false);
    assert_eq!(v["problems"].as_array().map(Vec::len), Some(3), "{v}");

    let out = Command::cargo_bin("tollgate")
        .expect("binary")
        .args(["config", "example"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("policies:"));
}
