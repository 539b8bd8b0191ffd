//! The store on a real Redis Cluster of three masters: every algorithm on keys spread over
//! every node, batches within one slot, the refusal of batches across slots, scripts flushed
//! from every node, and the independent checker over many concurrent tasks.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Model, limit};
use tollgate_core::{Algorithm, Check, Limit};
use tollgate_redis::keys::{slot, state_key};
use tollgate_redis::{RedisConfig, RedisStore};
use tollgate_testkit::redis::RedisCluster;
use tollgate_testkit::redis::resp::{Reply, query};
use tollgate_testkit::{Admission, check};

async fn started() -> (RedisCluster, RedisStore) {
    let cluster = RedisCluster::start(3).expect("a 3-master cluster starts");
    let store = store(&cluster).await;
    (cluster, store)
}

async fn store(cluster: &RedisCluster) -> RedisStore {
    let config = RedisConfig::parse(&cluster.url())
        .expect("url")
        // These tests are about the topology, not the timeouts, on a machine that may be
        // busy starting other tests' servers.
        .connect_timeout(Duration::from_secs(5))
        .command_timeout(Duration::from_secs(1));
    RedisStore::connect(&config).await.expect("store connects")
}

/// `count` keys named `PREFIX:i`, and the port of the node each lands on; asserts they cover
/// every node.
fn spread_keys(cluster: &RedisCluster, prefix: &str, count: usize) -> Vec<(String, u16)> {
    let keys: Vec<(String, u16)> = (0..count)
        .map(|i| {
            let key = format!("{prefix}:{i}");
            let port = cluster.port_of_slot(slot(&key)).expect("slot owner");
            (key, port)
        })
        .collect();
    let nodes: BTreeSet<u16> = keys.iter().map(|(_, p)| *p).collect();
    assert_eq!(nodes.len(), 3, "{count} keys should land on all 3 nodes");
    keys
}

/// Slow rates, so that no key's state expires (and no fixed window rolls over, bar a test
/// running across midnight UTC) while a busy machine runs the test.
fn algorithms() -> [Limit; 4] {
    [
        limit("5/h", Algorithm::Gcra, Some(3)),
        limit("4/h", Algorithm::Strict, None),
        limit("4/h", Algorithm::SlidingWindow, None),
        limit("4/d", Algorithm::FixedWindow, None),
    ]
}

#[tokio::test]
async fn slots_computed_here_are_the_clusters() {
    let cluster = RedisCluster::start(3).expect("cluster");
    let port = cluster.ports()[0];
    for key in ["user:1", "{user:1}:search", "}x", "a{}b", "x{y}z", "ключ"] {
        let redis_key = state_key(key, tollgate_core::Family::SlidingWindow);
        let reply = query(port, &["CLUSTER", "KEYSLOT", &redis_key]).expect("KEYSLOT");
        assert_eq!(reply, Reply::Int(i64::from(slot(key))), "{key:?}");
    }
}

#[tokio::test]
async fn every_algorithm_decides_on_every_node() {
    let (cluster, store) = started().await;
    let steps = [1, 1, 0, 2, 1, 1, 3, 0];
    let mut all_keys = Vec::new();
    for l in algorithms() {
        // Keys of their own: gcra and strict share a bucket.
        let keys = spread_keys(&cluster, &l.algorithm().to_string(), 24);
        for (key, port) in &keys {
            let mut model = Model::of(&l);
            for (i, &cost) in steps.iter().enumerate() {
                // strict admits one at a time.
                let cost = cost.min(l.capacity());
                let t = store.check_timed(key, &l, cost).await.expect("decides");
                let expected = model.apply(&l, t.at_us, cost);
                assert_eq!(t.decision, expected, "{l} on {key} (node {port}) step {i}");
            }
            // The state is on the node that owns the key's slot, and nowhere else.
            let family = l.algorithm().family();
            let redis_key = state_key(key, family);
            for node in cluster.ports() {
                let exists = query(node, &["EXISTS", &redis_key]).expect("EXISTS");
                match exists {
                    Reply::Int(n) => assert_eq!(n == 1, node == *port, "{redis_key} on {node}"),
                    // Another node's answer to a key it does not own is MOVED.
                    Reply::Error(e) => assert!(e.starts_with("MOVED") && node != *port, "{e}"),
                    other => panic!("EXISTS answered {other:?}"),
                }
            }
        }
        all_keys.push((l, keys));
    }
    // One DEL on the owning node forgets the key under every family.
    for (l, keys) in &all_keys {
        for (key, _) in keys {
            assert!(store.reset(key).await.expect("reset"), "{key} had state");
            assert!(!store.reset(key).await.expect("reset"), "{key} is gone");
            let peek = store.check(key, l, 0).await.expect("peek");
            assert_eq!(peek.remaining, l.capacity(), "{key}");
        }
    }
    store.ping().await.expect("every primary answers PING");
}

#[tokio::test]
async fn a_batch_within_one_slot_is_all_or_nothing() {
    let (_cluster, store) = started().await;
    // Slow rates: no window rolls over and no token comes back while the test runs.
    let global = limit("3/d", Algorithm::FixedWindow, None);
    let search = limit("10/h", Algorithm::SlidingWindow, None);
    let per_user = limit("10/h", Algorithm::Gcra, Some(10));
    for user in 0..6 {
        let (a, b, c) = (
            format!("{{user:{user}}}:global"),
            format!("{{user:{user}}}:search"),
            format!("{{user:{user}}}"),
        );
        assert_eq!(slot(&a), slot(&b));
        let batch = [
            Check::new(&a, global, 1),
            Check::new(&b, search, 2),
            Check::new(&c, per_user, 1),
        ];
        for n in 0..3 {
            let d = store.check_all(&batch).await.expect("one slot");
            assert!(d.allowed, "user {user} batch {n}");
            assert_eq!(d.decisions[0].remaining, 2 - n);
        }
        let d = store.check_all(&batch).await.expect("one slot");
        assert!(!d.allowed, "the global limit is spent");
        assert!(d.retry_after_ms > 0);
        // Nothing of the denied batch was counted on the other limits.
        assert_eq!(
            store.check(&b, &search, 0).await.expect("peek").remaining,
            4
        );
        assert_eq!(
            store.check(&c, &per_user, 0).await.expect("peek").remaining,
            7
        );
    }
}

#[tokio::test]
async fn a_batch_across_slots_is_refused_before_it_is_sent() {
    let (_cluster, store) = started().await;
    let l = limit("5/min", Algorithm::Gcra, None);
    let (a, b) = ("user:1", "user:2");
    assert_ne!(slot(a), slot(b));
    let err = store
        .check_all(&[Check::new(a, l, 1), Check::new(b, l, 1)])
        .await
        .expect_err("cross-slot");
    // Redis's own CROSSSLOT would be a store_unavailable error: this one is ours.
    assert_eq!(err.code(), "invalid_key");
    assert!(!err.is_transient());
    let text = err.to_string();
    assert!(
        text.contains("a batch on a Redis Cluster must keep its keys in one hash slot")
            && text.contains("{user:1}:global")
            && text.contains(&format!("\"user:2\" in slot {}", slot(b))),
        "{text}"
    );
    // Nothing was counted.
    assert_eq!(store.check(a, &l, 0).await.expect("peek").remaining, 5);
    assert_eq!(store.check(b, &l, 0).await.expect("peek").remaining, 5);
}

#[tokio::test]
async fn scripts_reload_after_script_flush_on_every_node() {
    let (cluster, store) = started().await;
    let keys = spread_keys(&cluster, "user", 24);
    let l = limit("5/min", Algorithm::SlidingWindow, None);
    for round in 1..=3u64 {
        cluster
            .on_every_node(&["SCRIPT", "FLUSH"])
            .expect("SCRIPT FLUSH");
        for (key, port) in &keys {
            let d = store.check(key, &l, 1).await.expect("reloads");
            assert_eq!(d.remaining, 5 - round, "{key} on {port}");
        }
        cluster
            .on_every_node(&["SCRIPT", "FLUSH"])
            .expect("SCRIPT FLUSH");
        for (key, _) in &keys {
            let tagged = format!("{{{key}}}:other");
            let batch = [Check::new(key, l, 0), Check::new(&tagged, l, 1)];
            assert!(store.check_all(&batch).await.expect("reloads").allowed);
        }
    }
    cluster
        .on_every_node(&["SCRIPT", "FLUSH"])
        .expect("SCRIPT FLUSH");
    for (key, _) in &keys {
        assert!(store.reset(key).await.expect("reloads"));
    }
}

/// Two keys on different nodes, each checked alone and together with a tagged companion.
fn hammered(cluster: &RedisCluster) -> Vec<(String, Limit)> {
    let keys = spread_keys(cluster, "user", 24);
    let (a, port_a) = &keys[0];
    let (b, _) = keys
        .iter()
        .find(|(_, p)| p != port_a)
        .expect("a key on another node");
    vec![
        (a.clone(), limit("50/s", Algorithm::Gcra, Some(10))),
        (
            format!("{{{a}}}:w"),
            limit("20/100ms", Algorithm::SlidingWindow, None),
        ),
        (b.clone(), limit("10/50ms", Algorithm::FixedWindow, None)),
        (
            format!("{{{b}}}:s"),
            limit("100/s", Algorithm::Strict, None),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_on_two_stores_never_break_a_guarantee() {
    let cluster = RedisCluster::start(3).expect("cluster");
    let stores = [store(&cluster).await, store(&cluster).await];
    let limits = Arc::new(hammered(&cluster));
    let log: Arc<Mutex<HashMap<usize, Vec<Admission>>>> = Arc::default();
    let deadline = Instant::now() + Duration::from_millis(1200);
    let mut tasks = Vec::new();
    for n in 0..12usize {
        let (store, limits, log) = (stores[n % 2].clone(), limits.clone(), log.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = n * 7919 + 1;
            while Instant::now() < deadline {
                i = i
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                // Pairs (0, 1) and (2, 3) share a slot: a batch takes one pair.
                let pick = (i >> 33) % limits.len();
                let (key, l) = &limits[pick];
                let cost = 1 + (i >> 40) as u64 % l.capacity().min(3);
                let mut admitted = Vec::new();
                if (i >> 50).is_multiple_of(4) {
                    let other = pick ^ 1;
                    let (key2, l2) = &limits[other];
                    let batch = [Check::new(key, *l, cost), Check::new(key2, *l2, 1)];
                    let t = store.check_all_timed(&batch).await.expect("decides");
                    if t.decision.allowed {
                        admitted.push((
                            pick,
                            Admission {
                                t: t.at_us * 1000,
                                cost,
                            },
                        ));
                        admitted.push((
                            other,
                            Admission {
                                t: t.at_us * 1000,
                                cost: 1,
                            },
                        ));
                    }
                } else {
                    let t = store.check_timed(key, l, cost).await.expect("decides");
                    if t.decision.allowed {
                        admitted.push((
                            pick,
                            Admission {
                                t: t.at_us * 1000,
                                cost,
                            },
                        ));
                    }
                }
                let mut log = log.lock().expect("log");
                for (k, a) in admitted {
                    log.entry(k).or_default().push(a);
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    let log = log.lock().expect("log");
    for (k, (key, l)) in limits.iter().enumerate() {
        let admitted = log.get(&k).map_or(&[][..], Vec::as_slice);
        if let Err(v) = check(l, admitted) {
            panic!("{key} ({l}): {v}");
        }
        let total: u64 = admitted.iter().map(|a| a.cost).sum();
        assert!(total >= l.capacity(), "{key}: only {total} admitted");
    }
}
