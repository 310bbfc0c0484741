//! Storage: one trait of typed, atomic operations (`Backend`) that every backend implements —
//! memory (tests), embedded (redb, the default) and redis (single or cluster). Key layout,
//! encodings and TTL mechanics live here and nowhere else; nothing above the store names a key.
//!
//! Each backend provides the one-key primitives of `kv::Kv`; every typed operation below is a
//! single one of them, so it is one atomic step on every backend — but for the writes of
//! several tokens at once (`put_tokens`: one commit, one round trip, each key atomic) and
//! `put_tokens_reading_grant`, those writes then a read, in one round trip on Redis.

pub mod embedded;
mod hot;
mod keys;
pub mod kv;
pub mod memory;
pub mod redis;

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use embedded::EmbeddedStore;
use kv::{Durability, Kv, Once};
pub use memory::MemoryStore;
pub use redis::RedisStore;

use crate::records::{
    AuthCode, CachedDocument, Client, Family, Grant, KeySet, PendingRequest, Session, Token,
    TokenKind, UpstreamLogin,
};
use crate::settings::{Backend as BackendKind, Storage};

/// Why a storage operation failed. `Unavailable` becomes `503 temporarily_unavailable`;
/// it is never mistaken for "not found".
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("storage error: {0}")]
    Backend(String),
    #[error("stored record {key} is unreadable: {problem}")]
    Corrupt { key: String, problem: String },
    #[error("{0}")]
    Config(String),
}

/// What became of a single-use record (a code, a refresh token) when it was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken<T> {
    /// This call took it: no other call will.
    Fresh(T),
    /// It belongs to another client, and was left as it was.
    Held(T),
    /// It had been taken before, at `at`: a replay.
    Used { record: T, at: u64 },
    /// Unknown or expired.
    Missing,
}

/// What the flows need from storage. Every operation is one atomic step on one key, on every
/// backend. `ttl` is how long a record lives in the store; records that carry an `expires_at`
/// are also checked against the app clock by the flows.
#[allow(async_fn_in_trait)]
pub trait Backend {
    // --- clients: kept until deleted ------------------------------------------------------
    /// Returns only after the backend confirmed the write (docs/behaviour.md §2). `ttl`: how
    /// long the store keeps it (`None`: until it is deleted).
    async fn put_client(&self, client: &Client, ttl: Option<Duration>) -> Result<(), StoreError>;
    async fn client(&self, client_id: &str) -> Result<Option<Client>, StoreError>;
    /// `client` for the request paths that only read it (authorize, token, revoke,
    /// introspect): the Redis backend may answer from its client cache, which another
    /// process's change reaches with Redis's invalidation message — a millisecond or so after
    /// the change, so never read-modify-write what this returns (`client` is exact).
    async fn client_cached(&self, client_id: &str) -> Result<Option<Client>, StoreError>;
    /// Whether there was a client to delete.
    async fn delete_client(&self, client_id: &str) -> Result<bool, StoreError>;
    /// Every client id, sorted (administration).
    async fn client_ids(&self) -> Result<Vec<String>, StoreError>;

    // --- the authorization in progress ----------------------------------------------------
    async fn put_pending(
        &self,
        id: &str,
        pending: &PendingRequest,
        ttl: Duration,
    ) -> Result<(), StoreError>;
    async fn pending(&self, id: &str) -> Result<Option<PendingRequest>, StoreError>;
    /// Removes and returns it: a decision on a pending request is made once.
    async fn take_pending(&self, id: &str) -> Result<Option<PendingRequest>, StoreError>;

    // --- upstream sign-in round trips (docs/behaviour.md §14), under the hash of `state` ----
    async fn put_upstream(
        &self,
        state: &str,
        login: &UpstreamLogin,
        ttl: Duration,
    ) -> Result<(), StoreError>;
    /// Removes and returns it: a provider's answer is used once, on whichever process it lands.
    async fn take_upstream(&self, state: &str) -> Result<Option<UpstreamLogin>, StoreError>;

    // --- sessions and remembered consent --------------------------------------------------
    async fn put_session(
        &self,
        id: &str,
        session: &Session,
        ttl: Duration,
    ) -> Result<(), StoreError>;
    async fn session(&self, id: &str) -> Result<Option<Session>, StoreError>;
    /// Ends a session; whether there was one.
    async fn remove_session(&self, id: &str) -> Result<bool, StoreError>;
    /// Stores (or replaces) a person's grant for its client; the person's grants are kept
    /// until `ttl` after the last one written.
    async fn put_grant(
        &self,
        username: &str,
        grant: &Grant,
        ttl: Duration,
    ) -> Result<(), StoreError>;
    async fn grant(&self, username: &str, client_id: &str) -> Result<Option<Grant>, StoreError>;
    /// Every grant of the person, in no particular order.
    async fn grants(&self, username: &str) -> Result<Vec<Grant>, StoreError>;
    /// Removes the person's grant for `client_id`; whether there was one.
    async fn remove_grant(&self, username: &str, client_id: &str) -> Result<bool, StoreError>;

    // --- codes and tokens, stored under the hash of their value ---------------------------
    async fn put_code(
        &self,
        code: &str,
        record: &AuthCode,
        ttl: Duration,
    ) -> Result<(), StoreError>;
    /// Single use (RFC 9700 §4.5): the first call by the code's own client takes it and leaves
    /// a mark for `remember` (so a replay is recognised); another client's call leaves it
    /// alone. `now` is when it was taken, by the app clock.
    async fn take_code(
        &self,
        code: &str,
        client_id: &str,
        remember: Duration,
        now: u64,
    ) -> Result<Taken<AuthCode>, StoreError>;
    /// One token: `put_tokens` with one entry.
    async fn put_token(
        &self,
        kind: TokenKind,
        token: &str,
        record: &Token,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.put_tokens(&[NewToken {
            kind,
            token,
            record,
            ttl,
        }])
        .await
    }
    /// Tokens issued together (an access token and its refresh token): one write, so one
    /// durable commit on the embedded store and one round trip on a single Redis.
    async fn put_tokens(&self, tokens: &[NewToken<'_>]) -> Result<(), StoreError>;
    /// `put_tokens`, then the person's grant for `client_id` as it is after the write: in one
    /// round trip on a single Redis, where reading the grant first would take a second. The
    /// flow checks the grant is still in force and removes the tokens when it is not (they
    /// were never handed out).
    async fn put_tokens_reading_grant(
        &self,
        tokens: &[NewToken<'_>],
        username: &str,
        client_id: &str,
    ) -> Result<Option<Grant>, StoreError>;
    async fn token(&self, kind: TokenKind, token: &str) -> Result<Option<Token>, StoreError>;
    async fn delete_token(&self, kind: TokenKind, token: &str) -> Result<bool, StoreError>;
    /// The first half of a rotation (RFC 9700 §4.14.2): takes the refresh token once, as
    /// `take_code` takes a code; the flow then stores its successor.
    async fn take_refresh(
        &self,
        token: &str,
        client_id: &str,
        remember: Duration,
        now: u64,
    ) -> Result<Taken<Token>, StoreError>;

    // --- token families -------------------------------------------------------------------
    /// Marks a family revoked for `ttl` (longer than any of its tokens lives).
    async fn revoke_family(
        &self,
        family_id: &str,
        family: &Family,
        ttl: Duration,
    ) -> Result<(), StoreError>;
    async fn family(&self, family_id: &str) -> Result<Option<Family>, StoreError>;

    // --- client metadata documents (docs/behaviour.md §12) ---------------------------------
    /// Keeps the fetched document of `url` for `ttl` (past its stale-if-error time).
    async fn put_document(
        &self,
        url: &str,
        document: &CachedDocument,
        ttl: Duration,
    ) -> Result<(), StoreError>;
    async fn document(&self, url: &str) -> Result<Option<CachedDocument>, StoreError>;
    /// Marks `url` as being fetched for `ttl` by the caller; false when another caller's mark
    /// is there, so that processes sharing the store fetch a document once.
    async fn claim_document_fetch(&self, url: &str, ttl: Duration) -> Result<bool, StoreError>;
    /// Removes the mark when the fetch is over.
    async fn release_document_fetch(&self, url: &str) -> Result<(), StoreError>;

    // --- the server's own keys ------------------------------------------------------------
    /// The secret stored under `name`, storing `fresh` first if there is none, so that every
    /// process sharing the store ends up with the same one.
    async fn server_secret(&self, name: &str, fresh: &[u8]) -> Result<Vec<u8>, StoreError>;
    /// The access-token signing keys (docs/behaviour.md §13), durable and kept until replaced.
    async fn signing_keys(&self) -> Result<Option<KeySet>, StoreError>;
    /// Stores the first key set unless another process stored one first; the set in force.
    async fn first_signing_keys(&self, fresh: &KeySet) -> Result<KeySet, StoreError>;
    /// Replaces the key set (`doorman keys rotate`, one operator at a time).
    async fn put_signing_keys(&self, keys: &KeySet) -> Result<(), StoreError>;

    async fn ping(&self) -> Result<(), StoreError>;
}

impl<K: Kv> Backend for K {
    async fn put_client(&self, client: &Client, ttl: Option<Duration>) -> Result<(), StoreError> {
        put_json(self, &keys::client(&client.client_id), client, ttl).await
    }

    async fn client(&self, client_id: &str) -> Result<Option<Client>, StoreError> {
        get_json(self, &keys::client(client_id)).await
    }

    async fn client_cached(&self, client_id: &str) -> Result<Option<Client>, StoreError> {
        let key = keys::client(client_id);
        read(&key, self.get_cached(&key).await?)
    }

    async fn delete_client(&self, client_id: &str) -> Result<bool, StoreError> {
        Ok(self.remove(&keys::client(client_id)).await?.is_some())
    }

    async fn client_ids(&self) -> Result<Vec<String>, StoreError> {
        let mut ids: Vec<String> = self
            .scan(keys::CLIENT)
            .await?
            .into_iter()
            .filter_map(|k| k.strip_prefix(keys::CLIENT).map(str::to_owned))
            .collect();
        ids.sort();
        Ok(ids)
    }

    async fn put_pending(
        &self,
        id: &str,
        pending: &PendingRequest,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let key = keys::pending(id);
        self.put_volatile(&key, &encode(&key, pending)?, Some(ttl))
            .await
    }

    async fn pending(&self, id: &str) -> Result<Option<PendingRequest>, StoreError> {
        get_json(self, &keys::pending(id)).await
    }

    async fn take_pending(&self, id: &str) -> Result<Option<PendingRequest>, StoreError> {
        let key = keys::pending(id);
        read(&key, self.remove(&key).await?)
    }

    async fn put_upstream(
        &self,
        state: &str,
        login: &UpstreamLogin,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        put_json(self, &keys::upstream(state), login, Some(ttl)).await
    }

    async fn take_upstream(&self, state: &str) -> Result<Option<UpstreamLogin>, StoreError> {
        let key = keys::upstream(state);
        read(&key, self.remove(&key).await?)
    }

    async fn put_session(
        &self,
        id: &str,
        session: &Session,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let key = keys::session(id);
        self.put_volatile(&key, &encode(&key, session)?, Some(ttl))
            .await
    }

    async fn session(&self, id: &str) -> Result<Option<Session>, StoreError> {
        get_json(self, &keys::session(id)).await
    }

    async fn remove_session(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.remove(&keys::session(id)).await?.is_some())
    }

    async fn put_grant(
        &self,
        username: &str,
        grant: &Grant,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let key = keys::grants(username);
        self.map_set(&key, &grant.client_id, &encode(&key, grant)?, ttl)
            .await
    }

    async fn grant(&self, username: &str, client_id: &str) -> Result<Option<Grant>, StoreError> {
        let key = keys::grants(username);
        read(&key, self.map_get(&key, client_id).await?)
    }

    async fn grants(&self, username: &str) -> Result<Vec<Grant>, StoreError> {
        let key = keys::grants(username);
        self.map_all(&key)
            .await?
            .into_iter()
            .map(|(_, v)| decode(&key, &v))
            .collect()
    }

    async fn remove_grant(&self, username: &str, client_id: &str) -> Result<bool, StoreError> {
        self.map_remove(&keys::grants(username), client_id).await
    }

    async fn put_code(
        &self,
        code: &str,
        record: &AuthCode,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let key = keys::code(code);
        let value = kv::live(&record.client_id, &encode(&key, record)?);
        self.put_volatile(&key, &value, Some(ttl)).await
    }

    async fn take_code(
        &self,
        code: &str,
        client_id: &str,
        remember: Duration,
        now: u64,
    ) -> Result<Taken<AuthCode>, StoreError> {
        take_once(
            self,
            &keys::code(code),
            client_id,
            remember,
            now,
            Durability::Volatile,
        )
        .await
    }

    async fn put_tokens(&self, tokens: &[NewToken<'_>]) -> Result<(), StoreError> {
        let written = token_entries(tokens)?;
        self.put_many(&entries(&written)).await
    }

    async fn put_tokens_reading_grant(
        &self,
        tokens: &[NewToken<'_>],
        username: &str,
        client_id: &str,
    ) -> Result<Option<Grant>, StoreError> {
        let written = token_entries(tokens)?;
        let map = keys::grants(username);
        let grant = self
            .put_many_then_map_get(&entries(&written), &map, client_id)
            .await?;
        read(&map, grant)
    }

    async fn token(&self, kind: TokenKind, token: &str) -> Result<Option<Token>, StoreError> {
        let key = keys::token(kind, token);
        match self.get(&key).await? {
            Some(v) => match kv::parse_live(&v) {
                Some((_, payload)) => decode(&key, payload).map(Some),
                // A mark: the token was rotated out.
                None => Ok(None),
            },
            None => Ok(None),
        }
    }

    async fn delete_token(&self, kind: TokenKind, token: &str) -> Result<bool, StoreError> {
        let removed = self.remove(&keys::token(kind, token)).await?;
        Ok(removed.is_some_and(|v| kv::parse_live(&v).is_some()))
    }

    async fn take_refresh(
        &self,
        token: &str,
        client_id: &str,
        remember: Duration,
        now: u64,
    ) -> Result<Taken<Token>, StoreError> {
        let key = keys::token(TokenKind::Refresh, token);
        take_once(self, &key, client_id, remember, now, Durability::Durable).await
    }

    async fn revoke_family(
        &self,
        family_id: &str,
        family: &Family,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        put_json(self, &keys::family(family_id), family, Some(ttl)).await
    }

    async fn family(&self, family_id: &str) -> Result<Option<Family>, StoreError> {
        get_json(self, &keys::family(family_id)).await
    }

    async fn put_document(
        &self,
        url: &str,
        document: &CachedDocument,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        // A cache: a crash that loses it costs one fetch.
        let key = keys::document(url);
        self.put_volatile(&key, &encode(&key, document)?, Some(ttl))
            .await
    }

    async fn document(&self, url: &str) -> Result<Option<CachedDocument>, StoreError> {
        get_json(self, &keys::document(url)).await
    }

    async fn claim_document_fetch(&self, url: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.put_new(&keys::document_fetch(url), b"1", Some(ttl))
            .await
    }

    async fn release_document_fetch(&self, url: &str) -> Result<(), StoreError> {
        self.remove(&keys::document_fetch(url)).await.map(|_| ())
    }

    async fn server_secret(&self, name: &str, fresh: &[u8]) -> Result<Vec<u8>, StoreError> {
        let key = keys::server_secret(name);
        if self.put_new(&key, fresh, None).await? {
            return Ok(fresh.to_vec());
        }
        self.get(&key).await?.ok_or_else(|| StoreError::Corrupt {
            key,
            problem: "vanished right after it was found".into(),
        })
    }

    async fn signing_keys(&self) -> Result<Option<KeySet>, StoreError> {
        get_json(self, keys::SIGNING_KEYS).await
    }

    async fn first_signing_keys(&self, fresh: &KeySet) -> Result<KeySet, StoreError> {
        let key = keys::SIGNING_KEYS;
        if self.put_new(key, &encode(key, fresh)?, None).await? {
            return Ok(fresh.clone());
        }
        get_json(self, key)
            .await?
            .ok_or_else(|| StoreError::Corrupt {
                key: key.to_owned(),
                problem: "vanished right after it was found".into(),
            })
    }

    async fn put_signing_keys(&self, keys: &KeySet) -> Result<(), StoreError> {
        put_json(self, keys::SIGNING_KEYS, keys, None).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.reach().await
    }
}

/// Takes the single-use record under `key` for `client_id`, leaving its mark for `remember`.
async fn take_once<T: DeserializeOwned>(
    kv: &impl Kv,
    key: &str,
    client_id: &str,
    remember: Duration,
    now: u64,
    durability: Durability,
) -> Result<Taken<T>, StoreError> {
    let live = |v: &[u8]| match kv::parse_live(v) {
        Some((_, payload)) => decode(key, payload).map(Some),
        None => Ok(None),
    };
    Ok(
        match kv
            .take_once(key, client_id, now, remember, durability)
            .await?
        {
            Once::Missing => Taken::Missing,
            Once::Taken(v) => live(&v)?.map_or(Taken::Missing, Taken::Fresh),
            Once::Held(v) => live(&v)?.map_or(Taken::Missing, Taken::Held),
            Once::Used(v) => match kv::parse_used(&v) {
                Some((at, record)) => {
                    live(record)?.map_or(Taken::Missing, |record| Taken::Used { record, at })
                }
                None => Taken::Missing,
            },
        },
    )
}

/// The keys and values under which `tokens` are written: each live for its client, under the
/// hash of the token.
fn token_entries(tokens: &[NewToken<'_>]) -> Result<Vec<(String, Vec<u8>, Duration)>, StoreError> {
    tokens
        .iter()
        .map(|t| {
            let key = keys::token(t.kind, t.token);
            let value = kv::live(&t.record.client_id, &encode(&key, t.record)?);
            Ok((key, value, t.ttl))
        })
        .collect()
}

fn entries(written: &[(String, Vec<u8>, Duration)]) -> Vec<kv::Entry<'_>> {
    written
        .iter()
        .map(|(key, value, ttl)| kv::Entry {
            key,
            value,
            ttl: Some(*ttl),
        })
        .collect()
}

/// Writes `value` as JSON under `key`.
async fn put_json<T: Serialize>(
    kv: &impl Kv,
    key: &str,
    value: &T,
    ttl: Option<Duration>,
) -> Result<(), StoreError> {
    kv.put(key, &encode(key, value)?, ttl).await
}

/// Reads the JSON record under `key`.
async fn get_json<T: DeserializeOwned>(kv: &impl Kv, key: &str) -> Result<Option<T>, StoreError> {
    read(key, kv.get(key).await?)
}

fn encode<T: Serialize>(key: &str, value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Backend(format!("cannot encode {key}: {e}")))
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        key: key.to_owned(),
        problem: e.to_string(),
    })
}

fn read<T: DeserializeOwned>(key: &str, value: Option<Vec<u8>>) -> Result<Option<T>, StoreError> {
    value.map(|v| decode(key, &v)).transpose()
}

/// The backend chosen in settings; enum dispatch keeps `AppState` non-generic.
#[derive(Clone)]
pub enum Backends {
    Memory(MemoryStore),
    Embedded(EmbeddedStore),
    Redis(RedisStore),
}

/// The store the flows use: the chosen backend, with a deadline on every operation and its
/// latency recorded for `/metrics`.
#[derive(Clone)]
pub struct Store {
    backend: Backends,
    timeout: Duration,
    latency: std::sync::Arc<crate::metrics::Histogram>,
}

/// Calls one primitive on the chosen backend, under the storage deadline.
/// One token of `Backend::put_tokens`.
#[derive(Debug, Clone, Copy)]
pub struct NewToken<'a> {
    pub kind: TokenKind,
    pub token: &'a str,
    pub record: &'a Token,
    pub ttl: Duration,
}

macro_rules! dispatch {
    ($self:ident, $method:ident ( $($arg:expr),* )) => {{
        let started = std::time::Instant::now();
        let result = match &$self.backend {
            // A memory operation is done when called: no deadline timer to arm and disarm.
            Backends::Memory(s) => s.$method($($arg),*).await,
            Backends::Embedded(s) => $self.deadline(s.$method($($arg),*)).await,
            Backends::Redis(s) => $self.deadline(s.$method($($arg),*)).await,
        };
        $self.latency.observe(started.elapsed());
        result
    }};
}

impl Store {
    /// Opens the backend named in settings.
    pub fn open(settings: &Storage) -> Result<Self, StoreError> {
        let timeout = Duration::from_millis(settings.timeout_ms);
        let backend = match settings.backend {
            BackendKind::Memory => Backends::Memory(MemoryStore::new()),
            BackendKind::Embedded => Backends::Embedded(EmbeddedStore::open(&settings.path)?),
            BackendKind::Redis => Backends::Redis(RedisStore::connect(
                &settings.redis_url,
                settings.redis_mode,
                &settings.key_prefix,
                timeout,
                settings.redis_client_cache,
            )?),
        };
        Ok(Self::new(backend, timeout))
    }

    pub fn new(backend: Backends, timeout: Duration) -> Self {
        Self {
            backend,
            timeout,
            latency: Default::default(),
        }
    }

    /// `fut`, or `Unavailable` when it has not finished within the storage timeout. An
    /// operation done at its first poll — a read the Redis client cache answers, such as the
    /// unknown client's `/authorize` — is returned without arming a timer; the timeout runs
    /// from the first poll that has to wait. (`scripts/profile redis_html`: this and the Redis
    /// keys built without `format!` took 1,134 of the 4,857 instructions the Redis backend added
    /// to that answer over the memory backend's.)
    async fn deadline<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let mut fut = std::pin::pin!(fut);
        let first = std::future::poll_fn(|cx| std::task::Poll::Ready(fut.as_mut().poll(cx))).await;
        if let std::task::Poll::Ready(done) = first {
            return done;
        }
        tokio::time::timeout(self.timeout, fut)
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::Unavailable(format!(
                    "no answer within {} ms",
                    self.timeout.as_millis()
                )))
            })
    }

    /// Latency of every storage operation, for `/metrics`.
    pub fn latency(&self) -> &crate::metrics::Histogram {
        &self.latency
    }

    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backends::Memory(_) => "memory",
            Backends::Embedded(_) => "embedded",
            Backends::Redis(_) => "redis",
        }
    }

    /// The embedded backend, for the periodic purge of expired entries.
    pub fn embedded(&self) -> Option<&EmbeddedStore> {
        match &self.backend {
            Backends::Embedded(s) => Some(s),
            _ => None,
        }
    }
}

impl Kv for Store {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let started = std::time::Instant::now();
        let result = match &self.backend {
            // An embedded read is done when called (see `EmbeddedStore::get`): a deadline
            // could never fire, so none is armed.
            Backends::Memory(s) => s.get(key).await,
            Backends::Embedded(s) => s.get(key).await,
            Backends::Redis(s) => self.deadline(s.get(key)).await,
        };
        self.latency.observe(started.elapsed());
        result
    }
    async fn get_cached(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match &self.backend {
            Backends::Redis(s) => {
                let started = std::time::Instant::now();
                let result = self.deadline(s.get_cached(key)).await;
                self.latency.observe(started.elapsed());
                result
            }
            _ => self.get(key).await,
        }
    }
    async fn put(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), StoreError> {
        dispatch!(self, put(key, value, ttl))
    }
    async fn put_many(&self, entries: &[kv::Entry<'_>]) -> Result<(), StoreError> {
        dispatch!(self, put_many(entries))
    }
    async fn put_many_then_map_get(
        &self,
        entries: &[kv::Entry<'_>],
        map: &str,
        field: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        dispatch!(self, put_many_then_map_get(entries, map, field))
    }
    async fn put_new(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        dispatch!(self, put_new(key, value, ttl))
    }
    async fn remove(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        dispatch!(self, remove(key))
    }
    async fn take_once(
        &self,
        key: &str,
        owner: &str,
        stamp: u64,
        mark_ttl: Duration,
        durability: Durability,
    ) -> Result<Once, StoreError> {
        dispatch!(self, take_once(key, owner, stamp, mark_ttl, durability))
    }
    async fn put_volatile(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        dispatch!(self, put_volatile(key, value, ttl))
    }
    async fn map_set(
        &self,
        key: &str,
        field: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        dispatch!(self, map_set(key, field, value, ttl))
    }
    async fn map_get(&self, key: &str, field: &str) -> Result<Option<Vec<u8>>, StoreError> {
        dispatch!(self, map_get(key, field))
    }
    async fn map_all(&self, key: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        dispatch!(self, map_all(key))
    }
    async fn map_remove(&self, key: &str, field: &str) -> Result<bool, StoreError> {
        dispatch!(self, map_remove(key, field))
    }
    async fn scan(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        dispatch!(self, scan(prefix))
    }
    async fn reach(&self) -> Result<(), StoreError> {
        dispatch!(self, reach())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(timeout: Duration) -> Store {
        Store::new(Backends::Memory(MemoryStore::new()), timeout)
    }

    /// An operation done at its first poll is answered as it is, whatever the timeout.
    #[actix_web::test]
    async fn an_operation_done_at_once_is_answered() {
        let got = store(Duration::ZERO)
            .deadline(async { Ok::<_, StoreError>(7) })
            .await;
        assert!(matches!(got, Ok(7)), "{got:?}");
    }

    /// An operation that has to wait still gets the whole timeout, and no more.
    #[actix_web::test]
    async fn an_operation_that_waits_is_timed() {
        let s = store(Duration::from_millis(300));
        let late = s.deadline(async {
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
            Ok::<_, StoreError>(1)
        });
        assert!(matches!(late.await, Ok(1)), "done within the timeout");

        let started = std::time::Instant::now();
        let never = s
            .deadline(std::future::pending::<Result<(), StoreError>>())
            .await;
        assert!(
            matches!(never, Err(StoreError::Unavailable(_))),
            "{never:?}"
        );
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(300) && waited < Duration::from_secs(5),
            "gave up after {waited:?}"
        );
    }
}
