//! The YAML config file: its schema, and validation into a [`Config`] that cannot be wrong.
//!
//! Validation reports every problem at once, each with its path in the file
//! (`policies.basic.rate: …`), so `tollgate config check` can explain a file in one go.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;
use tollgate_core::{Algorithm, Limit, Rate};

use crate::envoy::{DomainSpec, EnvoyRules};

/// Where the HTTP API listens when neither the flag nor the file says.
pub const DEFAULT_HTTP: &str = "127.0.0.1:8080";
/// Where the gRPC API listens when `--grpc` is given without an address.
pub const DEFAULT_GRPC: &str = "127.0.0.1:8081";

/// The file as written. Unknown fields are errors, so a typo is never silently ignored.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// HTTP listen address.
    pub http: Option<String>,
    /// gRPC (Envoy RateLimitService) listen address; none serves no gRPC.
    pub grpc: Option<String>,
    /// `memory` (the default) or a store URL.
    pub store: Option<String>,
    /// Bearer token required by the admin endpoints; none leaves them open.
    pub admin_token: Option<String>,
    /// What a shared store's failure answers: `deny` (default), `allow` or `local`.
    pub on_store_failure: Option<String>,
    /// The most a call to a shared store may take, in milliseconds (default 100).
    pub store_timeout_ms: Option<u64>,
    /// The circuit breaker in front of a shared store.
    #[serde(default)]
    pub breaker: BreakerSection,
    /// Redis connection settings.
    #[serde(default)]
    pub redis: RedisSection,
    /// The in-memory store's settings.
    #[serde(default)]
    pub memory: MemorySection,
    /// Request limits.
    #[serde(default)]
    pub limits: LimitsSection,
    /// Named policies (tiers).
    #[serde(default)]
    pub policies: BTreeMap<String, PolicySpec>,
    /// Envoy RateLimitService domains.
    #[serde(default)]
    pub envoy: Vec<DomainSpec>,
    /// Alert rules and their webhooks (see `docs/alerts.md`).
    #[serde(default)]
    pub alerts: crate::alerts::AlertsSection,
}

/// `memory:` in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemorySection {
    /// The most keys tracked at once.
    pub max_keys: usize,
    /// `reject` or `evict` when full.
    pub when_full: String,
    /// Seconds between sweeps of idle keys.
    pub sweep_interval_secs: u64,
}

impl Default for MemorySection {
    fn default() -> Self {
        MemorySection {
            max_keys: tollgate_memory::DEFAULT_MAX_KEYS,
            when_full: "reject".to_string(),
            sweep_interval_secs: 10,
        }
    }
}

/// `breaker:` in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerSection {
    /// Consecutive failures that open the breaker.
    pub failure_threshold: u32,
    /// How long it stays open before probing, in milliseconds.
    pub open_for_ms: u64,
    /// Probes let through at once while half-open.
    pub half_open_probes: u32,
    /// Successful probes that close it again.
    pub success_threshold: u32,
}

impl Default for BreakerSection {
    fn default() -> Self {
        let d = BreakerConfig::default();
        BreakerSection {
            failure_threshold: d.failure_threshold,
            // Probe twice a second: decisions come back from the store within ~0.5 s of its
            // return (measured 0–0.5 s), while a store that is down costs one probe per 500 ms.
            open_for_ms: 500,
            half_open_probes: d.half_open_probes,
            success_threshold: d.success_threshold,
        }
    }
}

/// `redis:` in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisSection {
    /// How long connecting may take, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Answer checks that a recent denial proves Redis would deny too without a round trip.
    pub over_limit_cache: bool,
    /// The most keys that cache holds.
    pub over_limit_cache_keys: usize,
}

impl Default for RedisSection {
    fn default() -> Self {
        RedisSection {
            connect_timeout_ms: 1000,
            over_limit_cache: false,
            over_limit_cache_keys: 10_000,
        }
    }
}

/// `limits:` in the file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    /// The largest request body, in bytes.
    pub max_body_bytes: usize,
    /// The most checks in one `/v1/check/multi`.
    pub max_checks: usize,
}

impl Default for LimitsSection {
    fn default() -> Self {
        LimitsSection {
            max_body_bytes: 64 * 1024,
            max_checks: 100,
        }
    }
}

/// A policy as written: `basic: {rate: 100/min, burst: 20, algorithm: gcra}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    /// The rate, in the rate grammar.
    pub rate: String,
    /// The algorithm (default `gcra`).
    pub algorithm: Option<String>,
    /// The burst (gcra only).
    pub burst: Option<u64>,
    /// Free text shown by `GET /v1/policies`.
    pub description: Option<String>,
}

/// A validated policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Its name.
    pub name: String,
    /// Its limit.
    pub limit: Limit,
    /// Free text.
    pub description: Option<String>,
}

/// How the in-memory store behaves when full.
pub use tollgate_memory::WhenFull;
use tollgate_redis::guard::BreakerConfig;
pub use tollgate_redis::{OnStoreFailure, RedisConfig};

/// How a shared store is guarded: its failure policy, timeouts and breaker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreGuard {
    /// What a failure answers.
    pub on_failure: OnStoreFailure,
    /// The most one call may take.
    pub timeout: std::time::Duration,
    /// The circuit breaker.
    pub breaker: BreakerConfig,
    /// How long connecting may take.
    pub connect_timeout: std::time::Duration,
    /// The most keys the Redis store's over-limit cache holds; 0: no cache.
    pub over_limit_cache_keys: usize,
}

/// A validated config. Building one is the only way to get one.
#[derive(Debug, Clone)]
pub struct Config {
    /// HTTP listen address.
    pub http: SocketAddr,
    /// gRPC listen address, if gRPC is served.
    pub grpc: Option<SocketAddr>,
    /// The store: `memory` or a URL.
    pub store: String,
    /// The admin bearer token.
    pub admin_token: Option<String>,
    /// The Redis connection, when the store is a Redis URL.
    pub redis: Option<RedisConfig>,
    /// How a shared store is guarded.
    pub guard: StoreGuard,
    /// In-memory store cap.
    pub max_keys: usize,
    /// In-memory store behaviour when full.
    pub when_full: WhenFull,
    /// Seconds between sweeps of idle keys.
    pub sweep_interval_secs: u64,
    /// Request limits.
    pub limits: LimitsSection,
    /// Policies by name.
    pub policies: BTreeMap<String, Policy>,
    /// Envoy domains and descriptor rules.
    pub envoy: EnvoyRules,
    /// Alert rules and their webhooks.
    pub alerts: crate::alerts::AlertRules,
}

/// Settings given on the command line, which win over the file's, on every reload too.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--http`.
    pub http: Option<SocketAddr>,
    /// `--grpc`.
    pub grpc: Option<SocketAddr>,
    /// `--store`.
    pub store: Option<String>,
}

impl Overrides {
    /// Checks the flags' values that the file would have validated: a `--store` URL.
    pub fn check(&self) -> Result<(), ConfigError> {
        match &self.store {
            Some(store) if store != "memory" => {
                RedisConfig::parse(store)
                    .map(|_| ())
                    .map_err(|e| ConfigError {
                        source: "--store".to_string(),
                        problems: vec![format!("{e}; or `memory`")],
                    })
            }
            _ => Ok(()),
        }
    }

    /// Puts the command line's settings over the file's.
    pub fn apply(&self, mut config: Config) -> Config {
        if let Some(http) = self.http {
            config.http = http;
        }
        if let Some(grpc) = self.grpc {
            config.grpc = Some(grpc);
        }
        if let Some(store) = &self.store {
            config.store = store.clone();
            // The flag's URL was checked when the flags were read (`Overrides::check`).
            config.redis = if store == "memory" {
                None
            } else {
                RedisConfig::parse(store).ok()
            };
        }
        config
    }
}

/// Everything wrong with a config file, each problem with its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Where the config came from (a file name, or `<flags>`).
    pub source: String,
    /// One line per problem: `path: what is wrong`.
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid config {}:", self.source)?;
        for p in &self.problems {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl Default for Config {
    fn default() -> Self {
        match Config::validate(ConfigFile::default(), "<defaults>") {
            Ok(config) => config,
            // The defaults are constants that validate; this arm cannot be reached.
            Err(e) => unreachable!("default config is invalid: {e}"),
        }
    }
}

impl Config {
    /// Reads and validates a YAML file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let source = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            source: source.clone(),
            problems: vec![format!("cannot read the file: {e}")],
        })?;
        Config::parse(&text, &source)
    }

    /// Parses and validates YAML text; `source` names it in errors.
    pub fn parse(text: &str, source: &str) -> Result<Config, ConfigError> {
        let file: ConfigFile = if text.trim().is_empty() {
            ConfigFile::default()
        } else {
            serde_saphyr::from_str(text).map_err(|e| ConfigError {
                source: source.to_string(),
                problems: vec![e.to_string()],
            })?
        };
        Config::validate(file, source)
    }

    /// Validates a parsed file.
    pub fn validate(file: ConfigFile, source: &str) -> Result<Config, ConfigError> {
        let mut problems = Vec::new();
        let mut addr = |field: &str, text: &str| match text.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                problems.push(format!(
                    "{field}: {text:?} is not an address like 127.0.0.1:8080"
                ));
                None
            }
        };
        let http = addr("http", file.http.as_deref().unwrap_or(DEFAULT_HTTP));
        let grpc = file.grpc.as_deref().and_then(|g| addr("grpc", g));

        let when_full = match file.memory.when_full.as_str() {
            "reject" => WhenFull::Reject,
            "evict" => WhenFull::EvictNearestIdle,
            other => {
                problems.push(format!(
                    "memory.when_full: {other:?} is not reject or evict"
                ));
                WhenFull::Reject
            }
        };
        if file.memory.max_keys == 0 {
            problems.push("memory.max_keys: must be at least 1".to_string());
        }
        if file.memory.sweep_interval_secs == 0 {
            problems.push("memory.sweep_interval_secs: must be at least 1".to_string());
        }
        if file.limits.max_checks == 0 {
            problems.push("limits.max_checks: must be at least 1".to_string());
        }
        if file.limits.max_body_bytes < 1024 {
            problems.push("limits.max_body_bytes: must be at least 1024".to_string());
        }
        if file
            .admin_token
            .as_deref()
            .is_some_and(|t| t.trim().is_empty())
        {
            problems
                .push("admin_token: is empty; remove it to leave admin endpoints open".to_string());
        }
        let store = file.store.clone().unwrap_or_else(|| "memory".to_string());
        let redis = if store == "memory" {
            None
        } else {
            match RedisConfig::parse(&store) {
                Ok(r) => Some(r),
                Err(e) => {
                    problems.push(format!("store: {e}; or `memory`"));
                    None
                }
            }
        };
        let on_failure = match file.on_store_failure.as_deref().unwrap_or("deny").parse() {
            Ok(p) => p,
            Err(_) => {
                problems.push(format!(
                    "on_store_failure: {:?} is not deny, allow or local",
                    file.on_store_failure.as_deref().unwrap_or_default()
                ));
                OnStoreFailure::Deny
            }
        };
        let timeout_ms = file.store_timeout_ms.unwrap_or(100);
        if !(1..=60_000).contains(&timeout_ms) {
            problems.push("store_timeout_ms: must be from 1 to 60000".to_string());
        }
        let b = &file.breaker;
        if b.failure_threshold == 0 || b.half_open_probes == 0 || b.success_threshold == 0 {
            problems.push(
                "breaker: failure_threshold, half_open_probes and success_threshold must be at least 1"
                    .to_string(),
            );
        }
        if b.open_for_ms == 0 {
            problems.push("breaker.open_for_ms: must be at least 1".to_string());
        }
        if file.redis.connect_timeout_ms == 0 {
            problems.push("redis.connect_timeout_ms: must be at least 1".to_string());
        }
        if file.redis.over_limit_cache && file.redis.over_limit_cache_keys == 0 {
            problems.push("redis.over_limit_cache_keys: must be at least 1".to_string());
        }
        let ms = std::time::Duration::from_millis;
        let guard = StoreGuard {
            on_failure,
            timeout: ms(timeout_ms),
            breaker: BreakerConfig {
                failure_threshold: b.failure_threshold,
                open_for: ms(b.open_for_ms),
                half_open_probes: b.half_open_probes,
                success_threshold: b.success_threshold,
            },
            connect_timeout: ms(file.redis.connect_timeout_ms),
            over_limit_cache_keys: if file.redis.over_limit_cache {
                file.redis.over_limit_cache_keys
            } else {
                0
            },
        };

        let mut policies = BTreeMap::new();
        for (name, spec) in file.policies {
            match policy(&name, spec) {
                Ok(p) => {
                    policies.insert(name, p);
                }
                Err(e) => problems.push(format!("policies.{name}: {e}")),
            }
        }
        let envoy = EnvoyRules::compile(&file.envoy, &mut problems);
        let alerts = crate::alerts::AlertRules::compile(&file.alerts, &mut problems);

        if !problems.is_empty() {
            return Err(ConfigError {
                source: source.to_string(),
                problems,
            });
        }
        Ok(Config {
            http: http.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            grpc,
            store,
            redis,
            guard,
            admin_token: file.admin_token,
            max_keys: file.memory.max_keys,
            when_full,
            sweep_interval_secs: file.memory.sweep_interval_secs,
            limits: file.limits,
            policies,
            envoy,
            alerts,
        })
    }
}

/// A policy name: letters, digits, `_`, `-`, `.`; 1 to 64 of them.
pub(crate) fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
}

fn policy(name: &str, spec: PolicySpec) -> Result<Policy, String> {
    if !valid_name(name) {
        return Err("a name is 1 to 64 letters, digits, '_', '-' or '.'".to_string());
    }
    let rate: Rate = spec
        .rate
        .parse()
        .map_err(|e: tollgate_core::Error| format!("rate: {e}"))?;
    let algorithm = match &spec.algorithm {
        Some(a) => a
            .parse()
            .map_err(|e: tollgate_core::Error| format!("algorithm: {e}"))?,
        None => Algorithm::Gcra,
    };
    let limit = Limit::new(rate, algorithm, spec.burst).map_err(|e| format!("burst: {e}"))?;
    Ok(Policy {
        name: name.to_string(),
        limit,
        description: spec.description,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_gives_the_defaults() {
        let c = Config::parse("", "t").expect("valid");
        assert_eq!(c.http.to_string(), DEFAULT_HTTP);
        assert_eq!(c.grpc, None);
        assert_eq!(c.store, "memory");
        assert!(c.policies.is_empty());
    }

    #[test]
    fn tiers_parse() {
        let text = "
policies:
  basic: {rate: 100/min, burst: 20}
  pro: {rate: 500/min, burst: 100, algorithm: gcra}
  login: {rate: 5/min, algorithm: sliding-window, description: brute force guard}
";
        let c = Config::parse(text, "t").expect("valid");
        assert_eq!(c.policies["basic"].limit.capacity(), 20);
        assert_eq!(
            c.policies["login"].limit.algorithm(),
            Algorithm::SlidingWindow
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let text = "
http: nowhere
memory: {when_full: maybe}
policies:
  bad_rate: {rate: 100/mn}
  bad_algo: {rate: 1/s, algorithm: leaky}
  bad_burst: {rate: 1/s, algorithm: fixed-window, burst: 3}
  'no spaces': {rate: 1/s}
";
        let err = Config::parse(text, "t.yaml").expect_err("invalid");
        let all = err.to_string();
        for needle in [
            "http: \"nowhere\"",
            "memory.when_full",
            "policies.bad_rate: rate: invalid rate \"100/mn\"",
            "policies.bad_algo: algorithm",
            "policies.bad_burst: burst",
            "policies.no spaces",
        ] {
            assert!(all.contains(needle), "{needle} missing from:\n{all}");
        }
        assert_eq!(err.problems.len(), 6);
    }

    #[test]
    fn store_failure_settings() {
        let c = Config::parse(
            "store: redis://127.0.0.1:6390/2\non_store_failure: local\nstore_timeout_ms: 20\nbreaker: {failure_threshold: 3, open_for_ms: 500}\n",
            "t",
        )
        .expect("valid");
        assert!(c.redis.is_some());
        assert_eq!(c.guard.on_failure, OnStoreFailure::Local);
        assert_eq!(c.guard.timeout.as_millis(), 20);
        assert_eq!(c.guard.breaker.failure_threshold, 3);
        let err = Config::parse(
            "store: redis//nowhere\non_store_failure: maybe\nbreaker: {open_for_ms: 0}\n",
            "t",
        )
        .expect_err("invalid");
        let all = err.to_string();
        assert!(
            all.contains("store: ") && all.contains("redis//nowhere"),
            "{all}"
        );
        assert!(all.contains("on_store_failure: \"maybe\""), "{all}");
        assert!(all.contains("breaker.open_for_ms"), "{all}");
    }

    #[test]
    fn unknown_fields_and_bad_yaml_are_errors() {
        let err = Config::parse("polices: {}\n", "t").expect_err("typo");
        assert!(err.to_string().contains("polices"), "{err}");
        let err = Config::parse("policies: [\n", "t").expect_err("yaml");
        assert!(err.to_string().contains("line"), "{err}");
    }
}
