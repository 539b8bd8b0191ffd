//! `tollgate check` against a server started in this process: its output and exit status.

mod common;

use std::sync::Arc;

use assert_cmd::Command;
use serde_json::Value;
use tollgate::memory::MemoryStore;
use tollgate_server::{Config, Service};

/// A server on a free port, alive as long as its runtime.
struct Server {
    _runtime: tokio::runtime::Runtime,
    url: String,
}

fn server() -> Server {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let config = Config::parse(
        "policies:\n  tiny: {rate: 1/min, description: one a minute}\n",
        "test",
    )
    .expect("config");
    let service = Arc::new(Service::new(Arc::new(MemoryStore::new()), config));
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    runtime.spawn(async move { axum::serve(listener, tollgate_server::http::app(service)).await });
    Server {
        _runtime: runtime,
        url: format!("http://{addr}"),
    }
}

/// Runs `tollgate check ARGS` against `url`; returns (status, stdout, stderr).
fn check(url: &str, args: &[&str]) -> (i32, String, String) {
    let output = Command::cargo_bin("tollgate")
        .expect("the tollgate binary")
        .arg("check")
        .args(args)
        .env("TOLLGATE_SERVER", url)
        .output()
        .expect("run tollgate");
    (
        output.status.code().expect("an exit code, not a signal"),
        String::from_utf8(output.stdout).expect("utf-8 stdout"),
        String::from_utf8(output.stderr).expect("utf-8 stderr"),
    )
}

#[test]
fn allowed_exits_0_and_denied_exits_1() {
    let s = server();
    let (code, out, err) = check(&s.url, &["user:1", "--rate", "2/min"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("allowed: 1 of 2 remaining, full again in "),
        "{out}"
    );
    assert!(out.ends_with(" ms\n"), "{out}");
    check(&s.url, &["user:1", "--rate", "2/min"]);
    let (code, out, err) = check(&s.url, &["user:1", "--rate", "2/min"]);
    assert_eq!(code, 1, "{err}");
    assert!(out.starts_with("denied: retry after "), "{out}");
    let ms: u64 = out
        .trim()
        .trim_start_matches("denied: retry after ")
        .trim_end_matches(" ms")
        .parse()
        .expect("a number of ms");
    assert!((20_000..=30_000).contains(&ms), "{out}");
    assert!(err.is_empty(), "{err}");
}

#[test]
fn policies_bursts_and_costs_are_sent() {
    let s = server();
    let (code, out, err) = check(&s.url, &["k", "--policy", "tiny"]);
    assert_eq!(
        (code, out.as_str()),
        (0, "allowed: 0 of 1 remaining, full again in 60000 ms\n"),
        "{err}"
    );
    let (code, _, _) = check(&s.url, &["k", "--policy", "tiny"]);
    assert_eq!(code, 1);
    let (code, out, err) = check(
        &s.url,
        &[
            "b",
            "--rate",
            "10/s",
            "--algorithm",
            "gcra",
            "--burst",
            "4",
            "--cost",
            "3",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("allowed: 1 of 4 remaining"), "{out}");
    // --server wins over the environment.
    let (code, _, err) = check(
        "http://127.0.0.1:1",
        &["c", "--rate", "1/s", "--server", &s.url],
    );
    assert_eq!(code, 0, "{err}");
}

#[test]
fn json_prints_the_servers_decision() {
    let s = server();
    let (code, out, err) = check(&s.url, &["j", "--rate", "1/min", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).expect("JSON on stdout");
    assert_eq!(v["allowed"], true);
    assert_eq!(v["limit"], 1);
    assert_eq!(v["remaining"], 0);
    assert_eq!(v["retry_after_ms"], 0);
    assert_eq!(v["policy"], "inline");
    assert!(
        v["reset_after_ms"].as_u64().is_some_and(|ms| ms > 59_000),
        "{v}"
    );

    let (code, out, _) = check(&s.url, &["j", "--rate", "1/min", "--json"]);
    assert_eq!(code, 1);
    let v: Value = serde_json::from_str(&out).expect("JSON on stdout");
    assert_eq!(v["allowed"], false);
}

#[test]
fn server_errors_exit_2_with_the_code_and_message() {
    let s = server();
    let (code, out, err) = check(&s.url, &["k", "--rate", "5/60x"]);
    assert_eq!(code, 2);
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("invalid_rate"), "{err}");
    assert!(err.contains("\"5/60x\""), "{err}");

    let (code, _, err) = check(&s.url, &["k", "--policy", "gold"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("unknown_policy") && err.contains("404"),
        "{err}"
    );

    let (code, out, _) = check(&s.url, &["k", "--rate", "1/s", "--cost", "2", "--json"]);
    assert_eq!(code, 2);
    let v: Value = serde_json::from_str(&out).expect("the error JSON on stdout");
    assert_eq!(v["error"]["code"], "cost_exceeds_limit");
}

#[test]
fn an_unreachable_server_exits_2_naming_the_url() {
    let url = format!("http://{}", common::unused_address());
    let (code, out, err) = check(&url, &["k", "--rate", "1/s"]);
    assert_eq!(code, 2);
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains(&format!("cannot reach the tollgate server at {url}")),
        "{err}"
    );

    let (code, _, err) = check("not a url", &["k", "--rate", "1/s"]);
    assert_eq!(code, 2);
    assert!(err.contains("not a URL"), "{err}");
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["k"][..],
        &["k", "--rate", "1/s", "--policy", "p"],
        &["k", "--policy", "p", "--burst", "3"],
        &["k", "--rate", "1/s", "--cost", "-1"],
    ] {
        let (code, _, err) = check("http://127.0.0.1:1", args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.starts_with("error:"), "{args:?}: {err}");
    }
    let output = Command::cargo_bin("tollgate")
        .expect("binary")
        .args(["check", "--help"])
        .output()
        .expect("run");
    let help = String::from_utf8(output.stdout).expect("utf-8");
    for needle in [
        "--rate",
        "--policy",
        "TOLLGATE_SERVER",
        "Exit status: 0 allowed, 1 denied",
    ] {
        assert!(help.contains(needle), "{needle} not in\n{help}");
    }
}
