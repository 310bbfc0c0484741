//! In-memory backend, for tests: forgets everything when the process ends.
//!
//! The map is split into shards by key, so that workers rarely wait for one another and a
//! growing map rehashes one small shard at a time (one big map stalled every request for the
//! whole rehash, tens of milliseconds once it held a few hundred thousand records). Expired
//! records are dropped as a shard is written to (every time its writes reach its size), so a
//! long run does not grow it without bound.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::StoreError;
use super::kv::{self, Durability, Kv, Once};

/// A record: bytes, or a map (`Kv::map_set`; a person's grants) kept as a map, so that one
/// field is read or written at the cost of one, however many the map has.
enum Value {
    Bytes(Vec<u8>),
    Map(HashMap<String, Vec<u8>>),
}

type Entry = (Value, Option<Instant>);

/// The bytes of a live record; `None` for a map or an expired record.
fn bytes(entry: Option<&Entry>, now: Instant) -> Option<&Vec<u8>> {
    match entry {
        Some((Value::Bytes(v), exp)) if live(exp, now) => Some(v),
        _ => None,
    }
}

/// The live map of an entry.
fn fields(entry: Option<&Entry>, now: Instant) -> Option<&HashMap<String, Vec<u8>>> {
    match entry {
        Some((Value::Map(m), exp)) if live(exp, now) => Some(m),
        _ => None,
    }
}

/// One shard: its records, and the writes since expired ones were last dropped.
#[derive(Default)]
struct Map {
    entries: HashMap<String, Entry>,
    writes: usize,
}

impl std::ops::Deref for Map {
    type Target = HashMap<String, Entry>;
    fn deref(&self) -> &Self::Target {
        &self.entries
    }
}

impl std::ops::DerefMut for Map {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.entries
    }
}

impl Map {
    /// Counts a write; when the writes reach the shard's size (at least 1,024), drops the
    /// expired records — amortised, a constant amount of work per write.
    fn wrote(&mut self, now: Instant) {
        self.writes += 1;
        if self.writes >= self.entries.len().max(1024) {
            self.entries.retain(|_, (_, exp)| live(exp, now));
            self.writes = 0;
        }
    }
}

const SHARDS: usize = 16;

#[derive(Clone, Default)]
pub struct MemoryStore {
    shards: Arc<[Mutex<Map>; SHARDS]>,
}

fn live(exp: &Option<Instant>, now: Instant) -> bool {
    exp.is_none_or(|e| e > now)
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// The shard of `key`, chosen by its last bytes: every key ends in a random or hashed part.
    fn lock(&self, key: &str) -> Result<MutexGuard<'_, Map>, StoreError> {
        let h = key.bytes().rev().take(8).fold(0usize, |h, b| {
            h.wrapping_mul(31).wrapping_add(usize::from(b))
        });
        lock(&self.shards[h % SHARDS])
    }
}

impl Kv for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let map = self.lock(key)?;
        Ok(bytes(map.get(key), Instant::now()).cloned())
    }

    async fn put(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), StoreError> {
        let mut map = self.lock(key)?;
        let now = Instant::now();
        map.insert(
            key.to_owned(),
            (Value::Bytes(value.to_vec()), ttl.map(|t| now + t)),
        );
        map.wrote(now);
        Ok(())
    }

    async fn put_new(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let mut map = self.lock(key)?;
        let now = Instant::now();
        let taken = map.get(key).is_some_and(|(_, exp)| live(exp, now));
        if !taken {
            map.insert(
                key.to_owned(),
                (Value::Bytes(value.to_vec()), ttl.map(|t| now + t)),
            );
            map.wrote(now);
        }
        Ok(!taken)
    }

    async fn remove(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut map = self.lock(key)?;
        let now = Instant::now();
        Ok(match map.remove(key) {
            Some((Value::Bytes(v), exp)) if live(&exp, now) => Some(v),
            _ => None,
        })
    }

    async fn take_once(
        &self,
        key: &str,
        owner: &str,
        stamp: u64,
        mark_ttl: Duration,
        _durability: Durability,
    ) -> Result<Once, StoreError> {
        let mut map = self.lock(key)?;
        let now = Instant::now();
        let current = bytes(map.get(key), now).cloned();
        let (mark, once) = kv::decide_once(current, owner, stamp);
        if let Some(mark) = mark {
            map.insert(key.to_owned(), (Value::Bytes(mark), Some(now + mark_ttl)));
        }
        Ok(once)
    }

    async fn map_set(
        &self,
        key: &str,
        field: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let mut map = self.lock(key)?;
        let now = Instant::now();
        let exp = Some(now + ttl);
        match map.get_mut(key) {
            Some((Value::Map(fields), at)) if live(at, now) => {
                fields.insert(field.to_owned(), value.to_vec());
                *at = exp;
            }
            _ => {
                let fields = HashMap::from([(field.to_owned(), value.to_vec())]);
                map.insert(key.to_owned(), (Value::Map(fields), exp));
            }
        }
        map.wrote(now);
        Ok(())
    }

    async fn map_get(&self, key: &str, field: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let map = self.lock(key)?;
        Ok(fields(map.get(key), Instant::now()).and_then(|m| m.get(field).cloned()))
    }

    async fn map_all(&self, key: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let map = self.lock(key)?;
        Ok(fields(map.get(key), Instant::now())
            .map(|m| m.iter().map(|(f, v)| (f.clone(), v.clone())).collect())
            .unwrap_or_default())
    }

    async fn map_remove(&self, key: &str, field: &str) -> Result<bool, StoreError> {
        let mut map = self.lock(key)?;
        let now = Instant::now();
        let Some((Value::Map(fields), exp)) = map.get_mut(key) else {
            return Ok(false);
        };
        if !live(exp, now) {
            return Ok(false);
        }
        let removed = fields.remove(field).is_some();
        // Like a Redis hash, a map whose last field goes is gone.
        if fields.is_empty() {
            map.remove(key);
        }
        Ok(removed)
    }

    async fn scan(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let now = Instant::now();
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            let map = lock(shard)?;
            out.extend(
                map.iter()
                    .filter(|(k, (_, exp))| k.starts_with(prefix) && live(exp, now))
                    .map(|(k, _)| k.clone()),
            );
        }
        Ok(out)
    }

    async fn reach(&self) -> Result<(), StoreError> {
        self.shards.iter().try_for_each(|s| lock(s).map(|_| ()))
    }
}

fn lock(shard: &Mutex<Map>) -> Result<MutexGuard<'_, Map>, StoreError> {
    shard
        .lock()
        .map_err(|_| StoreError::Backend("memory store lock poisoned".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expired records are dropped as the store is written to: thousands of short-lived
    /// records leave few behind.
    #[actix_web::test]
    async fn expired_records_are_dropped_as_writes_go_on() {
        let store = MemoryStore::new();
        for i in 0..50_000 {
            store
                .put(&format!("code:{i}"), b"c", Some(Duration::ZERO))
                .await
                .expect("put");
        }
        store.put("client:kept", b"k", None).await.expect("put");

        let held: usize = store
            .shards
            .iter()
            .map(|s| lock(s).expect("lock").len())
            .sum();

        assert!(held <= SHARDS * 1024 + 1, "{held} records held");
        assert_eq!(
            store.get("client:kept").await.expect("get"),
            Some(b"k".to_vec())
        );
    }

    #[actix_web::test]
    async fn records_in_every_shard_are_found_listed_and_expire() {
        let store = MemoryStore::new();
        for i in 0..200 {
            store
                .put(&format!("client:{i}"), b"c", None)
                .await
                .expect("set");
        }
        store
            .put("pending:x", b"p", Some(Duration::ZERO))
            .await
            .expect("set");

        assert_eq!(store.scan("client:").await.expect("keys").len(), 200);
        assert_eq!(
            store.get("client:7").await.expect("get"),
            Some(b"c".to_vec())
        );
        assert_eq!(store.get("pending:x").await.expect("get"), None);
        assert!(
            store
                .put_new("pending:x", b"q", None)
                .await
                .expect("set_nx")
        );
        assert_eq!(
            store.remove("pending:x").await.expect("remove"),
            Some(b"q".to_vec())
        );
        assert_eq!(store.remove("pending:x").await.expect("remove"), None);
    }
}
