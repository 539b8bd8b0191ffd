//! One master of a real 3-master Redis Cluster killed under load, behind the failure guard:
//! the keys of its slots are answered within the call timeout by the failure policy, and the
//! keys of the other masters go on being decided by Redis, exactly.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::limit;
use tollgate_core::{Algorithm, Limit, Store as _};
use tollgate_redis::guard::{GuardConfig, Guarded, OnStoreFailure, Source};
use tollgate_redis::keys::slot;
use tollgate_redis::{RedisConfig, RedisStore};
use tollgate_testkit::redis::RedisCluster;
use tollgate_testkit::redis::resp::query;

/// The guard's call timeout.
const TIMEOUT: Duration = Duration::from_millis(250);
/// How much later than the timeout an answer may come on a busy 2-core machine.
const SLACK: Duration = Duration::from_millis(300);

/// Tasks checking at once.
const TASKS: usize = 8;

/// One check of the load.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Index into the keys.
    key: usize,
    /// Sent after the kill returned.
    after_kill: bool,
    /// Sent before the kill started.
    before_kill: bool,
    /// When it was sent, from the start of the load.
    at: Duration,
    took: Duration,
    allowed: bool,
    remaining: u64,
    source: Source,
}

type Store = Guarded<RedisStore>;

async fn guarded(cluster: &RedisCluster, on_failure: OnStoreFailure) -> Arc<Store> {
    let config = RedisConfig::parse(&cluster.url())
        .expect("url")
        .connect_timeout(Duration::from_secs(5))
        .command_timeout(TIMEOUT);
    let store = RedisStore::connect(&config).await.expect("connects");
    let guard = GuardConfig {
        on_failure,
        call_timeout: TIMEOUT,
        breaker_per_slot: true,
        ..GuardConfig::default()
    };
    Arc::new(Guarded::new(store, guard))
}

/// Runs `tasks` tasks checking `keys` round-robin until `stop`, and kills the master on
/// `victim` at `kill_at`.
async fn load_and_kill(
    cluster: &mut RedisCluster,
    store: &Arc<Store>,
    keys: &Arc<Vec<(String, Limit)>>,
    victim: u16,
    kill_at: Duration,
    stop: Duration,
) -> Vec<Sample> {
    let started = Instant::now();
    let killing = Arc::new(std::sync::OnceLock::<Instant>::new());
    let killed = Arc::new(std::sync::OnceLock::<Instant>::new());
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (store, keys) = (store.clone(), keys.clone());
        let (killing, killed) = (killing.clone(), killed.clone());
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut n = t;
            while started.elapsed() < stop && samples.len() < 100_000 {
                n += 1;
                let key = n % keys.len();
                let (name, l) = &keys[key];
                let before_kill = killing.get().is_none();
                let sent = Instant::now();
                let after_kill = killed.get().is_some_and(|k| sent > *k);
                let (d, source) = store
                    .check_with_source(name, l, 1)
                    .await
                    .expect("the guard always answers a check");
                samples.push(Sample {
                    key,
                    after_kill,
                    before_kill,
                    at: sent - started,
                    took: sent.elapsed(),
                    allowed: d.allowed,
                    remaining: d.remaining,
                    source,
                });
            }
            samples
        }));
    }
    tokio::time::sleep_until((started + kill_at).into()).await;
    let _ = killing.set(Instant::now());
    cluster.kill(victim).expect("kill");
    let _ = killed.set(Instant::now());
    let mut samples = Vec::new();
    for task in tasks {
        samples.extend(task.await.expect("task"));
    }
    samples
}

/// 30 keys over the 3 masters: 10 with room to spare, 10 at 40 an hour (pressed to their
/// limit), 10 strict at 1 an hour; and the master each lands on.
fn keys(cluster: &RedisCluster) -> (Arc<Vec<(String, Limit)>>, Vec<u16>) {
    let keys: Vec<(String, Limit)> = (0..30)
        .map(|i| {
            let l = match i % 3 {
                0 => limit("1000000/h", Algorithm::FixedWindow, None),
                1 => limit("40/h", Algorithm::SlidingWindow, None),
                _ => limit("1/h", Algorithm::Strict, None),
            };
            (format!("user:{i}"), l)
        })
        .collect();
    let owner: Vec<u16> = keys
        .iter()
        .map(|(k, _)| cluster.port_of_slot(slot(k)).expect("owner"))
        .collect();
    let ports: BTreeSet<u16> = owner.iter().copied().collect();
    assert_eq!(ports.len(), 3, "the keys cover every master");
    (Arc::new(keys), owner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_master_fails_only_its_own_keys_over_to_the_policy() {
    // Without full coverage, the surviving masters keep serving their slots once the dead
    // one is marked failed (the default stops the whole cluster: see the next test).
    let mut cluster = RedisCluster::start_with(3, &["--cluster-require-full-coverage", "no"])
        .expect("a 3-master cluster starts");
    let store = guarded(&cluster, OnStoreFailure::Deny).await;
    let (keys, owner) = keys(&cluster);
    let victim = owner[0];
    // Past the cluster-node-timeout (2 s), when the others mark the dead master as failed.
    let samples = load_and_kill(
        &mut cluster,
        &store,
        &keys,
        victim,
        Duration::from_millis(800),
        Duration::from_millis(5000),
    )
    .await;
    // The run went on past the moment the others marked the dead master as failed.
    let survivor = owner
        .iter()
        .find(|&&p| p != victim)
        .copied()
        .expect("a survivor");
    // (Polled: on a busy machine the gossip may take longer than the node timeout.)
    let marked_failed = || {
        let nodes = query(survivor, &["CLUSTER", "NODES"]).expect("CLUSTER NODES");
        nodes
            .text()
            .unwrap_or_default()
            .lines()
            .find(|l| l.contains(&format!(":{victim}@")))
            .map(str::to_string)
            .expect("the dead master is listed")
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut line = marked_failed();
    while !line.contains("master,fail ") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        line = marked_failed();
    }
    assert!(line.contains("master,fail "), "{line}");
    // The dead master's slots are the ones whose breakers are open; the store's own breaker
    // (and PING, which redis-rs does not send to every master) did not notice.
    let dead_slots: BTreeSet<u16> = (0..keys.len())
        .filter(|&k| owner[k] == victim)
        .map(|k| slot(&keys[k].0))
        .collect();
    let health = store.health();
    assert!(
        (1..=dead_slots.len() as u64).contains(&health.open_slots),
        "{health:?}"
    );
    store.ping().await.expect("PING still answered");

    let dead = |s: &Sample| owner[s.key] == victim;
    let slowest = samples.iter().map(|s| s.took).max().unwrap_or_default();
    let (after, alive_after): (Vec<&Sample>, Vec<&Sample>) = (
        samples.iter().filter(|s| s.after_kill && dead(s)).collect(),
        samples
            .iter()
            .filter(|s| s.after_kill && !dead(s))
            .collect(),
    );
    let by_store = alive_after
        .iter()
        .filter(|s| s.source == Source::Store)
        .count();
    eprintln!(
        "{} checks; after the kill {} on the dead master's keys, {} on the others ({} decided \
         by Redis); slowest {slowest:?}; health {:?}",
        samples.len(),
        after.len(),
        alive_after.len(),
        by_store,
        store.health()
    );
    assert!(slowest < TIMEOUT + SLACK, "a check took {slowest:?}");
    assert!(
        after.len() > 10 && alive_after.len() > 100,
        "too little load"
    );
    // Every check on the dead master's keys: the deny policy's answer.
    for s in &after {
        assert_eq!(s.source, Source::Fallback(OnStoreFailure::Deny), "{s:?}");
        assert!(!s.allowed, "{s:?}");
    }
    // The others: decided by Redis, and exactly (no key over its limit, each admission a
    // distinct count). On a busy 2-core machine a live master may answer one check later than
    // the call timeout, and the guard then answers for it; that is the timeout doing its job.
    // What the dead master must not cause is a fast failure (an error or an open breaker) on
    // another master's key, nor a stall of every key: at most one timed-out check per task.
    let live_fallbacks: Vec<&&Sample> = alive_after
        .iter()
        .filter(|s| s.source != Source::Store)
        .collect();
    assert!(
        live_fallbacks.iter().all(|s| s.took >= TIMEOUT) && live_fallbacks.len() <= TASKS,
        "checks of live masters' keys fell back: {live_fallbacks:?}"
    );
    let mut remaining: HashMap<usize, Vec<u64>> = HashMap::new();
    for s in samples
        .iter()
        .filter(|s| s.source == Source::Store && s.allowed)
    {
        remaining.entry(s.key).or_default().push(s.remaining);
    }
    for (key, (name, l)) in keys.iter().enumerate() {
        let mut seen = remaining.remove(&key).unwrap_or_default();
        let admitted = seen.len() as u64;
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(
            seen.len() as u64,
            admitted,
            "{name}: a count was given twice"
        );
        assert!(
            admitted <= l.capacity(),
            "{name} ({l}): {admitted} admitted"
        );
        if owner[key] != victim {
            // A timed-out check may have been admitted by Redis, unseen here.
            let timed_out = live_fallbacks.iter().filter(|s| s.key == key).count() as u64;
            assert!(
                admitted + timed_out >= l.capacity().min(40),
                "{name} ({l}): {admitted}"
            );
        }
    }
    assert!(
        samples
            .iter()
            .any(|s| dead(s) && s.before_kill && s.source == Source::Store),
        "the dead master's keys were decided by Redis before the kill"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_full_coverage_required_the_whole_cluster_stops_once_the_master_is_failed() {
    // Redis's default: once the dead master is marked failed (cluster-node-timeout, 2 s
    // here), the surviving masters refuse every key with CLUSTERDOWN until it is back.
    let mut cluster = RedisCluster::start(3).expect("a 3-master cluster starts");
    let store = guarded(&cluster, OnStoreFailure::Allow).await;
    let (keys, owner) = keys(&cluster);
    let victim = owner[0];
    let kill_at = Duration::from_millis(800);
    let samples = load_and_kill(
        &mut cluster,
        &store,
        &keys,
        victim,
        kill_at,
        // Not longer: each load task stops at 100,000 checks, which a fast machine reaches in
        // a few seconds once every check falls back (a 7.5 s run left no late checks).
        Duration::from_millis(5500),
    )
    .await;
    let slowest = samples.iter().map(|s| s.took).max().unwrap_or_default();
    assert!(slowest < TIMEOUT + SLACK, "a check took {slowest:?}");
    let alive = |s: &&Sample| owner[s.key] != victim && s.after_kill;
    let served = samples
        .iter()
        .filter(alive)
        .filter(|s| s.source == Source::Store)
        .map(|s| s.at)
        .max()
        .expect("the others served after the kill");
    let late: Vec<&Sample> = samples
        .iter()
        .filter(alive)
        .filter(|s| s.at > kill_at + Duration::from_millis(4000))
        .collect();
    eprintln!(
        "the other masters' keys were last decided by Redis {:?} after the kill; {} checks \
         in the last 0.7 s; health {:?}",
        served - kill_at,
        late.len(),
        store.health()
    );
    assert!(!late.is_empty(), "too little load at the end");
    for s in &late {
        assert_eq!(s.source, Source::Fallback(OnStoreFailure::Allow), "{s:?}");
        assert!(s.allowed, "the allow policy admits: {s:?}");
    }
    for s in samples
        .iter()
        .filter(|s| s.after_kill && owner[s.key] == victim)
    {
        assert_eq!(s.source, Source::Fallback(OnStoreFailure::Allow), "{s:?}");
    }
}
