//! A closed-loop load generator for Envoy's RateLimitService (`ShouldRateLimit`), used by
//! `scripts/bench/http.sh` against `tollgate serve --grpc`.
//!
//! `--concurrency` workers share `--connections` HTTP/2 connections (worker `i` uses
//! connection `i % connections`). Each worker sends one request, waits for the answer,
//! records the latency and sends the next, until `--duration` has passed or `--requests`
//! have been sent in all. A request carries one descriptor, `<descriptor-key>=<value>`, in
//! `--domain`; the value is drawn at random from `--keys` distinct addresses (`10.0.x.y`).
//!
//! The run is bounded in time (at most 600 s) and talks to loopback addresses only. It
//! prints one JSON object on stdout:
//!
//! ```text
//! cargo run --release -p tollgate-example-grpc-load -- --addr 127.0.0.1:8081 --duration 10
//! {"requests":…,"ok":…,"over_limit":…,"errors":…,"elapsed_s":…,"requests_per_sec":…,
//!  "latency_us":{"p50":…,"p90":…,"p99":…,"p999":…,"max":…,"mean":…},…}
//! ```
#![deny(missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use hdrhistogram::Histogram;
use tonic::transport::{Channel, Endpoint};

/// The longest run allowed, in seconds.
const MAX_DURATION_SECS: f64 = 600.0;
/// Latencies above this (in µs) are recorded as this.
const MAX_LATENCY_US: u64 = 60_000_000;

/// A closed-loop ShouldRateLimit load generator (loopback only).
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// The gRPC server (a loopback address).
    #[arg(long, default_value = "127.0.0.1:8081")]
    addr: SocketAddr,
    /// HTTP/2 connections to open.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
    connections: u32,
    /// Requests in flight at once (closed-loop workers), spread over the connections.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    concurrency: u32,
    /// How long to run, in seconds (at most 600).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Stop after this many requests in all (the duration still bounds the run).
    #[arg(long)]
    requests: Option<u64>,
    /// The rate-limit domain.
    #[arg(long, default_value = "edge")]
    domain: String,
    /// The descriptor entry's key.
    #[arg(long, default_value = "remote_address")]
    descriptor_key: String,
    /// How many distinct descriptor values to draw from.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=65536))]
    keys: u32,
}

/// What one worker saw.
struct Tally {
    latency_us: Histogram<u64>,
    ok: u64,
    over_limit: u64,
    other_code: u64,
    errors: u64,
    first_error: Option<String>,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            latency_us: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                .expect("valid histogram bounds"),
            ok: 0,
            over_limit: 0,
            other_code: 0,
            errors: 0,
            first_error: None,
        }
    }

    fn merge(&mut self, other: Tally) {
        // Both histograms have the same bounds, so adding cannot fail; saturate if it did.
        if self.latency_us.add(&other.latency_us).is_err() {
            for v in other.latency_us.iter_recorded() {
                self.latency_us
                    .saturating_record_n(v.value_iterated_to(), v.count_at_value());
            }
        }
        self.ok += other.ok;
        self.over_limit += other.over_limit;
        self.other_code += other.other_code;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    fn requests(&self) -> u64 {
        self.ok + self.over_limit + self.other_code + self.errors
    }
}

/// The settings every worker shares.
struct Plan {
    domain: String,
    descriptor_key: String,
    keys: u32,
    deadline: Instant,
    /// Requests still to send, when `--requests` bounds the run.
    budget: Option<AtomicU64>,
}

impl Plan {
    /// Takes one request from the budget; false when the run is over.
    fn take(&self) -> bool {
        if Instant::now() >= self.deadline {
            return false;
        }
        match &self.budget {
            None => true,
            Some(left) => left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok(),
        }
    }

    fn request(&self, key: u32) -> RateLimitRequest {
        RateLimitRequest {
            domain: self.domain.clone(),
            descriptors: vec![RateLimitDescriptor {
                entries: vec![Entry {
                    key: self.descriptor_key.clone(),
                    value: format!("10.0.{}.{}", key >> 8, key & 0xff),
                }],
                ..RateLimitDescriptor::default()
            }],
            hits_addend: 1,
        }
    }
}

/// A small xorshift generator: enough to spread keys, no dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// One closed-loop worker: request, wait, record, repeat.
async fn worker(id: u32, channel: Channel, plan: Arc<Plan>) -> Tally {
    let mut client = RateLimitServiceClient::new(channel);
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ (u64::from(id) + 1).wrapping_mul(0x2545_F491));
    let mut tally = Tally::new();
    let keys = u64::from(plan.keys);
    while plan.take() {
        // `keys` ≤ 65536, so the remainder fits in u32.
        let key = u32::try_from(rng.next() % keys).unwrap_or(0);
        let request = plan.request(key);
        let start = Instant::now();
        let result = client.should_rate_limit(request).await;
        let micros = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
        tally
            .latency_us
            .saturating_record(micros.clamp(1, MAX_LATENCY_US));
        match result {
            Ok(response) => match Code::try_from(response.get_ref().overall_code) {
                Ok(Code::Ok) => tally.ok += 1,
                Ok(Code::OverLimit) => tally.over_limit += 1,
                _ => tally.other_code += 1,
            },
            Err(status) => {
                tally.errors += 1;
                if tally.first_error.is_none() {
                    tally.first_error = Some(status.to_string());
                }
            }
        }
    }
    tally
}

async fn run(args: Args) -> anyhow::Result<serde_json::Value> {
    if !args.addr.ip().is_loopback() {
        bail!(
            "--addr {} is not a loopback address; this generator only targets loopback",
            args.addr
        );
    }
    if !(args.duration > 0.0 && args.duration <= MAX_DURATION_SECS) {
        bail!("--duration must be more than 0 and at most {MAX_DURATION_SECS} seconds");
    }
    let uri = format!("http://{}", args.addr);
    let mut channels = Vec::new();
    for _ in 0..args.connections {
        let channel = Endpoint::from_shared(uri.clone())
            .context("the server's URI")?
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .with_context(|| format!("cannot connect to {uri}"))?;
        channels.push(channel);
    }
    let plan = Arc::new(Plan {
        domain: args.domain.clone(),
        descriptor_key: args.descriptor_key.clone(),
        keys: args.keys,
        deadline: Instant::now() + Duration::from_secs_f64(args.duration),
        budget: args.requests.map(AtomicU64::new),
    });
    let start = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for id in 0..args.concurrency {
        let channel = channels[(id % args.connections) as usize].clone();
        workers.spawn(worker(id, channel, plan.clone()));
    }
    let mut total = Tally::new();
    while let Some(done) = workers.join_next().await {
        total.merge(done.context("a worker panicked")?);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let requests = total.requests();
    if requests > 0 && total.errors == requests {
        bail!(
            "every request failed ({requests}); the first error: {}",
            total.first_error.unwrap_or_default()
        );
    }
    let h = &total.latency_us;
    Ok(serde_json::json!({
        "addr": args.addr.to_string(),
        "connections": args.connections,
        "concurrency": args.concurrency,
        "domain": args.domain,
        "keys": args.keys,
        "requests": requests,
        "ok": total.ok,
        "over_limit": total.over_limit,
        "other_code": total.other_code,
        "errors": total.errors,
        "first_error": total.first_error,
        "elapsed_s": (elapsed * 1000.0).round() / 1000.0,
        "requests_per_sec": (requests as f64 / elapsed).round(),
        "latency_us": {
            "p50": h.value_at_quantile(0.50),
            "p90": h.value_at_quantile(0.90),
            "p99": h.value_at_quantile(0.99),
            "p999": h.value_at_quantile(0.999),
            "max": h.max(),
            "mean": (h.mean() * 10.0).round() / 10.0,
        },
    }))
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let outcome = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .and_then(|runtime| runtime.block_on(run(args)));
    match outcome {
        Ok(report) => {
            println!("{report}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
