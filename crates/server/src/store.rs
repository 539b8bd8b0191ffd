//! The store a server decides with, built from the config: the embedded memory store, or
//! Redis behind the failure guard (timeouts, circuit breaker, deny / allow / local).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::OnceCell;
use tollgate_core::{Check, Decision, DynStore, Error, Limit, MultiDecision, Store};
use tollgate_memory::MemoryStore;
use tollgate_redis::guard::{GuardConfig, StoreHealth};
use tollgate_redis::{Guarded, RedisConfig, RedisStore, Topology};

use crate::config::Config;

/// Reads a guarded store's health, for metrics and `/readyz`.
pub type HealthProbe = Arc<dyn Fn() -> StoreHealth + Send + Sync>;

/// The store and what the server needs to look after it.
pub(crate) struct Built {
    pub store: Arc<dyn DynStore>,
    /// The embedded store, which the server sweeps.
    pub memory: Option<Arc<MemoryStore>>,
    /// A shared store's health.
    pub health: Option<HealthProbe>,
}

/// Builds the store. A Redis that cannot be reached (or refuses the credentials) does not stop
/// the start-up: it is logged, decisions follow `on_store_failure`, and connecting goes on in
/// the background until it succeeds.
pub(crate) async fn build(config: &Config) -> Built {
    let Some(redis) = &config.redis else {
        let memory = Arc::new(
            MemoryStore::builder()
                .max_keys(config.max_keys)
                .when_full(config.when_full)
                .build(),
        );
        return Built {
            store: memory.clone(),
            memory: Some(memory),
            health: None,
        };
    };
    let redis = redis
        .clone()
        .connect_timeout(config.guard.connect_timeout)
        .command_timeout(config.guard.timeout)
        .over_limit_cache(config.guard.over_limit_cache_keys);
    let lazy = Arc::new(LazyRedis {
        config: redis,
        store: OnceCell::new(),
        last_error: Mutex::new(None),
    });
    if let Err(e) = lazy.connect_once().await {
        tracing::error!(
            "cannot use Redis at {}: {e}; deciding with on_store_failure={} and retrying in the background",
            lazy.config.url,
            config.guard.on_failure
        );
        tokio::spawn(lazy.clone().keep_connecting());
    }
    let guard = GuardConfig {
        on_failure: config.guard.on_failure,
        call_timeout: config.guard.timeout,
        breaker: config.guard.breaker,
        local_max_keys: config.max_keys,
        // On a cluster, a master that is down fails only its own slots' keys over.
        breaker_per_slot: matches!(lazy.config.url.topology(), Topology::Cluster { .. }),
    };
    let guarded = Arc::new(Guarded::new(SharedRedis(lazy), guard));
    let probe = guarded.clone();
    let health = move || {
        let mut health = probe.health();
        // The guard knows nothing of the Redis store's cache; the store counts its hits.
        health.over_limit_cache_hits = probe
            .inner()
            .0
            .store
            .get()
            .and_then(RedisStore::over_limit_cache_hits)
            .unwrap_or(0);
        health
    };
    Built {
        store: Arc::new(SharedGuarded(guarded)),
        memory: None,
        health: Some(Arc::new(health)),
    }
}

/// A Redis store that may not be connected yet.
struct LazyRedis {
    config: RedisConfig,
    store: OnceCell<RedisStore>,
    last_error: Mutex<Option<String>>,
}

impl LazyRedis {
    async fn connect_once(&self) -> Result<(), Error> {
        match RedisStore::connect(&self.config).await {
            Ok(store) => {
                let _ = self.store.set(store);
                tracing::info!("connected to Redis at {}", self.config.url);
                Ok(())
            }
            Err(e) => {
                if let Ok(mut last) = self.last_error.lock() {
                    *last = Some(e.to_string());
                }
                Err(e)
            }
        }
    }

    /// Retries with a backoff from 100 ms to 5 s until connected.
    async fn keep_connecting(self: Arc<Self>) {
        let mut wait = Duration::from_millis(100);
        while self.store.get().is_none() {
            tokio::time::sleep(wait).await;
            if let Err(e) = self.connect_once().await {
                tracing::debug!("still cannot connect to Redis: {e}");
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    }

    fn connected(&self) -> Result<&RedisStore, Error> {
        self.store.get().ok_or_else(|| {
            let last = self.last_error.lock().ok().and_then(|l| l.clone());
            Error::Store {
                message: format!(
                    "not connected to Redis at {} yet: {}",
                    self.config.url,
                    last.as_deref().unwrap_or("connecting")
                ),
                // Transient, so that the failure policy answers until Redis is reachable.
                transient: true,
            }
        })
    }
}

/// `Store` for a shared `LazyRedis` (the background connector holds the other reference).
struct SharedRedis(Arc<LazyRedis>);

impl Store for SharedRedis {
    async fn check(&self, key: &str, limit: &Limit, cost: u64) -> Result<Decision, Error> {
        Store::check(self.0.connected()?, key, limit, cost).await
    }
    async fn check_all(&self, checks: &[Check<'_>]) -> Result<MultiDecision, Error> {
        Store::check_all(self.0.connected()?, checks).await
    }
    async fn reset(&self, key: &str) -> Result<(), Error> {
        Store::reset(self.0.connected()?, key).await
    }
    async fn ping(&self) -> Result<(), Error> {
        Store::ping(self.0.connected()?).await
    }
}

/// `Store` for a shared `Guarded` (the health probe holds the other reference).
struct SharedGuarded(Arc<Guarded<SharedRedis>>);

impl Store for SharedGuarded {
    async fn check(&self, key: &str, limit: &Limit, cost: u64) -> Result<Decision, Error> {
        Store::check(&*self.0, key, limit, cost).await
    }
    async fn check_all(&self, checks: &[Check<'_>]) -> Result<MultiDecision, Error> {
        Store::check_all(&*self.0, checks).await
    }
    async fn reset(&self, key: &str) -> Result<(), Error> {
        Store::reset(&*self.0, key).await
    }
    async fn ping(&self) -> Result<(), Error> {
        Store::ping(&*self.0).await
    }
}
