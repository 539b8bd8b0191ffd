//! `tollgate monitor --once` as scripts run it: against a real `tollgate serve` with real
//! traffic, against a closed port, and against servers that answer garbage.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use serde_json::Value;
use tollgate_server::stats::StatsReport;

fn free_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address")
}

struct Server {
    child: Child,
    http: SocketAddr,
}

impl Server {
    fn url(&self) -> String {
        format!("http://{}", self.http)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(config: &Path) -> Server {
    let http = free_port();
    let child = Command::cargo_bin("tollgate")
        .expect("binary")
        .arg("serve")
        .args(["--http", &http.to_string(), "--log", "warn"])
        .arg("--config")
        .arg(config)
        .env_remove("TOLLGATE_STORE")
        .env_remove("TOLLGATE_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let server = Server { child, http };
    wait_until("the server answers /healthz", || {
        request(server.http, "GET", "/healthz", "").is_some_and(|(s, _)| s == 200)
    });
    server
}

fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A minimal HTTP/1.1 exchange, so these tests need no async runtime.
fn request(addr: SocketAddr, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
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

/// Asks for one decision; returns whether it was allowed.
fn check(server: &Server, body: &str) -> bool {
    let (status, answer) = request(server.http, "POST", "/v1/check", body).expect("answered");
    assert_eq!(status, 200, "{answer}");
    let decision: Value = serde_json::from_str(&answer).expect("a decision");
    decision["allowed"].as_bool().expect("allowed is a bool")
}

fn tollgate(args: &[&str]) -> Output {
    Command::cargo_bin("tollgate")
        .expect("binary")
        .args(args)
        .env_remove("TOLLGATE_SERVER")
        .env_remove("TOLLGATE_TOKEN")
        .env_remove("TOLLGATE_STORE")
        .output()
        .expect("run tollgate")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

fn line_starting<'a>(text: &'a str, start: &str) -> &'a str {
    text.lines()
        .find(|l| l.trim_start().starts_with(start))
        .unwrap_or_else(|| panic!("no line starting {start:?} in:\n{text}"))
}

fn stats(server: &Server) -> Option<StatsReport> {
    let (status, body) = request(server.http, "GET", "/v1/stats", "")?;
    (status == 200).then_some(())?;
    serde_json::from_str(&body).ok()
}

/// Traffic a test can count: policy `login` (2/min) allows 3 and denies 3, 3 of them for
/// `user:mallory`; inline 1/min allows 1 and denies 2; queue `emails` holds 5 ready tasks
/// (3 at priority 5, 2 at 0) and 1 delayed.
fn make_traffic(server: &Server) {
    let login = |key: &str| check(server, &format!(r#"{{"key":"{key}","policy":"login"}}"#));
    let mallory: Vec<bool> = (0..5).map(|_| login("user:mallory")).collect();
    assert_eq!(mallory, [true, true, false, false, false]);
    assert!(login("user:alice"));
    let inline: Vec<bool> = (0..3)
        .map(|_| check(server, r#"{"key":"k","rate":"1/min"}"#))
        .collect();
    assert_eq!(inline, [true, false, false]);

    let url = server.url();
    let queue = |args: &[&str]| {
        let mut all = vec!["queue"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--server", &url]);
        let out = tollgate(&all);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    };
    queue(&["create", "1/60s", "--name", "emails"]);
    for n in 0..3 {
        queue(&["push", "emails", &n.to_string(), "--priority", "5"]);
    }
    for n in 3..5 {
        queue(&["push", "emails", &n.to_string()]);
    }
    queue(&["push", "emails", "99", "--delay", "1h"]);
}

fn traffic_server() -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("tollgate.yaml");
    std::fs::write(&config, "policies:\n  login: {rate: 2/min}\n").expect("write config");
    let server = spawn(&config);
    make_traffic(&server);
    // The stats are sampled: wait until the snapshot has every decision in it.
    wait_until("the stats count every decision", || {
        stats(&server).is_some_and(|s| {
            s.decisions.allowed_total == 4 && s.decisions.denied_total == 5 && s.queues.len() == 1
        })
    });
    (dir, server)
}

#[test]
fn once_reports_the_traffic_of_a_live_server() {
    let (_dir, server) = traffic_server();
    let out = tollgate(&["monitor", "--once", "--server", &server.url()]);
    let text = stdout(&out);
    assert!(out.status.success(), "{}\n{text}", stderr(&out));
    assert!(!text.contains('\u{1b}'), "escape codes in:\n{text}");

    let header = format!(
        "tollgate {} at {}, up ",
        env!("CARGO_PKG_VERSION"),
        server.url()
    );
    assert!(text.starts_with(&header), "{text}");
    assert!(
        line_starting(&text, "decisions").ends_with("since start 4 allowed, 5 denied"),
        "{text}"
    );
    assert!(
        line_starting(&text, "store").contains("memory: ready"),
        "{text}"
    );

    let login = words(line_starting(&text, "login "));
    assert_eq!(login[login.len() - 2..], ["3", "3"], "{login:?}");
    assert_eq!(
        line_starting(&text, "top denied: user:mallory"),
        "    top denied: user:mallory 3"
    );
    let inline = words(line_starting(&text, "inline "));
    assert_eq!(inline[inline.len() - 2..], ["1", "2"], "{inline:?}");

    let emails = words(line_starting(&text, "emails "));
    assert_eq!(
        (emails[2..=8].to_vec(), emails[11]),
        (vec!["active", "5", "p5:3", "p0:2", "0", "1", "0"], "0"),
        "{emails:?}"
    );
    assert!(text.contains("controllers\n  none reporting"), "{text}");
}

#[test]
fn once_json_prints_the_stats_report() {
    let (_dir, server) = traffic_server();
    let out = tollgate(&["monitor", "--once", "--json", "--server", &server.url()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: StatsReport = serde_json::from_str(&stdout(&out)).expect("a stats report");
    let login = report
        .policies
        .iter()
        .find(|p| p.name == "login")
        .expect("policy login");
    assert_eq!(
        (login.decisions.allowed_total, login.decisions.denied_total),
        (3, 3)
    );
    assert_eq!(login.top_denied[0].key, "user:mallory");
    let emails = &report.queues[0];
    assert_eq!(
        (
            emails.stats.name.as_str(),
            emails.stats.waiting,
            emails.stats.delayed
        ),
        ("emails", 5, 1)
    );
}

#[test]
fn once_against_a_closed_port_exits_1_naming_the_server() {
    let closed = free_port();
    let url = format!("http://{closed}");
    let out = tollgate(&["monitor", "--once", "--server", &url]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!(
            "error: cannot reach the tollgate server at {url}: "
        )),
        "{err}"
    );
    assert!(err.to_lowercase().contains("refused"), "{err}");
    assert!(stdout(&out).is_empty());
}

/// A server that answers every request with `response`, as raw HTTP.
fn garbage_server(response: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut seen = Vec::new();
            let mut buf = [0u8; 1024];
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            let _ = stream.write_all(response.as_bytes());
        }
    });
    addr
}

#[test]
fn once_against_garbage_exits_1_naming_the_problem() {
    let cases = [
        (
            "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: 18\r\nconnection: close\r\n\r\n<html>hello</html>",
            "answered something that is not JSON",
            "<html>hello</html>",
        ),
        (
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 15\r\nconnection: close\r\n\r\n{\"status\":\"ok\"}",
            "answered JSON that is not a tollgate stats report",
            "missing field",
        ),
        (
            "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 8\r\nconnection: close\r\n\r\noverload",
            "answered 503 Service Unavailable to GET /v1/stats",
            "overload",
        ),
        (
            "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            "answered 404 Not Found",
            "without /v1/stats",
        ),
    ];
    for (response, problem, detail) in cases {
        let addr = garbage_server(response);
        let url = format!("http://{addr}");
        let out = tollgate(&["monitor", "--once", "--server", &url]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains(&format!("the server at {url} {problem}")),
            "{err}"
        );
        assert!(err.contains(detail), "{err}");
    }
}

#[test]
fn bad_flags_exit_2() {
    for (args, message) in [
        (&["monitor", "--interval", "2x"][..], "\"2x\""),
        (&["monitor", "--interval", "5ms"], "at least 100 ms"),
        (
            &["monitor", "--once", "--server", "not a url"],
            "\"not a url\"",
        ),
        (&["monitor", "--json"], "--once"),
    ] {
        let out = tollgate(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn the_live_view_needs_a_terminal() {
    // stdout is a pipe here: the live view refuses, rather than fill the pipe with escapes.
    let out = tollgate(&["monitor", "--server", "http://127.0.0.1:9"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("use --once"), "{}", stderr(&out));
    assert!(stdout(&out).is_empty());
}

#[test]
fn once_sends_the_admin_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("tollgate.yaml");
    std::fs::write(
        &config,
        "admin_token: s3cret\npolicies:\n  login: {rate: 2/min}\n",
    )
    .expect("write config");
    let server = spawn(&config);
    let url = server.url();

    let out = tollgate(&["monitor", "--once", "--server", &url]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("answered 401 Unauthorized"), "{err}");
    assert!(err.contains("--token or TOLLGATE_TOKEN"), "{err}");

    let out = tollgate(&["monitor", "--once", "--server", &url, "--token", "s3cret"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("tollgate "), "{}", stdout(&out));
}
