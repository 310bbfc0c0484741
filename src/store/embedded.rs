//! Embedded backend: one redb file on local disk. Every durable write is committed durably
//! before it returns, so an acknowledged registration or refresh token survives a crash or a
//! restart. The records a crash may lose without harm (`keys::volatile`: pending sign-ins,
//! sessions, codes, fetched documents) live in a memory tier (`hot.rs`) and are answered at
//! once; the writer thread copies them to the file every `FLUSH_EVERY` in a durable commit, and
//! on a clean shutdown, so a crash forgets at most that last interval's. Removing one of them
//! that reached the file (a sign-out) still waits for the disk.
//!
//! Reads run inline: a redb read transaction never waits for a writer (copy-on-write pages),
//! and a lookup is a few microseconds from redb's cache, far less than handing it to a blocking
//! thread and back. Writes go to one writer thread, which applies every write waiting at that
//! moment in one transaction and one durable commit (group commit), then answers each: under
//! concurrent load the cost of the fsync is shared instead of paid once per write, one after
//! another. Each write is still acknowledged only after its commit.
//!
//! Why redb: pure Rust (no C build), one file, ACID with copy-on-write pages and checksums so an
//! interrupted write never leaves a torn database, a stable file format, and active upkeep.

use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redb::{Database, ReadOnlyTable, ReadableDatabase, ReadableTable, Table, TableDefinition};
use tokio::sync::oneshot;

use super::hot::{Dirty, Hot};
use super::kv::{self, Durability, Entry, Kv, Once};
use super::{StoreError, keys};

const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");

/// The fields of the maps (`Kv::map_set`; a person's grants, a field per client): one entry per
/// (map key, field), so that reading or writing one field costs the same however many fields
/// the map has. The map's expiry lives in its head, the entry of `KV` under the map key (the
/// expiry and no payload): a field counts only while its map's head is live.
const MAPS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("maps");

/// Facts about the file's layout: `maps_split` once maps are kept a record per field (on a new
/// file at once; on a file an earlier version wrote, once its maps were moved), so that the
/// embedded store looks for maps to move only when it is missing.
const LAYOUT: TableDefinition<&str, u64> = TableDefinition::new("layout");
const MAPS_SPLIT: &str = "maps_split";

type MapTable = ReadOnlyTable<(&'static str, &'static str), &'static [u8]>;

/// Most writes applied in one transaction.
const MAX_BATCH: usize = 512;

/// Memory redb may use to cache pages (reads and writes together). Its default, 1 GiB, lets the
/// process grow with the file; beyond this, reads come from the operating system's page cache,
/// which is nearly as fast and not part of Doorman's resident memory. Pages are allocated by
/// whichever thread reads or writes them (the workers, the writer), and the allocator keeps
/// freed memory per thread, so the resident cost is a few times this. 4 MiB rather than 8: the
/// embedded store's peak under `scripts/bench`'s write paths fell from 38.2 to 34.8 MB (issue 4's
/// 40 MB), with the same requests per second on a new file and on one of 1 GiB (2026-11-29).
const CACHE_BYTES: usize = 4 * 1024 * 1024;

#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
    writer: Arc<Writer>,
    snapshots: Arc<Snapshots>,
    hot: Arc<Hot>,
}

/// A read transaction kept from one read to the next, with its `KV` table, and its `MAPS` table
/// once a read needed it.
struct Snapshot {
    txn: redb::ReadTransaction,
    kv: ReadOnlyTable<&'static str, &'static [u8]>,
    maps: Option<MapTable>,
}

/// Slots for read snapshots; a thread always uses the same one (see `Snapshots`).
const SNAPSHOT_SLOTS: usize = 16;

/// Read snapshots kept from one read to the next: beginning a read transaction and finding the
/// table in it costs several times the lookup itself. Each worker thread has its slot and
/// keeps using its snapshot until the next commit: the writer thread empties every slot after
/// each commit and before it acknowledges the writes, so a read that starts after a write was
/// acknowledged never sees the state before it, and no snapshot outlives a commit (an old
/// snapshot would keep redb from reusing the pages later commits free).
struct Snapshots {
    slots: [Mutex<Option<Snapshot>>; SNAPSHOT_SLOTS],
}

impl Snapshots {
    fn new() -> Self {
        Self {
            slots: std::array::from_fn(|_| Mutex::new(None)),
        }
    }

    /// The calling thread's slot: threads are numbered in the order they first read.
    fn mine(&self) -> MutexGuard<'_, Option<Snapshot>> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        thread_local! {
            static SLOT: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SNAPSHOT_SLOTS;
        }
        let slot = &self.slots[SLOT.with(|s| *s)];
        // A panic while a slot was held cannot leave a half-made snapshot: take it as it is.
        slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Drops every snapshot; the writer calls this after each commit.
    fn clear(&self) {
        for slot in &self.slots {
            slot.lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .take();
        }
    }
}

/// Expired entries removed per write by `purge_expired`, and the pause between two chunks.
const PURGE_CHUNK: usize = 1000;
const PURGE_PAUSE: Duration = Duration::from_millis(100);

/// A write, already encoded.
enum Op {
    Set {
        key: String,
        raw: Vec<u8>,
    },
    /// Several `Set`s in the one job (`Kv::put_many`).
    SetMany {
        entries: Vec<(String, Vec<u8>)>,
    },
    SetNx {
        key: String,
        raw: Vec<u8>,
    },
    Remove {
        key: String,
    },
    TakeOnce {
        key: String,
        owner: String,
        stamp: u64,
        mark_ttl: Duration,
    },
    MapSet {
        key: String,
        field: String,
        value: Vec<u8>,
        ttl: Duration,
    },
    MapRemove {
        key: String,
        field: String,
    },
    /// Removes those of `keys` that are (still) expired.
    Expire {
        keys: Vec<String>,
    },
    /// Nothing, but the memory tier is flushed in the same durable commit.
    Flush,
}

/// What a write returns: nothing, whether it wrote (put_new), the live value it removed, what
/// a single-use record was, or how many expired entries it removed.
enum Done {
    Set,
    Written(bool),
    Removed(Option<Vec<u8>>),
    Once(Once),
    Expired(usize),
}

struct Job {
    op: Op,
    /// Whether the write must be on disk before it is acknowledged (see `Kv::put_volatile`).
    durable: bool,
    reply: oneshot::Sender<Result<Done, StoreError>>,
}

/// A commit of volatile writes only skips the disk; but after this many such commits, or this
/// long, the next commit is made durable anyway, so a crash loses a bounded amount and redb
/// can reuse the pages the volatile commits freed.
const VOLATILE_COMMITS: u32 = 256;
const VOLATILE_FOR: Duration = Duration::from_secs(1);

/// How often the writer copies the memory tier's changes to the file (one durable commit): a
/// crash forgets at most this interval's volatile records.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// The writer thread and the way to it. Dropping the last handle closes the queue and waits
/// for the thread, so the file is closed (and may be opened again) once the store is gone.
struct Writer {
    queue: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.queue.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
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
    encode_at(value, ttl, now_ms())
}

fn encode_at(value: &[u8], ttl: Option<Duration>, now_ms: u64) -> Vec<u8> {
    let exp = ttl
        .map(|t| now_ms.saturating_add(t.as_millis() as u64))
        .unwrap_or(0);
    let mut out = Vec::with_capacity(8 + value.len());
    out.extend_from_slice(&exp.to_be_bytes());
    out.extend_from_slice(value);
    out
}

fn decode(raw: &[u8], now: u64) -> Option<Vec<u8>> {
    payload(raw, now).map(<[u8]>::to_vec)
}

/// The stored value of a live entry, in place.
fn payload(raw: &[u8], now: u64) -> Option<&[u8]> {
    let (exp, payload) = raw.split_at_checked(8)?;
    let exp = u64::from_be_bytes(exp.try_into().ok()?);
    (exp == 0 || exp > now).then_some(payload)
}

impl EmbeddedStore {
    /// Opens (or creates) the database file, creating its directory, and starts the writer
    /// thread. Expired entries are not purged here: that takes time in proportion to the file,
    /// and reads ignore expired entries anyway; the server purges in the background instead.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Backend(format!("cannot create directory {}: {e}", dir.display()))
            })?;
        }
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Backend(format!(
                    "the database {} is already open in another process",
                    path.display()
                )),
                other => StoreError::Backend(format!("cannot open {}: {other}", path.display())),
            })?;
        let db = Arc::new(db);
        prepare(&db)?;
        let snapshots = Arc::new(Snapshots::new());
        let hot = Arc::new(Hot::new());
        let (queue, jobs) = mpsc::channel();
        let thread = {
            let db = db.clone();
            let snapshots = snapshots.clone();
            let hot = hot.clone();
            std::thread::Builder::new()
                .name("doorman-embedded-writer".into())
                .spawn(move || write_loop(&db, &jobs, &snapshots, &hot))
                .map_err(|e| StoreError::Backend(format!("cannot start the writer thread: {e}")))?
        };
        let writer = Writer {
            queue: Some(queue),
            thread: Some(thread),
        };
        Ok(Self {
            db,
            writer: Arc::new(writer),
            snapshots,
            hot,
        })
    }

    /// Removes expired entries; the server calls this now and then. A few at a time: finding
    /// them reads a snapshot (which no writer waits for), and each chunk is one more write for
    /// the writer thread, so requests' writes never queue behind a purge of the whole file. The
    /// chunks are paced, so that a large backlog (after a restart) is worked off in the
    /// background instead of taking the CPU from requests.
    pub async fn purge_expired(&self) -> Result<usize, StoreError> {
        let mut removed = 0;
        let mut after: Option<String> = None;
        loop {
            let db = self.db.clone();
            let from = after.take();
            let (keys, next) =
                run_blocking(move || expired_keys(&db, from.as_deref(), PURGE_CHUNK)).await?;
            if !keys.is_empty()
                && let Done::Expired(n) = self.write(Op::Expire { keys }).await?
            {
                removed += n;
            }
            match next {
                Some(key) => after = Some(key),
                None => return Ok(removed),
            }
            tokio::time::sleep(PURGE_PAUSE).await;
        }
    }

    /// Reads the stored bytes of `key` in the file (expiry and payload) with `read`, through
    /// the calling thread's snapshot without awaiting anything: a read snapshot never waits for
    /// the writer.
    fn file_read<T>(
        &self,
        key: &str,
        read: impl FnOnce(&[u8]) -> T,
    ) -> Result<Option<T>, StoreError> {
        let mut slot = self.snapshots.mine();
        let snapshot = self.snapshot(&mut slot)?;
        Ok(snapshot
            .kv
            .get(key)
            .map_err(backend)?
            .map(|v| read(v.value())))
    }

    /// The calling thread's snapshot (see `Snapshots`), begun now if it has none.
    fn snapshot<'s>(&self, slot: &'s mut Option<Snapshot>) -> Result<&'s mut Snapshot, StoreError> {
        if slot.is_none() {
            let txn = self.db.begin_read().map_err(backend)?;
            let kv = txn.open_table(KV).map_err(backend)?;
            *slot = Some(Snapshot {
                txn,
                kv,
                maps: None,
            });
        }
        slot.as_mut()
            .ok_or_else(|| backend("the read snapshot vanished"))
    }

    /// Reads the fields of the map under `key` with `read` through the calling thread's
    /// snapshot, when the map is live (its head, in `KV`, has not expired); `None` otherwise.
    fn map_read<T>(
        &self,
        key: &str,
        read: impl FnOnce(&MapTable) -> Result<T, redb::StorageError>,
    ) -> Result<Option<T>, StoreError> {
        debug_assert!(keys::map(key), "{key} is not a map's key");
        let mut slot = self.snapshots.mine();
        let snapshot = self.snapshot(&mut slot)?;
        let now = now_ms();
        let live = snapshot
            .kv
            .get(key)
            .map_err(backend)?
            .is_some_and(|head| payload(head.value(), now).is_some());
        if !live {
            return Ok(None);
        }
        let maps = match &mut snapshot.maps {
            Some(maps) => maps,
            None => snapshot
                .maps
                .insert(snapshot.txn.open_table(MAPS).map_err(backend)?),
        };
        read(maps).map(Some).map_err(backend)
    }

    fn file_raw(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.file_read(key, <[u8]>::to_vec)
    }

    /// One operation on a key of the memory tier (see `hot.rs`): `change` gets the stored
    /// bytes and says what to store and answer. When `durable`, it is also on disk before this
    /// returns (the writer flushes the tier in a durable commit).
    async fn hot_update<T>(
        &self,
        key: &str,
        durable: bool,
        change: impl FnOnce(Option<&[u8]>) -> (super::hot::Change, T),
    ) -> Result<T, StoreError> {
        let (answer, _) = self.hot.update(key, || self.file_raw(key), change)?;
        if durable {
            self.write(Op::Flush).await?;
        }
        Ok(answer)
    }

    /// Memory tier slots (a test's view).
    #[cfg(test)]
    fn hot_slots(&self) -> usize {
        self.hot.len()
    }

    /// Hands a write to the writer thread and waits for its commit.
    async fn write(&self, op: Op) -> Result<Done, StoreError> {
        self.write_as(op, true).await
    }

    /// Hands a write to the writer thread and waits for its commit, durable or not.
    async fn write_as(&self, op: Op, durable: bool) -> Result<Done, StoreError> {
        let (reply, done) = oneshot::channel();
        let sent = self
            .writer
            .queue
            .as_ref()
            .map(|q| q.send(Job { op, durable, reply }));
        if !matches!(sent, Some(Ok(()))) {
            return Err(StoreError::Backend(
                "embedded database: the writer has stopped".into(),
            ));
        }
        done.await
            .map_err(|_| StoreError::Backend("embedded database: the writer has stopped".into()))?
    }
}

impl Kv for EmbeddedStore {
    /// Reads in the calling thread without awaiting anything: the memory tier's slot for its
    /// keys, else the file through the thread's snapshot (see `Snapshots`).
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if keys::volatile(key) {
            let raw = self.hot.get(key, || self.file_raw(key))?;
            return Ok(raw.and_then(|raw| decode(&raw, now_ms())));
        }
        Ok(self.file_read(key, |raw| decode(raw, now_ms()))?.flatten())
    }

    async fn put(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), StoreError> {
        if keys::volatile(key) {
            let raw = encode(value, ttl);
            return self.hot_update(key, true, |_| (Some(Some(raw)), ())).await;
        }
        let op = Op::Set {
            key: key.to_owned(),
            raw: encode(value, ttl),
        };
        self.write(op).await.map(|_| ())
    }

    /// One job, so one transaction and one durable commit for every entry.
    async fn put_many(&self, entries: &[Entry<'_>]) -> Result<(), StoreError> {
        if entries.iter().any(|e| keys::volatile(e.key)) {
            for e in entries {
                self.put(e.key, e.value, e.ttl).await?;
            }
            return Ok(());
        }
        let op = Op::SetMany {
            entries: entries
                .iter()
                .map(|e| (e.key.to_owned(), encode(e.value, e.ttl)))
                .collect(),
        };
        self.write(op).await.map(|_| ())
    }

    /// A key of the memory tier: answered at once, on disk with the next flush. Any other key
    /// (none is written so today) is written durably.
    async fn put_volatile(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        if keys::volatile(key) {
            let raw = encode(value, ttl);
            return self.hot_update(key, false, |_| (Some(Some(raw)), ())).await;
        }
        self.put(key, value, ttl).await
    }

    async fn put_new(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        if keys::volatile(key) {
            let raw = encode(value, ttl);
            let now = now_ms();
            return self
                .hot_update(key, true, |current| {
                    if current.and_then(|c| decode(c, now)).is_some() {
                        (None, false)
                    } else {
                        (Some(Some(raw)), true)
                    }
                })
                .await;
        }
        let op = Op::SetNx {
            key: key.to_owned(),
            raw: encode(value, ttl),
        };
        Ok(matches!(self.write(op).await?, Done::Written(true)))
    }

    /// On a key of the memory tier, removed there at once (an empty slot hides any copy in the
    /// file); when some version of it may be in the file, the removal also reaches the disk
    /// before it is acknowledged, so a crash cannot bring back what was removed (a session
    /// signed out).
    async fn remove(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if keys::volatile(key) {
            let now = now_ms();
            let (old, on_disk) = self.hot.update(
                key,
                || self.file_raw(key),
                |current| (Some(None), current.and_then(|c| decode(c, now))),
            )?;
            if on_disk {
                self.write(Op::Flush).await?;
            }
            return Ok(old);
        }
        match self
            .write(Op::Remove {
                key: key.to_owned(),
            })
            .await?
        {
            Done::Removed(old) => Ok(old),
            _ => Ok(None),
        }
    }

    async fn take_once(
        &self,
        key: &str,
        owner: &str,
        stamp: u64,
        mark_ttl: Duration,
        durability: Durability,
    ) -> Result<Once, StoreError> {
        if keys::volatile(key) {
            let now = now_ms();
            return self
                .hot_update(key, durability == Durability::Durable, |current| {
                    let (mark, once) =
                        kv::decide_once(current.and_then(|c| decode(c, now)), owner, stamp);
                    (mark.map(|m| Some(encode_at(&m, Some(mark_ttl), now))), once)
                })
                .await;
        }
        let op = Op::TakeOnce {
            key: key.to_owned(),
            owner: owner.to_owned(),
            stamp,
            mark_ttl,
        };
        match self.write_as(op, durability == Durability::Durable).await? {
            Done::Once(once) => Ok(once),
            _ => Ok(Once::Missing),
        }
    }

    /// The field in `MAPS` and the map's head (its expiry, `ttl` from now) in `KV`, in one
    /// durable commit.
    async fn map_set(
        &self,
        key: &str,
        field: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        debug_assert!(keys::map(key), "{key} is not a map's key");
        let op = Op::MapSet {
            key: key.to_owned(),
            field: field.to_owned(),
            value: value.to_vec(),
            ttl,
        };
        self.write(op).await.map(|_| ())
    }

    /// One lookup of the head and one of the field, however many fields the map has (a
    /// person's grants are read on every authorization and code exchange).
    async fn map_get(&self, key: &str, field: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .map_read(key, |maps| {
                Ok(maps.get((key, field))?.map(|v| v.value().to_vec()))
            })?
            .flatten())
    }

    async fn map_all(&self, key: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        Ok(self
            .map_read(key, |maps| fields_of(maps, key))?
            .unwrap_or_default())
    }

    async fn map_remove(&self, key: &str, field: &str) -> Result<bool, StoreError> {
        debug_assert!(keys::map(key), "{key} is not a map's key");
        let op = Op::MapRemove {
            key: key.to_owned(),
            field: field.to_owned(),
        };
        Ok(matches!(self.write(op).await?, Done::Written(true)))
    }

    async fn scan(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let db = self.db.clone();
        let owned = prefix.to_owned();
        let on_file = run_blocking(move || {
            let prefix = owned;
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
        .await?;
        // The memory tier's slots are newer than the file.
        let now = now_ms();
        let (present, gone) = self.hot.keys(prefix, |raw| decode(raw, now).is_some());
        let mut keys: std::collections::BTreeSet<String> = on_file.into_iter().collect();
        for k in gone {
            keys.remove(&k);
        }
        keys.extend(present);
        Ok(keys.into_iter().collect())
    }

    async fn reach(&self) -> Result<(), StoreError> {
        self.db.begin_read().map(|_| ()).map_err(backend)
    }
}

/// Creates the tables on a new file, so that reads find them, and moves the maps an earlier
/// Doorman kept as one record (every field in the payload under the map key) to `MAPS`, one
/// entry per field, leaving the head; one transaction, so a crash in between changes nothing.
/// Done once per file (see `LAYOUT`), so later starts do not read every map.
fn prepare(db: &Database) -> Result<(), StoreError> {
    let txn = db.begin_write().map_err(backend)?;
    {
        let mut table = txn.open_table(KV).map_err(backend)?;
        let mut maps = txn.open_table(MAPS).map_err(backend)?;
        let mut layout = txn.open_table(LAYOUT).map_err(backend)?;
        if layout.get(MAPS_SPLIT).map_err(backend)?.is_some() {
            // Nothing to change: dropping the transaction aborts it.
            return Ok(());
        }
        let now = now_ms();
        for prefix in keys::MAPS.iter().copied() {
            let mut whole = Vec::new();
            for entry in table.range(prefix..).map_err(backend)? {
                let (k, v) = entry.map_err(backend)?;
                if !k.value().starts_with(prefix) {
                    break;
                }
                if v.value().len() > 8 {
                    whole.push((k.value().to_owned(), v.value().to_vec()));
                }
            }
            for (key, raw) in whole {
                let Some(fields) = payload(&raw, now) else {
                    table.remove(key.as_str()).map_err(backend)?;
                    continue;
                };
                for (field, value) in kv::decode_map(fields) {
                    maps.insert((key.as_str(), field.as_str()), value.as_slice())
                        .map_err(backend)?;
                }
                table.insert(key.as_str(), &raw[..8]).map_err(backend)?;
            }
        }
        layout.insert(MAPS_SPLIT, 1).map_err(backend)?;
    }
    txn.commit().map_err(backend)
}

/// Up to `limit` expired keys after `after` (from the start when `None`), looking at no more
/// than a bounded number of entries; with the key to continue after, or `None` at the end.
fn expired_keys(
    db: &Database,
    after: Option<&str>,
    limit: usize,
) -> Result<(Vec<String>, Option<String>), StoreError> {
    let txn = db.begin_read().map_err(backend)?;
    let table = txn.open_table(KV).map_err(backend)?;
    let now = now_ms();
    let start = after.map_or(Bound::Unbounded, Bound::Excluded);
    let mut expired = Vec::new();
    let mut seen = 0;
    for entry in table
        .range::<&str>((start, Bound::Unbounded))
        .map_err(backend)?
    {
        let (k, v) = entry.map_err(backend)?;
        if decode(v.value(), now).is_none() {
            expired.push(k.value().to_owned());
        }
        seen += 1;
        if expired.len() >= limit || seen >= 20 * limit {
            return Ok((expired, Some(k.value().to_owned())));
        }
    }
    Ok((expired, None))
}

/// The writer thread: waits for a write, takes every other one already queued (up to
/// `MAX_BATCH`), applies them in order in one transaction — after the memory tier's changes
/// when a flush is due (every `FLUSH_EVERY`, or asked for by `Op::Flush`) — commits once,
/// answers each. When the store is dropped it flushes the memory tier a last time and ends.
fn write_loop(db: &Database, jobs: &mpsc::Receiver<Job>, snapshots: &Snapshots, hot: &Hot) {
    let mut volatile_commits = 0u32;
    let mut last_durable = Instant::now();
    let mut last_flush = Instant::now();
    let mut open = true;
    while open {
        let wait = FLUSH_EVERY
            .saturating_sub(last_flush.elapsed())
            .max(Duration::from_millis(1));
        let mut batch = Vec::new();
        match jobs.recv_timeout(wait) {
            Ok(first) => batch.push(first),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => open = false,
        }
        while !batch.is_empty() && batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let asked = batch.iter().any(|j| matches!(j.op, Op::Flush));
        let flush = hot.has_changes() && (asked || !open || last_flush.elapsed() >= FLUSH_EVERY);
        if batch.is_empty() && !flush {
            continue;
        }
        let dirty = if flush { hot.dirty() } else { Vec::new() };
        let durable = flush
            || batch.iter().any(|j| j.durable)
            || volatile_commits >= VOLATILE_COMMITS
            || last_durable.elapsed() >= VOLATILE_FOR;
        let results = commit(db, &dirty, batch.iter().map(|j| &j.op), durable);
        if durable {
            volatile_commits = 0;
            last_durable = Instant::now();
        } else {
            volatile_commits += 1;
        }
        if flush {
            last_flush = Instant::now();
        }
        // Before anyone hears of these writes, no reader may keep a snapshot from before them;
        // and only then may flushed slots leave memory: a reader that no longer finds a slot
        // must find the file's new state.
        snapshots.clear();
        let results: Vec<Result<Done, StoreError>> = match results {
            Ok(results) => {
                hot.flushed(&dirty);
                results.into_iter().map(Ok).collect()
            }
            // Nothing of a failed transaction was written; the memory tier keeps its changes
            // and the next flush tries them again. Alone, each write fails or succeeds on its
            // own, so one bad write cannot fail the others.
            Err(e) => {
                log::error!("embedded database: a commit failed: {e}");
                batch
                    .iter()
                    .map(|job| {
                        commit(db, &[], std::iter::once(&job.op), durable)
                            .map(|mut r| r.pop().unwrap_or(Done::Set))
                    })
                    .collect()
            }
        };
        for (job, result) in batch.into_iter().zip(results) {
            let _ = job.reply.send(result);
        }
    }
}

/// Applies the memory tier's `dirty` slots, then `ops`, in one write transaction and commits
/// it: durably (on disk before it returns), or not (visible at once, on disk with the next
/// durable commit).
fn commit<'a>(
    db: &Database,
    dirty: &[Dirty],
    ops: impl Iterator<Item = &'a Op>,
    durable: bool,
) -> Result<Vec<Done>, StoreError> {
    let mut txn = db.begin_write().map_err(backend)?;
    if !durable {
        txn.set_durability(redb::Durability::None)
            .map_err(backend)?;
    }
    let mut results = Vec::new();
    {
        let mut table = txn.open_table(KV).map_err(backend)?;
        let mut maps = txn.open_table(MAPS).map_err(backend)?;
        let now = now_ms();
        for (key, raw, _) in dirty {
            // An expired record need not reach the disk.
            match raw.as_deref().filter(|r| decode(r, now).is_some()) {
                Some(raw) => table.insert(key.as_str(), raw).map(|_| ()),
                None => table.remove(key.as_str()).map(|_| ()),
            }
            .map_err(backend)?;
        }
        for op in ops {
            results.push(apply(&mut table, &mut maps, op, now).map_err(backend)?);
        }
    }
    txn.commit().map_err(backend)?;
    Ok(results)
}

/// Every field of the map under `key` in `MAPS`, with its value, in field order.
fn fields_of(
    maps: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    key: &str,
) -> Result<Vec<(String, Vec<u8>)>, redb::StorageError> {
    let mut out = Vec::new();
    for entry in maps.range((key, "")..)? {
        let (k, v) = entry?;
        let (map, field) = k.value();
        if map != key {
            break;
        }
        out.push((field.to_owned(), v.value().to_vec()));
    }
    Ok(out)
}

/// Removes every field of the map under `key` from `MAPS`.
fn clear_fields(
    maps: &mut Table<(&str, &str), &[u8]>,
    key: &str,
) -> Result<(), redb::StorageError> {
    for (field, _) in fields_of(maps, key)? {
        maps.remove((key, field.as_str()))?;
    }
    Ok(())
}

/// Whether the map under `key` has any field left.
fn has_fields(maps: &Table<(&str, &str), &[u8]>, key: &str) -> Result<bool, redb::StorageError> {
    match maps.range((key, "")..)?.next() {
        Some(entry) => Ok(entry?.0.value().0 == key),
        None => Ok(false),
    }
}

fn apply(
    table: &mut Table<&str, &[u8]>,
    maps: &mut Table<(&str, &str), &[u8]>,
    op: &Op,
    now: u64,
) -> Result<Done, redb::StorageError> {
    Ok(match op {
        Op::Set { key, raw } => {
            table.insert(key.as_str(), raw.as_slice())?;
            Done::Set
        }
        Op::SetMany { entries } => {
            for (key, raw) in entries {
                table.insert(key.as_str(), raw.as_slice())?;
            }
            Done::Set
        }
        Op::SetNx { key, raw } => {
            let live = table
                .get(key.as_str())?
                .is_some_and(|v| decode(v.value(), now).is_some());
            if !live {
                table.insert(key.as_str(), raw.as_slice())?;
            }
            Done::Written(!live)
        }
        Op::Remove { key } => {
            let old = table.remove(key.as_str())?;
            Done::Removed(old.and_then(|v| decode(v.value(), now)))
        }
        Op::TakeOnce {
            key,
            owner,
            stamp,
            mark_ttl,
        } => {
            let current = table
                .get(key.as_str())?
                .and_then(|v| decode(v.value(), now));
            let (mark, once) = kv::decide_once(current, owner, *stamp);
            if let Some(mark) = mark {
                table.insert(
                    key.as_str(),
                    encode_at(&mark, Some(*mark_ttl), now).as_slice(),
                )?;
            }
            Done::Once(once)
        }
        Op::MapSet {
            key,
            field,
            value,
            ttl,
        } => {
            let live = table
                .get(key.as_str())?
                .is_some_and(|v| decode(v.value(), now).is_some());
            // A map that lapsed starts empty, even if the purge has not yet removed its fields.
            if !live {
                clear_fields(maps, key)?;
            }
            table.insert(key.as_str(), encode_at(&[], Some(*ttl), now).as_slice())?;
            maps.insert((key.as_str(), field.as_str()), value.as_slice())?;
            Done::Set
        }
        Op::MapRemove { key, field } => {
            let live = table
                .get(key.as_str())?
                .is_some_and(|v| decode(v.value(), now).is_some());
            if !live {
                return Ok(Done::Written(false));
            }
            let removed = maps.remove((key.as_str(), field.as_str()))?.is_some();
            // Like a Redis hash, a map whose last field goes is gone.
            if removed && !has_fields(maps, key)? {
                table.remove(key.as_str())?;
            }
            Done::Written(removed)
        }
        Op::Expire { keys } => {
            let mut removed = 0;
            for key in keys {
                let expired = table
                    .get(key.as_str())?
                    .is_some_and(|v| decode(v.value(), now).is_none());
                if expired {
                    table.remove(key.as_str())?;
                    if keys::map(key) {
                        clear_fields(maps, key)?;
                    }
                    removed += 1;
                }
            }
            Done::Expired(removed)
        }
        Op::Flush => Done::Set,
    })
}

async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    actix_web::rt::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Backend(format!("embedded database task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kept snapshot never hides an acknowledged write, on the thread that wrote or on
    /// another: every read after each write's acknowledgement sees it.
    #[actix_web::test]
    async fn reads_after_an_acknowledged_write_see_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = EmbeddedStore::open(&dir.path().join("db.redb")).expect("opens");
        assert_eq!(store.get("k").await.expect("get"), None);
        for i in 0..50u32 {
            let value = i.to_be_bytes();
            store.put("k", &value, None).await.expect("set");
            assert_eq!(store.get("k").await.expect("get"), Some(value.to_vec()));
            let other = store.clone();
            let seen = std::thread::spawn(move || {
                actix_web::rt::System::new().block_on(async move { other.get("k").await })
            })
            .join()
            .expect("reader thread");
            assert_eq!(seen.expect("get"), Some(value.to_vec()));
        }
        assert_eq!(
            store.remove("k").await.expect("remove"),
            Some(49u32.to_be_bytes().to_vec())
        );
        assert_eq!(store.get("k").await.expect("get"), None);
        assert!(store.put_new("k", b"n", None).await.expect("put_new"));
        assert_eq!(store.get("k").await.expect("get"), Some(b"n".to_vec()));
    }

    #[actix_web::test]
    async fn purging_removes_expired_entries_chunk_by_chunk_and_keeps_live_ones() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = EmbeddedStore::open(&dir.path().join("db.redb")).expect("opens");
        let expired = 2 * PURGE_CHUNK + 7;
        // Written concurrently, so that they share a few commits.
        let writes = (0..expired).map(|i| {
            let store = store.clone();
            async move {
                let key = format!("old:{i:05}");
                store.put(&key, b"x", Some(Duration::ZERO)).await
            }
        });
        for written in futures_util::future::join_all(writes).await {
            written.expect("set");
        }
        store.put("live:forever", b"1", None).await.expect("set");
        store
            .put("live:later", b"2", Some(Duration::from_secs(60)))
            .await
            .expect("set");

        let removed = store.purge_expired().await.expect("purges");

        assert_eq!(removed, expired);
        assert_eq!(store.scan("").await.expect("keys").len(), 2);
        assert_eq!(
            store.get("live:later").await.expect("get"),
            Some(b"2".to_vec())
        );
        assert_eq!(store.purge_expired().await.expect("purges"), 0);
    }

    #[actix_web::test]
    async fn concurrent_writes_share_commits_and_stay_atomic() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = EmbeddedStore::open(&dir.path().join("db.redb")).expect("opens");
        store.put("code", b"once", None).await.expect("set");

        let set_nx = futures_util::future::join_all((0..64).map(|i| {
            let store = store.clone();
            async move { store.put_new("nx", format!("{i}").as_bytes(), None).await }
        }));
        let takes = futures_util::future::join_all((0..64).map(|_| {
            let store = store.clone();
            async move { store.remove("code").await }
        }));
        let (set_nx, takes) = futures_util::future::join(set_nx, takes).await;

        let written = set_nx.into_iter().filter(|r| matches!(r, Ok(true))).count();
        let taken = takes
            .into_iter()
            .filter(|r| matches!(r, Ok(Some(_))))
            .count();
        assert_eq!((written, taken), (1, 1));
    }

    /// Volatile writes skip the disk, but closing the store flushes them: after a clean
    /// shutdown, both survive reopening the file.
    #[actix_web::test]
    async fn a_clean_shutdown_persists_the_volatile_writes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("db.redb");
        let store = EmbeddedStore::open(&path).expect("opens");
        let pending = keys::pending("p");
        store.put_volatile(&pending, b"p", None).await.expect("put");
        assert_eq!(store.get(&pending).await.expect("get"), Some(b"p".to_vec()));
        store.put("client", b"c", None).await.expect("put");
        drop(store);

        let again = EmbeddedStore::open(&path).expect("opens again");

        assert_eq!(again.get(&pending).await.expect("get"), Some(b"p".to_vec()));
        assert_eq!(again.get("client").await.expect("get"), Some(b"c".to_vec()));
    }

    /// Waits until the memory tier is empty (the flush took everything), at most 5 s.
    async fn flushed(store: &EmbeddedStore) {
        for _ in 0..500 {
            if store.hot_slots() == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "the memory tier was not flushed: {} slots",
            store.hot_slots()
        );
    }

    /// A volatile record is answered from memory at once, reaches the file with the flush and
    /// then leaves memory, and is still read (from the file) afterwards.
    #[actix_web::test]
    async fn volatile_records_are_flushed_to_the_file_and_leave_memory() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = EmbeddedStore::open(&dir.path().join("db.redb")).expect("opens");
        let session = keys::session("s1");
        store
            .put_volatile(&session, b"alice", Some(Duration::from_secs(60)))
            .await
            .expect("put");
        assert_eq!(store.hot_slots(), 1, "in memory until the flush");
        assert_eq!(
            store.get(&session).await.expect("get"),
            Some(b"alice".to_vec())
        );

        flushed(&store).await;

        assert_eq!(
            store.get(&session).await.expect("get"),
            Some(b"alice".to_vec())
        );
        assert_eq!(store.scan("session:").await.expect("scan"), vec![session]);
    }

    /// Removing a volatile record that reached the file waits for the disk: when `remove`
    /// returns, the removal is flushed (nothing left in memory), and it stays removed after
    /// the file is opened again. One that never reached the file is removed in memory alone.
    #[actix_web::test]
    async fn removing_a_flushed_volatile_record_reaches_the_disk_before_it_returns() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("db.redb");
        let store = EmbeddedStore::open(&path).expect("opens");
        let (old, new) = (keys::session("old"), keys::session("new"));
        store.put_volatile(&old, b"o", None).await.expect("put");
        flushed(&store).await;
        store.put_volatile(&new, b"n", None).await.expect("put");

        assert_eq!(
            store.remove(&old).await.expect("remove"),
            Some(b"o".to_vec())
        );
        assert!(
            store.get(&new).await.expect("get").is_some(),
            "the other record is untouched"
        );
        assert_eq!(
            store.remove(&new).await.expect("remove"),
            Some(b"n".to_vec())
        );
        assert_eq!(
            store.remove(&new).await.expect("remove"),
            None,
            "removed once"
        );
        assert_eq!(store.get(&old).await.expect("get"), None);
        drop(store);

        let again = EmbeddedStore::open(&path).expect("opens again");
        assert_eq!(again.get(&old).await.expect("get"), None);
        assert_eq!(again.get(&new).await.expect("get"), None);
        assert!(again.scan("").await.expect("scan").is_empty());
    }

    /// A code taken while in memory, and one taken after it went to the file: each exactly
    /// once among concurrent takers, and the mark it leaves is what a replay sees.
    #[actix_web::test]
    async fn codes_are_taken_once_from_memory_and_from_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = EmbeddedStore::open(&dir.path().join("db.redb")).expect("opens");
        let flushed_code = keys::code("c-flushed");
        let fresh_code = keys::code("c-fresh");
        let live = kv::live("client", b"record");
        let ttl = Some(Duration::from_secs(60));
        store
            .put_volatile(&flushed_code, &live, ttl)
            .await
            .expect("put");
        flushed(&store).await;
        store
            .put_volatile(&fresh_code, &live, ttl)
            .await
            .expect("put");

        for key in [&flushed_code, &fresh_code] {
            let takes = futures_util::future::join_all((0..32).map(|i| {
                let store = store.clone();
                let key = key.clone();
                async move {
                    store
                        .take_once(
                            &key,
                            "client",
                            i,
                            Duration::from_secs(60),
                            Durability::Volatile,
                        )
                        .await
                        .expect("take")
                }
            }))
            .await;
            let taken: Vec<&Once> = takes
                .iter()
                .filter(|o| matches!(o, Once::Taken(_)))
                .collect();
            assert_eq!(taken, vec![&Once::Taken(live.clone())], "{key}");
            assert!(
                takes
                    .iter()
                    .all(|o| matches!(o, Once::Taken(_) | Once::Used(_))),
                "{key}: every other taker sees the mark"
            );
            let replay = store
                .take_once(
                    key,
                    "client",
                    99,
                    Duration::from_secs(60),
                    Durability::Volatile,
                )
                .await
                .expect("take");
            assert!(matches!(replay, Once::Used(_)), "{key}: {replay:?}");
        }
    }

    #[actix_web::test]
    async fn the_file_can_be_opened_again_once_the_store_is_dropped() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("db.redb");
        let store = EmbeddedStore::open(&path).expect("opens");
        store.put("k", b"v", None).await.expect("set");
        let clone = store.clone();
        drop(store);
        drop(clone);

        let again = EmbeddedStore::open(&path).expect("opens again");

        assert_eq!(again.get("k").await.expect("get"), Some(b"v".to_vec()));
    }

    /// The fields of the map under `key` as they lie in `MAPS`, read directly.
    fn fields_in_file(store: &EmbeddedStore, key: &str) -> Vec<String> {
        let txn = store.db.begin_read().expect("read");
        let maps = txn.open_table(MAPS).expect("maps");
        let fields = fields_of(&maps, key).expect("fields");
        fields.into_iter().map(|(f, _)| f).collect()
    }

    /// A file written by an earlier Doorman kept a person's grants as one record; opening it
    /// moves every field to its own entry, keeps the map's expiry, drops a lapsed map, and
    /// loses nothing — also when the file is opened again.
    #[actix_web::test]
    async fn maps_kept_as_one_record_by_an_earlier_version_are_split_when_the_file_opens() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("db.redb");
        let (alice, bob) = (keys::grants("alice"), keys::grants("bob"));
        let map: std::collections::BTreeMap<String, Vec<u8>> = (0..300)
            .map(|i| (format!("client-{i:03}"), format!("grant {i}").into_bytes()))
            .collect();
        {
            let db = Database::create(&path).expect("creates");
            let txn = db.begin_write().expect("write");
            {
                let mut table = txn.open_table(KV).expect("kv");
                let live = encode(&kv::encode_map(&map), Some(Duration::from_secs(3600)));
                table
                    .insert(alice.as_str(), live.as_slice())
                    .expect("insert");
                let lapsed = encode_at(&kv::encode_map(&map), Some(Duration::ZERO), 1);
                table
                    .insert(bob.as_str(), lapsed.as_slice())
                    .expect("insert");
                table
                    .insert("client:c", encode(b"c", None).as_slice())
                    .expect("insert");
            }
            txn.commit().expect("commit");
        }

        for _ in 0..2 {
            let store = EmbeddedStore::open(&path).expect("opens");

            assert_eq!(
                store.map_get(&alice, "client-007").await.expect("get"),
                Some(b"grant 7".to_vec())
            );
            let mut all = store.map_all(&alice).await.expect("all");
            all.sort();
            assert_eq!(all, map.clone().into_iter().collect::<Vec<_>>());
            assert_eq!(fields_in_file(&store, &alice).len(), 300);
            let head = store
                .file_raw(&alice)
                .expect("head")
                .expect("the map's head");
            assert_eq!(head.len(), 8, "the head keeps only the expiry");
            assert!(payload(&head, now_ms()).is_some(), "and the expiry is kept");
            assert!(store.map_all(&bob).await.expect("all").is_empty());
            assert_eq!(
                store.file_raw(&bob).expect("head"),
                None,
                "a lapsed map is dropped"
            );
            assert_eq!(
                store.get("client:c").await.expect("get"),
                Some(b"c".to_vec())
            );
        }
    }

    /// A field is one entry: a map that lapsed starts empty when written again (its old fields
    /// do not come back, even before the purge), the purge takes a lapsed map's fields, and a
    /// map whose last field is removed is gone.
    #[actix_web::test]
    async fn a_maps_fields_live_and_lapse_with_its_head() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = EmbeddedStore::open(&dir.path().join("db.redb")).expect("opens");
        let (carol, dave) = (keys::grants("carol"), keys::grants("dave"));
        let hour = Duration::from_secs(3600);

        store
            .map_set(&carol, "old", b"1", Duration::ZERO)
            .await
            .expect("set");
        assert_eq!(store.map_get(&carol, "old").await.expect("get"), None);
        store.map_set(&carol, "new", b"2", hour).await.expect("set");
        assert_eq!(
            store.map_all(&carol).await.expect("all"),
            vec![("new".to_owned(), b"2".to_vec())]
        );
        assert_eq!(fields_in_file(&store, &carol), vec!["new".to_owned()]);

        store.map_set(&dave, "a", b"1", hour).await.expect("set");
        store
            .map_set(&dave, "b", b"2", Duration::ZERO)
            .await
            .expect("set");
        assert!(
            store.map_all(&dave).await.expect("all").is_empty(),
            "the last write's TTL is the map's"
        );
        assert_eq!(store.purge_expired().await.expect("purges"), 1);
        assert!(
            fields_in_file(&store, &dave).is_empty(),
            "the purge took the fields"
        );

        assert!(store.map_remove(&carol, "new").await.expect("remove"));
        assert!(!store.map_remove(&carol, "new").await.expect("remove"));
        assert_eq!(
            store.file_raw(&carol).expect("head"),
            None,
            "an empty map is gone"
        );
        assert!(store.scan("grants:").await.expect("keys").is_empty());
    }
}
