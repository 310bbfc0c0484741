//! In-memory backend, for tests: forgets everything when the process ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::StoreError;

type Entry = (Vec<u8>, Option<Instant>);

#[derive(Clone, Default)]
pub struct MemoryStore {
    map: Arc<Mutex<HashMap<String, Entry>>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, Entry>>, StoreError> {
        self.map
            .lock()
            .map_err(|_| StoreError::Backend("memory store lock poisoned".into()))
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let map = self.lock()?;
        Ok(map
            .get(key)
            .filter(|(_, exp)| exp.is_none_or(|e| e > Instant::now()))
            .map(|(v, _)| v.clone()))
    }

    pub async fn set(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        let mut map = self.lock()?;
        map.insert(
            key.to_owned(),
            (value.to_vec(), ttl.map(|t| Instant::now() + t)),
        );
        Ok(())
    }

    pub async fn set_nx(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let mut map = self.lock()?;
        let live = map
            .get(key)
            .is_some_and(|(_, exp)| exp.is_none_or(|e| e > Instant::now()));
        if !live {
            map.insert(
                key.to_owned(),
                (value.to_vec(), ttl.map(|t| Instant::now() + t)),
            );
        }
        Ok(!live)
    }

    pub async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut map = self.lock()?;
        Ok(map
            .remove(key)
            .filter(|(_, exp)| exp.is_none_or(|e| e > Instant::now()))
            .map(|(v, _)| v))
    }

    pub async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        let mut map = self.lock()?;
        Ok(map
            .remove(key)
            .is_some_and(|(_, exp)| exp.is_none_or(|e| e > Instant::now())))
    }

    pub async fn keys(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let map = self.lock()?;
        let now = Instant::now();
        Ok(map
            .iter()
            .filter(|(k, (_, exp))| k.starts_with(prefix) && exp.is_none_or(|e| e > now))
            .map(|(k, _)| k.clone())
            .collect())
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.lock().map(|_| ())
    }
}
