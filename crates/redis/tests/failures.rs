//! What the store does when Redis is not there, goes away, comes back, or refuses us.

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::{config, limit, started_with_default_timeouts};
use tollgate_core::{Algorithm, Check};
use tollgate_redis::{RedisConfig, RedisStore};
use tollgate_testkit::redis::RedisServer;

/// How much later than its timeout a call may answer on a loaded 2-core machine.
const SLACK: Duration = Duration::from_secs(1);

#[tokio::test]
async fn a_killed_redis_is_a_transient_error_and_a_restarted_one_serves_again() {
    let (mut server, store) = started_with_default_timeouts().await;
    let l = limit("100/s", Algorithm::Gcra, None);
    assert!(store.check("k", &l, 1).await.expect("up").allowed);

    server.kill();
    for _ in 0..3 {
        let started = Instant::now();
        let err = store.check("k", &l, 1).await.expect_err("Redis is gone");
        assert!(started.elapsed() < RedisConfig::DEFAULT_COMMAND_TIMEOUT + SLACK);
        assert_eq!(err.code(), "store_unavailable");
        assert!(err.is_transient(), "{err}");
        assert!(
            err.to_string()
                .contains(&format!("127.0.0.1:{}", server.port())),
            "{err}"
        );
    }
    let err = store.ping().await.expect_err("down");
    assert!(err.is_transient());
    let batch = [Check::new("k", l, 1)];
    assert!(
        store
            .check_all(&batch)
            .await
            .expect_err("down")
            .is_transient()
    );

    server.restart().expect("restarts on the same port");
    let restarted = Instant::now();
    loop {
        match store.check("k", &l, 1).await {
            Ok(d) => {
                assert!(d.allowed);
                break;
            }
            Err(e) => {
                assert!(e.is_transient(), "{e}");
                assert!(
                    restarted.elapsed() < Duration::from_secs(5),
                    "still failing 5 s after the restart: {e}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    // The restarted Redis lost the scripts; they reload by themselves.
    store.ping().await.expect("up");
    assert!(store.check_all(&batch).await.expect("up").allowed);
}

#[tokio::test]
async fn nothing_listening_fails_fast_at_connect() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let config = RedisConfig::parse(&format!("redis://127.0.0.1:{port}")).expect("url");
    let started = Instant::now();
    let err = RedisStore::connect(&config).await.expect_err("refused");
    assert!(started.elapsed() < config.connect_timeout + SLACK);
    assert_eq!(err.code(), "store_unavailable");
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains(&port.to_string()), "{err}");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_at_connect() {
    // A socket that accepts (the kernel completes the handshake) but never speaks Redis.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let config = RedisConfig::parse(&format!("redis://127.0.0.1:{port}"))
        .expect("url")
        .connect_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let err = RedisStore::connect(&config).await.expect_err("silent");
    assert!(
        started.elapsed() < Duration::from_millis(300) + SLACK,
        "{:?}",
        started.elapsed()
    );
    assert!(err.is_transient(), "{err}");
    drop(listener);
}

#[tokio::test]
async fn a_missing_or_wrong_password_is_a_clear_error() {
    let server = RedisServer::start_with(&["--requirepass", "s3cret"]).expect("starts");
    let port = server.port();
    // Without a password Redis says NOAUTH; a wrong one fails the handshake, which redis-rs
    // reports as "Password authentication failed".
    for (url, says) in [
        (format!("redis://127.0.0.1:{port}"), "NOAUTH"),
        (
            format!("redis://:wrong@127.0.0.1:{port}"),
            "authentication failed",
        ),
        (
            format!("redis://default:wrong@127.0.0.1:{port}"),
            "authentication failed",
        ),
    ] {
        let started = Instant::now();
        let err = RedisStore::open(&url).await.expect_err("refused");
        assert!(started.elapsed() < RedisConfig::DEFAULT_CONNECT_TIMEOUT + SLACK);
        assert!(!err.is_transient(), "{url}: {err}");
        let text = err.to_string();
        assert!(text.contains("refused the credentials"), "{text}");
        assert!(text.to_lowercase().contains(&says.to_lowercase()), "{text}");
        assert!(!text.contains("wrong@"), "the password is masked: {text}");
    }
    let store = RedisStore::open(&format!("redis://:s3cret@127.0.0.1:{port}/2"))
        .await
        .expect("the right password");
    store.ping().await.expect("serving");
    assert_eq!(store.target(), format!("redis://:****@127.0.0.1:{port}/2"));
}

#[tokio::test]
async fn sentinels_or_cluster_nodes_not_listening_fail_fast_at_connect() {
    for url in [
        "redis+sentinel://127.0.0.1:1,127.0.0.1:2/mymaster",
        "redis+cluster://127.0.0.1:1,127.0.0.1:2",
    ] {
        let started = Instant::now();
        let err = RedisStore::open(url).await.expect_err("nothing listens");
        assert!(started.elapsed() < RedisConfig::DEFAULT_CONNECT_TIMEOUT + SLACK);
        assert_eq!(err.code(), "store_unavailable");
        assert!(err.is_transient(), "{url}: {err}");
        assert!(err.to_string().contains("127.0.0.1:"), "{err}");
    }
    let err = RedisStore::open("http://x").await.expect_err("bad url");
    assert!(err.to_string().contains("expected redis://"), "{err}");
}

#[tokio::test]
async fn a_slow_redis_is_a_timeout_within_the_command_timeout() {
    let server = RedisServer::start_with(&["--enable-debug-command", "yes"]).expect("starts");
    let store = RedisStore::connect(&config(&server).command_timeout(Duration::from_millis(100)))
        .await
        .expect("connects");
    let mut raw = common::raw(&server).await;
    // DEBUG SLEEP blocks the whole server, as a long-running command would.
    let blocker = tokio::spawn(async move {
        let _: redis::RedisResult<String> = common::cmd(&mut raw, &["DEBUG", "SLEEP", "0.6"]).await;
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let l = limit("5/s", Algorithm::Gcra, None);
    let started = Instant::now();
    let err = store.check("k", &l, 1).await.expect_err("blocked");
    assert!(started.elapsed() < Duration::from_millis(100) + SLACK);
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains("within 100 ms"), "{err}");
    blocker.await.expect("blocker ends");
    // Serving again; on a starved machine one call may still miss its 100 ms.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match store.check("k", &l, 1).await {
            Ok(d) => break assert!(d.allowed),
            Err(e) if e.is_transient() && Instant::now() < deadline => {}
            Err(e) => panic!("not serving again: {e}"),
        }
    }
}
