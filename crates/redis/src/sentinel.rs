//! A connection to the master that Redis Sentinel names, found again after a failover.
//!
//! Connecting asks every sentinel at once for `SENTINEL GET-MASTER-ADDR-BY-NAME`, connects to
//! the first address named, and checks with `ROLE` that the server is a master (a sentinel
//! that has not yet seen a failover may name a demoted master). Calls then go to that master
//! over one multiplexed connection.
//!
//! The master is found again in two ways:
//!
//! - **When a call fails** in a way that says the master may be gone — the connection refused
//!   or dropped, no answer within the command timeout, `READONLY` or `MASTERDOWN` (the server
//!   is a replica now) — that call fails with a transient error and one background task asks
//!   the sentinels again, every 100 ms until a master answers, then swaps the connection.
//!   Calls never wait for the search: while it runs they fail fast on the old connection, and
//!   the calls after it go to the new master.
//! - **Every second** a background task asks the sentinels which master is current (the
//!   answer with the highest config epoch) and moves to it if it is not the one in use. This
//!   catches a failover whose old master is still up and still accepting writes (a manual
//!   `SENTINEL FAILOVER`, a partition): until the sentinels demote it, nothing fails there,
//!   and what it admits would be lost and counted twice.
//!
//! This is done here rather than with redis-rs's `sentinel` module so that every step is
//! bounded by the store's timeouts and the client follows a failover without being rebuilt.

mod finder;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{Cmd, Pipeline, RedisError, RedisFuture, Value};
use tollgate_core::Error;

use crate::config::{Node, RedisConfig};
use crate::error::timed_out;
use finder::Finder;

/// The pause between two searches for the master while none answers.
const SEARCH_PAUSE: Duration = Duration::from_millis(100);

/// How often the sentinels are asked whether the master changed while calls succeed.
const WATCH_PERIOD: Duration = Duration::from_secs(1);

/// A connection to the current master. Cloning is cheap and shares it.
#[derive(Clone)]
pub(crate) struct SentinelConnection {
    shared: Arc<Shared>,
}

struct Shared {
    finder: Arc<Finder>,
    current: Mutex<Current>,
    /// Whether a background task is replacing the master (at most one does at a time).
    switching: AtomicBool,
}

/// The master calls go to now. `epoch` counts the masters found, so that a failure on a
/// connection already replaced starts no new search.
struct Current {
    epoch: u64,
    master: Node,
    conn: MultiplexedConnection,
}

impl SentinelConnection {
    /// Finds the master through the sentinels and connects to it (the caller bounds this by
    /// the connect timeout), then starts watching the sentinels.
    pub(crate) async fn connect(
        config: &RedisConfig,
        target: &str,
        sentinels: &[Node],
        master_name: &str,
        db: u32,
    ) -> Result<SentinelConnection, Error> {
        let finder = Arc::new(Finder::new(config, target, sentinels, master_name, db));
        let (master, conn) = finder.find_master().await?;
        tracing::info!(target: "tollgate_redis", store = %target, %master, "connected to the master the sentinels name");
        let shared = Arc::new(Shared {
            finder,
            current: Mutex::new(Current {
                epoch: 0,
                master,
                conn,
            }),
            switching: AtomicBool::new(false),
        });
        // The tasks hold the connection weakly: they end when the store is dropped.
        tokio::spawn(watch(Arc::downgrade(&shared)));
        Ok(SentinelConnection { shared })
    }

    /// Starts a search for the master, unless one runs already.
    pub(crate) fn master_may_be_lost(&self) {
        let (epoch, _) = self.shared.conn();
        self.lost(epoch);
    }

    /// Starts a search for the master if the connection of `epoch` is still the current one
    /// and no search runs.
    fn lost(&self, epoch: u64) {
        if self.shared.conn().0 != epoch || self.shared.switching.swap(true, Ordering::AcqRel) {
            return;
        }
        tokio::spawn(search(Arc::downgrade(&self.shared)));
    }
}

impl Shared {
    /// The master calls go to now.
    fn master(&self) -> Node {
        let current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        current.master.clone()
    }

    /// The connection calls go to now and its epoch (without cloning the address, per call).
    fn conn(&self) -> (u64, MultiplexedConnection) {
        let current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        (current.epoch, current.conn.clone())
    }

    /// Makes `master` the current one.
    fn replace(&self, master: Node, conn: MultiplexedConnection) {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        tracing::warn!(target: "tollgate_redis", store = %self.finder.target, from = %current.master, to = %master, "following the master the sentinels name");
        *current = Current {
            epoch: current.epoch + 1,
            master,
            conn,
        };
    }
}

/// Looks for the master until one answers (or the store is gone), then makes it current.
async fn search(weak: Weak<Shared>) {
    loop {
        let Some(shared) = weak.upgrade() else {
            return;
        };
        let finder = &shared.finder;
        let timeout = finder.config.connect_timeout;
        let found = tokio::time::timeout(timeout, finder.find_master())
            .await
            .unwrap_or_else(|_| Err(timed_out(&finder.target, "name a master", timeout)));
        match found {
            Ok((master, conn)) => {
                shared.replace(master, conn);
                shared.switching.store(false, Ordering::Release);
                return;
            }
            Err(e) => {
                tracing::debug!(target: "tollgate_redis", store = %finder.target, error = %e, "no master yet");
            }
        }
        drop(shared);
        tokio::time::sleep(SEARCH_PAUSE).await;
    }
}

/// Every [`WATCH_PERIOD`], moves to the master the newest sentinel configuration names if it
/// is not the current one (and no search is under way).
async fn watch(weak: Weak<Shared>) {
    loop {
        tokio::time::sleep(WATCH_PERIOD).await;
        let Some(shared) = weak.upgrade() else {
            return;
        };
        let finder = &shared.finder;
        let timeout = finder.config.connect_timeout;
        let Ok(Some(named)) = tokio::time::timeout(timeout, finder.newest_master()).await else {
            continue;
        };
        if named == shared.master() || shared.switching.swap(true, Ordering::AcqRel) {
            continue;
        }
        match tokio::time::timeout(timeout, finder.connect_master(&named)).await {
            Ok(Ok(conn)) => shared.replace(named, conn),
            Ok(Err(e)) => {
                tracing::debug!(target: "tollgate_redis", store = %finder.target, error = %e, "the sentinels' new master does not answer yet");
            }
            Err(_) => {}
        }
        shared.switching.store(false, Ordering::Release);
    }
}

/// Whether a failure says the master may have gone: the connection failed, or the server is
/// no longer a master.
fn master_lost(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || matches!(e.code(), Some("READONLY" | "MASTERDOWN"))
}

impl ConnectionLike for SentinelConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        let (epoch, mut conn) = self.shared.conn();
        Box::pin(async move {
            let result = conn.req_packed_command(cmd).await;
            if let Err(e) = &result
                && master_lost(e)
            {
                self.lost(epoch);
            }
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let (epoch, mut conn) = self.shared.conn();
        Box::pin(async move {
            let result = conn.req_packed_commands(pipeline, offset, count).await;
            if let Err(e) = &result
                && master_lost(e)
            {
                self.lost(epoch);
            }
            result
        })
    }

    fn get_db(&self) -> i64 {
        i64::from(self.shared.finder.db)
    }
}
