//! Where the queue commands find the queues: a store URL (`--store`, `TOLLGATE_STORE`: a
//! Redis URL) or a running `tollgate serve` (`--server`, `TOLLGATE_SERVER`), which may keep
//! its queues in the embedded store.

use std::sync::Arc;

use anyhow::{Context, bail};
use tollgate_queue::{HttpQueues, QueueStore, RedisQueues};

/// Flags every queue and worker command shares.
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// Reach the queues directly in this store: a Redis URL (redis://, rediss://,
    /// redis+sentinel://, redis+cluster://). Wins over --server.
    #[arg(long, value_name = "URL", env = "TOLLGATE_STORE", global = true)]
    pub store: Option<String>,

    /// Reach the queues through a running `tollgate serve` (any store, the embedded one
    /// included).
    #[arg(
        long,
        value_name = "URL",
        env = "TOLLGATE_SERVER",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub server: String,

    /// The server's admin bearer token, when its config sets `admin_token`.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "TOLLGATE_TOKEN",
        global = true,
        hide_env_values = true
    )]
    pub token: Option<String>,

    /// Print data as JSON (one document; errors too, on stderr).
    #[arg(long, global = true)]
    pub json: bool,
}

impl Target {
    /// Opens the queues the flags name.
    pub async fn open(&self) -> anyhow::Result<Arc<dyn QueueStore>> {
        match self.store.as_deref() {
            Some("memory") => bail!(
                "--store memory: the embedded store lives inside one process; run `tollgate \
                 serve` and use --server URL, or give a Redis URL"
            ),
            Some(url) => {
                let queues = RedisQueues::open(url)
                    .await
                    .context("cannot reach the queue store")?;
                Ok(Arc::new(queues))
            }
            None => {
                let mut queues = HttpQueues::new(&self.server)?;
                if let Some(token) = &self.token {
                    queues = queues.bearer_token(token.clone());
                }
                Ok(Arc::new(queues))
            }
        }
    }
}
