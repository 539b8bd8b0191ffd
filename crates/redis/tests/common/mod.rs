//! What the Redis tests share: a real redis-server per test, a store on it, and a raw
//! connection to look at what the store wrote.
#![allow(dead_code)]

use std::time::Duration;

use tollgate_core::{Algorithm, Decision, FixedWindow, Gcra, Limit, LimitState, SlidingLog};
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

/// A store with patient timeouts, for the tests that are not about timeouts: the machine may
/// be busy (other tests' servers, builds), and a decision that misses 250 ms is no failure of
/// what those tests check.
pub async fn store(server: &RedisServer) -> RedisStore {
    let config = config(server)
        .connect_timeout(Duration::from_secs(5))
        .command_timeout(Duration::from_secs(2));
    RedisStore::connect(&config).await.expect("store connects")
}

/// A server and a store on it (with [`store`]'s patient timeouts).
pub async fn started() -> (RedisServer, RedisStore) {
    let server = server();
    let store = store(&server).await;
    (server, store)
}

/// A server and a store on it with the default timeouts.
pub async fn started_with_default_timeouts() -> (RedisServer, RedisStore) {
    let server = server();
    let store = RedisStore::connect(&config(&server))
        .await
        .expect("store connects");
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

/// The core algorithm a limit runs, fed the times Redis decided at.
pub enum Model {
    Gcra(Gcra),
    Sliding(SlidingLog),
    Fixed(FixedWindow),
}

impl Model {
    pub fn of(limit: &Limit) -> Model {
        match limit.algorithm() {
            Algorithm::Gcra | Algorithm::Strict => Model::Gcra(Gcra::default()),
            Algorithm::SlidingWindow => Model::Sliding(SlidingLog::default()),
            Algorithm::FixedWindow => Model::Fixed(FixedWindow::default()),
        }
    }

    pub fn apply(&mut self, limit: &Limit, at_us: u64, cost: u64) -> Decision {
        let now = at_us * 1000;
        match self {
            Model::Gcra(s) => s.apply(limit, now, cost),
            Model::Sliding(s) => s.apply(limit, now, cost),
            Model::Fixed(s) => s.apply(limit, now, cost),
        }
    }
}
