//! Embedded backend: one redb file on local disk. Every write is committed durably before it
//! returns, so an acknowledged registration survives a crash or a restart.
//!
//! Why redb: pure Rust (no C build), one file, ACID with copy-on-write pages and checksums so an
//! interrupted write never leaves a torn database, a stable file format, and active upkeep.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::StoreError;

const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");

#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("embedded database: {e}"))
}

/// Stored value: 8 bytes of expiry (ms since the epoch, 0 = never), then the payload.
fn encode(value: &[u8], ttl: Option<Duration>) -> Vec<u8> {
    let exp = ttl
        .map(|t| now_ms().saturating_add(t.as_millis() as u64))
        .unwrap_or(0);
    let mut out = Vec::with_capacity(8 + value.len());
    out.extend_from_slice(&exp.to_be_bytes());
    out.extend_from_slice(value);
    out
}

fn decode(raw: &[u8], now: u64) -> Option<Vec<u8>> {
    let (exp, payload) = raw.split_at_checked(8)?;
    let exp = u64::from_be_bytes(exp.try_into().ok()?);
    (exp == 0 || exp > now).then(|| payload.to_vec())
}

impl EmbeddedStore {
    /// Opens (or creates) the database file, creating its directory, and drops expired entries.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Backend(format!("cannot create directory {}: {e}", dir.display()))
            })?;
        }
        let db = Database::create(path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Backend(format!(
                "the database {} is already open in another process",
                path.display()
            )),
            other => StoreError::Backend(format!("cannot open {}: {other}", path.display())),
        })?;
        let store = Self { db: Arc::new(db) };
        store.purge_expired_blocking()?;
        Ok(store)
    }

    fn purge_expired_blocking(&self) -> Result<usize, StoreError> {
        let now = now_ms();
        let txn = self.db.begin_write().map_err(backend)?;
        let mut removed = 0;
        {
            let mut table = txn.open_table(KV).map_err(backend)?;
            table
                .retain(|_, v| {
                    let keep = decode(v, now).is_some();
                    removed += usize::from(!keep);
                    keep
                })
                .map_err(backend)?;
        }
        txn.commit().map_err(backend)?;
        Ok(removed)
    }

    /// Removes expired entries; the server calls this now and then.
    pub async fn purge_expired(&self) -> Result<usize, StoreError> {
        let this = self.clone();
        run_blocking(move || this.purge_expired_blocking()).await
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let db = self.db.clone();
        let key = key.to_owned();
        run_blocking(move || {
            let txn = db.begin_read().map_err(backend)?;
            let table = txn.open_table(KV).map_err(backend)?;
            Ok(table
                .get(key.as_str())
                .map_err(backend)?
                .and_then(|v| decode(v.value(), now_ms())))
        })
        .await
    }

    pub async fn set(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        let db = self.db.clone();
        let key = key.to_owned();
        let raw = encode(value, ttl);
        run_blocking(move || {
            let txn = db.begin_write().map_err(backend)?;
            {
                let mut table = txn.open_table(KV).map_err(backend)?;
                table
                    .insert(key.as_str(), raw.as_slice())
                    .map_err(backend)?;
            }
            txn.commit().map_err(backend)
        })
        .await
    }

    pub async fn set_nx(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let db = self.db.clone();
        let key = key.to_owned();
        let raw = encode(value, ttl);
        run_blocking(move || {
            let txn = db.begin_write().map_err(backend)?;
            let written = {
                let mut table = txn.open_table(KV).map_err(backend)?;
                let live = table
                    .get(key.as_str())
                    .map_err(backend)?
                    .is_some_and(|v| decode(v.value(), now_ms()).is_some());
                if !live {
                    table
                        .insert(key.as_str(), raw.as_slice())
                        .map_err(backend)?;
                }
                !live
            };
            txn.commit().map_err(backend)?;
            Ok(written)
        })
        .await
    }

    pub async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.remove(key).await
    }

    pub async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.remove(key).await?.is_some())
    }

    async fn remove(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let db = self.db.clone();
        let key = key.to_owned();
        run_blocking(move || {
            let txn = db.begin_write().map_err(backend)?;
            let old = {
                let mut table = txn.open_table(KV).map_err(backend)?;
                let old = table.remove(key.as_str()).map_err(backend)?;
                old.and_then(|v| decode(v.value(), now_ms()))
            };
            txn.commit().map_err(backend)?;
            Ok(old)
        })
        .await
    }

    pub async fn keys(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let db = self.db.clone();
        let prefix = prefix.to_owned();
        run_blocking(move || {
            let txn = db.begin_read().map_err(backend)?;
            let table = txn.open_table(KV).map_err(backend)?;
            let now = now_ms();
            let mut out = Vec::new();
            for entry in table.range(prefix.as_str()..).map_err(backend)? {
                let (k, v) = entry.map_err(backend)?;
                if !k.value().starts_with(prefix.as_str()) {
                    break;
                }
                if decode(v.value(), now).is_some() {
                    out.push(k.value().to_owned());
                }
            }
            Ok(out)
        })
        .await
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        let db = self.db.clone();
        run_blocking(move || db.begin_read().map(|_| ()).map_err(backend)).await
    }
}

async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    actix_web::rt::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Backend(format!("embedded database task failed: {e}")))?
}
