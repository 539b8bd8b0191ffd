//! `envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit` over tollgate's store.
//!
//! Decisions, in the order the code makes them:
//! - An empty domain is `INVALID_ARGUMENT`; so is a request with more descriptors than
//!   `limits.max_checks` (the same cap as `/v1/check/multi`).
//! - An unknown domain answers OK for every descriptor (envoyproxy/ratelimit does the same),
//!   counted under the policy label `envoy:unknown`. No descriptors answer OK with no
//!   statuses (envoyproxy/ratelimit answers an error there; OK is the fail-open choice).
//! - A descriptor whose entries match no rule, or match a rule without a limit or with
//!   `unlimited: true`, is OK with no `current_limit`.
//! - The enforced descriptors are decided all-or-nothing in one store call: if any is over
//!   its limit, none consumes. This is stricter than envoyproxy/ratelimit, which consumes the
//!   ones under their limit. A `shadow_mode` descriptor is decided on its own, consumes as
//!   usual, never answers OVER_LIMIT and is counted under `envoy:<domain>:shadow`.
//! - A hit count larger than a limit could ever admit is OVER_LIMIT for that descriptor
//!   (Envoy expects a status, not an error); the request's other descriptors are then only
//!   peeked, so nothing is consumed.
//! - A store failure is `UNAVAILABLE` with the store's message.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::rate_limit::Unit as ProtoUnit;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{
    Code, DescriptorStatus, RateLimit,
};
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::{
    RateLimitService, RateLimitServiceServer,
};
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use envoy_types::pb::google::protobuf::Duration;
use tollgate_core::{Check, Decision, Unit};
use tonic::{Request, Response, Status};

use super::key::store_key;
use super::rules::{EnvoyDomain, EnvoyLimit};
use crate::Service;

/// The policy label under which descriptors of an unconfigured domain are counted (the
/// domain itself is not used as a label: a client could send unbounded many).
pub const UNKNOWN_DOMAIN: &str = "envoy:unknown";

/// The gRPC service to add to a `tonic` server.
pub fn grpc_service(service: Arc<Service>) -> RateLimitServiceServer<EnvoyRateLimit> {
    RateLimitServiceServer::new(EnvoyRateLimit { service })
}

/// The `RateLimitService` implementation; build it with [`grpc_service`].
pub struct EnvoyRateLimit {
    service: Arc<Service>,
}

#[tonic::async_trait]
impl RateLimitService for EnvoyRateLimit {
    async fn should_rate_limit(
        &self,
        request: Request<RateLimitRequest>,
    ) -> Result<Response<RateLimitResponse>, Status> {
        let start = Instant::now();
        let response = self.decide(request.get_ref()).await?;
        self.service
            .record_latency("grpc", start.elapsed().as_secs_f64());
        Ok(Response::new(response))
    }
}

/// A descriptor with a limit, ready for the store.
struct Planned<'a> {
    /// Its position in the request (and in the statuses).
    index: usize,
    key: String,
    limit: Cow<'a, EnvoyLimit>,
    cost: u64,
}

impl Planned<'_> {
    /// Whether the limit could ever admit this cost at once.
    fn fits(&self) -> bool {
        self.cost <= self.limit.limit.capacity()
    }
}

impl EnvoyRateLimit {
    async fn decide(&self, req: &RateLimitRequest) -> Result<RateLimitResponse, Status> {
        if req.domain.is_empty() {
            return Err(Status::invalid_argument(
                "domain is empty: a RateLimitRequest names the domain of its descriptors",
            ));
        }
        let config = self.service.config();
        let max = config.limits.max_checks;
        if req.descriptors.len() > max {
            return Err(Status::invalid_argument(format!(
                "a request holds at most {max} descriptors (limits.max_checks); this one has {}",
                req.descriptors.len()
            )));
        }
        let metrics = self.service.metrics();
        let mut statuses = vec![unlimited_status(); req.descriptors.len()];
        let Some(domain) = config.envoy.domain(&req.domain) else {
            for _ in &req.descriptors {
                metrics.decision(UNKNOWN_DOMAIN, true);
            }
            return Ok(response(statuses));
        };

        let request_hits = match req.hits_addend {
            0 => 1,
            n => u64::from(n),
        };
        let (mut enforced, mut shadow) = (Vec::new(), Vec::new());
        for (index, descriptor) in req.descriptors.iter().enumerate() {
            let Some(limit) = limit_for(domain, descriptor) else {
                continue;
            };
            let entries = descriptor
                .entries
                .iter()
                .map(|e| (e.key.as_str(), e.value.as_str()));
            let planned = Planned {
                index,
                key: store_key(&req.domain, entries),
                cost: hits(descriptor, request_hits),
                limit,
            };
            if planned.limit.shadow_mode {
                shadow.push(planned);
            } else {
                enforced.push(planned);
            }
        }

        let label = format!("envoy:{}", req.domain);
        self.decide_enforced(&enforced, &mut statuses, &label)
            .await?;
        self.decide_shadow(&shadow, &mut statuses, &format!("{label}:shadow"))
            .await?;
        Ok(response(statuses))
    }

    /// Decides the enforced descriptors all-or-nothing.
    async fn decide_enforced(
        &self,
        enforced: &[Planned<'_>],
        statuses: &mut [DescriptorStatus],
        label: &str,
    ) -> Result<(), Status> {
        if enforced.is_empty() {
            return Ok(());
        }
        // With a cost no limit could admit the request is over anyway: peek (cost 0) to
        // report the others' state without consuming, as all-or-nothing requires.
        let all_fit = enforced.iter().all(Planned::fits);
        let checks: Vec<Check<'_>> = enforced
            .iter()
            .map(|p| Check::new(&p.key, p.limit.limit, if all_fit { p.cost } else { 0 }))
            .collect();
        let store = self.service.store();
        let multi = self
            .service
            .timed(store.check_all(&checks))
            .await
            .map_err(store_error)?;
        for (p, d) in enforced.iter().zip(&multi.decisions) {
            let allowed = if all_fit {
                d.allowed
            } else {
                p.fits() && p.cost <= d.remaining
            };
            statuses[p.index] = status(&p.limit, d, allowed);
            self.service.record_decision(label, &p.key, allowed);
        }
        Ok(())
    }

    /// Decides each shadow descriptor on its own; they always answer OK.
    async fn decide_shadow(
        &self,
        shadow: &[Planned<'_>],
        statuses: &mut [DescriptorStatus],
        label: &str,
    ) -> Result<(), Status> {
        let store = self.service.store();
        for p in shadow {
            let cost = if p.fits() { p.cost } else { 0 };
            let d = self
                .service
                .timed(store.check(&p.key, &p.limit.limit, cost))
                .await
                .map_err(store_error)?;
            statuses[p.index] = status(&p.limit, &d, true);
            self.service
                .record_decision(label, &p.key, p.fits() && d.allowed);
        }
        Ok(())
    }
}

/// The limit for one descriptor: its own `limit` override when Envoy sends a usable one
/// (as envoyproxy/ratelimit, before the rules), else the rules'.
fn limit_for<'a>(
    domain: &'a EnvoyDomain,
    descriptor: &RateLimitDescriptor,
) -> Option<Cow<'a, EnvoyLimit>> {
    if descriptor.entries.is_empty() {
        return None;
    }
    let overridden = descriptor.limit.and_then(|o| {
        let unit = from_proto_unit(o.unit)?;
        EnvoyLimit::from_override(u64::from(o.requests_per_unit), unit)
    });
    if let Some(limit) = overridden {
        return Some(Cow::Owned(limit));
    }
    let entries = descriptor
        .entries
        .iter()
        .map(|e| (e.key.as_str(), e.value.as_str()));
    domain.find(entries).map(Cow::Borrowed)
}

/// The cost of a descriptor: its own `hits_addend` when set (0 peeks), else the request's.
/// A refund (`is_negative_hits`) is only a peek: tollgate's guarantees count every admission,
/// so capacity is never given back.
fn hits(descriptor: &RateLimitDescriptor, request_hits: u64) -> u64 {
    if descriptor.is_negative_hits {
        return 0;
    }
    descriptor.hits_addend.map_or(request_hits, |h| h.value)
}

fn store_error(e: tollgate_core::Error) -> Status {
    match e.code() {
        "store_full" | "store_unavailable" => Status::unavailable(e.to_string()),
        // Keys and costs are checked before the store sees them; anything else is a bug.
        _ => Status::internal(e.to_string()),
    }
}

fn response(statuses: Vec<DescriptorStatus>) -> RateLimitResponse {
    let over = statuses.iter().any(|s| s.code == Code::OverLimit as i32);
    RateLimitResponse {
        overall_code: if over { Code::OverLimit } else { Code::Ok } as i32,
        statuses,
        ..RateLimitResponse::default()
    }
}

/// The status of a descriptor without a limit.
fn unlimited_status() -> DescriptorStatus {
    DescriptorStatus {
        code: Code::Ok as i32,
        ..DescriptorStatus::default()
    }
}

fn status(limit: &EnvoyLimit, d: &Decision, allowed: bool) -> DescriptorStatus {
    let ms = d.reset_after_ms;
    DescriptorStatus {
        code: if allowed { Code::Ok } else { Code::OverLimit } as i32,
        current_limit: Some(RateLimit {
            name: limit.name.clone(),
            requests_per_unit: saturate(limit.requests_per_unit),
            unit: to_proto_unit(limit.unit) as i32,
        }),
        limit_remaining: saturate(d.remaining),
        duration_until_reset: Some(Duration {
            seconds: i64::try_from(ms / 1000).unwrap_or(i64::MAX),
            // Below 10^9, so it fits.
            nanos: i32::try_from((ms % 1000) * 1_000_000).unwrap_or(0),
        }),
        quota: None,
    }
}

/// The protocol's counts are 32-bit; tollgate's go to 10^12.
fn saturate(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn to_proto_unit(unit: Unit) -> ProtoUnit {
    match unit {
        Unit::Second => ProtoUnit::Second,
        Unit::Minute => ProtoUnit::Minute,
        Unit::Hour => ProtoUnit::Hour,
        Unit::Day => ProtoUnit::Day,
        // Envoy rules have no millisecond unit; the compiler never produces one.
        Unit::Millisecond => ProtoUnit::Unknown,
    }
}

/// The units an override may use: week, month and year have no tollgate equivalent here.
fn from_proto_unit(unit: i32) -> Option<Unit> {
    match ProtoUnit::try_from(unit).ok()? {
        ProtoUnit::Second => Some(Unit::Second),
        ProtoUnit::Minute => Some(Unit::Minute),
        ProtoUnit::Hour => Some(Unit::Hour),
        ProtoUnit::Day => Some(Unit::Day),
        _ => None,
    }
}
