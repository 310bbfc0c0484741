//! The storage interface: one enum over three backends (memory, embedded, redis), raw bytes
//! with TTLs underneath and typed records on top, so no backend can quietly differ.

pub mod embedded;
pub mod memory;
pub mod models;
pub mod redis;

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use embedded::EmbeddedStore;
pub use memory::MemoryStore;
pub use models::{AuthCode, Client, Consent, Family, PendingRequest, Session, Token};
pub use redis::RedisStore;

use crate::settings::{Backend, Storage};

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

/// The backend chosen in settings; enum dispatch keeps `AppState` non-generic.
#[derive(Clone)]
pub enum Backends {
    Memory(MemoryStore),
    Embedded(EmbeddedStore),
    Redis(RedisStore),
}

/// The store with a deadline on every operation.
#[derive(Clone)]
pub struct Store {
    backend: Backends,
    timeout: Duration,
    latency: std::sync::Arc<crate::metrics::Histogram>,
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

const CLIENT: &str = "client:";

impl Store {
    /// Opens the backend named in settings.
    pub fn open(settings: &Storage) -> Result<Self, StoreError> {
        let backend = match settings.backend {
            Backend::Memory => Backends::Memory(MemoryStore::new()),
            Backend::Embedded => Backends::Embedded(EmbeddedStore::open(&settings.path)?),
            Backend::Redis => Backends::Redis(RedisStore::connect(
                &settings.redis_url,
                settings.redis_mode,
                &settings.key_prefix,
                Duration::from_millis(settings.timeout_ms),
            )?),
        };
        Ok(Self::new(
            backend,
            Duration::from_millis(settings.timeout_ms),
        ))
    }

    pub fn new(backend: Backends, timeout: Duration) -> Self {
        Self {
            backend,
            timeout,
            latency: Default::default(),
        }
    }

    /// `fut`, or `Unavailable` when it has not finished within the storage timeout.
    async fn deadline<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
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

    // --- raw operations -------------------------------------------------------------------

    pub async fn get_raw(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
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
    pub async fn set_raw(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        dispatch!(self, set(key, value, ttl))
    }
    /// Writes only when absent; true when this call wrote it.
    pub async fn set_nx_raw(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        dispatch!(self, set_nx(key, value, ttl))
    }
    /// Reads and removes in one atomic step (single-use records).
    pub async fn take_raw(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        dispatch!(self, take(key))
    }
    pub async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        dispatch!(self, delete(key))
    }
    pub async fn keys(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        dispatch!(self, keys(prefix))
    }
    pub async fn ping(&self) -> Result<(), StoreError> {
        dispatch!(self, ping())
    }

    // --- typed records --------------------------------------------------------------------

    pub async fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        self.get_raw(key)
            .await?
            .map(|b| decode(key, &b))
            .transpose()
    }
    pub async fn take_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        self.take_raw(key)
            .await?
            .map(|b| decode(key, &b))
            .transpose()
    }
    pub async fn set_json<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(value)
            .map_err(|e| StoreError::Backend(format!("cannot encode {key}: {e}")))?;
        self.set_raw(key, &bytes, ttl).await
    }

    pub async fn client(&self, client_id: &str) -> Result<Option<Client>, StoreError> {
        // `concat` rather than `format!`: this runs on every authorization request.
        self.get_json(&[CLIENT, client_id].concat()).await
    }
    /// Returns only after the backend confirmed the write (BEHAVIOUR §2).
    pub async fn put_client(&self, client: &Client) -> Result<(), StoreError> {
        self.set_json(&format!("{CLIENT}{}", client.client_id), client, None)
            .await
    }
    pub async fn delete_client(&self, client_id: &str) -> Result<bool, StoreError> {
        self.delete(&format!("{CLIENT}{client_id}")).await
    }
    pub async fn client_ids(&self) -> Result<Vec<String>, StoreError> {
        let mut ids: Vec<String> = self
            .keys(CLIENT)
            .await?
            .into_iter()
            .filter_map(|k| k.strip_prefix(CLIENT).map(str::to_owned))
            .collect();
        ids.sort();
        Ok(ids)
    }
}

/// Keys of the records of the authorization flow.
pub mod keys {
    use crate::oauth::secret::hash;

    pub fn pending(id: &str) -> String {
        format!("pending:{id}")
    }
    pub fn session(id: &str) -> String {
        format!("session:{id}")
    }
    /// Codes and tokens are stored under the hash of their value, never the value.
    pub fn code(code: &str) -> String {
        format!("code:{}", hash(code))
    }
    pub fn used_code(code: &str) -> String {
        format!("usedcode:{}", hash(code))
    }
    pub fn family(id: &str) -> String {
        format!("family:{id}")
    }
    pub fn access(token: &str) -> String {
        format!("at:{}", hash(token))
    }
    pub fn refresh(token: &str) -> String {
        format!("rt:{}", hash(token))
    }
    pub fn used_refresh(token: &str) -> String {
        format!("usedrt:{}", hash(token))
    }
    pub fn consent(username: &str, client_id: &str) -> String {
        format!("consent:{client_id}:{}", hash(username))
    }
    pub const COOKIE_KEY: &str = "meta:cookie_key";
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        key: key.to_owned(),
        problem: e.to_string(),
    })
}
