//! [`RedisStore`]: the [`Store`](tollgate_core::Store) trait on Redis, one script call per
//! decision.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo, RedisResult};
use tollgate_core::{Check, Decision, Error, Limit, MultiDecision, validate_key};

use crate::config::{RedisConfig, Topology};
use crate::error::{bad_reply, store_error, timed_out};
use crate::keys::{all_state_keys, state_key};
use crate::scripts::{SCRIPTS, params};

/// A decision and the time Redis made it at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimedDecision {
    /// The decision.
    pub decision: Decision,
    /// Redis's `TIME` when it decided, in microseconds since the Unix epoch.
    pub at_us: u64,
}

/// A batch's decision and the time Redis made it at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedMultiDecision {
    /// The decision.
    pub decision: MultiDecision,
    /// Redis's `TIME` when it decided, in microseconds since the Unix epoch.
    pub at_us: u64,
}

/// A store on Redis: every decision is one Lua script run atomically on the server, on the
/// server's clock, so any number of processes on any number of hosts share the limits
/// exactly.
///
/// The connection is multiplexed: calls in flight at the same time share one connection and
/// are pipelined. When Redis goes away, calls fail with a transient `store_unavailable`
/// error within the command timeout, and the store reconnects by itself once Redis is back.
/// Cloning is cheap and shares the connection.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    /// The URL with its password masked, for messages.
    target: Arc<str>,
    command_timeout: Duration,
}

impl RedisStore {
    /// Connects to the Redis that `config` names and loads the scripts. Fails within the
    /// connect timeout when Redis cannot be reached or refuses the credentials. Must be
    /// called within a Tokio runtime.
    pub async fn connect(config: &RedisConfig) -> Result<RedisStore, Error> {
        let url = &config.url;
        let target: Arc<str> = url.to_string().into();
        let (node, db) = match url.topology() {
            Topology::Standalone { node, db } => (node, *db),
            Topology::Sentinel { .. } | Topology::Cluster { .. } => {
                return Err(Error::Store {
                    message: format!(
                        "{target}: Redis Sentinel and Cluster stores are not supported yet; \
                         use redis:// or rediss:// with one server"
                    ),
                    transient: false,
                });
            }
        };
        let addr = if url.tls() {
            // rustls needs a crypto provider; ours is ring. Another part of the process may
            // have installed one already, which is as good.
            let _ = rustls::crypto::ring::default_provider().install_default();
            ConnectionAddr::TcpTls {
                host: node.host.clone(),
                port: node.port,
                insecure: false,
                tls_params: None,
            }
        } else {
            ConnectionAddr::Tcp(node.host.clone(), node.port)
        };
        let mut settings = RedisConnectionInfo::default().set_db(i64::from(db));
        if let Some(user) = url.username() {
            settings = settings.set_username(user);
        }
        if let Some(password) = url.password() {
            settings = settings.set_password(password);
        }
        let client = addr
            .into_connection_info()
            .map(|info| info.set_redis_settings(settings))
            .and_then(|info| match &config.tls_ca_pem {
                Some(pem) if url.tls() => redis::Client::build_with_tls(
                    info,
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(pem.clone()),
                    },
                ),
                _ => redis::Client::open(info),
            })
            .map_err(|e| store_error(&target, &e))?;
        // One attempt per reconnection, so a call never waits behind a long backoff; the
        // next call after a failure starts another attempt.
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.command_timeout))
            .set_number_of_retries(0)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(100));
        let connecting = async {
            let mut conn = ConnectionManager::new_with_config(client, manager).await?;
            for script in SCRIPTS.all() {
                script.load_async(&mut conn).await?;
            }
            RedisResult::Ok(conn)
        };
        let too_slow = || timed_out(&target, "accept a connection", config.connect_timeout);
        match tokio::time::timeout(config.connect_timeout, connecting).await {
            Err(_) => Err(too_slow()),
            Ok(Err(e)) if e.is_timeout() => Err(too_slow()),
            Ok(Err(e)) => Err(store_error(&target, &e)),
            Ok(Ok(conn)) => Ok(RedisStore {
                conn,
                target,
                command_timeout: config.command_timeout,
            }),
        }
    }

    /// Parses `url` and connects with the default timeouts (1 s to connect, 250 ms a call).
    pub async fn open(url: &str) -> Result<RedisStore, Error> {
        RedisStore::connect(&RedisConfig::parse(url)?).await
    }

    /// The Redis URL, password masked.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Runs one call under the command timeout.
    async fn run<T>(
        &self,
        what: &str,
        call: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, Error> {
        match tokio::time::timeout(self.command_timeout, call).await {
            // The connection's own response timeout is the same length and may fire first.
            Err(_) => Err(timed_out(&self.target, what, self.command_timeout)),
            Ok(Err(e)) if e.is_timeout() => {
                Err(timed_out(&self.target, what, self.command_timeout))
            }
            Ok(Err(e)) => Err(store_error(&self.target, &e)),
            Ok(Ok(value)) => Ok(value),
        }
    }

    /// Decides one request of `cost` on `key` under `limit`; cost 0 peeks.
    pub async fn check(&self, key: &str, limit: &Limit, cost: u64) -> Result<Decision, Error> {
        self.check_timed(key, limit, cost).await.map(|t| t.decision)
    }

    /// Decides a batch all-or-nothing (see [`MultiDecision`]).
    pub async fn check_all(&self, checks: &[Check<'_>]) -> Result<MultiDecision, Error> {
        self.check_all_timed(checks).await.map(|t| t.decision)
    }

    /// Decides one request of `cost` on `key` under `limit` (cost 0 peeks), and says when
    /// Redis decided it.
    pub async fn check_timed(
        &self,
        key: &str,
        limit: &Limit,
        cost: u64,
    ) -> Result<TimedDecision, Error> {
        validate_key(key)?;
        limit.check_cost(key, cost)?;
        let p = params(limit)?;
        let mut call = SCRIPTS.check(p.family).key(state_key(key, p.family));
        call.arg(p.a).arg(p.b).arg(cost);
        let mut conn = self.conn.clone();
        let reply: Vec<i64> = self.run("decide", call.invoke_async(&mut conn)).await?;
        match reply.as_slice() {
            [d @ .., at] if d.len() == 5 => Ok(TimedDecision {
                decision: self.decision(d)?,
                at_us: self.number(*at)?,
            }),
            _ => Err(bad_reply(&self.target, &format!("{reply:?}"))),
        }
    }

    /// Decides a batch all-or-nothing (see [`MultiDecision`]), and says when Redis decided
    /// it. On a Redis Cluster every key of a batch must hash to one slot.
    pub async fn check_all_timed(&self, checks: &[Check<'_>]) -> Result<TimedMultiDecision, Error> {
        for check in checks {
            validate_key(check.key)?;
            check.limit.check_cost(check.key, check.cost)?;
        }
        let mut call = SCRIPTS.check_all.prepare_invoke();
        for check in checks {
            let p = params(&check.limit)?;
            call.key(state_key(check.key, p.family));
            call.arg(p.letter()).arg(p.a).arg(p.b).arg(check.cost);
        }
        let mut conn = self.conn.clone();
        let reply: Vec<i64> = self.run("decide", call.invoke_async(&mut conn)).await?;
        let bad = || bad_reply(&self.target, &format!("{reply:?}"));
        let [allowed, retry, at, rest @ ..] = reply.as_slice() else {
            return Err(bad());
        };
        if rest.len() != 5 * checks.len() {
            return Err(bad());
        }
        let decisions = rest
            .chunks_exact(5)
            .map(|d| self.decision(d))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TimedMultiDecision {
            decision: MultiDecision {
                allowed: *allowed == 1,
                retry_after_ms: self.number(*retry)?,
                decisions,
            },
            at_us: self.number(*at)?,
        })
    }

    /// Forgets `key` under every algorithm; returns whether Redis held anything for it.
    pub async fn reset(&self, key: &str) -> Result<bool, Error> {
        validate_key(key)?;
        let [g, s, f] = all_state_keys(key);
        let mut call = SCRIPTS.reset.key(g);
        call.key(s).key(f);
        let mut conn = self.conn.clone();
        let deleted: u64 = self.run("reset", call.invoke_async(&mut conn)).await?;
        Ok(deleted > 0)
    }

    /// Sends PING.
    pub async fn ping(&self) -> Result<(), Error> {
        let mut conn = self.conn.clone();
        let pong: String = self
            .run("answer PING", redis::cmd("PING").query_async(&mut conn))
            .await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(bad_reply(&self.target, &pong))
        }
    }

    fn number(&self, n: i64) -> Result<u64, Error> {
        u64::try_from(n).map_err(|_| bad_reply(&self.target, &format!("negative number {n}")))
    }

    fn decision(&self, d: &[i64]) -> Result<Decision, Error> {
        match *d {
            [allowed, limit, remaining, retry, reset] => Ok(Decision {
                allowed: allowed == 1,
                limit: self.number(limit)?,
                remaining: self.number(remaining)?,
                retry_after_ms: self.number(retry)?,
                reset_after_ms: self.number(reset)?,
            }),
            _ => Err(bad_reply(&self.target, &format!("{d:?}"))),
        }
    }
}

impl tollgate_core::Store for RedisStore {
    async fn check(&self, key: &str, limit: &Limit, cost: u64) -> Result<Decision, Error> {
        RedisStore::check(self, key, limit, cost).await
    }

    async fn check_all(&self, checks: &[Check<'_>]) -> Result<MultiDecision, Error> {
        RedisStore::check_all(self, checks).await
    }

    async fn reset(&self, key: &str) -> Result<(), Error> {
        RedisStore::reset(self, key).await.map(|_| ())
    }

    async fn ping(&self) -> Result<(), Error> {
        RedisStore::ping(self).await
    }
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("target", &self.target)
            .field("command_timeout", &self.command_timeout)
            .finish()
    }
}
