//! `tollgate serve`: the HTTP API (and the Envoy gRPC API) on the embedded store.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use tollgate_server::{Config, ConfigSource, Overrides, Server, shutdown_signal};

/// Flags of `tollgate serve`. Flags win over the config file's settings.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "With no flags and no config file: HTTP on 127.0.0.1:8080, the embedded \
in-memory store, no policies (checks give a rate inline). The config file is reloaded when it \
changes and on SIGHUP; SIGTERM or Ctrl-C finish the requests in flight and exit 0."
)]
pub struct Args {
    /// The YAML config file (policies, Envoy domains, limits, admin token).
    #[arg(long, short, env = "TOLLGATE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// HTTP listen address [default: 127.0.0.1:8080, or the file's `http`].
    #[arg(long, value_name = "ADDR")]
    pub http: Option<SocketAddr>,
    /// Also serve the Envoy RateLimitService gRPC API [address default: 127.0.0.1:8081].
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = tollgate_server::config::DEFAULT_GRPC)]
    pub grpc: Option<SocketAddr>,
    /// The store: `memory` or a Redis URL (`redis://[user:pass@]host:port/db`, `rediss://…`)
    /// [default: memory, or the file's `store`].
    #[arg(long, env = "TOLLGATE_STORE", value_name = "URL")]
    pub store: Option<String>,
    /// Log filter, as RUST_LOG (e.g. `info`, `tollgate_server=debug`).
    #[arg(long, env = "RUST_LOG", default_value = "info", value_name = "FILTER")]
    pub log: String,
}

/// Runs the server until SIGTERM or Ctrl-C.
pub fn run(args: Args) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&args.log).context("--log")?)
        .with_writer(std::io::stderr)
        .init();
    let overrides = Overrides {
        http: args.http,
        grpc: args.grpc,
        store: args.store,
    };
    overrides.check()?;
    let config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    let config = overrides.apply(config);
    let source = ConfigSource {
        path: args.config,
        overrides,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let server = Server::bind(config, source).await?;
        server.run(shutdown_signal()).await?;
        anyhow::Ok(())
    })
}
