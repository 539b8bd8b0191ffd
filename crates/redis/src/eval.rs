//! Scripts of other crates (the job queues) run on the store's connection, with its
//! topology, timeouts, reconnection and error mapping.

use redis::Value;
use tollgate_core::Error;

use crate::scripts::Lua;
use crate::store::RedisStore;

/// The Lua helpers every script shares: exact integer formatting (`int`), `now_us()` from
/// Redis `TIME`, `ceil_ms`, `expire_at`, errors that name their key, and `gcra_tat` (a GCRA
/// state read). Prepend it to a script; it is run again on every call, so it holds no more
/// than that.
pub const BASE_LUA: &str = include_str!("scripts/base.lua");

/// [`BASE_LUA`] and the limit algorithms' `eval`/`commit` functions (GCRA and the windows):
/// prepend it to a script that decides with the same algorithms.
pub const COMMON_LUA: &str = concat!(
    include_str!("scripts/base.lua"),
    "\n",
    include_str!("scripts/common.lua")
);

/// A Lua script another crate runs on a [`RedisStore`] with [`RedisStore::eval`]: by EVALSHA,
/// and by EVAL when Redis lost it (restart, `SCRIPT FLUSH`, failover).
pub struct LuaScript(Lua);

impl LuaScript {
    /// Hashes `source` once; keep the script in a `static` (`LazyLock`).
    pub fn new(source: &'static str) -> LuaScript {
        LuaScript(Lua::new(source))
    }
}

impl std::fmt::Debug for LuaScript {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LuaScript").finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Runs `script` with `keys` and `args` under the command timeout and returns Redis's
    /// reply. `what` completes the error message ("Redis at … did not {what} within …").
    /// On a Cluster every key must be in one hash slot. A call that times out may still
    /// have run.
    pub async fn eval(
        &self,
        script: &LuaScript,
        keys: &[String],
        args: &[Vec<u8>],
        what: &str,
    ) -> Result<Value, Error> {
        let mut call = script.0.call();
        for key in keys {
            call.key(key.clone());
        }
        for arg in args {
            call.arg(arg.as_slice());
        }
        self.run(what, || {
            let mut conn = self.conn.clone();
            let call = &call;
            async move { call.invoke(&mut conn).await }
        })
        .await
    }

    /// Runs one plain command (for reads such as `SMEMBERS` that need no script).
    pub async fn command(&self, cmd: &redis::Cmd, what: &str) -> Result<Value, Error> {
        self.run(what, || {
            let mut conn = self.conn.clone();
            async move { cmd.query_async(&mut conn).await }
        })
        .await
    }
}
