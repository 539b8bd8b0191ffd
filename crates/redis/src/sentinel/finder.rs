//! Asking the sentinels where the master is, and connecting to it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, Cmd, ConnectionAddr, ErrorKind, FromRedisValue, IntoConnectionInfo,
    RedisError, RedisResult, Role,
};
use tokio::task::JoinSet;
use tollgate_core::Error;

use crate::config::{Node, RedisConfig};
use crate::connection::settings;
use crate::error::store_error;
use crate::scripts::SCRIPTS;

/// What finding the master needs, and a connection to each sentinel kept between questions.
pub(super) struct Finder {
    pub config: RedisConfig,
    pub target: String,
    pub sentinels: Vec<Node>,
    pub master_name: String,
    pub db: u32,
    /// One connection per sentinel (same order), made when first needed and dropped when it
    /// fails.
    asked: Mutex<Vec<Option<MultiplexedConnection>>>,
}

impl Finder {
    pub fn new(
        config: &RedisConfig,
        target: &str,
        sentinels: &[Node],
        master_name: &str,
        db: u32,
    ) -> Finder {
        Finder {
            config: config.clone(),
            target: target.to_string(),
            sentinels: sentinels.to_vec(),
            master_name: master_name.to_string(),
            db,
            asked: Mutex::new(vec![None; sentinels.len()]),
        }
    }

    /// Asks every sentinel at once, answers in the order they come.
    fn ask_all<T: FromRedisValue + Send + 'static>(
        self: &Arc<Self>,
        cmd: &Cmd,
    ) -> JoinSet<(Node, RedisResult<T>)> {
        let mut asking = JoinSet::new();
        for (i, sentinel) in self.sentinels.iter().enumerate() {
            let (finder, sentinel, cmd) = (self.clone(), sentinel.clone(), cmd.clone());
            asking.spawn(async move {
                let answer = finder.ask(i, &sentinel, &cmd).await;
                (sentinel, answer)
            });
        }
        asking
    }

    /// Finds the master: connects to the first address a sentinel names whose server says
    /// it is a master (a sentinel that has not yet seen a failover may name a demoted one).
    pub async fn find_master(self: &Arc<Self>) -> Result<(Node, MultiplexedConnection), Error> {
        let mut cmd = redis::cmd("SENTINEL");
        cmd.arg("GET-MASTER-ADDR-BY-NAME").arg(&self.master_name);
        let mut asking = self.ask_all::<Option<(String, u16)>>(&cmd);
        let mut unknown = Vec::new();
        let mut tried = Vec::new();
        let mut last_error = None;
        while let Some(joined) = asking.join_next().await {
            let Ok((sentinel, named)) = joined else {
                continue;
            };
            match named {
                Ok(None) => unknown.push(sentinel.to_string()),
                Ok(Some((host, port))) => {
                    let master = Node { host, port };
                    if tried.contains(&master) {
                        continue;
                    }
                    tried.push(master.clone());
                    match self.connect_master(&master).await {
                        Ok(conn) => return Ok((master, conn)),
                        Err(e) => last_error = Some(e),
                    }
                }
                Err(e) => {
                    let at = format!("{} (sentinel {sentinel})", self.target);
                    last_error = Some(store_error(&at, &e));
                }
            }
        }
        if tried.is_empty() && !unknown.is_empty() {
            // Sentinels answer from their own configuration: a name they do not know is a
            // mistake in the URL, not a passing state.
            return Err(Error::Store {
                message: format!(
                    "Redis at {}: the sentinels at {} know no master named {:?}",
                    self.target,
                    unknown.join(", "),
                    self.master_name
                ),
                transient: false,
            });
        }
        Err(last_error.unwrap_or_else(|| Error::Store {
            message: format!("Redis at {}: no sentinel answered", self.target),
            transient: true,
        }))
    }

    /// The master named by the sentinel with the newest configuration (the highest config
    /// epoch: a failover increments it, and a sentinel that has not heard of the failover yet
    /// still has the old one). `None` when no sentinel answers.
    pub async fn newest_master(self: &Arc<Self>) -> Option<Node> {
        let mut cmd = redis::cmd("SENTINEL");
        cmd.arg("MASTER").arg(&self.master_name);
        let answers = self
            .ask_all::<HashMap<String, String>>(&cmd)
            .join_all()
            .await;
        answers
            .into_iter()
            .filter_map(|(_, answer)| {
                let master = answer.ok()?;
                let epoch: u64 = master.get("config-epoch")?.parse().ok()?;
                let host = master.get("ip")?.clone();
                let port = master.get("port")?.parse().ok()?;
                Some((epoch, Node { host, port }))
            })
            .max_by_key(|(epoch, _)| *epoch)
            .map(|(_, master)| master)
    }

    /// Connects to `master`, checks that it is a master, and loads the scripts.
    pub async fn connect_master(&self, master: &Node) -> Result<MultiplexedConnection, Error> {
        let at = format!("{} (master {master})", self.target);
        let connecting = async {
            let info = ConnectionAddr::Tcp(master.host.clone(), master.port)
                .into_connection_info()?
                .set_redis_settings(settings(&self.config.url, self.db));
            let client = redis::Client::open(info)?;
            let config = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(self.config.connect_timeout))
                .set_response_timeout(Some(self.config.command_timeout));
            let mut conn = client
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            let role: Role = redis::cmd("ROLE").query_async(&mut conn).await?;
            RedisResult::Ok((role, conn))
        };
        let (role, mut conn) = connecting.await.map_err(|e| store_error(&at, &e))?;
        if !matches!(role, Role::Primary { .. }) {
            return Err(Error::Store {
                message: format!("Redis at {at} is not a master (a failover in progress?)"),
                transient: true,
            });
        }
        SCRIPTS
            .load_all(&mut conn)
            .await
            .map_err(|e| store_error(&at, &e))?;
        Ok(conn)
    }

    /// Sends `cmd` to sentinel `i`, on its kept connection or a new one. Sentinels are asked
    /// without credentials, and with the URL's when they require some.
    async fn ask<T: FromRedisValue>(&self, i: usize, sentinel: &Node, cmd: &Cmd) -> RedisResult<T> {
        // On a broken connection or an error reply, ask again on a new connection.
        if let Some(mut conn) = self.take_kept(i)
            && let Ok(answer) = cmd.query_async(&mut conn).await
        {
            self.keep(i, conn);
            return Ok(answer);
        }
        let mut conn = self.connect_sentinel(sentinel, false).await?;
        let answer = match cmd.query_async(&mut conn).await {
            Err(e) if self.config.url.password().is_some() && wants_credentials(&e) => {
                conn = self.connect_sentinel(sentinel, true).await?;
                cmd.query_async(&mut conn).await
            }
            answer => answer,
        }?;
        self.keep(i, conn);
        Ok(answer)
    }

    /// Takes sentinel `i`'s kept connection, if any (the lock is never held across an await).
    fn take_kept(&self, i: usize) -> Option<MultiplexedConnection> {
        let mut asked = self.asked.lock().unwrap_or_else(PoisonError::into_inner);
        asked.get_mut(i).and_then(Option::take)
    }

    /// Keeps `conn` as sentinel `i`'s connection.
    fn keep(&self, i: usize, conn: MultiplexedConnection) {
        let mut asked = self.asked.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = asked.get_mut(i) {
            *slot = Some(conn);
        }
    }

    async fn connect_sentinel(
        &self,
        sentinel: &Node,
        credentials: bool,
    ) -> RedisResult<MultiplexedConnection> {
        let mut info =
            ConnectionAddr::Tcp(sentinel.host.clone(), sentinel.port).into_connection_info()?;
        if credentials {
            info = info.set_redis_settings(settings(&self.config.url, 0));
        }
        let timeout = Some(self.config.connect_timeout);
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(timeout)
            .set_response_timeout(timeout);
        redis::Client::open(info)?
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }
}

fn wants_credentials(e: &RedisError) -> bool {
    e.kind() == ErrorKind::AuthenticationFailed || e.code() == Some("NOAUTH")
}
