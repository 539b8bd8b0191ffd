//! `tollgate serve` on real `redis-server` processes: Redis killed under load and brought
//! back, two servers sharing one Redis under concurrent load, start-up with no Redis or with a
//! wrong password, and bad store URLs.
//!
//! Everything listens on 127.0.0.1; every loop is bounded in time and in count.

mod common;

use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{Load, MS, Sample, Server, check_body, limit, now_ns, tollgate, wait_for};
use tollgate::{Algorithm, Limit};
use tollgate_testkit::redis::RedisServer;

fn sleep_until(at: Instant) {
    thread::sleep(at.saturating_duration_since(Instant::now()));
}

/// Runs a command that must exit by itself within 10 s.
fn run(command: &mut Command) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{command:?} did not exit within 10 s");
        }
        thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

// ---------------------------------------------------------------------------------------------
// 1. Redis killed under load, then restarted.

const LIMITED: &str = r#"{"key":"limited","rate":"5/min"}"#;
/// Keys polled for Redis's return, one per poll (each fresh to Redis, which comes back
/// empty); enough for 2.4 s of polling.
const RECOVERY_KEYS: usize = 120;

fn recovery_check(i: usize) -> String {
    format!(r#"{{"key":"recovery:{i}","rate":"10/hour"}}"#)
}

/// `policy` is `deny` or `local`.
fn kill_redis_under_load(policy: &str) {
    let mut redis = RedisServer::start().expect("redis-server");
    let server = Server::start(
        &format!(
            "store: {}\non_store_failure: {policy}\nstore_timeout_ms: 100\n",
            redis.url()
        ),
        &[],
    );
    let d = server.check(r#"{"key":"warm-up","rate":"10/hour"}"#);
    assert_eq!(
        (d["allowed"].as_bool(), d["remaining"].as_u64()),
        (Some(true), Some(9))
    );
    assert_eq!(server.readyz().0, 200);

    // Threads 0-3 press a 5/min key; threads 4-7 each use a key that never runs out.
    let mut bodies = vec![LIMITED.to_string()];
    bodies.extend((0..4).map(|i| format!(r#"{{"key":"open:{i}","rate":"100000/s"}}"#)));
    let started = Instant::now();
    // Until 300 ms after the recovery, at most 5 s.
    let load = Load::start(
        &[server.http],
        &bodies,
        8,
        |t, _| if t < 4 { 0 } else { t - 3 },
        started + Duration::from_secs(5),
    );

    sleep_until(started + Duration::from_secs(1));
    // Whether the policy has decided anything yet (a Redis call over the timeout would have).
    let early_fallbacks = server.metric("tollgate_store_fallback_decisions_total");
    let killing = now_ns();
    redis.kill();
    let killed = now_ns();

    // The outage. Each recovery key is decided once by the policy now, so that a poll after
    // the restart can tell Redis's answer (remaining 9: Redis came back empty) from the
    // policy's (deny: not allowed; local: remaining 8).
    for i in 0..RECOVERY_KEYS {
        let d = server.check(&recovery_check(i));
        match policy {
            "deny" => assert_eq!(d["allowed"], false, "{d}"),
            _ => assert_eq!(
                (d["allowed"].as_bool(), d["remaining"].as_u64()),
                (Some(true), Some(9)),
                "{d}"
            ),
        }
    }
    let mut saw_open = false;
    let mut readyz_polls = 0;
    let restart_at = started + Duration::from_secs(2);
    while Instant::now() + Duration::from_millis(30) < restart_at {
        let (status, body) = server.readyz();
        assert_eq!(status, 503, "{body}");
        assert!(body["store"]["breaker"].is_string(), "{body}");
        assert!(body["error"]["message"].is_string(), "{body}");
        readyz_polls += 1;
        if !saw_open {
            saw_open = server.metric(r#"tollgate_store_breaker_state{state="open"}"#) == Some(1.0);
        }
        thread::sleep(Duration::from_millis(25));
    }
    assert!(readyz_polls > 0);
    assert!(
        saw_open,
        "the breaker was never seen open during the outage"
    );

    let restarting = now_ns();
    redis.restart().expect("restart redis-server");
    let restarted = Instant::now();
    let mut i = 0;
    let recovery = loop {
        assert!(
            i < RECOVERY_KEYS,
            "decisions did not come back from Redis within {:?} of its restart",
            restarted.elapsed()
        );
        let d = server.check(&recovery_check(i));
        i += 1;
        if d["allowed"] == true && d["remaining"] == 9 {
            break restarted.elapsed();
        }
        thread::sleep(Duration::from_millis(20));
    };
    let recovered = now_ns();
    thread::sleep(Duration::from_millis(300));
    let samples = load.stop();
    let unanswered = samples.iter().filter(|s| s.status != 200).count();
    assert_eq!(unanswered, 0, "checks without a 200 answer: {unanswered}");
    let outage: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.sent > killed && s.received < restarting)
        .collect();
    let max = samples
        .iter()
        .map(Sample::latency)
        .max()
        .unwrap_or_default();
    let max_in_outage = outage.iter().map(|s| s.latency()).max().unwrap_or_default();
    eprintln!(
        "[{policy}] {} checks, {} during the outage; max latency {max:?} ({max_in_outage:?} \
         during the outage); decisions back from Redis {recovery:?} after its restart",
        samples.len(),
        outage.len(),
    );
    assert!(max < Duration::from_secs(1), "a check took {max:?}");
    assert!(outage.len() > 20, "too little load during the outage");

    let limited_admitted = |from: &[&Sample]| {
        from.iter()
            .filter(|s| s.key == 0 && s.allowed == Some(true))
            .count()
    };
    match policy {
        "deny" => {
            let admitted: Vec<_> = outage.iter().filter(|s| s.allowed != Some(false)).collect();
            assert!(admitted.is_empty(), "admitted while down: {admitted:?}");
        }
        _ => {
            // Each server limits on its own, from a full bucket: the 5/min key admits again,
            // but at most 5, and then denies. Redis used up the key's 5 within the first
            // second, so whatever it admitted in this window came from the local store. The
            // local store answers as soon as Redis dies, which may be before `kill` returns:
            // count from when it was called.
            let window: Vec<&Sample> = samples
                .iter()
                .filter(|s| s.sent >= killing && s.received < restarting)
                .collect();
            let admitted = limited_admitted(&window);
            assert!(admitted <= 5, "{admitted} admitted");
            // At most 4 of the local 5 can go to checks sent before `killing` (4 threads
            // press the key), so at least one lands here if the local store was still full.
            if early_fallbacks == Some(0.0) {
                assert!(admitted >= 1, "the local store admitted nothing");
            }
            assert!(
                outage
                    .iter()
                    .any(|s| s.key == 0 && s.allowed == Some(false)),
                "the 5/min key was never denied during the outage"
            );
            let denied_open: Vec<_> = outage
                .iter()
                .filter(|s| s.key != 0 && s.allowed != Some(true))
                .collect();
            assert!(
                denied_open.is_empty(),
                "local decisions denied a key with room: {denied_open:?}"
            );
            assert!(outage.iter().any(|s| s.key != 0));
        }
    }
    // Over the whole run: 5 from Redis before, 5 locally during (local only), and 5 from the
    // emptied Redis after.
    let all: Vec<&Sample> = samples.iter().collect();
    let most = if policy == "deny" { 10 } else { 15 };
    assert!(limited_admitted(&all) <= most, "{}", limited_admitted(&all));
    // Decisions resumed under load, from Redis: an unlimited key is admitted again.
    assert!(
        samples
            .iter()
            .any(|s| s.sent > recovered && s.key != 0 && s.allowed == Some(true)),
        "no admission after recovery"
    );

    // The issue: "decisions are correct again within 1 s of Redis returning" (the breaker
    // probes every 500 ms; the first call after a restart is retried once if the connection
    // manager still holds the old refusal).
    assert!(
        recovery < Duration::from_millis(1000),
        "decisions came back from Redis only {recovery:?} after its restart"
    );
    let ready = wait_for(Duration::from_secs(3), || {
        let (status, body) = server.readyz();
        status == 200 && body["store"]["breaker"] == "closed"
    });
    assert!(ready.is_some(), "{:?}", server.readyz());
    let fallbacks = server
        .metric("tollgate_store_fallback_decisions_total")
        .unwrap_or(0.0);
    assert!(
        fallbacks >= outage.len() as f64,
        "{fallbacks} fallback decisions"
    );
}

#[test]
fn redis_killed_under_load_denies_within_the_timeout_and_recovers() {
    kill_redis_under_load("deny");
}

#[test]
fn redis_killed_under_load_limits_locally_and_recovers() {
    kill_redis_under_load("local");
}

// ---------------------------------------------------------------------------------------------
// 2. Two servers sharing one Redis.

#[test]
fn two_servers_sharing_one_redis_keep_every_guarantee_together() {
    let redis = RedisServer::start().expect("redis-server");
    // A generous timeout: a decision that falls back (deny) would only lower the admissions.
    let config = format!("store: {}\nstore_timeout_ms: 1000\n", redis.url());
    let servers = [Server::start(&config, &[]), Server::start(&config, &[])];
    let limits = [
        ("gcra", limit("200/1s", Algorithm::Gcra, Some(20))),
        (
            "sliding-window",
            limit("100/500ms", Algorithm::SlidingWindow, None),
        ),
        (
            "fixed-window",
            limit("100/500ms", Algorithm::FixedWindow, None),
        ),
    ];
    // Two keys per algorithm: key k is limits[k / 2].
    let keys: Vec<(String, Limit)> = (0..limits.len() * 2)
        .map(|k| {
            let (name, limit) = &limits[k / 2];
            (format!("{name}:{}", k % 2), *limit)
        })
        .collect();
    let bodies: Vec<String> = keys.iter().map(|(k, l)| check_body(k, l)).collect();
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.http).collect();
    let load = Load::start(
        &addrs,
        &bodies,
        16,
        |t, n| (t + n) % 6,
        Instant::now() + Duration::from_secs(4),
    );
    thread::sleep(Duration::from_secs(2));
    let samples = load.stop();
    let unanswered = samples.iter().filter(|s| s.status != 200).count();
    assert_eq!(unanswered, 0, "checks without a 200 answer: {unanswered}");
    assert!(samples.iter().all(|s| s.allowed.is_some()));
    for i in 0..servers.len() {
        let n = samples.iter().filter(|s| s.thread % 2 == i).count();
        assert!(n > 100, "server {i} answered only {n} checks");
    }

    // What the client sees of a decision: it was sent at s, answered at r, and Redis decided
    // it at some d in [s, r] (same host, same clock; s rounded down and r up to TIME's
    // microsecond). With L the longest r - s of an admitted check, d - s lies in [0, L] for
    // every admission. So checking the sent times s against a limit relaxed by L (by
    // `common::relaxed`, where the argument for each algorithm is) can never report a
    // violation the true times d did not commit.
    let admitted_latency = samples
        .iter()
        .filter(|s| s.allowed == Some(true))
        .map(|s| s.received - s.sent)
        .max()
        .expect("some admissions");
    let any_latency = samples
        .iter()
        .map(Sample::latency)
        .max()
        .unwrap_or_default();
    eprintln!(
        "{} checks in all; L = {:.3} ms (longest of any check {:?})",
        samples.len(),
        admitted_latency as f64 / MS as f64,
        any_latency
    );
    let l = admitted_latency;
    for (k, (key, limit)) in keys.iter().enumerate() {
        let mine: Vec<&Sample> = samples.iter().filter(|s| s.key == k).collect();
        let admitted: Vec<&Sample> = mine
            .iter()
            .copied()
            .filter(|s| s.allowed == Some(true))
            .collect();
        let denied = mine.len() - admitted.len();
        let count = limit.rate().count();
        let period = limit.rate().period_ns();
        let t = mine.iter().map(|s| s.received).max().unwrap_or(0)
            - mine.iter().map(|s| s.sent).min().unwrap_or(0);
        let (checked, relaxed) = common::relaxed(key, limit, &admitted, l);
        // About how many the limit allows in t.
        let most = match limit.algorithm() {
            Algorithm::Gcra => limit.burst() as f64 + (t * count) as f64 / period as f64,
            _ => count as f64 * t as f64 / period as f64,
        };
        eprintln!(
            "{key} ({limit}): {} admitted, {denied} denied in {:.0} ms; checked against \
             {relaxed} ({} admissions); the limit allows about {most:.0}",
            admitted.len(),
            t as f64 / MS as f64,
            checked.len()
        );
        if let Err(v) = tollgate_testkit::check(&relaxed, &checked) {
            panic!("{key}: {v}");
        }
        assert!(denied > 0, "{key} was never pressed");
        assert!(
            admitted.len() as f64 >= most / 2.0,
            "{key}: only {} admitted of about {most:.0} allowed",
            admitted.len()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 3-5. Start-up without Redis, with a wrong password, with a bad URL.

#[test]
fn starts_without_redis_and_uses_it_once_it_is_up() {
    // A port that a redis-server just held and nothing holds now.
    let mut redis = RedisServer::start().expect("redis-server");
    redis.kill();
    let url = redis.url();
    let spawned = Instant::now();
    let server = Server::start(&format!("store: {url}\non_store_failure: deny\n"), &[]);
    let took = spawned.elapsed();
    eprintln!("started without Redis in {took:?}");
    assert!(took < Duration::from_secs(5), "start-up took {took:?}");
    let err = server.stderr();
    assert!(
        err.lines()
            .any(|l| l.contains("ERROR") && l.contains(&url) && l.contains("Redis")),
        "{err}"
    );

    let d = server.check(r#"{"key":"early","rate":"3/min"}"#);
    assert_eq!(d["allowed"], false, "{d}");
    let (status, body) = server.readyz();
    assert_eq!(status, 503, "{body}");
    assert!(body["store"]["breaker"].is_string(), "{body}");

    redis.restart().expect("redis-server on the same port");
    let up = Instant::now();
    let mut i = 0;
    let key = loop {
        assert!(
            up.elapsed() < Duration::from_secs(10),
            "still not deciding with Redis {:?} after it started",
            up.elapsed()
        );
        let key = format!("late:{i}");
        i += 1;
        let d = server.check(&format!(r#"{{"key":"{key}","rate":"3/min"}}"#));
        if d["allowed"] == true && d["remaining"] == 2 {
            break key;
        }
        thread::sleep(Duration::from_millis(50));
    };
    eprintln!("decisions from Redis {:?} after it started", up.elapsed());
    for (allowed, remaining) in [(true, 1), (true, 0), (false, 0)] {
        let d = server.check(&format!(r#"{{"key":"{key}","rate":"3/min"}}"#));
        assert_eq!(
            (d["allowed"].as_bool(), d["remaining"].as_u64()),
            (Some(allowed), Some(remaining)),
            "{d}"
        );
    }
    let ready = wait_for(Duration::from_secs(3), || server.readyz().0 == 200);
    assert!(ready.is_some(), "{:?}", server.readyz());
}

/// Whether a message names an authentication failure: redis-rs's "Password authentication
/// failed" for a wrong password, Redis's `NOAUTH` for a missing one (or `WRONGPASS`).
fn names_authentication(text: &str) -> bool {
    ["WRONGPASS", "NOAUTH", "authentication", "Authentication"]
        .iter()
        .any(|word| text.contains(word))
}

#[test]
fn a_wrong_or_missing_password_is_reported_without_the_password() {
    let redis = RedisServer::start_with(&["--requirepass", "the-right-one"]).expect("redis-server");
    let wrong = "not-it-7f3a9c";
    let url = format!("redis://:{wrong}@127.0.0.1:{}/0", redis.port());
    let masked = format!("redis://:****@127.0.0.1:{}/0", redis.port());
    // The URL on the command line; the file only sets the policy.
    let server = Server::start("on_store_failure: deny\n", &["--store", &url]);
    let err = server.stderr();
    assert!(!err.contains(wrong), "the password is in the log:\n{err}");
    assert!(
        err.lines()
            .any(|l| l.contains("ERROR") && l.contains(&masked) && names_authentication(l)),
        "{err}"
    );
    let d = server.check(r#"{"key":"k","rate":"3/min"}"#);
    assert_eq!(d["allowed"], false, "{d}");
    let (status, body) = server.readyz();
    assert_eq!(status, 503, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(names_authentication(message), "{body}");
    assert!(!body.to_string().contains(wrong), "{body}");

    // No password at all: Redis answers NOAUTH.
    let server = Server::start(&format!("store: {}\n", redis.url()), &[]);
    let err = server.stderr();
    assert!(
        err.lines()
            .any(|l| l.contains("ERROR") && l.contains(&redis.url()) && l.contains("NOAUTH")),
        "{err}"
    );
    let (status, body) = server.readyz();
    assert_eq!(status, 503, "{body}");
    assert!(
        body["store"]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("NOAUTH")),
        "{body}"
    );
}

#[test]
fn a_bad_store_url_is_refused_with_the_url_quoted_and_its_password_masked() {
    let out = run(tollgate()
        .args(["serve", "--http", "127.0.0.1:0", "--store"])
        .arg("redis://:hunter2@127.0.0.1:notaport/0"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("\"redis://:****@127.0.0.1:notaport/0\""),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");

    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("tollgate.yaml");
    std::fs::write(
        &path,
        "store: redis://admin:hunter2@127.0.0.1:6379/notadb\n",
    )
    .expect("write");
    let out = run(tollgate()
        .args(["serve", "--http", "127.0.0.1:0", "--config"])
        .arg(&path));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("store: ") && err.contains("\"redis://admin:****@127.0.0.1:6379/notadb\""),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
}
