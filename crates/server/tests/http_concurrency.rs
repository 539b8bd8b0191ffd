//! 64 clients, each on its own connection, hammer three keys through the HTTP API. The store
//! records the time of every admission as it decided it (its clock is read under the shard
//! lock), and the independent checker finds no interval that breaks a CONTRACT §3 guarantee.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tollgate_core::{Check, Decision, Error, Limit, MultiDecision, Store};
use tollgate_memory::MemoryStore;
use tollgate_server::http::app;
use tollgate_server::{Config, Service};
use tollgate_testkit::{Admission, RecordingClock, check, last_now};

/// The in-memory store, recording each admission with the time it was decided at.
struct Recorded {
    inner: MemoryStore<RecordingClock>,
    admissions: Mutex<HashMap<String, Vec<Admission>>>,
}

impl Recorded {
    fn new() -> Recorded {
        Recorded {
            inner: MemoryStore::builder()
                .clock(RecordingClock::default())
                .build(),
            admissions: Mutex::default(),
        }
    }
}

impl Store for Recorded {
    async fn check(&self, key: &str, limit: &Limit, cost: u64) -> Result<Decision, Error> {
        // `MemoryStore::check` is synchronous, so the clock it read under its lock was read
        // on this thread, and nothing else ran here since.
        let decision = self.inner.check(key, limit, cost)?;
        let t = last_now();
        if decision.allowed {
            let mut admissions = self.admissions.lock().expect("lock");
            admissions
                .entry(key.to_string())
                .or_default()
                .push(Admission { t, cost });
        }
        Ok(decision)
    }

    async fn check_all(&self, checks: &[Check<'_>]) -> Result<MultiDecision, Error> {
        self.inner.check_all(checks)
    }

    async fn reset(&self, key: &str) -> Result<(), Error> {
        self.inner.reset(key).map(|_| ())
    }

    async fn ping(&self) -> Result<(), Error> {
        Ok(())
    }
}

const CLIENTS: usize = 64;
const REQUESTS_PER_CLIENT: usize = 300;
const KEYS: [&str; 3] = ["alpha", "beta", "gamma"];

const CONFIG: &str = "
policies:
  bucket: {rate: 1000/1s, burst: 20}
  window: {rate: 20/50ms, algorithm: sliding-window}
";

/// What the clients saw: admitted cost per key, and how many requests were denied.
struct Seen {
    admitted: HashMap<String, u64>,
    denied: usize,
}

async fn hammer(policy: &'static str) -> (Arc<Recorded>, Limit, Seen) {
    let store = Arc::new(Recorded::new());
    let config = Config::parse(CONFIG, "test").expect("valid config");
    let limit = config.policies[policy].limit;
    let service = Arc::new(Service::new(store.clone(), config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app(service)).await });

    let start = Arc::new(tokio::sync::Barrier::new(CLIENTS));
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|client_no| {
            let (base, start) = (base.clone(), Arc::clone(&start));
            tokio::spawn(async move {
                // One client, one pool, one connection: 64 connections in all.
                let client = reqwest::Client::builder()
                    .pool_max_idle_per_host(1)
                    .build()
                    .expect("client");
                let warm = client.get(format!("{base}/healthz")).send().await;
                assert!(warm.expect("healthz").status().is_success());
                start.wait().await;
                let mut admitted: HashMap<String, u64> = HashMap::new();
                let mut denied = 0;
                for i in 0..REQUESTS_PER_CLIENT {
                    let key = KEYS[(i + client_no) % KEYS.len()];
                    let cost = 1 + u64::from(i % 4 == 0);
                    let resp = client
                        .post(format!("{base}/v1/check"))
                        .json(&json!({"key": key, "policy": policy, "cost": cost}))
                        .send()
                        .await
                        .expect("send");
                    assert_eq!(resp.status(), reqwest::StatusCode::OK);
                    let body: Value = resp.json().await.expect("JSON");
                    if body["allowed"] == true {
                        *admitted.entry(key.to_string()).or_default() += cost;
                    } else {
                        denied += 1;
                    }
                }
                (admitted, denied)
            })
        })
        .collect();

    let mut seen = Seen {
        admitted: HashMap::new(),
        denied: 0,
    };
    for task in tasks {
        let (admitted, denied) = task.await.expect("client task");
        for (key, cost) in admitted {
            *seen.admitted.entry(key).or_default() += cost;
        }
        seen.denied += denied;
    }
    (store, limit, seen)
}

async fn run(policy: &'static str) {
    let (store, limit, seen) = hammer(policy).await;
    let admissions = store.admissions.lock().expect("lock").clone();
    let total = CLIENTS * REQUESTS_PER_CLIENT;
    assert!(
        seen.denied > 0,
        "{policy}: nothing denied; the limit was never reached"
    );
    assert!(seen.denied < total, "{policy}: nothing admitted");
    for key in KEYS {
        let recorded = admissions.get(key).map_or(&[][..], Vec::as_slice);
        let cost: u64 = recorded.iter().map(|a| a.cost).sum();
        assert_eq!(
            Some(&cost),
            seen.admitted.get(key),
            "{policy} {key}: the clients saw other answers than the store gave"
        );
        // More than one bucketful or window's worth: the run crossed refills, so the
        // checker saw the limit's rate, not only its capacity.
        assert!(
            cost > limit.capacity(),
            "{policy} {key}: only {cost} admitted; the run was too short to test the rate"
        );
        if let Err(v) = check(&limit, recorded) {
            panic!("{policy} ({limit}) on {key}: {v}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_connections_never_break_gcra() {
    run("bucket").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_connections_never_break_the_sliding_window() {
    run("window").await;
}
