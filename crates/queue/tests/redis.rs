//! The conformance suite on a real redis-server (started by the test on a free port), and
//! what only Redis can show: durability across a restart, a flushed script cache, a Cluster.

mod conformance;

use std::sync::Arc;
use std::time::Duration;

use tollgate_queue::{NewTask, QueueSpec, QueueStore, RedisQueues};
use tollgate_testkit::redis::{RedisCluster, RedisServer};

async fn open(server: &RedisServer) -> Arc<dyn QueueStore> {
    Arc::new(RedisQueues::open(&server.url()).await.expect("connect"))
}

macro_rules! on_redis {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let server = RedisServer::start().expect("redis-server");
            conformance::$name(open(&server).await).await;
        }
    )*};
}

on_redis!(
    lifecycle,
    priorities_then_fifo,
    strict_spacing,
    retries_back_off_then_dead_letter,
    expired_leases_come_back,
    heartbeats_keep_the_lease,
    delayed_tasks_wait,
    bad_input_is_refused,
    idle_empty_queues_expire,
    nothing_is_lost_under_concurrency,
    ack_and_reserve_chains,
    concurrent_chains_share_out_every_task,
    due_while_leased,
    worker_processes_make_a_fleet,
);

/// With AOF (fsync always), a Redis killed and restarted has every task, lease and count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_redis_with_aof_loses_nothing() {
    let mut server = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"])
        .expect("redis-server");
    let store = open(&server).await;
    let spec = QueueSpec::new("1000/1s".parse().expect("rate"))
        .name("durable")
        .burst(100);
    store.create(spec).await.expect("create");
    for n in 0..50 {
        let task = NewTask::json(n.to_string())
            .expect("payload")
            .priority(n % 3);
        store.push("durable", task).await.expect("push");
    }
    let lease = conformance::take(&store, "durable", Duration::from_secs(5)).await;
    let before = store.stats("durable").await.expect("stats");
    server.restart().expect("restart");
    let store = open(&server).await;
    let after = store.stats("durable").await.expect("the queue survives");
    assert_eq!(
        (after.waiting, after.in_flight, after.pushed, after.started),
        (49, 1, 50, 1)
    );
    assert_eq!(after.waiting_by_priority, before.waiting_by_priority);
    store.ack(&lease).await.expect("the lease survives too");
}

/// Scripts come back by themselves after `SCRIPT FLUSH` (or a Redis that lost them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flushed_script_cache_is_reloaded() {
    let server = RedisServer::start().expect("redis-server");
    let store = open(&server).await;
    store
        .create(QueueSpec::new("5/1s".parse().expect("rate")).name("f"))
        .await
        .expect("create");
    let client = redis::Client::open(server.url()).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("conn");
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut conn)
        .await
        .expect("flush");
    store
        .push("f", NewTask::json("1").expect("payload"))
        .await
        .expect("push after a flush");
    assert_eq!(store.stats("f").await.expect("stats").waiting, 1);
}

/// On a Cluster each queue lives in one slot (its name is the hash tag), so every script runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_work_on_a_cluster() {
    let cluster = RedisCluster::start(3).expect("cluster");
    let store: Arc<dyn QueueStore> =
        Arc::new(RedisQueues::open(&cluster.url()).await.expect("connect"));
    for name in ["alpha", "beta", "gamma", "delta"] {
        let spec = QueueSpec::new("100/1s".parse().expect("rate"))
            .name(name)
            .burst(10);
        store.create(spec).await.expect("create");
        store
            .push(name, NewTask::json("{}").expect("payload"))
            .await
            .expect("push");
        let lease = conformance::take(&store, name, Duration::from_secs(5)).await;
        store.ack(&lease).await.expect("ack");
    }
    assert_eq!(store.list().await.expect("list").len(), 4);
}
