//! [`RedisStore`]: the [`Store`](tollgate_core::Store) trait on Redis, one script call per
//! decision.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::RedisResult;
use tollgate_core::{Check, Decision, Error, Limit, MultiDecision, validate_key};

use crate::cache::OverLimitCache;
use crate::config::RedisConfig;
use crate::connection::Connection;
use crate::error::{bad_reply, store_error, timed_out};
use crate::keys::{all_state_keys, redis_key_slot, state_key};
use crate::scripts::{Params, SCRIPTS, params};

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
/// The connection is multiplexed: calls in flight at the same time share one connection (one
/// per node on a cluster) and are pipelined. When Redis goes away, calls fail with a transient
/// `store_unavailable` error within the command timeout, and the store reconnects by itself
/// once Redis is back (through sentinels, to whichever server is the master then). Cloning is
/// cheap and shares the connection.
///
/// With [`RedisConfig::over_limit_cache`], [`check`](RedisStore::check) answers a check that a
/// recent denial proves Redis would deny too without a round trip (see [`crate::cache`]).
#[derive(Clone)]
pub struct RedisStore {
    pub(crate) conn: Connection,
    /// The URL with its password masked, for messages.
    target: Arc<str>,
    command_timeout: Duration,
    cache: Option<Arc<OverLimitCache>>,
}

impl RedisStore {
    /// Connects to the Redis that `config` names (one server, a cluster, or the master the
    /// sentinels name) and loads the scripts. Fails within the connect timeout when Redis
    /// cannot be reached or refuses the credentials, or when no sentinel knows the master's
    /// name. Must be called within a Tokio runtime.
    pub async fn connect(config: &RedisConfig) -> Result<RedisStore, Error> {
        let target: Arc<str> = config.url.to_string().into();
        let conn = Connection::open(config, &target).await?;
        Ok(RedisStore {
            conn,
            target,
            command_timeout: config.command_timeout,
            cache: (config.over_limit_cache_keys > 0)
                .then(|| Arc::new(OverLimitCache::new(config.over_limit_cache_keys))),
        })
    }

    /// Parses `url` and connects with the default timeouts (1 s to connect, 250 ms a call).
    pub async fn open(url: &str) -> Result<RedisStore, Error> {
        RedisStore::connect(&RedisConfig::parse(url)?).await
    }

    /// The Redis URL, password masked.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// How many checks the over-limit cache has answered without a round trip (`None`
    /// without the cache).
    pub fn over_limit_cache_hits(&self) -> Option<u64> {
        self.cache.as_ref().map(|c| c.hits())
    }

    /// How many keys the over-limit cache holds now (`None` without the cache).
    pub fn over_limit_cache_entries(&self) -> Option<usize> {
        self.cache.as_ref().map(|c| c.len())
    }

    /// Runs one call under the command timeout.
    pub(crate) async fn run<T, F>(
        &self,
        what: &str,
        mut call: impl FnMut() -> F,
    ) -> Result<T, Error>
    where
        F: Future<Output = RedisResult<T>>,
    {
        let deadline = tokio::time::Instant::now() + self.command_timeout;
        let mut retried = false;
        loop {
            match tokio::time::timeout_at(deadline, call()).await {
                // The connection's own response timeout is the same length and may fire first.
                Err(_) => {
                    self.conn.timed_out();
                    return Err(timed_out(&self.target, what, self.command_timeout));
                }
                Ok(Err(e)) if e.is_timeout() => {
                    return Err(timed_out(&self.target, what, self.command_timeout));
                }
                // After Redis comes back, the connection manager still holds the refusal of
                // its last reconnection attempt and gives it to the first call, which then
                // starts a new one. A refused connection never sent the command, so trying
                // once more (within the same deadline) is safe, and it turns the first call
                // after a restart into a success instead of a failed breaker probe.
                Ok(Err(e)) if e.is_connection_refusal() && !retried => {
                    self.lost_state();
                    retried = true;
                }
                Ok(Err(e)) => {
                    let error = store_error(&self.target, &e);
                    if error.is_transient() {
                        self.lost_state();
                    }
                    return Err(error);
                }
                Ok(Ok(value)) => return Ok(value),
            }
        }
    }

    /// A failure other than a timeout may mean that Redis restarted or failed over and lost
    /// state, which the over-limit cache cannot tell: forget it all.
    fn lost_state(&self) {
        if let Some(cache) = &self.cache {
            cache.clear();
        }
    }

    /// Decides one request of `cost` on `key` under `limit`; cost 0 peeks. With the
    /// over-limit cache, a denial that a recent one proves is answered without a round trip.
    pub async fn check(&self, key: &str, limit: &Limit, cost: u64) -> Result<Decision, Error> {
        let Some(cache) = &self.cache else {
            return self.check_timed(key, limit, cost).await.map(|t| t.decision);
        };
        validate_key(key)?;
        limit.check_cost(key, cost)?;
        let p = params(limit)?;
        let redis_key = state_key(key, p.family);
        if let Some(decision) = cache.lookup(&redis_key, &p, cost, Instant::now()) {
            return Ok(decision);
        }
        let ticket = cache.ticket(&redis_key);
        let decided = self.decide(redis_key.clone(), p, cost).await?.decision;
        cache.learn(ticket, &redis_key, &p, cost, &decided, Instant::now());
        Ok(decided)
    }

    /// Decides a batch all-or-nothing (see [`MultiDecision`]).
    pub async fn check_all(&self, checks: &[Check<'_>]) -> Result<MultiDecision, Error> {
        self.check_all_timed(checks).await.map(|t| t.decision)
    }

    /// Decides one request of `cost` on `key` under `limit` (cost 0 peeks), and says when
    /// Redis decided it. Always asks Redis: the over-limit cache neither answers nor learns.
    pub async fn check_timed(
        &self,
        key: &str,
        limit: &Limit,
        cost: u64,
    ) -> Result<TimedDecision, Error> {
        validate_key(key)?;
        limit.check_cost(key, cost)?;
        let p = params(limit)?;
        self.decide(state_key(key, p.family), p, cost).await
    }

    /// Runs a family's check script on `redis_key`.
    async fn decide(
        &self,
        redis_key: String,
        p: Params,
        cost: u64,
    ) -> Result<TimedDecision, Error> {
        let mut call = SCRIPTS.check(p.family).call();
        call.key(redis_key).arg(p.a).arg(p.b).arg(cost);
        let reply: Vec<i64> = self
            .run("decide", || {
                let mut conn = self.conn.clone();
                let call = &call;
                async move { call.invoke(&mut conn).await }
            })
            .await?;
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
        let mut call = SCRIPTS.check_all.call();
        for check in checks {
            let p = params(&check.limit)?;
            call.key(state_key(check.key, p.family));
            call.arg(p.letter()).arg(p.a).arg(p.b).arg(check.cost);
        }
        if self.conn.is_cluster() {
            one_slot(checks, call.keys())?;
        }
        let reply: Vec<i64> = self
            .run("decide", || {
                let mut conn = self.conn.clone();
                let call = &call;
                async move { call.invoke(&mut conn).await }
            })
            .await?;
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
        let keys = all_state_keys(key);
        // The three keys share a slot, so this is one DEL on a cluster too.
        let mut call = SCRIPTS.reset.call();
        for k in &keys {
            call.key(k.clone());
        }
        let deleted = self
            .run("reset", || {
                let mut conn = self.conn.clone();
                let call = &call;
                async move { call.invoke::<u64>(&mut conn).await }
            })
            .await;
        // After the DEL (even a failed one, which may have happened): a denial learned from
        // a call sent before this point may predate the DEL.
        if let Some(cache) = &self.cache {
            cache.forget(&keys);
        }
        Ok(deleted? > 0)
    }

    /// Sends PING.
    pub async fn ping(&self) -> Result<(), Error> {
        let pong: String = self
            .run("answer PING", || {
                let mut conn = self.conn.clone();
                async move { redis::cmd("PING").query_async(&mut conn).await }
            })
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

/// Refuses a batch whose state keys (`redis_keys`, in the order of `checks`) span cluster slots,
/// before the round trip: a Lua script may only touch keys of one slot, and Redis would answer
/// CROSSSLOT. The batch's keys are the caller's input, so this is `invalid_key`: the same batch
/// fails the same way every time, and the fix is in the keys.
fn one_slot(checks: &[Check<'_>], redis_keys: &[String]) -> Result<(), Error> {
    let mut slots = checks
        .iter()
        .zip(redis_keys)
        .map(|(check, redis_key)| (check.key, redis_key_slot(redis_key)));
    let Some((first_key, first)) = slots.next() else {
        return Ok(());
    };
    match slots.find(|&(_, slot)| slot != first) {
        None => Ok(()),
        Some((key, slot)) => Err(Error::InvalidKey {
            reason: format!(
                "a batch on a Redis Cluster must keep its keys in one hash slot: give them the \
                 same hash tag, e.g. {{user:1}}:global ({first_key:?} is in slot {first}, \
                 {key:?} in slot {slot})"
            ),
        }),
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
            .field("over_limit_cache", &self.cache.as_ref().map(|c| c.len()))
            .finish()
    }
}
