//! `tollgate replay` end to end: the binary, its streams and its exit status.

use std::io::{Read, Write};
use std::process::{Command as StdCommand, Stdio};

use assert_cmd::Command;
use serde_json::Value;

fn tollgate() -> Command {
    Command::cargo_bin("tollgate").expect("the tollgate binary")
}

/// Runs `tollgate replay ARGS` on `input` (stdin), returning (status, stdout, stderr).
fn replay(args: &[&str], input: &str) -> (i32, String, String) {
    let output = tollgate()
        .arg("replay")
        .args(args)
        .write_stdin(input)
        .output()
        .expect("run tollgate");
    (
        output.status.code().expect("an exit code, not a signal"),
        String::from_utf8(output.stdout).expect("utf-8 stdout"),
        String::from_utf8(output.stderr).expect("utf-8 stderr"),
    )
}

/// The expected output line: `request` is (t_ms, key, cost) and `decision` is (allowed,
/// limit, remaining, retry_after_ms, reset_after_ms).
fn row(request: (u64, &str, u64), decision: (bool, u64, u64, u64, u64)) -> String {
    let (t_ms, key, cost) = request;
    let (allowed, limit, remaining, retry, reset) = decision;
    format!(
        "{{\"t_ms\":{t_ms},\"key\":\"{key}\",\"cost\":{cost},\"allowed\":{allowed},\"limit\":{limit},\
         \"remaining\":{remaining},\"retry_after_ms\":{retry},\"reset_after_ms\":{reset}}}\n"
    )
}

fn assert_output(args: &[&str], input: &str, expected: &[String]) {
    let (code, stdout, stderr) = replay(args, input);
    assert_eq!(code, 0, "stderr: {stderr}");
    assert_eq!(stdout, expected.concat(), "stderr: {stderr}");
}

#[test]
fn gcra_by_hand() {
    // 2/s: T = 500ms, burst 2, τ = 1000ms. Allowed iff max(TAT, now) + T ≤ now + τ.
    let expected = [
        // TAT 0 → 500. remaining = (0 + 1000 − 500) / 500 = 1, reset = 500 − 0.
        row((0, "a", 1), (true, 2, 1, 0, 500)),
        // TAT 500 → 1000 ≤ 1000. remaining 0, reset 1000.
        row((0, "a", 1), (true, 2, 0, 0, 1000)),
        // 1000 + 500 > 1000: denied; retry = 1500 − 1000 = 500, reset = 1000 − 0.
        row((0, "a", 1), (false, 2, 0, 500, 1000)),
        // max(1000, 500) + 500 = 1500 ≤ 500 + 1000. TAT 1500, reset 1000.
        row((500, "a", 1), (true, 2, 0, 0, 1000)),
        // 1500 + 500 = 2000 ≤ 1000 + 1000. TAT 2000, reset 1000.
        row((1000, "a", 1), (true, 2, 0, 0, 1000)),
        // Idle again: max(2000, 2500) + 500 = 3000; remaining (3500 − 3000) / 500 = 1.
        row((2500, "a", 1), (true, 2, 1, 0, 500)),
        // Another key has its own bucket; cost 2 uses all of it: TAT 2500 + 1000.
        row((2500, "b", 2), (true, 2, 0, 0, 1000)),
    ];
    assert_output(
        &["--rate", "2/s"],
        "0,a\n0,a\n0,a\n500,a\n1000,a\n2500,a\n2500,b,2\n",
        &expected,
    );
}

#[test]
fn gcra_with_a_burst() {
    // 10/s with burst 3: T = 100ms, τ = 300ms.
    let expected = [
        row((1000, "k", 1), (true, 3, 2, 0, 100)),
        row((1000, "k", 2), (true, 3, 0, 0, 300)),
        // TAT 1300 + 100 − (1000 + 300) = 100.
        row((1000, "k", 1), (false, 3, 0, 100, 300)),
        row((1100, "k", 1), (true, 3, 0, 0, 300)),
    ];
    assert_output(
        &["--rate", "10/s", "--burst", "3"],
        "1000,k\n1000,k,2\n1000,k\n1100,k\n",
        &expected,
    );
}

#[test]
fn strict_spaces_requests() {
    // 4/s strict: T = 250ms, burst 1.
    let expected = [
        row((1000, "k", 1), (true, 1, 0, 0, 250)),
        // TAT 1250 + 250 − (1000 + 250) = 250.
        row((1000, "k", 1), (false, 1, 0, 250, 250)),
        row((1100, "k", 1), (false, 1, 0, 150, 150)),
        row((1250, "k", 1), (true, 1, 0, 0, 250)),
    ];
    assert_output(
        &["--rate", "4/s", "--algorithm", "strict"],
        "1000,k\n1000,k\n1100,k\n1250,k\n",
        &expected,
    );
}

#[test]
fn sliding_window_counts_the_last_period() {
    // 3 per 1000ms in (now − 1000ms, now].
    let expected = [
        row((10_000, "k", 1), (true, 3, 2, 0, 1000)),
        row((10_100, "k", 2), (true, 3, 0, 0, 1000)),
        // Full: the admission at 10000 leaves at 11000; the newest at 11100.
        row((10_200, "k", 1), (false, 3, 0, 800, 900)),
        // The admission at 10000 has left: 2 in the window.
        row((11_000, "k", 1), (true, 3, 0, 0, 1000)),
    ];
    assert_output(
        &["--rate", "3/1000ms", "--algorithm", "sliding-window"],
        "10000,k\n10100,k,2\n10200,k\n11000,k\n",
        &expected,
    );
}

#[test]
fn fixed_window_aligns_to_the_epoch() {
    // 2/s: windows [1000, 2000), [2000, 3000).
    let expected = [
        row((1500, "k", 1), (true, 2, 1, 0, 500)),
        row((1900, "k", 1), (true, 2, 0, 0, 100)),
        row((1999, "k", 1), (false, 2, 0, 1, 1)),
        row((2000, "k", 1), (true, 2, 1, 0, 1000)),
    ];
    assert_output(
        &["--rate", "2/s", "--algorithm", "fixed-window"],
        "1500,k\n1900,k\n1999,k\n2000,k\n",
        &expected,
    );
}

#[test]
fn comments_blank_lines_and_crlf_are_accepted() {
    let input = "# t_ms,key,cost\r\n\r\n0,a\r\n   \n#0,a,2\n0,a,1\r\n\n";
    let expected = [
        row((0, "a", 1), (true, 2, 1, 0, 500)),
        row((0, "a", 1), (true, 2, 0, 0, 1000)),
    ];
    assert_output(&["--rate", "2/s"], input, &expected);
}

#[test]
fn reads_stdin_with_a_dash_or_no_file_and_reads_a_file() {
    let input = "0,a\n0,a\n0,a\n";
    let (code, with_dash, _) = replay(&["--rate", "2/s", "-"], input);
    assert_eq!(code, 0);
    let (code, without, _) = replay(&["--rate", "2/s"], input);
    assert_eq!(code, 0);
    assert_eq!(with_dash, without);
    assert_eq!(with_dash.lines().count(), 3);

    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    file.write_all(input.as_bytes()).expect("write");
    let path = file.path().to_str().expect("utf-8 path");
    let (code, from_file, _) = replay(&["--rate", "2/s", path], "");
    assert_eq!(code, 0);
    assert_eq!(from_file, with_dash);
}

#[test]
fn text_summary_on_stderr() {
    let input = "0,a\n0,a\n0,a\n0,b\n0,b\n0,b\n0,b\n0,c\n";
    let (code, stdout, stderr) = replay(&["--rate", "2/s"], input);
    assert_eq!(code, 0);
    assert_eq!(stdout.lines().count(), 8);
    assert_eq!(
        stderr,
        "requests: 8\nallowed:  5\ndenied:   3 (37.50%)\ntop denied keys:\n  \"b\"  2\n  \"a\"  1\n"
    );
}

#[test]
fn json_summary_is_pure_json() {
    let mut input = String::new();
    for key in 0..12 {
        // Key k is sent 2 + k times at once: k denials.
        for _ in 0..2 + key {
            input.push_str(&format!("0,key{key}\n"));
        }
    }
    let (code, stdout, stderr) = replay(&["--rate", "2/s", "--json-summary"], &input);
    assert_eq!(code, 0);
    assert_eq!(stdout.lines().count(), 90);
    let summary: Value = serde_json::from_str(&stderr).expect("stderr is one JSON object");
    assert_eq!(summary["requests"], 90);
    assert_eq!(summary["allowed"], 24);
    assert_eq!(summary["denied"], 66);
    let top = summary["top_denied"].as_array().expect("an array");
    assert_eq!(top.len(), 10);
    assert_eq!(top[0], serde_json::json!({"key": "key11", "denied": 11}));
    assert_eq!(top[9], serde_json::json!({"key": "key2", "denied": 2}));
    let keys: Vec<&str> = top.iter().filter_map(|t| t["key"].as_str()).collect();
    assert!(
        !keys.contains(&"key1") && !keys.contains(&"key0"),
        "{keys:?}"
    );
    for line in stdout.lines() {
        let row: Value = serde_json::from_str(line).expect("each output line is JSON");
        let fields: Vec<&str> = row
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(fields.len(), 8);
    }
}

#[test]
fn help_documents_the_contract() {
    let output = tollgate().args(["replay", "--help"]).output().expect("run");
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).expect("utf-8");
    for needle in [
        "--rate",
        "--algorithm",
        "--burst",
        "--json-summary",
        "2> summary.json",
        "t_ms,key[,cost]",
    ] {
        assert!(help.contains(needle), "{needle} missing from:\n{help}");
    }
}

/// Runs a bad input and checks exit 2 and an error naming `needles`.
fn assert_rejected(args: &[&str], input: &str, needles: &[&str]) {
    let (code, _, stderr) = replay(args, input);
    assert_eq!(code, 2, "{args:?} {input:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for needle in needles {
        assert!(
            stderr.contains(needle),
            "{needle:?} missing from {stderr:?}"
        );
    }
}

#[test]
fn bad_flags_exit_2() {
    assert_rejected(&["--rate", "5"], "", &["invalid rate \"5\""]);
    assert_rejected(&["--rate", "0/s"], "", &["invalid rate \"0/s\""]);
    assert_rejected(
        &["--rate", "2/s", "--algorithm", "leaky"],
        "",
        &["unknown algorithm \"leaky\""],
    );
    assert_rejected(
        &["--rate", "2/s", "--burst", "0"],
        "",
        &["error: invalid burst 0"],
    );
    assert_rejected(
        &["--rate", "2/s", "--algorithm", "strict", "--burst", "3"],
        "",
        &["invalid burst 3"],
    );
    assert_rejected(
        &[
            "--rate",
            "2/s",
            "--algorithm",
            "fixed-window",
            "--burst",
            "2",
        ],
        "",
        &["invalid burst 2"],
    );
    assert_rejected(&["--rate", "2/s", "--burst", "x"], "", &["--burst", "'x'"]);
    assert_rejected(&[], "", &["--rate"]);
}

#[test]
fn malformed_lines_exit_2_naming_the_line() {
    let long_key = "k".repeat(1025);
    let cases: Vec<(String, &str, Vec<&str>)> = vec![
        ("5".into(), "line 2", vec!["found 1 field", "\"5\""]),
        (
            "1,a,2,3".into(),
            "line 2",
            vec!["found 4 fields", "\"1,a,2,3\""],
        ),
        (
            "1.5,a".into(),
            "line 2",
            vec!["\"1.5\"", "not a whole number"],
        ),
        (
            "1,a,x".into(),
            "line 2",
            vec!["cost \"x\"", "not a whole number"],
        ),
        ("-5,a".into(), "line 2", vec!["\"-5\"", "negative"]),
        ("1,a,-1".into(), "line 2", vec!["cost \"-1\"", "negative"]),
        (
            "99999999999999999999,a".into(),
            "line 2",
            vec!["\"99999999999999999999\"", "too large"],
        ),
        (
            "9223372036855,a".into(),
            "line 2",
            vec!["\"9223372036855\"", "too large (at most 9223372036854)"],
        ),
        (
            "1,a,18446744073709551616".into(),
            "line 2",
            vec!["\"18446744073709551616\"", "too large"],
        ),
        ("1,,2".into(), "line 2", vec!["key is empty", "\"1,,2\""]),
        (
            format!("1,{long_key}"),
            "line 2",
            vec!["1025 bytes", "\"1,kkkk"],
        ),
        (
            "5,a\n3,a".into(),
            "line 3",
            vec!["t_ms 3 goes back", "previous request was at 5"],
        ),
        (
            "5,a,3".into(),
            "line 2",
            vec!["cost 3 exceeds", "capacity 2", "\"a\""],
        ),
    ];
    for (bad, line, needles) in cases {
        let input = format!("4,ok\n{bad}\n9,never\n");
        let (code, stdout, stderr) = replay(&["--rate", "2/s"], &input);
        assert_eq!(code, 2, "{bad:?}: {stderr}");
        assert!(
            stderr.starts_with(&format!("error: {line}: ")),
            "{bad:?}: {stderr}"
        );
        for needle in needles {
            assert!(
                stderr.contains(needle),
                "{bad:?}: {needle:?} missing from {stderr:?}"
            );
        }
        assert!(
            !stdout.contains("never"),
            "replay stops at the bad line: {stdout}"
        );
        assert!(
            stdout.starts_with("{\"t_ms\":4,\"key\":\"ok\""),
            "earlier lines stay: {stdout}"
        );
    }
}

#[test]
fn a_missing_file_exits_2() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("no-such-trace.csv");
    let path = path.to_str().expect("utf-8 path");
    let (code, stdout, stderr) = replay(&["--rate", "2/s", path], "");
    assert_eq!(code, 2);
    assert!(stdout.is_empty());
    assert!(stderr.starts_with("error: cannot open"), "{stderr}");
    assert!(stderr.contains("no-such-trace.csv"), "{stderr}");
}

#[test]
fn a_closed_stdout_ends_quietly() {
    // Far more output than a pipe buffers, so the writer meets the closed pipe.
    let mut trace = tempfile::NamedTempFile::new().expect("temp file");
    let mut text = String::new();
    for t in 0..200_000 {
        text.push_str(&format!("{t},user:{}\n", t % 97));
    }
    trace.write_all(text.as_bytes()).expect("write");
    let bin = assert_cmd::cargo::cargo_bin("tollgate");
    let mut child = StdCommand::new(bin)
        .args(["replay", "--rate", "5/s"])
        .arg(trace.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut first = [0u8; 64];
    stdout.read_exact(&mut first).expect("some output");
    drop(stdout);
    let output = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.is_empty(), "quiet: {stderr}");
}
