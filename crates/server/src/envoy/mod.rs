//! The Envoy RateLimitService v3 face: domains and descriptor rules in the shape users of
//! envoyproxy/ratelimit know, mapped onto tollgate's algorithms.

mod rules;

pub use rules::{DescriptorSpec, DomainSpec, EnvoyRules, RateLimitSpec};
