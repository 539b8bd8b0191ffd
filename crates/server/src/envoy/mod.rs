//! The Envoy RateLimitService v3 face: domains and descriptor rules in the shape users of
//! envoyproxy/ratelimit know, mapped onto tollgate's algorithms.
//!
//! [`rules`](EnvoyRules) compiles the `envoy:` section of the config into a tree per domain;
//! [`grpc_service`] answers `ShouldRateLimit` by matching each descriptor against it and
//! deciding the matched ones in the store under the keys [`store_key`] builds.

mod grpc;
mod key;
mod rules;

pub use grpc::{EnvoyRateLimit, UNKNOWN_DOMAIN, grpc_service};
pub use key::store_key;
pub use rules::{DescriptorSpec, DomainSpec, EnvoyDomain, EnvoyLimit, EnvoyRules, RateLimitSpec};
