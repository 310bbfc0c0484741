//! The embedded backend's memory tier, for the records a crash may lose without harm: pending
//! sign-ins, sessions, codes, fetched metadata documents (`keys::volatile`). Every operation on
//! such a key runs here, under the lock of the key's shard, and is answered at once; the writer
//! thread copies the changes to the file in the background (`EmbeddedStore`'s flush, every
//! `FLUSH_EVERY`), after which they leave memory. No other write touches these keys in the file,
//! so the file and this tier cannot disagree.
//!
//! A key without a slot here is read from the file (by the caller's lookup, under the shard's
//! lock, so two operations on one key never both decide from the file). A removal leaves an
//! empty slot (a tombstone) until the flush has removed the key from the file, so an older copy
//! on disk cannot come back.
//!
//! Each slot has a change number: the flush copies the slots with their numbers, commits, and
//! then drops only the slots that did not change in the meantime.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// One key's state: its stored bytes (the file's layout: expiry, then payload) or `None` once
/// removed; the change number; and whether some version of it may be in the file.
struct Slot {
    raw: Option<Vec<u8>>,
    seq: u64,
    on_disk: bool,
}

const SHARDS: usize = 16;

pub(super) struct Hot {
    shards: [Mutex<HashMap<String, Slot>>; SHARDS],
    seq: AtomicU64,
    /// Whether a slot changed since the last flush took them.
    changed: AtomicBool,
}

/// What the flush takes: a key, its bytes (or `None`: remove it from the file), its change
/// number.
pub(super) type Dirty = (String, Option<Vec<u8>>, u64);

/// What an operation does to a key: nothing (`None`), remove it (`Some(None)`), or store these
/// bytes.
pub(super) type Change = Option<Option<Vec<u8>>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A slot is replaced in one assignment: a panic elsewhere cannot leave half of one.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Hot {
    pub(super) fn new() -> Self {
        Self {
            shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
            seq: AtomicU64::new(1),
            changed: AtomicBool::new(false),
        }
    }

    /// The shard of `key`, chosen by its last bytes: every key ends in a random or hashed part.
    fn shard(&self, key: &str) -> MutexGuard<'_, HashMap<String, Slot>> {
        let h = key.bytes().rev().take(8).fold(0usize, |h, b| {
            h.wrapping_mul(31).wrapping_add(usize::from(b))
        });
        lock(&self.shards[h % SHARDS])
    }

    /// Reads `key`'s bytes: its slot's, or else `from_file`'s.
    pub(super) fn get<E>(
        &self,
        key: &str,
        from_file: impl FnOnce() -> Result<Option<Vec<u8>>, E>,
    ) -> Result<Option<Vec<u8>>, E> {
        let shard = self.shard(key);
        match shard.get(key) {
            Some(slot) => Ok(slot.raw.clone()),
            None => {
                drop(shard);
                from_file()
            }
        }
    }

    /// One operation on `key`, as one step: `change` gets the key's bytes — its slot's, or
    /// `from_file`'s when it has none — and says what to store and what to answer. Returns the
    /// answer and whether some version of the key may be in the file (then a removal must reach
    /// the disk before it is acknowledged, if it must not come back after a crash).
    pub(super) fn update<T, E>(
        &self,
        key: &str,
        from_file: impl FnOnce() -> Result<Option<Vec<u8>>, E>,
        change: impl FnOnce(Option<&[u8]>) -> (Change, T),
    ) -> Result<(T, bool), E> {
        let mut shard = self.shard(key);
        let (new, answer, on_disk) = match shard.get(key) {
            Some(slot) => {
                let (new, answer) = change(slot.raw.as_deref());
                (new, answer, slot.on_disk)
            }
            None => {
                let current = from_file()?;
                let (new, answer) = change(current.as_deref());
                (new, answer, current.is_some())
            }
        };
        if let Some(raw) = new {
            let seq = self.seq.fetch_add(1, Ordering::Relaxed);
            shard.insert(key.to_owned(), Slot { raw, seq, on_disk });
            self.changed.store(true, Ordering::Release);
        }
        Ok((answer, on_disk))
    }

    /// Whether anything changed since the last `dirty`.
    pub(super) fn has_changes(&self) -> bool {
        self.changed.load(Ordering::Acquire)
    }

    /// Every slot, to be written to the file (copies; the slots stay until `flushed`).
    pub(super) fn dirty(&self) -> Vec<Dirty> {
        self.changed.store(false, Ordering::Release);
        let mut out = Vec::new();
        for shard in &self.shards {
            let shard = lock(shard);
            out.extend(
                shard
                    .iter()
                    .map(|(k, slot)| (k.clone(), slot.raw.clone(), slot.seq)),
            );
        }
        out
    }

    /// After the flush's commit: drops the slots that did not change since `dirty` took them
    /// (the file now has them); the others are now known to have a version in the file.
    pub(super) fn flushed(&self, written: &[Dirty]) {
        for (key, _, seq) in written {
            let mut shard = self.shard(key);
            if let Some(slot) = shard.get_mut(key) {
                if slot.seq == *seq {
                    shard.remove(key);
                } else {
                    slot.on_disk = true;
                }
            }
        }
    }

    /// Keys under `prefix` that have a slot: live ones (by `live`), and removed or expired ones.
    pub(super) fn keys(
        &self,
        prefix: &str,
        live: impl Fn(&[u8]) -> bool,
    ) -> (Vec<String>, Vec<String>) {
        let (mut present, mut gone) = (Vec::new(), Vec::new());
        for shard in &self.shards {
            for (k, slot) in lock(shard).iter().filter(|(k, _)| k.starts_with(prefix)) {
                match &slot.raw {
                    Some(raw) if live(raw) => present.push(k.clone()),
                    _ => gone.push(k.clone()),
                }
            }
        }
        (present, gone)
    }

    /// How many slots there are (tests).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }
}
