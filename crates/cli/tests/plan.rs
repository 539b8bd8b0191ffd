//! `tollgate plan`: the example and feasible cases, text and JSON, exit codes.

use assert_cmd::Command;
use serde_json::Value;

fn plan(args: &[&str]) -> (i32, String, String) {
    let out = Command::cargo_bin("tollgate")
        .expect("binary")
        .arg("plan")
        .args(args)
        .output()
        .expect("run");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_example_cannot_finish_and_says_what_would() {
    let args = [
        "--tasks",
        "108",
        "--rate",
        "20/min",
        "--service-time",
        "10s",
        "--deadline",
        "3m",
        "--max-workers",
        "10",
    ];
    let (code, out, _) = plan(&args);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("INFEASIBLE"), "{out}");
    assert!(out.contains("5min 31s"), "earliest finish: {out}");
    assert!(out.contains("38/min"), "rate that works: {out}");
    let mut json_args = args.to_vec();
    json_args.push("--json");
    let (code, out, _) = plan(&json_args);
    assert_eq!(code, 1);
    let v: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["feasible"], false);
    assert_eq!(v["earliest_finish_ms"], 331_000);
    assert_eq!(v["rate_needed"], "38/min");
    assert_eq!(v["deadline_needed_ms"], 331_000);
}

#[test]
fn feasible_plans_exit_zero_with_workers_and_finish() {
    let (code, out, _) = plan(&[
        "--tasks",
        "108",
        "--rate",
        "60/min",
        "--service-time",
        "10s",
        "--deadline",
        "3m",
        "--json",
    ]);
    assert_eq!(code, 0, "{out}");
    let v: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(
        (
            v["feasible"].as_bool(),
            v["workers"].as_u64(),
            v["finish_ms"].as_u64()
        ),
        (Some(true), Some(7), Some(162_000))
    );
    let (code, out, _) = plan(&["--tasks", "10", "--rate", "5/1s", "--service-time", "100ms"]);
    assert_eq!(code, 0);
    assert!(out.contains("feasible: run 1 workers"), "{out}");
}

#[test]
fn bad_input_exits_two_naming_it() {
    let (code, _, err) = plan(&["--tasks", "1", "--rate", "0/s", "--service-time", "1s"]);
    assert_eq!(code, 2);
    assert!(err.contains("\"0/s\""), "{err}");
    let (code, _, err) = plan(&["--tasks", "1", "--rate", "1/s", "--service-time", "soon"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--service-time") && err.contains("\"soon\""),
        "{err}"
    );
    let (code, _, err) = plan(&[
        "--tasks",
        "1",
        "--rate",
        "1/s",
        "--service-time",
        "1s",
        "--max-workers",
        "0",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("max_workers"), "{err}");
}
