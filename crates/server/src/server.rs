//! Running the service: the store, the listeners, the idle-key sweeper, hot reload and a
//! graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tollgate_memory::MemoryStore;

use crate::config::{Config, Overrides};
use crate::{Service, envoy, http};

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// A listener could not bind.
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// `http` or `grpc`.
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// A listener failed while serving.
    #[error("{what} server failed: {message}")]
    Serve {
        /// `http` or `grpc`.
        what: &'static str,
        /// What happened.
        message: String,
    },
}

/// Where the config came from, for reloads.
#[derive(Debug, Clone, Default)]
pub struct ConfigSource {
    /// The YAML file, if any.
    pub path: Option<PathBuf>,
    /// The flags laid over it.
    pub overrides: Overrides,
}

/// The addresses actually bound (useful with port 0).
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    /// HTTP.
    pub http: SocketAddr,
    /// gRPC, if served.
    pub grpc: Option<SocketAddr>,
}

/// A server bound to its addresses, ready to run.
pub struct Server {
    service: Arc<Service>,
    memory: Option<Arc<MemoryStore>>,
    http: TcpListener,
    grpc: Option<TcpListener>,
    bound: Bound,
}

impl Server {
    /// Builds the store and the service and binds the listeners, so that a bad address or
    /// store fails here, before anything is served.
    pub async fn bind(config: Config, source: ConfigSource) -> Result<Server, ServeError> {
        let bind = |addr: SocketAddr, what: &'static str| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| ServeError::Bind { addr, what, source })
        };
        let http = bind(config.http, "http").await?;
        let grpc = match config.grpc {
            Some(addr) => Some(bind(addr, "grpc").await?),
            None => None,
        };
        let local = |l: &TcpListener, fallback: SocketAddr| l.local_addr().unwrap_or(fallback);
        let bound = Bound {
            http: local(&http, config.http),
            grpc: grpc.as_ref().zip(config.grpc).map(|(l, a)| local(l, a)),
        };
        // Both may wait for a Redis connect timeout; wait once.
        let (built, queues) =
            tokio::join!(crate::store::build(&config), crate::queues::build(&config));
        let memory = built.memory;
        let mut service = Service::new(built.store, config).with_queues(queues);
        if let Some(health) = built.health {
            service = service.with_store_health(health);
        }
        if let Some(path) = source.path {
            service = service.with_config_file(path, source.overrides);
        }
        Ok(Server {
            service: Arc::new(service),
            memory,
            http,
            grpc,
            bound,
        })
    }

    /// The addresses bound.
    pub fn bound(&self) -> Bound {
        self.bound
    }

    /// The service, shared with the handlers.
    pub fn service(&self) -> Arc<Service> {
        self.service.clone()
    }

    /// Serves until `shutdown` completes, then stops accepting, lets requests in flight
    /// finish, and returns.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let stopped = move || {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        };
        let sweeper = self.memory.clone().map(|memory| {
            tokio::spawn(sweep_idle_keys(
                memory,
                self.service.config().sweep_interval_secs,
                stopped(),
            ))
        });
        let reloader = tokio::spawn(crate::reload::watch(self.service.clone(), stopped()));
        let sampler = tokio::spawn(sample_stats(self.service.clone(), stopped()));

        tracing::info!(addr = %self.bound.http, "HTTP API listening");
        let app =
            http::app(self.service.clone()).into_make_service_with_connect_info::<SocketAddr>();
        // Without TCP_NODELAY, small responses can wait ~40 ms for Nagle's algorithm.
        let http_listener = self.http.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let http_server = axum::serve(http_listener, app).with_graceful_shutdown(stopped());
        let grpc_server = self.grpc.map(|listener| {
            tracing::info!(addr = ?self.bound.grpc, "Envoy RateLimitService gRPC listening");
            let incoming =
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
            tonic::transport::Server::builder()
                .add_service(envoy::grpc_service(self.service.clone()))
                .serve_with_incoming_shutdown(incoming, stopped())
        });

        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutting down: finishing requests in flight");
            let _ = stop_tx.send(true);
        });
        let http_result = async {
            http_server.await.map_err(|e| ServeError::Serve {
                what: "http",
                message: e.to_string(),
            })
        };
        let grpc_result = async {
            match grpc_server {
                Some(server) => server.await.map_err(|e| ServeError::Serve {
                    what: "grpc",
                    message: e.to_string(),
                }),
                None => Ok(()),
            }
        };
        let (http_result, grpc_result) = tokio::join!(http_result, grpc_result);
        if let Some(sweeper) = sweeper {
            sweeper.abort();
        }
        reloader.abort();
        sampler.abort();
        http_result.and(grpc_result)
    }
}

/// Runs `beat` every `period` until `stopped` completes; a slow beat delays the next one
/// rather than bunching them up.
async fn every<F, Fut>(period: Duration, stopped: impl Future<Output = ()>, mut beat: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            _ = tick.tick() => beat().await,
        }
    }
}

/// Drops idle keys now and then, so memory shrinks after a burst of keys even when no new
/// key arrives to trigger a shard's own sweep.
async fn sweep_idle_keys(
    store: Arc<MemoryStore>,
    every_secs: u64,
    stopped: impl Future<Output = ()>,
) {
    every(Duration::from_secs(every_secs.max(1)), stopped, || {
        let store = store.clone();
        async move {
            // Sweeping locks each shard in turn; keep it off the request threads.
            let swept = tokio::task::spawn_blocking(move || store.sweep())
                .await
                .unwrap_or(0);
            if swept > 0 {
                tracing::debug!(swept, "dropped idle keys");
            }
        }
    })
    .await;
}

/// Refreshes the stats once a second: the charts' samples, the rates, the queue metrics and
/// the alert rules all come from this beat, whether or not anyone is looking.
async fn sample_stats(service: Arc<Service>, stopped: impl Future<Output = ()>) {
    every(Duration::from_secs(1), stopped, || {
        let service = service.clone();
        async move {
            service.refresh_stats().await;
        }
    })
    .await;
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
