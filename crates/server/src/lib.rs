//! `tollgate serve`: the HTTP JSON API, the Envoy RateLimitService gRPC API, named policies
//! from a YAML file with hot reload, and Prometheus metrics, over any [`tollgate_core::Store`].
//!
//! The data flow reads top-down: a request is resolved to a policy ([`Service::resolve`]),
//! decided by the store, and answered with the decision.
#![deny(missing_docs)]

pub mod alerts;
pub mod config;
pub mod envoy;
pub mod http;
pub mod metrics;
mod queues;
mod reload;
mod server;
mod service;
pub mod stats;
mod store;

pub use config::{Config, ConfigError, Overrides};
pub use reload::reload;
pub use server::{Bound, ConfigSource, ServeError, Server, shutdown_signal};
pub use service::{ApiError, CheckRequest, Checked, CheckedBatch, INLINE, Service};
pub use store::HealthProbe;
