//! The Envoy RateLimitService over a real gRPC connection: a tonic client (Envoy's protos,
//! from envoy-types) against the server bound on 127.0.0.1:0.
//!
//! Limits use hour windows: fixed windows are aligned to the epoch, and a test crossing a
//! minute boundary would see its counts reset.

use std::sync::Arc;

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::{
    Entry, RateLimitOverride,
};
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::rate_limit::Unit;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{Code, DescriptorStatus};
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use envoy_types::pb::google::protobuf::UInt64Value;
use tollgate_server::envoy::grpc_service;
use tollgate_server::{Config, Service};
use tonic::transport::Channel;
use tonic::transport::server::TcpIncoming;

const CONFIG: &str = "
limits: {max_checks: 4}
envoy:
  - domain: edge
    descriptors:
      - key: remote_address
        rate_limit: {unit: hour, requests_per_unit: 3, name: per-ip}
      - key: path
        value: /login
        rate_limit: {unit: hour, requests_per_unit: 1}
      - key: path
        rate_limit: {unit: hour, requests_per_unit: 5}
      - key: shadowed
        shadow_mode: true
        rate_limit: {unit: hour, requests_per_unit: 1}
      - key: vip
        rate_limit: {unlimited: true}
      - key: bursty
        algorithm: gcra
        burst: 2
        rate_limit: {unit: hour, requests_per_unit: 60}
      - key: tenant
        descriptors:
          - key: plan
            value: free
            rate_limit: {unit: hour, requests_per_unit: 2}
          - key: plan
            rate_limit: {unit: hour, requests_per_unit: 10}
";

struct Harness {
    client: RateLimitServiceClient<Channel>,
    service: Arc<Service>,
}

async fn start() -> Harness {
    let config = Config::parse(CONFIG, "test").expect("valid config");
    let store = Arc::new(tollgate_memory::MemoryStore::new());
    let service = Arc::new(Service::new(store, config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let server = tonic::transport::Server::builder()
        .add_service(grpc_service(service.clone()))
        .serve_with_incoming(TcpIncoming::from(listener));
    tokio::spawn(server);
    let client = RateLimitServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    Harness { client, service }
}

fn desc(entries: &[(&str, &str)]) -> RateLimitDescriptor {
    RateLimitDescriptor {
        entries: entries
            .iter()
            .map(|(key, value)| Entry {
                key: key.to_string(),
                value: value.to_string(),
            })
            .collect(),
        ..RateLimitDescriptor::default()
    }
}

fn with_hits(mut d: RateLimitDescriptor, hits: u64) -> RateLimitDescriptor {
    d.hits_addend = Some(UInt64Value { value: hits });
    d
}

impl Harness {
    async fn ask(
        &mut self,
        domain: &str,
        descriptors: Vec<RateLimitDescriptor>,
        hits: u32,
    ) -> RateLimitResponse {
        self.try_ask(domain, descriptors, hits)
            .await
            .expect("answered")
    }

    async fn try_ask(
        &mut self,
        domain: &str,
        descriptors: Vec<RateLimitDescriptor>,
        hits_addend: u32,
    ) -> Result<RateLimitResponse, tonic::Status> {
        let request = RateLimitRequest {
            domain: domain.to_string(),
            descriptors,
            hits_addend,
        };
        Ok(self.client.should_rate_limit(request).await?.into_inner())
    }

    /// One descriptor in `edge`, its status.
    async fn one(&mut self, entries: &[(&str, &str)]) -> DescriptorStatus {
        let response = self.ask("edge", vec![desc(entries)], 0).await;
        assert_eq!(response.statuses.len(), 1);
        response.statuses[0].clone()
    }
}

fn ok(s: &DescriptorStatus) -> bool {
    s.code == Code::Ok as i32
}

fn over(s: &DescriptorStatus) -> bool {
    s.code == Code::OverLimit as i32
}

#[tokio::test]
async fn a_reached_limit_is_over_limit_with_its_state() {
    let mut h = start().await;
    let ip = [("remote_address", "10.0.0.1")];
    for expected in [2, 1, 0] {
        let s = h.one(&ip).await;
        assert!(ok(&s), "{s:?}");
        assert_eq!(s.limit_remaining, expected);
        let limit = s.current_limit.expect("current_limit");
        assert_eq!(
            (limit.requests_per_unit, limit.unit, limit.name.as_str()),
            (3, Unit::Hour as i32, "per-ip")
        );
    }
    let response = h.ask("edge", vec![desc(&ip)], 0).await;
    assert_eq!(response.overall_code, Code::OverLimit as i32);
    let s = &response.statuses[0];
    assert!(over(s), "{s:?}");
    assert_eq!(s.limit_remaining, 0);
    let reset = s.duration_until_reset.expect("duration_until_reset");
    assert!(reset.seconds > 0 || reset.nanos > 0, "{reset:?}");
    assert!(reset.seconds <= 3600, "{reset:?}");
}

#[tokio::test]
async fn rules_match_by_value_wildcard_and_nesting() {
    let mut h = start().await;
    // The rule with the value beats the key-only one.
    assert!(ok(&h.one(&[("path", "/login")]).await));
    assert!(over(&h.one(&[("path", "/login")]).await));
    let s = h.one(&[("path", "/home")]).await;
    assert_eq!((s.code, s.limit_remaining), (Code::Ok as i32, 4));

    // Under a wildcard rule each value has its own bucket.
    for _ in 0..3 {
        assert!(ok(&h.one(&[("remote_address", "10.0.0.1")]).await));
    }
    assert!(over(&h.one(&[("remote_address", "10.0.0.1")]).await));
    let s = h.one(&[("remote_address", "10.0.0.2")]).await;
    assert_eq!((s.code, s.limit_remaining), (Code::Ok as i32, 2));

    // Nested: the limit on the rule the last entry matched, per tenant.
    let free = [("tenant", "acme"), ("plan", "free")];
    assert_eq!(h.one(&free).await.limit_remaining, 1);
    assert_eq!(h.one(&free).await.limit_remaining, 0);
    assert!(over(&h.one(&free).await));
    let s = h.one(&[("tenant", "other"), ("plan", "free")]).await;
    assert_eq!(s.limit_remaining, 1);
    let s = h.one(&[("tenant", "acme"), ("plan", "gold")]).await;
    assert_eq!(s.current_limit.map(|l| l.requests_per_unit), Some(10));

    // No rule for the path, or a rule without a limit: OK, no current_limit.
    for entries in [
        &[("user", "1")][..],
        &[("tenant", "acme")],
        &[("vip", "yes")],
    ] {
        let s = h.one(entries).await;
        assert!(ok(&s) && s.current_limit.is_none(), "{entries:?}: {s:?}");
    }
}

#[tokio::test]
async fn hits_addend_comes_from_the_request_or_the_descriptor() {
    let mut h = start().await;
    let path = desc(&[("path", "/a")]);
    let r = h.ask("edge", vec![path.clone()], 2).await;
    assert_eq!(r.statuses[0].limit_remaining, 3);
    // The descriptor's own hits_addend overrides the request's.
    let r = h.ask("edge", vec![with_hits(path.clone(), 1)], 3).await;
    assert_eq!(r.statuses[0].limit_remaining, 2);
    // 0 set on the descriptor peeks.
    let r = h.ask("edge", vec![with_hits(path.clone(), 0)], 0).await;
    assert_eq!(r.statuses[0].limit_remaining, 2);
    // A refund gives nothing back and consumes nothing: it only reports.
    let refund = RateLimitDescriptor {
        is_negative_hits: true,
        ..with_hits(path.clone(), 2)
    };
    let r = h.ask("edge", vec![refund], 0).await;
    assert_eq!(r.statuses[0].limit_remaining, 2);
    // More than the limit can ever admit: OVER_LIMIT, not an error, and nothing consumed.
    let r = h
        .ask("edge", vec![path.clone(), desc(&[("path", "/b")])], 6)
        .await;
    assert_eq!(r.overall_code, Code::OverLimit as i32);
    assert!(over(&r.statuses[0]) && over(&r.statuses[1]), "{r:?}");
    assert_eq!(r.statuses[1].limit_remaining, 5);
    let r = h.ask("edge", vec![path], 0).await;
    assert_eq!(r.statuses[0].limit_remaining, 1);
}

#[tokio::test]
async fn descriptors_are_decided_all_or_nothing() {
    let mut h = start().await;
    let login = desc(&[("path", "/login")]);
    let home = desc(&[("path", "/home")]);
    let r = h.ask("edge", vec![login.clone(), home.clone()], 0).await;
    assert_eq!(r.overall_code, Code::Ok as i32);
    assert_eq!(r.statuses[1].limit_remaining, 4);
    // /login is now over: /home had room, is reported OK, but does not consume.
    let r = h.ask("edge", vec![login, home.clone()], 0).await;
    assert_eq!(r.overall_code, Code::OverLimit as i32);
    assert!(over(&r.statuses[0]) && ok(&r.statuses[1]), "{r:?}");
    assert_eq!(r.statuses[1].limit_remaining, 4);
    let r = h.ask("edge", vec![home], 0).await;
    assert_eq!(
        r.statuses[0].limit_remaining, 3,
        "only the two admitted requests consumed"
    );
}

#[tokio::test]
async fn shadow_mode_decides_and_counts_but_never_denies() {
    let mut h = start().await;
    let shadowed = desc(&[("shadowed", "x")]);
    let login = desc(&[("path", "/login")]);
    let r = h
        .ask("edge", vec![shadowed.clone(), login.clone()], 0)
        .await;
    assert_eq!(r.overall_code, Code::Ok as i32);
    assert_eq!(r.statuses[0].limit_remaining, 0);
    // Over its limit, still OK; and /login being over does not keep it from being decided.
    let r = h.ask("edge", vec![shadowed, login], 0).await;
    assert_eq!(r.overall_code, Code::OverLimit as i32);
    assert!(ok(&r.statuses[0]) && over(&r.statuses[1]), "{r:?}");
    let metrics = h.service.metrics_text();
    for needle in [
        r#"policy="envoy:edge:shadow",outcome="denied""#,
        r#"policy="envoy:edge:shadow",outcome="allowed""#,
        r#"policy="envoy:edge",outcome="denied""#,
        r#"api="grpc""#,
    ] {
        assert!(metrics.contains(needle), "{needle} missing from\n{metrics}");
    }
}

#[tokio::test]
async fn unknown_domains_empty_requests_and_bad_input() {
    let mut h = start().await;
    let r = h
        .ask("nowhere", vec![desc(&[("path", "/login")]); 2], 0)
        .await;
    assert_eq!(r.overall_code, Code::Ok as i32);
    assert_eq!(r.statuses.len(), 2);
    assert!(
        r.statuses
            .iter()
            .all(|s| ok(s) && s.current_limit.is_none())
    );
    assert!(
        h.service
            .metrics_text()
            .contains(r#"policy="envoy:unknown""#)
    );

    let r = h.ask("edge", vec![], 0).await;
    assert_eq!(r.overall_code, Code::Ok as i32);
    assert!(r.statuses.is_empty());

    let err = h
        .try_ask("", vec![desc(&[("path", "/")])], 0)
        .await
        .expect_err("empty domain");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("domain"), "{}", err.message());

    let err = h
        .try_ask("edge", vec![desc(&[("path", "/")]); 5], 0)
        .await
        .expect_err("too many");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("at most 4"), "{}", err.message());
}

#[tokio::test]
async fn chosen_algorithms_and_envoy_overrides_apply() {
    let mut h = start().await;
    // gcra with a burst of 2: two at once, then a denial.
    let bursty = [("bursty", "k")];
    assert_eq!(h.one(&bursty).await.limit_remaining, 1);
    assert_eq!(h.one(&bursty).await.limit_remaining, 0);
    assert!(over(&h.one(&bursty).await));

    // Envoy's per-descriptor override replaces the rule's limit.
    let mut d = desc(&[("path", "/override")]);
    d.limit = Some(RateLimitOverride {
        requests_per_unit: 1,
        unit: Unit::Hour as i32,
    });
    let r = h.ask("edge", vec![d.clone()], 0).await;
    assert_eq!(
        r.statuses[0]
            .current_limit
            .as_ref()
            .map(|l| l.requests_per_unit),
        Some(1)
    );
    let r = h.ask("edge", vec![d], 0).await;
    assert!(over(&r.statuses[0]), "{r:?}");
}
