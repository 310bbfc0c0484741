//! What a backend provides: a few atomic operations on one key each, with TTLs. The typed
//! operations of `Backend` (in `mod.rs`) are each one of these steps, so every typed operation
//! is atomic on every backend and touches one key (no CROSSSLOT on a Redis Cluster).
//!
//! Only `src/store/` uses this module; nothing above the store names a key.

use std::time::Duration;

use super::StoreError;

/// The state of a single-use record when `take_once` looked at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Once {
    /// Nothing under the key (never written, expired, or removed).
    Missing,
    /// It was live and belonged to the caller: it is now replaced by the mark; here is the
    /// record as it was.
    Taken(Vec<u8>),
    /// It is live but belongs to someone else: left untouched.
    Held(Vec<u8>),
    /// It had already been taken: the mark left then (see `used`).
    Used(Vec<u8>),
}

/// Whether a write must be on disk before it is acknowledged. `Volatile` is for records a
/// crash may lose without harm (a pending sign-in, a session, a code living minutes); only a
/// backend that writes to disk tells the two apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    Durable,
    Volatile,
}

/// One write of `Kv::put_many`.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub key: &'a str,
    pub value: &'a [u8],
    pub ttl: Option<Duration>,
}

/// The atomic primitives every backend implements. Values are bytes; a TTL of `None` keeps the
/// value until it is removed, a zero TTL makes it vanish at once.
#[allow(async_fn_in_trait)]
pub trait Kv {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// `get` that a backend with a client-side cache may answer from it (Redis with
    /// `storage.redis_client_cache`): for reads that nothing is written back from.
    async fn get_cached(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(key).await
    }
    async fn put(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), StoreError>;
    /// `put` for a record a crash may lose without harm (a pending sign-in, a session, a code
    /// living minutes): a backend that writes to disk may answer before the write is durable.
    async fn put_volatile(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        self.put(key, value, ttl).await
    }
    /// Several durable `put`s at once: one commit on a backend that writes to disk, one round
    /// trip where the backend allows it. Not atomic as a whole (a Redis Cluster may hold the
    /// keys on different nodes); acknowledged only when every entry is written.
    async fn put_many(&self, entries: &[Entry<'_>]) -> Result<(), StoreError> {
        for e in entries {
            self.put(e.key, e.value, e.ttl).await?;
        }
        Ok(())
    }
    /// `put_many`, then `map_get(map, field)`: one round trip on a single Redis (one pipeline),
    /// where two would be needed otherwise. Two steps, not one: the read sees the map as it is
    /// after the writes, and a change to it in between may or may not be seen.
    async fn put_many_then_map_get(
        &self,
        entries: &[Entry<'_>],
        map: &str,
        field: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.put_many(entries).await?;
        self.map_get(map, field).await
    }
    /// Writes only when nothing live is under the key; true when this call wrote.
    async fn put_new(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError>;
    /// Removes the key and returns what was live under it.
    async fn remove(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Single use with an owner (RFC 9700 §4.14, OAuth 2.1 §4.1.3): a live record written by
    /// `live(owner, …)` for the same `owner` is returned and replaced by its mark,
    /// `used(stamp, record)`, for `mark_ttl`; anyone else's is left alone; a mark is returned
    /// as it is.
    /// `durability` says whether the backend may answer before the change is on disk.
    async fn take_once(
        &self,
        key: &str,
        owner: &str,
        stamp: u64,
        mark_ttl: Duration,
        durability: Durability,
    ) -> Result<Once, StoreError>;
    /// A map under one key (a Redis hash): sets `field` to `value` and makes the whole map
    /// live `ttl` from now. Fields of one map are written and removed one at a time, atomically.
    async fn map_set(
        &self,
        key: &str,
        field: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<(), StoreError>;
    async fn map_get(&self, key: &str, field: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Every field of the map, in no particular order.
    async fn map_all(&self, key: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    /// Removes `field`; whether it was there.
    async fn map_remove(&self, key: &str, field: &str) -> Result<bool, StoreError>;
    /// Keys under `prefix` (administration, not request paths).
    async fn scan(&self, prefix: &str) -> Result<Vec<String>, StoreError>;
    /// Whether the backend answers.
    async fn reach(&self) -> Result<(), StoreError>;
}

/// A live single-use record: `L`, the owner's length (two bytes, big-endian), the owner, then
/// the payload. The Redis backend reads the same layout in its script.
pub fn live(owner: &str, payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(owner.len()).unwrap_or(u16::MAX);
    let owner = &owner.as_bytes()[..usize::from(len)];
    let mut out = Vec::with_capacity(3 + owner.len() + payload.len());
    out.push(b'L');
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(owner);
    out.extend_from_slice(payload);
    out
}

/// The mark a taken record leaves: `U`, the time it was taken (eight bytes, big-endian), then
/// the live record as it was, so a replay can tell whose it was and what was issued from it.
pub fn used(stamp: u64, record: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + record.len());
    out.push(b'U');
    out.extend_from_slice(&stamp.to_be_bytes());
    out.extend_from_slice(record);
    out
}

/// The owner and payload of a live record, or `None` when `value` is not one.
pub fn parse_live(value: &[u8]) -> Option<(&[u8], &[u8])> {
    let (&tag, rest) = value.split_first()?;
    if tag != b'L' {
        return None;
    }
    let (len, rest) = rest.split_at_checked(2)?;
    let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
    rest.split_at_checked(len)
}

/// When a mark was left, and the live record it replaced; `None` when `value` is not a mark.
pub fn parse_used(value: &[u8]) -> Option<(u64, &[u8])> {
    let rest = value.strip_prefix(b"U")?;
    let (stamp, record) = rest.split_at_checked(8)?;
    Some((u64::from_be_bytes(stamp.try_into().ok()?), record))
}

/// What `take_once` does with the value under the key, for backends that run it under their
/// own lock or transaction: the mark to write in its place (if any), and what to answer.
pub fn decide_once(current: Option<Vec<u8>>, owner: &str, stamp: u64) -> (Option<Vec<u8>>, Once) {
    match current {
        None => (None, Once::Missing),
        Some(v) => match parse_live(&v) {
            Some((o, _)) if o == owner.as_bytes() => (Some(used(stamp, &v)), Once::Taken(v)),
            Some(_) => (None, Once::Held(v)),
            None => (None, Once::Used(v)),
        },
    }
}

/// A map as Doorman's embedded store kept it under one key until 2026-11 (each field's length
/// and bytes, then its value's length and bytes; lengths as four bytes, big-endian): the
/// embedded store reads such records once, when it opens a file written before, and moves
/// their fields to a record each. Now only tests write one.
#[cfg(test)]
pub fn encode_map(map: &std::collections::BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::new();
    for (field, value) in map {
        for part in [field.as_bytes(), value.as_slice()] {
            let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&part[..len as usize]);
        }
    }
    out
}

/// The map `encode_map` wrote; what cannot be read ends it.
pub fn decode_map(mut bytes: &[u8]) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut map = std::collections::BTreeMap::new();
    let take = |bytes: &mut &[u8]| -> Option<Vec<u8>> {
        let (len, rest) = bytes.split_at_checked(4)?;
        let len = u32::from_be_bytes(len.try_into().ok()?) as usize;
        let (part, rest) = rest.split_at_checked(len)?;
        *bytes = rest;
        Some(part.to_vec())
    };
    while let (Some(field), Some(value)) = (take(&mut bytes), take(&mut bytes)) {
        if let Ok(field) = String::from_utf8(field) {
            map.insert(field, value);
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_round_trip_and_a_torn_one_keeps_what_it_has() {
        let mut map = std::collections::BTreeMap::new();
        map.insert("a".to_owned(), b"one".to_vec());
        map.insert("client:ü".to_owned(), Vec::new());
        let bytes = encode_map(&map);

        assert_eq!(decode_map(&bytes), map);
        assert_eq!(decode_map(&bytes[..bytes.len() - 1]).len(), 1);
        assert!(decode_map(b"").is_empty());
    }

    #[test]
    fn live_records_carry_their_owner_and_marks_do_not() {
        let v = live("client-1", b"{\"a\":1}");

        assert_eq!(parse_live(&v), Some((&b"client-1"[..], &b"{\"a\":1}"[..])));
        assert_eq!(parse_used(&v), None);
        assert_eq!(parse_used(&used(7, &v)), Some((7, &v[..])));
        assert_eq!(parse_live(&used(7, &v)), None);
        assert_eq!(parse_live(b"L\x00"), None, "truncated");
        assert_eq!(parse_used(b"U\x00"), None, "truncated");
        assert_eq!(
            decide_once(Some(v.clone()), "client-1", 9),
            (Some(used(9, &v)), Once::Taken(v.clone()))
        );
        assert_eq!(
            decide_once(Some(v.clone()), "client-2", 9),
            (None, Once::Held(v.clone()))
        );
        let mark = used(3, &v);
        assert_eq!(
            decide_once(Some(mark.clone()), "client-1", 9),
            (None, Once::Used(mark))
        );
        assert_eq!(decide_once(None, "c", 9), (None, Once::Missing));
    }
}
