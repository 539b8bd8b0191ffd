//! What the Redis tests share: a real redis-server per test, a store on it, and a raw
//! connection to look at what the store wrote.
#![allow(dead_code)]

use std::time::Duration;

use tollgate_core::{Algorithm, Limit};
use tollgate_redis::{RedisConfig, RedisStore};
use tollgate_testkit::redis::RedisServer;

pub fn limit(rate: &str, algorithm: Algorithm, burst: Option<u64>) -> Limit {
    Limit::new(rate.parse().expect("rate"), algorithm, burst).expect("limit")
}

pub fn server() -> RedisServer {
    RedisServer::start().expect("redis-server starts")
}

pub fn config(server: &RedisServer) -> RedisConfig {
    RedisConfig::parse(&server.url()).expect("url")
}

pub async fn store(server: &RedisServer) -> RedisStore {
    RedisStore::connect(&config(server))
        .await
        .expect("store connects")
}

/// A server and a store on it.
pub async fn started() -> (RedisServer, RedisStore) {
    let server = server();
    let store = store(&server).await;
    (server, store)
}

/// A plain connection, to inspect and tamper with what the store keeps.
pub async fn raw(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("raw connection")
}

pub async fn cmd<T: redis::FromRedisValue>(
    conn: &mut redis::aio::MultiplexedConnection,
    args: &[&str],
) -> redis::RedisResult<T> {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query_async(conn).await
}

/// Redis's clock, in µs.
pub async fn redis_time(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
    let t: (u64, u64) = cmd(conn, &["TIME"]).await.expect("TIME");
    t.0 * 1_000_000 + t.1
}

pub const SHORT: Duration = Duration::from_millis(250);
