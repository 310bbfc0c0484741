//! Redis backend, single server or Redis Cluster: the production store that several Doorman
//! processes share. Expiring records use Redis TTLs (`SET .. PX`), never a sweeper.
//!
//! Cluster: every operation here touches exactly one key (GET, SET .. PX, SET NX, GETDEL, and
//! a script on one key for `take_once`), so none can fail with CROSSSLOT and no key needs a
//! hash tag. An operation that ever touches several keys together (MULTI/EXEC, a script on
//! several keys, MGET, RENAME) must put them in one slot with a shared `{…}` hash tag. Listing
//! (`scan`) is the one command that spans slots: the cluster client sends KEYS to every
//! primary and joins the answers (`tests/it/cluster.rs` checks both).

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::caching::{CacheConfig, CacheMode};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, CommandCacheConfig, FromRedisValue};

use super::StoreError;
use super::kv::{Durability, Entry, Kv, Once};
use crate::settings::RedisMode;

#[derive(Clone)]
pub struct RedisStore {
    prefix: Arc<str>,
    conn: Conn,
}

#[derive(Clone)]
enum Conn {
    /// Connection managers, each connected on first use and reconnecting by itself after an
    /// outage; a thread always uses the same one (`Managers::mine`).
    Single(Arc<Managers>),
    /// Connected on first use (so Doorman starts while the cluster is still coming up), then
    /// shared; rebuilt when it stops answering (see `Cluster`).
    Cluster(Arc<Cluster>),
}

/// How many connections to a single Redis one store may open: one per thread that uses it,
/// up to this many (threads beyond it share).
const MANAGERS: usize = 16;

/// The client-record cache (`storage.redis_client_cache`), per connection: Redis tracks the
/// keys each connection read and, when one changes (by any process), sends that connection an
/// invalidation message, which drops the entry; a reconnect drops them all (the messages sent
/// meanwhile are lost). Records and "no such client" answers alike: an unknown client's
/// `/authorize` — the answer a restarted or misconfigured client hammers — then costs no round
/// trip. The lifetime bounds what a lost message could leave stale.
const CACHE_ENTRIES: std::num::NonZeroUsize = std::num::NonZeroUsize::new(10_000).unwrap();
const CACHE_TTL: Duration = Duration::from_secs(60);

/// Keys whose reads may be answered from the client cache: client records only.
fn cacheable(key: &str) -> bool {
    key.starts_with(super::keys::CLIENT)
}

/// Per-thread connections to a single Redis. Each actix worker is a single-threaded runtime; a
/// connection's driver task runs on the runtime of the thread that first used it. With one
/// connection for the whole process, every answer for another worker was read on the
/// connection's thread and handed across with a wake-up (measured in issue 15: the Redis read
/// paths served 0.55x the baseline against 0.77x on the memory store); with one per thread, a
/// request's command and its answer stay on its own thread, pipelined with that thread's
/// other requests.
struct Managers {
    managers: Vec<ConnectionManager>,
}

thread_local! {
    /// This thread's slot among the managers, chosen at its first command.
    static SLOT: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

static NEXT_SLOT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Managers {
    fn mine(&self) -> ConnectionManager {
        let slot = SLOT.with(|s| match s.get() {
            Some(slot) => slot,
            None => {
                let slot = NEXT_SLOT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                s.set(Some(slot));
                slot
            }
        });
        self.managers[slot % self.managers.len()].clone()
    }
}

/// A Redis Cluster connection with a watchdog. redis-rs' cluster connection follows topology
/// changes and repairs lost node connections by itself, but under load it was seen (redis 1.8,
/// `scripts/load --cluster --kill-redis`) to stay stuck after a restarted master came back:
/// every command timed out for as long as the process lived, while a fresh connection worked at
/// once. So when every command has failed for `reset_after` on end, the connection is dropped
/// and the next command builds a new one: Doorman recovers by itself (docs/behaviour.md §2).
struct Cluster {
    client: ClusterClient,
    current: std::sync::RwLock<Option<Current>>,
    /// One connection attempt at a time.
    connecting: tokio::sync::Mutex<()>,
    generations: std::sync::atomic::AtomicU64,
    reset_after: Duration,
}

#[derive(Clone)]
struct Current {
    conn: ClusterConnection,
    generation: u64,
    /// Since when every command on this connection has failed; `None` after a success.
    failing_since: Arc<std::sync::Mutex<Option<std::time::Instant>>>,
}

/// One command on the cluster connection. Dropped without `succeeded` — an error, or the
/// store's deadline cancelling it — it counts as a failure.
struct Attempt<'a> {
    cluster: &'a Cluster,
    current: Current,
    ok: bool,
}

impl Attempt<'_> {
    fn succeeded(mut self) {
        self.ok = true;
        *lock(&self.current.failing_since) = None;
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if self.ok {
            return;
        }
        let now = std::time::Instant::now();
        let since = *lock(&self.current.failing_since).get_or_insert(now);
        if now.duration_since(since) >= self.cluster.reset_after {
            self.cluster.reset(self.current.generation, now - since);
        }
    }
}

/// A poisoned lock still holds a usable value here (an `Option` that is only ever replaced).
fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Cluster {
    fn cached(&self) -> Option<Current> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    async fn connection(&self) -> Result<Current, StoreError> {
        if let Some(current) = self.cached() {
            return Ok(current);
        }
        let _one_at_a_time = self.connecting.lock().await;
        if let Some(current) = self.cached() {
            return Ok(current);
        }
        let conn = self
            .client
            .get_async_connection()
            .await
            .map_err(unavailable)?;
        let current = Current {
            conn,
            generation: self
                .generations
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            failing_since: Arc::default(),
        };
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(current.clone());
        Ok(current)
    }

    /// Drops connection `generation` (unless another command replaced it already).
    fn reset(&self, generation: u64, failing_for: Duration) {
        let mut current = self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if current.as_ref().is_some_and(|c| c.generation == generation) {
            *current = None;
            log::warn!(
                "redis cluster: every command failed for {} ms; reconnecting",
                failing_for.as_millis()
            );
        }
    }

    /// `cmd`'s answer, or Redis' error as it came (a command that Redis answered with an error,
    /// such as NOSCRIPT, counts as an answer for the watchdog).
    async fn query_raw<T: FromRedisValue>(
        &self,
        cmd: &Cmd,
    ) -> Result<Result<T, redis::RedisError>, StoreError> {
        let current = self.connection().await?;
        let mut conn = current.conn.clone();
        let attempt = Attempt {
            cluster: self,
            current,
            ok: false,
        };
        let result = cmd.query_async(&mut conn).await;
        if result.is_ok() || result.as_ref().is_err_and(no_script) {
            attempt.succeeded();
        }
        Ok(result)
    }
}

fn no_script(e: &redis::RedisError) -> bool {
    e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript)
}

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("redis: {e}"))
}

impl RedisStore {
    /// Prepares the connection without contacting Redis, so start-up does not depend on Redis
    /// being up already; the first request connects, and `/readyz` reports the state.
    pub fn connect(
        url: &str,
        mode: RedisMode,
        prefix: &str,
        timeout: Duration,
        client_cache: bool,
    ) -> Result<Self, StoreError> {
        let bad_url = |e: redis::RedisError| StoreError::Config(format!("storage.redis_url: {e}"));
        let conn = match mode {
            RedisMode::Single => {
                let mut client = redis::Client::open(url).map_err(bad_url)?;
                let mut config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout))
                    .set_number_of_retries(2)
                    .set_max_delay(Duration::from_millis(500));
                if client_cache {
                    // Client tracking needs RESP3 (its invalidation messages are RESP3 pushes).
                    let info = client.get_connection_info().clone();
                    let resp3 = info
                        .redis_settings()
                        .clone()
                        .set_protocol(redis::ProtocolVersion::RESP3);
                    client =
                        redis::Client::open(info.set_redis_settings(resp3)).map_err(bad_url)?;
                    config = config.set_cache_config(
                        CacheConfig::new()
                            .set_mode(CacheMode::OptIn)
                            .set_size(CACHE_ENTRIES)
                            .set_default_client_ttl(CACHE_TTL),
                    );
                }
                let managers = (0..MANAGERS)
                    .map(|_| {
                        ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(bad_url)?;
                Conn::Single(Arc::new(Managers { managers }))
            }
            RedisMode::Cluster => {
                let nodes: Vec<&str> = url
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .collect();
                let client = ClusterClient::builder(nodes)
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .retries(2)
                    .build()
                    .map_err(bad_url)?;
                Conn::Cluster(Arc::new(Cluster {
                    client,
                    current: std::sync::RwLock::new(None),
                    connecting: tokio::sync::Mutex::new(()),
                    generations: std::sync::atomic::AtomicU64::new(0),
                    reset_after: timeout,
                }))
            }
        };
        Ok(Self {
            prefix: prefix.into(),
            conn,
        })
    }

    fn key(&self, key: &str) -> String {
        // `concat` rather than `format!`: this runs on every operation.
        [&*self.prefix, key].concat()
    }

    /// The commands that write `entries`: SET with its TTL, or DEL for a TTL already over
    /// (gone at once, as in `put`).
    fn writes(&self, entries: &[Entry<'_>]) -> Vec<Cmd> {
        entries
            .iter()
            .map(|e| match e.ttl {
                Some(ttl) if ttl.is_zero() => {
                    let mut cmd = redis::cmd("DEL");
                    cmd.arg(self.key(e.key));
                    cmd
                }
                ttl => {
                    let mut cmd = redis::cmd("SET");
                    cmd.arg(self.key(e.key)).arg(e.value);
                    if let Some(ttl) = ttl {
                        cmd.arg("PX").arg(ttl.as_millis().max(1) as u64);
                    }
                    cmd
                }
            })
            .collect()
    }

    async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, StoreError> {
        self.query_raw(cmd).await?.map_err(unavailable)
    }

    async fn query_raw<T: FromRedisValue>(
        &self,
        cmd: &Cmd,
    ) -> Result<Result<T, redis::RedisError>, StoreError> {
        match &self.conn {
            Conn::Single(m) => Ok(cmd.query_async(&mut m.mine()).await),
            Conn::Cluster(cluster) => cluster.query_raw(cmd).await,
        }
    }

    /// Runs `script` on `key` with `args`: by its SHA1 (EVALSHA — Redis neither receives the
    /// body nor hashes it again); a server that does not hold it (restarted, failed over, a
    /// cluster node that has not run it yet) answers NOSCRIPT, and the body goes whole (EVAL,
    /// which keeps it there for the next call). So a lost script cache never fails a request.
    async fn eval<T: FromRedisValue>(
        &self,
        script: &Lua,
        key: &str,
        args: &[&[u8]],
    ) -> Result<T, StoreError> {
        let cmd = |name: &str, first: &str| {
            let mut cmd = redis::cmd(name);
            cmd.arg(first).arg(1).arg(self.key(key));
            for a in args {
                cmd.arg(*a);
            }
            cmd
        };
        match self.query_raw(&cmd("EVALSHA", script.sha1())).await? {
            Err(e) if no_script(&e) => self.query(&cmd("EVAL", script.body)).await,
            answer => answer.map_err(unavailable),
        }
    }
}

/// A Lua script and its SHA1, computed once.
struct Lua {
    body: &'static str,
    sha1: std::sync::OnceLock<String>,
}

impl Lua {
    const fn new(body: &'static str) -> Self {
        Self {
            body,
            sha1: std::sync::OnceLock::new(),
        }
    }

    fn sha1(&self) -> &str {
        self.sha1
            .get_or_init(|| redis::Script::new(self.body).get_hash().to_owned())
    }
}

/// `take_once` in one step on one key (see `kv::decide_once`, which the other backends run):
/// a live record (`L`, owner length, owner, payload) of the caller's is returned and replaced
/// by its mark (`U`, the stamp, the record); anything else is returned as it is. Answers
/// `{state, value}`: 0 missing, 1 taken, 2 held by another owner, 3 a mark.
static TAKE_ONCE: Lua = Lua::new(
    r"
local v = redis.call('GET', KEYS[1])
if not v then return {0, ''} end
if string.sub(v, 1, 1) == 'L' and #v >= 3 then
  local n = string.byte(v, 2) * 256 + string.byte(v, 3)
  if string.sub(v, 4, 3 + n) == ARGV[1] then
    redis.call('SET', KEYS[1], ARGV[2] .. v, 'PX', ARGV[3])
    return {1, v}
  end
  return {2, v}
end
return {3, v}
",
);

/// `map_set`: the field, then the map's lifetime.
static MAP_SET: Lua = Lua::new(
    r"
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return redis.call('PEXPIRE', KEYS[1], ARGV[3])
",
);

impl Kv for RedisStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.query(redis::cmd("GET").arg(self.key(key))).await
    }

    /// From the connection's client cache when it has one (a single server with the setting
    /// on) and the key is a client record; else a GET.
    async fn get_cached(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.key(key));
        if cacheable(key) {
            cmd.set_cache_config(CommandCacheConfig::new().set_enable_cache(true));
        }
        self.query(&cmd).await
    }

    async fn put(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), StoreError> {
        // A record whose TTL is already over is gone at once, as in the other backends (`PX 1`
        // would leave it readable for a millisecond).
        if ttl.is_some_and(|t| t.is_zero()) {
            return self.remove(key).await.map(|_| ());
        }
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(key)).arg(value);
        if let Some(ttl) = ttl {
            cmd.arg("PX").arg(ttl.as_millis().max(1) as u64);
        }
        self.query(&cmd).await
    }

    /// One pipeline, one round trip, on a single Redis; on a cluster the keys may live on
    /// different nodes, so the SETs go out at once, each to its node.
    async fn put_many(&self, entries: &[Entry<'_>]) -> Result<(), StoreError> {
        let cmds = self.writes(entries);
        match &self.conn {
            Conn::Single(m) => {
                let mut pipe = redis::pipe();
                for cmd in cmds {
                    pipe.add_command(cmd).ignore();
                }
                pipe.query_async::<()>(&mut m.mine())
                    .await
                    .map_err(unavailable)
            }
            Conn::Cluster(_) => {
                futures_util::future::try_join_all(cmds.iter().map(|c| self.query::<()>(c)))
                    .await
                    .map(|_| ())
            }
        }
    }

    /// The writes and the HGET in one pipeline on a single Redis; on a cluster, the writes and
    /// the read go out at once, each to its node.
    async fn put_many_then_map_get(
        &self,
        entries: &[Entry<'_>],
        map: &str,
        field: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        match &self.conn {
            Conn::Single(m) => {
                let mut pipe = redis::pipe();
                for cmd in self.writes(entries) {
                    pipe.add_command(cmd).ignore();
                }
                pipe.cmd("HGET").arg(self.key(map)).arg(field);
                let (value,): (Option<Vec<u8>>,) =
                    pipe.query_async(&mut m.mine()).await.map_err(unavailable)?;
                Ok(value)
            }
            Conn::Cluster(_) => {
                let (_, value) = futures_util::future::try_join(
                    self.put_many(entries),
                    self.map_get(map, field),
                )
                .await?;
                Ok(value)
            }
        }
    }

    /// SET NX: writes only when the key is absent; true when written.
    async fn put_new(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        // A TTL that is already over leaves nothing behind, as in the other backends: the
        // answer is whether the key was free (`PX 1` would hold it for a millisecond).
        if ttl.is_some_and(|t| t.is_zero()) {
            let exists: bool = self.query(redis::cmd("EXISTS").arg(self.key(key))).await?;
            return Ok(!exists);
        }
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(key)).arg(value).arg("NX");
        if let Some(ttl) = ttl {
            cmd.arg("PX").arg(ttl.as_millis().max(1) as u64);
        }
        let reply: Option<String> = self.query(&cmd).await?;
        Ok(reply.is_some())
    }

    /// GETDEL: atomic read-and-remove, so a record is removed once even when two processes
    /// race for it.
    async fn remove(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.query(redis::cmd("GETDEL").arg(self.key(key))).await
    }

    async fn take_once(
        &self,
        key: &str,
        owner: &str,
        stamp: u64,
        mark_ttl: Duration,
        _durability: Durability,
    ) -> Result<Once, StoreError> {
        let mut prefix = Vec::with_capacity(9);
        prefix.push(b'U');
        prefix.extend_from_slice(&stamp.to_be_bytes());
        let mark_ttl = (mark_ttl.as_millis().max(1) as u64).to_string();
        let (state, value): (u8, Vec<u8>) = self
            .eval(
                &TAKE_ONCE,
                key,
                &[owner.as_bytes(), &prefix, mark_ttl.as_bytes()],
            )
            .await?;
        Ok(match state {
            1 => Once::Taken(value),
            2 => Once::Held(value),
            3 => Once::Used(value),
            _ => Once::Missing,
        })
    }

    /// HSET and PEXPIRE in one script: the field and the map's lifetime change together.
    async fn map_set(
        &self,
        key: &str,
        field: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        // PEXPIRE 0 removes the map at once, as a zero TTL does elsewhere.
        let ttl = (ttl.as_millis() as u64).to_string();
        let _: i64 = self
            .eval(&MAP_SET, key, &[field.as_bytes(), value, ttl.as_bytes()])
            .await?;
        Ok(())
    }

    async fn map_get(&self, key: &str, field: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.query(redis::cmd("HGET").arg(self.key(key)).arg(field))
            .await
    }

    async fn map_all(&self, key: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.query(redis::cmd("HGETALL").arg(self.key(key))).await
    }

    async fn map_remove(&self, key: &str, field: &str) -> Result<bool, StoreError> {
        let n: u64 = self
            .query(redis::cmd("HDEL").arg(self.key(key)).arg(field))
            .await?;
        Ok(n > 0)
    }

    /// Keys under `prefix` (admin listings; not on a request path). Cluster: KEYS, which the
    /// client sends to every primary and combines.
    async fn scan(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let pattern = format!("{}{}*", escape_glob(&self.prefix), escape_glob(prefix));
        let full: Vec<String> = match &self.conn {
            Conn::Single(_) => {
                let mut out = Vec::new();
                let mut cursor: u64 = 0;
                loop {
                    let (next, batch): (u64, Vec<String>) = self
                        .query(
                            redis::cmd("SCAN")
                                .arg(cursor)
                                .arg("MATCH")
                                .arg(&pattern)
                                .arg("COUNT")
                                .arg(1000),
                        )
                        .await?;
                    out.extend(batch);
                    if next == 0 {
                        break out;
                    }
                    cursor = next;
                }
            }
            Conn::Cluster(..) => self.query(redis::cmd("KEYS").arg(&pattern)).await?,
        };
        Ok(full
            .into_iter()
            .filter_map(|k| k.strip_prefix(&*self.prefix).map(str::to_owned))
            .collect())
    }

    async fn reach(&self) -> Result<(), StoreError> {
        let _: String = self.query(&redis::cmd("PING")).await?;
        Ok(())
    }
}

fn escape_glob(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
