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

/// A map as the memory and embedded backends keep it under one key: each field's length and
/// bytes, then its value's length and bytes (lengths as four bytes, big-endian).
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

/// The (field, value) pairs of an encoded map, in order, borrowed; what cannot be read ends
/// them, as in `decode_map`.
fn map_pairs(mut bytes: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    let take = move || -> Option<(&[u8], &[u8])> {
        let mut part = || -> Option<&[u8]> {
            let (len, rest) = bytes.split_at_checked(4)?;
            let len = u32::from_be_bytes(len.try_into().ok()?) as usize;
            let (part, rest) = rest.split_at_checked(len)?;
            bytes = rest;
            Some(part)
        };
        Some((part()?, part()?))
    };
    std::iter::from_fn(take)
}

/// `decode_map(bytes).remove(field)` without decoding the other fields: a person's map of
/// grants is read on every authorization and token, and may hold many.
pub fn map_field(bytes: &[u8], field: &str) -> Option<Vec<u8>> {
    map_field_ref(bytes, field).map(<[u8]>::to_vec)
}

/// `map_field` without copying: the value as it lies in `bytes` (the last pair with `field`,
/// as `decode_map` keeps it).
pub fn map_field_ref<'a>(bytes: &'a [u8], field: &str) -> Option<&'a [u8]> {
    map_pairs(bytes)
        .filter(|(f, _)| *f == field.as_bytes())
        .last()
        .map(|(_, v)| v)
}

/// `encode_map` of `decode_map(bytes)` with `field` set to `value` (or removed, for `None`),
/// and whether the field was there: copied pair by pair when the map is in `encode_map`'s
/// order (always, for maps this module wrote), else by decoding it.
pub fn map_with(bytes: &[u8], field: &str, value: Option<&[u8]>) -> (Vec<u8>, bool) {
    let canonical = map_pairs(bytes)
        .try_fold(None::<&[u8]>, |last, (f, _)| {
            (std::str::from_utf8(f).is_ok() && last.is_none_or(|l| l < f)).then_some(Some(f))
        })
        .is_some();
    if !canonical {
        let mut map = decode_map(bytes);
        let had = match value {
            Some(v) => map.insert(field.to_owned(), v.to_vec()).is_some(),
            None => map.remove(field).is_some(),
        };
        return (encode_map(&map), had);
    }
    let mut out = Vec::with_capacity(bytes.len() + field.len() + value.map_or(0, <[u8]>::len) + 8);
    let push = |out: &mut Vec<u8>, f: &[u8], v: &[u8]| {
        for part in [f, v] {
            let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&part[..len as usize]);
        }
    };
    let (mut had, mut placed) = (false, false);
    for (f, v) in map_pairs(bytes) {
        if !placed && f >= field.as_bytes() {
            if let Some(new) = value {
                push(&mut out, field.as_bytes(), new);
            }
            placed = true;
        }
        if f == field.as_bytes() {
            had = true;
        } else {
            push(&mut out, f, v);
        }
    }
    if !placed && let Some(new) = value {
        push(&mut out, field.as_bytes(), new);
    }
    (out, had)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The quick map operations agree with decoding and encoding the whole map, on any map and
    /// on torn or foreign bytes.
    #[test]
    fn map_field_and_map_with_agree_with_the_whole_map() {
        use proptest::prelude::*;
        let field = prop::sample::select(vec!["", "a", "b", "ab", "client:1", "client:2", "ü"]);
        let map = prop::collection::btree_map(
            field.clone().prop_map(str::to_owned),
            prop::collection::vec(any::<u8>(), 0..6),
            0..6,
        );
        let mut runner = proptest::test_runner::TestRunner::default();
        runner
            .run(
                &(
                    map,
                    field,
                    prop::option::of(prop::collection::vec(any::<u8>(), 0..6)),
                    prop::collection::vec(any::<u8>(), 0..12),
                    any::<bool>(),
                ),
                |(map, field, value, junk, torn)| {
                    let mut bytes = encode_map(&map);
                    if torn {
                        // Foreign or torn bytes after a valid map.
                        bytes.extend_from_slice(&junk);
                    }
                    let whole = decode_map(&bytes);

                    prop_assert_eq!(map_field(&bytes, field), whole.get(field).cloned());
                    prop_assert_eq!(
                        map_field_ref(&bytes, field),
                        whole.get(field).map(Vec::as_slice)
                    );
                    let mut expected = whole.clone();
                    let had = match &value {
                        Some(v) => expected.insert(field.to_owned(), v.clone()).is_some(),
                        None => expected.remove(field).is_some(),
                    };
                    prop_assert_eq!(
                        map_with(&bytes, field, value.as_deref()),
                        (encode_map(&expected), had)
                    );
                    Ok(())
                },
            )
            .expect("property");
    }

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
