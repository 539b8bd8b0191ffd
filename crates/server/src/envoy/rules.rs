//! Descriptor rules: their YAML shape and their compiled, matchable form.
//!
//! The shape and the matching are envoyproxy/ratelimit's, so its configs carry over: a
//! domain holds a tree of rules; each level of the tree is matched against the next entry of
//! a request's descriptor, preferring a rule with the entry's key and value over a rule with
//! only its key (a wildcard). The limit that applies is the one on the rule matched by the
//! descriptor's last entry.

use std::collections::BTreeMap;

use serde::Deserialize;
use tollgate_core::{Algorithm, Limit, Rate, Unit};

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

/// The limit a matched rule (or a descriptor's own override) applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvoyLimit {
    /// What the store enforces.
    pub limit: Limit,
    /// `requests_per_unit` as configured, reported back to Envoy.
    pub requests_per_unit: u64,
    /// The unit: second, minute, hour or day.
    pub unit: Unit,
    /// `rate_limit.name`, or empty.
    pub name: String,
    /// Decided and counted, never OVER_LIMIT.
    pub shadow_mode: bool,
}

impl EnvoyLimit {
    /// The limit Envoy asks for in a descriptor's `limit` override: `fixed-window`, as
    /// envoyproxy/ratelimit enforces it. `None` when the override cannot be a limit
    /// (0 requests, or a unit other than second, minute, hour or day).
    pub fn from_override(requests_per_unit: u64, unit: Unit) -> Option<EnvoyLimit> {
        let rate = Rate::new(requests_per_unit, 1, unit).ok()?;
        let limit = Limit::new(rate, Algorithm::FixedWindow, None).ok()?;
        Some(EnvoyLimit {
            limit,
            requests_per_unit,
            unit,
            name: String::new(),
            shadow_mode: false,
        })
    }
}

/// One level of the tree: rules with a value, and rules with only a key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Level {
    /// By key, then by value: two levels so a lookup borrows the request's strings.
    exact: BTreeMap<String, BTreeMap<String, Node>>,
    wildcard: BTreeMap<String, Node>,
}

/// A compiled rule. `unlimited: true` compiles to no limit: both answer OK with no
/// `current_limit`, as in envoyproxy/ratelimit.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    limit: Option<EnvoyLimit>,
    children: Level,
}

impl Level {
    fn child(&self, key: &str, value: &str) -> Option<&Node> {
        self.exact
            .get(key)
            .and_then(|values| values.get(value))
            .or_else(|| self.wildcard.get(key))
    }
}

/// A domain's compiled rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvoyDomain {
    root: Level,
}

impl EnvoyDomain {
    /// The limit for a descriptor given as its `(key, value)` entries, or `None` when no
    /// rule path matches every entry or the last matched rule has no limit.
    pub fn find<'e>(
        &self,
        entries: impl IntoIterator<Item = (&'e str, &'e str)>,
    ) -> Option<&EnvoyLimit> {
        let mut level = &self.root;
        let mut last = None;
        for (key, value) in entries {
            let node = level.child(key, value)?;
            last = Some(node);
            level = &node.children;
        }
        last.and_then(|node| node.limit.as_ref())
    }
}

/// The compiled rules of every domain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvoyRules {
    domains: BTreeMap<String, EnvoyDomain>,
}

impl EnvoyRules {
    /// Compiles the domains, pushing each problem (with its path) onto `problems`.
    pub fn compile(domains: &[DomainSpec], problems: &mut Vec<String>) -> EnvoyRules {
        let mut compiled = BTreeMap::new();
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, spec) in domains.iter().enumerate() {
            let path = format!("envoy[{i}]");
            if spec.domain.is_empty() {
                problems.push(format!("{path}.domain: is empty"));
            } else if let Some(first) = seen.get(spec.domain.as_str()) {
                problems.push(format!(
                    "{path}.domain: {:?} is already defined at envoy[{first}]",
                    spec.domain
                ));
                continue;
            } else {
                seen.insert(&spec.domain, i);
            }
            let root = compile_level(&spec.descriptors, &path, problems);
            compiled.insert(spec.domain.clone(), EnvoyDomain { root });
        }
        EnvoyRules { domains: compiled }
    }

    /// The rules of a domain, if it is configured.
    pub fn domain(&self, name: &str) -> Option<&EnvoyDomain> {
        self.domains.get(name)
    }

    /// The configured domain names, sorted.
    pub fn domains(&self) -> Vec<&str> {
        self.domains.keys().map(String::as_str).collect()
    }

    /// Whether no domain is configured.
    pub fn is_empty(&self) -> bool {
        self.domains.is_empty()
    }
}

fn compile_level(specs: &[DescriptorSpec], parent: &str, problems: &mut Vec<String>) -> Level {
    let mut level = Level::default();
    let mut seen: BTreeMap<(&str, Option<&str>), usize> = BTreeMap::new();
    for (i, spec) in specs.iter().enumerate() {
        let path = format!("{parent}.descriptors[{i}]");
        let children = compile_level(&spec.descriptors, &path, problems);
        let limit = compile_limit(spec, &path, problems);
        if spec.key.is_empty() {
            problems.push(format!("{path}.key: is empty"));
            continue;
        }
        if spec.value.as_deref() == Some("") {
            // envoyproxy/ratelimit reads an empty value as "any value"; say so rather than
            // guess which one the author meant.
            problems.push(format!(
                "{path}.value: is empty; leave it out to match any value"
            ));
            continue;
        }
        if let Some(first) = seen.get(&(spec.key.as_str(), spec.value.as_deref())) {
            let what = match &spec.value {
                Some(v) => format!("key {:?} with value {v:?}", spec.key),
                None => format!("key {:?} with no value", spec.key),
            };
            problems.push(format!(
                "{path}: {what} is already defined at {parent}.descriptors[{first}]"
            ));
            continue;
        }
        seen.insert((spec.key.as_str(), spec.value.as_deref()), i);
        let node = Node { limit, children };
        match &spec.value {
            Some(v) => level
                .exact
                .entry(spec.key.clone())
                .or_default()
                .insert(v.clone(), node),
            None => level.wildcard.insert(spec.key.clone(), node),
        };
    }
    level
}

fn parse_unit(text: &str) -> Option<Unit> {
    // envoyproxy/ratelimit upper-cases the unit, so `MINUTE` and `minute` both work there.
    Some(match text.to_ascii_lowercase().as_str() {
        "second" => Unit::Second,
        "minute" => Unit::Minute,
        "hour" => Unit::Hour,
        "day" => Unit::Day,
        _ => return None,
    })
}

fn compile_limit(
    spec: &DescriptorSpec,
    path: &str,
    problems: &mut Vec<String>,
) -> Option<EnvoyLimit> {
    let tuning = spec.algorithm.is_some() || spec.burst.is_some();
    let Some(rl) = &spec.rate_limit else {
        if tuning {
            problems.push(format!(
                "{path}: algorithm and burst tune a rate_limit; this rule has none"
            ));
        }
        if spec.shadow_mode {
            problems.push(format!(
                "{path}.shadow_mode: applies to this rule's rate_limit, and it has none \
                 (nested rules do not inherit it)"
            ));
        }
        return None;
    };
    let at = format!("{path}.rate_limit");
    if rl.unlimited {
        if rl.unit.is_some() || rl.requests_per_unit.is_some() {
            problems.push(format!(
                "{at}: unlimited: true takes no unit or requests_per_unit"
            ));
        }
        if tuning {
            problems.push(format!(
                "{path}: algorithm and burst do not apply to an unlimited rate_limit"
            ));
        }
        return None;
    }
    let unit = match rl.unit.as_deref() {
        None => {
            problems.push(format!(
                "{at}: unit is missing (second, minute, hour or day), or set unlimited: true"
            ));
            None
        }
        Some(text) => {
            let unit = parse_unit(text);
            if unit.is_none() {
                problems.push(format!(
                    "{at}: unit {text:?} is not second, minute, hour or day"
                ));
            }
            unit
        }
    };
    let requests = match rl.requests_per_unit {
        None => {
            problems.push(format!("{at}: requests_per_unit is missing"));
            None
        }
        Some(0) => {
            problems.push(format!(
                "{at}: requests_per_unit must be at least 1 (use unlimited: true for no limit)"
            ));
            None
        }
        Some(n) => Some(n),
    };
    let algorithm = match spec.algorithm.as_deref() {
        None => Some(Algorithm::FixedWindow),
        Some(text) => match text.parse::<Algorithm>() {
            Ok(a) => Some(a),
            Err(e) => {
                problems.push(format!("{path}.algorithm: {e}"));
                None
            }
        },
    };
    let (unit, requests, algorithm) = (unit?, requests?, algorithm?);
    let rate = match Rate::new(requests, 1, unit) {
        Ok(rate) => rate,
        Err(e) => {
            problems.push(format!("{at}: requests_per_unit: {e}"));
            return None;
        }
    };
    match Limit::new(rate, algorithm, spec.burst) {
        Ok(limit) => Some(EnvoyLimit {
            limit,
            requests_per_unit: requests,
            unit,
            name: rl.name.clone().unwrap_or_default(),
            shadow_mode: spec.shadow_mode,
        }),
        Err(e) => {
            problems.push(format!("{path}.burst: {e}"));
            None
        }
    }
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
