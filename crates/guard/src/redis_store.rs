//! The Redis / Valkey store (standalone or Cluster): one server-side Lua script per decision, loaded once
//! and called by its SHA (EVALSHA; the client reloads it after a server restart), so each decision is one
//! round trip and atomic across every node that shares the server.
//!
//! The scripts take the time from the server (`TIME`), not from the nodes, so nodes with skewed clocks
//! still agree on windows and arrival times. Keys carry a `{hash tag}` so a window's derived key lives on
//! the same Cluster slot as the key the script was given.

use crate::store::{Count, Decision, Gcra, StateStore, StoreError, StoreFuture};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use std::sync::{Arc, RwLock};
use std::time::Duration;

const GCRA_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local emission = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
if cost == 0 then
  local over = tat - now - tolerance
  if over <= 0 then return {1, 0} end
  return {0, over}
end
local new_tat = tat + emission * cost
local over = new_tat - now - tolerance - emission
if over <= 0 then
  redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.floor((new_tat - now) / 1000) + 1)
  return {1, 0}
end
return {0, over}
"#;

const WINDOW_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local w = tonumber(ARGV[1])
local add = tonumber(ARGV[2])
local id = math.floor(now / w)
local key = KEYS[1] .. ':' .. string.format('%.0f', id)
local left = w - (now - id * w)
local c
if add > 0 then
  c = redis.call('INCRBY', key, add)
  if c == add then redis.call('PEXPIRE', key, math.floor(left / 1000) + 1000) end
else
  c = tonumber(redis.call('GET', key)) or 0
end
return {c, left}
"#;

const DISTINCT_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local w = tonumber(ARGV[1])
local id = math.floor(now / w)
local key = KEYS[1] .. ':' .. string.format('%.0f', id)
local left = w - (now - id * w)
if redis.call('PFADD', key, ARGV[2]) == 1 then
  redis.call('PEXPIRE', key, math.floor(left / 1000) + 1000)
end
return {redis.call('PFCOUNT', key), left}
"#;

#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

enum Target {
    Single(redis::Client),
    Cluster(redis::cluster::ClusterClient),
}

pub struct RedisStore {
    target: Target,
    conn: RwLock<Option<Conn>>,
    gcra: redis::Script,
    window: redis::Script,
    distinct: redis::Script,
    /// Connect timeout and per-command response timeout of the client (the decision timeout is applied
    /// above it, by [`crate::guarded::Guarded`]).
    io_timeout: Duration,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

impl RedisStore {
    /// Parses the URL; no I/O. Call [`RedisStore::connect_in_background`] from a long-lived runtime.
    pub fn standalone(url: &str) -> Result<Arc<Self>, StoreError> {
        let client = redis::Client::open(url).map_err(|e| unavailable(format!("bad redis URL: {e}")))?;
        Ok(Arc::new(Self::with(Target::Single(client))))
    }

    pub fn cluster(nodes: &[String]) -> Result<Arc<Self>, StoreError> {
        let client = redis::cluster::ClusterClientBuilder::new(nodes.iter().map(String::as_str))
            .connection_timeout(Duration::from_secs(1))
            .response_timeout(Duration::from_secs(1))
            .build()
            .map_err(|e| unavailable(format!("bad redis cluster nodes: {e}")))?;
        Ok(Arc::new(Self::with(Target::Cluster(client))))
    }

    fn with(target: Target) -> Self {
        RedisStore {
            target,
            conn: RwLock::new(None),
            gcra: redis::Script::new(GCRA_LUA),
            window: redis::Script::new(WINDOW_LUA),
            distinct: redis::Script::new(DISTINCT_LUA),
            io_timeout: Duration::from_secs(1),
        }
    }

    /// Connects now (for tools and tests that want to know).
    pub async fn connect(&self) -> Result<(), StoreError> {
        let conn = match &self.target {
            Target::Single(c) => {
                let cfg = ConnectionManagerConfig::new()
                    .set_connection_timeout(self.io_timeout)
                    .set_response_timeout(self.io_timeout)
                    .set_number_of_retries(2)
                    .set_max_delay(1000);
                Conn::Single(
                    ConnectionManager::new_with_config(c.clone(), cfg)
                        .await
                        .map_err(unavailable)?,
                )
            }
            Target::Cluster(c) => Conn::Cluster(c.get_async_connection().await.map_err(unavailable)?),
        };
        // Load the scripts now so that the first decisions are one EVALSHA round trip, not a NOSCRIPT
        // miss followed by a load (which can exceed a 5 ms decision deadline). A cluster node that
        // lacks a script later is served by the client's reload on NOSCRIPT.
        for script in [&self.gcra, &self.window, &self.distinct] {
            let loaded: Result<String, _> = match &conn {
                Conn::Single(c) => script.prepare_invoke().load_async(&mut c.clone()).await,
                Conn::Cluster(c) => script.prepare_invoke().load_async(&mut c.clone()).await,
            };
            loaded.map_err(unavailable)?;
        }
        *self.conn.write().unwrap_or_else(|p| p.into_inner()) = Some(conn);
        Ok(())
    }

    /// Keeps trying to connect on the current runtime until it succeeds; once connected, the connection
    /// manager reconnects by itself after a failure. Decisions made before then use the fallback.
    pub fn connect_in_background(self: &Arc<Self>) {
        let me = self.clone();
        tokio::spawn(async move {
            let mut delay = Duration::from_millis(100);
            loop {
                match me.connect().await {
                    Ok(()) => {
                        tracing::info!("connected to the redis state store");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in = ?delay, "redis state store unreachable");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                }
            }
        });
    }

    fn conn(&self) -> Result<Conn, StoreError> {
        self.conn
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| StoreError::Unavailable("not connected yet".into()))
    }

    async fn invoke(&self, script: &redis::Script, key: &str, args: &[u64]) -> Result<(i64, i64), StoreError> {
        self.invoke_with(script, key, args, None).await
    }

    async fn invoke_with(
        &self,
        script: &redis::Script,
        key: &str,
        args: &[u64],
        member: Option<&str>,
    ) -> Result<(i64, i64), StoreError> {
        let mut inv = script.key(key);
        for a in args {
            inv.arg(*a);
        }
        if let Some(m) = member {
            inv.arg(m);
        }
        let out: Vec<i64> = match self.conn()? {
            Conn::Single(mut c) => inv.invoke_async(&mut c).await,
            Conn::Cluster(mut c) => inv.invoke_async(&mut c).await,
        }
        .map_err(unavailable)?;
        match out.as_slice() {
            [a, b] => Ok((*a, *b)),
            _ => Err(unavailable("unexpected script reply")),
        }
    }
}

impl StateStore for RedisStore {
    fn gcra<'a>(&'a self, key: &'a str, limit: Gcra, cost: u32) -> StoreFuture<'a, Decision> {
        Box::pin(async move {
            let (allowed, over) = self
                .invoke(
                    &self.gcra,
                    key,
                    &[limit.emission_us, limit.tolerance_us, u64::from(cost)],
                )
                .await?;
            Ok(Decision {
                allowed: allowed == 1,
                retry_after: Duration::from_micros(over.max(0) as u64),
            })
        })
    }

    fn window<'a>(&'a self, key: &'a str, window: Duration, add: u64) -> StoreFuture<'a, (u64, Duration)> {
        Box::pin(async move {
            let w = window.as_micros().max(1) as u64;
            let (count, left) = self.invoke(&self.window, key, &[w, add]).await?;
            Ok((count.max(0) as u64, Duration::from_micros(left.max(0) as u64)))
        })
    }

    fn distinct<'a>(&'a self, key: &'a str, window: Duration, member: &'a str) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            let w = window.as_micros().max(1) as u64;
            let (count, _) = self.invoke_with(&self.distinct, key, &[w], Some(member)).await?;
            Ok(count.max(0) as u64)
        })
    }

    fn add_many<'a>(&'a self, counts: &'a [Count]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut conn = match self.conn()? {
                Conn::Single(c) => c,
                // A cluster spreads the keys over nodes: one command each, multiplexed per node.
                Conn::Cluster(_) => {
                    for c in counts {
                        self.window(&c.key, c.window, c.add).await?;
                    }
                    return Ok(());
                }
            };
            let mut pipe = redis::pipe();
            for c in counts {
                pipe.cmd("EVALSHA")
                    .arg(self.window.get_hash())
                    .arg(1)
                    .arg(&c.key)
                    .arg(c.window.as_micros().max(1) as u64)
                    .arg(c.add)
                    .ignore();
            }
            match pipe.query_async::<()>(&mut conn).await {
                Ok(()) => Ok(()),
                // A restarted server lost the script: load it and send the batch again, once.
                Err(e) if e.kind() == redis::ErrorKind::NoScriptError => {
                    self.window
                        .prepare_invoke()
                        .load_async(&mut conn)
                        .await
                        .map_err(unavailable)?;
                    pipe.query_async::<()>(&mut conn).await.map_err(unavailable)
                }
                Err(e) => Err(unavailable(e)),
            }
        })
    }

    fn kind(&self) -> &'static str {
        match self.target {
            Target::Single(_) => "redis",
            Target::Cluster(_) => "redis-cluster",
        }
    }
}

impl crate::bans::BanStore for RedisStore {
    fn apply<'a>(&'a self, key: &'a str, ops: &'a [crate::bans::BanOp]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            use crate::bans::BanOp;
            let mut pipe = redis::pipe();
            for op in ops {
                match op {
                    // GT: a shorter ban never cuts a longer one short.
                    BanOp::Add(t, until_ms) => pipe.cmd("ZADD").arg(key).arg("GT").arg(*until_ms).arg(t.to_string()),
                    BanOp::Remove(t) => pipe.cmd("ZREM").arg(key).arg(t.to_string()),
                }
                .ignore();
            }
            match self.conn()? {
                Conn::Single(mut c) => pipe.query_async::<()>(&mut c).await,
                Conn::Cluster(mut c) => pipe.query_async::<()>(&mut c).await,
            }
            .map_err(unavailable)
        })
    }

    fn pull<'a>(&'a self, key: &'a str, now_ms: i64, max: usize) -> StoreFuture<'a, Vec<(String, i64)>> {
        Box::pin(async move {
            let mut pipe = redis::pipe();
            pipe.atomic()
                .cmd("ZREMRANGEBYSCORE")
                .arg(key)
                .arg("-inf")
                .arg(now_ms)
                .ignore()
                .cmd("ZRANGEBYSCORE")
                .arg(key)
                .arg(format!("({now_ms}"))
                .arg("+inf")
                .arg("WITHSCORES")
                .arg("LIMIT")
                .arg(0)
                .arg(max);
            let (members,): (Vec<(String, i64)>,) = match self.conn()? {
                Conn::Single(mut c) => pipe.query_async(&mut c).await,
                Conn::Cluster(mut c) => pipe.query_async(&mut c).await,
            }
            .map_err(unavailable)?;
            Ok(members)
        })
    }
}
