//! One GCRA budget per target shared by every replica, in Redis: one round trip per
//! decision (a Lua script, atomic on the server), timed by the server's clock so replicas'
//! clocks do not matter.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, Script};
use tokio::sync::Mutex;

/// GCRA on a theoretical arrival time (TAT) in microseconds. ARGV: emission interval and
/// burst tolerance, both in microseconds. Returns 0 when allowed (and records it), else
/// the microseconds until a slot frees up.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat or tat < now then tat = now end
local wait = tat - tolerance - now
if wait > 0 then return wait end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1000)
return 0
";

/// How long Redis may take before the replica decides alone.
const TIMEOUT: Duration = Duration::from_millis(250);

/// A Redis-backed GCRA.
pub struct RedisGcra {
    client: Client,
    conn: Mutex<Option<MultiplexedConnection>>,
    script: Script,
    prefix: String,
}

impl std::fmt::Debug for RedisGcra {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisGcra")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Why Redis cannot be used. Neither the messages nor the causes name a secret (the
/// URL, with its password, is never in them).
#[derive(Debug, Clone, thiserror::Error)]
pub enum RedisError {
    /// `rate_limit.redis_url` is not a Redis URL (found at start-up, not at first use).
    #[error("not a valid Redis URL")]
    InvalidUrl(#[source] Arc<redis::RedisError>),
    /// No connection could be made.
    #[error("cannot connect to Redis")]
    Connect(#[source] Arc<redis::RedisError>),
    /// The pacing script failed (or the connection broke during it).
    #[error("Redis failed to run the pacing script")]
    Script(#[source] Arc<redis::RedisError>),
    /// Redis did not answer in time.
    #[error("Redis gave no answer within {0} ms")]
    Timeout(u128),
}

impl RedisGcra {
    /// Checks the URL; connects lazily, so a broker starts while Redis is down.
    pub fn new(url: &str, prefix: &str) -> Result<Arc<Self>, RedisError> {
        // rediss:// (TLS) uses rustls with the process-wide provider.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let client = Client::open(url).map_err(|e| RedisError::InvalidUrl(Arc::new(e)))?;
        Ok(Arc::new(Self {
            client,
            conn: Mutex::new(None),
            script: Script::new(GCRA),
            prefix: prefix.to_owned(),
        }))
    }

    async fn connection(&self) -> Result<MultiplexedConnection, RedisError> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT));
        let c = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| RedisError::Connect(Arc::new(e)))?;
        *slot = Some(c.clone());
        Ok(c)
    }

    /// Takes a slot of `key`'s budget (`per_second`, `burst`): `Ok(None)` when granted,
    /// `Ok(Some(wait))` when the next slot is `wait` away.
    pub async fn take(
        &self,
        key: &str,
        per_second: u32,
        burst: u32,
    ) -> Result<Option<Duration>, RedisError> {
        let interval = 1_000_000 / u64::from(per_second.max(1));
        let tolerance = interval * u64::from(burst.max(1) - 1);
        let mut conn = self.connection().await?;
        let mut invocation = self.script.key(format!("{}{key}", self.prefix));
        invocation.arg(interval.max(1)).arg(tolerance);
        let call = invocation.invoke_async::<i64>(&mut conn);
        match tokio::time::timeout(TIMEOUT, call).await {
            Ok(Ok(0)) => Ok(None),
            Ok(Ok(us)) => Ok(Some(Duration::from_micros(us.unsigned_abs()))),
            Ok(Err(e)) => {
                *self.conn.lock().await = None;
                Err(RedisError::Script(Arc::new(e)))
            }
            Err(_) => {
                *self.conn.lock().await = None;
                Err(RedisError::Timeout(TIMEOUT.as_millis()))
            }
        }
    }
}
