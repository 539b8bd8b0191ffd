//! The store through real Redis Sentinels: checks on the master they name, a failover
//! followed (the master killed, the replica promoted), a master demoted in place, and a master
//! name the sentinels do not know.

mod common;

use std::time::{Duration, Instant};

use common::limit;
use tollgate_core::{Algorithm, Check, Error};
use tollgate_redis::{RedisConfig, RedisStore};
use tollgate_testkit::redis::RedisSentinel;
use tollgate_testkit::redis::resp::{Reply, query};

/// The most a failover may take, from the master's death to checks succeeding again.
const FAILOVER_BOUND: Duration = Duration::from_secs(10);

async fn started() -> (RedisSentinel, RedisStore) {
    let redis = RedisSentinel::start().expect("master, replica and sentinels start");
    let config = RedisConfig::parse(&redis.url())
        .expect("url")
        // These tests are about the topology, not the timeouts, on a machine that may be
        // busy starting other tests' servers.
        .connect_timeout(Duration::from_secs(5))
        .command_timeout(Duration::from_secs(1));
    let store = RedisStore::connect(&config).await.expect("store connects");
    (redis, store)
}

/// Checks `key` until a check succeeds; asserts that every failure on the way is transient
/// and that it takes less than [`FAILOVER_BOUND`]. Returns the time taken and the failures.
async fn until_served(
    store: &RedisStore,
    key: &str,
    l: &tollgate_core::Limit,
    since: Instant,
) -> (Duration, usize) {
    let mut failures = 0;
    loop {
        match store.check(key, l, 1).await {
            Ok(_) => return (since.elapsed(), failures),
            Err(e) => {
                assert!(e.is_transient(), "{e}");
                assert_eq!(e.code(), "store_unavailable");
                assert!(
                    since.elapsed() < FAILOVER_BOUND,
                    "still failing after {:?}: {e}",
                    since.elapsed()
                );
                failures += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

#[tokio::test]
async fn checks_go_to_the_master_the_sentinels_name() {
    let (redis, store) = started().await;
    // A day's window: no rollover between the checks below.
    let l = limit("3/d", Algorithm::FixedWindow, None);
    for remaining in [2, 1, 0] {
        let d = store.check("user:1", &l, 1).await.expect("decides");
        assert!(d.allowed);
        assert_eq!(d.remaining, remaining);
    }
    assert!(!store.check("user:1", &l, 1).await.expect("decides").allowed);
    let other = limit("5/min", Algorithm::Gcra, None);
    let batch = [
        Check::new("user:2", other, 1),
        Check::new("global", other, 2),
    ];
    assert!(store.check_all(&batch).await.expect("decides").allowed);
    store.ping().await.expect("the master answers");
    // The state is on the master.
    let exists = query(redis.master_port(), &["EXISTS", "tollgate:{user:1}:f"]).expect("EXISTS");
    assert_eq!(exists, Reply::Int(1));
    assert!(store.reset("user:1").await.expect("reset"));
    assert!(store.check("user:1", &l, 1).await.expect("decides").allowed);
}

#[tokio::test]
async fn an_unknown_master_name_is_a_clear_error_at_connect() {
    let redis = RedisSentinel::start().expect("sentinels start");
    let config = RedisConfig::parse(&redis.url_for("nosuch")).expect("url");
    let started = Instant::now();
    let err = RedisStore::connect(&config)
        .await
        .expect_err("unknown master");
    assert!(started.elapsed() < config.connect_timeout);
    assert!(
        matches!(
            err,
            Error::Store {
                transient: false,
                ..
            }
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("know no master named \"nosuch\""), "{text}");
    for port in redis.sentinel_ports() {
        assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_master_is_replaced_by_the_promoted_replica() {
    let (mut redis, store) = started().await;
    let l = limit("10/min", Algorithm::SlidingWindow, None);
    for _ in 0..4 {
        assert!(store.check("user:1", &l, 1).await.expect("decides").allowed);
    }
    // Give replication a chance to catch up, so the state may survive (WAIT returns how many
    // replicas acknowledged; asynchronous replication promises nothing).
    let acked = query(redis.master_port(), &["WAIT", "1", "1000"]).expect("WAIT");
    let old_master = redis.master_port();

    redis.kill_master();
    let killed = Instant::now();
    let (took, failures) = until_served(&store, "user:2", &l, killed).await;
    eprintln!(
        "checks served again {took:?} after the master was killed ({failures} transient failures)"
    );
    assert!(took < FAILOVER_BOUND);
    redis
        .wait_for_failover(Duration::from_secs(5))
        .expect("the sentinels agree on the replica");
    assert_ne!(redis.master_port(), old_master);

    // The state written before the failover survives when the replica had it (not asserted:
    // replication is asynchronous).
    let d = store.check("user:1", &l, 0).await.expect("decides");
    eprintln!(
        "replica acknowledged before the kill: {acked:?}; user:1 remaining after failover: {} \
         (6 = the state survived, 10 = it was lost)",
        d.remaining
    );
    // New state goes to the new master.
    assert!(store.check("user:3", &l, 1).await.expect("decides").allowed);
    let exists = query(redis.master_port(), &["EXISTS", "tollgate:{user:3}:s"]).expect("EXISTS");
    assert_eq!(exists, Reply::Int(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_without_a_crash_is_followed() {
    let (redis, store) = started().await;
    let l = limit("100/min", Algorithm::Gcra, None);
    assert!(store.check("k", &l, 1).await.expect("decides").allowed);
    let (old, new) = (redis.master_port(), redis.replica_port());
    // The old master stays up and, until the sentinels demote it seconds later, keeps
    // accepting writes: nothing fails, and only asking the sentinels reveals the change.
    let asked = Instant::now();
    let reply = query(
        redis.sentinel_ports()[0],
        &["SENTINEL", "FAILOVER", "mymaster"],
    )
    .expect("SENTINEL FAILOVER");
    assert_eq!(reply, Reply::Status("OK".into()));
    for n in 0.. {
        assert!(
            asked.elapsed() < FAILOVER_BOUND,
            "still not on the new master"
        );
        // A fresh key that the new master has and the old one does not was written on the
        // new master (once promoted, it no longer replicates from the old one).
        let key = format!("k{n}");
        if store.check(&key, &l, 1).await.is_ok() {
            let redis_key = format!("tollgate:{{{key}}}:g");
            let exists = |port| query(port, &["EXISTS", &redis_key]).expect("EXISTS");
            if exists(new) == Reply::Int(1) && exists(old) == Reply::Int(0) {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "on the new master {:?} after SENTINEL FAILOVER",
        asked.elapsed()
    );
}
