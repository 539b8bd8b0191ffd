//! Tests of compiling and matching descriptor rules.

use super::*;

fn compile(yaml: &str) -> Result<EnvoyRules, Vec<String>> {
    let specs: Vec<DomainSpec> = match serde_saphyr::from_str(yaml) {
        Ok(specs) => specs,
        Err(e) => panic!("test YAML does not parse: {e}"),
    };
    let mut problems = Vec::new();
    let rules = EnvoyRules::compile(&specs, &mut problems);
    if problems.is_empty() {
        Ok(rules)
    } else {
        Err(problems)
    }
}

fn problems(yaml: &str) -> Vec<String> {
    match compile(yaml) {
        Ok(_) => panic!("should not compile:\n{yaml}"),
        Err(problems) => problems,
    }
}

const EDGE: &str = "
- domain: edge
  descriptors:
    - key: remote_address
      rate_limit: {unit: minute, requests_per_unit: 10}
    - key: path
      value: /login
      rate_limit: {unit: second, requests_per_unit: 1, name: login}
      shadow_mode: true
    - key: path
      rate_limit: {unit: hour, requests_per_unit: 1000}
      algorithm: gcra
      burst: 50
    - key: tenant
      descriptors:
        - key: plan
          value: free
          rate_limit: {unit: day, requests_per_unit: 100}
        - key: plan
          value: vip
          rate_limit: {unlimited: true}
        - key: plan
          rate_limit: {unit: DAY, requests_per_unit: 1000}
";

fn find<'r>(
    rules: &'r EnvoyRules,
    entries: &[(&'static str, &'static str)],
) -> Option<&'r EnvoyLimit> {
    rules.domain("edge")?.find(entries.iter().copied())
}

#[test]
fn matching_follows_envoyproxy() {
    let rules = compile(EDGE).expect("valid");
    let per_ip = find(&rules, &[("remote_address", "10.0.0.1")]).expect("wildcard");
    assert_eq!(per_ip.limit.algorithm(), Algorithm::FixedWindow);
    assert_eq!((per_ip.requests_per_unit, per_ip.unit), (10, Unit::Minute));

    // A rule with the value beats the key-only rule.
    let login = find(&rules, &[("path", "/login")]).expect("exact");
    assert_eq!((login.name.as_str(), login.shadow_mode), ("login", true));
    let other = find(&rules, &[("path", "/")]).expect("wildcard");
    assert_eq!(other.limit.algorithm(), Algorithm::Gcra);
    assert_eq!(other.limit.capacity(), 50);

    // Nested: the limit of the node the last entry matched.
    let free = find(&rules, &[("tenant", "acme"), ("plan", "free")]).expect("nested");
    assert_eq!(free.requests_per_unit, 100);
    let gold = find(&rules, &[("tenant", "acme"), ("plan", "gold")]).expect("nested wildcard");
    assert_eq!((gold.requests_per_unit, gold.unit), (1000, Unit::Day));

    // No limit: unlimited, a node without a limit, an unmatched entry, too many entries,
    // no entries, an unknown domain.
    assert!(find(&rules, &[("tenant", "acme"), ("plan", "vip")]).is_none());
    assert!(find(&rules, &[("tenant", "acme")]).is_none());
    assert!(find(&rules, &[("user", "1")]).is_none());
    assert!(find(&rules, &[("remote_address", "10.0.0.1"), ("path", "/")]).is_none());
    assert!(find(&rules, &[]).is_none());
    assert!(rules.domain("other").is_none());
    assert_eq!(rules.domains(), ["edge"]);
}

#[test]
fn every_problem_is_reported_with_its_path() {
    let all = problems(
        "
- domain: edge
  descriptors:
    - key: a
      rate_limit: {unit: fortnight, requests_per_unit: 0}
    - key: ''
    - key: b
      value: ''
    - key: c
      rate_limit: {requests_per_unit: 5}
    - key: c
      rate_limit: {unit: second}
    - key: d
      value: x
      algorithm: leaky
      rate_limit: {unit: second, requests_per_unit: 5}
    - key: d
      value: x
    - key: e
      rate_limit: {unit: second, requests_per_unit: 5}
      algorithm: sliding-window
      burst: 3
    - key: f
      burst: 3
      shadow_mode: true
      descriptors:
        - key: g
          rate_limit: {unlimited: true, unit: second}
    - key: h
      rate_limit: {unit: second, requests_per_unit: 1000000000001}
- domain: ''
- domain: edge
",
    );
    let expected = [
        "envoy[0].descriptors[0].rate_limit: unit \"fortnight\" is not second, minute, hour or day",
        "envoy[0].descriptors[0].rate_limit: requests_per_unit must be at least 1",
        "envoy[0].descriptors[1].key: is empty",
        "envoy[0].descriptors[2].value: is empty",
        "envoy[0].descriptors[3].rate_limit: unit is missing",
        "envoy[0].descriptors[4].rate_limit: requests_per_unit is missing",
        "envoy[0].descriptors[4]: key \"c\" with no value is already defined at envoy[0].descriptors[3]",
        "envoy[0].descriptors[5].algorithm: unknown algorithm \"leaky\"",
        "envoy[0].descriptors[6]: key \"d\" with value \"x\" is already defined at envoy[0].descriptors[5]",
        "envoy[0].descriptors[7].burst: invalid burst 3",
        "envoy[0].descriptors[8]: algorithm and burst tune a rate_limit",
        "envoy[0].descriptors[8].shadow_mode: applies to this rule's rate_limit",
        "envoy[0].descriptors[8].descriptors[0].rate_limit: unlimited: true takes no unit",
        "envoy[0].descriptors[9].rate_limit: requests_per_unit: invalid rate",
        "envoy[1].domain: is empty",
        "envoy[2].domain: \"edge\" is already defined at envoy[0]",
    ];
    for needle in expected {
        assert!(
            all.iter().any(|p| p.starts_with(needle)),
            "{needle}\nmissing from:\n{}",
            all.join("\n")
        );
    }
    assert_eq!(all.len(), expected.len(), "{}", all.join("\n"));
}

#[test]
fn the_default_algorithm_is_fixed_window_and_others_can_be_chosen() {
    let rules = compile(
        "
- domain: edge
  descriptors:
    - {key: a, rate_limit: {unit: second, requests_per_unit: 5}}
    - {key: b, algorithm: strict, rate_limit: {unit: second, requests_per_unit: 5}}
    - {key: c, algorithm: sliding-window, rate_limit: {unit: second, requests_per_unit: 5}}
",
    )
    .expect("valid");
    for (key, algorithm) in [
        ("a", Algorithm::FixedWindow),
        ("b", Algorithm::Strict),
        ("c", Algorithm::SlidingWindow),
    ] {
        let limit = find(&rules, &[(key, "v")]).expect("limit");
        assert_eq!(limit.limit.algorithm(), algorithm, "{key}");
    }
}

#[test]
fn overrides_must_be_usable_limits() {
    let limit = EnvoyLimit::from_override(3, Unit::Minute).expect("valid");
    assert_eq!(limit.limit.algorithm(), Algorithm::FixedWindow);
    assert_eq!(limit.limit.capacity(), 3);
    assert!(EnvoyLimit::from_override(0, Unit::Minute).is_none());
}
