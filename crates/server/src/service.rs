//! The service: request → policy → store → decision, shared by the HTTP and gRPC faces.

use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use serde::Deserialize;
use tollgate_core::{Check, Decision, DynStore, Limit, MultiDecision, validate_key};

use crate::config::{Config, ConfigError, Overrides};
use crate::metrics::Metrics;
use crate::stats::{Stats, StatsReport};

mod report;
pub(crate) use report::now_ms;

/// One check as the APIs receive it: a key under a named policy, or under a limit given
/// inline (`rate`, optional `algorithm` and `burst`). `cost` defaults to 1.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// The key (1 to 1024 bytes).
    pub key: String,
    /// A policy named in the config.
    #[serde(default)]
    pub policy: Option<String>,
    /// An inline rate.
    #[serde(default)]
    pub rate: Option<String>,
    /// The inline limit's algorithm (default gcra).
    #[serde(default)]
    pub algorithm: Option<String>,
    /// The inline limit's burst.
    #[serde(default)]
    pub burst: Option<u64>,
    /// The cost (default 1; 0 peeks).
    #[serde(default)]
    pub cost: Option<u64>,
}

/// An error an API answers with: an HTTP status, a stable code and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: u16,
    /// A stable, machine-readable code.
    pub code: &'static str,
    /// What was wrong, for a person.
    pub message: String,
}

impl ApiError {
    /// A 400 with the given code.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: 400,
            code,
            message: message.into(),
        }
    }
}

impl From<tollgate_core::Error> for ApiError {
    fn from(e: tollgate_core::Error) -> ApiError {
        let status = match e.code() {
            "store_full" | "store_unavailable" => 503,
            _ => 400,
        };
        ApiError {
            status,
            code: e.code(),
            message: e.to_string(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.status, self.message)
    }
}

/// A decision with what it was decided under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The decision.
    pub decision: Decision,
    /// The limit applied.
    pub limit: Limit,
    /// The policy's name, or `inline`.
    pub policy: String,
}

/// A batch's decisions with what each was decided under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedBatch {
    /// The store's answer.
    pub multi: MultiDecision,
    /// The limit and policy of each check, in order.
    pub applied: Vec<(Limit, String)>,
}

/// The state every request handler shares.
pub struct Service {
    store: Arc<dyn DynStore>,
    config: ArcSwap<Config>,
    metrics: Metrics,
    /// The file the config came from, and the flags laid over it, for reloads.
    source: Option<(std::path::PathBuf, Overrides)>,
    /// A shared store's health (breaker state, failures), for metrics and readiness.
    health: Option<crate::HealthProbe>,
    /// The job queues of `/v1/queues` (see `crate::queues`).
    queues: Arc<dyn tollgate_queue::QueueStore>,
    /// What `/v1/stats` reports (see `crate::stats`).
    stats: Stats,
    started: Instant,
    last_report: std::sync::Mutex<Option<(Instant, Arc<StatsReport>)>>,
    refreshing: tokio::sync::Mutex<()>,
    /// The alert rules' state and deliveries (see `crate::alerts`).
    alerts: crate::alerts::Alerts,
}

/// The policy label of a limit given inline.
pub const INLINE: &str = "inline";

impl Service {
    /// A service deciding with `store` under `config`.
    pub fn new(store: Arc<dyn DynStore>, config: Config) -> Service {
        let metrics = Metrics::default();
        let alerts = crate::alerts::Alerts::new(metrics.alerts.clone());
        Service {
            store,
            config: ArcSwap::from_pointee(config),
            metrics,
            alerts,
            source: None,
            health: None,
            queues: Arc::new(tollgate_queue::MemoryQueues::new()),
            stats: Stats::new(now_ms()),
            started: Instant::now(),
            last_report: std::sync::Mutex::new(None),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    /// Serves `/v1/queues` from `queues` (by default, queues in this process's memory).
    pub fn with_queues(mut self, queues: Arc<dyn tollgate_queue::QueueStore>) -> Service {
        self.queues = queues;
        self
    }

    /// The job queues.
    pub fn queues(&self) -> &dyn tollgate_queue::QueueStore {
        &*self.queues
    }

    /// Reports a guarded store's health in the metrics and `/readyz`.
    pub fn with_store_health(mut self, probe: crate::HealthProbe) -> Service {
        self.health = Some(probe);
        self
    }

    /// The guarded store's health, when the store is guarded.
    pub fn store_health(&self) -> Option<tollgate_redis::guard::StoreHealth> {
        self.health.as_ref().map(|probe| probe())
    }

    /// Remembers the file the config was read from and the flags laid over it, so that
    /// [`reload`](Self::reload) can read it again.
    pub fn with_config_file(mut self, path: std::path::PathBuf, overrides: Overrides) -> Service {
        self.source = Some((path, overrides));
        self
    }

    /// The config file, if the config came from one.
    pub fn config_path(&self) -> Option<&std::path::Path> {
        self.source.as_ref().map(|(p, _)| p.as_path())
    }

    /// Reads the config file again and applies it (see [`apply_config`](Self::apply_config));
    /// an invalid file changes nothing. `None` when the service has no config file.
    pub fn reload(&self) -> Option<Result<Vec<String>, ConfigError>> {
        let (path, overrides) = self.source.as_ref()?;
        Some(match Config::load(path) {
            Ok(config) => Ok(self.apply_config(overrides.apply(config))),
            Err(e) => {
                self.metrics.reload(false);
                Err(e)
            }
        })
    }

    /// The config in force now.
    pub fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The store.
    pub fn store(&self) -> &dyn DynStore {
        &*self.store
    }

    /// Swaps in a new config: policies, Envoy rules, limits and the admin token take effect
    /// at once. Listen addresses and the store need a restart; a change to them is reported
    /// in the returned list and otherwise ignored.
    pub fn apply_config(&self, new: Config) -> Vec<String> {
        let old = self.config.load();
        let mut needs_restart = Vec::new();
        if new.http != old.http {
            needs_restart.push("http");
        }
        if new.grpc != old.grpc {
            needs_restart.push("grpc");
        }
        if new.store != old.store {
            needs_restart.push("store");
        }
        if (new.max_keys, new.when_full) != (old.max_keys, old.when_full) {
            needs_restart.push("memory");
        }
        self.config.store(Arc::new(new));
        self.metrics.reload(true);
        needs_restart
            .into_iter()
            .map(|f| format!("{f}: changed in the file, takes effect on restart"))
            .collect()
    }

    /// The limit a request names, and its policy label.
    pub fn resolve(&self, req: &CheckRequest) -> Result<(Limit, String), ApiError> {
        match (&req.policy, &req.rate) {
            (Some(name), None) => {
                if req.algorithm.is_some() || req.burst.is_some() {
                    return Err(ApiError::bad_request(
                        "invalid_request",
                        "algorithm and burst come from the policy; give either policy or rate",
                    ));
                }
                let config = self.config.load();
                let policy = config.policies.get(name).ok_or_else(|| ApiError {
                    status: 404,
                    code: "unknown_policy",
                    message: format!("no policy named {name:?} in the config"),
                })?;
                Ok((policy.limit, policy.name.clone()))
            }
            (None, Some(rate)) => {
                let rate = rate.parse()?;
                let algorithm = match &req.algorithm {
                    Some(a) => a.parse()?,
                    None => tollgate_core::Algorithm::Gcra,
                };
                Ok((Limit::new(rate, algorithm, req.burst)?, INLINE.to_string()))
            }
            (Some(_), Some(_)) => Err(ApiError::bad_request(
                "invalid_request",
                "give either policy or rate, not both",
            )),
            (None, None) => Err(ApiError::bad_request(
                "invalid_request",
                "give a policy (a name from the config) or a rate (like 100/60s)",
            )),
        }
    }

    /// Decides one check.
    pub async fn check(&self, req: &CheckRequest, api: &'static str) -> Result<Checked, ApiError> {
        let start = Instant::now();
        validate_key(&req.key)?;
        let (limit, policy) = self.resolve(req)?;
        let cost = req.cost.unwrap_or(1);
        limit.check_cost(&req.key, cost)?;
        let decision = self.timed(self.store.check(&req.key, &limit, cost)).await?;
        self.record_decision(&policy, &req.key, decision.allowed);
        self.record_latency(api, start.elapsed().as_secs_f64());
        Ok(Checked {
            decision,
            limit,
            policy,
        })
    }

    /// Decides a batch all-or-nothing.
    pub async fn check_multi(
        &self,
        reqs: &[CheckRequest],
        api: &'static str,
    ) -> Result<CheckedBatch, ApiError> {
        let start = Instant::now();
        let max = self.config.load().limits.max_checks;
        if reqs.is_empty() || reqs.len() > max {
            return Err(ApiError::bad_request(
                "invalid_request",
                format!(
                    "a batch holds 1 to {max} checks; this one has {}",
                    reqs.len()
                ),
            ));
        }
        let mut applied = Vec::with_capacity(reqs.len());
        for (i, req) in reqs.iter().enumerate() {
            let at = |e: ApiError| ApiError {
                message: format!("checks[{i}]: {}", e.message),
                ..e
            };
            validate_key(&req.key).map_err(|e| at(e.into()))?;
            applied.push(self.resolve(req).map_err(at)?);
        }
        let checks: Vec<Check<'_>> = reqs
            .iter()
            .zip(&applied)
            .map(|(req, (limit, _))| Check::new(&req.key, *limit, req.cost.unwrap_or(1)))
            .collect();
        let multi = self.timed(self.store.check_all(&checks)).await?;
        // Every check of a denied batch counts as denied; only the keys that were over their
        // limit count as denied keys.
        for ((req, (_, policy)), decision) in reqs.iter().zip(&applied).zip(&multi.decisions) {
            self.metrics.decision(policy, multi.allowed);
            if !decision.allowed {
                self.stats.denied(policy, &req.key, now_ms());
            }
        }
        self.record_latency(api, start.elapsed().as_secs_f64());
        Ok(CheckedBatch { multi, applied })
    }

    /// Forgets a key.
    pub async fn reset(&self, key: &str) -> Result<(), ApiError> {
        validate_key(key)?;
        Ok(self.timed(self.store.reset(key)).await?)
    }

    /// Whether the store answers.
    pub async fn ready(&self) -> Result<(), ApiError> {
        Ok(self.timed(self.store.ping()).await?)
    }

    /// Runs a store call, recording its duration and failure.
    pub async fn timed<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, tollgate_core::Error>>,
    ) -> Result<T, tollgate_core::Error> {
        let start = Instant::now();
        let result = call.await;
        let code = result.as_ref().err().map(tollgate_core::Error::code);
        self.metrics.store_call(start.elapsed().as_secs_f64(), code);
        result
    }

    /// The Prometheus text for `/metrics`.
    pub fn metrics_text(&self) -> String {
        self.metrics
            .encode(self.store.tracked_keys(), self.store_health().as_ref())
    }
}
